//! The leader lease on a real PostgreSQL server (issue 17, "Leader and follower", at the store:
//! `PostgresStore::acquire_or_renew`, `leader`, `release`, `fence`): two instances on one
//! database, only one holds the lease; renewals keep its epoch; the other takes it, with the
//! next epoch, only once it expired by the server's clock, or at once when it was released; a
//! former leader's write (its fence names the old epoch) is refused whole and never retried; the
//! lease survives a restart of the server; each fenced writer keeps its own commit token; a
//! leader process SIGSTOPped in the middle of a commit holds the events lock only until the
//! server ends its idle session, and writes nothing when it wakes.
//!
//! The waits below are for a lease to expire on the server (its `now()`, the only clock the
//! lease reads), polled through `leader()` with a bound, not deadlines of our own.

mod support;

use cprwatch::store::contract::batch;
use cprwatch::store::{
    Checkpoint, FolderState, InstanceId, LeaderInfo, PostgresStore, Store, StoreError,
};
use std::time::{Duration, Instant};
use support::postgres::Postgres;

fn id(s: &str) -> InstanceId {
    InstanceId::new(s).expect("instance id")
}

fn count(pg: &Postgres, sql: &str) -> i64 {
    pg.client().query_one(sql, &[]).unwrap().get(0)
}

/// Poll the lease until the server says it expired: at most 30 s.
fn wait_until_expired(store: &PostgresStore) -> LeaderInfo {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let l = store.leader().unwrap().expect("somebody took the lease");
        if !l.live {
            return l;
        }
        assert!(
            Instant::now() < deadline,
            "the lease has not expired after 30 s: {l:?}"
        );
        std::thread::sleep(
            l.remaining
                .clamp(Duration::from_millis(10), Duration::from_millis(200)),
        );
    }
}

fn checkpoint(uid: u32) -> Checkpoint {
    Checkpoint {
        mailbox: "cpr".into(),
        folder: "INBOX".into(),
        uidvalidity: 7,
        last_uid: uid,
    }
}

#[test]
fn one_instance_leads_and_the_other_takes_over_only_after_expiry() {
    let pg = Postgres::start();
    let (a, b) = (pg.store(), pg.store());
    let ttl = Duration::from_secs(2);
    assert_eq!(a.leader().unwrap(), None, "nobody ever took it");

    let first = a.acquire_or_renew(&id("a"), ttl).unwrap().expect("a leads");
    assert_eq!((first.holder.as_str(), first.epoch), ("a", 1));
    assert_eq!(
        b.acquire_or_renew(&id("b"), ttl).unwrap(),
        None,
        "a holds it"
    );
    let seen = b.leader().unwrap().expect("a leads");
    assert_eq!(
        (seen.holder.as_str(), seen.epoch, seen.live),
        ("a", 1, true)
    );
    assert!(
        seen.remaining <= ttl && seen.remaining > Duration::ZERO,
        "{seen:?}"
    );
    assert_eq!(seen.expires_at, first.expires_at);

    // Renewals keep the epoch and push the expiry on (the server's now() moved).
    let renewed = a
        .acquire_or_renew(&id("a"), ttl)
        .unwrap()
        .expect("a renews");
    assert_eq!(renewed.epoch, 1);
    assert!(
        renewed.expires_at > first.expires_at,
        "{renewed:?} {first:?}"
    );
    assert_eq!(b.acquire_or_renew(&id("b"), ttl).unwrap(), None);

    // a stops renewing: once the server's clock passes the expiry, b takes it, one epoch on.
    let expired = wait_until_expired(&b);
    assert_eq!((expired.holder.as_str(), expired.epoch), ("a", 1));
    assert_eq!(expired.remaining, Duration::ZERO);
    let taken = b
        .acquire_or_renew(&id("b"), ttl)
        .unwrap()
        .expect("b takes over");
    assert_eq!((taken.holder.as_str(), taken.epoch), ("b", 2));

    // a, late, renews: refused, never stolen back; b's renewal keeps epoch 2.
    assert_eq!(a.acquire_or_renew(&id("a"), ttl).unwrap(), None);
    let kept = b
        .acquire_or_renew(&id("b"), ttl)
        .unwrap()
        .expect("b renews");
    assert_eq!(kept.epoch, 2);
    let now = a.leader().unwrap().unwrap();
    assert_eq!((now.holder.as_str(), now.epoch, now.live), ("b", 2, true));
    assert_eq!(count(&pg, "SELECT count(*) FROM leases"), 1);
}

