//! Contract tests run against both backends, plus SQLite tamper and schema tests.

use super::contract::{batch, imap_contract, msg, positions_contract, store_contract};
use super::*;
use rusqlite::{Connection, OptionalExtension};

#[test]
fn memory_contract() {
    store_contract(&mut memory());
}

#[test]
fn sqlite_contract() {
    let dir = tempfile::tempdir().unwrap();
    store_contract(&mut open_sqlite(&dir.path().join("s.sqlite")).unwrap());
}

/// Processes starting together (the service and a `status`) may create the same new store
/// at once: each must open it, not report it locked.
#[test]
fn a_new_store_opened_by_many_at_once_opens_for_all() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let start = std::sync::Barrier::new(6);
        std::thread::scope(|s| {
            let openers: Vec<_> = (0..6)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        open_sqlite(&path).map(|_| ())
                    })
                })
                .collect();
            for o in openers {
                if let Err(e) = o.join().unwrap() {
                    panic!("round {round}: {e}");
                }
            }
        });
    }
}

#[test]
fn backends_write_the_same_chain() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open_sqlite(&dir.path().join("s.sqlite")).unwrap();
    let mut m = memory();
    for b in [
        batch(&["a"], &["1", "2"]),
        batch(&[], &["3"]),
        batch(&["b"], &[]),
    ] {
        assert_eq!(s.commit(b.clone()).unwrap(), m.commit(b).unwrap());
    }
    assert_eq!(s.events().unwrap(), m.events().unwrap());
    assert_eq!(s.verify().unwrap(), m.verify().unwrap());
}

#[test]
fn sqlite_persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let first = open_sqlite(&path)
        .unwrap()
        .commit(batch(&["m"], &["a", "b"]))
        .unwrap();
    let mut s = open_sqlite(&path).unwrap();
    assert_eq!(s.events().unwrap(), first);
    let next = s.commit(batch(&[], &["c"])).unwrap();
    assert_eq!(next[0].seq, 3);
    assert_eq!(next[0].prev_hash, first[1].hash);
}

/// A store with three events and two messages, and a raw connection to damage it with.
fn damaged_fixture() -> (tempfile::TempDir, std::path::PathBuf, Vec<StoredEvent>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let events = open_sqlite(&path)
        .unwrap()
        .commit(batch(
            &["Subject: a\n\nfirst", "Subject: b\n\nsecond"],
            &["{\"n\":1}", "{\"n\":2}", "{\"n\":3}"],
        ))
        .unwrap();
    (dir, path, events)
}

/// Rows since schema 7 keep a check of their hash, except every 16th and the last of each
/// commit: whatever row a reader starts at, it gets every whole hash, and a damaged check or
/// body is named by its seq.
#[test]
fn rows_keeping_a_check_read_whole_and_damage_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let mut s = open_sqlite(&path).unwrap();
    let bodies: Vec<String> = (1..=45).map(|n| format!("{{\"n\":{n}}}")).collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    let mut events = s.commit(batch(&[], &refs[..40])).unwrap();
    events.extend(s.commit(batch(&[], &refs[40..])).unwrap());
    let c = Connection::open(&path).unwrap();
    let whole: Vec<i64> = c
        .prepare("SELECT seq FROM events WHERE length(hash) = 32 ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(whole, [16, 32, 40, 45]);
    let checks: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM events WHERE length(hash) = 8",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(checks, 41);
    assert_eq!(s.events().unwrap(), events);
    for from in 1..=45u64 {
        assert_eq!(
            s.events_from(from, 3).unwrap(),
            events[from as usize - 1..(from as usize + 2).min(45)],
            "from {from}"
        );
    }
    assert!(s.verify().unwrap().is_ok());
    drop(s);
    for (seq, column, at) in [
        (20i64, "hash", 7),
        (20, "body", 0),
        (32, "hash", 31),
        (1, "hash", 0),
    ] {
        flip(&path, "events", column, "seq", &seq, at);
        let v = open_sqlite(&path).unwrap().verify().unwrap();
        let bad = v
            .bad_event
            .unwrap_or_else(|| panic!("{column}[{at}] of #{seq} went unnoticed"));
        assert_eq!(bad.seq, seq as u64, "{}", bad.problem);
        assert_eq!(v.events_ok, seq as u64 - 1);
        flip(&path, "events", column, "seq", &seq, at); // undo
    }
    assert!(open_sqlite(&path).unwrap().verify().unwrap().is_ok());
}

/// A message's key as rows since schema 5 keep it: the 32 bytes of its content hash.
fn key(hash: &str) -> Vec<u8> {
    hex::decode(hash).unwrap()
}

/// Flip one byte of a column in one row, through raw SQL as an attacker with file access would.
fn flip(
    path: &Path,
    table: &str,
    column: &str,
    key_col: &str,
    key: &dyn rusqlite::ToSql,
    at: usize,
) {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
    let sql = format!("SELECT {column} FROM {table} WHERE {key_col} = ?1");
    let value: rusqlite::types::Value = conn.query_row(&sql, [key], |r| r.get(0)).unwrap();
    let new = match value {
        rusqlite::types::Value::Blob(mut b) => {
            b[at] ^= 0x01;
            rusqlite::types::Value::Blob(b)
        }
        rusqlite::types::Value::Text(t) => {
            let mut b = t.into_bytes();
            // Stay within hex digits so the damage is a plausible forgery, not a type error.
            b[at] = if b[at] == b'a' { b'b' } else { b'a' };
            rusqlite::types::Value::Text(String::from_utf8(b).unwrap())
        }
        other => panic!("unexpected {other:?}"),
    };
    let sql = format!("UPDATE {table} SET {column} = ?1 WHERE {key_col} = ?2");
    assert_eq!(conn.execute(&sql, rusqlite::params![new, key]).unwrap(), 1);
}

/// Set a column of one `events` row through raw SQL.
fn set_event_column(path: &Path, column: &str, seq: i64, value: rusqlite::types::Value) {
    let conn = Connection::open(path).unwrap();
    let sql = format!("UPDATE events SET {column} = ?1 WHERE seq = ?2");
    assert_eq!(
        conn.execute(&sql, rusqlite::params![value, seq]).unwrap(),
        1
    );
}

