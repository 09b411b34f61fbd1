//! What a mail says (temporary plain form, replaced by the full composer).

use crate::deciding::alerts::AlertLevel;
use crate::deciding::cases::Case;
use crate::deciding::clock::Clock;
use crate::domain::model::Timestamp;
use crate::store::OutboxRow;

pub(crate) struct Composed {
    pub message_id: String,
    pub bytes: Vec<u8>,
}

fn message(
    from: &str,
    to: &[String],
    key: &str,
    subject: &str,
    extra: &str,
    body: &str,
    now: Timestamp,
) -> Composed {
    let domain = from.rsplit('@').next().unwrap_or("cprwatch.invalid");
    let message_id = format!(
        "<{}.cprwatch@{domain}>",
        &crate::store::chain::content_hash(key.as_bytes())[..32]
    );
    let bytes = format!(
        "From: {from}\r\nTo: {}\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\nDate: {}\r\nX-Cprwatch-Receipt: yes\r\nAuto-Submitted: auto-generated\r\n{extra}\r\n{body}\r\n",
        to.join(", "),
        now.format(&time::format_description::well_known::Rfc2822).unwrap_or_default()
    )
    .into_bytes();
    Composed { message_id, bytes }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn alert(
    from: &str,
    to: &[String],
    key: &str,
    level: AlertLevel,
    clock: &Clock,
    case: Option<&Case>,
    _dashboard_url: Option<&str>,
    now: Timestamp,
) -> Composed {
    let mut extra = format!(
        "X-CPR-Level: {}\r\nX-CPR-Clock: {}\r\n",
        level.as_str(),
        clock.id
    );
    if let Some(c) = case {
        extra.push_str(&format!(
            "X-CPR-Case: {}\r\nReferences: <case.{}@cprwatch>\r\n",
            c.id, c.id
        ));
    }
    let body = format!(
        "{key}\r\n{}\r\nwarn_before {}",
        case.map(|c| c.subject.clone()).unwrap_or_default(),
        (clock.deadline - now).whole_hours()
    );
    message(
        from,
        to,
        key,
        &format!("[cprwatch] {} {}", level.as_str(), clock.id),
        &extra,
        &body,
        now,
    )
}

pub(crate) fn digest(
    from: &str,
    to: &[String],
    key: &str,
    items: &[(AlertLevel, &Clock, Option<&Case>)],
    now: Timestamp,
) -> Composed {
    let lines: Vec<String> = items
        .iter()
        .map(|(l, c, case)| {
            format!(
                "{} {} {}",
                l.as_str(),
                c.id,
                case.map(|c| c.subject.clone()).unwrap_or_default()
            )
        })
        .collect();
    message(
        from,
        to,
        key,
        "[cprwatch] digest",
        "X-CPR-Level: digest\r\n",
        &lines.join("\r\n"),
        now,
    )
}

pub(crate) fn delivery_failure(
    from: &str,
    to: &[String],
    key: &str,
    failed: &OutboxRow,
    _error: &str,
    now: Timestamp,
) -> Composed {
    message(
        from,
        to,
        key,
        "[cprwatch] delivery failed",
        "X-CPR-Level: delivery\r\n",
        &failed.message_id,
        now,
    )
}
