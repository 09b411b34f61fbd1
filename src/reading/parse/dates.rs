//! Header dates → normalised UTC timestamps.
//!
//! Receipt time decides whether a 24-hour clock was met, so a date we cannot read
//! must come back as `None` (and a note), never as a guess.

use crate::domain::model::Timestamp;
use crate::domain::timefmt;
use mail_parser::DateTime;
use time::OffsetDateTime;

/// Convert mail-parser's date to a normalised timestamp; `None` when out of range.
pub(crate) fn from_mail(dt: &DateTime) -> Option<Timestamp> {
    if !dt.is_valid() {
        return None;
    }
    OffsetDateTime::from_unix_timestamp(dt.to_timestamp())
        .ok()
        .map(timefmt::normalize)
}

/// The date stamped by a `Received:` header: RFC 5321 puts it after the last `;`.
///
/// Real MTAs vary (`Sat, 5 Jan 2008 09:14:15 -0500`, `5 Jan 2008 09:14:10 -0500` without a
/// weekday, a trailing `(GMT)` comment, folding before the date); mail-parser's RFC 5322 date
/// reader copes with all of these. Without a `;` the whole value is tried, as some MTAs omit it.
pub(crate) fn received_date(value: &str) -> Option<Timestamp> {
    let tail = value.rsplit_once(';').map_or(value, |(_, t)| t);
    DateTime::parse_rfc822(tail.trim())
        .as_ref()
        .and_then(from_mail)
        .or_else(|| asctime(tail))
}

/// `Sat Jan  5 09:14:16 2008` (ctime format, no zone: read as UTC), seen from some old MTAs.
fn asctime(s: &str) -> Option<Timestamp> {
    let mut it = s.split_whitespace();
    let mut first = it.next()?;
    if first.len() == 3 && first.chars().all(|c| c.is_ascii_alphabetic()) && !is_month(first) {
        first = it.next()?; // weekday
    }
    let month = month_number(first)?;
    let day: u8 = it.next()?.parse().ok()?;
    let hms: Vec<u8> = it
        .next()?
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let year: i32 = it.next()?.parse().ok()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    let t = time::Time::from_hms(*h, *m, *sec).ok()?;
    Some(timefmt::normalize(date.with_time(t).assume_utc()))
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

fn is_month(s: &str) -> bool {
    month_number(s).is_some()
}

fn month_number(s: &str) -> Option<u8> {
    let s = s.to_ascii_lowercase();
    MONTHS
        .iter()
        .position(|m| *m == s)
        .and_then(|i| u8::try_from(i + 1).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> Timestamp {
        timefmt::parse(s).unwrap()
    }

    #[test]
    fn received_formats() {
        let cases = [
            (
                "from murder (mail.umich.edu [141.211.14.90])\n\t by frankenstein.mail.umich.edu \
                 (Cyrus v2.3.8) with LMTPA;\n\t Sat, 05 Jan 2008 09:14:16 -0500",
                "2008-01-05T14:14:16Z",
            ),
            (
                "FROM paploo.uhi.ac.uk BY holes.mr.itd.umich.edu ID 477F90B0.2DB2F.12494 ; \n\t 5 Jan 2008 09:14:10 -0500",
                "2008-01-05T14:14:10Z",
            ),
            (
                "from x by y with ESMTP id 5F919BC2F2;\n\tSat,  5 Jan 2008 14:10:05 +0000 (GMT)",
                "2008-01-05T14:10:05Z",
            ),
            (
                "from a (b [1.2.3.4]) by mx.ca.example; Tue, 3 Mar 2026 10:00:00.123 +0100",
                "2026-03-03T09:00:00Z",
            ),
            ("by mx; Sat Jan  5 09:14:16 2008", "2008-01-05T09:14:16Z"),
        ];
        for (value, want) in cases {
            assert_eq!(received_date(value), Some(utc(want)), "{value}");
        }
        assert_eq!(received_date("from x by y"), None);
        assert_eq!(received_date("from x by y; garbage"), None);
    }
}
