//! Certificate and key references, and staff commands, in a parsed message.
//!
//! Pure: text and bytes in, references out; no I/O, no clock. The submodules each read one
//! kind of thing: `crtsh` links, bare `fingerprint`s, `pem` blocks, X.509 `cert`ificates,
//! `key` material, `listing` attachments and staff `command`s.
//!
//! SECURITY: reports may carry private keys. Nothing returned from here contains key material:
//! keys leave as `spki:` hashes, and problem notes name a block's label, never its content.

mod attachment;
pub(crate) mod cert;
mod command;
mod crtsh;
mod ed25519;
mod fingerprint;
pub(crate) mod key;
mod listing;
pub(crate) mod pem;
mod target;
mod text;

use crate::domain::model::{
    Attachment, BadCommand, CertificateRef, Command, KeyEvidence, KeyRef, ParsedMail,
};
use crate::reading::limits::{Limits, TRUNCATED};
use std::collections::{HashMap, HashSet};
use text::Scan;

/// Everything a message names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    pub certificates: Vec<CertificateRef>,
    pub keys: Vec<KeyRef>,
    /// Notes for staff on what could not be read (never containing key material).
    pub problems: Vec<String>,
}

/// One sighting of a certificate or key.
#[derive(Clone, Debug)]
pub(crate) enum Hit {
    Cert(CertificateRef),
    Key(KeyRef),
}

/// Every certificate and key reference in a message: subject, every text part, every attachment.
///
/// Deduplicated by reference (details merged with [`CertificateRef::merge_from`]; for keys the
/// strongest evidence is kept), in order of first appearance. Tests call it on bare texts; the
/// pipeline calls [`mail_references`], which also reads the lenient readings and the limits.
#[cfg(test)]
pub(crate) fn references(subject: &str, texts: &[String], attachments: &[Attachment]) -> Found {
    references_from(
        subject,
        texts.iter().map(String::as_str),
        attachments.iter(),
        &Limits::default(),
    )
}

/// Every certificate and key reference in a parsed message, as [`references`] finds them,
/// searching also the lenient readings of its quoted-printable parts (after the strict ones,
/// so the order of first appearance is the strict decoding's), keeping at most
/// `limits.references` distinct references (each one becomes a clock); a note says how many
/// sightings beyond them were dropped. The texts and attachments are searched as given:
/// `parse` already cut them to the limits.
pub fn mail_references(mail: &ParsedMail, limits: &Limits) -> Found {
    let texts = mail.texts.iter().chain(&mail.lenient_texts);
    let attachments = mail.attachments.iter().chain(&mail.lenient_attachments);
    references_from(
        &mail.subject,
        texts.map(String::as_str),
        attachments,
        limits,
    )
}

fn references_from<'a>(
    subject: &'a str,
    texts: impl Iterator<Item = &'a str>,
    attachments: impl Iterator<Item = &'a Attachment>,
    limits: &Limits,
) -> Found {
    let mut collector = Collector {
        max: limits.references,
        ..Collector::default()
    };
    for t in std::iter::once(subject).chain(texts) {
        let mut scan = Scan::default();
        text::scan(t, &mut scan);
        collector.absorb(scan);
        if let Some(decoded) = crtsh::percent_decoded(t) {
            let mut scan = Scan::default();
            text::scan(&decoded, &mut scan);
            collector.absorb(scan);
        }
    }
    for att in attachments {
        let mut scan = Scan::default();
        attachment::scan(att, &mut scan);
        collector.absorb(scan);
    }
    // Kept for the message's life (facts, events): no doubling slack for a mass report.
    collector.found.certificates.shrink_to_fit();
    if collector.dropped > 0 {
        collector.found.problems.push(format!(
            "{TRUNCATED} {} sightings of certificates or keys beyond the first {} references not recorded (limits.references)",
            collector.dropped, collector.max
        ));
    }
    collector.found
}

/// Staff commands, one per line anywhere in the texts (case-insensitive keys); lines quoted
/// with `>` are ignored.
pub(crate) fn commands(texts: &[String]) -> (Vec<Command>, Vec<BadCommand>) {
    command::commands(texts)
}

