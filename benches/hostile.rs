//! Hostile-input benchmark: `cargo bench --bench hostile` (env `BENCH_HOSTILE_KINDS`, a comma
//! list, to run only some kinds).
//!
//! For each kind of hostile or huge message (issue 13 §4: a 50 MB message, 10 000 MIME parts,
//! MIME nested 200 levels, a 10 MB header line, a 30 MB base64 attachment, a CSV of 100 000
//! crt.sh ids, a message of NUL bytes), generated into a temporary directory, a fresh process
//! opens a SQLite desk, notes its resident memory (the baseline), ingests the one message
//! (read, parse, extract, classify, record, derive the case and its clocks, commit) and prints
//! the time taken (wall clock, and CPU seconds of all its threads, which a busy machine does not
//! inflate), the peak RSS above the baseline, against the targets: ≤ 2 s and ≤ 256 MiB above
//! baseline, and what stays resident once the ingest is over (freed memory handed back). Under `cargo test --all-targets` (no `--bench`) the messages are
//! scaled down, as a smoke test.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

#[path = "support/desk.rs"]
mod desk;
#[path = "support/procfs.rs"]
mod procfs;

#[path = "support/hostile_mail.rs"]
mod hostile_mail;

use desk::BenchDesk;
use hostile_mail::{KINDS, Scale};

const PHASE_ENV: &str = "CPRWATCH_BENCH_HOSTILE";
const TARGET_SECS: f64 = 2.0;
const TARGET_MIB: f64 = 256.0;

fn main() {
    if let Ok(file) = std::env::var(PHASE_ENV) {
        run_one(Path::new(&file));
        return;
    }
    let benching = std::env::args().any(|a| a == "--bench");
    let scale = if benching { Scale::FULL } else { Scale::SMALL };
    let only = std::env::var("BENCH_HOSTILE_KINDS").ok();
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("own path");
    println!(
        "{:<8} {:>8} {:>8} {:>8} {:>13} {:>11} {:>8} {:>8}  target: <= {TARGET_SECS} s, <= {TARGET_MIB} MiB above baseline",
        "kind", "MB", "seconds", "cpu s", "MiB>baseline", "MiB resident", "clocks", "problems"
    );
    let mut missed = Vec::new();
    for kind in KINDS {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|k| k == kind))
        {
            continue;
        }
        let file = dir.path().join(format!("{kind}.eml"));
        let raw = hostile_mail::message(kind, &scale);
        fs::write(&file, &raw).expect("write message");
        let size = raw.len();
        drop(raw);
        let out = Command::new(&exe)
            .env(PHASE_ENV, &file)
            .output()
            .expect("run phase");
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            panic!("kind {kind} failed");
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| -> f64 {
            stdout
                .split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN)
        };
        let (secs, mib) = (field("secs="), field("rss_above_baseline_mib="));
        let verdict = if secs <= TARGET_SECS && mib <= TARGET_MIB {
            "ok"
        } else {
            missed.push(kind);
            "MISSED"
        };
        println!(
            "{kind:<8} {:>8.1} {secs:>8.2} {:>8.2} {mib:>13.0} {:>11.0} {:>8} {:>8}  {verdict}",
            size as f64 / 1e6,
            field("cpu="),
            field("rss_after_mib="),
            field("clocks="),
            field("problems="),
        );
        fs::remove_file(&file).ok();
    }
    if !missed.is_empty() {
        println!("targets missed by: {}", missed.join(", "));
    }
}

/// One kind, in its own process: the desk is opened first so its memory is the baseline.
fn run_one(file: &Path) {
    let mut bench = BenchDesk::open();
    let baseline = rss_mib();
    let now = || cprwatch::domain::timefmt::parse("2026-11-02T12:00:00Z").expect("time");
    let (t, cpu) = (Instant::now(), procfs::cpu_secs("self"));
    let summary = bench.ingest(file, now);
    let secs = t.elapsed().as_secs_f64();
    let cpu = procfs::cpu_secs("self") - cpu;
    let peak = procfs::peak_rss_mib("self");
    // What stays resident once the ingest is over: freed memory handed back first.
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe { libc::malloc_trim(0) };
    let after = rss_mib();
    assert_eq!(summary.new_messages, 1, "{summary:?}");
    let p = bench.desk.projection_at(now());
    let problems = bench
        .desk
        .engine()
        .facts()
        .first()
        .map_or(0, |m| m.problems.len());
    println!(
        "secs={secs:.3} cpu={cpu:.2} rss_above_baseline_mib={:.1} rss_after_mib={:.1} cases={} clocks={} problems={problems}",
        peak - baseline,
        after - baseline,
        p.cases.len(),
        p.clocks.len()
    );
    // The process ends here: no need to free the desk piece by piece (and a heap profiler
    // then shows what it held as "leaked").
    let BenchDesk { dir, desk } = bench;
    std::mem::forget(desk);
    drop(dir);
}

/// Resident memory now, in MiB.
fn rss_mib() -> f64 {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
