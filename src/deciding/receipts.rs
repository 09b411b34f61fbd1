//! Which reports get a receipt, and where it goes (README "Alerts and receipts").
//!
//! A receipt is the reporter's proof, within minutes, that the report arrived (BR 4.9.5 obliges
//! the CA to answer; CAs have been called out for reports "never received"). It is also mail
//! that cprwatch sends to an address anyone can put in a message, so every rule here keeps it
//! from becoming a loop, a backscatter source or a way to mail a third party:
//!
//! - only a message that opened a case gets one (a follow-up in a thread already has one);
//! - never to automatic mail (`Auto-Submitted` other than `no`, auto-replies, bounces, a null
//!   return path, cprwatch's own receipts), RFC 3834 §2;
//! - never to bulk or list mail (`Precedence: bulk|list|junk`, `List-Id`): the list would get
//!   it, not the reporter;
//! - never to `MAILER-DAEMON` or `postmaster`, nor to the desk's own addresses (its `From`, the
//!   canaries' and routes' addresses, staff addresses): that is how loops start;
//! - never for staff-authored mail, nor for reports in a junk folder when `skip_junk` says so;
//! - at most `max_per_sender_per_hour` to one address in any hour, so a forged sender cannot
//!   make cprwatch mail a victim without bound;
//! - never for a report received more than 24 hours before the moment of deciding: a first
//!   sync of an old mailbox, or a restart after a long outage, must not mail reporters about
//!   reports of last week or last year. A receipt is worth sending while it is news; after 24
//!   hours the preliminary report itself is due (BR 4.9.5), and a late "we received it" would
//!   only confuse.
//!
//! Pure: `now` is an argument, and how many receipts went to an address in the last hour is
//! asked of the caller, who keeps the outbox.

use std::collections::BTreeSet;
use std::fmt;

use lettre::Address;
use time::Duration;

use crate::domain::event::{Automation, MessageFacts};
use crate::domain::model::{FolderRole, Timestamp};

/// A report older than this at the moment of deciding gets no receipt (see the module doc).
pub(crate) const MAX_AGE: Duration = Duration::hours(24);

/// What decides whether a report gets a receipt: `[receipts]` and the desk's own addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReceiptRules {
    pub enabled: bool,
    /// At most this many receipts to one address in any hour.
    pub max_per_sender_per_hour: u32,
    /// No receipt for reports found in a junk folder.
    pub skip_junk: bool,
    /// Lowercase bare addresses: the `[smtp] from`, the canaries' `to`, every route's `to`,
    /// the staff addresses. Mail from them, or with a `Reply-To` naming them, gets no receipt.
    own_addresses: BTreeSet<String>,
}

impl ReceiptRules {
    /// The rules of `[receipts]`, with the desk's own addresses (any case, surrounding spaces
    /// ignored).
    pub(crate) fn new<S: AsRef<str>>(
        enabled: bool,
        max_per_sender_per_hour: u32,
        skip_junk: bool,
        own_addresses: impl IntoIterator<Item = S>,
    ) -> ReceiptRules {
        ReceiptRules {
            enabled,
            max_per_sender_per_hour,
            skip_junk,
            own_addresses: own_addresses
                .into_iter()
                .map(|a| a.as_ref().trim().to_lowercase())
                .filter(|a| !a.is_empty())
                .collect(),
        }
    }

    fn is_own(&self, address: &str) -> bool {
        self.own_addresses.contains(&address.trim().to_lowercase())
    }
}

/// Why a report gets no receipt: said in the log, so staff can tell why a reporter heard
/// nothing. Never quotes the report (an address that does not parse is not repeated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Skip {
    /// `[receipts] enabled = false`.
    Disabled,
    /// The message joined a case (or opened none): only the report that opens a case gets one.
    NotOpening,
    /// Staff-authored mail.
    Staff,
    /// Automatic mail of this kind.
    Automatic(Automation),
    /// Bulk or list mail, with the mark (`precedence:bulk`, `list-id`, …).
    Bulk(String),
    /// Found in a junk folder and `skip_junk` is set.
    Junk,
    /// Received more than [`MAX_AGE`] before the moment of deciding.
    TooOld { received_at: Timestamp },
    /// No `From:`, or one that is not an address.
    NoSender,
    /// The first `Reply-To:` is not an address.
    BadReplyTo,
    /// `MAILER-DAEMON` or `postmaster`.
    MailSystem,
    /// One of the desk's own addresses.
    OwnAddress,
    /// `max` receipts already went to this address in the last hour.
    RateLimited { sent: usize, max: u32 },
}

