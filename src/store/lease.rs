//! The leader lease on PostgreSQL (issue 17, "Leader and follower"): which of the cprwatch
//! instances sharing one database does the work that must happen once, and the fence that keeps
//! a former leader from writing after it lost the lease.
//!
//! The lease is one row of `leases` (name `leader`): its holder, its **epoch** and when it
//! expires. An instance takes it when nobody holds it or the holder's expiry has passed, and
//! renews it while it holds it, in one statement each ([`acquire_or_renew`]), so two instances
//! racing for it cannot both win: the row lock the upsert takes orders them.
//!
//! **Only the server's clock counts.** Expiry is `expires_at` against the server's `now()`,
//! set from the server's `now()` plus the TTL; no host's clock is read, so two hosts whose
//! clocks disagree still agree on who leads.
//!
//! **The epoch is the fencing token.** It grows by one each time the holder changes and never
//! for a renewal (nor when the holder takes back a lease nobody took from it). A store given a
//! fence ([`Fence`], its instance and the epoch it holds) checks it in the same transaction as
//! each write ([`check_fence`]): the row must still name that holder and epoch and not have
//! expired. The check locks the row `FOR SHARE` until the write commits, so a take-over (which
//! updates the row) waits for a write that passed the check, and a write that comes after a
//! take-over fails it: a leader paused past its lease (a long GC, SIGSTOP, a VM migrated)
//! cannot commit when it wakes. The check also sets the transaction's
//! `idle_in_transaction_session_timeout` to the lease's TTL, so a leader paused in the middle of
//! a write does not hold that row lock, and so the lease, for longer than a lease lasts.

use super::StoreError;
use super::postgres_connect;
use postgres::{GenericClient, Transaction};
use std::fmt;
use std::time::Duration;
use time::OffsetDateTime;

/// Version 2 of the PostgreSQL schema: the leases. A lease row is never deleted; its `epoch`
/// only grows.
pub(super) const SCHEMA_V2_LEASES: &str = r#"
CREATE TABLE leases (
    name       TEXT COLLATE "C" PRIMARY KEY,
    holder     TEXT NOT NULL,
    epoch      BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
"#;

/// The one lease cprwatch uses: the leader's.
pub(super) const LEADER: &str = "leader";

/// The longest instance id: it names the holder in `leases`, in `/metrics` labels and in the
/// per-holder commit token's key, so it is kept short.
pub const INSTANCE_ID_MAX: usize = 64;

/// The name of one cprwatch instance sharing a database (the host name, say): who holds the
/// lease. 1 to [`INSTANCE_ID_MAX`] printable ASCII characters, no space, so it can appear in a
/// metric label, a log line and a `meta` key as it is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId(String);

/// Why a string is not an [`InstanceId`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{problem}: an instance id is 1 to {INSTANCE_ID_MAX} printable ASCII characters without \
     spaces (letters, digits, punctuation), e.g. the host name — choose another"
)]
pub struct BadInstanceId {
    problem: String,
}

impl InstanceId {
    /// `id` as an instance id, or why it cannot be one.
    pub fn new(id: &str) -> Result<InstanceId, BadInstanceId> {
        let bad = |problem: String| Err(BadInstanceId { problem });
        if id.is_empty() {
            return bad("the instance id is empty".into());
        }
        if id.len() > INSTANCE_ID_MAX {
            return bad(format!(
                "the instance id is {} characters long",
                id.chars().count()
            ));
        }
        if let Some(c) = id.chars().find(|c| !c.is_ascii_graphic()) {
            // The character's code, not the character: it may be a control character.
            return bad(format!(
                "the instance id contains U+{:04X}, which is not printable ASCII",
                u32::from(c)
            ));
        }
        Ok(InstanceId(id.to_string()))
    }

    /// A holder as the `leases` row names it: taken as it is (another version of cprwatch, or
    /// a person, may have written it).
    pub(super) fn from_stored(s: String) -> InstanceId {
        InstanceId(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for InstanceId {
    type Err = BadInstanceId;
    fn from_str(s: &str) -> Result<InstanceId, BadInstanceId> {
        InstanceId::new(s)
    }
}

/// The lease as its holder got it from [`acquire_or_renew`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub holder: InstanceId,
    /// The fencing token: the same for every renewal, one more after each change of holder.
    pub epoch: i64,
    /// When it expires, by the server's clock.
    pub expires_at: OffsetDateTime,
    /// The TTL it was taken or renewed for: how long the server counts from its `now()`.
    pub ttl: Duration,
}

impl Lease {
    /// The fence a store of this holder writes under ([`super::PostgresStore::fence`]).
    pub fn fence(&self) -> Fence {
        Fence {
            holder: self.holder.clone(),
            epoch: self.epoch,
            ttl: self.ttl,
        }
    }
}

/// Who holds the lease (or held it last), for `status` and `/metrics`: what a follower sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderInfo {
    pub holder: InstanceId,
    pub epoch: i64,
    /// By the server's clock.
    pub expires_at: OffsetDateTime,
    /// How long it still runs by the server's clock when it was read; zero once it expired.
    pub remaining: Duration,
    /// Whether it had not expired when it was read: `false` means nobody leads (the last
    /// holder stopped, or stopped renewing) and the next instance to ask takes it.
    pub live: bool,
}

/// What a store writes under: every write checks, in its transaction, that `holder` still holds
/// the lease at `epoch` ([`check_fence`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub holder: InstanceId,
    pub epoch: i64,
    /// The lease's TTL: the longest a write may sit idle in its transaction (module doc).
    pub ttl: Duration,
}

