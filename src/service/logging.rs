//! Log setup for the service: on stderr, level from `RUST_LOG` (default `info`), as text lines
//! or as one JSON object per line ([`Format`]). Never logs message bodies: reporters send
//! private keys.
//!
//! Log fields carry reporter-written text (subjects, addresses, Message-Ids) and server
//! replies. Whatever the call site wrote (`%` Display, `?` Debug or a plain `&str`), every field
//! goes through [`crate::escape`] here, so no value can colour or clear a terminal, break a
//! line, or pose as a field or a line of cprwatch's own (a subject reading
//! ` clock stopped … state="met"`):
//! - text: `key=value`, the value bare when it is a plain token, else quoted with `"` and `\`
//!   escaped and every control or bidirectional character as a visible escape;
//! - json: one object per line, `serde_json` strings, with the characters JSON leaves as they
//!   are (DEL, C1 and bidirectional controls) as `\uXXXX`; decoded, each field is exactly what
//!   was logged.
//!
//! async-imap traces every byte it sends and receives (the LOGIN command with the password,
//! whole message bodies) through the `log` crate, which tracing-subscriber forwards. Those
//! records are dropped here whatever `RUST_LOG` says.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

use crate::escape;

/// How the service log is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `2026-03-02T10:00:00.000000Z  INFO cprwatch::service: case opened case=… subject="…"`.
    Text,
    /// `{"timestamp":"…","level":"INFO","target":"cprwatch::service","message":"case opened",…}`.
    Json,
}

pub fn init(format: Format) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry()
        .with(filter_fn(|meta| !is_wire_trace(meta.target())))
        .with(filter);
    let _ = match format {
        Format::Text => {
            // Colour only for a person at a terminal; a log file or journal gets plain text.
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(std::io::stderr)
                        .with_ansi(ansi)
                        .fmt_fields(TextFields),
                )
                .try_init()
        }
        Format::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(false)
                    .event_format(JsonLines),
            )
            .try_init(),
    };
}

/// Log targets that carry raw protocol traffic.
fn is_wire_trace(target: &str) -> bool {
    target == "async_imap" || target.starts_with("async_imap::")
}

/// The fields of a text log line: the message, then `key=value` pairs through
/// [`escape::log_value`].
pub(crate) struct TextFields;

impl<'a> MakeVisitor<Writer<'a>> for TextFields {
    type Visitor = TextVisitor<'a>;

    fn make_visitor(&self, writer: Writer<'a>) -> TextVisitor<'a> {
        TextVisitor {
            writer,
            first: true,
            result: Ok(()),
        }
    }
}

pub(crate) struct TextVisitor<'a> {
    writer: Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl TextVisitor<'_> {
    fn field(&mut self, field: &Field, value: &str, bare: bool) {
        let name = field.name();
        // `log` records' metadata (target, file, line) travel as fields; the formatter has
        // already shown what it uses of them.
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let sep = if self.first { "" } else { " " };
        self.first = false;
        self.result = if name == "message" {
            write!(self.writer, "{sep}{}", escape::text(value))
        } else {
            let name = name.strip_prefix("r#").unwrap_or(name);
            if bare {
                write!(self.writer, "{sep}{name}={value}")
            } else {
                write!(self.writer, "{sep}{name}={}", escape::log_value(value))
            }
        };
    }
}

impl Visit for TextVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, value, false);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, &value.to_string(), true);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, &value.to_string(), true);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, if value { "true" } else { "false" }, true);
    }

    /// `%` Display values arrive here too, written by their Display: escaped all the same.
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, &format!("{value:?}"), false);
    }
}

impl VisitOutput<fmt::Result> for TextVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for TextVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

