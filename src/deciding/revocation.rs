//! Revocation verified, not claimed: when to ask the responders about a certificate again,
//! and what their answers mean for its clock and for staff (README "Revocation verified").
//!
//! Pure: the moment is an argument, and the answers come in already judged
//! ([`crate::reading::revocation`] checks signatures and freshness; the service fetches). The
//! checker asks this module when to look next, the desk asks it which problems are worth an
//! alert, and the views ask it how to say what the responders said beside what staff said.

use time::Duration;

use crate::deciding::clock::{self, Clock};
use crate::domain::event::{ClockState, Observation, ObservedStatus, RevocationSource};
use crate::domain::model::Timestamp;

/// How often a certificate is checked while its deadline is more than [`NEAR`] away.
pub(crate) const FAR_EVERY: Duration = Duration::hours(1);
/// How often in the [`NEAR`] window before the deadline.
pub(crate) const NEAR_EVERY: Duration = Duration::minutes(15);
/// How often in the last [`LAST`] before the deadline: a revocation seen late here would be
/// a false breach page.
pub(crate) const LAST_EVERY: Duration = Duration::minutes(5);
/// How often after a breach: the desk still needs to know when it happens, with less haste.
pub(crate) const BREACHED_EVERY: Duration = Duration::minutes(30);
/// How soon a `CPR-Revoked` claim is checked again while it is young: staff said it is done.
pub(crate) const CLAIM_EVERY: Duration = Duration::minutes(5);
pub(crate) const NEAR: Duration = Duration::hours(12);
pub(crate) const LAST: Duration = Duration::hours(1);
/// The longest wait after failures: back-off doubles from a minute up to this.
pub(crate) const BACKOFF_MAX: Duration = Duration::hours(1);
/// How long after a verified revocation the checker keeps asking the sources while they
/// disagree: the clock has stopped, but relying parties that ask the lagging source still
/// accept the certificate, and staff should see it catch up.
pub(crate) const FOLLOW_DISAGREEMENT: Duration = Duration::days(7);
/// How often the certificates of a reported key are looked up again while its clock runs
/// (a CA may issue another with it meanwhile).
pub(crate) const KEY_LOOKUP_EVERY: Duration = Duration::hours(6);
/// How long the checker keeps a fetched CRL at most, even when it says it is good for longer:
/// one CRL serves many certificates, but a revocation published since must be seen within
/// the hour ([`FAR_EVERY`]).
pub(crate) const CRL_KEEP: Duration = Duration::hours(1);

/// What the checker remembers about one certificate between checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckState {
    /// Checks in a row that got no believable answer from any source.
    pub failures: u32,
    /// Until when the last answers may be served from a cache anyway (the earliest of the
    /// responder's `max-age` and `nextUpdate`): asking before then mostly gets the same bytes.
    pub fresh_until: Option<Timestamp>,
    /// A server asked us to wait (`Retry-After`) until then.
    pub retry_after: Option<Timestamp>,
}

/// When to check a certificate whose revocation clock is `clock` again, after a check at
/// `now`. More often as the deadline nears, at once-per-hour at most while the responder's
/// own answer is fresh (except in the last hour), never before a server's `Retry-After`, and
/// backing off after failures.
pub(crate) fn next_check(
    clock: &Clock,
    state: &CheckState,
    grace: Duration,
    now: Timestamp,
) -> Timestamp {
    let left = clock.deadline - now;
    let mut every = if left <= Duration::ZERO {
        BREACHED_EVERY
    } else if left <= LAST {
        LAST_EVERY
    } else if left <= NEAR {
        NEAR_EVERY
    } else {
        FAR_EVERY
    };
    if let Some(c) = &clock.claimed
        && now < c.at + grace
    {
        every = every.min(CLAIM_EVERY);
    }
    // A fresh answer is what a cache would give us again: wait for it to age, up to an hour,
    // but not in the last hour before the deadline.
    if let Some(fresh) = state.fresh_until
        && left > LAST
    {
        every = every.max((fresh - now).clamp(Duration::ZERO, FAR_EVERY));
    }
    if state.failures > 0 {
        let backoff = Duration::minutes(1i64 << state.failures.min(7).saturating_sub(1));
        every = every.max(backoff.min(BACKOFF_MAX));
    }
    let next = now + every;
    match state.retry_after {
        Some(r) if r > next => r,
        _ => next,
    }
}

