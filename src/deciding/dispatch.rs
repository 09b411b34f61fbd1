//! Which mails one evaluation of the clocks queues, to whom, and when to look again.
//!
//! [`super::alerts`] says what one clock is owed at a moment; this turns the clocks evaluated
//! together into mails: every owed alert goes to every route that takes its level, and a route
//! that would get more than `flood` alerts from one evaluation (a spam wave) gets one digest
//! instead, as do breaches that were already old when cprwatch first saw them. It also says
//! when each clock next needs evaluating, so the service evaluates only the clocks whose moment
//! has come instead of every open clock on every tick.
//!
//! Pure: the caller reads the clocks and what was alerted from the store and writes back what
//! this returns, in one transaction with the mails (the outbox), so a crash repeats an
//! evaluation whole or not at all.

use std::collections::BTreeMap;

use crate::deciding::alerts::{self, AlertLevel, AlertPolicy, Alerted, Stage};
use crate::deciding::clock::Clock;
use crate::domain::event::ClockState;
use crate::domain::ids::ClockId;
use crate::domain::model::Timestamp;

/// `[[alerts.route]]`: every alert whose level is in `levels` goes to every address in `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub to: Vec<String>,
    pub levels: Vec<AlertLevel>,
}

impl Route {
    pub(crate) fn takes(&self, level: AlertLevel) -> bool {
        self.levels.contains(&level)
    }
}

/// One alert a clock is owed, ready to be put in a mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Item {
    pub clock: ClockId,
    pub level: AlertLevel,
    /// The stage's key ([`Stage::key`], or `advisory`): with the clock, the alert's identity.
    pub key: String,
    /// Breached more than [`alerts::OLD_BREACH`] before cprwatch first saw the clock.
    pub old: bool,
}

/// One mail to queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mail {
    /// Index into the routes.
    pub route: usize,
    /// [`AlertLevel::Digest`] when it lists several alerts; else the one item's level.
    pub level: AlertLevel,
    pub items: Vec<Item>,
}

/// What an evaluation decided: the mails, and each evaluated clock's new alert state with the
/// moment it next needs evaluating (`None`: not until the clock itself changes).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Plan {
    pub mails: Vec<Mail>,
    pub states: Vec<(ClockId, Alerted, Option<Timestamp>)>,
}

/// Evaluate `clocks` (each with what was alerted for it so far) at `now`.
///
/// A clock never seen before is seen now. Alerts owed go to every route that takes their
/// level; a clock whose alert no route takes is still marked alerted (a route added later does
/// not get a backlog of old warnings). Per route, more than `flood` fresh alerts become one
/// digest, and old breaches always go in a digest.
pub(crate) fn plan(
    policy: &AlertPolicy,
    routes: &[Route],
    clocks: Vec<(Clock, Alerted)>,
    now: Timestamp,
) -> Plan {
    let mut out = Plan::default();
    let mut per_route: BTreeMap<usize, Vec<Item>> = BTreeMap::new();
    for (clock, mut alerted) in clocks {
        alerted.first_seen.get_or_insert(now);
        for owed in alerts::owed(policy, &clock, &alerted, now) {
            match owed.stage {
                Some(s) => alerted.last = Some(s),
                None => alerted.advisory = true,
            }
            let item = Item {
                clock: clock.id.clone(),
                level: owed.level,
                key: owed.key,
                old: owed.old,
            };
            for (i, r) in routes.iter().enumerate() {
                if r.takes(item.level) {
                    per_route.entry(i).or_default().push(item.clone());
                }
            }
        }
        let next = next_due(policy, &clock, &alerted, now);
        out.states.push((clock.id, alerted, next));
    }
    for (route, items) in per_route {
        let batching = alerts::batch(policy, items, |i: &Item| i.old);
        for item in batching.single {
            out.mails.push(Mail {
                route,
                level: item.level,
                items: vec![item],
            });
        }
        // A digest stands in for alerts the route takes, so it goes there whether or not the
        // route lists `digest` itself.
        if !batching.digest.is_empty() {
            out.mails.push(Mail {
                route,
                level: AlertLevel::Digest,
                items: batching.digest,
            });
        }
    }
    out
}

