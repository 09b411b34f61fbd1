//! The engine: messages in, events out. Pure — the caller passes `now` and persists the batch.
//!
//! The engine holds the facts of every message received so far and a [`Recorded`] view: what
//! the log already says (cases opened, clocks started, states reached). After each batch, or
//! each tick of the clock, it projects cases and clocks afresh and appends exactly the
//! difference between the projection and the recorded view. So re-reading a folder adds
//! nothing, a restart re-emits nothing, and a message arriving out of order produces the
//! events that describe its effect (a revised deadline, a merged case) instead of a different
//! history.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::correlate::Assigned;
use crate::event::{ClockState, Envelope, Event, MessageFacts};
use crate::facts::{self, Policy};
use crate::model::{SourceMeta, Timestamp};
use crate::projection::{self, Projection, Settings};

/// What the caller must persist atomically: new raw messages, their source positions, and the
/// events in order.
#[derive(Debug, Default)]
pub struct Batch {
    pub messages: Vec<(String, Vec<u8>)>,
    pub positions: Vec<(String, String)>,
    pub events: Vec<Envelope>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.positions.is_empty() && self.events.is_empty()
    }
}

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
    cases: HashSet<String>,
    /// Content hash → case, or `None` for a logged message.
    placements: HashMap<String, Option<String>>,
    case_certs: HashSet<(String, String)>,
    case_keys: HashSet<(String, String)>,
    clocks: BTreeMap<String, RecordedClock>,
    ignored: HashSet<String>,
}

