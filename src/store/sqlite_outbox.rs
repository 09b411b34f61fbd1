//! The outbox: mail cprwatch has decided to send, until the SMTP server takes it, and what the
//! alert schedule of each clock has reached.
//!
//! Why in the store, and changed only through [`super::Batch`]: a mail is queued in the same
//! transaction as the `mail_queued` event that records the decision (and the alert state that
//! says the stage was alerted), and marked sent in the same transaction as its `mail_sent`
//! event. So after a crash, a restart or an SMTP outage of hours, every decided mail is either
//! still pending or recorded as sent or failed — never lost, never decided twice. Each row's
//! `key` (clock, stage and route; or the report, for a receipt) is unique: queueing it again
//! is refused.
//!
//! The outbox is operational state beside the log, like folder health: the log holds the
//! events (`mail_queued`, `mail_sent`, `mail_failed`), the outbox the bytes and the retry
//! schedule.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::StoreError;
use crate::domain::model::Timestamp;

/// Schema 8: the outbox and each clock's alert state.
pub(super) const SCHEMA_V8: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY,
    key             TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    recipients      TEXT NOT NULL,
    rate_key        TEXT,
    case_id         TEXT,
    clocks          TEXT NOT NULL,
    body            BLOB NOT NULL,
    queued_at       INTEGER NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    done_at         INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS outbox_rate ON outbox (rate_key, queued_at) WHERE rate_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbox_failed ON outbox (done_at) WHERE state = 'failed';
CREATE TABLE IF NOT EXISTS alert_clocks (
    clock      TEXT PRIMARY KEY,
    first_seen INTEGER NOT NULL,
    last_stage TEXT,
    advisory   INTEGER NOT NULL,
    next_due   INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alert_clocks_due ON alert_clocks (next_due) WHERE next_due IS NOT NULL;
CREATE TABLE IF NOT EXISTS canaries (
    id         TEXT PRIMARY KEY,
    to_addr    TEXT NOT NULL,
    message_id TEXT NOT NULL,
    sent_at    INTEGER NOT NULL,
    due_by     INTEGER NOT NULL,
    send_error TEXT,
    arrived_at INTEGER,
    folder     TEXT,
    bounce     TEXT,
    alerted    TEXT
);
CREATE INDEX IF NOT EXISTS canaries_by_to ON canaries (to_addr, sent_at);
CREATE INDEX IF NOT EXISTS canaries_open ON canaries (due_by) WHERE alerted IS NULL;
";

/// A mail to queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMail {
    /// Unique: what makes this mail this one (`alert/<clock>/<stage>/<route>`,
    /// `receipt/<content hash>`, …).
    pub key: String,
    /// The alert level or `receipt`.
    pub kind: String,
    pub message_id: String,
    /// Envelope recipients.
    pub to: Vec<String>,
    /// What rate limits count it under (a receipt's reporter address).
    pub rate_key: Option<String>,
    pub case: Option<String>,
    pub clocks: Vec<String>,
    /// The whole message, as it will be handed to the server.
    pub body: Vec<u8>,
    pub queued_at: Timestamp,
}

/// One change to the outbox or to the alert state, committed with the batch's events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutboxChange {
    Queue(NewMail),
    /// The server took it.
    Sent {
        id: i64,
        at: Timestamp,
    },
    /// A transient failure: try again at `next_at`.
    Retry {
        id: i64,
        attempts: u32,
        next_at: Timestamp,
        error: String,
    },
    /// Refused for good, or given up on.
    Failed {
        id: i64,
        at: Timestamp,
        attempts: u32,
        error: String,
    },
    /// A clock's alert state after an evaluation.
    AlertState(AlertState),
    /// A canary was handed to the server (or refused: `send_error`).
    CanarySent(CanaryRow),
    /// A canary, or a bounce of one (`bounce`), arrived in a watched folder.
    CanaryArrived {
        id: String,
        at: Timestamp,
        folder: String,
        bounce: Option<String>,
    },
    /// A canary's problem was alerted (`missing`, `junk`, `bounced`): once is enough.
    CanaryAlerted {
        id: String,
        problem: String,
    },
}

/// One canary and its fate so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanaryRow {
    pub id: String,
    /// The published address it went to.
    pub to: String,
    pub message_id: String,
    pub sent_at: Timestamp,
    /// It must have arrived by then (`sent_at + max_delay`).
    pub due_by: Timestamp,
    pub send_error: Option<String>,
    pub arrived_at: Option<Timestamp>,
    /// The role of the folder it arrived in.
    pub folder: Option<String>,
    /// Why it bounced, when a bounce of it arrived.
    pub bounce: Option<String>,
    /// The problem alerted, if one was.
    pub alerted: Option<String>,
}

