//! Every part of a message → `texts` and `attachments`.
//!
//! A reference can hide anywhere: an HTML-only alternative, a base64 text part, a CSV attachment,
//! a forwarded message three levels deep. So every part is searched, not just the "body" a mail
//! client would display, and what cannot be decoded cleanly is still kept (lossy) with a note.

use super::qp::{self, Escapes};
use super::{html, note};
use crate::domain::model::{Attachment, ParsedMail};
use crate::reading::limits::{self, Limits, TRUNCATED};
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::{Message, MessagePart, MimeHeaders, PartType};
use std::borrow::Cow;

/// What is left of a message's [`Limits`] while its parts are walked, and what was cut. Cutting
/// here, before text and attachments are copied out of the parser, bounds memory as well as the
/// search that follows.
pub(super) struct Budget<'l> {
    limits: &'l Limits,
    text_left: usize,
    attachment_left: usize,
    parts_left: usize,
    /// Bytes of text and of attachments not kept, and parts not walked.
    text_cut: usize,
    attachment_cut: usize,
    parts_cut: usize,
}

impl<'l> Budget<'l> {
    pub(super) fn new(limits: &'l Limits) -> Budget<'l> {
        Budget {
            limits,
            text_left: limits.text_bytes,
            attachment_left: limits.attachment_bytes,
            parts_left: limits.parts,
            text_cut: 0,
            attachment_cut: 0,
            parts_cut: 0,
        }
    }

    /// Keep as much of `text` as the text budget allows.
    pub(super) fn push_text(&mut self, out: &mut ParsedMail, text: Cow<'_, str>) {
        // Whitespace and control characters only (a message of NUL bytes): nothing to search.
        if text.chars().all(|c| c.is_whitespace() || c.is_control()) {
            return;
        }
        let kept = limits::prefix(&text, self.text_left).len();
        self.text_cut += text.len() - kept;
        self.text_left -= kept;
        if kept == text.len() {
            out.texts.push(text.into_owned());
        } else if kept > 0 {
            out.texts.push(text[..kept].to_string());
        }
    }

    /// Bytes as lossy text, cut to the text budget before they are converted.
    pub(super) fn push_bytes(&mut self, out: &mut ParsedMail, data: &[u8]) {
        // A character cut in two becomes U+FFFD; the budget is checked again on the text.
        let kept = data.len().min(self.text_left);
        self.text_cut += data.len() - kept;
        let text = String::from_utf8_lossy(&data[..kept]);
        self.push_text(out, text);
    }

    /// The part of an attachment's data the attachment budget allows.
    fn attachment<'d>(&mut self, data: &'d [u8]) -> &'d [u8] {
        let kept = data.len().min(self.attachment_left);
        self.attachment_cut += data.len() - kept;
        self.attachment_left -= kept;
        &data[..kept]
    }

    /// Notes (no content, only sizes and the limit to raise) on what was not searched.
    pub(super) fn notes(&self, out: &mut ParsedMail) {
        if self.parts_cut > 0 {
            out.problems.push(format!(
                "{TRUNCATED} {} MIME parts beyond the first {} not searched (limits.parts)",
                self.parts_cut, self.limits.parts
            ));
        }
        if self.text_cut > 0 {
            out.problems.push(format!(
                "{TRUNCATED} {} bytes of text beyond the first {} not searched (limits.text_bytes)",
                self.text_cut, self.limits.text_bytes
            ));
        }
        if self.attachment_cut > 0 {
            out.problems.push(format!(
                "{TRUNCATED} {} bytes of attachments beyond the first {} not searched (limits.attachment_bytes)",
                self.attachment_cut, self.limits.attachment_bytes
            ));
        }
    }
}

/// Walk every part of `msg` (and of nested messages), appending to `out`.
pub(super) fn walk(msg: &Message<'_>, out: &mut ParsedMail, budget: &mut Budget<'_>) {
    walk_at(msg, out, budget, 0, "");
}

