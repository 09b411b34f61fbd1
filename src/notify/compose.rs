//! The mail cprwatch sends, as whole RFC 5322 messages: alerts to staff, digests, delivery
//! failures and receipts to reporters (README "Alerts and receipts").
//!
//! Pure: every function takes the moment it writes at (`Date:`) and returns bytes; the outbox
//! keeps them and the sender hands them to [`super::smtp`]. What to send and when is decided in
//! `deciding::alerts` and `deciding::receipts`.
//!
//! Everything a report wrote (its subject, its Message-Id, a rule's matched phrase, a
//! certificate's subject) is hostile text. So:
//!
//! - headers are built with lettre's typed builder from parsed [`Mailbox`] and [`Address`]
//!   values, never pasted: no display name from a report is ever used, a report's subject goes
//!   through [`crate::escape::text`] first (CR, LF and other controls become visible escapes)
//!   and lettre encodes what is not plain ASCII (RFC 2047) — no header injection;
//! - a report's Message-Ids are used in `In-Reply-To`/`References` only when they are plain
//!   `<…>` ids;
//! - the plain part shows report text through [`crate::escape::text`], the HTML part through
//!   [`crate::escape::html`]: no markup from a report, ever;
//! - nothing here can hold key material: [`KeyRef`] carries only the SPKI hash, and facts hold
//!   no body text. No secret is passed in.
//!
//! Every message but the canary carries `X-Cprwatch-Receipt: yes`, which makes cprwatch's own mail
//! [`crate::domain::event::Automation::Receipt`] when it lands in a watched folder: it never
//! opens a case, never gets a receipt. Its `Message-Id` is derived from the outbox key, so a
//! resend after a crash has the same one and a mail client or an auditor sees one message.

//! The canary is the exception: it must look like a person's report, and is told apart by its
//! verified token instead (`deciding::canary`).

use std::time::SystemTime;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};
use sha2::{Digest, Sha256};

use crate::deciding::alerts::AlertLevel;
use crate::deciding::cases::Case;
use crate::deciding::clock::{self, Clock};
use crate::domain::event::{ClockKind, ClockState, MessageFacts};
use crate::domain::ids::CaseId;
use crate::domain::model::{CertificateRef, KeyRef, Timestamp};
use crate::domain::timefmt;
use crate::escape;

/// One message ready for the outbox: its `Message-Id` (with angle brackets) and its bytes (CRLF
/// line ends, as [`super::smtp::Mailer::send`] takes them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Composed {
    pub message_id: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ComposeError {
    #[error("no recipient: an alert needs a route with at least one `to` address")]
    NoRecipient,
    #[error("the message could not be built: {0}")]
    Build(String),
}

/// Who a message goes from and to, the outbox key it is written under, and when.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Outgoing<'a> {
    /// `[smtp] from` (a display name of the desk's choosing is fine: it is configuration).
    pub from: &'a Mailbox,
    pub to: &'a [Address],
    /// The outbox key: the same key gives the same `Message-Id`.
    pub key: &'a str,
    /// The `Date:` of the message, and the moment "time left" is counted at.
    pub now: Timestamp,
}

/// The header every message cprwatch sends carries (read back by `reading::parse::headers`).
const OWN_MARK: &str = "X-Cprwatch-Receipt";

/// At most this many certificates or keys listed in one message ("… and N more" after).
const MAX_LISTED: usize = 50;
/// At most this many characters of a report's subject in a header.
const MAX_SUBJECT: usize = 120;
/// At most this many of a report's `References` carried on (the nearest ancestors).
const MAX_REFERENCES: usize = 20;

/// The `Message-Id` of the message written under `key`: stable, so a resend after a crash is
/// recognisably the same message. `<{32 hex of sha256(key)}.cprwatch@{domain of from}>`.
pub(crate) fn message_id(key: &str, from: &Mailbox) -> String {
    let h = hex::encode(Sha256::digest(key.as_bytes()));
    format!("<{}.cprwatch@{}>", &h[..32], from.email.domain())
}

/// The id every alert about `case` refers to, so a mail client shows a case's alerts as one
/// thread. No message carries it; clients thread on the reference alone.
pub(crate) fn case_root(case: &CaseId, from: &Mailbox) -> String {
    format!("<case.{case}.cprwatch@{}>", from.email.domain())
}

/// The thread of alerts about a clock outside any case.
fn clock_root(clock: &str, from: &Mailbox) -> String {
    let h = hex::encode(Sha256::digest(clock.as_bytes()));
    format!("<clock.{}.cprwatch@{}>", &h[..32], from.email.domain())
}

// ---------------------------------------------------------------------------------------
// The four kinds of message
// ---------------------------------------------------------------------------------------

/// An alert about one clock: `warning`, `breach`, `reminder` or `advisory`.
pub(crate) fn alert(
    out: &Outgoing<'_>,
    level: AlertLevel,
    clock: &Clock,
    case: Option<&Case>,
    dashboard_url: Option<&str>,
) -> Result<Composed, ComposeError> {
    let now = out.now;
    let target = clock_target(clock);
    let case_id = case.map(|c| &c.id).or(clock.case.as_ref());
    let mut subject = format!(
        "[cprwatch] {} {} {}",
        level.as_str().to_ascii_uppercase(),
        clock.kind.as_str(),
        target
    );
    if let Some(id) = case_id
        && id.as_str() != target
    {
        subject.push_str(&format!(" ({id})"));
    }
    subject.push_str(&format!(" - {}", time_left(clock, now)));
    if let Some(c) = case
        && !c.subject.trim().is_empty()
    {
        subject.push_str(&format!(": {}", header_text(&c.subject)));
    }

    let mut doc = Doc::default();
    doc.line(vec![Span::ours(headline(level, clock, &target))]);
    doc.block();
    if let Some(c) = case {
        case_lines(&mut doc, c, dashboard_url);
    } else if let Some(id) = case_id {
        doc.field("Case", vec![Span::ours(id.as_str())]);
    }
    doc.block();
    clock_lines(&mut doc, clock, now);
    if let Some(c) = case {
        doc.block();
        doc.heading("Certificates in this case");
        cert_lines(&mut doc, &c.certificates);
        if !c.keys.is_empty() {
            doc.heading("Keys in this case");
            key_lines(&mut doc, &c.keys);
        }
    }
    doc.block();
    stop_lines(&mut doc, level, clock, case_id);

    let mut extra = vec![
        ("X-CPR-Clock", clock.id.to_string()),
        ("X-CPR-Level", level.as_str().to_string()),
    ];
    if let Some(id) = case_id {
        extra.insert(0, ("X-CPR-Case", id.to_string()));
    }
    let root = match case_id {
        Some(id) => case_root(id, out.from),
        None => clock_root(clock.id.as_str(), out.from),
    };
    build(
        out,
        Draft::notice(subject, extra, doc).in_thread(Some(root.clone()), vec![root]),
    )
}

/// Many alerts in one message (a flood, or breaches older than a week when first seen): one
/// line per alert.
pub(crate) fn digest(
    out: &Outgoing<'_>,
    items: &[(AlertLevel, &Clock, Option<&Case>)],
    dashboard_url: Option<&str>,
) -> Result<Composed, ComposeError> {
    let now = out.now;
    let case_of = |(_, clock, case): &(AlertLevel, &Clock, Option<&Case>)| {
        case.map(|c| c.id.clone()).or_else(|| clock.case.clone())
    };
    let first_case = items.first().and_then(case_of);
    let one_case = first_case
        .clone()
        .filter(|c| items.iter().all(|i| case_of(i).as_ref() == Some(c)));
    let breaches = items
        .iter()
        .filter(|(_, c, _)| c.status(now).state == ClockState::Breached)
        .count();
    let mut subject = format!(
        "[cprwatch] DIGEST {} alert{}, {breaches} breached",
        items.len(),
        plural(items.len())
    );
    if let Some(id) = &one_case {
        subject.push_str(&format!(" ({id})"));
    }

    let mut doc = Doc::default();
    doc.line(vec![Span::ours(format!(
        "{} alerts at {} (UTC), in one message: more than [alerts] flood at once, or breaches that were more than a week old when cprwatch first saw them.",
        items.len(),
        timefmt::format(now)
    ))]);
    doc.block();
    for (level, clock, case) in items {
        let target = clock_target(clock);
        let mut line = vec![
            Span::ours(format!("{:<9} ", level.as_str().to_ascii_uppercase())),
            target_span(clock, &target),
            Span::ours(format!(
                " {} due {} (UTC), {}",
                clock.kind.as_str(),
                timefmt::format(clock.deadline),
                time_left(clock, now)
            )),
        ];
        let id = case.map(|c| &c.id).or(clock.case.as_ref());
        if let Some(id) = id {
            line.push(Span::ours(" — "));
            line.push(case_span(id, dashboard_url));
        }
        if let Some(c) = case
            && !c.subject.trim().is_empty()
        {
            line.push(Span::ours(": "));
            line.push(Span::theirs(clip(&c.subject, 80)));
        }
        doc.line(line);
    }
    doc.block();
    doc.line(vec![Span::ours(
        "Each clock stops with the staff command its own alert names (CPR-Revoked, CPR-Not-Revoking, CPR-Answered, CPR-Dismiss; CPR-Delayed acknowledges a breach), written in a staff mail in the case's thread.",
    )]);

    let mut extra = vec![("X-CPR-Level", AlertLevel::Digest.as_str().to_string())];
    let mut refs = Vec::new();
    if let Some(id) = &one_case {
        extra.insert(0, ("X-CPR-Case", id.to_string()));
        refs.push(case_root(id, out.from));
    }
    build(
        out,
        Draft::notice(subject, extra, doc).in_thread(refs.first().cloned(), refs),
    )
}

