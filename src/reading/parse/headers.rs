//! The top-level header fields the pipeline needs: identity, threading, time and the markers that
//! decide whether a message is automatic (RFC 3834) or one of our own receipts.

use super::dates;
use super::note;
use crate::domain::model::ParsedMail;
use crate::reading::limits::{self, Limits, TRUNCATED};
use mail_parser::{Address, Header, HeaderName, HeaderValue, Message, MimeHeaders};

/// Fill every header-derived field of `out` from the top-level headers of `msg`. `raw` is the
/// input the message was parsed from: header offsets point into it.
///
/// No field keeps more than `limits.header_bytes`: the subject is cut, lists keep the entries
/// that fit (a note says so), because every field ends up in the event log and in views.
pub(crate) fn fill(msg: &Message<'_>, raw: &[u8], out: &mut ParsedMail, limits: &Limits) {
    let max = limits.header_bytes;
    out.message_id = msg
        .message_id()
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(|id| bracket(limits::prefix(id, max)));
    out.from = msg
        .from()
        .and_then(|a| addresses(a).into_iter().next())
        .map(|a| limits::prefix(&a, max).to_string());
    out.reply_to = msg.reply_to().map(addresses).unwrap_or_default();
    out.to = msg.to().map(addresses).unwrap_or_default();
    out.cc = msg.cc().map(addresses).unwrap_or_default();
    let subject = msg.subject().unwrap_or_default();
    if subject.len() > max {
        out.problems.push(format!(
            "{TRUNCATED} the Subject is {} bytes; only the first {max} were kept (limits.header_bytes)",
            subject.len()
        ));
    }
    out.subject = unfold(limits::prefix(subject, max));

    let headers = msg.headers();
    let has_date = headers.iter().any(|h| h.name == HeaderName::Date);
    out.date = msg.date().and_then(dates::from_mail);
    if has_date && out.date.is_none() {
        out.problems
            .push("Date: header present but unreadable".into());
    }

    out.in_reply_to = ids(msg, HeaderName::InReplyTo);
    out.references = ids(msg, HeaderName::References);
    for (name, list, keep_last) in [
        ("Reply-To", &mut out.reply_to, false),
        ("To", &mut out.to, false),
        ("Cc", &mut out.cc, false),
        ("In-Reply-To", &mut out.in_reply_to, true),
        // The last ids are the nearest ancestors, the ones most likely recorded.
        ("References", &mut out.references, true),
    ] {
        let dropped = cap_list(list, max, keep_last);
        if dropped > 0 {
            out.problems.push(format!(
                "{TRUNCATED} {dropped} entries of {name}: beyond {max} bytes not kept (limits.header_bytes)"
            ));
        }
    }

    let mut seen_received = false;
    let mut seen_return_path = false;
    // authserv-ids whose verdict was already seen (top = newest).
    let mut verdicts_seen: std::collections::HashSet<String> = Default::default();
    // Bytes of verdicts read so far, and verdicts left unread past `max`.
    let (mut verdict_bytes, mut verdicts_dropped) = (0usize, 0usize);
    for h in headers {
        match &h.name {
            HeaderName::Received if !seen_received => {
                let value = raw_value(raw, h);
                seen_received = true;
                out.received_top = dates::received_date(&value);
                if out.received_top.is_none() {
                    out.problems.push(format!(
                        "topmost Received: header has no readable date: {}",
                        note::excerpt(&value)
                    ));
                }
            }
            HeaderName::ReturnPath if !seen_return_path => {
                seen_return_path = true;
                let value = raw_value(raw, h);
                let bare: String = value.chars().filter(|c| !c.is_whitespace()).collect();
                out.null_sender = bare == "<>";
            }
            HeaderName::AuthenticationResults => {
                // The receiving server adds one verdict, on top of what the message already
                // carried; another one further down claiming the same authserv-id was in the
                // message before that server saw it: the sender wrote it (RFC 8601 §5).
                // The real ones are on top: what lies below `max` bytes of them is the
                // sender's, and not read.
                if verdict_bytes > max {
                    verdicts_dropped += 1;
                    continue;
                }
                let value = raw_value(raw, h);
                verdict_bytes += value.len();
                let authserv = authserv_id(&value);
                if verdicts_seen.contains(&authserv) {
                    out.problems.push(format!(
                        "a second Authentication-Results claiming {authserv} below its own: ignored as forged"
                    ));
                } else {
                    verdicts_seen.insert(authserv);
                    out.authentication_results.push(value);
                }
            }
            HeaderName::AutoSubmitted if out.auto_submitted.is_none() => {
                out.auto_submitted =
                    Some(first_token(&raw_value(raw, h))).filter(|t| !t.is_empty());
            }
            HeaderName::ListId => {
                out.bulk.get_or_insert_with(|| "list-id".into());
            }
            HeaderName::Other(name) => {
                let name = name.as_ref();
                if ["x-autoreply", "x-autorespond", "x-autoresponder"]
                    .iter()
                    .any(|n| name.eq_ignore_ascii_case(n))
                {
                    out.autoreply_marks = true;
                } else if name.eq_ignore_ascii_case("precedence") {
                    let value = first_token(&raw_value(raw, h));
                    if value == "auto_reply" {
                        out.autoreply_marks = true;
                    } else if matches!(value.as_str(), "bulk" | "list" | "junk") {
                        out.bulk.get_or_insert(format!("precedence:{value}"));
                    }
                } else if name.eq_ignore_ascii_case("x-cprwatch-receipt") {
                    out.cprwatch_receipt = true;
                } else if name.eq_ignore_ascii_case("x-cpr-canary") && out.canary.is_none() {
                    out.canary = Some(raw_value(raw, h));
                }
            }
            _ => {}
        }
    }

    if verdicts_dropped > 0 {
        out.problems.push(format!(
            "{TRUNCATED} {verdicts_dropped} Authentication-Results headers below the first {max} bytes of them not read (limits.header_bytes)"
        ));
    }

    out.is_report_mime = msg.is_content_type("multipart", "report");
}

