//! Cases and clocks as the store keeps them: versioned rows, so that a view costs what it shows.
//!
//! The event log stays the single source of truth; these rows are its projection, kept in the
//! same transaction as the events (docs/ARCHITECTURE.md, "State in the store"). Every case and
//! clock is stored as the versions it went through, each valid from the receipt time of the
//! messages that made it (`as_of`) until the next version. So:
//!
//! - `status` and `case` now read the current rows through an index, never the history;
//! - `status --at T` and `case --at T` read the rows valid at `T`, which are exactly the
//!   projection of the messages received by `T` (the projector emits a version at every
//!   receipt time at which something changed);
//! - `verify` re-derives the rows from the log and compares.
//!
//! This module is pure: it turns [`Case`]s and [`Clock`]s into rows of bytes and back. The
//! store keeps the bytes and indexes a few columns; it never interprets a body.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::deciding::cases::{Case, CaseMessage};
use crate::deciding::clock::{Acknowledgement, Claim, Clock, Stop, StopKind};
use crate::deciding::fold::FoldVersion;
use crate::domain::event::ClockKind;
use crate::domain::ids::{CaseId, ClockId};
use crate::domain::model::{CertificateRef, FolderRole, KeyRef, Timestamp};

/// Seconds since the epoch: the unit of every time column.
pub(crate) fn secs(t: Timestamp) -> i64 {
    t.unix_timestamp()
}

fn from_secs(s: i64) -> Result<Timestamp, TableError> {
    OffsetDateTime::from_unix_timestamp(s)
        .map_err(|_| TableError(format!("time {s} is out of range")))
}

/// A row that does not decode: the store is damaged or from another version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored case or clock row cannot be read ({0}) — run `cprwatch rebuild`")]
pub struct TableError(pub String);

/// What a case row lists, in the order a case shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ItemKind {
    Message = 0,
    Certificate = 1,
    Key = 2,
    Clock = 3,
    Dismissed = 4,
}

impl ItemKind {
    pub(crate) fn code(self) -> i64 {
        self as i64
    }

    pub(crate) fn from_code(c: i64) -> Option<ItemKind> {
        Some(match c {
            0 => ItemKind::Message,
            1 => ItemKind::Certificate,
            2 => ItemKind::Key,
            3 => ItemKind::Clock,
            4 => ItemKind::Dismissed,
            _ => return None,
        })
    }
}

/// One thing a case lists: a message, certificate, key, clock, or its dismissal. `key` is its
/// identity within the case (content hash, reference, clock id), `ord` its place in the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub kind: ItemKind,
    pub key: String,
    pub ord: i64,
    pub body: Vec<u8>,
}

/// A case as it is from `as_of` on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseVersion {
    pub as_of: Timestamp,
    pub id: CaseId,
    /// Its place among all cases (the order `replay` and `status` list them in).
    pub ord: i64,
    pub opened_at: Timestamp,
    pub header: Vec<u8>,
    pub items: Vec<Item>,
    /// What a search finds it by: its certificates' and keys' names, its messages' Message-Ids
    /// and senders.
    pub names: Vec<String>,
}

/// A clock as it is from `as_of` on; `None` when it stopped existing (its certificate turned
/// out short-lived).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClockVersion {
    pub as_of: Timestamp,
    pub id: ClockId,
    pub row: Option<ClockRow>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClockRow {
    /// The earliest stop, in seconds, or `i64::MAX`: the clock is open at `T` exactly when
    /// `stop_key > T`, so "what is open" is one indexed range.
    pub stop_key: i64,
    pub deadline: i64,
    pub body: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Version {
    Case(CaseVersion),
    Clock(ClockVersion),
    /// What the projector remembers beside the cases and clocks ([`crate::deciding::fold`]).
    Fold(FoldVersion),
}

impl Version {
    pub(crate) fn as_of(&self) -> Timestamp {
        match self {
            Version::Case(c) => c.as_of,
            Version::Clock(c) => c.as_of,
            Version::Fold(f) => f.as_of,
        }
    }
}

/// What one commit changes in the tables, with the events it commits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    /// Forget every version from this receipt time on before applying `versions`: an older
    /// message arrived, and history from its receipt on was derived again.
    pub truncate_from: Option<Timestamp>,
    /// In the order they were derived (non-decreasing `as_of` per case and clock).
    pub versions: Vec<Version>,
    /// With this delta the tables hold every message received so far: the store records
    /// the log's head as the point they are complete to.
    pub complete: bool,
    /// The moment the clocks were last compared with the log (kept, so a restart compares
    /// only those whose state time may have changed since).
    pub evaluated_at: Option<Timestamp>,
}