impl Skip {
    /// A short name for a log field or an event.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Skip::Disabled => "disabled",
            Skip::NotOpening => "not-opening",
            Skip::Staff => "staff",
            Skip::Automatic(_) => "automatic",
            Skip::Bulk(_) => "bulk",
            Skip::Junk => "junk",
            Skip::TooOld { .. } => "too-old",
            Skip::NoSender => "no-sender",
            Skip::BadReplyTo => "bad-reply-to",
            Skip::MailSystem => "mail-system",
            Skip::OwnAddress => "own-address",
            Skip::RateLimited { .. } => "rate-limited",
        }
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::Disabled => write!(f, "receipts are off ([receipts] enabled = false)"),
            Skip::NotOpening => write!(f, "the message opened no case"),
            Skip::Staff => write!(f, "staff-authored mail"),
            Skip::Automatic(a) => write!(
                f,
                "automatic mail ({}): no automatic answer to it (RFC 3834)",
                automation_name(*a)
            ),
            Skip::Bulk(mark) => write!(f, "bulk or list mail ({mark})"),
            Skip::Junk => write!(f, "found in a junk folder ([receipts] skip_junk = true)"),
            Skip::TooOld { received_at } => write!(
                f,
                "received {}, more than 24 hours ago: a receipt is sent only while the report is new",
                crate::domain::timefmt::format(*received_at)
            ),
            Skip::NoSender => write!(f, "no usable From: address"),
            Skip::BadReplyTo => write!(f, "the Reply-To: address is not usable"),
            Skip::MailSystem => {
                write!(f, "sent by or to a mail system (MAILER-DAEMON, postmaster)")
            }
            Skip::OwnAddress => write!(f, "one of the desk's own addresses"),
            Skip::RateLimited { sent, max } => write!(
                f,
                "{sent} receipts already went to this address in the last hour ([receipts] max_per_sender_per_hour = {max})"
            ),
        }
    }
}

fn automation_name(a: Automation) -> &'static str {
    match a {
        Automation::None => "none",
        Automation::AutoGenerated => "auto-generated",
        Automation::AutoReplied => "auto-replied",
        Automation::Bounce => "bounce",
        Automation::Receipt => "a cprwatch receipt",
        Automation::Canary => "cprwatch's mailbox canary",
    }
}

/// Whether the report `facts` gets a receipt at `now`, and the address it goes to: the first
/// `Reply-To:` if there is one, else `From:`. `opened_case` says whether this message opened a
/// case; `sent_last_hour` counts the receipts that went to an address in the hour before `now`
/// (asked only once every other rule has passed).
pub(crate) fn receipt_decision(
    facts: &MessageFacts,
    opened_case: bool,
    rules: &ReceiptRules,
    sent_last_hour: impl FnOnce(&Address) -> usize,
    now: Timestamp,
) -> Result<Address, Skip> {
    if !rules.enabled {
        return Err(Skip::Disabled);
    }
    if !opened_case {
        return Err(Skip::NotOpening);
    }
    if facts.is_staff() {
        return Err(Skip::Staff);
    }
    if facts.automation != Automation::None {
        return Err(Skip::Automatic(facts.automation));
    }
    if let Some(mark) = &facts.bulk {
        return Err(Skip::Bulk(mark.clone()));
    }
    if rules.skip_junk && facts.folder == FolderRole::Junk {
        return Err(Skip::Junk);
    }
    if facts.received_at + MAX_AGE < now {
        return Err(Skip::TooOld {
            received_at: facts.received_at,
        });
    }
    let from: Address = facts.from.trim().parse().map_err(|_| Skip::NoSender)?;
    let to: Address = match facts.reply_to.first() {
        Some(r) => r.trim().parse().map_err(|_| Skip::BadReplyTo)?,
        None => from.clone(),
    };
    for a in [&from, &to] {
        if is_mail_system(a) {
            return Err(Skip::MailSystem);
        }
        if rules.is_own(a.as_ref()) {
            return Err(Skip::OwnAddress);
        }
    }
    let sent = sent_last_hour(&to);
    if sent >= rules.max_per_sender_per_hour as usize {
        return Err(Skip::RateLimited {
            sent,
            max: rules.max_per_sender_per_hour,
        });
    }
    Ok(to)
}