/// When to check a certificate next after answers recorded at `now` (`latest`: each source's
/// latest, these included), or `None` for never again: on the [`next_check`] schedule while
/// its clock wants checks ([`wants_checks`]) or while the sources still disagree about a
/// verified revocation ([`follows`]).
pub(crate) fn next_due(
    clock: &Clock,
    latest: &[Observation],
    state: &CheckState,
    grace: Duration,
    now: Timestamp,
) -> Option<Timestamp> {
    (wants_checks(clock, now) || follows(clock, latest, grace, now))
        .then(|| next_check(clock, state, grace, now))
}

/// Whether the checker keeps asking about a certificate whose clock no longer needs it: a
/// source shows it revoked, another still disagrees (a problem), and the revocation is less
/// than [`FOLLOW_DISAGREEMENT`] old.
pub(crate) fn follows(
    clock: &Clock,
    latest: &[Observation],
    grace: Duration,
    now: Timestamp,
) -> bool {
    revoked(latest).is_some_and(|r| {
        !problems(clock, latest, grace, now).is_empty()
            && r.revocation_time
                .is_some_and(|t| now < t + FOLLOW_DISAGREEMENT)
    })
}

/// Whether staff's `CPR-Revoked` claim on `clock` was made since the certificate's last check
/// (the newest of `latest`, each source's latest answer): then it is due a check now, from
/// the sources themselves (staff said it is done). Never checked (`latest` empty): not this
/// rule's business, such a certificate is due anyway. Times are whole seconds: a claim in the
/// second of the last check counts as after it (one check more, rather than one missed).
pub(crate) fn claim_unchecked(clock: &Clock, latest: &[Observation]) -> bool {
    let last = latest.iter().map(|o| o.at).max();
    clock
        .claimed
        .as_ref()
        .is_some_and(|c| last.is_some_and(|l| c.at >= l))
}

/// When a reported key's certificates are looked up again after a lookup at `now`: in
/// [`KEY_LOOKUP_EVERY`] while its clock is open, else never (`None`, also without a clock).
pub(crate) fn next_key_lookup(clock: Option<&Clock>, now: Timestamp) -> Option<Timestamp> {
    clock
        .is_some_and(|c| c.status(now).state.is_open())
        .then(|| now + KEY_LOOKUP_EVERY)
}

/// What to tell staff about a certificate that expired (its `notAfter`) by `now`: no
/// revocation is due, and how to close its clock. The checker checks it all the same (a CRL
/// may still list it); `None` while it is valid, or when its `notAfter` is unknown.
pub(crate) fn expired_note(
    target: &str,
    not_after: Option<Timestamp>,
    now: Timestamp,
) -> Option<String> {
    let na = not_after.filter(|na| *na <= now)?;
    Some(format!(
        "the certificate expired at {}: no revocation is due; staff close its clock \
         with CPR-Not-Revoking: {target} expired",
        crate::domain::timefmt::format(na),
    ))
}

/// How many checks of one certificate the schedule makes in the 24 hours from `from` after
/// the start of a clock with `window`, each scheduled by the one before, under `state` (for
/// the README's politeness figures and `cargo bench --bench revocation`).
pub fn checks_per_day(window: Duration, state: &CheckState, from: Duration) -> usize {
    let start = time::macros::datetime!(2026-01-01 00:00 UTC);
    let clock = Clock::from_candidates(
        crate::domain::ids::ClockId::revocation("sha256:00"),
        crate::domain::event::ClockKind::Revocation,
        None,
        Some("sha256:00".into()),
        &[clock::Candidate {
            at: start,
            window,
            basis: clock::BASIS_KEY.into(),
            matched: None,
        }],
    );
    let Some(clock) = clock else { return 0 };
    let (mut at, end) = (start + from, start + from + Duration::hours(24));
    let mut n = 0;
    while at < end {
        n += 1;
        at = next_check(&clock, state, Duration::hours(1), at);
    }
    n
}

/// What the sources said last, together: the verified revocation if any source shows one.
pub(crate) fn revoked(latest: &[Observation]) -> Option<&Observation> {
    latest
        .iter()
        .filter(|o| o.status == ObservedStatus::Revoked && o.revocation_time.is_some())
        .min_by_key(|o| (o.revocation_time, o.source))
}

