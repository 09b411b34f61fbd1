//! The SQLite side of the projector's fold rows ([`crate::deciding::fold`]): versions kept like
//! the case items and clocks ([`super::sqlite_tables`]), each valid from a receipt time until
//! the next version, and the current value of a key read through the primary key.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::db::{Db, DbError, Row, at, params};

use super::StoreError;
use crate::deciding::cases::Case;
use crate::deciding::clock::{Clock, Stop, StopKind};
use crate::deciding::fold::{Backing, FoldVersion, Space};
use crate::deciding::recorded::{RecSpace, RecordedBacking};
use crate::deciding::tables::{self, secs};
use crate::domain::ids::{CaseId, ClockId};

/// Schema 5: the fold rows, and two indexes of the log: messages in receipt order (to derive
/// from the store, not from memory) and case numbers by founder.
pub(super) const SCHEMA_V5: &str = "
CREATE TABLE fold (
    space      INTEGER NOT NULL,
    key        TEXT NOT NULL,
    valid_from INTEGER NOT NULL,
    valid_to   INTEGER,
    value      BLOB,
    PRIMARY KEY (space, key, valid_from)
) WITHOUT ROWID;
CREATE TABLE receipts (
    received_at  INTEGER NOT NULL,
    staff        INTEGER NOT NULL,
    content_hash BLOB NOT NULL,
    seq          INTEGER NOT NULL,
    PRIMARY KEY (received_at, staff, content_hash)
) WITHOUT ROWID;
CREATE TABLE case_numbers (
    founder BLOB PRIMARY KEY,
    year    INTEGER NOT NULL,
    number  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX case_numbers_by_year ON case_numbers (year, number);
CREATE TABLE recorded (
    space INTEGER NOT NULL,
    key   BLOB NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (space, key)
) WITHOUT ROWID;
CREATE INDEX clocks_due ON clocks (deadline) WHERE valid_to IS NULL;
CREATE INDEX clocks_by_end ON clocks (valid_to, stop_key);
";

const ACTION: &str = "write fold rows";

/// Forget every version from `t` on.
pub(super) fn truncate(db: &mut dyn Db, t: i64) -> Result<(), StoreError> {
    for stmt in [
        "DELETE FROM fold WHERE valid_from >= ?1",
        "UPDATE fold SET valid_to = NULL WHERE valid_to >= ?1",
    ] {
        db.execute(stmt, params![t]).map_err(at(ACTION))?;
    }
    Ok(())
}

fn version(r: &dyn Row) -> Result<(i64, Option<Vec<u8>>), DbError> {
    Ok((r.int(0)?, r.opt_blob(1)?))
}

/// Keep one version: it closes the current one, replaces one made at the same moment, and adds
/// nothing when it equals the current one.
pub(super) fn put(db: &mut dyn Db, v: &FoldVersion) -> Result<(), StoreError> {
    let t = secs(v.as_of);
    let space = v.space.code();
    let key = row_key(&v.key);
    let current = db
        .query_opt(
            "SELECT valid_from, value FROM fold \
             WHERE space = ?1 AND key = ?2 AND valid_to IS NULL",
            params![space, &key],
            version,
        )
        .map_err(at(ACTION))?;
    match (&v.value, current) {
        (None, None) => Ok(()),
        (Some(value), Some((_, Some(c)))) if *value == c => Ok(()),
        (value, Some((from, _))) if from == t => {
            db.execute(
                "DELETE FROM fold WHERE space = ?1 AND key = ?2 AND valid_from = ?3",
                params![space, &key, t],
            )
            .map_err(at(ACTION))?;
            let before = db
                .query_opt(
                    "SELECT valid_from, value FROM fold \
                     WHERE space = ?1 AND key = ?2 AND valid_to = ?3",
                    params![space, &key, t],
                    version,
                )
                .map_err(at(ACTION))?;
            match (value, before) {
                (Some(value), Some((bfrom, Some(b)))) if *value == b => db
                    .execute(
                        "UPDATE fold SET valid_to = NULL \
                         WHERE space = ?1 AND key = ?2 AND valid_from = ?3",
                        params![space, &key, bfrom],
                    )
                    .map(drop)
                    .map_err(at(ACTION)),
                (Some(value), _) => insert(db, space, &key, t, value),
                (None, _) => Ok(()),
            }
        }
        (value, current) => {
            if current.is_some() {
                db.execute(
                    "UPDATE fold SET valid_to = ?3 \
                     WHERE space = ?1 AND key = ?2 AND valid_to IS NULL",
                    params![space, &key, t],
                )
                .map_err(at(ACTION))?;
            }
            match value {
                Some(value) => insert(db, space, &key, t, value),
                None => Ok(()),
            }
        }
    }
}

fn insert(db: &mut dyn Db, space: i64, key: &[u8], t: i64, value: &[u8]) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO fold (space, key, valid_from, valid_to, value) VALUES (?1, ?2, ?3, NULL, ?4)",
        params![space, key, t, value],
    )
    .map(drop)
    .map_err(at(ACTION))
}