fn walk_at(
    msg: &Message<'_>,
    out: &mut ParsedMail,
    budget: &mut Budget<'_>,
    depth: usize,
    prefix: &str,
) {
    for (i, part) in msg.parts.iter().enumerate() {
        if budget.parts_left == 0 {
            budget.parts_cut += msg.parts.len() - i;
            return;
        }
        budget.parts_left -= 1;
        let label = format!("{prefix}part {}", i + 1);
        let ctype = content_type(part);
        if part.is_encoding_problem {
            out.problems.push(format!(
                "{label} ({ctype}): malformed encoding or structure, content kept undecoded"
            ));
        }
        lenient_readings(msg, part, &ctype, out, budget.limits);
        match &part.body {
            PartType::Text(text) => {
                check_text(part, text, &label, &ctype, out);
                budget.push_text(out, Cow::Borrowed(text));
                attach_if_named(part, &ctype, text.as_bytes(), out, budget);
            }
            PartType::Html(text) => {
                check_text(part, text, &label, &ctype, out);
                // HTML is searched as text with its links kept: cut it first, so converting
                // a huge part costs no more than the budget (a tag cut in two is just text).
                let html = limits::prefix(text, budget.text_left.saturating_mul(2));
                budget.text_cut += text.len() - html.len();
                budget.push_text(out, Cow::Owned(html::to_text(html)));
                attach_if_named(part, &ctype, text.as_bytes(), out, budget);
            }
            PartType::Binary(data) | PartType::InlineBinary(data) => {
                if ctype.starts_with("message/") {
                    // A nested message mail-parser gave up on, or a delivery-status report:
                    // still words a reference may hide in.
                    budget.push_bytes(out, data);
                }
                out.attachments.push(Attachment {
                    name: part.attachment_name().map(str::to_string),
                    content_type: ctype,
                    data: budget.attachment(data).to_vec(),
                });
            }
            PartType::Message(inner) => {
                let max = budget.limits.depth;
                if depth + 1 >= max {
                    out.problems.push(format!(
                        "{label}: messages nested deeper than {max} levels (limits.depth) searched as raw text"
                    ));
                    budget.push_bytes(out, nested_bytes(inner));
                    continue;
                }
                if let Some(subject) = inner.subject() {
                    let subject = limits::prefix(subject, budget.limits.header_bytes);
                    budget.push_text(out, Cow::Borrowed(subject));
                }
                walk_at(inner, out, budget, depth + 1, &format!("{label} > "));
            }
            PartType::Multipart(_) => {}
        }
    }
}

/// Lowercase `type/subtype`; a part without Content-Type is `text/plain` (RFC 2045 §5.2).
fn content_type(part: &MessagePart<'_>) -> String {
    match part.content_type() {
        Some(ct) => match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        },
        None => "text/plain".into(),
    }
}

/// The bytes of a nested message. mail-parser may hand a nested message the whole outer
/// message as its `raw_message`; its root part's offsets say where the nested one lies.
fn nested_bytes<'m>(inner: &'m Message<'_>) -> &'m [u8] {
    let raw = inner.raw_message();
    let root = inner.root_part();
    raw.get(root.offset_header as usize..root.offset_end as usize)
        .filter(|b| !b.is_empty())
        .unwrap_or(raw)
}

/// The extractor reads CSV/TXT/PEM attachments as files, so a text part sent as a file is kept
/// as an attachment as well as searched as text.
fn attach_if_named(
    part: &MessagePart<'_>,
    ctype: &str,
    data: &[u8],
    out: &mut ParsedMail,
    budget: &mut Budget<'_>,
) {
    if is_named(part) {
        out.attachments
            .push(attachment(part, ctype, budget.attachment(data)));
    }
}

/// A part sent as a file: it has a name, or says it is an attachment.
fn is_named(part: &MessagePart<'_>) -> bool {
    part.attachment_name().is_some()
        || part
            .content_disposition()
            .is_some_and(|d| d.is_attachment())
}

fn attachment(part: &MessagePart<'_>, ctype: &str, data: &[u8]) -> Attachment {
    Attachment {
        name: part.attachment_name().map(str::to_string),
        content_type: ctype.to_string(),
        data: data.to_vec(),
    }
}

