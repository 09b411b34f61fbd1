//! The SQLite side of the projection tables ([`crate::deciding::tables`]): keeping versions, and reading
//! what is valid at a moment.
//!
//! Every case item and clock row is valid from `valid_from` (a receipt time, in seconds) until
//! `valid_to` (exclusive; `NULL` while current). A new version closes the current one; a
//! version at the same moment replaces it in place; a version equal to the current one adds
//! nothing. So the rows are exactly the distinct versions, whatever order of ticks made them,
//! and a re-derivation from the log gives the same rows (`verify` compares them).
//!
//! The SQL is portable except `WITHOUT ROWID`, which only saves space.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use super::sqlite_fold::{hash_key, row_key};
use crate::deciding::tables::{
    self, CaseVersion, ClockVersion, Delta, Item, ItemKind, Version, secs,
};
use crate::domain::event::EventIndex;

/// Schema 4: the projection tables and the event index.
pub(super) const SCHEMA_V4: &str = "
CREATE TABLE cases (
    id        TEXT PRIMARY KEY,
    ord       INTEGER NOT NULL,
    opened_at INTEGER NOT NULL,
    header    BLOB NOT NULL
);
CREATE INDEX cases_by_ord ON cases (ord);
CREATE TABLE case_items (
    case_id    TEXT NOT NULL,
    kind       INTEGER NOT NULL,
    item       TEXT NOT NULL,
    valid_from INTEGER NOT NULL,
    valid_to   INTEGER,
    ord        INTEGER NOT NULL,
    body       BLOB NOT NULL,
    PRIMARY KEY (case_id, kind, item, valid_from)
) WITHOUT ROWID;
CREATE INDEX case_items_by_clock ON case_items (item) WHERE kind = 3;
CREATE TABLE clocks (
    id         TEXT NOT NULL,
    valid_from INTEGER NOT NULL,
    valid_to   INTEGER,
    stop_key   INTEGER NOT NULL,
    deadline   INTEGER NOT NULL,
    body       BLOB NOT NULL,
    PRIMARY KEY (id, valid_from)
) WITHOUT ROWID;
CREATE INDEX clocks_open ON clocks (stop_key) WHERE valid_to IS NULL;
CREATE TABLE case_names (
    name_key INTEGER NOT NULL,
    case_id  TEXT NOT NULL,
    since    INTEGER NOT NULL,
    PRIMARY KEY (name_key, case_id)
) WITHOUT ROWID;
CREATE TABLE event_refs (
    ref_key INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    PRIMARY KEY (ref_key, seq)
) WITHOUT ROWID;
";

/// Tables that hold the projection (not the log): what `rebuild` empties and `verify` compares.
pub(super) const PROJECTION_TABLES: [&str; 5] =
    ["cases", "case_items", "clocks", "case_names", "fold"];

/// Tables that index the log, written with each commit ([`index_events`]): what `rebuild
/// --reindex` empties and `verify` compares with an index made afresh.
pub(super) const INDEX_TABLES: [&str; 4] = ["event_refs", "receipts", "case_numbers", "recorded"];

fn sql(action: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sql { action, source }
}

const ACTION: &str = "update cases and clocks";

pub(super) fn meta_get(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")
        .and_then(|mut st| st.query_row(params![key], |r| r.get(0)).optional())
        .map_err(sql("read meta"))
}

pub(super) fn meta_set(conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .and_then(|mut st| st.execute(params![key, value]))
    .map(drop)
    .map_err(sql("write meta"))
}

