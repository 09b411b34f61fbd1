//! The auditor's commands: `cprwatch audit export` (every case opened in a period, as a
//! CCADB-style incident timeline in Markdown, one CSV row per clock, or the log's events as
//! JSON) and `cprwatch audit report` (the SLA report of [`crate::deciding::sla`]).
//!
//! Reading and rendering only: the cases and clocks come from the store's tables as `case`
//! reads them, the timeline from the events that concern each case, the statistics from the
//! pure core. Everything a report wrote passes through [`crate::escape`] for its medium:
//! [`markdown`](crate::escape::markdown), [`csv_field`](crate::escape::csv_field),
//! [`text`](crate::escape::text), or serde for JSON.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::path::Path;

use serde::Serialize;
use time::UtcOffset;

use crate::cli::commands::{self, CommandError, Outcome};
use crate::cli::lookup::{self, LoggedEvent};
use crate::deciding::cases::{Case, Projection};
use crate::deciding::clock::{Clock, StopKind};
use crate::deciding::sla::{self, Period, SlaReport};
use crate::desk::DeskError;
use crate::domain::event::{Automation, ClockKind, ClockState, Event};
use crate::domain::ids::ClockId;
use crate::domain::model::{Command, Timestamp};
use crate::domain::timefmt;
use crate::escape;
use crate::store::Tables;

/// `audit export --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Md,
    Csv,
    Json,
}

/// `audit report --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Text,
    Md,
    Json,
}

/// A `--from`/`--to` bound: a date (`2026-01-01`, midnight UTC) or an RFC 3339 time.
pub(crate) fn parse_bound(s: &str, flag: &str) -> Result<Timestamp, CommandError> {
    let s = s.trim();
    let date = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(s, &date) {
        return Ok(d.midnight().assume_utc());
    }
    timefmt::parse(s).map_err(|_| {
        CommandError::Usage(format!(
            "{flag} {:?} is neither a date nor an RFC 3339 time; write it like 2026-01-01 or \
             2026-01-01T00:00:00Z",
            escape::text(s)
        ))
    })
}

/// The period `[from, to)` the command line gives.
pub(crate) fn period(from: &str, to: &str) -> Result<Period, CommandError> {
    let p = Period {
        from: parse_bound(from, "--from")?,
        to: parse_bound(to, "--to")?,
    };
    if p.from >= p.to {
        return Err(CommandError::Usage(format!(
            "--from {} is not before --to {}: the period includes --from and excludes --to \
             (a year: --from 2026-01-01 --to 2027-01-01)",
            timefmt::format(p.from),
            timefmt::format(p.to)
        )));
    }
    Ok(p)
}

/// The cases opened in a period, with their clocks and the events that concern each, as the
/// store holds them at `at`: what the export and the report are made of.
pub struct Audit {
    pub period: Period,
    pub at: Timestamp,
    /// The cases in case order, and every clock they list.
    pub projection: Projection,
    /// The events of each case, parallel to `projection.cases`, in log order.
    pub events: Vec<Vec<LoggedEvent>>,
    /// The log's last event (seq and hash), which `cprwatch verify` names as its head.
    pub head: Option<(u64, String)>,
}

/// Load the cases opened in `period` as they are at `at`, with their events. Costs what the
/// period holds, not the whole log.
pub fn load(store: &dyn Tables, period: Period, at: Timestamp) -> Result<Audit, DeskError> {
    let projection = lookup::cases_opened(store, period, at)?;
    let events = lookup::events_of_cases(store, &projection.cases)?;
    let head = store.tables_state()?.head;
    let head = store
        .events_from(head, 1)?
        .into_iter()
        .next()
        .map(|e| (e.seq, e.hash));
    Ok(Audit {
        period,
        at,
        projection,
        events,
        head,
    })
}

impl Audit {
    /// Content hashes of the messages that are no report: automatic replies, bounces, cprwatch's
    /// own receipts and canaries.
    pub fn automatic(&self) -> HashSet<String> {
        self.events
            .iter()
            .flatten()
            .filter_map(|e| match &e.envelope.event {
                Event::MessageReceived { facts }
                    if matches!(
                        facts.automation,
                        Automation::AutoReplied
                            | Automation::Bounce
                            | Automation::Receipt
                            | Automation::Canary
                    ) =>
                {
                    Some(facts.content_hash.clone())
                }
                _ => None,
            })
            .collect()
    }

    /// The SLA report over these cases.
    pub fn sla(&self) -> SlaReport {
        sla::report(
            &self.projection.cases,
            &self.projection.clocks,
            &self.automatic(),
            self.period,
            self.at,
        )
    }
}

/// Config, `at` and the loaded period, with notes for stderr.
fn open(
    config_path: &Path,
    from: &str,
    to: &str,
    at: Option<&str>,
) -> Result<(Audit, Vec<String>), CommandError> {
    let period = period(from, to)?;
    let (_, at, store, mut notes) = commands::tables_at(config_path, at)?;
    let audit = load(store.as_ref(), period, at)?;
    if audit.projection.cases.is_empty() {
        notes.push(format!(
            "no case was opened from {} to {} (excluded)",
            timefmt::format(period.from),
            timefmt::format(period.to)
        ));
    }
    Ok((audit, notes))
}

/// `cprwatch audit export`.
pub fn export(
    config_path: &Path,
    from: &str,
    to: &str,
    at: Option<&str>,
    format: ExportFormat,
) -> Result<Outcome, CommandError> {
    let (audit, notes) = open(config_path, from, to, at)?;
    Ok(Outcome {
        stdout: match format {
            ExportFormat::Md => export_md(&audit),
            ExportFormat::Csv => export_csv(&audit),
            ExportFormat::Json => export_json(&audit),
        },
        stderr: commands::notes_text(&notes),
        code: 0,
    })
}