#[test]
fn a_former_leader_is_fenced_off_and_writes_nothing() {
    let pg = Postgres::start();
    let (mut a, mut b) = (pg.store(), pg.store());
    let ttl = Duration::from_secs(1);

    let lease_a = a.acquire_or_renew(&id("a"), ttl).unwrap().expect("a leads");
    a.fence(Some(lease_a.fence()));
    let mut first = batch(&["Subject: one\n\n"], &["{\"e\":1}", "{\"e\":2}"]);
    first.checkpoints = vec![checkpoint(2)];
    a.commit(first).expect("the leader writes");
    let folder = |err: Option<&str>| FolderState {
        mailbox: "cpr".into(),
        folder: "INBOX".into(),
        role: "inbox".into(),
        last_sync_at: Some("2026-11-30T14:00:00Z".into()),
        last_error: err.map(str::to_string),
        last_error_at: None,
    };
    a.set_folder_state(&folder(None))
        .expect("the leader records");
    let head = a.verify().unwrap().head;

    // Expired, nobody took it yet: a write is refused all the same.
    wait_until_expired(&a);
    let err = a
        .commit(batch(&["Subject: late\n\n"], &["{\"e\":\"late\"}"]))
        .unwrap_err();
    assert!(matches!(err, StoreError::NotLeader { .. }), "{err:?}");
    assert!(err.to_string().contains("expired and nobody"), "{err}");

    // b takes over; a still believes it leads (its fence names epoch 1).
    let lease_b = b
        .acquire_or_renew(&id("b"), ttl)
        .unwrap()
        .expect("b takes over");
    assert_eq!(lease_b.epoch, 2);
    b.fence(Some(lease_b.fence()));
    let mut stale = batch(&["Subject: two\n\n"], &["{\"e\":3}"]);
    stale.checkpoints = vec![checkpoint(9)];
    let err = a.commit(stale).unwrap_err();
    let StoreError::NotLeader {
        holder,
        epoch,
        leader,
    } = &err
    else {
        panic!("not NotLeader: {err:?}");
    };
    assert_eq!((holder.as_str(), *epoch), ("a", 1));
    assert!(leader.contains("b holds it (epoch 2)"), "{leader}");
    assert!(err.to_string().contains("now follows"), "{err}");
    assert!(
        matches!(
            a.set_folder_state(&folder(Some("stale"))),
            Err(StoreError::NotLeader { .. })
        ),
        "the folder state is fenced too"
    );

    // Nothing of a's refused writes: events, head, messages, checkpoint, folder state as they
    // were.
    assert_eq!(count(&pg, "SELECT count(*) FROM events"), 2);
    assert_eq!(count(&pg, "SELECT count(*) FROM messages"), 1);
    assert_eq!(b.verify().unwrap().head, head);
    assert_eq!(b.checkpoint("cpr", "INBOX").unwrap(), Some(checkpoint(2)));
    assert_eq!(b.folder_states().unwrap(), [folder(None)]);

    // The new leader writes on from the same head.
    let next = b.commit(batch(&[], &["{\"e\":3}"])).expect("b writes");
    assert_eq!(next[0].seq, 3);
    assert_eq!(next[0].prev_hash, head);
    // a's renewal fails: it must take the lease anew (when free) and fence with that epoch.
    assert_eq!(a.acquire_or_renew(&id("a"), ttl).unwrap(), None);
}