/// Canonicalise a reference as staff write it in a command: `crtsh:N`, `sha256:HEX`,
/// `spki:HEX`, a crt.sh URL (`?id=`, `?d=`, `?sha256=`, `?q=<64 hex>`, `?spkisha256=`), or a
/// bare 64-hex or colon-separated fingerprint (→ `sha256:`). `None` if it is none of these.
#[cfg(test)]
pub(crate) fn canonical_target(s: &str) -> Option<String> {
    target::parse(s).map(|t| t.canonical())
}

/// How keys are told apart. A key without a reference (encrypted, or not derivable) has no
/// identity; such keys are kept once per kind, which is all the engine can use.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum KeyIdentity {
    Spki(String),
    Unreferenced(KeyEvidence, Option<String>),
}

impl KeyIdentity {
    fn of(key: &KeyRef) -> KeyIdentity {
        match &key.reference {
            Some(r) => KeyIdentity::Spki(r.clone()),
            None => KeyIdentity::Unreferenced(key.evidence, key.algorithm.clone()),
        }
    }
}

/// Builds a [`Found`] with de-duplication in first-appearance order.
#[derive(Default)]
struct Collector {
    found: Found,
    certificates: HashMap<String, usize>,
    keys: HashMap<KeyIdentity, usize>,
    problems: HashSet<String>,
    /// At most this many distinct references are kept; `dropped` counts sightings of others.
    max: usize,
    dropped: usize,
}

impl Collector {
    fn full(&mut self) -> bool {
        let full = self.found.certificates.len() + self.found.keys.len() >= self.max;
        self.dropped += usize::from(full);
        full
    }
}

impl Collector {
    fn absorb(&mut self, scan: Scan) {
        let scan = scan.sorted();
        for (_, hit) in scan.hits {
            match hit {
                Hit::Cert(c) => self.certificate(c),
                Hit::Key(k) => self.key(k),
            }
        }
        for p in scan.problems {
            if self.problems.insert(p.clone()) {
                self.found.problems.push(p);
            }
        }
    }

    fn certificate(&mut self, c: CertificateRef) {
        match self.certificates.get(&c.reference).copied() {
            Some(i) => self.found.certificates[i].merge_from(&c),
            None if self.full() => {}
            None => {
                self.certificates
                    .insert(c.reference.clone(), self.found.certificates.len());
                self.found.certificates.push(c);
            }
        }
    }

    fn key(&mut self, k: KeyRef) {
        let identity = KeyIdentity::of(&k);
        match self.keys.get(&identity).copied() {
            Some(i) => {
                let existing = &mut self.found.keys[i];
                existing.evidence = existing.evidence.max(k.evidence);
                if existing.algorithm.is_none() {
                    existing.algorithm = k.algorithm;
                }
            }
            None if self.full() => {}
            None => {
                self.keys.insert(identity, self.found.keys.len());
                self.found.keys.push(k);
            }
        }
    }
}

#[cfg(test)]
mod tests;

/// The DER of the certificate with SHA-256 `sha256_hex` when the message carries it (a PEM
/// block in a text part or an attachment, or a DER attachment), for the revocation checker:
/// a report's own copy is used before any fetch. Pure, like the rest of this module.
pub(crate) fn certificate_der(mail: &ParsedMail, sha256_hex: &str) -> Option<Vec<u8>> {
    let matches = |der: &[u8]| -> Option<Vec<u8>> {
        let (_, trailing) = cert::parse_prefix(der)?;
        let der = &der[..der.len() - trailing];
        (key::sha256_hex(der) == sha256_hex).then(|| der.to_vec())
    };
    let texts = mail.texts.iter().chain(&mail.lenient_texts);
    for t in texts {
        for b in pem::blocks(t) {
            if b.label.contains("CERTIFICATE")
                && let Some(found) = b.der.as_deref().and_then(matches)
            {
                return Some(found);
            }
        }
    }
    for a in mail.attachments.iter().chain(&mail.lenient_attachments) {
        if let Some(found) = matches(&a.data) {
            return Some(found);
        }
        if let Ok(text) = std::str::from_utf8(&a.data) {
            for b in pem::blocks(text) {
                if b.label.contains("CERTIFICATE")
                    && let Some(found) = b.der.as_deref().and_then(matches)
                {
                    return Some(found);
                }
            }
        }
    }
    None
}
