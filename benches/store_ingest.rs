//! Ingest into SQLite and into PostgreSQL on the same corpus (issue 17's figure):
//! `cargo bench --bench store_ingest` (env `BENCH_MESSAGES`, default 10000; `BENCH_ROUNDS`,
//! default 3; `BENCH_PG_FSYNC`, default `on`).
//!
//! 1. Generates (once, cached under `target/bench-corpus-<N>`, shared with `benches/ingest.rs`)
//!    the ingest benchmark's Maildir of N realistic messages.
//! 2. Starts a private PostgreSQL on loopback (`scripts/postgres.sh`, as the tests do) and turns
//!    durability back on for it (`fsync`, `full_page_writes`: the test cluster has them off),
//!    unless `BENCH_PG_FSYNC=off`; its data directory is on the same disk as the SQLite file.
//! 3. Runs the full ingest (`Desk::open` and the pipeline `cprwatch ingest` runs: parse, extract,
//!    classify, thread, clocks, hash-chained events, compressed messages, tables) into a new
//!    store, each run its own process, in interleaved pairs — SQLite, PostgreSQL, SQLite,
//!    PostgreSQL, … — so drift of the machine falls on both alike; the PostgreSQL database is
//!    emptied (its schema dropped) before each of its runs.
//! 4. Prints messages/s of every run with the CPU seconds of the ingesting process (and of the
//!    PostgreSQL server's processes during its runs), the median of each backend, and their
//!    ratio.
//!
//! Under `cargo test --all-targets` (no `--bench` flag) it runs one small pair as a smoke test.

#[path = "support/corpus.rs"]
mod corpus;
#[path = "support/procfs.rs"]
mod procfs;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use cprwatch::cli::commands::INGEST_BATCH;
use cprwatch::domain::model::FolderRole;
use support::postgres::Postgres;

const PHASE_ENV: &str = "CPRWATCH_BENCH_PHASE";
const URL_ENV: &str = "CPRWATCH_BENCH_PG_URL";
const PASSWORD_ENV: &str = "CPRWATCH_BENCH_PG_PASSWORD";

/// The desk the corpus is written for (its staff are the example CA's), without a `[store]`.
const DESK: &str = "[revocation]\nenabled = false\nrequire_verified = false\n[enrich]\nenabled = false\n[desk]\nstaff_domains = [\"example-ca.test\"]\ntrusted_authserv_ids = [\"mx.example-ca.test\"]\n";

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let number = |name: &str, default: usize| -> usize {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let n = number("BENCH_MESSAGES", if benching { 10_000 } else { 200 });
    let rounds = number("BENCH_ROUNDS", if benching { 3 } else { 1 }).max(1);
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
    for f in corpus::files(&root) {
        std::hint::black_box(std::fs::read(&f).map(|b| b.len()).unwrap_or(0));
    }

    let mut pg = Postgres::start();
    let fsync = std::env::var("BENCH_PG_FSYNC").unwrap_or_else(|_| "on".into()) != "off";
    if fsync {
        // Read after postgresql.conf and its include: the server's production defaults again.
        let auto = pg.dir().join("data/postgresql.auto.conf");
        let mut conf = std::fs::read_to_string(&auto).unwrap_or_default();
        conf.push_str("fsync = on\nfull_page_writes = on\n");
        std::fs::write(&auto, conf).expect("write postgresql.auto.conf");
        pg.restart();
    }
    let mut side = cprwatch::store::postgres_connect::connect(&pg.url(), pg.password(), None)
        .expect("connect to the bench's PostgreSQL");
    let shown: Vec<String> = [
        "fsync",
        "synchronous_commit",
        "shared_buffers",
        "server_version",
    ]
    .iter()
    .map(|s| {
        let v: String = side
            .query_one(&format!("SHOW {s}"), &[])
            .expect("SHOW")
            .get(0);
        format!("{s}={v}")
    })
    .collect();
    println!(
        "store_ingest: {n} messages, {rounds} rounds; PostgreSQL on loopback ({}); SQLite WAL, \
         synchronous=NORMAL; both on the same disk",
        shown.join(" ")
    );

    let exe = std::env::current_exe().expect("own path");
    let (mut lite, mut post) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        for backend in ["sqlite", "postgres"] {
            if backend == "postgres" {
                side.batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
                    .expect("empty the bench's database");
            }
            let server_cpu = server_cpu_secs(pg.dir());
            let out = Command::new(&exe)
                .env(PHASE_ENV, backend)
                .env("BENCH_MESSAGES", n.to_string())
                .env(URL_ENV, pg.url())
                .env(PASSWORD_ENV, pg.password())
                .env("RUST_LOG", "warn")
                .output()
                .expect("run phase");
            let stdout = String::from_utf8_lossy(&out.stdout).to_string();
            if !out.status.success() {
                eprintln!("{}", String::from_utf8_lossy(&out.stderr));
                panic!("{backend} run failed; PostgreSQL log:\n{}", pg.log());
            }
            let server_cpu = server_cpu_secs(pg.dir()) - server_cpu;
            let stdout = stdout.trim_end();
            if backend == "postgres" {
                println!("round {round}: {stdout}, the server's cpu={server_cpu:.1}s");
            } else {
                println!("round {round}: {stdout}");
            }
            let rate = stdout
                .split("msgs/s=")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .and_then(|s| s.parse::<f64>().ok())
                .expect("a rate");
            if backend == "sqlite" {
                lite.push(rate);
            } else {
                post.push(rate);
            }
        }
    }
    let (ml, mp) = (median(&mut lite), median(&mut post));
    println!(
        "median of {rounds}: SQLite {ml:.0} messages/s, PostgreSQL {mp:.0} messages/s \
         (PostgreSQL at {:.0}% of SQLite)",
        100.0 * mp / ml
    );
}

