//! The engine: messages in, events out. Pure — the caller passes `now` and persists the batch.
//!
//! The engine holds the facts of every message received so far and a [`Recorded`] view: what
//! the log already says (cases opened, clocks started, states reached). After each batch, or
//! each tick of the clock, it projects cases and clocks afresh and appends exactly the
//! difference between the projection and the recorded view. So re-reading a folder adds
//! nothing, a restart re-emits nothing, and a message arriving out of order produces the
//! events that describe its effect (a revised deadline, a merged case) instead of a different
//! history.

use std::collections::{BTreeSet, HashSet};

use crate::deciding::cases::{Changes, Emit, Projection, Projector, Settings};
use crate::deciding::fold::Backing;
use crate::deciding::recorded::{Recorded, RecordedBacking, ignored_identity};
use crate::deciding::tables::Delta;
use crate::deciding::threading::Assigned;
use crate::domain::event::{ClockState, Envelope, Event, MessageFacts};
use crate::domain::ids::{CaseId, ClockId};
use crate::domain::model::Timestamp;

/// A message's place in receipt order ([`MessageFacts::sort_key`]), as the store keeps it:
/// receipt time in nanoseconds, from staff, content hash.
pub(crate) type ReceiptKey = (i64, bool, String);

pub(crate) fn receipt_key(f: &MessageFacts) -> ReceiptKey {
    (
        i64::try_from(f.received_at.unix_timestamp_nanos()).unwrap_or(i64::MAX),
        f.is_staff(),
        f.content_hash.clone(),
    )
}

/// What the engine reads from the log when it does not hold the history (the store): the
/// messages from a receipt time on (to derive again after an older message arrived), the cases
/// and clocks of the tables, and the case a message opened.
pub(crate) trait LogBacking: Send {
    /// Up to `limit` messages received at or after `from`, in receipt order, after `after`.
    fn facts_from(
        &mut self,
        from: Timestamp,
        after: Option<&ReceiptKey>,
        limit: usize,
    ) -> Vec<(ReceiptKey, MessageFacts)>;
    /// The cases the tables hold that opened at or after `from`.
    fn cases_opened_from(&mut self, from: Timestamp) -> Vec<CaseId>;
    /// The message that opened a case, as the log says.
    fn founder_of(&mut self, case: &CaseId) -> Option<String>;
    /// The clocks the tables hold now whose deadline or first stop falls in `(from, to]`: time
    /// alone may have changed their state.
    fn clocks_changing(&mut self, from: Option<Timestamp>, to: Timestamp) -> Vec<ClockId>;
    /// Whether a read failed (then nothing derived may be kept).
    fn failed(&self) -> bool;
}

/// A tick found the store unreadable, or a row of it damaged: nothing it derived was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the store could not be read while deriving cases and clocks, or a stored row of theirs is damaged — run `cprwatch verify`, then `cprwatch rebuild`"
)]
pub struct Unreadable;

/// Where the engine's state is.
enum Mode {
    /// All in memory: the facts of every message (a replay, the tests).
    Held {
        /// Sorted by [`MessageFacts::sort_key`].
        facts: Vec<MessageFacts>,
        known: HashSet<String>,
        assigned: Assigned,
        /// Clocks by the next moment time alone may change their state (see
        /// [`Clock::next_change_after`]): a tick compares the clocks the new messages touched
        /// and those whose moment has come, not every clock the desk holds.
        timeline: BTreeSet<(Timestamp, ClockId)>,
        /// The earliest receipt time among messages whose effect the store's tables do not
        /// hold yet (`None`: they hold every message). A rebuilt projection re-derives the
        /// tables from there on, and no earlier.
        unprojected: Option<Timestamp>,
    },
    /// In the store: the engine holds what a tick touches and reads the rest.
    Stored {
        log: Box<dyn LogBacking>,
        /// Messages received since the last tick, to feed at the next (they sort after every
        /// message fed), while they are few.
        incoming: Vec<MessageFacts>,
        /// More were received than are worth holding (a bulk load): the next tick reads those
        /// after the last fed and up to this one back from the store (their batches committed
        /// them), then feeds what it holds.
        spilled: Option<ReceiptKey>,
        /// The last message received, fed or not.
        latest: Option<ReceiptKey>,
        /// The earliest receipt time among messages received and not fed yet.
        first_unfed: Option<Timestamp>,
        /// The last message fed.
        last_fed: Option<ReceiptKey>,
        /// The next tick derives again from this receipt time (an older message arrived, or
        /// the last derivation did not finish).
        rewind_from: Option<Timestamp>,
        messages: usize,
    },
}

/// Where a stored engine starts: what the store says of its derivation so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct StoredStart {
    pub last_fed: Option<ReceiptKey>,
    pub rewind_from: Option<Timestamp>,
    pub evaluated_at: Option<Timestamp>,
    pub messages: usize,
}

/// An engine being rebuilt from the log, event by event, in seq order from 1.
pub(crate) struct Restoring {
    engine: Engine,
    tables_through: Option<u64>,
}

impl Restoring {
    /// Take in the event at `seq`.
    pub(crate) fn absorb(&mut self, seq: u64, env: Envelope) {
        let e = &mut self.engine;
        if let Mode::Held {
            facts,
            known,
            assigned,
            unprojected,
            ..
        } = &mut e.mode
        {
            if let Event::MessageReceived { facts: f } = env.event {
                if self.tables_through.is_none_or(|t| seq > t) {
                    *unprojected =
                        Some(unprojected.map_or(f.received_at, |u| u.min(f.received_at)));
                }
                if known.insert(f.content_hash.clone()) {
                    facts.push(*f);
                    e.projector = None;
                }
            } else {
                if let Event::CaseOpened { case, message, .. } = &env.event {
                    assigned.insert(message.clone(), case.clone());
                }
                e.recorded.apply(&env.event);
            }
        }
    }

    pub(crate) fn finish(self) -> Engine {
        let mut e = self.engine;
        if let Mode::Held { facts, .. } = &mut e.mode {
            facts.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        }
        e
    }
}

/// Messages fed to the projector between two looks at how many table versions it made.
const VERSION_SLICE: usize = 2048;

/// Table versions from which they are handed on by themselves, ahead of the tick's events
/// (and a stored engine forgets what it held). Small in debug builds, so that the tests, whose
/// ticks are small, take that path too.
const VERSION_PIECE: usize = if cfg!(debug_assertions) { 64 } else { 10_000 };

/// Messages received between two ticks that a stored engine holds; beyond that it reads them
/// back from the store at the tick (a bulk load derives once, at its end). Small in debug
/// builds, so that the tests, whose loads are small, take both paths.
const HELD_INCOMING: usize = if cfg!(debug_assertions) { 16 } else { 4096 };

/// Messages read back from the store at once when deriving again.
const REWIND_PAGE: usize = 2048;

/// From how many clocks at once the timeline is extended by a tree built of its own.
const BULK_TIMELINE: usize = 1024;