/// A key's current value.
pub(super) fn current(
    db: &mut dyn Db,
    space: Space,
    key: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    db.query_opt(
        "SELECT value FROM fold WHERE space = ?1 AND key = ?2 AND valid_to IS NULL",
        params![space.code(), &row_key(key)],
        |r| r.opt_blob(0),
    )
    .map(Option::flatten)
    .map_err(at("read fold rows"))
}

/// A connection of a [`StoreBacking`]: statements, and the log's event bodies as its backend
/// keeps them.
pub(crate) trait Reader: Send {
    fn db(&mut self) -> &mut dyn Db;
    /// The body of the event at `seq`.
    fn event_body(&mut self, seq: u64) -> Result<Option<Vec<u8>>, StoreError>;
}

/// A read-only SQLite connection of its own.
struct LiteReader(Connection);

impl Reader for LiteReader {
    fn db(&mut self) -> &mut dyn Db {
        &mut self.0
    }

    fn event_body(&mut self, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        super::sqlite::event_body_at(&self.0, seq)
    }
}

/// The projector's [`Backing`] over a store: the log's indexes through one connection, the
/// tables through another (to the same database, or to the scratch file `verify` derives
/// into). Connections of its own, so the projector reads while the owner writes: it sees what
/// was committed, and the projector holds everything it derived until then.
pub struct StoreBacking {
    log: Box<dyn Reader>,
    tables: Box<dyn Reader>,
    error: Option<StoreError>,
}

fn open_reader(path: &Path) -> Result<LiteReader, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Open {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let sql = |source| StoreError::Sql {
        action: "open a reader",
        source,
    };
    conn.busy_timeout(super::sqlite::BUSY_TIMEOUT)
        .map_err(sql)?;
    // Point lookups, mostly of what was just written: the operating system's cache serves
    // them, and a large page cache per reader would only grow with the store.
    conn.pragma_update(None, "cache_size", -512).map_err(sql)?;
    Ok(LiteReader(conn))
}

/// A read-only reader of the SQLite file at `path` (`verify`'s scratch tables).
pub(super) fn lite_reader(path: &Path) -> Result<Box<dyn Reader>, StoreError> {
    Ok(Box::new(open_reader(path)?))
}

impl StoreBacking {
    /// Over two SQLite files (the same one, or the log's and a scratch file's).
    pub(super) fn open(log: &Path, tables: &Path) -> Result<StoreBacking, StoreError> {
        Ok(StoreBacking::over(
            Box::new(open_reader(log)?),
            Box::new(open_reader(tables)?),
        ))
    }

    /// Over two connections of any backend.
    pub(crate) fn over(log: Box<dyn Reader>, tables: Box<dyn Reader>) -> StoreBacking {
        StoreBacking {
            log,
            tables,
            error: None,
        }
    }

    fn keep<T>(&mut self, r: Result<Option<T>, StoreError>) -> Option<T> {
        match r {
            Ok(v) => v,
            Err(e) => {
                self.error.get_or_insert(e);
                None
            }
        }
    }

    fn read_case(&mut self, id: &CaseId) -> Result<Option<(usize, Case, Vec<Stop>)>, StoreError> {
        let db = self.tables.db();
        let Some(row) = super::sqlite_tables::case_row(db, id.as_str())? else {
            return Ok(None);
        };
        let items = super::sqlite_tables::case_items(db, id.as_str(), i64::MAX)?;
        let case = tables::case_from_rows(id.as_str(), row.opened_at, &row.header, &items)?;
        let answers = match self.read_clock(&ClockId::preliminary(id))? {
            Some(c) => c
                .stops
                .into_iter()
                .filter(|s| s.kind != StopKind::Dismissed)
                .collect(),
            None => Vec::new(),
        };
        Ok(Some((usize::try_from(row.ord).unwrap_or(0), case, answers)))
    }