/// A quoted-printable part as a careless sender may have meant it (see [`qp`]): its lenient
/// reading where it differs from the strict decoding, and the literal reading of its lines that
/// hold escapes no encoder writes, go to `lenient_texts` (and, for a part sent as a file or a
/// binary part, to `lenient_attachments`), to be searched for references too. Only the first
/// `limits.text_bytes` of a part are read leniently: a huge part costs no more than the strict
/// search of it may.
fn lenient_readings(
    msg: &Message<'_>,
    part: &MessagePart<'_>,
    ctype: &str,
    out: &mut ParsedMail,
    limits: &Limits,
) {
    let is_qp = part
        .content_transfer_encoding()
        .is_some_and(|e| e.trim().eq_ignore_ascii_case("quoted-printable"));
    let raw = msg
        .raw_message
        .get(part.offset_body as usize..part.offset_end as usize);
    let Some(raw) = raw.filter(|_| is_qp) else {
        return;
    };
    let raw = &raw[..raw.len().min(limits.text_bytes)];
    let charset = part
        .content_type()
        .and_then(|ct| ct.attribute("charset"))
        .map(|cs| cs.trim().to_ascii_lowercase());
    let utf8 = matches!(
        charset.as_deref(),
        None | Some("utf-8" | "utf8" | "us-ascii" | "ascii")
    );
    let lenient = if qp::breaks_rules(raw) {
        qp::decode(raw, Escapes::Decode)
    } else {
        Vec::new()
    };
    let readings = [lenient, qp::suspicious_lines(raw, utf8)];
    match &part.body {
        PartType::Text(strict) | PartType::Html(strict) => {
            let is_html = matches!(part.body, PartType::Html(_)) || ctype == "text/html";
            let mut kept: Vec<String> = Vec::new();
            for bytes in readings.iter().filter(|r| !r.is_empty()) {
                let reading = decode_charset(charset.as_deref(), bytes);
                if reading != *strict && !kept.contains(&reading) {
                    kept.push(reading);
                }
            }
            for reading in kept {
                if is_named(part) {
                    out.lenient_attachments
                        .push(attachment(part, ctype, reading.as_bytes()));
                }
                let text = if is_html {
                    html::to_text(&reading)
                } else {
                    reading
                };
                if !text.trim().is_empty() {
                    out.lenient_texts.push(text);
                }
            }
        }
        PartType::Binary(strict) | PartType::InlineBinary(strict) => {
            let mut kept: Vec<&Vec<u8>> = Vec::new();
            for reading in readings.iter().filter(|r| !r.is_empty()) {
                if reading != strict.as_ref() && !kept.contains(&reading) {
                    kept.push(reading);
                }
            }
            for reading in kept {
                if ctype.starts_with("message/") {
                    out.lenient_texts
                        .push(String::from_utf8_lossy(reading).into_owned());
                }
                out.lenient_attachments
                    .push(attachment(part, ctype, reading));
            }
        }
        PartType::Message(_) | PartType::Multipart(_) => {}
    }
}

/// Bytes of a text part as text, in its declared charset where known (as the strict decoding
/// does), else as lossy UTF-8.
fn decode_charset(charset: Option<&str>, bytes: &[u8]) -> String {
    match charset.and_then(|cs| charset_decoder(cs.as_bytes())) {
        Some(decoder) => decoder(bytes),
        None => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Note text that was decoded with losses: an unknown charset, or bytes invalid in UTF-8.
fn check_text(part: &MessagePart<'_>, text: &str, label: &str, ctype: &str, out: &mut ParsedMail) {
    let charset = part.content_type().and_then(|ct| ct.attribute("charset"));
    let utf8_like = match charset {
        None => true,
        Some(cs) => {
            let cs = cs.trim().to_ascii_lowercase();
            let is_utf8 = matches!(cs.as_str(), "utf-8" | "utf8");
            if !is_utf8 && charset_decoder(cs.as_bytes()).is_none() {
                out.problems.push(format!(
                    "{label} ({ctype}): unknown charset {}, decoded as lossy UTF-8",
                    note::excerpt(&cs)
                ));
            }
            is_utf8
        }
    };
    if utf8_like && text.contains('\u{fffd}') {
        out.problems.push(format!(
            "{label} ({ctype}): invalid UTF-8 bytes replaced with U+FFFD"
        ));
    }
}