fn key_identity(k: &crate::model::KeyRef) -> String {
    k.reference
        .clone()
        .unwrap_or_else(|| format!("unknown:{}", k.evidence.as_str()))
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
                self.case_certs
                    .insert((case.clone(), certificate.reference.clone()));
            }
            Event::KeyReported { case, key } => {
                self.case_keys.insert((case.clone(), key_identity(key)));
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

/// The core's state between batches.
pub struct Engine {
    policy: Policy,
    settings: Settings,
    /// Sorted by [`MessageFacts::sort_key`].
    facts: Vec<MessageFacts>,
    known: HashSet<String>,
    assigned: Assigned,
    recorded: Recorded,
    /// Projection of all facts, cached until the next batch.
    cached: Option<Projection>,
}

impl Engine {
    pub fn new(policy: Policy, settings: Settings) -> Engine {
        Engine {
            policy,
            settings,
            facts: Vec::new(),
            known: HashSet::new(),
            assigned: Assigned::new(),
            recorded: Recorded::default(),
            cached: None,
        }
    }

    /// Rebuild from the log, in order.
    pub fn restore<'a>(
        policy: Policy,
        settings: Settings,
        log: impl IntoIterator<Item = &'a Envelope>,
    ) -> Engine {
        let mut e = Engine::new(policy, settings);
        for env in log {
            e.absorb(&env.event);
        }
        e.facts.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        e
    }

    fn absorb(&mut self, event: &Event) {
        if let Event::MessageReceived { facts } = event {
            if self.known.insert(facts.content_hash.clone()) {
                self.facts.push((**facts).clone());
                self.cached = None;
            }
        } else {
            self.recorded.apply(event, &mut self.assigned);
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn knows(&self, content_hash: &str) -> bool {
        self.known.contains(content_hash)
    }

    pub fn message_count(&self) -> usize {
        self.facts.len()
    }

    /// Every message, in receipt order.
    pub fn facts(&self) -> &[MessageFacts] {
        &self.facts
    }

    /// Ingest raw messages seen at `now`. Returns what to persist; the engine has already
    /// absorbed it, so on a failed commit rebuild the engine from the store.
    pub fn ingest(&mut self, incoming: Vec<(Vec<u8>, SourceMeta)>, now: Timestamp) -> Batch {
        let mut batch = Batch::default();
        let mut new_facts = Vec::new();
        for (raw, meta) in incoming {
            let hash = facts::content_hash(&raw);
            if let Some(p) = &meta.position {
                batch.positions.push((p.clone(), hash.clone()));
            }
            if self.known.contains(&hash) {
                continue;
            }
            let f = facts::message_facts(&raw, &hash, &meta, &self.policy, now);
            self.known.insert(hash.clone());
            batch.messages.push((hash, raw));
            new_facts.push(f);
        }
        new_facts.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        for f in &new_facts {
            batch.events.push(Envelope {
                recorded_at: now,
                event: Event::MessageReceived {
                    facts: Box::new(f.clone()),
                },
            });
        }
        if !new_facts.is_empty() {
            self.facts.extend(new_facts);
            self.facts.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
            self.cached = None;
        }
        batch.events.extend(self.tick(now));
        batch
    }

    /// Re-evaluate every clock at `now` and return the events for what changed (a breach, an
    /// expiry, a command whose time has come). The events are already absorbed.
    pub fn tick(&mut self, now: Timestamp) -> Vec<Envelope> {
        let projection = self.projection_now(now);
        let events = diff(&projection, &self.recorded, &self.facts, now);
        for e in &events {
            self.recorded.apply(e, &mut self.assigned);
        }
        self.cached = Some(projection);
        events
            .into_iter()
            .map(|event| Envelope {
                recorded_at: now,
                event,
            })
            .collect()
    }

    fn projection_now(&mut self, now: Timestamp) -> Projection {
        let all_present = self.facts.last().is_none_or(|f| f.received_at <= now);
        match self.cached.take() {
            Some(p) if all_present => p,
            _ => self.project_at(now),
        }
    }

    /// The projection made by the last [`Engine::tick`], if no message arrived since.
    pub fn current(&self) -> Option<&Projection> {
        self.cached.as_ref()
    }

    /// The projection as it was at `at`: messages received later do not exist yet.
    pub fn project_at(&self, at: Timestamp) -> Projection {
        let cut = self.facts.partition_point(|f| f.received_at <= at);
        let present: Vec<&MessageFacts> = self.facts[..cut].iter().collect();
        projection::project(&present, &self.assigned, &self.settings)
    }
}

/// The events that bring the recorded view up to the projection at `now`.
fn diff(p: &Projection, rec: &Recorded, facts: &[MessageFacts], now: Timestamp) -> Vec<Event> {
    let mut out = Vec::new();
    let by_hash: HashMap<&str, &MessageFacts> =
        facts.iter().map(|f| (f.content_hash.as_str(), f)).collect();
    let message_id = |h: &str| {
        by_hash
            .get(h)
            .map(|f| f.message_id.clone())
            .unwrap_or_default()
    };

    let mut present: HashSet<&str> = HashSet::new();
    for case in &p.cases {
        present.insert(&case.id);
        if !rec.cases.contains(&case.id) {
            out.push(Event::CaseOpened {
                case: case.id.clone(),
                message: case.founder.clone(),
                message_id: message_id(&case.founder),
                reporter: case.reporter.clone(),
                subject: case.subject.clone(),
                opened_at: case.opened_at,
            });
        }
        for m in case.messages.iter().skip(1) {
            if rec.placements.get(&m.content_hash) != Some(&Some(case.id.clone())) {
                out.push(Event::MessageJoined {
                    case: case.id.clone(),
                    message: m.content_hash.clone(),
                    message_id: m.message_id.clone(),
                    via: m.via.to_string(),
                });
            }
        }
        for c in &case.certificates {
            if !rec
                .case_certs
                .contains(&(case.id.clone(), c.reference.clone()))
            {
                out.push(Event::CertificateReported {
                    case: case.id.clone(),
                    certificate: Box::new(c.clone()),
                });
            }
        }
        for k in &case.keys {
            if !rec.case_keys.contains(&(case.id.clone(), key_identity(k))) {
                out.push(Event::KeyReported {
                    case: case.id.clone(),
                    key: k.clone(),
                });
            }
        }
    }
    let mut gone: Vec<&String> = rec
        .cases
        .iter()
        .filter(|c| !present.contains(c.as_str()))
        .collect();
    gone.sort();
    for case in gone {
        // The case's opening message now sits in an older case: point to it.
        let into = rec
            .placements
            .iter()
            .find(|(_, c)| c.as_deref() == Some(case.as_str()))
            .and_then(|(h, _)| p.placements.get(h))
            .and_then(|pl| pl.case.clone())
            .unwrap_or_default();
        out.push(Event::CaseMerged {
            case: case.clone(),
            into,
        });
    }
    for (hash, pl) in &p.placements {
        if pl.case.is_none() && rec.placements.get(hash) != Some(&None) {
            out.push(Event::MessageLogged {
                message: hash.clone(),
                message_id: message_id(hash),
                reason: pl.how.to_string(),
            });
        }
    }

    for (id, c) in &p.clocks {
        let status = c.status(now);
        let known = rec.clocks.get(id);
        match known {
            None => out.push(Event::ClockStarted {
                clock: id.clone(),
                kind: c.kind,
                case: c.case.clone(),
                target: c.target.clone(),
                started_at: c.started_at,
                deadline: c.deadline,
                basis: c.basis.clone(),
            }),
            Some(k)
                if k.started_at != c.started_at
                    || k.deadline != c.deadline
                    || k.basis != c.basis =>
            {
                out.push(Event::ClockRevised {
                    clock: id.clone(),
                    started_at: c.started_at,
                    deadline: c.deadline,
                    basis: c.basis.clone(),
                })
            }
            Some(_) => {}
        }
        let before = known.map(|k| k.state).unwrap_or(ClockState::Pending);
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
                    at: status.stopped_at.unwrap_or(now),
                    basis: status.basis.clone(),
                },
            });
        }
    }

    for ig in &p.ignored {
        let id = match (&ig.command, &ig.line) {
            (Some(c), _) => ignored_identity(&ig.message, &ig.reason, c),
            (None, l) => ignored_identity(&ig.message, &ig.reason, l),
        };
        if !rec.ignored.contains(&id) {
            out.push(Event::CommandIgnored {
                message: ig.message.clone(),
                message_id: ig.message_id.clone(),
                from: ig.from.clone(),
                command: ig.command.clone(),
                line: ig.line.clone(),
                reason: ig.reason.clone(),
            });
        }
    }
    out
}
