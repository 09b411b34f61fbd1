//! The SQLite backend: one file, WAL mode, one transaction per [`Batch`].
//!
//! The SQL is kept portable (plain tables, `ON CONFLICT … DO NOTHING`, no SQLite-only column
//! types or triggers) because a PostgreSQL backend will share the schema; only the pragmas, the
//! catalog lookup in [`SqliteStore::open`] and `WITHOUT ROWID` on `positions` ([`SCHEMA_V3`])
//! are SQLite's own, and so is keeping, since schema 5, 32-byte BLOB hashes in the `events`
//! columns schema 1 declared TEXT (SQLite keeps a value as it is given; a PostgreSQL backend
//! declares them `BYTEA`, see [`SCHEMA_VERSION`]).
//!
//! Size: event bodies are deflated against a dictionary of the event vocabulary, and those about
//! a message against its start too ([`super::body`]), each row keeps its hash as 32 bytes and its
//! link implied ([`SCHEMA_VERSION`]), messages are deflated against a dictionary of mail
//! vocabulary until the store holds enough of them to train a zstd dictionary on its own mail,
//! then compressed against that ([`super::message::Trained`], [`SCHEMA_V6`]), pages are
//! 8 KiB ([`PAGE_SIZE`]) and the WAL is cut back after a bulk import ([`WAL_SIZE_LIMIT`]). The
//! log is append-only, so pages are never freed and `auto_vacuum` would only add pointer-map
//! pages (the one exception, the `positions` table the migration to 3 replaces, leaves free
//! pages that later rows reuse).
//!
//! Durability: WAL with `synchronous=NORMAL` never corrupts the file; a power cut may lose the
//! last few commits, but since a message, its position and its events (and later the IMAP
//! checkpoint) commit together, a lost commit just means the folder is read again.

use super::body::{self, Encoding};
use super::checkpointer::Checkpointer;
use super::db::Lite;
use super::message::{Dictionaries, MessageCodec, Trained};
use super::sqlite_checks::SCHEMA_V10;
use super::sqlite_fold::{SCHEMA_V5, StoreBacking};
use super::sqlite_outbox::SCHEMA_V8;
use super::sqlite_signed::{self as signed_sql, SCHEMA_V9, SignedCheckpoint};
use super::sqlite_tables::{self as tables_sql, SCHEMA_V4};
use super::tables::Tables;
use super::{
    BadEvent, BadMessage, Batch, Checkpoint, FolderState, Store, StoreError, StoredEvent,
    Verification, chain,
};
use crate::domain::event::EventIndex;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::deciding::tables::Delta;

/// Bytes of write-ahead log past which the writer checkpoints and truncates it itself (see
/// [`SqliteStore::checkpoint_in_background`]).
const WAL_FORCE_CHECKPOINT: u64 = 256 << 20;

/// The schema this code writes. Bump it with a migration in [`SqliteStore::open`].
///
/// Version 5 adds the projector's fold rows and three indexes of the log ([`SCHEMA_V5`]), and
/// changes what new `events` rows hold (rows written before stay as
/// they are, and read and verify as before: nothing is rewritten); the version says so, so
/// that an older cprwatch refuses the store instead of misreading the new rows:
/// - `hash` is the 32 bytes of the SHA-256 as a BLOB, not its 64 hex digits as TEXT (half the
///   space; SQLite keeps a BLOB as it is whatever the column's declared type);
/// - `prev_hash` is an empty BLOB: the link is implied, it is the `hash` of the row before.
///   Stating it again was a second copy of that hash in every row. The chain itself is
///   unchanged (`hash_n = SHA-256("{seq}\n{hex(hash_n-1)}\n" ++ body_n)`, [`chain`]), and so is
///   what `verify` proves: it recomputes each hash from the one before, so a changed body or
///   hash still names its event, and a `prev_hash` that states a link (TEXT, as rows before
///   schema 5 do) is still checked against it.
///
/// Together a quarter of the log's bytes on the scale benchmark (an event's two hex hashes
/// were 130 of its 340 stored bytes).
///
/// Likewise new `messages` rows are keyed by the 32 bytes of the content hash, and `positions`
/// name them so (a key was stored three times: in its row, in the key's index, and in each
/// position). A row written before keeps its hex TEXT key, and a position naming it names it
/// so: a message is looked up by both forms of its key ([`key_forms`]), and a position takes
/// the key as its message's row has it.
///
/// Version 6 adds `dictionaries` ([`SCHEMA_V6`]): new messages may be zstd frames compressed
/// against a dictionary trained on the store's own mail, which an older cprwatch cannot read.
///
/// Version 7 ([`SCHEMA_V7`]) changes what new `events` rows hold: a row keeps only the first
/// [`CHECK_BYTES`] of its hash, except every [`WHOLE_HASH_EVERY`]-th row and the last row of
/// each commit, which keep it whole. The chain is unchanged, and so is what `verify` proves:
/// it recomputes every hash from the one before, as it always did, and holds a row's check
/// against it, so a changed body or check still names its event (a stored check equals a
/// different hash's first 8 bytes with a chance of 2^-64). Readers work out a row's whole
/// hash from the one before. This keeps 24 bytes an event out of the store, a sixth of an
/// event's row on the scale benchmark.
///
/// Version 8 adds the outbox ([`SCHEMA_V8`]); version 9 the signed checkpoints of the log
/// ([`SCHEMA_V9`]); version 10 the revocation checks ([`SCHEMA_V10`]); version 11 the dashboard
/// sessions ([`super::sessions::SCHEMA_V11`]).
pub(crate) const SCHEMA_VERSION: i64 = 11;

