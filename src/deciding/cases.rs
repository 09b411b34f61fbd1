//! Cases and clocks as a pure function of the received messages and a moment in time.
//!
//! Nothing here reads the store or the wall clock: [`project`] takes the messages (their
//! [`MessageFacts`], as stored in the log), the case numbers already handed out, and `at`.
//! Messages received after `at` do not exist yet; a command that takes effect after `at` has
//! not taken effect. Everything a person or an auditor sees is rendered from this.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use time::Duration;

use crate::deciding::clock::{self, Candidate, Clock, Decision, Stop, StopKind};
use crate::deciding::tables::{self, ClockVersion, Version};
use crate::deciding::threading::{self, Assigned, Disposition};
use crate::domain::event::{Automation, ClockKind, MessageFacts};
use crate::domain::ids::{CaseId, ClockId};
use crate::domain::model::{BadCommand, CertificateRef, Command, KeyRef, Timestamp};

/// Knobs of the projection that come from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Same reporter + same subject joins a case within this span (default 30 days).
    pub thread_window: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            thread_window: Duration::days(30),
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
    rule_best: Option<Class>,
    key_evidence: bool,
    /// The certificates this case names (indexes into [`Projector::cert_list`]), as a set and
    /// in the order the case named them, and the first time each key was named in it.
    cert_seen: HashSet<usize>,
    cert_order: Vec<usize>,
    key_first: BTreeMap<String, Timestamp>,
    /// Where each referenced key sits in the case's `keys`: merging a key is a look-up, not a
    /// search (a report may name 100 000 keys).
    key_at: HashMap<String, usize>,
    dismissed: Option<(Timestamp, String)>,
}

/// The window a case's reports give its certificates, and why.
#[derive(Clone, Debug)]
struct Class {
    window: Duration,
    basis: String,
    /// The phrase of the report that set it, for a rule.
    matched: Option<String>,
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
            rule_best: None,
            key_evidence: false,
            cert_seen: HashSet::new(),
            cert_order: Vec::new(),
            key_first: BTreeMap::new(),
            key_at: HashMap::new(),
            dismissed: None,
        }
    }

    fn reclassify(&mut self) {
        self.class = if self.key_evidence {
            Class::fixed(clock::DAY, clock::BASIS_KEY)
        } else if let Some(best) = &self.rule_best {
            best.clone()
        } else {
            Class::fixed(clock::DAY, clock::BASIS_DEFAULT)
        };
    }
}

/// What changed since the last [`Projector::take_changes`]: the engine turns exactly this into
/// events, so a batch costs what it touches, not what the desk holds.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Everything may have changed (the projection was rebuilt).
    pub full: bool,
    /// Indexes into [`Projection::cases`].
    pub cases: BTreeSet<usize>,
    /// Content hashes of messages placed since.
    pub messages: Vec<String>,
    /// Clocks whose start, deadline, basis or stops may have changed (or that disappeared).
    pub clocks: BTreeSet<ClockId>,
}

/// A certificate the projector knows.
#[derive(Debug)]
struct CertEntry {
    details: Details,
    /// The cases that name it, each with the first time it did.
    sightings: Vec<(usize, Timestamp)>,
}

/// Where a certificate's details are. Most certificates are named once, or always alike, and
/// their details are then those of the first report, read from its facts rather than copied:
/// a mass report names 100 000, which the facts already hold.
#[derive(Debug)]
enum Details {
    /// `messages[message].certificates[index]`.
    Reported { message: usize, index: usize },
    /// Merged from reports that told more than the first.
    Merged(Box<CertificateRef>),
}

/// From how many clocks to refresh at once [`Projector::refresh`] builds them as a tree of
/// their own.
const BULK_CLOCKS: usize = 1024;

/// The id of the revocation clock of a certificate or key reference.
fn revocation_id(target: &str) -> ClockId {
    ClockId::revocation(target)
}