/// Make the store's rows what schema 4 wrote: hashes as hex TEXT, every row stating its link,
/// messages keyed (and named by positions) by the hex of their content hash.
fn to_version_4(path: &Path) {
    whole_hashes(path);
    Connection::open(path)
        .unwrap()
        .execute_batch(&format!(
            "PRAGMA foreign_keys = OFF; \
             UPDATE messages SET content_hash = lower(hex(content_hash)) \
             WHERE typeof(content_hash) = 'blob'; \
             UPDATE position_names SET content_hash = lower(hex(content_hash)) \
             WHERE typeof(content_hash) = 'blob'; \
             UPDATE events SET hash = lower(hex(hash)) WHERE typeof(hash) = 'blob'; \
             UPDATE events SET prev_hash = coalesce( \
                 (SELECT e.hash FROM events e WHERE e.seq = events.seq - 1), '{}') \
             WHERE typeof(prev_hash) = 'blob'; \
             DROP TABLE fold; DROP TABLE receipts; DROP TABLE case_numbers; \
         DROP TABLE recorded; DROP INDEX clocks_due; DROP INDEX clocks_by_end; DELETE FROM meta WHERE key LIKE 'tables_%'; \
         UPDATE meta SET value = '4' WHERE key = 'schema_version';",
            chain::GENESIS
        ))
        .unwrap();
}

/// Give every `events` row its whole hash, as stores before schema 7 kept them (this version
/// keeps only a check in most rows), read through the store, which works them out.
fn whole_hashes(path: &Path) {
    let events = open_sqlite(path).unwrap().events().unwrap();
    let c = Connection::open(path).unwrap();
    for e in events {
        c.execute(
            "UPDATE events SET hash = ?1 WHERE seq = ?2",
            rusqlite::params![hex::decode(&e.hash).unwrap(), e.seq as i64],
        )
        .unwrap();
    }
}

/// The ways an event row can be damaged, each applied to `seq` of the store at `path`: a
/// flipped byte in the body or the hash (whichever way the row keeps it), and a link that
/// is wrong (a stated one that names another hash, or one that is neither stated nor empty).
fn event_damages(path: &Path, seq: i64, events: &[StoredEvent]) -> Vec<(String, Box<dyn Fn()>)> {
    use rusqlite::types::Value;
    let p = path.to_path_buf();
    let mut out: Vec<(String, Box<dyn Fn()>)> = Vec::new();
    for column in ["body", "hash"] {
        let p = p.clone();
        out.push((
            format!("{column} flipped"),
            Box::new(move || flip(&p, "events", column, "seq", &seq, 3)),
        ));
    }
    // A stated link to another event's hash, as a forger splicing the log would write.
    let other = events[(seq as usize) % events.len()].hash.clone();
    let q = p.clone();
    out.push((
        "prev_hash names another event".into(),
        Box::new(move || set_event_column(&q, "prev_hash", seq, Value::Text(other.clone()))),
    ));
    let q = p.clone();
    out.push((
        "prev_hash a blob".into(),
        Box::new(move || set_event_column(&q, "prev_hash", seq, Value::Blob(vec![0; 32]))),
    ));
    let q = p.clone();
    out.push((
        "hash cut short".into(),
        Box::new(move || set_event_column(&q, "hash", seq, Value::Blob(vec![0; 31]))),
    ));
    out
}

#[test]
fn verify_names_the_damaged_event_for_every_column() {
    for version in [5, 4] {
        for seq in [1i64, 2, 3] {
            for i in 0..event_damages(Path::new(""), seq, &damaged_fixture().2).len() {
                let (_dir, path, events) = damaged_fixture();
                let (what, damage) = event_damages(&path, seq, &events).swap_remove(i);
                if version == 4 {
                    to_version_4(&path);
                }
                damage();
                let v = open_sqlite(&path).unwrap().verify().unwrap();
                let bad = v
                    .bad_event
                    .as_ref()
                    .unwrap_or_else(|| panic!("v{version} {what} seq {seq}: {v}"));
                assert_eq!(bad.seq, seq as u64, "v{version} {what}: {}", bad.problem);
                assert_eq!(v.events_ok, seq as u64 - 1);
                if seq > 1 {
                    assert_eq!(v.head, events[seq as usize - 2].hash);
                }
            }
        }
    }
    for column in ["body", "prev_hash", "hash"] {
        for seq in [1i64, 2, 3] {
            // Rows as schema 4 wrote them: a flipped hex digit in either hash is named too.
            let (_dir, path, events) = damaged_fixture();
            to_version_4(&path);
            flip(&path, "events", column, "seq", &seq, 3);
            let v = open_sqlite(&path).unwrap().verify().unwrap();
            let bad = v
                .bad_event
                .as_ref()
                .unwrap_or_else(|| panic!("{column} seq {seq}: {v}"));
            assert_eq!(bad.seq, seq as u64, "{column}: {}", bad.problem);
            assert_eq!(v.events_ok, seq as u64 - 1);
            assert!(v.bad_message.is_none());
            assert!(
                v.to_string().contains(&format!("event {seq} is corrupt")),
                "{v}"
            );
            if seq > 1 {
                assert_eq!(v.head, events[seq as usize - 2].hash);
            }
        }
    }
}

#[test]
fn verify_finds_a_missing_event() {
    let (_dir, path, _) = damaged_fixture();
    let conn = Connection::open(&path).unwrap();
    conn.execute("DELETE FROM events WHERE seq = 2", [])
        .unwrap();
    let v = open_sqlite(&path).unwrap().verify().unwrap();
    let bad = v.bad_event.unwrap();
    assert_eq!(bad.seq, 3);
    assert!(bad.problem.contains("expected seq 2"), "{}", bad.problem);
}

#[test]
fn verify_names_the_damaged_message() {
    let k_a = msg("Subject: a\n\nfirst").content_hash().to_string();
    let k_b = msg("Subject: b\n\nsecond").content_hash().to_string();
    // Every byte position of the compressed data: header, deflate stream, checksum.
    let len: i64 = {
        let (_dir, path, _) = damaged_fixture();
        let conn = Connection::open(&path).unwrap();
        conn.query_row(
            "SELECT length(raw) FROM messages WHERE content_hash = ?1",
            [key(&k_b)],
            |r| r.get(0),
        )
        .unwrap()
    };
    for at in 0..len as usize {
        let (_dir, path, _) = damaged_fixture();
        flip(&path, "messages", "raw", "content_hash", &key(&k_b), at);
        let store = open_sqlite(&path).unwrap();
        let v = store.verify().unwrap();
        let bad = v
            .bad_message
            .as_ref()
            .unwrap_or_else(|| panic!("byte {at}: {v}"));
        assert_eq!(bad.content_hash, k_b);
        assert!(v.bad_event.is_none());
        assert!(
            v.to_string()
                .contains(&format!("message {k_b} is corrupt: ")),
            "{v}"
        );
        let err = store.message(&k_b).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("message {k_b} is corrupt")),
            "{err}"
        );
        assert!(store.message(&k_a).unwrap().is_some());
    }
    // The size column and the key itself are covered too.
    let (_dir, path, _) = damaged_fixture();
    Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE messages SET size = size + 1 WHERE content_hash = ?1",
            [key(&k_a)],
        )
        .unwrap();
    let v = open_sqlite(&path).unwrap().verify().unwrap();
    assert_eq!(v.bad_message.unwrap().content_hash, k_a);
    let (_dir, path, _) = damaged_fixture();
    flip(
        &path,
        "messages",
        "content_hash",
        "content_hash",
        &key(&k_a),
        5,
    );
    let v = open_sqlite(&path).unwrap().verify().unwrap();
    assert!(v.bad_message.unwrap().problem.contains("hash"));
}

