//! Graceful shutdown as one small type (after tokio's mini-redis).
//!
//! The service loop asks [`Shutdown::recv`] in its `select!`; SIGTERM or Ctrl-C resolves it.
//! The loop never abandons a batch half-way: it only looks at the signal between batches, so
//! whatever was in flight is committed before the process exits.

use tokio::sync::watch;

/// A signal that the service should stop, shared by every task.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// The sending half: whoever owns it decides when to stop.
#[derive(Debug)]
pub struct Trigger {
    tx: watch::Sender<bool>,
}

impl Shutdown {
    pub fn new() -> (Trigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (Trigger { tx }, Shutdown { rx })
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown has been triggered (at once if it already was).
    pub(crate) async fn recv(&mut self) {
        // An error means every trigger is gone: nobody can ask us to stop any more, which we
        // treat as a request to stop.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}

impl Trigger {
    pub fn fire(&self) {
        let _ = self.tx.send(true);
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn recv_resolves_after_fire() {
        let (trigger, mut shutdown) = Shutdown::new();
        assert!(!shutdown.is_shutdown());
        trigger.fire();
        shutdown.recv().await;
        assert!(shutdown.is_shutdown());
    }
}