/// Version 7: new `events` rows may keep a check instead of the whole hash (see
/// [`SCHEMA_VERSION`]); the index of clock versions by end holds only versions that ended (the
/// current ones are in `clocks_open`): half its size; `cases`, `meta`, `imap_checkpoints` and
/// `folder_states` are keyed by their key alone (`WITHOUT ROWID`, as `positions` since schema
/// 3: the key was stored twice, in the table and in its index, and a small store paid a page
/// for each). And positions are kept as the folder they are in and their name in it
/// ([`SCHEMA_V7_POSITIONS`]).
const SCHEMA_V7: &str = "
DROP INDEX IF EXISTS clocks_by_end;
CREATE INDEX clocks_by_end ON clocks (valid_to, stop_key) WHERE valid_to IS NOT NULL;
DROP INDEX IF EXISTS cases_by_ord;
CREATE TABLE cases_v7 (
    id        TEXT PRIMARY KEY,
    ord       INTEGER NOT NULL,
    opened_at INTEGER NOT NULL,
    header    BLOB NOT NULL
) WITHOUT ROWID;
INSERT INTO cases_v7 (id, ord, opened_at, header) SELECT id, ord, opened_at, header FROM cases;
DROP TABLE cases;
ALTER TABLE cases_v7 RENAME TO cases;
CREATE INDEX cases_by_ord ON cases (ord);
CREATE TABLE meta_v7 (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO meta_v7 (key, value) SELECT key, value FROM meta;
DROP TABLE meta;
ALTER TABLE meta_v7 RENAME TO meta;
CREATE TABLE imap_checkpoints_v7 (
    mailbox     TEXT NOT NULL,
    folder      TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    last_uid    INTEGER NOT NULL,
    PRIMARY KEY (mailbox, folder)
) WITHOUT ROWID;
INSERT INTO imap_checkpoints_v7 (mailbox, folder, uidvalidity, last_uid)
    SELECT mailbox, folder, uidvalidity, last_uid FROM imap_checkpoints;
DROP TABLE imap_checkpoints;
ALTER TABLE imap_checkpoints_v7 RENAME TO imap_checkpoints;
CREATE TABLE folder_states_v7 (
    mailbox       TEXT NOT NULL,
    folder        TEXT NOT NULL,
    role          TEXT NOT NULL,
    last_sync_at  TEXT,
    last_error    TEXT,
    last_error_at TEXT,
    PRIMARY KEY (mailbox, folder)
) WITHOUT ROWID;
INSERT INTO folder_states_v7 (mailbox, folder, role, last_sync_at, last_error, last_error_at)
    SELECT mailbox, folder, role, last_sync_at, last_error, last_error_at FROM folder_states;
DROP TABLE folder_states;
ALTER TABLE folder_states_v7 RENAME TO folder_states;
";

/// Version 7: a position (`maildir:/var/mail/cpr/cur/1780153803.M6P1.host,S=3611`) is kept as
/// its place, everything up to its last `/`, once in `position_places`, and its name in that
/// place, in `position_names`. Every message in a folder repeated the folder's path: on the
/// scale benchmark that was two thirds of the table. `positions` stays, as a view, for those
/// who read the store with SQL. The rows are moved by [`split_positions`].
const SCHEMA_V7_POSITIONS: &str = "
CREATE TABLE position_places (
    id    INTEGER PRIMARY KEY,
    place TEXT NOT NULL UNIQUE
);
CREATE TABLE position_names (
    place        INTEGER NOT NULL REFERENCES position_places(id),
    name         TEXT NOT NULL,
    content_hash TEXT NOT NULL REFERENCES messages(content_hash),
    PRIMARY KEY (place, name)
) WITHOUT ROWID;
";

/// The view that shows positions whole, as the `positions` table before schema 7 held them.
const POSITIONS_VIEW: &str = "
CREATE VIEW positions (position, content_hash) AS
    SELECT l.place || n.name, n.content_hash
    FROM position_names n JOIN position_places l ON l.id = n.place;
";

/// A position as its place (up to and with its last `/`) and its name there.
pub(super) fn split_position(position: &str) -> (&str, &str) {
    match position.rfind('/') {
        Some(i) => position.split_at(i + 1),
        None => ("", position),
    }
}

/// Move the rows of a `positions` table (schema 6 and before) into `position_places` and
/// `position_names`, and put the view in its place. Nothing to do when `positions` is the view.
fn split_positions(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    const ACTION: &str = "migration to schema 7";
    let is_table: bool = tx
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'positions'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(sql(ACTION))?
        > 0;
    if !is_table {
        return Ok(());
    }
    tx.execute_batch(SCHEMA_V7_POSITIONS).map_err(sql(ACTION))?;
    {
        let mut read = tx
            .prepare("SELECT position, content_hash FROM positions")
            .map_err(sql(ACTION))?;
        let mut rows = read.query([]).map_err(sql(ACTION))?;
        let mut places: HashMap<String, i64> = HashMap::new();
        while let Some(r) = rows.next().map_err(sql(ACTION))? {
            let position: String = r.get(0).map_err(sql(ACTION))?;
            let key: rusqlite::types::Value = r.get(1).map_err(sql(ACTION))?;
            let (place, name) = split_position(&position);
            let id = place_id(tx, &mut places, place)?;
            tx.prepare_cached(
                "INSERT INTO position_names (place, name, content_hash) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut st| st.execute(params![id, name, key]))
            .map_err(sql(ACTION))?;
        }
    }
    tx.execute_batch("DROP TABLE positions;")
        .map_err(sql(ACTION))?;
    tx.execute_batch(POSITIONS_VIEW).map_err(sql(ACTION))
}

/// The id of `place` in `position_places`, added if new. `known` holds the ids this
/// transaction already looked up (a batch or a migration names few places, many times).
fn place_id(
    conn: &Connection,
    known: &mut HashMap<String, i64>,
    place: &str,
) -> Result<i64, StoreError> {
    if let Some(id) = known.get(place) {
        return Ok(*id);
    }
    conn.prepare_cached(
        "INSERT INTO position_places (place) VALUES (?1) ON CONFLICT (place) DO NOTHING",
    )
    .and_then(|mut st| st.execute(params![place]))
    .map_err(sql("record a position"))?;
    let id = conn
        .prepare_cached("SELECT id FROM position_places WHERE place = ?1")
        .and_then(|mut st| st.query_row(params![place], |r| r.get(0)))
        .map_err(sql("record a position"))?;
    known.insert(place.to_string(), id);
    Ok(id)
}

/// Version 6: dictionaries trained on the store's own mail ([`super::message::Trained`]), by
/// zstd's id of them, which every message compressed with one names in its frame header.
/// `trained_on` is how many messages the store held when it was trained. Never changed nor
/// removed: the rows compressed against a dictionary are readable only with it. Messages
/// stored before (and all of them in a store with too little mail to train on) stay deflated.
/// `IF NOT EXISTS`: a store an older cprwatch opened again (it refuses schema 6, but a copy
/// taken back by hand keeps the table) migrates all the same.
const SCHEMA_V6: &str = "
CREATE TABLE IF NOT EXISTS dictionaries (
    id         INTEGER PRIMARY KEY,
    trained_on INTEGER NOT NULL,
    content    BLOB NOT NULL
);
";

/// Portable DDL. Later, in the same transaction as the rest of a batch (see [`Batch`]):
/// `outbox(id INTEGER PRIMARY KEY, event_seq INTEGER NOT NULL REFERENCES events(seq),
/// dedup_key TEXT UNIQUE NOT NULL, payload BLOB NOT NULL, …)` for durable alerts; it bumps
/// [`SCHEMA_VERSION`] with a migration like [`SCHEMA_V2`].
const SCHEMA: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE events (
    seq       INTEGER PRIMARY KEY,
    body      BLOB NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
-- raw: zlib-wrapped deflate of the message bytes; size: the uncompressed length.
CREATE TABLE messages (
    content_hash TEXT PRIMARY KEY,
    raw          BLOB NOT NULL,
    size         INTEGER NOT NULL
);
CREATE TABLE positions (
    position     TEXT PRIMARY KEY,
    content_hash TEXT NOT NULL REFERENCES messages(content_hash)
);
";

/// Version 2: IMAP checkpoints (written with the batch they close) and folder health.
const SCHEMA_V2: &str = "
CREATE TABLE imap_checkpoints (
    mailbox     TEXT NOT NULL,
    folder      TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    last_uid    INTEGER NOT NULL,
    PRIMARY KEY (mailbox, folder)
);
CREATE TABLE folder_states (
    mailbox       TEXT NOT NULL,
    folder        TEXT NOT NULL,
    role          TEXT NOT NULL,
    last_sync_at  TEXT,
    last_error    TEXT,
    last_error_at TEXT,
    PRIMARY KEY (mailbox, folder)
);
";

/// Version 3: event bodies stored compactly ([`super::body`]). `encoding` says how `body` is
/// stored (0: the canonical bytes, 1: deflated against the event dictionary), `size` is the
/// canonical length of a deflated body (NULL for plain ones). The chain hashes stay over the
/// canonical bytes, so nothing `verify` proves changes.
///
/// Migrating from 2 only adds the columns (their defaults say "plain"): the bodies already
/// written stay as they are and read and verify as before. Rewriting them would rewrite the
/// whole log in one transaction, with a WAL as large as the log, for space SQLite would not
/// give back to the file system without a `VACUUM` anyway; new events are stored compactly.
///
/// It also rebuilds `positions` as a `WITHOUT ROWID` table (SQLite's own clause, the one
/// non-portable line here; a PostgreSQL backend creates the same table without it): keyed by
/// its text, a position was stored twice, in the table and in its key's index (3 % of the store
/// on the benchmark). Positions are small, so the copy is quick even for a large store.
/// (`messages` stays a rowid table: keyed the same way its rows of a few KiB left index pages
/// half empty and spilled sooner, 1.06x the mail against 1.00x on the benchmark.)
const SCHEMA_V3: &str = "
ALTER TABLE events ADD COLUMN encoding INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN size INTEGER;
CREATE TABLE positions_v3 (
    position     TEXT PRIMARY KEY,
    content_hash TEXT NOT NULL REFERENCES messages(content_hash)
) WITHOUT ROWID;
INSERT INTO positions_v3 (position, content_hash) SELECT position, content_hash FROM positions;
DROP TABLE positions;
ALTER TABLE positions_v3 RENAME TO positions;
";

/// SQLite's page size for new stores. Since messages are compressed against a dictionary
/// trained on the store's own mail, a message row is a few hundred bytes, and the store is
/// some thirty tables and indexes, each at least a page, most of them filled in key order
/// other than their rows' arrival. Measured on the scale benchmark's stores as `ingest` leaves
/// them (1 000 / 100 000 messages, against 2.34 / 218 MB of mail): 4 KiB 2.33 / 216.2 MB,
/// 8 KiB 2.43 / 212.7 MB (and 16 KiB more at 1 000). 4 KiB: a small store pays least, a
/// large one 1.6 % more, and each of the service's small commits writes the least to the WAL.
/// Existing stores keep theirs (changing it takes a `VACUUM`).
const PAGE_SIZE: i64 = 4096;

/// Bytes the WAL file is cut back to when it restarts: about what the background checkpointer
/// lets accumulate before it checkpoints (see `checkpointer.rs`).
const WAL_SIZE_LIMIT: i64 = 4 << 20;

/// The durable store. Holds one connection; open one store per process.
#[derive(Debug)]
pub struct SqliteStore {
    /// Started at the first commit: read-only uses (status, verify) need none.
    checkpointer: Option<Checkpointer>,
    conn: Connection,
    path: PathBuf,
    /// The first bytes of messages lately stored or read, for bodies deflated against them.
    mails: RefCell<MailPrefixes>,
    /// The dictionary new messages are compressed with, once trained.
    codec: MessageCodec,
    /// Until a dictionary is trained: how many messages the store holds (counted at the
    /// first commit), and whether training was tried and failed (not tried again until the
    /// store is opened again).
    untrained: Option<u64>,
    train_failed: bool,
    /// How many stored messages a dictionary is trained on, once there are that many.
    train_on: usize,
    /// The messages stored deflated before the dictionary was trained, still to compress
    /// against it: rowids from the first to the second, inclusive. Kept in `meta`
    /// (`recompress`) so that work left when the store closes goes on when it opens again.
    recompress: Option<(i64, i64)>,
    /// How many of them each piece compresses: [`RECOMPRESS_PIECE`], or fewer in tests.
    recompress_piece: i64,
}

/// The first [`body::MAIL_PREFIX`] bytes of the messages lately stored or read, by content hash:
/// an event about a message is written or read next to it (the message's own events in its
/// commit, its case's in the pieces right after), so this saves looking the message up and
/// inflating it again for each. Bounded: [`MailPrefixes::KEEP`] entries.
#[derive(Debug, Default)]
struct MailPrefixes {
    by_hash: HashMap<String, Arc<[u8]>>,
    order: VecDeque<String>,
}

impl MailPrefixes {
    const KEEP: usize = 256;

    fn get(&self, hash: &str) -> Option<Arc<[u8]>> {
        self.by_hash.get(hash).cloned()
    }

    fn put(&mut self, hash: &str, prefix: Arc<[u8]>) {
        if self.by_hash.insert(hash.to_string(), prefix).is_none() {
            self.order.push_back(hash.to_string());
            if self.order.len() > Self::KEEP
                && let Some(old) = self.order.pop_front()
            {
                self.by_hash.remove(&old);
            }
        }
    }
}

/// The first [`body::MAIL_PREFIX`] bytes of the stored message with content hash `hash`
/// (lowercase hex), from `cache` or from the store (then kept in `cache`). With `whole`, the
/// message is inflated whole and checked against its content hash (for `verify`: damage to the
/// message then names it, not only a hash mismatch on the event); reads take only the prefix.
fn mail_prefix(
    conn: &Connection,
    cache: &RefCell<MailPrefixes>,
    hash: &str,
    whole: bool,
) -> Result<Arc<[u8]>, String> {
    if let Some(m) = cache.borrow().get(hash) {
        return Ok(m);
    }
    let mut st = conn
        .prepare_cached("SELECT raw, size FROM messages WHERE content_hash IN (?1, ?2)")
        .map_err(|e| e.to_string())?;
    let (text, bytes) = key_forms(hash);
    let mut rows = st.query(params![text, bytes]).map_err(|e| e.to_string())?;
    let row = rows
        .next()
        .map_err(|e| e.to_string())?
        .ok_or("the store does not hold it")?;
    let raw = blob_column(row.get_ref(0).map_err(|e| e.to_string())?, "raw")?;
    let size = match row.get_ref(1).map_err(|e| e.to_string())? {
        ValueRef::Integer(n) => u64::try_from(n).map_err(|_| format!("size column is {n}"))?,
        other => return Err(format!("size is stored as {:?}", other.data_type())),
    };
    let dicts = |id| dictionary(conn, id);
    let prefix: Arc<[u8]> = if whole {
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        let mut raw = decompress_checked(hash, raw, size, &dicts)
            .map_err(|problem| format!("message {hash} is corrupt: {problem}"))?;
        raw.truncate(body::MAIL_PREFIX);
        raw.into()
    } else {
        super::message::decompress_prefix(raw, size, body::MAIL_PREFIX, &dicts)?.into()
    };
    cache.borrow_mut().put(hash, prefix.clone());
    Ok(prefix)
}

/// The trained dictionaries read in this process, by store file and id: a dictionary never
/// changes once stored (a later one gets another id), and readers such as
/// [`event_at`] have no store of their own to keep them in. `verify` reads them afresh
/// ([`read_dictionary`]).
static DICTIONARIES: std::sync::Mutex<Vec<(String, Arc<Trained>)>> =
    std::sync::Mutex::new(Vec::new());

/// The trained dictionary `id` of the store `conn` reads.
fn dictionary(conn: &Connection, id: u32) -> Result<Arc<Trained>, String> {
    let file = conn.path().unwrap_or_default().to_string();
    let mut cache = DICTIONARIES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, t)) = cache.iter().find(|(f, t)| *f == file && t.id() == id) {
        return Ok(t.clone());
    }
    let t = read_dictionary(conn, id)?;
    // A process opens few stores, each with a dictionary or two: a short list.
    if cache.len() >= 64 {
        cache.remove(0);
    }
    cache.push((file, t.clone()));
    Ok(t)
}

/// The trained dictionary `id` as the store holds it now, checked to be the one it names.
fn read_dictionary(conn: &Connection, id: u32) -> Result<Arc<Trained>, String> {
    let bytes: Option<Vec<u8>> = conn
        .prepare_cached("SELECT content FROM dictionaries WHERE id = ?1")
        .and_then(|mut st| st.query_row(params![id], |r| r.get(0)).optional())
        .map_err(|e| format!("cannot be read: {e}"))?;
    let bytes = bytes.ok_or("the store does not hold")?;
    match Trained::new(bytes) {
        Some(t) if t.id() == id => Ok(t),
        Some(t) => Err(format!(
            "is damaged in the store: its row states id {}",
            t.id()
        )),
        None => Err("is damaged in the store: it states no id".into()),
    }
}

fn sql(action: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sql { action, source }
}

/// An I/O error in words a person acts on.
fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        PermissionDenied => "permission denied".into(),
        NotFound => "its directory does not exist".into(),
        IsADirectory => "it is a directory".into(),
        ReadOnlyFilesystem => "the file system is read-only".into(),
        _ => e.to_string(),
    }
}