/// The core's state between batches.
pub struct Engine {
    settings: Settings,
    mode: Mode,
    recorded: Recorded,
    /// The projection, fed incrementally while new messages sort after the old.
    projector: Option<Projector>,
    /// When clocks were last compared with the account; `None` makes the next tick compare
    /// every clock.
    evaluated_at: Option<Timestamp>,
}

impl Engine {
    /// An engine that holds everything in memory.
    pub fn new(settings: Settings) -> Engine {
        Engine {
            settings,
            mode: Mode::Held {
                facts: Vec::new(),
                known: HashSet::new(),
                assigned: Assigned::new(),
                timeline: BTreeSet::new(),
                unprojected: None,
            },
            recorded: Recorded::held(),
            projector: None,
            evaluated_at: None,
        }
    }

    /// An engine over the store: its projector asks `backing`, its account `recorded`, and
    /// it reads messages back through `log`.
    pub(crate) fn stored(
        settings: Settings,
        backing: Box<dyn Backing + Send>,
        recorded: Box<dyn RecordedBacking>,
        log: Box<dyn LogBacking>,
        start: StoredStart,
    ) -> Engine {
        let mut projector = Projector::versioned_over(backing, &settings, Emit::All);
        // A projector over the store starts from what it holds: nothing changed yet.
        projector.take_changes();
        Engine {
            settings,
            mode: Mode::Stored {
                log,
                incoming: Vec::new(),
                spilled: None,
                latest: start.last_fed.clone(),
                first_unfed: None,
                last_fed: start.last_fed,
                rewind_from: start.rewind_from,
                messages: start.messages,
            },
            recorded: Recorded::over(recorded),
            projector: Some(projector),
            evaluated_at: start.evaluated_at,
        }
    }

