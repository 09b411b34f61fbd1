//! `cprwatch verify` over a real store: intact → exit 0; one flipped byte anywhere in the
//! event chain or in a stored message → exit 1 naming the event (`#N`) or the message.

mod common;

use std::path::Path;

use common::*;
use rusqlite::Connection;

/// A store with the revocation scenario ingested (inbox and sent).
fn ingested() -> Desk {
    let desk = Desk::with_store();
    let cfg = desk.config().display().to_string();
    let dir = scenario("revocation");
    for (role, sub) in [("inbox", "inbox"), ("sent", "sent")] {
        let o = desk.run(&[
            "ingest",
            "--config",
            &cfg,
            "--role",
            role,
            &dir.join(sub).display().to_string(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    desk
}

/// A copy of the store in a fresh desk, damaged by `damage`; returns `verify`'s output.
fn verify_damaged(src: &Desk, damage: impl FnOnce(&Connection)) -> std::process::Output {
    let copy = Desk::with_store();
    std::fs::copy(src.store(), copy.store()).unwrap();
    {
        let conn = Connection::open(copy.store()).unwrap();
        damage(&conn);
    }
    copy.run(&["verify", "--config", &copy.config().display().to_string()])
}

fn seqs(store: &Path) -> Vec<i64> {
    let conn = Connection::open(store).unwrap();
    let mut st = conn.prepare("SELECT seq FROM events ORDER BY seq").unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The content hashes of the stored messages, in hex whichever way a row keeps its key.
fn message_hashes(store: &Path) -> Vec<String> {
    let conn = Connection::open(store).unwrap();
    let mut st = conn
        .prepare(
            "SELECT CASE typeof(content_hash) WHEN 'blob' THEN lower(hex(content_hash)) \
             ELSE content_hash END AS h FROM messages ORDER BY h",
        )
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn flip_blob(
    conn: &Connection,
    table: &str,
    col: &str,
    key_col: &str,
    key: &dyn rusqlite::ToSql,
    pos: usize,
) {
    let sql = format!("SELECT {col} FROM {table} WHERE {key_col} = ?1");
    let mut b: Vec<u8> = conn.query_row(&sql, [key], |r| r.get(0)).unwrap();
    let i = pos.min(b.len() - 1);
    b[i] ^= 0x01;
    let sql = format!("UPDATE {table} SET {col} = ?1 WHERE {key_col} = ?2");
    assert_eq!(conn.execute(&sql, rusqlite::params![b, key]).unwrap(), 1);
}

/// A message's key as this version writes it: the 32 bytes of its content hash.
fn key(hash: &str) -> Vec<u8> {
    (0..hash.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hash[i..i + 2], 16).unwrap())
        .collect()
}

/// Make the rows what schema 4 wrote: hashes and message keys as hex TEXT, every row stating
/// its link (the store opens and verifies as it is; new rows keep them as 32-byte BLOBs, links
/// implied).
fn as_version_4(conn: &Connection) {
    // Every row's whole hash first (this version keeps only a check in most rows), read
    // through the store, which works them out.
    {
        use cprwatch::store::Store;
        let path = Path::new(conn.path().unwrap()).to_path_buf();
        let events = cprwatch::store::open_sqlite(&path)
            .unwrap()
            .events()
            .unwrap();
        for e in events {
            conn.execute(
                "UPDATE events SET hash = ?1 WHERE seq = ?2",
                rusqlite::params![key(&e.hash), e.seq as i64],
            )
            .unwrap();
        }
    }
    conn.execute_batch(
        "PRAGMA foreign_keys = OFF; \
         UPDATE messages SET content_hash = lower(hex(content_hash)) \
         WHERE typeof(content_hash) = 'blob'; \
         UPDATE position_names SET content_hash = lower(hex(content_hash)) \
         WHERE typeof(content_hash) = 'blob'; \
         UPDATE events SET hash = lower(hex(hash)) WHERE typeof(hash) = 'blob'; \
         UPDATE events SET prev_hash = coalesce( \
             (SELECT e.hash FROM events e WHERE e.seq = events.seq - 1), \
             '0000000000000000000000000000000000000000000000000000000000000000') \
         WHERE typeof(prev_hash) = 'blob'; \
         DROP TABLE fold; DROP TABLE receipts; DROP TABLE case_numbers; \
         DROP TABLE recorded; DROP INDEX clocks_due; DROP INDEX clocks_by_end; DELETE FROM meta WHERE key LIKE 'tables_%'; \
         UPDATE meta SET value = '4' WHERE key = 'schema_version';",
    )
    .unwrap();
}

/// State a link to another event's hash, as someone splicing the log would.
fn forge_link(conn: &Connection, seq: i64) {
    let other: Vec<u8> = conn
        .query_row(
            "SELECT CAST(hash AS BLOB) FROM events WHERE seq <> ?1 - 1 AND seq <> ?1 LIMIT 1",
            [seq],
            |r| r.get(0),
        )
        .unwrap();
    let other = match std::str::from_utf8(&other) {
        Ok(hex) if hex.len() == 64 => hex.to_string(),
        _ => other.iter().map(|b| format!("{b:02x}")).collect(),
    };
    let sql = "UPDATE events SET prev_hash = ?1 WHERE seq = ?2";
    assert_eq!(conn.execute(sql, rusqlite::params![other, seq]).unwrap(), 1);
}

fn flip_hex_text(conn: &Connection, col: &str, seq: i64, pos: usize) {
    let sql = format!("SELECT {col} FROM events WHERE seq = ?1");
    let s: String = conn.query_row(&sql, [seq], |r| r.get(0)).unwrap();
    let mut b = s.into_bytes();
    let i = pos.min(b.len() - 1);
    b[i] = if b[i] == b'0' { b'1' } else { b'0' };
    let s = String::from_utf8(b).unwrap();
    let sql = format!("UPDATE events SET {col} = ?1 WHERE seq = ?2");
    assert_eq!(conn.execute(&sql, rusqlite::params![s, seq]).unwrap(), 1);
}

#[test]
fn intact_store_verifies() {
    let desk = ingested();
    let o = desk.run(&["verify", "--config", &desk.config().display().to_string()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("ok:"),
        "{}",
        text(&o)
    );
    assert!(seqs(&desk.store()).len() >= 12, "every message is an event");
    assert_eq!(
        message_hashes(&desk.store()).len(),
        12,
        "11 inbox + 1 sent message stored"
    );
}

#[test]
fn a_store_written_by_schema_4_opens_and_verifies() {
    let desk = ingested();
    let o = verify_damaged(&desk, as_version_4);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn one_flipped_byte_in_an_event_is_named_by_its_seq() {
    let desk = ingested();
    let all = seqs(&desk.store());
    let picks = [all[0], all[all.len() / 2], *all.last().unwrap()];
    // Rows as this version writes them (hash a 32-byte BLOB, the link implied), and as
    // schema 4 wrote them (both hashes hex TEXT): every kind of damage is named.
    for version in [5, 4] {
        for &seq in &picks {
            for (col, pos) in [
                ("body", 0usize),
                ("body", 37),
                ("body", usize::MAX),
                ("prev_hash", 5),
                ("hash", 0),
                ("hash", 63),
            ] {
                let o = verify_damaged(&desk, |c| {
                    if version == 4 {
                        as_version_4(c);
                    }
                    match (col, version) {
                        ("body", _) => flip_blob(c, "events", "body", "seq", &seq, pos),
                        ("prev_hash", 5) => forge_link(c, seq),
                        ("hash", 5) => flip_blob(c, "events", "hash", "seq", &seq, pos),
                        _ => flip_hex_text(c, col, seq, pos),
                    }
                });
                let out = text(&o);
                assert_eq!(
                    o.status.code(),
                    Some(1),
                    "v{version} event #{seq} {col}[{pos}] damaged:\n{out}"
                );
                assert!(
                    String::from_utf8_lossy(&o.stdout).contains(&format!("#{seq}")),
                    "v{version} event #{seq} {col}[{pos}] damaged: verify should name #{seq}:\n{out}"
                );
            }
        }
    }
}

#[test]
fn one_flipped_byte_in_a_stored_message_names_the_message() {
    let desk = ingested();
    let hashes = message_hashes(&desk.store());
    for h in [
        &hashes[0],
        &hashes[hashes.len() / 2],
        hashes.last().unwrap(),
    ] {
        for (version, pos) in [
            (5, 2usize),
            (5, 100),
            (5, usize::MAX),
            (4, 2),
            (4, usize::MAX),
        ] {
            let o = verify_damaged(&desk, |c| {
                if version == 4 {
                    as_version_4(c);
                    flip_blob(c, "messages", "raw", "content_hash", h, pos)
                } else {
                    flip_blob(c, "messages", "raw", "content_hash", &key(h), pos)
                }
            });
            let out = text(&o);
            assert_eq!(
                o.status.code(),
                Some(1),
                "message {h} raw[{pos}] flipped:\n{out}"
            );
            assert!(
                String::from_utf8_lossy(&o.stdout).contains(h.as_str()),
                "message {h} raw[{pos}] flipped: verify should name it:\n{out}"
            );
        }
    }
}

#[test]
fn swapped_message_bodies_are_caught_by_their_content_hash() {
    // Each body still decompresses: only the content hash can tell.
    let desk = ingested();
    let hashes = message_hashes(&desk.store());
    let (a, b) = (&hashes[0], &hashes[1]);
    let o = verify_damaged(&desk, |c| {
        let get = |h: &String| -> (Vec<u8>, i64) {
            c.query_row(
                "SELECT raw, size FROM messages WHERE content_hash = ?1",
                [key(h)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
        };
        let (ra, sa) = get(a);
        let (rb, sb) = get(b);
        let set = |h: &String, raw: &Vec<u8>, size: i64| {
            c.execute(
                "UPDATE messages SET raw = ?1, size = ?2 WHERE content_hash = ?3",
                rusqlite::params![raw, size, key(h)],
            )
            .unwrap()
        };
        set(a, &rb, sb);
        set(b, &ra, sa);
    });
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(a.as_str()) || stdout.contains(b.as_str()),
        "{out}"
    );
}
