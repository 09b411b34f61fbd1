//! What the projector remembers between messages, beyond the cases and clocks it shows, and
//! where it gets what it does not hold in memory.
//!
//! Threading a new message and giving a certificate its clock need the whole history: a reply
//! to a three-year-old report joins that report's case; a certificate reported today shares the
//! clock of the same certificate reported last month. Holding that history in memory costs RAM
//! that grows with every message, so the projector keeps only what it touched recently and asks
//! a [`Backing`] for the rest. The store answers from its tables (the cases and clocks as they
//! are now) and from the *fold rows* this module encodes: each a value under a [`Space`] and a
//! key, versioned by receipt time like the cases and clocks, so forgetting everything from a
//! receipt time on rewinds them too.
//!
//! [`Detached`] answers "nothing" to every question: a projector over it holds everything it
//! derives in memory (a replay, the tests, the service until it reads its state from the store).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::deciding::cases::Case;
use crate::deciding::clock::{Acknowledgement, Claim, Clock, Decision, Stop};
use crate::deciding::tables::{AckBody, ClaimBody, StopBody, json, secs};
use crate::deciding::threading::Assigned;
use crate::domain::ids::{CaseId, ClockId};
use crate::domain::model::{CertificateRef, Timestamp};

/// What a fold row holds. The number is stored: never reuse one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Space {
    /// Message-Id → the case the first message with it joined.
    MessageId = 1,
    /// Sender and normalised subject → the case and the time of the last message on them.
    Subject = 2,
    /// Case id → what its clocks need beyond what the case lists ([`Work`]).
    Work = 3,
    /// Certificate reference → its details and the cases that name it ([`CertEntry`]).
    Certificate = 4,
    /// Another name of a certificate (crt.sh id, SHA-256) → its reference.
    Alias = 5,
    /// `spki:…` → the certificates with that key.
    KeyCertificates = 6,
    /// Key reference → the cases that report it, each with the first time.
    KeySightings = 7,
    /// Target → staff revocation commands on it, as stops.
    Stops = 8,
    /// Target → staff `CPR-Reason` determinations on it.
    Decisions = 9,
    /// Target (a certificate or key reference, or a case id for its preliminary report) →
    /// staff's latest `CPR-Delayed` on it.
    Acknowledgements = 10,
    /// Target → staff's latest `CPR-Revoked` on it, while claims must be verified.
    Claims = 11,
}

impl Space {
    pub(crate) fn code(self) -> i64 {
        self as i64
    }
}

/// One fold row as it is from `as_of` on; `value` `None` when the key stopped existing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoldVersion {
    pub as_of: Timestamp,
    pub space: Space,
    pub key: String,
    pub value: Option<Vec<u8>>,
}

/// Where the projector finds what it does not hold: the state as the store has it now.
///
/// Answers are what was committed; the projector holds everything it changed until the store
/// has it (it evicts only after a commit). A backing that cannot read records the error and
/// answers "nothing"; its owner checks [`Backing::failed`] before committing anything derived.
pub(crate) trait Backing {
    /// A case as stored: its place among cases, the case, and the stops its preliminary-report
    /// clock has from staff answers.
    fn case(&mut self, id: &CaseId) -> Option<(usize, Case, Vec<Stop>)>;
    /// A clock as stored now.
    fn clock(&mut self, id: &ClockId) -> Option<Clock>;
    /// A fold row's current value.
    fn value(&mut self, space: Space, key: &str) -> Option<Vec<u8>>;
    /// How many cases there are (the place of the next one).
    fn case_count(&mut self) -> usize;
    /// The case number the log assigned to the case this message opened, if any.
    fn assigned(&mut self, founder: &str) -> Option<CaseId>;
    /// The highest case number of `year` the log ever assigned, or a stored case holds (0 if
    /// none).
    fn last_assigned(&mut self, year: i32) -> u32;
    /// Whether a read failed since the backing was made (then nothing derived may be kept).
    fn failed(&self) -> bool {
        false
    }
}

/// A backing with nothing behind it but the case numbers already handed out.
pub(crate) struct Detached {
    assigned: Assigned,
    last: HashMap<i32, u32>,
}

impl Detached {
    pub(crate) fn new(assigned: &Assigned) -> Detached {
        let mut last: HashMap<i32, u32> = HashMap::new();
        for id in assigned.values() {
            if let Some((year, n)) = id.year_and_number() {
                let e = last.entry(year).or_insert(0);
                *e = (*e).max(n);
            }
        }
        Detached {
            assigned: assigned.clone(),
            last,
        }
    }
}

