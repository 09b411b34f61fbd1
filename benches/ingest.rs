//! Ingest benchmark: `cargo bench --bench ingest` (env `BENCH_MESSAGES`, default 100000).
//!
//! 1. Generates (once, cached under `target/bench-corpus-<N>`) a Maildir of N realistic
//!    messages: reports with crt.sh links, fingerprints, PEM certificates and keys, replies that
//!    thread, staff answers in `.Sent`, reports in `.Junk`, bodies seeded from the Sakai corpus
//!    shipped in `fixtures/corpus/`.
//! 2. Runs each phase in a fresh process so peak RSS (`VmHWM`) belongs to that phase alone:
//!    - `parse`: read every file and parse it with mail-parser, nothing else (the baseline);
//!    - `ingest`: the full pipeline into a new SQLite store (parse, extract, rules, staff,
//!      threading, clocks, hash-chained events, compressed raw messages).
//! 3. Prints messages/s, MB/s and peak RSS for both, and the ingest/parse ratio, and the
//!    store's size (file + WAL after a checkpoint) against the mail's; `BENCH_KEEP_STORE=path`
//!    copies the store there to look inside.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[path = "support/corpus.rs"]
mod corpus;
#[path = "support/desk.rs"]
mod desk;
#[path = "support/procfs.rs"]
mod procfs;

use corpus::files;
use desk::BenchDesk;

const PHASE_ENV: &str = "CPRWATCH_BENCH_PHASE";

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it, and
    // then a small smoke run proves the harness works without taking CI's time.
    let benching = std::env::args().any(|a| a == "--bench");
    let default = if benching { 100_000 } else { 300 };
    let n: usize = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    let root = target_dir().join(format!("bench-corpus-{n}"));
    if let Ok(phase) = std::env::var(PHASE_ENV) {
        run_phase(&phase, &root);
        return;
    }
    if !root.join("cur").is_dir() || !root.join(".done").exists() {
        let t = Instant::now();
        corpus::generate_maildir(&root, n);
        eprintln!(
            "generated {n} messages in {:.1}s at {}",
            t.elapsed().as_secs_f64(),
            root.display()
        );
    }
    // Both phases read the same files: warm the page cache first so neither pays for the disk.
    for f in files(&root) {
        std::hint::black_box(fs::read(&f).map(|b| b.len()).unwrap_or(0));
    }
    let exe = std::env::current_exe().expect("own path");
    let mut results = Vec::new();
    for phase in ["parse", "ingest"] {
        let out = Command::new(&exe)
            .env(PHASE_ENV, phase)
            .env("BENCH_MESSAGES", n.to_string())
            .output()
            .expect("run phase");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            panic!("phase {phase} failed");
        }
        print!("{stdout}");
        results.push(parse_line(&stdout));
    }
    let (parse, ingest) = (results[0], results[1]);
    println!(
        "ratio: full ingest runs at {:.1}% of mail-parser's parse-only rate ({:.0} vs {:.0} messages/s)",
        100.0 * ingest / parse,
        ingest,
        parse
    );
}

fn parse_line(stdout: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.split("msgs/s=").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn run_phase(phase: &str, root: &Path) {
    match phase {
        "parse" => {
            let t = Instant::now();
            let (mut n, mut bytes, mut parsed) = (0u64, 0u64, 0u64);
            for f in files(root) {
                let raw = fs::read(&f).expect("read");
                bytes += raw.len() as u64;
                n += 1;
                if let Some(m) = mail_parser::MessageParser::default().parse(&raw) {
                    // Touch the parts so the parse is not optimised away.
                    parsed += m.parts.len() as u64;
                }
            }
            report(
                "parse-only (read + mail-parser)",
                n,
                bytes,
                t.elapsed().as_secs_f64(),
            );
            std::hint::black_box(parsed);
        }
        "ingest" => {
            let mut bench = BenchDesk::open();
            let t = Instant::now();
            let summary = bench.ingest(root, cprwatch::domain::timefmt::now);
            let secs = t.elapsed().as_secs_f64();
            report("full ingest (cprwatch)", summary.read, summary.bytes, secs);
            let p = bench.desk.projection_at(cprwatch::domain::timefmt::now());
            let (main, wal, wal_before) = bench.store_bytes();
            // To look inside the store afterwards (sizes of tables, pages): copy it out.
            if let Some(keep) = std::env::var_os("BENCH_KEEP_STORE") {
                fs::copy(bench.dir.path().join("bench.sqlite"), &keep).expect("copy the store");
            }
            println!(
                "  -> {} new messages, {} events, {} cases, {} clocks, store {:.1} MiB \
                 (file {} + WAL {} bytes after a checkpoint; WAL {} before it) = {:.3}x the {} bytes \
                 of mail",
                summary.new_messages,
                summary.events,
                p.cases.len(),
                p.clocks.len(),
                (main + wal) as f64 / 1048576.0,
                main,
                wal,
                wal_before,
                (main + wal) as f64 / summary.bytes.max(1) as f64,
                summary.bytes
            );
        }
        other => panic!("unknown phase {other}"),
    }
}

fn report(name: &str, n: u64, bytes: u64, secs: f64) {
    println!(
        "{name}: {n} messages, {:.1} MB in {secs:.2}s: msgs/s={:.0} MB/s={:.1} peak_rss_mib={:.0}",
        bytes as f64 / 1e6,
        n as f64 / secs,
        bytes as f64 / 1e6 / secs,
        procfs::peak_rss_mib("self")
    );
}
