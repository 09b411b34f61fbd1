//! The event log on a real PostgreSQL server (issue 17, `cprwatch::store::PostgresStore`): the
//! same contract as the other backends (`cprwatch::store::contract`, shared with the unit
//! tests), the same chain as SQLite for the same batches, committed batches that survive a
//! crash of the server, reconnection after a restart or a terminated session with the batch
//! written once and whole, damage named by `verify`, and a newer schema refused.

mod support;

use cprwatch::store::contract::{batch, imap_contract, positions_contract, store_contract};
use cprwatch::store::{
    Batch, Checkpoint, NewMessage, PostgresStore, Store, StoreError, open_sqlite,
};
use support::postgres::Postgres;

/// Everything the role made: the next store starts on an empty database.
fn empty(pg: &Postgres) {
    pg.client()
        .batch_execute("DROP OWNED BY cprwatch")
        .expect("drop the store's tables");
}

/// Batches with what a pipeline commits: messages, positions, checkpoints, and event bodies
/// long enough to be stored deflated next to short plain ones.
fn batches() -> Vec<Batch> {
    let long = |n: u32| {
        format!(
            "{{\"type\":\"message_received\",\"n\":{n},\"subject\":\"{}\"}}",
            "key compromise report ".repeat(8)
        )
    };
    let mut first = batch(
        &["Subject: one\n\nhi", "Subject: two\n\nho"],
        &["{\"e\":1}", long(2).as_str()],
    );
    first.checkpoints = vec![Checkpoint {
        mailbox: "cpr".into(),
        folder: "INBOX".into(),
        uidvalidity: 7,
        last_uid: 2,
    }];
    let mut second = batch(&[], &[long(3).as_str(), long(4).as_str(), "{\"e\":5}"]);
    let m = NewMessage::new(b"Subject: three\n\nthe key is on a paste site".to_vec());
    second
        .positions
        .push(("imap:cpr/INBOX/7/3".into(), m.content_hash().to_string()));
    second.messages.push(m);
    vec![
        first,
        second,
        batch(&["Subject: four\n\n"], &[]),
        batch(&[], &["{\"e\":6}"]),
    ]
}

fn commit_all(store: &mut dyn Store, batches: Vec<Batch>) -> Vec<cprwatch::store::StoredEvent> {
    batches
        .into_iter()
        .flat_map(|b| store.commit(b).expect("commit"))
        .collect()
}

#[test]
fn the_store_contract_holds_on_postgresql() {
    let pg = Postgres::start();
    store_contract(&mut pg.store());
    empty(&pg);
    imap_contract(&mut pg.store());
    empty(&pg);
    positions_contract(&mut pg.store());
}

#[test]
fn the_same_batches_give_the_same_chain_as_sqlite() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let mut sqlite = open_sqlite(&dir.path().join("s.sqlite")).unwrap();
    let mut postgres = pg.store();

    let from_sqlite = commit_all(&mut sqlite, batches());
    let from_postgres = commit_all(&mut postgres, batches());
    assert_eq!(from_postgres, from_sqlite, "the appended events differ");
    assert_eq!(postgres.events().unwrap(), sqlite.events().unwrap());
    assert_eq!(
        postgres.events_from(3, 2).unwrap(),
        sqlite.events_from(3, 2).unwrap()
    );
    let (v_pg, v_sqlite) = (postgres.verify().unwrap(), sqlite.verify().unwrap());
    assert_eq!(v_pg, v_sqlite);
    assert_eq!(v_pg.events_ok, 6);
    assert_eq!(v_pg.messages_checked, 4);
    assert_eq!(v_pg.head, from_sqlite.last().unwrap().hash);
    assert!(
        v_pg.bad_event.is_none() && v_pg.bad_message.is_none(),
        "{v_pg}"
    );
    // Long bodies were stored deflated, short ones plain: both read back and verify.
    let encodings: Vec<i64> = pg
        .client()
        .query("SELECT encoding FROM events ORDER BY seq", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(encodings, [0, 1, 1, 1, 0, 0]);
    assert_eq!(
        postgres.checkpoint("cpr", "INBOX").unwrap(),
        sqlite.checkpoint("cpr", "INBOX").unwrap()
    );
    assert_eq!(
        postgres.positions_with_prefix("imap:").unwrap(),
        ["imap:cpr/INBOX/7/3"]
    );

    // A store opened again (schema already there) reads the same and chains on.
    drop(postgres);
    let mut again = pg.store();
    assert_eq!(again.events().unwrap(), sqlite.events().unwrap());
    let next = again.commit(batch(&[], &["{\"e\":7}"])).unwrap();
    assert_eq!(next, sqlite.commit(batch(&[], &["{\"e\":7}"])).unwrap());
    assert_eq!(again.verify().unwrap().head, sqlite.verify().unwrap().head);
}

