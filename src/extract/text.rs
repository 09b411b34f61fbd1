//! Scanning one text (a subject, a body part, a listing attachment) for references.
//!
//! Order matters: PEM blocks first, then crt.sh links, then our own canonical forms, and each
//! is masked before the next looks, so the hex inside a link or a key hash is never counted a
//! second time as a bare fingerprint.

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
    for block in pem::blocks(text) {
        if let Some(hit) = pem_hit(&block, &mut out.problems) {
            out.hit(block.span.start, hit);
        }
        mask(&mut work, &block.span);
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

/// What a PEM block names, if it is a certificate or key block. Problems name the block's
/// label, never its content.
pub(crate) fn pem_hit(block: &PemBlock, problems: &mut Vec<String>) -> Option<Hit> {
    let label = block.label.as_str();
    let is_cert = CERTIFICATE_LABELS.contains(&label);
    let format = Format::from_label(label, block.encrypted_header);
    if !is_cert && format.is_none() {
        return None;
    }
    if block.unterminated {
        problems.push(format!("PEM block {label}: no END line"));
        return None;
    }
    let Some(der) = block.der.as_deref() else {
        problems.push(format!("PEM block {label}: body is not valid base64"));
        return None;
    };
    if is_cert {
        let parsed = cert::parse(der).map(Hit::Cert);
        if parsed.is_none() {
            problems.push(format!("PEM block {label}: not a valid X.509 certificate"));
        }
        return parsed;
    }
    let format = format?;
    match key::decode(format, der, legacy_algorithm(label)) {
        Ok((key, note)) => {
            problems.extend(note.map(|n| format!("PEM block {label}: {n}")));
            Some(Hit::Key(key))
        }
        Err(problem) => {
            problems.push(format!("PEM block {label}: {problem}"));
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
