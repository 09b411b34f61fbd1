//! Raw message bytes → [`ParsedMail`]. Pure: no I/O, no clock, never fails, never panics.
//!
//! A message that cannot be parsed still starts a clock: a mangled report is still a report,
//! and the BR clock runs whether or not we could read it. So `parse` always
//! returns something: when the bytes are not a mail at all, `parsed_ok` is false and the raw bytes
//! are still searched as (lossy) text, so a certificate link in a mangled message is still found.
//!
//! Submodules, one job each: [`headers`] (top-level fields), [`body`] (every part → texts and
//! attachments), [`html`] (HTML → text with links kept), [`dates`] (header dates → UTC),
//! [`note`] (safe excerpts for `problems`), [`qp`] (quoted-printable as careless senders write
//! it).

mod body;
mod dates;
mod headers;
pub mod html;
mod note;
mod qp;

use crate::domain::model::ParsedMail;
use crate::reading::limits::Limits;
use mail_parser::{HeaderName, Message, MessageParser};
use std::sync::LazyLock;

/// mail-parser's own default parsing of each header, except `Received:`, which is skipped: only
/// the topmost one is read, from its raw bytes (see `headers`), and tokenizing every hop's
/// header cost more than the rest of header parsing together.
///
/// A parser with any header of its own parses no other header its default way, so the default
/// table is restated: the library's groups, plus the headers it parses beyond them.
static PARSER: LazyLock<MessageParser> = LazyLock::new(|| {
    use HeaderName::*;
    let lists = [
        ListArchive,
        ListHelp,
        ListId,
        ListOwner,
        ListPost,
        ListSubscribe,
        ListUnsubscribe,
    ];
    lists
        .into_iter()
        .fold(MessageParser::new(), MessageParser::header_address)
        .with_mime_headers()
        .with_date_headers()
        .with_address_headers()
        .with_message_ids()
        .header_text(Subject)
        .header_text(Comments)
        .header_id(ReturnPath)
        .header_comma_separated(Keywords)
        .header_comma_separated(ContentLanguage)
        .ignore_header(Received)
        .default_header_raw()
});

/// Parse one RFC 5322 message under the default [`Limits`].
pub fn parse(raw: &[u8]) -> ParsedMail {
    parse_limited(raw, &Limits::default())
}

/// Parse one RFC 5322 message, keeping no more of it than `limits` allow (what is cut is noted
/// on `problems`). See the field docs of [`ParsedMail`] for what each field holds.
pub(crate) fn parse_limited(raw: &[u8], limits: &Limits) -> ParsedMail {
    // mail-parser promises not to panic; the service's liveness should not rest on a promise.
    let parsed = std::panic::catch_unwind(|| parse_inner(raw, limits));
    parsed.unwrap_or_else(|_| {
        let mut out = ParsedMail::default();
        out.problems
            .push("the MIME parser failed on this message; searched as raw text".into());
        salvage(raw, &mut out, limits);
        out
    })
}

fn parse_inner(raw: &[u8], limits: &Limits) -> ParsedMail {
    let mut out = ParsedMail::default();
    match PARSER.parse(raw) {
        Some(msg) if looks_like_mail(&msg) => {
            out.parsed_ok = true;
            headers::fill(&msg, raw, &mut out, limits);
            let mut budget = body::Budget::new(limits);
            body::walk(&msg, &mut out, &mut budget);
            budget.notes(&mut out);
        }
        _ => {
            out.problems.push(
                "no mail headers found: not an RFC 5322 message; searched as raw text".into(),
            );
            salvage(raw, &mut out, limits);
        }
    }
    out
}

/// A message has at least one header every mail carries. Garbage bytes often still "parse"
/// into a header called `%$#`; those must not pass for mail.
fn looks_like_mail(msg: &Message<'_>) -> bool {
    msg.headers().iter().any(|h| {
        matches!(
            h.name,
            HeaderName::From
                | HeaderName::To
                | HeaderName::Cc
                | HeaderName::Subject
                | HeaderName::Date
                | HeaderName::MessageId
                | HeaderName::Received
                | HeaderName::ReturnPath
                | HeaderName::MimeVersion
                | HeaderName::ContentType
                | HeaderName::Sender
                | HeaderName::ReplyTo
                | HeaderName::InReplyTo
                | HeaderName::References
        )
    })
}

/// The whole input (up to the text limit) as lossy text, so the extractor still sees whatever
/// references it holds.
fn salvage(raw: &[u8], out: &mut ParsedMail, limits: &Limits) {
    let mut budget = body::Budget::new(limits);
    budget.push_bytes(out, raw);
    budget.notes(out);
}

#[cfg(test)]
mod tests;
