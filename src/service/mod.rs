//! `cprwatch run`: the long-running service.
//!
//! One loop owns the desk (store + engine), so every batch is committed in order and nothing
//! races. Around it, one task per source (each configured Maildir, each watched IMAP folder)
//! reads new mail, has the one [`Preparer`] prepare it off this loop's thread, and hands the
//! loop prepared batches to commit ([`crate::pipeline`]). The loop also re-evaluates the clocks
//! every `tick_seconds`, logging each clock that starts, stops, nears its deadline or breaches.
//! On SIGTERM or Ctrl-C the loop commits the batches already handed to it and returns.

pub mod backoff;
mod canary;
mod courier;
pub mod folder_sync;
mod leader;
pub mod logging;
pub mod priority;
mod revocation;
pub mod shutdown;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration as StdDuration;

use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::desk::{Derive, Desk, DeskError};
use crate::domain::event::{Envelope, Event};
use crate::domain::model::Timestamp;
use crate::domain::timefmt;
use crate::pipeline::{Preparer, RawMessage};
use crate::service::folder_sync::{FolderWatch, Request};
use crate::service::shutdown::Shutdown;
use crate::source::maildir::Maildir;

/// At most this many new messages are read per Maildir per poll, so memory stays flat and a
/// shutdown request is seen soon even during a large first sync.
const POLL_BATCH: usize = 500;

/// Watches one Maildir for files it has not ingested yet. A source task like an IMAP folder's
/// ([`FolderWatch`]): it reads new files, has the [`Preparer`] prepare them, and hands the
/// prepared batch to the loop that owns the desk, which commits it and answers.
struct MaildirWatch {
    label: String,
    maildir: Maildir,
    poll: StdDuration,
    /// Positions recorded: asked of the desk once (`None` until then), then each batch's once
    /// committed.
    seen: Option<HashSet<String>>,
    /// Last error, logged once per change of state rather than once per poll.
    failing: Option<String>,
    desk: mpsc::Sender<Request>,
    preparer: Preparer,
    shutdown: Shutdown,
}

/// Why a poll of a Maildir stopped short.
enum Stop {
    /// The service is shutting down.
    Shutdown,
    /// A fault, retried at the next poll.
    Fault(String),
}

impl MaildirWatch {
    async fn run(mut self) {
        let mut poll = tokio::time::interval(self.poll);
        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.recv() => return,
                _ = poll.tick() => {}
            }
            // Drain: keep reading while a full batch came back (first sync).
            loop {
                match self.step().await {
                    Ok(full) => {
                        if self.failing.take().is_some() {
                            info!(maildir = %self.label, "maildir readable again");
                        }
                        if !full || self.shutdown.is_shutdown() {
                            break;
                        }
                    }
                    Err(Stop::Shutdown) => return,
                    Err(Stop::Fault(msg)) => {
                        if self.failing.as_deref() != Some(msg.as_str()) {
                            error!(maildir = %self.label, error = %msg, "cannot ingest from maildir; retrying every poll");
                            self.failing = Some(msg);
                        }
                        break;
                    }
                }
            }
        }
    }

    /// Read, prepare and hand over one batch of new files, at most [`POLL_BATCH`]; returns
    /// whether it was full.
    async fn step(&mut self) -> Result<bool, Stop> {
        if self.seen.is_none() {
            let prefix = format!("maildir:{}/", self.maildir.root.display());
            let held = ask(&self.desk, |reply| Request::Positions { prefix, reply }).await?;
            self.seen = Some(held.into_iter().collect());
        }
        let batch = tokio::task::block_in_place(|| self.read_new())?;
        if batch.is_empty() {
            return Ok(false);
        }
        let full = batch.len() >= POLL_BATCH;
        let positions: Vec<String> = batch
            .iter()
            .filter_map(|m| m.meta.position.as_ref().map(ToString::to_string))
            .collect();
        let messages = self
            .preparer
            .prepare(batch, timefmt::now())
            .await
            .map_err(|e| Stop::Fault(e.to_string()))?;
        ask(&self.desk, |reply| Request::Ingest {
            messages,
            checkpoint: None,
            more: full,
            reply,
        })
        .await?;
        self.seen.get_or_insert_default().extend(positions);
        Ok(full)
    }

    /// New messages (positions not recorded), at most [`POLL_BATCH`].
    fn read_new(&mut self) -> Result<Vec<RawMessage>, Stop> {
        let entries = self
            .maildir
            .scan()
            .map_err(|e| Stop::Fault(e.to_string()))?;
        let seen = self.seen.get_or_insert_default();
        let mut out = Vec::new();
        for entry in entries {
            if seen.contains(entry.position.as_str()) {
                continue;
            }
            match self.maildir.read(&entry) {
                Ok(m) => out.push(m),
                // A file that vanished between scan and read was moved (new/ → cur/): the
                // next scan sees it under its new name, with the same position.
                Err(e) => {
                    warn!(maildir = %self.label, error = %e, "cannot read message file; will retry")
                }
            }
            if out.len() >= POLL_BATCH {
                break;
            }
        }
        Ok(out)
    }
}

