//! What the generated corpora share: a deterministic PRNG, a PEM certificate as reporters paste
//! one, and report prose seeded from the Sakai corpus in `fixtures/corpus/`.
#![allow(dead_code)] // each benchmark uses part of it

use std::fs;
use std::path::Path;

/// A small deterministic PRNG (xorshift64*): the corpus is the same on every machine.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `lo..hi` (`hi` excluded).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo).max(1) as u64) as i64
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A certificate as reporters paste one (cut short: it names no certificate, as many pasted
/// blocks do not, so it costs the extractor a decode attempt and no clock).
pub const CERT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBszCCAVmgAwIBAgIUJ5Vb3ZsY2dCq5gm8s7HhQKk0qN8wCgYIKoZIzj0EAwIw
HzEdMBsGA1UEAwwUYmVuY2guZXhhbXBsZS1jYS50ZXN0MB4XDTI2MDEwMTAwMDAw
MFoXDTI3MDEwMTAwMDAwMFowHDEaMBgGA1UEAwwRc2hvcC5leGFtcGxlLnRlc3Qw
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQ8q2mJ0mQ2c0Hq9kq8w3rj6l7q1Qxv
-----END CERTIFICATE-----";

/// Lines of real prose (the Sakai mbox's commit notices) to fill bodies with.
pub fn seed_lines() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/corpus/sakai-mbox.txt");
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.is_empty() && !l.contains(':') && l.len() > 20)
        .map(str::to_string)
        .collect();
    if lines.is_empty() {
        vec![
            "We found the following certificate while scanning public repositories.".into(),
            "The subject alternative names include hosts we do not believe are controlled.".into(),
            "Please confirm receipt of this report and let us know when it is revoked.".into(),
        ]
    } else {
        lines
    }
}
