//! Signed checkpoints of the event log (schema 9): evidence that lives beside the chain.
//!
//! Why beside the log and not in it: the hash chain proves that no event was changed in the
//! middle, but nothing in the log can prove that its end is where it was — delete the last N
//! events and what is left is still a valid chain. A checkpoint is a signature, by a key the
//! store does not hold, over the head of the log at some moment (`seq`, its hash, the time, the
//! key's id); `verify` holds every stored checkpoint against the log, so a log cut back, or
//! rewritten and hashed afresh, no longer matches a statement that cannot be made again
//! without the private key. Checkpoints are not events: an event would be inside the very log
//! it vouches for (removed with the tail it covers), and it would change the projection. They
//! are mailed each day too (`desk/checkpoints.rs`), a copy outside the store.
//!
//! The table only keeps what it is given: signing and checking are in [`crate::evidence`].

use super::db::{Db, at, params};

use super::StoreError;

/// Schema 9: the signed checkpoints. `IF NOT EXISTS` because tests fake older versions over
/// fresh files, which already have it.
pub(super) const SCHEMA_V9: &str = "
CREATE TABLE IF NOT EXISTS signed_checkpoints (
    id        INTEGER PRIMARY KEY,
    seq       INTEGER NOT NULL,
    head_hash TEXT NOT NULL,
    at        TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    signature TEXT NOT NULL
);
";

/// One stored checkpoint as the table keeps it, unchecked: `verify` checks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The row's id (0 before it is stored).
    pub id: i64,
    /// The last event covered (0: the log was empty).
    pub seq: u64,
    /// That event's chain hash, lowercase hex (the genesis value for seq 0).
    pub head_hash: String,
    /// When it was signed, RFC 3339 UTC, as signed.
    pub at: String,
    /// Which key signed it ([`crate::evidence::key_id`]).
    pub key_id: String,
    /// The Ed25519 signature over [`crate::evidence::statement`], lowercase hex.
    pub signature: String,
}

pub(super) fn insert(db: &mut dyn Db, c: &SignedCheckpoint) -> Result<i64, StoreError> {
    db.query_opt(
        "INSERT INTO signed_checkpoints (seq, head_hash, at, key_id, signature) \
         VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        params![
            i64::try_from(c.seq).unwrap_or(i64::MAX),
            &c.head_hash,
            &c.at,
            &c.key_id,
            &c.signature
        ],
        |r| r.int(0),
    )
    .map_err(at("store a signed checkpoint"))?
    .ok_or_else(|| StoreError::Value {
        action: "store a signed checkpoint",
        detail: "the insert returned no id".into(),
    })
}

/// Every checkpoint, in the order they were stored.
pub(super) fn all(db: &mut dyn Db) -> Result<Vec<SignedCheckpoint>, StoreError> {
    db.query(
        "SELECT id, seq, head_hash, at, key_id, signature FROM signed_checkpoints ORDER BY id",
        &[],
        |r| {
            Ok(SignedCheckpoint {
                id: r.int(0)?,
                seq: u64::try_from(r.int(1)?).unwrap_or(u64::MAX),
                head_hash: r.text(2)?,
                at: r.text(3)?,
                key_id: r.text(4)?,
                signature: r.text(5)?,
            })
        },
    )
    .map_err(at("read the signed checkpoints"))
}