/// The day's signed checkpoints of the event log, mailed to the routes taking `digest`: a
/// copy outside the store, so a log cut back together with its stored checkpoints is still
/// caught (`cprwatch verify --checkpoints SAVED.eml`). Each checkpoint is one line in the
/// form [`crate::evidence::to_line`] writes and `verify` reads back.
pub(crate) fn checkpoints(
    out: &Outgoing<'_>,
    list: &[crate::evidence::SignedCheckpoint],
) -> Result<Composed, ComposeError> {
    let day = timefmt::format(out.now);
    let day = day.get(..10).unwrap_or(&day);
    let subject = format!(
        "[cprwatch] CHECKPOINTS {day}: {} signed checkpoint{} of the event log",
        list.len(),
        plural(list.len())
    );
    let mut doc = Doc::default();
    doc.line(vec![Span::ours(
        "The signed checkpoints of the event log from the last two days. Keep this mail: it is a copy of them outside the store.",
    )]);
    doc.line(vec![Span::ours(
        "An auditor holds the store against it with only the public key: cprwatch verify --public-key KEY.pem --checkpoints THIS-MAIL.eml",
    )]);
    doc.block();
    for c in list {
        doc.line(vec![Span::ours(crate::evidence::to_line(c))]);
    }
    build(
        out,
        Draft::notice(
            subject,
            vec![("X-CPR-Level", AlertLevel::Digest.as_str().to_string())],
            doc,
        ),
    )
}

