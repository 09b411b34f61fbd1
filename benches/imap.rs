//! IMAP benchmark against a real Dovecot on loopback: `cargo bench --bench imap`
//! (env `BENCH_IMAP_MESSAGES`, default 20000; `BENCH_IDLE_SAMPLES`, default 200).
//!
//! 1. Loads N realistic reports into a fresh Dovecot's INBOX.
//! 2. Raw baseline: one connection fetches `BODY.PEEK[]` for every UID (in the service's batch
//!    size) and discards it: the rate the server and the client library allow.
//! 3. Full ingest: `cprwatch run` (this build) syncs the same mailbox into a new SQLite store;
//!    the rate is messages over the time from the folder task's connection (its log line) until
//!    every message is in the store with its events, like for like with the baseline, which
//!    also connects before its clock starts. The time from process start is printed too.
//!    Peak RSS of the service is read from /proc before it is stopped.
//! 4. IDLE latency: with the service idling, APPEND one report at a time and measure until its
//!    preliminary-report clock is in the store (the store is polled every 2 ms).
//!
//! Under `cargo test --all-targets` (no `--bench` flag) it runs small, as a smoke test.

#[path = "support/procfs.rs"]
mod procfs;
#[path = "../tests/support/mod.rs"]
mod support;

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cprwatch::source::imap::{Connection, TlsMode};
use support::dovecot::Dovecot;
use time::OffsetDateTime;
use time::macros::datetime;

/// When the service logged its connection, with the CPU seconds used until then: by the
/// service, by Dovecot, and by each of the service's thread names.
type Connected = (Instant, f64, f64, Vec<(String, f64)>);

fn report(n: usize) -> Vec<u8> {
    let body: String = (0..40)
        .map(|i| format!("Line {i} of the evidence for report {n}: the key was found in a public repository.\r\n"))
        .collect();
    format!(
        "Return-Path: <reporter{n}@reporter.test>\r\n\
         Received: from relay.reporter.test (relay.reporter.test [192.0.2.7])\r\n\
         \tby mx.example-ca.test (Postfix) with ESMTPS id Q{n}\r\n\
         \tfor <cpr@example-ca.test>; Mon, 02 Mar 2026 10:00:00 +0000\r\n\
         From: Reporter {n} <reporter{n}@reporter.test>\r\n\
         To: cpr@example-ca.test\r\n\
         Subject: Key compromise report {n}\r\n\
         Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n\
         Message-ID: <bench-imap-{n}@reporter.test>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         The private key of https://crt.sh/?id={} was published and is compromised.\r\n\r\n{body}",
        3_000_000 + n
    )
    .into_bytes()
}

fn at(n: usize) -> OffsetDateTime {
    datetime!(2026-03-02 10:00 UTC) + time::Duration::seconds(n as i64)
}

fn count(db: &rusqlite::Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |r| r.get(0)).unwrap_or(0)
}

