//! Revocation checks (schema 10): what the checker keeps between checks of a certificate.
//!
//! Operational state beside the log, like the outbox: each check's answer is in the log as a
//! `revocation_observed` event, written in the same batch as the row here that says when to
//! look next, so the row never says something was seen that the log does not. The row also
//! keeps the certificate and issuer once found, so a certificate fetched by id is fetched once.

use rusqlite::{Connection, OptionalExtension, params};

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
    conn: &Connection,
    now: Timestamp,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    const ACTION: &str = "read the revocation checks due";
    let mut st = conn
        .prepare_cached(
            "SELECT target FROM revocation_checks WHERE next_due > 0 AND next_due <= ?1 \
             UNION ALL \
             SELECT substr(c.id, 12) FROM clocks c \
             WHERE c.valid_to IS NULL AND c.stop_key > ?1 \
               AND c.id >= 'revocation:' AND c.id < 'revocation;' \
               AND NOT EXISTS (SELECT 1 FROM revocation_checks r \
                               WHERE r.target = substr(c.id, 12)) \
             LIMIT ?2",
        )
        .map_err(sql(ACTION))?;
    st.query_map(
        params![secs(now), i64::try_from(limit).unwrap_or(i64::MAX)],
        |r| r.get(0),
    )
    .and_then(|rows| rows.collect())
    .map_err(sql(ACTION))
}

fn sql(action: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sql { action, source }
}

/// Write the rows (whole): in a batch, with the events that record the answers.
pub(super) fn apply(conn: &Connection, rows: &[CheckRow]) -> Result<(), StoreError> {
    const ACTION: &str = "record a revocation check";
    if rows.is_empty() {
        return Ok(());
    }
    let mut st = conn
        .prepare_cached(
            "INSERT INTO revocation_checks (target, next_due, failures, fresh_until, retry_after, \
             certificate, issuer, latest, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (target) DO UPDATE SET next_due = excluded.next_due, \
             failures = excluded.failures, fresh_until = excluded.fresh_until, \
             retry_after = excluded.retry_after, certificate = excluded.certificate, \
             issuer = excluded.issuer, latest = excluded.latest, note = excluded.note",
        )
        .map_err(sql(ACTION))?;
    for r in rows {
        st.execute(params![
            r.target,
            r.next_due.map_or(0, secs),
            r.failures,
            r.fresh_until.map(secs),
            r.retry_after.map(secs),
            r.certificate,
            r.issuer,
            serde_json::to_string(&r.latest).unwrap_or_else(|_| "[]".into()),
            r.note,
        ])
        .map_err(sql(ACTION))?;
    }
    Ok(())
}

const COLUMNS: &str =
    "target, next_due, failures, fresh_until, retry_after, certificate, issuer, latest, note";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CheckRow> {
    let latest: String = r.get(7)?;
    Ok(CheckRow {
        target: r.get(0)?,
        next_due: due_time(r.get(1)?),
        failures: r.get(2)?,
        fresh_until: time(r.get(3)?),
        retry_after: time(r.get(4)?),
        certificate: r.get(5)?,
        issuer: r.get(6)?,
        // A damaged list only loses what was last seen; the next check writes it again.
        latest: serde_json::from_str(&latest).unwrap_or_default(),
        note: r.get(8)?,
    })
}

/// The rows of these targets (those that have one).
pub(super) fn rows(conn: &Connection, targets: &[String]) -> Result<Vec<CheckRow>, StoreError> {
    const ACTION: &str = "read revocation checks";
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM revocation_checks WHERE target = ?1"
        ))
        .map_err(sql(ACTION))?;
    let mut out = Vec::new();
    for t in targets {
        if let Some(r) = st.query_row([t], row).optional().map_err(sql(ACTION))? {
            out.push(r);
        }
    }
    Ok(out)
}

/// Every row with an answer, without the certificates (what the alerts and the follow-up of a
/// disagreement look at).
pub(super) fn answered(conn: &Connection) -> Result<Vec<CheckRow>, StoreError> {
    const ACTION: &str = "read revocation checks";
    let mut st = conn
        .prepare_cached(
            "SELECT target, next_due, failures, fresh_until, retry_after, NULL, NULL, latest, \
             note FROM revocation_checks WHERE latest != '[]'",
        )
        .map_err(sql(ACTION))?;
    st.query_map([], row)
        .and_then(|rows| rows.collect())
        .map_err(sql(ACTION))
}

/// The rows with an answer whose certificate's revocation clock is open at `now`, without the
/// certificates, by target: what the alerts look at after the first evaluation, instead of
/// every row ever answered. Driven by the open clocks (the version valid at `now`, current or
/// ended, each half answered by its index as in [`super::sqlite_tables`]), each row probed by
/// key. The prefix is tested with `substr`, not as a range of `id`: a range would let the
/// planner walk every version of every revocation clock ever kept by the primary key instead.
pub(super) fn answered_open(
    conn: &Connection,
    now: Timestamp,
) -> Result<Vec<CheckRow>, StoreError> {
    const ACTION: &str = "read revocation checks";
    const ROWS: &str = "SELECT r.target, r.next_due, r.failures, r.fresh_until, r.retry_after, \
                        NULL, NULL, r.latest, r.note \
                        FROM clocks c JOIN revocation_checks r ON r.target = substr(c.id, 12) \
                        WHERE substr(c.id, 1, 11) = 'revocation:' \
                        AND c.valid_from <= ?1 AND c.stop_key > ?1 AND r.latest != '[]'";
    let mut st = conn
        .prepare_cached(&format!(
            "{ROWS} AND c.valid_to IS NULL UNION ALL {ROWS} AND c.valid_to > ?1 ORDER BY 1"
        ))
        .map_err(sql(ACTION))?;
    st.query_map(params![secs(now)], row)
        .and_then(|rows| rows.collect())
        .map_err(sql(ACTION))
}
