//! Staff actions taken in the dashboard, recorded exactly as staff commands by mail are.
//!
//! An action (dismiss a case as not a problem report, set the BR reason, acknowledge a breach,
//! mark a case answered elsewhere) becomes a staff message in the case's thread: a reply to the
//! report carrying the one `CPR-*` line, read through the same pipeline as any mail and kept in
//! the store like any mail. So the projector applies it exactly as the mail command, an auditor
//! sees it in the case's timeline with everything else, and a rebuild or `verify` derives it
//! again from the log. Its position ([`Position::web`]) names the logged-in user, and only the
//! web server makes such positions, so the staff proof is who was logged in, never the
//! message's headers.

use std::time::SystemTime;

use lettre::Message;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;

use super::{Derive, Desk, DeskError, Recorded};
use crate::domain::event::Envelope;
use crate::domain::ids::{CaseId, Position};
use crate::domain::model::{FolderRole, SourceMeta, Timestamp};
use crate::pipeline::{RawMessage, prepare};

/// What a dashboard user can do to a case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `CPR-Dismiss: <reason>`: not a problem report (spam).
    Dismiss { reason: String },
    /// `CPR-Reason: <reference> <item> [note]`: the BR 4.9.1.1 item staff determined.
    Reason {
        target: String,
        item: u8,
        note: Option<String>,
    },
    /// `CPR-Delayed: <reference> <incident URL or reason>`: acknowledge a breach.
    Delayed { target: String, reason: String },
    /// `CPR-Answered: <where>`: the preliminary report was given outside this mailbox.
    Answered { place: String },
}

impl Action {
    /// The command line, every argument on one line: a reason holding a line break must not
    /// start a second command.
    fn line(&self) -> Result<String, DeskError> {
        let one = |what: &str, s: &str| -> Result<String, DeskError> {
            let s: String = s
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
            if s.is_empty() {
                return Err(DeskError::Action(format!("{what} is empty; give one")));
            }
            Ok(s)
        };
        Ok(match self {
            Action::Dismiss { reason } => format!("CPR-Dismiss: {}", one("the reason", reason)?),
            Action::Reason { target, item, note } => {
                if !(1..=16).contains(item) {
                    return Err(DeskError::Action(format!(
                        "BR 4.9.1.1 item {item} does not exist; give 1 to 16"
                    )));
                }
                let mut l = format!("CPR-Reason: {} {item}", one("the reference", target)?);
                if let Some(n) = note.as_deref().filter(|n| !n.trim().is_empty()) {
                    l.push(' ');
                    l.push_str(&one("the note", n)?);
                }
                l
            }
            Action::Delayed { target, reason } => format!(
                "CPR-Delayed: {} {}",
                one("the reference", target)?,
                one("the incident URL or reason", reason)?
            ),
            Action::Answered { place } => {
                format!("CPR-Answered: {}", one("where it was answered", place)?)
            }
        })
    }
}

impl Desk {
    /// Record `actions` by dashboard user `user` at `now`, each on its case, in one batch (a
    /// spam wave of 500 cases is dismissed in one commit), and derive what they change.
    /// Returns what was committed and the events. A case that does not exist, or an action
    /// that cannot be written, refuses the whole batch with an error saying which.
    pub(crate) fn record_actions(
        &mut self,
        user: &str,
        actions: Vec<(CaseId, Action)>,
        now: Timestamp,
    ) -> Result<(Recorded, Vec<Envelope>), DeskError> {
        let Some(store) = self.store.tables() else {
            return Err(DeskError::Action(
                "the dashboard acts only on a stored desk".into(),
            ));
        };
        // Unique even for two batches in one second (`now` has whole seconds): a repeated id
        // would be a position already read, and the action would be skipped as seen.
        let mut nonce = [0u8; 8];
        getrandom::getrandom(&mut nonce)
            .map_err(|e| DeskError::Action(format!("no randomness for an action id: {e}")))?;
        let batch = format!("{}-{}", now.unix_timestamp(), hex::encode(nonce));
        let mut raw = Vec::with_capacity(actions.len());
        for (i, (case, action)) in actions.iter().enumerate() {
            let Some((_, c)) = store.case_at(case.as_str(), now)? else {
                return Err(DeskError::Action(format!(
                    "there is no case {case}; reload the page"
                )));
            };
            let founder = c
                .messages
                .iter()
                .find(|m| m.content_hash == c.founder)
                .map(|m| m.message_id.clone());
            let id = format!("{batch}-{i}");
            let bytes = action_message(
                user,
                &id,
                case,
                founder.as_deref(),
                &c.subject,
                &action.line()?,
                now,
            )?;
            raw.push(RawMessage {
                raw: bytes,
                meta: SourceMeta {
                    folder: FolderRole::Sent,
                    position: Some(Position::web(user, &id)),
                    server_time: Some(now),
                },
            });
        }
        let prepared = raw
            .into_iter()
            .map(|m| prepare(m, &self.policy, now, true))
            .collect();
        let mut events = Vec::new();
        let recorded = self.record(prepared, Vec::new(), now, Derive::Now, Some(&mut events))?;
        Ok((recorded, events))
    }
}