/// `cprwatch audit report`.
pub fn report(
    config_path: &Path,
    from: &str,
    to: &str,
    at: Option<&str>,
    format: ReportFormat,
) -> Result<Outcome, CommandError> {
    let (audit, notes) = open(config_path, from, to, at)?;
    let r = audit.sla();
    Ok(Outcome {
        stdout: match format {
            ReportFormat::Text => report_text(&r),
            ReportFormat::Md => report_md(&r),
            ReportFormat::Json => commands::json(&r),
        },
        stderr: commands::notes_text(&notes),
        code: 0,
    })
}

// ---------------------------------------------------------------------------------------
// Markdown
// ---------------------------------------------------------------------------------------

fn md(s: &str) -> String {
    escape::markdown(s).into_owned()
}

/// `2026-03-02 10:00 UTC`: CCADB incident reports' minute granularity (seconds dropped).
pub(crate) fn minute(t: Timestamp) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// How a clock is named in prose, escaped for Markdown.
fn clock_label(clocks: &BTreeMap<ClockId, Clock>, id: &ClockId) -> String {
    match clocks.get(id) {
        Some(c) if c.kind == ClockKind::PreliminaryReport => "Preliminary report".into(),
        Some(c) => format!(
            "Revocation of {}",
            md(c.target.as_deref().unwrap_or(id.as_str()))
        ),
        None => md(id.as_str()),
    }
}

/// A staff command as it was written (`CPR-Revoked: crtsh:1 2026-03-02T09:58:00Z`), raw: the
/// caller escapes it.
fn command_text(c: &Command) -> String {
    let time = |t: &Option<Timestamp>| t.map(|t| format!(" {}", timefmt::format(t)));
    match c {
        Command::Revoked { target, at } => {
            format!("CPR-Revoked: {target}{}", time(at).unwrap_or_default())
        }
        Command::NotRevoking { target, reason } => format!("CPR-Not-Revoking: {target} {reason}"),
        Command::Answered { place, at } => {
            format!("CPR-Answered: {place}{}", time(at).unwrap_or_default())
        }
        Command::Dismiss { reason } => format!("CPR-Dismiss: {reason}"),
        Command::Delayed { target, reason } => format!("CPR-Delayed: {target} {reason}"),
        Command::Reason { target, item, note } => format!(
            "CPR-Reason: {target} {item}{}",
            note.as_ref().map(|n| format!(" {n}")).unwrap_or_default()
        ),
    }
}

/// One line of a case's timeline: when, and what (Markdown, escaped). Ordered by time, then
/// by the log.
struct Entry {
    at: Timestamp,
    seq: u64,
    text: String,
}