/// A problem with what the responders say that staff should hear about once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Staff said `CPR-Revoked`; past the grace, no source shows it revoked.
    ClaimContradicted {
        claimed_at: Timestamp,
        by: String,
        /// What the sources say instead (`ocsp http://… good`).
        sources: Vec<String>,
    },
    /// One source says revoked, another good: the OCSP responder serves a stale answer
    /// (the cached-responder failure) or the CRL was not published.
    Disagreement { revoked: String, good: String },
}

impl Problem {
    /// A short stable name, for the outbox key (one alert per problem and certificate).
    pub fn code(&self) -> &'static str {
        match self {
            Problem::ClaimContradicted { .. } => "claim-contradicted",
            Problem::Disagreement { .. } => "disagreement",
        }
    }

    /// One paragraph for staff. `target` is the certificate.
    pub fn describe(&self, target: &str) -> String {
        match self {
            Problem::ClaimContradicted {
                claimed_at,
                by,
                sources,
            } => format!(
                "Claimed revoked, responder says good: staff wrote CPR-Revoked for {target} in {by} \
                 at {}, but no OCSP responder or CRL shows it revoked: {}. The revocation clock \
                 keeps running until one does. Check that the certificate revoked is this one \
                 (issuer and serial), not another for the same domain.",
                crate::domain::timefmt::format(*claimed_at),
                if sources.is_empty() {
                    "no source could be checked".to_string()
                } else {
                    sources.join("; ")
                }
            ),
            Problem::Disagreement { revoked, good } => format!(
                "OCSP and CRL disagree about {target}: {revoked}, but {good}. Relying parties \
                 that ask the second still accept the certificate; a responder serving a cached \
                 answer is the usual cause."
            ),
        }
    }
}

/// The problems worth an alert for a certificate's clock at `now`, given the latest answer of
/// each source.
pub(crate) fn problems(
    clock: &Clock,
    latest: &[Observation],
    grace: Duration,
    now: Timestamp,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let shown = revoked(latest);
    if let Some(c) = &clock.claimed
        && shown.is_none()
        && now >= c.at + grace
        && clock.status(now).state.is_open()
    {
        out.push(Problem::ClaimContradicted {
            claimed_at: c.at,
            by: c.by.clone(),
            sources: latest.iter().map(Observation::summary).collect(),
        });
    }
    if let Some(r) = shown
        && let Some(g) = latest
            .iter()
            .find(|o| o.status == ObservedStatus::Good && o.source != r.source)
        && disagree(r, g)
    {
        out.push(Problem::Disagreement {
            revoked: r.summary(),
            good: g.summary(),
        });
    }
    out
}

/// A source saying good contradicts one saying revoked only if its answer was made after the
/// revocation: a CRL issued before it cannot list it yet.
fn disagree(revoked: &Observation, good: &Observation) -> bool {
    match (revoked.revocation_time, good.this_update) {
        (Some(r), Some(t)) => t > r,
        _ => true,
    }
}

/// The CRLReason a clock's basis calls for, when it calls for one: staff's item, or key
/// evidence (keyCompromise). A rule's basis is looked up by the caller, who has the rules.
pub(crate) fn expected_reason(clock: &Clock, rule_item: impl Fn(&str) -> Option<u8>) -> Option<u8> {
    if clock.basis == clock::BASIS_KEY {
        return Some(3);
    }
    if let Some(item) = clock
        .basis
        .strip_prefix("staff-item-")
        .and_then(|n| n.parse().ok())
    {
        return Some(item);
    }
    rule_item(&clock.basis)
}

/// A note when the reason the CA published does not match the BR item's: "keyCompromise
/// expected (BR 4.9.1.1 item 3), the CA published superseded".
pub(crate) fn reason_note(item: u8, published: Option<&str>) -> Option<String> {
    let expected = crate::reading::rules::CrlReason::for_br_item(item)?;
    let want = expected.as_str();
    let got = published.unwrap_or("unspecified");
    (want != got)
        .then(|| format!("the CA published reason {got}; BR 4.9.1.1 item {item} calls for {want}"))
}

/// How the views say a certificate's observed status, beside the clock's state.
pub(crate) fn observed_line(latest: &[Observation]) -> Option<String> {
    if latest.is_empty() {
        return None;
    }
    let mut parts: Vec<String> = Vec::new();
    for source in [RevocationSource::Ocsp, RevocationSource::Crl] {
        if let Some(o) = latest.iter().find(|o| o.source == source) {
            let mut s = format!("{} {}", source.as_str().to_uppercase(), o.status.as_str());
            if let Some(r) = o.revocation_time {
                s.push_str(&format!(" at {}", crate::domain::timefmt::format(r)));
            }
            if let Some(r) = &o.reason {
                s.push_str(&format!(" ({r})"));
            }
            s.push_str(&format!(
                ", checked {}",
                crate::domain::timefmt::format(o.at)
            ));
            parts.push(s);
        }
    }
    Some(parts.join("; "))
}

