//! The canary task: every `every`, mail a canary to one published CPR address and tell the
//! desk it went (README "Mailbox canary").
//!
//! Whether it comes back is the desk's to see: a message whose canary token verifies is
//! recorded as that canary's arrival (or, in a delivery report, its bounce), and the alert
//! evaluation raises a `canary` alert when it is missing after `max_delay`, landed in junk, or
//! bounced. This task only keeps the schedule and hands the message over, through the canary's
//! own `smtp` account when it has one, so the canary travels the public path.

use std::time::Duration as StdDuration;

use lettre::Address;
use lettre::message::Mailbox;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::CanaryConfig;
use crate::deciding::canary;
use crate::desk::CanarySent;
use crate::domain::timefmt;
use crate::notify::compose;
use crate::notify::smtp::{Mailer, SendError};
use crate::service::folder_sync::Request;
use crate::service::shutdown::Shutdown;

/// After a transient failure to hand the canary over, try again this soon.
const RETRY: time::Duration = time::Duration::minutes(1);

pub(crate) struct CanaryTask {
    pub config: CanaryConfig,
    pub key: Vec<u8>,
    pub mailer: Mailer,
    pub desk: mpsc::Sender<Request>,
    pub shutdown: Shutdown,
}

impl CanaryTask {
    pub(crate) async fn run(mut self) {
        let to = self.config.to.clone();
        let last = match super::request(&self.desk, |reply| Request::CanaryLastSent {
            to: to.clone(),
            reply,
        })
        .await
        {
            Some(Ok(last)) => last,
            Some(Err(e)) => {
                warn!(canary = to.as_str(), error = %e, "cannot read the canary's schedule; sending one now");
                None
            }
            None => return,
        };
        let mut due = canary::next_due(self.config.every, last, timefmt::now());
        loop {
            let wait = StdDuration::try_from(due - timefmt::now()).unwrap_or(StdDuration::ZERO);
            tokio::select! {
                biased;
                _ = self.shutdown.recv() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            let now = timefmt::now();
            match self.send(now).await {
                Some(sent) => {
                    let reported =
                        super::request(&self.desk, |reply| Request::CanarySent { sent, reply })
                            .await;
                    match reported {
                        Some(Ok(())) => due = canary::next_due(self.config.every, Some(now), now),
                        Some(Err(e)) => {
                            warn!(canary = to.as_str(), error = %e, "cannot record the canary; sending another");
                            due = now + RETRY;
                        }
                        None => return,
                    }
                }
                None => due = now + RETRY,
            }
        }
    }

    /// Mail one canary; `None` when it could not be handed over for now (try again soon).
    async fn send(&self, now: time::OffsetDateTime) -> Option<CanarySent> {
        let to = self.config.to.clone();
        let id = canary::id(&to, now);
        let line = canary::header_value(&self.key, &id);
        let address: Address = match to.parse() {
            Ok(a) => a,
            Err(e) => {
                warn!(canary = to.as_str(), error = %e, "the canary's address does not parse");
                return None;
            }
        };
        let from = Mailbox::new(None, self.mailer.from().clone());
        let key = format!("canary-mail/{id}");
        let composed = match compose::canary(
            &compose::Outgoing {
                from: &from,
                to: std::slice::from_ref(&address),
                key: &key,
                now,
            },
            &id,
            &line,
        ) {
            Ok(c) => c,
            Err(e) => {
                warn!(canary = to.as_str(), error = %e, "cannot write the canary");
                return None;
            }
        };
        let error = match self.mailer.send(&[address], &composed.bytes).await {
            Ok(_) => {
                info!(canary = id.as_str(), to = to.as_str(), "canary sent");
                None
            }
            Err(SendError::Permanent(e)) => Some(e),
            Err(SendError::Transient(e)) => {
                warn!(canary = to.as_str(), error = %e, "cannot hand the canary over; retrying in a minute");
                return None;
            }
        };
        Some(CanarySent {
            id,
            to,
            message_id: composed.message_id,
            max_delay: self.config.max_delay,
            error,
        })
    }
}