/// Index each event by what it names, a received message by its place in receipt order, an
/// opened case by its founder.
pub(super) fn index_events(
    conn: &Connection,
    events: &[(u64, &EventIndex)],
) -> Result<(), StoreError> {
    let mut refs = conn
        .prepare_cached(
            "INSERT INTO event_refs (ref_key, seq) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )
        .map_err(sql(ACTION))?;
    let mut receipts = conn
        .prepare_cached(
            "INSERT INTO receipts (received_at, staff, content_hash, seq) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT DO NOTHING",
        )
        .map_err(sql(ACTION))?;
    let mut numbers = conn
        .prepare_cached(
            "INSERT INTO case_numbers (founder, year, number) VALUES (?1, ?2, ?3) \
             ON CONFLICT (founder) DO UPDATE SET year = excluded.year, number = excluded.number",
        )
        .map_err(sql(ACTION))?;
    let mut put = conn
        .prepare_cached(
            "INSERT INTO recorded (space, key, value) VALUES (?1, ?2, ?3) \
             ON CONFLICT (space, key) DO UPDATE SET value = excluded.value",
        )
        .map_err(sql(ACTION))?;
    let mut delete = conn
        .prepare_cached("DELETE FROM recorded WHERE space = ?1 AND key = ?2")
        .map_err(sql(ACTION))?;
    for (seq, index) in events {
        for (space, key, value) in &index.recorded {
            match value {
                Some(v) => put.execute(params![space, row_key(key), v]),
                None => delete.execute(params![space, row_key(key)]),
            }
            .map_err(sql(ACTION))?;
        }
        for r in &index.refs {
            refs.execute(params![tables::name_key(r), *seq as i64])
                .map_err(sql(ACTION))?;
        }
        if let Some(r) = &index.receipt {
            receipts
                .execute(params![
                    r.at_nanos,
                    r.staff,
                    hash_key(&r.content_hash),
                    *seq as i64
                ])
                .map_err(sql(ACTION))?;
        }
        if let Some((founder, case)) = &index.opened
            && let Some((year, number)) = case.year_and_number()
        {
            numbers
                .execute(params![hash_key(founder), year, number])
                .map_err(sql(ACTION))?;
        }
    }
    Ok(())
}

/// Apply a delta: forget from its truncation point, then keep each version.
pub(super) fn apply(conn: &Connection, delta: &Delta) -> Result<(), StoreError> {
    let mut latest: i64 = meta_get(conn, "tables_latest")?
        .and_then(|v| v.parse().ok())
        .unwrap_or(i64::MIN);
    if let Some(t) = delta.truncate_from {
        let t = secs(t);
        truncate(conn, t)?;
        latest = latest.min(t);
    }
    for v in &delta.versions {
        latest = latest.max(secs(v.as_of()));
        match v {
            Version::Clock(c) => put_clock(conn, c)?,
            Version::Case(c) => put_case(conn, c)?,
            Version::Fold(f) => super::sqlite_fold::put(conn, f)?,
        }
    }
    if latest != i64::MIN {
        meta_set(conn, "tables_latest", &latest.to_string())?;
    }
    if let Some(t) = delta.evaluated_at {
        meta_set(conn, "evaluated_at", &t.unix_timestamp_nanos().to_string())?;
    }
    Ok(())
}

/// Forget every version from `t` on: rows that began then are deleted, rows that ended then
/// are current again.
fn truncate(conn: &Connection, t: i64) -> Result<(), StoreError> {
    for stmt in [
        "DELETE FROM cases WHERE opened_at >= ?1",
        "DELETE FROM case_items WHERE valid_from >= ?1",
        "UPDATE case_items SET valid_to = NULL WHERE valid_to >= ?1",
        "DELETE FROM clocks WHERE valid_from >= ?1",
        "UPDATE clocks SET valid_to = NULL WHERE valid_to >= ?1",
        "DELETE FROM case_names WHERE since >= ?1",
    ] {
        conn.execute(stmt, params![t]).map_err(sql(ACTION))?;
    }
    super::sqlite_fold::truncate(conn, t)
}

fn put_clock(conn: &Connection, v: &ClockVersion) -> Result<(), StoreError> {
    let at = secs(v.as_of);
    let current: Option<(i64, i64, i64, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT valid_from, stop_key, deadline, body FROM clocks \
             WHERE id = ?1 AND valid_to IS NULL",
        )
        .and_then(|mut st| {
            st.query_row(params![v.id.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
        })
        .map_err(sql(ACTION))?;
    let same = |row: &tables::ClockRow, c: &(i64, i64, i64, Vec<u8>)| {
        row.stop_key == c.1 && row.deadline == c.2 && row.body == c.3
    };
    match (&v.row, current) {
        (None, None) => Ok(()),
        (Some(row), Some(c)) if same(row, &c) => Ok(()),
        (row, Some(c)) if c.0 == at => {
            // A second version at the same moment replaces the first; if it equals the one
            // before, that one simply goes on.
            conn.prepare_cached("DELETE FROM clocks WHERE id = ?1 AND valid_from = ?2")
                .and_then(|mut st| st.execute(params![v.id.as_str(), at]))
                .map_err(sql(ACTION))?;
            let before: Option<(i64, i64, i64, Vec<u8>)> = conn
                .prepare_cached(
                    "SELECT valid_from, stop_key, deadline, body FROM clocks \
                     WHERE id = ?1 AND valid_to = ?2",
                )
                .and_then(|mut st| {
                    st.query_row(params![v.id.as_str(), at], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .optional()
                })
                .map_err(sql(ACTION))?;
            match (row, before) {
                (Some(row), Some(b)) if same(row, &b) => conn
                    .prepare_cached(
                        "UPDATE clocks SET valid_to = NULL WHERE id = ?1 AND valid_from = ?2",
                    )
                    .and_then(|mut st| st.execute(params![v.id.as_str(), b.0]))
                    .map(drop)
                    .map_err(sql(ACTION)),
                (Some(row), _) => insert_clock(conn, v.id.as_str(), at, row),
                (None, _) => Ok(()),
            }
        }
        (row, current) => {
            if current.is_some() {
                conn.prepare_cached(
                    "UPDATE clocks SET valid_to = ?2 WHERE id = ?1 AND valid_to IS NULL",
                )
                .and_then(|mut st| st.execute(params![v.id.as_str(), at]))
                .map_err(sql(ACTION))?;
            }
            match row {
                Some(row) => insert_clock(conn, v.id.as_str(), at, row),
                None => Ok(()),
            }
        }
    }
}

fn insert_clock(
    conn: &Connection,
    id: &str,
    at: i64,
    row: &tables::ClockRow,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO clocks (id, valid_from, valid_to, stop_key, deadline, body) \
         VALUES (?1, ?2, NULL, ?3, ?4, ?5)",
    )
    .and_then(|mut st| st.execute(params![id, at, row.stop_key, row.deadline, row.body]))
    .map(drop)
    .map_err(sql(ACTION))
}

type ItemKey = (i64, String);

fn put_case(conn: &Connection, v: &CaseVersion) -> Result<(), StoreError> {
    let at = secs(v.as_of);
    conn.prepare_cached(
        "INSERT INTO cases (id, ord, opened_at, header) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (id) DO UPDATE SET ord = excluded.ord, opened_at = excluded.opened_at, \
         header = excluded.header",
    )
    .and_then(|mut st| st.execute(params![v.id.as_str(), v.ord, secs(v.opened_at), v.header]))
    .map_err(sql(ACTION))?;
    let mut current: HashMap<ItemKey, (i64, i64, Vec<u8>)> = HashMap::new();
    {
        let mut st = conn
            .prepare_cached(
                "SELECT kind, item, valid_from, ord, body FROM case_items \
                 WHERE case_id = ?1 AND valid_to IS NULL",
            )
            .map_err(sql(ACTION))?;
        let rows = st
            .query_map(params![v.id.as_str()], |r| {
                Ok((
                    (r.get(0)?, item_text(r.get_ref(1)?)),
                    (r.get(2)?, r.get(3)?, r.get(4)?),
                ))
            })
            .map_err(sql(ACTION))?;
        for row in rows {
            let (k, val) = row.map_err(sql(ACTION))?;
            current.insert(k, val);
        }
    }
    for it in &v.items {
        let key = (it.kind.code(), it.key.clone());
        match current.remove(&key) {
            Some((_, ord, body)) if ord == it.ord && body == it.body => {}
            Some((from, _, _)) if from == at => {
                delete_item(conn, v.id.as_str(), &key, at)?;
                let before = item_ending(conn, v.id.as_str(), &key, at)?;
                match before {
                    Some((bfrom, bord, bbody)) if bord == it.ord && bbody == it.body => {
                        reopen_item(conn, v.id.as_str(), &key, bfrom)?
                    }
                    _ => insert_item(conn, v.id.as_str(), it, at)?,
                }
            }
            Some(_) => {
                close_item(conn, v.id.as_str(), &key, at)?;
                insert_item(conn, v.id.as_str(), it, at)?;
            }
            None => insert_item(conn, v.id.as_str(), it, at)?,
        }
    }
    // What the case no longer lists ends here.
    for (key, (from, _, _)) in current {
        if from == at {
            delete_item(conn, v.id.as_str(), &key, at)?;
        } else {
            close_item(conn, v.id.as_str(), &key, at)?;
        }
    }
    let mut names = conn
        .prepare_cached(
            "INSERT INTO case_names (name_key, case_id, since) VALUES (?1, ?2, ?3) \
             ON CONFLICT DO NOTHING",
        )
        .map_err(sql(ACTION))?;
    for n in &v.names {
        names
            .execute(params![tables::name_key(n), v.id.as_str(), at])
            .map_err(sql(ACTION))?;
    }
    Ok(())
}

/// An item's key as `case_items` keeps it: a content hash (a message's) as its 32 bytes,
/// anything else as its text. Half the size of the hex digits, in the primary key of the
/// largest table.
fn item_value(key: &str) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    // Lowercase only, so that reading it back gives the same text.
    if key.len() == 64 && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Value::Blob(super::sqlite_fold::hash_key(key))
    } else {
        Value::Text(key.to_string())
    }
}

/// An item's key as [`item_value`] stored it, back as text.
fn item_text(v: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Blob(b) => super::sqlite_fold::hash_hex(b),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Null => String::new(),
    }
}