/// The earliest moment after `now` at which `clock` may be owed something it is not owed at
/// `now`: a warning threshold, the deadline, the next reminder, the advisory, or a stop or
/// acknowledgement taking effect. Early is harmless (the evaluation finds nothing and asks
/// again); late would delay an alert, so every moment the answer can change at is a candidate.
pub(crate) fn next_due(
    policy: &AlertPolicy,
    clock: &Clock,
    alerted: &Alerted,
    now: Timestamp,
) -> Option<Timestamp> {
    let state = clock.status(now).state;
    let future_stops = clock.stops.iter().map(|s| s.at).filter(|t| *t > now);
    if !state.is_open() {
        // Ended: only a stop that takes effect later could change that (it cannot reopen by
        // itself; a reopening is a change of the clock, which is evaluated anew).
        return future_stops.min();
    }
    let acknowledged = alerts::acknowledgement(clock, now).is_some();
    let reminding = policy.repeat.is_positive() && !acknowledged;
    if state == ClockState::Breached && !reminding && alerted.last >= Some(Stage::Breach) {
        // Breached, alerted, and no reminders to come: only a stop changes anything now.
        return future_stops.min();
    }
    let mut candidates: Vec<Timestamp> = future_stops.collect();
    candidates.extend(clock.acknowledged.as_ref().map(|a| a.at));
    candidates.extend(policy.warn_before.iter().map(|w| clock.deadline - *w));
    candidates.push(clock.deadline);
    candidates.push(clock.started_at + policy.advisory_after);
    if now >= clock.deadline && policy.repeat.is_positive() {
        let n = (now - clock.deadline).whole_seconds() / policy.repeat.whole_seconds().max(1);
        candidates.push(clock.deadline + policy.repeat * (n as i32 + 1));
    }
    candidates.into_iter().filter(|t| *t > now).min()
}

/// The inverse of [`Stage::key`], for the alert state the
/// store keeps. `None` for a key this version does not know (it is then treated as no stage).
pub(crate) fn parse_stage(key: &str) -> Option<Stage> {
    if key == "breach" {
        return Some(Stage::Breach);
    }
    if let Some(n) = key.strip_prefix("reminder:") {
        return n.parse().ok().map(Stage::Reminder);
    }
    let secs = key.strip_prefix("warning:")?.strip_suffix('s')?;
    secs.parse()
        .ok()
        .map(|s: i64| Stage::Warning(std::cmp::Reverse(s)))
}

