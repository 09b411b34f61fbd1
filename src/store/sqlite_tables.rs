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

use super::db::{Cell, Db, DbError, Param, Row, at, params};

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

const ACTION: &str = "update cases and clocks";

pub(super) fn meta_get(db: &mut dyn Db, key: &str) -> Result<Option<String>, StoreError> {
    db.query_opt("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
        r.text(0)
    })
    .map_err(at("read meta"))
}

pub(super) fn meta_set(db: &mut dyn Db, key: &str, value: &str) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )
    .map(drop)
    .map_err(at("write meta"))
}

/// Index each event by what it names, a received message by its place in receipt order, an
/// opened case by its founder.
pub(super) fn index_events(
    db: &mut dyn Db,
    events: &[(u64, &EventIndex)],
) -> Result<(), StoreError> {
    for (seq, index) in events {
        let seq = i64::try_from(*seq).unwrap_or(i64::MAX);
        for (space, key, value) in &index.recorded {
            let key = row_key(key);
            match value {
                Some(v) => db.execute(
                    "INSERT INTO recorded (space, key, value) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (space, key) DO UPDATE SET value = excluded.value",
                    params![*space, &key, v],
                ),
                None => db.execute(
                    "DELETE FROM recorded WHERE space = ?1 AND key = ?2",
                    params![*space, &key],
                ),
            }
            .map_err(at(ACTION))?;
        }
        for r in &index.refs {
            db.execute(
                "INSERT INTO event_refs (ref_key, seq) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![tables::name_key(r), seq],
            )
            .map_err(at(ACTION))?;
        }
        if let Some(r) = &index.receipt {
            db.execute(
                "INSERT INTO receipts (received_at, staff, content_hash, seq) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                params![r.at_nanos, r.staff, &hash_key(&r.content_hash), seq],
            )
            .map_err(at(ACTION))?;
        }
        if let Some((founder, case)) = &index.opened
            && let Some((year, number)) = case.year_and_number()
        {
            db.execute(
                "INSERT INTO case_numbers (founder, year, number) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (founder) DO UPDATE SET year = excluded.year, \
                 number = excluded.number",
                params![&hash_key(founder), i64::from(year), number],
            )
            .map_err(at(ACTION))?;
        }
    }
    Ok(())
}

/// Apply a delta: forget from its truncation point, then keep each version.
pub(super) fn apply(db: &mut dyn Db, delta: &Delta) -> Result<(), StoreError> {
    let mut latest: i64 = meta_get(db, "tables_latest")?
        .and_then(|v| v.parse().ok())
        .unwrap_or(i64::MIN);
    if let Some(t) = delta.truncate_from {
        let t = secs(t);
        truncate(db, t)?;
        latest = latest.min(t);
    }
    for v in &delta.versions {
        latest = latest.max(secs(v.as_of()));
        match v {
            Version::Clock(c) => put_clock(db, c)?,
            Version::Case(c) => put_case(db, c)?,
            Version::Fold(f) => super::sqlite_fold::put(db, f)?,
        }
    }
    if latest != i64::MIN {
        meta_set(db, "tables_latest", &latest.to_string())?;
    }
    if let Some(t) = delta.evaluated_at {
        meta_set(db, "evaluated_at", &t.unix_timestamp_nanos().to_string())?;
    }
    Ok(())
}

/// Forget every version from `t` on: rows that began then are deleted, rows that ended then
/// are current again.
fn truncate(db: &mut dyn Db, t: i64) -> Result<(), StoreError> {
    for stmt in [
        "DELETE FROM cases WHERE opened_at >= ?1",
        "DELETE FROM case_items WHERE valid_from >= ?1",
        "UPDATE case_items SET valid_to = NULL WHERE valid_to >= ?1",
        "DELETE FROM clocks WHERE valid_from >= ?1",
        "UPDATE clocks SET valid_to = NULL WHERE valid_to >= ?1",
        "DELETE FROM case_names WHERE since >= ?1",
    ] {
        db.execute(stmt, params![t]).map_err(at(ACTION))?;
    }
    super::sqlite_fold::truncate(db, t)
}

type ClockCells = (i64, i64, i64, Vec<u8>);

fn clock_cells(r: &dyn Row) -> Result<ClockCells, DbError> {
    Ok((r.int(0)?, r.int(1)?, r.int(2)?, r.blob(3)?))
}

