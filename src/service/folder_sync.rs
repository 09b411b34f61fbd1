//! One task per watched IMAP folder: read everything new, lose nothing, notice within seconds.
//!
//! The task never touches the store itself. It asks the service loop (which owns the desk) for
//! its checkpoint and for the positions it already holds, and hands it batches of fetched
//! messages together with the checkpoint they reach; the loop commits both in one transaction
//! and only then answers. So a checkpoint can never get ahead of the mail read up to it, and a
//! crash at any point re-reads at most one batch, which idempotent ingest absorbs.
//!
//! Each pass: `EXAMINE` (read-only), fetch every UID above the checkpoint in bounded batches
//! (from 1 when UIDVALIDITY changed), now and then compare every UID on the server with the
//! store and fetch what is missing (silent loss elsewhere is exactly what this catches), then
//! wait for news with `IDLE` (or a poll). Faults are retried with back-off, logged once per
//! change of state, and recorded so `cprwatch status` can show them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use crate::config::{FolderConfig, MailboxConfig};
use crate::domain::ids::Position;
use crate::domain::model::SourceMeta;
use crate::domain::timefmt;
use crate::pipeline::{self, Prepared, Preparer, RawMessage};
use crate::service::backoff::Backoff;
use crate::service::shutdown::Shutdown;
use crate::source::imap::{Account, Connection, Fetched, ImapError};
use crate::store::{Checkpoint, FolderState};

/// IDLE is re-issued well before the 29 minutes after which servers may drop it (RFC 2177).
const IDLE_MAX: Duration = Duration::from_secs(25 * 60);

