//! Two `cprwatch run` instances on one PostgreSQL store (issue 17), on real parts (PostgreSQL,
//! Dovecot, Postfix on loopback): one leads, the other follows and takes over within the
//! lease's TTL when the leader is killed — mid-sync over IMAP, mid-delivery of alerts — nothing
//! lost, no message recorded twice, no alert sent more than once more; a leader paused past its
//! lease (SIGSTOP) writes nothing when it wakes and follows; both ride out a PostgreSQL restart.
//!
//! The waits poll the store or `status` with a bound; none sleeps for a deadline (the lease's
//! expiry is the server's clock, and what the tests measure).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cprwatch::store::{PostgresStore, Store};
use support::dovecot::Dovecot;
use support::postfix::Postfix;
use support::postgres::Postgres;
use support::service::{Cprwatch, header, inbox, report};
use time::OffsetDateTime;

/// The lease of these tests: short, so a takeover is quick to see.
const TTL_S: u64 = 3;

const PASSWORD_ENV: &str = "CPRWATCH_TEST_PG_PASSWORD";

fn config() -> String {
    "[desk]\nstaff_domains = [\"example-ca.test\"]\n[clock]\ntick_seconds = 1\n".to_string()
}

/// Instance `name` on `pg`, watching `maildir` (the first instance's) when given.
fn instance(pg: &Postgres, name: &str, maildir: Option<&std::path::Path>) -> Cprwatch {
    instance_with(pg, name, maildir, "", Vec::new())
}

/// As [`instance`], with `extra` added to the configuration and `env` to the environment.
fn instance_with(
    pg: &Postgres,
    name: &str,
    maildir: Option<&std::path::Path>,
    extra: &str,
    mut env: Vec<(String, String)>,
) -> Cprwatch {
    let store = format!(
        "[store]\nurl = \"{}\"\npassword_env = \"{PASSWORD_ENV}\"\ninstance = \"{name}\"\n\
         lease_ttl = \"{TTL_S}s\"\n",
        pg.url()
    );
    env.push((PASSWORD_ENV.into(), pg.password().into()));
    Cprwatch::with_store(&format!("{}{extra}", config()), &store, maildir, env)
}

fn leader_of(w: &Cprwatch) -> Option<String> {
    let v = w.status_json();
    if v["leader"]["live"] == true {
        v["leader"]["instance"].as_str().map(str::to_string)
    } else {
        None
    }
}

