//! The desk: one store and the engine over it. Every command goes through here.
//!
//! This is where the edges meet the core: [`crate::pipeline`] reads and prepares messages,
//! [`Desk::record`] has the engine turn them into events and the store commit them
//! atomically. If a commit fails the engine is rebuilt from the store, so memory never runs
//! ahead of what is durable.

mod checkpoints;
mod outbox;
mod revocation;
mod triage;

use crate::store::Tables;
use std::collections::HashSet;
use std::path::PathBuf;

pub(crate) use outbox::{CanarySent, Delivery, Outbound};
pub(crate) use revocation::{CheckJob, CheckOutcome};
pub use triage::Action;

use thiserror::Error;

use crate::config::Config;
use crate::deciding::cases::{Emit, Projection, Projector, Settings};
use crate::deciding::derive::{Engine, LogBacking, ReceiptKey, StoredStart};
use crate::deciding::tables::Delta;
use crate::domain::event::{Envelope, Event};
use crate::domain::ids::{CaseId, ClockId};
use crate::domain::model::Timestamp;
use crate::pipeline::{PrepareError, Prepared};
use crate::reading::facts::Policy;
use crate::reading::rules::{RuleSet, RulesError};
use crate::reading::staff::StaffPolicy;
use crate::source::SourceError;
use crate::store::{self, Store, StoreError};

#[derive(Debug, Error)]
pub enum DeskError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Rules(#[from] RulesError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(
        "event #{seq} in the store cannot be read ({problem}); the store may be from a newer cprwatch or damaged — run `cprwatch verify`"
    )]
    BadEvent { seq: u64, problem: String },
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    #[error(transparent)]
    Mailer(#[from] crate::notify::smtp::MailerError),
    #[error("cannot write a mail to send: {0}")]
    Compose(String),
    #[error("{0}")]
    Secret(String),
    #[error("{0}")]
    Action(String),
    #[error(transparent)]
    Key(#[from] crate::evidence::KeyError),
    /// A checkpoint not signed, saying why and what to do.
    #[error("{0}")]
    Evidence(String),
    #[error(transparent)]
    Web(#[from] crate::web::WebError),
    #[error(
        "the store could not be read while deriving cases and clocks, or a stored row of theirs is damaged — run `cprwatch verify`, then `cprwatch rebuild`"
    )]
    Unreadable,
}

/// The configured store: the SQLite file, or the PostgreSQL database (`[store] url`), its
/// password read now. Call it from a plain or blocking thread: the PostgreSQL client blocks.
pub fn open_store(config: &Config) -> Result<Box<dyn Tables>, DeskError> {
    open_store_as(config, None)
}

/// [`open_store`] for the leader of instances sharing a PostgreSQL store: every write it makes
/// is checked against `fence` ([`store::Fence`]), so it writes nothing once it lost the lease.
pub(crate) fn open_store_as(
    config: &Config,
    fence: Option<store::Fence>,
) -> Result<Box<dyn Tables>, DeskError> {
    match &config.store.postgres {
        None => Ok(Box::new(store::open_sqlite(&config.store.path)?)),
        Some(pg) => {
            let password = pg
                .password
                .read()
                .map_err(|e| DeskError::Secret(format!("[store] password: {e}")))?;
            let mut store = store::PostgresStore::open(&pg.url, &password, pg.ca_file.as_deref())?;
            store.fence(fence);
            Ok(Box::new(store))
        }
    }
}

/// The policy a configuration sets: who is staff, which rules classify reports.
pub(crate) fn policy(config: &Config) -> Result<Policy, DeskError> {
    let rules = match &config.rules.dir {
        Some(dir) => crate::config::load_rules_dir(dir)?,
        None => RuleSet::shipped(),
    };
    Ok(Policy {
        staff: StaffPolicy {
            staff_domains: config.desk.staff_domains.clone(),
            staff_addresses: config.desk.staff_addresses.clone(),
            trusted_authserv_ids: config.desk.trusted_authserv_ids.clone(),
        },
        rules,
        limits: config.limits.clone(),
        canary_keys: config
            .canary
            .iter()
            .map(|c| {
                c.secret
                    .read()
                    .map(String::into_bytes)
                    .map_err(|e| DeskError::Secret(format!("[[canary]] to {:?}: {e}", c.to)))
            })
            .collect::<Result<_, _>>()?,
    })
}

pub(crate) fn settings(config: &Config) -> Settings {
    Settings {
        thread_window: config.clock.thread_window,
        require_verified: config.revocation.require_verified,
    }
}

/// The most derived events one transaction of [`Desk::record`] holds.
const TICK_COMMIT_EVENTS: usize = 10_000;

/// When [`Desk::record`] derives cases and clocks from what it recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Derive {
    /// At once: the service, which reports every change as it happens.
    Now,
    /// At a later call: a bulk load, where deriving once after many batches beats deriving
    /// after every batch when folders arrive out of time order.
    Later,
}

/// What [`Desk::record`] committed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recorded {
    pub new_messages: u64,
    pub events: u64,
}

