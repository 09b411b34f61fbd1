//! The engine: messages in, events out. Pure — the caller passes `now` and persists the batch.
//!
//! The engine holds the facts of every message received so far and a [`Recorded`] view: what
//! the log already says (cases opened, clocks started, states reached). After each batch, or
//! each tick of the clock, it projects cases and clocks afresh and appends exactly the
//! difference between the projection and the recorded view. So re-reading a folder adds
//! nothing, a restart re-emits nothing, and a message arriving out of order produces the
//! events that describe its effect (a revised deadline, a merged case) instead of a different
//! history.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::deciding::cases::{self, Changes, Emit, Projection, Projector, Settings};
use crate::deciding::clock::Clock;
use crate::deciding::tables::Delta;
use crate::deciding::threading::Assigned;
use crate::domain::event::{ClockState, Envelope, Event, MessageFacts};
use crate::domain::ids::{CaseId, ClockId};
use crate::domain::model::Timestamp;

#[derive(Clone, Debug, PartialEq)]
struct RecordedClock {
    started_at: Timestamp,
    deadline: Timestamp,
    basis: String,
    state: ClockState,
}

/// The log's own account of cases and clocks, rebuilt by applying events in order.
#[derive(Debug, Default)]
struct Recorded {
    /// Active (not merged) cases.
    cases: HashSet<CaseId>,
    /// Content hash → case, or `None` for a logged message.
    placements: HashMap<String, Option<CaseId>>,
    /// Certificates and keys reported, by case: a mass report's 100 000 certificates do not
    /// each carry a copy of the case's name.
    case_certs: HashMap<CaseId, HashSet<String>>,
    case_keys: HashMap<CaseId, HashSet<String>>,
    /// By clock id. Only looked up, never walked in order.
    clocks: HashMap<ClockId, RecordedClock>,
    ignored: HashSet<String>,
}

/// Whether `case` lists `item` in `by_case`.
fn listed(by_case: &HashMap<CaseId, HashSet<String>>, case: &CaseId, item: &str) -> bool {
    by_case.get(case).is_some_and(|s| s.contains(item))
}

/// Add `item` to what `case` lists in `by_case`.
fn list(by_case: &mut HashMap<CaseId, HashSet<String>>, case: &CaseId, item: String) {
    match by_case.get_mut(case) {
        Some(s) => {
            s.insert(item);
        }
        None => {
            by_case.insert(case.clone(), HashSet::from([item]));
        }
    }
}

fn ignored_identity(message: &str, reason: &str, cmd: &impl serde::Serialize) -> String {
    format!(
        "{message}|{reason}|{}",
        serde_json::to_string(cmd).unwrap_or_default()
    )
}