    fn read_clock(&mut self, id: &ClockId) -> Result<Option<Clock>, StoreError> {
        match super::sqlite_tables::clock_at(self.tables.db(), id.as_str(), i64::MAX)? {
            Some(body) => Ok(Some(tables::clock_from_row(id.as_str(), &body)?)),
            None => Ok(None),
        }
    }
}

impl Backing for StoreBacking {
    fn case(&mut self, id: &CaseId) -> Option<(usize, Case, Vec<Stop>)> {
        let r = self.read_case(id);
        self.keep(r)
    }

    fn clock(&mut self, id: &ClockId) -> Option<Clock> {
        let r = self.read_clock(id);
        self.keep(r)
    }

    fn value(&mut self, space: Space, key: &str) -> Option<Vec<u8>> {
        let r = current(self.tables.db(), space, key);
        self.keep(r)
    }

    fn case_count(&mut self) -> usize {
        let r = self
            .tables
            .db()
            .query_opt("SELECT COALESCE(MAX(ord) + 1, 0) FROM cases", &[], |r| {
                r.int(0)
            })
            .map(|n| n.map(|n| usize::try_from(n).unwrap_or(0)))
            .map_err(at("read cases"));
        self.keep(r).unwrap_or(0)
    }

    fn assigned(&mut self, founder: &str) -> Option<CaseId> {
        let r = self
            .log
            .db()
            .query_opt(
                "SELECT year, number FROM case_numbers WHERE founder = ?1",
                params![&hash_key(founder)],
                |r| {
                    Ok(CaseId::new(
                        i32::try_from(r.int(0)?).unwrap_or(0),
                        u32::try_from(r.int(1)?).unwrap_or(0),
                    ))
                },
            )
            .map_err(at("read case numbers"));
        self.keep(r)
    }

    fn last_assigned(&mut self, year: i32) -> u32 {
        let r = self
            .log
            .db()
            .query_opt(
                "SELECT COALESCE(MAX(number), 0) FROM case_numbers WHERE year = ?1",
                params![i64::from(year)],
                |r| Ok(u32::try_from(r.int(0)?).unwrap_or(0)),
            )
            .map_err(at("read case numbers"));
        self.keep(r).unwrap_or(0)
    }

    fn failed(&self) -> bool {
        self.error.is_some()
    }
}

impl RecordedBacking for StoreBacking {
    fn get(&mut self, space: RecSpace, key: &str) -> Option<Vec<u8>> {
        let r = self
            .log
            .db()
            .query_opt(
                "SELECT value FROM recorded WHERE space = ?1 AND key = ?2",
                params![space.code(), &row_key(key)],
                |r| r.blob(0),
            )
            .map_err(at("read the log's account"));
        self.keep(r)
    }

    fn failed(&self) -> bool {
        self.error.is_some()
    }
}

impl StoreBacking {
    /// The cases the tables hold that opened at or after `from` (seconds).
    pub fn cases_opened_from(&mut self, from: i64) -> Vec<String> {
        let r = self
            .tables
            .db()
            .query(
                "SELECT id FROM cases WHERE opened_at >= ?1 ORDER BY ord",
                params![from],
                |r| r.text(0),
            )
            .map(Some)
            .map_err(at("read cases"));
        self.keep(r).unwrap_or_default()
    }

    /// The message that opened case `year`-`number`, as the log says.
    pub fn founder_of(&mut self, year: i32, number: u32) -> Option<String> {
        let r = self
            .log
            .db()
            .query_opt(
                "SELECT founder FROM case_numbers WHERE year = ?1 AND number = ?2",
                params![i64::from(year), number],
                |r| Ok(hash_hex(&r.blob(0)?)),
            )
            .map_err(at("read case numbers"));
        self.keep(r)
    }

