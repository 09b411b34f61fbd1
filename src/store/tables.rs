//! What the desk reads and writes beside the log, whichever server keeps it: the projection
//! tables, the outbox, the alert and canary state, the revocation checks and the signed
//! checkpoints ([`Tables`]).
//!
//! Every backend that keeps tables ([`super::SqliteStore`], [`super::PostgresStore`]) gives a
//! connection ([`Tables::with_db`]) and the few things that depend on how it keeps the log
//! (events by seq, positions, its readers); the reads themselves are written once, here and in
//! the shared SQL of `sqlite_*.rs`. So `status`, `case`, the dashboard and the alerts read the
//! same rows the same way on either backend.

use std::collections::BTreeSet;

use super::db::{Db, at};
use super::sqlite_checks as checks_sql;
use super::sqlite_fold::{ReceiptKey, StoreBacking, hash_hex};
use super::sqlite_outbox as outbox_sql;
use super::sqlite_signed as signed_sql;
use super::sqlite_tables as tables_sql;
use super::{
    AlertState, Batch, CanaryRow, CheckRow, OutboxRow, OutboxSummary, SignedCheckpoint, Store,
    StoreError, StoredEvent,
};
use crate::deciding::cases::Case;
use crate::deciding::clock::Clock;
use crate::deciding::tables::{Delta, case_from_rows, clock_from_row, secs};
use crate::domain::event::EventIndex;
use crate::domain::model::Timestamp;

/// How far the projection tables are built, and with what.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TablesState {
    /// The build the tables were derived with ([`crate::deciding::tables`] format and the
    /// settings that shape them); `None` when they were never built.
    pub built_with: Option<String>,
    /// The last event whose effect they hold.
    pub through: Option<u64>,
    /// The latest moment any version starts at (seconds): from then on the current rows hold.
    pub latest: Option<i64>,
    /// The last event in the log.
    pub head: u64,
}

/// Write what a batch keeps beside the log, inside the batch's transaction: the index of the
/// events it appends, the tables' delta and how far the tables reach, the outbox and the
/// check rows. `head` is the log's last seq before the batch.
pub(super) fn write_beside(
    db: &mut dyn Db,
    batch: &Batch,
    appended: &[StoredEvent],
    head: Option<u64>,
) -> Result<(), StoreError> {
    let refs: Vec<(u64, &EventIndex)> = appended
        .iter()
        .zip(&batch.event_index)
        .map(|(e, r)| (e.seq, r))
        .collect();
    tables_sql::index_events(db, &refs)?;
    if !batch.tables.is_empty() {
        tables_sql::apply(db, &batch.tables)?;
    }
    if batch.tables.complete {
        let through = appended.last().map(|e| e.seq).or(head).unwrap_or(0);
        tables_sql::meta_set(db, "tables_through", &through.to_string())?;
    }
    outbox_sql::apply(db, &batch.outbox)?;
    checks_sql::apply(db, &batch.checks)
}

/// Write one piece of a re-derivation, inside a transaction ([`Tables::write_tables`]).
pub(super) fn write_piece(
    db: &mut dyn Db,
    delta: &Delta,
    event_index: &[(u64, EventIndex)],
    done: Option<(u64, &str)>,
) -> Result<(), StoreError> {
    let refs: Vec<(u64, &EventIndex)> = event_index.iter().map(|(s, r)| (*s, r)).collect();
    tables_sql::index_events(db, &refs)?;
    tables_sql::apply(db, delta)?;
    if let Some((through, built_with)) = done {
        tables_sql::meta_set(db, "tables_through", &through.to_string())?;
        tables_sql::meta_set(db, "tables_built_with", built_with)?;
    }
    Ok(())
}

/// Empty the projection tables, and with `index` the log's index, inside a transaction
/// ([`Tables::reset_tables`]).
pub(super) fn reset(db: &mut dyn Db, index: bool) -> Result<(), StoreError> {
    const ACTION: &str = "reset tables";
    let index_tables: &[&str] = if index {
        &tables_sql::INDEX_TABLES
    } else {
        &[]
    };
    for t in tables_sql::PROJECTION_TABLES.iter().chain(index_tables) {
        db.execute(&format!("DELETE FROM {t}"), &[])
            .map_err(at(ACTION))?;
    }
    db.execute(
        "DELETE FROM meta WHERE key IN ('tables_through', 'tables_latest', 'tables_built_with')",
        &[],
    )
    .map_err(at(ACTION))?;
    Ok(())
}

