//! The desk's side of the signed checkpoints: signing one of the log's head, and mailing the
//! last two days' once a day (README "For auditors").

use time::Duration;

use super::{Desk, DeskError, outbox};
use crate::deciding::alerts::AlertLevel;
use crate::deciding::dispatch;
use crate::domain::event::{Envelope, MailRef};
use crate::domain::model::Timestamp;
use crate::domain::timefmt;
use crate::evidence::SignedCheckpoint;
use crate::notify::compose;
use crate::store;

/// How far back the daily mail reaches: two days, so a day the service started late or a
/// mail that failed is covered by the next one.
const MAILED_SPAN: Duration = Duration::days(2);

impl Desk {
    /// Sign a checkpoint of the log's head as it is at `now` and keep it in the store.
    pub fn sign_checkpoint(
        &mut self,
        key: &ed25519_dalek::SigningKey,
        now: Timestamp,
    ) -> Result<SignedCheckpoint, DeskError> {
        let store = self.store.tables().ok_or_else(|| {
            DeskError::Evidence("checkpoints are kept only in a SQLite store".into())
        })?;
        super::sign_checkpoint(store, key, now)
    }

    /// Queue, once each UTC day, a mail of the checkpoints signed in the last two days to
    /// every route taking `digest`. Nothing without `[smtp]`, such a route, or checkpoints.
    pub(crate) fn mail_checkpoints(&mut self, now: Timestamp) -> Result<Vec<Envelope>, DeskError> {
        let (Some(out), Some(store)) = (self.outbound.as_ref(), self.store.tables()) else {
            return Ok(Vec::new());
        };
        let since = now - MAILED_SPAN;
        let list: Vec<SignedCheckpoint> = store
            .signed_checkpoints()?
            .into_iter()
            .filter(|c| timefmt::parse(&c.at).is_ok_and(|at| at >= since && at <= now))
            .collect();
        if list.is_empty() {
            return Ok(Vec::new());
        }
        let day = timefmt::format(now);
        let day = day.get(..10).unwrap_or(&day).to_string();
        let mut batch = store::Batch::default();
        let mut events = Vec::new();
        for (route, to) in &out.routes {
            if !route.takes(AlertLevel::Digest) {
                continue;
            }
            let key = format!("checkpoints/{}/{day}", dispatch::route_key(route));
            if store.outbox_has(&key)? {
                continue;
            }
            let composed = compose::checkpoints(
                &compose::Outgoing {
                    from: &out.from,
                    to,
                    key: &key,
                    now,
                },
                &list,
            )
            .map_err(|e| DeskError::Compose(e.to_string()))?;
            let mail = MailRef {
                message_id: composed.message_id.clone(),
                kind: "checkpoints".to_string(),
                to: route.to.clone(),
                case: None,
                clocks: Vec::new(),
            };
            outbox::queue(&mut batch, &mut events, key, None, mail, composed, now);
        }
        self.commit(batch)?;
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desk_with_routes(dir: &std::path::Path) -> Desk {
        let text = format!(
            "[desk]\nstaff_domains = [\"example-ca.test\"]\n[store]\npath = \"{}\"\n\
             [smtp]\nhost = \"smtp.example-ca.test\"\nfrom = \"cprwatch@example-ca.test\"\n\
             [[alerts.route]]\nto = [\"desk@example-ca.test\"]\nlevels = [\"breach\", \"digest\"]\n\
             [[alerts.route]]\nto = [\"oncall@example-ca.test\"]\nlevels = [\"breach\"]\n",
            dir.join("s.sqlite").display()
        );
        let config = crate::config::from_str(&text, &dir.join("c.toml")).unwrap();
        Desk::open(&config).unwrap()
    }

    #[test]
    fn checkpoints_are_mailed_once_a_day_to_the_digest_routes() {
        let dir = tempfile::tempdir().unwrap();
        let mut desk = desk_with_routes(dir.path());
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let t0 = timefmt::parse("2026-11-30T08:00:00Z").unwrap();
        assert!(desk.mail_checkpoints(t0).unwrap().is_empty(), "none signed");
        let c = desk.sign_checkpoint(&key, t0).unwrap();
        assert_eq!((c.seq, c.head_hash.as_str()), (0, store::chain::GENESIS));
        let queued = desk.mail_checkpoints(t0 + Duration::minutes(1)).unwrap();
        assert_eq!(queued.len(), 1, "one mail, to the one route taking digest");
        assert!(
            desk.mail_checkpoints(t0 + Duration::hours(15))
                .unwrap()
                .is_empty(),
            "once a day"
        );
        let store = desk.store().tables().unwrap();
        let row = store
            .outbox_due(t0 + Duration::hours(1), 10)
            .unwrap()
            .into_iter()
            .find(|r| r.kind == "checkpoints")
            .unwrap();
        assert_eq!(row.to, ["desk@example-ca.test"]);
        let text = String::from_utf8_lossy(&row.body);
        let parsed = mail_parser::MessageParser::default()
            .parse(row.body.as_slice())
            .unwrap();
        let body = parsed.body_text(0).unwrap();
        assert_eq!(
            crate::evidence::parse_lines(&body),
            vec![SignedCheckpoint { id: 0, ..c }],
            "{text}"
        );
        // The next day's mail, signed after the first one's event.
        desk.sign_checkpoint(&key, t0 + Duration::hours(24))
            .unwrap();
        let next = desk.mail_checkpoints(t0 + Duration::hours(24)).unwrap();
        assert_eq!(next.len(), 1);
    }
}