    /// Current clocks whose deadline or first stop falls in `[from, to]` (seconds).
    pub fn clocks_changing(&mut self, from: i64, to: i64) -> Vec<String> {
        let r = self
            .tables
            .db()
            .query(
                "SELECT id FROM clocks WHERE valid_to IS NULL AND deadline BETWEEN ?1 AND ?2 \
                 UNION SELECT id FROM clocks WHERE valid_to IS NULL AND stop_key BETWEEN ?1 AND ?2",
                params![from, to],
                |r| r.text(0),
            )
            .map(Some)
            .map_err(at("read clocks"));
        self.keep(r).unwrap_or_default()
    }

    /// Up to `limit` messages received at or after `from` (nanoseconds) after `after`, in
    /// receipt order: their places and the seqs of their `message_received` events.
    pub fn receipts_from(
        &mut self,
        from: i64,
        after: Option<&ReceiptKey>,
        limit: usize,
    ) -> Vec<(ReceiptKey, u64)> {
        // (from, false, "") sorts just before every message received at `from` (the bound is
        // exclusive, and no content hash is empty).
        let after = after.cloned().unwrap_or((from, false, String::new()));
        let r = receipts_after(self.log.db(), Some(&after), limit).map(Some);
        self.keep(r).unwrap_or_default()
    }

    /// The body of the event at `seq`.
    pub fn event_body(&mut self, seq: u64) -> Option<Vec<u8>> {
        let r = self.log.event_body(seq);
        self.keep(r)
    }

    pub fn log_failed(&self) -> bool {
        self.error.is_some()
    }
}

/// A message's place in receipt order, as the `receipts` index keeps it.
pub(crate) type ReceiptKey = (i64, bool, String);

/// A content hash (or another SHA-256 in hex) as the indexes keep it: its 32 bytes, half its
/// hex digits, and in the same order. Anything else (never made by cprwatch) stays as its text.
pub(super) fn hash_key(hex_digits: &str) -> Vec<u8> {
    match hex::decode(hex_digits) {
        Ok(b) if b.len() == 32 => b,
        _ => hex_digits.as_bytes().to_vec(),
    }
}

/// A key of [`hash_key`] back as the hex digits.
pub(super) fn hash_hex(key: &[u8]) -> String {
    if key.len() == 32 {
        hex::encode(key)
    } else {
        String::from_utf8_lossy(key).into_owned()
    }
}

/// The key a fold row or a row of the log's account is stored under: a key shorter than
/// [`ROW_KEY`] bytes as it is, a longer one (a Message-Id, a sender and subject, a clock id, a
/// content hash) as the first [`ROW_KEY`] bytes of its SHA-256. These rows are only ever looked
/// up by their exact key, never listed, so the key need not read back; a digest and a short key
/// never have the same length, and two digests of different keys are equal with a chance of
/// 2^-128. At 100 000 messages this kept 7 MB of keys out of the store.
pub(super) fn row_key(key: &str) -> Vec<u8> {
    use sha2::Digest;
    if key.len() < ROW_KEY {
        key.as_bytes().to_vec()
    } else {
        sha2::Sha256::digest(key.as_bytes())[..ROW_KEY].to_vec()
    }
}

/// The length of a digested [`row_key`].
const ROW_KEY: usize = 16;

/// The next `limit` received messages after `after` in receipt order: their places and the seqs
/// of their `message_received` events.
pub(super) fn receipts_after(
    db: &mut dyn Db,
    after: Option<&ReceiptKey>,
    limit: usize,
) -> Result<Vec<(ReceiptKey, u64)>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let map = |r: &dyn Row| -> Result<(ReceiptKey, u64), DbError> {
        Ok((
            (r.int(0)?, r.int(1)? != 0, hash_hex(&r.blob(2)?)),
            u64::try_from(r.int(3)?).unwrap_or(0),
        ))
    };
    match after {
        None => db.query(
            "SELECT received_at, staff, content_hash, seq FROM receipts \
             ORDER BY received_at, staff, content_hash LIMIT ?1",
            params![limit],
            map,
        ),
        Some((t, s, h)) => db.query(
            "SELECT received_at, staff, content_hash, seq FROM receipts \
             WHERE (received_at, staff, content_hash) > (?1, ?2, ?3) \
             ORDER BY received_at, staff, content_hash LIMIT ?4",
            params![*t, *s, &hash_key(h), limit],
            map,
        ),
    }
    .map_err(at("read messages in receipt order"))
}
