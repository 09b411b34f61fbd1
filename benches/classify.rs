//! Classification on text as real inboxes send it: `cargo bench --bench classify`.
//!
//! Real problem-report mail never repeats, and anyone can mail the CPR address text made to be
//! slow, so the cost per message must not depend on how the text varies. Two kinds of text,
//! each as `repeated` (one body, every time: what a cache-friendly corpus measures) and
//! `varied` (no two bodies alike), `BENCH_REPORTS` reports of about 4 KB each (default 1 500):
//! - `prose`: sentences recombined at random from the shipped corpus (`fixtures/corpus/`) and
//!   the labelled report texts (`fixtures/labelled/`);
//! - `vocabulary`: words drawn at random from the vocabulary reports use (key, private,
//!   compromise, modulus, policy, revoke, agreement, …): dense in every rule's keywords, the
//!   worst case for a rule engine.
//!
//! For each it prints classification µs per report and per 4 KB, then ingest messages/s of the
//! same reports (as mail, through the whole pipeline into SQLite), and per kind how much slower
//! varied text is than repeated. Targets: varied within 1.5x of repeated; classification of
//! varied prose ≤ 50 µs per 4 KB report.

use std::fs;
use std::path::Path;
use std::time::Instant;

#[path = "support/desk.rs"]
mod desk;
#[path = "support/procfs.rs"]
mod procfs;

use cprwatch::reading::rules::RuleSet;
use desk::BenchDesk;

/// Words reports use, for the `vocabulary` corpus.
const VOCABULARY: &[&str] = &[
    "key",
    "private",
    "compromise",
    "compromised",
    "modulus",
    "policy",
    "revoke",
    "revocation",
    "agreement",
    "subscriber",
    "certificate",
    "precertificate",
    "issued",
    "misissued",
    "domain",
    "validation",
    "CAA",
    "exposed",
    "leaked",
    "github",
    "weak",
    "debian",
    "factor",
    "prime",
    "RSA",
    "ECDSA",
    "curve",
    "exponent",
    "OID",
    "extension",
    "encoding",
    "serial",
    "CPS",
    "CP",
    "requirement",
    "baseline",
    "report",
    "problem",
    "within",
    "hours",
    "days",
    "we",
    "not",
    "claim",
    "the",
    "a",
    "is",
    "was",
    "of",
    "to",
    "and",
    "in",
    "for",
    "this",
    "that",
    "our",
    "your",
    "please",
    "unauthorized",
    "request",
    "phishing",
    "malware",
    "fraud",
    "trademark",
    "inaccurate",
    "organization",
    "name",
    "address",
    "subject",
    "SAN",
    "CN",
    "bits",
    "1024",
    "2048",
    "ROCA",
    "fermat",
    "shared",
    "published",
    "pastebin",
    "repository",
    "committed",
    "disclosed",
    "stolen",
    "no",
    "longer",
    "control",
    "cessation",
    "operation",
    "terminated",
    "expired",
    "superseded",
    "affiliated",
    "technical",
    "constraint",
    "audit",
    "delegated",
];

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("BENCH_REPORTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if benching { 1_500 } else { 40 });
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sentences = sentences(root);
    assert!(
        sentences.len() > 100,
        "only {} sentences found under fixtures/",
        sentences.len()
    );
    let mut rng = SplitMix(0x5eed_c1a5);
    let prose = varied_report(&sentences, &mut rng);
    let words = vocabulary_report(&mut rng);
    let corpora: Vec<(&str, Vec<String>)> = vec![
        ("prose, repeated", vec![prose; n]),
        (
            "prose, varied",
            (0..n)
                .map(|_| varied_report(&sentences, &mut rng))
                .collect(),
        ),
        ("vocabulary, repeated", vec![words; n]),
        (
            "vocabulary, varied",
            (0..n).map(|_| vocabulary_report(&mut rng)).collect(),
        ),
    ];
    println!(
        "{} sentences from fixtures/; {n} reports per corpus",
        sentences.len()
    );

    let rules = RuleSet::shipped();
    let rss_before = procfs::peak_rss_mib("self");
    // Warm up: fault in the code and the rule set.
    for r in corpora[1].1.iter().take(20) {
        std::hint::black_box(rules.classify("Problem report", std::slice::from_ref(r)));
    }
    let mut rates = Vec::new();
    for (name, reports) in &corpora {
        // BENCH_ONLY=<part of a corpus name> measures that corpus alone, for profiling.
        if std::env::var("BENCH_ONLY").is_ok_and(|o| !name.contains(o.as_str())) {
            rates.push((f64::NAN, f64::NAN));
            continue;
        }
        let bytes: usize = reports.iter().map(String::len).sum();
        let t = Instant::now();
        let mut hits = 0usize;
        for r in reports {
            hits += rules
                .classify("Problem report", std::slice::from_ref(r))
                .len();
        }
        let secs = t.elapsed().as_secs_f64();
        let per = secs * 1e6 / reports.len() as f64;
        let per_4k = secs * 1e6 / (bytes as f64 / 4096.0);
        println!(
            "classify {name:<21}: {per:>9.1} us/report ({:.1} KB avg), {per_4k:>9.1} us per 4 KB, {:.2} rule hits/report",
            bytes as f64 / reports.len() as f64 / 1024.0,
            hits as f64 / reports.len() as f64
        );
        // BENCH_CLASSIFY_ONLY=1 skips ingest, for profiling classification alone.
        let rate = if std::env::var_os("BENCH_CLASSIFY_ONLY").is_some() {
            f64::NAN
        } else {
            ingest(name, reports)
        };
        rates.push((per_4k, rate));
    }
    if std::env::var_os("BENCH_CLASSIFY_ONLY").is_some() {
        // The rules' own memory: compiled patterns and the regex engine's caches, which grow
        // with the states the text asks for (bounded per pattern).
        println!(
            "peak RSS {:.0} MiB, {:.0} MiB of it after the rule set was built (classification alone)",
            procfs::peak_rss_mib("self"),
            procfs::peak_rss_mib("self") - rss_before
        );
    }
    for (kind, i) in [("prose", 0), ("vocabulary", 2)] {
        println!(
            "{kind:<10}: varied is {:.2}x slower than repeated to classify, {:.2}x to ingest (target <= 1.5x)",
            rates[i + 1].0 / rates[i].0,
            rates[i].1 / rates[i + 1].1
        );
    }
}