impl Backing for Detached {
    fn case(&mut self, _: &CaseId) -> Option<(usize, Case, Vec<Stop>)> {
        None
    }
    fn clock(&mut self, _: &ClockId) -> Option<Clock> {
        None
    }
    fn value(&mut self, _: Space, _: &str) -> Option<Vec<u8>> {
        None
    }
    fn case_count(&mut self) -> usize {
        0
    }
    fn assigned(&mut self, founder: &str) -> Option<CaseId> {
        self.assigned.get(founder).cloned()
    }
    fn last_assigned(&mut self, year: i32) -> u32 {
        self.last.get(&year).copied().unwrap_or(0)
    }
}

fn time(s: i64) -> Option<Timestamp> {
    OffsetDateTime::from_unix_timestamp(s).ok()
}

/// A value that does not decode reads as absent: the tables' `verify` shows the damage, and
/// `rebuild` mends it.
fn decode<'a, T: Deserialize<'a>>(b: &'a [u8]) -> Option<T> {
    serde_json::from_slice(b).ok()
}

/// The window a case's reports give its certificates, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Class {
    pub window: Duration,
    pub basis: String,
    /// The phrase of the report that set it, for a rule.
    pub matched: Option<String>,
}

/// What a case's clocks need beyond what the case lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Work {
    /// The shortest window a rule matched in its reports.
    pub rule_best: Option<Class>,
    /// A report carried evidence of key compromise.
    pub key_evidence: bool,
    /// Each key reference the case named, with the first time it did.
    pub key_first: BTreeMap<String, Timestamp>,
}

#[derive(Serialize, Deserialize)]
struct WorkBody {
    #[serde(rename = "w", default, skip_serializing_if = "Option::is_none")]
    window: Option<i64>,
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    basis: Option<String>,
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    matched: Option<String>,
    #[serde(rename = "e", default, skip_serializing_if = "std::ops::Not::not")]
    key_evidence: bool,
    #[serde(rename = "k", default, skip_serializing_if = "Vec::is_empty")]
    key_first: Vec<(String, i64)>,
}

impl Work {
    pub(crate) fn encode(&self) -> Vec<u8> {
        json(&WorkBody {
            window: self.rule_best.as_ref().map(|c| c.window.whole_seconds()),
            basis: self.rule_best.as_ref().map(|c| c.basis.clone()),
            matched: self.rule_best.as_ref().and_then(|c| c.matched.clone()),
            key_evidence: self.key_evidence,
            key_first: self
                .key_first
                .iter()
                .map(|(k, t)| (k.clone(), secs(*t)))
                .collect(),
        })
    }

    pub(crate) fn decode(b: &[u8]) -> Option<Work> {
        let w: WorkBody = decode(b)?;
        let rule_best = match (w.window, w.basis) {
            (Some(window), Some(basis)) => Some(Class {
                window: Duration::seconds(window),
                basis,
                matched: w.matched,
            }),
            _ => None,
        };
        let mut key_first = BTreeMap::new();
        for (k, t) in w.key_first {
            key_first.insert(k, time(t)?);
        }
        Some(Work {
            rule_best,
            key_evidence: w.key_evidence,
            key_first,
        })
    }
}

/// Cases, each with a time: the cases that name a certificate or key, with the first time each
/// did.
pub(crate) type Sightings = Vec<(CaseId, Timestamp)>;

fn encode_sightings(s: &Sightings) -> Vec<(String, i64)> {
    s.iter()
        .map(|(c, t)| (c.as_str().to_string(), secs(*t)))
        .collect()
}

fn decode_sightings(s: Vec<(String, i64)>) -> Option<Sightings> {
    s.into_iter()
        .map(|(c, t)| Some((CaseId::from_stored(&c), time(t)?)))
        .collect()
}

pub(crate) fn encode_seen(s: &Sightings) -> Vec<u8> {
    json(&encode_sightings(s))
}

pub(crate) fn decode_seen(b: &[u8]) -> Option<Sightings> {
    decode_sightings(decode(b)?)
}

/// A certificate the projector knows: its details, merged from every report, and the cases
/// that name it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CertEntry {
    pub details: CertificateRef,
    pub sightings: Sightings,
    /// The names of another certificate with the same issuer and serial (a precertificate's
    /// final certificate, or the other way round): one certificate, one clock (RFC 5280).
    pub also: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct CertBody {
    #[serde(rename = "c")]
    details: CertificateRef,
    #[serde(rename = "s")]
    sightings: Vec<(String, i64)>,
    #[serde(rename = "a", default, skip_serializing_if = "Vec::is_empty")]
    also: Vec<String>,
}

impl CertEntry {
    pub(crate) fn encode(&self) -> Vec<u8> {
        json(&CertBody {
            details: self.details.clone(),
            sightings: encode_sightings(&self.sightings),
            also: self.also.clone(),
        })
    }

    pub(crate) fn decode(b: &[u8]) -> Option<CertEntry> {
        let c: CertBody = decode(b)?;
        Some(CertEntry {
            details: c.details,
            sightings: decode_sightings(c.sightings)?,
            also: c.also,
        })
    }
}

