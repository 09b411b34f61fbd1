//! The courier: hands the outbox to the SMTP server, one mail at a time, and tells the desk
//! how each attempt went.
//!
//! It holds no state worth keeping: the outbox (in the store) says what is pending and when to
//! try it next, so a restart picks up exactly where the last process stopped. When the server
//! cannot be reached, the courier waits before its next round (1 s doubling to a minute) on
//! top of each mail's own schedule, so an outage costs a few connection attempts a minute,
//! not one per mail.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use lettre::Address;
use tokio::sync::{Notify, mpsc};
use tracing::{info, warn};

use crate::desk::Delivery;
use crate::domain::timefmt;
use crate::notify::smtp::{Mailer, SendError};
use crate::service::backoff::Backoff;
use crate::service::folder_sync::Request;
use crate::service::shutdown::Shutdown;
use crate::store::OutboxRow;

/// Mails asked for at once: one, claimed under the lease just before it is handed to the
/// server, so a leader paused past its lease can send at most the one mail it had claimed (which
/// the new leader sends once more, with the same Message-Id).
const ROUND: usize = 1;

/// With nothing pending, the outbox is looked at again after this long anyway (the desk wakes
/// the courier when it queues mail; this is the safety net).
const IDLE_LOOK: StdDuration = StdDuration::from_secs(30);

pub(crate) struct Courier {
    pub mailer: Mailer,
    pub desk: mpsc::Sender<Request>,
    /// Poked by the service loop when it queued mail.
    pub wake: Arc<Notify>,
    pub shutdown: Shutdown,
}

impl Courier {
    pub(crate) async fn run(mut self) {
        let mut backoff = Backoff::with(
            StdDuration::from_secs(1),
            StdDuration::from_secs(60),
            u64::from(std::process::id()),
        );
        let mut failing = false;
        loop {
            let (rows, next) = match super::request(&self.desk, |reply| Request::OutboxDue {
                limit: ROUND,
                reply,
            })
            .await
            {
                Some(Ok(found)) => found,
                Some(Err(e)) => {
                    warn!(error = %e, "cannot read the outbox; will retry");
                    (Vec::new(), None)
                }
                None => return,
            };
            let mut trouble = false;
            for row in rows {
                if self.shutdown.is_shutdown() {
                    return;
                }
                let outcome = self.attempt(&row).await;
                trouble |= matches!(outcome, Delivery::Transient(_));
                let id = row.id;
                if super::request(&self.desk, |reply| Request::Delivered {
                    id,
                    outcome,
                    reply,
                })
                .await
                .is_none()
                {
                    return;
                }
                if trouble {
                    // The server is likely down: the rest wait for the next round.
                    break;
                }
            }
            let wait = if trouble {
                failing = true;
                backoff.next_delay()
            } else {
                if failing {
                    info!("mail server reachable again");
                    failing = false;
                }
                backoff.reset();
                let now = timefmt::now();
                next.map_or(IDLE_LOOK, |t| {
                    StdDuration::try_from(t - now)
                        .unwrap_or(StdDuration::ZERO)
                        .min(IDLE_LOOK)
                })
            };
            tokio::select! {
                biased;
                _ = self.shutdown.recv() => return,
                _ = self.wake.notified(), if !trouble => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn attempt(&self, row: &OutboxRow) -> Delivery {
        let mut to = Vec::with_capacity(row.to.len());
        for a in &row.to {
            match a.parse::<Address>() {
                Ok(addr) => to.push(addr),
                Err(e) => return Delivery::Permanent(format!("recipient {a:?}: {e}")),
            }
        }
        match self.mailer.send(&to, &row.body).await {
            Ok(response) => Delivery::Sent(response),
            Err(SendError::Transient(e)) => Delivery::Transient(e),
            Err(SendError::Permanent(e)) => Delivery::Permanent(e),
        }
    }
}
