//! Every part of a message → `texts` and `attachments`.
//!
//! A reference can hide anywhere: an HTML-only alternative, a base64 text part, a CSV attachment,
//! a forwarded message three levels deep. So every part is searched, not just the "body" a mail
//! client would display, and what cannot be decoded cleanly is still kept (lossy) with a note.

use super::qp::{self, Escapes};
use super::{html, note};
use crate::model::{Attachment, ParsedMail};
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::{Message, MessagePart, MimeHeaders, PartType};

/// Forwarded-inside-forwarded deeper than this is not walked (mail-parser bounds it too); the
/// bound keeps a hostile message from exhausting the stack.
const MAX_DEPTH: usize = 8;

/// Walk every part of `msg` (and of nested messages), appending to `out`.
pub fn walk(msg: &Message<'_>, out: &mut ParsedMail) {
    walk_at(msg, out, 0, "");
}

fn walk_at(msg: &Message<'_>, out: &mut ParsedMail, depth: usize, prefix: &str) {
    for (i, part) in msg.parts.iter().enumerate() {
        let label = format!("{prefix}part {}", i + 1);
        let ctype = content_type(part);
        if part.is_encoding_problem {
            out.problems.push(format!(
                "{label} ({ctype}): malformed encoding or structure, content kept undecoded"
            ));
        }
        lenient_readings(msg, part, &ctype, out);
        match &part.body {
            PartType::Text(text) => {
                check_text(part, text, &label, &ctype, out);
                push_text(out, text.to_string());
                attach_if_named(part, &ctype, text.as_bytes(), out);
            }
            PartType::Html(text) => {
                check_text(part, text, &label, &ctype, out);
                push_text(out, html::to_text(text));
                attach_if_named(part, &ctype, text.as_bytes(), out);
            }
            PartType::Binary(data) | PartType::InlineBinary(data) => {
                if ctype.starts_with("message/") {
                    // A nested message mail-parser gave up on, or a delivery-status report:
                    // still words a reference may hide in.
                    push_text(out, String::from_utf8_lossy(data).into_owned());
                }
                out.attachments.push(Attachment {
                    name: part.attachment_name().map(str::to_string),
                    content_type: ctype,
                    data: data.to_vec(),
                });
            }
            PartType::Message(inner) => {
                if depth + 1 >= MAX_DEPTH {
                    out.problems.push(format!(
                        "{label}: messages nested deeper than {MAX_DEPTH} levels searched as raw text"
                    ));
                    push_text(
                        out,
                        String::from_utf8_lossy(inner.raw_message()).into_owned(),
                    );
                    continue;
                }
                if let Some(subject) = inner.subject() {
                    push_text(out, subject.to_string());
                }
                walk_at(inner, out, depth + 1, &format!("{label} > "));
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

fn push_text(out: &mut ParsedMail, text: String) {
    if !text.trim().is_empty() {
        out.texts.push(text);
    }
}

/// The extractor reads CSV/TXT/PEM attachments as files, so a text part sent as a file is kept
/// as an attachment as well as searched as text.
fn attach_if_named(part: &MessagePart<'_>, ctype: &str, data: &[u8], out: &mut ParsedMail) {
    if is_named(part) {
        out.attachments.push(attachment(part, ctype, data));
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
/// binary part, to `lenient_attachments`), to be searched for references too.
fn lenient_readings(msg: &Message<'_>, part: &MessagePart<'_>, ctype: &str, out: &mut ParsedMail) {
    let is_qp = part
        .content_transfer_encoding()
        .is_some_and(|e| e.trim().eq_ignore_ascii_case("quoted-printable"));
    let raw = msg
        .raw_message
        .get(part.offset_body as usize..part.offset_end as usize);
    let Some(raw) = raw.filter(|_| is_qp) else {
        return;
    };
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
