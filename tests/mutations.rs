//! 20 000 randomly mutated fixtures (bytes flipped, parts cut, boundaries broken, headers
//! folded, encodings swapped, ...) through parse → extract → classify → engine, in memory,
//! without a panic (issue 13 §4). Seeded: a failure names the seed and the case number, and
//! `MUTATION_SEED=<seed> MUTATION_ONLY=<n>` replays that one message alone.
//!
//! The parser's own guard turns a panic into a note ("the MIME parser failed"), so a panic
//! there is caught by looking for that note; anywhere else it fails the test directly.

use std::path::{Path, PathBuf};

use cprwatch::deciding::cases::Settings;
use cprwatch::deciding::derive::Engine;
use cprwatch::domain::model::{FolderRole, SourceMeta};
use cprwatch::pipeline::RawMessage;
use cprwatch::reading::facts::Policy;
use cprwatch::reading::limits::Limits;
use cprwatch::reading::rules::RuleSet;
use cprwatch::reading::staff::StaffPolicy;

const DEFAULT_SEED: u64 = 0x5EED_0013_0004_0001;
const MESSAGES: usize = 20_000;
const BATCH: usize = 500;

/// xorshift64*: small, deterministic, the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn range(&mut self, len: usize) -> (usize, usize) {
        let a = self.below(len + 1);
        let b = self.below(len + 1);
        (a.min(b), a.max(b))
    }
}

fn fixtures() -> Vec<Vec<u8>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "eml") {
                out.push(p);
            }
        }
    }
    let mut paths = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures"),
        &mut paths,
    );
    paths.sort();
    assert!(paths.len() >= 50, "fixtures missing: {}", paths.len());
    paths
        .iter()
        .map(|p| std::fs::read(p).expect("read fixture"))
        .collect()
}

/// Byte offsets where a line starts with `--` (MIME boundaries).
fn boundaries(m: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    for i in 0..m.len().saturating_sub(2) {
        if (i == 0 || m[i - 1] == b'\n') && m[i] == b'-' && m[i + 1] == b'-' {
            out.push(i);
        }
    }
    out
}

/// Bytes that make parsers think: structure, encodings, PEM and link syntax.
const SPICE: [&[u8]; 16] = [
    b"\r\n",
    b"\n\n",
    b"--",
    b"=",
    b"=\r\n",
    b"?=",
    b"=?utf-8?B?",
    b"\0",
    b"\xff\xfe",
    b"\xe2\x80",
    b"-----BEGIN CERTIFICATE-----\r\n",
    b"-----END PRIVATE KEY-----",
    b"https://crt.sh/?id=",
    b"Content-Type: multipart/mixed; boundary=\"",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Type: message/rfc822\r\n\r\n",
];

/// One to four mutations of `m`.
fn mutate(rng: &mut Rng, m: &mut Vec<u8>, pool: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(4) {
        let len = m.len();
        match rng.below(10) {
            // Flip bits in a few bytes.
            0 => {
                for _ in 0..1 + rng.below(16) {
                    if len > 0 {
                        let i = rng.below(len);
                        m[i] ^= 1 << rng.below(8);
                    }
                }
            }
            // Cut a range out (a part lost), or the tail (a truncated download).
            1 => {
                let (a, b) = rng.range(len);
                m.drain(a..b);
            }
            2 => m.truncate(rng.below(len + 1)),
            // Break a boundary: drop, damage or duplicate a `--` line.
            3 => {
                let bs = boundaries(m);
                if !bs.is_empty() {
                    let at = bs[rng.below(bs.len())];
                    let end = m[at..]
                        .iter()
                        .position(|&c| c == b'\n')
                        .map_or(m.len(), |p| at + p + 1);
                    match rng.below(4) {
                        0 => {
                            m.drain(at..end);
                        }
                        1 => {
                            let line = m[at..end].to_vec();
                            let to = rng.below(m.len() + 1);
                            m.splice(to..to, line);
                        }
                        2 => {
                            let i = at + rng.below(end - at);
                            m[i] = b'x';
                        }
                        _ => m.insert(end.min(m.len()), b'-'),
                    }
                }
            }
            // Insert structure-laden bytes somewhere.
            4 => {
                let s = SPICE[rng.below(SPICE.len())];
                let at = rng.below(len + 1);
                m.splice(at..at, s.iter().copied());
            }
            // Duplicate a range (parts repeated, headers twice).
            5 => {
                let (a, b) = rng.range(len);
                let chunk = m[a..b.min(a + 4096)].to_vec();
                let at = rng.below(m.len() + 1);
                m.splice(at..at, chunk);
            }
            // Splice in a piece of another fixture (a part from elsewhere).
            6 => {
                let other = &pool[rng.below(pool.len())];
                let (a, b) = rng.range(other.len());
                let at = rng.below(len + 1);
                m.splice(at..at, other[a..b].iter().copied());
            }
            // Random bytes.
            7 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(64);
                let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                m.splice(at..at, junk);
            }
            // Line endings swapped: CRLF → LF or bare CR.
            8 => {
                let to: &[u8] = if rng.below(2) == 0 { b"\n" } else { b"\r" };
                let mut out = Vec::with_capacity(m.len());
                let mut i = 0;
                while i < m.len() {
                    if m[i] == b'\r' && m.get(i + 1) == Some(&b'\n') {
                        out.extend_from_slice(to);
                        i += 2;
                    } else {
                        out.push(m[i]);
                        i += 1;
                    }
                }
                *m = out;
            }
            // Overwrite a byte run with one repeated byte (NUL, '=', '-', space).
            _ => {
                let (a, b) = rng.range(len);
                let b = b.min(a + 256);
                let c = [0u8, b'=', b'-', b' '][rng.below(4)];
                m[a..b].fill(c);
            }
        }
    }
}

