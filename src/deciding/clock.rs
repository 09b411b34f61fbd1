//! BR response clocks: windows, deadlines and states (README "How clocks work").
//!
//! Pure: every function takes the moment it evaluates at. A clock is a start, a deadline, the
//! basis that set the deadline, and the stops that may end it; its state is a function of
//! those and `now`. When several pieces of evidence set a deadline the earliest deadline wins
//! (a too-long clock is the error that hurts).

use time::{Duration, macros::datetime};

use crate::domain::event::{ClockKind, ClockState};
use crate::domain::ids::{CaseId, ClockId};
use crate::domain::model::{CertificateRef, Timestamp};

/// BR 4.9.5 and items 1–5 of 4.9.1.1: 24 hours.
pub(crate) const DAY: Duration = Duration::hours(24);
/// BR 4.9.1.2: a subordinate CA certificate, 7 days.
pub(crate) const SUBORDINATE_CA: Duration = Duration::days(7);

pub(crate) const BASIS_PRELIMINARY: &str = "br-4.9.5-24h";
pub(crate) const BASIS_DEFAULT: &str = "default-24h";
pub(crate) const BASIS_CA: &str = "subordinate-ca-7d";
pub(crate) const BASIS_KEY: &str = "key-evidence";
pub(crate) const BASIS_EXPIRED: &str = "expired";

/// One piece of evidence that puts a deadline on a clock: known at `at`, due within `window`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub at: Timestamp,
    pub window: Duration,
    pub basis: String,
    /// The report's phrase behind a rule basis, shown so staff can see why.
    pub matched: Option<String>,
}

impl Candidate {
    pub(crate) fn deadline(&self) -> Timestamp {
        self.at + self.window
    }
}

/// How a clock can end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopKind {
    /// The thing was done: the preliminary report sent, the certificate revoked.
    Done,
    /// Staff decided no revocation is due.
    NotRequired,
    /// The certificate expired: no revocation is due from then on.
    Expired,
    /// Staff said the case is not a problem report.
    Dismissed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stop {
    pub at: Timestamp,
    pub kind: StopKind,
    /// What stopped it (a message id, `notAfter`).
    pub by: String,
}

/// A clock with everything needed to tell its state at any moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clock {
    /// `preliminary_report:<case>` or `revocation:<ref>`.
    pub id: ClockId,
    pub kind: ClockKind,
    /// The case, for a preliminary-report clock.
    pub case: Option<CaseId>,
    /// The certificate or key reference, for a revocation clock.
    pub target: Option<String>,
    pub started_at: Timestamp,
    pub deadline: Timestamp,
    pub basis: String,
    /// The report's phrase behind a rule basis (see [`Candidate::matched`]).
    pub matched: Option<String>,
    /// The staff message whose `CPR-Reason` set the window, if one did.
    pub decided_by: Option<String>,
    /// Every way it may end, in any order; only those at or before `now` count.
    pub stops: Vec<Stop>,
    /// Staff's latest `CPR-Delayed` on it: the desk knows it is (or will be) late. It changes
    /// neither the deadline nor the state (a breach stays a breach); it only ends the
    /// reminders (see [`crate::deciding::alerts`]).
    pub acknowledged: Option<Acknowledgement>,
    /// Staff's latest `CPR-Revoked` on it while `[revocation] require_verified` holds: a claim,
    /// which stops nothing until OCSP or CRL confirms it (then the check's own stop does).
    /// Kept so the views show the claim beside what the responders say, and so a claim the
    /// responders contradict past `claim_grace` can be an alert.
    pub claimed: Option<Claim>,
}

/// Staff said a certificate is revoked (`CPR-Revoked`), and nothing has verified it yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The staff message's receipt time: the grace before an alert counts from here.
    pub at: Timestamp,
    /// The revocation time staff gave, or the receipt time when they gave none.
    pub revoked_at: Timestamp,
    /// The staff message that carried it (its Message-Id).
    pub by: String,
}

/// Staff acknowledged that a clock is, or will be, late (`CPR-Delayed`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acknowledgement {
    /// The staff message's receipt time.
    pub at: Timestamp,
    /// The incident URL or reason staff gave.
    pub reason: String,
    /// The staff message that carried it (its Message-Id).
    pub by: String,
}

/// Staff's determination of the BR 4.9.1.1 item behind a revocation (`CPR-Reason`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    /// When staff decided (their message's receipt time).
    pub at: Timestamp,
    pub item: u8,
    /// The staff message that carried it (its Message-Id).
    pub by: String,
}

/// The basis of a clock whose window staff set.
pub(crate) fn staff_basis(item: u8) -> String {
    format!("staff-item-{item}")
}

/// A clock's state at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub state: ClockState,
    pub stopped_at: Option<Timestamp>,
    /// The basis to show: the clock's own, or `expired` when expiry closed it.
    pub basis: String,
}