/// A route's identity in outbox keys: its addresses, sorted, so that reordering `to` in the
/// configuration does not make a second alert.
pub(crate) fn route_key(route: &Route) -> String {
    let mut to: Vec<String> = route.to.iter().map(|a| a.to_ascii_lowercase()).collect();
    to.sort();
    to.dedup();
    to.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::ClockKind;
    use time::Duration;
    use time::macros::datetime;

    const T0: Timestamp = datetime!(2026-03-01 00:00 UTC);

    fn clock(n: u32, kind: ClockKind, window: Duration) -> Clock {
        Clock {
            claimed: None,
            id: ClockId::from_stored(&format!("revocation:crtsh:{n}")),
            kind,
            case: None,
            target: Some(format!("crtsh:{n}")),
            started_at: T0,
            deadline: T0 + window,
            basis: "test".into(),
            matched: None,
            decided_by: None,
            stops: Vec::new(),
            acknowledged: None,
        }
    }

    fn routes() -> Vec<Route> {
        vec![
            Route {
                to: vec!["desk@example-ca.test".into()],
                levels: AlertLevel::ALL.to_vec(),
            },
            Route {
                to: vec!["oncall@example-ca.test".into()],
                levels: vec![AlertLevel::Breach, AlertLevel::Digest],
            },
        ]
    }

    #[test]
    fn each_alert_goes_to_every_route_that_takes_its_level() {
        let p = AlertPolicy::default();
        let c = clock(1, ClockKind::Revocation, Duration::hours(24));
        let warn = plan(
            &p,
            &routes(),
            vec![(c.clone(), Alerted::default())],
            T0 + Duration::hours(13),
        );
        assert_eq!(warn.mails.len(), 1);
        assert_eq!(warn.mails[0].route, 0);
        assert_eq!(warn.mails[0].items[0].key, "warning:43200s");
        let (_, alerted, next) = warn.states[0].clone();
        assert_eq!(next, Some(T0 + Duration::hours(20)));
        let breach = plan(&p, &routes(), vec![(c, alerted)], T0 + Duration::hours(24));
        let to: Vec<usize> = breach.mails.iter().map(|m| m.route).collect();
        assert_eq!(to, [0, 1]);
        assert!(breach.mails.iter().all(|m| m.level == AlertLevel::Breach));
        assert_eq!(
            breach.states[0].2,
            Some(T0 + Duration::hours(28)),
            "next: the first reminder"
        );
    }

    #[test]
    fn a_flood_for_one_route_is_one_digest_and_old_breaches_are_digested() {
        let p = AlertPolicy::default();
        let clocks: Vec<_> = (0..21)
            .map(|n| {
                (
                    clock(n, ClockKind::Revocation, Duration::hours(24)),
                    Alerted::default(),
                )
            })
            .collect();
        let at = T0 + Duration::hours(24);
        let out = plan(&p, &routes(), clocks.clone(), at);
        assert_eq!(out.mails.len(), 2, "one digest per route");
        assert!(out.mails.iter().all(|m| m.level == AlertLevel::Digest));
        assert!(out.mails.iter().all(|m| m.items.len() == 21));
        // 20 is not a flood.
        let out = plan(&p, &routes(), clocks[..20].to_vec(), at);
        assert_eq!(out.mails.len(), 40);
        // Breached 8 days before first seen: digest, even alone.
        let late = T0 + Duration::days(9);
        // (By then the stage is a reminder, which only the first route takes.)
        let out = plan(&p, &routes(), clocks[..1].to_vec(), late);
        assert_eq!(out.mails.len(), 1);
        assert!(out.mails.iter().all(|m| m.level == AlertLevel::Digest));
        assert!(out.mails[0].items[0].old);
    }

    #[test]
    fn next_due_is_never_later_than_the_next_alert() {
        let p = AlertPolicy::default();
        let c = clock(1, ClockKind::Revocation, Duration::days(5));
        let mut alerted = Alerted::default();
        let mut now = T0;
        let end = T0 + Duration::days(6);
        // Minute by minute: whenever something is owed, the previous evaluation's next_due
        // must have been at or before this minute.
        let mut next: Option<Timestamp> = Some(T0);
        while now <= end {
            let owed = alerts::owed(&p, &c, &alerted, now);
            if !owed.is_empty() {
                assert!(
                    next.is_some_and(|n| n <= now),
                    "late at {now}: next was {next:?}"
                );
                let out = plan(&p, &[], vec![(c.clone(), alerted.clone())], now);
                alerted = out.states[0].1.clone();
                next = out.states[0].2;
            }
            now += Duration::minutes(1);
        }
        assert!(alerted.advisory);
        assert_eq!(alerted.last, Some(Stage::Reminder(6)));
    }

    #[test]
    fn stage_keys_read_back() {
        for s in [
            Stage::Warning(std::cmp::Reverse(43200)),
            Stage::Breach,
            Stage::Reminder(3),
        ] {
            assert_eq!(parse_stage(&s.key()), Some(s));
        }
        assert_eq!(parse_stage("advisory"), None);
        assert_eq!(parse_stage("warning:xs"), None);
    }
}