fn put_clock(db: &mut dyn Db, v: &ClockVersion) -> Result<(), StoreError> {
    let at_ = secs(v.as_of);
    let id = v.id.as_str();
    let current = db
        .query_opt(
            "SELECT valid_from, stop_key, deadline, body FROM clocks \
             WHERE id = ?1 AND valid_to IS NULL",
            params![id],
            clock_cells,
        )
        .map_err(at(ACTION))?;
    let same = |row: &tables::ClockRow, c: &ClockCells| {
        row.stop_key == c.1 && row.deadline == c.2 && row.body == c.3
    };
    match (&v.row, current) {
        (None, None) => Ok(()),
        (Some(row), Some(c)) if same(row, &c) => Ok(()),
        (row, Some(c)) if c.0 == at_ => {
            // A second version at the same moment replaces the first; if it equals the one
            // before, that one simply goes on.
            db.execute(
                "DELETE FROM clocks WHERE id = ?1 AND valid_from = ?2",
                params![id, at_],
            )
            .map_err(at(ACTION))?;
            let before = db
                .query_opt(
                    "SELECT valid_from, stop_key, deadline, body FROM clocks \
                     WHERE id = ?1 AND valid_to = ?2",
                    params![id, at_],
                    clock_cells,
                )
                .map_err(at(ACTION))?;
            match (row, before) {
                (Some(row), Some(b)) if same(row, &b) => db
                    .execute(
                        "UPDATE clocks SET valid_to = NULL WHERE id = ?1 AND valid_from = ?2",
                        params![id, b.0],
                    )
                    .map(drop)
                    .map_err(at(ACTION)),
                (Some(row), _) => insert_clock(db, id, at_, row),
                (None, _) => Ok(()),
            }
        }
        (row, current) => {
            if current.is_some() {
                db.execute(
                    "UPDATE clocks SET valid_to = ?2 WHERE id = ?1 AND valid_to IS NULL",
                    params![id, at_],
                )
                .map_err(at(ACTION))?;
            }
            match row {
                Some(row) => insert_clock(db, id, at_, row),
                None => Ok(()),
            }
        }
    }
}

fn insert_clock(
    db: &mut dyn Db,
    id: &str,
    at_: i64,
    row: &tables::ClockRow,
) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO clocks (id, valid_from, valid_to, stop_key, deadline, body) \
         VALUES (?1, ?2, NULL, ?3, ?4, ?5)",
        params![id, at_, row.stop_key, row.deadline, &row.body],
    )
    .map(drop)
    .map_err(at(ACTION))
}

type ItemKey = (i64, String);

fn put_case(db: &mut dyn Db, v: &CaseVersion) -> Result<(), StoreError> {
    let at_ = secs(v.as_of);
    let id = v.id.as_str();
    db.execute(
        "INSERT INTO cases (id, ord, opened_at, header) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (id) DO UPDATE SET ord = excluded.ord, opened_at = excluded.opened_at, \
         header = excluded.header",
        params![id, v.ord, secs(v.opened_at), &v.header],
    )
    .map_err(at(ACTION))?;
    let mut current: HashMap<ItemKey, (i64, i64, Vec<u8>)> = db
        .query(
            "SELECT kind, item, valid_from, ord, body FROM case_items \
             WHERE case_id = ?1 AND valid_to IS NULL",
            params![id],
            |r| {
                Ok((
                    (r.int(0)?, item_text(r.cell(1)?)),
                    (r.int(2)?, r.int(3)?, r.blob(4)?),
                ))
            },
        )
        .map_err(at(ACTION))?
        .into_iter()
        .collect();
    for it in &v.items {
        let key = (it.kind.code(), it.key.clone());
        match current.remove(&key) {
            Some((_, ord, body)) if ord == it.ord && body == it.body => {}
            Some((from, _, _)) if from == at_ => {
                delete_item(db, id, &key, at_)?;
                let before = item_ending(db, id, &key, at_)?;
                match before {
                    Some((bfrom, bord, bbody)) if bord == it.ord && bbody == it.body => {
                        reopen_item(db, id, &key, bfrom)?
                    }
                    _ => insert_item(db, id, it, at_)?,
                }
            }
            Some(_) => {
                close_item(db, id, &key, at_)?;
                insert_item(db, id, it, at_)?;
            }
            None => insert_item(db, id, it, at_)?,
        }
    }
    // What the case no longer lists ends here.
    for (key, (from, _, _)) in current {
        if from == at_ {
            delete_item(db, id, &key, at_)?;
        } else {
            close_item(db, id, &key, at_)?;
        }
    }
    for n in &v.names {
        db.execute(
            "INSERT INTO case_names (name_key, case_id, since) VALUES (?1, ?2, ?3) \
             ON CONFLICT DO NOTHING",
            params![tables::name_key(n), id, at_],
        )
        .map_err(at(ACTION))?;
    }
    Ok(())
}