fn policy() -> Policy {
    Policy {
        staff: StaffPolicy {
            staff_domains: vec!["example-ca.test".into()],
            staff_addresses: vec![],
            trusted_authserv_ids: vec!["mx.example-ca.test".into()],
        },
        rules: RuleSet::shipped(),
        limits: Limits::default(),
        canary_keys: Vec::new(),
    }
}

#[test]
fn twenty_thousand_mutated_fixtures_neither_panic_nor_lose_the_message() {
    let seed = std::env::var("MUTATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let only: Option<usize> = std::env::var("MUTATION_ONLY")
        .ok()
        .and_then(|s| s.parse().ok());
    let pool = fixtures();
    let mut rng = Rng(seed | 1);
    let mut engine = Engine::new(Settings::default());
    let now = cprwatch::domain::timefmt::parse("2026-12-01T00:00:00Z").expect("time");
    let folders = [FolderRole::Inbox, FolderRole::Junk, FolderRole::Sent];
    let mut batch = Vec::with_capacity(BATCH);
    let mut distinct = std::collections::HashSet::new();
    for n in 0..MESSAGES {
        let mut m = pool[rng.below(pool.len())].clone();
        mutate(&mut rng, &mut m, &pool);
        let folder = folders[rng.below(3)];
        if only.is_some_and(|o| o != n) {
            continue;
        }
        // Each message alone first, so a panic names the one that caused it.
        let meta = SourceMeta {
            folder,
            position: Some(cprwatch::domain::ids::Position::from_stored(&format!(
                "mutation:{seed}/{n}"
            ))),
            server_time: None,
        };
        let result = std::panic::catch_unwind(|| {
            cprwatch::pipeline::prepare(RawMessage { raw: m, meta }, policy_ref(), now, false)
        });
        let prepared = match result {
            Ok(p) => p,
            Err(_) => panic!(
                "mutation {n} of seed {seed} panicked (MUTATION_SEED={seed} MUTATION_ONLY={n})"
            ),
        };
        let problems = prepared.facts.as_ref().map(|f| f.problems.as_slice());
        assert!(
            !problems
                .unwrap_or_default()
                .iter()
                .any(|p| p.contains("MIME parser failed")),
            "the parser panicked on mutation {n} of seed {seed} (MUTATION_SEED={seed} MUTATION_ONLY={n})"
        );
        distinct.insert(prepared.content_hash().to_string());
        batch.push(
            prepared
                .facts
                .expect("a new message's facts are worked out"),
        );
        if batch.len() == BATCH {
            engine.receive(std::mem::take(&mut batch), now);
            engine.tick(now);
        }
    }
    engine.receive(batch, now);
    engine.tick(now);
    // Every distinct message is recorded, whatever was done to it.
    assert_eq!(engine.message_count(), distinct.len());
    let p = engine.project_at(now);
    if only.is_none() {
        assert!(!p.cases.is_empty());
    }
}

/// One shared policy: the rule set compiles once.
fn policy_ref() -> &'static Policy {
    static P: std::sync::OnceLock<Policy> = std::sync::OnceLock::new();
    P.get_or_init(policy)
}