/// Owner read and write only: the store holds reported private keys and reporters' mail.
const PRIVATE_MODE: u32 = 0o600;

/// Open `path` for reading and writing, creating it when missing with mode 0600 whatever the
/// umask. Returns whether it was created. An existing file keeps the mode its owner gave it.
fn create_private(path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(PRIVATE_MODE)
        .open(path)
    {
        Ok(_) => {
            // The umask can only take bits away; set exactly 0600 all the same.
            make_private(path)?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Set mode 0600 on `path` if it exists.
fn make_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(PRIVATE_MODE)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// How long a connection waits for another process's lock before reporting the store busy.
pub(super) const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Set a connection's journal and safety settings. A page size and the vacuum mode only take
/// on a file just `created` (an empty one), and only before WAL mode is set.
fn configure(conn: &Connection, created: bool) -> rusqlite::Result<()> {
    if created {
        conn.pragma_update(None, "page_size", PAGE_SIZE)?;
        // Pages emptied by compressing older messages again go back to the file system
        // (`recompress_some`); only settable before the first table.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    }
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // The WAL file keeps the largest size it ever reached (a bulk import's) until the last
    // connection closes, which for the service is never: bring it back to this size each
    // time the log restarts from its beginning after a checkpoint.
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    conn.pragma_update(None, "foreign_keys", "ON")
}

impl SqliteStore {
    /// Open the store at `path`, creating the file and schema if needed.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let open_err = |reason: String| StoreError::Open {
            path: path.to_path_buf(),
            reason,
        };
        // Touch the file with std first: SQLite reports every failure as "unable to open
        // database file", while the OS error says what is actually wrong.
        let created = create_private(path).map_err(|e| open_err(io_reason(&e)))?;
        let conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        let not_a_store = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => StoreError::NotAStore {
                path: path.to_path_buf(),
                detail: "the file is not an SQLite database".into(),
            },
            _ => StoreError::Sql {
                action: "setup",
                source: e,
            },
        };
        conn.busy_timeout(BUSY_TIMEOUT).map_err(not_a_store)?;
        // Another process may be creating the same store this moment (the service starting
        // while a `status` runs): switching to WAL takes locks SQLite does not wait for with
        // its busy handler, so wait here, as long as the busy timeout, before calling it an
        // error.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            match configure(&conn, created) {
                Err(e)
                    if matches!(
                        e.sqlite_error_code(),
                        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                    ) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                r => break r.map_err(not_a_store)?,
            }
        }
        let mut store = SqliteStore {
            checkpointer: None,
            conn,
            path: path.to_path_buf(),
            mails: RefCell::default(),
            codec: MessageCodec::default(),
            untrained: None,
            train_failed: false,
            train_on: super::message::TRAIN_ON,
            recompress: None,
            recompress_piece: RECOMPRESS_PIECE,
        };
        store.ensure_schema()?;
        store.load_dictionary()?;
        store.recompress =
            tables_sql::meta_get(&mut Lite(&store.conn), "recompress")?.and_then(|v| {
                let (next, last) = v.split_once(' ')?;
                Some((next.parse().ok()?, last.parse().ok()?))
            });
        if created {
            // SQLite gives its -wal and -shm files the database's mode; make sure of it for
            // the ones that exist by now (the next ones are created alike).
            for suffix in ["-wal", "-shm"] {
                let mut side = path.as_os_str().to_owned();
                side.push(suffix);
                make_private(Path::new(&side)).map_err(|e| open_err(io_reason(&e)))?;
            }
        }
        Ok(store)
    }

    /// Hand checkpointing to a background thread (started on first use) and tell it how much
    /// was just written. If it cannot start, SQLite's automatic checkpoints stay on.
    fn checkpoint_in_background(&mut self, written: usize) {
        if self.checkpointer.is_none() {
            self.checkpointer = Checkpointer::start(&self.path);
            if self.checkpointer.is_some() {
                let _ = self.conn.pragma_update(None, "wal_autocheckpoint", 0);
            }
        }
        if let Some(c) = &self.checkpointer {
            c.committed(written);
        }
        // A derivation rewrites pages all over the tables in every commit, faster than a
        // background checkpoint that waits for nobody can copy them back, and the log only
        // starts over once one has caught up. Past a bound, the writer itself waits for a full
        // checkpoint and truncates the log: a pause in a long job, never an unbounded file.
        let wal = PathBuf::from(format!("{}-wal", self.path.display()));
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_FORCE_CHECKPOINT)
            && let Err(e) = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        {
            tracing::warn!(error = %e, "cannot checkpoint the write-ahead log; will retry");
        }
    }

    /// Take the store's latest trained dictionary for new messages.
    fn load_dictionary(&mut self) -> Result<(), StoreError> {
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM dictionaries ORDER BY trained_on DESC, id LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql("read dictionaries"))?;
        if let Some(id) = id {
            // A damaged one is not used for new messages; verify names the rows that need it.
            match u32::try_from(id)
                .map_err(|_| format!("id {id} is not zstd's"))
                .and_then(|id| dictionary(&self.conn, id))
            {
                Ok(t) => self.codec.set(t),
                Err(e) => {
                    tracing::warn!(
                        "the store's dictionary {id} is unusable ({e}); new messages are stored deflated: run `cprwatch verify`"
                    );
                    self.train_failed = true;
                }
            }
        }
        Ok(())
    }

    /// Train a dictionary on the first messages stored, once the store holds enough of them
    /// (after a commit, so a store with little mail keeps deflating). Failing to train is no
    /// error: messages stay deflated, as in a store with too little mail.
    fn train_when_ready(&mut self, added: u64) -> Result<(), StoreError> {
        if self.codec.trained().is_some() || self.train_failed {
            return Ok(());
        }
        let held = match self.untrained {
            Some(n) => n + added,
            None => {
                let n: i64 = self
                    .conn
                    .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
                    .map_err(sql("count messages"))?;
                u64::try_from(n).unwrap_or(0)
            }
        };
        self.untrained = Some(held);
        if held < self.train_on as u64 {
            return Ok(());
        }
        // The first messages stored: what the desk's mail is like, whatever comes later.
        let mut samples = Vec::with_capacity(self.train_on);
        {
            let mut st = self
                .conn
                .prepare("SELECT content_hash, raw, size FROM messages ORDER BY rowid LIMIT ?1")
                .map_err(sql("read messages to train on"))?;
            let mut rows = st
                .query(params![self.train_on as i64])
                .map_err(sql("read messages to train on"))?;
            while let Some(r) = rows.next().map_err(sql("read messages to train on"))? {
                let key = hash_column(r.get_ref(0).map_err(sql("train"))?, "content_hash");
                let raw = blob_column(r.get_ref(1).map_err(sql("train"))?, "raw");
                let size: Option<i64> = r.get(2).ok();
                // A damaged message is left out (verify names it), not trained on.
                if let (Ok(key), Ok(raw), Some(size)) = (key, raw, size)
                    && let Ok(m) =
                        decompress_checked(&key, raw, size, &|id| dictionary(&self.conn, id))
                {
                    samples.push(m);
                }
            }
        }
        match super::message::train(&samples) {
            Ok(t) => {
                self.conn
                    .execute(
                        "INSERT INTO dictionaries (id, trained_on, content) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (id) DO NOTHING",
                        params![t.id(), i64::try_from(held).unwrap_or(i64::MAX), t.bytes()],
                    )
                    .map_err(sql("store a dictionary"))?;
                // The row as stored: what every reader gets.
                let t = dictionary(&self.conn, t.id()).map_err(|problem| {
                    StoreError::CorruptMessage {
                        content_hash: format!("(dictionary {})", t.id()),
                        problem,
                    }
                })?;
                self.codec.set(t);
                // The messages stored so far, deflated: compress them against it too, a piece
                // after each commit from now on.
                let last: Option<i64> = self
                    .conn
                    .query_row("SELECT MAX(rowid) FROM messages", [], |r| r.get(0))
                    .map_err(sql("read messages to recompress"))?;
                if let Some(last) = last {
                    self.recompress = Some((i64::MIN, last));
                    tables_sql::meta_set(
                        &mut Lite(&self.conn),
                        "recompress",
                        &format!("{} {last}", i64::MIN),
                    )?;
                }
            }
            Err(e) => {
                tracing::info!("messages stay deflated: {e}");
                self.train_failed = true;
            }
        }
        Ok(())
    }

    /// Compress the next [`RECOMPRESS_PIECE`] (`recompress_piece`) of the messages stored deflated before the
    /// dictionary against it, in a transaction of their own (a piece after each commit, so a
    /// store that held many before it trained is not stopped for long). A message that does not
    /// decompress to its content hash is left as it is, for `verify` to name.
    fn recompress_some(&mut self) -> Result<(), StoreError> {
        const ACTION: &str = "compress older messages";
        let (Some((next, last)), Some(t)) = (self.recompress, self.codec.trained()) else {
            return Ok(());
        };
        let tx = self.conn.transaction().map_err(sql(ACTION))?;
        let mut reached = None;
        {
            let mut st = tx
                .prepare(
                    "SELECT rowid, content_hash, raw, size FROM messages \
                     WHERE rowid >= ?1 AND rowid <= ?2 ORDER BY rowid LIMIT ?3",
                )
                .map_err(sql(ACTION))?;
            // Moved to the end of the table as well: rewritten in place, a row leaves the rest
            // of its old size unused in its page for good (messages are only ever appended),
            // while pages emptied of all their rows are freed.
            let mut update = tx
                .prepare(
                    "UPDATE messages SET raw = ?1, \
                     rowid = (SELECT MAX(rowid) FROM messages) + 1 WHERE rowid = ?2",
                )
                .map_err(sql(ACTION))?;
            let mut rows = st
                .query(params![next, last, self.recompress_piece])
                .map_err(sql(ACTION))?;
            while let Some(r) = rows.next().map_err(sql(ACTION))? {
                let rowid: i64 = r.get(0).map_err(sql(ACTION))?;
                reached = Some(rowid);
                let key = hash_column(r.get_ref(1).map_err(sql(ACTION))?, "content_hash");
                let raw = blob_column(r.get_ref(2).map_err(sql(ACTION))?, "raw");
                let size: Option<i64> = r.get(3).ok();
                let (Ok(key), Ok(raw), Some(size)) = (key, raw, size) else {
                    continue;
                };
                if super::message::is_trained_form(raw) {
                    continue;
                }
                let Ok(m) = decompress_checked(&key, raw, size, &|id| dictionary(&tx, id)) else {
                    continue;
                };
                let z = super::message::compress(&m, Some(t));
                if z.len() < raw.len() {
                    update.execute(params![z, rowid]).map_err(sql(ACTION))?;
                }
            }
        }
        let left = match reached {
            Some(r) if r < last => Some((r + 1, last)),
            _ => None,
        };
        match left {
            Some((next, last)) => {
                tables_sql::meta_set(&mut Lite(&tx), "recompress", &format!("{next} {last}"))?
            }
            None => {
                tx.execute("DELETE FROM meta WHERE key = 'recompress'", [])
                    .map_err(sql(ACTION))?;
            }
        }
        tx.commit().map_err(sql(ACTION))?;
        self.recompress = left;
        // Give the freed pages back (a store created by an earlier version keeps them for later
        // rows: the pragma does nothing without incremental auto-vacuum).
        // (It frees a page for each step, so step it through.)
        let mut st = self
            .conn
            .prepare("PRAGMA incremental_vacuum")
            .map_err(sql(ACTION))?;
        let mut rows = st.query([]).map_err(sql(ACTION))?;
        while rows.next().map_err(sql(ACTION))?.is_some() {}
        Ok(())
    }

    /// Compress this many older messages after each commit instead of [`RECOMPRESS_PIECE`]
    /// (tests).
    #[cfg(test)]
    pub(crate) fn recompress_piece(&mut self, n: i64) {
        self.recompress_piece = n;
    }

    /// Train on this many messages instead of [`super::message::TRAIN_ON`] (tests).
    #[cfg(test)]
    pub(crate) fn train_on(&mut self, n: usize) {
        self.train_on = n;
    }

    /// Create the schema in an empty file, or check that an existing one is ours and not newer.
    fn ensure_schema(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("schema check"))?;
        let tables: Vec<String> = {
            let mut st = tx
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
                .map_err(sql("schema check"))?;
            st.query_map([], |r| r.get(0))
                .and_then(|rows| rows.collect())
                .map_err(sql("schema check"))?
        };
        if tables.is_empty() {
            tx.execute_batch(SCHEMA).map_err(sql("schema creation"))?;
            tx.execute_batch(SCHEMA_V2)
                .map_err(sql("schema creation"))?;
            tx.execute_batch(SCHEMA_V3)
                .map_err(sql("schema creation"))?;
            tx.execute_batch(SCHEMA_V4)
                .map_err(sql("schema creation"))?;
            tx.execute_batch(SCHEMA_V5)
                .map_err(sql("schema creation"))?;
            tx.execute_batch(SCHEMA_V6)
                .map_err(sql("schema creation"))?;
            tx.execute_batch(SCHEMA_V7)
                .map_err(sql("schema creation"))?;
            split_positions(&tx)?;
            tx.execute_batch(SCHEMA_V8)
                .map_err(sql("schema creation"))?;
            tx.execute_batch(SCHEMA_V9)
                .map_err(sql("schema creation"))?;
            tx.execute_batch(SCHEMA_V10)
                .map_err(sql("schema creation"))?;
            tx.execute_batch(super::sessions::SCHEMA_V11)
                .map_err(sql("schema creation"))?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                params![SCHEMA_VERSION.to_string()],
            )
            .map_err(sql("schema creation"))?;
            return tx.commit().map_err(sql("schema creation"));
        }
        if !tables.iter().any(|t| t == "meta") {
            return Err(StoreError::NotAStore {
                path,
                detail: format!("it has tables ({}) but no meta table", tables.join(", ")),
            });
        }
        let version: Option<String> = tx
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql("schema check"))?;
        let version = version.ok_or_else(|| StoreError::NotAStore {
            path: path.clone(),
            detail: "meta has no schema_version".into(),
        })?;
        let found: i64 = version.trim().parse().map_err(|_| StoreError::NotAStore {
            path: path.clone(),
            detail: format!("schema_version {version:?} is not a number"),
        })?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                path,
                found,
                supported: SCHEMA_VERSION,
            });
        }
        // Each step brings the schema one version up; the version is recorded once, at the end,
        // in the same transaction, so a failed migration leaves the store as it was.
        if found < 2 {
            tx.execute_batch(SCHEMA_V2)
                .map_err(sql("migration to schema 2"))?;
        }
        if found < 3 {
            tx.execute_batch(SCHEMA_V3)
                .map_err(sql("migration to schema 3"))?;
        }
        if found < 4 {
            // The tables start empty; the desk builds them from the log on first open.
            tx.execute_batch(SCHEMA_V4)
                .map_err(sql("migration to schema 4"))?;
        }
        if found < 5 {
            // Empty: the tables are built again (their format names the fold rows), which
            // fills it.
            tx.execute_batch(SCHEMA_V5)
                .map_err(sql("migration to schema 5"))?;
        }
        if found < 6 {
            // Empty: a dictionary is trained on the mail already stored at the next commit.
            tx.execute_batch(SCHEMA_V6)
                .map_err(sql("migration to schema 6"))?;
        }
        if found < 7 {
            // Rows written before keep their whole hashes and read as before.
            tx.execute_batch(SCHEMA_V7)
                .map_err(sql("migration to schema 7"))?;
            split_positions(&tx)?;
        }
        if found < 8 {
            // Empty: clocks open at the upgrade are first seen by the first evaluation after it.
            tx.execute_batch(SCHEMA_V8)
                .map_err(sql("migration to schema 8"))?;
        }
        if found < 9 {
            // Empty: the first checkpoint is signed by the next `run` or `audit checkpoint`.
            tx.execute_batch(SCHEMA_V9)
                .map_err(sql("migration to schema 9"))?;
        }
        if found < 10 {
            // Empty: the checker starts on every open certificate clock at the next `run`.
            tx.execute_batch(SCHEMA_V10)
                .map_err(sql("migration to schema 10"))?;
        }
        if found < 11 {
            // Empty: staff logged in before the upgrade log in again.
            tx.execute_batch(super::sessions::SCHEMA_V11)
                .map_err(sql("migration to schema 11"))?;
        }
        if found < SCHEMA_VERSION {
            tx.execute(
                "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
                params![SCHEMA_VERSION.to_string()],
            )
            .map_err(sql("schema migration"))?;
        }
        tx.commit().map_err(sql("schema check"))
    }
}