/// What a clock's alert schedule has reached ([`crate::deciding::alerts::Alerted`], stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertState {
    pub clock: String,
    pub first_seen: Timestamp,
    /// The last stage alerted ([`crate::deciding::alerts::Stage::key`]).
    pub last_stage: Option<String>,
    pub advisory: bool,
    /// When the clock next needs evaluating; `None`: when it changes.
    pub next_due: Option<Timestamp>,
}

/// A queued mail as the outbox holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub key: String,
    pub kind: String,
    pub message_id: String,
    pub to: Vec<String>,
    pub case: Option<String>,
    pub clocks: Vec<String>,
    pub body: Vec<u8>,
    pub queued_at: Timestamp,
    /// `pending`, `sent` or `failed`.
    pub state: String,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    /// When it was sent or failed.
    pub done_at: Option<Timestamp>,
}

/// The outbox at a glance, for `status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboxSummary {
    pub pending: u64,
    pub oldest_pending: Option<Timestamp>,
    /// Pending mail that failed at least once, with its last error.
    pub retrying: Vec<OutboxRow>,
    /// Mail that failed for good in the window asked for.
    pub failed: Vec<OutboxRow>,
}

fn sql(action: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sql { action, source }
}

fn secs(t: Timestamp) -> i64 {
    t.unix_timestamp()
}

fn time_of(s: i64) -> Timestamp {
    Timestamp::from_unix_timestamp(s).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn unlist(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

/// Apply `changes` inside the batch's transaction.
pub(super) fn apply(tx: &Transaction<'_>, changes: &[OutboxChange]) -> Result<(), StoreError> {
    const ACTION: &str = "write the outbox";
    for c in changes {
        match c {
            OutboxChange::Queue(m) => {
                let added = tx
                    .prepare_cached(
                        "INSERT INTO outbox (key, kind, message_id, recipients, rate_key, case_id, \
                         clocks, body, queued_at, state, next_attempt_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', ?9) \
                         ON CONFLICT (key) DO NOTHING",
                    )
                    .and_then(|mut st| {
                        st.execute(params![
                            m.key,
                            m.kind,
                            m.message_id,
                            list(&m.to),
                            m.rate_key,
                            m.case,
                            list(&m.clocks),
                            m.body,
                            secs(m.queued_at)
                        ])
                    })
                    .map_err(sql(ACTION))?;
                if added == 0 {
                    // Its mail_queued event is in this batch: refusing keeps the log from
                    // saying a mail was decided twice.
                    return Err(StoreError::BadBatch(format!(
                        "outbox key {:?} is already queued",
                        m.key
                    )));
                }
            }
            OutboxChange::Sent { id, at } => {
                tx.prepare_cached(
                    "UPDATE outbox SET state = 'sent', attempts = attempts + 1, done_at = ?2, \
                     last_error = NULL WHERE id = ?1",
                )
                .and_then(|mut st| st.execute(params![id, secs(*at)]))
                .map_err(sql(ACTION))?;
            }
            OutboxChange::Retry {
                id,
                attempts,
                next_at,
                error,
            } => {
                tx.prepare_cached(
                    "UPDATE outbox SET attempts = ?2, next_attempt_at = ?3, last_error = ?4 \
                     WHERE id = ?1",
                )
                .and_then(|mut st| st.execute(params![id, attempts, secs(*next_at), error]))
                .map_err(sql(ACTION))?;
            }
            OutboxChange::Failed {
                id,
                at,
                attempts,
                error,
            } => {
                tx.prepare_cached(
                    "UPDATE outbox SET state = 'failed', attempts = ?2, done_at = ?3, \
                     last_error = ?4 WHERE id = ?1",
                )
                .and_then(|mut st| st.execute(params![id, attempts, secs(*at), error]))
                .map_err(sql(ACTION))?;
            }
            OutboxChange::CanarySent(c) => {
                tx.prepare_cached(
                    "INSERT INTO canaries (id, to_addr, message_id, sent_at, due_by, send_error) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        c.id,
                        c.to,
                        c.message_id,
                        secs(c.sent_at),
                        secs(c.due_by),
                        c.send_error
                    ])
                })
                .map_err(sql(ACTION))?;
            }
            OutboxChange::CanaryArrived {
                id,
                at,
                folder,
                bounce,
            } => {
                // The first sighting counts; a bounce counts whenever it comes.
                tx.prepare_cached(
                    "UPDATE canaries SET \
                     arrived_at = CASE WHEN ?4 IS NULL AND arrived_at IS NULL THEN ?2 ELSE arrived_at END, \
                     folder = CASE WHEN ?4 IS NULL AND arrived_at IS NULL THEN ?3 ELSE folder END, \
                     bounce = COALESCE(bounce, ?4) WHERE id = ?1",
                )
                .and_then(|mut st| st.execute(params![id, secs(*at), folder, bounce]))
                .map_err(sql(ACTION))?;
            }
            OutboxChange::CanaryAlerted { id, problem } => {
                tx.prepare_cached("UPDATE canaries SET alerted = ?2 WHERE id = ?1")
                    .and_then(|mut st| st.execute(params![id, problem]))
                    .map_err(sql(ACTION))?;
            }
            OutboxChange::AlertState(a) => {
                tx.prepare_cached(
                    "INSERT INTO alert_clocks (clock, first_seen, last_stage, advisory, next_due) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (clock) DO UPDATE SET \
                     last_stage = excluded.last_stage, advisory = excluded.advisory, \
                     next_due = excluded.next_due",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        a.clock,
                        secs(a.first_seen),
                        a.last_stage,
                        a.advisory,
                        a.next_due.map(secs)
                    ])
                })
                .map_err(sql(ACTION))?;
            }
        }
    }
    Ok(())
}