/// One JSON object per event: `timestamp`, `level`, `target`, `message` and the event's fields
/// (numbers and booleans as such, everything else as strings), through
/// [`escape::json_text`].
pub(crate) struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = JsonVisitor::default();
        event.record(&mut fields);
        let now = time::OffsetDateTime::now_utc();
        let timestamp = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let target = fields.log_target.take().unwrap_or(meta.target().into());
        // Written key by key, to keep this order: the line's own keys, then the event's.
        let own = ["timestamp", "level", "target"];
        let mut line = String::from("{");
        let pairs = [
            (own[0], serde_json::Value::from(timestamp)),
            (own[1], meta.level().as_str().into()),
            (own[2], target.into()),
        ];
        let event_fields = fields
            .fields
            .iter()
            // A field may not pose as one of the line's own keys.
            .filter(|(k, _)| !own.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.clone()));
        for (i, (k, v)) in pairs.into_iter().chain(event_fields).enumerate() {
            if i > 0 {
                line.push(',');
            }
            line.push_str(&serde_json::to_string(k).map_err(|_| fmt::Error)?);
            line.push(':');
            line.push_str(&serde_json::to_string(&v).map_err(|_| fmt::Error)?);
        }
        line.push('}');
        writeln!(writer, "{}", escape::json_text(&line))
    }
}

#[derive(Default)]
struct JsonVisitor {
    fields: Vec<(String, serde_json::Value)>,
    log_target: Option<String>,
}

impl JsonVisitor {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        let name = field.name();
        if name == "log.target" {
            self.log_target = value.as_str().map(str::to_string);
            return;
        }
        if name.starts_with("log.") {
            return;
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.fields.push((name.to_string(), value));
    }
}

impl Visit for JsonVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn imap_wire_traces_are_dropped() {
        assert!(super::is_wire_trace("async_imap::imap_stream"));
        assert!(super::is_wire_trace("async_imap"));
        assert!(!super::is_wire_trace("async_imap_other"));
        assert!(!super::is_wire_trace("cprwatch::service"));
    }

    /// Captures what a subscriber writes.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    const SUBJECT: &str = "Hi\x1b[2J\x1b[31m\r\n2026-03-02T10:00:00Z  INFO cprwatch::service: clock stopped clock=revocation:crtsh:1 state=\"met\" \u{202e}gpj.exe";

    /// Log one hostile event the three ways call sites write fields.
    fn log_hostile() {
        let owned = SUBJECT.to_string();
        tracing::info!(
            case = "CPR-2026-0001",
            subject = owned.as_str(),
            shown = %owned,
            debugged = ?owned,
            count = 3u64,
            "case opened"
        );
    }

    fn text_log() -> String {
        let out = Capture::default();
        let sub = tracing_subscriber::fmt()
            .with_writer(out.clone())
            .with_ansi(false)
            .fmt_fields(TextFields)
            .finish();
        tracing::subscriber::with_default(sub, log_hostile);
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    fn json_log() -> String {
        let out = Capture::default();
        let sub = tracing_subscriber::fmt()
            .with_writer(out.clone())
            .with_ansi(false)
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(sub, log_hostile);
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn text_lines_quote_and_escape_every_field_however_it_was_logged() {
        let log = text_log();
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(!log.trim_end().chars().any(escape::is_hazard), "{log}");
        let quoted = escape::log_value(SUBJECT);
        for field in ["subject", "shown"] {
            assert!(
                log.contains(&format!(" {field}={quoted}")),
                "{field}: {log}"
            );
        }
        assert!(log.contains(" case=CPR-2026-0001 "), "{log}");
        assert!(log.contains(" count=3"), "{log}");
        assert!(log.contains("case opened case="), "{log}");
        // The forged `state="met"` exists only escaped, inside a quoted value.
        assert!(!log.contains(" state=\"met\""), "{log}");
    }

    #[test]
    fn json_lines_are_one_object_each_and_decode_to_what_was_logged() {
        let log = json_log();
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(!log.trim_end().chars().any(escape::is_hazard), "{log}");
        let v: serde_json::Value = serde_json::from_str(log.trim_end()).unwrap();
        assert_eq!(v["message"], "case opened");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["subject"], SUBJECT);
        assert_eq!(v["shown"], SUBJECT);
        assert_eq!(v["debugged"], format!("{SUBJECT:?}"));
        assert_eq!(v["count"], 3);
        assert_eq!(v["case"], "CPR-2026-0001");
        assert!(
            v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{v}"
        );
    }
}