/// A message cprwatch could not deliver (a permanent failure): told to the other routes.
/// `what` names the failed message's kind (`breach`, `receipt`, …); `error` is the server's
/// answer, which is outside text and shown escaped.
pub(crate) fn delivery_failure(
    out: &Outgoing<'_>,
    failed_message_id: &str,
    failed_to: &[Address],
    what: &str,
    error: &str,
) -> Result<Composed, ComposeError> {
    let to_list = failed_to
        .iter()
        .map(Address::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let subject = format!(
        "[cprwatch] DELIVERY FAILED {} to {}",
        header_text(what),
        header_text(&to_list)
    );
    let mut doc = Doc::default();
    doc.line(vec![Span::ours(
        "cprwatch could not deliver a message and will not try again: the server refused it for good.",
    )]);
    doc.block();
    doc.field("Message", vec![Span::theirs(failed_message_id)]);
    doc.field("Kind", vec![Span::theirs(what)]);
    doc.field("To", vec![Span::ours(to_list)]);
    doc.field(
        "Failed at",
        vec![Span::ours(format!("{} (UTC)", timefmt::format(out.now)))],
    );
    doc.field("Server said", vec![Span::theirs(clip(error, 2000))]);
    doc.block();
    doc.line(vec![Span::ours(
        "Check the address and the [smtp] server. `cprwatch status` lists undelivered messages; if this was a receipt, the reporter has not heard from the desk.",
    )]);
    build(
        out,
        Draft::notice(
            subject,
            vec![("X-CPR-Level", AlertLevel::Delivery.as_str().to_string())],
            doc,
        ),
    )
}

/// The mailbox canary: a synthetic report to a published CPR address, with a certificate
/// attached as real reports have, and the `X-CPR-Canary` line (`canary_line` is its value) in
/// a header and in the text, so a bounce quoting either is recognised.
pub(crate) fn canary(
    out: &Outgoing<'_>,
    id: &str,
    canary_line: &str,
) -> Result<Composed, ComposeError> {
    let mut doc = Doc::default();
    doc.line(vec![Span::ours(
        "This is cprwatch's mailbox canary: a test report that checks that mail to this address reaches the desk's watched folders. It is not a problem report; cprwatch recognises it and opens no case. Please do not answer it.",
    )]);
    doc.block();
    doc.field("Canary", vec![Span::ours(id)]);
    doc.field(
        "Sent at",
        vec![Span::ours(format!("{} (UTC)", timefmt::format(out.now)))],
    );
    doc.block();
    doc.line(vec![Span::ours(format!(
        "{}: {canary_line}",
        crate::deciding::canary::HEADER
    ))]);
    build(
        out,
        Draft {
            subject: format!("Certificate problem report test (cprwatch canary {id})"),
            auto_submitted: None,
            attachment: Some((
                "certificate.pem",
                "application/x-pem-file",
                CANARY_CERTIFICATE.as_bytes().to_vec(),
            )),
            extra: vec![(crate::deciding::canary::HEADER, canary_line.to_string())],
            in_reply_to: None,
            references: Vec::new(),
            doc,
        },
    )
}

/// The certificate the canary carries: self-signed, its key thrown away when it was made, so
/// it names nothing anyone could have to revoke.
const CANARY_CERTIFICATE: &str = include_str!("canary-certificate.pem");

/// A canary that did not come back as it should: an alert at the `canary` level.
pub(crate) fn canary_alert(
    out: &Outgoing<'_>,
    published: &str,
    id: &str,
    sent_at: Timestamp,
    problem: &str,
) -> Result<Composed, ComposeError> {
    let subject = format!(
        "[cprwatch] CANARY {} {}",
        header_text(published),
        header_text(problem)
    );
    let mut doc = Doc::default();
    doc.line(vec![Span::ours(
        "A test report cprwatch mailed to a published problem-report address did not come back as a report would. Real reports may be going the same way: bouncing, filtered into junk, or held.",
    )]);
    doc.block();
    doc.field("Address", vec![Span::ours(published)]);
    doc.field("Canary", vec![Span::ours(id)]);
    doc.field(
        "Sent at",
        vec![Span::ours(format!("{} (UTC)", timefmt::format(sent_at)))],
    );
    doc.field("Problem", vec![Span::theirs(clip(problem, 2000))]);
    doc.block();
    doc.line(vec![Span::ours(
        "Check the address's MX, filters and junk rules, and the watched folders. `cprwatch status` shows every canary's last arrival.",
    )]);
    build(
        out,
        Draft::notice(
            subject,
            vec![("X-CPR-Level", AlertLevel::Canary.as_str().to_string())],
            doc,
        ),
    )
}

/// What the responders say contradicts the desk, or each other, about a certificate with a
/// revocation clock: an alert at the `revocation` level, threaded in its case.
pub(crate) fn revocation_alert(
    out: &Outgoing<'_>,
    target: &str,
    case: Option<&CaseId>,
    problem: &str,
    observed: Option<&str>,
) -> Result<Composed, ComposeError> {
    let subject = format!(
        "[cprwatch] REVOCATION {}{}",
        header_text(target),
        case.map(|c| format!(" [{c}]")).unwrap_or_default()
    );
    let mut doc = Doc::default();
    doc.line(vec![Span::ours(problem)]);
    doc.block();
    doc.field("Certificate", vec![Span::ours(target)]);
    if let Some(c) = case {
        doc.field("Case", vec![Span::ours(c.to_string())]);
    }
    if let Some(o) = observed {
        doc.field("Responders say", vec![Span::ours(o)]);
    }
    doc.block();
    doc.line(vec![Span::ours(
        "`cprwatch case` shows every check with its time, source and answer; the revocation clock stops only when OCSP or CRL shows the certificate revoked.",
    )]);
    let mut extra = vec![("X-CPR-Level", AlertLevel::Revocation.as_str().to_string())];
    if let Some(c) = case {
        extra.push(("X-CPR-Case", c.to_string()));
    }
    extra.push((
        "X-CPR-Clock",
        crate::domain::ids::ClockId::revocation(target).to_string(),
    ));
    build(out, Draft::notice(subject, extra, doc))
}

/// The receipt to a reporter: a reply to their report saying when it was received, under
/// which case, what it named, and that a preliminary report follows within 24 hours. It says
/// plainly that it is not that preliminary report.
pub(crate) fn receipt(
    out: &Outgoing<'_>,
    report: &MessageFacts,
    case: &CaseId,
    status_page: Option<&str>,
) -> Result<Composed, ComposeError> {
    let tag = format!("[{case}]");
    let original = header_text(&report.subject);
    let mut subject = if original.is_empty() {
        "Re: your problem report".to_string()
    } else if original
        .get(..3)
        .is_some_and(|p| p.eq_ignore_ascii_case("re:"))
    {
        original.clone()
    } else {
        format!("Re: {original}")
    };
    if !subject
        .to_ascii_uppercase()
        .contains(&tag.to_ascii_uppercase())
    {
        subject.push(' ');
        subject.push_str(&tag);
    }

    let received = timefmt::format(report.received_at);
    let due = timefmt::format(report.received_at + clock::DAY);
    let mut doc = Doc::default();
    doc.line(vec![Span::ours(
        "Thank you. Your certificate problem report has been received.",
    )]);
    doc.block();
    doc.field(
        "Case",
        vec![Span::ours(format!(
            "{case} (please keep it in the subject of any further mail)"
        ))],
    );
    doc.field("Received", vec![Span::ours(format!("{received} (UTC)"))]);
    if report.synthetic_id {
        doc.field(
            "Your message",
            vec![Span::ours("it had no Message-Id; this is a reply to it")],
        );
    } else {
        doc.field("Your message", vec![Span::theirs(&report.message_id)]);
    }
    if !report.subject.trim().is_empty() {
        doc.field("Subject", vec![Span::theirs(clip(&report.subject, 200))]);
    }
    doc.block();
    if report.certificates.is_empty() && report.keys.is_empty() {
        doc.line(vec![Span::ours(
            "Certificates and keys recognised: none recognised — please send crt.sh links or the certificate.",
        )]);
    } else {
        if !report.certificates.is_empty() {
            doc.heading("Certificates recognised");
            cert_lines(&mut doc, &report.certificates);
        }
        if !report.keys.is_empty() {
            doc.heading("Keys recognised (by the SHA-256 of their public key)");
            key_lines(&mut doc, &report.keys);
        }
    }
    doc.block();
    doc.line(vec![Span::ours(format!(
        "A preliminary report on your report will follow within 24 hours of its receipt, by {due} (UTC) (CA/Browser Forum Baseline Requirements, section 4.9.5)."
    ))]);
    doc.line(vec![Span::ours(
        "This is an automatic acknowledgement of receipt. It is not that preliminary report.",
    )]);
    if let Some(url) = status_page {
        doc.block();
        doc.field(
            "Status",
            vec![Span::ours(format!(
                "{url} (no login: whether the preliminary report and each revocation are open or done)"
            ))],
        );
    }

    let mut references: Vec<String> = report
        .references
        .iter()
        .filter(|id| is_plain_msg_id(id))
        .cloned()
        .collect();
    let skip = references.len().saturating_sub(MAX_REFERENCES - 1);
    references.drain(..skip);
    let own = (!report.synthetic_id && is_plain_msg_id(&report.message_id))
        .then(|| report.message_id.clone());
    if let Some(id) = &own
        && !references.contains(id)
    {
        references.push(id.clone());
    }
    build(
        out,
        Draft {
            subject,
            auto_submitted: Some("auto-replied"),
            attachment: None,
            extra: vec![("X-CPR-Case", case.to_string())],
            in_reply_to: own,
            references,
            doc,
        },
    )
}

// ---------------------------------------------------------------------------------------
// What the bodies say
// ---------------------------------------------------------------------------------------

fn headline(level: AlertLevel, clock: &Clock, target: &str) -> String {
    let what = match clock.kind {
        ClockKind::Revocation => format!("The revocation of {target}"),
        ClockKind::PreliminaryReport => format!("The preliminary report for {target}"),
    };
    match level {
        AlertLevel::Warning => format!("{what} is due soon."),
        AlertLevel::Breach => format!("{what} is overdue: its deadline has passed."),
        AlertLevel::Reminder => format!("{what} is still overdue."),
        AlertLevel::Advisory => format!(
            "{what} has a 5-day window, but the Baseline Requirements say the CA SHOULD revoke within 24 hours; that time has passed."
        ),
        AlertLevel::Canary | AlertLevel::Digest | AlertLevel::Delivery | AlertLevel::Revocation => {
            format!("{what}: {}.", level.as_str())
        }
    }
}

fn case_lines(doc: &mut Doc, c: &Case, dashboard_url: Option<&str>) {
    doc.field("Case", vec![case_span(&c.id, dashboard_url)]);
    doc.field("Reporter", vec![Span::theirs(&c.reporter)]);
    doc.field("Subject", vec![Span::theirs(clip(&c.subject, 200))]);
    doc.field(
        "Received",
        vec![Span::ours(format!(
            "{} (UTC)",
            timefmt::format(c.opened_at)
        ))],
    );
}

fn clock_lines(doc: &mut Doc, clock: &Clock, now: Timestamp) {
    doc.field("Clock", vec![Span::theirs(clock.id.as_str())]);
    if clock.kind == ClockKind::Revocation {
        let target = clock_target(clock);
        doc.field("Of", vec![target_span(clock, &target)]);
    }
    doc.field(
        "Started",
        vec![Span::ours(format!(
            "{} (UTC)",
            timefmt::format(clock.started_at)
        ))],
    );
    doc.field(
        "Deadline",
        vec![Span::ours(format!(
            "{} (UTC)",
            timefmt::format(clock.deadline)
        ))],
    );
    doc.field(
        "Status",
        vec![Span::ours(format!(
            "{}, at {} (UTC)",
            time_left(clock, now),
            timefmt::format(now)
        ))],
    );
    let mut why = vec![Span::theirs(&clock.basis)];
    if let Some(m) = clock.matched.as_deref().filter(|m| !m.is_empty()) {
        why.push(Span::ours(", the report says “"));
        why.push(Span::theirs(clip(m, 200)));
        why.push(Span::ours("”"));
    }
    if let Some(by) = &clock.decided_by {
        why.push(Span::ours(", decided by staff in "));
        why.push(Span::theirs(by));
    }
    doc.field("Window set by", why);
    if let Some(c) = &clock.claimed {
        doc.field(
            "Claimed revoked",
            vec![
                Span::ours(format!(
                    "at {} by staff in ",
                    timefmt::format(c.revoked_at)
                )),
                Span::theirs(&c.by),
                Span::ours(
                    ", not verified: no OCSP responder or CRL shows it revoked yet (the clock runs on)",
                ),
            ],
        );
    }
}

/// The staff commands that stop (or acknowledge) this clock.
fn stop_lines(doc: &mut Doc, level: AlertLevel, clock: &Clock, case: Option<&CaseId>) {
    doc.heading(
        "To stop this clock, write in a staff mail in the case's thread, on a line of its own",
    );
    let target = clock_target(clock);
    match clock.kind {
        ClockKind::Revocation => {
            doc.line(vec![
                Span::ours(format!("  CPR-Revoked: {target} [<RFC 3339 time>]")),
                Span::ours("   (revoked)"),
            ]);
            doc.line(vec![Span::ours(format!(
                "  CPR-Not-Revoking: {target} <reason>   (no revocation is due)"
            ))]);
        }
        ClockKind::PreliminaryReport => {
            doc.line(vec![Span::ours(
                "  send the preliminary report to the reporter from a staff address, or",
            )]);
            doc.line(vec![Span::ours(
                "  CPR-Answered: <where> [<RFC 3339 time>]   (answered elsewhere, e.g. a root program's bug)",
            )]);
        }
    }
    if matches!(level, AlertLevel::Breach | AlertLevel::Reminder) {
        let reference = match clock.kind {
            ClockKind::Revocation => target.clone(),
            ClockKind::PreliminaryReport => case.map(|c| c.to_string()).unwrap_or(target),
        };
        doc.line(vec![Span::ours(format!(
            "  CPR-Delayed: {reference} <incident URL or reason>   (acknowledges the breach: no more reminders; the clock stays breached)"
        ))]);
    }
    doc.line(vec![Span::ours(
        "  CPR-Dismiss: <reason>   (not a problem report: closes the case's clocks)",
    )]);
}

fn cert_lines(doc: &mut Doc, certs: &[CertificateRef]) {
    if certs.is_empty() {
        doc.line(vec![Span::ours("  none")]);
    }
    for c in certs.iter().take(MAX_LISTED) {
        let mut line = vec![Span::ours("  ")];
        match cert_url(c) {
            Some(url) => line.push(Span::Link {
                url,
                label: c.reference.clone(),
            }),
            None => line.push(Span::theirs(&c.reference)),
        }
        if let Some(s) = c.subject.as_deref().filter(|s| !s.is_empty()) {
            line.push(Span::ours("  "));
            line.push(Span::theirs(clip(s, 120)));
        }
        if c.is_ca == Some(true) {
            line.push(Span::ours("  (CA certificate)"));
        }
        doc.line(line);
    }
    more(doc, certs.len());
}

fn key_lines(doc: &mut Doc, keys: &[KeyRef]) {
    for k in keys.iter().take(MAX_LISTED) {
        let mut line = vec![Span::ours("  ")];
        match k.reference.as_deref() {
            Some(r) => match spki_url(r) {
                Some(url) => line.push(Span::Link {
                    url,
                    label: r.to_string(),
                }),
                None => line.push(Span::theirs(r)),
            },
            None => line.push(Span::ours("a key whose public half is unknown")),
        }
        line.push(Span::ours(format!("  ({}", evidence_words(k))));
        if let Some(a) = &k.algorithm {
            line.push(Span::ours(", "));
            line.push(Span::theirs(a));
        }
        line.push(Span::ours(")"));
        doc.line(line);
    }
    more(doc, keys.len());
}

fn more(doc: &mut Doc, n: usize) {
    if n > MAX_LISTED {
        doc.line(vec![Span::ours(format!("  … and {} more", n - MAX_LISTED))]);
    }
}

fn evidence_words(k: &KeyRef) -> &'static str {
    use crate::domain::model::KeyEvidence::*;
    match k.evidence {
        Link => "a crt.sh link",
        PublicKey => "a public key",
        Csr => "a certificate signing request",
        EncryptedPrivateKey => "an encrypted private key",
        PrivateKey => "a private key",
    }
}

