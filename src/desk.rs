//! The desk: one store and the engine over it. Every command goes through here.
//!
//! This is where the edges meet the core: messages are read from sources, the engine turns
//! them into a batch, the store commits the batch atomically. If a commit fails the engine is
//! rebuilt from the store, so memory never runs ahead of what is durable.

use std::collections::HashSet;
use std::path::PathBuf;

use thiserror::Error;

use crate::config::Config;
use crate::engine::{Batch, Engine};
use crate::event::{Envelope, Event};
use crate::facts::Policy;
use crate::model::{FolderRole, SourceMeta, Timestamp};
use crate::projection::{Projection, Settings};
use crate::rules::{RuleSet, RulesError};
use crate::source::{self, SourceError};
use crate::staff::StaffPolicy;
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
    #[error(
        "cannot start a thread to prepare messages ({0}); the batch in hand was not recorded — free some resources and run the ingest again (nothing is counted twice)"
    )]
    Thread(String),
}

/// The policy a configuration sets: who is staff, which rules classify reports.
pub fn policy(config: &Config) -> Result<Policy, DeskError> {
    let rules = match &config.rules.dir {
        Some(dir) => RuleSet::load_dir(dir)?,
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
    })
}

pub fn settings(config: &Config) -> Settings {
    Settings {
        thread_window: config.clock.thread_window,
    }
}

/// Bulk ingest derives cases and clocks after this many batches (and at the end): rarely
/// enough that folders read out of time order rebuild the projection a few times, not once per
/// batch; often enough that no single commit of derived events grows with the whole load.
const DERIVE_EVERY: usize = 10;

/// The most derived events one transaction of [`Desk::tick`] holds.
const TICK_COMMIT_EVENTS: usize = 10_000;

/// What an ingest run did, for the person who ran it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IngestSummary {
    pub read: u64,
    pub new_messages: u64,
    pub bytes: u64,
    pub events: u64,
    /// Messages that could not be read at all (the path and why). Nothing else is dropped.
    pub unreadable: Vec<String>,
    pub notes: Vec<String>,
}

pub struct Desk {
    store: Box<dyn Store>,
    engine: Engine,
    policy: Policy,
    settings: Settings,
}

impl Desk {
    /// The desk over the configured SQLite store, its cases and clocks tables brought up to
    /// date first (built from the log after an upgrade or a change of settings).
    pub fn open(config: &Config) -> Result<Desk, DeskError> {
        let mut store = store::open_sqlite(&config.store.path)?;
        let (policy, settings) = (policy(config)?, settings(config));
        let mut engine = restore_engine(&store, &policy, &settings)?;
        let st = store.tables_state()?;
        if st.head == 0 && st.built_with.is_none() {
            store.set_tables_built_with(&tables_built_with(&settings))?;
        } else if !tables_current(&store, &settings)? {
            rebuild_tables(&mut store, &mut engine, &settings)?;
        }
        Ok(Desk {
            store: Box::new(store),
            engine,
            policy,
            settings,
        })
    }

    /// A desk that keeps nothing: for `replay` and tests.
    pub fn in_memory(config: &Config) -> Result<Desk, DeskError> {
        Desk::with_store(Box::new(store::memory()), policy(config)?, settings(config))
    }

