//! Copies SQLite's write-ahead log back into the database file on a thread of its own.
//!
//! By default the connection that commits also checkpoints, inside whichever commit crosses
//! the threshold: a pause of its own in the one thread every message goes through. Here the
//! writer's automatic checkpoints are off and this thread runs passive checkpoints on a second
//! connection, which WAL mode lets proceed while the writer goes on appending. Durability is
//! unchanged: a commit is durable once in the log; checkpointing only keeps the log short.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

/// Checkpoint after this many bytes were committed (SQLite's own default is ~4 MB of pages)…
const EVERY_BYTES: usize = 4 << 20;
/// … or when commits pause this long with anything not yet checkpointed.
const QUIET: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub(super) struct Checkpointer {
    nudge: Option<mpsc::Sender<usize>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Start checkpointing the database at `path` in the background. `None` when a second
    /// connection cannot be opened: the writer then keeps checkpointing itself.
    pub(super) fn start(path: &Path) -> Option<Checkpointer> {
        let conn = Connection::open(path).ok()?;
        conn.busy_timeout(Duration::from_secs(5)).ok()?;
        let (nudge, rx) = mpsc::channel::<usize>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                crate::service::priority::lower_this_thread();
                run(&conn, &rx)
            })
            .ok()?;
        Some(Checkpointer {
            nudge: Some(nudge),
            thread: Some(thread),
        })
    }

    /// About `bytes` were just committed.
    pub(super) fn committed(&self, bytes: usize) {
        if let Some(n) = &self.nudge {
            let _ = n.send(bytes);
        }
    }
}

impl Drop for Checkpointer {
    /// Stop after a last checkpoint, so a closed store leaves a short log behind.
    fn drop(&mut self) {
        drop(self.nudge.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(conn: &Connection, rx: &mpsc::Receiver<usize>) {
    let mut pending = 0usize;
    loop {
        match rx.recv_timeout(QUIET) {
            Ok(bytes) => {
                pending += bytes.max(1);
                if pending < EVERY_BYTES {
                    continue;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) if pending == 0 => continue,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                if pending > 0 {
                    checkpoint(conn);
                }
                return;
            }
        }
        checkpoint(conn);
        pending = 0;
    }
}

/// A passive checkpoint copies what it can without waiting for readers or the writer. A
/// failure is not an error of any commit: the log is still there and the next attempt
/// catches up.
fn checkpoint(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::debug!(error = %e, "WAL checkpoint did not run; will retry");
    }
}