/// "4h 10m left", "overdue by 2h 0m", or how the clock stopped.
fn time_left(clock: &Clock, now: Timestamp) -> String {
    let status = clock.status(now);
    match status.state {
        ClockState::Pending => format!(
            "{} left",
            timefmt::human_span((clock.deadline - now).whole_seconds())
        ),
        ClockState::Breached => format!(
            "overdue by {}",
            timefmt::human_span((now - clock.deadline).whole_seconds())
        ),
        state => match status.stopped_at {
            Some(at) => format!("{} at {} (UTC)", state.as_str(), timefmt::format(at)),
            None => state.as_str().to_string(),
        },
    }
}

/// What the clock is about: its certificate or key, or its case.
fn clock_target(clock: &Clock) -> String {
    let t = clock
        .target
        .clone()
        .or_else(|| clock.case.as_ref().map(|c| c.to_string()))
        .unwrap_or_else(|| {
            let id = clock.id.as_str();
            id.split_once(':').map_or(id, |(_, t)| t).to_string()
        });
    header_text(&t)
}

fn target_span(clock: &Clock, target: &str) -> Span {
    let url = match clock.kind {
        ClockKind::Revocation => ref_url(target),
        ClockKind::PreliminaryReport => None,
    };
    match url {
        Some(url) => Span::Link {
            url,
            label: target.to_string(),
        },
        None => Span::theirs(target),
    }
}

fn case_span(id: &CaseId, dashboard_url: Option<&str>) -> Span {
    match dashboard_url.and_then(|u| case_url(u, id)) {
        Some(url) => Span::Link {
            url,
            label: id.to_string(),
        },
        None => Span::ours(id.as_str()),
    }
}

/// `<dashboard_url>/case/<ID>`.
fn case_url(base: &str, id: &CaseId) -> Option<String> {
    let base = base.trim().trim_end_matches('/');
    (!base.is_empty()).then(|| format!("{base}/case/{id}"))
}

/// crt.sh's page for a certificate: by id, else by SHA-256.
fn cert_url(c: &CertificateRef) -> Option<String> {
    if let Some(id) = c.crtsh_id {
        return Some(format!("https://crt.sh/?id={id}"));
    }
    c.sha256
        .as_deref()
        .filter(|h| is_sha256_hex(h))
        .map(|h| format!("https://crt.sh/?q={h}"))
        .or_else(|| ref_url(&c.reference))
}

/// crt.sh's page for a reference: `crtsh:<id>`, `sha256:<hex>`, `spki:<hex>`.
fn ref_url(r: &str) -> Option<String> {
    match r.split_once(':')? {
        ("crtsh", id) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => {
            Some(format!("https://crt.sh/?id={id}"))
        }
        ("sha256", h) if is_sha256_hex(h) => Some(format!("https://crt.sh/?q={h}")),
        ("spki", _) => spki_url(r),
        _ => None,
    }
}

fn spki_url(r: &str) -> Option<String> {
    let h = r.strip_prefix("spki:").filter(|h| is_sha256_hex(h))?;
    Some(format!("https://crt.sh/?spkisha256={h}"))
}

fn is_sha256_hex(h: &str) -> bool {
    h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A `<…>` message id safe to carry in `In-Reply-To`/`References`: printable ASCII, no
/// spaces, nothing that ends it early.
fn is_plain_msg_id(id: &str) -> bool {
    let Some(inner) = id.strip_prefix('<').and_then(|i| i.strip_suffix('>')) else {
        return false;
    };
    !inner.is_empty()
        && inner.len() <= 250
        && inner
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'(' | b')' | b'"' | b'\\'))
}

/// Text from a report for a header: hazards as visible escapes, whitespace runs as one space,
/// at most [`MAX_SUBJECT`] characters.
fn header_text(s: &str) -> String {
    let shown = escape::text(s);
    clip(
        &shown.split_whitespace().collect::<Vec<_>>().join(" "),
        MAX_SUBJECT,
    )
}

fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

// ---------------------------------------------------------------------------------------
// Two alternatives from one document
// ---------------------------------------------------------------------------------------

/// A piece of a line: cprwatch's own words, a report's (escaped for each medium), a label, or
/// a link cprwatch built (crt.sh, the dashboard).
enum Span {
    Ours(String),
    Theirs(String),
    Label(&'static str),
    Link { url: String, label: String },
}

impl Span {
    fn ours(s: impl Into<String>) -> Span {
        Span::Ours(s.into())
    }
    fn theirs(s: impl Into<String>) -> Span {
        Span::Theirs(s.into())
    }
}

/// Blocks of lines, rendered once as plain text and once as HTML.
#[derive(Default)]
struct Doc {
    blocks: Vec<Vec<Vec<Span>>>,
}

impl Doc {
    fn block(&mut self) {
        if self.blocks.last().is_none_or(|b| !b.is_empty()) {
            self.blocks.push(Vec::new());
        }
    }

    fn line(&mut self, spans: Vec<Span>) {
        if self.blocks.is_empty() {
            self.blocks.push(Vec::new());
        }
        if let Some(b) = self.blocks.last_mut() {
            b.push(spans);
        }
    }

    fn field(&mut self, label: &'static str, mut value: Vec<Span>) {
        value.insert(0, Span::Label(label));
        self.line(value);
    }

    fn heading(&mut self, text: &'static str) {
        self.line(vec![Span::ours(format!("{text}:"))]);
    }