/// Builds and maintains the projection, one message at a time in receipt order.
///
/// Feeding the whole history and feeding it in pieces give the same projection (a unit test
/// holds the two together); the engine feeds new batches when they sort after everything fed
/// so far, and rebuilds from scratch when an older message arrives.
pub(crate) struct Projector {
    threader: threading::Threader,
    out: Projection,
    work: Vec<CaseWork>,
    /// Reference → index into `cert_list`.
    certs: HashMap<String, usize>,
    /// Every certificate named so far, in the order first named.
    cert_list: Vec<CertEntry>,
    /// Other names of a certificate (its crt.sh id, its SHA-256) → its reference.
    aliases: HashMap<String, String>,
    key_sightings: HashMap<String, Vec<(usize, Timestamp)>>,
    /// `spki:…` → certificates with that key.
    certs_by_key: HashMap<String, Vec<String>>,
    /// Staff revocation commands by target, as stops.
    stops: HashMap<String, Vec<Stop>>,
    /// Staff's `CPR-Reason` determinations by target, in receipt order.
    decisions: HashMap<String, Vec<Decision>>,
    /// Staff revocation commands, to report those that name nothing.
    revocation_commands: Vec<(usize, Command)>,
    /// Ignored commands that stay ignored whatever comes later.
    base_ignored: Vec<Ignored>,
    dirty_cases: BTreeSet<usize>,
    dirty_targets: BTreeSet<String>,
    changes: Changes,
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
    p.into_projection()
}

impl Projector {
    pub fn new(assigned: &Assigned, settings: &Settings) -> Projector {
        Projector {
            threader: threading::Threader::new(assigned, settings.thread_window),
            out: Projection::default(),
            work: Vec::new(),
            certs: HashMap::new(),
            cert_list: Vec::new(),
            aliases: HashMap::new(),
            key_sightings: HashMap::new(),
            certs_by_key: HashMap::new(),
            stops: HashMap::new(),
            decisions: HashMap::new(),
            revocation_commands: Vec::new(),
            base_ignored: Vec::new(),
            dirty_cases: BTreeSet::new(),
            dirty_targets: BTreeSet::new(),
            changes: Changes {
                full: true,
                ..Changes::default()
            },
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
        self.threader.dispositions.len()
    }

    pub(crate) fn projection(&self) -> &Projection {
        &self.out
    }

    pub(crate) fn into_projection(self) -> Projection {
        self.out
    }

    /// What changed since the last call.
    pub(crate) fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }

    /// Feed `messages[self.fed()..]`: `messages` is the whole history in receipt order, of
    /// which the first `fed()` were fed before.
    pub(crate) fn feed(&mut self, messages: &[MessageFacts]) {
        let versioned = self.versions.is_some();
        for idx in self.fed()..messages.len() {
            self.feed_one(messages, idx);
            // A version is what the messages received by one moment make: refresh before the
            // next moment's messages join in.
            if versioned
                && messages
                    .get(idx + 1)
                    .is_some_and(|next| next.received_at > messages[idx].received_at)
            {
                self.refresh(messages);
            }
        }
        self.refresh(messages);
        self.out.ignored = self.base_ignored.clone();
        self.out.ignored.extend(self.unmatched_commands(messages));
    }

    fn feed_one(&mut self, messages: &[MessageFacts], idx: usize) {
        let m = &messages[idx];
        let disposition = self.threader.feed(m);
        let (case, how) = match &disposition {
            Disposition::Opened(c) => (Some(*c), threading::OPENED),
            Disposition::Joined(c, via) => (Some(*c), *via),
            Disposition::Logged(reason) => (None, *reason),
        };
        self.out.placements.insert(
            m.content_hash.clone(),
            Placement {
                case: case.map(|c| self.threader.threads[c].id.clone()),
                how,
                message_id: m.message_id.clone(),
            },
        );
        self.changes.messages.push(m.content_hash.clone());
        let Some(c) = case else {
            ignore_commands(m, "the message joins no case", &mut self.base_ignored);
            return;
        };
        if matches!(disposition, Disposition::Opened(_)) {
            self.out.cases.push(Case {
                id: self.threader.threads[c].id.clone(),
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
            });
            self.work.push(CaseWork::new());
        }
        self.add_member(
            c,
            messages,
            idx,
            how,
            matches!(disposition, Disposition::Opened(_)),
        );
    }