pub struct Desk {
    /// Dropped before the store: its read connections must close before the store's own, so
    /// that the last to close (the writer) checkpoints and removes the write-ahead log.
    engine: Engine,
    store: Box<dyn Store>,
    policy: Policy,
    settings: Settings,
    /// What to send, with `[smtp]`; `None`: nothing is evaluated for alerts or queued.
    outbound: Option<Outbound>,
    /// Whether alerts were evaluated for every open clock yet (the first evaluation does).
    swept: bool,
    /// Certificates whose answers were recorded since alerts were last evaluated: what the
    /// alerts look at besides the open clocks (a disagreement may first show on a clock that
    /// has closed). Kept only with `[smtp]`, where the evaluation empties it.
    rechecked: std::collections::BTreeSet<String>,
    /// How long a `CPR-Revoked` claim may go unverified (`[revocation] claim_grace`).
    claim_grace: time::Duration,
}

impl Desk {
    /// The desk over the configured SQLite store, its cases and clocks tables brought up to
    /// date first (built from the log after an upgrade or a change of settings).
    pub fn open(config: &Config) -> Result<Desk, DeskError> {
        Desk::open_as(config, None)
    }

    /// The desk of the leader holding `fence` ([`open_store_as`]).
    pub(crate) fn open_as(config: &Config, fence: Option<store::Fence>) -> Result<Desk, DeskError> {
        let mut store = open_store_as(config, fence)?;
        let (policy, settings) = (policy(config)?, settings(config));
        ensure_tables(store.as_mut(), &settings)?;
        let engine = stored_engine(store.as_ref(), &settings)?;
        Ok(Desk {
            store,
            engine,
            policy,
            settings,
            outbound: Outbound::of(config)?,
            swept: false,
            rechecked: Default::default(),
            claim_grace: config.revocation.claim_grace,
        })
    }

    /// A desk that keeps nothing: for `replay` and tests.
    pub fn in_memory(config: &Config) -> Result<Desk, DeskError> {
        Desk::with_store(Box::new(store::memory()), policy(config)?, settings(config))
    }