#[test]
fn memory_verify_sees_tampering() {
    let mut m = memory();
    m.commit(batch(&["x"], &["a", "b"])).unwrap();
    m.tamper().0[1].body = b"B".to_vec();
    let v = m.verify().unwrap();
    assert_eq!(v.bad_event.unwrap().seq, 2);
    let mut m = memory();
    m.commit(batch(&["x"], &[])).unwrap();
    for raw in m.tamper().1.values_mut() {
        raw.push(b'!');
    }
    assert_eq!(
        m.verify().unwrap().bad_message.unwrap().content_hash,
        chain::content_hash(b"x")
    );
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    drop(open_sqlite(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
    let err = open_sqlite(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer cprwatch"), "{err}");
}

#[test]
fn foreign_files_are_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.sqlite");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    let err = open_sqlite(&junk).unwrap_err();
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err}");

    let other = dir.path().join("other.sqlite");
    Connection::open(&other)
        .unwrap()
        .execute("CREATE TABLE t (x)", [])
        .unwrap();
    let err = open_sqlite(&other).unwrap_err();
    assert!(err.to_string().contains("no meta table"), "{err}");

    let missing = dir.path().join("no/such/dir/s.sqlite");
    let err = open_sqlite(&missing).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("directory does not exist") && text.contains("[store] path"),
        "{text}"
    );
}

#[test]
fn large_batch_commits_fast() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open_sqlite(&dir.path().join("s.sqlite")).unwrap();
    let line = "The private key for the certificate below was published on a paste site.\n";
    let mut b = Batch::default();
    for i in 0..1000 {
        let raw = format!(
            "Message-ID: <{i}@test>\nSubject: report {i}\n\n{}",
            line.repeat(70)
        );
        let m = NewMessage::new(raw.into_bytes());
        b.positions
            .push((format!("maildir:cur/{i}"), m.content_hash().to_string()));
        b.messages.push(m);
    }
    b.events = (0..5000)
        .map(|i| {
            format!(
                "{{\"type\":\"message_received\",\"n\":{i},\"pad\":\"{}\"}}",
                "x".repeat(150)
            )
            .into_bytes()
        })
        .collect();
    // Speed is measured by the ingest benchmark; this checks a large batch commits whole.
    let appended = s.commit(b).unwrap();
    assert_eq!(appended.len(), 5000);
    let v = s.verify().unwrap();
    assert!(v.is_ok());
    assert_eq!(v.messages_checked, 1000);
}

#[test]
fn imap_state_in_both_backends() {
    imap_contract(&mut memory());
    let dir = tempfile::tempdir().unwrap();
    imap_contract(&mut open_sqlite(&dir.path().join("s.sqlite")).unwrap());
}

/// Positions are listed by any prefix, whether it ends at a folder or inside a name, alike in
/// both backends (the SQLite one keeps a position's folder and name apart, schema 7).
#[test]
fn positions_are_listed_by_any_prefix() {
    let dir = tempfile::tempdir().unwrap();
    positions_contract(&mut open_sqlite(&dir.path().join("s.sqlite")).unwrap());
    positions_contract(&mut memory());
}

#[test]
fn a_version_1_store_is_migrated_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let mut s = open_sqlite(&path).unwrap();
    s.commit(batch(&["kept"], &["{\"e\":1}"])).unwrap();
    drop(s);
    // Make it what version 1 wrote.
    let c = Connection::open(&path).unwrap();
    c.execute_batch(
        "DROP TABLE imap_checkpoints; DROP TABLE folder_states; \
         CREATE TABLE p1 (position TEXT PRIMARY KEY, \
                          content_hash TEXT NOT NULL REFERENCES messages(content_hash)); \
         INSERT INTO p1 SELECT * FROM positions; DROP VIEW positions; \
         DROP TABLE position_names; DROP TABLE position_places; \
         ALTER TABLE p1 RENAME TO positions; \
         DROP TABLE cases; DROP TABLE case_items; DROP TABLE clocks; DROP TABLE case_names; DROP TABLE fold; DROP TABLE receipts; DROP TABLE case_numbers; DROP TABLE recorded; \
         DROP TABLE event_refs; \
         ALTER TABLE events DROP COLUMN encoding; ALTER TABLE events DROP COLUMN size; \
         UPDATE meta SET value = '1' WHERE key = 'schema_version';",
    )
    .unwrap();
    drop(c);
    let s = open_sqlite(&path).unwrap();
    assert_eq!(s.events().unwrap().len(), 1);
    assert_eq!(s.checkpoint("cpr", "INBOX").unwrap(), None);
    assert!(s.verify().unwrap().is_ok());
    let c = Connection::open(&path).unwrap();
    let v: String = c
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(v, sqlite::SCHEMA_VERSION.to_string());
}

/// Event bodies like the engine writes: long enough, and made of the vocabulary, to be stored
/// deflated.
fn compressible_events() -> Vec<String> {
    (1..=3)
        .map(|n| {
            format!(
                "{{\"recorded_at\":\"2026-01-0{n}T00:00:00Z\",\"event\":{{\"type\":\"clock_started\",\
                 \"clock\":\"preliminary_report:CPR-2026-000{n}\",\"kind\":\"preliminary_report\",\
                 \"case\":\"CPR-2026-000{n}\",\"started_at\":\"2026-01-0{n}T00:00:00Z\",\
                 \"deadline\":\"2026-01-0{n}T00:00:00Z\",\"basis\":\"br-4.9.5-24h\"}}}}"
            )
        })
        .collect()
}

