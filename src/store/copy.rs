//! `cprwatch store copy`: a desk's whole history from one store to another (SQLite to
//! PostgreSQL, back, or between two files), chain intact.
//!
//! What moves, and how:
//! - **the log** ([`copy_log`]): every message (raw bytes, read through the source's
//!   [`Store::message`], so the target compresses them as it does), every source position, the
//!   events in seq order with the same bodies, and the IMAP checkpoints, all through
//!   [`Store::commit`] in pages of a bounded size, so memory stays flat however long the
//!   history. The target's chain is computed afresh by [`super::chain::extend`] over the same
//!   bodies, so it is the same chain: each appended hash is compared with the source's as it
//!   is made. The folders' health goes through [`Store::set_folder_state`].
//! - **the state beside the log that no derivation can make again** ([`copy_beside`]): the
//!   outbox (ids, states, attempts), the alert clocks, the canaries, the revocation checks and
//!   the signed checkpoints ([`BESIDE`]), by one generic row copier over [`Db`], in one target
//!   transaction: the rows move together or not at all.
//! - **not** the projection tables and the log's index: they are derived from the log, so the
//!   caller derives them on the target (`desk::rebuild_tables`), rather than trusting a copy.
//!
//! [`Counts`] and [`digest`] let the caller show that both sides hold the same.

use sha2::{Digest, Sha256};

use super::db::{Cell, Db, DbError, Param, at, params};
use super::sqlite_fold::hash_hex;
use super::{Batch, Checkpoint, NewMessage, StoreError, Tables};

/// Events per committed page.
const EVENT_PAGE: usize = 1000;
/// Messages per committed page, and the raw bytes a page holds at most (a page ends at
/// whichever comes first).
const MESSAGE_PAGE: usize = 500;
const MESSAGE_PAGE_BYTES: usize = 32 << 20;
/// Positions per committed page.
const POSITION_PAGE: i64 = 5000;

/// A table beside the log that the copy moves row for row.
#[derive(Debug)]
pub(crate) struct Beside {
    pub(crate) table: &'static str,
    /// Every column, as both schemas name them.
    pub(crate) columns: &'static [&'static str],
    /// The primary key: the order rows are read and compared in.
    pub(crate) key: &'static str,
    /// A column the server numbers itself, which must go on after the copied numbers.
    pub(crate) identity: Option<&'static str>,
}

/// What the log does not hold and the desk cannot derive again (the store's `sqlite_outbox`,
/// `sqlite_checks` and `sqlite_signed` schemas, the same columns on PostgreSQL).
pub(crate) const BESIDE: &[Beside] = &[
    Beside {
        table: "outbox",
        columns: &[
            "id",
            "key",
            "kind",
            "message_id",
            "recipients",
            "rate_key",
            "case_id",
            "clocks",
            "body",
            "queued_at",
            "state",
            "attempts",
            "next_attempt_at",
            "last_error",
            "done_at",
        ],
        key: "id",
        identity: Some("id"),
    },
    Beside {
        table: "alert_clocks",
        columns: &["clock", "first_seen", "last_stage", "advisory", "next_due"],
        key: "clock",
        identity: None,
    },
    Beside {
        table: "canaries",
        columns: &[
            "id",
            "to_addr",
            "message_id",
            "sent_at",
            "due_by",
            "send_error",
            "arrived_at",
            "folder",
            "bounce",
            "alerted",
        ],
        key: "id",
        identity: None,
    },
    Beside {
        table: "revocation_checks",
        columns: &[
            "target",
            "next_due",
            "failures",
            "fresh_until",
            "retry_after",
            "certificate",
            "issuer",
            "latest",
            "note",
        ],
        key: "target",
        identity: None,
    },
    Beside {
        table: "signed_checkpoints",
        columns: &["id", "seq", "head_hash", "at", "key_id", "signature"],
        key: "id",
        identity: Some("id"),
    },
];

