//! Cases and clocks as a pure function of the received messages and a moment in time.
//!
//! Nothing here reads the store or the wall clock: [`project`] takes the messages (their
//! [`MessageFacts`], as stored in the log), the case numbers already handed out, and `at`.
//! Messages received after `at` do not exist yet; a command that takes effect after `at` has
//! not taken effect. Everything a person or an auditor sees is rendered from this.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use time::Duration;

use crate::deciding::clock::{
    self, Acknowledgement, Candidate, Claim, Clock, Decision, Stop, StopKind,
};
use crate::deciding::fold::{
    self, Backing, CertEntry, Class, Detached, FoldVersion, Sightings, Space, Work,
};
use crate::deciding::tables::{self, ClockVersion, Version};
use crate::deciding::threading::{self, Assigned, Threads};
use crate::domain::event::{Automation, ClockKind, MessageFacts};
use crate::domain::ids::{CaseId, ClockId};
use crate::domain::model::{BadCommand, CertificateRef, Command, KeyRef, Timestamp};

/// Knobs of the projection that come from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Same reporter + same subject joins a case within this span (default 30 days).
    pub thread_window: Duration,
    /// `[revocation] require_verified`: a staff `CPR-Revoked` on a certificate is a claim, and
    /// only a revocation check's own record stops its clock (at the revocationTime the CA
    /// published). A key's clock still stops on staff's word: no responder answers for a key.
    pub require_verified: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            thread_window: Duration::days(30),
            require_verified: true,
        }
    }
}

/// One message as a case lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseMessage {
    pub content_hash: String,
    pub message_id: String,
    pub received_at: Timestamp,
    pub from: String,
    pub folder: crate::domain::model::FolderRole,
    pub staff: bool,
    /// `opened` or how it joined.
    pub via: &'static str,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    pub id: CaseId,
    /// Content hash of the message that opened it.
    pub founder: String,
    pub reporter: String,
    /// Where the preliminary report must go: the report's `From:` and `Reply-To:`.
    pub reporter_addresses: Vec<String>,
    pub subject: String,
    pub opened_at: Timestamp,
    pub messages: Vec<CaseMessage>,
    pub certificates: Vec<CertificateRef>,
    pub keys: Vec<KeyRef>,
    /// Ids of the clocks shown with this case: its preliminary report, then the revocation
    /// clocks of its certificates and keys.
    pub clocks: Vec<ClockId>,
    /// When and why staff dismissed it.
    pub dismissed: Option<(Timestamp, String)>,
}

/// A command that changed nothing, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Ignored {
    pub message: String,
    pub message_id: String,
    pub from: String,
    pub command: Option<Command>,
    pub line: Option<BadCommand>,
    pub reason: String,
}

/// Where a message ended up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub case: Option<CaseId>,
    /// `opened`, the joining path, or the reason it is only logged.
    pub how: &'static str,
    pub message_id: String,
}

#[derive(Clone, Debug, Default)]
pub struct Projection {
    pub cases: Vec<Case>,
    pub clocks: BTreeMap<ClockId, Clock>,
    /// By content hash.
    pub placements: BTreeMap<String, Placement>,
    pub ignored: Vec<Ignored>,
    /// What OCSP and CRL said last about each certificate with a revocation clock, by its
    /// clock's target: filled by the views that read the check rows, empty in a derivation.
    pub observed: BTreeMap<String, Vec<crate::domain::event::Observation>>,
    /// Why a certificate could not be checked at all (no copy of it, no issuer, no responder),
    /// by its clock's target: filled like `observed`.
    pub unchecked: BTreeMap<String, String>,
}

impl Projection {
    pub fn case(&self, id: &str) -> Option<&Case> {
        self.cases.iter().find(|c| c.id.as_str() == id)
    }
}

/// Per-case facts the clocks need, kept up to date as messages join.
#[derive(Debug)]
struct CaseWork {
    /// Deadline class of the case: from key evidence, rules or the default.
    class: Class,
    /// What the store keeps of it: the best rule, key evidence, the first time of each key.
    kept: Work,
    /// The certificates this case names (by reference), as a set and in the order the case
    /// named them.
    cert_seen: HashSet<String>,
    cert_order: Vec<String>,
    /// Where each referenced key sits in the case's `keys`: merging a key is a look-up, not a
    /// search (a report may name 100 000 keys).
    key_at: HashMap<String, usize>,
    dismissed: Option<(Timestamp, String)>,
}

impl Class {
    fn fixed(window: Duration, basis: &str) -> Class {
        Class {
            window,
            basis: basis.to_string(),
            matched: None,
        }
    }
}

impl CaseWork {
    fn new() -> CaseWork {
        CaseWork {
            class: Class::fixed(clock::DAY, clock::BASIS_DEFAULT),
            kept: Work::default(),
            cert_seen: HashSet::new(),
            cert_order: Vec::new(),
            key_at: HashMap::new(),
            dismissed: None,
        }
    }

    /// The work of a case read back from the store.
    fn restored(case: &Case, kept: Work) -> CaseWork {
        let mut w = CaseWork::new();
        w.kept = kept;
        for c in &case.certificates {
            w.cert_seen.insert(c.reference.clone());
            w.cert_order.push(c.reference.clone());
        }
        for (i, k) in case.keys.iter().enumerate() {
            if let Some(r) = &k.reference {
                w.key_at.insert(r.clone(), i);
            }
        }
        w.dismissed.clone_from(&case.dismissed);
        w.reclassify();
        w
    }

    fn reclassify(&mut self) {
        self.class = if self.kept.key_evidence {
            Class::fixed(clock::DAY, clock::BASIS_KEY)
        } else if let Some(best) = &self.kept.rule_best {
            best.clone()
        } else {
            Class::fixed(clock::DAY, clock::BASIS_DEFAULT)
        };
    }
}

/// A case the projector holds.
#[derive(Debug)]
struct Slot {
    /// Its place among all cases.
    ord: usize,
    case: Case,
    work: CaseWork,
    /// The stops its preliminary-report clock has from staff answers (a dismissal is added
    /// when the clock is built).
    answers: Vec<Stop>,
}

/// Cases by their place among all cases: the order events about them are written in.
type CaseSet = BTreeMap<usize, CaseId>;

/// What changed since the last [`Projector::take_changes`]: the engine turns exactly this into
/// events, so a batch costs what it touches, not what the desk holds.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Everything may have changed (the projection was rebuilt).
    pub full: bool,
    pub cases: CaseSet,
    /// Content hashes of messages placed since.
    pub messages: Vec<String>,
    /// Clocks whose start, deadline, basis or stops may have changed (or that disappeared).
    pub clocks: BTreeSet<ClockId>,
}

