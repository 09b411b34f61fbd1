//! Cases and clocks as a pure function of the received messages and a moment in time.
//!
//! Nothing here reads the store or the wall clock: [`project`] takes the messages (their
//! [`MessageFacts`], as stored in the log), the case numbers already handed out, and `at`.
//! Messages received after `at` do not exist yet; a command that takes effect after `at` has
//! not taken effect. Everything a person or an auditor sees is rendered from this.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use time::Duration;

use crate::clock::{self, Candidate, Clock, Stop, StopKind};
use crate::correlate::{self, Assigned, Disposition};
use crate::event::{Automation, ClockKind, MessageFacts};
use crate::model::{BadCommand, CertificateRef, Command, KeyRef, Timestamp};

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
    pub folder: crate::model::FolderRole,
    pub staff: bool,
    /// `opened` or how it joined.
    pub via: &'static str,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    pub id: String,
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
    pub clocks: Vec<String>,
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
    pub case: Option<String>,
    /// `opened`, the joining path, or the reason it is only logged.
    pub how: &'static str,
}

#[derive(Clone, Debug, Default)]
pub struct Projection {
    pub cases: Vec<Case>,
    pub clocks: BTreeMap<String, Clock>,
    /// By content hash.
    pub placements: BTreeMap<String, Placement>,
    pub ignored: Vec<Ignored>,
}

impl Projection {
    pub fn case(&self, id: &str) -> Option<&Case> {
        self.cases.iter().find(|c| c.id == id)
    }
}

/// Per-case facts the clocks need, gathered once.
struct CaseWork {
    /// Deadline class of the case: (window, basis) from key evidence, rules or the default.
    class: (Duration, String),
    /// First time each certificate / key was named by a report in this case, and the
    /// certificates in the order the case named them.
    cert_first: BTreeMap<String, Timestamp>,
    cert_order: Vec<String>,
    key_first: BTreeMap<String, Timestamp>,
    dismissed: Option<(Timestamp, String)>,
}