impl Recorded {
    fn apply(&mut self, e: &Event, assigned: &mut Assigned) {
        match e {
            Event::MessageReceived { .. } => {}
            Event::MessageLogged { message, .. } => {
                self.placements.insert(message.clone(), None);
            }
            Event::CaseOpened { case, message, .. } => {
                self.cases.insert(case.clone());
                self.placements.insert(message.clone(), Some(case.clone()));
                assigned.insert(message.clone(), case.clone());
            }
            Event::MessageJoined { case, message, .. } => {
                self.placements.insert(message.clone(), Some(case.clone()));
            }
            Event::CaseMerged { case, .. } => {
                self.cases.remove(case);
            }
            Event::CertificateReported { case, certificate } => {
                list(&mut self.case_certs, case, certificate.reference.clone());
            }
            Event::KeyReported { case, key } => {
                list(&mut self.case_keys, case, key.identity());
            }
            Event::ClockStarted {
                clock,
                started_at,
                deadline,
                basis,
                ..
            } => {
                self.clocks.insert(
                    clock.clone(),
                    RecordedClock {
                        started_at: *started_at,
                        deadline: *deadline,
                        basis: basis.clone(),
                        state: ClockState::Pending,
                    },
                );
            }
            Event::ClockRevised {
                clock,
                started_at,
                deadline,
                basis,
                ..
            } => {
                if let Some(c) = self.clocks.get_mut(clock) {
                    c.started_at = *started_at;
                    c.deadline = *deadline;
                    c.basis = basis.clone();
                }
            }
            Event::ClockStopped { clock, state, .. } | Event::ClockReopened { clock, state } => {
                if let Some(c) = self.clocks.get_mut(clock) {
                    c.state = *state;
                }
            }
            Event::ClockBreached { clock, .. } => {
                if let Some(c) = self.clocks.get_mut(clock) {
                    c.state = ClockState::Breached;
                }
            }
            Event::CommandIgnored {
                message,
                command,
                line,
                reason,
                ..
            } => {
                let id = match (command, line) {
                    (Some(c), _) => ignored_identity(message, reason, c),
                    (None, l) => ignored_identity(message, reason, l),
                };
                self.ignored.insert(id);
            }
        }
    }
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
        if let Event::MessageReceived { facts } = &env.event
            && self.tables_through.is_none_or(|t| seq > t)
        {
            e.unprojected = Some(
                e.unprojected
                    .map_or(facts.received_at, |u| u.min(facts.received_at)),
            );
        }
        e.absorb(env.event);
    }

    pub(crate) fn finish(self) -> Engine {
        let mut e = self.engine;
        e.facts.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        e
    }
}

/// Messages fed to the projector between two looks at how many table versions it made.
const VERSION_SLICE: usize = 2048;

/// Table versions from which they are handed on by themselves, ahead of the tick's events.
const VERSION_PIECE: usize = 10_000;

/// From how many clocks at once the timeline is extended by a tree built of its own.
const BULK_TIMELINE: usize = 1024;

/// The core's state between batches.
pub struct Engine {
    settings: Settings,
    /// Sorted by [`MessageFacts::sort_key`].
    facts: Vec<MessageFacts>,
    known: HashSet<String>,
    assigned: Assigned,
    recorded: Recorded,
    /// The projection of all facts, fed incrementally while new messages sort after the old.
    projector: Option<Projector>,
    /// Clocks by the next moment time alone may change their state (see
    /// [`Clock::next_change_after`]): a tick compares the clocks the new messages touched and
    /// those whose moment has come, not every clock the desk holds.
    ///
    /// [`Clock::next_change_after`]: crate::deciding::clock::Clock::next_change_after
    timeline: BTreeSet<(Timestamp, ClockId)>,
    /// When the timeline was last brought up to date; `None` makes the next tick compare every
    /// clock and rebuild it.
    evaluated_at: Option<Timestamp>,
    /// The earliest receipt time among messages whose effect the store's tables do not hold
    /// yet (`None`: they hold every message). A rebuilt projection re-derives the tables from
    /// there on, and no earlier.
    unprojected: Option<Timestamp>,
}