/// The id of the revocation clock of a certificate or key reference.
fn revocation_id(target: &str) -> ClockId {
    ClockId::revocation(target)
}

/// Builds and maintains the projection, one message at a time in receipt order.
///
/// Feeding the whole history and feeding it in pieces give the same projection (a unit test
/// holds the two together). What the projector derived it holds until [`Projector::evict`];
/// what it does not hold it asks its [`Backing`] for, so a projector over the store needs
/// memory for what it touches, not for the history.
pub(crate) struct Projector {
    backing: Box<dyn Backing + Send>,
    settings: Settings,
    /// Cases by id (`None`: known not to exist).
    cases: HashMap<CaseId, Option<Slot>>,
    /// How many cases exist (the place of the next), once asked.
    case_count: Option<usize>,
    /// Clocks as derived (`None`: known not to exist).
    clocks: HashMap<ClockId, Option<Clock>>,
    /// Fold rows by space and key, as they are now (`None`: absent).
    values: HashMap<(Space, String), Option<Vec<u8>>>,
    /// Certificates by reference.
    certs: HashMap<String, Option<CertEntry>>,
    /// Next case number per year.
    next_number: HashMap<i32, u32>,
    /// Where the messages fed since the last eviction went, by content hash.
    placements: BTreeMap<String, Placement>,
    /// Staff commands that name a clock (revocation commands, `CPR-Reason`, `CPR-Delayed`) fed
    /// since the last eviction, with their message's
    /// (content hash, Message-Id, sender), to report those that name nothing.
    revocation_commands: Vec<((String, String, String), Command)>,
    /// Ignored commands that stay ignored whatever comes later.
    base_ignored: Vec<Ignored>,
    ignored: Vec<Ignored>,
    dirty_cases: CaseSet,
    dirty_targets: BTreeSet<String>,
    dirty_values: BTreeSet<(Space, String)>,
    dirty_certs: BTreeSet<String>,
    changes: Changes,
    fed: usize,
    last_fed: Option<Timestamp>,
    /// A stored value did not decode.
    damaged: bool,
    /// Versions of cases and clocks for the store's tables, when kept ([`Projector::versioned`]).
    versions: Option<Vec<Version>>,
    emit: Emit,
}

/// Which versions a versioned projector hands out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Emit {
    /// Every version: the tables are built from nothing.
    All,
    /// Versions valid from this receipt time on: the store holds the ones before.
    From(Timestamp),
    /// None: the store holds them all (a restart re-deriving what it already has).
    Nothing,
}

impl Emit {
    fn wants(self, as_of: Timestamp) -> bool {
        match self {
            Emit::All => true,
            Emit::From(t) => as_of >= t,
            Emit::Nothing => false,
        }
    }
}

/// Build the projection. `messages` must be sorted by [`MessageFacts::sort_key`] and hold only
/// the messages that exist at the moment of interest (received at or before it); clock states
/// at that moment come from [`Clock::status`].
pub(crate) fn project(
    messages: &[MessageFacts],
    assigned: &Assigned,
    settings: &Settings,
) -> Projection {
    let mut p = Projector::new(assigned, settings);
    p.feed(messages);
    p.snapshot()
}

impl Threads for Projector {
    fn case_of_message_id(&mut self, message_id: &str) -> Option<CaseId> {
        let v = self.value(Space::MessageId, message_id)?;
        let c = fold::decode_case(&v);
        self.damaged |= c.is_none();
        c
    }

    fn case_exists(&mut self, id: &CaseId) -> bool {
        self.slot(id).is_some()
    }

    fn last_on_subject(&mut self, who: &str, subject: &str) -> Option<(CaseId, Timestamp)> {
        let v = self.value(Space::Subject, &threading::subject_key(who, subject))?;
        let c = fold::decode_case_at(&v);
        self.damaged |= c.is_none();
        c
    }
}

impl Projector {
    /// A projector that holds everything, continuing the case numbers in `assigned`.
    pub fn new(assigned: &Assigned, settings: &Settings) -> Projector {
        Projector::over(Box::new(Detached::new(assigned)), settings)
    }

    /// A projector that asks `backing` for what it does not hold.
    pub(crate) fn over(backing: Box<dyn Backing + Send>, settings: &Settings) -> Projector {
        Projector {
            backing,
            settings: settings.clone(),
            cases: HashMap::new(),
            case_count: None,
            clocks: HashMap::new(),
            values: HashMap::new(),
            certs: HashMap::new(),
            next_number: HashMap::new(),
            placements: BTreeMap::new(),
            revocation_commands: Vec::new(),
            base_ignored: Vec::new(),
            ignored: Vec::new(),
            dirty_cases: CaseSet::new(),
            dirty_targets: BTreeSet::new(),
            dirty_values: BTreeSet::new(),
            dirty_certs: BTreeSet::new(),
            changes: Changes {
                full: true,
                ..Changes::default()
            },
            fed: 0,
            last_fed: None,
            damaged: false,
            versions: None,
            emit: Emit::Nothing,
        }
    }

    /// A projector that also records a version of every case and clock at each receipt time
    /// at which it changed (see [`crate::deciding::tables`]), from `emit` on. Costs a refresh per
    /// distinct receipt time instead of one per feed.
    pub(crate) fn versioned(assigned: &Assigned, settings: &Settings, emit: Emit) -> Projector {
        let mut p = Projector::new(assigned, settings);
        p.versions = Some(Vec::new());
        p.emit = emit;
        p
    }

    /// [`Projector::versioned`] over a backing.
    pub(crate) fn versioned_over(
        backing: Box<dyn Backing + Send>,
        settings: &Settings,
        emit: Emit,
    ) -> Projector {
        let mut p = Projector::over(backing, settings);
        p.versions = Some(Vec::new());
        p.emit = emit;
        p
    }

    /// Which versions to hand out from now on.
    pub(crate) fn set_emit(&mut self, emit: Emit) {
        self.emit = emit;
    }