const ROW: &str = "SELECT id, key, kind, message_id, recipients, case_id, clocks, body, queued_at, \
                   state, attempts, next_attempt_at, last_error, done_at FROM outbox";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        id: r.get(0)?,
        key: r.get(1)?,
        kind: r.get(2)?,
        message_id: r.get(3)?,
        to: unlist(&r.get::<_, String>(4)?),
        case: r.get(5)?,
        clocks: unlist(&r.get::<_, String>(6)?),
        body: r.get(7)?,
        queued_at: time_of(r.get(8)?),
        state: r.get(9)?,
        attempts: r.get(10)?,
        next_attempt_at: time_of(r.get(11)?),
        last_error: r.get(12)?,
        done_at: r.get::<_, Option<i64>>(13)?.map(time_of),
    })
}

/// Pending mail whose attempt is due at `now`, oldest first, at most `limit`.
pub(super) fn due(
    conn: &Connection,
    now: Timestamp,
    limit: usize,
) -> Result<Vec<OutboxRow>, StoreError> {
    conn.prepare_cached(&format!(
        "{ROW} WHERE state = 'pending' AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?2"
    ))
    .and_then(|mut st| {
        st.query_map(params![secs(now), limit as i64], row)?
            .collect()
    })
    .map_err(sql("read the outbox"))
}

/// When the next pending mail is due, if any is pending.
pub(super) fn next_attempt(conn: &Connection) -> Result<Option<Timestamp>, StoreError> {
    conn.query_row(
        "SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending'",
        [],
        |r| r.get::<_, Option<i64>>(0),
    )
    .map(|t| t.map(time_of))
    .map_err(sql("read the outbox"))
}

pub(super) fn by_id(conn: &Connection, id: i64) -> Result<Option<OutboxRow>, StoreError> {
    conn.prepare_cached(&format!("{ROW} WHERE id = ?1"))
        .and_then(|mut st| st.query_row(params![id], row).optional())
        .map_err(sql("read the outbox"))
}

pub(super) fn has_key(conn: &Connection, key: &str) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT 1 FROM outbox WHERE key = ?1")
        .and_then(|mut st| st.exists(params![key]))
        .map_err(sql("read the outbox"))
}

/// How many mails were queued under `rate_key` since `since`.
pub(super) fn queued_since(
    conn: &Connection,
    rate_key: &str,
    since: Timestamp,
) -> Result<usize, StoreError> {
    conn.prepare_cached("SELECT COUNT(*) FROM outbox WHERE rate_key = ?1 AND queued_at >= ?2")
        .and_then(|mut st| st.query_row(params![rate_key, secs(since)], |r| r.get::<_, i64>(0)))
        .map(|n| n as usize)
        .map_err(sql("read the outbox"))
}

