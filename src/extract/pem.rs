//! Finding PEM blocks in free text, leniently.
//!
//! Reporters paste certificates and keys into mail, where they get quoted (`> `), re-wrapped,
//! indented, CRLF-terminated or (after HTML rendering) run together on one line. We accept all
//! of that: a block is whatever lies between `-----BEGIN X-----` and the matching
//! `-----END X-----`, with quote markers and whitespace removed from the body.
//!
//! The decoded bytes may be private key material, so [`PemBlock`] never shows them in `Debug`.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use regex::Regex;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::LazyLock;

/// `-----BEGIN <LABEL>-----`; labels are upper-case words (RFC 7468).
static BEGIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----BEGIN ([A-Z0-9]+(?: [A-Z0-9]+)*)-----").expect("static regex")
});

/// `-----END <LABEL>-----`, same label grammar.
static END: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----END ([A-Z0-9]+(?: [A-Z0-9]+)*)-----").expect("static regex")
});

/// Standard alphabet, padding optional: mail clients sometimes eat the trailing `=`.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// One block found in a text.
pub(crate) struct PemBlock {
    /// The label between `BEGIN ` and `-----`, e.g. `CERTIFICATE`.
    pub label: String,
    /// Byte range of the whole block in the text (for masking and ordering).
    pub span: Range<usize>,
    /// A `Proc-Type: 4,ENCRYPTED` header: legacy OpenSSL encryption of the body.
    pub encrypted_header: bool,
    /// The decoded body; `None` when it is not valid base64 or the block has no end line.
    pub der: Option<Vec<u8>>,
    /// No matching END line was found.
    pub unterminated: bool,
}

impl std::fmt::Debug for PemBlock {
    /// Never prints the body: it may be a private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemBlock")
            .field("label", &self.label)
            .field("span", &self.span)
            .field("encrypted_header", &self.encrypted_header)
            .field("der_len", &self.der.as_ref().map(Vec::len))
            .field("unterminated", &self.unterminated)
            .finish()
    }
}

/// Every PEM block in `text`, in order of appearance.
pub(crate) fn blocks(text: &str) -> Vec<PemBlock> {
    let mut out = Vec::new();
    if !text.contains("-----BEGIN ") {
        return out;
    }
    let ends = end_lines(text);
    let mut from = 0;
    while let Some(caps) = BEGIN.captures_at(text, from) {
        let (Some(whole), Some(label)) = (caps.get(0), caps.get(1)) else {
            break;
        };
        let block = read_block(text, whole.start(), whole.end(), label.as_str(), &ends);
        from = block.span.end.max(whole.end());
        out.push(block);
    }
    out
}

/// Where every END line starts, by label, in order. Found in one pass: looking for each BEGIN's
/// END from scratch made text full of BEGIN lines without an END (a hostile message) quadratic.
fn end_lines(text: &str) -> HashMap<&str, Vec<usize>> {
    let mut ends: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut from = 0;
    while let Some(caps) = END.captures_at(text, from) {
        let (Some(whole), Some(label)) = (caps.get(0), caps.get(1)) else {
            break;
        };
        ends.entry(label.as_str()).or_default().push(whole.start());
        // One character on, not past the match: END lines may overlap (`-----END A-----END B-----`).
        from = whole.start() + 1;
    }
    ends
}

/// Read one block whose BEGIN line spans `start..body_start`.
fn read_block(
    text: &str,
    start: usize,
    body_start: usize,
    label: &str,
    ends: &HashMap<&str, Vec<usize>>,
) -> PemBlock {
    let end_marker_len = "-----END -----".len() + label.len();
    let end = ends.get(label).and_then(|starts| {
        let i = starts.partition_point(|&p| p < body_start);
        starts.get(i).copied()
    });
    match end.map(|p| p - body_start) {
        Some(rel) => {
            let body = &text[body_start..body_start + rel];
            let (b64, encrypted_header) = clean_body(body);
            PemBlock {
                label: label.to_string(),
                span: start..body_start + rel + end_marker_len,
                encrypted_header,
                der: LENIENT_BASE64.decode(b64.as_bytes()).ok(),
                unterminated: false,
            }
        }
        None => PemBlock {
            label: label.to_string(),
            span: start..unterminated_end(text, body_start),
            encrypted_header: false,
            der: None,
            unterminated: true,
        },
    }
}

