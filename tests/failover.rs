//! Two `cprwatch run` instances on one PostgreSQL store (issue 17): one leads, the other
//! follows and takes over within the lease's TTL when the leader is killed, nothing lost or
//! recorded twice.

mod support;

use std::time::{Duration, Instant};

use support::postgres::Postgres;
use support::service::{Cprwatch, report};
use time::OffsetDateTime;

/// The lease of these tests: short, so a takeover is quick to see.
const TTL_S: u64 = 3;

const PASSWORD_ENV: &str = "CPRWATCH_TEST_PG_PASSWORD";

fn config() -> String {
    "[desk]\nstaff_domains = [\"example-ca.test\"]\n[clock]\ntick_seconds = 1\n".to_string()
}

/// Instance `name` on `pg`, watching `maildir` (the first instance's) when given.
fn instance(pg: &Postgres, name: &str, maildir: Option<&std::path::Path>) -> Cprwatch {
    let store = format!(
        "[store]\nurl = \"{}\"\npassword_env = \"{PASSWORD_ENV}\"\ninstance = \"{name}\"\n\
         lease_ttl = \"{TTL_S}s\"\n",
        pg.url()
    );
    Cprwatch::with_store(
        &config(),
        &store,
        maildir,
        vec![(PASSWORD_ENV.into(), pg.password().into())],
    )
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
    cprwatch::store::postgres_connect::connect(&pg.url(), pg.password(), None)
        .unwrap()
        .batch_execute("UPDATE clocks SET deadline = deadline + 3600")
        .unwrap();
    let (code, out) = b.command(&["verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("tables differ"), "{out}");
}