    /// Rebuild from the whole log, in order (the first event is seq 1). `tables_through` is the
    /// last seq whose effect the store's tables hold (`None`: they hold nothing).
    #[cfg(test)]
    pub(crate) fn restore<'a>(
        settings: Settings,
        log: impl IntoIterator<Item = &'a Envelope>,
        tables_through: Option<u64>,
    ) -> Engine {
        let mut r = Engine::restoring(settings, tables_through);
        for (i, env) in log.into_iter().enumerate() {
            r.absorb(i as u64 + 1, env.clone());
        }
        r.finish()
    }

    /// Rebuild from the log one event at a time, as it is read: the log itself is never held
    /// whole (see [`Restoring`]).
    pub(crate) fn restoring(settings: Settings, tables_through: Option<u64>) -> Restoring {
        Restoring {
            engine: Engine::new(settings),
            tables_through,
        }
    }

    /// Whether the next tick derives cases and clocks again from an earlier receipt time
    /// (a message older than those derived arrived since), rather than extending what it
    /// derived before.
    pub(crate) fn would_rederive(&self) -> bool {
        match &self.mode {
            Mode::Held { facts, .. } => self.projector.is_none() && !facts.is_empty(),
            Mode::Stored { rewind_from, .. } => rewind_from.is_some(),
        }
    }

    /// How many messages were received.
    pub fn message_count(&self) -> usize {
        match &self.mode {
            Mode::Held { facts, .. } => facts.len(),
            Mode::Stored { messages, .. } => *messages,
        }
    }

    /// Every message, in receipt order (an engine over the store holds none).
    pub fn facts(&self) -> &[MessageFacts] {
        match &self.mode {
            Mode::Held { facts, .. } => facts,
            Mode::Stored { .. } => &[],
        }
    }

    /// Take in the facts of messages seen at `now` (the caller has dropped those the store
    /// holds) without deriving cases and clocks: a [`Engine::tick`] does that, at once (the
    /// service) or after many batches (a bulk load, where deriving once beats re-deriving
    /// after every batch when folders arrive out of time order). Returns the
    /// `message_received` events, in receipt order; on a failed commit make the engine again.
    pub fn receive(&mut self, incoming: Vec<MessageFacts>, now: Timestamp) -> Vec<Envelope> {
        let mut new_facts: Vec<MessageFacts> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for f in incoming {
            let new = match &mut self.mode {
                Mode::Held { known, .. } => known.insert(f.content_hash.clone()),
                Mode::Stored { .. } => seen.insert(f.content_hash.clone()),
            };
            if new {
                new_facts.push(f);
            }
        }
        new_facts.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let events = new_facts
            .iter()
            .map(|f| Envelope {
                recorded_at: now,
                event: Event::MessageReceived {
                    facts: Box::new(f.clone()),
                },
            })
            .collect();
        let Some(first) = new_facts.first() else {
            return events;
        };
        match &mut self.mode {
            Mode::Held {
                facts, unprojected, ..
            } => {
                let earliest = first.received_at;
                *unprojected = Some(unprojected.map_or(earliest, |u| u.min(earliest)));
                // The usual case: new mail is newer than everything seen, and the projection is
                // extended. An older message (a backfill, a Junk folder read late) rebuilds it.
                let appends = facts
                    .last()
                    .is_none_or(|last| last.sort_key() < first.sort_key());
                facts.extend(new_facts);
                if !appends {
                    facts.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
                    self.projector = None;
                }
            }
            Mode::Stored {
                incoming,
                spilled,
                latest,
                first_unfed,
                rewind_from,
                messages,
                ..
            } => {
                *messages += new_facts.len();
                if rewind_from.is_some()
                    || latest.as_ref().is_some_and(|l| receipt_key(first) <= *l)
                {
                    // An older message: derive again from its receipt time, reading every
                    // message from then on back from the store (these ones included, and
                    // those received earlier and not derived yet).
                    let from = first_unfed.map_or(first.received_at, |u| u.min(first.received_at));
                    *rewind_from = Some(rewind_from.map_or(from, |r| r.min(from)));
                }
                *first_unfed =
                    Some(first_unfed.map_or(first.received_at, |u| u.min(first.received_at)));
                if let Some(last) = new_facts.last().map(receipt_key)
                    && latest.as_ref().is_none_or(|l| last > *l)
                {
                    *latest = Some(last);
                }
                if rewind_from.is_some() {
                    // Read back from the store at the tick, with everything after.
                    incoming.clear();
                    *spilled = None;
                } else {
                    if incoming.len() + new_facts.len() > HELD_INCOMING
                        && let Some(last) = incoming.last()
                    {
                        // Those held came in batches committed before this one: the tick
                        // reads them back. This batch's it holds until it commits them, with
                        // what they derive.
                        *spilled = Some(receipt_key(last));
                        incoming.clear();
                    }
                    incoming.extend(new_facts);
                }
            }
        }
        events
    }

    /// Re-evaluate every clock at `now` and return the events for what changed (a breach, an
    /// expiry, a command whose time has come). The events are already absorbed. For an engine
    /// without a store (tests): the tables' versions are not kept; the desk commits them with
    /// [`Engine::tick_in_pieces`].
    pub fn tick(&mut self, now: Timestamp) -> Vec<Envelope> {
        let mut all = Vec::new();
        let handed = self.tick_in_pieces(now, usize::MAX, |piece, _| {
            if all.is_empty() {
                all = piece;
            } else {
                all.extend(piece);
            }
            Ok::<(), Unreadable>(())
        });
        handed.expect("an engine that holds everything reads nothing");
        all
    }

    /// [`Engine::tick`], handing the events to `sink` in pieces of at most `piece` events, in
    /// order, as they are found, instead of returning them all at once: a mass report derives
    /// 200 000 events, which need not all be in memory together. Returns how many events there
    /// were. Each event is absorbed as it is found; if `sink` fails the tick stops there, and
    /// the engine has absorbed events that were not handed over: make it again from the store.
    pub(crate) fn tick_in_pieces<E: From<Unreadable>>(
        &mut self,
        now: Timestamp,
        piece: usize,
        mut sink: impl FnMut(Vec<Envelope>, Option<Delta>) -> Result<(), E>,
    ) -> Result<usize, E> {
        match self.mode {
            Mode::Held { .. } => self.tick_held(now, piece, &mut sink),
            Mode::Stored { .. } => self.tick_stored(now, piece, &mut sink),
        }
    }

    fn tick_held<E>(
        &mut self,
        now: Timestamp,
        piece: usize,
        sink: &mut dyn FnMut(Vec<Envelope>, Option<Delta>) -> Result<(), E>,
    ) -> Result<usize, E> {
        let Mode::Held {
            facts,
            assigned,
            timeline,
            unprojected,
            ..
        } = &mut self.mode
        else {
            unreachable!("tick_held on a held engine");
        };
        // The tables hold the projection of every message received, whatever `now`: the
        // projector takes them all in first. A new projector re-derives from the earliest
        // message the tables lack, and the store forgets what it held from there on.
        let rebuilt = self.projector.is_none();
        let emit = match *unprojected {
            Some(t) => Emit::From(t),
            None => Emit::Nothing,
        };
        let projector = self
            .projector
            .get_or_insert_with(|| Projector::versioned(assigned, &self.settings, emit));
        // Fed a slice at a time; versions beyond a piece's worth are handed on as they are
        // made (the truncation with the first), so a bulk load's hundreds of thousands are
        // never held at once. The rest ride with the last piece of events, so an ordinary
        // batch commits its events and tables together; the tables are marked complete only
        // then, so a crash in between re-derives them from the truncation point on.
        let mut pending = Delta {
            truncate_from: if rebuilt { *unprojected } else { None },
            ..Delta::default()
        };
        let n = facts.len();
        let mut fed = projector.fed();
        loop {
            let mut next = (fed + VERSION_SLICE).min(n);
            while next < n && facts[next].received_at == facts[next - 1].received_at {
                next += 1;
            }
            projector.feed(&facts[..next]);
            pending.versions.extend(projector.take_versions());
            if pending.versions.len() >= VERSION_PIECE {
                sink(Vec::new(), Some(std::mem::take(&mut pending)))?;
            }
            fed = next;
            if fed >= n {
                break;
            }
        }
        projector.set_emit(Emit::All);
        let delta = Delta {
            complete: unprojected.is_some(),
            ..pending
        };
        let mut out = Emitted {
            now,
            rec: &mut self.recorded,
            assigned: Some(assigned),
            piece: piece.max(1),
            list: Vec::new(),
            handed: 0,
            sink,
            delta: Some(delta),
        };
        if facts.last().is_some_and(|f| f.received_at > now) {
            // Evaluating before the newest receipt (only tests and replays do): project afresh.
            let cut = facts.partition_point(|f| f.received_at <= now);
            let mut p = Projector::new(
                out.assigned.as_deref().unwrap_or(&Assigned::new()),
                &self.settings,
            );
            p.feed(&facts[..cut]);
            let full = Changes {
                full: true,
                ..Changes::default()
            };
            self.evaluated_at = None;
            diff(&mut p, &full, None, None, &mut out)?;
        } else if let Some(projector) = self.projector.as_mut() {
            let mut changes = projector.take_changes();
            // Time only moves forward here; if it did not (a clock set back), compare all.
            let every = changes.full || self.evaluated_at.is_none_or(|t| now < t);
            let mut clocks = std::mem::take(&mut changes.clocks);
            if every {
                timeline.clear();
                clocks.extend(projector.held_clocks());
            } else {
                while timeline.first().is_some_and(|(at, _)| *at <= now) {
                    if let Some((_, id)) = timeline.pop_first() {
                        clocks.insert(id);
                    }
                }
            }
            let due: Vec<(Timestamp, ClockId)> = clocks
                .iter()
                .filter_map(|id| {
                    let at = projector.clock(id).and_then(|c| c.next_change_after(now))?;
                    Some((at, id.clone()))
                })
                .collect();
            if due.len() >= BULK_TIMELINE && due.len() >= timeline.len() {
                // Inserted one by one in order, they would leave every node half empty.
                let mut more: BTreeSet<(Timestamp, ClockId)> = due.into_iter().collect();
                timeline.append(&mut more);
            } else {
                timeline.extend(due);
            }
            self.evaluated_at = Some(now);
            diff(projector, &changes, Some(&clocks), None, &mut out)?;
        }
        out.finish()?;
        *unprojected = None;
        Ok(out.handed)
    }

    fn tick_stored<E: From<Unreadable>>(
        &mut self,
        now: Timestamp,
        piece: usize,
        sink: &mut dyn FnMut(Vec<Envelope>, Option<Delta>) -> Result<(), E>,
    ) -> Result<usize, E> {
        let Mode::Stored {
            log,
            incoming,
            spilled,
            first_unfed,
            last_fed,
            rewind_from,
            ..
        } = &mut self.mode
        else {
            unreachable!("tick_stored on a stored engine");
        };
        let projector = self
            .projector
            .as_mut()
            .expect("a stored engine always has its projector");
        let check = |p: &Projector, r: &Recorded, l: &dyn LogBacking| -> Result<(), E> {
            if p.failed() || r.failed() || l.failed() {
                Err(E::from(Unreadable))
            } else {
                Ok(())
            }
        };
        let mut pending = Delta::default();
        let rewound = rewind_from.take();
        let mut gone: Vec<CaseId> = Vec::new();
        if let Some(tb) = rewound {
            // The cases opened from then on, before the store forgets them: those that do not
            // come back were merged into an older case.
            gone = log.cases_opened_from(tb);
            check(projector, &self.recorded, log.as_ref())?;
            sink(
                Vec::new(),
                Some(Delta {
                    truncate_from: Some(tb),
                    ..Delta::default()
                }),
            )?;
            projector.evict();
            projector.rewound();
            *last_fed = None;
        }
        // Feeds one message; at each new receipt time the versions so far are complete, and
        // beyond a piece's worth they are committed and what the projector held is forgotten
        // (it reads back what it touches again).
        let mut feed = |p: &mut Projector,
                        m: &MessageFacts,
                        pending: &mut Delta,
                        last: &mut Option<ReceiptKey>,
                        log: &dyn LogBacking,
                        rec: &Recorded|
         -> Result<(), E> {
            if last
                .as_ref()
                .is_some_and(|l| m.received_at.unix_timestamp_nanos() > i128::from(l.0))
            {
                p.flush();
                pending.versions.extend(p.take_versions());
                if pending.versions.len() >= VERSION_PIECE {
                    check(p, rec, log)?;
                    sink(Vec::new(), Some(std::mem::take(pending)))?;
                    p.evict();
                }
            }
            p.push(m);
            *last = Some(receipt_key(m));
            Ok(())
        };
        // What to read back from the store: from the receipt time derived again, or the
        // messages spilled, after the last fed.
        let read_back = match (rewound, spilled.take()) {
            (Some(tb), _) => Some((tb, None, None)),
            (None, Some(until)) => Some((
                last_fed
                    .as_ref()
                    .and_then(|k| {
                        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(k.0)).ok()
                    })
                    .unwrap_or(time::PrimitiveDateTime::MIN.assume_utc()),
                last_fed.clone(),
                Some(until),
            )),
            (None, None) => None,
        };
        if let Some((tb, mut after, until)) = read_back {
            'pages: loop {
                let page = log.facts_from(tb, after.as_ref(), REWIND_PAGE);
                let Some((key, _)) = page.last() else {
                    break;
                };
                after = Some(key.clone());
                for (key, m) in &page {
                    if until.as_ref().is_some_and(|u| key > u) {
                        break 'pages;
                    }
                    feed(
                        projector,
                        m,
                        &mut pending,
                        last_fed,
                        log.as_ref(),
                        &self.recorded,
                    )?;
                }
            }
        }
        if rewound.is_some() {
            incoming.clear();
        } else {
            for m in std::mem::take(incoming) {
                feed(
                    projector,
                    &m,
                    &mut pending,
                    last_fed,
                    log.as_ref(),
                    &self.recorded,
                )?;
            }
        }
        *first_unfed = None;
        projector.settle();
        pending.versions.extend(projector.take_versions());
        let mut changes = projector.take_changes();
        let mut clocks = std::mem::take(&mut changes.clocks);
        let (from, to) = match self.evaluated_at {
            Some(t) if now < t => (Some(now), t),
            t => (t, now),
        };
        clocks.extend(log.clocks_changing(from, to));
        let mut founders = Vec::new();
        for case in &gone {
            if let Some(f) = log.founder_of(case) {
                founders.push((case.clone(), f));
            }
        }
        check(projector, &self.recorded, log.as_ref())?;
        let delta = Delta {
            complete: true,
            evaluated_at: Some(now),
            ..pending
        };
        let mut out = Emitted {
            now,
            rec: &mut self.recorded,
            assigned: None,
            piece: piece.max(1),
            list: Vec::new(),
            handed: 0,
            sink,
            delta: Some(delta),
        };
        diff(
            projector,
            &changes,
            Some(&clocks),
            Some(&founders),
            &mut out,
        )?;
        if projector.failed() || out.rec.failed() || log.failed() {
            return Err(E::from(Unreadable));
        }
        out.finish()?;
        let handed = out.handed;
        self.evaluated_at = Some(now);
        // Everything is in the store: hold nothing until the next tick.
        projector.evict();
        projector.forget_tick();
        self.recorded.settled();
        Ok(handed)
    }

    /// The projection made by the last [`Engine::tick`], if no message arrived since.
    #[cfg(test)]
    pub(crate) fn current(&self) -> Option<Projection> {
        self.projector.as_ref().map(Projector::snapshot)
    }

    /// The projection as it was at `at`: messages received later do not exist yet (an engine
    /// that holds everything).
    pub fn project_at(&self, at: Timestamp) -> Projection {
        let Mode::Held {
            facts, assigned, ..
        } = &self.mode
        else {
            return Projection::default();
        };
        let cut = facts.partition_point(|f| f.received_at <= at);
        crate::deciding::cases::project(&facts[..cut], assigned, &self.settings)
    }
}

