//! Time in one format everywhere: UTC, whole seconds, RFC 3339 (`2026-03-01T09:30:00Z`).
//!
//! Auditors compare timelines at minute granularity (CCADB incident reports), so sub-second
//! noise only gets in the way; every timestamp entering the system is truncated here.

use crate::domain::model::Timestamp;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

/// Normalise to UTC and drop sub-second precision.
pub(crate) fn normalize(t: OffsetDateTime) -> Timestamp {
    let t = t.to_offset(UtcOffset::UTC);
    t.replace_nanosecond(0).unwrap_or(t)
}

/// RFC 3339 in UTC with a `Z`.
pub(crate) fn format(t: Timestamp) -> String {
    normalize(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Parse RFC 3339 (any offset) into a normalised UTC timestamp.
pub fn parse(s: &str) -> Result<Timestamp, time::error::Parse> {
    OffsetDateTime::parse(s.trim(), &Rfc3339).map(normalize)
}

/// The wall clock. Only the edges (CLI, service ticker) call this; the core takes `now`.
pub fn now() -> Timestamp {
    normalize(OffsetDateTime::now_utc())
}

/// Parse a span such as `24h`, `5d`, `7d`, `90m`, `30s` into a [`Duration`].
pub(crate) fn parse_span(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().ok()?;
    let secs = match unit.trim() {
        "s" => n,
        "m" | "min" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::seconds(secs))
}

/// The inverse of [`parse_span`] for whole units: `86400` → `24h`, `432000` → `5d`.
pub(crate) fn format_span(secs: i64) -> String {
    if secs != 0 && secs % 86_400 == 0 && secs / 86_400 != 1 {
        format!("{}d", secs / 86_400)
    } else if secs != 0 && secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else if secs != 0 && secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// `1d 3h 4m` style, for people reading `status`. Negative spans read `-2h 5m`.
pub(crate) fn human_span(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.unsigned_abs();
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60);
    if d > 0 {
        format!("{sign}{d}d {h}h {m}m")
    } else if h > 0 {
        format!("{sign}{h}h {m}m")
    } else {
        format!("{sign}{m}m")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_rfc3339_in_utc() {
        let t = parse("2026-03-01T10:30:15.250+01:00").unwrap();
        assert_eq!(format(t), "2026-03-01T09:30:15Z");
    }

    #[test]
    fn spans() {
        assert_eq!(parse_span("24h").unwrap().whole_seconds(), 86_400);
        assert_eq!(parse_span("5d").unwrap().whole_seconds(), 432_000);
        assert_eq!(parse_span("90m").unwrap().whole_seconds(), 5_400);
        assert!(parse_span("5 weeks").is_none());
        assert!(parse_span("").is_none());
        assert_eq!(format_span(86_400), "24h");
        assert_eq!(format_span(432_000), "5d");
        assert_eq!(human_span(-3_700), "-1h 1m");
    }
}
