//! Which alerts a clock is owed at a moment (README "Alerts").
//!
//! Pure: every function takes the moment it evaluates at and what was already alerted, so a
//! re-evaluation, a restart or a replay asks the same question and gets the same answer. A
//! clock moves through *stages* in one order — each `warn_before` threshold, the breach, then a
//! reminder every `repeat` — and an alert is owed only for a stage later than the last one
//! alerted. So when several stages have passed by the time a clock is first seen (cprwatch was
//! down, or a first sync of an old mailbox), only the latest is sent; and each stage has a key
//! ([`Stage::key`]) that the outbox keeps unique, so no stage is ever alerted twice.

use time::Duration;

use crate::deciding::clock::{Acknowledgement, Clock};
use crate::domain::event::{ClockKind, ClockState};
use crate::domain::model::Timestamp;

/// What an alert is about; routes choose which levels they take (`[[alerts.route]] levels`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertLevel {
    /// A running clock crossed a `warn_before` threshold.
    Warning,
    /// A clock reached its deadline unstopped.
    Breach,
    /// A breached clock is still not stopped (every `repeat`, until acknowledged or stopped).
    Reminder,
    /// A 5-day revocation clock is past `advisory_after` (the BRs' SHOULD 24 h).
    Advisory,
    /// The mailbox canary did not arrive, arrived in junk, or bounced.
    Canary,
    /// Many alerts at once, or breaches older than cprwatch's first sight of them, in one mail.
    Digest,
    /// An alert or receipt could not be delivered.
    Delivery,
    /// OCSP or CRL contradicts a staff `CPR-Revoked`, or the two disagree.
    Revocation,
}

impl AlertLevel {
    pub const ALL: [AlertLevel; 8] = [
        AlertLevel::Warning,
        AlertLevel::Breach,
        AlertLevel::Reminder,
        AlertLevel::Advisory,
        AlertLevel::Canary,
        AlertLevel::Digest,
        AlertLevel::Delivery,
        AlertLevel::Revocation,
    ];

    /// The name in the configuration and in `X-CPR-Level`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertLevel::Warning => "warning",
            AlertLevel::Breach => "breach",
            AlertLevel::Reminder => "reminder",
            AlertLevel::Advisory => "advisory",
            AlertLevel::Canary => "canary",
            AlertLevel::Digest => "digest",
            AlertLevel::Delivery => "delivery",
            AlertLevel::Revocation => "revocation",
        }
    }

    pub fn parse(s: &str) -> Option<AlertLevel> {
        AlertLevel::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

/// When clocks alert (`[alerts]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertPolicy {
    /// Time left at which a running clock warns, longest first, each once.
    pub warn_before: Vec<Duration>,
    /// How often a breached clock is reminded until it stops or is acknowledged.
    pub repeat: Duration,
    /// When a 5-day revocation clock gets its advisory, counted from its start.
    pub advisory_after: Duration,
    /// More alerts than this for one route in one evaluation go out as one digest.
    pub flood: usize,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        AlertPolicy::new(
            vec![Duration::hours(12), Duration::hours(4), Duration::hours(1)],
            Duration::hours(4),
            Duration::hours(24),
            20,
        )
    }
}

/// A breach older than this when cprwatch first saw the clock is history, not news: it goes
/// into one digest instead of an alert of its own.
pub const OLD_BREACH: Duration = Duration::days(7);

/// The window of the revocation clocks that get an advisory: BR 4.9.1.1 items that allow 5
/// days, where the CA SHOULD still revoke within 24 hours.
const FIVE_DAYS: Duration = Duration::days(5);

impl AlertPolicy {
    /// A policy with `warn_before` put in the order clocks cross them (longest first, each once).
    pub fn new(
        mut warn_before: Vec<Duration>,
        repeat: Duration,
        advisory_after: Duration,
        flood: usize,
    ) -> AlertPolicy {
        warn_before.sort_by(|a, b| b.cmp(a));
        warn_before.dedup();
        AlertPolicy {
            warn_before,
            repeat,
            advisory_after,
            flood,
        }
    }
}