impl Delta {
    pub(crate) fn is_empty(&self) -> bool {
        self.truncate_from.is_none() && self.versions.is_empty() && !self.complete
    }
}

/// A case's header. The founder is its first message and the reporter's addresses are
/// usually just the reporter: neither is stored twice.
#[derive(Serialize, Deserialize)]
struct Header {
    #[serde(rename = "r")]
    reporter: String,
    /// Present only when not `[reporter]`.
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    reporter_addresses: Option<Vec<String>>,
    #[serde(rename = "s")]
    subject: String,
}

#[derive(Serialize, Deserialize)]
struct MessageBody {
    #[serde(rename = "i")]
    message_id: String,
    #[serde(rename = "t")]
    received_at: i64,
    #[serde(rename = "f")]
    from: String,
    #[serde(rename = "d")]
    folder: String,
    #[serde(rename = "s", default, skip_serializing_if = "std::ops::Not::not")]
    staff: bool,
    #[serde(rename = "v")]
    via: String,
}

#[derive(Serialize, Deserialize)]
struct DismissedBody {
    #[serde(rename = "t")]
    at: i64,
    #[serde(rename = "r")]
    reason: String,
}

/// A stop as a clock row and the fold rows keep it.
#[derive(Serialize, Deserialize)]
pub(crate) struct StopBody {
    #[serde(rename = "t")]
    at: i64,
    #[serde(rename = "k")]
    kind: u8,
    #[serde(rename = "b")]
    by: String,
}

/// A clock's row body. Its kind, case and target are read from its id
/// ([`ClockId::preliminary`], [`ClockId::revocation`]); the preliminary report's basis is
/// implied.
#[derive(Serialize, Deserialize)]
struct ClockBody {
    #[serde(rename = "s")]
    started_at: i64,
    #[serde(rename = "d")]
    deadline: i64,
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    basis: Option<String>,
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    matched: Option<String>,
    #[serde(rename = "y", default, skip_serializing_if = "Option::is_none")]
    decided_by: Option<String>,
    #[serde(rename = "p", default, skip_serializing_if = "Vec::is_empty")]
    stops: Vec<StopBody>,
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    acknowledged: Option<AckBody>,
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    claimed: Option<ClaimBody>,
}

/// A `CPR-Revoked` claim not yet verified, as a clock row and the fold rows keep it.
#[derive(Serialize, Deserialize)]
pub(crate) struct ClaimBody {
    #[serde(rename = "t")]
    at: i64,
    #[serde(rename = "r")]
    revoked_at: i64,
    #[serde(rename = "b")]
    by: String,
}

impl ClaimBody {
    pub(crate) fn of(c: &Claim) -> ClaimBody {
        ClaimBody {
            at: secs(c.at),
            revoked_at: secs(c.revoked_at),
            by: c.by.clone(),
        }
    }

    pub(crate) fn claim(self) -> Result<Claim, TableError> {
        Ok(Claim {
            at: from_secs(self.at)?,
            revoked_at: from_secs(self.revoked_at)?,
            by: self.by,
        })
    }
}

/// A `CPR-Delayed` acknowledgement as a clock row and the fold rows keep it.
#[derive(Serialize, Deserialize)]
pub(crate) struct AckBody {
    #[serde(rename = "t")]
    at: i64,
    #[serde(rename = "r")]
    reason: String,
    #[serde(rename = "b")]
    by: String,
}

impl AckBody {
    pub(crate) fn of(a: &Acknowledgement) -> AckBody {
        AckBody {
            at: secs(a.at),
            reason: a.reason.clone(),
            by: a.by.clone(),
        }
    }