    pub fn with_store(
        store: Box<dyn Store>,
        policy: Policy,
        settings: Settings,
    ) -> Result<Desk, DeskError> {
        let engine = restore_engine(store.as_ref(), &policy, &settings)?;
        Ok(Desk {
            store,
            engine,
            policy,
            settings,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Ingest raw messages seen at `now` and commit them with their events, atomically.
    pub fn ingest(
        &mut self,
        incoming: Vec<(Vec<u8>, SourceMeta)>,
        now: Timestamp,
    ) -> Result<Vec<Envelope>, DeskError> {
        let batch = self.engine.ingest(incoming, now);
        self.commit(batch, Vec::new())
    }

    /// Ingest prepared messages, and advance IMAP checkpoints in the same transaction: a
    /// checkpoint never gets ahead of the messages read up to it.
    pub fn ingest_to(
        &mut self,
        incoming: Vec<crate::facts::Prepared>,
        checkpoints: Vec<store::Checkpoint>,
        now: Timestamp,
    ) -> Result<Vec<Envelope>, DeskError> {
        let batch = self.engine.ingest_prepared(incoming, now);
        self.commit(batch, checkpoints)
    }

    /// The policy messages are prepared under (for sources that prepare on their own thread).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Record a watched folder's health (not part of the event log).
    pub fn set_folder_state(&mut self, state: &store::FolderState) -> Result<(), DeskError> {
        Ok(self.store.set_folder_state(state)?)
    }

    /// Re-evaluate clocks at `now`; commit and return what changed.
    ///
    /// The events of a tick are derived (cases, clocks), never received: committed in pieces
    /// of [`TICK_COMMIT_EVENTS`] as the engine finds them, so a mass report's 200 000 events
    /// are not all encoded and chained in memory at once. A crash between pieces loses nothing:
    /// the engine restored from the log derives the rest again on its first tick, as after any
    /// crash.
    pub fn tick(&mut self, now: Timestamp) -> Result<Vec<Envelope>, DeskError> {
        let mut kept = Vec::new();
        self.tick_committing(now, Some(&mut kept))?;
        Ok(kept)
    }

    /// [`Desk::tick`], keeping the events committed in `keep` if given (else only counting
    /// them: a bulk ingest needs no more). Returns how many events were committed.
    fn tick_committing(
        &mut self,
        now: Timestamp,
        mut keep: Option<&mut Vec<Envelope>>,
    ) -> Result<u64, DeskError> {
        let store = &mut self.store;
        let committed =
            self.engine
                .tick_in_pieces(now, TICK_COMMIT_EVENTS, |piece: Vec<Envelope>, delta| {
                    let sb = store::Batch {
                        events: piece.iter().map(Envelope::encode).collect(),
                        event_refs: piece.iter().map(|e| e.event.refs()).collect(),
                        tables: delta.unwrap_or_default(),
                        ..store::Batch::default()
                    };
                    store.commit(sb)?;
                    if let Some(k) = keep.as_deref_mut() {
                        k.extend(piece);
                    }
                    Ok::<(), StoreError>(())
                });
        match committed {
            Ok(n) => Ok(n as u64),
            Err(e) => {
                // Memory must not run ahead of the store: forget what was not committed.
                self.engine = restore_engine(self.store.as_ref(), &self.policy, &self.settings)?;
                Err(e.into())
            }
        }
    }

    fn commit(
        &mut self,
        batch: Batch,
        checkpoints: Vec<store::Checkpoint>,
    ) -> Result<Vec<Envelope>, DeskError> {
        if batch.is_empty() && checkpoints.is_empty() {
            return Ok(Vec::new());
        }
        let events = batch.events;
        let sb = store::Batch {
            messages: batch.messages,
            positions: batch.positions,
            events: events.iter().map(Envelope::encode).collect(),
            event_refs: events.iter().map(|e| e.event.refs()).collect(),
            checkpoints,
            tables: batch.delta,
        };
        if let Err(e) = self.store.commit(sb) {
            // Memory must not run ahead of the store: forget what was not committed.
            self.engine = restore_engine(self.store.as_ref(), &self.policy, &self.settings)?;
            return Err(e.into());
        }
        Ok(events)
    }

    /// Ingest every message under each path (file, directory of .eml, Maildir, mbox), in
    /// batches of `batch_size`, with `now` as the moment of sight.
    ///
    /// Each batch is prepared (parsed, extracted, classified) on a helper thread while this one
    /// records the batch before it, so a large import keeps two cores busy. The helper skips
    /// messages already recorded (a re-import reads, hashes and moves on).
    pub fn ingest_paths(
        &mut self,
        paths: &[(PathBuf, FolderRole)],
        batch_size: usize,
        now: impl Fn() -> Timestamp,
    ) -> Result<IngestSummary, DeskError> {
        let mut summary = IngestSummary::default();
        let mut batches = 0usize;
        let mut helper = Helper::new(
            self.policy.clone(),
            self.engine.known().clone(),
            self.store.keeps_compressed(),
        );
        let mut hand_over = |desk: &mut Desk,
                             prepared: Option<Vec<crate::facts::Prepared>>,
                             summary: &mut IngestSummary|
         -> Result<(), DeskError> {
            let Some(prepared) = prepared else {
                return Ok(());
            };
            desk.record(prepared, now(), summary)?;
            batches += 1;
            // Derive now and then, so no single commit grows with the load.
            if batches.is_multiple_of(DERIVE_EVERY) {
                summary.events += desk.tick_committing(now(), None)?;
            }
            Ok(())
        };
        for (path, role) in paths {
            let mut src = source::open(path, *role)?;
            let mut pending: Vec<(Vec<u8>, SourceMeta)> = Vec::with_capacity(batch_size.min(4096));
            for item in src.by_ref() {
                match item {
                    Ok(m) => {
                        summary.read += 1;
                        summary.bytes += m.raw.len() as u64;
                        pending.push((m.raw, m.meta));
                        if pending.len() >= batch_size {
                            let done = helper.push(std::mem::take(&mut pending), now())?;
                            hand_over(self, done, &mut summary)?;
                        }
                    }
                    Err(e) => summary.unreadable.push(e.to_string()),
                }
            }
            if !pending.is_empty() {
                let done = helper.push(pending, now())?;
                hand_over(self, done, &mut summary)?;
            }
            summary.notes.extend(src.notes().iter().cloned());
        }
        let last = helper.finish();
        hand_over(self, last, &mut summary)?;
        summary.events += self.tick_committing(now(), None)?;
        Ok(summary)
    }

    /// Record one prepared batch (messages, positions, `message_received` events) atomically;
    /// cases and clocks are derived later, by a tick.
    fn record(
        &mut self,
        batch: Vec<crate::facts::Prepared>,
        now: Timestamp,
        summary: &mut IngestSummary,
    ) -> Result<(), DeskError> {
        let before = self.engine.message_count();
        let batch = self.engine.receive_prepared(batch, now);
        let events = self.commit(batch, Vec::new())?;
        summary.new_messages += (self.engine.message_count() - before) as u64;
        summary.events += events.len() as u64;
        Ok(())
    }

    /// Cases and clocks as they were at `at`.
    pub fn projection_at(&self, at: Timestamp) -> Projection {
        self.engine.project_at(at)
    }

    /// The whole log, decoded, with sequence numbers.
    pub fn events(&self) -> Result<Vec<(u64, Envelope)>, DeskError> {
        decode_all(self.store.as_ref())
    }
}

/// Prepares one batch on a thread of its own while the desk records the one before.
struct Helper {
    policy: std::sync::Arc<Policy>,
    /// Content hashes recorded or prepared so far: the helper skips their facts. Travels with
    /// the batch being prepared.
    seen: Option<HashSet<String>>,
    /// Compress new messages too, for a store that keeps them compressed.
    compress: bool,
    running: Option<std::thread::JoinHandle<(Vec<crate::facts::Prepared>, HashSet<String>)>>,
}

impl Helper {
    fn new(policy: Policy, known: HashSet<String>, compress: bool) -> Helper {
        Helper {
            policy: std::sync::Arc::new(policy),
            seen: Some(known),
            compress,
            running: None,
        }
    }

    /// Start preparing `raw`; returns the batch prepared before it, if any.
    fn push(
        &mut self,
        raw: Vec<(Vec<u8>, SourceMeta)>,
        now: Timestamp,
    ) -> Result<Option<Vec<crate::facts::Prepared>>, DeskError> {
        let done = self.finish();
        let mut seen = self.seen.take().unwrap_or_default();
        let (policy, compress) = (self.policy.clone(), self.compress);
        let handle = std::thread::Builder::new()
            .name("ingest-prepare".into())
            .spawn(move || {
                crate::priority::lower_this_thread();
                let prepared = prepare_unseen(raw, &policy, now, &mut seen, compress);
                (prepared, seen)
            })
            .map_err(|e| DeskError::Thread(e.to_string()))?;
        self.running = Some(handle);
        Ok(done)
    }

    /// The batch being prepared, once ready.
    fn finish(&mut self) -> Option<Vec<crate::facts::Prepared>> {
        let handle = self.running.take()?;
        let (prepared, seen) = handle
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        self.seen = Some(seen);
        Some(prepared)
    }
}

/// Work out the facts of messages not in `seen` (adding them), and with `compress` compress
/// them; others are only hashed.
fn prepare_unseen(
    raw: Vec<(Vec<u8>, SourceMeta)>,
    policy: &Policy,
    now: Timestamp,
    seen: &mut HashSet<String>,
    compress: bool,
) -> Vec<crate::facts::Prepared> {
    raw.into_iter()
        .map(|(raw, meta)| {
            let mut p = crate::facts::Prepared::raw(raw, meta);
            if seen.insert(p.content_hash().to_string()) {
                p.facts = Some(crate::facts::message_facts(
                    p.message.raw(),
                    p.message.content_hash(),
                    &p.meta,
                    policy,
                    now,
                ));
                if compress {
                    p.message.compress();
                }
            }
            p
        })
        .collect()
}

/// What the tables are derived with: their format and the settings that shape them. Tables
/// built with anything else are rebuilt.
pub fn tables_built_with(settings: &Settings) -> String {
    format!(
        "tables-1 thread_window={}s",
        settings.thread_window.whole_seconds()
    )
}

/// Whether the store's tables hold the log's projection under these settings (perhaps a tick
/// behind: the next tick catches up).
pub fn tables_current(store: &store::SqliteStore, settings: &Settings) -> Result<bool, DeskError> {
    let st = store.tables_state()?;
    let built = st.built_with.as_deref() == Some(tables_built_with(settings).as_str());
    Ok(built || (st.head == 0 && st.built_with.is_none()))
}

/// Events whose tables are derived per transaction of a rebuild.
const REBUILD_PIECE: usize = 20_000;

/// Derive the tables afresh from the log (`cprwatch rebuild`, and after an upgrade): empty
/// them, then write the versions of every case and clock and the event index, in pieces.
pub fn rebuild_tables(
    store: &mut store::SqliteStore,
    engine: &mut Engine,
    settings: &Settings,
) -> Result<RebuildSummary, DeskError> {
    store.reset_tables()?;
    let mut summary = RebuildSummary::default();
    engine.derive_tables(REBUILD_PIECE, |delta| {
        summary.versions += delta.versions.len() as u64;
        store.write_tables(&delta, &[], None)
    })?;
    // The event index, a page of the log at a time.
    let mut head = 0;
    loop {
        let page = store.events_from(head + 1, REBUILD_PIECE)?;
        let Some(last) = page.last().map(|e| e.seq) else {
            break;
        };
        let mut refs = Vec::with_capacity(page.len());
        for e in page {
            let env = Envelope::decode(&e.body).map_err(|err| DeskError::BadEvent {
                seq: e.seq,
                problem: err.to_string(),
            })?;
            refs.push((e.seq, env.event.refs()));
        }
        summary.events += refs.len() as u64;
        store.write_tables(&Default::default(), &refs, None)?;
        head = last;
    }
    store.write_tables(
        &Default::default(),
        &[],
        Some((head, &tables_built_with(settings))),
    )?;
    engine.tables_complete();
    Ok(summary)
}

/// What comparing the tables with a re-derivation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TablesCheck {
    /// Equal, row for row: this many case and clock versions.
    Match { cases: u64, clocks: u64 },
    /// The tables hold the log only up to this many events before its head: a tick has not
    /// run since (the service between reading mail and deriving), so they are not compared.
    Behind(u64),
    /// The first differences, described.
    Differ(Vec<String>),
}

/// `verify`'s second half: derive the tables afresh into a scratch file beside the store and
/// compare them with the store's, row for row. Proves that what `status` and `case` read is
/// the projection of the log.
pub fn verify_tables(
    store: &store::SqliteStore,
    policy: &Policy,
    settings: &Settings,
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
    let engine = restore_engine(store, policy, settings)?;
    let mut scratch = store.path().as_os_str().to_owned();
    scratch.push(format!(".verify-{}", std::process::id()));
    let scratch = PathBuf::from(scratch);
    let remove_scratch = || {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = scratch.as_os_str().to_owned();
            p.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(p));
        }
    };
    remove_scratch();
    let (mut cases, mut clocks) = (0u64, 0u64);
    let derived = (|| {
        let mut fresh = store::open_sqlite(&scratch)?;
        engine.derive_tables(REBUILD_PIECE, |delta| {
            for v in &delta.versions {
                match v {
                    crate::tables::Version::Case(_) => cases += 1,
                    crate::tables::Version::Clock(_) => clocks += 1,
                }
            }
            fresh.write_tables(&delta, &[], None)
        })
    })();
    let compared = derived.and_then(|()| store.tables_differ_from(&scratch));
    remove_scratch();
    let differences = compared?;
    Ok(if differences.is_empty() {
        TablesCheck::Match { cases, clocks }
    } else {
        TablesCheck::Differ(differences)
    })
}

