//! What people and programs see: the public JSON contract of `replay` and `status`, and the
//! text forms of `status` and `case`. Rendering only — every decision was made upstream.
//!
//! The text forms pass every string that came from outside (subjects, addresses, Message-Ids,
//! reasons, folder names, server errors) through [`crate::escape::text`]: a reporter's control
//! characters, escape sequences or bidirectional overrides show as visible escapes, and a
//! reporter's newline cannot start a line of its own. The JSON forms are escaped by
//! `serde_json` (and [`crate::escape::json_text`] where they are printed).

use serde::Serialize;

use crate::deciding::cases::{Case, Projection};
use crate::domain::event::{ClockState, Envelope};
use crate::domain::model::{CertificateRef, KeyRef, Timestamp};
use crate::domain::timefmt;
use crate::escape::text as esc;

/// `{"at": …, "cases": […]}` — the documented contract (README, "JSON contract").
#[derive(Serialize)]
pub(crate) struct Report {
    pub at: String,
    pub cases: Vec<CaseJson>,
}

#[derive(Serialize)]
pub(crate) struct CaseJson {
    pub id: String,
    pub reporter: String,
    pub subject: String,
    pub opened_at: String,
    pub messages: Vec<MessageJson>,
    pub certificates: Vec<CertificateJson>,
    pub keys: Vec<KeyJson>,
    pub clocks: Vec<ClockJson>,
}

#[derive(Serialize)]
pub(crate) struct MessageJson {
    pub message_id: String,
    pub received_at: String,
    pub from: String,
    pub folder: &'static str,
    pub staff: bool,
}

#[derive(Serialize)]
pub(crate) struct CertificateJson {
    #[serde(rename = "ref")]
    pub reference: String,
    pub crtsh_id: Option<u64>,
    pub sha256: Option<String>,
    pub serial: Option<String>,
    pub issuer: Option<String>,
    pub not_after: Option<String>,
    pub spki_sha256: Option<String>,
    pub is_ca: Option<bool>,
    pub precertificate: Option<bool>,
}

#[derive(Serialize)]
pub(crate) struct KeyJson {
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    pub evidence: &'static str,
}

