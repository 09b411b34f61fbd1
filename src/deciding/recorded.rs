//! The log's own account of cases and clocks: which cases it opened, where it placed each
//! message, what it reported in each case, each clock's recorded start, deadline, basis and
//! state, and which commands it reported ignored.
//!
//! The engine appends exactly the difference between the projection and this account, so a
//! restart re-emits nothing and an older message arriving late produces the events that
//! describe its effect. The account is a function of the events alone: [`rows`] says what each
//! event sets, and the store keeps those rows beside the log (written with the events, so they
//! never disagree), which lets the engine look up what a batch touches instead of holding the
//! account of the whole history. Without a backing (a replay, the tests) it is all held here.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::deciding::clock::Acknowledgement;
use crate::domain::event::{ClockState, Event};
use crate::domain::ids::{CaseId, ClockId};
use crate::domain::model::Timestamp;

/// What a row of the account is about. The number is stored: never reuse one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecSpace {
    /// Case id → present while the case is open (not merged into another).
    Case = 1,
    /// Content hash → the case the message is in (empty: logged, in no case).
    Placement = 2,
    /// Case and certificate reference → reported.
    Certificate = 3,
    /// Case and key identity → reported.
    Key = 4,
    /// Clock id → its recorded start, deadline and basis.
    ClockDef = 5,
    /// Clock id → its recorded state.
    ClockState = 6,
    /// A digest of an ignored command's identity → reported.
    Ignored = 7,
    /// Clock id → staff's latest acknowledgement of it (`CPR-Delayed`), as recorded.
    ClockAck = 8,
}

impl RecSpace {
    pub(crate) fn code(self) -> i64 {
        self as i64
    }
}

/// One row an event sets (`None`: removes).
pub type Row = (RecSpace, String, Option<Vec<u8>>);

/// Where the account's rows are when they are not held.
pub(crate) trait RecordedBacking: Send {
    fn get(&mut self, space: RecSpace, key: &str) -> Option<Vec<u8>>;
    /// Whether a read failed (then nothing derived may be kept).
    fn failed(&self) -> bool;
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RecordedClock {
    pub started_at: Timestamp,
    pub deadline: Timestamp,
    pub basis: String,
    pub state: ClockState,
}

#[derive(Serialize, Deserialize)]
struct ClockDefBody {
    #[serde(rename = "s")]
    started_at: i64,
    #[serde(rename = "d")]
    deadline: i64,
    #[serde(rename = "b")]
    basis: String,
}

fn pair(case: &CaseId, item: &str) -> String {
    format!("{}\n{item}", case.as_str())
}

/// The identity of an ignored command: the message, the reason and the command (or line).
pub(crate) fn ignored_identity(message: &str, reason: &str, cmd: &impl Serialize) -> String {
    let id = format!(
        "{message}|{reason}|{}",
        serde_json::to_string(cmd).unwrap_or_default()
    );
    hex::encode(Sha256::digest(id.as_bytes()))
}

fn state_bytes(s: ClockState) -> Vec<u8> {
    serde_json::to_vec(&s).unwrap_or_default()
}

/// The rows `e` sets, in order.
pub fn rows(e: &Event) -> Vec<Row> {
    let def = |started_at: &Timestamp, deadline: &Timestamp, basis: &str| {
        serde_json::to_vec(&ClockDefBody {
            started_at: started_at.unix_timestamp(),
            deadline: deadline.unix_timestamp(),
            basis: basis.to_string(),
        })
        .unwrap_or_default()
    };
    match e {
        // Mail cprwatch sends is not part of the cases and clocks.
        Event::MessageReceived { .. }
        | Event::MailQueued { .. }
        | Event::MailSent { .. }
        | Event::MailFailed { .. }
        | Event::CanarySent { .. }
        | Event::RevocationObserved { .. } => Vec::new(),
        Event::MessageLogged { message, .. } => {
            vec![(RecSpace::Placement, message.clone(), Some(Vec::new()))]
        }
        Event::CaseOpened { case, message, .. } => vec![
            (RecSpace::Case, case.to_string(), Some(b"1".to_vec())),
            (
                RecSpace::Placement,
                message.clone(),
                Some(case.as_str().as_bytes().to_vec()),
            ),
        ],
        Event::MessageJoined { case, message, .. } => vec![(
            RecSpace::Placement,
            message.clone(),
            Some(case.as_str().as_bytes().to_vec()),
        )],
        Event::CaseMerged { case, .. } => vec![(RecSpace::Case, case.to_string(), None)],
        Event::CertificateReported { case, certificate } => vec![(
            RecSpace::Certificate,
            pair(case, &certificate.reference),
            Some(Vec::new()),
        )],
        Event::KeyReported { case, key } => {
            vec![(RecSpace::Key, pair(case, &key.identity()), Some(Vec::new()))]
        }
        Event::ClockStarted {
            clock,
            started_at,
            deadline,
            basis,
            ..
        } => vec![
            (
                RecSpace::ClockDef,
                clock.to_string(),
                Some(def(started_at, deadline, basis)),
            ),
            (
                RecSpace::ClockState,
                clock.to_string(),
                Some(state_bytes(ClockState::Pending)),
            ),
        ],
        Event::ClockRevised {
            clock,
            started_at,
            deadline,
            basis,
            ..
        } => vec![(
            RecSpace::ClockDef,
            clock.to_string(),
            Some(def(started_at, deadline, basis)),
        )],
        Event::ClockStopped { clock, state, .. } | Event::ClockReopened { clock, state } => {
            vec![(
                RecSpace::ClockState,
                clock.to_string(),
                Some(state_bytes(*state)),
            )]
        }
        Event::ClockBreached { clock, .. } => vec![(
            RecSpace::ClockState,
            clock.to_string(),
            Some(state_bytes(ClockState::Breached)),
        )],
        Event::ClockAcknowledged {
            clock,
            at,
            reason,
            by,
        } => vec![(
            RecSpace::ClockAck,
            clock.to_string(),
            Some(crate::deciding::fold::encode_ack(&Acknowledgement {
                at: *at,
                reason: reason.clone(),
                by: by.clone(),
            })),
        )],
        Event::CommandIgnored {
            message,
            command,
            line,
            reason,
            ..
        } => {
            let id = match (command, line) {
                (Some(c), _) => ignored_identity(message, reason, c),
                (None, l) => ignored_identity(message, reason, l),
            };
            vec![(RecSpace::Ignored, id, Some(Vec::new()))]
        }
    }
}

/// The account: rows set since the last [`Recorded::settled`] (all of them without a backing),
/// over the backing's.
pub(crate) struct Recorded {
    held: HashMap<(RecSpace, String), Option<Vec<u8>>>,
    backing: Option<Box<dyn RecordedBacking>>,
    damaged: bool,
}

impl Recorded {
    /// An account held whole in memory.
    pub(crate) fn held() -> Recorded {
        Recorded {
            held: HashMap::new(),
            backing: None,
            damaged: false,
        }
    }

