//! The event log: the single source of truth (README "The event log").
//!
//! Everything a person or an auditor sees is a projection of this log, so the store's job is
//! narrow and strict: keep what it is given, in order, forever, and make any tampering show.
//! It never interprets event bodies (the engine serialises them canonically and hands over
//! bytes); it owns three things:
//!
//! - the **hash chain** over the events ([`chain`]): each event's hash covers its sequence
//!   number, its predecessor's hash and its body, so a changed byte anywhere breaks the chain at
//!   that event;
//! - the **raw messages**, keyed by the SHA-256 of their bytes, so nothing is counted twice and
//!   every message can be re-parsed by a later version of the pipeline;
//! - the **source positions** (`maildir:…`, later `imap:…/<uidvalidity>/<uid>`) that say a place
//!   has been read, so re-reading a folder after a crash adds nothing.
//!
//! All three change only through [`Store::commit`], one all-or-nothing transaction, so a crash
//! can never leave an event without its message or a position marked read without its events.
//! There is deliberately no update or delete.
//!
//! Three backends: [`SqliteStore`] (the service), [`MemoryStore`] (stateless replay, tests)
//! and [`PostgresStore`] (issue 17: the event log on a server two instances share; not yet
//! wired into the desk).

mod body;
pub mod chain;
mod checkpointer;
#[doc(hidden)]
pub mod contract;
pub(crate) mod copy;
#[doc(hidden)]
pub mod db;
mod lease;
mod memory;
mod message;
mod postgres;
pub mod postgres_connect;
mod postgres_tables;
mod sessions;
mod sqlite;
mod sqlite_checks;
mod sqlite_fold;
mod sqlite_outbox;
mod sqlite_signed;
mod sqlite_tables;
mod tables;

pub use lease::{BadInstanceId, Fence, INSTANCE_ID_MAX, InstanceId, LeaderInfo, Lease};
pub use memory::MemoryStore;
pub use message::{MessageCodec, NewMessage};
pub use postgres::PostgresStore;
pub use sessions::WebSession;
pub use sqlite::{SqliteStore, event_body};
pub use sqlite_checks::CheckRow;
pub use sqlite_fold::StoreBacking;
pub use sqlite_outbox::{AlertState, CanaryRow, NewMail, OutboxChange, OutboxRow, OutboxSummary};
pub use sqlite_signed::SignedCheckpoint;
pub use tables::{Tables, TablesState};

use std::collections::HashSet;

use crate::deciding::tables::Delta;
use std::fmt;
use std::path::{Path, PathBuf};

/// One event as the log holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    /// 1, 2, 3, … without gaps.
    pub seq: u64,
    /// Canonical bytes as the engine serialised them; opaque to the store.
    pub body: Vec<u8>,
    /// `hash` of the event before (64 zeros for seq 1).
    pub prev_hash: String,
    /// `hex(SHA-256("{seq}\n{prev_hash}\n" ++ body))`, see [`chain`].
    pub hash: String,
}

/// Everything one step of the pipeline wants to record, committed together or not at all.
///
/// Why one batch: a message, the position it was read from and the events it caused must be
/// durable together. If the events were written without the position, a restart would re-read
/// the message and log it twice; if the position were written without the events, the report
/// would be lost — the one thing cprwatch exists to prevent.
///
/// The same holds for the **outbox** (alerts and receipts to send), written with the event that
/// records the decision, so an alert is never lost to a crash between "decided" and "queued",
/// and for **IMAP checkpoints** (UIDVALIDITY and highest UID per folder), advanced only together
/// with the messages and events read up to them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// Messages, keyed by the SHA-256 of their bytes ([`NewMessage`] computes it). Messages
    /// already stored are skipped.
    pub messages: Vec<NewMessage>,
    /// `(source position, content hash)`. The content hash must name a message stored before
    /// or in this batch. A position already recorded keeps its first value.
    pub positions: Vec<(String, String)>,
    /// Canonical event bodies, appended in this order.
    pub events: Vec<Vec<u8>>,
    /// IMAP folders read up to here: advanced only together with what was read.
    pub checkpoints: Vec<Checkpoint>,
    /// What each event names (case, message, clock), aligned with `events`: the index `case`
    /// finds a case's events by. Opaque strings to the store.
    pub event_index: Vec<crate::domain::event::EventIndex>,
    /// The cases and clocks these events change ([`crate::deciding::tables`]): kept in the same
    /// transaction, so the tables never disagree with the log they project.
    pub tables: Delta,
    /// Mail queued, sent or failed, and alert states ([`sqlite_outbox`]): with the events that
    /// record them. The memory store (a replay) sends nothing and ignores them.
    pub outbox: Vec<OutboxChange>,
    /// Revocation check states ([`sqlite_checks`]): with the `revocation_observed` events that
    /// record the answers. The memory store ignores them.
    pub checks: Vec<CheckRow>,
}