/// `MAILER-DAEMON@…` or `postmaster@…`, any case.
fn is_mail_system(a: &Address) -> bool {
    let user = a.user();
    user.eq_ignore_ascii_case("mailer-daemon") || user.eq_ignore_ascii_case("postmaster")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::TimeSource;
    use time::macros::datetime;

    const NOW: Timestamp = datetime!(2026-03-02 10:05 UTC);

    fn report() -> MessageFacts {
        MessageFacts {
            content_hash: "ab".repeat(32),
            size: 100,
            message_id: "<r1@reporter.test>".into(),
            synthetic_id: false,
            folder: FolderRole::Inbox,
            position: None,
            received_at: datetime!(2026-03-02 10:00 UTC),
            time_source: TimeSource::Received,
            date_header: None,
            from: "rita@reporter.test".into(),
            reply_to: vec![],
            to: vec!["cpr@example-ca.test".into()],
            cc: vec![],
            subject: "Key compromise".into(),
            in_reply_to: vec![],
            references: vec![],
            automation: Automation::None,
            bulk: None,
            staff: None,
            certificates: vec![],
            keys: vec![],
            rules: vec![],
            commands: vec![],
            bad_commands: vec![],
            parsed_ok: true,
            problems: vec![],
            canary: None,
        }
    }

    fn rules() -> ReceiptRules {
        ReceiptRules::new(
            true,
            5,
            false,
            [
                "cprwatch@example-ca.test",
                " CPR@Example-CA.test ",
                "desk@example-ca.test",
            ],
        )
    }

    fn decide(f: &MessageFacts) -> Result<Address, Skip> {
        receipt_decision(f, true, &rules(), |_| 0, NOW)
    }

    #[test]
    fn a_fresh_report_that_opened_a_case_gets_a_receipt_to_its_sender() {
        let to = decide(&report()).unwrap();
        assert_eq!(to.to_string(), "rita@reporter.test");
    }

    #[test]
    fn the_receipt_goes_to_the_first_reply_to() {
        let mut f = report();
        f.reply_to = vec!["rita.private@home.test".into(), "other@x.test".into()];
        assert_eq!(decide(&f).unwrap().to_string(), "rita.private@home.test");
        f.reply_to = vec!["not an address".into()];
        assert_eq!(decide(&f), Err(Skip::BadReplyTo));
    }

    #[test]
    fn no_receipt_when_receipts_are_off() {
        let mut r = rules();
        r.enabled = false;
        assert_eq!(
            receipt_decision(&report(), true, &r, |_| 0, NOW),
            Err(Skip::Disabled)
        );
    }

    #[test]
    fn no_receipt_for_a_message_that_opened_no_case() {
        assert_eq!(
            receipt_decision(&report(), false, &rules(), |_| 0, NOW),
            Err(Skip::NotOpening)
        );
    }

    #[test]
    fn no_receipt_for_automatic_mail_of_any_kind() {
        for a in [
            Automation::AutoGenerated,
            Automation::AutoReplied,
            Automation::Bounce,
            Automation::Receipt,
        ] {
            let mut f = report();
            f.automation = a;
            assert_eq!(decide(&f), Err(Skip::Automatic(a)));
        }
    }

    #[test]
    fn no_receipt_for_bulk_or_list_mail() {
        for mark in [
            "precedence:bulk",
            "precedence:list",
            "precedence:junk",
            "list-id",
        ] {
            let mut f = report();
            f.bulk = Some(mark.into());
            assert_eq!(decide(&f), Err(Skip::Bulk(mark.into())));
        }
    }

    #[test]
    fn no_receipt_to_mailer_daemon_or_postmaster_in_any_case() {
        for from in [
            "MAILER-DAEMON@mx.reporter.test",
            "mailer-daemon@x.test",
            "Postmaster@reporter.test",
        ] {
            let mut f = report();
            f.from = from.into();
            assert_eq!(decide(&f), Err(Skip::MailSystem), "{from}");
        }
        let mut f = report();
        f.reply_to = vec!["postmaster@reporter.test".into()];
        assert_eq!(decide(&f), Err(Skip::MailSystem));
    }

    #[test]
    fn no_receipt_to_the_desks_own_addresses() {
        for from in [
            "cprwatch@example-ca.test",
            "cpr@example-ca.test",
            "DESK@example-ca.test",
        ] {
            let mut f = report();
            f.from = from.into();
            assert_eq!(decide(&f), Err(Skip::OwnAddress), "{from}");
        }
        // A Reply-To naming the desk would make cprwatch write to itself.
        let mut f = report();
        f.reply_to = vec!["cpr@example-ca.test".into()];
        assert_eq!(decide(&f), Err(Skip::OwnAddress));
    }

    #[test]
    fn no_receipt_for_staff_mail() {
        let mut f = report();
        f.staff = Some("dkim:example-ca.test via mx.example-ca.test".into());
        assert_eq!(decide(&f), Err(Skip::Staff));
    }

    #[test]
    fn junk_gets_a_receipt_unless_skip_junk() {
        let mut f = report();
        f.folder = FolderRole::Junk;
        assert!(decide(&f).is_ok());
        let mut r = rules();
        r.skip_junk = true;
        assert_eq!(receipt_decision(&f, true, &r, |_| 0, NOW), Err(Skip::Junk));
        assert!(receipt_decision(&report(), true, &r, |_| 0, NOW).is_ok());
    }

    #[test]
    fn no_receipt_without_a_usable_from() {
        for from in [
            "",
            "   ",
            "undisclosed-recipients",
            "a@",
            "@b.test",
            "a b@c.test",
        ] {
            let mut f = report();
            f.from = from.into();
            assert_eq!(decide(&f), Err(Skip::NoSender), "{from:?}");
        }
    }

    #[test]
    fn at_most_max_per_hour_to_one_address() {
        let f = report();
        let mut asked = None;
        let ok = receipt_decision(
            &f,
            true,
            &rules(),
            |a| {
                asked = Some(a.to_string());
                4
            },
            NOW,
        );
        assert!(ok.is_ok());
        assert_eq!(asked.as_deref(), Some("rita@reporter.test"));
        assert_eq!(
            receipt_decision(&f, true, &rules(), |_| 5, NOW),
            Err(Skip::RateLimited { sent: 5, max: 5 })
        );
        // Counted for the address the receipt would go to.
        let mut f = report();
        f.reply_to = vec!["victim@elsewhere.test".into()];
        let _ = receipt_decision(
            &f,
            true,
            &rules(),
            |a| {
                asked = Some(a.to_string());
                0
            },
            NOW,
        );
        assert_eq!(asked.as_deref(), Some("victim@elsewhere.test"));
    }

    #[test]
    fn no_receipt_for_a_report_received_more_than_a_day_ago() {
        let mut f = report();
        f.received_at = NOW - Duration::hours(24);
        assert!(decide(&f).is_ok());
        f.received_at = NOW - Duration::hours(24) - Duration::seconds(1);
        assert!(matches!(decide(&f), Err(Skip::TooOld { .. })));
        f.received_at = datetime!(2019-05-01 00:00 UTC);
        let skip = decide(&f).unwrap_err();
        assert!(skip.to_string().contains("2019-05-01T00:00:00Z"), "{skip}");
    }

    /// The markers as the pipeline reads them from real headers, end to end.
    #[test]
    fn headers_of_automatic_and_list_mail_stop_the_receipt() {
        use crate::domain::model::SourceMeta;
        use crate::reading::facts::{Policy, message_facts};
        let policy = Policy {
            staff: Default::default(),
            rules: crate::reading::rules::RuleSet::shipped(),
            limits: Default::default(),
            canary_keys: Vec::new(),
        };
        let meta = SourceMeta {
            folder: FolderRole::Inbox,
            position: None,
            server_time: None,
        };
        for (header, want) in [
            ("X-Note: none", "ok"),
            ("Auto-Submitted: no", "ok"),
            ("Auto-Submitted: auto-generated", "automatic"),
            ("Auto-Submitted: auto-replied", "automatic"),
            ("X-Autoreply: yes", "automatic"),
            ("Return-Path: <>", "automatic"),
            ("X-Cprwatch-Receipt: yes", "automatic"),
            ("Precedence: bulk", "bulk"),
            ("Precedence: list", "bulk"),
            ("Precedence: junk", "bulk"),
            ("List-Id: <cpr.lists.example>", "bulk"),
        ] {
            let raw = format!(
                "Received: from r by mx.example-ca.test; Mon, 02 Mar 2026 10:00:00 +0000\r\n\
                 From: Rita <rita@reporter.test>\r\nTo: cpr@example-ca.test\r\n\
                 Subject: Key compromise\r\nMessage-ID: <r@reporter.test>\r\n{header}\r\n\r\n\
                 https://crt.sh/?id=42\r\n"
            );
            let f = message_facts(raw.as_bytes(), &"cd".repeat(32), &meta, &policy, NOW);
            let got = match decide(&f) {
                Ok(_) => "ok",
                Err(s) => s.code(),
            };
            assert_eq!(got, want, "{header}");
        }
    }

    #[test]
    fn every_reason_reads_for_a_person_and_has_a_code() {
        let all = [
            Skip::Disabled,
            Skip::NotOpening,
            Skip::Staff,
            Skip::Automatic(Automation::Bounce),
            Skip::Bulk("list-id".into()),
            Skip::Junk,
            Skip::TooOld { received_at: NOW },
            Skip::NoSender,
            Skip::BadReplyTo,
            Skip::MailSystem,
            Skip::OwnAddress,
            Skip::RateLimited { sent: 5, max: 5 },
        ];
        let codes: BTreeSet<&str> = all.iter().map(Skip::code).collect();
        assert_eq!(codes.len(), all.len());
        for s in all {
            assert!(s.to_string().len() > 10, "{s:?}");
        }
    }
}