/// Ask the service loop and wait for its answer. A closed channel means it is shutting down.
async fn ask<T>(
    desk: &mpsc::Sender<Request>,
    request: impl FnOnce(oneshot::Sender<Result<T, String>>) -> Request,
) -> Result<T, Stop> {
    match self::request(desk, request).await {
        None => Err(Stop::Shutdown),
        Some(answer) => answer.map_err(Stop::Fault),
    }
}

/// Ask the service loop from a task that has no use for [`Stop`]; `None` when it is shutting
/// down.
async fn request<T>(
    desk: &mpsc::Sender<Request>,
    request: impl FnOnce(oneshot::Sender<Result<T, String>>) -> Request,
) -> Option<Result<T, String>> {
    let (reply, answer) = oneshot::channel();
    desk.send(request(reply)).await.ok()?;
    answer.await.ok()
}

/// Run until `shutdown` fires: alone over a SQLite store; over a PostgreSQL store, as one of
/// the instances sharing it, leading while it holds the lease ([`leader`]).
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), DeskError> {
    for note in &config.notes {
        warn!(note = note.as_str(), "configuration");
    }
    match config.store.postgres.clone() {
        None => lead(&config, shutdown, Leading::Alone).await,
        Some(pg) => leader::run(config, pg, shutdown).await,
    }
}

/// How [`lead`] runs: alone (it serves the dashboard itself), or as the leader of instances
/// sharing a PostgreSQL store, writing under `fence` and answering the dashboard's requests that
/// arrive on `web` (the server outlives a leadership).
pub(crate) enum Leading<'a> {
    Alone,
    Shared {
        fence: crate::store::Fence,
        web: &'a mut mpsc::Receiver<Request>,
        health: std::sync::Arc<crate::web::Health>,
    },
}