/// The staff message an action is kept as: a reply in the case's thread (`In-Reply-To` the
/// report, the case tag in the subject), from the user at the dashboard, holding the command.
fn action_message(
    user: &str,
    id: &str,
    case: &CaseId,
    founder: Option<&str>,
    subject: &str,
    line: &str,
    now: Timestamp,
) -> Result<Vec<u8>, DeskError> {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let subject: String = clean(subject).chars().take(120).collect();
    // The user's name in the address too, so every view of the case's messages says who.
    let local: String = user
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let from = Mailbox::new(
        Some(format!("{} (cprwatch dashboard)", clean(user))),
        format!("{}@dashboard.cprwatch.invalid", local.trim_matches('.'))
            .parse()
            .map_err(|e| {
                DeskError::Action(format!("the user name {user:?} makes no address: {e}"))
            })?,
    );
    let mut b = Message::builder()
        .from(from.clone())
        .to(from)
        .subject(format!("Re: {subject} [{case}]"))
        .date(SystemTime::from(now))
        .message_id(Some(format!("<web-{id}@cprwatch.invalid>")));
    if let Some(f) = founder {
        b = b.in_reply_to(f.to_string()).references(f.to_string());
    }
    let m = b
        .header(ContentType::TEXT_PLAIN)
        .body(format!(
            "Recorded in the cprwatch dashboard by {}.\r\n\r\n{line}\r\n",
            clean(user)
        ))
        .map_err(|e| DeskError::Action(format!("cannot write the action: {e}")))?;
    Ok(m.formatted())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::Event;

    const REPORT: &str = "Received: from r by mx.example-ca.test; Mon, 02 Mar 2026 10:00:00 +0000\r\n\
From: r@reporter.test\r\nTo: cpr@example-ca.test\r\nSubject: Misissued\r\n\
Message-ID: <report-1@reporter.test>\r\n\r\nPlease look at https://crt.sh/?id=4242 - misissued.\r\n";

    #[test]
    fn a_dashboard_dismissal_is_a_staff_command_by_the_logged_in_user_in_the_case_thread() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[desk]\nstaff_domains = [\"example-ca.test\"]\n[store]\npath = \"s.sqlite\"\n";
        let config = crate::config::from_str(text, &dir.path().join("c.toml")).unwrap();
        let now = crate::domain::timefmt::parse("2026-03-02T11:00:00Z").unwrap();
        let mut desk = Desk::open(&config).unwrap();
        let report = RawMessage {
            raw: REPORT.as_bytes().to_vec(),
            meta: SourceMeta {
                folder: FolderRole::Inbox,
                position: None,
                server_time: None,
            },
        };
        let p = prepare(report, &desk.policy, now, true);
        desk.record(vec![p], Vec::new(), now, Derive::Now, None)
            .unwrap();
        let case = CaseId::from_stored("CPR-2026-0001");
        // A reason with a line break tries to smuggle in a second command.
        let action = Action::Dismiss {
            reason: "spam wave\r\nCPR-Revoked: crtsh:4242".into(),
        };
        let (done, events) = desk
            .record_actions("alice", vec![(case.clone(), action)], now)
            .unwrap();
        assert_eq!(done.new_messages, 1);
        let facts = events
            .iter()
            .find_map(|e| match &e.event {
                Event::MessageReceived { facts } => Some(facts.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(facts.staff.as_deref(), Some("web user alice"));
        assert_eq!(facts.commands.len(), 1, "{:?}", facts.commands);
        assert!(events.iter().any(|e| matches!(
            &e.event,
            Event::MessageJoined { case: c, .. } if c == &case
        )));
        let p = desk.projection_at(now);
        let c = p.case(case.as_str()).unwrap();
        let (_, why) = c.dismissed.clone().expect("dismissed");
        assert!(why.contains("spam wave"), "{why}");
        assert!(
            p.clocks
                .values()
                .all(|k| k.status(now).state != crate::domain::event::ClockState::Pending),
            "a dismissed case's clocks stop"
        );
        // A second batch in the same second is a new action, not one already read.
        let (again, _) = desk
            .record_actions(
                "alice",
                vec![(
                    case.clone(),
                    Action::Answered {
                        place: "by phone".into(),
                    },
                )],
                now,
            )
            .unwrap();
        assert_eq!(again.new_messages, 1);
        // A case that does not exist refuses the batch.
        let err = desk
            .record_actions(
                "alice",
                vec![(
                    CaseId::from_stored("CPR-2026-0099"),
                    Action::Answered {
                        place: "phone".into(),
                    },
                )],
                now,
            )
            .unwrap_err();
        assert!(err.to_string().contains("no case CPR-2026-0099"), "{err}");
    }
}