/// Events as `diff` finds them, already in their envelopes, each applied to the recorded view
/// as it is found and handed on in pieces: a mass report makes hundreds of thousands at once,
/// and holding them all (and wrapping them afterwards) would hold every event, or twice.
struct Emitted<'a, E> {
    now: Timestamp,
    rec: &'a mut Recorded,
    /// The case numbers handed out, for an engine that holds them (the store keeps its own).
    assigned: Option<&'a mut Assigned>,
    /// Events per piece handed to `sink`.
    piece: usize,
    list: Vec<Envelope>,
    handed: usize,
    sink: &'a mut dyn FnMut(Vec<Envelope>, Option<Delta>) -> Result<(), E>,
    /// Handed on with the last piece, so the tables commit with the events that end the tick.
    delta: Option<Delta>,
}

impl<E> Emitted<'_, E> {
    fn push(&mut self, event: Event) -> Result<(), E> {
        // A full piece is handed on only when another event follows, so the last piece (which
        // carries the tables' delta) is never empty when there were events at all.
        if self.list.len() >= self.piece {
            let piece = std::mem::take(&mut self.list);
            self.handed += piece.len();
            (self.sink)(piece, None)?;
        }
        self.rec.apply(&event);
        if let (Event::CaseOpened { case, message, .. }, Some(a)) = (&event, self.assigned.as_mut())
        {
            a.insert(message.clone(), case.clone());
        }
        self.list.push(Envelope {
            recorded_at: self.now,
            event,
        });
        Ok(())
    }

    /// Hand on the last piece with the tables' delta (if either holds anything).
    fn finish(&mut self) -> Result<(), E> {
        let delta = self.delta.take().filter(|d| !d.is_empty());
        if self.list.is_empty() && delta.is_none() {
            return Ok(());
        }
        let piece = std::mem::take(&mut self.list);
        self.handed += piece.len();
        (self.sink)(piece, delta)
    }
}

