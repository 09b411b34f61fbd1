//! Hostile and huge messages, generated (never committed): shared by `tests/hostile.rs` and
//! `benches/hostile.rs`. Every kind but the NUL one is a real report: a `Received:` header
//! (receipt time), a reporter, a crt.sh link near the start, so each must still open a case with
//! a preliminary-report clock and a revocation clock.
#![allow(dead_code)] // each user takes part of it

/// The certificate every report names (the CSV kind names `CSV_FIRST_ID..` as well).
pub const LINKED_ID: u64 = 1_777_593_900;
/// The first crt.sh id of the CSV listing; ids are consecutive.
pub const CSV_FIRST_ID: u64 = 5_000_000_000;

/// The kinds, in the order the benchmark prints them.
pub const KINDS: [&str; 7] = ["big", "parts", "nested", "header", "base64", "csv", "nul"];

/// Sizes of one kind: the full figures of the issue, or a scale-down for quick runs.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    /// Bytes of the big message's body.
    pub big_bytes: usize,
    pub parts: usize,
    pub nesting: usize,
    pub header_bytes: usize,
    /// Decoded bytes of the base64 attachment.
    pub attachment_bytes: usize,
    pub csv_ids: usize,
    pub nul_bytes: usize,
}

impl Scale {
    /// Issue 13 §4 as written.
    pub const FULL: Scale = Scale {
        big_bytes: 50_000_000,
        parts: 10_000,
        nesting: 200,
        header_bytes: 10_000_000,
        attachment_bytes: 30_000_000 / 4 * 3,
        csv_ids: 100_000,
        nul_bytes: 10_000_000,
    };

    /// A smoke run's sizes (`cargo test --all-targets` runs the benchmark this way).
    pub const SMALL: Scale = Scale {
        big_bytes: 3_000_000,
        parts: 2_000,
        nesting: 200,
        header_bytes: 1_000_000,
        attachment_bytes: 2_000_000,
        csv_ids: 2_000,
        nul_bytes: 100_000,
    };
}

fn head(kind: &str, extra_headers: &str, subject: &str) -> String {
    format!(
        "Return-Path: <reporter@research.test>\r\n\
         Received: from relay.research.test by mx.example-ca.test with ESMTPS id H{kind};\r\n\
         \tMon, 2 Nov 2026 10:00:00 +0000\r\n\
         From: Reporter <reporter@research.test>\r\n\
         To: cpr@example-ca.test\r\n\
         Subject: {subject}\r\n\
         Date: Mon, 2 Nov 2026 10:00:00 +0000\r\n\
         Message-ID: <hostile-{kind}@research.test>\r\n\
         MIME-Version: 1.0\r\n{extra_headers}"
    )
}

/// The opening every report carries: a link and wording a rule matches.
fn lead() -> String {
    format!(
        "Hello,\r\n\r\nThe private key of https://crt.sh/?id={LINKED_ID} was compromised and \
         published on a paste site.\r\n\r\n"
    )
}