    fn text(&self) -> String {
        let mut out = String::new();
        for block in self.blocks.iter().filter(|b| !b.is_empty()) {
            if !out.is_empty() {
                out.push('\n');
            }
            for line in block {
                for span in line {
                    match span {
                        Span::Ours(s) => out.push_str(s),
                        Span::Theirs(s) => out.push_str(&escape::text(s)),
                        Span::Label(l) => out.push_str(&format!("{:<15}", format!("{l}:"))),
                        Span::Link { url, label } if url == label => out.push_str(url),
                        Span::Link { url, label } => {
                            out.push_str(&escape::text(label));
                            out.push_str(" <");
                            out.push_str(url);
                            out.push('>');
                        }
                    }
                }
                out.push('\n');
            }
        }
        out
    }

    fn html(&self, title: &str) -> String {
        let mut out = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body style=\"font-family: sans-serif\">\n",
            escape::html(title)
        );
        for block in self.blocks.iter().filter(|b| !b.is_empty()) {
            out.push_str("<p>");
            for (i, line) in block.iter().enumerate() {
                if i > 0 {
                    out.push_str("<br>\n");
                }
                for span in line {
                    match span {
                        Span::Ours(s) | Span::Theirs(s) => out.push_str(&escape::html(s)),
                        Span::Label(l) => {
                            out.push_str(&format!("<b>{}:</b> ", escape::html(l)));
                        }
                        Span::Link { url, label } => out.push_str(&format!(
                            "<a href=\"{}\">{}</a>",
                            escape::html(url),
                            escape::html(label)
                        )),
                    }
                }
            }
            out.push_str("</p>\n");
        }
        out.push_str("</body></html>\n");
        out
    }
}

// ---------------------------------------------------------------------------------------
// The message itself
// ---------------------------------------------------------------------------------------

struct Draft {
    subject: String,
    /// `None` only for the canary, which must look like a report a person sent: it carries
    /// neither `Auto-Submitted` nor cprwatch's own mark, and is told apart by its token.
    auto_submitted: Option<&'static str>,
    /// A file attached after the text (the canary's certificate): name, type, bytes.
    attachment: Option<(&'static str, &'static str, Vec<u8>)>,
    /// `X-CPR-*` headers: cprwatch's own ids and levels.
    extra: Vec<(&'static str, String)>,
    in_reply_to: Option<String>,
    references: Vec<String>,
    doc: Doc,
}

impl Draft {
    /// A notice cprwatch writes on its own (an alert, a digest, a delivery failure):
    /// `Auto-Submitted: auto-generated`, nothing attached, in no thread unless
    /// [`Draft::in_thread`] puts it in one.
    fn notice(subject: String, extra: Vec<(&'static str, String)>, doc: Doc) -> Draft {
        Draft {
            subject,
            auto_submitted: Some("auto-generated"),
            attachment: None,
            extra,
            in_reply_to: None,
            references: Vec::new(),
            doc,
        }
    }

    /// A reply to `in_reply_to`, with `references` (the case's thread).
    fn in_thread(mut self, in_reply_to: Option<String>, references: Vec<String>) -> Draft {
        self.in_reply_to = in_reply_to;
        self.references = references;
        self
    }
}

fn build(out: &Outgoing<'_>, d: Draft) -> Result<Composed, ComposeError> {
    if out.to.is_empty() {
        return Err(ComposeError::NoRecipient);
    }
    let id = message_id(out.key, out.from);
    // lettre refuses (panics on) a display name holding CR or LF, and encodes the rest: the
    // name goes through the same cleaning as any text for a header.
    let from = Mailbox::new(
        out.from
            .name
            .as_deref()
            .map(header_text)
            .filter(|n| !n.is_empty()),
        out.from.email.clone(),
    );
    let mut b = Message::builder()
        .from(from)
        .subject(d.subject.clone())
        .date(SystemTime::from(out.now))
        .message_id(Some(id.clone()));
    for to in out.to {
        b = b.to(Mailbox::new(None, to.clone()));
    }
    if let Some(r) = d.in_reply_to {
        b = b.in_reply_to(r);
    }
    if !d.references.is_empty() {
        b = b.references(d.references.join(" "));
    }
    let raw = |name: &'static str, value: String| {
        HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
    };
    if let Some(auto) = d.auto_submitted {
        b = b
            .raw_header(raw("Auto-Submitted", auto.to_string()))
            .raw_header(raw(OWN_MARK, "yes".to_string()));
    }
    for (name, value) in d.extra {
        b = b.raw_header(raw(name, value));
    }
    let text = d.doc.text();
    let html = d.doc.html(&d.subject);
    // The boundary is derived from the content, so the same message has the same bytes, and
    // no content can hold it (it would have to hold its own hash).
    let mut h = Sha256::new();
    h.update(text.as_bytes());
    h.update([0]);
    h.update(html.as_bytes());
    let boundary = format!("cprwatch-{}", &hex::encode(h.finalize())[..40]);
    let alternative = MultiPart::alternative()
        .boundary(boundary.clone())
        .singlepart(SinglePart::plain(text))
        .singlepart(SinglePart::html(html));
    let body = match d.attachment {
        None => alternative,
        Some((name, content_type, bytes)) => MultiPart::mixed()
            .boundary(format!("{boundary}-mixed"))
            .multipart(alternative)
            .singlepart(Attachment::new(name.to_string()).body(
                bytes,
                ContentType::parse(content_type).map_err(|e| ComposeError::Build(e.to_string()))?,
            )),
    };
    let message = b
        .multipart(body)
        .map_err(|e| ComposeError::Build(e.to_string()))?;
    Ok(Composed {
        message_id: id,
        bytes: message.formatted(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::Automation;
    use crate::domain::ids::ClockId;
    use crate::domain::model::{FolderRole, KeyEvidence, SourceMeta, TimeSource};
    use mail_parser::{MessageParser, MimeHeaders};
    use time::Duration;
    use time::macros::datetime;

    const T0: Timestamp = datetime!(2026-03-02 10:00 UTC);
    const SPKI: &str = "5f1c2b6a9d3e4f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";
    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const DASHBOARD: &str = "https://cprwatch.example-ca.test/";

    fn desk() -> Mailbox {
        "cprwatch <cprwatch@example-ca.test>".parse().unwrap()
    }

    fn staff() -> Vec<Address> {
        vec!["desk@example-ca.test".parse().unwrap()]
    }

    fn out<'a>(from: &'a Mailbox, to: &'a [Address], key: &'a str, now: Timestamp) -> Outgoing<'a> {
        Outgoing { from, to, key, now }
    }

    fn cert(r: &str) -> CertificateRef {
        CertificateRef::bare(r.to_string())
    }

    fn case(subject: &str) -> Case {
        Case {
            id: CaseId::new(2026, 1),
            founder: "ab".repeat(32),
            reporter: "rita@reporter.test".into(),
            reporter_addresses: vec!["rita@reporter.test".into()],
            subject: subject.into(),
            opened_at: T0,
            messages: Vec::new(),
            certificates: vec![cert("crtsh:123"), cert(&format!("sha256:{SHA}"))],
            keys: vec![KeyRef {
                reference: Some(format!("spki:{SPKI}")),
                evidence: KeyEvidence::PrivateKey,
                algorithm: Some("rsa-2048".into()),
            }],
            clocks: Vec::new(),
            dismissed: None,
        }
    }

    fn revocation() -> Clock {
        Clock {
            claimed: None,
            id: ClockId::revocation("crtsh:123"),
            kind: ClockKind::Revocation,
            case: None,
            target: Some("crtsh:123".into()),
            started_at: T0,
            deadline: T0 + Duration::hours(24),
            basis: "key-compromise".into(),
            matched: Some("the private key <b>leaked</b>".into()),
            decided_by: None,
            stops: Vec::new(),
            acknowledged: None,
        }
    }

    fn preliminary() -> Clock {
        let id = CaseId::new(2026, 1);
        Clock {
            claimed: None,
            id: ClockId::preliminary(&id),
            kind: ClockKind::PreliminaryReport,
            case: Some(id),
            target: None,
            started_at: T0,
            deadline: T0 + Duration::hours(24),
            basis: clock::BASIS_PRELIMINARY.into(),
            matched: None,
            decided_by: None,
            stops: Vec::new(),
            acknowledged: None,
        }
    }

    fn report() -> MessageFacts {
        MessageFacts {
            content_hash: "ab".repeat(32),
            size: 100,
            message_id: "<r1@reporter.test>".into(),
            synthetic_id: false,
            folder: FolderRole::Inbox,
            position: None,
            received_at: T0,
            time_source: TimeSource::Received,
            date_header: None,
            from: "rita@reporter.test".into(),
            reply_to: vec![],
            to: vec!["cpr@example-ca.test".into()],
            cc: vec![],
            subject: "Key compromise".into(),
            in_reply_to: vec!["<earlier@reporter.test>".into()],
            references: vec![
                "<first@reporter.test>".into(),
                "<earlier@reporter.test>".into(),
            ],
            automation: Automation::None,
            bulk: None,
            staff: None,
            certificates: vec![cert("crtsh:123")],
            keys: vec![],
            rules: vec![],
            commands: vec![],
            bad_commands: vec![],
            parsed_ok: true,
            problems: vec![],
            canary: None,
        }
    }

    /// The message parsed back, as a mail client would read it.
    struct Read {
        raw: String,
        msg: mail_parser::Message<'static>,
    }

    impl Read {
        fn new(c: &Composed) -> Read {
            let raw = String::from_utf8(c.bytes.clone()).unwrap();
            let msg = MessageParser::default()
                .parse(c.bytes.as_slice())
                .unwrap()
                .into_owned();
            Read { raw, msg }
        }

        fn header(&self, name: &str) -> Option<String> {
            self.msg
                .header(name)
                .and_then(|v| v.as_text())
                .map(str::to_string)
        }

        fn ids(&self, name: &str) -> Vec<String> {
            match self.msg.header(name) {
                Some(mail_parser::HeaderValue::Text(t)) => vec![t.to_string()],
                Some(mail_parser::HeaderValue::TextList(l)) => {
                    l.iter().map(|t| t.to_string()).collect()
                }
                _ => vec![],
            }
        }

        fn text(&self) -> String {
            self.msg.body_text(0).unwrap().into_owned()
        }

        fn html(&self) -> String {
            self.msg.body_html(0).unwrap().into_owned()
        }

        /// The names of the top-level header fields, as sent.
        fn header_names(&self) -> Vec<String> {
            let head = self.raw.split("\r\n\r\n").next().unwrap();
            head.split("\r\n")
                .filter(|l| !l.starts_with([' ', '\t']))
                .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_ascii_lowercase()))
                .collect()
        }
    }