/// The case's timeline from its events: what arrived, what the desk did and who did it, what
/// cprwatch sent, each clock's start, stop, breach and acknowledgement, at the moment each
/// happened (a message's receipt, a clock's stop), up to `at`.
fn timeline(
    case: &Case,
    clocks: &BTreeMap<ClockId, Clock>,
    messages: &Messages<'_>,
    events: &[LoggedEvent],
    at: Timestamp,
) -> Vec<Entry> {
    let by_hash = |h: &str| case.messages.iter().find(|m| m.content_hash == h);
    // A staff message may sit in another case (a decision on a certificate two cases name).
    let by_id = |id: &str| messages.get(id).copied();
    // "<Message-Id> from <sender>" for a message of the period, else the text as it is.
    let named = |id: &str| match by_id(id) {
        Some(m) if !m.from.is_empty() => format!("{} from {}", md(id), md(&m.from)),
        _ => md(id),
    };
    let ignored: Vec<(&str, &Command)> = events
        .iter()
        .filter_map(|e| match &e.envelope.event {
            Event::CommandIgnored {
                message,
                command: Some(c),
                ..
            } => Some((message.as_str(), c)),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    let mut push = |at: Timestamp, seq: u64, text: String| out.push(Entry { at, seq, text });
    let mut breach_logged = HashSet::new();
    // The last status each source gave each certificate: a timeline shows what changed, not
    // every hourly check (the JSON export has them all).
    let mut last_status = std::collections::HashMap::new();
    for e in events {
        let seq = e.seq;
        let recorded = e.envelope.recorded_at;
        match &e.envelope.event {
            Event::MessageReceived { facts } => {
                let Some(m) = by_hash(&facts.content_hash) else {
                    continue;
                };
                let from = if m.from.is_empty() {
                    "(no sender)".to_string()
                } else {
                    md(&m.from)
                };
                let mid = md(&m.message_id);
                let folder = m.folder.as_str();
                if m.staff {
                    push(
                        m.received_at,
                        seq,
                        format!("Staff message from {from}, Message-Id {mid}, folder {folder}"),
                    );
                    for c in &facts.commands {
                        if ignored.contains(&(facts.content_hash.as_str(), c)) {
                            continue;
                        }
                        push(
                            m.received_at,
                            seq,
                            format!("Staff action by {from}: {}", md(&command_text(c))),
                        );
                    }
                } else {
                    let what = if m.via == "opened" {
                        "Report received (case opened)".to_string()
                    } else if matches!(
                        facts.automation,
                        Automation::AutoReplied | Automation::Bounce
                    ) {
                        format!("Automatic reply received (joined by {})", md(m.via))
                    } else {
                        format!("Follow-up received (joined by {})", md(m.via))
                    };
                    push(
                        m.received_at,
                        seq,
                        format!("{what} from {from}, Message-Id {mid}, folder {folder}"),
                    );
                }
            }
            Event::CaseMerged { case: c, into } => push(
                recorded,
                seq,
                format!("Case {} merged into {}", md(c.as_str()), md(into.as_str())),
            ),
            Event::ClockStarted {
                clock,
                started_at,
                deadline,
                basis,
                ..
            } => push(
                *started_at,
                seq,
                format!(
                    "{} clock started: due {} (basis {})",
                    clock_label(clocks, clock),
                    minute(*deadline),
                    md(basis)
                ),
            ),
            Event::ClockRevised {
                clock,
                deadline,
                basis,
                previous_deadline,
                previous_basis,
                decided_by,
                ..
            } => {
                let mut text = format!(
                    "{} deadline revised: due {} (basis {})",
                    clock_label(clocks, clock),
                    minute(*deadline),
                    md(basis)
                );
                if let (Some(d), Some(b)) = (previous_deadline, previous_basis) {
                    let _ = write!(text, ", was due {} (basis {})", minute(*d), md(b));
                }
                if let Some(by) = decided_by {
                    let _ = write!(text, "; decided in {}", named(by));
                }
                // A staff decision happened when its message arrived; other evidence when
                // cprwatch recorded it.
                let when = decided_by
                    .as_deref()
                    .and_then(by_id)
                    .map_or(recorded, |m| m.received_at);
                push(when, seq, text);
            }
            Event::ClockStopped {
                clock,
                state,
                at: stopped,
                basis,
            } => {
                let c = clocks.get(clock);
                let by = c
                    .and_then(|c| {
                        c.stops
                            .iter()
                            .find(|s| s.at == *stopped && stop_matches(s.kind, *state))
                    })
                    .map(|s| named(&s.by));
                let by = by.map(|b| format!(": {b}")).unwrap_or_default();
                let label = clock_label(clocks, clock);
                let text = match (c.map(|c| c.kind), state) {
                    (Some(ClockKind::PreliminaryReport), ClockState::Met | ClockState::Late) => {
                        format!("Preliminary report given ({}){by}", state.as_str())
                    }
                    (Some(ClockKind::Revocation), ClockState::Met | ClockState::Late) => {
                        format!("{label} recorded ({}){by}", state.as_str())
                    }
                    (_, ClockState::NotRequired) => {
                        format!("{label}: not required (basis {}){by}", md(basis))
                    }
                    (_, ClockState::Dismissed) => format!("{label} clock dismissed{by}"),
                    _ => format!("{label} clock stopped ({}){by}", state.as_str()),
                };
                push(*stopped, seq, text);
            }
            Event::ClockBreached { clock, deadline } => {
                breach_logged.insert(clock.clone());
                // What cprwatch knew when it logged this: a folder read later (the desk's
                // Sent mail) may show the clock stopped in time after all. Both are the record.
                let mut text = format!(
                    "BREACH: {} passed its deadline, not recorded as done",
                    clock_label(clocks, clock)
                );
                if recorded - *deadline > time::Duration::hours(1) {
                    let _ = write!(text, " (logged {})", minute(recorded));
                }
                let later = clocks.get(clock).map(|c| c.status(at));
                if let Some(s) = later
                    && let Some(stop) = s.stopped_at.filter(|t| t <= deadline)
                {
                    let _ = write!(
                        text,
                        "; mail read later shows it {} at {}",
                        s.state.as_str(),
                        minute(stop)
                    );
                }
                push(*deadline, seq, text);
            }
            Event::ClockReopened { clock, state } => push(
                recorded,
                seq,
                format!(
                    "{} clock running again ({})",
                    clock_label(clocks, clock),
                    state.as_str()
                ),
            ),
            Event::ClockAcknowledged {
                clock,
                at: acked,
                reason,
                by,
            } => push(
                *acked,
                seq,
                format!(
                    "Breach acknowledged (CPR-Delayed) for {} in {}: {}",
                    clock_label(clocks, clock).to_lowercase_first(),
                    named(by),
                    md(reason)
                ),
            ),
            Event::CommandIgnored {
                message,
                message_id,
                from,
                command,
                line,
                reason,
            } => {
                let what = match (command, line) {
                    (Some(c), _) => md(&command_text(c)),
                    (None, Some(l)) => md(&l.line),
                    (None, None) => "a command".into(),
                };
                push(
                    by_hash(message).map_or(recorded, |m| m.received_at),
                    seq,
                    format!(
                        "Command ignored in {} from {}: {what} ({})",
                        md(message_id),
                        md(from),
                        md(reason)
                    ),
                );
            }
            Event::MailSent { mail, .. } if mail.kind == "receipt" => push(
                recorded,
                seq,
                format!(
                    "Receipt sent to {}, Message-Id {}",
                    md(&mail.to.join(", ")),
                    md(&mail.message_id)
                ),
            ),
            Event::MailSent { mail, .. } => {
                let about: Vec<String> = mail
                    .clocks
                    .iter()
                    .map(|c| clock_label(clocks, c).to_lowercase_first())
                    .collect();
                push(
                    recorded,
                    seq,
                    format!(
                        "Alert ({}) sent to {}{}, Message-Id {}",
                        md(&mail.kind),
                        md(&mail.to.join(", ")),
                        if about.is_empty() {
                            String::new()
                        } else {
                            format!(" about {}", about.join(", "))
                        },
                        md(&mail.message_id)
                    ),
                );
            }
            Event::MailFailed {
                mail,
                attempts,
                error,
            } => push(
                recorded,
                seq,
                format!(
                    "Mail ({}) to {} NOT delivered after {attempts} attempt(s): {}",
                    md(&mail.kind),
                    md(&mail.to.join(", ")),
                    md(error)
                ),
            ),
            Event::RevocationObserved { observation: o } => {
                let key = (o.target.clone(), o.source);
                if last_status.insert(key, o.status) == Some(o.status) {
                    continue;
                }
                let mut text = format!(
                    "Revocation check of {}: {} {} says {}",
                    md(&o.target),
                    o.source.as_str().to_uppercase(),
                    md(&o.url),
                    o.status.as_str()
                );
                if let Some(r) = o.revocation_time {
                    let _ = write!(text, ", revoked at {}", minute(r));
                }
                if let Some(r) = &o.reason {
                    let _ = write!(text, " ({})", md(r));
                }
                if let Some(p) = &o.problem {
                    let _ = write!(text, ": {}", md(p));
                }
                push(o.at, seq, text);
            }
            Event::MessageLogged { .. }
            | Event::CaseOpened { .. }
            | Event::MessageJoined { .. }
            | Event::CertificateReported { .. }
            | Event::KeyReported { .. }
            | Event::MailQueued { .. }
            | Event::CanarySent { .. } => {}
        }
    }
    // A clock found late when first derived (a first sync of an old mailbox) was never
    // recorded as breached: its deadline passing is still part of the story.
    for id in &case.clocks {
        let Some(c) = clocks.get(id) else { continue };
        let state = c.status(at).state;
        if matches!(state, ClockState::Late | ClockState::Breached) && !breach_logged.contains(id) {
            push(
                c.deadline,
                0,
                format!(
                    "Deadline passed: {} not done by then",
                    clock_label(clocks, id).to_lowercase_first()
                ),
            );
        }
    }
    // `--at` shows the record as it stood then: nothing that happened later.
    out.retain(|e| e.at <= at);
    out.sort_by_key(|e| (e.at, e.seq));
    out
}

/// Whether a stop of `kind` gives `state`.
fn stop_matches(kind: StopKind, state: ClockState) -> bool {
    matches!(
        (kind, state),
        (StopKind::Done, ClockState::Met | ClockState::Late)
            | (
                StopKind::NotRequired | StopKind::Expired,
                ClockState::NotRequired
            )
            | (StopKind::Dismissed, ClockState::Dismissed)
    )
}

trait LowerFirst {
    fn to_lowercase_first(&self) -> String;
}

impl LowerFirst for String {
    /// "Preliminary report" → "preliminary report", mid-sentence. Only cprwatch's own labels
    /// go through this: their first character is never an escape.
    fn to_lowercase_first(&self) -> String {
        let mut c = self.chars();
        match c.next() {
            Some(f) => f.to_lowercase().chain(c).collect(),
            None => String::new(),
        }
    }
}

/// A certificate reference with a crt.sh link made from its id or hash (digits or hex only, so
/// nothing from a report reaches the URL).
fn certificate_md(c: &crate::domain::model::CertificateRef) -> String {
    let link = match (c.crtsh_id, c.sha256.as_deref()) {
        (Some(id), _) => Some(format!("https://crt.sh/?id={id}")),
        (None, Some(h)) if !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some(format!("https://crt.sh/?sha256={h}"))
        }
        _ => None,
    };
    let mut s = md(&c.reference);
    if let Some(l) = link {
        let _ = write!(s, " ([crt.sh]({l}))");
    }
    if c.is_ca == Some(true) {
        s.push_str(" (CA)");
    }
    if c.precertificate == Some(true) {
        s.push_str(" (precertificate)");
    }
    s
}

fn period_md(p: Period) -> String {
    format!("{} to {} (excluded)", minute(p.from), minute(p.to))
}

fn head_md(head: &Option<(u64, String)>) -> String {
    match head {
        Some((seq, hash)) => format!("event #{seq}, hash `{}`", md(hash)),
        None => "empty".into(),
    }
}

/// The Markdown export: a header, then per case its facts, clocks and timeline.
pub fn export_md(a: &Audit) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Certificate problem reports: cases opened {}\n",
        period_md(a.period)
    );
    let _ = writeln!(
        o,
        "Exported by cprwatch from its event log (head: {}); clock states as at {}. \
         {} case(s). All times UTC, to the minute. `cprwatch verify` proves the log intact \
         up to that head.\n",
        head_md(&a.head),
        minute(a.at),
        a.projection.cases.len()
    );
    let messages: Messages<'_> = a
        .projection
        .cases
        .iter()
        .flat_map(|c| &c.messages)
        .map(|m| (m.message_id.as_str(), m))
        .collect();
    for (case, events) in a.projection.cases.iter().zip(&a.events) {
        case_md(&mut o, case, &a.projection.clocks, &messages, events, a.at);
    }
    o
}