/// How many bytes of its hash an `events` row keeps when it keeps only a check (schema 7).
const CHECK_BYTES: usize = 8;

/// Every row whose seq is a multiple of this keeps its whole hash (and so does the last row of
/// each commit): a reader starting anywhere chains forward from at most this many rows back.
const WHOLE_HASH_EVERY: u64 = 16;

/// How many of the messages stored before the dictionary are compressed against it after
/// each commit: about a tenth of a second's work.
const RECOMPRESS_PIECE: i64 = 2000;

/// Events in one commit from which their bodies are deflated on two threads: below it a
/// thread costs more than it saves (the service commits a message's few events at a time).
const ENCODE_IN_PARALLEL_FROM: usize = 64;

/// The message an event body is about, if any: its content hash and first bytes.
type MailOf = Option<(String, Arc<[u8]>)>;

/// The stored form of each body (with the message it is about, if any): its encoding and
/// bytes, or `None` to keep it plain.
fn deflate_all(bodies: &[Vec<u8>], mails: &[MailOf]) -> Vec<Option<(Encoding, Vec<u8>)>> {
    bodies
        .iter()
        .zip(mails)
        .map(|(b, mail)| match mail {
            Some((hash, mail)) => body::deflated_with_mail(b, hash, mail),
            None => body::deflated(b).map(|z| (Encoding::DeflateV1, z)),
        })
        .collect()
}

