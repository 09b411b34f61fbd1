//! Failover time on a real PostgreSQL: `cargo bench --bench failover`
//! (env `BENCH_FAILOVER_ROUNDS`, default 20; `BENCH_FAILOVER_TTLS`, lease TTLs in seconds,
//! default `15,3`: the default `lease_ttl`, the contract, and a short one).
//!
//! One private PostgreSQL on loopback and two `cprwatch run` instances (this build) sharing it.
//! Each round kills the leader with SIGKILL and times from the kill until the other instance
//! holds a live lease, read from the `leases` table directly (one connection of the bench's
//! own, polled every 10 ms); then the killed instance is started again and waits as the
//! follower. Before each kill the bench waits a random part of a renewal period (TTL/3), so the
//! kills fall anywhere between two renewals, as a crash would.
//!
//! Printed per TTL: median and max (and min) of the failover time; the lease the killed leader
//! still held at the kill (by the server's clock: the part no follower may cut short, since the
//! lease is only taken once it expired); and the rest, failover minus that lease, which is the
//! follower's own reaction (it asks again right after the lease runs out).
//!
//! Under `cargo test --all-targets` (no `--bench` flag) it runs small, as a smoke test: 2 kills
//! with a 2-second TTL.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use cprwatch::store::postgres_connect::connect;
use support::postgres::Postgres;
use support::service::Cprwatch;

const PASSWORD_ENV: &str = "CPRWATCH_BENCH_PG_PASSWORD";

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let rounds = std::env::var("BENCH_FAILOVER_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if benching { 20 } else { 2 });
    let ttls: Vec<u64> = std::env::var("BENCH_FAILOVER_TTLS")
        .ok()
        .map(|s| s.split(',').filter_map(|t| t.trim().parse().ok()).collect())
        .unwrap_or_else(|| if benching { vec![15, 3] } else { vec![2] });
    let t = Instant::now();
    let pg = Postgres::start();
    eprintln!("PostgreSQL up in {:.1}s", t.elapsed().as_secs_f64());
    for ttl in ttls {
        failover(&pg, Duration::from_secs(ttl), rounds);
    }
}

/// Instance `name` on `pg` with lease TTL `ttl`; the second watches the first's Maildir.
fn instance(
    pg: &Postgres,
    name: &str,
    ttl: Duration,
    maildir: Option<&std::path::Path>,
) -> Cprwatch {
    let store = format!(
        "[store]\nurl = \"{}\"\npassword_env = \"{PASSWORD_ENV}\"\ninstance = \"{name}\"\n\
         lease_ttl = \"{}s\"\n",
        pg.url(),
        ttl.as_secs()
    );
    Cprwatch::with_store(
        "[desk]\nstaff_domains = [\"example-ca.test\"]\n",
        &store,
        maildir,
        vec![(PASSWORD_ENV.into(), pg.password().into())],
    )
}

/// The lease as the server sees it now: holder, whether it is live, and how long it still runs;
/// `None` before the first instance made the schema or took it.
fn lease(db: &mut postgres::Client) -> Option<(String, bool, Duration)> {
    db.query_opt(
        "SELECT holder, expires_at > now(), \
         greatest(extract(epoch FROM expires_at - now()), 0)::float8 \
         FROM leases WHERE name = 'leader'",
        &[],
    )
    .ok()
    .flatten()
    .map(|r| (r.get(0), r.get(1), Duration::from_secs_f64(r.get(2))))
}

/// Poll the lease every 10 ms until `name` holds it live; how long that took.
fn wait_holder(db: &mut postgres::Client, name: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if let Some((holder, true, _)) = lease(db)
            && holder == name
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{name} does not hold the lease within {within:?}: {:?}",
            lease(db)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Wait until `w`'s log, from byte `from` on, says it follows `leader`.
fn wait_following(w: &Cprwatch, from: usize, leader: &str) {
    let needle = format!("leader={leader}");
    let start = Instant::now();
    while !w.log().get(from..).is_some_and(|l| l.contains(&needle)) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "does not follow {leader}:\n{}",
            w.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A random duration in `[0, max)`.
fn jitter(max: Duration) -> Duration {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).expect("random bytes");
    max.mul_f64((u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64)
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// `rounds` kills of the leader with lease TTL `ttl`; prints the figures.
fn failover(pg: &Postgres, ttl: Duration, rounds: usize) {
    let mut db = connect(&pg.url(), pg.password(), None).expect("the bench's own connection");
    let a = instance(pg, "host-a", ttl, None);
    let b = instance(pg, "host-b", ttl, Some(&a.dir.path().join("mail")));
    let names = ["host-a", "host-b"];
    let mut w = [a, b];
    // A lease left by an earlier series (released when it stopped) is free at once.
    w[0].start();
    wait_holder(&mut db, names[0], Duration::from_secs(60));
    w[1].start();
    wait_following(&w[1], 0, names[0]);
    let mut took = Vec::with_capacity(rounds);
    let mut left = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (leader, other) = (round % 2, (round + 1) % 2);
        std::thread::sleep(jitter(ttl / 3));
        let (holder, live, remaining) = lease(&mut db).expect("a lease");
        assert!(live && holder == names[leader], "{holder} live={live}");
        w[leader].kill();
        let t = wait_holder(&mut db, names[other], ttl * 3);
        took.push(t.as_secs_f64());
        left.push(remaining.as_secs_f64());
        eprintln!(
            "  round {:2}: {} killed, {} leads after {:.3}s (lease left at the kill {:.3}s)",
            round + 1,
            names[leader],
            names[other],
            t.as_secs_f64(),
            remaining.as_secs_f64()
        );
        // Back as the follower for the next round.
        let from = w[leader].log().len();
        w[leader].start();
        wait_following(&w[leader], from, names[other]);
    }
    for x in &mut w {
        x.stop();
    }
    let mut beyond: Vec<f64> = took.iter().zip(&left).map(|(t, l)| t - l).collect();
    beyond.sort_by(f64::total_cmp);
    took.sort_by(f64::total_cmp);
    left.sort_by(f64::total_cmp);
    let n = took.len();
    println!(
        "failover (kill -9 of the leader -> the other instance holds a live lease, polled every 10 ms), lease_ttl {}s, {n} kills: median {:.2}s, max {:.2}s, min {:.2}s",
        ttl.as_secs(),
        median(&took),
        took[n - 1],
        took[0]
    );
    println!(
        "  lease still held at the kill: median {:.2}s, max {:.2}s; failover beyond it (the follower's reaction): median {:.0} ms, max {:.0} ms",
        median(&left),
        left[n - 1],
        median(&beyond) * 1000.0,
        beyond[n - 1] * 1000.0
    );
}