    pub(crate) fn acknowledgement(self) -> Result<Acknowledgement, TableError> {
        Ok(Acknowledgement {
            at: from_secs(self.at)?,
            reason: self.reason,
            by: self.by,
        })
    }
}

impl StopBody {
    pub(crate) fn of(s: &Stop) -> StopBody {
        StopBody {
            at: secs(s.at),
            kind: match s.kind {
                StopKind::Done => 0,
                StopKind::NotRequired => 1,
                StopKind::Expired => 2,
                StopKind::Dismissed => 3,
            },
            by: s.by.clone(),
        }
    }

    pub(crate) fn stop(self) -> Result<Stop, TableError> {
        Ok(Stop {
            at: from_secs(self.at)?,
            kind: match self.kind {
                0 => StopKind::Done,
                1 => StopKind::NotRequired,
                2 => StopKind::Expired,
                3 => StopKind::Dismissed,
                c => return Err(TableError(format!("unknown stop kind {c}"))),
            },
            by: self.by,
        })
    }
}

/// The ways a message joins a case, as the threader names them: a case lists them as
/// `&'static str`, so a stored one is mapped back to its constant.
fn via(s: &str) -> &'static str {
    crate::deciding::threading::VIAS
        .iter()
        .find(|k| **k == s)
        .copied()
        .unwrap_or("unknown")
}

pub(crate) fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn decode<'a, T: Deserialize<'a>>(what: &str, b: &'a [u8]) -> Result<T, TableError> {
    serde_json::from_slice(b).map_err(|e| TableError(format!("{what}: {e}")))
}

/// The clock as a row.
pub(crate) fn clock_row(c: &Clock) -> ClockRow {
    debug_assert_eq!(
        parts_of(&c.id),
        Some((c.kind, c.case.clone(), c.target.clone())),
        "a clock's id names its kind, case and target"
    );
    let body = ClockBody {
        started_at: secs(c.started_at),
        deadline: secs(c.deadline),
        basis: (!(c.kind == ClockKind::PreliminaryReport
            && c.basis == crate::deciding::clock::BASIS_PRELIMINARY))
            .then(|| c.basis.clone()),
        matched: c.matched.clone(),
        decided_by: c.decided_by.clone(),
        stops: c.stops.iter().map(StopBody::of).collect(),
        acknowledged: c.acknowledged.as_ref().map(AckBody::of),
        claimed: c.claimed.as_ref().map(ClaimBody::of),
    };
    ClockRow {
        stop_key: c.stops.iter().map(|s| secs(s.at)).min().unwrap_or(i64::MAX),
        deadline: secs(c.deadline),
        body: json(&body),
    }
}

/// A clock's kind, case and target, as its id names them.
fn parts_of(id: &ClockId) -> Option<(ClockKind, Option<CaseId>, Option<String>)> {
    let s = id.as_str();
    if let Some(case) = s.strip_prefix("preliminary_report:") {
        Some((
            ClockKind::PreliminaryReport,
            Some(CaseId::from_stored(case)),
            None,
        ))
    } else {
        s.strip_prefix("revocation:")
            .map(|t| (ClockKind::Revocation, None, Some(t.to_string())))
    }
}

/// A stored clock row back as a clock.
pub(crate) fn clock_from_row(id: &str, body: &[u8]) -> Result<Clock, TableError> {
    let b: ClockBody = decode("clock", body)?;
    let stops = b
        .stops
        .into_iter()
        .map(StopBody::stop)
        .collect::<Result<Vec<_>, _>>()?;
    let clock_id = ClockId::from_stored(id);
    let (kind, case, target) =
        parts_of(&clock_id).ok_or_else(|| TableError(format!("clock id {id:?} is not one")))?;
    Ok(Clock {
        id: clock_id,
        kind,
        case,
        target,
        started_at: from_secs(b.started_at)?,
        deadline: from_secs(b.deadline)?,
        basis: b
            .basis
            .unwrap_or_else(|| crate::deciding::clock::BASIS_PRELIMINARY.to_string()),
        matched: b.matched,
        decided_by: b.decided_by,
        stops,
        acknowledged: b.acknowledged.map(AckBody::acknowledgement).transpose()?,
        claimed: b.claimed.map(ClaimBody::claim).transpose()?,
    })
}