/// `u64` seq to SQLite's `INTEGER`. A log can never hold 2^63 events; saturate rather than wrap.
fn seq_to_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// Decompress a stored message and check it against its size and key. The `size` column
/// bounds the output, so a damaged row cannot make us inflate without limit.
pub(super) fn decompress_checked(
    key: &str,
    compressed: &[u8],
    size: i64,
    dictionaries: Dictionaries<'_>,
) -> Result<Vec<u8>, String> {
    let size = u64::try_from(size).map_err(|_| format!("size column is negative ({size})"))?;
    let out = super::message::decompress(compressed, size, dictionaries)?;
    chain::check_message(key, &out)?;
    Ok(out)
}

/// The canonical bytes of one `events` row from its `body`, `encoding` and `size` columns, for
/// tools and tests that read the file with SQL: since schema 3 SQL alone cannot look inside a
/// body, and since schema 5 a body may need its message (read through `db`). Errors say what is
/// wrong with the row.
pub fn event_body(
    db: &Connection,
    stored: &[u8],
    encoding: i64,
    size: Option<i64>,
) -> Result<Vec<u8>, String> {
    let cache = RefCell::default();
    body::decode(Encoding::from_column(encoding)?, stored, size, |h| {
        mail_prefix(db, &cache, h, false)
    })
}

/// An `events` row selected as `seq, body, prev_hash, hash, encoding, size`, its body
/// decoded to the canonical bytes. `prev` is the hash of the row before, the link of a row that
/// does not state it (schema 5); it becomes this row's hash.
fn event_row(
    r: &rusqlite::Row<'_>,
    prev: &mut String,
    mail: impl FnOnce(&str) -> Result<Arc<[u8]>, String>,
) -> Result<StoredEvent, StoreError> {
    let seq = u64::try_from(r.get::<_, i64>(0).map_err(sql("read events"))?).unwrap_or(0);
    let corrupt = |problem| StoreError::CorruptEvent { seq, problem };
    let body = stored_body(r, mail).map_err(corrupt)?;
    let get = |i| r.get_ref(i).map_err(sql("read events"));
    let prev_hash = link_column(get(2)?)
        .map_err(corrupt)?
        .unwrap_or_else(|| prev.clone());
    let hash = row_hash(get(3)?)
        .and_then(|h| h.resolve(seq, &prev_hash, &body))
        .map_err(corrupt)?;
    prev.clone_from(&hash);
    Ok(StoredEvent {
        seq,
        body,
        prev_hash,
        hash,
    })
}

/// The canonical bytes of the body in an `events` row selected as `seq, body, prev_hash, hash,
/// encoding, size`, read without trusting the columns' types: damage shows as a problem.
/// `mail` gives the first bytes of a message the body is deflated against.
fn stored_body(
    r: &rusqlite::Row<'_>,
    mail: impl FnOnce(&str) -> Result<Arc<[u8]>, String>,
) -> Result<Vec<u8>, String> {
    let get = |i| r.get_ref(i).map_err(|e| e.to_string());
    let stored = blob_column(get(1)?, "body")?;
    let encoding = match get(4)? {
        ValueRef::Integer(n) => Encoding::from_column(n)?,
        other => return Err(format!("encoding is stored as {:?}", other.data_type())),
    };
    let size = match get(5)? {
        ValueRef::Null => None,
        ValueRef::Integer(n) => Some(n),
        other => return Err(format!("size is stored as {:?}", other.data_type())),
    };
    body::decode(encoding, stored, size, mail)
}

/// A chain hash as lowercase hex from its column: 32 bytes (schema 5) or 64 hex digits (the
/// TEXT rows before), read without trusting the type: damage shows as a problem, or as a hash
/// that does not match.
fn hash_column(v: ValueRef<'_>, column: &str) -> Result<String, String> {
    match v {
        ValueRef::Blob(b) if b.len() == 32 => Ok(hex::encode(b)),
        ValueRef::Blob(b) => Err(format!(
            "{column} is {} bytes, not the 32 of a SHA-256",
            b.len()
        )),
        v => text_column(v, column),
    }
}

/// A row's `hash` column: the whole hash, or (schema 7) the first [`CHECK_BYTES`] of it.
enum RowHash {
    Whole(String),
    Check(Vec<u8>),
}

/// The `hash` column read without trusting its type: 32 bytes or 64 hex digits (the whole
/// hash), or [`CHECK_BYTES`] bytes (a check). Damage shows as a problem, or as a hash that
/// does not match.
fn row_hash(v: ValueRef<'_>) -> Result<RowHash, String> {
    match v {
        ValueRef::Blob(b) if b.len() == CHECK_BYTES => Ok(RowHash::Check(b.to_vec())),
        v => hash_column(v, "hash").map(RowHash::Whole),
    }
}

impl RowHash {
    /// The whole hash of event `seq` with link `prev` and canonical `body`: as stored, or
    /// computed and held against the stored check. A check that differs is a damaged row.
    fn resolve(self, seq: u64, prev: &str, body: &[u8]) -> Result<String, String> {
        match self {
            RowHash::Whole(h) => Ok(h),
            RowHash::Check(check) => {
                let computed = chain::event_hash(seq, prev, body);
                if computed.starts_with(&hex::encode(&check)) {
                    Ok(computed)
                } else {
                    Err(format!(
                        "hash mismatch: stored {:?} (its first {CHECK_BYTES} bytes), computed \
                         {computed:?} from seq, prev_hash and body",
                        hex::encode(&check)
                    ))
                }
            }
        }
    }
}

/// The link a row states (`prev_hash` as TEXT, rows before schema 5), or `None` for the empty
/// BLOB of a row whose link is implied: the hash of the row before.
fn link_column(v: ValueRef<'_>) -> Result<Option<String>, String> {
    match v {
        ValueRef::Blob([]) => Ok(None),
        ValueRef::Blob(b) => Err(format!(
            "prev_hash is {} bytes, neither empty (the link implied) nor text",
            b.len()
        )),
        v => text_column(v, "prev_hash").map(Some),
    }
}

/// A content hash (lowercase hex) as the two forms a `messages` key takes: TEXT in rows written
/// before schema 5, the 32 bytes in rows since. Looked up with `content_hash IN (?, ?)`, which
/// the key's index answers with two probes. A string that is not a hash gives an empty BLOB,
/// which names nothing.
fn key_forms(hash: &str) -> (&str, Vec<u8>) {
    (hash, hex::decode(hash).unwrap_or_default())
}