/// CPU seconds the PostgreSQL server has used so far: the postmaster's own and its reaped
/// children's (a session's backend exits with its connection, so only the postmaster's
/// `cutime`/`cstime` keep its time), plus the processes alive now except the postmaster.
fn server_cpu_secs(dir: &Path) -> f64 {
    let pid = std::fs::read_to_string(dir.join("data/postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().next().map(str::trim).map(str::to_string))
        .unwrap_or_default();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .unwrap_or("")
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // utime, stime, cutime, cstime: fields 14 to 17, the list starting at field 3.
    let own: f64 = (14..=17).filter_map(|i| fields.get(i - 3)).sum::<f64>() / 100.0;
    own + procfs::cpu_secs_of("postgres") - procfs::cpu_secs(&pid)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// One ingest of the corpus into a new store of `backend`, in this process alone.
fn run_phase(backend: &str, root: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = match backend {
        "sqlite" => "path = \"bench.sqlite\"".to_string(),
        _ => format!(
            "url = \"{}\"\npassword_env = \"{PASSWORD_ENV}\"",
            std::env::var(URL_ENV).expect("the PostgreSQL URL")
        ),
    };
    let cfg_path = dir.path().join("c.toml");
    std::fs::write(&cfg_path, format!("{DESK}[store]\n{store}\n")).expect("config");
    let config = cprwatch::config::load(&cfg_path).expect("config loads");
    let t = Instant::now();
    let mut desk = cprwatch::desk::Desk::open(&config).expect("desk");
    let summary = cprwatch::pipeline::ingest_paths(
        &mut desk,
        &[(root.to_path_buf(), FolderRole::Inbox)],
        INGEST_BATCH,
        cprwatch::domain::timefmt::now,
    )
    .expect("ingest");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{backend}: {} messages ({} new, {} events), {:.1} MB in {secs:.2}s: msgs/s={:.0} \
         cpu={:.1}s",
        summary.read,
        summary.new_messages,
        summary.events,
        summary.bytes as f64 / 1e6,
        summary.read as f64 / secs,
        procfs::cpu_secs("self")
    );
}