/// Preliminary-report clocks started in events after `after`. Bodies are stored compactly, so
/// they are decoded here rather than looked into with SQL.
/// Wait until the cases and clocks are derived through the log's head: a derivation commits
/// the mail with its first piece, and a large one (or any in a debug build) takes more
/// commits to finish.
fn wait_derived(db: &rusqlite::Connection) {
    let start = Instant::now();
    loop {
        let through = count(
            db,
            "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'tables_through'",
        );
        if through > 0 && through == count(db, "SELECT max(seq) FROM events") {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "derivation did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn preliminary_clocks_after(db: &rusqlite::Connection, after: i64) -> i64 {
    wait_derived(db);
    let Ok(mut st) = db.prepare_cached("SELECT body, encoding, size FROM events WHERE seq > ?1")
    else {
        return 0;
    };
    let Ok(rows) = st.query_map([after], |r| {
        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?, r.get(2)?))
    }) else {
        return 0;
    };
    rows.filter_map(Result::ok)
        .filter(|(b, e, n)| {
            let body = cprwatch::store::event_body(db, b, *e, *n).expect("a sound body");
            let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            v["event"]["type"] == "clock_started" && v["event"]["kind"] == "preliminary_report"
        })
        .count() as i64
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let n = env("BENCH_IMAP_MESSAGES", if benching { 20_000 } else { 300 });
    let samples = env("BENCH_IDLE_SAMPLES", if benching { 200 } else { 10 });
    let batch = env("BENCH_FETCH_BATCH", 200);

    let mut dovecot = Dovecot::start();
    let t = Instant::now();
    let messages: Vec<(Vec<u8>, OffsetDateTime)> = (0..n).map(|i| (report(i), at(i))).collect();
    let bytes: usize = messages.iter().map(|(m, _)| m.len()).sum();
    dovecot.append_many("cpr", "INBOX", &messages);
    drop(messages);
    eprintln!(
        "loaded {n} messages ({:.1} MB) in {:.1}s",
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    // Raw baseline: the same fetches, bodies discarded.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let account = dovecot.account("cpr", TlsMode::None);
    let (raw_secs, fetched, raw_server_cpu) = rt.block_on(async {
        let mut c = Connection::connect(&account, Duration::from_secs(60))
            .await
            .unwrap();
        let server_cpu = procfs::cpu_secs_of("imap");
        let t = Instant::now();
        c.examine("INBOX").await.unwrap();
        let uids = c.uids().await.unwrap();
        let mut got = 0usize;
        for chunk in uids.chunks(batch) {
            got += c.fetch(chunk).await.unwrap().len();
        }
        let secs = t.elapsed().as_secs_f64();
        let server_cpu = procfs::cpu_secs_of("imap") - server_cpu;
        c.logout().await;
        (secs, got, server_cpu)
    });
    assert_eq!(fetched, n);
    let raw_rate = n as f64 / raw_secs;
    println!(
        "raw fetch (BODY.PEEK[] discarded): {n} messages, {:.1} MB in {raw_secs:.2}s: msgs/s={raw_rate:.0} (Dovecot's CPU: {raw_server_cpu:.2}s)",
        bytes as f64 / 1e6
    );

    // Full ingest by the service.
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("pw"), "cpr-secret\n").unwrap();
    fs::write(
        dir.path().join("c.toml"),
        format!(
            "[revocation]\nenabled = false\nrequire_verified = false\n[enrich]\nenabled = false\n[desk]\nstaff_domains = [\"example-ca.test\"]\n[store]\npath = \"s.sqlite\"\n\
             [[mailbox]]\nname = \"cpr\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
             username = \"cpr\"\npassword_file = \"pw\"\nfetch_batch = {batch}\npoll_seconds = 600\n\
             reconcile_every = \"1d\"\nfolders = [{{ name = \"INBOX\", role = \"inbox\" }}]\n",
            dovecot.imap_port()
        ),
    )
    .unwrap();
    let t = Instant::now();
    // BENCH_CPRWATCH overrides the binary, to compare two builds on the same mailbox.
    let bin =
        std::env::var("BENCH_CPRWATCH").unwrap_or_else(|_| env!("CARGO_BIN_EXE_cprwatch").into());
    let mut child = Command::new(bin)
        .args(["run", "--config"])
        .arg(dir.path().join("c.toml"))
        .env("RUST_LOG", "warn,cprwatch::service::folder_sync=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The moment the folder task is connected and starts reading: where the raw baseline's
    // clock starts too (it connects first, then times EXAMINE, SEARCH and the fetches).
    // With it, the CPU seconds used so far by the service and by Dovecot.
    let connected: Arc<OnceLock<Connected>> = Arc::default();
    {
        let connected = connected.clone();
        let stderr = child.stderr.take().unwrap();
        let pid = child.id().to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("connected; reading the folder") {
                    let _ = connected.set((
                        Instant::now(),
                        procfs::cpu_secs(&pid),
                        procfs::cpu_secs_of("imap"),
                        procfs::cpu_secs_by_thread(&pid),
                    ));
                }
            }
        });
    }
    let db_path = dir.path().join("s.sqlite");
    while !db_path.exists() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let db =
        rusqlite::Connection::open_with_flags(&db_path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let received = "SELECT count(*) FROM positions";
    while count(&db, received) < n as i64 {
        assert!(
            t.elapsed() < Duration::from_secs(1800),
            "sync did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let done = Instant::now();
    let (our_cpu, server_cpu, threads) = (
        procfs::cpu_secs(&child.id().to_string()),
        procfs::cpu_secs_of("imap"),
        procfs::cpu_secs_by_thread(&child.id().to_string()),
    );
    let whole_secs = (done - t).as_secs_f64();
    let (start, our_cpu0, server_cpu0, ref threads0) =
        *connected.get().expect("the service logged its connection");
    let (our_cpu, server_cpu) = (our_cpu - our_cpu0, server_cpu - server_cpu0);
    let sync_secs = (done - start).as_secs_f64();
    let sync_rate = n as f64 / sync_secs;
    let sync_rss = procfs::peak_rss_mib(&child.id().to_string());
    // Positions commit in the same transaction as the events, so "all positions" means all
    // derived too; checked here outside the timing.
    let clocks = preliminary_clocks_after(&db, 0);
    assert_eq!(
        clocks, n as i64,
        "every report has its preliminary-report clock"
    );
    println!(
        "full ingest (cprwatch run, IMAP -> SQLite), from connected to the last commit: {n} messages in {sync_secs:.2}s: msgs/s={sync_rate:.0} peak_rss_mib={sync_rss:.0}"
    );
    println!(
        "  from process start (adds start-up, rule compilation, store creation, login): {whole_secs:.2}s: msgs/s={:.0}",
        n as f64 / whole_secs
    );
    println!(
        "  CPU during the sync: cprwatch {our_cpu:.2}s ({:.0} us/message), Dovecot {server_cpu:.2}s; {} cores",
        our_cpu * 1e6 / n as f64,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "ratio: ingest runs at {:.1}% of the raw fetch rate (target >= 80%)",
        100.0 * sync_rate / raw_rate
    );
    bounds(n, raw_rate, our_cpu, server_cpu, threads0, &threads);

    // IDLE latency: APPEND → preliminary-report clock in the store.
    // Only rows after the last one seen are read, so each check costs microseconds and does
    // not itself delay what it measures.
    let started = |after: i64| -> i64 { preliminary_clocks_after(&db, after) };
    let mut lat: Vec<f64> = Vec::with_capacity(samples);
    let mut appended: Vec<f64> = Vec::with_capacity(samples);
    for i in 0..samples {
        dovecot.wait_for_idle("cpr");
        let head = count(&db, "SELECT coalesce(max(seq), 0) FROM events");
        let t = Instant::now();
        dovecot.append("cpr", "INBOX", &report(n + i), at(n + i));
        appended.push(t.elapsed().as_secs_f64() * 1000.0);
        while started(head) == 0 {
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "message {i} never arrived"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    println!(
        "IDLE latency (APPEND -> clock started), {samples} messages: median={:.0}ms p99={:.0}ms max={:.0}ms (target p99 < 2000ms)",
        pct(0.5),
        pct(0.99),
        lat[lat.len() - 1]
    );
    appended.sort_by(|a, b| a.total_cmp(b));
    println!(
        "  of which the APPEND itself (until the server's OK): median={:.0}ms",
        appended[appended.len() / 2]
    );
    println!(
        "peak RSS of the service over sync and IDLE: {:.0} MiB",
        procfs::peak_rss_mib(&child.id().to_string())
    );

    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "service exit {status:?}");
    dovecot.stop();
}

/// What the CPU figures allow, whatever the code's overlap: the service's busiest thread (the
/// desk, which commits every batch in order) bounds the rate whatever the number of cores, and
/// on this machine's cores the service and Dovecot share, their CPU per message bounds it too.
fn bounds(
    n: usize,
    raw_rate: f64,
    our_cpu: f64,
    server_cpu: f64,
    before: &[(String, f64)],
    after: &[(String, f64)],
) {
    let per_msg = |secs: f64| secs * 1e6 / n as f64;
    let mut used: Vec<(String, f64)> = after
        .iter()
        .map(|(name, secs)| {
            let was = before
                .iter()
                .find(|(b, _)| b == name)
                .map_or(0.0, |(_, s)| *s);
            (name.clone(), secs - was)
        })
        .filter(|(_, secs)| *secs > 0.0)
        .collect();
    used.sort_by(|a, b| b.1.total_cmp(&a.1));
    let listed: Vec<String> = used
        .iter()
        .map(|(name, secs)| format!("{name} {:.0}", per_msg(*secs)))
        .collect();
    println!("  CPU per message by thread (us): {}", listed.join(", "));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let (ours, server) = (per_msg(our_cpu), per_msg(server_cpu));
    let cpu_bound = cores * 1e6 / (ours + server);
    let target = 0.8 * raw_rate;
    println!(
        "  bound from CPU on {cores:.0} cores: {cores:.0} / ({ours:.0} + {server:.0} us) = {cpu_bound:.0} msgs/s, {:.0}% of raw; 80% of raw needs cprwatch <= {:.0} us/message here",
        100.0 * cpu_bound / raw_rate,
        cores * 1e6 / target - server
    );
    if let Some((name, secs)) = used.first() {
        let serial_bound = 1e6 / per_msg(*secs);
        println!(
            "  bound from the busiest thread ({name}) on any number of cores: {serial_bound:.0} msgs/s, {:.0}% of raw; 80% needs it <= {:.0} us/message",
            100.0 * serial_bound / raw_rate,
            1e6 / target
        );
    }
}