/// The hash of event `seq` as the link of the next, or `None` if it cannot be read: readers
/// only hand it on, `verify` is what checks links. A row that keeps only a check (schema 7)
/// gets it from the last row before it that keeps its whole hash (at most
/// [`WHOLE_HASH_EVERY`] back), chained forward over the bodies between.
fn hash_of(conn: &Connection, seq: u64) -> Option<String> {
    if seq == 0 {
        return Some(chain::GENESIS.to_string());
    }
    let (from, mut prev) = conn
        .prepare_cached(
            "SELECT seq, hash FROM events WHERE seq <= ?1 AND length(hash) <> ?2 \
             ORDER BY seq DESC LIMIT 1",
        )
        .ok()?
        .query_row(params![seq_to_sql(seq), CHECK_BYTES as i64], |r| {
            Ok((r.get::<_, i64>(0)?, hash_column(r.get_ref(1)?, "hash")))
        })
        .optional()
        .ok()?
        .map(|(s, h)| h.map(|h| (u64::try_from(s).unwrap_or(0), h)))
        .unwrap_or_else(|| Ok((0, chain::GENESIS.to_string())))
        .ok()?;
    if from == seq {
        return Some(prev);
    }
    let mut st = conn
        .prepare_cached(
            "SELECT seq, body, prev_hash, hash, encoding, size FROM events \
             WHERE seq > ?1 AND seq <= ?2 ORDER BY seq",
        )
        .ok()?;
    let mut rows = st.query(params![seq_to_sql(from), seq_to_sql(seq)]).ok()?;
    let cache = RefCell::default();
    let mut last = from;
    while let Some(r) = rows.next().ok()? {
        let e = event_row(r, &mut prev, |h| mail_prefix(conn, &cache, h, false)).ok()?;
        last = e.seq;
    }
    (last == seq).then_some(prev)
}

/// A column that should be text, read without trusting its type: damage shows as a problem.
fn text_column(v: ValueRef<'_>, column: &str) -> Result<String, String> {
    match v {
        ValueRef::Text(t) => std::str::from_utf8(t)
            .map(str::to_string)
            .map_err(|_| format!("{column} is not valid UTF-8")),
        other => Err(format!(
            "{column} is stored as {:?}, not text",
            other.data_type()
        )),
    }
}

fn blob_column<'a>(v: ValueRef<'a>, column: &str) -> Result<&'a [u8], String> {
    match v {
        ValueRef::Blob(b) | ValueRef::Text(b) => Ok(b),
        other => Err(format!(
            "{column} is stored as {:?}, not a blob",
            other.data_type()
        )),
    }
}

/// The canonical body of the event at `seq`, read through `conn` (its hash is not needed,
/// nor worked out: a row may keep only a check of it).
pub(super) fn event_body_at(conn: &Connection, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
    let mut st = conn
        .prepare_cached(
            "SELECT seq, body, prev_hash, hash, encoding, size FROM events WHERE seq = ?1",
        )
        .map_err(sql("read events"))?;
    let mut rows = st
        .query(params![seq_to_sql(seq)])
        .map_err(sql("read events"))?;
    let cache = RefCell::default();
    match rows.next().map_err(sql("read events"))? {
        Some(r) => stored_body(r, |h| mail_prefix(conn, &cache, h, false))
            .map(Some)
            .map_err(|problem| StoreError::CorruptEvent { seq, problem }),
        None => Ok(None),
    }
}

impl Store for SqliteStore {
    fn events(&self) -> Result<Vec<StoredEvent>, StoreError> {
        self.events_from(1, usize::MAX)
    }

    fn as_sqlite(&self) -> Option<&SqliteStore> {
        Some(self)
    }

    fn tables(&self) -> Option<&dyn Tables> {
        Some(self)
    }

    fn tables_mut(&mut self) -> Option<&mut dyn Tables> {
        Some(self)
    }

    fn events_from(&self, from: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT seq, body, prev_hash, hash, encoding, size FROM events \
                 WHERE seq >= ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(sql("read events"))?;
        let mut rows = st
            .query(params![
                seq_to_sql(from),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ])
            .map_err(sql("read events"))?;
        let mut prev = hash_of(&self.conn, from.saturating_sub(1)).unwrap_or_default();
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(sql("read events"))? {
            out.push(event_row(r, &mut prev, |h| {
                mail_prefix(&self.conn, &self.mails, h, false)
            })?);
        }
        Ok(out)
    }

    fn known(&self) -> Option<super::Known> {
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ok()?;
        let conn = std::sync::Mutex::new(conn);
        Some(std::sync::Arc::new(move |hash: &str| {
            let conn = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            conn.prepare_cached("SELECT 1 FROM messages WHERE content_hash IN (?1, ?2)")
                .and_then(|mut st| {
                    let (text, bytes) = key_forms(hash);
                    st.exists(params![text, bytes])
                })
                .unwrap_or(false)
        }))
    }