/// The events that bring the recorded view up to the projection at `now`, found in order and
/// pushed to `out` (which applies each to the recorded view at once).
///
/// Only what `changes` names is compared (all of it after a rebuild), and only the clocks in
/// `clocks` (every clock when `None`). Every decision reads the recorded view as it was before
/// this diff: each event touches only what its own check read (one message, one certificate
/// of a case, one clock), and the two places where that does not hold (the case a merged
/// case's messages went to, and ignored commands listed twice) are decided up front.
fn diff<E>(
    p: &mut Projector,
    changes: &Changes,
    clocks: Option<&BTreeSet<ClockId>>,
    gone: Option<&[(CaseId, String)]>,
    out: &mut Emitted<'_, E>,
) -> Result<(), E> {
    let touched = if changes.full {
        p.held_cases()
    } else {
        changes.cases.clone()
    };
    // Cases only disappear when a re-derivation merged them into an older one: every case of
    // the account the projection lacks (an engine that holds everything), or those of `gone`
    // (the cases that opened after the receipt time derived again, with their founders).
    // Decided before the messages of the touched cases are re-placed below.
    let merged = match gone {
        None if changes.full => merged_cases(p, out.rec),
        None => Vec::new(),
        Some(gone) => {
            let mut out_events = Vec::new();
            for (case, founder) in gone {
                if p.case(case).is_none() && out.rec.case_open(case) {
                    out_events.push(Event::CaseMerged {
                        case: case.clone(),
                        into: p
                            .placements()
                            .get(founder)
                            .and_then(|pl| pl.case.clone())
                            .unwrap_or_default(),
                    });
                }
            }
            out_events
        }
    };
    // Only messages fed since the last tick can have moved.
    let fed: HashSet<&str> = changes.messages.iter().map(String::as_str).collect();
    for id in touched.values() {
        let Some(case) = p.case(id) else {
            continue;
        };
        if !out.rec.case_open(&case.id) {
            out.push(Event::CaseOpened {
                case: case.id.clone(),
                message: case.founder.clone(),
                message_id: case
                    .messages
                    .first()
                    .map(|m| m.message_id.clone())
                    .unwrap_or_default(),
                reporter: case.reporter.clone(),
                subject: case.subject.clone(),
                opened_at: case.opened_at,
            })?;
        }
        for m in case.messages.iter().skip(1) {
            if !changes.full && !fed.contains(m.content_hash.as_str()) {
                continue;
            }
            let placed_here = matches!(
                out.rec.placement(&m.content_hash),
                Some(Some(c)) if c == case.id
            );
            if !placed_here {
                out.push(Event::MessageJoined {
                    case: case.id.clone(),
                    message: m.content_hash.clone(),
                    message_id: m.message_id.clone(),
                    via: m.via.to_string(),
                })?;
            }
        }
        for c in &case.certificates {
            if !out.rec.cert_listed(&case.id, &c.reference) {
                out.push(Event::CertificateReported {
                    case: case.id.clone(),
                    certificate: Box::new(c.clone()),
                })?;
            }
        }
        for k in &case.keys {
            if !out.rec.key_listed(&case.id, &k.identity()) {
                out.push(Event::KeyReported {
                    case: case.id.clone(),
                    key: k.clone(),
                })?;
            }
        }
    }
    for event in merged {
        out.push(event)?;
    }
    let placements = p.placements();
    let placed: Vec<(&String, &crate::deciding::cases::Placement)> = if changes.full {
        placements.iter().collect()
    } else {
        changes
            .messages
            .iter()
            .filter_map(|h| placements.get_key_value(h))
            .collect()
    };
    for (hash, pl) in placed {
        if pl.case.is_none() && out.rec.placement(hash) != Some(None) {
            out.push(Event::MessageLogged {
                message: hash.clone(),
                message_id: pl.message_id.clone(),
                reason: pl.how.to_string(),
            })?;
        }
    }

    let compared = match clocks {
        None => p.held_clocks(),
        Some(ids) => ids.clone(),
    };
    for id in &compared {
        let Some(c) = p.clock(id) else {
            continue;
        };
        let status = c.status(out.now);
        // Decided on the clock as recorded before its own events.
        let (first, before) = match out.rec.clock(id) {
            None => (
                Some(Event::ClockStarted {
                    clock: id.clone(),
                    kind: c.kind,
                    case: c.case.clone(),
                    target: c.target.clone(),
                    started_at: c.started_at,
                    deadline: c.deadline,
                    basis: c.basis.clone(),
                    decided_by: c.decided_by.clone(),
                }),
                ClockState::Pending,
            ),
            Some(k)
                if k.started_at != c.started_at
                    || k.deadline != c.deadline
                    || k.basis != c.basis =>
            {
                (
                    Some(Event::ClockRevised {
                        clock: id.clone(),
                        started_at: c.started_at,
                        deadline: c.deadline,
                        basis: c.basis.clone(),
                        previous_deadline: Some(k.deadline),
                        previous_basis: Some(k.basis.clone()),
                        decided_by: c.decided_by.clone(),
                    }),
                    k.state,
                )
            }
            Some(k) => (None, k.state),
        };
        if let Some(event) = first {
            out.push(event)?;
        }
        if status.state != before {
            out.push(match status.state {
                ClockState::Breached => Event::ClockBreached {
                    clock: id.clone(),
                    deadline: c.deadline,
                },
                ClockState::Pending => Event::ClockReopened {
                    clock: id.clone(),
                    state: ClockState::Pending,
                },
                state => Event::ClockStopped {
                    clock: id.clone(),
                    state,
                    at: status.stopped_at.unwrap_or(out.now),
                    basis: status.basis.clone(),
                },
            })?;
        }
        // Staff's latest word that it is late, when the log does not have it yet. (A
        // re-derivation that no longer sees one leaves the log's account as it is: the log
        // records what staff said, and the tables show what holds now.)
        if let Some(a) = &c.acknowledged
            && out.rec.acknowledgement(id).as_ref() != Some(a)
        {
            out.push(Event::ClockAcknowledged {
                clock: id.clone(),
                at: a.at,
                reason: a.reason.clone(),
                by: a.by.clone(),
            })?;
        }
    }

    // Decided together: a command listed twice is reported twice, as before.
    let mut ignored: Vec<Event> = Vec::new();
    for ig in p.ignored() {
        let id = match (&ig.command, &ig.line) {
            (Some(c), _) => ignored_identity(&ig.message, &ig.reason, c),
            (None, l) => ignored_identity(&ig.message, &ig.reason, l),
        };
        if out.rec.ignored(&id) {
            continue;
        }
        ignored.push(Event::CommandIgnored {
            message: ig.message.clone(),
            message_id: ig.message_id.clone(),
            from: ig.from.clone(),
            command: ig.command.clone(),
            line: ig.line.clone(),
            reason: ig.reason.clone(),
        });
    }
    for event in ignored {
        out.push(event)?;
    }
    Ok(())
}