pub(super) fn summary(
    conn: &Connection,
    failed_since: Timestamp,
) -> Result<OutboxSummary, StoreError> {
    const ACTION: &str = "read the outbox";
    let (pending, oldest): (i64, Option<i64>) = conn
        .query_row(
            "SELECT COUNT(*), MIN(queued_at) FROM outbox WHERE state = 'pending'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(sql(ACTION))?;
    let rows = |q: &str, p: i64| -> Result<Vec<OutboxRow>, StoreError> {
        conn.prepare_cached(q)
            .and_then(|mut st| st.query_map(params![p], row)?.collect())
            .map_err(sql(ACTION))
    };
    Ok(OutboxSummary {
        pending: pending as u64,
        oldest_pending: oldest.map(time_of),
        retrying: rows(
            &format!("{ROW} WHERE state = 'pending' AND attempts >= ?1 ORDER BY id LIMIT 50"),
            1,
        )?,
        failed: rows(
            &format!("{ROW} WHERE state = 'failed' AND done_at >= ?1 ORDER BY done_at, id"),
            secs(failed_since),
        )?,
    })
}

/// The stored alert state of each of `clocks` that has one.
pub(super) fn alert_states(
    conn: &Connection,
    clocks: &[String],
) -> Result<Vec<AlertState>, StoreError> {
    let mut st = conn
        .prepare_cached(
            "SELECT first_seen, last_stage, advisory, next_due FROM alert_clocks WHERE clock = ?1",
        )
        .map_err(sql("read alert state"))?;
    let mut out = Vec::new();
    for c in clocks {
        let found = st
            .query_row(params![c], |r| {
                Ok(AlertState {
                    clock: c.clone(),
                    first_seen: time_of(r.get(0)?),
                    last_stage: r.get(1)?,
                    advisory: r.get(2)?,
                    next_due: r.get::<_, Option<i64>>(3)?.map(time_of),
                })
            })
            .optional()
            .map_err(sql("read alert state"))?;
        out.extend(found);
    }
    Ok(out)
}

const CANARY: &str = "SELECT id, to_addr, message_id, sent_at, due_by, send_error, arrived_at, \
                      folder, bounce, alerted FROM canaries";

fn canary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CanaryRow> {
    Ok(CanaryRow {
        id: r.get(0)?,
        to: r.get(1)?,
        message_id: r.get(2)?,
        sent_at: time_of(r.get(3)?),
        due_by: time_of(r.get(4)?),
        send_error: r.get(5)?,
        arrived_at: r.get::<_, Option<i64>>(6)?.map(time_of),
        folder: r.get(7)?,
        bounce: r.get(8)?,
        alerted: r.get(9)?,
    })
}

/// Canaries whose problems were not alerted yet.
pub(super) fn canaries_unalerted(conn: &Connection) -> Result<Vec<CanaryRow>, StoreError> {
    conn.prepare_cached(&format!("{CANARY} WHERE alerted IS NULL ORDER BY sent_at"))
        .and_then(|mut st| st.query_map([], canary_row)?.collect())
        .map_err(sql("read canaries"))
}

/// The latest canary to each address.
pub(super) fn canaries_latest(conn: &Connection) -> Result<Vec<CanaryRow>, StoreError> {
    conn.prepare_cached(&format!(
        "{CANARY} c WHERE sent_at = (SELECT MAX(sent_at) FROM canaries d WHERE d.to_addr = c.to_addr) \
         ORDER BY to_addr"
    ))
    .and_then(|mut st| st.query_map([], canary_row)?.collect())
    .map_err(sql("read canaries"))
}

/// The last arrival of a canary to `to` (and where), if any.
pub(super) fn canary_last_arrival(
    conn: &Connection,
    to: &str,
) -> Result<Option<(Timestamp, String)>, StoreError> {
    conn.prepare_cached(
        "SELECT arrived_at, folder FROM canaries WHERE to_addr = ?1 AND arrived_at IS NOT NULL \
         ORDER BY arrived_at DESC LIMIT 1",
    )
    .and_then(|mut st| {
        st.query_row(params![to], |r| {
            Ok((
                time_of(r.get(0)?),
                r.get::<_, Option<String>>(1)?.unwrap_or_default(),
            ))
        })
        .optional()
    })
    .map_err(sql("read canaries"))
}

/// The clocks whose alert evaluation is due at `now`.
pub(super) fn clocks_due(conn: &Connection, now: Timestamp) -> Result<Vec<String>, StoreError> {
    conn.prepare_cached("SELECT clock FROM alert_clocks WHERE next_due <= ?1 ORDER BY next_due")
        .and_then(|mut st| st.query_map(params![secs(now)], |r| r.get(0))?.collect())
        .map_err(sql("read alert state"))
}