    /// The versions recorded since the last call, in the order they were made.
    pub(crate) fn take_versions(&mut self) -> Vec<Version> {
        self.versions
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// How many messages have been fed.
    pub(crate) fn fed(&self) -> usize {
        self.fed
    }

    /// Whether a read from the backing failed, or a stored value did not decode: what was
    /// derived since may be wrong and must not be kept.
    pub(crate) fn failed(&self) -> bool {
        self.damaged || self.backing.failed()
    }

    /// Forget everything held: the backing has it (every version taken was committed). What
    /// is touched next is read back from it.
    pub(crate) fn evict(&mut self) {
        debug_assert!(
            self.dirty_cases.is_empty()
                && self.dirty_values.is_empty()
                && self.dirty_certs.is_empty()
                && self.dirty_targets.is_empty()
        );
        self.cases.clear();
        self.clocks.clear();
        self.values.clear();
        self.certs.clear();
    }

    /// Forget what the messages fed since the last call did (where they went, the commands
    /// they ignored, what changed): the log has it.
    pub(crate) fn forget_tick(&mut self) {
        self.next_number.clear();
        self.forget_fed();
    }

    /// Forget where the messages fed so far went, the commands they ignored and what they
    /// changed, but not the case numbers handed out (a derivation that writes no events, whose
    /// new numbers the log does not know).
    pub(crate) fn forget_fed(&mut self) {
        self.placements.clear();
        self.revocation_commands.clear();
        self.base_ignored.clear();
        self.ignored.clear();
        self.changes = Changes::default();
    }

    /// The store forgot every version from some receipt time on: count its cases again, and
    /// take the next message as the first of a new moment.
    pub(crate) fn rewound(&mut self) {
        self.case_count = None;
        self.last_fed = None;
    }

    /// Record the versions of everything fed so far (the next message is of a later moment).
    pub(crate) fn flush(&mut self) {
        self.refresh();
    }

    /// A copy of everything held, as one projection (all of it, for a projector that held
    /// everything).
    pub(crate) fn snapshot(&self) -> Projection {
        let mut cases: Vec<(usize, Case)> = self
            .cases
            .values()
            .flatten()
            .map(|s| (s.ord, s.case.clone()))
            .collect();
        cases.sort_by_key(|(ord, _)| *ord);
        Projection {
            cases: cases.into_iter().map(|(_, c)| c).collect(),
            clocks: self
                .clocks
                .iter()
                .filter_map(|(id, c)| c.clone().map(|c| (id.clone(), c)))
                .collect(),
            placements: self.placements.clone(),
            ignored: self.ignored.clone(),
            observed: BTreeMap::new(),
            unchecked: BTreeMap::new(),
        }
    }

    /// A case as derived.
    pub(crate) fn case(&mut self, id: &CaseId) -> Option<&Case> {
        self.slot(id).map(|s| &s.case)
    }

    /// Every case held, in order.
    pub(crate) fn held_cases(&self) -> CaseSet {
        self.cases
            .values()
            .flatten()
            .map(|s| (s.ord, s.case.id.clone()))
            .collect()
    }

    /// A clock as derived.
    pub(crate) fn clock(&mut self, id: &ClockId) -> Option<&Clock> {
        if !self.clocks.contains_key(id) {
            let c = self.backing.clock(id);
            self.clocks.insert(id.clone(), c);
        }
        self.clocks.get(id).and_then(Option::as_ref)
    }

    /// Every clock held.
    pub(crate) fn held_clocks(&self) -> BTreeSet<ClockId> {
        self.clocks
            .iter()
            .filter(|(_, c)| c.is_some())
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub(crate) fn placements(&self) -> &BTreeMap<String, Placement> {
        &self.placements
    }

    pub(crate) fn ignored(&self) -> &[Ignored] {
        &self.ignored
    }

    /// What changed since the last call.
    pub(crate) fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }

    /// Feed `messages[self.fed()..]`: `messages` is the whole history in receipt order, of
    /// which the first `fed()` were fed before.
    pub(crate) fn feed(&mut self, messages: &[MessageFacts]) {
        for m in &messages[self.fed.min(messages.len())..] {
            self.push(m);
        }
        self.settle();
    }

    /// Feed one more message, later in receipt order than those before.
    pub(crate) fn push(&mut self, m: &MessageFacts) {
        // A version is what the messages received by one moment make: refresh before the
        // next moment's messages join in.
        if self.versions.is_some() && self.last_fed.is_some_and(|t| m.received_at > t) {
            self.refresh();
        }
        self.feed_one(m);
        self.fed += 1;
        self.last_fed = Some(m.received_at);
    }

    /// Bring everything up to date with the messages fed so far.
    pub(crate) fn settle(&mut self) {
        self.refresh();
        let unmatched = self.unmatched_commands();
        self.ignored = self.base_ignored.clone();
        self.ignored.extend(unmatched);
    }

    // ---- what the projector holds, read from the backing when it does not -----------------

    fn slot(&mut self, id: &CaseId) -> Option<&mut Slot> {
        if !self.cases.contains_key(id) {
            let slot = self.backing.case(id).map(|(ord, case, answers)| {
                let kept = match self.backing.value(Space::Work, id.as_str()) {
                    Some(v) => Work::decode(&v).unwrap_or_else(|| {
                        self.damaged = true;
                        Work::default()
                    }),
                    None => Work::default(),
                };
                Slot {
                    ord,
                    work: CaseWork::restored(&case, kept),
                    case,
                    answers,
                }
            });
            self.cases.insert(id.clone(), slot);
        }
        self.cases.get_mut(id).and_then(Option::as_mut)
    }

    fn value(&mut self, space: Space, key: &str) -> Option<Vec<u8>> {
        let k = (space, key.to_string());
        if let Some(v) = self.values.get(&k) {
            return v.clone();
        }
        let v = self.backing.value(space, key);
        self.values.insert(k, v.clone());
        v
    }

    fn set_value(&mut self, space: Space, key: &str, value: Vec<u8>) {
        let k = (space, key.to_string());
        self.values.insert(k.clone(), Some(value));
        self.dirty_values.insert(k);
    }

    fn cert_entry(&mut self, r: &str) -> Option<&mut CertEntry> {
        if !self.certs.contains_key(r) {
            let e = self.backing.value(Space::Certificate, r).and_then(|v| {
                let e = CertEntry::decode(&v);
                self.damaged |= e.is_none();
                e
            });
            self.certs.insert(r.to_string(), e);
        }
        self.certs.get_mut(r).and_then(Option::as_mut)
    }

    /// A list kept under `space` and `key` (empty when there is none); a value that does not
    /// decode marks the projection damaged.
    fn list<T>(&mut self, space: Space, key: &str, decode: fn(&[u8]) -> Option<Vec<T>>) -> Vec<T> {
        let Some(v) = self.value(space, key) else {
            return Vec::new();
        };
        decode(&v).unwrap_or_else(|| {
            self.damaged = true;
            Vec::new()
        })
    }

    fn strings(&mut self, space: Space, key: &str) -> Vec<String> {
        self.list(space, key, fold::decode_strings)
    }

    fn alias(&mut self, name: &str) -> Option<String> {
        self.strings(Space::Alias, name).into_iter().next()
    }

    fn key_sightings(&mut self, k: &str) -> Sightings {
        self.list(Space::KeySightings, k, fold::decode_seen)
    }

    fn stops(&mut self, target: &str) -> Vec<Stop> {
        self.list(Space::Stops, target, fold::decode_stops)
    }

    fn decisions(&mut self, target: &str) -> Vec<Decision> {
        self.list(Space::Decisions, target, fold::decode_decisions)
    }

    fn clock_exists(&mut self, id: &ClockId) -> bool {
        self.clock(id).is_some()
    }

    /// The id of a new case opened at `opened_at`: the one the log assigned to its founder if
    /// no other case holds it, else the next number of its year.
    fn case_id_for(&mut self, founder: &str, opened_at: Timestamp) -> CaseId {
        if let Some(id) = self.backing.assigned(founder)
            && !self.case_exists(&id)
        {
            return id;
        }
        let year = opened_at.year();
        let next = match self.next_number.get(&year) {
            Some(n) => *n,
            None => self.backing.last_assigned(year) + 1,
        };
        self.next_number.insert(year, next + 1);
        CaseId::new(year, next)
    }

    fn next_ord(&mut self) -> usize {
        let n = match self.case_count {
            Some(n) => n,
            None => self.backing.case_count(),
        };
        self.case_count = Some(n + 1);
        n
    }

    // ---- feeding ---------------------------------------------------------------------------

    fn feed_one(&mut self, m: &MessageFacts) {
        let subject = threading::normalize_subject(&m.subject);
        let window = self.settings.thread_window;
        let placed = match threading::find_case(m, &subject, window, self) {
            Some((c, via)) => Ok((c, via)),
            None => match threading::opens_reason(m) {
                Err(reason) => Err(reason),
                Ok(()) => {
                    let id = self.case_id_for(&m.content_hash, m.received_at);
                    let ord = self.next_ord();
                    self.cases.insert(
                        id.clone(),
                        Some(Slot {
                            ord,
                            case: Case {
                                id: id.clone(),
                                founder: m.content_hash.clone(),
                                reporter: m.from.clone(),
                                reporter_addresses: addresses(m),
                                subject: m.subject.clone(),
                                opened_at: m.received_at,
                                messages: Vec::new(),
                                certificates: Vec::new(),
                                keys: Vec::new(),
                                clocks: Vec::new(),
                                dismissed: None,
                            },
                            work: CaseWork::new(),
                            answers: Vec::new(),
                        }),
                    );
                    Ok((id, threading::OPENED))
                }
            },
        };
        let (case, how) = match &placed {
            Ok((c, how)) => (Some(c.clone()), *how),
            Err(reason) => (None, *reason),
        };
        self.placements.insert(
            m.content_hash.clone(),
            Placement {
                case: case.clone(),
                how,
                message_id: m.message_id.clone(),
            },
        );
        self.changes.messages.push(m.content_hash.clone());
        let Some(c) = case else {
            ignore_commands(m, "the message joins no case", &mut self.base_ignored);
            return;
        };
        if self.value(Space::MessageId, &m.message_id).is_none() {
            self.set_value(Space::MessageId, &m.message_id, fold::encode_case(&c));
        }
        if !subject.is_empty() && !m.is_staff() && !m.from.is_empty() {
            self.set_value(
                Space::Subject,
                &threading::subject_key(&m.from, &subject),
                fold::encode_case_at(&c, m.received_at),
            );
        }
        self.add_member(&c, m, how, how == threading::OPENED);
    }

    fn add_member(&mut self, c: &CaseId, m: &MessageFacts, how: &'static str, founder: bool) {
        let Some(slot) = self.slot(c) else {
            return;
        };
        let ord = slot.ord;
        slot.case.messages.push(CaseMessage {
            content_hash: m.content_hash.clone(),
            message_id: m.message_id.clone(),
            received_at: m.received_at,
            from: m.from.clone(),
            folder: m.folder,
            staff: m.is_staff(),
            via: how,
        });
        if !founder && m.is_staff() {
            let answers = staff_answers(m, &slot.case.reporter_addresses);
            slot.answers.extend(answers);
        }
        self.dirty_cases.insert(ord, c.clone());
        if is_report(m, founder) {
            for cert in &m.certificates {
                self.add_certificate(c, cert, m.received_at);
            }
            let mut new_keys = Vec::new();
            if let Some(slot) = self.slot(c) {
                let w = &mut slot.work;
                for k in &m.keys {
                    w.kept.key_evidence |= k.evidence.is_compromise_evidence();
                    if let Some(r) = &k.reference
                        && !w.kept.key_first.contains_key(r)
                    {
                        w.kept.key_first.insert(r.clone(), m.received_at);
                        new_keys.push(r.clone());
                    }
                    merge_key(&mut slot.case.keys, &mut w.key_at, k);
                }
                for hit in &m.rules {
                    let window = Duration::seconds(hit.window_secs);
                    if w.kept.rule_best.as_ref().is_none_or(|b| window < b.window) {
                        w.kept.rule_best = Some(Class {
                            window,
                            basis: hit.id.clone(),
                            matched: (!hit.matched.is_empty()).then(|| hit.matched.clone()),
                        });
                    }
                }
                w.reclassify();
            }
            for r in new_keys {
                let mut seen = self.key_sightings(&r);
                seen.push((c.clone(), m.received_at));
                self.set_value(Space::KeySightings, &r, fold::encode_seen(&seen));
            }
        }
        if m.is_staff() {
            for cmd in &m.commands {
                let stop = match cmd {
                    Command::Dismiss { reason } => {
                        if let Some(slot) = self.slot(c)
                            && slot.work.dismissed.is_none()
                        {
                            slot.work.dismissed = Some((m.received_at, reason.clone()));
                        }
                        continue;
                    }
                    Command::Answered { .. } => continue,
                    Command::Delayed { target, reason } => {
                        let ack = Acknowledgement {
                            at: m.received_at,
                            reason: reason.clone(),
                            by: m.message_id.clone(),
                        };
                        let names_case = CaseId::parse(target).is_some();
                        if !self.acknowledge(target, ack) {
                            self.base_ignored.push(Ignored {
                                message: m.content_hash.clone(),
                                message_id: m.message_id.clone(),
                                from: m.from.clone(),
                                command: Some(cmd.clone()),
                                line: None,
                                reason: format!(
                                    "CPR-Delayed: {target} names no case; give the id of an \
                                     existing case (CPR-YYYY-NNNN, for its preliminary report) \
                                     or a reported certificate or key (for its revocation)"
                                ),
                            });
                        } else if !names_case {
                            // Checked once everything is fed, as revocation commands are.
                            self.revocation_commands.push((who(m), cmd.clone()));
                        }
                        continue;
                    }
                    Command::Reason { target, item, .. } => {
                        let mut ds = self.decisions(target);
                        ds.push(Decision {
                            at: m.received_at,
                            item: *item,
                            by: m.message_id.clone(),
                        });
                        self.set_value(Space::Decisions, target, fold::encode_decisions(&ds));
                        self.dirty_targets.insert(target.clone());
                        self.revocation_commands.push((who(m), cmd.clone()));
                        continue;
                    }
                    Command::Revoked { target, at }
                        if self.settings.require_verified
                            && !is_verified_check(m)
                            && !is_key_name(target) =>
                    {
                        let claim = Claim {
                            at: m.received_at,
                            revoked_at: at.unwrap_or(m.received_at),
                            by: m.message_id.clone(),
                        };
                        self.set_value(Space::Claims, target, fold::encode_claim(&claim));
                        self.dirty_targets.insert(target.clone());
                        self.revocation_commands.push((who(m), cmd.clone()));
                        continue;
                    }
                    Command::Revoked { target, at } => (
                        target,
                        Stop {
                            at: at.unwrap_or(m.received_at),
                            kind: StopKind::Done,
                            by: format!("CPR-Revoked in {}", m.message_id),
                        },
                    ),
                    Command::NotRevoking { target, reason } => (
                        target,
                        Stop {
                            at: m.received_at,
                            kind: StopKind::NotRequired,
                            by: format!("CPR-Not-Revoking: {reason}"),
                        },
                    ),
                };
                let (target, stop) = stop;
                let mut stops = self.stops(target);
                stops.push(stop);
                self.set_value(Space::Stops, target, fold::encode_stops(&stops));
                self.dirty_targets.insert(target.clone());
                self.revocation_commands.push((who(m), cmd.clone()));
            }
        } else {
            ignore_commands(
                m,
                "the sender is not staff (a From: header alone proves nothing)",
                &mut self.base_ignored,
            );
        }
        for bad in &m.bad_commands {
            self.base_ignored.push(Ignored {
                message: m.content_hash.clone(),
                message_id: m.message_id.clone(),
                from: m.from.clone(),
                command: None,
                line: Some(bad.clone()),
                reason: bad.problem.clone(),
            });
        }
    }

    /// A certificate named by a report in case `c` at `at`. A certificate is its issuer and
    /// serial (RFC 5280): a precertificate and its final certificate, or a name another
    /// report gave the same certificate, lead to the certificate already known.
    fn add_certificate(&mut self, c: &CaseId, cert: &CertificateRef, at: Timestamp) {
        let same = self.known_as(cert);
        let cert = same.as_ref().unwrap_or(cert);
        let r = &cert.reference;
        let first_in_case = match self.slot(c) {
            Some(slot) => {
                let first = slot.work.cert_seen.insert(r.clone());
                if first {
                    slot.work.cert_order.push(r.clone());
                }
                first
            }
            None => false,
        };
        let known = self.cert_entry(r).is_some();
        if !known {
            self.certs.insert(
                r.clone(),
                Some(CertEntry {
                    details: cert.clone(),
                    sightings: Vec::new(),
                    also: Vec::new(),
                }),
            );
        }
        let mut dirty: Vec<CaseId> = Vec::new();
        let (key_listed, merged) = {
            let Some(entry) = self.cert_entry(r) else {
                return;
            };
            if first_in_case {
                entry.sightings.push((c.clone(), at));
            }
            // A certificate is listed under its key once, when its key first becomes known (a
            // key, once known, never changes): no search of the list, which a report naming
            // thousands of certificates of one key would make quadratic.
            let key_listed = known && entry.details.spki_sha256.is_some();
            if known {
                let mut merged = entry.details.clone();
                merged.merge_from(cert);
                if merged != entry.details {
                    // New details (a key, a validity) change every case that shows it.
                    dirty.extend(entry.sightings.iter().map(|(ci, _)| ci.clone()));
                    entry.details = merged;
                }
            }
            (key_listed, entry.details.clone())
        };
        self.dirty_certs.insert(r.clone());
        for ci in dirty {
            if let Some(slot) = self.slot(&ci) {
                let ord = slot.ord;
                self.dirty_cases.insert(ord, ci);
            }
        }
        if let Some(key) = merged.key_name().filter(|_| !key_listed) {
            let mut certs = self.strings(Space::KeyCertificates, &key);
            certs.push(r.clone());
            self.set_value(Space::KeyCertificates, &key, fold::encode_strings(&certs));
        }
        for name in merged.names() {
            if name != *r && self.alias(&name).as_deref() != Some(r.as_str()) {
                self.set_value(
                    Space::Alias,
                    &name,
                    fold::encode_strings(std::slice::from_ref(r)),
                );
            }
        }
        self.dirty_targets.insert(r.clone());
    }

    /// `cert` as the certificate already known under another name, when it is one: its
    /// reference is an alias of a known certificate, or it has the issuer and serial of one
    /// (then its own names become aliases, and its details beyond the identity are not
    /// merged: the other certificate's fingerprint is not this one's). `None`: it is itself.
    fn known_as(&mut self, cert: &CertificateRef) -> Option<CertificateRef> {
        let r = &cert.reference;
        if self.cert_entry(r).is_some() {
            return None;
        }
        if let Some(existing) = self.alias(r).filter(|e| e != r)
            && self.cert_entry(&existing).is_some()
        {
            let mut same = cert.clone();
            same.reference = existing;
            return Some(same);
        }
        // Another of its names is a certificate already known (a report named it by crt.sh
        // id, and this copy of it says which id it is): that one, with these details.
        for n in cert.names().into_iter().filter(|n| n != r) {
            if self.cert_entry(&n).is_some() {
                let mut same = cert.clone();
                same.reference = n;
                return Some(same);
            }
        }
        let id = identity_name(cert)?;
        let Some(existing) = self.alias(&id).filter(|e| e != r) else {
            self.set_value(
                Space::Alias,
                &id,
                fold::encode_strings(std::slice::from_ref(r)),
            );
            return None;
        };
        let names = cert.names();
        let entry = self.cert_entry(&existing)?;
        for n in &names {
            if !entry.also.contains(n) {
                entry.also.push(n.clone());
            }
        }
        // A final certificate known: the precertificate is no longer alone.
        if cert.precertificate == Some(false) {
            entry.details.precertificate = Some(false);
        }
        for n in names {
            self.set_value(
                Space::Alias,
                &n,
                fold::encode_strings(std::slice::from_ref(&existing)),
            );
        }
        let mut same = cert.clone();
        same.reference = existing;
        same.crtsh_id = None;
        same.sha256 = None;
        same.precertificate = None;
        Some(same)
    }

    /// Recompute what the messages fed since the last refresh touched.
    fn refresh(&mut self) {
        let dirty_cases = std::mem::take(&mut self.dirty_cases);
        let mut targets = std::mem::take(&mut self.dirty_targets);
        // A case's class or dismissal bears on every certificate and key it names.
        for id in dirty_cases.values() {
            if let Some(slot) = self.slot(id) {
                targets.extend(slot.work.cert_order.iter().cloned());
                targets.extend(slot.work.kept.key_first.keys().cloned());
            }
        }
        // A key's reports bear on every certificate with that key; aliases lead to certificates.
        let mut expanded: BTreeSet<String> = BTreeSet::new();
        for t in &targets {
            if let Some(r) = self.alias(t) {
                expanded.insert(r);
            }
            expanded.extend(self.strings(Space::KeyCertificates, t));
        }
        targets.extend(expanded);

        let mut relist: BTreeSet<CaseId> = dirty_cases.values().cloned().collect();
        // The clocks this refresh recomputed, for the versions it records.
        let mut refreshed: BTreeSet<ClockId> = BTreeSet::new();
        for t in &targets {
            let id = revocation_id(t);
            let (clock, cases) = if self.cert_entry(t).is_some() {
                let (clock, cases) = self.certificate_clock(t);
                (clock, cases)
            } else {
                let seen = self.key_sightings(t);
                if seen.is_empty() {
                    continue;
                }
                (self.key_clock(t, &seen), seen)
            };
            relist.extend(cases.into_iter().map(|(ci, _)| ci));
            self.changes.clocks.insert(id.clone());
            // A version only for what differs from the one before (the store would keep no
            // other); comparing here saves it the look-up.
            if self.versions.is_some() && self.clock(&id) != clock.as_ref() {
                refreshed.insert(id.clone());
            }
            self.clocks.insert(id, clock);
        }

        let mut cases = CaseSet::new();
        for c in &relist {
            let Some(slot) = self.slot(c) else {
                continue;
            };
            let ord = slot.ord;
            let order = slot.work.cert_order.clone();
            let keys: Vec<String> = slot
                .case
                .keys
                .iter()
                .filter_map(|k| k.reference.clone())
                .collect();
            let mut certificates = Vec::with_capacity(order.len());
            let mut clocks = Vec::with_capacity(1 + order.len());
            let prelim = self.preliminary_clock(c);
            clocks.push(prelim.id.clone());
            for r in &order {
                if let Some(e) = self.cert_entry(r) {
                    certificates.push(e.details.clone());
                }
                let id = revocation_id(r);
                if self.clock_exists(&id) {
                    clocks.push(id);
                }
            }
            // A set beside the list: a report naming 100 000 keys must not search the list
            // once per key.
            let mut listed: HashSet<ClockId> = HashSet::new();
            let seen: HashSet<&String> = order.iter().collect();
            for r in &keys {
                let id = revocation_id(r);
                if !seen.contains(r) && self.clock_exists(&id) && listed.insert(id.clone()) {
                    clocks.push(id);
                }
            }
            let was_dirty = dirty_cases.contains_key(&ord);
            let versioned = self.versions.is_some();
            let Some(slot) = self.slot(c) else {
                continue;
            };
            let dismissed = slot.work.dismissed.clone();
            let case = &mut slot.case;
            let unchanged = versioned
                && !was_dirty
                && case.certificates == certificates
                && case.dismissed == dismissed
                && case.clocks == clocks;
            case.certificates = certificates;
            case.dismissed = dismissed;
            case.clocks = clocks;
            let work = slot.work.kept.encode();
            self.changes.clocks.insert(prelim.id.clone());
            if versioned && self.clock(&prelim.id) != Some(&prelim) {
                refreshed.insert(prelim.id.clone());
            }
            self.clocks.insert(prelim.id.clone(), Some(prelim));
            self.changes.cases.insert(ord, c.clone());
            if was_dirty {
                self.set_value(Space::Work, c.as_str(), work);
            }
            if !unchanged {
                cases.insert(ord, c.clone());
            }
        }
        let certs = std::mem::take(&mut self.dirty_certs);
        for r in certs {
            if let Some(e) = self.cert_entry(&r) {
                let v = e.encode();
                self.set_value(Space::Certificate, &r, v);
            }
        }
        self.record_versions(&cases, &refreshed);
    }

    /// Record the versions of the cases, clocks and fold rows one refresh touched, valid from
    /// the receipt time of the last message fed. Unchanged ones are recorded too: the store
    /// keeps a version only when it differs from the one before.
    fn record_versions(&mut self, cases: &CaseSet, clocks: &BTreeSet<ClockId>) {
        let values = std::mem::take(&mut self.dirty_values);
        let Some(as_of) = self.last_fed else {
            return;
        };
        if self.versions.is_none() || !self.emit.wants(as_of) {
            return;
        }
        let mut out = Vec::with_capacity(cases.len() + clocks.len() + values.len());
        for id in clocks {
            out.push(Version::Clock(ClockVersion {
                as_of,
                id: id.clone(),
                row: self
                    .clocks
                    .get(id)
                    .and_then(Option::as_ref)
                    .map(tables::clock_row),
            }));
        }
        for (ord, id) in cases {
            if let Some(Some(slot)) = self.cases.get(id) {
                out.push(Version::Case(tables::case_version(as_of, *ord, &slot.case)));
            }
        }
        for (space, key) in values {
            let value = self.values.get(&(space, key.clone())).cloned().flatten();
            out.push(Version::Fold(FoldVersion {
                as_of,
                space,
                key,
                value,
            }));
        }
        if let Some(v) = self.versions.as_mut() {
            v.extend(out);
        }
    }

    /// Staff acknowledged that the clock of `target` (a reference, or a case id for its
    /// preliminary report) is late: kept under that name, latest only, and the clocks it
    /// names are derived again. A case id counts only for a case that exists by then (messages
    /// come in receipt order, so one opened later is another case): `false` when it does not.
    /// A reference is kept like a `CPR-Revoked` on it, and reported if it names nothing.
    fn acknowledge(&mut self, target: &str, ack: Acknowledgement) -> bool {
        match CaseId::parse(target) {
            Some(case) => {
                let Some(slot) = self.slot(&case) else {
                    return false;
                };
                let ord = slot.ord;
                self.dirty_cases.insert(ord, case);
            }
            None => {
                self.dirty_targets.insert(target.to_string());
            }
        }
        self.set_value(Space::Acknowledgements, target, fold::encode_ack(&ack));
        true
    }

    /// Staff's latest `CPR-Delayed` under any of `names` (the last of equal times wins).
    fn latest_acknowledgement(&mut self, names: &[String]) -> Option<Acknowledgement> {
        let mut best: Option<Acknowledgement> = None;
        for n in names {
            let Some(v) = self.value(Space::Acknowledgements, n) else {
                continue;
            };
            match fold::decode_ack(&v) {
                Some(a) => {
                    if best.as_ref().is_none_or(|b| a.at >= b.at) {
                        best = Some(a);
                    }
                }
                None => self.damaged = true,
            }
        }
        best
    }

    /// Staff's latest unverified `CPR-Revoked` under any of `names` (the last of equal times
    /// wins).
    fn latest_claim(&mut self, names: &[String]) -> Option<Claim> {
        let mut best: Option<Claim> = None;
        for n in names {
            let Some(v) = self.value(Space::Claims, n) else {
                continue;
            };
            match fold::decode_claim(&v) {
                Some(c) => {
                    if best.as_ref().is_none_or(|b| c.at >= b.at) {
                        best = Some(c);
                    }
                }
                None => self.damaged = true,
            }
        }
        best
    }

    /// BR 4.9.5: 24 hours from receipt to a preliminary report to the reporter.
    fn preliminary_clock(&mut self, c: &CaseId) -> Clock {
        let acknowledged = self.latest_acknowledgement(&[c.to_string()]);
        let slot = self.slot(c).expect("a relisted case is held");
        let case = &slot.case;
        let mut clock = Clock {
            id: ClockId::preliminary(&case.id),
            kind: ClockKind::PreliminaryReport,
            case: Some(case.id.clone()),
            target: None,
            started_at: case.opened_at,
            deadline: case.opened_at + clock::DAY,
            basis: clock::BASIS_PRELIMINARY.to_string(),
            matched: None,
            decided_by: None,
            stops: slot.answers.clone(),
            acknowledged,
            claimed: None,
        };
        if let Some((at, reason)) = &slot.work.dismissed {
            clock.stops.push(Stop {
                at: *at,
                kind: StopKind::Dismissed,
                by: format!("CPR-Dismiss: {reason}"),
            });
        }
        clock
    }

    /// The class and dismissal of each case in `sightings`.
    fn classes(&mut self, sightings: &Sightings) -> Vec<(Timestamp, Class, bool)> {
        let mut out = Vec::with_capacity(sightings.len());
        for (ci, t) in sightings {
            match self.slot(ci) {
                Some(s) => out.push((*t, s.work.class.clone(), s.work.dismissed.is_none())),
                None => self.damaged = true,
            }
        }
        out
    }

    /// The time the last of `sightings`' cases was dismissed.
    fn last_dismissal(&mut self, sightings: &Sightings) -> Option<Timestamp> {
        let mut last = None;
        for (ci, _) in sightings {
            if let Some(s) = self.slot(ci)
                && let Some((t, _)) = &s.work.dismissed
            {
                last = last.max(Some(*t));
            }
        }
        last
    }

    /// BR 4.9.1.1 / 4.9.1.2 for one certificate, shared by every case that names it: the
    /// earliest report of it or its key starts it, the shortest window ends it. Also the cases
    /// that name it (to list the clock).
    fn certificate_clock(&mut self, r: &str) -> (Option<Clock>, Sightings) {
        let Some(entry) = self.cert_entry(r) else {
            return (None, Vec::new());
        };
        let cert = entry.details.clone();
        let sightings = entry.sightings.clone();
        if clock::is_short_lived(&cert) {
            return (None, sightings);
        }
        let key_ref = cert.key_name();
        let key_seen = match &key_ref {
            Some(k) => self.key_sightings(k),
            None => Vec::new(),
        };
        let by_case = self.classes(&sightings);
        let by_key = self.classes(&key_seen);
        // Dismissed cases count only when nothing else names it.
        let any_live = by_case.iter().chain(&by_key).any(|(_, _, live)| *live);
        let mut candidates: Vec<Candidate> = by_case
            .into_iter()
            .filter(|(_, _, live)| !any_live || *live)
            .map(|(at, class, _)| Candidate {
                at,
                window: class.window,
                basis: class.basis,
                matched: class.matched,
            })
            .collect();
        candidates.extend(
            by_key
                .into_iter()
                .filter(|(_, _, live)| !any_live || *live)
                .map(|(at, _, _)| Candidate {
                    at,
                    window: clock::DAY,
                    basis: clock::BASIS_KEY.to_string(),
                    matched: None,
                }),
        );
        if cert.is_ca == Some(true) {
            for c in &mut candidates {
                c.window = clock::SUBORDINATE_CA;
                c.basis = clock::BASIS_CA.to_string();
            }
        }
        let Some(mut c) = Clock::from_candidates(
            revocation_id(r),
            ClockKind::Revocation,
            None,
            Some(r.to_string()),
            &candidates,
        ) else {
            return (None, sightings);
        };
        let mut names = cert.names();
        names.extend(
            self.cert_entry(r)
                .map(|e| e.also.clone())
                .unwrap_or_default(),
        );
        names.extend(key_ref.clone());
        for n in &names {
            c.stops.extend(self.stops(n));
        }
        if let Some(d) = self.latest_decision(&names) {
            c.decide(&d);
        }
        c.acknowledged = self.latest_acknowledgement(&names);
        c.claimed = self.latest_claim(&names);
        if let Some(s) = clock::expiry_stop(&cert, c.started_at, c.deadline) {
            c.stops.push(s);
        }
        if !any_live {
            let mut all = sightings.clone();
            all.extend(key_seen);
            self.push_dismissal(&mut c, &all);
        }
        (Some(c), sightings)
    }

    /// One clock per reported key: every certificate with it is due within 24 hours.
    fn key_clock(&mut self, k: &str, seen: &Sightings) -> Option<Clock> {
        let by_case = self.classes(seen);
        let any_live = by_case.iter().any(|(_, _, live)| *live);
        let candidates: Vec<Candidate> = by_case
            .into_iter()
            .filter(|(_, _, live)| !any_live || *live)
            .map(|(at, _, _)| Candidate {
                at,
                window: clock::DAY,
                basis: clock::BASIS_KEY.to_string(),
                matched: None,
            })
            .collect();
        let mut c = Clock::from_candidates(
            revocation_id(k),
            ClockKind::Revocation,
            None,
            Some(k.to_string()),
            &candidates,
        )?;
        c.stops.extend(self.stops(k));
        if let Some(d) = self.latest_decision(&[k.to_string()]) {
            c.decide(&d);
        }
        c.acknowledged = self.latest_acknowledgement(&[k.to_string()]);
        if !any_live {
            self.push_dismissal(&mut c, seen);
        }
        Some(c)
    }

    /// Staff's last word on the reason, under any of a target's names.
    fn latest_decision(&mut self, names: &[String]) -> Option<Decision> {
        let mut best: Option<Decision> = None;
        for n in names {
            for d in self.decisions(n) {
                // The last of equal times wins, as with `max_by_key` over them in order.
                if best.as_ref().is_none_or(|b| d.at >= b.at) {
                    best = Some(d);
                }
            }
        }
        best
    }

    /// A clock whose every case was dismissed stops when the last of them was.
    fn push_dismissal(&mut self, c: &mut Clock, sightings: &Sightings) {
        if let Some(at) = self.last_dismissal(sightings) {
            c.stops.push(Stop {
                at,
                kind: StopKind::Dismissed,
                by: "CPR-Dismiss".into(),
            });
        }
    }

    /// Revocation commands that name no reported certificate or key: kept as ignored claims.
    fn unmatched_commands(&mut self) -> Vec<Ignored> {
        let mut out = Vec::new();
        let commands = std::mem::take(&mut self.revocation_commands);
        for ((message, message_id, from), cmd) in &commands {
            let (Command::Revoked { target, .. }
            | Command::NotRevoking { target, .. }
            | Command::Reason { target, .. }
            | Command::Delayed { target, .. }) = cmd
            else {
                continue;
            };
            let mut known = self.clock_exists(&revocation_id(target));
            if !known && let Some(r) = self.alias(target) {
                known = self.clock_exists(&revocation_id(&r));
            }
            if !known {
                for r in self.strings(Space::KeyCertificates, target) {
                    if self.clock_exists(&revocation_id(&r)) {
                        known = true;
                        break;
                    }
                }
            }
            if !known {
                out.push(Ignored {
                    message: message.clone(),
                    message_id: message_id.clone(),
                    from: from.clone(),
                    command: Some(cmd.clone()),
                    line: None,
                    reason: if matches!(cmd, Command::Delayed { .. }) {
                        format!(
                            "CPR-Delayed: {target} names no reported certificate or key; give \
                             a reported one (for its revocation) or a case id (CPR-YYYY-NNNN, \
                             for its preliminary report)"
                        )
                    } else {
                        format!("{target} names no reported certificate or key")
                    },
                });
            }
        }
        self.revocation_commands = commands;
        out
    }
}

/// A message's content hash, Message-Id and sender.
/// A certificate's identity as a name (`cert:<issuer>:<serial>`, the issuer's name hashed):
/// what a precertificate and its final certificate share.
fn identity_name(cert: &CertificateRef) -> Option<String> {
    let (issuer, serial) = (cert.issuer.as_ref()?, cert.serial.as_ref()?);
    let h = crate::reading::extract::key::sha256_hex(issuer.as_bytes());
    Some(format!("cert:{}:{serial}", &h[..32]))
}

/// Whether a message is a revocation check's record of what OCSP or CRL showed: its position
/// says so, and only the checker makes such positions (no mail source can).
fn is_verified_check(m: &MessageFacts) -> bool {
    m.position
        .as_ref()
        .is_some_and(crate::domain::ids::Position::is_revocation_check)
}

/// A key's name (`spki:…`): its clock stops on staff's word, since no responder answers for a
/// key as a whole.
fn is_key_name(target: &str) -> bool {
    target.starts_with("spki:")
}

fn who(m: &MessageFacts) -> (String, String, String) {
    (m.content_hash.clone(), m.message_id.clone(), m.from.clone())
}

/// The stops a staff message in a case gives its preliminary-report clock.
fn staff_answers(m: &MessageFacts, reporter_addresses: &[String]) -> Vec<Stop> {
    let mut out = Vec::new();
    // An answer is a person's mail to the reporter: not an internal forward, not an
    // automatic message, not a receipt this tool sent.
    let to_reporter =
        m.to.iter()
            .chain(m.cc.iter())
            .any(|a| reporter_addresses.contains(a));
    if to_reporter && m.automation == Automation::None {
        out.push(Stop {
            at: m.received_at,
            kind: StopKind::Done,
            by: m.message_id.clone(),
        });
    }
    for cmd in &m.commands {
        if let Command::Answered { at, place } = cmd {
            out.push(Stop {
                at: at.unwrap_or(m.received_at),
                kind: StopKind::Done,
                by: format!("CPR-Answered: {place}"),
            });
        }
    }
    out
}

/// A message counts as a report when a person outside the desk wrote it (or a colleague
/// forwarded it and so opened the case), and it is not an automatic reply or bounce.
fn is_report(m: &MessageFacts, founder: bool) -> bool {
    (!m.is_staff() || founder)
        && matches!(m.automation, Automation::None | Automation::AutoGenerated)
}

fn addresses(m: &MessageFacts) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in std::iter::once(&m.from).chain(m.reply_to.iter()) {
        if !a.is_empty() && !out.contains(a) {
            out.push(a.clone());
        }
    }
    out
}

fn merge_key(keys: &mut Vec<KeyRef>, at: &mut HashMap<String, usize>, k: &KeyRef) {
    if let Some(r) = &k.reference {
        if let Some(known) = at.get(r).and_then(|&i| keys.get_mut(i)) {
            if k.evidence > known.evidence {
                known.evidence = k.evidence;
            }
            if known.algorithm.is_none() {
                known.algorithm.clone_from(&k.algorithm);
            }
            return;
        }
        at.insert(r.clone(), keys.len());
    }
    if k.reference.is_none()
        && keys
            .iter()
            .any(|x| x.reference.is_none() && x.evidence == k.evidence)
    {
        return;
    }
    keys.push(k.clone());
}

fn ignore_commands(m: &MessageFacts, reason: &str, ignored: &mut Vec<Ignored>) {
    for cmd in &m.commands {
        ignored.push(Ignored {
            message: m.content_hash.clone(),
            message_id: m.message_id.clone(),
            from: m.from.clone(),
            command: Some(cmd.clone()),
            line: None,
            reason: reason.to_string(),
        });
    }
}