    pub(crate) fn with_store(
        store: Box<dyn Store>,
        policy: Policy,
        settings: Settings,
    ) -> Result<Desk, DeskError> {
        let engine = make_engine(store.as_ref(), &settings)?;
        Ok(Desk {
            store,
            engine,
            policy,
            settings,
            outbound: None,
            swept: false,
            rechecked: Default::default(),
            claim_grace: crate::config::RevocationConfig::default().claim_grace,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The pending clocks due within `span` of `now`, each with a case that lists it.
    pub(crate) fn due_within(
        &mut self,
        now: Timestamp,
        span: time::Duration,
    ) -> Result<Vec<(crate::deciding::clock::Clock, Option<CaseId>)>, DeskError> {
        // Only the service asks, and it runs over SQLite; a memory store (a replay) has no
        // desk to warn.
        let Some(store) = self.store.tables() else {
            return Ok(Vec::new());
        };
        Ok(store
            .clocks_due(now, now + span)?
            .into_iter()
            .filter(|(c, _)| c.status(now).state == crate::domain::event::ClockState::Pending)
            .map(|(c, case)| (c, case.map(|id| CaseId::from_stored(&id))))
            .collect())
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The policy messages are prepared under (by the pipeline's preparer).
    pub(crate) fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Record a watched folder's health (not part of the event log).
    pub(crate) fn set_folder_state(&mut self, state: &store::FolderState) -> Result<(), DeskError> {
        Ok(self.store.set_folder_state(state)?)
    }

    /// The one way messages enter the store ([`crate::pipeline`] prepares them): record
    /// `messages` (their bytes, positions and `message_received` events) and the IMAP
    /// `checkpoints` they reach in one transaction, so a checkpoint never gets ahead of the
    /// mail read up to it; then, with [`Derive::Now`], derive cases and clocks at `now` and
    /// commit what changed. With `keep`, the events committed are added to it (the service
    /// logs them); else only counted.
    ///
    /// The derived events are committed in pieces of [`TICK_COMMIT_EVENTS`] as the engine
    /// finds them, so a mass report's 200 000 events are not all encoded and chained in memory
    /// at once. A crash between pieces, or between the messages and what they change, loses
    /// nothing: the engine restored from the log derives the rest again on its first tick, as
    /// after any crash.
    pub(crate) fn record(
        &mut self,
        messages: Vec<Prepared>,
        checkpoints: Vec<store::Checkpoint>,
        now: Timestamp,
        derive: Derive,
        mut keep: Option<&mut Vec<Envelope>>,
    ) -> Result<Recorded, DeskError> {
        let before = self.engine.message_count();
        let mut first = store::Batch {
            checkpoints,
            ..store::Batch::default()
        };
        let mut facts = Vec::new();
        // The clocks staff claimed revoked in this batch: their checks are due at once.
        let mut claimed = Vec::new();
        let mut taken: HashSet<String> = HashSet::new();
        for mut p in messages {
            let hash = p.message.content_hash().to_string();
            if let Some(pos) = &p.meta.position {
                first.positions.push((pos.to_string(), hash.clone()));
            }
            if !taken.insert(hash.clone()) || self.store.has_message(&hash)? {
                continue;
            }
            // The pipeline skips facts of messages it saw before, which the engine usually
            // knows; when it does not (a batch read again after a failed commit), here.
            let f = p.facts.take().unwrap_or_else(|| {
                crate::reading::facts::message_facts(
                    p.message.raw(),
                    &hash,
                    &p.meta,
                    &self.policy,
                    now,
                )
            });
            first.messages.push(p.message);
            if let Some(change) = outbox::canary_seen(&f) {
                first.outbox.push(change);
            }
            if f.is_staff() {
                claimed.extend(f.commands.iter().filter_map(|c| match c {
                    crate::domain::model::Command::Revoked { target, .. } => {
                        Some(ClockId::revocation(target))
                    }
                    _ => None,
                }));
            }
            facts.push(f);
        }
        let received = self.engine.receive(facts, now);
        let new_messages = (self.engine.message_count() - before) as u64;
        first.events = received.iter().map(Envelope::encode).collect();
        first.event_index = received.iter().map(|e| index_of(&e.event)).collect();
        if let Some(k) = keep.as_deref_mut() {
            k.extend(received.iter().cloned());
        }
        let events = if derive == Derive::Now {
            // The messages commit with the first piece of what they change: for an ordinary
            // batch, one transaction holds the mail, its events and its cases and clocks.
            let mut touched = outbox::Touched::default();
            let mut n = self.derive(now, Some(first), keep.as_deref_mut(), &mut touched)?;
            self.claims_due(&claimed, now)?;
            // Then the alerts they and the moment owe, in a transaction of their own: a crash
            // in between loses nothing, since the first evaluation after a start looks at
            // every open clock.
            let queued = self.evaluate_alerts(now, touched)?;
            n += queued.len() as u64;
            if let Some(k) = keep {
                k.extend(queued);
            }
            n
        } else {
            self.commit(first)?;
            received.len() as u64
        };
        Ok(Recorded {
            new_messages,
            events,
        })
    }

    /// Re-evaluate clocks at `now` (a [`Desk::record`] of nothing); commit and return what
    /// changed.
    pub fn tick(&mut self, now: Timestamp) -> Result<Vec<Envelope>, DeskError> {
        let mut kept = Vec::new();
        self.record(Vec::new(), Vec::new(), now, Derive::Now, Some(&mut kept))?;
        Ok(kept)
    }

    /// Derive cases and clocks at `now`, committing in pieces, the first with `first` (what
    /// was received); returns how many events were committed.
    fn derive(
        &mut self,
        now: Timestamp,
        mut first: Option<store::Batch>,
        mut keep: Option<&mut Vec<Envelope>>,
        touched: &mut outbox::Touched,
    ) -> Result<u64, DeskError> {
        let store = &mut self.store;
        let mut committed_events = 0u64;
        let derived =
            self.engine
                .tick_in_pieces(now, TICK_COMMIT_EVENTS, |piece: Vec<Envelope>, delta| {
                    let mut sb = first.take().unwrap_or_default();
                    sb.events.extend(piece.iter().map(Envelope::encode));
                    sb.event_index
                        .extend(piece.iter().map(|e| index_of(&e.event)));
                    sb.tables = delta.unwrap_or_default();
                    committed_events += sb.events.len() as u64;
                    store.commit(sb)?;
                    for e in &piece {
                        touched.note(&e.event);
                    }
                    if let Some(k) = keep.as_deref_mut() {
                        k.extend(piece);
                    }
                    Ok::<(), StoreError>(())
                });
        let done = derived.and_then(|_| match first.take() {
            // Nothing was derived: what was received commits alone.
            Some(sb) if !sb.is_empty() => {
                committed_events += sb.events.len() as u64;
                self.store.commit(sb).map(drop)
            }
            _ => Ok(()),
        });
        match done {
            Ok(()) => Ok(committed_events),
            Err(e) => {
                // Memory must not run ahead of the store: forget what was not committed.
                self.engine = make_engine(self.store.as_ref(), &self.settings)?;
                Err(e.into())
            }
        }
    }

    fn commit(&mut self, batch: store::Batch) -> Result<(), DeskError> {
        if batch.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.store.commit(batch) {
            // Memory must not run ahead of the store: forget what was not committed.
            self.engine = make_engine(self.store.as_ref(), &self.settings)?;
            return Err(e.into());
        }
        Ok(())
    }

    /// Cases and clocks as they were at `at`.
    pub fn projection_at(&self, at: Timestamp) -> Projection {
        match self.store.tables() {
            Some(store) => project_from_store(store, &self.settings, at).unwrap_or_default(),
            None => self.engine.project_at(at),
        }
    }

    /// The whole log, decoded, with sequence numbers.
    pub fn events(&self) -> Result<Vec<(u64, Envelope)>, DeskError> {
        decode_all(self.store.as_ref())
    }
}

/// The format of the tables and of the log's index that this version writes. A version that
/// changes either (what a row holds, what an event is indexed by) changes this, and its first
/// use derives both afresh.
const TABLES_FORMAT: &str = "tables-5";

/// What the tables are derived with: their format and the settings that shape them. Tables
/// built with anything else are rebuilt.
pub(crate) fn tables_built_with(settings: &Settings) -> String {
    format!(
        "{TABLES_FORMAT} thread_window={}s revocation={}",
        settings.thread_window.whole_seconds(),
        if settings.require_verified {
            "verified"
        } else {
            "claimed"
        }
    )
}

/// Whether the log's index (what each event names, messages in receipt order, case numbers,
/// the log's account) is in this version's format, going by what the tables were last built
/// with. The index depends on the events alone, not on the settings, and every commit writes
/// it with its events; a derivation that never finished left no `built_with`, so the index
/// is made again then too.
fn index_is_current(built_with: Option<&str>) -> bool {
    built_with.and_then(|b| b.split(' ').next()) == Some(TABLES_FORMAT)
}

/// Bring the store's tables up to date with these settings: a new store is marked built with
/// them; tables never built, or built by another version or with other settings, are derived
/// afresh. Returns whether it derived them.
pub fn ensure_tables(
    store: &mut dyn store::Tables,
    settings: &Settings,
) -> Result<bool, DeskError> {
    let st = store.tables_state()?;
    let wanted = tables_built_with(settings);
    if st.head == 0 && st.built_with.is_none() {
        store.set_tables_built_with(&wanted)?;
        return Ok(false);
    }
    // Built with these settings: they hold the log's projection (perhaps a tick behind, which
    // the next tick catches up).
    if st.built_with.as_deref() == Some(wanted.as_str()) {
        return Ok(false);
    }
    rebuild_tables(store, settings, Reindex::IfStale)?;
    Ok(true)
}

/// Whether a rebuild indexes the log again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reindex {
    /// Only when the index is not in this version's format (see [`index_is_current`]): a
    /// change of rules or settings leaves what each event names as it was.
    IfStale,
    /// Always: `verify` found the index differs from the log.
    Always,
}

/// Derive the tables afresh, in place: forget them, index the log again if `reindex` says so,
/// then derive from the log.
pub(crate) fn rebuild_tables(
    store: &mut dyn store::Tables,
    settings: &Settings,
    reindex: Reindex,
) -> Result<RebuildSummary, DeskError> {
    let st = store.tables_state()?;
    let reindex = reindex == Reindex::Always || !index_is_current(st.built_with.as_deref());
    store.reset_tables(reindex)?;
    let mut summary = RebuildSummary {
        reindexed: reindex,
        ..RebuildSummary::default()
    };
    // The clocks' states the log records were compared up to its last tick, the moment of its
    // last event: a first tick compares only those whose state time changed since.
    let indexed = if reindex {
        let mut end = LogEnd::default();
        loop {
            let index = index_page(&*store, &mut end)?;
            if index.is_empty() {
                break end;
            }
            store.write_tables(&Default::default(), &index, None)?;
        }
    } else {
        last_event(&*store, st.head)?
    };
    summary.events = indexed.head;
    let (log, backing) = (LogReader::of(store)?, store.backing()?);
    summary.messages = derive_from_store(log, backing, settings, DERIVE_PIECE, |delta| {
        summary.versions += delta.versions.len() as u64;
        store.write_tables(&delta, &[], None)
    })?;
    store.write_tables(
        &Delta {
            evaluated_at: indexed.last_recorded,
            ..Delta::default()
        },
        &[],
        Some((indexed.head, &tables_built_with(settings))),
    )?;
    Ok(summary)
}

/// How far the log goes: its last seq, and the latest moment an event was recorded at.
#[derive(Debug, Default)]
struct LogEnd {
    head: u64,
    last_recorded: Option<Timestamp>,
}

/// The next page of the log's index, made afresh from the events after `end`, which it moves
/// on; empty past the end of the log.
fn index_page(
    store: &dyn Store,
    end: &mut LogEnd,
) -> Result<Vec<(u64, crate::domain::event::EventIndex)>, DeskError> {
    let page = decoded_page(store, end.head + 1)?;
    if let Some((seq, env)) = page.last() {
        end.head = *seq;
        end.last_recorded = Some(env.recorded_at).max(end.last_recorded);
    }
    Ok(page
        .into_iter()
        .map(|(seq, env)| (seq, index_of(&env.event)))
        .collect())
}

/// The log's last event, without reading the rest: where a rebuild that keeps the index
/// stands.
fn last_event(store: &dyn Store, head: u64) -> Result<LogEnd, DeskError> {
    let last = decoded_page_of(store, head, 1)?;
    Ok(LogEnd {
        head,
        last_recorded: last.first().map(|(_, env)| env.recorded_at),
    })
}

/// Messages fed between two commits of a derivation from the store: what the projector holds
/// at most, beside the cases and certificates they touch.
const DERIVE_PIECE: usize = 1_000;

/// Derive every version of every case and clock from the messages `log` reads, in receipt
/// order, for tables the projector reads back through `backing` and `sink` writes. Memory holds
/// a piece of messages and what they touch, not the history: after each piece is written the
/// projector forgets what it held and reads it back when touched again. Returns how many
/// messages it fed.
fn derive_from_store(
    mut log: LogReader,
    backing: store::StoreBacking,
    settings: &Settings,
    piece: usize,
    mut sink: impl FnMut(Delta) -> Result<(), StoreError>,
) -> Result<u64, DeskError> {
    let mut p = Projector::versioned_over(Box::new(backing), settings, Emit::All);
    let mut hand_on = |p: &mut Projector| -> Result<(), DeskError> {
        p.settle();
        if p.failed() {
            return Err(DeskError::Unreadable);
        }
        sink(Delta {
            versions: p.take_versions(),
            ..Delta::default()
        })?;
        p.evict();
        p.forget_fed();
        Ok(())
    };
    let (mut since, mut fed) = (0usize, 0u64);
    let mut last: Option<Timestamp> = None;
    log.each(|facts| {
        // A piece ends between receipt times: no version is handed on half made.
        if since >= piece && last.is_some_and(|t| facts.received_at > t) {
            hand_on(&mut p)?;
            since = 0;
        }
        last = Some(facts.received_at);
        p.push(facts);
        since += 1;
        fed += 1;
        Ok(true)
    })?;
    hand_on(&mut p)?;
    Ok(fed)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TablesCheck {
    /// Equal, row for row: this many case and clock versions.
    Match { cases: u64, clocks: u64 },
    /// The tables hold the log only up to this many events before its head: a tick has not
    /// run since (the service between reading mail and deriving), so they are not compared.
    Behind(u64),
    /// The first differences, described.
    Differ(Vec<String>),
    /// The log's index (what `rebuild` derives through) differs from one made afresh: the
    /// first differences, described.
    IndexDiffers(Vec<String>),
}

/// `verify`'s second half: derive the tables afresh into a scratch file beside the store and
/// compare them with the store's, row for row. Proves that what `status` and `case` read is
/// the projection of the log.
pub(crate) fn verify_tables(
    store: &dyn Tables,
    settings: &Settings,
) -> Result<TablesCheck, DeskError> {
    verify_tables_in_pieces(store, settings, DERIVE_PIECE)
}

/// Whether the tables of the store `config` names equal a derivation from its log that hands
/// on (and forgets) what it derived every `piece` messages: for tests, which hold far fewer
/// messages than a piece.
#[doc(hidden)]
pub fn tables_equal_derivation_in_pieces(config: &Config, piece: usize) -> Result<bool, DeskError> {
    let store = open_store(config)?;
    Ok(matches!(
        verify_tables_in_pieces(store.as_ref(), &settings(config), piece)?,
        TablesCheck::Match { .. }
    ))
}

fn verify_tables_in_pieces(
    store: &dyn Tables,
    settings: &Settings,
    piece: usize,
) -> Result<TablesCheck, DeskError> {
    let st = store.tables_state()?;
    let wanted = tables_built_with(settings);
    if st.head == 0 {
        return Ok(TablesCheck::Match {
            cases: 0,
            clocks: 0,
        });
    }
    match st.built_with.as_deref() {
        Some(w) if w == wanted => {}
        other => {
            return Ok(TablesCheck::Differ(vec![format!(
                "they were built with {}, the configuration asks for {wanted}",
                other.unwrap_or("nothing (never built)")
            )]));
        }
    }
    let through = st.through.unwrap_or(0);
    if through < st.head {
        return Ok(TablesCheck::Behind(st.head - through));
    }
    let scratch = store.scratch_path();
    let remove_scratch = || {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = scratch.as_os_str().to_owned();
            p.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(p));
        }
    };
    remove_scratch();
    let (mut cases, mut clocks) = (0u64, 0u64);
    let derived = (|| -> Result<(), DeskError> {
        let mut fresh = store::open_sqlite(&scratch)?;
        // Written once and only compared: its pages need not stay in memory.
        fresh.limit_cache(SCRATCH_CACHE_KIB)?;
        // The log indexed afresh, to compare with the index the store keeps with each commit.
        let mut end = LogEnd::default();
        loop {
            let index = index_page(store, &mut end)?;
            if index.is_empty() {
                break;
            }
            fresh.write_tables(&Default::default(), &index, None)?;
        }
        let (log, backing) = (LogReader::of(store)?, store.backing_over(&scratch)?);
        derive_from_store(log, backing, settings, piece, |delta| {
            for v in &delta.versions {
                match v {
                    crate::deciding::tables::Version::Case(_) => cases += 1,
                    crate::deciding::tables::Version::Clock(_) => clocks += 1,
                    crate::deciding::tables::Version::Fold(_) => {}
                }
            }
            fresh.write_tables(&delta, &[], None)
        })?;
        Ok(())
    })();
    let compared = derived.and_then(|()| Ok(store.tables_differ_from(&scratch)?));
    remove_scratch();
    let differences = compared?;
    Ok(if !differences.index.is_empty() {
        TablesCheck::IndexDiffers(differences.index)
    } else if !differences.tables.is_empty() {
        TablesCheck::Differ(differences.tables)
    } else {
        TablesCheck::Match { cases, clocks }
    })
}

/// The page cache of `verify`'s scratch tables, in KiB (SQLite's default is 2 000).
const SCRATCH_CACHE_KIB: i64 = 500;

/// What a rebuild wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct RebuildSummary {
    /// Whether the log was indexed again, not only the tables derived.
    pub reindexed: bool,
    pub events: u64,
    pub messages: u64,
    pub versions: u64,
}

fn decode(e: store::StoredEvent) -> Result<(u64, Envelope), DeskError> {
    Envelope::decode(&e.body)
        .map(|env| (e.seq, env))
        .map_err(|err| DeskError::BadEvent {
            seq: e.seq,
            problem: err.to_string(),
        })
}

fn decode_all(store: &dyn Store) -> Result<Vec<(u64, Envelope)>, DeskError> {
    store.events()?.into_iter().map(decode).collect()
}

/// Events read a page at a time when the whole log is read (a restart, `verify`, `rebuild`):
/// it is never held whole, and the caller may write to the store between pages.
const LOG_PAGE: usize = 4096;

/// Messages' facts read a page at a time when a derivation streams the log: as many as it
/// feeds between commits ([`DERIVE_PIECE`]). A larger page is memory that grows nothing but
/// the peak, beside what the derivation holds (4 096 kept `verify` 6 MB higher at 100 000
/// messages).
const FACTS_PAGE: usize = 1_000;

/// One page of the log from seq `from` on, decoded; empty past the end.
fn decoded_page(store: &dyn Store, from: u64) -> Result<Vec<(u64, Envelope)>, DeskError> {
    decoded_page_of(store, from, LOG_PAGE)
}

/// Up to `limit` events of the log from seq `from` on, decoded.
fn decoded_page_of(
    store: &dyn Store,
    from: u64,
    limit: usize,
) -> Result<Vec<(u64, Envelope)>, DeskError> {
    store
        .events_from(from, limit)?
        .into_iter()
        .map(decode)
        .collect()
}

/// What the store indexes an event by, with the rows it sets in the log's account.
fn index_of(e: &Event) -> crate::domain::event::EventIndex {
    let mut ix = e.index();
    ix.recorded = crate::deciding::recorded::rows(e)
        .into_iter()
        .map(|(space, key, value)| (space.code(), key, value))
        .collect();
    ix
}

/// The engine for a store: over it for SQLite, holding the log for the memory store.
fn make_engine(store: &dyn Store, settings: &Settings) -> Result<Engine, DeskError> {
    match store.tables() {
        Some(s) => stored_engine(s, settings),
        None => restore_engine(store, settings),
    }
}

/// The engine over a SQLite store, where its derivation stands: the last message derived, and
/// if the last derivation did not finish (the tables are behind the log), the receipt time to
/// derive again from.
pub(crate) fn stored_engine(
    store: &dyn store::Tables,
    settings: &Settings,
) -> Result<Engine, DeskError> {
    let (last_fed, messages, evaluated) = store.derivation_state()?;
    let st = store.tables_state()?;
    let mut rewind_from: Option<Timestamp> = None;
    let through = st.through.unwrap_or(0);
    if through < st.head {
        let mut next = through + 1;
        loop {
            let page = decoded_page(store, next)?;
            let Some(last) = page.last().map(|(seq, _)| *seq) else {
                break;
            };
            for (_, env) in page {
                if let Event::MessageReceived { facts } = env.event {
                    rewind_from =
                        Some(rewind_from.map_or(facts.received_at, |r| r.min(facts.received_at)));
                }
            }
            next = last + 1;
        }
    }
    Ok(Engine::stored(
        settings.clone(),
        Box::new(store.backing()?),
        Box::new(store.backing()?),
        Box::new(LogReader::of(store)?),
        StoredStart {
            last_fed,
            rewind_from,
            evaluated_at: evaluated
                .and_then(|n| time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).ok()),
            messages: usize::try_from(messages).unwrap_or(usize::MAX),
        },
    ))
}

/// Reads of the log through a store reader of its own: the engine's, and the messages in
/// receipt order for a derivation.
struct LogReader {
    reader: store::StoreBacking,
    /// An event the receipt index names that is not the `message_received` it says: its seq,
    /// and what is wrong.
    bad: Option<(u64, String)>,
}

impl LogReader {
    fn of(store: &dyn store::Tables) -> Result<LogReader, DeskError> {
        Ok(LogReader {
            reader: store.backing()?,
            bad: None,
        })
    }