#[test]
fn release_hands_the_lease_over_at_once() {
    let pg = Postgres::start();
    let (a, b) = (pg.store(), pg.store());
    let ttl = Duration::from_secs(60);
    let lease = a.acquire_or_renew(&id("a"), ttl).unwrap().expect("a leads");
    assert_eq!(b.acquire_or_renew(&id("b"), ttl).unwrap(), None);

    assert!(a.release(&lease.fence()).unwrap(), "a held it");
    let gone = b.leader().unwrap().unwrap();
    assert_eq!((gone.holder.as_str(), gone.live), ("a", false));
    // No 60 s wait: b takes it now.
    let taken = b
        .acquire_or_renew(&id("b"), ttl)
        .unwrap()
        .expect("b takes over");
    assert_eq!(taken.epoch, 2);
    // A second release of a's old lease changes nothing: b keeps it.
    assert!(!a.release(&lease.fence()).unwrap());
    let now = a.leader().unwrap().unwrap();
    assert_eq!((now.holder.as_str(), now.epoch, now.live), ("b", 2, true));
}

#[test]
fn the_lease_survives_a_restart_of_the_server() {
    let mut pg = Postgres::start();
    let (mut a, b) = (pg.store(), pg.store());
    let ttl = Duration::from_secs(60);
    let lease = a.acquire_or_renew(&id("a"), ttl).unwrap().expect("a leads");
    a.fence(Some(lease.fence()));
    a.commit(batch(&["Subject: a\n\n"], &["{\"e\":1}"]))
        .unwrap();

    pg.restart();
    // Both reconnect; a renews the same lease, b still follows, a's fenced writes go on.
    let renewed = a
        .acquire_or_renew(&id("a"), ttl)
        .unwrap_or_else(|e| panic!("renew after restart: {e}\n{}", pg.log()))
        .expect("a still leads");
    assert_eq!(renewed.epoch, lease.epoch);
    assert_eq!(b.acquire_or_renew(&id("b"), ttl).unwrap(), None);
    let appended = a.commit(batch(&[], &["{\"e\":2}"])).unwrap();
    assert_eq!(appended[0].seq, 2);

    pg.restart();
    // A fenced commit as the first operation after a restart reconnects and checks the lease.
    let appended = a.commit(batch(&[], &["{\"e\":3}"])).unwrap();
    assert_eq!(appended[0].seq, 3);
    assert_eq!(b.leader().unwrap().unwrap().epoch, 1);
}

/// A trigger that runs at `COMMIT` (deferred) and, the first time only, ends its own session
/// (as in `tests/postgres_store.rs`): the client loses the connection while committing.
const CUT_AT_COMMIT: &str = "
CREATE SEQUENCE cut_count;
CREATE FUNCTION cut_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF nextval('cut_count') = 1 THEN
        PERFORM pg_terminate_backend(pg_backend_pid());
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER cut_at_commit AFTER INSERT OR UPDATE ON meta
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cut_at_commit();
";