#[derive(Serialize)]
pub(crate) struct ClockJson {
    pub kind: &'static str,
    pub certificate: Option<String>,
    pub started_at: String,
    pub deadline: String,
    pub state: &'static str,
    pub stopped_at: Option<String>,
    pub basis: String,
    /// The report's phrase behind a rule basis: why the window is what it is.
    pub matched: Option<String>,
    /// Left out when staff did not acknowledge the clock late (added without changing the rest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<AcknowledgedJson>,
    /// Staff's `CPR-Revoked` not (yet) verified by OCSP or CRL (absent when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimed: Option<ClaimedJson>,
    /// What OCSP and CRL said at the last check, each (absent when never checked).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub observed: Vec<crate::domain::event::Observation>,
    /// Notes on the revocation the CA published (a CRLReason that does not match the BR item).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Staff's `CPR-Revoked` while revocations must be verified.
#[derive(Serialize)]
pub(crate) struct ClaimedJson {
    /// When staff said it (their message's receipt time).
    pub at: String,
    /// The revocation time staff gave.
    pub revoked_at: String,
    /// The staff message's Message-Id.
    pub by: String,
}

/// Staff's `CPR-Delayed` on a clock: it is late and the desk knows (absent when none).
#[derive(Serialize)]
pub(crate) struct AcknowledgedJson {
    pub at: String,
    pub reason: String,
    /// The staff message's Message-Id.
    pub by: String,
}

impl From<&CertificateRef> for CertificateJson {
    fn from(c: &CertificateRef) -> Self {
        CertificateJson {
            reference: c.reference.clone(),
            crtsh_id: c.crtsh_id,
            sha256: c.sha256.clone(),
            serial: c.serial.clone(),
            issuer: c.issuer.clone(),
            not_after: c.not_after.map(timefmt::format),
            spki_sha256: c.spki_sha256.clone(),
            is_ca: c.is_ca,
            precertificate: c.precertificate,
        }
    }
}

impl From<&KeyRef> for KeyJson {
    fn from(k: &KeyRef) -> Self {
        KeyJson {
            reference: k.reference.clone(),
            evidence: k.evidence.as_str(),
        }
    }
}

/// One case, with its clocks evaluated at `at`.
pub(crate) fn case_json(p: &Projection, case: &Case, at: Timestamp) -> CaseJson {
    CaseJson {
        id: case.id.to_string(),
        reporter: case.reporter.clone(),
        subject: case.subject.clone(),
        opened_at: timefmt::format(case.opened_at),
        messages: case
            .messages
            .iter()
            .map(|m| MessageJson {
                message_id: m.message_id.clone(),
                received_at: timefmt::format(m.received_at),
                from: m.from.clone(),
                folder: m.folder.as_str(),
                staff: m.staff,
            })
            .collect(),
        certificates: case
            .certificates
            .iter()
            .map(CertificateJson::from)
            .collect(),
        keys: case.keys.iter().map(KeyJson::from).collect(),
        clocks: case
            .clocks
            .iter()
            .filter_map(|id| p.clocks.get(id))
            .map(|c| {
                let s = c.status(at);
                ClockJson {
                    kind: c.kind.as_str(),
                    certificate: c.target.clone(),
                    started_at: timefmt::format(c.started_at),
                    deadline: timefmt::format(c.deadline),
                    state: s.state.as_str(),
                    stopped_at: s.stopped_at.map(timefmt::format),
                    matched: c.matched.clone().filter(|_| s.basis == c.basis),
                    basis: s.basis,
                    acknowledged: c.acknowledged.as_ref().filter(|a| a.at <= at).map(|a| {
                        AcknowledgedJson {
                            at: timefmt::format(a.at),
                            reason: a.reason.clone(),
                            by: a.by.clone(),
                        }
                    }),
                    claimed: c
                        .claimed
                        .as_ref()
                        .filter(|a| a.at <= at)
                        .map(|a| ClaimedJson {
                            at: timefmt::format(a.at),
                            revoked_at: timefmt::format(a.revoked_at),
                            by: a.by.clone(),
                        }),
                    observed: observed_at(p, c, at),
                    notes: revocation_notes(p, case, c, at),
                }
            })
            .collect(),
    }
}

/// The last answers about a clock's certificate made by `at`.
fn observed_at(
    p: &Projection,
    c: &crate::deciding::clock::Clock,
    at: Timestamp,
) -> Vec<crate::domain::event::Observation> {
    c.target
        .as_ref()
        .and_then(|t| p.observed.get(t))
        .map(|l| l.iter().filter(|o| o.at <= at).cloned().collect())
        .unwrap_or_default()
}

/// A note when the reason the CA published does not match the BR item the clock runs on.
fn revocation_notes(
    p: &Projection,
    case: &Case,
    c: &crate::deciding::clock::Clock,
    at: Timestamp,
) -> Vec<String> {
    let precertificate = c.target.as_ref().is_some_and(|t| {
        case.certificates
            .iter()
            .any(|r| &r.reference == t && r.precertificate == Some(true))
    });
    let mut notes: Vec<String> = c
        .target
        .as_ref()
        .and_then(|t| p.unchecked.get(t))
        .cloned()
        .into_iter()
        .collect();
    if precertificate && c.status(at).state.is_open() {
        notes.push(
            "a precertificate, and no final certificate with its serial is known: if none was \
             issued, staff close its clock with CPR-Not-Revoking"
                .into(),
        );
    }
    let observed = observed_at(p, c, at);
    if let Some(r) = crate::deciding::revocation::revoked(&observed) {
        let rules = crate::reading::rules::RuleSet::shipped();
        notes.extend(
            crate::deciding::revocation::expected_reason(c, |id| rules.item_of(id)).and_then(
                |item| crate::deciding::revocation::reason_note(item, r.reason.as_deref()),
            ),
        );
    }
    notes
}

/// Every case at `at` (for `replay`), or only those with a running clock (for `status`).
pub(crate) fn report(p: &Projection, at: Timestamp, only_open: bool) -> Report {
    let cases = p
        .cases
        .iter()
        .filter(|c| !only_open || has_open_clock(p, c, at))
        .map(|c| case_json(p, c, at))
        .collect();
    Report {
        at: timefmt::format(at),
        cases,
    }
}

fn has_open_clock(p: &Projection, case: &Case, at: Timestamp) -> bool {
    case.clocks
        .iter()
        .filter_map(|id| p.clocks.get(id))
        .any(|c| c.status(at).state.is_open())
}

/// `status` as text: every running clock, soonest deadline first, with the time left.
pub(crate) fn status_text(p: &Projection, at: Timestamp) -> String {
    let mut rows: Vec<(Timestamp, String)> = Vec::new();
    let mut listed: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for case in &p.cases {
        for id in &case.clocks {
            let Some(c) = p.clocks.get(id) else { continue };
            let s = c.status(at);
            if !s.state.is_open() {
                continue;
            }
            // A revocation clock shared by several cases is listed once, under its first case.
            if !listed.insert(id.as_str()) {
                continue;
            }
            let left = (c.deadline - at).whole_seconds();
            let mut label = match s.state {
                ClockState::Breached => format!("BREACHED {} ago", timefmt::human_span(-left)),
                _ => format!("{} left", timefmt::human_span(left)),
            };
            if let Some(a) = c.acknowledged.as_ref().filter(|a| a.at <= at) {
                label.push_str(&acknowledged_text(&a.reason, &timefmt::format(a.at)));
            }
            let mut line = format!(
                "{:<14} {:<26} {:<18} {:<16} deadline {}  basis {}",
                esc(case.id.as_str()),
                label,
                c.kind.as_str(),
                esc(c.target.as_deref().unwrap_or("-")),
                timefmt::format(c.deadline),
                esc(&s.basis),
            );
            // The claim beside what the responders say: the two may differ.
            if let Some(cl) = c.claimed.as_ref().filter(|cl| cl.at <= at) {
                line.push_str(&format!(
                    "  claimed revoked {} (unverified)",
                    timefmt::format(cl.revoked_at)
                ));
            }
            if let Some(o) = crate::deciding::revocation::observed_line(&observed_at(p, c, at)) {
                line.push_str(&format!("  observed {}", esc(&o)));
            }
            rows.push((c.deadline, line));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut out = format!("open clocks at {}: {}\n", timefmt::format(at), rows.len());
    for (_, r) in rows {
        out.push_str(&r);
        out.push('\n');
    }
    out
}

/// ` (acknowledged: <reason>, <time>)` after a clock's state: staff said it is late
/// (`CPR-Delayed`). The reason is staff text, escaped like every text from mail.
fn acknowledged_text(reason: &str, at: &str) -> String {
    format!(" (acknowledged: {}, {at})", esc(reason))
}

/// `case` as text: the case, its messages, certificates, keys, clocks and events.
pub(crate) fn case_text(
    p: &Projection,
    case: &Case,
    at: Timestamp,
    events: &[(u64, &Envelope)],
) -> String {
    use std::fmt::Write;
    let j = case_json(p, case, at);
    let mut o = String::new();
    let _ = writeln!(o, "case {}  opened {}", esc(&j.id), j.opened_at);
    let _ = writeln!(
        o,
        "reporter: {}",
        if j.reporter.is_empty() {
            "(unknown)".into()
        } else {
            esc(&j.reporter)
        }
    );
    let _ = writeln!(o, "subject:  {}", esc(&j.subject));
    if let Some((t, why)) = &case.dismissed {
        let _ = writeln!(o, "dismissed {}: {}", timefmt::format(*t), esc(why));
    }
    let _ = writeln!(o, "\nmessages ({}):", j.messages.len());
    for (m, cm) in j.messages.iter().zip(&case.messages) {
        let _ = writeln!(
            o,
            "  {}  {:<5} {:<32} {}{}  [{}]",
            m.received_at,
            m.folder,
            esc(&m.from),
            esc(&m.message_id),
            if m.staff { "  (staff)" } else { "" },
            esc(cm.via)
        );
    }
    truncated_notes(&mut o, events);
    let _ = writeln!(o, "\ncertificates ({}):", j.certificates.len());
    for c in &j.certificates {
        let _ = writeln!(
            o,
            "  {}{}{}{}",
            esc(&c.reference),
            c.not_after
                .as_ref()
                .map(|t| format!("  notAfter {t}"))
                .unwrap_or_default(),
            if c.is_ca == Some(true) { "  CA" } else { "" },
            if c.precertificate == Some(true) {
                "  precertificate"
            } else {
                ""
            },
        );
    }
    let _ = writeln!(o, "\nkeys ({}):", j.keys.len());
    for k in &j.keys {
        let _ = writeln!(
            o,
            "  {}  ({})",
            esc(k
                .reference
                .as_deref()
                .unwrap_or("(no public key: encrypted)")),
            k.evidence
        );
    }
    let _ = writeln!(o, "\nclocks at {}:", timefmt::format(at));
    for c in &j.clocks {
        let state = match &c.acknowledged {
            Some(a) => format!("{}{}", c.state, acknowledged_text(&a.reason, &a.at)),
            None => c.state.to_string(),
        };
        let _ = writeln!(
            o,
            "  {:<18} {:<14} {:<12} started {}  deadline {}{}  basis {}",
            c.kind,
            esc(c.certificate.as_deref().unwrap_or("-")),
            state,
            c.started_at,
            c.deadline,
            c.stopped_at
                .as_ref()
                .map(|t| format!("  stopped {t}"))
                .unwrap_or_default(),
            esc(&c.basis)
        );
        if let Some(m) = &c.matched {
            let _ = writeln!(o, "  {:<18} matched: \"{}\"", "", esc(m));
        }
        if let Some(cl) = &c.claimed {
            let _ = writeln!(
                o,
                "  {:<18} claimed revoked at {} in {} ({}), not verified",
                "",
                cl.revoked_at,
                esc(&cl.by),
                cl.at
            );
        }
        if let Some(line) = crate::deciding::revocation::observed_line(&c.observed) {
            let _ = writeln!(o, "  {:<18} observed: {}", "", esc(&line));
        }
        for n in &c.notes {
            let _ = writeln!(o, "  {:<18} note: {}", "", esc(n));
        }
    }
    let _ = writeln!(o, "\nevents ({}):", events.len());
    for (seq, env) in events {
        let _ = writeln!(
            o,
            "  #{seq:<6} {}  {}",
            timefmt::format(env.recorded_at),
            esc(&env.event.summary())
        );
    }
    o
}

/// Says which messages were not searched whole (over a `[limits]` bound), so staff know the
/// certificates and clocks may be incomplete and read the stored message by hand. The notes
/// hold sizes and limit names only, never message content.
fn truncated_notes(o: &mut String, events: &[(u64, &Envelope)]) {
    use std::fmt::Write;
    for (_, env) in events {
        if let crate::domain::event::Event::MessageReceived { facts } = &env.event {
            for p in &facts.problems {
                if let Some(rest) = p.strip_prefix(crate::reading::limits::TRUNCATED) {
                    let _ = writeln!(
                        o,
                        "  ! message {} was truncated for search:{}",
                        esc(&facts.message_id),
                        esc(rest)
                    );
                }
            }
        }
    }
}

/// One watched folder's health, as `status` shows it.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct SourceJson {
    #[serde(flatten)]
    pub state: crate::store::FolderState,
    /// No completed sync within the mailbox's `stale_after` (or never).
    pub stale: bool,
}

/// `status --format json`: the replay contract plus the watched folders' health.
#[derive(Serialize)]
pub(crate) struct StatusJson<'a> {
    pub at: String,
    pub cases: Vec<CaseJson>,
    pub sources: &'a [SourceJson],
    pub outbox: &'a OutboxJson,
    pub canaries: &'a [CanaryJson],
    /// With a PostgreSQL store shared by instances: which one leads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<&'a LeaderJson>,
}

/// The leader lease of instances sharing a PostgreSQL store, for `status`.
#[derive(Serialize)]
pub(crate) struct LeaderJson {
    /// The instance holding (or, when `live` is false, last holding) the lease.
    pub instance: Option<String>,
    pub epoch: Option<i64>,
    pub expires_at: Option<String>,
    /// Whether it leads now: `false` means no instance does (a problem: nobody ingests).
    pub live: bool,
    /// This instance (`[store] instance`).
    pub this_instance: String,
}

impl LeaderJson {
    pub(crate) fn of(me: &str, l: Option<&crate::store::LeaderInfo>) -> LeaderJson {
        LeaderJson {
            instance: l.map(|l| l.holder.to_string()),
            epoch: l.map(|l| l.epoch),
            expires_at: l.map(|l| timefmt::format(l.expires_at)),
            live: l.is_some_and(|l| l.live),
            this_instance: me.to_string(),
        }
    }
}

/// The `leader:` line of `status`.
pub(crate) fn leader_text(l: Option<&LeaderJson>) -> String {
    let Some(l) = l else {
        return String::new();
    };
    match (&l.instance, l.live) {
        (Some(i), true) => format!(
            "leader: instance {} (epoch {}), lease until {}; this is instance {}\n",
            esc(i),
            l.epoch.unwrap_or(0),
            l.expires_at.as_deref().unwrap_or("?"),
            esc(&l.this_instance)
        ),
        (Some(i), false) => format!(
            "leader: NONE — the lease of instance {} ran out at {} and no instance took it: \
             nothing ingests or alerts; start `cprwatch run` on an instance\n",
            esc(i),
            l.expires_at.as_deref().unwrap_or("?")
        ),
        (None, _) => {
            "leader: NONE — no instance ever took the lease: start `cprwatch run`\n".to_string()
        }
    }
}

/// One published address's canary in `status`: the latest sent and the latest arrival.
#[derive(Serialize)]
pub(crate) struct CanaryJson {
    pub to: String,
    pub last_sent_at: Option<String>,
    pub last_canary: Option<String>,
    /// `never_sent`, `waiting`, `arrived`, `missing`, `junk` or `bounced`.
    pub state: String,
    pub last_arrived_at: Option<String>,
    /// The role of the folder the last arrival was found in.
    pub last_arrival_folder: Option<String>,
}

impl CanaryJson {
    pub(crate) fn is_problem(&self) -> bool {
        matches!(self.state.as_str(), "missing" | "junk" | "bounced")
    }
}

/// The canaries part of `status` as text.
pub(crate) fn canaries_text(canaries: &[CanaryJson]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if canaries.is_empty() {
        return out;
    }
    let _ = writeln!(out, "\ncanaries: {}", canaries.len());
    for c in canaries {
        let verdict = if c.is_problem() {
            c.state.to_uppercase()
        } else {
            c.state.clone()
        };
        let _ = writeln!(
            out,
            "  {:<32} {verdict:<10} sent {}  last arrival {}{}",
            esc(&c.to),
            c.last_sent_at.as_deref().unwrap_or("never"),
            c.last_arrived_at.as_deref().unwrap_or("never"),
            c.last_arrival_folder
                .as_deref()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default()
        );
    }
    out
}

/// The outbox in `status`: what waits to be sent, what keeps failing, what failed for good.
#[derive(Serialize, Default)]
pub(crate) struct OutboxJson {
    pub pending: u64,
    pub oldest_pending: Option<String>,
    pub retrying: Vec<MailJson>,
    pub failed: Vec<MailJson>,
}

#[derive(Serialize)]
pub(crate) struct MailJson {
    pub message_id: String,
    pub kind: String,
    pub to: Vec<String>,
    pub case: Option<String>,
    pub queued_at: String,
    pub attempts: u32,
    pub error: Option<String>,
    /// When it failed for good (absent while retrying).
    pub failed_at: Option<String>,
}

impl OutboxJson {
    pub(crate) fn of(s: &crate::store::OutboxSummary) -> OutboxJson {
        let mail = |r: &crate::store::OutboxRow| MailJson {
            message_id: r.message_id.clone(),
            kind: r.kind.clone(),
            to: r.to.clone(),
            case: r.case.clone(),
            queued_at: timefmt::format(r.queued_at),
            attempts: r.attempts,
            error: r.last_error.clone(),
            failed_at: (r.state == "failed")
                .then_some(r.done_at)
                .flatten()
                .map(timefmt::format),
        };
        OutboxJson {
            pending: s.pending,
            oldest_pending: s.oldest_pending.map(timefmt::format),
            retrying: s.retrying.iter().map(mail).collect(),
            failed: s.failed.iter().map(mail).collect(),
        }
    }