/// Every message of the exported cases by Message-Id.
type Messages<'a> = std::collections::HashMap<&'a str, &'a crate::deciding::cases::CaseMessage>;

fn case_md(
    o: &mut String,
    case: &Case,
    clocks: &BTreeMap<ClockId, Clock>,
    messages: &Messages<'_>,
    events: &[LoggedEvent],
    at: Timestamp,
) {
    let _ = writeln!(o, "## {}\n", md(case.id.as_str()));
    let _ = writeln!(o, "- Subject: {}", md(&case.subject));
    let _ = writeln!(
        o,
        "- Reporter: {}",
        if case.reporter.is_empty() {
            "(unknown)".into()
        } else {
            md(&case.reporter)
        }
    );
    let _ = writeln!(o, "- Opened: {}", minute(case.opened_at));
    let staff = case.messages.iter().filter(|m| m.staff).count();
    let _ = writeln!(
        o,
        "- Messages: {} ({} from the desk)",
        case.messages.len(),
        staff
    );
    if !case.certificates.is_empty() {
        let certs: Vec<String> = case.certificates.iter().map(certificate_md).collect();
        let _ = writeln!(o, "- Certificates: {}", certs.join(", "));
    }
    if !case.keys.is_empty() {
        let keys: Vec<String> = case
            .keys
            .iter()
            .map(|k| {
                format!(
                    "{} ({})",
                    md(k.reference.as_deref().unwrap_or("no public key: encrypted")),
                    k.evidence.as_str()
                )
            })
            .collect();
        let _ = writeln!(o, "- Keys: {}", keys.join(", "));
    }
    if let Some((t, why)) = &case.dismissed {
        let _ = writeln!(
            o,
            "- Dismissed as not a problem report: {} ({})",
            md(why),
            minute(*t)
        );
    }
    let _ = writeln!(
        o,
        "\n| Clock | Started | Deadline | State | Stopped | Basis |\n|---|---|---|---|---|---|"
    );
    for id in &case.clocks {
        let Some(c) = clocks.get(id) else { continue };
        let s = c.status(at);
        let mut state = s.state.as_str().to_string();
        if let Some(a) = c.acknowledged.as_ref().filter(|a| a.at <= at) {
            let _ = write!(state, " (acknowledged {}: {})", minute(a.at), md(&a.reason));
        }
        let mut basis = md(&s.basis);
        if let Some(m) = c.matched.as_deref().filter(|_| s.basis == c.basis) {
            let _ = write!(basis, " (\"{}\")", md(m));
        }
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} |",
            clock_label(clocks, id),
            minute(c.started_at),
            minute(c.deadline),
            state,
            s.stopped_at.map(minute).unwrap_or_else(|| "-".into()),
            basis
        );
    }
    let _ = writeln!(o, "\nTimeline:\n");
    for e in timeline(case, clocks, messages, events, at) {
        let _ = writeln!(o, "- {} — {}", minute(e.at), e.text);
    }
    o.push('\n');
}