    fn add_member(
        &mut self,
        c: usize,
        messages: &[MessageFacts],
        idx: usize,
        how: &'static str,
        founder: bool,
    ) {
        let m = &messages[idx];
        self.dirty_cases.insert(c);
        self.out.cases[c].messages.push(CaseMessage {
            content_hash: m.content_hash.clone(),
            message_id: m.message_id.clone(),
            received_at: m.received_at,
            from: m.from.clone(),
            folder: m.folder,
            staff: m.is_staff(),
            via: how,
        });
        if is_report(m, founder) {
            for index in 0..m.certificates.len() {
                self.add_certificate(c, messages, idx, index, m.received_at);
            }
            let w = &mut self.work[c];
            for k in &m.keys {
                w.key_evidence |= k.evidence.is_compromise_evidence();
                if let Some(r) = &k.reference
                    && !w.key_first.contains_key(r)
                {
                    w.key_first.insert(r.clone(), m.received_at);
                    self.key_sightings
                        .entry(r.clone())
                        .or_default()
                        .push((c, m.received_at));
                }
                merge_key(&mut self.out.cases[c].keys, &mut w.key_at, k);
            }
            for hit in &m.rules {
                let window = Duration::seconds(hit.window_secs);
                if w.rule_best.as_ref().is_none_or(|b| window < b.window) {
                    w.rule_best = Some(Class {
                        window,
                        basis: hit.id.clone(),
                        matched: (!hit.matched.is_empty()).then(|| hit.matched.clone()),
                    });
                }
            }
            w.reclassify();
        }
        if m.is_staff() {
            for cmd in &m.commands {
                let stop = match cmd {
                    Command::Dismiss { reason } => {
                        let w = &mut self.work[c];
                        if w.dismissed.is_none() {
                            w.dismissed = Some((m.received_at, reason.clone()));
                        }
                        continue;
                    }
                    Command::Answered { .. } => continue,
                    Command::Reason { target, item, .. } => {
                        self.decisions
                            .entry(target.clone())
                            .or_default()
                            .push(Decision {
                                at: m.received_at,
                                item: *item,
                                by: m.message_id.clone(),
                            });
                        self.dirty_targets.insert(target.clone());
                        let idx = self.fed() - 1;
                        self.revocation_commands.push((idx, cmd.clone()));
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
                self.stops.entry(target.clone()).or_default().push(stop);
                self.dirty_targets.insert(target.clone());
                let idx = self.fed() - 1;
                self.revocation_commands.push((idx, cmd.clone()));
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

    /// The details of certificate `i` of `cert_list`.
    fn cert<'a>(&'a self, messages: &'a [MessageFacts], i: usize) -> &'a CertificateRef {
        match &self.cert_list[i].details {
            Details::Reported { message, index } => &messages[*message].certificates[*index],
            Details::Merged(c) => c,
        }
    }

    /// Certificate `index` of `messages[message]`, named by a report in case `c` at `at`.
    fn add_certificate(
        &mut self,
        c: usize,
        messages: &[MessageFacts],
        message: usize,
        index: usize,
        at: Timestamp,
    ) {
        let cert = &messages[message].certificates[index];
        let r = &cert.reference;
        let (i, known) = match self.certs.get(r) {
            Some(&i) => (i, true),
            None => {
                let i = self.cert_list.len();
                self.certs.insert(r.clone(), i);
                self.cert_list.push(CertEntry {
                    details: Details::Reported { message, index },
                    sightings: Vec::new(),
                });
                (i, false)
            }
        };
        let w = &mut self.work[c];
        if w.cert_seen.insert(i) {
            w.cert_order.push(i);
            let sightings = &mut self.cert_list[i].sightings;
            // Most certificates are reported once: room for one sighting, not the default four.
            if sightings.capacity() == 0 {
                sightings.reserve_exact(1);
            }
            sightings.push((c, at));
        }
        // A certificate is listed under its key once, when its key first becomes known (a
        // key, once known, never changes): no search of the list, which a report naming
        // thousands of certificates of one key would make quadratic.
        let key_listed = if known {
            let before = self.cert(messages, i);
            let key_listed = before.spki_sha256.is_some();
            let mut merged = before.clone();
            merged.merge_from(cert);
            if merged != *before {
                // New details (a key, a validity) change every case that shows it.
                for (ci, _) in &self.cert_list[i].sightings {
                    self.dirty_cases.insert(*ci);
                }
                self.cert_list[i].details = Details::Merged(Box::new(merged));
            }
            key_listed
        } else {
            false
        };
        let merged = self.cert(messages, i);
        let key = merged.key_name().filter(|_| !key_listed);
        let names = merged.names();
        if let Some(key) = key {
            self.certs_by_key.entry(key).or_default().push(r.clone());
        }
        for name in names {
            if name != *r {
                self.aliases.insert(name, r.clone());
            }
        }
        self.dirty_targets.insert(r.clone());
    }

    /// Recompute what the messages fed since the last refresh touched.
    fn refresh(&mut self, messages: &[MessageFacts]) {
        let dirty_cases = std::mem::take(&mut self.dirty_cases);
        let mut targets = std::mem::take(&mut self.dirty_targets);
        // A case's class or dismissal bears on every certificate and key it names.
        for &c in &dirty_cases {
            let w = &self.work[c];
            targets.extend(
                w.cert_order
                    .iter()
                    .map(|&i| self.cert(messages, i).reference.clone()),
            );
            targets.extend(w.key_first.keys().cloned());
        }
        // A key's reports bear on every certificate with that key; aliases lead to certificates.
        let mut expanded: BTreeSet<String> = BTreeSet::new();
        for t in &targets {
            if let Some(r) = self.aliases.get(t) {
                expanded.insert(r.clone());
            }
            if let Some(certs) = self.certs_by_key.get(t) {
                expanded.extend(certs.iter().cloned());
            }
        }
        targets.extend(expanded);

        let mut relist: BTreeSet<usize> = dirty_cases.clone();
        // The clocks this refresh recomputed, for the versions it records.
        let mut refreshed: BTreeSet<ClockId> = BTreeSet::new();
        // Relisted cases that came out as they were.
        let mut unchanged: BTreeSet<usize> = BTreeSet::new();
        // Clocks inserted one by one in order leave every node of the tree half empty; many
        // new clocks at once (a mass report's 100 000) are built into a tree of their own and
        // joined in one pass, which fills the nodes. Only when they are at least as many as
        // those already there, so a small batch never pays for the whole tree.
        let bulk = targets.len() >= BULK_CLOCKS && targets.len() >= self.out.clocks.len();
        let mut built: Vec<(ClockId, Clock)> = Vec::new();
        for t in &targets {
            let (id, clock, cases) = if let Some(&i) = self.certs.get(t) {
                (
                    revocation_id(t),
                    self.certificate_clock(messages, i),
                    Some(&self.cert_list[i].sightings),
                )
            } else if self.key_sightings.contains_key(t) {
                (
                    revocation_id(t),
                    self.key_clock(t),
                    self.key_sightings.get(t),
                )
            } else {
                continue;
            };
            relist.extend(cases.into_iter().flatten().map(|(ci, _)| *ci));
            self.changes.clocks.insert(id.clone());
            // A version only for what differs from the one before (the store would keep no
            // other); comparing here saves it the look-up.
            if self.versions.is_some() && self.out.clocks.get(&id) != clock.as_ref() {
                refreshed.insert(id.clone());
            }
            match clock {
                Some(c) if bulk => built.push((id, c)),
                Some(c) => {
                    self.out.clocks.insert(id, c);
                }
                None => {
                    self.out.clocks.remove(&id);
                }
            }
        }
        if !built.is_empty() {
            let mut more: BTreeMap<ClockId, Clock> = built.into_iter().collect();
            self.out.clocks.append(&mut more);
        }

        for &c in &relist {
            let w = &self.work[c];
            let certificates: Vec<CertificateRef> = w
                .cert_order
                .iter()
                .map(|&i| self.cert(messages, i).clone())
                .collect();
            let prelim = self.preliminary_clock(messages, c);
            let mut clocks = Vec::with_capacity(1 + w.cert_order.len());
            clocks.push(prelim.id.clone());
            for &i in &w.cert_order {
                let id = revocation_id(&self.cert(messages, i).reference);
                if self.out.clocks.contains_key(&id) {
                    clocks.push(id);
                }
            }
            // A set beside the list: a report naming 100 000 keys must not search the list
            // once per key.
            let mut listed: HashSet<ClockId> = HashSet::new();
            for k in &self.out.cases[c].keys {
                if let Some(r) = &k.reference {
                    let id = revocation_id(r);
                    if self.out.clocks.contains_key(&id)
                        && !self.certs.get(r).is_some_and(|i| w.cert_seen.contains(i))
                        && listed.insert(id.clone())
                    {
                        clocks.push(id);
                    }
                }
            }
            let dismissed = w.dismissed.clone();
            let case = &mut self.out.cases[c];
            if self.versions.is_some()
                && !dirty_cases.contains(&c)
                && case.certificates == certificates
                && case.dismissed == dismissed
                && case.clocks == clocks
            {
                unchanged.insert(c);
            }
            case.certificates = certificates;
            case.dismissed = dismissed;
            case.clocks = clocks;
            self.changes.clocks.insert(prelim.id.clone());
            if self.versions.is_some() && self.out.clocks.get(&prelim.id) != Some(&prelim) {
                refreshed.insert(prelim.id.clone());
            }
            self.out.clocks.insert(prelim.id.clone(), prelim);
            self.changes.cases.insert(c);
        }
        if self.versions.is_some() {
            relist.retain(|c| !unchanged.contains(c));
            self.record_versions(messages, &relist, &refreshed);
        }
    }

    /// Record the versions of the cases and clocks one refresh touched, valid from the receipt
    /// time of the last message fed. Unchanged ones are recorded too: the store keeps a
    /// version only when it differs from the one before.
    fn record_versions(
        &mut self,
        messages: &[MessageFacts],
        cases: &BTreeSet<usize>,
        clocks: &BTreeSet<ClockId>,
    ) {
        let Some(as_of) = self.fed().checked_sub(1).map(|i| messages[i].received_at) else {
            return;
        };
        if self.versions.is_none() || !self.emit.wants(as_of) {
            return;
        }
        let mut out = Vec::with_capacity(cases.len() + clocks.len());
        for id in clocks {
            out.push(Version::Clock(ClockVersion {
                as_of,
                id: id.clone(),
                row: self.out.clocks.get(id).map(tables::clock_row),
            }));
        }
        for &c in cases {
            out.push(Version::Case(tables::case_version(
                as_of,
                c,
                &self.out.cases[c],
            )));
        }
        if let Some(v) = self.versions.as_mut() {
            v.extend(out);
        }
    }

    /// BR 4.9.5: 24 hours from receipt to a preliminary report to the reporter.
    fn preliminary_clock(&self, messages: &[MessageFacts], c: usize) -> Clock {
        let case = &self.out.cases[c];
        let thread = &self.threader.threads[c];
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
            stops: Vec::new(),
        };
        for &idx in &thread.members {
            let m = &messages[idx];
            if idx == thread.founder || !m.is_staff() {
                continue;
            }
            // An answer is a person's mail to the reporter: not an internal forward, not an
            // automatic message, not a receipt this tool sent.
            let to_reporter =
                m.to.iter()
                    .chain(m.cc.iter())
                    .any(|a| case.reporter_addresses.contains(a));
            if to_reporter && m.automation == Automation::None {
                clock.stops.push(Stop {
                    at: m.received_at,
                    kind: StopKind::Done,
                    by: m.message_id.clone(),
                });
            }
            for cmd in &m.commands {
                if let Command::Answered { at, place } = cmd {
                    clock.stops.push(Stop {
                        at: at.unwrap_or(m.received_at),
                        kind: StopKind::Done,
                        by: format!("CPR-Answered: {place}"),
                    });
                }
            }
        }
        if let Some((at, reason)) = &self.work[c].dismissed {
            clock.stops.push(Stop {
                at: *at,
                kind: StopKind::Dismissed,
                by: format!("CPR-Dismiss: {reason}"),
            });
        }
        clock
    }

    fn live(&self, ci: usize) -> bool {
        self.work[ci].dismissed.is_none()
    }

    /// BR 4.9.1.1 / 4.9.1.2 for one certificate, shared by every case that names it: the
    /// earliest report of it or its key starts it, the shortest window ends it.
    fn certificate_clock(&self, messages: &[MessageFacts], i: usize) -> Option<Clock> {
        let cert = self.cert(messages, i);
        let r = cert.reference.as_str();
        if clock::is_short_lived(cert) {
            return None;
        }
        let sightings = &self.cert_list[i].sightings;
        let key_ref = cert.key_name();
        let key_seen = key_ref
            .as_ref()
            .and_then(|k| self.key_sightings.get(k))
            .cloned()
            .unwrap_or_default();
        // Dismissed cases count only when nothing else names it.
        let any_live = sightings
            .iter()
            .chain(&key_seen)
            .any(|(ci, _)| self.live(*ci));
        let pick = |s: &[(usize, Timestamp)]| -> Vec<(usize, Timestamp)> {
            s.iter()
                .filter(|(ci, _)| !any_live || self.live(*ci))
                .copied()
                .collect()
        };
        let mut candidates: Vec<Candidate> = pick(sightings)
            .into_iter()
            .map(|(ci, t)| Candidate {
                at: t,
                window: self.work[ci].class.window,
                basis: self.work[ci].class.basis.clone(),
                matched: self.work[ci].class.matched.clone(),
            })
            .collect();
        candidates.extend(pick(&key_seen).into_iter().map(|(_, t)| Candidate {
            at: t,
            window: clock::DAY,
            basis: clock::BASIS_KEY.to_string(),
            matched: None,
        }));
        if cert.is_ca == Some(true) {
            for c in &mut candidates {
                c.window = clock::SUBORDINATE_CA;
                c.basis = clock::BASIS_CA.to_string();
            }
        }
        let mut c = Clock::from_candidates(
            revocation_id(r),
            ClockKind::Revocation,
            None,
            Some(r.to_string()),
            &candidates,
        )?;
        let mut names = cert.names();
        names.extend(key_ref.clone());
        for n in &names {
            if let Some(s) = self.stops.get(n) {
                c.stops.extend(s.iter().cloned());
            }
        }
        if let Some(d) = self.latest_decision(&names) {
            c.decide(d);
        }
        if let Some(s) = clock::expiry_stop(cert, c.started_at, c.deadline) {
            c.stops.push(s);
        }
        if !any_live {
            self.push_dismissal(&mut c, sightings.iter().chain(&key_seen));
        }
        Some(c)
    }

    /// One clock per reported key: every certificate with it is due within 24 hours.
    fn key_clock(&self, k: &str) -> Option<Clock> {
        let seen = self.key_sightings.get(k)?;
        let any_live = seen.iter().any(|(ci, _)| self.live(*ci));
        let candidates: Vec<Candidate> = seen
            .iter()
            .filter(|(ci, _)| !any_live || self.live(*ci))
            .map(|(_, t)| Candidate {
                at: *t,
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
        if let Some(s) = self.stops.get(k) {
            c.stops.extend(s.iter().cloned());
        }
        if let Some(d) = self.latest_decision(&[k.to_string()]) {
            c.decide(d);
        }
        if !any_live {
            self.push_dismissal(&mut c, seen.iter());
        }
        Some(c)
    }

    /// Staff's last word on the reason, under any of a target's names.
    fn latest_decision(&self, names: &[String]) -> Option<&Decision> {
        names
            .iter()
            .filter_map(|n| self.decisions.get(n))
            .flatten()
            .max_by_key(|d| d.at)
    }

    /// A clock whose every case was dismissed stops when the last of them was.
    fn push_dismissal<'a>(
        &self,
        c: &mut Clock,
        sightings: impl Iterator<Item = &'a (usize, Timestamp)>,
    ) {
        let last = sightings
            .filter_map(|(ci, _)| self.work[*ci].dismissed.as_ref().map(|(t, _)| *t))
            .max();
        if let Some(at) = last {
            c.stops.push(Stop {
                at,
                kind: StopKind::Dismissed,
                by: "CPR-Dismiss".into(),
            });
        }
    }

    /// Revocation commands that name no reported certificate or key: kept as ignored claims.
    fn unmatched_commands(&self, messages: &[MessageFacts]) -> Vec<Ignored> {
        let mut out = Vec::new();
        for (idx, cmd) in &self.revocation_commands {
            let (Command::Revoked { target, .. }
            | Command::NotRevoking { target, .. }
            | Command::Reason { target, .. }) = cmd
            else {
                continue;
            };
            let exists = |r: &str| self.out.clocks.contains_key(&revocation_id(r));
            let known = exists(target)
                || self.aliases.get(target).is_some_and(|r| exists(r))
                || self
                    .certs_by_key
                    .get(target)
                    .is_some_and(|rs| rs.iter().any(|r| exists(r)));
            if !known {
                let m = &messages[*idx];
                out.push(Ignored {
                    message: m.content_hash.clone(),
                    message_id: m.message_id.clone(),
                    from: m.from.clone(),
                    command: Some(cmd.clone()),
                    line: None,
                    reason: format!("{target} names no reported certificate or key"),
                });
            }
        }
        out
    }
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
