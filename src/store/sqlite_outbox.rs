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

use super::db::{Db, DbError, Row, at, params};

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
    /// The courier of the leader takes it to send, at `at` (its attempt's time). Committed
    /// under the lease just before the mail is handed to SMTP, so a former leader that lost its
    /// lease (fenced) starts no new delivery; one paused between its claim and the handover
    /// may still send that one mail when it wakes.
    Claim {
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
pub(super) fn apply(db: &mut dyn Db, changes: &[OutboxChange]) -> Result<(), StoreError> {
    const ACTION: &str = "write the outbox";
    for c in changes {
        match c {
            OutboxChange::Queue(m) => {
                let (to, clocks) = (list(&m.to), list(&m.clocks));
                let added = db
                    .execute(
                        "INSERT INTO outbox (key, kind, message_id, recipients, rate_key, case_id, \
                         clocks, body, queued_at, state, next_attempt_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', ?9) \
                         ON CONFLICT (key) DO NOTHING",
                        params![
                            &m.key,
                            &m.kind,
                            &m.message_id,
                            &to,
                            &m.rate_key,
                            &m.case,
                            &clocks,
                            &m.body,
                            secs(m.queued_at)
                        ],
                    )
                    .map_err(at(ACTION))?;
                if added == 0 {
                    // Its mail_queued event is in this batch: refusing keeps the log from
                    // saying a mail was decided twice.
                    return Err(StoreError::BadBatch(format!(
                        "outbox key {:?} is already queued",
                        m.key
                    )));
                }
            }
            OutboxChange::Sent { id, at: when } => {
                db.execute(
                    "UPDATE outbox SET state = 'sent', attempts = attempts + 1, done_at = ?2, \
                     last_error = NULL WHERE id = ?1",
                    params![*id, secs(*when)],
                )
                .map_err(at(ACTION))?;
            }
            OutboxChange::Claim { id, at: when } => {
                db.execute(
                    "UPDATE outbox SET next_attempt_at = ?2 WHERE id = ?1 AND state = 'pending'",
                    params![*id, secs(*when)],
                )
                .map_err(at(ACTION))?;
            }
            OutboxChange::Retry {
                id,
                attempts,
                next_at,
                error,
            } => {
                db.execute(
                    "UPDATE outbox SET attempts = ?2, next_attempt_at = ?3, last_error = ?4 \
                     WHERE id = ?1",
                    params![*id, *attempts, secs(*next_at), error],
                )
                .map_err(at(ACTION))?;
            }
            OutboxChange::Failed {
                id,
                at: when,
                attempts,
                error,
            } => {
                db.execute(
                    "UPDATE outbox SET state = 'failed', attempts = ?2, done_at = ?3, \
                     last_error = ?4 WHERE id = ?1",
                    params![*id, *attempts, secs(*when), error],
                )
                .map_err(at(ACTION))?;
            }
            OutboxChange::CanarySent(c) => {
                db.execute(
                    "INSERT INTO canaries (id, to_addr, message_id, sent_at, due_by, send_error) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
                    params![
                        &c.id,
                        &c.to,
                        &c.message_id,
                        secs(c.sent_at),
                        secs(c.due_by),
                        &c.send_error
                    ],
                )
                .map_err(at(ACTION))?;
            }
            OutboxChange::CanaryArrived {
                id,
                at: when,
                folder,
                bounce,
            } => {
                // The first sighting counts; a bounce counts whenever it comes.
                db.execute(
                    "UPDATE canaries SET \
                     arrived_at = CASE WHEN CAST(?4 AS TEXT) IS NULL AND arrived_at IS NULL \
                                  THEN ?2 ELSE arrived_at END, \
                     folder = CASE WHEN CAST(?4 AS TEXT) IS NULL AND arrived_at IS NULL \
                              THEN ?3 ELSE folder END, \
                     bounce = COALESCE(bounce, ?4) WHERE id = ?1",
                    params![id, secs(*when), folder, bounce],
                )
                .map_err(at(ACTION))?;
            }
            OutboxChange::CanaryAlerted { id, problem } => {
                db.execute(
                    "UPDATE canaries SET alerted = ?2 WHERE id = ?1",
                    params![id, problem],
                )
                .map_err(at(ACTION))?;
            }
            OutboxChange::AlertState(a) => {
                db.execute(
                    "INSERT INTO alert_clocks (clock, first_seen, last_stage, advisory, next_due) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (clock) DO UPDATE SET \
                     last_stage = excluded.last_stage, advisory = excluded.advisory, \
                     next_due = excluded.next_due",
                    params![
                        &a.clock,
                        secs(a.first_seen),
                        &a.last_stage,
                        a.advisory,
                        a.next_due.map(secs)
                    ],
                )
                .map_err(at(ACTION))?;
            }
        }
    }
    Ok(())
}

const ROW: &str = "SELECT id, key, kind, message_id, recipients, case_id, clocks, body, queued_at, \
                   state, attempts, next_attempt_at, last_error, done_at FROM outbox";

fn row(r: &dyn Row) -> Result<OutboxRow, DbError> {
    Ok(OutboxRow {
        id: r.int(0)?,
        key: r.text(1)?,
        kind: r.text(2)?,
        message_id: r.text(3)?,
        to: unlist(&r.text(4)?),
        case: r.opt_text(5)?,
        clocks: unlist(&r.text(6)?),
        body: r.blob(7)?,
        queued_at: time_of(r.int(8)?),
        state: r.text(9)?,
        attempts: u32::try_from(r.int(10)?).unwrap_or(u32::MAX),
        next_attempt_at: time_of(r.int(11)?),
        last_error: r.opt_text(12)?,
        done_at: r.opt_int(13)?.map(time_of),
    })
}

/// Pending mail whose attempt is due at `now`, oldest first, at most `limit`.
pub(super) fn due(
    db: &mut dyn Db,
    now: Timestamp,
    limit: usize,
) -> Result<Vec<OutboxRow>, StoreError> {
    db.query(
        &format!(
            "{ROW} WHERE state = 'pending' AND next_attempt_at <= ?1 \
             ORDER BY next_attempt_at, id LIMIT ?2"
        ),
        params![secs(now), i64::try_from(limit).unwrap_or(i64::MAX)],
        row,
    )
    .map_err(at("read the outbox"))
}

/// When the next pending mail is due, if any is pending.
pub(super) fn next_attempt(db: &mut dyn Db) -> Result<Option<Timestamp>, StoreError> {
    db.query_opt(
        "SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending'",
        &[],
        |r| r.opt_int(0),
    )
    .map(|t| t.flatten().map(time_of))
    .map_err(at("read the outbox"))
}

pub(super) fn by_id(db: &mut dyn Db, id: i64) -> Result<Option<OutboxRow>, StoreError> {
    db.query_opt(&format!("{ROW} WHERE id = ?1"), params![id], row)
        .map_err(at("read the outbox"))
}

pub(super) fn has_key(db: &mut dyn Db, key: &str) -> Result<bool, StoreError> {
    db.query_opt("SELECT 1 FROM outbox WHERE key = ?1", params![key], |_| {
        Ok(())
    })
    .map(|r| r.is_some())
    .map_err(at("read the outbox"))
}

/// How many mails were queued under `rate_key` since `since`.
pub(super) fn queued_since(
    db: &mut dyn Db,
    rate_key: &str,
    since: Timestamp,
) -> Result<usize, StoreError> {
    db.query_opt(
        "SELECT COUNT(*) FROM outbox WHERE rate_key = ?1 AND queued_at >= ?2",
        params![rate_key, secs(since)],
        |r| r.int(0),
    )
    .map(|n| usize::try_from(n.unwrap_or(0)).unwrap_or(0))
    .map_err(at("read the outbox"))
}

pub(super) fn summary(
    db: &mut dyn Db,
    failed_since: Timestamp,
) -> Result<OutboxSummary, StoreError> {
    const ACTION: &str = "read the outbox";
    let (pending, oldest) = db
        .query_opt(
            "SELECT COUNT(*), MIN(queued_at) FROM outbox WHERE state = 'pending'",
            &[],
            |r| Ok((r.int(0)?, r.opt_int(1)?)),
        )
        .map_err(at(ACTION))?
        .unwrap_or_default();
    let retrying = db
        .query(
            &format!("{ROW} WHERE state = 'pending' AND attempts >= ?1 ORDER BY id LIMIT 50"),
            params![1i64],
            row,
        )
        .map_err(at(ACTION))?;
    let failed = db
        .query(
            &format!("{ROW} WHERE state = 'failed' AND done_at >= ?1 ORDER BY done_at, id"),
            params![secs(failed_since)],
            row,
        )
        .map_err(at(ACTION))?;
    Ok(OutboxSummary {
        pending: u64::try_from(pending).unwrap_or(0),
        oldest_pending: oldest.map(time_of),
        retrying,
        failed,
    })
}

/// The stored alert state of each of `clocks` that has one.
pub(super) fn alert_states(
    db: &mut dyn Db,
    clocks: &[String],
) -> Result<Vec<AlertState>, StoreError> {
    let mut out = Vec::new();
    for c in clocks {
        let found = db
            .query_opt(
                "SELECT first_seen, last_stage, advisory, next_due FROM alert_clocks \
                 WHERE clock = ?1",
                params![c],
                |r| {
                    Ok(AlertState {
                        clock: c.clone(),
                        first_seen: time_of(r.int(0)?),
                        last_stage: r.opt_text(1)?,
                        advisory: r.int(2)? != 0,
                        next_due: r.opt_int(3)?.map(time_of),
                    })
                },
            )
            .map_err(at("read alert state"))?;
        out.extend(found);
    }
    Ok(out)
}

const CANARY: &str = "SELECT id, to_addr, message_id, sent_at, due_by, send_error, arrived_at, \
                      folder, bounce, alerted FROM canaries";

fn canary_row(r: &dyn Row) -> Result<CanaryRow, DbError> {
    Ok(CanaryRow {
        id: r.text(0)?,
        to: r.text(1)?,
        message_id: r.text(2)?,
        sent_at: time_of(r.int(3)?),
        due_by: time_of(r.int(4)?),
        send_error: r.opt_text(5)?,
        arrived_at: r.opt_int(6)?.map(time_of),
        folder: r.opt_text(7)?,
        bounce: r.opt_text(8)?,
        alerted: r.opt_text(9)?,
    })
}

/// Canaries whose problems were not alerted yet.
pub(super) fn canaries_unalerted(db: &mut dyn Db) -> Result<Vec<CanaryRow>, StoreError> {
    db.query(
        &format!("{CANARY} WHERE alerted IS NULL ORDER BY sent_at"),
        &[],
        canary_row,
    )
    .map_err(at("read canaries"))
}

/// The latest canary to each address.
pub(super) fn canaries_latest(db: &mut dyn Db) -> Result<Vec<CanaryRow>, StoreError> {
    db.query(
        &format!(
            "{CANARY} c WHERE sent_at = \
             (SELECT MAX(sent_at) FROM canaries d WHERE d.to_addr = c.to_addr) ORDER BY to_addr"
        ),
        &[],
        canary_row,
    )
    .map_err(at("read canaries"))
}

/// The last arrival of a canary to `to` (and where), if any.
pub(super) fn canary_last_arrival(
    db: &mut dyn Db,
    to: &str,
) -> Result<Option<(Timestamp, String)>, StoreError> {
    db.query_opt(
        "SELECT arrived_at, folder FROM canaries WHERE to_addr = ?1 AND arrived_at IS NOT NULL \
         ORDER BY arrived_at DESC LIMIT 1",
        params![to],
        |r| Ok((time_of(r.int(0)?), r.opt_text(1)?.unwrap_or_default())),
    )
    .map_err(at("read canaries"))
}

/// The clocks whose alert evaluation is due at `now`.
pub(super) fn clocks_due(db: &mut dyn Db, now: Timestamp) -> Result<Vec<String>, StoreError> {
    db.query(
        "SELECT clock FROM alert_clocks WHERE next_due <= ?1 ORDER BY next_due",
        params![secs(now)],
        |r| r.text(0),
    )
    .map_err(at("read alert state"))
}
