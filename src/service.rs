//! `cprwatch run`: the long-running service.
//!
//! One loop owns the desk (store + engine), so every batch is committed in order and nothing
//! races. It polls the configured Maildirs for new files, ingests them, and re-evaluates the
//! clocks every `tick_seconds`, logging each clock that starts, stops, nears its deadline or
//! breaches. Later sources (IMAP folders) feed the same loop. On SIGTERM or Ctrl-C the loop
//! finishes the batch in hand, commits it and returns.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration as StdDuration;

use tracing::{error, info, warn};

use crate::config::{Config, MaildirConfig};
use crate::desk::{Desk, DeskError};
use crate::event::{ClockState, Envelope, Event};
use crate::folder_sync::{FolderWatch, Request};
use crate::model::{SourceMeta, Timestamp};
use crate::shutdown::Shutdown;
use crate::source::SourceError;
use crate::source::maildir::Maildir;
use crate::store::Store;
use crate::timefmt;

/// At most this many new messages are read per Maildir per poll, so memory stays flat and a
/// shutdown request is seen soon even during a large first sync.
const POLL_BATCH: usize = 500;

/// Watches one Maildir for files it has not ingested yet.
struct Watcher {
    label: String,
    maildir: Maildir,
    seen: HashSet<String>,
    /// Last error, logged once per change of state rather than once per poll.
    failing: Option<String>,
}

impl Watcher {
    fn new(cfg: &MaildirConfig) -> Result<Watcher, SourceError> {
        let folders = cfg
            .folders
            .as_ref()
            .map(|fs| fs.iter().map(|f| (f.name.clone(), f.role)).collect());
        Ok(Watcher {
            label: cfg.path.display().to_string(),
            maildir: Maildir::open(&cfg.path, folders)?,
            seen: HashSet::new(),
            failing: None,
        })
    }