#[test]
fn fenced_writers_keep_their_own_commit_token() {
    let pg = Postgres::start();
    let (mut a, mut b) = (pg.store(), pg.store());
    let ttl = Duration::from_secs(60);
    let tokens = || -> Vec<(String, String)> {
        pg.client()
            .query(
                "SELECT key, value FROM meta WHERE key LIKE 'last_commit%' ORDER BY key",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };

    let lease = a.acquire_or_renew(&id("a"), ttl).unwrap().unwrap();
    a.fence(Some(lease.fence()));
    a.commit(batch(&["Subject: a\n\n"], &["{\"e\":1}"]))
        .unwrap();
    assert!(a.release(&lease.fence()).unwrap());
    let lease = b.acquire_or_renew(&id("b"), ttl).unwrap().unwrap();
    b.fence(Some(lease.fence()));
    b.commit(batch(&[], &["{\"e\":2}"])).unwrap();
    let after_b = tokens();
    let keys: Vec<&str> = after_b.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["last_commit:a", "last_commit:b"],
        "one token per holder"
    );

    // b's next commit loses its session during COMMIT: it finds (or not) its own token, and
    // the batch is written once.
    pg.client().batch_execute(CUT_AT_COMMIT).unwrap();
    let appended = b
        .commit(batch(&["Subject: b\n\n"], &["{\"e\":3}", "{\"e\":4}"]))
        .unwrap_or_else(|e| panic!("commit: {e}\nServer log:\n{}", pg.log()));
    assert_eq!(appended.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
    assert_eq!(count(&pg, "SELECT count(*) FROM events"), 4);
    let after_cut = tokens();
    assert_eq!(after_cut[0], after_b[0], "a's token untouched by b");
    assert_ne!(after_cut[1], after_b[1], "b's token is its new commit's");

    // Back to a (epoch 3 now): its commit writes its own token, not b's.
    assert!(b.release(&lease.fence()).unwrap());
    let lease = a.acquire_or_renew(&id("a"), ttl).unwrap().unwrap();
    assert_eq!(lease.epoch, 3);
    a.fence(Some(lease.fence()));
    a.commit(batch(&[], &["{\"e\":5}"])).unwrap();
    let last = tokens();
    assert_ne!(last[0], after_cut[0]);
    assert_eq!(last[1], after_cut[1]);
}

#[test]
fn a_store_of_schema_version_1_gets_the_leases_table() {
    let pg = Postgres::start();
    drop(pg.store());
    // As a store written before the lease: no leases table nor the tables of later versions,
    // version 1.
    pg.client()
        .batch_execute(
            "DROP TABLE leases, cases, case_items, clocks, case_names, event_refs, fold, \
             receipts, case_numbers, recorded, outbox, alert_clocks, canaries, \
             signed_checkpoints, revocation_checks, web_sessions; \
             UPDATE meta SET value = '1' WHERE key = 'schema_version'",
        )
        .unwrap();
    let a = pg.store();
    let version: String = pg
        .client()
        .query_one("SELECT value FROM meta WHERE key = 'schema_version'", &[])
        .unwrap()
        .get(0);
    assert!(version.parse::<i64>().unwrap() >= 2, "{version}");
    assert_eq!(
        a.acquire_or_renew(&id("a"), Duration::from_secs(5))
            .unwrap()
            .map(|l| l.epoch),
        Some(1)
    );
}

#[test]
fn a_fenced_write_may_sit_idle_in_its_transaction_no_longer_than_the_ttl() {
    // A leader paused in the middle of a write holds the lease row locked (FOR SHARE) and so
    // keeps any take-over waiting: the server ends such a session after the TTL. A trigger
    // records the setting each write to meta ran with.
    let pg = Postgres::start();
    let (mut a, mut single) = (pg.store(), pg.store());
    pg.client()
        .batch_execute(
            "CREATE TABLE seen (v TEXT);
             CREATE FUNCTION seen() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 INSERT INTO seen VALUES (current_setting('idle_in_transaction_session_timeout'));
                 RETURN NULL;
             END $$;
             CREATE TRIGGER seen AFTER INSERT OR UPDATE ON meta FOR EACH ROW EXECUTE FUNCTION seen();",
        )
        .unwrap();
    let lease = a
        .acquire_or_renew(&id("a"), Duration::from_secs(90))
        .unwrap()
        .unwrap();
    a.fence(Some(lease.fence()));
    a.commit(batch(&[], &["{\"e\":1}"])).unwrap();
    single.commit(batch(&[], &["{\"e\":2}"])).unwrap();
    let seen: Vec<String> = pg
        .client()
        .query("SELECT v FROM seen", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        seen,
        ["90s", "0"],
        "fenced: the TTL; unfenced: the server's default"
    );
}

/// What the helper process prints before each of its lines, to find them among libtest's.
const HELPER: &str = "LEASE-HELPER: ";

/// Not a test of its own: the other process of
/// [`a_leader_stopped_in_the_middle_of_a_write_holds_nothing_past_its_lease_and_writes_nothing_when_it_wakes`],
/// run from this same binary (`--ignored --exact`), so the leader can be SIGSTOPped while the
/// test goes on. Leads as `a` (TTL from the environment), then commits one batch when a line
/// arrives on stdin, and prints what came of it.
#[test]
#[ignore = "run by another test as its child process"]
fn lease_helper_process() {
    use std::io::BufRead;
    let Ok(url) = std::env::var("CPRWATCH_LEASE_HELPER_URL") else {
        return;
    };
    let password = std::env::var("CPRWATCH_LEASE_HELPER_PASSWORD").unwrap();
    let ttl = Duration::from_millis(
        std::env::var("CPRWATCH_LEASE_HELPER_TTL_MS")
            .unwrap()
            .parse()
            .unwrap(),
    );
    let mut store = PostgresStore::open(&url, &password, None).unwrap();
    let lease = store
        .acquire_or_renew(&id("a"), ttl)
        .unwrap()
        .expect("the helper leads");
    store.fence(Some(lease.fence()));
    println!("{HELPER}leading {}", lease.epoch);
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).unwrap();
    match store.commit(batch(&["Subject: from a\n\n"], &["{\"e\":\"a\"}"])) {
        Ok(appended) => println!("{HELPER}committed {}", appended.len()),
        Err(StoreError::NotLeader { epoch, leader, .. }) => {
            println!("{HELPER}not leader {epoch}: {leader}")
        }
        Err(e) => println!("{HELPER}error {e}"),
    }
}