    /// Mail not going out: pending for over an hour, or failed for good in the last day.
    pub(crate) fn problems(&self, at: Timestamp) -> usize {
        let old = |t: &Option<String>, span: time::Duration| {
            t.as_deref()
                .and_then(|t| timefmt::parse(t).ok())
                .is_some_and(|t| at - t > span)
        };
        usize::from(old(&self.oldest_pending, time::Duration::hours(1)))
            + self
                .failed
                .iter()
                .filter(|m| !old(&m.failed_at, time::Duration::days(1)))
                .count()
    }
}

/// The outbox part of `status` as text; nothing when nothing is pending or failed.
pub(crate) fn outbox_text(o: &OutboxJson, at: Timestamp) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if o.pending == 0 && o.failed.is_empty() {
        return out;
    }
    let _ = write!(out, "\noutbox: {} pending", o.pending);
    if let Some(t) = o
        .oldest_pending
        .as_deref()
        .and_then(|t| timefmt::parse(t).ok())
    {
        let _ = write!(
            out,
            ", oldest queued {} ago",
            timefmt::human_span((at - t).whole_seconds())
        );
    }
    out.push('\n');
    for m in &o.retrying {
        let _ = writeln!(
            out,
            "  retrying  {} {} to {} ({} attempts): {}",
            m.kind,
            esc(&m.message_id),
            esc(&m.to.join(", ")),
            m.attempts,
            esc(m.error.as_deref().unwrap_or(""))
        );
    }
    for m in &o.failed {
        let _ = writeln!(
            out,
            "  FAILED    {} {} to {}{} at {}: {}",
            m.kind,
            esc(&m.message_id),
            esc(&m.to.join(", ")),
            m.case
                .as_deref()
                .map(|c| format!(" ({})", esc(c)))
                .unwrap_or_default(),
            m.failed_at.as_deref().unwrap_or("?"),
            esc(m.error.as_deref().unwrap_or(""))
        );
    }
    out
}