/// Prose filler without any reference, `n` bytes or a little more: words drawn (seeded) from
/// the vocabulary reports use, so no two lines repeat; repeated text would flatter the rules,
/// whose matching cost depends on how varied the text is.
fn filler(n: usize) -> String {
    const WORDS: [&str; 48] = [
        "key",
        "private",
        "compromise",
        "modulus",
        "policy",
        "revoke",
        "agreement",
        "certificate",
        "subscriber",
        "misuse",
        "domain",
        "validation",
        "issued",
        "error",
        "encoding",
        "precertificate",
        "weak",
        "debian",
        "factor",
        "exponent",
        "curve",
        "report",
        "please",
        "confirm",
        "revocation",
        "within",
        "hours",
        "days",
        "the",
        "a",
        "of",
        "to",
        "and",
        "we",
        "found",
        "this",
        "that",
        "is",
        "was",
        "not",
        "published",
        "leaked",
        "exposed",
        "serial",
        "issuer",
        "name",
        "holder",
        "scan",
    ];
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut s = String::with_capacity(n + 100);
    while s.len() < n {
        for i in 0..12 {
            rng ^= rng >> 12;
            rng ^= rng << 25;
            rng ^= rng >> 27;
            let w = WORDS[(rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % WORDS.len()];
            if i > 0 {
                s.push(' ');
            }
            s.push_str(w);
        }
        s.push_str(".\r\n");
    }
    s
}

/// Standard base64, 76 characters a line.
fn base64_lines(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len() / 3 * 4 + data.len() / 57 * 2 + 8);
    for line in data.chunks(57) {
        for c in line.chunks(3) {
            let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for k in 0..4 {
                if k <= c.len() {
                    out.push(A[(n >> (18 - 6 * k) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out.push_str("\r\n");
    }
    out
}

/// One message of `kind` (see [`KINDS`]) at `scale`.
pub fn message(kind: &str, scale: &Scale) -> Vec<u8> {
    match kind {
        // One text part of 50 MB; a second link at the very end lies past any sane search limit.
        "big" => {
            let mut m = head(
                kind,
                "Content-Type: text/plain; charset=utf-8\r\n\r\n",
                "Key compromise, large report",
            );
            m.push_str(&lead());
            m.push_str(&filler(scale.big_bytes));
            m.push_str("Also https://crt.sh/?id=1777593999 at the end.\r\n");
            m.into_bytes()
        }
        "parts" => {
            let mut m = head(
                kind,
                "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n",
                "Key compromise, many parts",
            );
            m.push_str("--b\r\nContent-Type: text/plain\r\n\r\n");
            m.push_str(&lead());
            for i in 1..scale.parts {
                m.push_str(&format!(
                    "--b\r\nContent-Type: text/plain\r\n\r\nPart {i} of the report.\r\n"
                ));
            }
            m.push_str("--b--\r\n");
            m.into_bytes()
        }
        // Forwarded inside forwarded: a multipart holding the report text and a
        // message/rfc822 part, which holds the same again, `nesting` levels deep.
        "nested" => {
            let mut m = head(
                kind,
                "Content-Type: multipart/mixed; boundary=\"n0\"\r\n\r\n",
                "Key compromise, forwarded many times",
            );
            for level in 0..scale.nesting {
                m.push_str(&format!("--n{level}\r\nContent-Type: text/plain\r\n\r\n"));
                if level == 0 {
                    m.push_str(&lead());
                } else {
                    m.push_str(&format!("Forward level {level}.\r\n"));
                }
                m.push_str(&format!(
                    "--n{level}\r\nContent-Type: message/rfc822\r\n\r\n\
                     From: hop{level}@research.test\r\nSubject: Fwd {level}\r\n\
                     Content-Type: multipart/mixed; boundary=\"n{}\"\r\n\r\n",
                    level + 1
                ));
            }
            let last = scale.nesting;
            m.push_str(&format!(
                "--n{last}\r\nContent-Type: text/plain\r\n\r\nInnermost https://crt.sh/?id=1777593998\r\n--n{last}--\r\n"
            ));
            for level in (0..scale.nesting).rev() {
                m.push_str(&format!("--n{level}--\r\n"));
            }
            m.into_bytes()
        }
        // A Subject of 10 MB on one line.
        "header" => {
            let subject = format!(
                "Key compromise {}",
                "very long subject ".repeat(scale.header_bytes / 18)
            );
            let mut m = head(
                kind,
                "Content-Type: text/plain; charset=utf-8\r\n\r\n",
                &subject,
            );
            m.push_str(&lead());
            m.into_bytes()
        }
        // A text attachment of 30 MB as base64 (the report in a short text part beside it).
        "base64" => {
            let mut m = head(
                kind,
                "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n",
                "Key compromise, log attached",
            );
            m.push_str("--b\r\nContent-Type: text/plain\r\n\r\n");
            m.push_str(&lead());
            m.push_str(
                "--b\r\nContent-Type: text/plain; name=\"scan.txt\"\r\n\
                 Content-Disposition: attachment; filename=\"scan.txt\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n",
            );
            m.push_str(&base64_lines(filler(scale.attachment_bytes).as_bytes()));
            m.push_str("--b--\r\n");
            m.into_bytes()
        }
        // A mass-misissuance report: a CSV of crt.sh ids, each a certificate to revoke.
        "csv" => {
            let mut csv = String::from("crt.sh ID,Common Name,Not Before\r\n");
            for i in 0..scale.csv_ids as u64 {
                csv.push_str(&format!(
                    "{},host{i}.shop.test,2026-10-01\r\n",
                    CSV_FIRST_ID + i
                ));
            }
            let mut m = head(
                kind,
                "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n",
                "Misissued certificates (mass report)",
            );
            m.push_str(&format!(
                "--b\r\nContent-Type: text/plain\r\n\r\nThe {} certificates listed in the \
                 attached CSV were issued with an invalid encoding of the subject.\r\n",
                scale.csv_ids
            ));
            m.push_str(
                "--b\r\nContent-Type: text/csv; name=\"misissued.csv\"\r\n\
                 Content-Disposition: attachment; filename=\"misissued.csv\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n",
            );
            m.push_str(&base64_lines(csv.as_bytes()));
            m.push_str("--b--\r\n");
            m.into_bytes()
        }
        "nul" => vec![0u8; scale.nul_bytes],
        other => panic!("unknown hostile kind {other}"),
    }
}