/// Ingest the reports as mail through the whole pipeline into a new SQLite store; messages/s.
fn ingest(name: &str, reports: &[String]) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("mail");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(maildir.join(sub)).expect("maildir");
    }
    let tag = name.replace([',', ' '], "");
    for (i, body) in reports.iter().enumerate() {
        let msg = format!(
            "Received: from mx.reporter.test by mx.example-ca.test; Mon, 04 May 2026 08:{:02}:{:02} +0000\r\n\
             Message-ID: <bench-{tag}-{i}@reporter.test>\r\n\
             From: reporter{i}@reporter.test\r\n\
             To: cpr@example-ca.test\r\n\
             Subject: Problem report {i} https://crt.sh/?id={}\r\n\
             Date: Mon, 04 May 2026 08:00:00 +0000\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
            (i / 60) % 60,
            i % 60,
            1_000_000 + i
        );
        fs::write(maildir.join("cur").join(format!("{i}.eml:2,")), msg).expect("write");
    }
    let mut bench = BenchDesk::open();
    let t = Instant::now();
    let summary = bench.ingest(&maildir, cprwatch::domain::timefmt::now);
    let secs = t.elapsed().as_secs_f64();
    let rate = summary.read as f64 / secs;
    println!(
        "ingest   {name:<21}: {rate:>9.0} messages/s ({} messages in {secs:.2} s)",
        summary.read
    );
    rate
}

/// Sentences of the shipped corpus and of the labelled report texts (bodies only).
fn sentences(root: &Path) -> Vec<String> {
    let mut texts = Vec::new();
    for dir in ["fixtures/corpus", "fixtures/labelled"] {
        let Ok(entries) = fs::read_dir(root.join(dir)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if let Ok(t) = fs::read_to_string(&p) {
                texts.push(t);
            }
        }
    }
    let mut out = Vec::new();
    for t in texts {
        // Messages of an mbox or single files: keep what follows each header block.
        for msg in t.split("\nFrom ") {
            let body = msg.split_once("\n\n").map_or("", |(_, b)| b);
            for s in body.split_inclusive(['.', '!', '?']) {
                let s = s.trim();
                if s.len() >= 20 && !s.starts_with("From ") {
                    out.push(s.split_whitespace().collect::<Vec<_>>().join(" "));
                }
            }
        }
    }
    out
}

fn varied_report(sentences: &[String], rng: &mut SplitMix) -> String {
    let mut out = String::new();
    while out.len() < 4096 {
        out.push_str(&sentences[rng.below(sentences.len())]);
        out.push(if rng.below(4) == 0 { '\n' } else { ' ' });
    }
    out
}

fn vocabulary_report(rng: &mut SplitMix) -> String {
    let mut out = String::new();
    while out.len() < 4096 {
        out.push_str(VOCABULARY[rng.below(VOCABULARY.len())]);
        out.push(match rng.below(12) {
            0 => '.',
            1 => '\n',
            _ => ' ',
        });
        if out.ends_with('.') {
            out.push(' ');
        }
    }
    out
}

/// A small deterministic generator, so every run measures the same text.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49eb_133c_e111);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
