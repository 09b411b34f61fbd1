//! From raw bytes to [`MessageFacts`]: parse, find references and commands, classify, decide
//! receipt time and staff authorship. Pure: `now` is an argument.

use crate::deciding::canary;
use crate::domain::event::{Automation, MessageFacts};
use crate::domain::model::{FolderRole, ParsedMail, RuleHit, SourceMeta, TimeSource, Timestamp};
use crate::domain::timefmt;
use crate::reading::limits::{self, Limits};
use crate::reading::rules::RuleSet;
use crate::reading::staff::{self, StaffPolicy};
use crate::reading::{extract, parse};

/// What the desk's configuration decides about every message.
#[derive(Clone)]
pub struct Policy {
    pub staff: StaffPolicy,
    pub rules: RuleSet,
    /// How much of one message is searched (`[limits]`).
    pub limits: Limits,
    /// The keys of the mailbox canaries' tokens (`[[canary]] secret_*`): a message is a canary
    /// only when its token verifies under one.
    pub canary_keys: Vec<Vec<u8>>,
}

/// A Message-Id for a message that has none, stable across re-reads: derived from the content,
/// so reading the same bytes again (a restart, another folder) names the same message.
pub(crate) fn synthetic_message_id(content_hash: &str) -> String {
    format!(
        "<sha256-{}@cprwatch.invalid>",
        &content_hash[..32.min(content_hash.len())]
    )
}

/// Everything the pipeline learns from one message.
pub(crate) fn message_facts(
    raw: &[u8],
    content_hash: &str,
    meta: &SourceMeta,
    policy: &Policy,
    now: Timestamp,
) -> MessageFacts {
    let mail = parse::parse_limited(raw, &policy.limits);
    let mut problems = mail.problems.clone();
    if !mail.parsed_ok {
        problems.push("the message could not be parsed as RFC 5322 mail; recorded as received and searched as plain text".into());
    }
    let (received_at, time_source) = receipt_time(&mail, meta, now, &mut problems);
    let mut found = extract::mail_references(&mail, &policy.limits);
    if meta.position.as_ref().is_some_and(|p| p.is_key_lookup()) {
        lookup_ids(&mail, &mut found.certificates);
    }
    problems.extend(found.problems);
    let (commands, bad_commands) = extract::commands(&mail.texts);
    let rules = classify(policy, &mail, &mut problems);
    // A dashboard action is staff by who was logged in, and a revocation check's record by
    // being the checker's, never by what its message says.
    let staff = match meta.position.as_ref() {
        Some(p) if p.is_revocation_check() => Some("revocation check".to_string()),
        Some(p) if p.is_key_lookup() => None,
        Some(p) if p.web_user().is_some() => p.web_user().map(|u| format!("web user {u}")),
        _ => staff::staff_proof(&mail, meta.folder, &policy.staff),
    };
    let canary = canary_of(&mail, &policy.canary_keys);
    let (message_id, synthetic_id) = match &mail.message_id {
        Some(id) => (id.clone(), false),
        None => {
            problems
                .push("no Message-Id: a synthetic one was derived from the content hash".into());
            (synthetic_message_id(content_hash), true)
        }
    };
    MessageFacts {
        content_hash: content_hash.to_string(),
        size: raw.len() as u64,
        message_id,
        synthetic_id,
        folder: meta.folder,
        position: meta.position.clone(),
        received_at,
        time_source,
        date_header: mail.date,
        from: mail.from.clone().unwrap_or_default(),
        reply_to: mail.reply_to.clone(),
        to: mail.to.clone(),
        cc: mail.cc.clone(),
        subject: mail.subject.clone(),
        in_reply_to: mail.in_reply_to.clone(),
        references: mail.references.clone(),
        automation: match canary {
            Some((_, false)) => Automation::Canary,
            _ => automation(&mail),
        },
        canary: canary.map(|(id, _)| id),
        bulk: mail.bulk.clone(),
        staff,
        certificates: found.certificates,
        keys: found.keys,
        rules,
        commands,
        bad_commands,
        parsed_ok: mail.parsed_ok,
        problems,
    }
}

