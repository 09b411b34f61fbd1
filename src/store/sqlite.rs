//! The SQLite backend: one file, WAL mode, one transaction per [`Batch`].
//!
//! The SQL is kept portable (plain tables, `ON CONFLICT … DO NOTHING`, no SQLite-only column
//! types or triggers) because a PostgreSQL backend will share the schema; only the pragmas and
//! the catalog lookup in [`SqliteStore::open`] are SQLite's own.
//!
//! Durability: WAL with `synchronous=NORMAL` never corrupts the file; a power cut may lose the
//! last few commits, but since a message, its position and its events (and later the IMAP
//! checkpoint) commit together, a lost commit just means the folder is read again.

use super::{BadEvent, BadMessage, Batch, Store, StoreError, StoredEvent, Verification, chain};
use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The schema this code writes. Bump it with a migration in [`SqliteStore::open`].
pub const SCHEMA_VERSION: i64 = 1;

/// Portable DDL. Later, in the same transaction as the rest of a batch (see [`Batch`]):
/// `outbox(id INTEGER PRIMARY KEY, event_seq INTEGER NOT NULL REFERENCES events(seq),
/// dedup_key TEXT UNIQUE NOT NULL, payload BLOB NOT NULL, …)` for durable alerts, and
/// `imap_checkpoints(account TEXT, folder TEXT, uidvalidity INTEGER, highest_uid INTEGER,
/// PRIMARY KEY (account, folder))`. Both bump [`SCHEMA_VERSION`].
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

/// The durable store. Holds one connection; open one store per process.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
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

impl SqliteStore {
    /// Open the store at `path`, creating the file and schema if needed.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let open_err = |reason: String| StoreError::Open {
            path: path.to_path_buf(),
            reason,
        };
        // Touch the file with std first: SQLite reports every failure as "unable to open
        // database file", while the OS error says what is actually wrong.
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| open_err(io_reason(&e)))?;
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
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(not_a_store)?;
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
            .map_err(not_a_store)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(not_a_store)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(not_a_store)?;
        let mut store = SqliteStore {
            conn,
            path: path.to_path_buf(),
        };
        store.ensure_schema()?;
        Ok(store)
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
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
        // found < SCHEMA_VERSION: migrations go here once there is a version 2.
        tx.commit().map_err(sql("schema check"))
    }
}

