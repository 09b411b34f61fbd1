//! Revocation checks (schema 10): what the checker keeps between checks of a certificate.
//!
//! Operational state beside the log, like the outbox: each check's answer is in the log as a
//! `revocation_observed` event, written in the same batch as the row here that says when to
//! look next, so the row never says something was seen that the log does not. The row also
//! keeps the certificate and issuer once found, so a certificate fetched by id is fetched once.

use super::db::{Db, DbError, Row, at, params};

use super::StoreError;
use crate::domain::event::Observation;
use crate::domain::model::Timestamp;

/// Schema 10. `IF NOT EXISTS` because tests fake older versions over fresh files.
pub(super) const SCHEMA_V10: &str = "
CREATE TABLE IF NOT EXISTS revocation_checks (
    target      TEXT PRIMARY KEY,
    next_due    INTEGER NOT NULL,
    failures    INTEGER NOT NULL DEFAULT 0,
    fresh_until INTEGER,
    retry_after INTEGER,
    certificate BLOB,
    issuer      BLOB,
    latest      TEXT NOT NULL DEFAULT '[]',
    note        TEXT
);
CREATE INDEX IF NOT EXISTS revocation_checks_due ON revocation_checks (next_due);
";

/// One certificate's check state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckRow {
    /// The certificate: its revocation clock's target.
    pub target: String,
    pub next_due: Option<Timestamp>,
    pub failures: u32,
    pub fresh_until: Option<Timestamp>,
    pub retry_after: Option<Timestamp>,
    /// The certificate's DER, once found (in a report or fetched).
    pub certificate: Option<Vec<u8>>,
    /// Its issuer's DER, once found.
    pub issuer: Option<Vec<u8>>,
    /// The latest answer of each source.
    pub latest: Vec<Observation>,
    /// Why it cannot be checked (no certificate, no issuer, no responder), for staff.
    pub note: Option<String>,
}

fn secs(t: Timestamp) -> i64 {
    t.unix_timestamp()
}

fn time(s: Option<i64>) -> Option<Timestamp> {
    s.and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
}

/// `next_due` as stored: 0 is "no further check".
fn due_time(s: i64) -> Option<Timestamp> {
    (s > 0).then(|| time(Some(s))).flatten()
}

/// The targets due a check at `now`, at most `limit`: rows whose next check has come, then
/// open revocation clocks (certificates and keys) with no row yet. Both halves are answered
/// by an index (`revocation_checks_due`; the current open clocks, each probed by key).
pub(super) fn due(
    db: &mut dyn Db,
    now: Timestamp,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    db.query(
        "SELECT target FROM revocation_checks WHERE next_due > 0 AND next_due <= ?1 \
         UNION ALL \
         SELECT substr(c.id, 12) FROM clocks c \
         WHERE c.valid_to IS NULL AND c.stop_key > ?1 \
           AND c.id >= 'revocation:' AND c.id < 'revocation;' \
           AND NOT EXISTS (SELECT 1 FROM revocation_checks r \
                           WHERE r.target = substr(c.id, 12)) \
         LIMIT ?2",
        params![secs(now), i64::try_from(limit).unwrap_or(i64::MAX)],
        |r| r.text(0),
    )
    .map_err(at("read the revocation checks due"))
}

/// Write the rows (whole): in a batch, with the events that record the answers.
pub(super) fn apply(db: &mut dyn Db, rows: &[CheckRow]) -> Result<(), StoreError> {
    const ACTION: &str = "record a revocation check";
    for r in rows {
        let latest = serde_json::to_string(&r.latest).unwrap_or_else(|_| "[]".into());
        db.execute(
            "INSERT INTO revocation_checks (target, next_due, failures, fresh_until, retry_after, \
             certificate, issuer, latest, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (target) DO UPDATE SET next_due = excluded.next_due, \
             failures = excluded.failures, fresh_until = excluded.fresh_until, \
             retry_after = excluded.retry_after, certificate = excluded.certificate, \
             issuer = excluded.issuer, latest = excluded.latest, note = excluded.note",
            params![
                &r.target,
                r.next_due.map_or(0, secs),
                r.failures,
                r.fresh_until.map(secs),
                r.retry_after.map(secs),
                &r.certificate,
                &r.issuer,
                &latest,
                &r.note,
            ],
        )
        .map_err(at(ACTION))?;
    }
    Ok(())
}

const COLUMNS: &str =
    "target, next_due, failures, fresh_until, retry_after, certificate, issuer, latest, note";

fn row(r: &dyn Row) -> Result<CheckRow, DbError> {
    let latest = r.text(7)?;
    Ok(CheckRow {
        target: r.text(0)?,
        next_due: due_time(r.int(1)?),
        failures: u32::try_from(r.int(2)?).unwrap_or(u32::MAX),
        fresh_until: time(r.opt_int(3)?),
        retry_after: time(r.opt_int(4)?),
        certificate: r.opt_blob(5)?,
        issuer: r.opt_blob(6)?,
        // A damaged list only loses what was last seen; the next check writes it again.
        latest: serde_json::from_str(&latest).unwrap_or_default(),
        note: r.opt_text(8)?,
    })
}

/// The rows of these targets (those that have one).
pub(super) fn rows(db: &mut dyn Db, targets: &[String]) -> Result<Vec<CheckRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM revocation_checks WHERE target = ?1");
    let mut out = Vec::new();
    for t in targets {
        if let Some(r) = db
            .query_opt(&sql, params![t], row)
            .map_err(at("read revocation checks"))?
        {
            out.push(r);
        }
    }
    Ok(out)
}

/// Every row with an answer, without the certificates (what the alerts and the follow-up of a
/// disagreement look at).
pub(super) fn answered(db: &mut dyn Db) -> Result<Vec<CheckRow>, StoreError> {
    db.query(
        "SELECT target, next_due, failures, fresh_until, retry_after, NULL, NULL, latest, \
         note FROM revocation_checks WHERE latest != '[]'",
        &[],
        row,
    )
    .map_err(at("read revocation checks"))
}

/// The rows with an answer whose certificate's revocation clock is open at `now`, without the
/// certificates, by target: what the alerts look at after the first evaluation, instead of
/// every row ever answered. Driven by the open clocks (the version valid at `now`, current or
/// ended, each half answered by its index as in [`super::sqlite_tables`]), each row probed by
/// key. The prefix is tested with `substr`, not as a range of `id`: a range would let the
/// planner walk every version of every revocation clock ever kept by the primary key instead.
pub(super) fn answered_open(db: &mut dyn Db, now: Timestamp) -> Result<Vec<CheckRow>, StoreError> {
    const ROWS: &str = "SELECT r.target, r.next_due, r.failures, r.fresh_until, r.retry_after, \
                        NULL, NULL, r.latest, r.note \
                        FROM clocks c JOIN revocation_checks r ON r.target = substr(c.id, 12) \
                        WHERE substr(c.id, 1, 11) = 'revocation:' \
                        AND c.valid_from <= ?1 AND c.stop_key > ?1 AND r.latest != '[]'";
    db.query(
        &format!("{ROWS} AND c.valid_to IS NULL UNION ALL {ROWS} AND c.valid_to > ?1 ORDER BY 1"),
        params![secs(now)],
        row,
    )
    .map_err(at("read revocation checks"))
}