/// The header's value exactly as written (folding kept), trimmed; lossy on bad bytes.
fn raw_value(raw: &[u8], h: &Header<'_>) -> String {
    let bytes = raw
        .get(h.offset_start as usize..h.offset_end as usize)
        .unwrap_or_default();
    String::from_utf8_lossy(bytes).trim().to_string()
}

/// The first token of a keyword header (`Auto-Submitted`, `Precedence`), lowercased: what
/// comes before a `;`, a comment or whitespace.
fn first_token(value: &str) -> String {
    value
        .split(|c: char| c == ';' || c == '(' || c.is_whitespace())
        .find(|t| !t.is_empty())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Keep the entries of `list` (its first ones, or with `keep_last` its last ones) that fit in
/// `max` bytes together; returns how many were dropped.
fn cap_list(list: &mut Vec<String>, max: usize, keep_last: bool) -> usize {
    let mut total = 0;
    let fits = |s: &String, total: &mut usize| {
        *total += s.len();
        *total <= max
    };
    let keep = if keep_last {
        list.iter()
            .rev()
            .take_while(|s| fits(s, &mut total))
            .count()
    } else {
        list.iter().take_while(|s| fits(s, &mut total)).count()
    };
    let dropped = list.len() - keep;
    if keep_last {
        list.drain(..dropped);
    } else {
        list.truncate(keep);
    }
    dropped
}

/// Lowercase bare addresses, groups flattened, empty entries dropped.
pub(crate) fn addresses(a: &Address<'_>) -> Vec<String> {
    a.iter()
        .filter_map(|addr| addr.address.as_deref())
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Every message id in every header called `name`, with angle brackets.
fn ids(msg: &Message<'_>, name: HeaderName<'static>) -> Vec<String> {
    let mut out = Vec::new();
    for value in msg.header_values(name) {
        match value {
            HeaderValue::Text(id) => out.push(bracket(id)),
            HeaderValue::TextList(list) => out.extend(list.iter().map(|id| bracket(id))),
            _ => {}
        }
    }
    out.retain(|id| id != "<>");
    out
}

fn bracket(id: &str) -> String {
    let id = id.trim().trim_start_matches('<').trim_end_matches('>');
    format!("<{id}>")
}

/// mail-parser already removes CRLF folding from unstructured fields; this also collapses the
/// whitespace runs folding leaves behind, so `Re:\r\n\t x` and `Re: x` compare equal.
fn unfold(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The authserv-id of an `Authentication-Results:` value (RFC 8601: the first token), lowercased.
fn authserv_id(value: &str) -> String {
    value
        .split(|c: char| c == ';' || c.is_whitespace())
        .find(|t| !t.is_empty())
        .unwrap_or("")
        .to_ascii_lowercase()
}