/// The case as a version valid from `as_of`; `ord` is its place among all cases.
pub(crate) fn case_version(as_of: Timestamp, ord: usize, c: &Case) -> CaseVersion {
    let mut items = Vec::with_capacity(c.messages.len() + c.certificates.len() + c.clocks.len());
    let mut names = vec![c.id.to_string()];
    for (i, m) in c.messages.iter().enumerate() {
        items.push(Item {
            kind: ItemKind::Message,
            key: m.content_hash.clone(),
            ord: i as i64,
            body: json(&MessageBody {
                message_id: m.message_id.clone(),
                received_at: secs(m.received_at),
                from: m.from.clone(),
                folder: m.folder.as_str().to_string(),
                staff: m.staff,
                via: m.via.to_string(),
            }),
        });
        names.push(m.message_id.clone());
        if !m.from.is_empty() {
            names.push(m.from.clone());
        }
    }
    for (i, cert) in c.certificates.iter().enumerate() {
        items.push(Item {
            kind: ItemKind::Certificate,
            key: cert.reference.clone(),
            ord: i as i64,
            body: json(cert),
        });
        names.extend(cert.names());
        names.extend(cert.key_name());
    }
    for (i, k) in c.keys.iter().enumerate() {
        let key = k.identity();
        if let Some(r) = &k.reference {
            names.push(r.clone());
        }
        items.push(Item {
            kind: ItemKind::Key,
            key,
            ord: i as i64,
            body: json(k),
        });
    }
    for (i, id) in c.clocks.iter().enumerate() {
        items.push(Item {
            kind: ItemKind::Clock,
            key: id.to_string(),
            ord: i as i64,
            body: Vec::new(),
        });
    }
    if let Some((at, reason)) = &c.dismissed {
        items.push(Item {
            kind: ItemKind::Dismissed,
            key: String::new(),
            ord: 0,
            body: json(&DismissedBody {
                at: secs(*at),
                reason: reason.clone(),
            }),
        });
    }
    names.sort();
    names.dedup();
    CaseVersion {
        as_of,
        id: c.id.clone(),
        ord: ord as i64,
        opened_at: c.opened_at,
        header: json(&Header {
            reporter: c.reporter.clone(),
            reporter_addresses: (c.reporter_addresses != std::slice::from_ref(&c.reporter))
                .then(|| c.reporter_addresses.clone()),
            subject: c.subject.clone(),
        }),
        items,
        names,
    }
}

/// A case back from its header and the items valid at one moment, in `(kind, ord)` order.
pub(crate) fn case_from_rows(
    id: &str,
    opened_at: i64,
    header: &[u8],
    items: &[Item],
) -> Result<Case, TableError> {
    let h: Header = decode("case header", header)?;
    let reporter_addresses = h
        .reporter_addresses
        .unwrap_or_else(|| vec![h.reporter.clone()]);
    let mut case = Case {
        id: CaseId::from_stored(id),
        founder: String::new(),
        reporter: h.reporter,
        reporter_addresses,
        subject: h.subject,
        opened_at: from_secs(opened_at)?,
        messages: Vec::new(),
        certificates: Vec::new(),
        keys: Vec::new(),
        clocks: Vec::new(),
        dismissed: None,
    };
    for it in items {
        match it.kind {
            ItemKind::Message => {
                let m: MessageBody = decode("case message", &it.body)?;
                case.messages.push(CaseMessage {
                    content_hash: it.key.clone(),
                    message_id: m.message_id,
                    received_at: from_secs(m.received_at)?,
                    from: m.from,
                    folder: FolderRole::parse(&m.folder)
                        .ok_or_else(|| TableError(format!("unknown folder {:?}", m.folder)))?,
                    staff: m.staff,
                    via: via(&m.via),
                });
            }
            ItemKind::Certificate => {
                case.certificates
                    .push(decode::<CertificateRef>("certificate", &it.body)?);
            }
            ItemKind::Key => case.keys.push(decode::<KeyRef>("key", &it.body)?),
            ItemKind::Clock => case.clocks.push(ClockId::from_stored(&it.key)),
            ItemKind::Dismissed => {
                let d: DismissedBody = decode("dismissal", &it.body)?;
                case.dismissed = Some((from_secs(d.at)?, d.reason));
            }
        }
    }
    // The founder is the message that opened it: always its first.
    case.founder = case
        .messages
        .first()
        .map(|m| m.content_hash.clone())
        .unwrap_or_default();
    Ok(case)
}