/// A store whose three events are stored deflated, checked through raw SQL.
fn compressed_fixture() -> (tempfile::TempDir, std::path::PathBuf, Vec<StoredEvent>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let bodies = compressible_events();
    let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();
    let events = open_sqlite(&path)
        .unwrap()
        .commit(batch(&["Subject: a\n\nfirst"], &bodies))
        .unwrap();
    let c = Connection::open(&path).unwrap();
    for e in &events {
        let (encoding, stored, size): (i64, Vec<u8>, i64) = c
            .query_row(
                "SELECT encoding, body, size FROM events WHERE seq = ?1",
                [e.seq as i64],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(encoding, 1, "seq {} is stored deflated", e.seq);
        assert!(
            stored.len() < e.body.len() / 2,
            "{} of {}",
            stored.len(),
            e.body.len()
        );
        assert_eq!(size, e.body.len() as i64);
    }
    (dir, path, events)
}

fn stored_len(path: &Path, seq: i64) -> usize {
    Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT length(body) FROM events WHERE seq = ?1",
            [seq],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as usize
}

#[test]
fn compressed_bodies_read_back_canonical() {
    let (_dir, path, events) = compressed_fixture();
    let s = open_sqlite(&path).unwrap();
    assert_eq!(s.events().unwrap(), events);
    let v = s.verify().unwrap();
    assert!(v.is_ok(), "{v}");
    assert_eq!(v.events_ok, 3);
    // Both backends chain the same canonical bytes, whatever the SQLite store keeps.
    let mut m = memory();
    let bodies = compressible_events();
    let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();
    assert_eq!(
        m.commit(batch(&["Subject: a\n\nfirst"], &bodies)).unwrap(),
        events
    );
}

/// Flip byte `at` of event `seq`'s stored body, check that `verify` names that event (and the
/// chain is intact up to it) and that reading never hands out the damaged body as if it were
/// the event (unless it decodes to other bytes, which the chain then names), then flip it back.
/// Returns what `verify` said.
fn assert_flipped_body_is_named(
    path: &Path,
    events: &[StoredEvent],
    seq: i64,
    at: usize,
) -> Verification {
    flip(path, "events", "body", "seq", &seq, at);
    let s = open_sqlite(path).unwrap();
    let v = s.verify().unwrap();
    let bad = v
        .bad_event
        .as_ref()
        .unwrap_or_else(|| panic!("seq {seq} byte {at} went unnoticed: {v}"));
    assert_eq!(bad.seq, seq as u64, "byte {at}: {}", bad.problem);
    if seq > 1 {
        assert_eq!(v.head, events[seq as usize - 2].hash);
    }
    match s.events() {
        Err(StoreError::CorruptEvent { seq: s, .. }) => assert_eq!(s, seq as u64),
        Err(e) => panic!("{e}"),
        Ok(read) => assert_ne!(read[seq as usize - 1].body, events[seq as usize - 1].body),
    }
    drop(s);
    flip(path, "events", "body", "seq", &seq, at); // undo
    v
}

#[test]
fn every_flipped_byte_of_a_compressed_body_is_named() {
    for seq in [1i64, 2, 3] {
        let (_dir, path, events) = compressed_fixture();
        for at in 0..stored_len(&path, seq) {
            let v = assert_flipped_body_is_named(&path, &events, seq, at);
            assert_eq!(v.events_ok, seq as u64 - 1);
        }
        assert!(open_sqlite(&path).unwrap().verify().unwrap().is_ok());
    }
}

#[test]
fn damaged_encoding_or_size_is_named() {
    for (column, value) in [
        ("encoding", rusqlite::types::Value::Integer(0)),
        ("encoding", rusqlite::types::Value::Integer(9)),
        ("encoding", rusqlite::types::Value::Text("deflate".into())),
        ("size", rusqlite::types::Value::Integer(5)),
        ("size", rusqlite::types::Value::Integer(1 << 40)),
        ("size", rusqlite::types::Value::Integer(-1)),
        ("size", rusqlite::types::Value::Null),
    ] {
        let (_dir, path, events) = compressed_fixture();
        let c = Connection::open(&path).unwrap();
        let sql = format!("UPDATE events SET {column} = ?1 WHERE seq = 2");
        assert_eq!(c.execute(&sql, [&value]).unwrap(), 1);
        drop(c);
        let s = open_sqlite(&path).unwrap();
        let v = s.verify().unwrap();
        let bad = v
            .bad_event
            .unwrap_or_else(|| panic!("{column} = {value:?} went unnoticed"));
        assert_eq!(bad.seq, 2, "{column} = {value:?}: {}", bad.problem);
        // Reading does not check the chain (verify does), as with any damaged body: the deflated
        // bytes read as plain are simply not the event.
        match s.events() {
            Err(err) => {
                assert!(
                    matches!(err, StoreError::CorruptEvent { seq: 2, .. }),
                    "{column} = {value:?}: {err}"
                );
                assert!(err.to_string().contains("cprwatch verify"), "{err}");
            }
            Ok(read) => {
                assert_eq!(value, rusqlite::types::Value::Integer(0));
                assert_ne!(read[1].body, events[1].body);
            }
        }
    }
}

#[test]
fn a_version_2_store_keeps_its_plain_bodies_and_compresses_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let bodies = compressible_events();
    let mut s = open_sqlite(&path).unwrap();
    let old = s.commit(batch(&["kept"], &[&bodies[0]])).unwrap();
    drop(s);
    // Make it what version 2 wrote: the same body, stored as it is, without the new columns.
    let c = Connection::open(&path).unwrap();
    c.execute("UPDATE events SET body = ?1 WHERE seq = 1", [&old[0].body])
        .unwrap();
    c.execute_batch(
        "ALTER TABLE events DROP COLUMN encoding; ALTER TABLE events DROP COLUMN size; \
         CREATE TABLE p2 (position TEXT PRIMARY KEY, \
                          content_hash TEXT NOT NULL REFERENCES messages(content_hash)); \
         INSERT INTO p2 SELECT * FROM positions; DROP VIEW positions; \
         DROP TABLE position_names; DROP TABLE position_places; \
         ALTER TABLE p2 RENAME TO positions; \
         DROP TABLE cases; DROP TABLE case_items; DROP TABLE clocks; DROP TABLE case_names; DROP TABLE fold; DROP TABLE receipts; DROP TABLE case_numbers; DROP TABLE recorded; \
         DROP TABLE event_refs; \
         UPDATE meta SET value = '2' WHERE key = 'schema_version';",
    )
    .unwrap();
    drop(c);
    let mut s = open_sqlite(&path).unwrap();
    let new = s.commit(batch(&[], &[&bodies[1]])).unwrap();
    assert_eq!(s.events().unwrap(), [old[0].clone(), new[0].clone()]);
    assert!(s.verify().unwrap().is_ok());
    drop(s);
    let c = Connection::open(&path).unwrap();
    let rows: Vec<(i64, Option<i64>)> = c
        .prepare("SELECT encoding, size FROM events ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows, [(0, None), (1, Some(new[0].body.len() as i64))]);
    // Positions moved into their rebuilt table whole (schema 3), then split into their places
    // and names (schema 7), and read whole through the view.
    let positions: Vec<String> = c
        .prepare("SELECT position FROM positions")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        positions,
        ["file:test/0/".to_string() + &chain::content_hash(b"kept")]
    );
    let ddl: String = c
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'position_names'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(ddl.contains("WITHOUT ROWID"), "{ddl}");
    let v: String = c
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(v, sqlite::SCHEMA_VERSION.to_string());
    // A damaged old, plain body is still named.
    drop(c);
    flip(&path, "events", "body", "seq", &1i64, 10);
    let v = open_sqlite(&path).unwrap().verify().unwrap();
    assert_eq!(v.bad_event.unwrap().seq, 1);
}