fn insert_item(conn: &Connection, case: &str, it: &Item, at: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO case_items (case_id, kind, item, valid_from, valid_to, ord, body) \
         VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6)",
    )
    .and_then(|mut st| {
        st.execute(params![
            case,
            it.kind.code(),
            item_value(&it.key),
            at,
            it.ord,
            it.body
        ])
    })
    .map(drop)
    .map_err(sql(ACTION))
}

fn close_item(conn: &Connection, case: &str, key: &ItemKey, at: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE case_items SET valid_to = ?4 \
         WHERE case_id = ?1 AND kind = ?2 AND item = ?3 AND valid_to IS NULL",
    )
    .and_then(|mut st| st.execute(params![case, key.0, item_value(&key.1), at]))
    .map(drop)
    .map_err(sql(ACTION))
}

fn delete_item(conn: &Connection, case: &str, key: &ItemKey, at: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "DELETE FROM case_items WHERE case_id = ?1 AND kind = ?2 AND item = ?3 AND valid_from = ?4",
    )
    .and_then(|mut st| st.execute(params![case, key.0, item_value(&key.1), at]))
    .map(drop)
    .map_err(sql(ACTION))
}

fn reopen_item(conn: &Connection, case: &str, key: &ItemKey, from: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE case_items SET valid_to = NULL \
         WHERE case_id = ?1 AND kind = ?2 AND item = ?3 AND valid_from = ?4",
    )
    .and_then(|mut st| st.execute(params![case, key.0, item_value(&key.1), from]))
    .map(drop)
    .map_err(sql(ACTION))
}

