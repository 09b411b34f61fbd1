//! Finding PEM blocks in free text, leniently.
//!
//! Reporters paste certificates and keys into mail, where they get quoted (`> `), re-wrapped,
//! indented, CRLF-terminated or (after HTML rendering) run together on one line. We accept all
//! of that: a block is whatever lies between `-----BEGIN X-----` and the matching
//! `-----END X-----`, with quote markers and whitespace removed from the body. Without an END
//! line, its body is the base64-looking lines after the BEGIN line.
//!
//! A block is only a candidate: the caller ([`super::text`]) masks it from the other
//! extractors only when it decoded into a certificate or key. Reporters also *write about* PEM
//! ("the file starts with `-----BEGIN RSA PRIVATE KEY-----`"), and such text must still be
//! searched for links and fingerprints.
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

/// `-----END <LABEL>-----`.
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
    /// Byte range of the whole block in the text (for ordering, and masking once decoded).
    pub span: Range<usize>,
    /// Where the `-----BEGIN …-----` marker ends: reading resumes there when the block turns
    /// out not to be one.
    pub marker_end: usize,
    /// Text inside `span` that was not read as base64 (RFC 1421 headers, prose with a colon,
    /// a pasted fingerprint): never masked, since it was not decoded.
    pub unread: Vec<Range<usize>>,
    /// A `Proc-Type: 4,ENCRYPTED` header: legacy OpenSSL encryption of the body.
    pub encrypted_header: bool,
    /// The decoded body; `None` when it is not valid base64.
    pub der: Option<Vec<u8>>,
    /// No matching END line before the next BEGIN line or the end of the text: the body is the
    /// base64-looking lines after the BEGIN line.
    pub unterminated: bool,
}

impl PemBlock {
    /// The parts of `span` that were read as the block: what may be masked once it decoded.
    pub(crate) fn read_ranges(&self) -> Vec<Range<usize>> {
        let mut out = Vec::with_capacity(self.unread.len() + 1);
        let mut at = self.span.start;
        for skip in &self.unread {
            if skip.start > at {
                out.push(at..skip.start);
            }
            at = at.max(skip.end);
        }
        if self.span.end > at {
            out.push(at..self.span.end);
        }
        out
    }
}

impl std::fmt::Debug for PemBlock {
    /// Never prints the body: it may be a private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemBlock")
            .field("label", &self.label)
            .field("span", &self.span)
            .field("marker_end", &self.marker_end)
            .field("unread", &self.unread)
            .field("encrypted_header", &self.encrypted_header)
            .field("der_len", &self.der.as_ref().map(Vec::len))
            .field("unterminated", &self.unterminated)
            .finish()
    }
}

/// The PEM blocks of one text, read one at a time so that the caller decides where reading
/// goes on: after a block it decoded, or right after the BEGIN marker of one it could not.
///
/// That is what keeps a report quoting a boundary line in prose ("the file starts with
/// `-----BEGIN RSA PRIVATE KEY-----`, see https://crt.sh/?id=…") from losing what follows it:
/// a block that is not one swallows nothing.
///
/// Linear in the text whatever it holds: every marker is found once, and a block's END must
/// come before the next BEGIN (base64 never holds one), so no body is read twice.
pub(crate) struct Reader<'t> {
    text: &'t str,
    /// Every BEGIN marker: its whole span and its label's.
    begins: Vec<(Range<usize>, Range<usize>)>,
    /// Index into `begins` of the next candidate.
    next: usize,
    /// Start of every END marker, by label, in order.
    ends: HashMap<&'t str, Vec<usize>>,
}