    /// New messages (positions never ingested), at most [`POLL_BATCH`].
    fn poll(&mut self, store: &dyn Store) -> Result<Vec<(Vec<u8>, SourceMeta)>, DeskError> {
        let entries = self.maildir.scan()?;
        let mut out = Vec::new();
        for entry in entries {
            if self.seen.contains(&entry.position) {
                continue;
            }
            if store.position(&entry.position)?.is_some() {
                self.seen.insert(entry.position);
                continue;
            }
            match self.maildir.read(&entry) {
                Ok(m) => out.push((m.raw, m.meta)),
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

/// Run until `shutdown` fires.
pub async fn run(config: Config, mut shutdown: Shutdown) -> Result<(), DeskError> {
    let mut desk = tokio::task::block_in_place(|| Desk::open(&config))?;
    let (requests, mut inbox) = tokio::sync::mpsc::channel::<Request>(16);
    let mut folder_tasks = tokio::task::JoinSet::new();
    let policy = std::sync::Arc::new(desk.policy().clone());
    for (i, m) in config.mailbox.iter().enumerate() {
        let m = std::sync::Arc::new(m.clone());
        for (j, f) in m.folders.iter().enumerate() {
            let watch = FolderWatch::new(
                m.clone(),
                f.clone(),
                requests.clone(),
                policy.clone(),
                shutdown.clone(),
                // Different seeds: folders must not retry in lockstep.
                (i as u64) << 32 | j as u64 | u64::from(std::process::id()) << 16,
            );
            folder_tasks.spawn(watch.run());
        }
    }
    drop(requests);
    info!(
        store = %config.store.path.display(),
        messages = desk.engine().message_count(),
        maildirs = config.maildir.len(),
        imap_folders = folder_tasks.len(),
        "cprwatch running"
    );
    let mut watchers = Vec::new();
    for m in &config.maildir {
        let w = Watcher::new(m)?;
        // An empty directory (cur/ and new/ not made yet), skipped subfolders.
        for note in &w.maildir.notes {
            warn!(
                maildir = w.label.as_str(),
                note = note.as_str(),
                "maildir note"
            );
        }
        watchers.push(w);
    }
    let poll_secs = config
        .maildir
        .iter()
        .map(|m| m.poll_seconds)
        .min()
        .unwrap_or(60)
        .max(1);
    let mut poll = tokio::time::interval(StdDuration::from_secs(poll_secs));
    let mut tick = tokio::time::interval(StdDuration::from_secs(config.clock.tick_seconds.max(1)));
    let mut warned: HashSet<crate::ids::ClockId> = HashSet::new();
    let warn_before = config.clock.warn_before;

    loop {
        tokio::select! {
            biased;
            _ = shutdown.recv() => break,
            Some(req) = inbox.recv() => handle(&mut desk, req),
            _ = poll.tick() => {
                for w in &mut watchers {
                    // Drain: keep polling while a full batch came back (first sync).
                    loop {
                        let polled = tokio::task::block_in_place(|| w.poll(desk.store()));
                        let batch = match polled {
                            Ok(b) => {
                                if w.failing.take().is_some() {
                                    info!(maildir = %w.label, "maildir readable again");
                                }
                                b
                            }
                            Err(e) => {
                                let msg = e.to_string();
                                if w.failing.as_deref() != Some(msg.as_str()) {
                                    error!(maildir = %w.label, error = %msg, "cannot scan maildir; retrying every poll");
                                    w.failing = Some(msg);
                                }
                                break;
                            }
                        };
                        if batch.is_empty() {
                            break;
                        }
                        let full = batch.len() >= POLL_BATCH;
                        let positions: Vec<String> =
                            batch.iter().filter_map(|(_, m)| m.position.clone()).collect();
                        let now = timefmt::now();
                        match tokio::task::block_in_place(|| desk.ingest(batch, now)) {
                            Ok(events) => {
                                w.seen.extend(positions);
                                log_events(&events);
                            }
                            Err(e) => {
                                error!(error = %e, "cannot commit batch; it will be read again");
                                break;
                            }
                        }
                        if !full || shutdown.is_shutdown() {
                            break;
                        }
                    }
                }
            }
            _ = tick.tick() => {
                let now = timefmt::now();
                match tokio::task::block_in_place(|| desk.tick(now)) {
                    Ok(events) => log_events(&events),
                    Err(e) => error!(error = %e, "cannot commit clock changes; retrying next tick"),
                }
                warn_due(&desk, now, warn_before, &mut warned);
            }
        }
    }
    // Batches already handed over are committed; no new ones are taken.
    inbox.close();
    while let Some(req) = inbox.recv().await {
        handle(&mut desk, req);
    }
    folder_tasks.shutdown().await;
    info!("shutting down: all committed");
    Ok(())
}

/// Serve one request from a folder task. Commits happen here, in order, one at a time.
fn handle(desk: &mut Desk, req: Request) {
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
            reply,
        } => {
            let r = desk.ingest_to(messages, checkpoint.into_iter().collect(), timefmt::now());
            let r = match r {
                Ok(events) => {
                    log_events(&events);
                    Ok(events.len())
                }
                Err(e) => {
                    error!(error = %e, "cannot commit a batch from IMAP; it will be fetched again");
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
    })
}

/// Log, once per clock, every running clock within `warn_before` of its deadline.
fn warn_due(
    desk: &Desk,
    now: Timestamp,
    warn_before: time::Duration,
    warned: &mut HashSet<crate::ids::ClockId>,
) {
    let Some(p) = desk.engine().current() else {
        return;
    };
    let mut case_of: HashMap<&str, &str> = HashMap::new();
    for c in &p.cases {
        for id in &c.clocks {
            case_of.entry(id.as_str()).or_insert(c.id.as_str());
        }
    }
    for (id, c) in &p.clocks {
        let s = c.status(now);
        if s.state == ClockState::Pending
            && c.deadline - now <= warn_before
            && warned.insert(id.clone())
        {
            warn!(
                clock = id.as_str(),
                case = case_of.get(id.as_str()).copied().unwrap_or("-"),
                deadline = %timefmt::format(c.deadline),
                left = %timefmt::human_span((c.deadline - now).whole_seconds()),
                "clock due soon"
            );
        }
    }
}

/// Every field that holds outside text (subjects, addresses, Message-Ids, reasons) is logged
/// as a string and written through [`crate::escape`] by the log formatter
/// ([`crate::logging`]): no reporter can clear the terminal or forge a line.
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
    // as one field each (crate::logging).
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
        Event::CommandIgnored { from, reason, .. } => {
            warn!(
                from = from.as_str(),
                reason = reason.as_str(),
                "staff command ignored"
            )
        }
        _ => {}
    }
}