    fn has_message(&self, content_hash: &str) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached("SELECT 1 FROM messages WHERE content_hash IN (?1, ?2)")
            .and_then(|mut st| {
                let (text, bytes) = key_forms(content_hash);
                st.exists(params![text, bytes])
            })
            .map_err(sql("look up message"))
    }

    fn message(&self, content_hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row: Option<(Vec<u8>, i64)> = self
            .conn
            .prepare_cached("SELECT raw, size FROM messages WHERE content_hash IN (?1, ?2)")
            .and_then(|mut st| {
                let (text, bytes) = key_forms(content_hash);
                st.query_row(params![text, bytes], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(sql("read message"))?;
        row.map(|(compressed, size)| {
            decompress_checked(content_hash, &compressed, size, &|id| {
                dictionary(&self.conn, id)
            })
            .map_err(|problem| StoreError::CorruptMessage {
                content_hash: content_hash.to_string(),
                problem,
            })
        })
        .transpose()
    }

    fn position(&self, position: &str) -> Result<Option<String>, StoreError> {
        let (place, name) = split_position(position);
        self.conn
            .prepare_cached(
                "SELECT n.content_hash FROM position_names n \
                 JOIN position_places l ON l.id = n.place WHERE l.place = ?1 AND n.name = ?2",
            )
            .and_then(|mut st| {
                st.query_row(params![place, name], |r| {
                    // Either form of the key; a damaged one is handed on as it reads.
                    Ok(match r.get_ref(0)? {
                        ValueRef::Blob(b) => hex::encode(b),
                        v => String::from_utf8_lossy(v.as_bytes().unwrap_or_default()).into(),
                    })
                })
                .optional()
            })
            .map_err(sql("look up position"))
    }

    fn message_codec(&self) -> Option<MessageCodec> {
        Some(self.codec.clone())
    }

    fn tables_through(&self) -> Result<Option<u64>, StoreError> {
        Ok(
            tables_sql::meta_get(&mut Lite(&self.conn), "tables_through")?
                .and_then(|v| v.parse().ok()),
        )
    }

    fn commit(&mut self, mut batch: Batch) -> Result<Vec<StoredEvent>, StoreError> {
        const ACTION: &str = "commit";
        // Table versions count too (about a quarter page each, with their index entries): a
        // derivation commits nothing else for minutes, and the log must not grow meanwhile.
        let written = batch
            .messages
            .iter()
            .map(|m| m.raw().len() / 3)
            .chain(batch.events.iter().map(Vec::len))
            .sum::<usize>()
            + batch.tables.versions.len() * 256;
        // IMMEDIATE: take the write lock now, so the head read below cannot go stale.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql(ACTION))?;
        // The message each body is about, when it quotes the content hash of one in this batch
        // or of one the store holds: the body is deflated against it
        // (body::Encoding::DeflateMailV1). A message's own events commit with it; its case's
        // (`case_opened`, `message_joined`, `message_logged`) come with a later derivation, so
        // the message is read back for them (a prefix, from the cache when lately seen): a
        // `case_opened` takes a third of the bytes it does against the vocabulary alone.
        let mails: Vec<MailOf> = {
            let in_batch: HashMap<&str, &[u8]> = batch
                .messages
                .iter()
                .map(|m| (m.content_hash(), m.raw()))
                .collect();
            batch
                .events
                .iter()
                .map(|b| {
                    body::quoted_hashes(b).find_map(|h| {
                        let mail = match in_batch.get(h) {
                            Some(raw) => Arc::from(&raw[..raw.len().min(body::MAIL_PREFIX)]),
                            None => mail_prefix(&tx, &self.mails, h, false).ok()?,
                        };
                        Some((h.to_string(), mail))
                    })
                })
                .collect()
        };
        // Deflating the bodies is the costly part of a commit: split it with a helper thread,
        // which does its half while this one writes the messages and positions.
        let (encoded, added) = std::thread::scope(|scope| -> Result<_, StoreError> {
            let split = if batch.events.len() >= ENCODE_IN_PARALLEL_FROM {
                batch.events.len() / 2
            } else {
                0
            };
            let (theirs, mine) = batch.events.split_at(split);
            let (their_mails, my_mails) = mails.split_at(split);
            let helper = (!theirs.is_empty())
                .then(|| {
                    std::thread::Builder::new()
                        .name("store-deflate".into())
                        .spawn_scoped(scope, || deflate_all(theirs, their_mails))
                        .ok()
                })
                .flatten();
            let mut exists = tx
                .prepare_cached("SELECT 1 FROM messages WHERE content_hash IN (?1, ?2)")
                .map_err(sql(ACTION))?;
            let mut stored = |k: &str| {
                let (text, bytes) = key_forms(k);
                exists.exists(params![text, bytes]).map_err(sql(ACTION))
            };
            super::validate_batch(&batch, &mut stored)?;

            let mut insert_message = tx
                .prepare_cached(
                    "INSERT INTO messages (content_hash, raw, size) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (content_hash) DO NOTHING",
                )
                .map_err(sql(ACTION))?;
            let mut added = 0;
            for m in &batch.messages {
                // A message we already hold, under either form of its key, is not stored again
                // (nor compressed, if that is not done yet). The conflict clause only sees the
                // form written here.
                if stored(m.content_hash())? {
                    continue;
                }
                let size = i64::try_from(m.raw().len()).unwrap_or(i64::MAX);
                let (_, key) = key_forms(m.content_hash());
                insert_message
                    .execute(params![key, m.compressed(&self.codec).as_ref(), size])
                    .map_err(sql(ACTION))?;
                added += 1;
            }

            // A position names its message by the key as the message's row has it (the
            // foreign key compares the values as they are).
            let mut insert_position = tx
                .prepare_cached(
                    "INSERT INTO position_names (place, name, content_hash) \
                     SELECT ?1, ?2, content_hash FROM messages \
                     WHERE content_hash IN (?3, ?4) LIMIT 1 \
                     ON CONFLICT (place, name) DO NOTHING",
                )
                .map_err(sql(ACTION))?;
            let mut has_position = tx
                .prepare_cached("SELECT 1 FROM position_names WHERE place = ?1 AND name = ?2")
                .map_err(sql(ACTION))?;
            let mut places = HashMap::new();
            for (position, key) in &batch.positions {
                let (text, bytes) = key_forms(key);
                let (place, name) = split_position(position);
                let place = place_id(&tx, &mut places, place)?;
                let added = insert_position
                    .execute(params![place, name, text, bytes])
                    .map_err(sql(ACTION))?;
                // Nothing added: the position was recorded before (it keeps its first value),
                // or (validate_batch rules it out) its message is nowhere.
                if added == 0
                    && !has_position
                        .exists(params![place, name])
                        .map_err(sql(ACTION))?
                {
                    return Err(StoreError::BadBatch(format!(
                        "position {position:?} names message {key}, which is not stored"
                    )));
                }
            }
            let mine = deflate_all(mine, my_mails);
            // A helper that could not start or failed: do its half here.
            let mut encoded = match helper.map(|h| h.join()) {
                Some(Ok(theirs)) => theirs,
                _ => deflate_all(theirs, their_mails),
            };
            encoded.extend(mine);
            Ok((encoded, added))
        })?;
        let appended = {
            // The head's hash as hex, whichever way its row keeps it. A damaged one chains on
            // as it reads (verify names that event, and the appended ones stay checkable).
            // (The last row of every commit keeps its whole hash.)
            let head: Option<(i64, String)> = tx
                .query_row(
                    "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1",
                    [],
                    |r| {
                        let hash = r.get_ref(1)?;
                        let hash = hash_column(hash, "hash").unwrap_or_else(|_| match hash {
                            ValueRef::Blob(b) | ValueRef::Text(b) => hex::encode(b),
                            _ => String::new(),
                        });
                        Ok((r.get(0)?, hash))
                    },
                )
                .optional()
                .map_err(sql(ACTION))?;
            let head = head.map(|(seq, hash)| (u64::try_from(seq).unwrap_or(0), hash));
            let last = batch.events.len();
            let appended = chain::extend(
                head.as_ref().map(|(s, h)| (*s, h.as_str())),
                std::mem::take(&mut batch.events),
            );
            let mut insert_event = tx
                .prepare_cached(
                    "INSERT INTO events (seq, body, prev_hash, hash, encoding, size) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(sql(ACTION))?;
            for (i, (e, deflated)) in appended.iter().zip(&encoded).enumerate() {
                let (encoding, stored, size) = match deflated {
                    Some((encoding, z)) => (
                        *encoding,
                        z.as_slice(),
                        Some(i64::try_from(e.body.len()).unwrap_or(i64::MAX)),
                    ),
                    None => (Encoding::Plain, e.body.as_slice(), None),
                };
                // Schema 5 rows: the hash as its 32 bytes, the link implied (empty); schema 7:
                // only a check of it, but in every WHOLE_HASH_EVERY-th row and the last of
                // the commit (the head, which the next commit chains on).
                let mut hash = hex::decode(&e.hash).map_err(|_| {
                    StoreError::BadBatch(format!(
                        "the chain made a hash that is not hex: {}",
                        e.hash
                    ))
                })?;
                if i + 1 < last && e.seq % WHOLE_HASH_EVERY != 0 {
                    hash.truncate(CHECK_BYTES);
                }
                insert_event
                    .execute(params![
                        seq_to_sql(e.seq),
                        stored,
                        &[] as &[u8],
                        hash,
                        encoding.column(),
                        size
                    ])
                    .map_err(sql(ACTION))?;
            }
            super::tables::write_beside(
                &mut Lite(&tx),
                &batch,
                &appended,
                head.as_ref().map(|(s, _)| *s),
            )?;
            let mut upsert_checkpoint = tx
                .prepare_cached(
                    "INSERT INTO imap_checkpoints (mailbox, folder, uidvalidity, last_uid) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (mailbox, folder) DO UPDATE SET \
                     uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid",
                )
                .map_err(sql(ACTION))?;
            for cp in &batch.checkpoints {
                upsert_checkpoint
                    .execute(params![cp.mailbox, cp.folder, cp.uidvalidity, cp.last_uid])
                    .map_err(sql(ACTION))?;
            }
            appended
        };
        tx.commit().map_err(sql(ACTION))?;
        // Only now, stored for sure: an event about one of them in a later commit finds it here.
        let mut cache = self.mails.borrow_mut();
        for (hash, mail) in mails.into_iter().flatten() {
            cache.put(&hash, mail);
        }
        drop(cache);
        self.checkpoint_in_background(written);
        // The batch is stored whatever happens here: a failure only means no dictionary yet.
        if let Err(e) = self.train_when_ready(added) {
            tracing::warn!("messages stay deflated: cannot train a dictionary: {e}");
            self.train_failed = true;
        }
        if let Err(e) = self.recompress_some() {
            tracing::warn!("older messages stay deflated for now: {e}");
        }
        Ok(appended)
    }

    fn checkpoint(&self, mailbox: &str, folder: &str) -> Result<Option<Checkpoint>, StoreError> {
        self.conn
            .query_row(
                "SELECT uidvalidity, last_uid FROM imap_checkpoints WHERE mailbox = ?1 AND folder = ?2",
                params![mailbox, folder],
                |r| {
                    Ok(Checkpoint {
                        mailbox: mailbox.to_string(),
                        folder: folder.to_string(),
                        uidvalidity: r.get(0)?,
                        last_uid: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(sql("read checkpoint"))
    }

    fn positions_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        // Range scans on the keys (portable, and no LIKE escaping of the prefix): the places
        // that start with the prefix, all their names; and the place the prefix ends in, if it
        // goes on past its last `/`, the names there that start with the rest.
        let upper = |s: &str| format!("{s}{}", char::MAX);
        let (place, rest) = split_position(prefix);
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT l.place || n.name FROM position_places l \
                 JOIN position_names n ON n.place = l.id WHERE l.place >= ?1 AND l.place < ?2 \
                 UNION ALL \
                 SELECT l.place || n.name FROM position_places l \
                 JOIN position_names n ON n.place = l.id \
                 WHERE ?4 <> '' AND l.place = ?3 AND n.name >= ?4 AND n.name < ?5",
            )
            .map_err(sql("list positions"))?;
        let rows = st
            .query_map(
                params![prefix, upper(prefix), place, rest, upper(rest)],
                |r| r.get::<_, String>(0),
            )
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sql("list positions"))?;
        Ok(rows.into_iter().filter(|p| p.starts_with(prefix)).collect())
    }

    fn set_folder_state(&mut self, st: &FolderState) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO folder_states (mailbox, folder, role, last_sync_at, last_error, last_error_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (mailbox, folder) DO UPDATE SET \
                 role = excluded.role, last_sync_at = excluded.last_sync_at, \
                 last_error = excluded.last_error, last_error_at = excluded.last_error_at",
                params![st.mailbox, st.folder, st.role, st.last_sync_at, st.last_error, st.last_error_at],
            )
            .map(|_| ())
            .map_err(sql("record folder state"))
    }

    fn folder_states(&self) -> Result<Vec<FolderState>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT mailbox, folder, role, last_sync_at, last_error, last_error_at \
                 FROM folder_states ORDER BY mailbox, folder",
            )
            .map_err(sql("read folder states"))?;
        st.query_map([], |r| {
            Ok(FolderState {
                mailbox: r.get(0)?,
                folder: r.get(1)?,
                role: r.get(2)?,
                last_sync_at: r.get(3)?,
                last_error: r.get(4)?,
                last_error_at: r.get(5)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(sql("read folder states"))
    }

    fn verify(&self) -> Result<Verification, StoreError> {
        const ACTION: &str = "verify";
        let mut checker = chain::ChainChecker::new();
        let mut bad_event = None;
        {
            let mut st = self
                .conn
                .prepare(
                    "SELECT seq, body, prev_hash, hash, encoding, size FROM events ORDER BY seq",
                )
                .map_err(sql(ACTION))?;
            let mut rows = st.query([]).map_err(sql(ACTION))?;
            while let Some(r) = rows.next().map_err(sql(ACTION))? {
                let seq: i64 = r.get(0).map_err(sql(ACTION))?;
                let seq = u64::try_from(seq).unwrap_or(0);
                let mut against = None;
                let checked = (|| {
                    checker.expect(seq)?;
                    let body = stored_body(r, |h| {
                        against = Some(h.to_string());
                        mail_prefix(&self.conn, &self.mails, h, false)
                    })?;
                    let prev = link_column(r.get_ref(2).map_err(|e| e.to_string())?)?
                        .unwrap_or_else(|| checker.head().to_string());
                    let hash = row_hash(r.get_ref(3).map_err(|e| e.to_string())?)?
                        .resolve(seq, &prev, &body)?;
                    checker.check(seq, &body, &prev, &hash)
                })();
                if let Err(problem) = checked {
                    // A body deflated against a message that is damaged: say so, naming the
                    // message (checked whole only now: an intact log costs no second check).
                    let whole = against.and_then(|h| {
                        mail_prefix(&self.conn, &RefCell::default(), &h, true)
                            .err()
                            .map(|e| format!("the body is deflated against message {h}: {e}"))
                    });
                    bad_event = Some(BadEvent {
                        seq,
                        problem: whole.unwrap_or(problem),
                    });
                    break;
                }
            }
        }
        let mut bad_message = None;
        let mut messages_checked = 0;
        // Each dictionary read afresh from the store, once: not what this process read before.
        let read: RefCell<HashMap<u32, Arc<Trained>>> = RefCell::default();
        let dicts = |id: u32| -> Result<Arc<Trained>, String> {
            if let Some(t) = read.borrow().get(&id) {
                return Ok(t.clone());
            }
            let t = read_dictionary(&self.conn, id)?;
            read.borrow_mut().insert(id, t.clone());
            Ok(t)
        };
        {
            let mut st = self
                .conn
                .prepare("SELECT content_hash, raw, size FROM messages ORDER BY content_hash")
                .map_err(sql(ACTION))?;
            let mut rows = st.query([]).map_err(sql(ACTION))?;
            while let Some(r) = rows.next().map_err(sql(ACTION))? {
                messages_checked += 1;
                let key = hash_column(r.get_ref(0).map_err(sql(ACTION))?, "content_hash")
                    .unwrap_or_else(|p| format!("<{p}>"));
                let checked = (|| {
                    let raw = blob_column(r.get_ref(1).map_err(|e| e.to_string())?, "raw")?;
                    let size = match r.get_ref(2).map_err(|e| e.to_string())? {
                        ValueRef::Integer(n) => n,
                        other => {
                            return Err(format!("size is stored as {:?}", other.data_type()));
                        }
                    };
                    decompress_checked(&key, raw, size, &dicts).map(drop)
                })();
                if let Err(problem) = checked {
                    bad_message = Some(BadMessage {
                        content_hash: key,
                        problem,
                    });
                    break;
                }
            }
        }
        Ok(Verification {
            events_ok: checker.checked(),
            head: checker.head().to_string(),
            messages_checked,
            bad_event,
            bad_message,
        })
    }
}

/// Rows that differ between two stores' tables, described: in the log's index, and in the
/// projection.
#[derive(Debug, Default)]
pub struct TableDifferences {
    pub index: Vec<String>,
    pub tables: Vec<String>,
}

impl Tables for SqliteStore {
    fn with_db(
        &self,
        f: &mut dyn FnMut(&mut dyn super::db::Db) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        f(&mut Lite(&self.conn))
    }

    fn backing(&self) -> Result<StoreBacking, StoreError> {
        self.backing_over(&self.path)
    }

    fn backing_over(&self, tables: &Path) -> Result<StoreBacking, StoreError> {
        StoreBacking::open(&self.path, tables)
    }

    fn scratch_path(&self) -> PathBuf {
        let mut scratch = self.path.as_os_str().to_owned();
        scratch.push(format!(".verify-{}", std::process::id()));
        PathBuf::from(scratch)
    }

    fn tables_differ_from(&self, other: &Path) -> Result<TableDifferences, StoreError> {
        self.differ_from(other)
    }

    fn add_signed_checkpoint(&self, c: &SignedCheckpoint) -> Result<i64, StoreError> {
        signed_sql::insert(&mut Lite(&self.conn), c)
    }

    /// The events with these seqs, in seq order (a seq beyond the log is skipped). A run of
    /// consecutive seqs carries each one's hash to the next; only the first of a run works its
    /// predecessor's hash out from the last whole one, so reading many events of a period
    /// costs about one body each.
    fn events_at(
        &self,
        seqs: &std::collections::BTreeSet<u64>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT seq, body, prev_hash, hash, encoding, size FROM events WHERE seq = ?1",
            )
            .map_err(sql("read events"))?;
        let mut out = Vec::with_capacity(seqs.len());
        let mut prev = String::new();
        let mut last = None;
        for &seq in seqs {
            let mut rows = st
                .query(params![seq_to_sql(seq)])
                .map_err(sql("read events"))?;
            if let Some(r) = rows.next().map_err(sql("read events"))? {
                if last.is_none_or(|l: u64| l.checked_add(1) != Some(seq)) {
                    prev = hash_of(&self.conn, seq.saturating_sub(1)).unwrap_or_default();
                }
                out.push(event_row(r, &mut prev, |h| {
                    mail_prefix(&self.conn, &self.mails, h, false)
                })?);
                last = Some(seq);
            }
        }
        Ok(out)
    }

    /// Empty the projection tables before they are derived again, and with `index` the log's
    /// index too.
    fn reset_tables(&mut self, index: bool) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("reset tables"))?;
        super::tables::reset(&mut Lite(&tx), index)?;
        tx.commit().map_err(sql("reset tables"))
    }

    /// Write one piece of a re-derivation: versions and the event index, in one transaction.
    /// With `done`, the tables are complete through `through`, built with `built_with`.
    fn write_tables(
        &mut self,
        delta: &Delta,
        event_index: &[(u64, EventIndex)],
        done: Option<(u64, &str)>,
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("rebuild tables"))?;
        super::tables::write_piece(&mut Lite(&tx), delta, event_index, done)?;
        tx.commit().map_err(sql("rebuild tables"))?;
        self.checkpoint_in_background(delta.versions.len() * 256);
        Ok(())
    }

    fn write_rows(
        &mut self,
        action: &'static str,
        f: &mut dyn FnMut(&mut dyn super::db::Db) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql(action))?;
        f(&mut Lite(&tx))?;
        tx.commit().map_err(sql(action))
    }

    /// Record what the tables were built with (after the engine derived them itself).
    fn set_tables_built_with(&mut self, built_with: &str) -> Result<(), StoreError> {
        tables_sql::meta_set(&mut Lite(&self.conn), "tables_built_with", built_with)
    }
}