/// The helper process; SIGKILLed by its pid if the test ends before it does.
struct Helper {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Helper {
    fn start(pg: &Postgres, ttl: Duration) -> Helper {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "lease_helper_process",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("CPRWATCH_LEASE_HELPER_URL", pg.url())
            .env("CPRWATCH_LEASE_HELPER_PASSWORD", pg.password())
            .env("CPRWATCH_LEASE_HELPER_TTL_MS", ttl.as_millis().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the helper process");
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                // libtest may have written the test's name, without a newline, just before.
                if let Some((_, l)) = line.split_once(HELPER) {
                    let _ = tx.send(l.to_string());
                }
            }
        });
        Helper { child, lines }
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(60))
            .expect("a line from the helper process within 60 s")
    }

    fn tell(&mut self, what: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{what}").unwrap();
        stdin.flush().unwrap();
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: a signal to the child this value started and has not reaped.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "signal {signal}");
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn a_leader_stopped_in_the_middle_of_a_write_holds_nothing_past_its_lease_and_writes_nothing_when_it_wakes()
 {
    let pg = Postgres::start();
    let ttl = Duration::from_secs(2);
    let mut a = Helper::start(&pg, ttl);
    assert_eq!(a.line(), "leading 1");

    // Hold the events table so a's commit waits on it; stop a while it waits; let go: the
    // server hands a the events lock and a, stopped, sits idle in its transaction holding it.
    let mut blocker = pg.client();
    let mut hold = blocker.transaction().unwrap();
    hold.batch_execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    a.tell("commit");
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(
        &pg,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND wait_event_type = 'Lock'",
    ) == 0
    {
        assert!(
            Instant::now() < deadline,
            "a's commit never waited for the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    a.signal(libc::SIGSTOP);
    hold.commit().unwrap();

    // b takes over once the lease expired, and its commit gets the events lock once the server
    // has ended a's idle session (the TTL after a got the lock), not never.
    let mut b = pg.store();
    wait_until_expired(&b);
    let lease = b
        .acquire_or_renew(&id("b"), ttl)
        .unwrap()
        .expect("b takes over");
    assert_eq!(lease.epoch, 2);
    b.fence(Some(lease.fence()));
    let started = Instant::now();
    let (done, committed) = std::sync::mpsc::channel();
    let writer = std::thread::spawn(move || {
        let r = b.commit(batch(&["Subject: from b\n\n"], &["{\"e\":\"b\"}"]));
        let _ = done.send(r.map(|e| e.len()).map_err(|e| e.to_string()));
    });
    let r = committed
        .recv_timeout(Duration::from_secs(30))
        .expect("b's commit waited 30 s: a's stopped session still holds the events lock");
    assert_eq!(r, Ok(1));
    writer.join().unwrap();
    let waited = started.elapsed();
    assert!(
        pg.log().contains("idle-in-transaction timeout"),
        "the server ended a's session:\n{}",
        pg.log()
    );

    // a wakes up, still believing it leads: its commit reconnects, checks its fence, and is
    // refused; nothing of it is in the store.
    a.signal(libc::SIGCONT);
    assert_eq!(a.line(), "not leader 1: b holds it (epoch 2)");
    assert_eq!(count(&pg, "SELECT count(*) FROM events"), 1);
    assert_eq!(count(&pg, "SELECT count(*) FROM messages"), 1);
    eprintln!("b's commit waited {waited:?} for a's stopped session (TTL {ttl:?})");
}