    /// An account whose rows the backing keeps.
    pub(crate) fn over(backing: Box<dyn RecordedBacking>) -> Recorded {
        Recorded {
            held: HashMap::new(),
            backing: Some(backing),
            damaged: false,
        }
    }

    pub(crate) fn apply(&mut self, e: &Event) {
        for (space, key, value) in rows(e) {
            self.held.insert((space, key), value);
        }
    }

    /// The backing holds every row applied so far: forget them.
    pub(crate) fn settled(&mut self) {
        if self.backing.is_some() {
            self.held.clear();
        }
    }

    pub(crate) fn failed(&self) -> bool {
        self.damaged || self.backing.as_ref().is_some_and(|b| b.failed())
    }

    fn get(&mut self, space: RecSpace, key: &str) -> Option<Vec<u8>> {
        if let Some(v) = self.held.get(&(space, key.to_string())) {
            return v.clone();
        }
        self.backing.as_mut().and_then(|b| b.get(space, key))
    }

    pub(crate) fn case_open(&mut self, id: &CaseId) -> bool {
        self.get(RecSpace::Case, id.as_str()).is_some()
    }

    /// Where the log placed a message: `None` if nowhere yet, `Some(None)` if logged.
    pub(crate) fn placement(&mut self, hash: &str) -> Option<Option<CaseId>> {
        let v = self.get(RecSpace::Placement, hash)?;
        if v.is_empty() {
            return Some(None);
        }
        match std::str::from_utf8(&v) {
            Ok(s) => Some(Some(CaseId::from_stored(s))),
            Err(_) => {
                self.damaged = true;
                None
            }
        }
    }

    pub(crate) fn cert_listed(&mut self, case: &CaseId, reference: &str) -> bool {
        self.get(RecSpace::Certificate, &pair(case, reference))
            .is_some()
    }

    pub(crate) fn key_listed(&mut self, case: &CaseId, identity: &str) -> bool {
        self.get(RecSpace::Key, &pair(case, identity)).is_some()
    }

    pub(crate) fn clock(&mut self, id: &ClockId) -> Option<RecordedClock> {
        let def = self.get(RecSpace::ClockDef, id.as_str())?;
        let state = self.get(RecSpace::ClockState, id.as_str());
        let def: Option<ClockDefBody> = serde_json::from_slice(&def).ok();
        let state: Option<ClockState> = state.and_then(|s| serde_json::from_slice(&s).ok());
        let time = |s: i64| time::OffsetDateTime::from_unix_timestamp(s).ok();
        let out = def.zip(state).and_then(|(d, state)| {
            Some(RecordedClock {
                started_at: time(d.started_at)?,
                deadline: time(d.deadline)?,
                basis: d.basis,
                state,
            })
        });
        self.damaged |= out.is_none();
        out
    }

    /// The acknowledgement the log recorded last for a clock, if any.
    pub(crate) fn acknowledgement(&mut self, id: &ClockId) -> Option<Acknowledgement> {
        let v = self.get(RecSpace::ClockAck, id.as_str())?;
        let out = crate::deciding::fold::decode_ack(&v);
        self.damaged |= out.is_none();
        out
    }

    pub(crate) fn ignored(&mut self, identity: &str) -> bool {
        self.get(RecSpace::Ignored, identity).is_some()
    }

    /// The open cases held (for an account held whole), in id order.
    pub(crate) fn held_cases(&self) -> Vec<CaseId> {
        let mut out: Vec<CaseId> = self
            .held
            .iter()
            .filter(|((s, _), v)| *s == RecSpace::Case && v.is_some())
            .map(|((_, k), _)| CaseId::from_stored(k))
            .collect();
        out.sort();
        out
    }

    /// A message the log placed in `case` (for an account held whole).
    pub(crate) fn a_message_of(&self, case: &CaseId) -> Option<String> {
        let mut hashes: Vec<&String> = self
            .held
            .iter()
            .filter(|((s, _), v)| {
                *s == RecSpace::Placement && v.as_deref() == Some(case.as_str().as_bytes())
            })
            .map(|((_, k), _)| k)
            .collect();
        hashes.sort();
        hashes.first().map(|h| (*h).clone())
    }
}
