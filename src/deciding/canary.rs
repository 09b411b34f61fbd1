//! The mailbox canary (README "Mailbox canary"): its token, and what its fate says.
//!
//! A canary is a synthetic report cprwatch mails to a published CPR address on a schedule and
//! expects back in a watched folder. It must never open a case, so it has to be told from a
//! real report with certainty: it carries `X-CPR-Canary: <id> <token>`, where the token is an
//! HMAC of the id under a secret only cprwatch holds. Anyone can write the header; only a
//! token that verifies makes a message a canary, so a reporter cannot hide a report by
//! dressing it up as one. The same line in the body lets a bounce that quotes the canary be
//! recognised as the canary's bounce.
//!
//! Pure: the key and `now` are arguments.

use hmac::{Hmac, Mac};
use regex::Regex;
use sha2::Sha256;
use std::sync::LazyLock;
use time::Duration;

use crate::domain::model::{FolderRole, Timestamp};

/// The header (and body line) a canary carries.
pub const HEADER: &str = "X-CPR-Canary";

/// Hex characters of the HMAC kept in a token: 128 bits, beyond guessing.
const TOKEN_HEX: usize = 32;

static LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?mi)^[ \t>]*X-CPR-Canary:[ \t]*([0-9]{1,20}-[0-9a-f]{8})[ \t]+([0-9a-f]{32})\b")
        .expect("static regex")
});

/// A canary's id: when it was sent and a short hash of where to, so two canaries never share
/// one.
pub fn id(to: &str, sent_at: Timestamp) -> String {
    let h = crate::store::chain::content_hash(to.trim().to_ascii_lowercase().as_bytes());
    format!("{}-{}", sent_at.unix_timestamp(), &h[..8])
}

/// The token for `id` under `key`.
pub fn token(key: &[u8], id: &str) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    hex::encode(mac.finalize().into_bytes())[..TOKEN_HEX].to_string()
}

/// The `X-CPR-Canary` value for `id`.
pub fn header_value(key: &[u8], id: &str) -> String {
    format!("{id} {}", token(key, id))
}

/// The id of the first canary line in `text` (a header value written as `X-CPR-Canary: …`,
/// or a body) whose token verifies under one of `keys`.
pub fn verified(keys: &[Vec<u8>], text: &str) -> Option<String> {
    LINE.captures_iter(text).find_map(|c| {
        let (id, tok) = (c.get(1)?.as_str(), c.get(2)?.as_str());
        let tok = hex::decode(tok).ok()?;
        keys.iter()
            .any(|k| match <Hmac<Sha256> as Mac>::new_from_slice(k) {
                Ok(mut mac) => {
                    mac.update(id.as_bytes());
                    // Constant time, on the truncated MAC.
                    mac.verify_truncated_left(&tok).is_ok()
                }
                Err(_) => false,
            })
            .then(|| id.to_string())
    })
}

/// What went wrong with one canary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Not seen in any watched folder within `max_delay`.
    Missing,
    /// Arrived, but in a junk folder: real reports with a certificate attached land there too.
    InJunk,
    /// Bounced: refused when handed over, or a bounce quoting it came back.
    Bounced(String),
}

impl Problem {
    pub fn code(&self) -> &'static str {
        match self {
            Problem::Missing => "missing",
            Problem::InJunk => "junk",
            Problem::Bounced(_) => "bounced",
        }
    }

    pub fn describe(&self, max_delay: Duration) -> String {
        match self {
            Problem::Missing => format!(
                "not seen in any watched folder within {}",
                crate::domain::timefmt::human_span(max_delay.whole_seconds())
            ),
            Problem::InJunk => "arrived in a junk folder".into(),
            Problem::Bounced(why) => format!("bounced: {why}"),
        }
    }
}

/// One canary's fate so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fate {
    pub sent_at: Option<Timestamp>,
    pub arrived: Option<(Timestamp, FolderRole)>,
    pub bounced: Option<String>,
}

/// What is wrong with a canary at `now`, if anything yet: a bounce first, then where it
/// arrived, then whether it is overdue.
pub fn problem(fate: &Fate, max_delay: Duration, now: Timestamp) -> Option<Problem> {
    if let Some(why) = &fate.bounced {
        return Some(Problem::Bounced(why.clone()));
    }
    match fate.arrived {
        Some((_, FolderRole::Junk)) => Some(Problem::InJunk),
        Some(_) => None,
        None => fate
            .sent_at
            .filter(|s| *s + max_delay <= now)
            .map(|_| Problem::Missing),
    }
}

/// When the next canary to an address is due, after one sent at `last` (`None`: never, so
/// now). A moment already past means at once.
pub fn next_due(every: Duration, last: Option<Timestamp>, now: Timestamp) -> Timestamp {
    last.map_or(now, |l| l + every)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T: Timestamp = datetime!(2026-03-01 12:00 UTC);

    #[test]
    fn only_a_token_made_with_the_key_verifies() {
        let key = b"canary-secret".to_vec();
        let id = id("cpr@example-ca.test", T);
        let line = format!("{HEADER}: {}", header_value(&key, &id));
        assert_eq!(
            verified(std::slice::from_ref(&key), &line),
            Some(id.clone())
        );
        // Quoted in a bounce's returned message, indented or after `>`.
        let quoted = format!("Original message follows\n> {line}\n");
        assert_eq!(
            verified(std::slice::from_ref(&key), &quoted),
            Some(id.clone())
        );
        // Another key, a changed id, a changed token: not a canary.
        assert_eq!(verified(&[b"other".to_vec()], &line), None);
        let forged = line.replace(&id, &format!("{}-00000000", T.unix_timestamp()));
        assert_eq!(verified(std::slice::from_ref(&key), &forged), None);
        let mut bad = line.clone();
        let last = bad.pop().unwrap();
        bad.push(if last == '0' { '1' } else { '0' });
        assert_eq!(verified(std::slice::from_ref(&key), &bad), None);
        assert_eq!(verified(&[], &line), None);
    }

    #[test]
    fn a_canary_is_missing_after_max_delay_in_junk_when_there_and_bounced_first() {
        let d = Duration::minutes(15);
        let sent = Fate {
            sent_at: Some(T),
            ..Fate::default()
        };
        assert_eq!(problem(&sent, d, T + Duration::minutes(14)), None);
        assert_eq!(problem(&sent, d, T + d), Some(Problem::Missing));
        let arrived = Fate {
            arrived: Some((T + Duration::minutes(1), FolderRole::Inbox)),
            ..sent.clone()
        };
        assert_eq!(problem(&arrived, d, T + Duration::hours(5)), None);
        let junk = Fate {
            arrived: Some((T + Duration::minutes(1), FolderRole::Junk)),
            ..sent.clone()
        };
        assert_eq!(
            problem(&junk, d, T + Duration::minutes(2)),
            Some(Problem::InJunk)
        );
        let bounced = Fate {
            bounced: Some("550 no such user".into()),
            ..junk
        };
        assert_eq!(problem(&bounced, d, T).map(|p| p.code()), Some("bounced"));
    }

    #[test]
    fn the_next_canary_is_due_every_period_and_at_once_the_first_time() {
        let every = Duration::hours(1);
        assert_eq!(next_due(every, None, T), T);
        assert_eq!(
            next_due(every, Some(T), T + Duration::minutes(5)),
            T + every
        );
        // Overdue (cprwatch was down): already past, so at once.
        assert!(next_due(every, Some(T), T + Duration::hours(3)) < T + Duration::hours(3));
    }
}
