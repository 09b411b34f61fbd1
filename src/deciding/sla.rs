//! The SLA report (`cprwatch audit report`, and the dashboard's SLA page): for the cases
//! opened in a period, how many reports, cases, certificates and keys there were, how each
//! kind of clock ended, how long the desk took, and every clock that was late or breached.
//!
//! Pure: it reads cases and clocks already loaded and evaluates them at `at`, an argument, so
//! a report of last year says the same tomorrow (given the same `at`) and tests give known
//! answers.
//!
//! Definitions (the README's "For auditors" repeats them):
//! - the period is half-open: a case counts when `from <= opened_at < to`;
//! - a **report** is a message in those cases from outside the desk (not staff-authored) that
//!   is not an automatic reply, bounce, receipt or canary: the reporter's first mail and
//!   every follow-up;
//! - each **clock** counts once, however many of those cases list it (a certificate reported
//!   twice has one revocation clock), with the first case that lists it; its state is its state
//!   at `at`. `open` is a clock still running within its deadline, `breached` one still
//!   running past it;
//! - **time to stop** is `stopped_at − started_at` of the clocks the desk completed (`met`
//!   and `late`); a dismissal, a decision not to revoke, or expiry measures no response;
//! - the **median** of an even count is the mean of the two middle values, rounded down to
//!   the second; **p90** is the nearest-rank 90th percentile: the smallest value that at
//!   least 90 % of the values do not exceed (the `⌈0.9·n⌉`-th smallest), so it is always one
//!   of the measured times.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::deciding::cases::Case;
use crate::deciding::clock::Clock;
use crate::domain::event::{ClockKind, ClockState};
use crate::domain::ids::ClockId;
use crate::domain::model::Timestamp;

/// A span of time, `from` included, `to` excluded: consecutive periods (months, years) never
/// count a case twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Period {
    #[serde(with = "time::serde::rfc3339")]
    pub from: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    pub to: Timestamp,
}

impl Period {
    pub fn contains(&self, t: Timestamp) -> bool {
        self.from <= t && t < self.to
    }
}

/// The report, ready to render or serialise.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SlaReport {
    #[serde(flatten)]
    pub period: Period,
    /// The moment the clocks' states are evaluated at.
    #[serde(with = "time::serde::rfc3339")]
    pub at: Timestamp,
    pub reports: usize,
    pub cases: usize,
    /// Distinct certificates the cases name.
    pub certificates: usize,
    /// Distinct keys the cases name (`spki:`; an encrypted key without one is not counted).
    pub keys: usize,
    /// One per kind of clock, `preliminary_report` then `revocation`, present even when zero.
    pub clocks: Vec<KindSummary>,
    /// Every clock late or breached at `at`, in case order.
    pub exceptions: Vec<Exception>,
}

/// How the clocks of one kind ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KindSummary {
    pub kind: ClockKind,
    pub total: usize,
    pub met: usize,
    pub late: usize,
    pub breached: usize,
    /// Still running, within the deadline.
    pub open: usize,
    pub dismissed: usize,
    pub not_required: usize,
    /// Over the `met` and `late` clocks; `None` when there are none.
    pub time_to_stop: Option<Spread>,
}

/// Median, p90 and maximum of some durations, in seconds (module docs: definitions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Spread {
    pub count: usize,
    pub median_seconds: i64,
    pub p90_seconds: i64,
    pub max_seconds: i64,
}

/// A clock that was late or is breached, with its case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Exception {
    pub case: String,
    pub clock: String,
    pub kind: ClockKind,
    pub target: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    pub deadline: Timestamp,
    pub state: ClockState,
    #[serde(with = "time::serde::rfc3339::option")]
    pub stopped_at: Option<Timestamp>,
    /// How far past the deadline: to the stop for a late clock, to `at` for a breached one.
    pub overdue_seconds: i64,
    pub basis: String,
    /// Staff's `CPR-Delayed` (known by `at`): the reason or incident URL, and when.
    pub acknowledged: Option<Acknowledged>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Acknowledged {
    #[serde(with = "time::serde::rfc3339")]
    pub at: Timestamp,
    pub reason: String,
    pub by: String,
}