fn pg(action: &'static str) -> impl FnOnce(postgres::Error) -> StoreError {
    move |source| StoreError::Postgres {
        action,
        detail: postgres_connect::describe(&source),
        source,
    }
}

/// A duration in whole microseconds, as the server counts intervals; at least one.
fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX).max(1)
}

/// Microseconds since the Unix epoch (as the statements below select them) as a time.
fn from_micros(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn duration_of_micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

/// The columns every lease statement returns: holder, epoch, expiry (µs since the epoch),
/// remaining (µs, by the server's clock), live.
const LEASE_COLUMNS: &str = "holder, epoch, \
     (extract(epoch FROM expires_at) * 1000000)::bigint, \
     greatest((extract(epoch FROM expires_at - now()) * 1000000)::bigint, 0), \
     expires_at > now()";

fn leader_info(r: &postgres::Row) -> LeaderInfo {
    LeaderInfo {
        holder: InstanceId::from_stored(r.get(0)),
        epoch: r.get(1),
        expires_at: from_micros(r.get(2)),
        remaining: duration_of_micros(r.get(3)),
        live: r.get(4),
    }
}

/// Take the lease for `instance` if nobody holds it or its holder's expiry has passed, or renew
/// it if `instance` holds it (even just expired, as long as nobody took it meanwhile): one
/// statement, on the server's clock. `None` when another instance holds it; [`leader`] says
/// who.
pub(super) fn acquire_or_renew(
    client: &mut impl GenericClient,
    instance: &InstanceId,
    ttl: Duration,
) -> Result<Option<Lease>, StoreError> {
    const ACTION: &str = "take or renew the leader lease";
    let row = client
        .query_opt(
            &format!(
                "INSERT INTO leases AS l (name, holder, epoch, expires_at) \
                 VALUES ($1, $2, 1, now() + $3::bigint * interval '1 microsecond') \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                 epoch = l.epoch + CASE WHEN l.holder = excluded.holder THEN 0 ELSE 1 END, \
                 expires_at = excluded.expires_at \
                 WHERE l.holder = excluded.holder OR l.expires_at < now() \
                 RETURNING {LEASE_COLUMNS}"
            ),
            &[&LEADER, &instance.as_str(), &micros(ttl)],
        )
        .map_err(pg(ACTION))?;
    Ok(row.map(|r| {
        let info = leader_info(&r);
        Lease {
            holder: info.holder,
            epoch: info.epoch,
            expires_at: info.expires_at,
            ttl,
        }
    }))
}

/// Who holds the lease, or held it last; `None` when no instance ever took it.
pub(super) fn leader(client: &mut impl GenericClient) -> Result<Option<LeaderInfo>, StoreError> {
    Ok(client
        .query_opt(
            &format!("SELECT {LEASE_COLUMNS} FROM leases WHERE name = $1"),
            &[&LEADER],
        )
        .map_err(pg("read the leader lease"))?
        .as_ref()
        .map(leader_info))
}

/// Hand the lease over at once (a clean shutdown): it expires now, so the next instance to ask
/// takes it without waiting for the TTL. Only if `fence` still holds it; whether it did.
pub(super) fn release(client: &mut impl GenericClient, fence: &Fence) -> Result<bool, StoreError> {
    Ok(client
        .execute(
            "UPDATE leases SET expires_at = now() \
             WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > now()",
            &[&LEADER, &fence.holder.as_str(), &fence.epoch],
        )
        .map_err(pg("release the leader lease"))?
        == 1)
}

/// In a write's transaction, before it writes: refuse with [`StoreError::NotLeader`] unless
/// `fence` still holds the lease (same holder and epoch, not expired), and keep it held until
/// the transaction ends (module doc). No fence: a store that is the only writer, nothing to
/// check. On an error the caller drops the transaction, which rolls it back.
pub(super) fn check_fence(
    tx: &mut Transaction<'_>,
    fence: Option<&Fence>,
) -> Result<(), StoreError> {
    const ACTION: &str = "check the leader lease";
    let Some(fence) = fence else {
        return Ok(());
    };
    tx.batch_execute(&idle_limit(Some(fence)))
        .map_err(pg(ACTION))?;
    // statement_timestamp(), not now(): the transaction may have waited for the events lock,
    // and the lease must be live when the write goes ahead, not when it started waiting.
    let held = tx
        .query_opt(
            "SELECT 1 FROM leases WHERE name = $1 AND holder = $2 AND epoch = $3 \
             AND expires_at > statement_timestamp() FOR SHARE",
            &[&LEADER, &fence.holder.as_str(), &fence.epoch],
        )
        .map_err(pg(ACTION))?
        .is_some();
    if held {
        return Ok(());
    }
    let now = leader(tx)?;
    Err(StoreError::NotLeader {
        holder: fence.holder.to_string(),
        epoch: fence.epoch,
        leader: match now {
            Some(l) if l.live => format!("{} holds it (epoch {})", l.holder, l.epoch),
            Some(l) if l.holder == fence.holder && l.epoch == fence.epoch => {
                "it expired and nobody has taken it yet".into()
            }
            Some(l) => format!(
                "{} held it last (epoch {}), and it expired",
                l.holder, l.epoch
            ),
            None => "nobody has taken it".into(),
        },
    })
}

/// The statement (with its `;`) that ends this session should it sit idle in the current
/// transaction for longer than the fence's TTL (module doc); nothing without a fence. A write
/// that takes locks before [`check_fence`] sends it in the same batch as the first of them, so
/// there is no moment at which a paused leader holds a lock without the limit.
pub(super) fn idle_limit(fence: Option<&Fence>) -> String {
    match fence {
        // Whole milliseconds, at least one (0 would turn the limit off); a number, no quoting.
        Some(f) => format!(
            "SET LOCAL idle_in_transaction_session_timeout = {}; ",
            f.ttl.as_millis().clamp(1, i32::MAX as u128)
        ),
        None => String::new(),
    }
}

/// The `meta` key of the commit token (`postgres` module doc): one per holder when fenced, so
/// a writer that lost its connection during `COMMIT` finds its own token, not that of the
/// instance that wrote after it; the single writer's key otherwise.
pub(super) fn commit_token_key(fence: Option<&Fence>) -> String {
    match fence {
        Some(f) => format!("last_commit:{}", f.holder),
        None => "last_commit".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_are_short_printable_ascii() {
        for ok in [
            "a",
            "cprwatch-1.example-ca.test",
            "host_2:9090",
            &"x".repeat(64),
        ] {
            assert_eq!(InstanceId::new(ok).unwrap().as_str(), ok);
        }
        for (bad, says) in [
            ("", "empty"),
            ("two words", "U+0020"),
            ("tab\there", "U+0009"),
            ("zürich", "U+00FC"),
            ("nl\n", "U+000A"),
            (&"x".repeat(65), "65 characters"),
        ] {
            let err = InstanceId::new(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad:?}: {err}");
            assert!(err.contains("choose another"), "{err}");
            assert!(!err.contains('\n') && !err.contains('\t'), "{err}");
        }
        assert_eq!("a-1".parse::<InstanceId>().unwrap().to_string(), "a-1");
    }

    #[test]
    fn the_commit_token_is_kept_per_holder_when_fenced() {
        let fence = |id: &str| Fence {
            holder: InstanceId::new(id).unwrap(),
            epoch: 3,
            ttl: Duration::from_secs(15),
        };
        assert_eq!(commit_token_key(None), "last_commit");
        assert_eq!(commit_token_key(Some(&fence("a"))), "last_commit:a");
        assert_ne!(
            commit_token_key(Some(&fence("a"))),
            commit_token_key(Some(&fence("b")))
        );
    }

    #[test]
    fn durations_go_to_the_server_in_microseconds_and_never_as_zero() {
        assert_eq!(micros(Duration::from_secs(15)), 15_000_000);
        assert_eq!(micros(Duration::ZERO), 1);
        assert_eq!(micros(Duration::MAX), i64::MAX);
        assert_eq!(
            from_micros(1_700_000_000_123_456),
            OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_000).unwrap()
        );
        assert_eq!(duration_of_micros(-5), Duration::ZERO);
    }

    #[test]
    fn the_idle_limit_is_the_ttl_and_only_for_a_fenced_write() {
        let fence = |ttl| Fence {
            holder: InstanceId::new("a").unwrap(),
            epoch: 1,
            ttl,
        };
        assert_eq!(idle_limit(None), "");
        assert_eq!(
            idle_limit(Some(&fence(Duration::from_secs(15)))),
            "SET LOCAL idle_in_transaction_session_timeout = 15000; "
        );
        // Never 0, which would mean no limit at all.
        assert!(idle_limit(Some(&fence(Duration::from_micros(10)))).ends_with("= 1; "));
        assert!(idle_limit(Some(&fence(Duration::MAX))).ends_with(&format!("= {}; ", i32::MAX)));
    }
}