    /// Hand every message received, in receipt order, to `f` until it says to stop.
    fn each(
        &mut self,
        mut f: impl FnMut(&crate::domain::event::MessageFacts) -> Result<bool, DeskError>,
    ) -> Result<(), DeskError> {
        let start = time::PrimitiveDateTime::MIN.assume_utc();
        let mut after = None;
        'pages: loop {
            let page = self.facts_from(start, after.as_ref(), FACTS_PAGE);
            let Some((key, _)) = page.last() else {
                break;
            };
            after = Some(key.clone());
            for (_, facts) in &page {
                if !f(facts)? {
                    break 'pages;
                }
            }
        }
        if let Some((seq, problem)) = self.bad.take() {
            return Err(DeskError::BadEvent { seq, problem });
        }
        if self.reader.log_failed() {
            return Err(DeskError::Unreadable);
        }
        Ok(())
    }
}

impl LogBacking for LogReader {
    fn facts_from(
        &mut self,
        from: Timestamp,
        after: Option<&ReceiptKey>,
        limit: usize,
    ) -> Vec<(ReceiptKey, crate::domain::event::MessageFacts)> {
        // Versions are kept by the second: derive again from the start of `from`'s.
        let from = crate::deciding::tables::secs(from).saturating_mul(1_000_000_000);
        let page = self.reader.receipts_from(from, after, limit);
        let mut out = Vec::with_capacity(page.len());
        for (key, seq) in page {
            let facts = match self.reader.event_body(seq).map(|b| Envelope::decode(&b)) {
                Some(Ok(env)) => match env.event {
                    Event::MessageReceived { facts } => Ok(*facts),
                    _ => Err("the receipt index names it, but it is no message_received".into()),
                },
                Some(Err(e)) => Err(e.to_string()),
                None => Err("the receipt index names it, the log does not hold it".into()),
            };
            match facts {
                Ok(f) => out.push((key, f)),
                Err(problem) => {
                    self.bad.get_or_insert((seq, problem));
                    break;
                }
            }
        }
        out
    }