#[test]
fn a_version_4_store_reads_verifies_and_chains_on() {
    let (_dir, path, events) = damaged_fixture();
    to_version_4(&path);
    let mut s = open_sqlite(&path).unwrap();
    assert_eq!(s.events().unwrap(), events);
    assert_eq!(s.events_from(2, 1).unwrap(), [events[1].clone()]);
    assert!(s.verify().unwrap().is_ok());
    // New rows are written the schema 5 way and link to the old ones.
    let more = s.commit(batch(&[], &["{\"n\":4}"])).unwrap();
    assert_eq!(more[0].prev_hash, events[2].hash);
    assert_eq!(s.events_from(4, 10).unwrap(), more);
    assert_eq!(s.events().unwrap()[..3], events[..]);
    let v = s.verify().unwrap();
    assert!(v.is_ok(), "{v}");
    assert_eq!((v.events_ok, v.head.as_str()), (4, more[0].hash.as_str()));
    drop(s);
    let c = Connection::open(&path).unwrap();
    let kinds: Vec<(String, String)> = c
        .prepare("SELECT typeof(prev_hash), typeof(hash) FROM events ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let old = ("text".to_string(), "text".to_string());
    let new = ("blob".to_string(), "blob".to_string());
    assert_eq!(kinds, [old.clone(), old.clone(), old, new]);
    drop(c);
    // Its messages, keyed by hex text, are found; one read again is not stored twice, and a
    // new position names it by that key; a new message is keyed by its 32 bytes.
    let mut s = open_sqlite(&path).unwrap();
    let old_key = msg("Subject: a\n\nfirst").content_hash().to_string();
    assert!(s.has_message(&old_key).unwrap());
    assert_eq!(
        s.message(&old_key).unwrap().unwrap(),
        b"Subject: a\n\nfirst"
    );
    let mut b = batch(&["Subject: a\n\nfirst", "Subject: c\n\nnew"], &[]);
    b.positions[0].0 = "file:again".into();
    let new_key = b.positions[1].1.clone();
    s.commit(b).unwrap();
    assert_eq!(s.position("file:again").unwrap(), Some(old_key.clone()));
    assert_eq!(
        s.position(&format!("file:test/1/{new_key}")).unwrap(),
        Some(new_key.clone())
    );
    assert!(s.verify().unwrap().is_ok());
    assert_eq!(s.verify().unwrap().messages_checked, 3);
    drop(s);
    let c = Connection::open(&path).unwrap();
    let keys: Vec<String> = c
        .prepare("SELECT typeof(content_hash) FROM messages ORDER BY rowid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(keys, ["text", "text", "blob"]);
    let fk: i64 = c
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(fk, 0);
    let v: String = c
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(v, sqlite::SCHEMA_VERSION.to_string());
    drop(c);
    // A new row's hash damaged after old rows is named; so is an old row's.
    flip(&path, "events", "hash", "seq", &4i64, 0);
    let v = open_sqlite(&path).unwrap().verify().unwrap();
    assert_eq!(v.bad_event.unwrap().seq, 4);
    flip(&path, "events", "hash", "seq", &4i64, 0);
    flip(&path, "events", "hash", "seq", &2i64, 0);
    let v = open_sqlite(&path).unwrap().verify().unwrap();
    assert_eq!(v.bad_event.unwrap().seq, 2);
}

#[test]
fn new_stores_use_the_chosen_page_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    drop(open_sqlite(&path).unwrap());
    let c = Connection::open(&path).unwrap();
    let size: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    assert_eq!(size, 4096);
}

#[test]
fn the_wal_shrinks_back_after_a_large_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let wal_len = || {
        std::fs::metadata(dir.path().join("s.sqlite-wal"))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let mut s = open_sqlite(&path).unwrap();
    // Noise does not compress: about 8 MiB of messages in one commit.
    let mut x: u64 = 1;
    let noise: Vec<String> = (0..64)
        .map(|_| {
            (0..128 * 1024)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    char::from(b'!' + (x % 90) as u8)
                })
                .collect()
        })
        .collect();
    let noise: Vec<&str> = noise.iter().map(String::as_str).collect();
    s.commit(batch(&noise, &["{}"])).unwrap();
    assert!(wal_len() > 6 << 20, "{}", wal_len());
    // Once checkpointed, the next commit restarts the log and cuts the file back.
    Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        .unwrap();
    s.commit(batch(&[], &["{}"])).unwrap();
    assert!(wal_len() <= 4 << 20, "{}", wal_len());
}

mod tables {
    use super::*;
    use crate::deciding::clock::Clock;
    use crate::deciding::tables::{self, ClockVersion, Delta, Version};
    use crate::domain::event::ClockKind;
    use crate::domain::ids::ClockId;
    use crate::domain::timefmt::parse;

    fn clock(deadline: &str) -> Clock {
        Clock {
            claimed: None,
            id: ClockId::revocation("crtsh:1"),
            kind: ClockKind::Revocation,
            case: None,
            target: Some("crtsh:1".into()),
            started_at: parse("2026-03-01T00:00:00Z").unwrap(),
            deadline: parse(deadline).unwrap(),
            basis: "default-24h".into(),
            matched: None,
            decided_by: None,
            stops: Vec::new(),
            acknowledged: None,
        }
    }

    fn version(as_of: &str, c: Option<&Clock>) -> Version {
        Version::Clock(ClockVersion {
            as_of: parse(as_of).unwrap(),
            id: ClockId::revocation("crtsh:1"),
            row: c.map(tables::clock_row),
        })
    }