impl Batch {
    pub(crate) fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.positions.is_empty()
            && self.events.is_empty()
            && self.checkpoints.is_empty()
            && self.tables.is_empty()
            && self.outbox.is_empty()
            && self.checks.is_empty()
    }
}

/// How far an IMAP folder has been read: everything up to `last_uid` under `uidvalidity` is in
/// the store. A different UIDVALIDITY on the server means the numbering restarted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub mailbox: String,
    pub folder: String,
    pub uidvalidity: u32,
    pub last_uid: u32,
}

/// The watcher's own health for one folder, for `cprwatch status`. Operational state, not part
/// of the event log: it says whether we are looking, not what we saw.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FolderState {
    pub mailbox: String,
    pub folder: String,
    /// `inbox`, `junk` or `sent`.
    pub role: String,
    /// RFC 3339 time of the last sync that completed.
    pub last_sync_at: Option<String>,
    /// The current error, if the folder is failing; cleared by the next good sync.
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
}

/// The narrow interface every backend provides. Append-only by construction: there is no way
/// to change or remove what was committed.
pub trait Store: Send {
    /// All events, in seq order.
    fn events(&self) -> Result<Vec<StoredEvent>, StoreError>;
    /// At most `limit` events from seq `from` on, in order: one page of the log.
    fn events_from(&self, from: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        Ok(self
            .events()?
            .into_iter()
            .filter(|e| e.seq >= from)
            .take(limit)
            .collect())
    }
    /// Whether a message with this content hash is stored.
    fn has_message(&self, content_hash: &str) -> Result<bool, StoreError>;
    /// The raw bytes of a stored message.
    fn message(&self, content_hash: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// The content hash recorded for a source position, if that position was read before.
    fn position(&self, position: &str) -> Result<Option<String>, StoreError>;
    /// Atomically: insert messages (ignoring ones already present), positions (ignoring ones
    /// already present), and append the events with their chain hashes. All or nothing.
    /// Returns the appended events.
    fn commit(&mut self, batch: Batch) -> Result<Vec<StoredEvent>, StoreError>;
    /// The checkpoint of an IMAP folder, if it was ever read.
    fn checkpoint(&self, mailbox: &str, folder: &str) -> Result<Option<Checkpoint>, StoreError>;
    /// Every recorded position starting with `prefix` (to compare a folder's UIDs with the
    /// store and fetch what is missing).
    fn positions_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Record a folder's health (replaces the previous record for that folder).
    fn set_folder_state(&mut self, state: &FolderState) -> Result<(), StoreError>;
    fn folder_states(&self) -> Result<Vec<FolderState>, StoreError>;
    /// Walk the whole log: recompute every hash, check links and seq contiguity, and check that
    /// every stored message's bytes hash to its key. Damage is reported in the result, not as
    /// an error: an error means the store could not be read at all.
    fn verify(&self) -> Result<Verification, StoreError>;
    /// How this store compresses messages, if it keeps them compressed: a source preparing
    /// messages on its own thread should compress them there ([`NewMessage::compress`]).
    /// The codec follows the store: once it has trained a dictionary, messages prepared after
    /// use it.
    fn message_codec(&self) -> Option<MessageCodec> {
        None
    }
    /// The tables beside the log, if this store keeps them (the engine then works over
    /// them; the memory store, a replay, keeps none).
    fn tables(&self) -> Option<&dyn Tables> {
        None
    }
    /// The same, to write (a rebuild).
    fn tables_mut(&mut self) -> Option<&mut dyn Tables> {
        None
    }
    /// The SQLite store behind this one, if it is one (what only SQLite does: `verify`'s
    /// scratch comparison, page housekeeping).
    fn as_sqlite(&self) -> Option<&SqliteStore> {
        None
    }
    /// A check, usable from any thread, of whether the store holds a message (by content
    /// hash), if the store can give one.
    fn known(&self) -> Option<Known> {
        None
    }
    /// The last event whose effect the tables hold (`None`: a store that keeps no tables, or
    /// whose tables were never built). Events after it are re-derived into them.
    fn tables_through(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
}

/// Open (creating if needed) the SQLite store at `path`.
/// Whether a store holds a message, by content hash.
pub type Known = std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>;

pub fn open_sqlite(path: &Path) -> Result<SqliteStore, StoreError> {
    SqliteStore::open(path)
}

/// A fresh, empty in-memory store.
pub(crate) fn memory() -> MemoryStore {
    MemoryStore::default()
}

/// The first damaged event found by [`Store::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadEvent {
    pub seq: u64,
    pub problem: String,
}

/// The first damaged message found by [`Store::verify`] (in content-hash order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadMessage {
    pub content_hash: String,
    pub problem: String,
}