/// An item's key as `case_items` keeps it: a content hash (a message's) as its 32 bytes,
/// anything else as its text. Half the size of the hex digits, in the primary key of the
/// largest table. (PostgreSQL's column is text: [`super::db::Pg`] sends the bytes as the hex
/// they came from.)
enum ItemValue {
    Hash(Vec<u8>),
    Text(String),
}

impl ItemValue {
    fn of(key: &str) -> ItemValue {
        // Lowercase only, so that reading it back gives the same text.
        if key.len() == 64 && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            ItemValue::Hash(hash_key(key))
        } else {
            ItemValue::Text(key.to_string())
        }
    }

    fn param(&self) -> Param<'_> {
        match self {
            ItemValue::Hash(b) => Param::Blob(b),
            ItemValue::Text(t) => Param::Text(t),
        }
    }
}

/// An item's key as [`ItemValue`] stored it, back as text.
fn item_text(v: Cell<'_>) -> String {
    match v {
        Cell::Blob(b) => super::sqlite_fold::hash_hex(b),
        Cell::Text(t) => t.to_string(),
        Cell::Int(i) => i.to_string(),
        Cell::Null => String::new(),
    }
}

fn insert_item(db: &mut dyn Db, case: &str, it: &Item, at_: i64) -> Result<(), StoreError> {
    let item = ItemValue::of(&it.key);
    db.execute(
        "INSERT INTO case_items (case_id, kind, item, valid_from, valid_to, ord, body) \
         VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6)",
        &[
            case.into(),
            it.kind.code().into(),
            item.param(),
            at_.into(),
            it.ord.into(),
            (&it.body).into(),
        ],
    )
    .map(drop)
    .map_err(at(ACTION))
}

/// Run `sql` with the parameters (case, kind, item, time).
fn item_statement(
    db: &mut dyn Db,
    sql: &str,
    case: &str,
    key: &ItemKey,
    t: i64,
) -> Result<(), StoreError> {
    let item = ItemValue::of(&key.1);
    db.execute(sql, &[case.into(), key.0.into(), item.param(), t.into()])
        .map(drop)
        .map_err(at(ACTION))
}

fn close_item(db: &mut dyn Db, case: &str, key: &ItemKey, at_: i64) -> Result<(), StoreError> {
    item_statement(
        db,
        "UPDATE case_items SET valid_to = ?4 \
         WHERE case_id = ?1 AND kind = ?2 AND item = ?3 AND valid_to IS NULL",
        case,
        key,
        at_,
    )
}

fn delete_item(db: &mut dyn Db, case: &str, key: &ItemKey, at_: i64) -> Result<(), StoreError> {
    item_statement(
        db,
        "DELETE FROM case_items WHERE case_id = ?1 AND kind = ?2 AND item = ?3 AND valid_from = ?4",
        case,
        key,
        at_,
    )
}

fn reopen_item(db: &mut dyn Db, case: &str, key: &ItemKey, from: i64) -> Result<(), StoreError> {
    item_statement(
        db,
        "UPDATE case_items SET valid_to = NULL \
         WHERE case_id = ?1 AND kind = ?2 AND item = ?3 AND valid_from = ?4",
        case,
        key,
        from,
    )
}

/// The version of an item that ended at `at_`, if any.
fn item_ending(
    db: &mut dyn Db,
    case: &str,
    key: &ItemKey,
    at_: i64,
) -> Result<Option<(i64, i64, Vec<u8>)>, StoreError> {
    let item = ItemValue::of(&key.1);
    db.query_opt(
        "SELECT valid_from, ord, body FROM case_items \
         WHERE case_id = ?1 AND kind = ?2 AND item = ?3 AND valid_to = ?4",
        &[case.into(), key.0.into(), item.param(), at_.into()],
        |r| Ok((r.int(0)?, r.int(1)?, r.blob(2)?)),
    )
    .map_err(at(ACTION))
}