// ---------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------

const CSV_HEADER: [&str; 16] = [
    "case",
    "clock",
    "kind",
    "target",
    "started_at",
    "deadline",
    "state",
    "stopped_at",
    "stopped_by",
    "basis",
    "matched",
    "acknowledged_at",
    "acknowledged_reason",
    "acknowledged_by",
    "first_alert_sent_at",
    "breach_alert_sent_at",
];

/// One row per clock (a clock listed by several cases once, with the first), RFC 4180 with
/// CR LF line ends; times RFC 3339; an empty cell for what does not apply.
pub fn export_csv(a: &Audit) -> String {
    let mut o = String::new();
    row(&mut o, CSV_HEADER.iter().map(|s| s.to_string()));
    let mut seen = HashSet::new();
    let t = |t: Option<Timestamp>| t.map(timefmt::format).unwrap_or_default();
    for (case, events) in a.projection.cases.iter().zip(&a.events) {
        for id in &case.clocks {
            let Some(c) = a.projection.clocks.get(id) else {
                continue;
            };
            if !seen.insert(id) {
                continue;
            }
            let s = c.status(a.at);
            let ack = c.acknowledged.as_ref().filter(|x| x.at <= a.at);
            // Alerts about this clock the server accepted: the first of any level, and the
            // first breach (or digest) once the deadline had passed.
            let sent = |breach: bool| {
                events
                    .iter()
                    .filter_map(|e| match &e.envelope.event {
                        Event::MailSent { mail, .. }
                            if mail.kind != "receipt"
                                && e.envelope.recorded_at <= a.at
                                && mail.clocks.contains(id)
                                && (!breach
                                    || (matches!(mail.kind.as_str(), "breach" | "digest")
                                        && e.envelope.recorded_at >= c.deadline)) =>
                        {
                            Some(e.envelope.recorded_at)
                        }
                        _ => None,
                    })
                    .min()
            };
            row(
                &mut o,
                [
                    case.id.to_string(),
                    id.to_string(),
                    c.kind.as_str().to_string(),
                    c.target.clone().unwrap_or_default(),
                    timefmt::format(c.started_at),
                    timefmt::format(c.deadline),
                    s.state.as_str().to_string(),
                    t(s.stopped_at),
                    c.stop_at(a.at).map(|x| x.by.clone()).unwrap_or_default(),
                    s.basis.clone(),
                    c.matched
                        .clone()
                        .filter(|_| s.basis == c.basis)
                        .unwrap_or_default(),
                    t(ack.map(|x| x.at)),
                    ack.map(|x| x.reason.clone()).unwrap_or_default(),
                    ack.map(|x| x.by.clone()).unwrap_or_default(),
                    t(sent(false)),
                    t(sent(true)),
                ],
            );
        }
    }
    o
}

fn row(o: &mut String, cells: impl IntoIterator<Item = String>) {
    let cells: Vec<String> = cells
        .into_iter()
        .map(|c| escape::csv_field(&c).into_owned())
        .collect();
    o.push_str(&cells.join(","));
    o.push_str("\r\n");
}

// ---------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------

#[derive(Serialize)]
struct ExportJson {
    from: String,
    to: String,
    at: String,
    /// The log's last event, as `verify` names it: `{"seq", "hash"}`.
    head: Option<HeadJson>,
    cases: Vec<String>,
    /// Every event that concerns those cases, once each, in log order: the envelope as the
    /// chain hashes it (`recorded_at`, `event`), with its `seq` and `hash`.
    events: Vec<serde_json::Value>,
}

#[derive(Serialize)]
struct HeadJson {
    seq: u64,
    hash: String,
}