/// A short integer standing for a name in an index: the first 63 bits of its SHA-256. Two
/// names may share one (a reader checks what it finds), but the index stays small: a message's
/// 64-character hash is kept once, not in every index that leads to it.
pub(crate) fn name_key(name: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(name.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(b) >> 1) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::KeyEvidence;
    use crate::domain::timefmt::parse;

    fn case() -> Case {
        Case {
            id: CaseId::new(2026, 7),
            founder: "ab".repeat(32),
            reporter: "rita@reporter.test".into(),
            reporter_addresses: vec!["rita@reporter.test".into()],
            subject: "Misissued \u{202e}certificate".into(),
            opened_at: parse("2026-03-02T10:00:00Z").unwrap(),
            messages: vec![CaseMessage {
                content_hash: "ab".repeat(32),
                message_id: "<r@reporter.test>".into(),
                received_at: parse("2026-03-02T10:00:00Z").unwrap(),
                from: "rita@reporter.test".into(),
                folder: FolderRole::Junk,
                staff: false,
                via: "opened",
            }],
            certificates: vec![
                serde_json::from_str(r#"{"ref":"crtsh:42","crtsh_id":42}"#).unwrap(),
            ],
            keys: vec![KeyRef {
                reference: None,
                evidence: KeyEvidence::EncryptedPrivateKey,
                algorithm: None,
            }],
            clocks: vec![
                ClockId::preliminary(&CaseId::new(2026, 7)),
                ClockId::revocation("crtsh:42"),
            ],
            dismissed: Some((parse("2026-03-03T00:00:00Z").unwrap(), "spam".into())),
        }
    }

    #[test]
    fn a_case_reads_back_as_it_was_written() {
        let c = case();
        let v = case_version(c.opened_at, 3, &c);
        assert!(v.names.contains(&"crtsh:42".to_string()));
        assert!(v.names.contains(&"<r@reporter.test>".to_string()));
        let back = case_from_rows(v.id.as_str(), secs(v.opened_at), &v.header, &v.items).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn a_clock_reads_back_and_is_open_until_its_first_stop() {
        let c = Clock {
            claimed: None,
            id: ClockId::revocation("crtsh:42"),
            kind: ClockKind::Revocation,
            case: None,
            target: Some("crtsh:42".into()),
            started_at: parse("2026-03-02T10:00:00Z").unwrap(),
            deadline: parse("2026-03-03T10:00:00Z").unwrap(),
            basis: "key-compromise".into(),
            matched: Some("private key".into()),
            decided_by: None,
            stops: vec![
                Stop {
                    at: parse("2026-03-05T00:00:00Z").unwrap(),
                    kind: StopKind::Expired,
                    by: "notAfter".into(),
                },
                Stop {
                    at: parse("2026-03-04T00:00:00Z").unwrap(),
                    kind: StopKind::Done,
                    by: "<a@x>".into(),
                },
            ],
            acknowledged: Some(Acknowledgement {
                at: parse("2026-03-03T11:00:00Z").unwrap(),
                reason: "https://bugzilla.mozilla.org/show_bug.cgi?id=1".into(),
                by: "<d@x>".into(),
            }),
        };
        let row = clock_row(&c);
        assert_eq!(row.stop_key, secs(parse("2026-03-04T00:00:00Z").unwrap()));
        assert_eq!(clock_from_row(c.id.as_str(), &row.body).unwrap(), c);
        // An acknowledgement does not stop it.
        assert_eq!(
            row.stop_key,
            clock_row(&Clock {
                acknowledged: None,
                ..c.clone()
            })
            .stop_key
        );
        let open = Clock { stops: vec![], ..c };
        assert_eq!(clock_row(&open).stop_key, i64::MAX);
    }

    #[test]
    fn damaged_rows_say_so() {
        assert!(clock_from_row("x", b"{").is_err());
        assert!(case_from_rows("x", 0, b"[]", &[]).is_err());
    }
}