impl<'t> Reader<'t> {
    pub fn new(text: &'t str) -> Reader<'t> {
        let mut begins = Vec::new();
        let mut ends: HashMap<&str, Vec<usize>> = HashMap::new();
        if text.contains("-----BEGIN ") {
            for caps in BEGIN.captures_iter(text) {
                if let (Some(whole), Some(label)) = (caps.get(0), caps.get(1)) {
                    begins.push((whole.range(), label.range()));
                }
            }
            for caps in END.captures_iter(text) {
                if let (Some(whole), Some(label)) = (caps.get(0), caps.get(1)) {
                    ends.entry(label.as_str()).or_default().push(whole.start());
                }
            }
        }
        Reader {
            text,
            begins,
            next: 0,
            ends,
        }
    }

    /// The first block whose BEGIN marker starts at or after `from`.
    pub(crate) fn next_from(&mut self, from: usize) -> Option<PemBlock> {
        while self.begins.get(self.next)?.0.start < from {
            self.next += 1;
        }
        let (marker, label) = self.begins.get(self.next)?.clone();
        self.next += 1;
        let limit = self
            .begins
            .get(self.next)
            .map_or(self.text.len(), |(m, _)| m.start);
        let label = &self.text[label];
        let end_marker_len = "-----END -----".len() + label.len();
        let end = self.ends.get(label).and_then(|starts| {
            let i = starts.partition_point(|&s| s < marker.end);
            starts
                .get(i)
                .copied()
                .filter(|&s| s + end_marker_len <= limit)
        });
        Some(match end {
            Some(end) => self.block(label, marker, end, end + end_marker_len, false),
            None => {
                let body_end = unterminated_end(&self.text[..limit], marker.end);
                self.block(label, marker, body_end, body_end, true)
            }
        })
    }

    /// The block whose BEGIN marker is `marker`, body up to `body_end`, ending at `span_end`.
    fn block(
        &self,
        label: &str,
        marker: Range<usize>,
        body_end: usize,
        span_end: usize,
        unterminated: bool,
    ) -> PemBlock {
        let (b64, encrypted_header, unread) = clean_body(self.text, marker.end..body_end);
        PemBlock {
            label: label.to_string(),
            span: marker.start..span_end,
            marker_end: marker.end,
            unread,
            encrypted_header,
            der: LENIENT_BASE64.decode(b64.as_bytes()).ok(),
            unterminated,
        }
    }
}

/// Every PEM block in `text`, in order of appearance, each read to its end (also how
/// `revocation::facts` finds a certificate in PEM text).
pub(crate) fn blocks(text: &str) -> Vec<PemBlock> {
    let mut reader = Reader::new(text);
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(block) = reader.next_from(from) {
        from = block.span.end.max(block.marker_end);
        out.push(block);
    }
    out
}

/// Strip quote markers, indentation and RFC 1421 headers from `text[body]`; return the base64
/// text, whether a `Proc-Type: …ENCRYPTED` header was present, and the lines not read as base64.
fn clean_body(text: &str, body: Range<usize>) -> (String, bool, Vec<Range<usize>>) {
    let mut b64 = String::with_capacity(body.len());
    let mut encrypted = false;
    let mut unread = Vec::new();
    let mut at = body.start;
    for raw in text[body].split_inclusive('\n') {
        let range = at..at + raw.len();
        at = range.end;
        let line = strip_quote(raw);
        if let Some((name, value)) = line.split_once(':') {
            // Base64 never contains ':', so this is a header such as Proc-Type or DEK-Info.
            if name.trim().eq_ignore_ascii_case("proc-type") && value.contains("ENCRYPTED") {
                encrypted = true;
            }
            unread.push(range);
            continue;
        }
        let line_start = range.start + raw.len() - line.len();
        let mut word_start = line_start;
        for piece in line.split_inclusive(char::is_whitespace) {
            let word = piece.trim_end_matches(char::is_whitespace);
            if is_hex64(word) {
                unread.push(word_start..word_start + word.len());
            } else {
                b64.push_str(word);
            }
            word_start += piece.len();
        }
    }
    (b64, encrypted, unread)
}

/// A word of 64 hex digits in a block's body is a SHA-256 fingerprint pasted into it, not
/// base64: a base64 line drawn from 22 of its 64 letters alone happens about once in 10^30.
/// Left out of the body, it leaves the block decoding as it would without it (even a legacy
/// encrypted key, whose ciphertext has no structure to betray the extra bytes), and it is
/// searched as a fingerprint.
fn is_hex64(word: &str) -> bool {
    word.len() == 64 && word.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Remove leading whitespace and any number of `>` quote markers (`> > `, `>>`).
pub(crate) fn strip_quote(line: &str) -> &str {
    line.trim_start_matches(|c: char| c == '>' || c.is_whitespace())
}

/// Where the body of an unterminated block ends: after the last line that still looks like PEM
/// body (base64, or an RFC 1421 header).
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

    const CA: &str = include_str!("../../../fixtures/keys/ca.pem");

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

    /// Resuming after every BEGIN marker (what the scan does when no block decodes) reads each
    /// body once: thousands of BEGIN lines before one END line take no quadratic time.
    #[test]
    fn many_markers_are_read_once() {
        let text = format!(
            "{}-----END CERTIFICATE-----",
            "-----BEGIN CERTIFICATE-----\n!!\n".repeat(20_000)
        );
        let mut reader = Reader::new(&text);
        let (mut from, mut n, mut terminated) = (0, 0, 0);
        while let Some(block) = reader.next_from(from) {
            from = block.marker_end;
            n += 1;
            terminated += usize::from(!block.unterminated);
        }
        assert_eq!((n, terminated), (20_000, 1));
    }

    #[test]
    fn an_end_line_belongs_to_the_last_begin_before_it() {
        let text = format!("-----BEGIN CERTIFICATE----- in prose\n{CA}");
        let mut reader = Reader::new(&text);
        let prose = reader.next_from(0).expect("prose block");
        assert!(prose.unterminated);
        assert_eq!(prose.span.end, text.find('\n').unwrap() + 1);
        let real = reader.next_from(prose.marker_end).expect("real block");
        assert_eq!(real.der, blocks(CA)[0].der);
    }

    #[test]
    fn unterminated_block_masks_only_its_body() {
        let text = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\nabc\n\nHello, see crt.sh";
        let found = blocks(text);
        assert!(found[0].unterminated);
        assert!(!text[found[0].span.clone()].contains("Hello"));
    }
}