/// The report over the cases opened in `period` among `cases` (in case order), with their
/// clocks from `clocks`, evaluated at `at`. `automatic` holds the content hashes of messages
/// that are automatic replies, bounces, receipts or canaries: they are not reports.
pub fn report(
    cases: &[Case],
    clocks: &BTreeMap<ClockId, Clock>,
    automatic: &HashSet<String>,
    period: Period,
    at: Timestamp,
) -> SlaReport {
    let cases: Vec<&Case> = cases
        .iter()
        .filter(|c| period.contains(c.opened_at))
        .collect();
    let mut reports = HashSet::new();
    let mut certificates = HashSet::new();
    let mut keys = HashSet::new();
    let mut seen = HashSet::new();
    let mut kinds: BTreeMap<ClockKind, (KindSummary, Vec<i64>)> =
        [ClockKind::PreliminaryReport, ClockKind::Revocation]
            .into_iter()
            .map(|k| (k, (KindSummary::empty(k), Vec::new())))
            .collect();
    let mut exceptions = Vec::new();
    for case in &cases {
        for m in &case.messages {
            if !m.staff && !automatic.contains(&m.content_hash) {
                reports.insert(m.content_hash.as_str());
            }
        }
        certificates.extend(case.certificates.iter().map(|c| c.reference.as_str()));
        keys.extend(case.keys.iter().filter_map(|k| k.reference.as_deref()));
        for id in &case.clocks {
            let Some(clock) = clocks.get(id) else {
                continue;
            };
            if !seen.insert(id) {
                continue;
            }
            let status = clock.status(at);
            let (summary, durations) = kinds
                .entry(clock.kind)
                .or_insert_with(|| (KindSummary::empty(clock.kind), Vec::new()));
            summary.total += 1;
            match status.state {
                ClockState::Met => summary.met += 1,
                ClockState::Late => summary.late += 1,
                ClockState::Breached => summary.breached += 1,
                ClockState::Pending => summary.open += 1,
                ClockState::Dismissed => summary.dismissed += 1,
                ClockState::NotRequired => summary.not_required += 1,
            }
            if let (ClockState::Met | ClockState::Late, Some(stop)) =
                (status.state, status.stopped_at)
            {
                durations.push((stop - clock.started_at).whole_seconds());
            }
            if matches!(status.state, ClockState::Late | ClockState::Breached) {
                exceptions.push(Exception {
                    case: case.id.to_string(),
                    clock: id.to_string(),
                    kind: clock.kind,
                    target: clock.target.clone(),
                    started_at: clock.started_at,
                    deadline: clock.deadline,
                    state: status.state,
                    stopped_at: status.stopped_at,
                    overdue_seconds: (status.stopped_at.unwrap_or(at) - clock.deadline)
                        .whole_seconds(),
                    basis: status.basis,
                    acknowledged: clock.acknowledged.as_ref().filter(|a| a.at <= at).map(|a| {
                        Acknowledged {
                            at: a.at,
                            reason: a.reason.clone(),
                            by: a.by.clone(),
                        }
                    }),
                });
            }
        }
    }
    SlaReport {
        period,
        at,
        reports: reports.len(),
        cases: cases.len(),
        certificates: certificates.len(),
        keys: keys.len(),
        clocks: kinds
            .into_values()
            .map(|(mut s, mut d)| {
                s.time_to_stop = spread(&mut d);
                s
            })
            .collect(),
        exceptions,
    }
}

impl KindSummary {
    fn empty(kind: ClockKind) -> KindSummary {
        KindSummary {
            kind,
            total: 0,
            met: 0,
            late: 0,
            breached: 0,
            open: 0,
            dismissed: 0,
            not_required: 0,
            time_to_stop: None,
        }
    }
}