/// Where a clock stands in its alert schedule. Ordered as a clock passes through them: the
/// longest warning first, the breach, then reminders in turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Crossed the threshold of this much time left (the negated seconds order longer first).
    Warning(std::cmp::Reverse<i64>),
    Breach,
    /// The n-th reminder (1 = one `repeat` after the deadline).
    Reminder(i64),
}

impl Stage {
    pub fn level(self) -> AlertLevel {
        match self {
            Stage::Warning(_) => AlertLevel::Warning,
            Stage::Breach => AlertLevel::Breach,
            Stage::Reminder(_) => AlertLevel::Reminder,
        }
    }

    /// The stage's key, unique per clock: `warning:43200s`, `breach`, `reminder:3`.
    pub fn key(self) -> String {
        match self {
            Stage::Warning(std::cmp::Reverse(secs)) => format!("warning:{secs}s"),
            Stage::Breach => "breach".into(),
            Stage::Reminder(n) => format!("reminder:{n}"),
        }
    }
}

/// What was already alerted for one clock, as the log records it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Alerted {
    /// When cprwatch first evaluated this clock for alerts.
    pub first_seen: Option<Timestamp>,
    /// The latest stage alerted (or passed over in a digest).
    pub last: Option<Stage>,
    /// Whether the advisory was sent.
    pub advisory: bool,
}

/// One alert a clock is owed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owed {
    pub level: AlertLevel,
    /// Unique per clock: what the outbox is keyed by.
    pub key: String,
    /// The stage this alert moves the clock to (none for an advisory).
    pub stage: Option<Stage>,
    /// A breach older than [`OLD_BREACH`] when first seen: listed in a digest, not sent alone.
    pub old: bool,
}

/// Staff's acknowledgement of `clock` (`CPR-Delayed`) in effect at `now`: the clock's own, once
/// its message was received. The one source of "acknowledged" for alerts: the clock carries it
/// as the projection derived it from the log.
pub fn acknowledgement(clock: &Clock, now: Timestamp) -> Option<&Acknowledgement> {
    clock.acknowledged.as_ref().filter(|a| a.at <= now)
}

/// The stage a clock is in at `now`, if any: `None` before its first threshold and once it is
/// stopped. A breached clock that staff acknowledged stays at the breach: no reminders from
/// the acknowledgement on, whether it came before or after the deadline (warnings and the
/// breach itself are still owed: an acknowledgement in advance takes effect from the breach).
pub fn stage_at(policy: &AlertPolicy, clock: &Clock, now: Timestamp) -> Option<Stage> {
    match clock.status(now).state {
        ClockState::Pending => {
            let left = clock.deadline - now;
            policy
                .warn_before
                .iter()
                .rev()
                .find(|t| left <= **t)
                .map(|t| Stage::Warning(std::cmp::Reverse(t.whole_seconds())))
        }
        ClockState::Breached => {
            let over = now - clock.deadline;
            let n = if policy.repeat.is_positive() {
                over.whole_seconds() / policy.repeat.whole_seconds().max(1)
            } else {
                0
            };
            if n == 0 || acknowledgement(clock, now).is_some() {
                Some(Stage::Breach)
            } else {
                Some(Stage::Reminder(n))
            }
        }
        _ => None,
    }
}

/// The alerts `clock` is owed at `now`, given what was alerted. At most one stage alert (the
/// latest owed: earlier ones passed unsent are passed over), and the advisory while no stage
/// has begun.
pub fn owed(policy: &AlertPolicy, clock: &Clock, alerted: &Alerted, now: Timestamp) -> Vec<Owed> {
    let mut out = Vec::new();
    let stage = stage_at(policy, clock, now);
    if let Some(s) = stage
        && alerted.last.is_none_or(|last| s > last)
    {
        let first_seen = alerted.first_seen.unwrap_or(now);
        out.push(Owed {
            level: s.level(),
            key: s.key(),
            stage: Some(s),
            old: s >= Stage::Breach && clock.deadline + OLD_BREACH < first_seen,
        });
    }
    let advisory_due = clock.kind == ClockKind::Revocation
        && clock.deadline - clock.started_at == FIVE_DAYS
        && clock.status(now).state == ClockState::Pending
        && now >= clock.started_at + policy.advisory_after;
    if advisory_due && !alerted.advisory && stage.is_none() && alerted.last.is_none() {
        out.push(Owed {
            level: AlertLevel::Advisory,
            key: "advisory".into(),
            stage: None,
            old: false,
        });
    }
    out
}