/// What [`Store::verify`] found. Events and messages are checked independently, so one kind
/// of damage does not hide the other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// Events that verified before the first bad one (all of them when the log is intact).
    pub events_ok: u64,
    /// Hash of the last good event: the value to publish or compare with an earlier export.
    pub head: String,
    pub messages_checked: u64,
    pub bad_event: Option<BadEvent>,
    pub bad_message: Option<BadMessage>,
}

impl Verification {
    #[cfg(test)]
    pub(crate) fn is_ok(&self) -> bool {
        self.bad_event.is_none() && self.bad_message.is_none()
    }
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.bad_event {
            None => writeln!(f, "events: {} verified, head {}", self.events_ok, self.head)?,
            Some(b) => writeln!(f, "event {} is corrupt: {}", b.seq, b.problem)?,
        }
        match &self.bad_message {
            None => write!(f, "messages: {} verified", self.messages_checked),
            Some(b) => write!(f, "message {} is corrupt: {}", b.content_hash, b.problem),
        }
    }
}

/// Why a store operation failed, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open store {}: {reason} — check [store] path in the config", .path.display())]
    Open { path: PathBuf, reason: String },
    #[error(
        "store {} has schema version {found}, newer than the {supported} this cprwatch \
         understands — run a newer cprwatch, or point [store] path at another file",
        .path.display()
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error(
        "store {} is not a cprwatch store: {detail} — point [store] path at a cprwatch \
         database or at a new file",
        .path.display()
    )]
    NotAStore { path: PathBuf, detail: String },
    #[error(
        "store {action} failed: {source} — if the database is locked, stop the other cprwatch \
         using it; if the disk is full, free space and retry"
    )]
    Sql {
        action: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "store {action} failed on PostgreSQL: {detail} — check that the server is running and \
         reachable, and that the role may write the database"
    )]
    Postgres {
        action: &'static str,
        detail: String,
        #[source]
        source: ::postgres::Error,
    },
    #[error(
        "store {action} failed: {detail} — the database holds a value this cprwatch does not \
         expect; run `cprwatch verify`, and check that no other program writes the database"
    )]
    Value {
        action: &'static str,
        detail: String,
    },
    #[error(transparent)]
    Connect(#[from] postgres_connect::PgConnectError),
    #[error(
        "message {content_hash} is corrupt: {problem} — run `cprwatch verify` and restore the store from a backup"
    )]
    CorruptMessage {
        content_hash: String,
        problem: String,
    },
    #[error(transparent)]
    BadTables(#[from] crate::deciding::tables::TableError),
    #[error(transparent)]
    Unreadable(#[from] crate::deciding::derive::Unreadable),
    #[error(
        "event {seq} is corrupt: {problem} — run `cprwatch verify` and restore the store from a backup"
    )]
    CorruptEvent { seq: u64, problem: String },
    #[error("batch rejected, nothing was written: {0} (this is a bug in the caller)")]
    BadBatch(String),
    /// A fenced write ([`PostgresStore::fence`]) by an instance that no longer holds the
    /// leader lease at its epoch: another instance took over, or the lease expired. Never
    /// retried: the instance must follow, and lead again only with a new lease.
    #[error(
        "instance {holder} no longer holds the leader lease of epoch {epoch} ({leader}): \
         nothing was written, and this instance now follows; it writes again only after it \
         takes the lease anew"
    )]
    NotLeader {
        /// The instance that tried to write.
        holder: String,
        /// The epoch its fence named.
        epoch: i64,
        /// Who holds the lease now, as a phrase.
        leader: String,
    },
}

/// Check everything about a batch that can be checked without writing, so a bad batch fails
/// before the transaction starts and both backends reject exactly the same batches.
/// `stored` says whether a message is already in the store.
pub(crate) fn validate_batch(
    batch: &Batch,
    mut stored: impl FnMut(&str) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    let in_batch: HashSet<&str> = batch
        .messages
        .iter()
        .map(NewMessage::content_hash)
        .collect();
    for (position, key) in &batch.positions {
        if !in_batch.contains(key.as_str()) && !stored(key)? {
            return Err(StoreError::BadBatch(format!(
                "position {position:?} names message {key}, which is neither stored nor in the batch"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