/// Median, p90 and maximum of `values` (sorted in place); `None` when empty.
pub fn spread(values: &mut [i64]) -> Option<Spread> {
    values.sort_unstable();
    Some(Spread {
        count: values.len(),
        median_seconds: median(values)?,
        p90_seconds: nearest_rank(values, 90)?,
        max_seconds: *values.last()?,
    })
}

/// The median of sorted `values`: the middle one, or the mean of the two middle ones rounded
/// down.
pub fn median(sorted: &[i64]) -> Option<i64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    if n % 2 == 1 {
        Some(sorted[n / 2])
    } else {
        // i128: the sum of two i64 cannot overflow there.
        let sum = i128::from(sorted[n / 2 - 1]) + i128::from(sorted[n / 2]);
        i64::try_from(sum.div_euclid(2)).ok()
    }
}

/// The nearest-rank `pct`-th percentile of sorted `values`: the `⌈pct·n/100⌉`-th smallest (at
/// least the first).
pub fn nearest_rank(sorted: &[i64], pct: usize) -> Option<i64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (pct * n).div_ceil(100).clamp(1, n);
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deciding::cases::CaseMessage;
    use crate::deciding::clock::{Acknowledgement, Stop, StopKind};
    use crate::domain::ids::CaseId;
    use crate::domain::model::FolderRole;
    use time::Duration;
    use time::macros::datetime;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[7]), Some(7));
        assert_eq!(median(&[1, 2, 9]), Some(2));
        // Even: the mean of the two middle values, rounded down to the second.
        assert_eq!(median(&[1, 2, 4, 9]), Some(3));
        assert_eq!(median(&[1, 2, 5, 9]), Some(3));
        assert_eq!(median(&[60, 3600]), Some(1830));
        assert_eq!(median(&[-3, 0]), Some(-2));
        assert_eq!(median(&[i64::MAX, i64::MAX]), Some(i64::MAX));
    }

    #[test]
    fn p90_is_the_nearest_rank() {
        assert_eq!(nearest_rank(&[], 90), None);
        assert_eq!(nearest_rank(&[5], 90), Some(5));
        let ten: Vec<i64> = (1..=10).collect();
        // ⌈0.9 × 10⌉ = 9: the 9th smallest.
        assert_eq!(nearest_rank(&ten, 90), Some(9));
        let eleven: Vec<i64> = (1..=11).collect();
        // ⌈0.9 × 11⌉ = ⌈9.9⌉ = 10.
        assert_eq!(nearest_rank(&eleven, 90), Some(10));
        // ⌈0.9 × 2⌉ = 2: with two values p90 is the larger.
        assert_eq!(nearest_rank(&[1, 100], 90), Some(100));
        assert_eq!(nearest_rank(&ten, 50), Some(5));
        assert_eq!(nearest_rank(&ten, 100), Some(10));
    }

    #[test]
    fn spread_sorts_first() {
        let mut v = vec![30, 10, 40, 20];
        assert_eq!(
            spread(&mut v),
            Some(Spread {
                count: 4,
                median_seconds: 25,
                p90_seconds: 40,
                max_seconds: 40,
            })
        );
        assert_eq!(spread(&mut []), None);
    }

    const T0: Timestamp = datetime!(2026-03-02 10:00 UTC);

    fn case(n: u32, opened_at: Timestamp, clocks: &[&ClockId]) -> Case {
        let id = CaseId::from_stored(&format!("CPR-2026-{n:04}"));
        Case {
            id,
            founder: format!("h{n}"),
            reporter: "r@reporter.test".into(),
            reporter_addresses: vec!["r@reporter.test".into()],
            subject: "s".into(),
            opened_at,
            messages: vec![
                message(&format!("h{n}"), opened_at, false),
                message(&format!("h{n}-staff"), opened_at, true),
                message(&format!("h{n}-ooo"), opened_at, false),
            ],
            certificates: Vec::new(),
            keys: Vec::new(),
            clocks: clocks.iter().map(|c| (*c).clone()).collect(),
            dismissed: None,
        }
    }

    fn message(hash: &str, at: Timestamp, staff: bool) -> CaseMessage {
        CaseMessage {
            content_hash: hash.into(),
            message_id: format!("<{hash}@test>"),
            received_at: at,
            from: "r@reporter.test".into(),
            folder: if staff {
                FolderRole::Sent
            } else {
                FolderRole::Inbox
            },
            staff,
            via: "opened",
        }
    }

    /// A 24-hour clock started at `start`, stopped `stop` later (with `kind`), if at all.
    fn clock(id: &ClockId, start: Timestamp, stop: Option<(Duration, StopKind)>) -> Clock {
        let (kind, target) = if id.as_str().starts_with("revocation:") {
            (
                ClockKind::Revocation,
                Some(id.as_str()["revocation:".len()..].to_string()),
            )
        } else {
            (ClockKind::PreliminaryReport, None)
        };
        Clock {
            claimed: None,
            id: id.clone(),
            kind,
            case: None,
            target,
            started_at: start,
            deadline: start + Duration::hours(24),
            basis: "b".into(),
            matched: None,
            decided_by: None,
            stops: stop
                .map(|(d, kind)| Stop {
                    at: start + d,
                    kind,
                    by: "m".into(),
                })
                .into_iter()
                .collect(),
            acknowledged: None,
        }
    }

    /// Five cases in March, one in February (outside the period): known answers by hand.
    #[test]
    fn known_answers() {
        let p = |n: u32| ClockId::from_stored(&format!("preliminary_report:CPR-2026-{n:04}"));
        let r = |n: u32| ClockId::from_stored(&format!("revocation:crtsh:{n}"));
        let h = Duration::hours;
        let (p1, p2, p3, p4, p5, p6) = (p(1), p(2), p(3), p(4), p(5), p(6));
        let (r1, r2, r3, r9) = (r(1), r(2), r(3), r(9));
        let feb = datetime!(2026-02-20 10:00 UTC);
        let mut cases = vec![
            case(6, feb, &[&p6, &r9]),
            case(1, T0, &[&p1, &r1]),
            case(2, T0 + h(1), &[&p2, &r2]),
            case(3, T0 + h(2), &[&p3, &r3]),
            case(4, T0 + h(3), &[&p4]),
            // Shares r1 with case 1: counted once, with case 1.
            case(5, T0 + h(4), &[&p5, &r1]),
        ];
        cases[1].certificates = vec![crate::domain::model::CertificateRef::bare("crtsh:1".into())];
        cases[5].certificates = vec![crate::domain::model::CertificateRef::bare("crtsh:1".into())];
        cases[2].certificates = vec![crate::domain::model::CertificateRef::bare("crtsh:2".into())];
        let done = StopKind::Done;
        let mut clocks: BTreeMap<ClockId, Clock> = BTreeMap::new();
        for c in [
            clock(&p6, feb, Some((h(1), done))),
            clock(&r9, feb, None),
            // Preliminary reports: met in 2 h and 4 h, late at 30 h, breached, dismissed.
            clock(&p1, T0, Some((h(2), done))),
            clock(&p2, T0 + h(1), Some((h(4), done))),
            clock(&p3, T0 + h(2), Some((h(30), done))),
            clock(&p4, T0 + h(3), None),
            clock(&p5, T0 + h(4), Some((h(1), StopKind::Dismissed))),
            // Revocations: met in 20 h, not required, still open within its deadline.
            clock(&r1, T0, Some((h(20), done))),
            clock(&r2, T0 + h(1), Some((h(3), StopKind::NotRequired))),
            clock(&r3, T0 + h(20), None),
        ] {
            clocks.insert(c.id.clone(), c);
        }
        clocks.get_mut(&p4).unwrap().acknowledged = Some(Acknowledgement {
            at: T0 + h(28),
            reason: "https://bugzilla.example/1".into(),
            by: "<ack@ca.test>".into(),
        });
        let automatic: HashSet<String> = (1..=6).map(|n| format!("h{n}-ooo")).collect();
        let period = Period {
            from: datetime!(2026-03-01 00:00 UTC),
            to: datetime!(2026-04-01 00:00 UTC),
        };
        let at = T0 + h(40);
        let r = report(&cases, &clocks, &automatic, period, at);
        assert_eq!((r.cases, r.reports, r.certificates, r.keys), (5, 5, 2, 0));
        let prelim = &r.clocks[0];
        assert_eq!(prelim.kind, ClockKind::PreliminaryReport);
        assert_eq!(
            (
                prelim.total,
                prelim.met,
                prelim.late,
                prelim.breached,
                prelim.open,
                prelim.dismissed,
                prelim.not_required
            ),
            (5, 2, 1, 1, 0, 1, 0)
        );
        // 2 h, 4 h, 30 h: median 4 h, p90 ⌈2.7⌉ = 3rd = 30 h.
        assert_eq!(
            prelim.time_to_stop,
            Some(Spread {
                count: 3,
                median_seconds: 4 * 3600,
                p90_seconds: 30 * 3600,
                max_seconds: 30 * 3600,
            })
        );
        let rev = &r.clocks[1];
        assert_eq!(
            (
                rev.total,
                rev.met,
                rev.late,
                rev.breached,
                rev.open,
                rev.dismissed,
                rev.not_required
            ),
            (3, 1, 0, 0, 1, 0, 1)
        );
        assert_eq!(rev.time_to_stop.map(|s| s.median_seconds), Some(20 * 3600));
        // p3 late by 6 h (stopped at 32 h, due at 26 h); p4 (due at 27 h) breached 13 h at `at`.
        let ex: Vec<(&str, ClockState, i64, bool)> = r
            .exceptions
            .iter()
            .map(|e| {
                (
                    e.clock.as_str(),
                    e.state,
                    e.overdue_seconds,
                    e.acknowledged.is_some(),
                )
            })
            .collect();
        assert_eq!(
            ex,
            [
                (
                    "preliminary_report:CPR-2026-0003",
                    ClockState::Late,
                    6 * 3600,
                    false
                ),
                (
                    "preliminary_report:CPR-2026-0004",
                    ClockState::Breached,
                    13 * 3600,
                    true
                ),
            ]
        );
        assert_eq!(r.exceptions[0].case, "CPR-2026-0003");

        // Earlier, the late clock was still breached and the acknowledgement not yet given.
        let r = report(&cases, &clocks, &automatic, period, T0 + h(27));
        assert_eq!((r.clocks[0].late, r.clocks[0].breached), (0, 2));
        assert!(r.exceptions.iter().all(|e| e.acknowledged.is_none()));

        let json = serde_json::to_value(report(&cases, &clocks, &automatic, period, at)).unwrap();
        assert_eq!(json["from"], "2026-03-01T00:00:00Z");
        assert_eq!(json["clocks"][0]["kind"], "preliminary_report");
        assert_eq!(json["clocks"][1]["time_to_stop"]["p90_seconds"], 72000);
        assert_eq!(json["exceptions"][1]["state"], "breached");
    }

    #[test]
    fn an_empty_period_reports_zeros_for_both_kinds() {
        let period = Period {
            from: datetime!(2027-01-01 00:00 UTC),
            to: datetime!(2028-01-01 00:00 UTC),
        };
        let r = report(&[], &BTreeMap::new(), &HashSet::new(), period, T0);
        assert_eq!(r.clocks.len(), 2);
        assert!(
            r.clocks
                .iter()
                .all(|k| k.total == 0 && k.time_to_stop.is_none())
        );
        assert!(r.exceptions.is_empty());
    }
}