    fn cases_opened_from(&mut self, from: Timestamp) -> Vec<CaseId> {
        self.reader
            .cases_opened_from(crate::deciding::tables::secs(from))
            .iter()
            .map(|c| CaseId::from_stored(c))
            .collect()
    }

    fn founder_of(&mut self, case: &CaseId) -> Option<String> {
        let (year, number) = case.year_and_number()?;
        self.reader.founder_of(year, number)
    }

    fn clocks_changing(&mut self, from: Option<Timestamp>, to: Timestamp) -> Vec<ClockId> {
        // Rows keep seconds: a second either side errs on looking once more.
        let from = from.map_or(i64::MIN, |t| crate::deciding::tables::secs(t) - 1);
        let to = crate::deciding::tables::secs(to) + 1;
        self.reader
            .clocks_changing(from, to)
            .iter()
            .map(|c| ClockId::from_stored(c))
            .collect()
    }

    fn failed(&self) -> bool {
        self.bad.is_some() || self.reader.log_failed()
    }
}

/// Cases and clocks as they were at `at`, derived afresh from the messages in the store.
fn project_from_store(
    store: &dyn store::Tables,
    settings: &Settings,
    at: Timestamp,
) -> Result<Projection, DeskError> {
    let assigned = store.case_numbers()?;
    let mut p = Projector::new(&assigned, settings);
    LogReader::of(store)?.each(|f| {
        if f.received_at > at {
            return Ok(false);
        }
        p.push(f);
        Ok(true)
    })?;
    p.settle();
    Ok(p.snapshot())
}