/// The version of an item that ended at `at`, if any.
fn item_ending(
    conn: &Connection,
    case: &str,
    key: &ItemKey,
    at: i64,
) -> Result<Option<(i64, i64, Vec<u8>)>, StoreError> {
    conn.prepare_cached(
        "SELECT valid_from, ord, body FROM case_items \
         WHERE case_id = ?1 AND kind = ?2 AND item = ?3 AND valid_to = ?4",
    )
    .and_then(|mut st| {
        st.query_row(params![case, key.0, item_value(&key.1), at], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()
    })
    .map_err(sql(ACTION))
}

/// A case's header: its place among cases, when it opened, and the encoded header.
pub(super) struct CaseRow {
    pub ord: i64,
    pub opened_at: i64,
    pub header: Vec<u8>,
}

pub(super) fn case_row(conn: &Connection, id: &str) -> Result<Option<CaseRow>, StoreError> {
    conn.prepare_cached("SELECT ord, opened_at, header FROM cases WHERE id = ?1")
        .and_then(|mut st| {
            st.query_row(params![id], |r| {
                Ok(CaseRow {
                    ord: r.get(0)?,
                    opened_at: r.get(1)?,
                    header: r.get(2)?,
                })
            })
            .optional()
        })
        .map_err(sql("read case"))
}

/// A case's items valid at `at`, in the order the case lists them.
pub(super) fn case_items(conn: &Connection, id: &str, at: i64) -> Result<Vec<Item>, StoreError> {
    let mut st = conn
        .prepare_cached(
            "SELECT kind, item, ord, body FROM case_items WHERE case_id = ?1 \
             AND valid_from <= ?2 AND (valid_to IS NULL OR valid_to > ?2) ORDER BY kind, ord",
        )
        .map_err(sql("read case"))?;
    let rows = st
        .query_map(params![id, at], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                item_text(r.get_ref(1)?),
                r.get(2)?,
                r.get(3)?,
            ))
        })
        .map_err(sql("read case"))?;
    let mut out = Vec::new();
    for row in rows {
        let (kind, key, ord, body) = row.map_err(sql("read case"))?;
        // An unknown kind is from a newer cprwatch: skipped, as the version check says.
        if let Some(kind) = ItemKind::from_code(kind) {
            out.push(Item {
                kind,
                key,
                ord,
                body,
            });
        }
    }
    Ok(out)
}