impl Clock {
    /// Build a clock from its evidence: the earliest evidence starts it, the earliest deadline
    /// among them ends it. `None` when there is no evidence.
    pub(crate) fn from_candidates(
        id: ClockId,
        kind: ClockKind,
        case: Option<CaseId>,
        target: Option<String>,
        candidates: &[Candidate],
    ) -> Option<Clock> {
        let started_at = candidates.iter().map(|c| c.at).min()?;
        let best = candidates
            .iter()
            .min_by(|a, b| a.deadline().cmp(&b.deadline()).then(a.basis.cmp(&b.basis)))?;
        Some(Clock {
            id,
            kind,
            case,
            target,
            started_at,
            deadline: best.deadline(),
            basis: best.basis.clone(),
            matched: best.matched.clone(),
            decided_by: None,
            stops: Vec::new(),
            acknowledged: None,
            claimed: None,
        })
    }

    /// Staff determined the reason: the window is that BR item's, counted from the clock's
    /// start, whether it ends sooner or later than the evidence's (the CA decides, and the log
    /// keeps who did and what the window was before).
    pub(crate) fn decide(&mut self, d: &Decision) {
        if let Some(window) = crate::reading::rules::br_max_window(d.item) {
            self.deadline = self.started_at + window;
            self.basis = staff_basis(d.item);
            self.matched = None;
            self.decided_by = Some(d.by.clone());
        }
    }

    /// The state at `now`: the earliest stop that has happened by then decides; otherwise the
    /// clock runs, `pending` before the deadline and `breached` from it on.
    pub fn status(&self, now: Timestamp) -> Status {
        match self.stop_at(now) {
            None => Status {
                state: if now < self.deadline {
                    ClockState::Pending
                } else {
                    ClockState::Breached
                },
                stopped_at: None,
                basis: self.basis.clone(),
            },
            Some(s) => Status {
                state: match s.kind {
                    StopKind::Done if s.at <= self.deadline => ClockState::Met,
                    StopKind::Done => ClockState::Late,
                    StopKind::NotRequired | StopKind::Expired => ClockState::NotRequired,
                    StopKind::Dismissed => ClockState::Dismissed,
                },
                stopped_at: Some(s.at),
                basis: if s.kind == StopKind::Expired {
                    BASIS_EXPIRED.to_string()
                } else {
                    self.basis.clone()
                },
            },
        }
    }

    /// The stop that decides the state at `now` (and what did it, for an audit): the earliest
    /// that has happened by then.
    pub fn stop_at(&self, now: Timestamp) -> Option<&Stop> {
        self.stops
            .iter()
            .filter(|s| s.at <= now)
            .min_by_key(|s| (s.at, stop_rank(s.kind)))
    }

    /// The first moment after `t` at which time alone may change this clock's state: its
    /// deadline or a stop, whichever comes first after `t`. Between `t` and that moment the
    /// state is what it was at `t`, so a caller need not look again before then.
    pub(crate) fn next_change_after(&self, t: Timestamp) -> Option<Timestamp> {
        self.stops
            .iter()
            .map(|s| s.at)
            .chain(std::iter::once(self.deadline))
            .filter(|&at| at > t)
            .min()
    }
}

/// Ties at the same second: an action taken beats a decision not to act, beats expiry, beats
/// dismissal — the record shows what the desk did.
fn stop_rank(kind: StopKind) -> u8 {
    match kind {
        StopKind::Done => 0,
        StopKind::NotRequired => 1,
        StopKind::Expired => 2,
        StopKind::Dismissed => 3,
    }
}

/// BR 4.9.1.1: a Short-lived Subscriber Certificate (validity ≤ 7 days, or ≤ 10 days when
/// issued before 2026-03-15) may go unrevoked. Unknown validity is never short-lived, and a CA
/// certificate never is.
pub(crate) fn is_short_lived(cert: &CertificateRef) -> bool {
    let (Some(nb), Some(na)) = (cert.not_before, cert.not_after) else {
        return false;
    };
    if cert.is_ca == Some(true) {
        return false;
    }
    // The BRs count validity inclusively: notBefore through notAfter, both seconds included.
    let validity = na - nb + Duration::seconds(1);
    let limit = if nb < datetime!(2026-03-15 00:00 UTC) {
        Duration::days(10)
    } else {
        Duration::days(7)
    };
    validity <= limit
}