    fn commit(s: &mut SqliteStore, truncate: Option<&str>, versions: Vec<Version>) {
        s.commit(Batch {
            tables: Delta {
                truncate_from: truncate.map(|t| parse(t).unwrap()),
                versions,
                complete: true,
                evaluated_at: None,
            },
            ..Batch::default()
        })
        .unwrap();
    }

    fn deadline_at(s: &SqliteStore, at: &str) -> Option<String> {
        s.clock_at("revocation:crtsh:1", parse(at).unwrap())
            .unwrap()
            .map(|c| crate::domain::timefmt::format(c.deadline))
    }

    fn rows(path: &std::path::Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM clocks", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_damaged_row_is_an_error_that_says_to_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let mut s = open_sqlite(&path).unwrap();
        let a = clock("2026-03-06T00:00:00Z");
        commit(
            &mut s,
            None,
            vec![version("2026-03-01T00:00:00Z", Some(&a))],
        );
        Connection::open(&path)
            .unwrap()
            .execute("UPDATE clocks SET body = X'7B'", [])
            .unwrap();
        let e = s
            .clock_at("revocation:crtsh:1", parse("2026-03-02T00:00:00Z").unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot be read") && e.contains("cprwatch rebuild"),
            "{e}"
        );
    }

    #[test]
    fn versions_are_kept_once_each_and_truncation_reopens_what_came_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let mut s = open_sqlite(&path).unwrap();
        let (a, b) = (clock("2026-03-06T00:00:00Z"), clock("2026-03-02T00:00:00Z"));
        commit(
            &mut s,
            None,
            vec![version("2026-03-01T00:00:00Z", Some(&a))],
        );
        // The same again later: nothing new.
        commit(
            &mut s,
            None,
            vec![version("2026-03-01T05:00:00Z", Some(&a))],
        );
        assert_eq!(rows(&path), 1);
        // A shorter window from noon on.
        commit(
            &mut s,
            None,
            vec![version("2026-03-01T12:00:00Z", Some(&b))],
        );
        assert_eq!(rows(&path), 2);
        assert_eq!(
            deadline_at(&s, "2026-03-01T11:59:59Z").as_deref(),
            Some("2026-03-06T00:00:00Z")
        );
        assert_eq!(
            deadline_at(&s, "2026-03-01T12:00:00Z").as_deref(),
            Some("2026-03-02T00:00:00Z")
        );
        assert_eq!(deadline_at(&s, "2026-02-28T00:00:00Z"), None);
        // A second version at the same moment equal to the one before: the first goes on.
        commit(
            &mut s,
            None,
            vec![version("2026-03-01T12:00:00Z", Some(&a))],
        );
        assert_eq!(rows(&path), 1);
        assert_eq!(
            deadline_at(&s, "2026-03-09T00:00:00Z").as_deref(),
            Some("2026-03-06T00:00:00Z")
        );
        // Noon again, then forget from eleven on: back to the first version, current.
        commit(
            &mut s,
            None,
            vec![version("2026-03-01T12:00:00Z", Some(&b))],
        );
        commit(&mut s, Some("2026-03-01T11:00:00Z"), vec![]);
        assert_eq!(rows(&path), 1);
        assert_eq!(
            deadline_at(&s, "2026-03-09T00:00:00Z").as_deref(),
            Some("2026-03-06T00:00:00Z")
        );
        // Gone from a moment on: no clock from then.
        commit(&mut s, None, vec![version("2026-03-01T13:00:00Z", None)]);
        assert_eq!(deadline_at(&s, "2026-03-01T13:00:00Z"), None);
        assert!(deadline_at(&s, "2026-03-01T12:59:59Z").is_some());
        assert_eq!(
            s.tables_through().unwrap(),
            Some(0),
            "complete deltas mark the tables complete through the log's head"
        );
    }

    #[test]
    fn the_answered_rows_of_open_revocation_clocks_are_read_as_of_the_moment_asked() {
        use crate::deciding::clock::{Stop, StopKind};
        use crate::domain::event::{Observation, ObservedStatus, RevocationSource};
        let dir = tempfile::tempdir().unwrap();
        let mut s = open_sqlite(&dir.path().join("s.sqlite")).unwrap();
        let open = clock("2026-03-02T00:00:00Z");
        let stopped = Clock {
            stops: vec![Stop {
                at: parse("2026-03-01T12:00:00Z").unwrap(),
                kind: StopKind::Done,
                by: "<c@ca.test>".into(),
            }],
            ..open.clone()
        };
        commit(
            &mut s,
            None,
            vec![version("2026-03-01T00:00:00Z", Some(&open))],
        );
        let answered = |target: &str| CheckRow {
            target: target.into(),
            certificate: Some(vec![1, 2, 3]),
            latest: vec![Observation {
                target: target.into(),
                source: RevocationSource::Ocsp,
                url: "http://ocsp.test/".into(),
                status: ObservedStatus::Good,
                at: parse("2026-03-01T01:00:00Z").unwrap(),
                revocation_time: None,
                reason: None,
                this_update: None,
                next_update: None,
                problem: None,
            }],
            ..CheckRow::default()
        };
        let targets = |s: &SqliteStore, at: &str| -> Vec<String> {
            s.check_rows_answered_open(parse(at).unwrap())
                .unwrap()
                .into_iter()
                .map(|r| r.target)
                .collect()
        };
        // Not yet answered: no row for the alerts.
        s.commit(Batch {
            checks: vec![CheckRow {
                target: "crtsh:1".into(),
                ..CheckRow::default()
            }],
            ..Batch::default()
        })
        .unwrap();
        assert!(targets(&s, "2026-03-01T02:00:00Z").is_empty());
        // Answered: its clock's row, without the certificate; never one without an open clock.
        s.commit(Batch {
            checks: vec![answered("crtsh:1"), answered("crtsh:2")],
            ..Batch::default()
        })
        .unwrap();
        let rows = s
            .check_rows_answered_open(parse("2026-03-01T02:00:00Z").unwrap())
            .unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].target, "crtsh:1");
        assert_eq!(rows[0].latest, answered("crtsh:1").latest);
        assert_eq!(rows[0].certificate, None);
        // Stopped at noon (a version from one o'clock): open before noon, asked then, not after.
        commit(
            &mut s,
            None,
            vec![version("2026-03-01T13:00:00Z", Some(&stopped))],
        );
        assert_eq!(targets(&s, "2026-03-01T13:00:00Z"), Vec::<String>::new());
        assert_eq!(
            targets(&s, "2026-03-01T12:59:59Z"),
            ["crtsh:1"],
            "the open version"
        );
        assert_eq!(targets(&s, "2026-03-01T11:59:59Z"), ["crtsh:1"]);
        assert_eq!(
            s.check_rows_answered().unwrap().len(),
            2,
            "every answered row"
        );
    }
}