/// What only the SQLite store does with its tables.
impl SqliteStore {
    /// Keep at most `kib` KiB of pages in this connection's cache (a scratch store that is
    /// written once, then read in order).
    pub(crate) fn limit_cache(&self, kib: i64) -> Result<(), StoreError> {
        self.conn
            .pragma_update(None, "cache_size", -kib)
            .map_err(sql("set the page cache"))
    }

    /// Compare the projection tables and the log's index with those of another store file (a
    /// re-derivation into a scratch file): the first few rows that differ, described, or none.
    pub(super) fn differ_from(&self, other: &Path) -> Result<TableDifferences, StoreError> {
        const ACTION: &str = "compare tables";
        self.conn
            .execute(
                "ATTACH DATABASE ?1 AS fresh",
                params![other.to_string_lossy()],
            )
            .map_err(sql(ACTION))?;
        let result = (|| {
            let mut out = TableDifferences::default();
            // The log's index first: the projection is derived through it.
            let columns = [
                (
                    "event_refs",
                    "ref_key, seq",
                    "'event ' || seq || ' ref ' || ref_key",
                ),
                (
                    "receipts",
                    "received_at, staff, content_hash, seq",
                    "'event ' || seq || ' received at ' || received_at",
                ),
                (
                    "case_numbers",
                    "founder, year, number",
                    "'case ' || year || '-' || number",
                ),
                (
                    "recorded",
                    "space, key, value",
                    "'space ' || space || ' ' || hex(key)",
                ),
                ("cases", "id, ord, opened_at, header", "id"),
                (
                    "case_items",
                    "case_id, kind, item, valid_from, valid_to, ord, body",
                    "case_id || ' ' || item || ' from ' || valid_from",
                ),
                (
                    "clocks",
                    "id, valid_from, valid_to, stop_key, deadline, body",
                    "id || ' from ' || valid_from",
                ),
                (
                    "case_names",
                    "name_key, case_id, since",
                    "case_id || ' name ' || name_key",
                ),
                (
                    "fold",
                    "space, key, valid_from, valid_to, value",
                    "'space ' || space || ' ' || key || ' from ' || valid_from",
                ),
            ];
            for (table, cols, label) in columns {
                for (a, b, what) in [
                    ("main", "fresh", "only in the store"),
                    ("fresh", "main", "missing from the store"),
                ] {
                    let q = format!(
                        "SELECT {label} FROM (SELECT {cols} FROM {a}.{table} EXCEPT SELECT {cols} FROM {b}.{table}) LIMIT 3"
                    );
                    let mut st = self.conn.prepare(&q).map_err(sql(ACTION))?;
                    let rows: Vec<String> = st
                        .query_map([], |r| r.get::<_, String>(0))
                        .and_then(|rows| rows.collect())
                        .map_err(sql(ACTION))?;
                    let list = if tables_sql::INDEX_TABLES.contains(&table) {
                        &mut out.index
                    } else {
                        &mut out.tables
                    };
                    list.extend(rows.into_iter().map(|r| format!("{table}: {r}: {what}")));
                }
            }
            Ok(out)
        })();
        self.conn
            .execute("DETACH DATABASE fresh", [])
            .map_err(sql(ACTION))?;
        result
    }
}