pub fn export_json(a: &Audit) -> String {
    let mut events: BTreeMap<u64, &LoggedEvent> = BTreeMap::new();
    for e in a.events.iter().flatten() {
        events.insert(e.seq, e);
    }
    commands::json(&ExportJson {
        from: timefmt::format(a.period.from),
        to: timefmt::format(a.period.to),
        at: timefmt::format(a.at),
        head: a.head.as_ref().map(|(seq, hash)| HeadJson {
            seq: *seq,
            hash: hash.clone(),
        }),
        cases: a
            .projection
            .cases
            .iter()
            .map(|c| c.id.to_string())
            .collect(),
        events: events
            .values()
            .map(|e| {
                let mut v = serde_json::to_value(&e.envelope).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("seq".into(), e.seq.into());
                    o.insert("hash".into(), e.hash.clone().into());
                }
                v
            })
            .collect(),
    })
}

// ---------------------------------------------------------------------------------------
// The SLA report as text and Markdown
// ---------------------------------------------------------------------------------------

fn span(s: Option<i64>) -> String {
    s.map(timefmt::human_span).unwrap_or_else(|| "-".into())
}

/// `audit report` as text (RFC 3339 times, as the other commands print them).
pub fn report_text(r: &SlaReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "SLA report: cases opened from {} to {} (excluded), clocks as at {}",
        timefmt::format(r.period.from),
        timefmt::format(r.period.to),
        timefmt::format(r.at)
    );
    let _ = writeln!(
        o,
        "reports {}  cases {}  certificates {}  keys {}\n",
        r.reports, r.cases, r.certificates, r.keys
    );
    let header = format!(
        "{:<18} {:>6} {:>5} {:>5} {:>8} {:>5} {:>9} {:>12}  {:<12} {:<12} {:<12}",
        "clock",
        "total",
        "met",
        "late",
        "breached",
        "open",
        "dismissed",
        "not_required",
        "median",
        "p90",
        "max"
    );
    let _ = writeln!(o, "{}", header.trim_end());
    for k in &r.clocks {
        let t = k.time_to_stop;
        let line = format!(
            "{:<18} {:>6} {:>5} {:>5} {:>8} {:>5} {:>9} {:>12}  {:<12} {:<12} {:<12}",
            k.kind.as_str(),
            k.total,
            k.met,
            k.late,
            k.breached,
            k.open,
            k.dismissed,
            k.not_required,
            span(t.map(|t| t.median_seconds)),
            span(t.map(|t| t.p90_seconds)),
            span(t.map(|t| t.max_seconds)),
        );
        let _ = writeln!(o, "{}", line.trim_end());
    }
    let _ = writeln!(
        o,
        "(median, p90 and max: time to stop of the met and late clocks)\n\nlate or breached: {}",
        r.exceptions.len()
    );
    for e in &r.exceptions {
        let _ = writeln!(
            o,
            "  {:<14} {:<18} {:<18} {:<8} due {}{}  {} past the deadline{}",
            escape::text(&e.case),
            e.kind.as_str(),
            escape::text(e.target.as_deref().unwrap_or("-")),
            e.state.as_str(),
            timefmt::format(e.deadline),
            e.stopped_at
                .map(|t| format!("  stopped {}", timefmt::format(t)))
                .unwrap_or_default(),
            timefmt::human_span(e.overdue_seconds),
            e.acknowledged
                .as_ref()
                .map(|a| format!(
                    " (acknowledged: {}, {})",
                    escape::text(&a.reason),
                    timefmt::format(a.at)
                ))
                .unwrap_or_default()
        );
    }
    o
}