/// What a rebuild wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RebuildSummary {
    pub events: u64,
    pub versions: u64,
}

fn decode_all(store: &dyn Store) -> Result<Vec<(u64, Envelope)>, DeskError> {
    store
        .events()?
        .into_iter()
        .map(|e| {
            Envelope::decode(&e.body)
                .map(|env| (e.seq, env))
                .map_err(|err| DeskError::BadEvent {
                    seq: e.seq,
                    problem: err.to_string(),
                })
        })
        .collect()
}

/// The engine as the log leaves it.
pub fn restore_engine(
    store: &dyn Store,
    policy: &Policy,
    settings: &Settings,
) -> Result<Engine, DeskError> {
    let mut r = Engine::restoring(policy.clone(), settings.clone(), store.tables_through()?);
    for_each_envelope(store, &mut |seq, env| {
        r.absorb(seq, env);
        Ok(())
    })?;
    Ok(r.finish())
}

/// Every event of the log decoded, in order, one at a time.
fn for_each_envelope(
    store: &dyn Store,
    f: &mut dyn FnMut(u64, Envelope) -> Result<(), DeskError>,
) -> Result<(), DeskError> {
    let mut failed: Option<DeskError> = None;
    let read = store.for_each_event(&mut |e| {
        let decoded = Envelope::decode(&e.body)
            .map_err(|err| DeskError::BadEvent {
                seq: e.seq,
                problem: err.to_string(),
            })
            .and_then(|env| f(e.seq, env));
        match decoded {
            Ok(()) => Ok(()),
            Err(err) => {
                failed = Some(err);
                // Any error stops the walk; the real one is kept above.
                Err(StoreError::BadBatch("stopped".into()))
            }
        }
    });
    match (failed, read) {
        (Some(e), _) => Err(e),
        (None, r) => Ok(r?),
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
}

pub fn verify(store: &dyn Store) -> Result<VerifyReport, DeskError> {
    let v = store.verify()?;
    let problem = match (&v.bad_event, &v.bad_message) {
        (Some(e), _) => Some(format!("event #{}: {}", e.seq, e.problem)),
        (None, Some(m)) => Some(format!(
            "message {} is corrupt: {}",
            m.content_hash, m.problem
        )),
        (None, None) => None,
    };
    let mut report = VerifyReport {
        events: v.events_ok,
        messages: v.messages_checked,
        head: v.head.clone(),
        problem,
    };
    if report.problem.is_some() {
        return Ok(report);
    }
    let mut problem = None;
    store.for_each_event(&mut |e| {
        if problem.is_some() {
            return Ok(());
        }
        let env = match Envelope::decode(&e.body) {
            Ok(env) => env,
            Err(err) => {
                problem = Some(format!("event #{} does not decode: {err}", e.seq));
                return Ok(());
            }
        };
        if let Event::MessageReceived { facts } = &env.event {
            match store.has_message(&facts.content_hash)? {
                // The bytes were checked against their key by the store's own walk above.
                true => {}
                false => {
                    problem = Some(format!(
                        "event #{}: message {} is missing from the store",
                        e.seq, facts.content_hash
                    ));
                }
            }
        }
        Ok(())
    })?;
    report.problem = problem;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timefmt::parse;

    fn desk() -> Desk {
        let policy = Policy {
            staff: StaffPolicy {
                staff_domains: vec!["example-ca.test".into()],
                staff_addresses: vec![],
                trusted_authserv_ids: vec!["mx.example-ca.test".into()],
            },
            rules: RuleSet::shipped(),
            limits: crate::limits::Limits::default(),
        };
        Desk::with_store(Box::new(store::memory()), policy, Settings::default()).unwrap()
    }

    #[test]
    fn batches_prepared_ahead_record_what_one_batch_does_and_nothing_twice() {
        let maildir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/maildir"));
        let paths = [(maildir, FolderRole::Inbox)];
        let now = || parse("2026-12-01T00:00:00Z").unwrap();

        // Batches of two: several are prepared on the helper while earlier ones are recorded.
        let mut small = desk();
        let first = small.ingest_paths(&paths, 2, now).unwrap();
        assert!(first.new_messages >= 5, "{first:?}");
        let events = small.events().unwrap().len();
        let again = small.ingest_paths(&paths, 2, now).unwrap();
        assert_eq!((again.read, again.new_messages), (first.read, 0));
        assert_eq!(small.events().unwrap().len(), events);

        // The same cases and clocks as reading everything in one batch.
        let mut whole = desk();
        whole.ingest_paths(&paths, 10_000, now).unwrap();
        let (a, b) = (small.projection_at(now()), whole.projection_at(now()));
        assert_eq!(a.cases, b.cases);
        assert_eq!(a.clocks, b.clocks);
    }
}