/// Wait until `status` (through `w`) names a live leader other than `not`; returns it and when.
fn wait_leader(w: &Cprwatch, not: Option<&str>, within: Duration) -> (String, Instant) {
    let start = Instant::now();
    loop {
        if let Some(l) = leader_of(w)
            && Some(l.as_str()) != not
        {
            return (l, Instant::now());
        }
        assert!(
            start.elapsed() < within,
            "no leader (other than {not:?}) within {within:?}\nlog:\n{}",
            w.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn cases(w: &Cprwatch) -> usize {
    w.status_json()["cases"].as_array().map_or(0, Vec::len)
}

#[test]
fn two_instances_one_leads_and_the_other_takes_over_when_it_is_killed() {
    let pg = Postgres::start();
    let mut a = instance(&pg, "host-a", None);
    let mut b = instance(&pg, "host-b", Some(&a.dir.path().join("mail")));
    let now = OffsetDateTime::now_utc();
    a.deliver(
        "r1",
        &report(
            "r1@r.test",
            "one@reporter.test",
            "Key compromised",
            "A report.",
            now,
        ),
    );
    a.start();
    let (first, _) = wait_leader(&a, None, Duration::from_secs(30));
    assert_eq!(first, "host-a");
    b.start();
    a.wait_status(Duration::from_secs(30), "the report in a case", |v| {
        v["cases"].as_array().is_some_and(|c| c.len() == 1)
    });
    // b follows: it serves status from the same tables, and a still leads.
    assert_eq!(cases(&b), 1);
    std::thread::sleep(Duration::from_secs(TTL_S));
    assert_eq!(leader_of(&b).as_deref(), Some("host-a"));

    let killed = Instant::now();
    a.kill();
    let (second, at) = wait_leader(&b, Some("host-a"), Duration::from_secs(30));
    assert_eq!(second, "host-b");
    let took = at - killed;
    assert!(
        took <= Duration::from_secs(TTL_S) + Duration::from_secs(2),
        "took over after {took:?}"
    );
    // The new leader reads the mailbox on: a second report is recorded once.
    a.deliver(
        "r2",
        &report(
            "r2@r.test",
            "two@reporter.test",
            "Misissued",
            "Another.",
            now,
        ),
    );
    b.wait_status(
        Duration::from_secs(30),
        "the second report in a case",
        |v| v["cases"].as_array().is_some_and(|c| c.len() == 2),
    );
    b.stop();
    let (code, out) = b.command(&["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("hash chain intact"), "{out}");
    assert!(out.contains("equal a re-derivation from the log"), "{out}");
    // The tables on PostgreSQL are compared too: a deadline moved behind the log's back is found.
    pg.client()
        .batch_execute("UPDATE clocks SET deadline = deadline + 3600")
        .unwrap();
    let (code, out) = b.command(&["verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("tables differ"), "{out}");
}

fn count(db: &mut postgres::Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).unwrap().get(0)
}

/// The lease row: (holder, epoch).
fn lease(db: &mut postgres::Client) -> (String, i64) {
    let r = db
        .query_one(
            "SELECT holder, epoch FROM leases WHERE name = 'leader'",
            &[],
        )
        .unwrap();
    (r.get(0), r.get(1))
}

/// Every event's `event` object in log order, and the head hash, read through a store of the
/// test's own (it decodes the stored bodies).
fn events(pg: &Postgres) -> (Vec<serde_json::Value>, String) {
    let store = PostgresStore::open(&pg.url(), pg.password(), None).expect("open the store");
    let all = store.events().expect("read the events");
    let head = all.last().map(|e| e.hash.clone()).unwrap_or_default();
    let events = all
        .iter()
        .map(|e| serde_json::from_slice::<serde_json::Value>(&e.body).unwrap()["event"].clone())
        .collect();
    (events, head)
}

fn of_type<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

/// Wait until the instance's log, from byte `from` on, contains `needle`.
fn wait_log(w: &Cprwatch, from: usize, needle: &str, within: Duration) {
    let start = Instant::now();
    loop {
        let log = w.log();
        if log.get(from..).is_some_and(|l| l.contains(needle)) {
            return;
        }
        assert!(
            start.elapsed() < within,
            "the log does not say {needle:?} within {within:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Poll `what` every few milliseconds until `done` holds for it, up to `within`; returns it.
fn poll<T: std::fmt::Debug>(
    what: &str,
    within: Duration,
    mut get: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let start = Instant::now();
    loop {
        let v = get();
        if done(&v) {
            return v;
        }
        assert!(
            start.elapsed() < within,
            "{what}: not within {within:?} (last: {v:?})"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Two instances on `pg` (the second watching the first's Maildir), each with `extra` and
/// `env`: `a` started and leading, `b` started and following it.
fn a_leads_b_follows(
    pg: &Postgres,
    extra: &str,
    env: Vec<(String, String)>,
) -> (Cprwatch, Cprwatch) {
    let mut a = instance_with(pg, "host-a", None, extra, env.clone());
    let mut b = instance_with(pg, "host-b", Some(&a.dir.path().join("mail")), extra, env);
    a.start();
    let (first, _) = wait_leader(&a, None, Duration::from_secs(30));
    assert_eq!(first, "host-a");
    b.start();
    wait_log(&b, 0, "leader=host-a", Duration::from_secs(30));
    (a, b)
}

const IMAP_PASSWORD_ENV: &str = "CPRWATCH_TEST_IMAP_PASSWORD";

/// A report as it sits in the IMAP INBOX; `n` makes each one distinct.
fn imap_report(n: usize) -> Vec<u8> {
    format!(
        "Received: from relay.reporter.test by mx.example-ca.test; Mon, 02 Mar 2026 10:00:00 +0000\r\n\
         From: Reporter {n} <reporter{n}@reporter.test>\r\nTo: cpr@example-ca.test\r\n\
         Subject: Key compromise report {n}\r\nMessage-ID: <imap-{n}@reporter.test>\r\n\r\n\
         The private key of https://crt.sh/?id={} was published and is compromised.\r\n",
        1_000_000 + n
    )
    .into_bytes()
}

#[test]
fn a_leader_killed_mid_sync_over_imap_leaves_the_rest_to_the_follower_each_message_once() {
    const N: usize = 300;
    let pg = Postgres::start();
    let dovecot = Dovecot::start();
    // Small fetches: many commits, so the kill falls between two of them.
    let mailbox = format!(
        "[[mailbox]]\nname = \"cpr\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
         username = \"cpr\"\npassword_env = \"{IMAP_PASSWORD_ENV}\"\npoll_seconds = 1\n\
         fetch_batch = 10\nfolders = [{{ name = \"INBOX\", role = \"inbox\" }}]\n",
        dovecot.imap_port()
    );
    let env = vec![(IMAP_PASSWORD_ENV.to_string(), "cpr-secret".to_string())];
    let (mut a, mut b) = a_leads_b_follows(&pg, &mailbox, env);
    // Delivered once both run: the leader syncs them while the follower watches.
    let t0 = OffsetDateTime::now_utc() - time::Duration::hours(1);
    let mail: Vec<(Vec<u8>, OffsetDateTime)> = (0..N)
        .map(|n| (imap_report(n), t0 + time::Duration::seconds(n as i64)))
        .collect();
    dovecot.append_many("cpr", "INBOX", &mail);

    let mut db = pg.client();
    let recorded = |db: &mut postgres::Client| count(db, "SELECT count(*) FROM messages");
    let before = poll(
        "the leader records a sixth of the messages",
        Duration::from_secs(60),
        || recorded(&mut db),
        |n| *n as usize >= N / 6,
    );
    let killed = Instant::now();
    a.kill();
    let at_kill = recorded(&mut db);
    assert!(
        (at_kill as usize) < N,
        "the leader synced all {N} before it was killed ({before} when seen): not mid-sync"
    );
    let (second, at) = wait_leader(&b, Some("host-a"), Duration::from_secs(30));
    assert_eq!(second, "host-b");
    let took = at - killed;
    assert!(
        took <= Duration::from_secs(TTL_S + 2),
        "took over after {took:?}"
    );
    poll(
        "the new leader records the rest",
        Duration::from_secs(90),
        || recorded(&mut db),
        |n| *n as usize >= N,
    );
    // Cases and clocks derived from every message before the service stops.
    b.wait_status(Duration::from_secs(60), "a case per report", |v| {
        v["cases"].as_array().is_some_and(|c| c.len() == N)
    });
    b.stop();
    eprintln!("killed at {at_kill} of {N} recorded; host-b led {took:?} after the kill");

    let (events, _) = events(&pg);
    let received = of_type(&events, "message_received");
    let hashes: BTreeSet<&str> = received
        .iter()
        .filter_map(|e| e["facts"]["content_hash"].as_str())
        .collect();
    let ids: BTreeSet<&str> = received
        .iter()
        .filter_map(|e| e["facts"]["message_id"].as_str())
        .collect();
    assert_eq!(received.len(), N, "each message recorded exactly once");
    assert_eq!(hashes.len(), N);
    assert_eq!(ids.len(), N);
    assert_eq!(count(&mut db, "SELECT count(*) FROM messages"), N as i64);
    assert_eq!(count(&mut db, "SELECT count(*) FROM positions"), N as i64);
    assert_eq!(
        count(&mut db, "SELECT max(last_uid) FROM imap_checkpoints"),
        N as i64,
        "the checkpoint reached the last UID"
    );
    let (code, out) = b.command(&["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("hash chain intact"), "{out}");
}

#[test]
fn a_leader_killed_mid_delivery_leaves_the_rest_to_the_follower_no_alert_sent_more_than_twice() {
    const N: usize = 60;
    let pg = Postgres::start();
    let dovecot = Dovecot::start();
    let postfix = Postfix::start(&dovecot.dir().join("mail"));
    // Each breach its own alert (flood above N), to desk only; no receipts.
    let outbound = format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
         from = \"cprwatch@example-ca.test\"\ntimeout = \"10s\"\n\
         [receipts]\nenabled = false\n[alerts]\nflood = {}\n\
         [[alerts.route]]\nto = [\"desk@example-ca.test\"]\n\
         levels = [\"warning\", \"breach\", \"reminder\", \"advisory\", \"digest\", \"delivery\"]\n",
        postfix.smtp_port(),
        N + 1
    );
    let (mut a, mut b) = a_leads_b_follows(&pg, &outbound, Vec::new());
    // Breached an hour ago, each its own case: one breach alert each.
    let now = OffsetDateTime::now_utc();
    for i in 0..N {
        a.deliver(
            &format!("r{i}"),
            &report(
                &format!("d{i}@r.test"),
                &format!("Reporter {i} <d{i}@reporter.test>"),
                &format!("Delivery-{i:03}"),
                "Hello, one of your certificates has a problem. Please look into it.",
                now - time::Duration::hours(25) + time::Duration::seconds(i as i64),
            ),
        );
    }

    let mut db = pg.client();
    let sent = |db: &mut postgres::Client| {
        let r = db
            .query_one(
                "SELECT count(*) FILTER (WHERE state = 'sent'), count(*) FROM outbox",
                &[],
            )
            .unwrap();
        (r.get::<_, i64>(0), r.get::<_, i64>(1))
    };
    poll(
        "the leader's courier delivers a sixth of the alerts",
        Duration::from_secs(60),
        || sent(&mut db),
        |(s, _)| *s as usize >= N / 6,
    );
    let killed = Instant::now();
    a.kill();
    let (sent_at_kill, queued_at_kill) = sent(&mut db);
    assert!(
        sent_at_kill < queued_at_kill || (queued_at_kill as usize) < N,
        "every alert was sent before the kill ({sent_at_kill} of {queued_at_kill}): not \
         mid-delivery"
    );
    let (second, at) = wait_leader(&b, Some("host-a"), Duration::from_secs(30));
    assert_eq!(second, "host-b");
    let took = at - killed;
    assert!(
        took <= Duration::from_secs(TTL_S + 2),
        "took over after {took:?}"
    );
    let (_, queued) = poll(
        "the new leader delivers the rest",
        Duration::from_secs(90),
        || sent(&mut db),
        |(s, q)| *q as usize >= N && s == q,
    );
    assert_eq!(queued as usize, N, "one alert per breached report");
    let outbox_ids: BTreeSet<String> = db
        .query("SELECT message_id FROM outbox", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(outbox_ids.len(), N);

    // Every Message-Id in desk's INBOX, once Postfix has handed over all of them (and a moment
    // more, for a second copy still on its way).
    let delivered = |within| -> BTreeMap<String, usize> {
        let mut by_id = BTreeMap::new();
        for m in inbox(&dovecot, "desk", "X-CPR-Level", within) {
            *by_id
                .entry(header(&m, "Message-ID").unwrap_or_default())
                .or_insert(0) += 1;
        }
        by_id
    };
    poll(
        "every alert in desk's INBOX",
        Duration::from_secs(60),
        || delivered(Duration::from_secs(10)).len(),
        |n| *n >= N,
    );
    std::thread::sleep(Duration::from_secs(2));
    let by_id = delivered(Duration::ZERO);
    b.stop();
    let twice = by_id.values().filter(|n| **n == 2).count();
    eprintln!(
        "killed at {sent_at_kill} of {queued_at_kill} sent; host-b led {took:?} after the \
         kill; {twice} alert(s) delivered twice"
    );
    assert!(
        by_id.values().all(|n| (1..=2).contains(n)),
        "each alert at least once, at most twice: {by_id:?}"
    );
    let inbox_ids: BTreeSet<String> = by_id.keys().cloned().collect();
    assert_eq!(
        inbox_ids, outbox_ids,
        "the Message-Ids delivered are the alerts decided"
    );

    let (events, _) = events(&pg);
    let queued_events = of_type(&events, "mail_queued");
    let decided: BTreeSet<String> = queued_events
        .iter()
        .map(|e| format!("{}:{}", e["kind"], e["clocks"]))
        .collect();
    assert_eq!(queued_events.len(), N, "no alert decided twice");
    assert_eq!(decided.len(), N, "no clock's stage alerted twice");
    let sent_events = of_type(&events, "mail_sent");
    let sent_ids: BTreeSet<&str> = sent_events
        .iter()
        .filter_map(|e| e["message_id"].as_str())
        .collect();
    assert_eq!(sent_events.len(), N, "each alert recorded sent once");
    assert_eq!(sent_ids.len(), N);
    let (code, out) = b.command(&["verify"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_leader_paused_past_its_lease_writes_nothing_when_resumed_and_follows() {
    const BULK: usize = 100;
    let pg = Postgres::start();
    let now = OffsetDateTime::now_utc();
    let r = |n: usize| {
        report(
            &format!("p{n}@r.test"),
            &format!("p{n}@reporter.test"),
            &format!("Paused-{n}"),
            "A report.",
            now,
        )
    };
    let (mut a, mut b) = a_leads_b_follows(&pg, "", Vec::new());
    a.deliver("p0", &r(0));
    a.wait_status(Duration::from_secs(30), "the first report in a case", |v| {
        v["cases"].as_array().is_some_and(|c| c.len() == 1)
    });
    // Paused in the middle of reading a bulk of mail: when it wakes it has work in hand that
    // it goes on to commit, after the lease is gone.
    for n in 1..=BULK {
        a.deliver(&format!("p{n}"), &r(n));
    }
    let mut db = pg.client();
    let recorded = |db: &mut postgres::Client| count(db, "SELECT count(*) FROM messages");
    poll(
        "the leader reads the bulk",
        Duration::from_secs(60),
        || recorded(&mut db),
        |n| *n > 1,
    );
    let paused = Instant::now();
    a.signal("STOP");
    let at_pause = recorded(&mut db);
    let (second, at) = wait_leader(&b, Some("host-a"), Duration::from_secs(30));
    assert_eq!(second, "host-b");
    assert!(
        at - paused <= Duration::from_secs(TTL_S + 2),
        "took over after {:?}",
        at - paused
    );
    // Mail while the old leader sleeps: the new one records it; the old one sees it too when
    // it wakes, and must not record it.
    let last = BULK + 1;
    a.deliver(&format!("p{last}"), &r(last));
    b.wait_status(Duration::from_secs(60), "every report in a case", |v| {
        v["cases"].as_array().is_some_and(|c| c.len() == last + 1)
    });
    let (before, head) = events(&pg);

    let log_at = a.log().len();
    a.signal("CONT");
    wait_log(&a, log_at, "this instance follows", Duration::from_secs(30));
    // Its sources poll every second: give them a round to try writing.
    std::thread::sleep(Duration::from_secs(2));
    assert!(a.running(), "{}", a.log());
    let (after, head_after) = events(&pg);
    assert_eq!(
        (after.len(), &head_after),
        (before.len(), &head),
        "nothing written after the lease was lost"
    );
    assert_eq!(of_type(&after, "message_received").len(), last + 1);
    assert_eq!(leader_of(&a).as_deref(), Some("host-b"));
    let resumed = &a.log()[log_at..];
    assert!(
        resumed.contains("the lease was taken over") && resumed.contains("leader=host-b"),
        "the old leader noticed it lost the lease, and follows host-b:\n{resumed}"
    );
    // What it tried to write when it woke (the work in hand), the fence refused: not a
    // conflict with what the new leader wrote meanwhile, which would be luck.
    let refused: Vec<&str> = resumed.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(
        refused
            .iter()
            .all(|l| l.contains("no longer holds the leader lease")),
        "refused by something other than the fence:\n{resumed}"
    );
    eprintln!(
        "paused at {at_pause} of {} messages recorded; on waking the fence refused {} of its \
         writes",
        last + 1,
        refused.len()
    );

    // The old leader leads again once the new one dies, and records on.
    let killed = Instant::now();
    b.kill();
    let (third, at) = wait_leader(&a, Some("host-b"), Duration::from_secs(30));
    assert_eq!(third, "host-a");
    assert!(at - killed <= Duration::from_secs(TTL_S + 2));
    a.deliver("p-after", &r(last + 1));
    a.wait_status(Duration::from_secs(30), "the last report in a case", |v| {
        v["cases"].as_array().is_some_and(|c| c.len() == last + 2)
    });
    a.stop();
    let (events, _) = events(&pg);
    let received = of_type(&events, "message_received");
    let hashes: BTreeSet<&str> = received
        .iter()
        .filter_map(|e| e["facts"]["content_hash"].as_str())
        .collect();
    assert_eq!((received.len(), hashes.len()), (last + 2, last + 2));
    let (code, out) = a.command(&["verify"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn both_instances_reconnect_when_postgresql_restarts() {
    let mut pg = Postgres::start();
    let now = OffsetDateTime::now_utc();
    let r = |n: usize| {
        report(
            &format!("g{n}@r.test"),
            &format!("g{n}@reporter.test"),
            &format!("Restart-{n}"),
            "A report.",
            now,
        )
    };
    let (mut a, mut b) = a_leads_b_follows(&pg, "", Vec::new());
    a.deliver("g1", &r(1));
    a.wait_status(Duration::from_secs(30), "the first report in a case", |v| {
        v["cases"].as_array().is_some_and(|c| c.len() == 1)
    });
    let before = lease(&mut pg.client());

    pg.restart();
    a.deliver("g2", &r(2));
    // Through the follower's configuration: its status works against the restarted server.
    b.wait_status(
        Duration::from_secs(60),
        "the report after the restart",
        |v| v["cases"].as_array().is_some_and(|c| c.len() == 2),
    );
    let (leader, _) = wait_leader(&b, None, Duration::from_secs(30));
    let after = lease(&mut pg.client());
    assert_eq!(after.0, leader);
    eprintln!(
        "lease before the restart {before:?}, after {after:?}: {}",
        if after == before {
            "one leader throughout"
        } else {
            "taken over"
        }
    );
    assert!(a.running() && b.running(), "{}\n{}", a.log(), b.log());

    // Whichever follows has reconnected too: stopped cleanly, the leader hands over at once
    // and the other records on.
    let other = if leader == "host-a" {
        "host-b"
    } else {
        "host-a"
    };
    {
        let (leading, following) = if leader == "host-a" {
            (&mut a, &b)
        } else {
            (&mut b, &a)
        };
        leading.stop();
        let (next, _) = wait_leader(following, Some(&leader), Duration::from_secs(10));
        assert_eq!(next, other);
    }
    // Into the Maildir both watch (the first instance's).
    a.deliver("g3", &r(3));
    a.wait_status(
        Duration::from_secs(30),
        "the report after the handover",
        |v| v["cases"].as_array().is_some_and(|c| c.len() == 3),
    );
    a.stop();
    b.stop();
    let (code, out) = a.command(&["verify"]);
    assert_eq!(code, 0, "{out}");
    let (events, _) = events(&pg);
    assert_eq!(of_type(&events, "message_received").len(), 3);
}