/// `u64` seq to SQLite's `INTEGER`. A log can never hold 2^63 events; saturate rather than wrap.
fn seq_to_sql(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn compress(raw: &[u8]) -> Vec<u8> {
    // Fast level: messages are small and mostly text; throughput matters more than ratio.
    let mut enc = ZlibEncoder::new(Vec::with_capacity(raw.len() / 2 + 64), Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(raw);
    enc.finish().unwrap_or_default()
}

/// Decompress a stored message and check it against its size and key. The `size` column
/// bounds the output, so a damaged row cannot make us inflate without limit.
fn decompress_checked(key: &str, compressed: &[u8], size: i64) -> Result<Vec<u8>, String> {
    let size = u64::try_from(size).map_err(|_| format!("size column is negative ({size})"))?;
    let mut out = Vec::new();
    ZlibDecoder::new(compressed)
        .take(size.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot decompress: {e}"))?;
    if out.len() as u64 != size {
        return Err(format!(
            "decompresses to {}{} bytes, but its size column says {size}",
            out.len(),
            if out.len() as u64 > size { "+" } else { "" }
        ));
    }
    chain::check_message(key, &out)?;
    Ok(out)
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

impl Store for SqliteStore {
    fn events(&self) -> Result<Vec<StoredEvent>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT seq, body, prev_hash, hash FROM events ORDER BY seq")
            .map_err(sql("read events"))?;
        st.query_map([], |r| {
            Ok(StoredEvent {
                seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                body: r.get(1)?,
                prev_hash: r.get(2)?,
                hash: r.get(3)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(sql("read events"))
    }

    fn has_message(&self, content_hash: &str) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached("SELECT 1 FROM messages WHERE content_hash = ?1")
            .and_then(|mut st| st.exists(params![content_hash]))
            .map_err(sql("look up message"))
    }

    fn message(&self, content_hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row: Option<(Vec<u8>, i64)> = self
            .conn
            .prepare_cached("SELECT raw, size FROM messages WHERE content_hash = ?1")
            .and_then(|mut st| {
                st.query_row(params![content_hash], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(sql("read message"))?;
        row.map(|(compressed, size)| {
            decompress_checked(content_hash, &compressed, size).map_err(|problem| {
                StoreError::CorruptMessage {
                    content_hash: content_hash.to_string(),
                    problem,
                }
            })
        })
        .transpose()
    }

    fn position(&self, position: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .prepare_cached("SELECT content_hash FROM positions WHERE position = ?1")
            .and_then(|mut st| st.query_row(params![position], |r| r.get(0)).optional())
            .map_err(sql("look up position"))
    }

    fn commit(&mut self, batch: Batch) -> Result<Vec<StoredEvent>, StoreError> {
        const ACTION: &str = "commit";
        // IMMEDIATE: take the write lock now, so the head read below cannot go stale.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql(ACTION))?;
        let appended = {
            let mut exists = tx
                .prepare_cached("SELECT 1 FROM messages WHERE content_hash = ?1")
                .map_err(sql(ACTION))?;
            super::validate_batch(&batch, |k| exists.exists(params![k]).map_err(sql(ACTION)))?;

            let mut insert_message = tx
                .prepare_cached(
                    "INSERT INTO messages (content_hash, raw, size) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (content_hash) DO NOTHING",
                )
                .map_err(sql(ACTION))?;
            for (key, raw) in &batch.messages {
                // Skip the compression work for a message we already hold.
                if exists.exists(params![key]).map_err(sql(ACTION))? {
                    continue;
                }
                let size = i64::try_from(raw.len()).unwrap_or(i64::MAX);
                insert_message
                    .execute(params![key, compress(raw), size])
                    .map_err(sql(ACTION))?;
            }

            let mut insert_position = tx
                .prepare_cached(
                    "INSERT INTO positions (position, content_hash) VALUES (?1, ?2) \
                     ON CONFLICT (position) DO NOTHING",
                )
                .map_err(sql(ACTION))?;
            for (position, key) in &batch.positions {
                insert_position
                    .execute(params![position, key])
                    .map_err(sql(ACTION))?;
            }

            let head: Option<(i64, String)> = tx
                .query_row(
                    "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(sql(ACTION))?;
            let head = head.map(|(seq, hash)| (u64::try_from(seq).unwrap_or(0), hash));
            let appended =
                chain::extend(head.as_ref().map(|(s, h)| (*s, h.as_str())), batch.events);
            let mut insert_event = tx
                .prepare_cached(
                    "INSERT INTO events (seq, body, prev_hash, hash) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(sql(ACTION))?;
            for e in &appended {
                insert_event
                    .execute(params![seq_to_sql(e.seq), e.body, e.prev_hash, e.hash])
                    .map_err(sql(ACTION))?;
            }
            appended
        };
        tx.commit().map_err(sql(ACTION))?;
        Ok(appended)
    }

    fn verify(&self) -> Result<Verification, StoreError> {
        const ACTION: &str = "verify";
        let mut checker = chain::ChainChecker::new();
        let mut bad_event = None;
        {
            let mut st = self
                .conn
                .prepare("SELECT seq, body, prev_hash, hash FROM events ORDER BY seq")
                .map_err(sql(ACTION))?;
            let mut rows = st.query([]).map_err(sql(ACTION))?;
            while let Some(r) = rows.next().map_err(sql(ACTION))? {
                let seq: i64 = r.get(0).map_err(sql(ACTION))?;
                let seq = u64::try_from(seq).unwrap_or(0);
                let checked = (|| {
                    let body = blob_column(r.get_ref(1).map_err(|e| e.to_string())?, "body")?;
                    let prev = text_column(r.get_ref(2).map_err(|e| e.to_string())?, "prev_hash")?;
                    let hash = text_column(r.get_ref(3).map_err(|e| e.to_string())?, "hash")?;
                    checker.check(seq, body, &prev, &hash)
                })();
                if let Err(problem) = checked {
                    bad_event = Some(BadEvent { seq, problem });
                    break;
                }
            }
        }
        let mut bad_message = None;
        let mut messages_checked = 0;
        {
            let mut st = self
                .conn
                .prepare("SELECT content_hash, raw, size FROM messages ORDER BY content_hash")
                .map_err(sql(ACTION))?;
            let mut rows = st.query([]).map_err(sql(ACTION))?;
            while let Some(r) = rows.next().map_err(sql(ACTION))? {
                messages_checked += 1;
                let key = text_column(r.get_ref(0).map_err(sql(ACTION))?, "content_hash")
                    .unwrap_or_else(|p| format!("<{p}>"));
                let checked = (|| {
                    let raw = blob_column(r.get_ref(1).map_err(|e| e.to_string())?, "raw")?;
                    let size = match r.get_ref(2).map_err(|e| e.to_string())? {
                        ValueRef::Integer(n) => n,
                        other => {
                            return Err(format!("size is stored as {:?}", other.data_type()));
                        }
                    };
                    decompress_checked(&key, raw, size).map(drop)
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