/// The sources part of `status` as text: problems first, spelled out.
pub(crate) fn sources_text(sources: &[SourceJson], at: Timestamp) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    if sources.is_empty() {
        return o;
    }
    let _ = writeln!(o, "\nwatched folders: {}", sources.len());
    for s in sources {
        let ago = s
            .state
            .last_sync_at
            .as_deref()
            .and_then(|t| timefmt::parse(t).ok())
            .map(|t| {
                format!(
                    "last sync {} ago",
                    timefmt::human_span((at - t).whole_seconds())
                )
            })
            .unwrap_or_else(|| "never synced".into());
        let verdict = match (&s.state.last_error, s.stale) {
            (Some(e), _) => format!("FAILING: {}", esc(e)),
            (None, true) => "STALE".to_string(),
            (None, false) => "ok".to_string(),
        };
        let _ = writeln!(
            o,
            "  {:<40} {:<5} {:<24} {}",
            esc(&format!("{}/{}", s.state.mailbox, s.state.folder)),
            esc(&s.state.role),
            ago,
            verdict
        );
    }
    o
}

/// `search` as text: one line per case the term names, with what is still open.
pub(crate) fn search_text(p: &Projection, term: &str, at: Timestamp) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "cases naming {} at {}: {}",
        esc(term.trim()),
        timefmt::format(at),
        p.cases.len()
    );
    for case in &p.cases {
        let open: Vec<&str> = case
            .clocks
            .iter()
            .filter_map(|id| p.clocks.get(id))
            .filter(|c| c.status(at).state.is_open())
            .map(|c| c.kind.as_str())
            .collect();
        let _ = writeln!(
            o,
            "{:<14} opened {}  {} messages  {}  reporter {}  subject {}",
            esc(case.id.as_str()),
            timefmt::format(case.opened_at),
            case.messages.len(),
            if open.is_empty() {
                "no open clock".to_string()
            } else {
                format!("{} open clock(s)", open.len())
            },
            if case.reporter.is_empty() {
                "(unknown)".to_string()
            } else {
                esc(&case.reporter).into_owned()
            },
            esc(&case.subject)
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deciding::clock::{Acknowledgement, Clock};
    use crate::domain::event::ClockKind;
    use crate::domain::ids::{CaseId, ClockId};
    use crate::domain::timefmt::parse;

    /// A breached preliminary-report clock that staff acknowledged with a reason carrying an
    /// escape sequence, a bidi override and a line break.
    fn projection() -> (Projection, Timestamp) {
        let id = CaseId::new(2026, 1);
        let clock = Clock {
            claimed: None,
            id: ClockId::preliminary(&id),
            kind: ClockKind::PreliminaryReport,
            case: Some(id.clone()),
            target: None,
            started_at: parse("2026-03-01T00:00:00Z").unwrap(),
            deadline: parse("2026-03-02T00:00:00Z").unwrap(),
            basis: crate::deciding::clock::BASIS_PRELIMINARY.into(),
            matched: None,
            decided_by: None,
            stops: Vec::new(),
            acknowledged: Some(Acknowledgement {
                at: parse("2026-03-02T01:00:00Z").unwrap(),
                reason: "https://bugzilla.example/1 \x1b[2J\u{202e}\nforged line".into(),
                by: "<d@example-ca.test>".into(),
            }),
        };
        let case = Case {
            id: id.clone(),
            founder: String::new(),
            reporter: "r@reporter.test".into(),
            reporter_addresses: vec!["r@reporter.test".into()],
            subject: "s".into(),
            opened_at: clock.started_at,
            messages: Vec::new(),
            certificates: Vec::new(),
            keys: Vec::new(),
            clocks: vec![clock.id.clone()],
            dismissed: None,
        };
        let mut p = Projection::default();
        p.clocks.insert(clock.id.clone(), clock);
        p.cases.push(case);
        (p, parse("2026-03-03T00:00:00Z").unwrap())
    }

    #[test]
    fn an_acknowledged_clock_shows_its_reason_escaped_and_stays_breached() {
        let (p, at) = projection();
        let status = status_text(&p, at);
        let case = case_text(&p, &p.cases[0], at, &[]);
        for out in [&status, &case] {
            assert!(
                out.contains(
                    "(acknowledged: https://bugzilla.example/1 \\x1b[2J\\u{202e}\\nforged line, \
                     2026-03-02T01:00:00Z)"
                ),
                "{out}"
            );
            assert!(!out.contains('\x1b') && !out.contains('\u{202e}'), "{out}");
            assert!(!out.lines().any(|l| l.starts_with("forged")), "{out}");
        }
        assert!(
            status.contains("BREACHED 1d 0h 0m ago (acknowledged:"),
            "{status}"
        );
        assert!(case.contains("breached (acknowledged:"), "{case}");
        let j = serde_json::to_value(case_json(&p, &p.cases[0], at)).unwrap();
        assert_eq!(j["clocks"][0]["state"], "breached");
        assert_eq!(
            j["clocks"][0]["acknowledged"]["reason"],
            "https://bugzilla.example/1 \x1b[2J\u{202e}\nforged line"
        );
        assert_eq!(j["clocks"][0]["acknowledged"]["by"], "<d@example-ca.test>");
        // Before staff's message was received it is not shown, and an unacknowledged clock
        // has no key at all.
        let before = parse("2026-03-02T00:30:00Z").unwrap();
        let j = serde_json::to_value(case_json(&p, &p.cases[0], before)).unwrap();
        assert!(j["clocks"][0].get("acknowledged").is_none(), "{j}");
        assert!(!status_text(&p, before).contains("acknowledged"));
    }
}