#[test]
fn verify_names_a_damaged_event_and_message() {
    let pg = Postgres::start();
    let mut store = pg.store();
    let events = commit_all(&mut store, batches());
    let mut raw = pg.client();

    // A deflated body with one byte changed: that event is named, the ones before verified.
    raw.execute(
        "UPDATE events SET body = overlay(body placing '\\xff'::bytea from 5 for 1) WHERE seq = 3",
        &[],
    )
    .unwrap();
    let v = store.verify().unwrap();
    let bad = v.bad_event.expect("the damaged event is named");
    assert_eq!(bad.seq, 3, "{}", bad.problem);
    assert_eq!(v.events_ok, 2);
    assert_eq!(v.head, events[1].hash);
    assert!(v.bad_message.is_none());

    // A message's stored bytes changed: named by its content hash.
    let key = NewMessage::new(b"Subject: four\n\n".to_vec())
        .content_hash()
        .to_string();
    raw.execute(
        "UPDATE messages SET raw = '\\x00'::bytea WHERE content_hash = $1",
        &[&hex::decode(&key).unwrap()],
    )
    .unwrap();
    let v = store.verify().unwrap();
    assert_eq!(
        v.bad_message.expect("the damaged message").content_hash,
        key
    );
    assert!(matches!(
        store.message(&key),
        Err(StoreError::CorruptMessage { .. })
    ));

    // A missing event is a gap.
    raw.execute("DELETE FROM events WHERE seq = 3", &[])
        .unwrap();
    let problem = store.verify().unwrap().bad_event.unwrap().problem;
    assert!(problem.contains("sequence gap"), "{problem}");
}

#[test]
fn a_committed_batch_survives_a_crash_of_the_server() {
    let mut pg = Postgres::start();
    let mut store = pg.store();
    let before = commit_all(&mut store, batches());

    pg.kill();
    // While the server is down, a commit fails and says where it tried; nothing is written.
    let err = store
        .commit(batch(&["Subject: lost\n\n"], &["{\"e\":\"lost\"}"]))
        .unwrap_err();
    assert!(matches!(err, StoreError::Connect(_)), "{err:?}");
    assert!(err.to_string().contains(&pg.port().to_string()), "{err}");

    pg.restart();
    // Every committed event, and nothing of the failed batch.
    assert_eq!(store.events().unwrap(), before);
    assert!(
        !store
            .has_message(NewMessage::new(b"Subject: lost\n\n".to_vec()).content_hash())
            .unwrap()
    );
    let next = store.commit(batch(&[], &["{\"e\":7}"])).unwrap();
    assert_eq!(next[0].seq, 7);
    assert_eq!(next[0].prev_hash, before.last().unwrap().hash);
    let v = pg.store().verify().unwrap();
    assert!(v.bad_event.is_none() && v.bad_message.is_none(), "{v}");
    assert_eq!((v.events_ok, v.messages_checked), (7, 4));
}

#[test]
fn the_store_reconnects_after_a_restart_of_the_server() {
    let mut pg = Postgres::start();
    let mut store = pg.store();
    store
        .commit(batch(&["Subject: a\n\n"], &["{\"e\":1}"]))
        .unwrap();

    pg.restart();
    // The session the store held was ended by the shutdown; the commit runs on a new one,
    // once.
    let appended = store
        .commit(batch(&["Subject: b\n\n"], &["{\"e\":2}", "{\"e\":3}"]))
        .unwrap();
    assert_eq!(appended.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);

    pg.restart();
    // Reads reconnect too.
    let events = store.events().unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(events[1..], appended[..]);
    let v = store.verify().unwrap();
    assert_eq!((v.events_ok, v.messages_checked), (3, 2));
}

#[test]
fn a_terminated_session_is_retried_whole_and_once() {
    let pg = Postgres::start();
    let mut store = pg.store();
    store
        .commit(batch(&["Subject: a\n\n"], &["{\"e\":1}"]))
        .unwrap();

    // Another session ends the store's (as an administrator, or a pooler, would).
    let ended: i64 = pg
        .client()
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(ended, 1, "the store holds one session");

    let mut b = batch(&["Subject: b\n\n"], &["{\"e\":2}", "{\"e\":3}"]);
    b.checkpoints = vec![Checkpoint {
        mailbox: "cpr".into(),
        folder: "INBOX".into(),
        uidvalidity: 1,
        last_uid: 9,
    }];
    let appended = store.commit(b).unwrap();
    assert_eq!(appended.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    // Written once: three events, two messages, one position each.
    let mut raw = pg.client();
    let mut count = |sql: &str| -> i64 { raw.query_one(sql, &[]).unwrap().get(0) };
    assert_eq!(count("SELECT count(*) FROM events"), 3);
    assert_eq!(count("SELECT count(*) FROM messages"), 2);
    assert_eq!(count("SELECT count(*) FROM positions"), 2);
    assert_eq!(
        store
            .checkpoint("cpr", "INBOX")
            .unwrap()
            .map(|c| c.last_uid),
        Some(9)
    );
}

#[test]
fn a_newer_schema_is_refused_and_a_foreign_database_too() {
    let pg = Postgres::start();
    drop(pg.store());
    pg.client()
        .execute(
            "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
            &[],
        )
        .unwrap();
    let err = PostgresStore::open(&pg.url(), pg.password(), None).unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer cprwatch"), "{err}");
    assert!(err.to_string().contains(&pg.url()), "{err}");

    // A database with tables of someone else's: refused, not written to.
    empty(&pg);
    pg.client().batch_execute("CREATE TABLE t (x INT)").unwrap();
    let err = PostgresStore::open(&pg.url(), pg.password(), None).unwrap_err();
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err}");
    assert!(err.to_string().contains("no meta table"), "{err}");
}