/// The projection tables and the log's index (`sqlite_tables`, `sqlite_fold`): derived, never
/// copied between stores, but mirrored into a SQLite file for `verify` to compare.
const DERIVED: &[Beside] = &[
    Beside {
        table: "event_refs",
        columns: &["ref_key", "seq"],
        key: "ref_key, seq",
        identity: None,
    },
    Beside {
        table: "receipts",
        columns: &["received_at", "staff", "content_hash", "seq"],
        key: "received_at, staff, content_hash",
        identity: None,
    },
    Beside {
        table: "case_numbers",
        columns: &["founder", "year", "number"],
        key: "founder",
        identity: None,
    },
    Beside {
        table: "recorded",
        columns: &["space", "key", "value"],
        key: "space, key",
        identity: None,
    },
    Beside {
        table: "cases",
        columns: &["id", "ord", "opened_at", "header"],
        key: "id",
        identity: None,
    },
    Beside {
        table: "case_items",
        columns: &[
            "case_id",
            "kind",
            "item",
            "valid_from",
            "valid_to",
            "ord",
            "body",
        ],
        key: "case_id, kind, item, valid_from",
        identity: None,
    },
    Beside {
        table: "clocks",
        columns: &[
            "id",
            "valid_from",
            "valid_to",
            "stop_key",
            "deadline",
            "body",
        ],
        key: "id, valid_from",
        identity: None,
    },
    Beside {
        table: "case_names",
        columns: &["name_key", "case_id", "since"],
        key: "name_key, case_id",
        identity: None,
    },
    Beside {
        table: "fold",
        columns: &["space", "key", "valid_from", "valid_to", "value"],
        key: "space, key, valid_from",
        identity: None,
    },
];

/// Mirror `from`'s projection tables and log index into the new SQLite store `to`, row for
/// row, so that `verify` compares them with a re-derivation as it compares a SQLite store's.
/// A content hash that PostgreSQL keeps as hex in `case_items.item` becomes the 32 bytes
/// SQLite keeps.
pub(crate) fn mirror_derived(from: &dyn Tables, to: &mut dyn Tables) -> Result<(), StoreError> {
    from.with_db(&mut |src| {
        to.write_rows("mirror the tables", &mut |dst| {
            for t in DERIVED {
                copy_rows(src, dst, t)?;
            }
            dst.execute(
                "UPDATE case_items SET item = unhex(item) WHERE typeof(item) = 'text' \
                 AND length(item) = 64 AND item NOT GLOB '*[^0-9a-f]*'",
                &[],
            )
            .map_err(at("mirror the tables"))?;
            Ok(())
        })
    })
}

/// What one store holds, counted the same way on either backend.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub events: u64,
    pub messages: u64,
    pub positions: u64,
    pub imap_checkpoints: u64,
    pub folder_states: u64,
    /// Rows of each [`BESIDE`] table, in that order.
    pub beside: Vec<(&'static str, u64)>,
}

/// Count what `store` holds.
pub fn counts(store: &dyn Tables) -> Result<Counts, StoreError> {
    const ACTION: &str = "count what the store holds";
    let mut out = Counts::default();
    store.with_db(&mut |db| {
        let mut count = |table: &str| -> Result<u64, StoreError> {
            let n = db
                .query_opt(&format!("SELECT COUNT(*) FROM {table}"), &[], |r| r.int(0))
                .map_err(at(ACTION))?
                .unwrap_or(0);
            Ok(u64::try_from(n).unwrap_or(0))
        };
        out = Counts {
            events: count("events")?,
            messages: count("messages")?,
            positions: count("position_names")?,
            imap_checkpoints: count("imap_checkpoints")?,
            folder_states: count("folder_states")?,
            beside: BESIDE
                .iter()
                .map(|t| Ok((t.table, count(t.table)?)))
                .collect::<Result<_, StoreError>>()?,
        };
        Ok(())
    })?;
    Ok(out)
}

/// A SHA-256 over every row of `t`, in key order, each cell with its kind: equal on two stores
/// exactly when they hold the same rows (the schemas give each column the same kind on
/// either backend).
pub fn digest(store: &dyn Tables, t: &Beside) -> Result<String, StoreError> {
    let select = select_sql(t);
    let mut h = Sha256::new();
    store.with_db(&mut |db| {
        h = Sha256::new();
        db.each(&select, &[], &mut |r| {
            for i in 0..t.columns.len() {
                match r.cell(i)? {
                    Cell::Null => h.update([0u8]),
                    Cell::Int(v) => {
                        h.update([1u8]);
                        h.update(v.to_be_bytes());
                    }
                    Cell::Text(s) => {
                        h.update([2u8]);
                        h.update((s.len() as u64).to_be_bytes());
                        h.update(s.as_bytes());
                    }
                    Cell::Blob(b) => {
                        h.update([3u8]);
                        h.update((b.len() as u64).to_be_bytes());
                        h.update(b);
                    }
                }
            }
            Ok(true)
        })
        .map_err(at("read the rows beside the log"))
    })?;
    Ok(hex::encode(h.finalize()))
}