/// `audit report` as Markdown (minute times, as in the export).
pub fn report_md(r: &SlaReport) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# SLA report: cases opened {}\n", period_md(r.period));
    let _ = writeln!(o, "Clock states as at {}.\n", minute(r.at));
    let _ = writeln!(
        o,
        "- Reports: {}\n- Cases: {}\n- Certificates: {}\n- Keys: {}\n",
        r.reports, r.cases, r.certificates, r.keys
    );
    let _ = writeln!(
        o,
        "| Clock | Total | Met | Late | Breached | Open | Dismissed | Not required | Median | p90 | Max |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
    for k in &r.clocks {
        let t = k.time_to_stop;
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            k.kind.as_str().replace('_', " "),
            k.total,
            k.met,
            k.late,
            k.breached,
            k.open,
            k.dismissed,
            k.not_required,
            span(t.map(|t| t.median_seconds)),
            span(t.map(|t| t.p90_seconds)),
            span(t.map(|t| t.max_seconds)),
        );
    }
    let _ = writeln!(
        o,
        "\nMedian, p90 (nearest rank) and max are the time to stop of the met and late clocks.\n"
    );
    let _ = writeln!(o, "## Late or breached ({})\n", r.exceptions.len());
    if r.exceptions.is_empty() {
        let _ = writeln!(o, "None.");
        return o;
    }
    let _ = writeln!(
        o,
        "| Case | Clock | State | Deadline | Stopped | Past the deadline | Acknowledged |\n\
         |---|---|---|---|---|--:|---|"
    );
    for e in &r.exceptions {
        let clock = match e.kind {
            ClockKind::PreliminaryReport => "preliminary report".to_string(),
            ClockKind::Revocation => {
                format!("revocation of {}", md(e.target.as_deref().unwrap_or("-")))
            }
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} |",
            md(&e.case),
            clock,
            e.state.as_str(),
            minute(e.deadline),
            e.stopped_at.map(minute).unwrap_or_else(|| "-".into()),
            timefmt::human_span(e.overdue_seconds),
            e.acknowledged
                .as_ref()
                .map(|a| format!("{}: {}", minute(a.at), md(&a.reason)))
                .unwrap_or_else(|| "-".into())
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deciding::cases::CaseMessage;
    use crate::deciding::clock::{Acknowledgement, Stop};
    use crate::domain::event::{Envelope, MailRef};
    use crate::domain::ids::CaseId;
    use crate::domain::model::FolderRole;
    use time::Duration;
    use time::macros::datetime;

    const T0: Timestamp = datetime!(2026-03-02 10:00:20 UTC);

    /// A case whose preliminary report breached live (alerts mailed, `clock_breached` logged)
    /// and was then given late; its receipt went out; a mail failed; a command was ignored.
    fn audit() -> Audit {
        let id = CaseId::from_stored("CPR-2026-0001");
        let prelim = ClockId::preliminary(&id);
        let rev = ClockId::revocation("crtsh:1");
        let h = Duration::hours;
        let msg = |hash: &str, mid: &str, from: &str, at, staff| CaseMessage {
            content_hash: hash.into(),
            message_id: mid.into(),
            received_at: at,
            from: from.into(),
            folder: if staff {
                FolderRole::Sent
            } else {
                FolderRole::Inbox
            },
            staff,
            via: if hash == "a" { "opened" } else { "in-reply-to" },
        };
        let case = Case {
            id: id.clone(),
            founder: "a".into(),
            reporter: "r@reporter.test".into(),
            reporter_addresses: vec!["r@reporter.test".into()],
            subject: "s".into(),
            opened_at: T0,
            messages: vec![
                msg("a", "<a@reporter.test>", "r@reporter.test", T0, false),
                msg("b", "<b@ca.test>", "nina@ca.test", T0 + h(30), true),
            ],
            certificates: vec![crate::domain::model::CertificateRef::bare("crtsh:1".into())],
            keys: Vec::new(),
            clocks: vec![prelim.clone(), rev.clone()],
            dismissed: None,
        };
        let clock = |cid: &ClockId, kind, target: Option<&str>, stops: Vec<Stop>| Clock {
            claimed: None,
            id: cid.clone(),
            kind,
            case: None,
            target: target.map(str::to_string),
            started_at: T0,
            deadline: T0 + h(24),
            basis: "b".into(),
            matched: None,
            decided_by: None,
            stops,
            acknowledged: None,
        };
        let mut clocks = BTreeMap::new();
        clocks.insert(
            prelim.clone(),
            clock(
                &prelim,
                ClockKind::PreliminaryReport,
                None,
                vec![Stop {
                    at: T0 + h(30),
                    kind: StopKind::Done,
                    by: "<b@ca.test>".into(),
                }],
            ),
        );
        let mut r = clock(&rev, ClockKind::Revocation, Some("crtsh:1"), Vec::new());
        r.acknowledged = Some(Acknowledgement {
            at: T0 + h(30),
            reason: "[x](https://evil.example)".into(),
            by: "<b@ca.test>".into(),
        });
        clocks.insert(rev.clone(), r);
        let mail = |kind: &str, clocks: Vec<ClockId>| MailRef {
            message_id: format!("<{kind}.cprwatch@ca.test>"),
            kind: kind.into(),
            to: vec![if kind == "receipt" {
                "r@reporter.test".into()
            } else {
                "desk@ca.test".into()
            }],
            case: Some(id.clone()),
            clocks,
        };
        let ev = |seq: u64, recorded_at: Timestamp, event: Event| LoggedEvent {
            seq,
            hash: format!("{seq:064x}"),
            envelope: Envelope { recorded_at, event },
        };
        let events = vec![
            ev(
                1,
                T0 + Duration::minutes(1),
                Event::MailSent {
                    mail: mail("receipt", Vec::new()),
                    attempts: 1,
                    response: "250 ok".into(),
                },
            ),
            ev(
                2,
                T0 + h(12),
                Event::MailSent {
                    mail: mail("warning", vec![prelim.clone()]),
                    attempts: 1,
                    response: "250 ok".into(),
                },
            ),
            ev(
                3,
                T0 + h(24),
                Event::ClockBreached {
                    clock: prelim.clone(),
                    deadline: T0 + h(24),
                },
            ),
            ev(
                4,
                T0 + h(24) + Duration::minutes(1),
                Event::MailSent {
                    mail: mail("breach", vec![prelim.clone(), rev.clone()]),
                    attempts: 2,
                    response: "250 ok".into(),
                },
            ),
            ev(
                5,
                T0 + h(25),
                Event::MailFailed {
                    mail: mail("reminder", vec![rev.clone()]),
                    attempts: 1,
                    error: "550 <desk@ca.test> no such user".into(),
                },
            ),
            ev(
                6,
                T0 + h(30),
                Event::ClockStopped {
                    clock: prelim.clone(),
                    state: ClockState::Late,
                    at: T0 + h(30),
                    basis: "b".into(),
                },
            ),
            ev(
                7,
                T0 + h(30),
                Event::ClockAcknowledged {
                    clock: rev.clone(),
                    at: T0 + h(30),
                    reason: "[x](https://evil.example)".into(),
                    by: "<b@ca.test>".into(),
                },
            ),
            ev(
                8,
                T0 + h(31),
                Event::CommandIgnored {
                    message: "a".into(),
                    message_id: "<a@reporter.test>".into(),
                    from: "r@reporter.test".into(),
                    command: Some(Command::Dismiss {
                        reason: "<b>spam</b>".into(),
                    }),
                    line: None,
                    reason: "the sender is not staff".into(),
                },
            ),
        ];
        Audit {
            period: Period {
                from: datetime!(2026-03-01 00:00 UTC),
                to: datetime!(2026-04-01 00:00 UTC),
            },
            at: T0 + h(48),
            projection: Projection {
                cases: vec![case],
                clocks,
                ..Projection::default()
            },
            events: vec![events],
            head: Some((8, format!("{:064x}", 8))),
        }
    }

    #[test]
    fn minutes_drop_the_seconds() {
        assert_eq!(minute(T0), "2026-03-02 10:00 UTC");
    }

    #[test]
    fn the_timeline_tells_mail_breaches_and_staff_actions_in_order() {
        let md = export_md(&audit());
        let lines: Vec<&str> = md.lines().filter(|l| l.starts_with("- 2026")).collect();
        assert_eq!(
            lines,
            [
                // Dated by its message's receipt, not by when it was recorded.
                r"- 2026-03-02 10:00 UTC — Command ignored in \<a\@reporter\.test\> from r\@reporter\.test: CPR-Dismiss\: \<b\>spam\</b\> (the sender is not staff)",
                r"- 2026-03-02 10:01 UTC — Receipt sent to r\@reporter\.test, Message-Id \<receipt\.cprwatch\@ca\.test\>",
                r"- 2026-03-02 22:00 UTC — Alert (warning) sent to desk\@ca\.test about preliminary report, Message-Id \<warning\.cprwatch\@ca\.test\>",
                // Never logged as breached (first seen late): its deadline passing is told.
                r"- 2026-03-03 10:00 UTC — Deadline passed: revocation of crtsh\:1 not done by then",
                // Logged live: told once, not twice.
                "- 2026-03-03 10:00 UTC — BREACH: Preliminary report passed its deadline, not recorded as done",
                r"- 2026-03-03 10:01 UTC — Alert (breach) sent to desk\@ca\.test about preliminary report, revocation of crtsh\:1, Message-Id \<breach\.cprwatch\@ca\.test\>",
                r"- 2026-03-03 11:00 UTC — Mail (reminder) to desk\@ca\.test NOT delivered after 1 attempt(s): 550 \<desk\@ca\.test\> no such user",
                r"- 2026-03-03 16:00 UTC — Preliminary report given (late): \<b\@ca\.test\> from nina\@ca\.test",
                r"- 2026-03-03 16:00 UTC — Breach acknowledged (CPR-Delayed) for revocation of crtsh\:1 in \<b\@ca\.test\> from nina\@ca\.test: \[x\]\(https\://evil\.example\)",
            ]
        );
        // `--at` before the stop: the record as it stood then.
        let mut early = audit();
        early.at = T0 + Duration::hours(20);
        let md = export_md(&early);
        assert!(
            !md.contains("BREACH") && !md.contains("given (late)"),
            "{md}"
        );
        assert!(md.contains("| pending | - |"), "{md}");
    }

    /// The inbox read first, the desk's Sent folder later: the breach cprwatch logged with
    /// what it had is kept, with what the later mail showed.
    #[test]
    fn a_breach_logged_before_the_answer_was_read_says_both() {
        let mut a = audit();
        let prelim = ClockId::from_stored("preliminary_report:CPR-2026-0001");
        a.projection.clocks.get_mut(&prelim).unwrap().stops[0].at = T0 + Duration::hours(20);
        a.events[0][2].envelope.recorded_at = T0 + Duration::days(30);
        let md = export_md(&a);
        assert!(
            md.lines().any(|l| l
                == "- 2026-03-03 10:00 UTC — BREACH: Preliminary report passed its deadline, \
                    not recorded as done (logged 2026-04-01 10:00 UTC); mail read later shows it \
                    met at 2026-03-03 06:00 UTC"),
            "{md}"
        );
    }

    #[test]
    fn csv_rows_carry_every_time_of_each_clock() {
        let csv = export_csv(&audit());
        let rows: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(rows.len(), 4, "{csv}");
        assert_eq!(rows[0], CSV_HEADER.join(","));
        assert_eq!(
            rows[1],
            "CPR-2026-0001,preliminary_report:CPR-2026-0001,preliminary_report,,\
             2026-03-02T10:00:20Z,2026-03-03T10:00:20Z,late,2026-03-03T16:00:20Z,<b@ca.test>,b,,,,,\
             2026-03-02T22:00:20Z,2026-03-03T10:01:20Z"
        );
        // The reminder failed: only the breach alert was sent about the revocation clock.
        assert_eq!(
            rows[2],
            "CPR-2026-0001,revocation:crtsh:1,revocation,crtsh:1,2026-03-02T10:00:20Z,\
             2026-03-03T10:00:20Z,breached,,,b,,2026-03-03T16:00:20Z,[x](https://evil.example),\
             <b@ca.test>,2026-03-03T10:01:20Z,2026-03-03T10:01:20Z"
        );
        assert_eq!(rows[3], "");
        // At 20 h: the warning had gone out, the breach alert not yet.
        let mut early = audit();
        early.at = T0 + Duration::hours(20);
        let csv = export_csv(&early);
        let prelim = csv.split("\r\n").nth(1).unwrap();
        assert!(
            prelim.ends_with(",pending,,,b,,,,,2026-03-02T22:00:20Z,"),
            "{prelim}"
        );
    }

    #[test]
    fn json_lists_each_event_once_with_seq_and_hash() {
        let mut a = audit();
        // The same event reached through two cases is listed once.
        let dup = a.events[0][0].clone();
        let mut second = a.projection.cases[0].clone();
        second.id = CaseId::from_stored("CPR-2026-0002");
        a.projection.cases.push(second);
        a.events.push(vec![dup]);
        let v: serde_json::Value = serde_json::from_str(&export_json(&a)).unwrap();
        assert_eq!(
            v["cases"],
            serde_json::json!(["CPR-2026-0001", "CPR-2026-0002"])
        );
        assert_eq!(v["head"]["seq"], 8);
        let events = v["events"].as_array().unwrap();
        assert_eq!(events.len(), 8);
        assert_eq!(events[0]["seq"], 1);
        assert_eq!(events[0]["hash"], format!("{:064x}", 1));
        assert_eq!(events[0]["event"]["type"], "mail_sent");
        assert_eq!(events[0]["recorded_at"], "2026-03-02T10:01:20Z");
    }
}