/// The engine as the log leaves it.
pub(crate) fn restore_engine(store: &dyn Store, settings: &Settings) -> Result<Engine, DeskError> {
    let mut r = Engine::restoring(settings.clone(), store.tables_through()?);
    let mut next = 1;
    loop {
        let page = decoded_page(store, next)?;
        if page.is_empty() {
            return Ok(r.finish());
        }
        for (seq, env) in page {
            next = seq + 1;
            r.absorb(seq, env);
        }
    }
}

/// The result of `verify`: the chain and messages as the store checks them, plus the log's
/// own consistency (every received message's bytes are there and hash to its id).
#[derive(Debug)]
pub struct VerifyReport {
    pub events: u64,
    pub messages: u64,
    /// Hash of the last good event: publish it, or compare it with an earlier export.
    pub head: String,
    /// The first problem found, naming the event or message.
    pub problem: Option<String>,
    /// The checkpoints judged against the log, when a key to check them with was given and
    /// the chain holds.
    pub evidence: Option<crate::evidence::Judgement>,
    /// How many checkpoints there were to judge (stored and from files).
    pub checkpoints: usize,
}

/// Walk the chain and every message; without `keys`, checkpoints are not judged.
pub fn verify(store: &dyn Store) -> Result<VerifyReport, DeskError> {
    verify_with_evidence(store, &[], Vec::new())
}