pub(crate) fn encode_stops(stops: &[Stop]) -> Vec<u8> {
    json(&stops.iter().map(StopBody::of).collect::<Vec<_>>())
}

pub(crate) fn decode_stops(b: &[u8]) -> Option<Vec<Stop>> {
    let stops: Vec<StopBody> = decode(b)?;
    stops.into_iter().map(|s| s.stop().ok()).collect()
}

pub(crate) fn encode_decisions(ds: &[Decision]) -> Vec<u8> {
    json(
        &ds.iter()
            .map(|d| (secs(d.at), d.item, d.by.clone()))
            .collect::<Vec<_>>(),
    )
}

pub(crate) fn decode_decisions(b: &[u8]) -> Option<Vec<Decision>> {
    let ds: Vec<(i64, u8, String)> = decode(b)?;
    ds.into_iter()
        .map(|(at, item, by)| {
            Some(Decision {
                at: time(at)?,
                item,
                by,
            })
        })
        .collect()
}

/// Only the latest acknowledgement under a name is kept: a later `CPR-Delayed` replaces the
/// reason (the log keeps every one).
pub(crate) fn encode_ack(a: &Acknowledgement) -> Vec<u8> {
    json(&AckBody::of(a))
}

pub(crate) fn decode_ack(b: &[u8]) -> Option<Acknowledgement> {
    decode::<AckBody>(b)?.acknowledgement().ok()
}

pub(crate) fn encode_claim(c: &Claim) -> Vec<u8> {
    json(&ClaimBody::of(c))
}

pub(crate) fn decode_claim(b: &[u8]) -> Option<Claim> {
    decode::<ClaimBody>(b)?.claim().ok()
}

pub(crate) fn encode_strings(s: &[String]) -> Vec<u8> {
    json(&s)
}

pub(crate) fn decode_strings(b: &[u8]) -> Option<Vec<String>> {
    decode(b)
}

pub(crate) fn encode_case(c: &CaseId) -> Vec<u8> {
    c.as_str().as_bytes().to_vec()
}

pub(crate) fn decode_case(b: &[u8]) -> Option<CaseId> {
    std::str::from_utf8(b).ok().map(CaseId::from_stored)
}

pub(crate) fn encode_case_at(c: &CaseId, t: Timestamp) -> Vec<u8> {
    json(&(c.as_str(), secs(t)))
}

pub(crate) fn decode_case_at(b: &[u8]) -> Option<(CaseId, Timestamp)> {
    let (c, t): (String, i64) = decode(b)?;
    Some((CaseId::from_stored(&c), time(t)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deciding::clock::StopKind;

    fn t(s: &str) -> Timestamp {
        crate::domain::timefmt::parse(s).unwrap()
    }

    #[test]
    fn values_read_back_as_written() {
        let w = Work {
            rule_best: Some(Class {
                window: Duration::days(5),
                basis: "misissuance".into(),
                matched: Some("wrong name".into()),
            }),
            key_evidence: true,
            key_first: BTreeMap::from([("spki:ab".to_string(), t("2026-01-02T03:04:05Z"))]),
        };
        assert_eq!(Work::decode(&w.encode()), Some(w));
        assert_eq!(
            Work::decode(&Work::default().encode()),
            Some(Work::default())
        );
        let e = CertEntry {
            details: CertificateRef::bare("crtsh:12".into()),
            sightings: vec![(CaseId::new(2026, 1), t("2026-01-02T03:04:05Z"))],
            also: vec!["sha256:ab".into()],
        };
        assert_eq!(CertEntry::decode(&e.encode()), Some(e));
        let stops = vec![Stop {
            at: t("2026-01-02T03:04:05Z"),
            kind: StopKind::NotRequired,
            by: "x".into(),
        }];
        assert_eq!(decode_stops(&encode_stops(&stops)), Some(stops));
        let a = Acknowledgement {
            at: t("2026-01-02T03:04:05Z"),
            reason: "https://bugzilla.mozilla.org/show_bug.cgi?id=1".into(),
            by: "<d@ca.test>".into(),
        };
        assert_eq!(decode_ack(&encode_ack(&a)), Some(a));
        let c = (CaseId::new(2026, 7), t("2026-01-02T03:04:05Z"));
        assert_eq!(decode_case_at(&encode_case_at(&c.0, c.1)), Some(c));
    }

    #[test]
    fn damaged_values_read_as_absent() {
        assert_eq!(Work::decode(b"{\"k\":[[\"x\",\"no\"]]}"), None);
        assert_eq!(CertEntry::decode(b"[]"), None);
        assert_eq!(decode_stops(b"[{\"t\":1,\"k\":9,\"b\":\"\"}]"), None);
    }
}
