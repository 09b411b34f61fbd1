//! The three identifiers a reference can carry, and their canonical spelling.
//!
//! Everything the extractor finds, and every reference staff write in a command, ends up as one
//! of `crtsh:<id>`, `sha256:<hex>` (certificates) or `spki:<hex>` (keys), so that the same
//! certificate reported as a link and later named in a command compares equal.

use super::{Hit, crtsh, fingerprint};
use crate::domain::model::{CertificateRef, KeyEvidence, KeyRef};
use regex::Regex;
use std::sync::LazyLock;

/// A certificate or key identifier, already validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// A crt.sh certificate id.
    Crtsh(u64),
    /// Lowercase hex SHA-256 of a certificate's DER.
    Sha256(String),
    /// Lowercase hex SHA-256 of a SubjectPublicKeyInfo (crt.sh's `spkisha256`).
    Spki(String),
}

impl Target {
    pub(crate) fn canonical(&self) -> String {
        match self {
            Target::Crtsh(id) => crate::domain::ids::crtsh_name(*id),
            Target::Sha256(hex) => crate::domain::ids::sha256_name(hex),
            Target::Spki(hex) => crate::domain::ids::spki_name(hex),
        }
    }

    /// What a mere mention of this identifier tells us: a bare certificate reference, or a
    /// key reference whose only evidence is the identifier itself.
    pub(crate) fn into_hit(self) -> Hit {
        match self {
            Target::Spki(_) => Hit::Key(KeyRef {
                reference: Some(self.canonical()),
                evidence: KeyEvidence::Link,
                algorithm: None,
            }),
            _ => Hit::Cert(CertificateRef::bare(self.canonical())),
        }
    }
}

/// Our own canonical forms written in text: `crtsh:123`, `sha256:<hex>`, `spki:<hex>`.
static PREFIXED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?-u:\b)(crtsh|sha-?256|spki(?:sha256)?)(?-u:\s)*[:=](?-u:\s)*([0-9a-f:]+)(?-u:\b)",
    )
    .expect("static regex")
});

/// Parse one of our canonical forms (`crtsh:N`, `sha256:HEX`, `spki:HEX`), case-insensitive.
pub(crate) fn parse_prefixed(kind: &str, value: &str) -> Option<Target> {
    match kind.to_ascii_lowercase().as_str() {
        "crtsh" => crtsh::parse_id(value).map(Target::Crtsh),
        "sha256" | "sha-256" => fingerprint::hex64(value).map(Target::Sha256),
        "spki" | "spkisha256" => fingerprint::hex64(value).map(Target::Spki),
        _ => None,
    }
}

/// Canonicalise a reference as staff write it: a canonical form, a crt.sh URL or a bare
/// fingerprint.
pub fn parse(s: &str) -> Option<Target> {
    let s = s
        .trim()
        .trim_start_matches('<')
        .trim_end_matches(['>', '.', ',', ';']);
    if let Some(target) = crtsh::parse_url(s) {
        return Some(target);
    }
    if let Some((kind, value)) = s.split_once(':')
        && let Some(target) = parse_prefixed(kind.trim(), value.trim())
    {
        return Some(target);
    }
    fingerprint::hex64(s).map(Target::Sha256)
}

/// Find canonical forms in free text. Returns `(position, span end, target)`.
///
/// `spki:<hex>` must be found (and masked) before bare fingerprints are looked for, or the key
/// hash would be mistaken for a certificate fingerprint.
pub(crate) fn scan_prefixed(text: &str) -> Vec<(std::ops::Range<usize>, Target)> {
    let mut out = Vec::new();
    if !text.contains(':') && !text.contains('=') {
        return out;
    }
    for caps in PREFIXED.captures_iter(text) {
        let (Some(whole), Some(kind), Some(value)) = (caps.get(0), caps.get(1), caps.get(2)) else {
            continue;
        };
        if let Some(target) = parse_prefixed(kind.as_str(), value.as_str()) {
            out.push((whole.range(), target));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "55a7d05c16ef8fb68ef1c4d9b877b19d326f0ef41d50572194891ba8c9be5f5c";

    #[test]
    fn canonical_forms_round_trip() {
        for s in [
            "crtsh:1777593900".to_string(),
            format!("sha256:{HEX}"),
            format!("spki:{HEX}"),
        ] {
            assert_eq!(parse(&s).map(|t| t.canonical()), Some(s.clone()));
        }
    }

    #[test]
    fn prefixed_scan_finds_key_and_cert() {
        let text = format!("SPKI:{} and sha256: {}", HEX.to_uppercase(), HEX);
        let found = scan_prefixed(&text);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].1, Target::Spki(HEX.to_string()));
        assert_eq!(found[1].1, Target::Sha256(HEX.to_string()));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse("crtsh:abc"), None);
        assert_eq!(parse("sha256:1234"), None);
        assert_eq!(parse("example.com"), None);
        assert_eq!(parse(""), None);
    }
}
