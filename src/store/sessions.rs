//! Dashboard sessions (SQLite schema 11, PostgreSQL migration 4): who is logged in, kept in the
//! store so that instances sharing a PostgreSQL database know the same sessions — after a
//! failover, staff stay logged in on whichever instance answers.
//!
//! Only the SHA-256 of a session id is kept: whoever can read the database cannot use it to
//! take over a session. Operational state beside the log, never part of it; a session is not
//! fenced by the leader lease, because every instance serves the dashboard.

use super::StoreError;
use super::db::{Db, at, params};

/// SQLite schema 11. `IF NOT EXISTS` because tests fake older versions over fresh files.
pub(super) const SCHEMA_V11: &str = "
CREATE TABLE IF NOT EXISTS web_sessions (
    id_hash    BLOB PRIMARY KEY,
    user_name  TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS web_sessions_expiry ON web_sessions (expires_at);
";

/// The same on PostgreSQL.
pub(super) const PG_SCHEMA_SESSIONS: &str = "
CREATE TABLE web_sessions (
    id_hash    BYTEA PRIMARY KEY,
    user_name  TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);
";

/// A logged-in session as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebSession {
    pub user: String,
    pub csrf: String,
}

fn id_hash(id: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(id.as_bytes()).to_vec()
}

/// Keep a new session until `expires_at` (Unix seconds), forgetting the ones that expired.
pub(super) fn start(
    db: &mut dyn Db,
    id: &str,
    s: &WebSession,
    now: i64,
    expires_at: i64,
) -> Result<(), StoreError> {
    const ACTION: &str = "keep a dashboard session";
    db.execute(
        "DELETE FROM web_sessions WHERE expires_at <= ?1",
        params![now],
    )
    .map_err(at(ACTION))?;
    db.execute(
        "INSERT INTO web_sessions (id_hash, user_name, csrf, expires_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (id_hash) DO UPDATE SET user_name = excluded.user_name, \
         csrf = excluded.csrf, expires_at = excluded.expires_at",
        params![&id_hash(id), &s.user, &s.csrf, expires_at],
    )
    .map(drop)
    .map_err(at(ACTION))
}

/// The session `id` names, if it has not expired at `now`.
pub(super) fn get(db: &mut dyn Db, id: &str, now: i64) -> Result<Option<WebSession>, StoreError> {
    db.query_opt(
        "SELECT user_name, csrf FROM web_sessions WHERE id_hash = ?1 AND expires_at > ?2",
        params![&id_hash(id), now],
        |r| {
            Ok(WebSession {
                user: r.text(0)?,
                csrf: r.text(1)?,
            })
        },
    )
    .map_err(at("read a dashboard session"))
}

/// Forget the session `id` (logout).
pub(super) fn end(db: &mut dyn Db, id: &str) -> Result<(), StoreError> {
    db.execute(
        "DELETE FROM web_sessions WHERE id_hash = ?1",
        params![&id_hash(id)],
    )
    .map(drop)
    .map_err(at("end a dashboard session"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::db::Lite;

    #[test]
    fn sessions_are_kept_by_hash_until_they_expire_or_end() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA_V11).unwrap();
        let db: &mut dyn Db = &mut Lite(&conn);
        let s = |user: &str, csrf: &str| WebSession {
            user: user.into(),
            csrf: csrf.into(),
        };
        start(db, "id-one", &s("alice", "c1"), 100, 200).unwrap();
        start(db, "id-two", &s("bob", "c2"), 100, 150).unwrap();
        assert_eq!(get(db, "id-one", 120).unwrap(), Some(s("alice", "c1")));
        assert_eq!(get(db, "id-two", 120).unwrap(), Some(s("bob", "c2")));
        assert_eq!(get(db, "id-two", 150).unwrap(), None, "expired");
        assert_eq!(get(db, "nobody", 120).unwrap(), None);
        end(db, "id-one").unwrap();
        assert_eq!(get(db, "id-one", 120).unwrap(), None, "logged out");
        // The id itself is nowhere in the table.
        let kept: Vec<Vec<u8>> = db
            .query("SELECT id_hash FROM web_sessions", &[], |r| r.blob(0))
            .unwrap();
        assert!(kept.iter().all(|k| k.len() == 32 && k != b"id-two"));
        // A new session forgets the expired ones.
        start(db, "id-three", &s("carol", "c3"), 160, 300).unwrap();
        let n = db
            .query_opt("SELECT COUNT(*) FROM web_sessions", &[], |r| r.int(0))
            .unwrap();
        assert_eq!(n, Some(1));
    }
}