/// The work that happens once, whoever does it: ingest, clock evaluation, the courier,
/// canaries, revocation checks, checkpoints. Runs until `shutdown` fires.
async fn lead(
    config: &Config,
    mut shutdown: Shutdown,
    leading: Leading<'_>,
) -> Result<(), DeskError> {
    let (fence, mut web_inbox, shared_health) = match leading {
        Leading::Alone => (None, None, None),
        Leading::Shared { fence, web, health } => (Some(fence), Some(web), Some(health)),
    };
    let mut desk = tokio::task::block_in_place(|| Desk::open_as(config, fence))?;
    // Read once, at start: a key others can read, or no key at all where one is named, stops
    // the service before it runs unsigned.
    let signing_key = match &config.audit.signing_key_file {
        Some(path) => Some(crate::evidence::load_signing_key(path)?),
        None => None,
    };
    let (requests, mut inbox) = tokio::sync::mpsc::channel::<Request>(16);
    let mut source_tasks = tokio::task::JoinSet::new();
    // One preparer for every source: parsing and extracting never run on this loop's thread.
    let preparer = Preparer::for_desk(&desk, false)?;
    for (i, m) in config.mailbox.iter().enumerate() {
        let m = std::sync::Arc::new(m.clone());
        for (j, f) in m.folders.iter().enumerate() {
            let watch = FolderWatch::new(
                m.clone(),
                f.clone(),
                requests.clone(),
                preparer.clone(),
                shutdown.clone(),
                // Different seeds: folders must not retry in lockstep.
                (i as u64) << 32 | j as u64 | u64::from(std::process::id()) << 16,
            );
            source_tasks.spawn(watch.run());
        }
    }
    info!(
        store = %crate::escape::text(&config.store.describe()),
        messages = desk.engine().message_count(),
        maildirs = config.maildir.len(),
        imap_folders = config.mailbox.iter().map(|m| m.folders.len()).sum::<usize>(),
        "cprwatch running"
    );
    for m in &config.maildir {
        let maildir = Maildir::open(
            &m.path,
            m.folders
                .as_ref()
                .map(|fs| fs.iter().map(|f| (f.name.clone(), f.role)).collect()),
        )?;
        let label = m.path.display().to_string();
        // An empty directory (cur/ and new/ not made yet), skipped subfolders.
        for note in &maildir.notes {
            warn!(
                maildir = label.as_str(),
                note = note.as_str(),
                "maildir note"
            );
        }
        let watch = MaildirWatch {
            label,
            maildir,
            poll: StdDuration::from_secs(m.poll_seconds.max(1)),
            seen: None,
            failing: None,
            desk: requests.clone(),
            preparer: preparer.clone(),
            shutdown: shutdown.clone(),
        };
        source_tasks.spawn(watch.run());
    }
    // With [web], the dashboard, API and metrics: bound now, so a port in use stops the start
    // (shared: bound once by the instance, before it led).
    let health = match shared_health {
        Some(h) => h,
        None => {
            let health = std::sync::Arc::new(crate::web::Health::default());
            if let Some(server) = crate::web::Server::bind(
                std::sync::Arc::new(config.clone()),
                health.clone(),
                requests.clone(),
            )
            .await?
            {
                source_tasks.spawn(server.run(shutdown.clone()));
            }
            health
        }
    };
    // The courier delivers the outbox; without [smtp] nothing is queued and there is none.
    let wake = Wakes::default();
    if let Some(smtp) = &config.smtp {
        let mailer = crate::notify::smtp::Mailer::new(smtp).map_err(DeskError::Mailer)?;
        let courier = courier::Courier {
            mailer,
            desk: requests.clone(),
            wake: wake.courier.clone(),
            shutdown: shutdown.clone(),
        };
        source_tasks.spawn(courier.run());
    }
    for (c, key) in config.canary.iter().zip(&desk.policy().canary_keys) {
        let Some(smtp) = c.smtp.as_ref().or(config.smtp.as_ref()) else {
            warn!(
                canary = c.to.as_str(),
                "no [smtp] and no smtp of its own: the canary is not sent"
            );
            continue;
        };
        let task = canary::CanaryTask {
            config: c.clone(),
            key: key.clone(),
            mailer: crate::notify::smtp::Mailer::new(smtp).map_err(DeskError::Mailer)?,
            desk: requests.clone(),
            shutdown: shutdown.clone(),
        };
        source_tasks.spawn(task.run());
    }
    // The revocation checker asks responders about every certificate with an open clock.
    if config.revocation.enabled {
        let checker = revocation::Checker {
            revocation: config.revocation.clone(),
            enrich: config.enrich.clone(),
            desk: requests.clone(),
            wake: wake.checker.clone(),
            shutdown: shutdown.clone(),
        };
        source_tasks.spawn(checker.run());
    }
    drop(requests);
    drop(preparer);
    let mut tick = tokio::time::interval(StdDuration::from_secs(config.clock.tick_seconds.max(1)));
    // The first tick is now: a checkpoint at start, then every hour (and one at shutdown).
    let mut checkpoint_tick = tokio::time::interval(CHECKPOINT_EVERY);
    // A desk busy for longer than an hour signs once after, not once for each hour missed.
    checkpoint_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned: HashSet<crate::domain::ids::ClockId> = HashSet::new();
    // Without [smtp], nothing is mailed: the longest warning threshold is logged instead.
    let warn_before = config
        .smtp
        .is_none()
        .then(|| config.alerts.policy.warn_before.first().copied())
        .flatten();

    loop {
        tokio::select! {
            biased;
            _ = shutdown.recv() => break,
            Some(req) = inbox.recv() => {
                handle(&mut desk, req, &wake);
            }
            Some(req) = next(&mut web_inbox) => {
                handle(&mut desk, req, &wake);
            }
            _ = checkpoint_tick.tick(), if signing_key.is_some() => {
                if let Some(key) = &signing_key {
                    checkpoint(&mut desk, key, &wake);
                }
            }
            _ = tick.tick() => {
                derive(&mut desk, &wake, &health);
                if let Some(warn_before) = warn_before {
                    warn_due(&mut desk, timefmt::now(), warn_before, &mut warned);
                }
            }
        }
    }
    // Batches already handed over are committed; no new ones are taken.
    inbox.close();
    while let Some(req) = inbox.recv().await {
        handle(&mut desk, req, &wake);
    }
    // Whatever was recorded and not derived yet (a pass deferred its derivation to its last
    // batch, or to the next tick) is derived before the desk closes.
    derive(&mut desk, &wake, &health);
    if let Some(key) = &signing_key {
        checkpoint(&mut desk, key, &wake);
    }
    source_tasks.shutdown().await;
    info!("shutting down: all committed");
    Ok(())
}