/// A message and event bodies about it (as the engine writes them: they quote its content
/// hash and repeat its header), for bodies deflated against their message.
fn mail_and_events() -> (NewMessage, Vec<String>) {
    let m = msg(
        "From: Reporter <reporter4091@reporter6.test>\r\nTo: cpr@example-ca.test\r\n\
         Subject: Phishing site using your certificate 1230\r\n\
         Message-ID: <bench-1230.980170@reporter.test>\r\n\r\nHello,\r\n\
         Phishing at https://crt.sh/?id=1831779118\r\n",
    );
    let k = m.content_hash().to_string();
    let events = vec![
        format!(
            "{{\"recorded_at\":\"2026-11-29T21:37:41Z\",\"event\":{{\"type\":\"message_received\",\
             \"facts\":{{\"content_hash\":\"{k}\",\"message_id\":\"<bench-1230.980170@reporter.test>\",\
             \"from\":\"reporter4091@reporter6.test\",\"to\":[\"cpr@example-ca.test\"],\
             \"subject\":\"Phishing site using your certificate 1230\"}}}}}}"
        ),
        format!(
            "{{\"recorded_at\":\"2026-11-29T21:37:41Z\",\"event\":{{\"type\":\"case_opened\",\
             \"case\":\"CPR-2026-0001\",\"message\":\"{k}\",\
             \"message_id\":\"<bench-1230.980170@reporter.test>\",\
             \"reporter\":\"reporter4091@reporter6.test\",\
             \"subject\":\"Phishing site using your certificate 1230\"}}}}"
        ),
    ];
    (m, events)
}