/// A lookup of cprwatch's own names each certificate it fetched by crt.sh id in its
/// attachment's name (`certificate-<id>.pem`): the certificate is that id too, so the fetched
/// details join the reference a report gave (`crtsh:<id>`). Only the checker makes lookup
/// positions, so no reporter's file name can join two certificates.
fn lookup_ids(mail: &ParsedMail, certificates: &mut [crate::domain::model::CertificateRef]) {
    for a in &mail.attachments {
        let Some(id) = a
            .name
            .as_deref()
            .and_then(|n| n.strip_prefix("certificate-")?.strip_suffix(".pem"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let Some(der) = std::str::from_utf8(&a.data)
            .ok()
            .and_then(|t| extract::pem::blocks(t).into_iter().find_map(|b| b.der))
        else {
            continue;
        };
        let sha = extract::key::sha256_hex(&der);
        for c in certificates.iter_mut() {
            if c.sha256.as_deref() == Some(sha.as_str()) {
                c.crtsh_id = Some(id);
            }
        }
    }
}

/// The rules that match the report's wording, read from the first `limits.classify_bytes` of
/// its text (a note says when that was not all of it, and then only 24-hour readings count).
fn classify(policy: &Policy, mail: &ParsedMail, problems: &mut Vec<String>) -> Vec<RuleHit> {
    let max = policy.limits.classify_bytes;
    let total = mail.subject.len() + mail.texts.iter().map(String::len).sum::<usize>();
    if total <= max {
        return policy.rules.classify(&mail.subject, &mail.texts);
    }
    let (subject, texts, cut) = limits::texts_prefix(&mail.subject, &mail.texts, max);
    problems.push(format!(
        "{} the rules read the first {max} bytes of text for the report's wording; {cut} more not read (limits.classify_bytes), so only 24-hour readings count",
        limits::TRUNCATED
    ));
    // What was not read may hold evidence for a shorter window: a longer reading of the part
    // that was read does not prove the report is not a 24-hour one, so only 24-hour readings
    // are kept (no reading at all gives 24 hours too).
    let mut hits = policy.rules.classify(&subject, &texts);
    hits.retain(|h| h.window_secs <= crate::deciding::clock::DAY.whole_seconds());
    hits
}

/// The CA's receipt time, not the sender's: the BR clocks run from when the CA received a report
/// (README "How clocks work", **Receipt time**). The server's own time first, then
/// the topmost `Received:` (the CA's MX), then `Date:` (flagged), then first sight. For the
/// desk's Sent folder the `Date:` is the desk's own and is trusted. A time in the future is the
/// sign of a wrong clock somewhere; it is capped at `now` so no clock starts late.
fn receipt_time(
    mail: &ParsedMail,
    meta: &SourceMeta,
    now: Timestamp,
    problems: &mut Vec<String>,
) -> (Timestamp, TimeSource) {
    let (t, source) = if let Some(t) = meta.server_time {
        (t, TimeSource::ServerTime)
    } else if meta.folder == FolderRole::Sent {
        match (mail.date, mail.received_top) {
            (Some(d), _) => (d, TimeSource::Date),
            (None, Some(r)) => (r, TimeSource::Received),
            (None, None) => (now, TimeSource::FirstSeen),
        }
    } else if let Some(r) = mail.received_top {
        (r, TimeSource::Received)
    } else if let Some(d) = mail.date {
        problems.push(
            "no Received: header: receipt time taken from the sender's Date: header (untrusted)"
                .into(),
        );
        (d, TimeSource::Date)
    } else {
        problems.push(
            "no Received: or Date: header: receipt time is when cprwatch first saw the message"
                .into(),
        );
        (now, TimeSource::FirstSeen)
    };
    let t = timefmt::normalize(t);
    if t > now {
        problems.push(format!(
            "receipt time {} is in the future; capped at {}",
            timefmt::format(t),
            timefmt::format(now)
        ));
        return (now, source);
    }
    (t, source)
}

/// The canary a message is (`false`: its own header verifies), or a bounce of (`true`: a
/// delivery report quoting a canary whose token verifies).
fn canary_of(mail: &ParsedMail, keys: &[Vec<u8>]) -> Option<(String, bool)> {
    if keys.is_empty() {
        return None;
    }
    let header = mail
        .canary
        .as_deref()
        .and_then(|v| canary::verified(keys, &format!("{}: {v}", canary::HEADER)));
    if let Some(id) = header
        && !mail.is_report_mime
    {
        return Some((id, false));
    }
    if automation(mail) == Automation::Bounce {
        return mail
            .texts
            .iter()
            .find_map(|t| canary::verified(keys, t))
            .map(|id| (id, true));
    }
    None
}

/// RFC 3834 and common practice: what kind of automatic message this is, if any.
fn automation(mail: &ParsedMail) -> Automation {
    let from_daemon = mail.from.as_deref().is_some_and(|f| {
        let local = f.split('@').next().unwrap_or("");
        local.eq_ignore_ascii_case("mailer-daemon")
    });
    if mail.cprwatch_receipt {
        Automation::Receipt
    } else if mail.null_sender || mail.is_report_mime || from_daemon {
        Automation::Bounce
    } else if mail.autoreply_marks || mail.auto_submitted.as_deref() == Some("auto-replied") {
        Automation::AutoReplied
    } else if mail.auto_submitted.as_deref().is_some_and(|v| v != "no") {
        Automation::AutoGenerated
    } else {
        Automation::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::limits::Limits;
    use crate::reading::staff::StaffPolicy;

    fn policy(classify_bytes: usize) -> Policy {
        Policy {
            staff: StaffPolicy {
                staff_domains: vec![],
                staff_addresses: vec![],
                trusted_authserv_ids: vec![],
            },
            rules: RuleSet::shipped(),
            limits: Limits {
                classify_bytes,
                ..Limits::default()
            },
            canary_keys: Vec::new(),
        }
    }

    /// Only a token made with the desk's key makes a message a canary (a reporter writing the
    /// header gets a case like anyone), and a delivery report quoting a canary is its bounce.
    #[test]
    fn a_canary_is_known_by_its_verified_token_and_so_is_its_bounce() {
        let key = b"canary key".to_vec();
        let mut p = policy(1 << 20);
        p.canary_keys = vec![key.clone()];
        let id = canary::id(
            "cpr@example-ca.test",
            time::macros::datetime!(2026-03-02 10:00 UTC),
        );
        let line = canary::header_value(&key, &id);
        let meta = SourceMeta {
            folder: FolderRole::Inbox,
            position: None,
            server_time: None,
        };
        let now = time::macros::datetime!(2026-03-02 10:01 UTC);
        let mail = |header: &str| {
            format!(
                "From: cprwatch@example-ca.test\r\nSubject: test\r\nMessage-ID: <c@x>\r\n\
                 X-CPR-Canary: {header}\r\n\r\nhttps://crt.sh/?id=42\r\n"
            )
        };
        let f = message_facts(mail(&line).as_bytes(), "h1", &meta, &p, now);
        assert_eq!(f.automation, Automation::Canary);
        assert_eq!(f.canary.as_deref(), Some(id.as_str()));
        let forged = format!("{id} {}", "0".repeat(32));
        let f = message_facts(mail(&forged).as_bytes(), "h2", &meta, &p, now);
        assert_eq!(f.automation, Automation::None, "a forged token is a report");
        assert_eq!(f.canary, None);
        let dsn = format!(
            "From: MAILER-DAEMON@mx.example-ca.test\r\nSubject: Undelivered Mail Returned to Sender\r\n\
             Message-ID: <dsn@x>\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nThe mail system could not deliver it.\r\n\
             --b\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: cprwatch@example-ca.test\r\n\
             X-CPR-Canary: {line}\r\n\r\n--b--\r\n"
        );
        let f = message_facts(dsn.as_bytes(), "h3", &meta, &p, now);
        assert_eq!(f.automation, Automation::Bounce);
        assert_eq!(f.canary.as_deref(), Some(id.as_str()));
    }

    /// A report sent through a mailing list is recorded as bulk (so it gets no receipt) and
    /// is still a report: the cases and clocks do not depend on the mark.
    #[test]
    fn list_mail_is_marked_bulk_and_still_opens_a_case() {
        let raw = "Received: from r by mx.example-ca.test; Mon, 02 Mar 2026 10:00:00 +0000\r\n\
From: r@reporter.test\r\nSubject: Key compromise\r\nMessage-ID: <l@reporter.test>\r\n\
List-Id: <cpr-forward.lists.example>\r\n\r\nKey compromised: https://crt.sh/?id=42\r\n";
        let meta = SourceMeta {
            folder: FolderRole::Inbox,
            position: None,
            server_time: None,
        };
        let now = timefmt::parse("2026-03-02T10:05:00Z").unwrap();
        let bulk = message_facts(raw.as_bytes(), "h", &meta, &policy(1 << 20), now);
        assert_eq!(bulk.bulk.as_deref(), Some("list-id"));
        let plain = MessageFacts {
            bulk: None,
            ..bulk.clone()
        };
        let project = |m: &MessageFacts| {
            let p = crate::deciding::cases::project(
                std::slice::from_ref(m),
                &Default::default(),
                &Default::default(),
            );
            assert_eq!(p.cases.len(), 1, "{p:?}");
            format!("{p:?}")
        };
        assert_eq!(project(&bulk), project(&plain));
        // Absent from the log when not set, so logs written before read the same.
        let json = serde_json::to_string(&plain).unwrap();
        assert!(!json.contains("bulk"), "{json}");
        let back: MessageFacts = serde_json::from_str(&json).unwrap();
        assert_eq!(back, plain);
        let json = serde_json::to_string(&bulk).unwrap();
        assert!(json.contains(r#""bulk":"list-id""#), "{json}");
        assert_eq!(serde_json::from_str::<MessageFacts>(&json).unwrap(), bulk);
    }

    /// Text the rules did not read may hold evidence for 24 hours: a 5-day reading of the rest
    /// must not give the report 5 days.
    #[test]
    fn when_the_rules_read_part_of_a_report_only_24_hour_readings_count() {
        let raw = format!(
            "From: r@reporter.test\r\nSubject: Report\r\nMessage-ID: <t@reporter.test>\r\n\r\n\
             This certificate is misissued: the CN is not in the SAN.\r\n{}\r\n",
            "Padding line of an ordinary report.\r\n".repeat(200)
        );
        let meta = SourceMeta {
            folder: FolderRole::Inbox,
            position: None,
            server_time: None,
        };
        let now = timefmt::parse("2026-03-02T10:00:00Z").unwrap();
        let all = message_facts(raw.as_bytes(), "h", &meta, &policy(1 << 20), now);
        assert!(
            all.rules.iter().any(|h| h.id == "misissuance"),
            "{:?}",
            all.rules
        );
        let part = message_facts(raw.as_bytes(), "h", &meta, &policy(1000), now);
        assert!(part.rules.is_empty(), "{:?}", part.rules);
        assert!(
            part.problems
                .iter()
                .any(|p| p.contains("only 24-hour readings count")),
            "{:?}",
            part.problems
        );
    }
}