/// `case_merged` for every recorded case the projection no longer has, in case order: the
/// case's opening message now sits in an older case, which it points to.
fn merged_cases(p: &Projector, rec: &Recorded) -> Vec<Event> {
    let present: HashSet<CaseId> = p.held_cases().into_values().collect();
    rec.held_cases()
        .into_iter()
        .filter(|c| !present.contains(c))
        .map(|case| {
            let into = rec
                .a_message_of(&case)
                .and_then(|h| p.placements().get(&h))
                .and_then(|pl| pl.case.clone())
                .unwrap_or_default();
            Event::CaseMerged { case, into }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::ClockState;
    use crate::domain::model::{Command, FolderRole, SourceMeta};
    use crate::domain::timefmt::parse;
    use crate::reading::facts::Policy;
    use crate::reading::rules::RuleSet;
    use crate::reading::staff::StaffPolicy;
    use std::collections::HashMap;

    fn policy() -> Policy {
        Policy {
            staff: StaffPolicy {
                staff_domains: vec!["example-ca.test".into()],
                staff_addresses: vec![],
                trusted_authserv_ids: vec!["mx.example-ca.test".into()],
            },
            rules: RuleSet::shipped(),
            limits: crate::reading::limits::Limits::default(),
            canary_keys: Vec::new(),
        }
    }

    fn engine() -> Engine {
        Engine::new(Settings::default())
    }

    /// The facts of raw messages, as the pipeline works them out.
    fn facts_of(incoming: Vec<(Vec<u8>, SourceMeta)>, now: Timestamp) -> Vec<MessageFacts> {
        let policy = policy();
        incoming
            .into_iter()
            .map(|(raw, meta)| {
                let hash = crate::store::chain::content_hash(&raw);
                crate::reading::facts::message_facts(&raw, &hash, &meta, &policy, now)
            })
            .collect()
    }

    /// What one [`ingest`] recorded: the content hashes of the messages new to the engine, and
    /// every event.
    struct Ingested {
        messages: Vec<String>,
        events: Vec<Envelope>,
    }

    fn meta(folder: FolderRole) -> SourceMeta {
        SourceMeta {
            folder,
            position: None,
            server_time: None,
        }
    }

    const REPORT: &str = "Received: from r by mx.example-ca.test; Mon, 02 Mar 2026 10:00:00 +0000\r\n\
From: Rita <rita@reporter.test>\r\nTo: cpr@example-ca.test\r\nSubject: Misissued certificate\r\n\
Message-ID: <report@reporter.test>\r\n\r\nCN not in SAN: https://crt.sh/?id=42\r\n";
    const FOLLOW_UP: &str = "Received: from r by mx.example-ca.test; Mon, 02 Mar 2026 12:00:00 +0000\r\n\
From: Rita <rita@reporter.test>\r\nTo: cpr@example-ca.test\r\nSubject: Re: Misissued certificate\r\n\
Message-ID: <follow@reporter.test>\r\nReferences: <report@reporter.test>\r\n\r\nAny news?\r\n";
    const ANSWER: &str = "From: Desk <cpr@example-ca.test>\r\nTo: rita@reporter.test\r\n\
Subject: Re: Misissued certificate\r\nDate: Mon, 02 Mar 2026 15:00:00 +0000\r\n\
Message-ID: <answer@example-ca.test>\r\nIn-Reply-To: <report@reporter.test>\r\n\r\nLooking into it.\r\n";

    /// Receive and derive at once, as the service does: the batch with every event.
    fn ingest(e: &mut Engine, incoming: Vec<(Vec<u8>, SourceMeta)>, now: Timestamp) -> Ingested {
        let facts = facts_of(incoming, now);
        let mut messages: Vec<String> = facts
            .iter()
            .map(|f| f.content_hash.clone())
            .filter(|h| !e.facts().iter().any(|f| f.content_hash == **h))
            .collect();
        messages.dedup();
        let mut events = e.receive(facts, now);
        events.extend(e.tick(now));
        Ingested { messages, events }
    }

    fn now() -> Timestamp {
        parse("2026-03-02T16:00:00Z").unwrap()
    }

    fn ids(events: &[Envelope]) -> Vec<&'static str> {
        events.iter().map(|e| e.event.kind()).collect()
    }

    #[test]
    fn the_same_messages_twice_add_no_event() {
        let mut e = engine();
        let first = ingest(
            &mut e,
            vec![
                (REPORT.into(), meta(FolderRole::Inbox)),
                (ANSWER.into(), meta(FolderRole::Sent)),
            ],
            now(),
        );
        let kinds = ids(&first.events);
        assert!(kinds.contains(&"case_opened"), "{kinds:?}");
        assert!(kinds.contains(&"certificate_reported"), "{kinds:?}");
        let p = e.project_at(now());
        assert_eq!(p.cases[0].certificates[0].reference, "crtsh:42");
        assert_eq!(
            p.cases[0].clocks,
            ["preliminary_report:CPR-2026-0001", "revocation:crtsh:42"]
        );
        // Again, and once more from another folder: nothing new.
        let again = ingest(
            &mut e,
            vec![
                (REPORT.into(), meta(FolderRole::Junk)),
                (ANSWER.into(), meta(FolderRole::Sent)),
            ],
            now(),
        );
        assert!(again.events.is_empty(), "{:?}", ids(&again.events));
        assert!(again.messages.is_empty());
    }

    /// A report that talks about its private key without carrying one, quoting the PEM
    /// boundary line on the same line as its link: the certificate gets its clock, on the
    /// key-compromise rule's 24 hours, and no key is made up.
    #[test]
    fn a_report_quoting_a_pem_boundary_line_gets_its_certificate_and_rule() {
        let report = "Received: from r by mx.example-ca.test; Mon, 02 Mar 2026 10:00:00 +0000\r\n\
From: Rita <rita@reporter.test>\r\nTo: cpr@example-ca.test\r\nSubject: Problem report\r\n\
Message-ID: <quoted-pem@reporter.test>\r\n\r\nOur private key was leaked: the file starts with \
-----BEGIN RSA PRIVATE KEY----- and the certificate is https://crt.sh/?id=12345\r\n";
        let mut e = engine();
        ingest(
            &mut e,
            vec![(report.into(), meta(FolderRole::Inbox))],
            now(),
        );
        let p = e.project_at(now());
        let case = &p.cases[0];
        assert_eq!(case.certificates[0].reference, "crtsh:12345");
        assert!(case.keys.is_empty(), "{:?}", case.keys);
        let clock = &p.clocks["revocation:crtsh:12345"];
        assert_eq!(clock.basis, "key-compromise");
        assert_eq!(
            clock.deadline,
            parse("2026-03-03T10:00:00Z").unwrap(),
            "24 hours"
        );
    }

    #[test]
    fn a_restart_re_emits_nothing() {
        let mut e = engine();
        let batch = ingest(
            &mut e,
            vec![(REPORT.into(), meta(FolderRole::Inbox))],
            now(),
        );
        let mut restored = Engine::restore(Settings::default(), &batch.events, None);
        assert!(restored.tick(now()).is_empty());
        // Time passes: exactly the breach of the preliminary report is new (the revocation
        // clock has the 5-day window of the "CN not in SAN" rule).
        let later = parse("2026-03-03T10:00:00Z").unwrap();
        assert_eq!(ids(&restored.tick(later)), ["clock_breached"]);
        assert!(restored.tick(later).is_empty());
    }

    /// A staff message in the report's thread, sent at `date`, carrying `body`.
    fn staff_mail(id: &str, date: &str, body: &str) -> String {
        format!(
            "From: Desk <cpr@example-ca.test>\r\nTo: cpr@example-ca.test\r\n\
Subject: Re: Misissued certificate\r\nDate: {date}\r\n\
Message-ID: <{id}@example-ca.test>\r\nIn-Reply-To: <report@reporter.test>\r\n\r\n{body}\r\n"
        )
    }

    fn acknowledged_events(events: &[Envelope]) -> Vec<(String, String, String)> {
        events
            .iter()
            .filter_map(|e| match &e.event {
                Event::ClockAcknowledged {
                    clock, reason, by, ..
                } => Some((clock.to_string(), reason.clone(), by.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn cpr_delayed_acknowledges_a_breach_without_ending_it() {
        let mut e = engine();
        let breached = parse("2026-03-03T11:00:00Z").unwrap();
        ingest(
            &mut e,
            vec![(REPORT.into(), meta(FolderRole::Inbox))],
            breached,
        );
        // An hour after the breach (10:00), staff say it is late, by case id.
        let delayed = staff_mail(
            "delayed",
            "Tue, 03 Mar 2026 11:00:00 +0000",
            "Internal note.\r\nCPR-Delayed: CPR-2026-0001 https://bugzilla.mozilla.org/show_bug.cgi?id=1",
        );
        let batch = ingest(
            &mut e,
            vec![(delayed.into_bytes(), meta(FolderRole::Sent))],
            breached,
        );
        let prelim = "preliminary_report:CPR-2026-0001";
        assert_eq!(
            acknowledged_events(&batch.events),
            [(
                prelim.to_string(),
                "https://bugzilla.mozilla.org/show_bug.cgi?id=1".to_string(),
                "<delayed@example-ca.test>".to_string()
            )]
        );
        assert!(!ids(&batch.events).contains(&"clock_stopped"));
        let later = parse("2026-03-06T00:00:00Z").unwrap();
        let p = e.project_at(later);
        let c = &p.clocks[prelim];
        assert_eq!(c.status(later).state, ClockState::Breached);
        assert_eq!(c.deadline, parse("2026-03-03T10:00:00Z").unwrap());
        let a = c.acknowledged.as_ref().expect("acknowledged");
        assert_eq!(a.at, breached);
        // Time passing and a restart add nothing.
        assert!(e.tick(later).is_empty());
        let mut log = Vec::new();
        let mut e = engine();
        log.extend(
            ingest(
                &mut e,
                vec![(REPORT.into(), meta(FolderRole::Inbox))],
                breached,
            )
            .events,
        );
        let delayed = staff_mail(
            "delayed",
            "Tue, 03 Mar 2026 11:00:00 +0000",
            "CPR-Delayed: CPR-2026-0001 https://bugzilla.mozilla.org/show_bug.cgi?id=1",
        );
        log.extend(
            ingest(
                &mut e,
                vec![(delayed.into_bytes(), meta(FolderRole::Sent))],
                breached,
            )
            .events,
        );
        let mut restored = Engine::restore(Settings::default(), &log, None);
        assert!(restored.tick(later).is_empty());
        // A later CPR-Delayed replaces the reason; the log keeps both.
        let again = staff_mail(
            "again",
            "Wed, 04 Mar 2026 09:00:00 +0000",
            "CPR-Delayed: cpr-2026-0001 subscriber outage, see the incident",
        );
        let batch = ingest(
            &mut restored,
            vec![(again.into_bytes(), meta(FolderRole::Sent))],
            later,
        );
        let got = acknowledged_events(&batch.events);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1, "subscriber outage, see the incident");
        let p = restored.project_at(later);
        assert_eq!(
            p.clocks[prelim]
                .acknowledged
                .as_ref()
                .map(|a| a.by.as_str()),
            Some("<again@example-ca.test>")
        );
    }

    #[test]
    fn cpr_delayed_names_a_revocation_clock_by_any_name_and_is_ignored_when_it_names_none() {
        let mut e = engine();
        let at = parse("2026-03-03T12:00:00Z").unwrap();
        let staff = staff_mail(
            "delayed-cert",
            "Mon, 02 Mar 2026 11:00:00 +0000",
            "CPR-Delayed: https://crt.sh/?id=42 https://bugzilla.mozilla.org/show_bug.cgi?id=2\r\n\
CPR-Delayed: crtsh:999 no such certificate\r\n\
CPR-Delayed: CPR-2026-0042 no such case",
        );
        let batch = ingest(
            &mut e,
            vec![
                (REPORT.into(), meta(FolderRole::Inbox)),
                (staff.into_bytes(), meta(FolderRole::Sent)),
            ],
            at,
        );
        assert_eq!(
            acknowledged_events(&batch.events),
            [(
                "revocation:crtsh:42".to_string(),
                "https://bugzilla.mozilla.org/show_bug.cgi?id=2".to_string(),
                "<delayed-cert@example-ca.test>".to_string()
            )]
        );
        let ignored: Vec<&str> = batch
            .events
            .iter()
            .filter_map(|e| match &e.event {
                Event::CommandIgnored { reason, .. } => Some(reason.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(ignored.len(), 2, "{ignored:?}");
        assert!(
            ignored.iter().any(
                |r| r.contains("crtsh:999 names no reported certificate or key")
                    && r.contains("CPR-YYYY-NNNN")
            ),
            "{ignored:?}"
        );
        assert!(
            ignored
                .iter()
                .any(|r| r.contains("CPR-2026-0042 names no case")),
            "{ignored:?}"
        );
        // Acknowledged before its deadline: still pending, and the deadline is the rule's.
        let p = e.project_at(at);
        let c = &p.clocks["revocation:crtsh:42"];
        assert_eq!(c.status(at).state, ClockState::Pending);
        assert!(c.acknowledged.is_some());
        assert!(
            p.clocks["preliminary_report:CPR-2026-0001"]
                .acknowledged
                .is_none()
        );
    }

    #[test]
    fn cpr_delayed_from_outside_the_desk_is_ignored() {
        let mut e = engine();
        let at = parse("2026-03-03T12:00:00Z").unwrap();
        let forged = "Received: from r by mx.example-ca.test; Mon, 02 Mar 2026 11:00:00 +0000\r\n\
From: Desk <cpr@example-ca.test>\r\nTo: cpr@example-ca.test\r\nSubject: Re: Misissued certificate\r\n\
Message-ID: <forged@reporter.test>\r\nIn-Reply-To: <report@reporter.test>\r\n\r\n\
CPR-Delayed: CPR-2026-0001 trust me\r\n";
        let batch = ingest(
            &mut e,
            vec![
                (REPORT.into(), meta(FolderRole::Inbox)),
                (forged.into(), meta(FolderRole::Inbox)),
            ],
            at,
        );
        assert!(acknowledged_events(&batch.events).is_empty());
        assert!(batch.events.iter().any(|e| matches!(
            &e.event,
            Event::CommandIgnored { reason, command: Some(Command::Delayed { .. }), .. }
                if reason.contains("not staff")
        )));
        let p = e.project_at(at);
        assert!(
            p.clocks["preliminary_report:CPR-2026-0001"]
                .acknowledged
                .is_none()
        );
    }

    #[test]
    fn a_sent_answer_synced_before_the_report_still_meets_the_clock() {
        let mut e = engine();
        let first = ingest(&mut e, vec![(ANSWER.into(), meta(FolderRole::Sent))], now());
        assert_eq!(ids(&first.events), ["message_received", "message_logged"]);
        let second = ingest(
            &mut e,
            vec![(REPORT.into(), meta(FolderRole::Inbox))],
            now(),
        );
        let kinds = ids(&second.events);
        assert!(
            kinds.contains(&"case_opened") && kinds.contains(&"message_joined"),
            "{kinds:?}"
        );
        let p = e.project_at(now());
        let c = &p.clocks["preliminary_report:CPR-2026-0001"];
        let s = c.status(now());
        assert_eq!(s.state, ClockState::Met);
        assert_eq!(s.stopped_at, Some(parse("2026-03-02T15:00:00Z").unwrap()));
    }

    #[test]
    fn an_older_message_arriving_late_merges_the_cases_it_links() {
        let mut e = engine();
        // The follow-up arrives first and opens a case of its own …
        let first = ingest(
            &mut e,
            vec![(FOLLOW_UP.into(), meta(FolderRole::Inbox))],
            now(),
        );
        assert!(ids(&first.events).contains(&"case_opened"));
        // … then the original report, received earlier, is read (e.g. from Junk).
        let second = ingest(&mut e, vec![(REPORT.into(), meta(FolderRole::Junk))], now());
        let kinds = ids(&second.events);
        assert!(kinds.contains(&"case_merged"), "{kinds:?}");
        let p = e.project_at(now());
        assert_eq!(p.cases.len(), 1);
        assert_eq!(p.cases[0].messages.len(), 2);
        assert_eq!(p.cases[0].opened_at, parse("2026-03-02T10:00:00Z").unwrap());
        // The case keeps no duplicate number: the merged case's id is not reused.
        assert_eq!(p.cases[0].id, "CPR-2026-0002");
    }

    #[test]
    fn messages_received_after_the_moment_do_not_exist_yet() {
        let mut e = engine();
        ingest(
            &mut e,
            vec![
                (REPORT.into(), meta(FolderRole::Inbox)),
                (ANSWER.into(), meta(FolderRole::Sent)),
            ],
            now(),
        );
        let before_answer = parse("2026-03-02T14:00:00Z").unwrap();
        let p = e.project_at(before_answer);
        assert_eq!(p.cases[0].messages.len(), 1);
        let c = &p.clocks["preliminary_report:CPR-2026-0001"];
        assert_eq!(c.status(before_answer).state, ClockState::Pending);
        assert!(
            e.project_at(parse("2026-03-02T09:00:00Z").unwrap())
                .cases
                .is_empty()
        );
    }

    /// Every message of every scenario, with the folder it sits in.
    fn scenario_files() -> Vec<(Vec<u8>, SourceMeta)> {
        let mut files: Vec<(Vec<u8>, SourceMeta)> = Vec::new();
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/scenarios");
        for scenario in std::fs::read_dir(root).unwrap() {
            let scenario = scenario.unwrap().path();
            for (sub, folder) in [
                ("inbox", FolderRole::Inbox),
                ("junk", FolderRole::Junk),
                ("sent", FolderRole::Sent),
            ] {
                let Ok(dir) = std::fs::read_dir(scenario.join(sub)) else {
                    continue;
                };
                for f in dir {
                    let raw = std::fs::read(f.unwrap().path()).unwrap();
                    files.push((raw, meta(folder)));
                }
            }
        }
        assert!(files.len() > 50, "scenario fixtures missing under {root}");
        files
    }

    /// The recorded state of every clock is its state at `now` in the projection.
    fn assert_recorded_is_current(e: &mut Engine, now: Timestamp) {
        let p = e.current().expect("a projection after a tick");
        for (id, c) in &p.clocks {
            let recorded = e.recorded.clock(id).map(|r| r.state);
            assert_eq!(
                recorded,
                Some(c.status(now).state),
                "clock {id} at {}",
                crate::domain::timefmt::format(now)
            );
        }
    }

    #[test]
    fn ticking_forward_records_every_change_that_time_brings() {
        // Each message arrives at its receipt time and the clock ticks hourly in between, as in
        // the service: the ticks compare only touched and due clocks, yet miss no state.
        let files = scenario_files();
        let mut whole = engine();
        ingest(
            &mut whole,
            files.clone(),
            parse("2026-12-01T00:00:00Z").unwrap(),
        );
        let mut by_hash: HashMap<String, (Vec<u8>, SourceMeta)> = files
            .into_iter()
            .map(|(raw, m)| (crate::store::chain::content_hash(&raw), (raw, m)))
            .collect();
        let mut e = engine();
        let mut now = whole.facts()[0].received_at;
        for f in whole.facts() {
            while now + time::Duration::hours(1) < f.received_at {
                now += time::Duration::hours(1);
                e.tick(now);
                if e.current().is_some() {
                    assert_recorded_is_current(&mut e, now);
                }
            }
            now = now.max(f.received_at);
            let one = by_hash.remove(&f.content_hash).unwrap();
            ingest(&mut e, vec![one], now);
            assert_recorded_is_current(&mut e, now);
        }
        let end = now + time::Duration::days(40);
        let mut breaches = 0;
        while now < end {
            now += time::Duration::hours(1);
            breaches += e
                .tick(now)
                .iter()
                .filter(|ev| ev.event.kind() == "clock_breached")
                .count();
            assert_recorded_is_current(&mut e, now);
        }
        assert!(breaches > 0, "the scenarios leave some clock to breach");
    }

    /// A mass report's events are handed on in pieces: together they are exactly the events
    /// of one tick, in order, and a sink that fails stops the tick there.
    #[test]
    fn events_handed_on_in_pieces_are_those_of_one_tick() {
        let late = parse("2026-12-01T00:00:00Z").unwrap();
        let received = || {
            let mut e = engine();
            e.receive(facts_of(scenario_files(), late), late);
            e
        };
        let all = received().tick(late);
        let mut got = Vec::new();
        let mut sizes = Vec::new();
        let handed = received()
            .tick_in_pieces(late, 7, |piece, _| {
                // Pieces of table versions alone (no events) come first.
                if !piece.is_empty() {
                    sizes.push(piece.len());
                }
                got.extend(piece);
                Ok::<(), Unreadable>(())
            })
            .unwrap();
        assert_eq!(handed, all.len());
        assert_eq!(got, all);
        assert!(sizes.len() > 2, "{sizes:?}");
        assert!(sizes.iter().all(|&n| (1..=7).contains(&n)), "{sizes:?}");

        let mut calls = 0;
        let stopped = received().tick_in_pieces(late, 7, |_, _| {
            calls += 1;
            if calls == 2 { Err(Unreadable) } else { Ok(()) }
        });
        assert_eq!(stopped, Err(Unreadable));
        assert_eq!(calls, 2);
    }

    #[test]
    fn feeding_one_message_at_a_time_equals_a_full_rebuild() {
        // Every scenario message, in receipt order, one batch each: the incremental path.
        let files = scenario_files();
        let late = parse("2026-12-01T00:00:00Z").unwrap();
        let mut whole = engine();
        ingest(&mut whole, files.clone(), late);
        let order: Vec<String> = whole
            .facts()
            .iter()
            .map(|f| f.content_hash.clone())
            .collect();
        let mut by_hash: HashMap<String, (Vec<u8>, SourceMeta)> = files
            .into_iter()
            .map(|(raw, m)| (crate::store::chain::content_hash(&raw), (raw, m)))
            .collect();
        let mut piecewise = engine();
        for h in &order {
            let one = by_hash.remove(h).unwrap();
            ingest(&mut piecewise, vec![one], late);
        }
        let (a, b) = (whole.current().unwrap(), piecewise.current().unwrap());
        assert_eq!(a.cases, b.cases);
        assert_eq!(a.clocks, b.clocks);
        assert_eq!(a.ignored, b.ignored);
        // And the incremental projection equals a fresh one built from scratch.
        let fresh = piecewise.project_at(late);
        assert_eq!(fresh.cases, b.cases);
        assert_eq!(fresh.clocks, b.clocks);
    }
}