/// What a source task (an IMAP folder, a Maildir) asks of the service loop.
#[derive(Debug)]
pub(crate) enum Request {
    Checkpoint {
        mailbox: String,
        folder: String,
        reply: oneshot::Sender<Result<Option<Checkpoint>, String>>,
    },
    Positions {
        prefix: String,
        reply: oneshot::Sender<Result<Vec<String>, String>>,
    },
    /// Record these prepared messages with the checkpoint they reach, if any, atomically, and
    /// derive what they change ([`crate::desk::Desk::record`]); answer with the number of
    /// events appended.
    Ingest {
        messages: Vec<Prepared>,
        checkpoint: Option<Checkpoint>,
        /// More batches of the same pass follow (a first sync, a catch-up): deriving what older
        /// mail changes may wait for the last of them.
        more: bool,
        reply: oneshot::Sender<Result<usize, String>>,
    },
    /// Record the folder's health.
    State(FolderState),
    /// The courier asks for pending mail due now, at most `limit`, and when the next is due.
    OutboxDue {
        limit: usize,
        reply: oneshot::Sender<Result<OutboxDue, String>>,
    },
    /// The dashboard records staff actions by its logged-in `user` ([`crate::desk::Action`]);
    /// answered with the number of events committed, or what was wrong.
    Actions {
        user: String,
        actions: Vec<(crate::domain::ids::CaseId, crate::desk::Action)>,
        reply: oneshot::Sender<Result<usize, String>>,
    },
    /// A canary task asks when the last canary to `to` was sent.
    CanaryLastSent {
        to: String,
        reply: oneshot::Sender<Result<Option<crate::domain::model::Timestamp>, String>>,
    },
    /// A canary task reports a canary handed over (or refused).
    CanarySent {
        sent: crate::desk::CanarySent,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// The courier reports how an attempt to deliver outbox row `id` went.
    Delivered {
        id: i64,
        outcome: crate::desk::Delivery,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// The revocation checker asks for the certificates due a check now, at most `limit`.
    ChecksDue {
        limit: usize,
        reply: oneshot::Sender<Result<Vec<crate::desk::CheckJob>, String>>,
    },
    /// The revocation checker hands over what it found; answered with the events committed.
    RecordChecks {
        outcomes: Vec<crate::desk::CheckOutcome>,
        reply: oneshot::Sender<Result<usize, String>>,
    },
    /// The web server's `/healthz` asks whether the loop is answering at all.
    Ping {
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// Pending mail due now, and when the next pending mail is due.
pub(crate) type OutboxDue = (
    Vec<crate::store::OutboxRow>,
    Option<crate::domain::model::Timestamp>,
);

#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Imap(#[from] ImapError),
    #[error("{0}")]
    Secret(String),
    #[error("the store could not take the batch: {0}")]
    Store(String),
    #[error("shutting down")]
    Shutdown,
}

/// Watches one folder of one mailbox until shutdown.
pub(crate) struct FolderWatch {
    mailbox: Arc<MailboxConfig>,
    folder: FolderConfig,
    desk: mpsc::Sender<Request>,
    preparer: Preparer,
    shutdown: Shutdown,
    backoff: Backoff,
    /// The error the folder is failing with, if it is.
    failing: Option<String>,
    last_sync_at: Option<String>,
}

impl FolderWatch {
    pub fn new(
        mailbox: Arc<MailboxConfig>,
        folder: FolderConfig,
        desk: mpsc::Sender<Request>,
        preparer: Preparer,
        shutdown: Shutdown,
        seed: u64,
    ) -> FolderWatch {
        FolderWatch {
            mailbox,
            folder,
            desk,
            preparer,
            shutdown,
            backoff: Backoff::new(seed),
            failing: None,
            last_sync_at: None,
        }
    }

    /// Run until shutdown. Never returns early on a server fault: it retries.
    pub async fn run(mut self) {
        loop {
            match self.session().await {
                Ok(()) | Err(SyncError::Shutdown) => return,
                Err(e) => {
                    self.failed(&e).await;
                    let delay = self.backoff.next_delay();
                    tokio::select! {
                        _ = self.shutdown.recv() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    fn account(&self) -> Result<Account, SyncError> {
        let m = &self.mailbox;
        Ok(Account {
            name: m.name.clone(),
            host: m.host.clone(),
            port: m.port,
            tls: m.tls,
            ca_file: m.ca_file.clone(),
            username: m.username.clone(),
            password: m.password.read().map_err(SyncError::Secret)?,
        })
    }

    /// One connection's life: sync passes until an error or shutdown.
    async fn session(&mut self) -> Result<(), SyncError> {
        let account = self.account()?;
        let timeout = self.mailbox.timeout.unsigned_abs();
        let mut conn = tokio::select! {
            _ = self.shutdown.recv() => return Err(SyncError::Shutdown),
            c = Connection::connect(&account, timeout) => c?,
        };
        drop(account);
        info!(mailbox = %self.mailbox.name, folder = %self.folder.name, "connected; reading the folder");
        let reconcile_every = self.mailbox.reconcile_every.unsigned_abs();
        let mut next_reconcile = tokio::time::Instant::now();
        // The folder stays selected across passes (IDLE reports new mail on it). It is examined
        // again only before a reconcile: on a large Maildir every EXAMINE costs the server a
        // directory scan, which would sit in the path of every new message.
        let mut info = conn.examine(&self.folder.name).await?;
        loop {
            if tokio::time::Instant::now() >= next_reconcile {
                info = conn.examine(&self.folder.name).await?;
            }
            let checkpoint = self.checkpoint().await?;
            let from = match checkpoint {
                Some(cp) if cp.uidvalidity == info.uidvalidity => cp.last_uid.saturating_add(1),
                Some(cp) => {
                    warn!(
                        mailbox = %self.mailbox.name, folder = %self.folder.name,
                        old = cp.uidvalidity, new = info.uidvalidity,
                        "UIDVALIDITY changed: re-reading the whole folder (nothing will be counted twice)"
                    );
                    1
                }
                None => 1,
            };
            let uids = conn.uids_from(from).await?;
            self.fetch_and_ingest(&mut conn, &uids, info.uidvalidity, true)
                .await?;
            if tokio::time::Instant::now() >= next_reconcile {
                self.reconcile(&mut conn, info.uidvalidity).await?;
                next_reconcile = tokio::time::Instant::now() + reconcile_every;
            }
            self.synced().await;

            let wait = Duration::from_secs(self.mailbox.poll_seconds).min(IDLE_MAX);
            if conn.has_idle() {
                tokio::select! {
                    biased;
                    _ = self.shutdown.recv() => return Ok(()),
                    r = conn.idle(wait) => { r?; }
                }
            } else {
                tokio::select! {
                    biased;
                    _ = self.shutdown.recv() => return Ok(()),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    /// Fetch `uids` in bounded batches and hand each to the desk; with `advance`, each batch
    /// carries the checkpoint it reaches.
    ///
    /// Three stages overlap, so the slowest sets the pace rather than their sum: the next batch
    /// is fetched while earlier ones are prepared (parse, extract, classify, hash, compress:
    /// [`pipeline::AHEAD`] batches at once, by the service's [`Preparer`]) and while the one
    /// before is committed. Batches are committed in fetch order, so checkpoints only move
    /// forward. On shutdown no new batch is fetched; those already fetched are committed first.
    async fn fetch_and_ingest(
        &mut self,
        conn: &mut Connection,
        uids: &[u32],
        uidvalidity: u32,
        advance: bool,
    ) -> Result<(), SyncError> {
        let this = &*self;
        let (fetched_tx, fetched_rx) = mpsc::channel::<(Vec<Fetched>, Option<Checkpoint>, bool)>(1);
        let fetcher = async move {
            let chunks = uids.chunks(this.mailbox.fetch_batch).count();
            for (i, chunk) in uids.chunks(this.mailbox.fetch_batch).enumerate() {
                if this.shutdown.is_shutdown() {
                    break;
                }
                let fetched = conn.fetch(chunk).await?;
                let checkpoint = advance.then(|| Checkpoint {
                    mailbox: this.mailbox.name.clone(),
                    folder: this.folder.name.clone(),
                    uidvalidity,
                    last_uid: chunk.iter().copied().max().unwrap_or(0),
                });
                if fetched_tx
                    .send((fetched, checkpoint, i + 1 < chunks))
                    .await
                    .is_err()
                {
                    // The committing stage stopped on an error of its own, which it returns.
                    break;
                }
            }
            Ok::<(), SyncError>(())
        };
        let committer = async move {
            let batches = futures::stream::unfold(fetched_rx, |mut rx| async move {
                rx.recv().await.map(|batch| (batch, rx))
            })
            .map(|(fetched, checkpoint, more)| {
                let prepared = this.prepare(fetched, uidvalidity);
                async move { prepared.await.map(|messages| (messages, checkpoint, more)) }
            })
            .buffered(pipeline::AHEAD);
            futures::pin_mut!(batches);
            let mut in_flight: Option<oneshot::Receiver<Result<usize, String>>> = None;
            while let Some(batch) = batches.next().await {
                let (messages, checkpoint, more) = batch?;
                if let Some(previous) = in_flight.take() {
                    settle(previous).await?;
                }
                let (reply, answer) = oneshot::channel();
                this.desk
                    .send(Request::Ingest {
                        messages,
                        checkpoint,
                        more,
                        reply,
                    })
                    .await
                    .map_err(|_| SyncError::Shutdown)?;
                in_flight = Some(answer);
            }
            if let Some(last) = in_flight {
                settle(last).await?;
            }
            Ok::<(), SyncError>(())
        };
        tokio::try_join!(fetcher, committer)?;
        if self.shutdown.is_shutdown() {
            return Err(SyncError::Shutdown);
        }
        Ok(())
    }

    /// Prepare fetched messages off the async workers and off the thread that commits.
    fn prepare(
        &self,
        fetched: Vec<Fetched>,
        uidvalidity: u32,
    ) -> impl Future<Output = Result<Vec<Prepared>, SyncError>> + use<> {
        let batch: Vec<RawMessage> = fetched
            .into_iter()
            .map(|f| RawMessage {
                meta: SourceMeta {
                    folder: self.folder.role,
                    // Stable for as long as UIDVALIDITY is.
                    position: Some(Position::imap(
                        &self.mailbox.name,
                        &self.folder.name,
                        uidvalidity,
                        f.uid,
                    )),
                    server_time: f.internal_date,
                },
                raw: f.raw,
            })
            .collect();
        let preparer = self.preparer.clone();
        async move {
            preparer
                .prepare(batch, timefmt::now())
                .await
                .map_err(|e| SyncError::Store(e.to_string()))
        }
    }

    /// Compare every UID on the server with what the store holds; fetch what is missing.
    async fn reconcile(
        &mut self,
        conn: &mut Connection,
        uidvalidity: u32,
    ) -> Result<(), SyncError> {
        let on_server = conn.uids().await?;
        let prefix = Position::imap_folder(&self.mailbox.name, &self.folder.name, uidvalidity);
        let held: HashSet<u32> = self
            .ask(|reply| Request::Positions {
                prefix: prefix.clone(),
                reply,
            })
            .await?
            .iter()
            .filter_map(|p| p.strip_prefix(&prefix)?.parse().ok())
            .collect();
        let missing: Vec<u32> = on_server
            .into_iter()
            .filter(|u| !held.contains(u))
            .collect();
        if !missing.is_empty() {
            warn!(
                mailbox = %self.mailbox.name, folder = %self.folder.name, missing = missing.len(),
                "reconcile: messages on the server are not in the store; fetching them"
            );
            self.fetch_and_ingest(conn, &missing, uidvalidity, false)
                .await?;
        }
        Ok(())
    }

    async fn checkpoint(&mut self) -> Result<Option<Checkpoint>, SyncError> {
        let (mailbox, folder) = (self.mailbox.name.clone(), self.folder.name.clone());
        self.ask(|reply| Request::Checkpoint {
            mailbox,
            folder,
            reply,
        })
        .await
    }

    /// Ask the service loop and wait for its answer. A closed channel means it is shutting
    /// down.
    async fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T, String>>) -> Request,
    ) -> Result<T, SyncError> {
        let (reply, answer) = oneshot::channel();
        self.desk
            .send(request(reply))
            .await
            .map_err(|_| SyncError::Shutdown)?;
        answer
            .await
            .map_err(|_| SyncError::Shutdown)?
            .map_err(SyncError::Store)
    }

    fn state(&self) -> FolderState {
        FolderState {
            mailbox: self.mailbox.name.clone(),
            folder: self.folder.name.clone(),
            role: self.folder.role.as_str().to_string(),
            last_sync_at: self.last_sync_at.clone(),
            last_error: self.failing.clone(),
            last_error_at: None,
        }
    }

    async fn synced(&mut self) {
        if self.failing.take().is_some() {
            info!(mailbox = %self.mailbox.name, folder = %self.folder.name, "folder syncing again");
        }
        self.backoff.reset();
        self.last_sync_at = Some(timefmt::format(timefmt::now()));
        let _ = self.desk.send(Request::State(self.state())).await;
    }

    /// Log a fault once per change of state, not once per retry, and record it.
    async fn failed(&mut self, e: &SyncError) {
        let msg = e.to_string();
        if self.failing.as_deref() == Some(msg.as_str()) {
            return;
        }
        error!(
            mailbox = %self.mailbox.name, folder = %self.folder.name, error = %msg,
            "folder cannot be synced; retrying with back-off"
        );
        self.failing = Some(msg);
        let mut st = self.state();
        st.last_error_at = Some(timefmt::format(timefmt::now()));
        let _ = self.desk.send(Request::State(st)).await;
    }
}

/// Wait for the desk's answer to a batch.
async fn settle(answer: oneshot::Receiver<Result<usize, String>>) -> Result<usize, SyncError> {
    answer
        .await
        .map_err(|_| SyncError::Shutdown)?
        .map_err(SyncError::Store)
}