fn select_sql(t: &Beside) -> String {
    format!(
        "SELECT {} FROM {} ORDER BY {}",
        t.columns.join(", "),
        t.table,
        t.key
    )
}

/// What [`copy_log`] moved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogCopied {
    pub events: u64,
    pub messages: u64,
    pub positions: u64,
    pub imap_checkpoints: u64,
    pub folder_states: u64,
    /// The hash of the last event appended on the target (empty for an empty log).
    pub head: String,
}

/// A message key as a store row holds it: the 32 bytes (SQLite since schema 5, PostgreSQL), or
/// the 64 hex digits (SQLite rows older than schema 5).
fn key_of(cell: Cell<'_>) -> Result<String, DbError> {
    match cell {
        Cell::Blob(b) if b.len() == 32 => Ok(hash_hex(b)),
        Cell::Text(t) if t.len() == 64 && t.bytes().all(|c| c.is_ascii_hexdigit()) => {
            Ok(t.to_ascii_lowercase())
        }
        _ => Err(DbError::Value(
            "a message key is neither 32 bytes nor 64 hex digits".into(),
        )),
    }
}

/// Copy the log of `from` into `to`, which must hold no events (the caller checks, and says
/// so): messages, positions, events, IMAP checkpoints, then folder states. Each appended
/// event's hash is compared with the source's; a difference stops the copy.
pub fn copy_log(from: &dyn Tables, to: &mut dyn Tables) -> Result<LogCopied, StoreError> {
    const ACTION: &str = "copy the log";
    let mut copied = LogCopied::default();

    // The messages: their keys first (32 bytes each: flat enough for millions), then their
    // bytes a page at a time. The source's own walk (`verify`) checked each against its key;
    // the key is recomputed here too, so a message cannot change name on the way.
    let mut keys: Vec<[u8; 32]> = Vec::new();
    from.with_db(&mut |db| {
        keys.clear();
        db.each(
            "SELECT content_hash FROM messages ORDER BY content_hash",
            &[],
            &mut |r| {
                let hex = key_of(r.cell(0)?)?;
                let mut k = [0u8; 32];
                hex::decode_to_slice(&hex, &mut k)
                    .map_err(|_| DbError::Value("a message key is not hex".into()))?;
                keys.push(k);
                Ok(true)
            },
        )
        .map_err(at("list messages"))
    })?;
    let mut page = Batch::default();
    let mut bytes = 0usize;
    for k in &keys {
        let hash = hex::encode(k);
        let raw = from.message(&hash)?.ok_or_else(|| StoreError::Value {
            action: ACTION,
            detail: format!("message {hash} is listed but cannot be read"),
        })?;
        let m = NewMessage::new(raw);
        if m.content_hash() != hash {
            return Err(StoreError::Value {
                action: ACTION,
                detail: format!("message {hash} reads back as {}", m.content_hash()),
            });
        }
        bytes += m.raw().len();
        page.messages.push(m);
        if page.messages.len() >= MESSAGE_PAGE || bytes >= MESSAGE_PAGE_BYTES {
            copied.messages += page.messages.len() as u64;
            to.commit(std::mem::take(&mut page))?;
            bytes = 0;
        }
    }
    if !page.messages.is_empty() {
        copied.messages += page.messages.len() as u64;
        to.commit(page)?;
    }
    drop(keys);

    // The positions, by (place, name): a page at a time on both backends.
    let (mut place, mut name) = (0i64, String::new());
    loop {
        let mut rows: Vec<(i64, String, String, String)> = Vec::new();
        from.with_db(&mut |db| {
            rows = db
                .query(
                    "SELECT n.place, n.name, l.place, n.content_hash FROM position_names n \
                     JOIN position_places l ON l.id = n.place \
                     WHERE n.place > ?1 OR (n.place = ?1 AND n.name > ?2) \
                     ORDER BY n.place, n.name LIMIT ?3",
                    params![place, name.as_str(), POSITION_PAGE],
                    |r| Ok((r.int(0)?, r.text(1)?, r.text(2)?, key_of(r.cell(3)?)?)),
                )
                .map_err(at("list positions"))?;
            Ok(())
        })?;
        let Some(last) = rows.last() else { break };
        (place, name) = (last.0, last.1.clone());
        let batch = Batch {
            positions: rows
                .into_iter()
                .map(|(_, name, place, hash)| (format!("{place}{name}"), hash))
                .collect(),
            ..Batch::default()
        };
        copied.positions += batch.positions.len() as u64;
        to.commit(batch)?;
    }

    // The events, in seq order, the same bodies: the same chain.
    let mut next = 1u64;
    loop {
        let events = from.events_from(next, EVENT_PAGE)?;
        let Some(last) = events.last() else { break };
        next = last.seq + 1;
        let appended = to.commit(Batch {
            events: events.iter().map(|e| e.body.clone()).collect(),
            ..Batch::default()
        })?;
        if appended.len() != events.len() {
            return Err(StoreError::Value {
                action: ACTION,
                detail: format!(
                    "the target appended {} of {} events from seq {}",
                    appended.len(),
                    events.len(),
                    events[0].seq
                ),
            });
        }
        for (a, e) in appended.iter().zip(&events) {
            if a.seq != e.seq || a.hash != e.hash {
                return Err(StoreError::Value {
                    action: ACTION,
                    detail: format!(
                        "event {} became event {} with hash {} on the target, not {}",
                        e.seq, a.seq, a.hash, e.hash
                    ),
                });
            }
        }
        copied.events += appended.len() as u64;
        copied.head = last.hash.clone();
    }

    // The IMAP checkpoints: the folders read up to where the source read them.
    let mut checkpoints = Vec::new();
    from.with_db(&mut |db| {
        checkpoints = db
            .query(
                "SELECT mailbox, folder, uidvalidity, last_uid FROM imap_checkpoints \
                 ORDER BY mailbox, folder",
                &[],
                |r| {
                    let number = |i: usize| {
                        r.int(i).and_then(|v| {
                            u32::try_from(v)
                                .map_err(|_| DbError::Value(format!("column {i} is not a u32")))
                        })
                    };
                    Ok(Checkpoint {
                        mailbox: r.text(0)?,
                        folder: r.text(1)?,
                        uidvalidity: number(2)?,
                        last_uid: number(3)?,
                    })
                },
            )
            .map_err(at("list IMAP checkpoints"))?;
        Ok(())
    })?;
    if !checkpoints.is_empty() {
        copied.imap_checkpoints = checkpoints.len() as u64;
        to.commit(Batch {
            checkpoints,
            ..Batch::default()
        })?;
    }

    for state in from.folder_states()? {
        to.set_folder_state(&state)?;
        copied.folder_states += 1;
    }
    Ok(copied)
}