/// How one route's alerts of one evaluation go out: each alone, or all in one digest when
/// there are more than `flood` of them. Breaches older than [`OLD_BREACH`] always go in a
/// digest, alone if need be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batching<T> {
    pub single: Vec<T>,
    pub digest: Vec<T>,
}

pub fn batch<T>(policy: &AlertPolicy, alerts: Vec<T>, is_old: impl Fn(&T) -> bool) -> Batching<T> {
    let (old, fresh): (Vec<T>, Vec<T>) = alerts.into_iter().partition(|a| is_old(a));
    if fresh.len() > policy.flood {
        let mut digest = fresh;
        digest.extend(old);
        Batching {
            single: Vec::new(),
            digest,
        }
    } else {
        Batching {
            single: fresh,
            digest: old,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deciding::clock::{Stop, StopKind};
    use crate::domain::ids::ClockId;
    use time::macros::datetime;

    const T0: Timestamp = datetime!(2026-03-01 00:00 UTC);

    fn clock(kind: ClockKind, window: Duration) -> Clock {
        Clock {
            claimed: None,
            id: ClockId::from_stored("revocation:crtsh:1"),
            kind,
            case: None,
            target: Some("crtsh:1".into()),
            started_at: T0,
            deadline: T0 + window,
            basis: "test".into(),
            matched: None,
            decided_by: None,
            stops: Vec::new(),
            acknowledged: None,
        }
    }

    /// Evaluate every `step` from `from` to `to`, recording what is sent as the log would:
    /// the alerts sent, with the moment.
    fn run(
        policy: &AlertPolicy,
        c: &Clock,
        alerted: &mut Alerted,
        from: Timestamp,
        to: Timestamp,
        step: Duration,
    ) -> Vec<(Timestamp, String)> {
        let mut sent = Vec::new();
        let mut now = from;
        while now <= to {
            alerted.first_seen.get_or_insert(now);
            for o in owed(policy, c, alerted, now) {
                if let Some(s) = o.stage {
                    alerted.last = Some(s);
                } else {
                    alerted.advisory = true;
                }
                sent.push((now, o.key));
            }
            now += step;
        }
        sent
    }

    fn keys(sent: &[(Timestamp, String)]) -> Vec<&str> {
        sent.iter().map(|(_, k)| k.as_str()).collect()
    }

    #[test]
    fn each_warning_once_then_breach_then_reminders_every_repeat() {
        let p = AlertPolicy::default();
        let c = clock(ClockKind::PreliminaryReport, Duration::hours(24));
        let mut a = Alerted::default();
        let sent = run(
            &p,
            &c,
            &mut a,
            T0,
            T0 + Duration::hours(37),
            Duration::minutes(1),
        );
        assert_eq!(
            keys(&sent),
            [
                "warning:43200s",
                "warning:14400s",
                "warning:3600s",
                "breach",
                "reminder:1",
                "reminder:2",
                "reminder:3"
            ]
        );
        // Each at the right minute: 12 h, 4 h and 1 h before, at the deadline, every 4 h after.
        let at: Vec<Timestamp> = sent.iter().map(|(t, _)| *t).collect();
        let h = |n: i64| T0 + Duration::hours(n);
        assert_eq!(at, [h(12), h(20), h(23), h(24), h(28), h(32), h(36)]);
        // Evaluating again at the same moment owes nothing.
        assert!(owed(&p, &c, &a, h(36)).is_empty());
    }

    #[test]
    fn a_clock_first_seen_late_gets_only_the_latest_stage() {
        let p = AlertPolicy::default();
        let c = clock(ClockKind::PreliminaryReport, Duration::hours(24));
        // First seen 2 h before the deadline: the 12 h and 4 h warnings are passed over.
        let mut a = Alerted::default();
        let sent = run(
            &p,
            &c,
            &mut a,
            T0 + Duration::hours(22),
            T0 + Duration::hours(22),
            Duration::minutes(1),
        );
        assert_eq!(keys(&sent), ["warning:14400s"]);
        // First seen 9 h after the deadline: the second reminder, nothing before it.
        let mut a = Alerted::default();
        let at = T0 + Duration::hours(33);
        let o = owed(&p, &c, &a, at);
        assert_eq!(o.len(), 1);
        assert_eq!((o[0].key.as_str(), o[0].old), ("reminder:2", false));
        a.last = o[0].stage;
        assert!(owed(&p, &c, &a, at + Duration::hours(1)).is_empty());
    }

    #[test]
    fn a_breach_older_than_a_week_when_first_seen_goes_to_a_digest() {
        let p = AlertPolicy::default();
        let c = clock(ClockKind::PreliminaryReport, Duration::hours(24));
        let seen = T0 + Duration::hours(24) + OLD_BREACH + Duration::minutes(1);
        let a = Alerted {
            first_seen: Some(seen),
            ..Alerted::default()
        };
        let o = owed(&p, &c, &a, seen);
        assert_eq!(o.len(), 1);
        assert!(o[0].old, "{o:?}");
        // Seen a minute earlier, it is news.
        let seen = seen - Duration::minutes(2);
        let a = Alerted {
            first_seen: Some(seen),
            ..Alerted::default()
        };
        assert!(!owed(&p, &c, &a, seen)[0].old);
    }

    #[test]
    fn no_alert_for_a_clock_stopped_in_time_and_none_after_a_stop() {
        let p = AlertPolicy::default();
        let mut c = clock(ClockKind::PreliminaryReport, Duration::hours(24));
        c.stops.push(Stop {
            at: T0 + Duration::hours(2),
            kind: StopKind::Done,
            by: "<answer@example-ca.test>".into(),
        });
        let mut a = Alerted::default();
        let sent = run(
            &p,
            &c,
            &mut a,
            T0,
            T0 + Duration::days(3),
            Duration::minutes(5),
        );
        assert!(sent.is_empty(), "{sent:?}");
        // Stopped after the 12 h warning: that warning, then nothing.
        c.stops[0].at = T0 + Duration::hours(13);
        let mut a = Alerted::default();
        let sent = run(
            &p,
            &c,
            &mut a,
            T0,
            T0 + Duration::days(3),
            Duration::minutes(5),
        );
        assert_eq!(keys(&sent), ["warning:43200s"]);
    }

    fn acknowledged(c: &Clock, at: Timestamp) -> Clock {
        Clock {
            acknowledged: Some(Acknowledgement {
                at,
                reason: "https://bugzilla.mozilla.org/show_bug.cgi?id=1".into(),
                by: "<delayed@example-ca.test>".into(),
            }),
            ..c.clone()
        }
    }

    #[test]
    fn an_acknowledged_breach_stays_breached_without_reminders() {
        let p = AlertPolicy::default();
        let c = clock(ClockKind::Revocation, Duration::hours(24));
        let mut a = Alerted::default();
        let mut sent = run(
            &p,
            &c,
            &mut a,
            T0,
            T0 + Duration::hours(29),
            Duration::minutes(1),
        );
        assert_eq!(keys(&sent).last(), Some(&"reminder:1"));
        let c = acknowledged(&c, T0 + Duration::hours(30));
        sent = run(
            &p,
            &c,
            &mut a,
            T0 + Duration::hours(30),
            T0 + Duration::days(4),
            Duration::minutes(1),
        );
        assert!(sent.is_empty(), "{sent:?}");
        assert_eq!(c.status(T0 + Duration::days(4)).state, ClockState::Breached);
    }

    /// The breach is alerted; an hour later staff send `CPR-Delayed`: no reminder after it,
    /// ever, and the clock is still breached (its deadline unmoved). Without it, reminders.
    #[test]
    fn cpr_delayed_an_hour_after_the_breach_ends_the_reminders_not_the_breach() {
        let p = AlertPolicy::default();
        let c = clock(ClockKind::PreliminaryReport, Duration::hours(24));
        let breach = c.deadline;
        let c = acknowledged(&c, breach + Duration::hours(1));
        let mut a = Alerted::default();
        let sent = run(
            &p,
            &c,
            &mut a,
            T0,
            breach + Duration::days(3),
            Duration::minutes(1),
        );
        assert_eq!(
            keys(&sent),
            [
                "warning:43200s",
                "warning:14400s",
                "warning:3600s",
                "breach"
            ]
        );
        assert_eq!(sent.last().map(|s| s.0), Some(breach));
        let later = breach + Duration::days(3);
        assert_eq!(c.status(later).state, ClockState::Breached);
        assert_eq!(c.deadline, T0 + Duration::hours(24));
        assert_eq!(stage_at(&p, &c, later), Some(Stage::Breach));
        // Before the message was received it is not in effect.
        assert!(acknowledgement(&c, breach).is_none());
        assert!(acknowledgement(&c, breach + Duration::hours(1)).is_some());
        // The same clock unacknowledged is reminded every 4 hours.
        let plain = Clock {
            acknowledged: None,
            ..c.clone()
        };
        let mut a = Alerted::default();
        let sent = run(
            &p,
            &plain,
            &mut a,
            T0,
            breach + Duration::hours(9),
            Duration::minutes(1),
        );
        assert_eq!(keys(&sent).last(), Some(&"reminder:2"));
    }

    /// Acknowledged before its deadline (a CA that knows it will be late): warnings and the
    /// breach still go out; no reminder follows.
    #[test]
    fn cpr_delayed_in_advance_takes_effect_from_the_breach() {
        let p = AlertPolicy::default();
        let c = acknowledged(
            &clock(ClockKind::Revocation, Duration::hours(24)),
            T0 + Duration::hours(2),
        );
        let mut a = Alerted::default();
        let sent = run(
            &p,
            &c,
            &mut a,
            T0,
            T0 + Duration::days(3),
            Duration::minutes(1),
        );
        assert_eq!(
            keys(&sent),
            [
                "warning:43200s",
                "warning:14400s",
                "warning:3600s",
                "breach"
            ]
        );
        assert_eq!(c.status(T0 + Duration::days(3)).state, ClockState::Breached);
    }

    #[test]
    fn five_day_revocation_clocks_get_an_advisory_after_a_day() {
        let p = AlertPolicy::default();
        let c = clock(ClockKind::Revocation, Duration::days(5));
        let mut a = Alerted::default();
        let sent = run(
            &p,
            &c,
            &mut a,
            T0,
            T0 + Duration::days(5),
            Duration::minutes(10),
        );
        assert_eq!(sent[0], (T0 + Duration::hours(24), "advisory".to_string()));
        assert_eq!(
            keys(&sent[1..]),
            [
                "warning:43200s",
                "warning:14400s",
                "warning:3600s",
                "breach"
            ]
        );
        // A 24-hour clock and a preliminary-report clock get none.
        for c in [
            clock(ClockKind::Revocation, Duration::hours(24)),
            clock(ClockKind::PreliminaryReport, Duration::days(5)),
        ] {
            let mut a = Alerted::default();
            let sent = run(
                &p,
                &c,
                &mut a,
                T0,
                T0 + Duration::days(5),
                Duration::minutes(10),
            );
            assert!(!keys(&sent).contains(&"advisory"), "{sent:?}");
        }
    }

    #[test]
    fn more_than_flood_alerts_for_a_route_become_one_digest() {
        let p = AlertPolicy {
            flood: 3,
            ..AlertPolicy::default()
        };
        let few = batch(&p, vec![(1, false), (2, false), (3, true)], |a| a.1);
        assert_eq!(few.single, [(1, false), (2, false)]);
        assert_eq!(few.digest, [(3, true)]);
        let many = batch(&p, (0..4).map(|i| (i, false)).collect(), |a| a.1);
        assert!(many.single.is_empty());
        assert_eq!(many.digest.len(), 4);
    }

    #[test]
    fn levels_read_back_from_their_names() {
        for l in AlertLevel::ALL {
            assert_eq!(AlertLevel::parse(l.as_str()), Some(l));
        }
        assert_eq!(AlertLevel::parse("page"), None);
    }
}