/// Run `f` on a connection of `t` and hand back what it made.
fn with<T, S: Tables + ?Sized>(
    t: &S,
    mut f: impl FnMut(&mut dyn Db) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut out = None;
    t.with_db(&mut |db| {
        out = Some(f(db)?);
        Ok(())
    })?;
    out.ok_or_else(|| StoreError::Value {
        action: "read the tables",
        detail: "the connection ran nothing".into(),
    })
}

/// A store that keeps the tables beside its log.
pub trait Tables: Store {
    /// Run `f` on a connection to the tables, outside any transaction: for reading, and for
    /// the one write no leader makes (dashboard sessions, which every instance keeps). The
    /// leader's writes go through [`Store::commit`] and the methods below, fenced.
    #[doc(hidden)]
    fn with_db(
        &self,
        f: &mut dyn FnMut(&mut dyn Db) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// The events with these seqs, in seq order (a seq beyond the log is skipped).
    fn events_at(&self, seqs: &BTreeSet<u64>) -> Result<Vec<StoredEvent>, StoreError>;

    /// Messages recorded per place they were read from (a position without its last part:
    /// `imap:<mailbox>/<folder>/<uidvalidity>/`, `maildir:<dir>/<folder>/`, …).
    fn positions_per_place(&self) -> Result<Vec<(String, u64)>, StoreError> {
        with(self, |db| {
            db.query(
                "SELECT l.place, COUNT(*) FROM position_names n \
                 JOIN position_places l ON l.id = n.place GROUP BY l.place ORDER BY l.place",
                &[],
                |r| Ok((r.text(0)?, u64::try_from(r.int(1)?).unwrap_or(0))),
            )
            .map_err(at("count messages per folder"))
        })
    }

    /// A projector's backing over this store's log and tables, on connections of its own.
    fn backing(&self) -> Result<StoreBacking, StoreError>;

    /// A projector's backing over this store's log and the tables of the SQLite file `tables`
    /// (`verify`'s scratch derivation).
    fn backing_over(&self, tables: &std::path::Path) -> Result<StoreBacking, StoreError>;

    /// Where `verify` may derive the tables afresh: a SQLite file of its own, beside the store
    /// when it is a file.
    fn scratch_path(&self) -> std::path::PathBuf;

    /// Compare the projection tables and the log's index with those of the SQLite file
    /// `other` (a re-derivation): the first few rows that differ, described, or none.
    fn tables_differ_from(
        &self,
        other: &std::path::Path,
    ) -> Result<super::sqlite::TableDifferences, StoreError>;

    /// Empty the projection tables before they are derived again, and with `index` the log's
    /// index too.
    fn reset_tables(&mut self, index: bool) -> Result<(), StoreError>;

    /// Write one piece of a re-derivation: versions and the event index, in one transaction.
    /// With `done`, the tables are complete through `through`, built with `built_with`.
    fn write_tables(
        &mut self,
        delta: &Delta,
        event_index: &[(u64, EventIndex)],
        done: Option<(u64, &str)>,
    ) -> Result<(), StoreError>;

    /// Run `f` in one write transaction of the tables (fenced where the store fences its
    /// writes): all of it or nothing. For `store copy`, which moves the rows beside the log
    /// together.
    #[doc(hidden)]
    fn write_rows(
        &mut self,
        action: &'static str,
        f: &mut dyn FnMut(&mut dyn Db) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// The statement that makes the ids the server hands out in `column` of `table` go on after
    /// the highest one there, after rows were inserted with their own ids; `None` where the
    /// server does so by itself (SQLite's rowid).
    #[doc(hidden)]
    fn identity_follows(&self, _table: &str, _column: &str) -> Option<String> {
        None
    }

    /// Record what the tables were built with (after the engine derived them itself).
    fn set_tables_built_with(&mut self, built_with: &str) -> Result<(), StoreError>;

    /// Who leads the instances sharing this store (a PostgreSQL store's lease), if anyone
    /// ever took the lease; `None` for a store only one instance uses.
    fn leader(&self) -> Result<Option<super::LeaderInfo>, StoreError> {
        Ok(None)
    }

    /// Keep a dashboard session `id` until `expires_at` (Unix seconds); not fenced: every
    /// instance serves the dashboard.
    fn session_start(
        &self,
        id: &str,
        session: &super::WebSession,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        with(self, |db| {
            super::sessions::start(db, id, session, now, expires_at)
        })
    }

    /// The dashboard session `id` names, unless it expired by `now`.
    fn session(&self, id: &str, now: i64) -> Result<Option<super::WebSession>, StoreError> {
        with(self, |db| super::sessions::get(db, id, now))
    }

    /// End the dashboard session `id`.
    fn session_end(&self, id: &str) -> Result<(), StoreError> {
        with(self, |db| super::sessions::end(db, id))
    }

    /// Keep a signed checkpoint; returns its id.
    fn add_signed_checkpoint(&self, c: &SignedCheckpoint) -> Result<i64, StoreError>;

    /// Every signed checkpoint, in the order they were stored.
    fn signed_checkpoints(&self) -> Result<Vec<SignedCheckpoint>, StoreError> {
        with(self, signed_sql::all)
    }

    /// Every case number the log handed out, by founder.
    fn case_numbers(&self) -> Result<crate::deciding::threading::Assigned, StoreError> {
        with(self, |db| {
            db.query("SELECT founder, year, number FROM case_numbers", &[], |r| {
                Ok((
                    hash_hex(&r.blob(0)?),
                    crate::domain::ids::CaseId::new(
                        i32::try_from(r.int(1)?).unwrap_or(0),
                        u32::try_from(r.int(2)?).unwrap_or(0),
                    ),
                ))
            })
            .map(|rows| rows.into_iter().collect())
            .map_err(at("read case numbers"))
        })
    }

    /// Where a derivation stands: the last message in receipt order, how many messages there
    /// are, and when clocks were last compared with the log.
    fn derivation_state(&self) -> Result<(Option<ReceiptKey>, u64, Option<i64>), StoreError> {
        with(self, |db| {
            const ACTION: &str = "read derivation state";
            let last = db
                .query_opt(
                    "SELECT received_at, staff, content_hash FROM receipts \
                     ORDER BY received_at DESC, staff DESC, content_hash DESC LIMIT 1",
                    &[],
                    |r| Ok((r.int(0)?, r.int(1)? != 0, hash_hex(&r.blob(2)?))),
                )
                .map_err(at(ACTION))?;
            let count = db
                .query_opt("SELECT COUNT(*) FROM receipts", &[], |r| r.int(0))
                .map_err(at(ACTION))?
                .unwrap_or(0);
            let evaluated = tables_sql::meta_get(db, "evaluated_at")?.and_then(|v| v.parse().ok());
            Ok((last, u64::try_from(count).unwrap_or(0), evaluated))
        })
    }

    fn check_rows(&self, targets: &[String]) -> Result<Vec<CheckRow>, StoreError> {
        with(self, |db| checks_sql::rows(db, targets))
    }

    fn checks_due(&self, now: Timestamp, limit: usize) -> Result<Vec<String>, StoreError> {
        with(self, |db| checks_sql::due(db, now, limit))
    }

    fn check_rows_answered(&self) -> Result<Vec<CheckRow>, StoreError> {
        with(self, checks_sql::answered)
    }

    /// The answered rows of the revocation clocks open at `now` ([`checks_sql::answered_open`]).
    fn check_rows_answered_open(&self, now: Timestamp) -> Result<Vec<CheckRow>, StoreError> {
        with(self, |db| checks_sql::answered_open(db, now))
    }

    /// Pending mail due at `now`, oldest first.
    fn outbox_due(&self, now: Timestamp, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        with(self, |db| outbox_sql::due(db, now, limit))
    }

    /// When the next pending mail is due.
    fn outbox_next_attempt(&self) -> Result<Option<Timestamp>, StoreError> {
        with(self, outbox_sql::next_attempt)
    }

    fn outbox_row(&self, id: i64) -> Result<Option<OutboxRow>, StoreError> {
        with(self, |db| outbox_sql::by_id(db, id))
    }

    fn outbox_has(&self, key: &str) -> Result<bool, StoreError> {
        with(self, |db| outbox_sql::has_key(db, key))
    }

    fn outbox_queued_since(&self, rate_key: &str, since: Timestamp) -> Result<usize, StoreError> {
        with(self, |db| outbox_sql::queued_since(db, rate_key, since))
    }

    /// Pending, retrying, and failed since `failed_since`.
    fn outbox_summary(&self, failed_since: Timestamp) -> Result<OutboxSummary, StoreError> {
        with(self, |db| outbox_sql::summary(db, failed_since))
    }

    fn alert_states(&self, clocks: &[String]) -> Result<Vec<AlertState>, StoreError> {
        with(self, |db| outbox_sql::alert_states(db, clocks))
    }

    /// Canaries whose problems were not alerted yet.
    fn canaries_unalerted(&self) -> Result<Vec<CanaryRow>, StoreError> {
        with(self, outbox_sql::canaries_unalerted)
    }

    /// The latest canary to each address.
    fn canaries_latest(&self) -> Result<Vec<CanaryRow>, StoreError> {
        with(self, outbox_sql::canaries_latest)
    }

    /// The last arrival of a canary to `to`, and the role of its folder.
    fn canary_last_arrival(&self, to: &str) -> Result<Option<(Timestamp, String)>, StoreError> {
        with(self, |db| outbox_sql::canary_last_arrival(db, to))
    }

    /// Clocks whose alert evaluation is due at `now`.
    fn alert_clocks_due(&self, now: Timestamp) -> Result<Vec<String>, StoreError> {
        with(self, |db| outbox_sql::clocks_due(db, now))
    }

    /// Mail failed for good, ever.
    fn outbox_failed_count(&self) -> Result<u64, StoreError> {
        with(self, |db| {
            db.query_opt(
                "SELECT COUNT(*) FROM outbox WHERE state = 'failed'",
                &[],
                |r| r.int(0),
            )
            .map(|n| u64::try_from(n.unwrap_or(0)).unwrap_or(0))
            .map_err(at("count failed mail"))
        })
    }

    /// The clocks, as the tables hold them now, whose deadline passed at `now` before they
    /// stopped (breached, or met late), by kind (the part of the id before `:`).
    fn breaches_by_kind(&self, now: Timestamp) -> Result<Vec<(String, u64)>, StoreError> {
        let ids = with(self, |db| {
            db.query(
                "SELECT id FROM clocks \
                 WHERE valid_to IS NULL AND deadline < stop_key AND deadline < ?1",
                super::db::params![secs(now)],
                |r| r.text(0),
            )
            .map_err(at("count breached clocks"))
        })?;
        let mut kinds = std::collections::BTreeMap::<String, u64>::new();
        for id in ids {
            let kind = id.split_once(':').map_or("", |(k, _)| k);
            *kinds.entry(kind.to_string()).or_default() += 1;
        }
        Ok(kinds.into_iter().collect())
    }

    /// The clocks the tables hold now that no stop closed by `now` and some case lists: what
    /// `status` shows at `now`, without reading the cases (one query, for `/metrics`).
    fn open_clocks_now(&self, now: Timestamp) -> Result<Vec<Clock>, StoreError> {
        let rows = with(self, |db| {
            db.query(
                "SELECT c.id, c.body FROM clocks c WHERE c.valid_to IS NULL AND c.stop_key > ?1 \
                 AND EXISTS (SELECT 1 FROM case_items i WHERE i.kind = 3 AND i.item = c.id \
                 AND i.valid_to IS NULL)",
                super::db::params![secs(now)],
                |r| Ok((r.text(0)?, r.blob(1)?)),
            )
            .map_err(at("read open clocks"))
        })?;
        rows.into_iter()
            .map(|(id, body)| clock_from_row(&id, &body).map_err(StoreError::from))
            .collect()
    }

    /// The clocks open at `now` (as [`Self::open_clocks_now`]), each with the first case, in
    /// case order, that lists it, read from that case's header alone (id, reporter, subject,
    /// opened; no messages, certificates or clocks): the dashboard's rows without reading every
    /// item of every open case.
    fn open_clocks_with_case(&self, now: Timestamp) -> Result<Vec<(Clock, Case)>, StoreError> {
        with(self, |db| {
            const ACTION: &str = "read open clocks";
            let rows = db
                .query(
                    "SELECT id, body, first FROM (SELECT c.id, c.body, \
                     (SELECT i.case_id FROM case_items i JOIN cases k ON k.id = i.case_id \
                      WHERE i.kind = 3 AND i.item = c.id AND i.valid_to IS NULL \
                      ORDER BY k.ord LIMIT 1) AS first \
                     FROM clocks c WHERE c.valid_to IS NULL AND c.stop_key > ?1) open \
                     WHERE first IS NOT NULL",
                    super::db::params![secs(now)],
                    |r| Ok((r.text(0)?, r.blob(1)?, r.text(2)?)),
                )
                .map_err(at(ACTION))?;
            let mut headers: std::collections::HashMap<String, Case> = Default::default();
            let mut out = Vec::with_capacity(rows.len());
            for (id, body, case_id) in rows {
                let clock = clock_from_row(&id, &body)?;
                if !headers.contains_key(&case_id) {
                    let Some(row) = tables_sql::case_row(db, &case_id)? else {
                        continue;
                    };
                    let case = case_from_rows(&case_id, row.opened_at, &row.header, &[])?;
                    headers.insert(case_id.clone(), case);
                }
                out.push((clock, headers[&case_id].clone()));
            }
            Ok(out)
        })
    }

    fn tables_state(&self) -> Result<TablesState, StoreError> {
        with(self, |db| {
            let head = db
                .query_opt("SELECT MAX(seq) FROM events", &[], |r| r.opt_int(0))
                .map_err(at("read tables state"))?
                .flatten();
            Ok(TablesState {
                built_with: tables_sql::meta_get(db, "tables_built_with")?,
                through: tables_sql::meta_get(db, "tables_through")?.and_then(|v| v.parse().ok()),
                latest: tables_sql::meta_get(db, "tables_latest")?.and_then(|v| v.parse().ok()),
                head: head.map_or(0, |h| u64::try_from(h).unwrap_or(0)),
            })
        })
    }

    /// The case as it was at `at` (`None` if it did not exist then, or never).
    fn case_at(&self, id: &str, at_: Timestamp) -> Result<Option<(i64, Case)>, StoreError> {
        with(self, |db| {
            let Some(row) = tables_sql::case_row(db, id)? else {
                return Ok(None);
            };
            let t = secs(at_);
            if row.opened_at > t {
                return Ok(None);
            }
            let items = tables_sql::case_items(db, id, t)?;
            let case = case_from_rows(id, row.opened_at, &row.header, &items)?;
            Ok(Some((row.ord, case)))
        })
    }

    /// The clock as it was at `at`.
    fn clock_at(&self, id: &str, at_: Timestamp) -> Result<Option<Clock>, StoreError> {
        with(self, |db| tables_sql::clock_at(db, id, secs(at_)))?
            .map(|body| clock_from_row(id, &body).map_err(StoreError::from))
            .transpose()
    }

    /// The clocks the tables hold now that are running at `now` with a deadline by `until`,
    /// each with the first case that lists it.
    fn clocks_due(
        &self,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<(Clock, Option<String>)>, StoreError> {
        let (t, u) = (secs(now), secs(until));
        with(self, |db| {
            let rows = db
                .query(
                    "SELECT id, body FROM clocks WHERE valid_to IS NULL AND deadline >= ?1 \
                     AND deadline <= ?2 AND stop_key > ?1 ORDER BY deadline, id",
                    super::db::params![t, u],
                    |r| Ok((r.text(0)?, r.blob(1)?)),
                )
                .map_err(at("read clocks due"))?;
            let mut out = Vec::with_capacity(rows.len());
            for (id, body) in rows {
                let clock = clock_from_row(&id, &body)?;
                let case = tables_sql::cases_of_clock(db, &id, i64::MAX - 1)?
                    .into_iter()
                    .min();
                out.push((clock, case));
            }
            Ok(out)
        })
    }

    /// The cases that list clock `id` at `at`.
    fn cases_of_clock(&self, id: &str, at_: Timestamp) -> Result<Vec<String>, StoreError> {
        with(self, |db| tables_sql::cases_of_clock(db, id, secs(at_)))
    }

    /// The clocks open at `at`, each with the cases that list it then.
    fn open_clocks_at(&self, at_: Timestamp) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let t = secs(at_);
        with(self, |db| {
            let latest: Option<i64> =
                tables_sql::meta_get(db, "tables_latest")?.and_then(|v| v.parse().ok());
            let current = latest.is_none_or(|l| t >= l);
            let ids = tables_sql::open_clocks(db, t, current)?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let cases = tables_sql::cases_of_clock(db, &id, t)?;
                out.push((id, cases));
            }
            Ok(out)
        })
    }

    /// The cases a name (certificate or key reference, Message-Id, address, case id) was seen
    /// in. May include a case that merely shares an index key: check the case.
    fn cases_named(&self, name: &str) -> Result<Vec<String>, StoreError> {
        with(self, |db| tables_sql::cases_named(db, name))
    }

    /// The cases opened in `[from, to)`, in case order, for an audit of that period. May list
    /// a case since merged into another, which [`Self::case_at`] shows without messages.
    fn cases_opened_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        with(self, |db| {
            tables_sql::cases_opened(db, secs(from), secs(to))
        })
    }

    /// The events that name any of `refs` (and possibly a few more: check them), in seq order.
    fn events_naming(&self, refs: &[String]) -> Result<Vec<StoredEvent>, StoreError> {
        self.events_at(&self.event_seqs_naming(refs)?)
    }

    /// The seqs of the events that name any of `refs` (and possibly a few more).
    fn event_seqs_naming(&self, refs: &[String]) -> Result<BTreeSet<u64>, StoreError> {
        with(self, |db| {
            let mut seqs = BTreeSet::new();
            for r in refs {
                seqs.extend(tables_sql::events_naming(db, r)?);
            }
            Ok(seqs)
        })
    }
}