/// Copy every [`BESIDE`] table of `from` into `to`, in one transaction of `to`: the rows as
/// they are, ids included; a server-numbered id then goes on after the highest copied one.
/// Returns the rows copied per table.
pub fn copy_beside(
    from: &dyn Tables,
    to: &mut dyn Tables,
) -> Result<Vec<(&'static str, u64)>, StoreError> {
    let follow: Vec<Option<String>> = BESIDE
        .iter()
        .map(|t| t.identity.and_then(|c| to.identity_follows(t.table, c)))
        .collect();
    let mut copied = Vec::new();
    from.with_db(&mut |src| {
        to.write_rows("copy the tables beside the log", &mut |dst| {
            copied.clear();
            for (t, follow) in BESIDE.iter().zip(&follow) {
                let n = copy_rows(src, dst, t)?;
                if let Some(sql) = follow {
                    dst.execute(sql, &[]).map_err(at("continue the ids"))?;
                }
                copied.push((t.table, n));
            }
            Ok(())
        })
    })?;
    Ok(copied)
}

/// Every row of `t` from `src` into `dst`, cell for cell, in key order.
fn copy_rows(src: &mut dyn Db, dst: &mut dyn Db, t: &Beside) -> Result<u64, StoreError> {
    let placeholders: Vec<String> = (1..=t.columns.len()).map(|i| format!("?{i}")).collect();
    let insert = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        t.table,
        t.columns.join(", "),
        placeholders.join(", ")
    );
    let mut n = 0u64;
    src.each(&select_sql(t), &[], &mut |r| {
        let cells = (0..t.columns.len())
            .map(|i| r.cell(i))
            .collect::<Result<Vec<_>, _>>()?;
        let params: Vec<Param<'_>> = cells
            .iter()
            .map(|c| match *c {
                Cell::Null => Param::Null,
                Cell::Int(v) => Param::Int(v),
                Cell::Text(s) => Param::Text(s),
                Cell::Blob(b) => Param::Blob(b),
            })
            .collect();
        dst.execute(&insert, &params)?;
        n += 1;
        Ok(true)
    })
    .map_err(at("copy the rows beside the log"))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract::batch;
    use crate::store::{FolderState, NewMail, OutboxChange, SqliteStore, Store};

    fn mail(key: &str) -> OutboxChange {
        OutboxChange::Queue(NewMail {
            key: key.into(),
            kind: "warning".into(),
            message_id: format!("<{key}@cprwatch.invalid>"),
            to: vec!["desk@ca.example".into()],
            rate_key: None,
            case: None,
            clocks: vec!["c:1".into()],
            body: b"Subject: a\r\n\r\nb\r\n".to_vec(),
            queued_at: time::OffsetDateTime::UNIX_EPOCH,
        })
    }

    /// A log of more than one page of each kind, with checkpoints, a folder's health and
    /// outbox rows, copied file to file: the same chain, the same counts, the same rows.
    #[test]
    fn a_log_copies_page_by_page_with_the_same_chain_and_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut from = SqliteStore::open(&dir.path().join("a.sqlite")).unwrap();
        let mut to = SqliteStore::open(&dir.path().join("b.sqlite")).unwrap();
        let texts: Vec<String> = (0..MESSAGE_PAGE + 7)
            .map(|i| format!("Subject: m{i}\n\nbody {i}\n"))
            .collect();
        let events: Vec<String> = (0..EVENT_PAGE + 3)
            .map(|i| format!("{{\"e\":{i}}}"))
            .collect();
        let t: Vec<&str> = texts.iter().map(String::as_str).collect();
        let e: Vec<&str> = events.iter().map(String::as_str).collect();
        let mut b = batch(&t, &e);
        b.checkpoints = vec![Checkpoint {
            mailbox: "m".into(),
            folder: "INBOX".into(),
            uidvalidity: 7,
            last_uid: 42,
        }];
        b.outbox = vec![mail("a"), mail("b")];
        from.commit(b).unwrap();
        from.commit(Batch {
            outbox: vec![OutboxChange::Sent {
                id: 2,
                at: time::OffsetDateTime::UNIX_EPOCH,
            }],
            ..Batch::default()
        })
        .unwrap();
        from.set_folder_state(&FolderState {
            mailbox: "m".into(),
            folder: "INBOX".into(),
            role: "inbox".into(),
            last_sync_at: Some("2026-01-01T00:00:00Z".into()),
            ..FolderState::default()
        })
        .unwrap();

        let log = copy_log(&from, &mut to).unwrap();
        let rows = copy_beside(&from, &mut to).unwrap();
        assert_eq!(log.events, events.len() as u64);
        assert_eq!(log.messages, texts.len() as u64);
        assert_eq!(log.positions, texts.len() as u64);
        assert_eq!(log.imap_checkpoints, 1);
        assert_eq!(log.folder_states, 1);
        assert_eq!(rows[0], ("outbox", 2));
        assert_eq!(from.events().unwrap(), to.events().unwrap());
        assert_eq!(from.verify().unwrap(), to.verify().unwrap());
        assert_eq!(log.head, to.verify().unwrap().head);
        assert_eq!(counts(&from).unwrap(), counts(&to).unwrap());
        for t in BESIDE {
            assert_eq!(
                digest(&from, t).unwrap(),
                digest(&to, t).unwrap(),
                "{}",
                t.table
            );
        }
        assert_eq!(
            to.checkpoint("m", "INBOX").unwrap(),
            from.checkpoint("m", "INBOX").unwrap()
        );
        assert_eq!(to.folder_states().unwrap(), from.folder_states().unwrap());
        assert_eq!(to.outbox_row(2).unwrap(), from.outbox_row(2).unwrap());
        // A row changed on one side: the digests tell.
        to.commit(Batch {
            outbox: vec![OutboxChange::Sent {
                id: 1,
                at: time::OffsetDateTime::UNIX_EPOCH,
            }],
            ..Batch::default()
        })
        .unwrap();
        assert_ne!(
            digest(&from, &BESIDE[0]).unwrap(),
            digest(&to, &BESIDE[0]).unwrap()
        );
    }

    #[test]
    fn message_keys_read_in_both_forms() {
        let hash = "ab".repeat(32);
        let bytes = hex::decode(&hash).unwrap();
        assert_eq!(key_of(Cell::Blob(&bytes)).unwrap(), hash);
        assert_eq!(key_of(Cell::Text(&hash.to_uppercase())).unwrap(), hash);
        assert!(key_of(Cell::Text("not a key")).is_err());
        assert!(key_of(Cell::Int(1)).is_err());
    }
}
