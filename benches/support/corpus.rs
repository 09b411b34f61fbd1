//! What the generated corpora share: a deterministic PRNG, a PEM certificate as reporters paste
//! one, and report prose seeded from the Sakai corpus in `fixtures/corpus/`.
#![allow(dead_code)] // each benchmark uses part of it

use std::fs;
use std::path::{Path, PathBuf};

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

/// Every message file of the Maildir at `root` (inbox, `.Junk`, `.Sent`), sorted.
pub fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for folder in ["", ".Junk", ".Sent"] {
        for sub in ["cur", "new"] {
            let dir = root.join(folder).join(sub);
            if let Ok(rd) = fs::read_dir(&dir) {
                out.extend(rd.filter_map(|e| e.ok()).map(|e| e.path()));
            }
        }
    }
    out.sort();
    out
}

/// A Maildir of `n` realistic messages at `root` (the ingest benchmarks' corpus): reports
/// with crt.sh links, fingerprints and PEM certificates, reporter follow-ups that thread, staff
/// answers in `.Sent`, reports in `.Junk`, bodies seeded from the Sakai corpus. Deterministic.
pub fn generate_maildir(root: &Path, n: usize) {
    use std::io::Write;
    let _ = fs::remove_dir_all(root);
    for f in ["", ".Junk", ".Sent"] {
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(root.join(f).join(sub)).expect("mkdir");
        }
    }
    let seeds = seed_lines();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let base: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
    let mut reports: Vec<(String, String, String)> = Vec::new(); // (message id, from, subject)
    for i in 0..n {
        let t = base + (i as i64) * 60 + rng.below(50) as i64;
        let date = time::OffsetDateTime::from_unix_timestamp(t)
            .expect("time")
            .format(&time::format_description::well_known::Rfc2822)
            .expect("fmt");
        let kind = rng.below(100);
        let mid = format!("<bench-{i}.{}@reporter.test>", rng.next() % 1_000_000);
        let mut body = String::new();
        for _ in 0..(20 + rng.below(40)) {
            body.push_str(&seeds[rng.below(seeds.len() as u64) as usize]);
            body.push('\n');
        }
        let (folder, msg) = if kind < 15 && !reports.is_empty() {
            // Staff answer in Sent, threaded to an earlier report.
            let (pid, pfrom, psubj) = reports[rng.below(reports.len() as u64) as usize].clone();
            let m = format!(
                "From: Abuse Desk <cpr@example-ca.test>\r\nTo: {pfrom}\r\nSubject: Re: {psubj}\r\nDate: {date}\r\nMessage-ID: <ans-{i}@example-ca.test>\r\nIn-Reply-To: {pid}\r\nReferences: {pid}\r\n\r\nThank you for your report, we are investigating.\r\n\r\n{body}"
            );
            (".Sent", m)
        } else if kind < 25 && !reports.is_empty() {
            // Reporter follow-up, threaded by References.
            let (pid, pfrom, psubj) = reports[rng.below(reports.len() as u64) as usize].clone();
            let m = format!(
                "Received: from relay.reporter.test by mx.example-ca.test with ESMTPS id b{i}; {date}\r\nFrom: {pfrom}\r\nTo: cpr@example-ca.test\r\nSubject: Re: {psubj}\r\nDate: {date}\r\nMessage-ID: {mid}\r\nReferences: {pid}\r\n\r\nAny update?\r\n\r\n{body}"
            );
            ("", m)
        } else {
            let from = format!("reporter{}@reporter{}.test", rng.below(5000), rng.below(50));
            let id = 1_000_000_000 + rng.below(9_000_000_000);
            let (subject, extra) = match kind % 5 {
                0 => (
                    format!("Key compromise report {i}"),
                    format!(
                        "The private key was leaked and compromised: https://crt.sh/?id={id}\r\n"
                    ),
                ),
                1 => (
                    format!("Misissued certificate {i}"),
                    format!(
                        "The certificate is misissued (CN not in SAN): https://crt.sh/?sha256={:016x}{:016x}{:016x}{:016x}&opt=cablint\r\n",
                        rng.next(),
                        rng.next(),
                        rng.next(),
                        rng.next()
                    ),
                ),
                2 => (
                    format!("Problem report {i}"),
                    format!("Certificate attached.\r\n{CERT_PEM}\r\n"),
                ),
                3 => (
                    format!("Phishing site using your certificate {i}"),
                    format!("crt.sh ID {id} is used for phishing\r\n"),
                ),
                _ => (format!("Question about certificate {i}"), String::new()),
            };
            reports.push((mid.clone(), from.clone(), subject.clone()));
            let m = format!(
                "Return-Path: <{from}>\r\nReceived: from relay.reporter.test (relay.reporter.test [192.0.2.7])\r\n\tby mx.example-ca.test (Postfix) with ESMTPS id Q{i}\r\n\tfor <cpr@example-ca.test>; {date}\r\nReceived: from laptop by relay.reporter.test; {date}\r\nFrom: Reporter <{from}>\r\nTo: cpr@example-ca.test\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: {mid}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello,\r\n\r\n{extra}\r\n{body}"
            );
            (if kind >= 95 { ".Junk" } else { "" }, m)
        };
        let name = format!("{t}.M{i}P1.bench,S={}:2,S", msg.len());
        let mut f = fs::File::create(root.join(folder).join("cur").join(name)).expect("create");
        f.write_all(msg.as_bytes()).expect("write");
    }
    fs::write(root.join(".done"), b"").expect("marker");
}