/// Strip quote markers, indentation and RFC 1421 headers; return the base64 text and whether a
/// `Proc-Type: …ENCRYPTED` header was present.
fn clean_body(body: &str) -> (String, bool) {
    let mut b64 = String::with_capacity(body.len());
    let mut encrypted = false;
    for line in body.lines() {
        let line = strip_quote(line);
        if let Some((name, value)) = line.split_once(':') {
            // Base64 never contains ':', so this is a header such as Proc-Type or DEK-Info.
            if name.trim().eq_ignore_ascii_case("proc-type") && value.contains("ENCRYPTED") {
                encrypted = true;
            }
            continue;
        }
        b64.extend(line.chars().filter(|c| !c.is_whitespace()));
    }
    (b64, encrypted)
}

/// Remove leading whitespace and any number of `>` quote markers (`> > `, `>>`).
pub(crate) fn strip_quote(line: &str) -> &str {
    line.trim_start_matches(|c: char| c == '>' || c.is_whitespace())
}

/// Where an unterminated block ends: after the last line that still looks like PEM body.
///
/// Masking that far keeps a truncated key's base64 from being read as anything else, without
/// swallowing the rest of the message.
fn unterminated_end(text: &str, body_start: usize) -> usize {
    let mut end = body_start;
    // The first piece is the rest of the BEGIN line; after it, stop at the first line that
    // is blank or cannot be PEM body (base64 or an RFC 1421 header).
    for (i, line) in text[body_start..].split_inclusive('\n').enumerate() {
        let content = strip_quote(line).trim_end();
        let body_like = !content.is_empty()
            && (content.contains(':')
                || content
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')));
        if i > 0 && !body_like {
            break;
        }
        end += line.len();
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = include_str!("../../fixtures/keys/ca.pem");

    #[test]
    fn finds_plain_block() {
        let found = blocks(CA);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].label, "CERTIFICATE");
        assert!(found[0].der.as_ref().is_some_and(|d| d.len() > 100));
    }

    #[test]
    fn finds_quoted_crlf_block() {
        let quoted: String = CA.lines().map(|l| format!("> > {l}\r\n")).collect();
        let text = format!("see below\r\n{quoted}thanks\r\n");
        let found = blocks(&text);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].der, blocks(CA)[0].der);
    }

    #[test]
    fn finds_block_run_together_on_one_line() {
        let one_line = CA.replace('\n', " ");
        let found = blocks(&one_line);
        assert_eq!(found[0].der, blocks(CA)[0].der);
    }

    #[test]
    fn bad_base64_gives_no_der() {
        let found = blocks("-----BEGIN CERTIFICATE-----\n!!!notbase64\n-----END CERTIFICATE-----");
        assert_eq!(found.len(), 1);
        assert!(found[0].der.is_none());
    }

    #[test]
    fn many_unterminated_blocks_cost_linear_time() {
        // 50 000 BEGIN lines of distinct labels, none ended, then one real block: each BEGIN
        // once searched the rest of the text for its END.
        let mut text: String = (0..50_000)
            .map(|i| format!("-----BEGIN X{i}-----\n\n"))
            .collect();
        text.push_str(CA);
        let t = std::time::Instant::now();
        let found = blocks(&text);
        assert_eq!(found.len(), 50_001);
        assert!(found[..50_000].iter().all(|b| b.unterminated));
        assert_eq!(found[50_000].der, blocks(CA)[0].der);
        assert!(t.elapsed().as_secs() < 5, "{:?}", t.elapsed());
    }

    #[test]
    fn overlapping_end_lines_are_each_found() {
        let text = "-----BEGIN B-----\nAAAA\n-----END A-----END B-----";
        let found = blocks(text);
        assert!(!found[0].unterminated);
        assert_eq!(found[0].span, 0..text.len());
    }

    #[test]
    fn unterminated_block_masks_only_its_body() {
        let text = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\nabc\n\nHello, see crt.sh";
        let found = blocks(text);
        assert!(found[0].unterminated);
        assert!(!text[found[0].span.clone()].contains("Hello"));
    }
}