    #[test]
    fn a_breach_alert_names_case_clock_level_and_threads_under_the_case() {
        let (from, to) = (desk(), staff());
        let now = T0 + Duration::hours(26);
        let c = case("Key compromise");
        let m = alert(
            &out(&from, &to, "alert:revocation:crtsh:123:breach", now),
            AlertLevel::Breach,
            &revocation(),
            Some(&c),
            Some(DASHBOARD),
        )
        .unwrap();
        let r = Read::new(&m);
        assert_eq!(r.header("X-CPR-Case").as_deref(), Some("CPR-2026-0001"));
        assert_eq!(
            r.header("X-CPR-Clock").as_deref(),
            Some("revocation:crtsh:123")
        );
        assert_eq!(r.header("X-CPR-Level").as_deref(), Some("breach"));
        assert_eq!(
            r.header("Auto-Submitted").as_deref(),
            Some("auto-generated")
        );
        assert_eq!(r.header("X-Cprwatch-Receipt").as_deref(), Some("yes"));
        let root = "case.CPR-2026-0001.cprwatch@example-ca.test";
        assert_eq!(r.ids("In-Reply-To"), [root]);
        assert_eq!(r.ids("References"), [root]);
        assert_eq!(
            r.msg.subject(),
            Some(
                "[cprwatch] BREACH revocation crtsh:123 (CPR-2026-0001) - overdue by 2h 0m: Key compromise"
            )
        );
        assert_eq!(
            r.msg.date().map(|d| d.to_timestamp()),
            Some(now.unix_timestamp())
        );
        assert_eq!(format!("<{}>", r.msg.message_id().unwrap()), m.message_id);
        assert_eq!(
            r.msg.from().unwrap().first().unwrap().address(),
            Some("cprwatch@example-ca.test")
        );
        assert_eq!(
            r.msg.to().unwrap().first().unwrap().address(),
            Some("desk@example-ca.test")
        );
        assert!(
            r.msg.is_content_type("multipart", "alternative"),
            "{}",
            r.raw
        );
        let text = r.text();
        for want in [
            "CPR-2026-0001",
            "rita@reporter.test",
            "Key compromise",
            "2026-03-02T10:00:00Z (UTC)",
            "2026-03-03T10:00:00Z (UTC)",
            "overdue by 2h 0m",
            "https://crt.sh/?id=123",
            &format!("https://crt.sh/?q={SHA}"),
            &format!("https://crt.sh/?spkisha256={SPKI}"),
            "key-compromise",
            "the private key <b>leaked</b>",
            "CPR-Revoked: crtsh:123",
            "CPR-Not-Revoking: crtsh:123",
            "CPR-Delayed: crtsh:123",
            "CPR-Dismiss:",
            "https://cprwatch.example-ca.test/case/CPR-2026-0001",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        assert!(!text.contains("CPR-Answered"), "{text}");
        let html = r.html();
        for want in [
            "<a href=\"https://crt.sh/?id=123\">crtsh:123</a>",
            "<a href=\"https://cprwatch.example-ca.test/case/CPR-2026-0001\">CPR-2026-0001</a>",
            "the private key &lt;b&gt;leaked&lt;/b&gt;",
            "CPR-Delayed: crtsh:123",
        ] {
            assert!(html.contains(want), "{want} not in\n{html}");
        }
        assert!(!html.contains("<b>leaked"), "{html}");
    }

    #[test]
    fn a_warning_says_time_left_and_a_preliminary_clock_names_its_own_commands() {
        let (from, to) = (desk(), staff());
        let now = T0 + Duration::hours(20);
        let c = case("Misissued");
        let m = alert(
            &out(&from, &to, "k", now),
            AlertLevel::Warning,
            &preliminary(),
            Some(&c),
            None,
        )
        .unwrap();
        let r = Read::new(&m);
        assert_eq!(
            r.header("X-CPR-Clock").as_deref(),
            Some("preliminary_report:CPR-2026-0001")
        );
        assert_eq!(r.header("X-CPR-Level").as_deref(), Some("warning"));
        assert_eq!(
            r.msg.subject(),
            Some("[cprwatch] WARNING preliminary_report CPR-2026-0001 - 4h 0m left: Misissued")
        );
        let text = r.text();
        assert!(text.contains("4h 0m left"), "{text}");
        assert!(text.contains("CPR-Answered:"), "{text}");
        // No breach yet: nothing to acknowledge. No dashboard configured: no link.
        assert!(!text.contains("CPR-Delayed"), "{text}");
        assert!(!text.contains("/case/"), "{text}");
        assert!(!text.contains("CPR-Revoked"), "{text}");
    }

    #[test]
    fn an_alert_without_a_case_threads_per_clock() {
        let (from, to) = (desk(), staff());
        let m = alert(
            &out(&from, &to, "k", T0 + Duration::hours(30)),
            AlertLevel::Reminder,
            &revocation(),
            None,
            Some(DASHBOARD),
        )
        .unwrap();
        let r = Read::new(&m);
        assert_eq!(r.header("X-CPR-Case"), None);
        assert_eq!(r.header("X-CPR-Level").as_deref(), Some("reminder"));
        let refs = r.ids("References");
        assert_eq!(refs.len(), 1);
        assert!(refs[0].starts_with("clock.") && refs[0].ends_with(".cprwatch@example-ca.test"));
        assert_eq!(r.ids("In-Reply-To"), refs);
    }

    #[test]
    fn the_message_id_is_stable_per_outbox_key() {
        let (from, to) = (desk(), staff());
        let now = T0 + Duration::hours(25);
        let c = case("Key compromise");
        let make = |key: &str| {
            alert(
                &out(&from, &to, key, now),
                AlertLevel::Breach,
                &revocation(),
                Some(&c),
                None,
            )
            .unwrap()
        };
        let a = make("alert:revocation:crtsh:123:breach");
        let again = make("alert:revocation:crtsh:123:breach");
        let other = make("alert:revocation:crtsh:123:reminder:1");
        assert_eq!(a.message_id, again.message_id);
        assert_eq!(a.bytes, again.bytes, "the same message is the same bytes");
        assert_ne!(a.message_id, other.message_id);
        assert!(
            a.message_id.starts_with('<') && a.message_id.ends_with(".cprwatch@example-ca.test>"),
            "{}",
            a.message_id
        );
        assert_eq!(a.message_id.len(), "<.cprwatch@example-ca.test>".len() + 32);
        assert_eq!(
            message_id("alert:revocation:crtsh:123:breach", &from),
            a.message_id
        );
    }

    /// A hostile subject or display name (CR LF, then a header of its own) stays inside its
    /// header, and report markup shows as text in the HTML part.
    #[test]
    fn no_header_injection_through_subject_or_display_name() {
        let evil =
            "Key compromise\r\nBcc: victim@x.test\r\nX-Evil: 1\r\n\r\n<script>alert(1)</script>";
        let hostile_from: Mailbox = Mailbox::new(
            Some("Desk\r\nBcc: victim@x.test".into()),
            "cprwatch@example-ca.test".parse().unwrap(),
        );
        let to = staff();
        let c = case(evil);
        let mut facts = report();
        facts.subject = evil.into();
        facts.message_id = "<r1@reporter.test>\r\nBcc: victim@x.test".into();
        facts.references = vec!["<a@b>\r\nX-Evil: 1".into(), "<ok@reporter.test>".into()];
        let reply_to = ["rita@reporter.test".parse().unwrap()];
        for m in [
            alert(
                &out(&hostile_from, &to, "k", T0),
                AlertLevel::Warning,
                &revocation(),
                Some(&c),
                None,
            )
            .unwrap(),
            receipt(&out(&hostile_from, &reply_to, "r", T0), &facts, &c.id, None).unwrap(),
            digest(
                &out(&hostile_from, &to, "d", T0),
                &[(AlertLevel::Warning, &revocation(), Some(&c))],
                None,
            )
            .unwrap(),
            delivery_failure(
                &out(&hostile_from, &to, "f", T0),
                "<x@y>\r\nBcc: victim@x.test",
                &reply_to,
                "receipt\r\nX-Evil: 1",
                "550 no\r\nBcc: victim@x.test",
            )
            .unwrap(),
        ] {
            let r = Read::new(&m);
            let names = r.header_names();
            assert!(
                !names.iter().any(|n| n == "bcc" || n == "x-evil"),
                "{names:?}\n{}",
                r.raw
            );
            assert!(r.msg.bcc().is_none(), "{}", r.raw);
            assert!(r.msg.header("X-Evil").is_none(), "{}", r.raw);
            assert_eq!(r.msg.to().unwrap().iter().count(), 1);
            assert_eq!(
                r.msg.from().unwrap().first().unwrap().name(),
                Some("Desk\\r\\nBcc: victim@x.test")
            );
            let subject = r.msg.subject().unwrap_or_default();
            assert!(!subject.contains(['\r', '\n']), "{subject:?}");
            let html = r.html();
            assert!(!html.contains("<script>"), "{html}");
            assert!(
                !html.to_ascii_lowercase().contains("<a href=\"javascript"),
                "{html}"
            );
        }
        let m = alert(
            &out(&desk(), &to, "k", T0),
            AlertLevel::Warning,
            &revocation(),
            Some(&c),
            None,
        )
        .unwrap();
        let r = Read::new(&m);
        assert!(
            r.html().contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{}",
            r.html()
        );
        assert!(
            r.msg
                .subject()
                .unwrap()
                .contains("Key compromise\\r\\nBcc: victim@x.test"),
            "{:?}",
            r.msg.subject()
        );
        // The report's malformed ids are not carried into the receipt's threading headers.
        let m = receipt(&out(&desk(), &reply_to, "r", T0), &facts, &c.id, None).unwrap();
        let r = Read::new(&m);
        assert_eq!(r.ids("In-Reply-To"), Vec::<String>::new());
        assert_eq!(r.ids("References"), ["ok@reporter.test"]);
    }

    /// The whole way from a hostile report's bytes: an RFC 2047 subject and display name that
    /// decode to CR LF and a header.
    #[test]
    fn an_encoded_hostile_subject_and_name_in_a_report_stay_inert_in_the_receipt() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let raw = format!(
            "Received: from r by mx.example-ca.test; Mon, 02 Mar 2026 10:00:00 +0000\r\n\
             From: =?utf-8?b?{}?= <rita@reporter.test>\r\n\
             Subject: =?utf-8?b?{}?=\r\nMessage-ID: <r9@reporter.test>\r\nTo: cpr@example-ca.test\r\n\r\n\
             https://crt.sh/?id=42\r\n",
            b64("Rita\r\nBcc: victim@x.test"),
            b64("Report\r\nBcc: victim@x.test\r\nX-Evil: 1")
        );
        let policy = crate::reading::facts::Policy {
            staff: Default::default(),
            rules: crate::reading::rules::RuleSet::shipped(),
            limits: Default::default(),
            canary_keys: Vec::new(),
        };
        let meta = SourceMeta {
            folder: FolderRole::Inbox,
            position: None,
            server_time: None,
        };
        let facts = crate::reading::facts::message_facts(
            raw.as_bytes(),
            &"cd".repeat(32),
            &meta,
            &policy,
            T0,
        );
        // Decoded, the subject held CR LF; the facts keep it on one line already.
        assert_eq!(facts.subject, "Report Bcc: victim@x.test X-Evil: 1");
        let to: Address = facts.from.parse().unwrap();
        let m = receipt(
            &out(&desk(), std::slice::from_ref(&to), "receipt:x", T0),
            &facts,
            &CaseId::new(2026, 9),
            Some("https://cprwatch.example-ca.test/r/CPR-2026-0009.abc"),
        )
        .unwrap();
        let r = Read::new(&m);
        assert!(
            r.raw
                .contains("https://cprwatch.example-ca.test/r/CPR-2026-0009.abc"),
            "the receipt links the reporter's status page: {}",
            r.raw
        );
        let names = r.header_names();
        assert!(
            !names.iter().any(|n| n == "bcc" || n == "x-evil"),
            "{}",
            r.raw
        );
        assert_eq!(
            r.msg.subject(),
            Some("Re: Report Bcc: victim@x.test X-Evil: 1 [CPR-2026-0009]")
        );
        assert_eq!(r.msg.to().unwrap().first().unwrap().name(), None);
    }