/// The stop that expiry puts on a revocation clock: at receipt when the certificate had
/// already expired, at notAfter when it expires before the deadline.
pub(crate) fn expiry_stop(
    cert: &CertificateRef,
    started_at: Timestamp,
    deadline: Timestamp,
) -> Option<Stop> {
    let na = cert.not_after?;
    if na <= started_at {
        Some(Stop {
            at: started_at,
            kind: StopKind::Expired,
            by: "notAfter".into(),
        })
    } else if na < deadline {
        Some(Stop {
            at: na,
            kind: StopKind::Expired,
            by: "notAfter".into(),
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::timefmt::parse;

    fn t(s: &str) -> Timestamp {
        parse(s).unwrap()
    }

    fn clock(stops: Vec<Stop>) -> Clock {
        let mut c = Clock::from_candidates(
            ClockId::revocation("crtsh:1"),
            ClockKind::Revocation,
            None,
            Some("crtsh:1".into()),
            &[
                Candidate {
                    at: t("2026-01-01T00:00:00Z"),
                    window: Duration::days(5),
                    basis: "misissuance".into(),
                    matched: None,
                },
                Candidate {
                    at: t("2026-01-02T00:00:00Z"),
                    window: DAY,
                    basis: BASIS_KEY.into(),
                    matched: None,
                },
            ],
        )
        .unwrap();
        c.stops = stops;
        c
    }

    #[test]
    fn earliest_start_and_earliest_deadline_win() {
        let c = clock(vec![]);
        assert_eq!(c.started_at, t("2026-01-01T00:00:00Z"));
        assert_eq!(c.deadline, t("2026-01-03T00:00:00Z"));
        assert_eq!(c.basis, BASIS_KEY);
    }

    #[test]
    fn a_staff_decision_sets_the_window_both_ways() {
        let mut c = clock(vec![]);
        c.decide(&Decision {
            at: t("2026-01-02T10:00:00Z"),
            item: 6,
            by: "<d1@ca.test>".into(),
        });
        assert_eq!(c.deadline, t("2026-01-06T00:00:00Z"));
        assert_eq!(c.basis, "staff-item-6");
        c.decide(&Decision {
            at: t("2026-01-02T11:00:00Z"),
            item: 3,
            by: "<d2@ca.test>".into(),
        });
        assert_eq!(c.deadline, t("2026-01-02T00:00:00Z"));
        assert_eq!(c.basis, "staff-item-3");
        assert_eq!(c.decided_by.as_deref(), Some("<d2@ca.test>"));
    }

    #[test]
    fn states_follow_now_and_stops() {
        let c = clock(vec![]);
        assert_eq!(
            c.status(t("2026-01-02T23:59:59Z")).state,
            ClockState::Pending
        );
        assert_eq!(
            c.status(t("2026-01-03T00:00:00Z")).state,
            ClockState::Breached
        );
        let done = |at: &str| Stop {
            at: t(at),
            kind: StopKind::Done,
            by: "<m@x>".into(),
        };
        let c = clock(vec![done("2026-01-02T12:00:00Z")]);
        assert_eq!(
            c.status(t("2026-01-02T11:00:00Z")).state,
            ClockState::Pending
        );
        assert_eq!(c.status(t("2026-01-05T00:00:00Z")).state, ClockState::Met);
        let c = clock(vec![done("2026-01-04T00:00:00Z")]);
        let s = c.status(t("2026-01-05T00:00:00Z"));
        assert_eq!(s.state, ClockState::Late);
        assert_eq!(s.stopped_at, Some(t("2026-01-04T00:00:00Z")));
    }

    #[test]
    fn the_state_holds_until_the_next_change() {
        let done = Stop {
            at: t("2026-01-02T12:00:00Z"),
            kind: StopKind::Done,
            by: "<m@x>".into(),
        };
        let c = clock(vec![done]);
        let before = t("2026-01-01T06:00:00Z");
        assert_eq!(c.next_change_after(before), Some(t("2026-01-02T12:00:00Z")));
        assert_eq!(
            c.next_change_after(t("2026-01-02T12:00:00Z")),
            Some(c.deadline)
        );
        assert_eq!(c.next_change_after(c.deadline), None);
        // Every second up to the announced change has the state of the start.
        let mut at = before;
        let next = c.next_change_after(before).unwrap();
        while at < next {
            assert_eq!(c.status(at).state, c.status(before).state);
            at += Duration::minutes(7);
        }
        assert_ne!(c.status(next).state, c.status(before).state);
    }

    #[test]
    fn short_lived_follows_the_issuance_date() {
        let mut c = CertificateRef::bare("sha256:00".into());
        c.not_before = Some(t("2026-04-01T00:00:00Z"));
        c.not_after = Some(t("2026-04-07T23:59:59Z"));
        assert!(is_short_lived(&c));
        c.not_after = Some(t("2026-04-09T00:00:00Z"));
        assert!(!is_short_lived(&c));
        c.not_before = Some(t("2026-03-01T00:00:00Z"));
        c.not_after = Some(t("2026-03-10T00:00:00Z"));
        assert!(is_short_lived(&c));
        c.is_ca = Some(true);
        assert!(!is_short_lived(&c));
    }

    #[test]
    fn expiry_closes_at_receipt_or_at_not_after() {
        let mut c = CertificateRef::bare("sha256:00".into());
        c.not_after = Some(t("2026-01-01T00:00:00Z"));
        let s = expiry_stop(&c, t("2026-01-02T00:00:00Z"), t("2026-01-03T00:00:00Z")).unwrap();
        assert_eq!(s.at, t("2026-01-02T00:00:00Z"));
        c.not_after = Some(t("2026-01-02T12:00:00Z"));
        let s = expiry_stop(&c, t("2026-01-02T00:00:00Z"), t("2026-01-03T00:00:00Z")).unwrap();
        assert_eq!(s.at, t("2026-01-02T12:00:00Z"));
        c.not_after = Some(t("2026-02-01T00:00:00Z"));
        assert!(expiry_stop(&c, t("2026-01-02T00:00:00Z"), t("2026-01-03T00:00:00Z")).is_none());
    }
}