/// Build the projection. `messages` must be sorted by [`MessageFacts::sort_key`] and hold only
/// the messages that exist at the moment of interest (received at or before it); clock states
/// at that moment come from [`Clock::status`].
pub fn project(messages: &[&MessageFacts], assigned: &Assigned, settings: &Settings) -> Projection {
    let threads = correlate::thread(messages, assigned, settings.thread_window);
    let mut out = Projection::default();
    let mut work = Vec::with_capacity(threads.threads.len());
    // Certificates merged across every sighting, so each case shows the same details.
    let mut certs: BTreeMap<String, CertificateRef> = BTreeMap::new();
    let mut cert_order: Vec<String> = Vec::new();

    for (idx, m) in messages.iter().enumerate() {
        let placement = match &threads.dispositions[idx] {
            Disposition::Opened(c) => Placement {
                case: Some(threads.threads[*c].id.clone()),
                how: "opened",
            },
            Disposition::Joined(c, via) => Placement {
                case: Some(threads.threads[*c].id.clone()),
                how: via,
            },
            Disposition::Logged(reason) => Placement {
                case: None,
                how: reason,
            },
        };
        if placement.case.is_none() {
            ignore_commands(m, "the message joins no case", &mut out.ignored);
        }
        out.placements.insert(m.content_hash.clone(), placement);
    }

    for thread in &threads.threads {
        let founder = messages[thread.founder];
        let mut case = Case {
            id: thread.id.clone(),
            founder: founder.content_hash.clone(),
            reporter: founder.from.clone(),
            reporter_addresses: addresses(founder),
            subject: founder.subject.clone(),
            opened_at: founder.received_at,
            messages: Vec::with_capacity(thread.members.len()),
            certificates: Vec::new(),
            keys: Vec::new(),
            clocks: Vec::new(),
            dismissed: None,
        };
        let mut w = CaseWork {
            class: (clock::DAY, clock::BASIS_DEFAULT.to_string()),
            cert_first: BTreeMap::new(),
            cert_order: Vec::new(),
            key_first: BTreeMap::new(),
            dismissed: None,
        };
        let mut rule_best: Option<(Duration, String)> = None;
        let mut key_evidence = false;
        let mut keys: Vec<KeyRef> = Vec::new();
        for &idx in &thread.members {
            let m = messages[idx];
            case.messages.push(CaseMessage {
                content_hash: m.content_hash.clone(),
                message_id: m.message_id.clone(),
                received_at: m.received_at,
                from: m.from.clone(),
                folder: m.folder,
                staff: m.is_staff(),
                via: if idx == thread.founder {
                    "opened"
                } else {
                    match &threads.dispositions[idx] {
                        Disposition::Joined(_, via) => via,
                        _ => "opened",
                    }
                },
            });
            if is_report(m, idx == thread.founder) {
                for c in &m.certificates {
                    if !w.cert_first.contains_key(&c.reference) {
                        w.cert_first.insert(c.reference.clone(), m.received_at);
                        w.cert_order.push(c.reference.clone());
                    }
                    match certs.get_mut(&c.reference) {
                        Some(known) => known.merge_from(c),
                        None => {
                            certs.insert(c.reference.clone(), c.clone());
                            cert_order.push(c.reference.clone());
                        }
                    }
                }
                for k in &m.keys {
                    key_evidence |= k.evidence.is_compromise_evidence();
                    if let Some(r) = &k.reference {
                        w.key_first.entry(r.clone()).or_insert(m.received_at);
                    }
                    merge_key(&mut keys, k);
                }
                for hit in &m.rules {
                    let window = Duration::seconds(hit.window_secs);
                    if rule_best.as_ref().is_none_or(|(bw, _)| window < *bw) {
                        rule_best = Some((window, hit.id.clone()));
                    }
                }
            }
            if m.is_staff() {
                for cmd in &m.commands {
                    if let Command::Dismiss { reason } = cmd
                        && w.dismissed.is_none()
                    {
                        w.dismissed = Some((m.received_at, reason.clone()));
                    }
                }
            } else {
                ignore_commands(
                    m,
                    "the sender is not staff (a From: header alone proves nothing)",
                    &mut out.ignored,
                );
            }
            for bad in &m.bad_commands {
                out.ignored.push(Ignored {
                    message: m.content_hash.clone(),
                    message_id: m.message_id.clone(),
                    from: m.from.clone(),
                    command: None,
                    line: Some(bad.clone()),
                    reason: bad.problem.clone(),
                });
            }
        }
        w.class = if key_evidence {
            (clock::DAY, clock::BASIS_KEY.to_string())
        } else if let Some(best) = rule_best {
            best
        } else {
            (clock::DAY, clock::BASIS_DEFAULT.to_string())
        };
        case.keys = keys;
        case.dismissed = w.dismissed.clone();
        out.cases.push(case);
        work.push(w);
    }

    // Each case's certificates, in the order the case named them, with globally merged details.
    for (case, w) in out.cases.iter_mut().zip(&work) {
        case.certificates = w
            .cert_order
            .iter()
            .filter_map(|r| certs.get(r).cloned())
            .collect();
    }

    preliminary_clocks(messages, &threads, &mut out, &work);
    revocation_clocks(messages, &threads, &mut out, &work, &certs, &cert_order);
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

fn merge_key(keys: &mut Vec<KeyRef>, k: &KeyRef) {
    if k.reference.is_some()
        && let Some(known) = keys.iter_mut().find(|x| x.reference == k.reference)
    {
        if k.evidence > known.evidence {
            known.evidence = k.evidence;
        }
        if known.algorithm.is_none() {
            known.algorithm.clone_from(&k.algorithm);
        }
        return;
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

/// BR 4.9.5: 24 hours from receipt to a preliminary report to the reporter.
fn preliminary_clocks(
    messages: &[&MessageFacts],
    threads: &correlate::Threads,
    out: &mut Projection,
    work: &[CaseWork],
) {
    for ((thread, case), w) in threads.threads.iter().zip(out.cases.iter_mut()).zip(work) {
        let id = format!("preliminary_report:{}", case.id);
        let mut c = Clock {
            id: id.clone(),
            kind: ClockKind::PreliminaryReport,
            case: Some(case.id.clone()),
            target: None,
            started_at: case.opened_at,
            deadline: case.opened_at + clock::DAY,
            basis: clock::BASIS_PRELIMINARY.to_string(),
            stops: Vec::new(),
        };
        for &idx in &thread.members {
            let m = messages[idx];
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
                c.stops.push(Stop {
                    at: m.received_at,
                    kind: StopKind::Done,
                    by: m.message_id.clone(),
                });
            }
            for cmd in &m.commands {
                if let Command::Answered { at, place } = cmd {
                    c.stops.push(Stop {
                        at: at.unwrap_or(m.received_at),
                        kind: StopKind::Done,
                        by: format!("CPR-Answered: {place}"),
                    });
                }
            }
        }
        if let Some((at, reason)) = &w.dismissed {
            c.stops.push(Stop {
                at: *at,
                kind: StopKind::Dismissed,
                by: format!("CPR-Dismiss: {reason}"),
            });
        }
        case.clocks.push(id.clone());
        out.clocks.insert(id, c);
    }
}

/// BR 4.9.1.1 / 4.9.1.2: a clock per reported certificate and per reported key, shared by
/// every case that names it; the earliest report starts it and the shortest window ends it.
fn revocation_clocks(
    messages: &[&MessageFacts],
    threads: &correlate::Threads,
    out: &mut Projection,
    work: &[CaseWork],
    certs: &BTreeMap<String, CertificateRef>,
    cert_order: &[String],
) {
    // Staff commands that stop revocation clocks, by target reference.
    let mut stops: HashMap<String, Vec<Stop>> = HashMap::new();
    for thread in &threads.threads {
        for &idx in &thread.members {
            let m = messages[idx];
            if !m.is_staff() {
                continue;
            }
            for cmd in &m.commands {
                let (target, stop) = match cmd {
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
                    _ => continue,
                };
                stops.entry(target.clone()).or_default().push(stop);
            }
        }
    }

    // Which cases name each certificate and each key, with when; dismissed cases count only if
    // nothing else does. Indexed once: a desk holds many thousands of both.
    let mut key_sightings: BTreeMap<String, Vec<(usize, Timestamp)>> = BTreeMap::new();
    let mut cert_sightings: HashMap<&str, Vec<(usize, Timestamp)>> = HashMap::new();
    for (ci, w) in work.iter().enumerate() {
        for (k, t) in &w.key_first {
            key_sightings.entry(k.clone()).or_default().push((ci, *t));
        }
        for (r, t) in &w.cert_first {
            cert_sightings.entry(r.as_str()).or_default().push((ci, *t));
        }
    }
    let live = |ci: &usize| work[*ci].dismissed.is_none();

    let mut matched_targets: BTreeSet<String> = BTreeSet::new();

    for r in cert_order {
        let Some(cert) = certs.get(r) else { continue };
        if clock::is_short_lived(cert) {
            continue;
        }
        let is_ca = cert.is_ca == Some(true);
        let sightings: Vec<(usize, Timestamp)> =
            cert_sightings.get(r.as_str()).cloned().unwrap_or_default();
        let key_ref = cert.spki_sha256.as_ref().map(|h| format!("spki:{h}"));
        let key_seen: Vec<(usize, Timestamp)> = key_ref
            .as_ref()
            .and_then(|k| key_sightings.get(k))
            .cloned()
            .unwrap_or_default();
        let any_live = sightings.iter().chain(&key_seen).any(|(ci, _)| live(ci));
        let pick = |s: &Vec<(usize, Timestamp)>| -> Vec<(usize, Timestamp)> {
            s.iter()
                .filter(|(ci, _)| !any_live || live(ci))
                .copied()
                .collect()
        };
        let mut candidates: Vec<Candidate> = pick(&sightings)
            .into_iter()
            .map(|(ci, t)| Candidate {
                at: t,
                window: work[ci].class.0,
                basis: work[ci].class.1.clone(),
            })
            .collect();
        candidates.extend(pick(&key_seen).into_iter().map(|(_, t)| Candidate {
            at: t,
            window: clock::DAY,
            basis: clock::BASIS_KEY.to_string(),
        }));
        if is_ca {
            for c in &mut candidates {
                c.window = clock::SUBORDINATE_CA;
                c.basis = clock::BASIS_CA.to_string();
            }
        }
        let id = format!("revocation:{r}");
        let Some(mut c) = Clock::from_candidates(
            id.clone(),
            ClockKind::Revocation,
            None,
            Some(r.clone()),
            &candidates,
        ) else {
            continue;
        };
        let names = cert_names(cert, key_ref.as_deref());
        for n in &names {
            if let Some(s) = stops.get(n) {
                c.stops.extend(s.iter().cloned());
                matched_targets.insert(n.clone());
            }
        }
        if let Some(s) = clock::expiry_stop(cert, c.started_at, c.deadline) {
            c.stops.push(s);
        }
        if !any_live {
            push_dismissal(&mut c, sightings.iter().chain(&key_seen), work);
        }
        for (ci, _) in &sightings {
            out.cases[*ci].clocks.push(id.clone());
        }
        out.clocks.insert(id, c);
    }

    for (k, seen) in &key_sightings {
        let any_live = seen.iter().any(|(ci, _)| live(ci));
        let candidates: Vec<Candidate> = seen
            .iter()
            .filter(|(ci, _)| !any_live || live(ci))
            .map(|(_, t)| Candidate {
                at: *t,
                window: clock::DAY,
                basis: clock::BASIS_KEY.to_string(),
            })
            .collect();
        let id = format!("revocation:{k}");
        let Some(mut c) = Clock::from_candidates(
            id.clone(),
            ClockKind::Revocation,
            None,
            Some(k.clone()),
            &candidates,
        ) else {
            continue;
        };
        if let Some(s) = stops.get(k) {
            c.stops.extend(s.iter().cloned());
            matched_targets.insert(k.clone());
        }
        if !any_live {
            push_dismissal(&mut c, seen.iter(), work);
        }
        for (ci, _) in seen {
            out.cases[*ci].clocks.push(id.clone());
        }
        out.clocks.insert(id, c);
    }

    // Revocation commands that name nothing reported are kept as ignored claims.
    for thread in &threads.threads {
        for &idx in &thread.members {
            let m = messages[idx];
            if !m.is_staff() {
                continue;
            }
            for cmd in &m.commands {
                if let Command::Revoked { target, .. } | Command::NotRevoking { target, .. } = cmd
                    && !matched_targets.contains(target)
                {
                    out.ignored.push(Ignored {
                        message: m.content_hash.clone(),
                        message_id: m.message_id.clone(),
                        from: m.from.clone(),
                        command: Some(cmd.clone()),
                        line: None,
                        reason: format!("{target} names no reported certificate or key"),
                    });
                }
            }
        }
    }
}

/// Every name staff may use for a certificate in a command.
fn cert_names(cert: &CertificateRef, key_ref: Option<&str>) -> Vec<String> {
    let mut names = vec![cert.reference.clone()];
    if let Some(id) = cert.crtsh_id {
        names.push(format!("crtsh:{id}"));
    }
    if let Some(h) = &cert.sha256 {
        names.push(format!("sha256:{h}"));
    }
    if let Some(k) = key_ref {
        names.push(k.to_string());
    }
    names.dedup();
    names
}

/// A clock whose every case was dismissed stops when the last of them was.
fn push_dismissal<'a>(
    c: &mut Clock,
    sightings: impl Iterator<Item = &'a (usize, Timestamp)>,
    work: &[CaseWork],
) {
    let last = sightings
        .filter_map(|(ci, _)| work[*ci].dismissed.as_ref().map(|(t, _)| *t))
        .max();
    if let Some(at) = last {
        c.stops.push(Stop {
            at,
            kind: StopKind::Dismissed,
            by: "CPR-Dismiss".into(),
        });
    }
}