    #[test]
    fn a_receipt_replies_to_the_report_and_says_what_it_is_not() {
        let to = ["rita@reporter.test".parse().unwrap()];
        let now = T0 + Duration::minutes(2);
        let m = receipt(
            &out(&desk(), &to, "receipt:ab", now),
            &report(),
            &CaseId::new(2026, 1),
            None,
        )
        .unwrap();
        let r = Read::new(&m);
        assert_eq!(r.msg.subject(), Some("Re: Key compromise [CPR-2026-0001]"));
        assert_eq!(r.ids("In-Reply-To"), ["r1@reporter.test"]);
        assert_eq!(
            r.ids("References"),
            [
                "first@reporter.test",
                "earlier@reporter.test",
                "r1@reporter.test"
            ]
        );
        assert_eq!(r.header("X-CPR-Case").as_deref(), Some("CPR-2026-0001"));
        assert_eq!(r.header("Auto-Submitted").as_deref(), Some("auto-replied"));
        assert_eq!(r.header("X-Cprwatch-Receipt").as_deref(), Some("yes"));
        assert_eq!(r.header("X-CPR-Level"), None);
        assert_eq!(
            r.msg.to().unwrap().first().unwrap().address(),
            Some("rita@reporter.test")
        );
        let text = r.text();
        for want in [
            "2026-03-02T10:00:00Z (UTC)",
            "<r1@reporter.test>",
            "https://crt.sh/?id=123",
            "within 24 hours",
            "2026-03-03T10:00:00Z (UTC)",
            "4.9.5",
            "It is not that preliminary report",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        assert!(!text.contains("none recognised"), "{text}");
        assert!(
            r.html().contains("&lt;r1@reporter.test&gt;"),
            "{}",
            r.html()
        );
    }

    #[test]
    fn a_receipt_says_when_nothing_was_recognised() {
        let to = ["rita@reporter.test".parse().unwrap()];
        let mut f = report();
        f.certificates.clear();
        let m = receipt(&out(&desk(), &to, "r", T0), &f, &CaseId::new(2026, 1), None).unwrap();
        let text = Read::new(&m).text();
        assert!(
            text.contains("none recognised — please send crt.sh links or the certificate"),
            "{text}"
        );
        f.keys.push(KeyRef {
            reference: Some(format!("spki:{SPKI}")),
            evidence: KeyEvidence::Csr,
            algorithm: None,
        });
        let m = receipt(&out(&desk(), &to, "r", T0), &f, &CaseId::new(2026, 1), None).unwrap();
        let text = Read::new(&m).text();
        assert!(!text.contains("none recognised"), "{text}");
        assert!(
            text.contains(&format!("https://crt.sh/?spkisha256={SPKI}")),
            "{text}"
        );
    }

    #[test]
    fn a_receipt_subject_gets_one_re_and_one_case_tag() {
        let to = ["rita@reporter.test".parse().unwrap()];
        let subject_of = |s: &str| {
            let mut f = report();
            f.subject = s.into();
            let m = receipt(&out(&desk(), &to, "r", T0), &f, &CaseId::new(2026, 1), None).unwrap();
            Read::new(&m).msg.subject().unwrap().to_string()
        };
        assert_eq!(
            subject_of("RE: Key compromise"),
            "RE: Key compromise [CPR-2026-0001]"
        );
        assert_eq!(subject_of("re: x [cpr-2026-0001]"), "re: x [cpr-2026-0001]");
        assert_eq!(subject_of("Key [CPR-2026-0001]"), "Re: Key [CPR-2026-0001]");
        assert_eq!(subject_of("Report: key"), "Re: Report: key [CPR-2026-0001]");
        assert_eq!(subject_of(""), "Re: your problem report [CPR-2026-0001]");
        let long = subject_of(&"x".repeat(500));
        assert!(long.chars().count() < 160, "{long}");
    }

    #[test]
    fn a_receipt_for_a_message_without_message_id_leaves_the_synthetic_id_out() {
        let to = ["rita@reporter.test".parse().unwrap()];
        let mut f = report();
        f.synthetic_id = true;
        f.message_id = crate::reading::facts::synthetic_message_id(&f.content_hash);
        f.references.clear();
        let m = receipt(&out(&desk(), &to, "r", T0), &f, &CaseId::new(2026, 1), None).unwrap();
        let r = Read::new(&m);
        assert_eq!(r.msg.header("In-Reply-To"), None);
        assert_eq!(r.msg.header("References"), None);
        assert!(!r.raw.contains("cprwatch.invalid"), "{}", r.raw);
    }

    #[test]
    fn a_checkpoint_mail_carries_each_checkpoint_as_a_line_verify_reads_back() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let list = [
            crate::evidence::sign(&key, 3, &"a".repeat(64), T0),
            crate::evidence::sign(&key, 9, &"b".repeat(64), T0 + Duration::hours(1)),
        ];
        let m = checkpoints(&out(&desk(), &staff(), "checkpoints/x/1", T0), &list).unwrap();
        let r = Read::new(&m);
        assert_eq!(r.header("X-CPR-Level").as_deref(), Some("digest"));
        assert!(
            r.header("Subject")
                .unwrap()
                .contains("2 signed checkpoints")
        );
        assert_eq!(crate::evidence::parse_lines(&r.text()), list);
    }