/// A clock's row valid at `at`.
pub(super) fn clock_at(
    conn: &Connection,
    id: &str,
    at: i64,
) -> Result<Option<Vec<u8>>, StoreError> {
    conn.prepare_cached(
        "SELECT body FROM clocks WHERE id = ?1 AND valid_from <= ?2 \
         AND (valid_to IS NULL OR valid_to > ?2)",
    )
    .and_then(|mut st| st.query_row(params![id, at], |r| r.get(0)).optional())
    .map_err(sql("read clock"))
}

/// Ids of the clocks open at `at` (no stop by then). `current` says `at` is at or after every
/// version's start, so the current rows are the ones valid then and the index answers.
pub(super) fn open_clocks(
    conn: &Connection,
    at: i64,
    current: bool,
) -> Result<Vec<String>, StoreError> {
    let q = if current {
        "SELECT id FROM clocks WHERE valid_to IS NULL AND stop_key > ?1"
    } else {
        // The two halves, so that each is answered by its index (`clocks_open` holds the
        // current versions, `clocks_by_end` the ended ones).
        "SELECT id FROM clocks WHERE valid_to IS NULL AND valid_from <= ?1 AND stop_key > ?1 \
         UNION ALL \
         SELECT id FROM clocks WHERE valid_to > ?1 AND valid_from <= ?1 AND stop_key > ?1"
    };
    let mut st = conn.prepare_cached(q).map_err(sql("read open clocks"))?;
    st.query_map(params![at], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(sql("read open clocks"))
}

/// The cases that list a clock at `at`.
pub(super) fn cases_of_clock(
    conn: &Connection,
    clock: &str,
    at: i64,
) -> Result<Vec<String>, StoreError> {
    let mut st = conn
        .prepare_cached(
            "SELECT case_id FROM case_items WHERE kind = 3 AND item = ?1 \
             AND valid_from <= ?2 AND (valid_to IS NULL OR valid_to > ?2)",
        )
        .map_err(sql("read cases of a clock"))?;
    st.query_map(params![clock, at], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(sql("read cases of a clock"))
}

/// The cases a name was ever seen in (possibly a few more: the caller checks).
pub(super) fn cases_named(conn: &Connection, name: &str) -> Result<Vec<String>, StoreError> {
    let mut st = conn
        .prepare_cached("SELECT case_id FROM case_names WHERE name_key = ?1")
        .map_err(sql("search"))?;
    st.query_map(params![tables::name_key(name)], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(sql("search"))
}

/// The cases opened in `[from, to)` (seconds), in case order. A scan of `cases`, one row per
/// case: small beside the log, and read once per audit.
pub(super) fn cases_opened(
    conn: &Connection,
    from: i64,
    to: i64,
) -> Result<Vec<String>, StoreError> {
    let mut st = conn
        .prepare_cached(
            "SELECT id FROM cases WHERE opened_at >= ?1 AND opened_at < ?2 ORDER BY ord, id",
        )
        .map_err(sql("read cases opened in a period"))?;
    st.query_map(params![from, to], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(sql("read cases opened in a period"))
}

/// Seqs of the events that name `r` (possibly a few more: the caller checks).
pub(super) fn events_naming(conn: &Connection, r: &str) -> Result<Vec<u64>, StoreError> {
    let mut st = conn
        .prepare_cached("SELECT seq FROM event_refs WHERE ref_key = ?1")
        .map_err(sql("read events of a case"))?;
    st.query_map(params![tables::name_key(r)], |r| r.get::<_, i64>(0))
        .and_then(|rows| rows.map(|r| r.map(|s| s as u64)).collect())
        .map_err(sql("read events of a case"))
}
