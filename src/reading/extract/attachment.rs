//! Attachments: certificate and key files (PEM or DER), and listings (CSV/TXT).

use super::text::{self, Scan};
use super::{Hit, cert, key, listing};
use crate::domain::model::{Attachment, CertificateRef, KeyEvidence, KeyRef};

/// File extensions of certificate and key files.
const MATERIAL_EXTENSIONS: [&str; 10] = [
    ".pem", ".crt", ".cer", ".der", ".key", ".p8", ".csr", ".req", ".pub", ".p10",
];

/// Content types of certificate and key files.
const MATERIAL_TYPES: [&str; 8] = [
    "application/pkix-cert",
    "application/x-x509-ca-cert",
    "application/x-x509-user-cert",
    "application/x-pem-file",
    "application/pkcs8",
    "application/pkcs10",
    "application/x-pkcs8",
    "application/x-pkcs10",
];

/// PKCS#12 bundles: a (practically always password-protected) private key with its chain.
const PKCS12_EXTENSIONS: [&str; 2] = [".p12", ".pfx"];
const PKCS12_TYPES: [&str; 2] = ["application/x-pkcs12", "application/pkcs12"];

const LISTING_EXTENSIONS: [&str; 2] = [".csv", ".txt"];
const LISTING_TYPES: [&str; 2] = ["text/plain", "text/csv"];

/// Longest attachment name echoed in a problem note.
const MAX_NAME_CHARS: usize = 80;

/// Scan one attachment into `out`.
pub(crate) fn scan(att: &Attachment, out: &mut Scan) {
    let name = att.name.as_deref().unwrap_or("").to_ascii_lowercase();
    let has_ext = |exts: &[&str]| exts.iter().any(|e| name.ends_with(e));
    let has_type = |types: &[&str]| types.contains(&att.content_type.as_str());
    let pem_like = att.data.windows(11).any(|w| w == b"-----BEGIN ");

    if has_ext(&LISTING_EXTENSIONS) || has_type(&LISTING_TYPES) {
        let is_csv = name.ends_with(".csv") || att.content_type == "text/csv";
        scan_listing(&String::from_utf8_lossy(&att.data), is_csv, out);
    } else if pem_like {
        // A certificate or key file in PEM, or any other part that carries PEM blocks.
        text::scan(&String::from_utf8_lossy(&att.data), out);
    } else if has_ext(&MATERIAL_EXTENSIONS) || has_type(&MATERIAL_TYPES) {
        scan_der(att, out);
    } else if has_ext(&PKCS12_EXTENSIONS) || has_type(&PKCS12_TYPES) {
        pkcs12(att, out);
    }
}

/// A PKCS#12 file is a private key sent to us: compromise evidence even though we cannot open
/// it (no PKCS#12 reader among our dependencies, and no passphrase).
fn pkcs12(att: &Attachment, out: &mut Scan) {
    out.hit(
        0,
        Hit::Key(KeyRef {
            reference: None,
            evidence: KeyEvidence::EncryptedPrivateKey,
            algorithm: None,
        }),
    );
    out.problems.push(format!(
        "attachment {}: PKCS#12 bundle, not opened; its key and certificates must be checked by hand",
        display_name(att)
    ));
}

/// A listing is scanned like body text, plus the crt.sh ids only its shape reveals.
fn scan_listing(content: &str, is_csv: bool, out: &mut Scan) {
    text::scan(content, out);
    for (pos, id) in listing::crtsh_ids(content, is_csv) {
        out.hit(
            pos,
            Hit::Cert(CertificateRef::bare(crate::domain::ids::crtsh_name(id))),
        );
    }
}

/// Raw DER: a certificate, else some key format.
fn scan_der(att: &Attachment, out: &mut Scan) {
    if let Some(c) = cert::parse(&att.data) {
        out.hit(0, Hit::Cert(c));
        return;
    }
    match key::guess(&att.data) {
        Some((k, note)) => {
            out.problems
                .extend(note.map(|n| format!("attachment {}: {n}", display_name(att))));
            out.hit(0, Hit::Key(k));
        }
        None => out.problems.push(format!(
            "attachment {}: not a certificate or key this tool can read",
            display_name(att)
        )),
    }
}

/// The attachment's name, quoted, shortened and stripped of control characters: it is the
/// sender's text and ends up in notes staff read.
fn display_name(att: &Attachment) -> String {
    let name: String = att
        .name
        .as_deref()
        .unwrap_or("(unnamed)")
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    format!("{name:?} ({})", att.content_type)
}