fn encodings(path: &Path) -> Vec<i64> {
    Connection::open(path)
        .unwrap()
        .prepare("SELECT encoding FROM events ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A store whose first event is about no message, then two about a message of the same commit,
/// then one about it in a later commit (the message lately stored), then one in a commit of
/// another process (which reads the message back from the store).
fn mail_fixture() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    Vec<StoredEvent>,
    String,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let (m, bodies) = mail_and_events();
    let k = m.content_hash().to_string();
    let mut s = open_sqlite(&path).unwrap();
    let mut events = s
        .commit(Batch {
            positions: vec![("file:m".into(), k.clone())],
            messages: vec![m],
            events: [compressible_events()[0].clone()]
                .into_iter()
                .chain(bodies.iter().cloned())
                .map(String::into_bytes)
                .collect(),
            ..Batch::default()
        })
        .unwrap();
    events.extend(
        s.commit(batch(&[], &[&bodies[1].replace("0001", "0002")]))
            .unwrap(),
    );
    drop(s);
    let mut s = open_sqlite(&path).unwrap();
    events.extend(
        s.commit(batch(&[], &[&bodies[1].replace("0001", "0003")]))
            .unwrap(),
    );
    (dir, path, events, k)
}

#[test]
fn bodies_about_a_message_are_stored_against_it_and_read_back() {
    let (_dir, path, events, k) = mail_fixture();
    assert_eq!(encodings(&path), [1, 2, 2, 2, 2]);
    let s = open_sqlite(&path).unwrap();
    assert_eq!(s.events().unwrap(), events);
    assert_eq!(s.events_from(3, 1).unwrap(), [events[2].clone()]);
    assert!(s.verify().unwrap().is_ok());
    // The bodies are smaller than against the vocabulary alone.
    let c = Connection::open(&path).unwrap();
    for e in &events[1..] {
        let stored: Vec<u8> = c
            .query_row(
                "SELECT body FROM events WHERE seq = ?1",
                [e.seq as i64],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(hex::encode(&stored[..32]), k);
        let alone = body::deflated(&e.body).unwrap();
        assert!(
            stored.len() < alone.len(),
            "{} vs {}",
            stored.len(),
            alone.len()
        );
        // Tools reading the file with SQL get the canonical bytes too.
        assert_eq!(
            sqlite::event_body(&c, &stored, 2, Some(e.body.len() as i64)).unwrap(),
            e.body
        );
    }
}

#[test]
fn every_flipped_byte_of_a_body_stored_against_its_message_is_named() {
    let (_dir, path, events, _) = mail_fixture();
    for seq in [2i64, 4] {
        for at in 0..stored_len(&path, seq) {
            assert_flipped_body_is_named(&path, &events, seq, at);
        }
    }
    assert!(open_sqlite(&path).unwrap().verify().unwrap().is_ok());
}

#[test]
fn a_damaged_message_names_itself_and_the_events_stored_against_it() {
    let (_dir, path, _, k) = mail_fixture();
    flip(&path, "messages", "raw", "content_hash", &key(&k), 20);
    let v = open_sqlite(&path).unwrap().verify().unwrap();
    assert_eq!(v.bad_message.as_ref().unwrap().content_hash, k);
    let bad = v.bad_event.unwrap();
    assert_eq!(bad.seq, 2, "{}", bad.problem);
    assert!(
        bad.problem.contains(&format!("message {k} is corrupt")),
        "{}",
        bad.problem
    );
    // A message that is gone: the event says which one it needs.
    let (_dir, path, _, k) = mail_fixture();
    let c = Connection::open(&path).unwrap();
    c.execute_batch("PRAGMA foreign_keys = OFF; DELETE FROM position_names;")
        .unwrap();
    c.execute("DELETE FROM messages WHERE content_hash = ?1", [key(&k)])
        .unwrap();
    drop(c);
    let v = open_sqlite(&path).unwrap().verify().unwrap();
    let bad = v.bad_event.unwrap();
    assert_eq!(bad.seq, 2);
    assert!(
        bad.problem.contains(&k) && bad.problem.contains("does not hold"),
        "{}",
        bad.problem
    );
}

/// Commit `mail` with an event about each message (stored against the message's start).
fn commit_mail(s: &mut SqliteStore, mail: &[Vec<u8>]) -> Vec<StoredEvent> {
    let messages: Vec<NewMessage> = mail.iter().map(|m| NewMessage::new(m.clone())).collect();
    let events = messages
        .iter()
        .map(|m| {
            format!(
                "{{\"recorded_at\":\"2026-11-29T21:37:41Z\",\"event\":{{\"type\":\"message_received\",\
                 \"facts\":{{\"content_hash\":\"{}\",\"to\":[\"cpr@example-ca.test\"]}}}}}}",
                m.content_hash()
            )
            .into_bytes()
        })
        .collect();
    s.commit(Batch {
        positions: messages
            .iter()
            .map(|m| {
                (
                    format!("file:{}", m.content_hash()),
                    m.content_hash().to_string(),
                )
            })
            .collect(),
        messages,
        events,
        ..Batch::default()
    })
    .unwrap()
}

/// How many stored messages are zstd frames, and how many dictionaries the store holds.
fn zstd_rows(path: &Path) -> (i64, i64) {
    let c = Connection::open(path).unwrap();
    let frames = c
        .query_row(
            "SELECT COUNT(*) FROM messages WHERE substr(raw, 1, 4) = x'28b52ffd'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let dicts = c
        .query_row("SELECT COUNT(*) FROM dictionaries", [], |r| r.get(0))
        .unwrap();
    (frames, dicts)
}

#[test]
fn a_store_trains_a_dictionary_on_its_own_mail_and_reads_every_form() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let mail = super::message::tests::sample_mail(401);
    let mut s = open_sqlite(&path).unwrap();
    s.train_on(200);
    s.recompress_piece(100);
    let mut events = commit_mail(&mut s, &mail[..150]);
    // Too little mail: deflated as before.
    assert_eq!(zstd_rows(&path), (0, 0));
    let c = Connection::open(&path).unwrap();
    let first: Vec<rusqlite::types::Value> = c
        .prepare("SELECT content_hash FROM messages")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let first_bytes = || -> i64 {
        first
            .iter()
            .map(|k| {
                c.query_row(
                    "SELECT length(raw) FROM messages WHERE content_hash = ?1",
                    [k],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap()
            })
            .sum()
    };
    let deflated = first_bytes();
    // Enough: trained on the first 200 after this commit; the messages stored until then are
    // compressed against it, a piece of 100 after each commit.
    events.extend(commit_mail(&mut s, &mail[150..250]));
    assert_eq!(zstd_rows(&path), (100, 1));
    events.extend(commit_mail(&mut s, &mail[250..400]));
    assert_eq!(zstd_rows(&path), (350, 1));
    drop(s);
    // Opened again: the dictionary is the store's, read from it, and the older messages left
    // are compressed after the next commit.
    let mut s = open_sqlite(&path).unwrap();
    s.recompress_piece(100);
    events.extend(commit_mail(&mut s, &mail[400..]));
    assert_eq!(zstd_rows(&path), (401, 1));
    let v: Option<String> = c
        .query_row("SELECT value FROM meta WHERE key = 'recompress'", [], |r| {
            r.get(0)
        })
        .optional()
        .unwrap();
    assert_eq!(v, None, "nothing left to compress");
    for m in &mail {
        let k = chain::content_hash(m);
        assert_eq!(s.message(&k).unwrap().as_deref(), Some(&m[..]));
    }
    assert_eq!(s.events().unwrap(), events);
    assert!(s.verify().unwrap().is_ok());
    let zstd = first_bytes();
    assert!(
        zstd * 3 < deflated * 2,
        "{zstd} bytes against {deflated} deflated"
    );
    let free: i64 = c
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .unwrap();
    assert_eq!(free, 0, "the pages the older messages left are given back");
    drop(s);
    // A damaged dictionary: verify names a message compressed with it (read afresh, not as
    // this process read it before).
    let id: i64 = c
        .query_row("SELECT id FROM dictionaries", [], |r| r.get(0))
        .unwrap();
    flip(&path, "dictionaries", "content", "id", &id, 20);
    let v = open_sqlite(&path).unwrap().verify().unwrap();
    let bad = v.bad_message.expect("a damaged dictionary went unnoticed");
    assert!(
        mail.iter()
            .any(|m| chain::content_hash(m) == bad.content_hash)
    );
    flip(&path, "dictionaries", "content", "id", &id, 20); // undo
    assert!(open_sqlite(&path).unwrap().verify().unwrap().is_ok());
    // A dictionary gone: the message says which one it needs.
    c.execute("UPDATE dictionaries SET id = id + 1", [])
        .unwrap();
    let v = open_sqlite(&path).unwrap().verify().unwrap();
    let bad = v.bad_message.unwrap();
    assert!(
        bad.problem.contains(&format!("dictionary {id}")) && bad.problem.contains("does not hold"),
        "{}",
        bad.problem
    );
}

#[test]
fn a_version_5_store_opens_reads_verifies_and_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let mail = super::message::tests::sample_mail(260);
    let mut s = open_sqlite(&path).unwrap();
    let mut events = commit_mail(&mut s, &mail[..200]);
    drop(s);
    let c = Connection::open(&path).unwrap();
    c.execute_batch(
        "DROP TABLE dictionaries; UPDATE meta SET value = '5' WHERE key = 'schema_version';",
    )
    .unwrap();
    let mut s = open_sqlite(&path).unwrap();
    let v: String = c
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(v, sqlite::SCHEMA_VERSION.to_string());
    assert_eq!(s.events().unwrap(), events);
    assert!(s.verify().unwrap().is_ok());
    // Trained on the mail the old store holds, at its first commit.
    s.train_on(200);
    events.extend(commit_mail(&mut s, &mail[200..230]));
    assert_eq!(zstd_rows(&path), (230, 1));
    events.extend(commit_mail(&mut s, &mail[230..]));
    assert_eq!(zstd_rows(&path), (260, 1));
    assert_eq!(s.events().unwrap(), events);
    for m in &mail {
        assert_eq!(
            s.message(&chain::content_hash(m)).unwrap().as_deref(),
            Some(&m[..])
        );
    }
    assert!(s.verify().unwrap().is_ok());
}

#[test]
fn a_check_row_is_due_at_its_time_and_never_once_it_needs_no_more_checks() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = SqliteStore::open(&dir.path().join("s.sqlite")).unwrap();
    let t = |x: &str| crate::domain::timefmt::parse(x).unwrap();
    let row = |target: &str, due: Option<&str>| CheckRow {
        target: target.into(),
        next_due: due.map(t),
        ..CheckRow::default()
    };
    s.commit(Batch {
        checks: vec![
            row("sha256:aa", Some("2026-03-01T10:00:00Z")),
            row("sha256:bb", None),
        ],
        ..Batch::default()
    })
    .unwrap();
    let now = t("2026-03-01T10:00:00Z");
    assert_eq!(s.checks_due(now, 10).unwrap(), ["sha256:aa"]);
    assert!(
        s.checks_due(now - time::Duration::seconds(1), 10)
            .unwrap()
            .is_empty()
    );
    // "No further check" reads back as none, not as a time long past.
    let back = s.check_rows(&["sha256:bb".into()]).unwrap();
    assert_eq!(back[0].next_due, None);
    assert!(s.check_rows(&["sha256:cc".into()]).unwrap().is_empty());
}