/// Walk the chain and every message, then judge every stored checkpoint and `extra` ones (an
/// outside copy, `verify --checkpoints`) against the log with `keys` (none: not judged).
pub fn verify_with_evidence(
    store: &dyn Store,
    keys: &[ed25519_dalek::VerifyingKey],
    extra: Vec<crate::evidence::SignedCheckpoint>,
) -> Result<VerifyReport, DeskError> {
    use crate::evidence::{self, Origin};
    let v = store.verify()?;
    let problem = match (&v.bad_event, &v.bad_message) {
        (Some(e), _) => Some(format!("event #{}: {}", e.seq, e.problem)),
        (None, Some(m)) => Some(format!(
            "message {} is corrupt: {}",
            m.content_hash, m.problem
        )),
        (None, None) => None,
    };
    let mut checkpoints: Vec<_> = match store.tables() {
        Some(s) => s
            .signed_checkpoints()?
            .into_iter()
            .map(|c| (c, Origin::Store))
            .collect(),
        None => Vec::new(),
    };
    // An outside copy repeats what the store holds: each checkpoint is judged once.
    for c in extra {
        if !checkpoints.iter().any(|(k, _)| k.signature == c.signature) {
            checkpoints.push((c, Origin::File));
        }
    }
    let mut report = VerifyReport {
        events: v.events_ok,
        messages: v.messages_checked,
        head: v.head.clone(),
        problem,
        evidence: None,
        checkpoints: checkpoints.len(),
    };
    if report.problem.is_some() {
        return Ok(report);
    }
    let signed: Vec<_> = checkpoints.iter().map(|(c, _)| c.clone()).collect();
    let (seqs, since) = evidence::wanted(&signed);
    let mut log = evidence::LogView {
        head: v.events_ok,
        ..Default::default()
    };
    let mut next = 1;
    loop {
        let page = store.events_from(next, LOG_PAGE)?;
        if page.is_empty() {
            break;
        }
        for e in page {
            if seqs.binary_search(&e.seq).is_ok() {
                log.hashes.insert(e.seq, e.hash.clone());
            }
            let (seq, env) = match decode(e) {
                Ok(d) => d,
                Err(DeskError::BadEvent { seq, problem }) => {
                    report.problem = Some(format!("event #{seq} does not decode: {problem}"));
                    return Ok(report);
                }
                Err(e) => return Err(e),
            };
            next = seq + 1;
            if seq >= since {
                log.recorded.insert(seq, env.recorded_at);
            }
            // The bytes were checked against their key by the store's own walk above.
            if let Event::MessageReceived { facts } = &env.event
                && !store.has_message(&facts.content_hash)?
            {
                report.problem = Some(format!(
                    "event #{seq}: message {} is missing from the store",
                    facts.content_hash
                ));
                return Ok(report);
            }
        }
    }
    if !keys.is_empty() {
        report.evidence = Some(evidence::judge(&checkpoints, keys, &log));
    }
    Ok(report)
}