/// Whether a clock is one the checker looks after: a certificate's revocation clock still
/// open at `now`.
pub(crate) fn wants_checks(clock: &Clock, now: Timestamp) -> bool {
    clock
        .target
        .as_deref()
        .is_some_and(|t| !t.starts_with("spki:"))
        && matches!(
            clock.status(now).state,
            ClockState::Pending | ClockState::Breached
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deciding::clock::{Candidate, Claim};
    use crate::domain::event::ClockKind;
    use crate::domain::ids::ClockId;
    use crate::domain::timefmt::parse;

    fn t(s: &str) -> Timestamp {
        parse(s).unwrap()
    }

    fn clock(start: &str) -> Clock {
        Clock::from_candidates(
            ClockId::revocation("sha256:aa"),
            ClockKind::Revocation,
            None,
            Some("sha256:aa".into()),
            &[Candidate {
                at: t(start),
                window: clock::DAY,
                basis: clock::BASIS_KEY.into(),
                matched: None,
            }],
        )
        .unwrap()
    }

    fn obs(source: RevocationSource, status: ObservedStatus, at: &str) -> Observation {
        Observation {
            target: "sha256:aa".into(),
            source,
            url: "http://ocsp.test/".into(),
            status,
            at: t(at),
            revocation_time: (status == ObservedStatus::Revoked).then(|| t("2026-03-01T12:00:00Z")),
            reason: (status == ObservedStatus::Revoked).then(|| "keyCompromise".into()),
            this_update: Some(t(at)),
            next_update: None,
            problem: None,
        }
    }

    #[test]
    fn the_schedule_tightens_towards_the_deadline() {
        let c = clock("2026-03-01T00:00:00Z");
        let s = CheckState::default();
        let g = Duration::hours(1);
        let next = |now| next_check(&c, &s, g, t(now)) - t(now);
        assert_eq!(next("2026-03-01T00:00:00Z"), FAR_EVERY);
        assert_eq!(next("2026-03-01T13:00:00Z"), NEAR_EVERY);
        assert_eq!(next("2026-03-01T23:30:00Z"), LAST_EVERY);
        assert_eq!(next("2026-03-02T01:00:00Z"), BREACHED_EVERY);
    }

    #[test]
    fn a_fresh_answer_waits_up_to_an_hour_except_in_the_last_hour() {
        let c = clock("2026-03-01T00:00:00Z");
        let s = CheckState {
            fresh_until: Some(t("2026-03-08T00:00:00Z")),
            ..CheckState::default()
        };
        let g = Duration::hours(1);
        let at = t("2026-03-01T13:00:00Z");
        assert_eq!(next_check(&c, &s, g, at) - at, FAR_EVERY);
        let at = t("2026-03-01T23:30:00Z");
        assert_eq!(next_check(&c, &s, g, at) - at, LAST_EVERY);
    }

    #[test]
    fn failures_back_off_and_retry_after_is_honoured() {
        let c = clock("2026-03-01T00:00:00Z");
        let g = Duration::hours(1);
        let at = t("2026-03-01T23:30:00Z");
        let s = |failures| CheckState {
            failures,
            ..CheckState::default()
        };
        assert_eq!(next_check(&c, &s(1), g, at) - at, LAST_EVERY);
        assert_eq!(next_check(&c, &s(4), g, at) - at, Duration::minutes(8));
        assert_eq!(next_check(&c, &s(30), g, at) - at, BACKOFF_MAX);
        let later = CheckState {
            retry_after: Some(t("2026-03-02T02:00:00Z")),
            ..CheckState::default()
        };
        assert_eq!(next_check(&c, &later, g, at), t("2026-03-02T02:00:00Z"));
    }

    #[test]
    fn a_young_claim_is_checked_often() {
        let mut c = clock("2026-03-01T00:00:00Z");
        c.claimed = Some(Claim {
            at: t("2026-03-01T02:00:00Z"),
            revoked_at: t("2026-03-01T02:00:00Z"),
            by: "<c@ca.test>".into(),
        });
        let g = Duration::hours(1);
        let s = CheckState::default();
        let at = t("2026-03-01T02:10:00Z");
        assert_eq!(next_check(&c, &s, g, at) - at, CLAIM_EVERY);
        let at = t("2026-03-01T03:10:00Z");
        assert_eq!(next_check(&c, &s, g, at) - at, FAR_EVERY);
    }

    #[test]
    fn requests_per_certificate_per_day_stay_polite() {
        let plain = checks_per_day(clock::DAY, &CheckState::default(), Duration::ZERO);
        assert_eq!(plain, 12 + 44 + 12, "first day, no caching headers");
        let cached = CheckState {
            fresh_until: Some(t("2026-01-09T00:00:00Z")),
            ..CheckState::default()
        };
        let polite = checks_per_day(clock::DAY, &cached, Duration::ZERO);
        assert_eq!(
            polite,
            12 + 11 + 12,
            "a responder that says its answers keep"
        );
        let breached = checks_per_day(clock::DAY, &CheckState::default(), clock::DAY);
        assert_eq!(breached, 48, "a day after the breach");
    }

    #[test]
    fn a_claim_since_the_last_check_is_unchecked() {
        let mut c = clock("2026-03-01T00:00:00Z");
        let checked = [
            obs(
                RevocationSource::Ocsp,
                ObservedStatus::Good,
                "2026-03-01T02:00:00Z",
            ),
            obs(
                RevocationSource::Crl,
                ObservedStatus::Good,
                "2026-03-01T01:00:00Z",
            ),
        ];
        assert!(!claim_unchecked(&c, &checked), "no claim");
        let claim = |at| Claim {
            at: t(at),
            revoked_at: t(at),
            by: "<c@ca.test>".into(),
        };
        // After the newest answer, not merely after the oldest source's.
        c.claimed = Some(claim("2026-03-01T01:30:00Z"));
        assert!(!claim_unchecked(&c, &checked), "checked since");
        c.claimed = Some(claim("2026-03-01T02:00:00Z"));
        assert!(
            claim_unchecked(&c, &checked),
            "the same second counts as after"
        );
        c.claimed = Some(claim("2026-03-01T03:00:00Z"));
        assert!(claim_unchecked(&c, &checked));
        assert!(!claim_unchecked(&c, &[]), "never checked: due anyway");
    }

    #[test]
    fn a_disagreement_about_a_revocation_is_followed_for_a_week() {
        let mut c = clock("2026-03-01T00:00:00Z");
        let s = CheckState::default();
        let g = Duration::hours(1);
        let now = t("2026-03-01T13:00:00Z");
        // Revoked at 12:00 by the CRL, OCSP still good after: the clock stopped at 12:00.
        c.stops.push(clock::Stop {
            at: t("2026-03-01T12:00:00Z"),
            kind: clock::StopKind::Done,
            by: "<check@cprwatch.invalid>".into(),
        });
        let both = [
            obs(
                RevocationSource::Crl,
                ObservedStatus::Revoked,
                "2026-03-01T13:00:00Z",
            ),
            obs(
                RevocationSource::Ocsp,
                ObservedStatus::Good,
                "2026-03-01T13:00:00Z",
            ),
        ];
        assert!(!wants_checks(&c, now));
        assert!(follows(&c, &both, g, now));
        assert_eq!(
            next_due(&c, &both, &s, g, now),
            Some(next_check(&c, &s, g, now))
        );
        let week = t("2026-03-01T12:00:00Z") + FOLLOW_DISAGREEMENT;
        assert!(follows(&c, &both, g, week - Duration::SECOND));
        assert!(!follows(&c, &both, g, week));
        assert_eq!(next_due(&c, &both, &s, g, week), None, "a week on: let go");
        // Agreed: nothing to follow.
        let agreed = [
            obs(
                RevocationSource::Crl,
                ObservedStatus::Revoked,
                "2026-03-01T13:00:00Z",
            ),
            obs(
                RevocationSource::Ocsp,
                ObservedStatus::Revoked,
                "2026-03-01T13:00:00Z",
            ),
        ];
        assert!(!follows(&c, &agreed, g, now));
        assert_eq!(next_due(&c, &agreed, &s, g, now), None);
        // An open clock is checked on its schedule, agreement or not.
        let open = clock("2026-03-01T00:00:00Z");
        let good = [obs(
            RevocationSource::Ocsp,
            ObservedStatus::Good,
            "2026-03-01T13:00:00Z",
        )];
        assert!(!follows(&open, &good, g, now));
        assert_eq!(next_due(&open, &good, &s, g, now), Some(now + NEAR_EVERY));
    }

    #[test]
    fn a_key_is_looked_up_again_while_its_clock_is_open() {
        let mut c = clock("2026-03-01T00:00:00Z");
        let now = t("2026-03-01T13:00:00Z");
        assert_eq!(next_key_lookup(Some(&c), now), Some(now + KEY_LOOKUP_EVERY));
        assert_eq!(next_key_lookup(None, now), None);
        c.stops.push(clock::Stop {
            at: t("2026-03-01T12:00:00Z"),
            kind: clock::StopKind::Done,
            by: "<c@ca.test>".into(),
        });
        assert_eq!(next_key_lookup(Some(&c), now), None);
    }

    #[test]
    fn an_expired_certificate_is_told_no_revocation_is_due() {
        let na = t("2026-03-01T12:00:00Z");
        assert_eq!(
            expired_note("sha256:aa", Some(na), na).as_deref(),
            Some(
                "the certificate expired at 2026-03-01T12:00:00Z: no revocation is due; staff \
                 close its clock with CPR-Not-Revoking: sha256:aa expired"
            ),
            "expired at notAfter itself"
        );
        assert_eq!(
            expired_note("sha256:aa", Some(na), na - Duration::SECOND),
            None
        );
        assert_eq!(expired_note("sha256:aa", None, na), None);
    }

    #[test]
    fn an_unconfirmed_claim_past_the_grace_is_a_problem() {
        let mut c = clock("2026-03-01T00:00:00Z");
        c.claimed = Some(Claim {
            at: t("2026-03-01T10:00:00Z"),
            revoked_at: t("2026-03-01T10:00:00Z"),
            by: "<c@ca.test>".into(),
        });
        let good = [obs(
            RevocationSource::Ocsp,
            ObservedStatus::Good,
            "2026-03-01T10:30:00Z",
        )];
        let g = Duration::hours(1);
        assert!(problems(&c, &good, g, t("2026-03-01T10:59:00Z")).is_empty());
        let p = problems(&c, &good, g, t("2026-03-01T11:00:00Z"));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].code(), "claim-contradicted");
        let text = p[0].describe("sha256:aa");
        assert!(
            text.contains("<c@ca.test>") && text.contains("good"),
            "{text}"
        );
        let revoked = [obs(
            RevocationSource::Ocsp,
            ObservedStatus::Revoked,
            "2026-03-01T10:30:00Z",
        )];
        assert!(problems(&c, &revoked, g, t("2026-03-01T11:00:00Z")).is_empty());
    }

    #[test]
    fn ocsp_good_after_the_crl_lists_it_is_a_disagreement() {
        let c = clock("2026-03-01T00:00:00Z");
        let g = Duration::hours(1);
        let both = [
            obs(
                RevocationSource::Crl,
                ObservedStatus::Revoked,
                "2026-03-01T13:00:00Z",
            ),
            obs(
                RevocationSource::Ocsp,
                ObservedStatus::Good,
                "2026-03-01T13:00:00Z",
            ),
        ];
        let p = problems(&c, &both, g, t("2026-03-01T13:00:00Z"));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].code(), "disagreement");
        // A CRL made before the revocation cannot list it: no disagreement.
        let before = [
            obs(
                RevocationSource::Ocsp,
                ObservedStatus::Revoked,
                "2026-03-01T13:00:00Z",
            ),
            obs(
                RevocationSource::Crl,
                ObservedStatus::Good,
                "2026-03-01T11:00:00Z",
            ),
        ];
        assert!(problems(&c, &before, g, t("2026-03-01T13:00:00Z")).is_empty());
    }

    #[test]
    fn the_published_reason_is_held_against_the_item() {
        let c = clock("2026-03-01T00:00:00Z");
        assert_eq!(expected_reason(&c, |_| None), Some(3));
        assert!(reason_note(3, Some("keyCompromise")).is_none());
        let note = reason_note(3, Some("superseded")).unwrap();
        assert!(
            note.contains("keyCompromise") && note.contains("superseded"),
            "{note}"
        );
        assert!(reason_note(3, None).unwrap().contains("unspecified"));
    }
}