/// The next request of an optional inbox (never, without one).
async fn next(inbox: &mut Option<&mut mpsc::Receiver<Request>>) -> Option<Request> {
    match inbox {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// How often `run` signs a checkpoint of the log's head.
const CHECKPOINT_EVERY: StdDuration = StdDuration::from_secs(3600);

/// Sign a checkpoint of the log's head at the wall clock's `now`, and queue the day's
/// checkpoint mail when it is due. A failure is logged, not fatal: the log itself is intact
/// either way, and a refusal (the log no longer matches the last checkpoint) is for a person.
fn checkpoint(desk: &mut Desk, key: &ed25519_dalek::SigningKey, wake: &Wakes) {
    let now = timefmt::now();
    tokio::task::block_in_place(|| {
        match desk.sign_checkpoint(key, now) {
            Ok(c) => info!(
                seq = c.seq,
                head = c.head_hash.as_str(),
                "checkpoint signed"
            ),
            Err(e) => error!(error = %e, "cannot sign a checkpoint of the log"),
        }
        match desk.mail_checkpoints(now) {
            Ok(events) => {
                log_events(&events);
                wake_tasks(&events, wake);
                // The mail's own `mail_queued` event is covered at once, not an hour later
                // (or, at shutdown, not until the next start).
                if !events.is_empty()
                    && let Err(e) = desk.sign_checkpoint(key, now)
                {
                    error!(error = %e, "cannot sign a checkpoint of the log");
                }
            }
            Err(e) => error!(error = %e, "cannot queue the checkpoint mail; retrying next hour"),
        }
    });
}

/// Serve one request from a source task. Commits happen here, in order, one at a time.
/// Evaluate the clocks at the wall clock's `now` and commit what changed.
fn derive(desk: &mut Desk, wake: &Wakes, health: &crate::web::Health) {
    let now = timefmt::now();
    match tokio::task::block_in_place(|| desk.tick(now)) {
        Ok(events) => {
            health.ticked(now);
            log_events(&events);
            wake_tasks(&events, wake);
        }
        Err(e) => error!(error = %e, "cannot commit clock changes; retrying next tick"),
    }
}

/// Whom the service loop wakes after a commit: the courier when mail was queued, the
/// revocation checker when clocks or staff mail changed (a new certificate clock is checked at
/// once, a `CPR-Revoked` claim too).
#[derive(Default)]
pub(crate) struct Wakes {
    courier: std::sync::Arc<tokio::sync::Notify>,
    checker: std::sync::Arc<tokio::sync::Notify>,
}

/// Wake the tasks the committed `events` concern.
fn wake_tasks(events: &[Envelope], wake: &Wakes) {
    if events
        .iter()
        .any(|e| matches!(e.event, Event::MailQueued { .. }))
    {
        wake.courier.notify_one();
    }
    if events.iter().any(|e| match &e.event {
        Event::ClockStarted { .. } | Event::ClockRevised { .. } => true,
        Event::MessageReceived { facts } => facts.is_staff(),
        _ => false,
    }) {
        wake.checker.notify_one();
    }
}

/// Serve one request. Returns whether a batch was recorded without deriving what it changes
/// (more of its pass follow; the last of them, or the next tick, derives).
fn handle(desk: &mut Desk, req: Request, wake: &Wakes) -> bool {
    let mut deferred = false;
    tokio::task::block_in_place(|| match req {
        Request::Checkpoint {
            mailbox,
            folder,
            reply,
        } => {
            let r = desk.store().checkpoint(&mailbox, &folder);
            let _ = reply.send(r.map_err(|e| e.to_string()));
        }
        Request::Positions { prefix, reply } => {
            let r = desk.store().positions_with_prefix(&prefix);
            let _ = reply.send(r.map_err(|e| e.to_string()));
        }
        Request::Ingest {
            messages,
            checkpoint,
            more,
            reply,
        } => {
            let mut events = Vec::new();
            // Mail older than what was derived (a first sync, folders read side by side) makes
            // the next derivation start again from it: while more batches of the same pass
            // follow, leave it to the last of them instead of once per batch.
            let derive = if more && desk.engine().would_rederive() {
                deferred = true;
                Derive::Later
            } else {
                Derive::Now
            };
            let r = desk.record(
                messages,
                checkpoint.into_iter().collect(),
                timefmt::now(),
                derive,
                Some(&mut events),
            );
            // What was committed before a failure (the messages, some derived events) is logged
            // too: it is in the log.
            log_events(&events);
            wake_tasks(&events, wake);
            let r = match r {
                Ok(done) => Ok(done.events as usize),
                Err(e) => {
                    error!(error = %e, "cannot commit a batch; it will be read again");
                    Err(e.to_string())
                }
            };
            let _ = reply.send(r);
        }
        Request::State(st) => {
            if let Err(e) = desk.set_folder_state(&st) {
                warn!(error = %e, "cannot record folder state");
            }
        }
        Request::OutboxDue { limit, reply } => {
            let r = desk
                .outbox_due(timefmt::now(), limit)
                .and_then(|rows| Ok((rows, desk.outbox_next_attempt()?)));
            let _ = reply.send(r.map_err(|e| e.to_string()));
        }
        Request::Actions {
            user,
            actions,
            reply,
        } => {
            let r = desk.record_actions(&user, actions, timefmt::now());
            if let Ok((_, events)) = &r {
                log_events(events);
                wake_tasks(events, wake);
            }
            let _ = reply.send(r.map(|(done, _)| done.events as usize).map_err(|e| {
                warn!(user = user.as_str(), error = %e, "dashboard action refused");
                e.to_string()
            }));
        }
        Request::CanaryLastSent { to, reply } => {
            let _ = reply.send(desk.canary_last_sent(&to).map_err(|e| e.to_string()));
        }
        Request::CanarySent { sent, reply } => {
            let r = desk.canary_sent(sent, timefmt::now());
            if let Ok(events) = &r {
                log_events(events);
            }
            let _ = reply.send(r.map(drop).map_err(|e| e.to_string()));
        }
        Request::Ping { reply } => {
            let _ = reply.send(Ok(()));
        }
        Request::ChecksDue { limit, reply } => {
            let r = desk.checks_due(timefmt::now(), limit);
            let _ = reply.send(r.map_err(|e| e.to_string()));
        }
        Request::RecordChecks { outcomes, reply } => {
            let r = desk.record_checks(outcomes, timefmt::now());
            if let Ok(events) = &r {
                log_events(events);
                wake_tasks(events, wake);
            }
            let _ = reply.send(r.map(|e| e.len()).map_err(|e| {
                error!(error = %e, "cannot record revocation checks; they are made again");
                e.to_string()
            }));
        }
        Request::Delivered { id, outcome, reply } => {
            let r = desk.delivered(id, outcome, timefmt::now());
            if let Ok(events) = &r {
                log_events(events);
                wake_tasks(events, wake);
            }
            let _ = reply.send(r.map(drop).map_err(|e| {
                error!(error = %e, "cannot record a delivery; it will be attempted again");
                e.to_string()
            }));
        }
    });
    deferred
}

/// Log, once per clock, every running clock within `warn_before` of its deadline.
fn warn_due(
    desk: &mut Desk,
    now: Timestamp,
    warn_before: time::Duration,
    warned: &mut HashSet<crate::domain::ids::ClockId>,
) {
    let due = match desk.due_within(now, warn_before) {
        Ok(due) => due,
        Err(e) => {
            warn!(error = %e, "cannot read the clocks due");
            return;
        }
    };
    for (c, case) in due {
        if warned.insert(c.id.clone()) {
            warn!(
                clock = c.id.as_str(),
                case = case.as_ref().map_or("-", |c| c.as_str()),
                deadline = %timefmt::format(c.deadline),
                left = %timefmt::human_span((c.deadline - now).whole_seconds()),
                "clock due soon"
            );
        }
    }
}

/// Every field that holds outside text (subjects, addresses, Message-Ids, reasons) is logged
/// as a string and written through [`crate::escape`] by the log formatter
/// ([`crate::service::logging`]): no reporter can clear the terminal or forge a line.
///
/// Up to this many events from one commit are logged one line each. A larger commit (a first
/// sync, a backlog) gets one line counting each kind and one naming the first breaches: the
/// event log holds every event and `cprwatch status` lists what is due, while tens of thousands
/// of lines would bury the log and cost the sync a tenth of its time. Ignored staff commands
/// are always logged one by one: each may be someone posing as staff.
const LOG_EACH_UP_TO: usize = 200;

fn log_events(events: &[Envelope]) {
    if events.len() > LOG_EACH_UP_TO {
        log_summary(events);
        return;
    }
    for env in events {
        log_event(&env.event);
    }
}

fn log_summary(events: &[Envelope]) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut breached: Vec<&str> = Vec::new();
    for env in events {
        *counts.entry(env.event.kind()).or_default() += 1;
        match &env.event {
            Event::ClockBreached { clock, .. } => breached.push(clock.as_str()),
            Event::CommandIgnored { .. } => log_event(&env.event),
            _ => {}
        }
    }
    // `kinds` and `first` hold spaces and `=`: the log formatter quotes them, so they read
    // as one field each (crate::service::logging).
    let kinds: Vec<String> = counts.iter().map(|(k, n)| format!("{k}={n}")).collect();
    info!(
        events = events.len(),
        kinds = kinds.join(" ").as_str(),
        "batch committed"
    );
    if !breached.is_empty() {
        error!(
            count = breached.len(),
            first = breached[..breached.len().min(5)].join(", ").as_str(),
            "clocks BREACHED (`cprwatch status` lists them all)"
        );
    }
}

fn log_event(event: &Event) {
    match event {
        Event::MessageReceived { facts } => info!(
            message_id = facts.message_id.as_str(),
            from = facts.from.as_str(),
            folder = facts.folder.as_str(),
            received_at = %timefmt::format(facts.received_at),
            "message received"
        ),
        Event::CaseOpened {
            case,
            reporter,
            subject,
            ..
        } => {
            info!(
                case = case.as_str(),
                reporter = reporter.as_str(),
                subject = subject.as_str(),
                "case opened"
            )
        }
        Event::ClockStarted {
            clock,
            deadline,
            basis,
            ..
        } => {
            info!(clock = clock.as_str(), deadline = %timefmt::format(*deadline), basis = basis.as_str(), "clock started")
        }
        Event::ClockRevised {
            clock,
            deadline,
            basis,
            ..
        } => {
            info!(clock = clock.as_str(), deadline = %timefmt::format(*deadline), basis = basis.as_str(), "clock revised")
        }
        Event::ClockStopped {
            clock, state, at, ..
        } => {
            info!(clock = clock.as_str(), state = state.as_str(), at = %timefmt::format(*at), "clock stopped")
        }
        Event::ClockBreached { clock, deadline } => {
            error!(clock = clock.as_str(), deadline = %timefmt::format(*deadline), "clock BREACHED")
        }
        Event::ClockAcknowledged {
            clock, at, reason, ..
        } => {
            info!(clock = clock.as_str(), at = %timefmt::format(*at), reason = reason.as_str(), "clock acknowledged late (CPR-Delayed)")
        }
        Event::CommandIgnored { from, reason, .. } => {
            warn!(
                from = from.as_str(),
                reason = reason.as_str(),
                "staff command ignored"
            )
        }
        Event::MailQueued { mail } => info!(
            kind = mail.kind.as_str(),
            message_id = mail.message_id.as_str(),
            to = mail.to.join(", ").as_str(),
            "mail queued"
        ),
        Event::MailSent {
            mail,
            attempts,
            response,
        } => info!(
            kind = mail.kind.as_str(),
            message_id = mail.message_id.as_str(),
            to = mail.to.join(", ").as_str(),
            attempts,
            response = response.as_str(),
            "mail sent"
        ),
        Event::MailFailed {
            mail,
            attempts,
            error,
        } => error!(
            kind = mail.kind.as_str(),
            message_id = mail.message_id.as_str(),
            to = mail.to.join(", ").as_str(),
            attempts,
            error = error.as_str(),
            "mail NOT delivered"
        ),
        _ => {}
    }
}