/// Sign a checkpoint of the log's head as it is at `now` and keep it in `store`.
///
/// Refused when the log no longer matches the last checkpoint this key signed (cut back
/// below it, or another hash at its seq): signing then would vouch for a tampered log.
pub fn sign_checkpoint(
    store: &dyn store::Tables,
    key: &ed25519_dalek::SigningKey,
    now: Timestamp,
) -> Result<crate::evidence::SignedCheckpoint, DeskError> {
    let head = store.tables_state()?.head;
    let hash_at = |seq: u64| -> Result<Option<String>, DeskError> {
        if seq == 0 {
            return Ok(Some(store::chain::GENESIS.to_string()));
        }
        Ok(store
            .events_from(seq, 1)?
            .into_iter()
            .find(|e| e.seq == seq)
            .map(|e| e.hash))
    };
    let id = crate::evidence::key_id(&key.verifying_key());
    if let Some(last) = store
        .signed_checkpoints()?
        .into_iter()
        .rev()
        .find(|c| c.key_id == id)
        && (last.seq > head || hash_at(last.seq)?.as_deref() != Some(last.head_hash.as_str()))
    {
        return Err(DeskError::Evidence(format!(
            "not signing a checkpoint: the log no longer matches the one signed at {} (event \
             #{}) — run `cprwatch verify` to see what changed",
            last.at, last.seq
        )));
    }
    let hash = hash_at(head)?.ok_or_else(|| {
        DeskError::Evidence(format!(
            "not signing a checkpoint: event #{head}, the head of the log, cannot be read — run \
             `cprwatch verify`"
        ))
    })?;
    let mut c = crate::evidence::sign(key, head, &hash, now);
    c.id = store.add_signed_checkpoint(&c)?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{FolderRole, SourceMeta};
    use crate::pipeline::{RawMessage, prepare};

    fn scenario(name: &str) -> Vec<RawMessage> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/scenarios")
            .join(name);
        let mut out = Vec::new();
        for (sub, folder) in [
            ("inbox", FolderRole::Inbox),
            ("junk", FolderRole::Junk),
            ("sent", FolderRole::Sent),
        ] {
            let Ok(dir) = std::fs::read_dir(root.join(sub)) else {
                continue;
            };
            let mut files: Vec<_> = dir.map(|f| f.unwrap().path()).collect();
            files.sort();
            for f in files {
                out.push(RawMessage {
                    raw: std::fs::read(f).unwrap(),
                    meta: SourceMeta {
                        folder,
                        position: None,
                        server_time: None,
                    },
                });
            }
        }
        assert!(!out.is_empty(), "scenario {name}");
        out
    }

    #[test]
    fn a_derivation_left_unfinished_is_finished_on_open_without_recording_anything_twice() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[desk]\nstaff_domains = [\"example-ca.test\"]\n\
                    trusted_authserv_ids = [\"mx.example-ca.test\"]\n\
                    [store]\npath = \"s.sqlite\"\n";
        let config = crate::config::from_str(text, &dir.path().join("c.toml")).unwrap();
        let now = crate::domain::timefmt::parse("2026-12-01T00:00:00Z").unwrap();
        let mut desk = Desk::open(&config).unwrap();
        let prepared = |desk: &Desk, msgs: Vec<RawMessage>| -> Vec<Prepared> {
            msgs.into_iter()
                .map(|m| prepare(m, desk.policy(), now, true))
                .collect()
        };
        let first = prepared(&desk, scenario("keys"));
        desk.record(first, Vec::new(), now, Derive::Now, None)
            .unwrap();
        // Recorded but not derived (a pass the service stopped in the middle of).
        let second = prepared(&desk, scenario("closing"));
        desk.record(second, Vec::new(), now, Derive::Later, None)
            .unwrap();
        let before = desk.events().unwrap().len();
        drop(desk);
        let mut desk = Desk::open(&config).unwrap();
        desk.tick(now).unwrap();
        let events = desk.events().unwrap();
        let mut opened = std::collections::HashMap::new();
        for (_, env) in &events {
            if let Event::CaseOpened { case, .. } = &env.event {
                *opened.entry(case.to_string()).or_insert(0) += 1;
            }
        }
        assert!(opened.values().all(|&n| n == 1), "{opened:?}");
        assert!(events.len() > before, "the second scenario was derived");
        // And a restart with everything derived records nothing.
        let after = events.len();
        drop(desk);
        let mut desk = Desk::open(&config).unwrap();
        desk.tick(now).unwrap();
        assert_eq!(desk.events().unwrap().len(), after);
    }
}