fn mail(key: &str) -> cprwatch::store::OutboxChange {
    cprwatch::store::OutboxChange::Queue(cprwatch::store::NewMail {
        key: key.into(),
        kind: "warning".into(),
        message_id: format!("<{key}@cprwatch.invalid>"),
        to: vec!["desk@ca.example".into()],
        rate_key: None,
        case: Some("CPR-2026-0001".into()),
        clocks: vec!["revocation:cert:1".into()],
        body: b"Subject: alert\r\n\r\nbody\r\n".to_vec(),
        queued_at: time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000),
    })
}

#[test]
fn outbox_and_check_rows_are_kept_with_their_batch_and_a_refused_one_keeps_nothing() {
    let pg = Postgres::start();
    let mut store = pg.store();
    let mut b = batch(&["Subject: a\n\n"], &["{\"e\":1}"]);
    b.outbox = vec![mail("alert/a/warning/desk")];
    b.checks = vec![cprwatch::store::CheckRow {
        target: "cert:1".into(),
        note: Some("no issuer yet".into()),
        ..Default::default()
    }];
    store.commit(b).unwrap();
    let later = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(30_000);
    let tables = store.tables().expect("PostgreSQL keeps the tables");
    let due = tables.outbox_due(later, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].key, "alert/a/warning/desk");
    assert_eq!(due[0].state, "pending");
    assert!(tables.outbox_has("alert/a/warning/desk").unwrap());
    let checks = tables.check_rows(&["cert:1".into()]).unwrap();
    assert_eq!(checks[0].note.as_deref(), Some("no issuer yet"));

    // The same mail queued again: the whole batch is refused, its event and message too.
    let mut again = batch(&["Subject: b\n\n"], &["{\"e\":2}"]);
    again.outbox = vec![mail("alert/a/warning/desk")];
    let err = store.commit(again).unwrap_err();
    assert!(matches!(err, StoreError::BadBatch(_)), "{err}");
    assert_eq!(store.events().unwrap().len(), 1);
    assert_eq!(store.verify().unwrap().messages_checked, 1);
    let tables = store.tables().unwrap();
    assert_eq!(tables.outbox_due(later, 10).unwrap().len(), 1);
}

/// A trigger that runs at `COMMIT` (deferred) and, the first time only, ends its own session:
/// the client loses the connection while committing, and the server rolls the transaction
/// back. (`nextval` is not rolled back, so the second time it lets the commit through.)
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
fn a_connection_lost_during_commit_is_retried_once_and_written_once() {
    let pg = Postgres::start();
    let mut store = pg.store();
    store
        .commit(batch(&["Subject: a\n\n"], &["{\"e\":1}"]))
        .unwrap();
    let mut raw = pg.client();
    raw.batch_execute(CUT_AT_COMMIT).unwrap();

    let appended = store
        .commit(batch(&["Subject: b\n\n"], &["{\"e\":2}", "{\"e\":3}"]))
        .unwrap_or_else(|e| panic!("commit: {e}\nServer log:\n{}", pg.log()));
    assert_eq!(appended.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    // The first attempt was cut at COMMIT, the second went through.
    let cuts: i64 = raw
        .query_one("SELECT last_value FROM cut_count", &[])
        .unwrap()
        .get(0);
    assert_eq!(cuts, 2, "the trigger ran once per attempt");
    assert!(
        pg.log().contains("terminating connection"),
        "the first attempt lost its session:\n{}",
        pg.log()
    );
    let mut count = |sql: &str| -> i64 { raw.query_one(sql, &[]).unwrap().get(0) };
    assert_eq!(count("SELECT count(*) FROM events"), 3);
    assert_eq!(count("SELECT count(*) FROM messages"), 2);
    let v = store.verify().unwrap();
    assert!(v.bad_event.is_none() && v.bad_message.is_none(), "{v}");
    assert_eq!(v.head, appended[1].hash);
}

#[test]
fn a_dashboard_session_made_through_one_instance_is_known_to_the_other() {
    let pg = Postgres::start();
    let (a, b) = (pg.store(), pg.store());
    let session = cprwatch::store::WebSession {
        user: "alice".into(),
        csrf: "token".into(),
    };
    let (a, b) = (a.tables().unwrap(), b.tables().unwrap());
    a.session_start("the-cookie", &session, 1_000, 2_000)
        .unwrap();
    assert_eq!(b.session("the-cookie", 1_500).unwrap(), Some(session));
    assert_eq!(b.session("the-cookie", 2_000).unwrap(), None, "expired");
    b.session_end("the-cookie").unwrap();
    assert_eq!(a.session("the-cookie", 1_500).unwrap(), None, "logged out");
}