    #[test]
    fn a_digest_lists_one_line_per_alert_and_names_a_case_only_when_shared() {
        let (from, to) = (desk(), staff());
        let now = T0 + Duration::hours(30);
        let c1 = case("First");
        let mut c2 = case("Second");
        c2.id = CaseId::new(2026, 2);
        let rev = revocation();
        let pre = preliminary();
        let m = digest(
            &out(&from, &to, "digest:1", now),
            &[
                (AlertLevel::Breach, &rev, Some(&c1)),
                (AlertLevel::Reminder, &pre, Some(&c1)),
            ],
            Some(DASHBOARD),
        )
        .unwrap();
        let r = Read::new(&m);
        assert_eq!(r.header("X-CPR-Level").as_deref(), Some("digest"));
        assert_eq!(r.header("X-CPR-Case").as_deref(), Some("CPR-2026-0001"));
        assert_eq!(r.header("X-CPR-Clock"), None);
        assert_eq!(
            r.ids("References"),
            ["case.CPR-2026-0001.cprwatch@example-ca.test"]
        );
        let text = r.text();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("BREACH") || l.starts_with("REMINDER"))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].contains("crtsh:123") && lines[0].contains("overdue by 6h 0m"),
            "{text}"
        );
        assert!(lines[1].contains("preliminary_report"), "{text}");
        assert!(
            r.html().contains("<a href=\"https://crt.sh/?id=123\">"),
            "{}",
            r.html()
        );

        let m = digest(
            &out(&from, &to, "digest:2", now),
            &[
                (AlertLevel::Breach, &rev, Some(&c1)),
                (AlertLevel::Breach, &rev, Some(&c2)),
            ],
            None,
        )
        .unwrap();
        let r = Read::new(&m);
        assert_eq!(r.header("X-CPR-Case"), None);
        assert_eq!(r.msg.header("References"), None);
        assert!(
            r.msg
                .subject()
                .unwrap()
                .starts_with("[cprwatch] DIGEST 2 alerts, 2 breached")
        );
    }

    #[test]
    fn a_delivery_failure_shows_the_server_text_escaped() {
        let (from, to) = (desk(), staff());
        let failed: Vec<Address> = vec!["rita@reporter.test".parse().unwrap()];
        let m = delivery_failure(
            &out(&from, &to, "delivery:<x@y>", T0),
            "<abc.cprwatch@example-ca.test>",
            &failed,
            "receipt",
            "mx answered 550 5.1.1 <rita@reporter.test>: <script>x</script>\r\nuser unknown",
        )
        .unwrap();
        let r = Read::new(&m);
        assert_eq!(r.header("X-CPR-Level").as_deref(), Some("delivery"));
        assert_eq!(
            r.header("Auto-Submitted").as_deref(),
            Some("auto-generated")
        );
        assert_eq!(
            r.msg.subject(),
            Some("[cprwatch] DELIVERY FAILED receipt to rita@reporter.test")
        );
        let text = r.text();
        assert!(text.contains("<abc.cprwatch@example-ca.test>"), "{text}");
        assert!(text.contains("550 5.1.1"), "{text}");
        assert!(text.contains("</script>\\r\\nuser unknown"), "{text}");
        let html = r.html();
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
    }

    #[test]
    fn no_recipient_is_an_error() {
        let from = desk();
        let e = alert(
            &out(&from, &[], "k", T0),
            AlertLevel::Breach,
            &revocation(),
            None,
            None,
        )
        .unwrap_err();
        assert!(matches!(e, ComposeError::NoRecipient), "{e}");
    }

    /// A report that carried a private key: the receipt and the alert name the key by its
    /// SPKI hash and never hold any of the key.
    #[test]
    fn no_key_material_from_a_report_reaches_any_message() {
        let raw = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/scenarios/revocation/inbox/04-shop-key.eml"
        ))
        .unwrap();
        let text = String::from_utf8_lossy(&raw);
        let key_lines: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        assert!(key_lines.len() > 5);
        let policy = crate::reading::facts::Policy {
            staff: Default::default(),
            rules: crate::reading::rules::RuleSet::shipped(),
            limits: Default::default(),
            canary_keys: Vec::new(),
        };
        let meta = SourceMeta {
            folder: FolderRole::Inbox,
            position: None,
            server_time: None,
        };
        let facts =
            crate::reading::facts::message_facts(&raw, &"ef".repeat(32), &meta, &policy, T0);
        assert!(
            facts
                .keys
                .iter()
                .any(|k| k.evidence == KeyEvidence::PrivateKey),
            "{:?}",
            facts.keys
        );
        let to = [facts.from.parse().unwrap()];
        let r = receipt(
            &out(&desk(), &to, "r", T0),
            &facts,
            &CaseId::new(2026, 3),
            None,
        )
        .unwrap();
        let mut c = case("Compromised private key");
        c.keys = facts.keys.clone();
        c.certificates = facts.certificates.clone();
        let a = alert(
            &out(&desk(), &staff(), "a", T0),
            AlertLevel::Warning,
            &revocation(),
            Some(&c),
            None,
        )
        .unwrap();
        for m in [r, a] {
            let read = Read::new(&m);
            let all = format!("{}\n{}\n{}", read.raw, read.text(), read.html());
            assert!(!all.contains("BEGIN"), "{all}");
            for l in &key_lines {
                assert!(!all.contains(&l[..24]), "key line {l} in\n{all}");
            }
            assert!(read.text().contains("a private key"), "{}", read.text());
        }
    }
}