/// A case's header: its place among cases, when it opened, and the encoded header.
pub(super) struct CaseRow {
    pub ord: i64,
    pub opened_at: i64,
    pub header: Vec<u8>,
}

pub(super) fn case_row(db: &mut dyn Db, id: &str) -> Result<Option<CaseRow>, StoreError> {
    db.query_opt(
        "SELECT ord, opened_at, header FROM cases WHERE id = ?1",
        params![id],
        |r| {
            Ok(CaseRow {
                ord: r.int(0)?,
                opened_at: r.int(1)?,
                header: r.blob(2)?,
            })
        },
    )
    .map_err(at("read case"))
}

/// A case's items valid at `at_`, in the order the case lists them.
pub(super) fn case_items(db: &mut dyn Db, id: &str, at_: i64) -> Result<Vec<Item>, StoreError> {
    let rows = db
        .query(
            "SELECT kind, item, ord, body FROM case_items WHERE case_id = ?1 \
             AND valid_from <= ?2 AND (valid_to IS NULL OR valid_to > ?2) ORDER BY kind, ord",
            params![id, at_],
            |r| Ok((r.int(0)?, item_text(r.cell(1)?), r.int(2)?, r.blob(3)?)),
        )
        .map_err(at("read case"))?;
    // An unknown kind is from a newer cprwatch: skipped, as the version check says.
    Ok(rows
        .into_iter()
        .filter_map(|(kind, key, ord, body)| {
            Some(Item {
                kind: ItemKind::from_code(kind)?,
                key,
                ord,
                body,
            })
        })
        .collect())
}

/// A clock's row valid at `at_`.
pub(super) fn clock_at(db: &mut dyn Db, id: &str, at_: i64) -> Result<Option<Vec<u8>>, StoreError> {
    db.query_opt(
        "SELECT body FROM clocks WHERE id = ?1 AND valid_from <= ?2 \
         AND (valid_to IS NULL OR valid_to > ?2)",
        params![id, at_],
        |r| r.blob(0),
    )
    .map_err(at("read clock"))
}

/// Ids of the clocks open at `at_` (no stop by then). `current` says `at_` is at or after every
/// version's start, so the current rows are the ones valid then and the index answers.
pub(super) fn open_clocks(
    db: &mut dyn Db,
    at_: i64,
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
    db.query(q, params![at_], |r| r.text(0))
        .map_err(at("read open clocks"))
}

/// The cases that list a clock at `at_`.
pub(super) fn cases_of_clock(
    db: &mut dyn Db,
    clock: &str,
    at_: i64,
) -> Result<Vec<String>, StoreError> {
    db.query(
        "SELECT case_id FROM case_items WHERE kind = 3 AND item = ?1 \
         AND valid_from <= ?2 AND (valid_to IS NULL OR valid_to > ?2)",
        params![clock, at_],
        |r| r.text(0),
    )
    .map_err(at("read cases of a clock"))
}

/// The cases a name was ever seen in (possibly a few more: the caller checks).
pub(super) fn cases_named(db: &mut dyn Db, name: &str) -> Result<Vec<String>, StoreError> {
    db.query(
        "SELECT case_id FROM case_names WHERE name_key = ?1",
        params![tables::name_key(name)],
        |r| r.text(0),
    )
    .map_err(at("search"))
}

/// The cases opened in `[from, to)` (seconds), in case order. A scan of `cases`, one row per
/// case: small beside the log, and read once per audit.
pub(super) fn cases_opened(db: &mut dyn Db, from: i64, to: i64) -> Result<Vec<String>, StoreError> {
    db.query(
        "SELECT id FROM cases WHERE opened_at >= ?1 AND opened_at < ?2 ORDER BY ord, id",
        params![from, to],
        |r| r.text(0),
    )
    .map_err(at("read cases opened in a period"))
}

/// Seqs of the events that name `r` (possibly a few more: the caller checks).
pub(super) fn events_naming(db: &mut dyn Db, r: &str) -> Result<Vec<u64>, StoreError> {
    db.query(
        "SELECT seq FROM event_refs WHERE ref_key = ?1",
        params![tables::name_key(r)],
        |r| Ok(u64::try_from(r.int(0)?).unwrap_or(0)),
    )
    .map_err(at("read events of a case"))
}