impl Engine {
    pub fn new(settings: Settings) -> Engine {
        Engine {
            settings,
            facts: Vec::new(),
            known: HashSet::new(),
            assigned: Assigned::new(),
            recorded: Recorded::default(),
            projector: None,
            timeline: BTreeSet::new(),
            evaluated_at: None,
            unprojected: None,
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

    /// Whether the next tick derives cases and clocks from the start again (a message older
    /// than those derived arrived since, or nothing was derived yet), rather than extending
    /// what it derived before.
    pub(crate) fn would_rederive(&self) -> bool {
        self.projector.is_none() && !self.facts.is_empty()
    }

    fn absorb(&mut self, event: Event) {
        if let Event::MessageReceived { facts } = event {
            if self.known.insert(facts.content_hash.clone()) {
                self.facts.push(*facts);
                self.projector = None;
            }
        } else {
            self.recorded.apply(&event, &mut self.assigned);
        }
    }

    /// Whether a message with this content hash was received before.
    pub(crate) fn knows(&self, content_hash: &str) -> bool {
        self.known.contains(content_hash)
    }

    /// The content hashes of every message recorded so far.
    pub(crate) fn known(&self) -> &HashSet<String> {
        &self.known
    }

    pub fn message_count(&self) -> usize {
        self.facts.len()
    }

    /// Every message, in receipt order.
    pub fn facts(&self) -> &[MessageFacts] {
        &self.facts
    }

    /// Take in the facts of messages seen at `now` without deriving cases and clocks: a
    /// [`Engine::tick`] does that, at once (the service) or after many batches (a bulk load,
    /// where deriving once beats re-deriving after every batch when folders arrive out of time
    /// order). Returns the `message_received` events of the messages it did not know, in
    /// receipt order; the engine has already absorbed them, so on a failed commit rebuild the
    /// engine from the store.
    pub fn receive(&mut self, incoming: Vec<MessageFacts>, now: Timestamp) -> Vec<Envelope> {
        let mut new_facts = Vec::new();
        for f in incoming {
            if !self.known.insert(f.content_hash.clone()) {
                continue;
            }
            self.unprojected = Some(
                self.unprojected
                    .map_or(f.received_at, |u| u.min(f.received_at)),
            );
            new_facts.push(f);
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
        if let Some(first) = new_facts.first() {
            // The usual case: new mail is newer than everything seen, and the projection is
            // extended. An older message (a backfill, a Junk folder read late) rebuilds it.
            let appends = self
                .facts
                .last()
                .is_none_or(|last| last.sort_key() < first.sort_key());
            self.facts.extend(new_facts);
            if !appends {
                self.facts.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
                self.projector = None;
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
            Ok::<(), std::convert::Infallible>(())
        });
        match handed {
            Ok(_) => all,
            Err(never) => match never {},
        }
    }

    /// [`Engine::tick`], handing the events to `sink` in pieces of at most `piece` events, in
    /// order, as they are found, instead of returning them all at once: a mass report derives
    /// 200 000 events, which need not all be in memory together. Returns how many events there
    /// were. Each event is absorbed as it is found; if `sink` fails the tick stops there, and
    /// the engine has absorbed events that were not handed over: rebuild it from what was kept.
    pub(crate) fn tick_in_pieces<E>(
        &mut self,
        now: Timestamp,
        piece: usize,
        mut sink: impl FnMut(Vec<Envelope>, Option<Delta>) -> Result<(), E>,
    ) -> Result<usize, E> {
        // The tables hold the projection of every message received, whatever `now`: the
        // projector takes them all in first. A new projector re-derives from the earliest
        // message the tables lack, and the store forgets what it held from there on.
        let rebuilt = self.projector.is_none();
        let emit = match self.unprojected {
            Some(t) => Emit::From(t),
            None => Emit::Nothing,
        };
        let projector = self
            .projector
            .get_or_insert_with(|| Projector::versioned(&self.assigned, &self.settings, emit));
        // Fed a slice at a time; versions beyond a piece's worth are handed on as they are
        // made (the truncation with the first), so a bulk load's hundreds of thousands are
        // never held at once. The rest ride with the last piece of events, so an ordinary
        // batch commits its events and tables together; the tables are marked complete only
        // then, so a crash in between re-derives them from the truncation point on.
        let mut pending = Delta {
            truncate_from: if rebuilt { self.unprojected } else { None },
            ..Delta::default()
        };
        let n = self.facts.len();
        let mut fed = projector.fed();
        loop {
            let mut next = (fed + VERSION_SLICE).min(n);
            while next < n && self.facts[next].received_at == self.facts[next - 1].received_at {
                next += 1;
            }
            projector.feed(&self.facts[..next]);
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
            complete: self.unprojected.is_some(),
            ..pending
        };
        let mut out = Emitted {
            now,
            rec: &mut self.recorded,
            assigned: &mut self.assigned,
            piece: piece.max(1),
            list: Vec::new(),
            handed: 0,
            sink: &mut sink,
            delta: Some(delta),
        };
        if self.facts.last().is_some_and(|f| f.received_at > now) {
            // Evaluating before the newest receipt (only tests and replays do): project afresh.
            let cut = self.facts.partition_point(|f| f.received_at <= now);
            let mut p = Projector::new(out.assigned, &self.settings);
            p.feed(&self.facts[..cut]);
            let full = Changes {
                full: true,
                ..Changes::default()
            };
            self.evaluated_at = None;
            diff(&mut p, &full, None, &mut out)?;
        } else if let Some(projector) = self.projector.as_mut() {
            let mut changes = projector.take_changes();
            // Time only moves forward here; if it did not (a clock set back), compare all.
            let every = changes.full || self.evaluated_at.is_none_or(|t| now < t);
            let mut clocks = std::mem::take(&mut changes.clocks);
            if every {
                self.timeline.clear();
                clocks.extend(projector.held_clocks());
            } else {
                while self.timeline.first().is_some_and(|(at, _)| *at <= now) {
                    if let Some((_, id)) = self.timeline.pop_first() {
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
            if due.len() >= BULK_TIMELINE && due.len() >= self.timeline.len() {
                // Inserted one by one in order, they would leave every node half empty.
                let mut more: BTreeSet<(Timestamp, ClockId)> = due.into_iter().collect();
                self.timeline.append(&mut more);
            } else {
                self.timeline.extend(due);
            }
            self.evaluated_at = Some(now);
            diff(projector, &changes, Some(&clocks), &mut out)?;
        }
        out.finish()?;
        self.unprojected = None;
        Ok(out.handed)
    }

    /// The projection made by the last [`Engine::tick`], if no message arrived since.
    #[cfg(test)]
    pub(crate) fn current(&self) -> Option<Projection> {
        self.projector.as_ref().map(Projector::snapshot)
    }

    /// The pending clocks the last [`Engine::tick`] derived (if no message arrived since) whose
    /// deadline is within `span` of `now`, each with the first case that lists it.
    pub(crate) fn due_within(
        &mut self,
        now: Timestamp,
        span: time::Duration,
    ) -> Vec<(Clock, Option<CaseId>)> {
        let Some(p) = self.projector.as_mut() else {
            return Vec::new();
        };
        let mut case_of: HashMap<ClockId, CaseId> = HashMap::new();
        for (_, id) in p.held_cases() {
            if let Some(c) = p.case(&id) {
                for clock in &c.clocks {
                    case_of.entry(clock.clone()).or_insert_with(|| c.id.clone());
                }
            }
        }
        let mut out = Vec::new();
        for id in p.held_clocks() {
            if let Some(c) = p.clock(&id)
                && c.status(now).state == ClockState::Pending
                && c.deadline - now <= span
            {
                out.push((c.clone(), case_of.get(&id).cloned()));
            }
        }
        out
    }

    /// The projection as it was at `at`: messages received later do not exist yet.
    pub fn project_at(&self, at: Timestamp) -> Projection {
        let cut = self.facts.partition_point(|f| f.received_at <= at);
        cases::project(&self.facts[..cut], &self.assigned, &self.settings)
    }
}

/// Events as `diff` finds them, already in their envelopes, each applied to the recorded view
/// as it is found and handed on in pieces: a mass report makes hundreds of thousands at once,
/// and holding them all (and wrapping them afterwards) would hold every event, or twice.
struct Emitted<'a, E> {
    now: Timestamp,
    rec: &'a mut Recorded,
    assigned: &'a mut Assigned,
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
        self.rec.apply(&event, self.assigned);
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
    out: &mut Emitted<'_, E>,
) -> Result<(), E> {
    let touched = if changes.full {
        p.held_cases()
    } else {
        changes.cases.clone()
    };
    // Cases only disappear when a rebuild merged them into an older one. Decided before the
    // messages of the touched cases are re-placed below.
    let merged = if changes.full {
        merged_cases(p, out.rec)
    } else {
        Vec::new()
    };
    for id in touched.values() {
        let Some(case) = p.case(id) else {
            continue;
        };
        if !out.rec.cases.contains(&case.id) {
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
            let placed_here = matches!(
                out.rec.placements.get(&m.content_hash),
                Some(Some(c)) if *c == case.id
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
            if !listed(&out.rec.case_certs, &case.id, &c.reference) {
                out.push(Event::CertificateReported {
                    case: case.id.clone(),
                    certificate: Box::new(c.clone()),
                })?;
            }
        }
        for k in &case.keys {
            if !listed(&out.rec.case_keys, &case.id, &k.identity()) {
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
        if pl.case.is_none() && out.rec.placements.get(hash) != Some(&None) {
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
        let (first, before) = match out.rec.clocks.get(id) {
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
    }

    // Decided together: a command listed twice is reported twice, as before.
    let ignored: Vec<Event> = p
        .ignored()
        .iter()
        .filter(|ig| {
            let id = match (&ig.command, &ig.line) {
                (Some(c), _) => ignored_identity(&ig.message, &ig.reason, c),
                (None, l) => ignored_identity(&ig.message, &ig.reason, l),
            };
            !out.rec.ignored.contains(&id)
        })
        .map(|ig| Event::CommandIgnored {
            message: ig.message.clone(),
            message_id: ig.message_id.clone(),
            from: ig.from.clone(),
            command: ig.command.clone(),
            line: ig.line.clone(),
            reason: ig.reason.clone(),
        })
        .collect();
    for event in ignored {
        out.push(event)?;
    }
    Ok(())
}

/// `case_merged` for every recorded case the projection no longer has, in case order: the
/// case's opening message now sits in an older case, which it points to.
fn merged_cases(p: &Projector, rec: &Recorded) -> Vec<Event> {
    let present: HashSet<CaseId> = p.held_cases().into_values().collect();
    let mut gone: Vec<&CaseId> = rec.cases.iter().filter(|c| !present.contains(*c)).collect();
    gone.sort();
    gone.into_iter()
        .map(|case| {
            let into = rec
                .placements
                .iter()
                .find(|(_, c)| c.as_ref() == Some(case))
                .and_then(|(h, _)| p.placements().get(h))
                .and_then(|pl| pl.case.clone())
                .unwrap_or_default();
            Event::CaseMerged {
                case: case.clone(),
                into,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::ClockState;
    use crate::domain::model::{FolderRole, SourceMeta};
    use crate::domain::timefmt::parse;
    use crate::reading::facts::Policy;
    use crate::reading::rules::RuleSet;
    use crate::reading::staff::StaffPolicy;

    fn policy() -> Policy {
        Policy {
            staff: StaffPolicy {
                staff_domains: vec!["example-ca.test".into()],
                staff_addresses: vec![],
                trusted_authserv_ids: vec!["mx.example-ca.test".into()],
            },
            rules: RuleSet::shipped(),
            limits: crate::reading::limits::Limits::default(),
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
            .filter(|h| !e.knows(h))
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
    fn assert_recorded_is_current(e: &Engine, now: Timestamp) {
        let p = e.current().expect("a projection after a tick");
        for (id, c) in &p.clocks {
            let recorded = e.recorded.clocks.get(id).map(|r| r.state);
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
                    assert_recorded_is_current(&e, now);
                }
            }
            now = now.max(f.received_at);
            let one = by_hash.remove(&f.content_hash).unwrap();
            ingest(&mut e, vec![one], now);
            assert_recorded_is_current(&e, now);
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
            assert_recorded_is_current(&e, now);
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
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(handed, all.len());
        assert_eq!(got, all);
        assert!(sizes.len() > 2, "{sizes:?}");
        assert!(sizes.iter().all(|&n| (1..=7).contains(&n)), "{sizes:?}");

        let mut calls = 0;
        let stopped = received().tick_in_pieces(late, 7, |_, _| {
            calls += 1;
            if calls == 2 { Err("full") } else { Ok(()) }
        });
        assert_eq!(stopped, Err("full"));
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
