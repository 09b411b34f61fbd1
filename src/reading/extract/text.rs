//! Scanning one text (a subject, a body part, a listing attachment) for references.
//!
//! Order matters: PEM blocks first, then crt.sh links, then our own canonical forms, and each
//! is masked before the next looks, so the hex inside a link or a key hash is never counted a
//! second time as a bare fingerprint. Only what was read as a reference is masked: text that
//! could not be decoded (a PEM block that is not one) is still searched for everything else.

use super::key::{self, Format};
use super::pem::{self, PemBlock};
use super::{Hit, cert, crtsh, fingerprint, target};
use std::borrow::Cow;
use std::ops::Range;

/// Labels of PEM blocks that hold a certificate.
const CERTIFICATE_LABELS: [&str; 3] = ["CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"];

/// What a scan found: hits with their byte offset (for first-appearance order) and problems.
#[derive(Default)]
pub(crate) struct Scan {
    pub hits: Vec<(usize, Hit)>,
    pub problems: Vec<String>,
}

impl Scan {
    pub(crate) fn hit(&mut self, pos: usize, hit: Hit) {
        self.hits.push((pos, hit));
    }

    /// Hits in order of appearance (stable for equal offsets).
    pub(crate) fn sorted(mut self) -> Scan {
        self.hits.sort_by_key(|(pos, _)| *pos);
        self
    }
}

/// Find every reference in `text`.
pub(crate) fn scan(text: &str, out: &mut Scan) {
    let mut work = Cow::Borrowed(text);
    // A PEM block is masked only when it decoded into a certificate or key. One that did not
    // (prose quoting a boundary line, an empty, truncated or mangled block) swallows nothing:
    // reading goes on right after its BEGIN marker, and its text is searched like any other.
    let mut reader = pem::Reader::new(text);
    let mut from = 0;
    while let Some(block) = reader.next_from(from) {
        match pem_hit(&block, &mut out.problems) {
            Some(hit) => {
                out.hit(block.span.start, hit);
                for range in block.read_ranges() {
                    mask(&mut work, &range);
                }
                from = block.span.end;
            }
            None => from = block.marker_end,
        }
    }
    for (span, found) in crtsh::scan(&work) {
        if let Some(t) = found {
            out.hit(span.start, t.into_hit());
        }
        mask(&mut work, &span);
    }
    for (span, found) in target::scan_prefixed(&work) {
        out.hit(span.start, found.into_hit());
        mask(&mut work, &span);
    }
    for (span, hex) in fingerprint::scan(&work) {
        out.hit(span.start, target::Target::Sha256(hex).into_hit());
    }
}

/// Blank out `span` (same length, so offsets stay valid). Spans come from regex matches and
/// PEM markers, so they lie on character boundaries.
fn mask(work: &mut Cow<'_, str>, span: &Range<usize>) {
    if span.is_empty()
        || span.end > work.len()
        || !work.is_char_boundary(span.start)
        || !work.is_char_boundary(span.end)
    {
        return;
    }
    let blank = " ".repeat(span.len());
    work.to_mut().replace_range(span.clone(), &blank);
}

/// What a PEM block names, if it is a certificate or key block that decodes. Problems name the
/// block's label, never its content.
pub(crate) fn pem_hit(block: &PemBlock, problems: &mut Vec<String>) -> Option<Hit> {
    let label = block.label.as_str();
    if !CERTIFICATE_LABELS.contains(&label) && Format::from_label(label, false).is_none() {
        return None;
    }
    let mut notes = Vec::new();
    let hit = decode(block, &mut notes);
    if block.unterminated {
        if hit.is_some() {
            notes.insert(0, "no END line; read to the end of its base64".into());
        } else {
            // Why a block without an END line does not decode goes without saying.
            notes = vec!["no END line".into()];
        }
    }
    problems.extend(notes.into_iter().map(|n| format!("PEM block {label}: {n}")));
    hit
}

/// The certificate or key a block holds; what went wrong in `notes` (without the label).
fn decode(block: &PemBlock, notes: &mut Vec<String>) -> Option<Hit> {
    let label = block.label.as_str();
    let Some(der) = block.der.as_deref() else {
        notes.push("body is not valid base64".into());
        return None;
    };
    if CERTIFICATE_LABELS.contains(&label) {
        // Bytes after the certificate mean a damaged body (text pasted into it, say), whose
        // hash is no certificate's: only `TRUSTED CERTIFICATE` carries more (OpenSSL's
        // auxiliary trust data).
        let parsed = cert::parse_prefix(der)
            .filter(|(_, trailing)| *trailing == 0 || label == "TRUSTED CERTIFICATE")
            .map(|(c, _)| Hit::Cert(c));
        if parsed.is_none() {
            notes.push("not a valid X.509 certificate".into());
        }
        return parsed;
    }
    let format = Format::from_label(label, block.encrypted_header)?;
    match key::decode(format, der, legacy_algorithm(label)) {
        Ok((key, note)) => {
            notes.extend(note.map(|n| n.to_string()));
            Some(Hit::Key(key))
        }
        Err(problem) => {
            notes.push(problem.to_string());
            None
        }
    }
}

/// The algorithm a legacy (OpenSSL-encrypted) block's label tells, the only thing we can know
/// without the passphrase.
fn legacy_algorithm(label: &str) -> Option<&'static str> {
    match label {
        "RSA PRIVATE KEY" => Some("rsa"),
        "EC PRIVATE KEY" => Some("ec"),
        _ => None,
    }
}
