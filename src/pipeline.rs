//! The one way mail comes in: sources → prepare → record.
//!
//! `cprwatch ingest` and `replay` over paths, the service's Maildir watchers and its IMAP
//! folder tasks all take the same three steps:
//!
//! 1. a source yields [`RawMessage`]s: the bytes and where they sit ([`SourceMeta`], whose
//!    position makes re-reading harmless);
//! 2. a [`Preparer`] works out each message's facts (parse, extract, classify), hashes and
//!    compresses it — the costly, pure part of ingest — on threads of its own, a batch at a
//!    time, answering each batch through a oneshot channel that the command line waits on and
//!    the service's tasks await;
//! 3. the desk, the one owner of the store, records prepared batches in the order they were
//!    read ([`Desk::record`]) and derives cases and clocks from them.
//!
//! So preparing never runs on the thread that commits, and memory stays flat: each caller
//! keeps at most [`AHEAD`] batches in preparation, and the preparer queues at most as many.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, oneshot};

use crate::desk::{Derive, Desk, DeskError};
use crate::domain::event::MessageFacts;
use crate::domain::model::{FolderRole, SourceMeta, Timestamp};
use crate::reading::facts::{self, Policy};
use crate::source::{self, SourceError};
use crate::store::{MessageCodec, NewMessage};

pub use crate::source::RawMessage;

/// Batches one caller keeps in preparation while the desk records the batch before them. Two
/// keep both cores busy on a small machine; more would only hold more mail in memory.
pub(crate) const AHEAD: usize = 2;

/// Threads of a [`Preparer`]: one per batch in preparation.
const THREADS: usize = AHEAD;

/// A message with its facts worked out, ready for the desk to record.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The bytes, their content hash and (for a store that keeps them so) their compressed
    /// form.
    pub message: NewMessage,
    pub meta: SourceMeta,
    /// `None`: not worked out, because the message was recorded (or prepared) before. The
    /// engine skips it if it knows it, and otherwise works its facts out itself.
    pub facts: Option<MessageFacts>,
}

impl Prepared {
    /// Bytes as read, hashed; facts not worked out.
    pub(crate) fn raw(raw: Vec<u8>, meta: SourceMeta) -> Prepared {
        Prepared {
            message: NewMessage::new(raw),
            meta,
            facts: None,
        }
    }

    pub fn content_hash(&self) -> &str {
        self.message.content_hash()
    }
}

/// The prepare stage for one message: hash, work out its facts, and with `compress` compress
/// it. Pure; the [`Preparer`]'s threads run it.
pub fn prepare(m: RawMessage, policy: &Policy, now: Timestamp, compress: bool) -> Prepared {
    let mut p = Prepared::raw(m.raw, m.meta);
    fill(
        &mut p,
        policy,
        now,
        compress.then(MessageCodec::default).as_ref(),
    );
    p
}

fn fill(p: &mut Prepared, policy: &Policy, now: Timestamp, compress: Option<&MessageCodec>) {
    p.facts = Some(facts::message_facts(
        p.message.raw(),
        p.message.content_hash(),
        &p.meta,
        policy,
        now,
    ));
    if let Some(codec) = compress {
        p.message.compress(codec);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(
        "cannot start a thread to prepare messages ({0}); nothing was recorded from the batch in hand — free some resources and read the mail again (nothing is counted twice)"
    )]
    Thread(std::io::Error),
    #[error(
        "preparing a batch of messages failed (a bug: please report it); that batch was not recorded — the service reads it again, and a command run again records it (nothing is counted twice)"
    )]
    Failed,
    #[error("the preparer has stopped")]
    Stopped,
}

struct Job {
    batch: Vec<RawMessage>,
    now: Timestamp,
    reply: oneshot::Sender<Vec<Prepared>>,
}

/// What every preparing thread shares.
struct Shared {
    policy: Arc<Policy>,
    /// How the store compresses messages, if it does.
    compress: Option<MessageCodec>,
    /// Content hashes recorded or prepared so far, when the caller reads mostly what it has
    /// (a re-import): their facts are not worked out again.
    seen: Option<Mutex<HashSet<String>>>,
    /// Whether the store holds a message, for the same purpose.
    recorded: Option<crate::store::Known>,
}

impl Shared {
    fn prepare(&self, batch: Vec<RawMessage>, now: Timestamp) -> Vec<Prepared> {
        batch
            .into_iter()
            .map(|m| {
                let mut p = Prepared::raw(m.raw, m.meta);
                let new = match &self.seen {
                    Some(seen) => {
                        seen.lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(p.content_hash().to_string())
                            && !self.recorded.as_ref().is_some_and(|r| r(p.content_hash()))
                    }
                    None => true,
                };
                if new {
                    fill(&mut p, &self.policy, now, self.compress.as_ref());
                }
                p
            })
            .collect()
    }
}

/// Prepares batches on threads of its own (at a lower priority: the desk sets the pace),
/// answering each through a oneshot. Cheap to clone; the threads end when the last clone is
/// dropped, which waits for them.
#[derive(Clone)]
pub(crate) struct Preparer {
    /// Declared first, so dropped first: the threads end once every sender is gone.
    jobs: mpsc::Sender<Job>,
    _threads: Arc<Threads>,
}

/// The preparer's threads, waited for when the last [`Preparer`] goes. Why wait: they hold a
/// read connection to the store (to skip recorded messages), and the store's writer removes
/// the write-ahead log when it closes only if it is the last connection to close; a thread
/// still ending after the desk closed left the log (tens of MB after a bulk load) behind.
struct Threads(Vec<std::thread::JoinHandle<()>>);

impl Drop for Threads {
    fn drop(&mut self) {
        for t in self.0.drain(..) {
            let _ = t.join();
        }
    }
}

/// A batch in preparation: wait for it ([`Pending::wait`]) or await it ([`Pending::recv`]).
pub(crate) struct Pending(oneshot::Receiver<Vec<Prepared>>);

impl Pending {
    /// Block until the batch is prepared. Not from async code: await [`Pending::recv`].
    pub(crate) fn wait(self) -> Result<Vec<Prepared>, PrepareError> {
        self.0.blocking_recv().map_err(|_| PrepareError::Failed)
    }

    pub(crate) async fn recv(self) -> Result<Vec<Prepared>, PrepareError> {
        self.0.await.map_err(|_| PrepareError::Failed)
    }
}

impl Preparer {
    /// Start the threads. With `seen` (the content hashes already recorded), messages seen
    /// before are only hashed.
    pub(crate) fn start(
        policy: Arc<Policy>,
        compress: Option<MessageCodec>,
        seen: Option<HashSet<String>>,
        recorded: Option<crate::store::Known>,
    ) -> Result<Preparer, PrepareError> {
        let shared = Arc::new(Shared {
            policy,
            compress,
            seen: seen.map(Mutex::new),
            recorded,
        });
        let (jobs, queue) = mpsc::channel::<Job>(THREADS);
        let queue = Arc::new(Mutex::new(queue));
        let mut threads = Vec::with_capacity(THREADS);
        for i in 0..THREADS {
            let (shared, queue) = (shared.clone(), queue.clone());
            let thread = std::thread::Builder::new()
                .name(format!("prepare-{i}"))
                .spawn(move || {
                    crate::service::priority::lower_this_thread();
                    loop {
                        // One thread waits for the next job while holding the queue; the
                        // other waits for the queue.
                        let job = queue
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .blocking_recv();
                        let Some(job) = job else { return };
                        let Job { batch, now, reply } = job;
                        // A panic fails this batch (its reply is dropped), not the thread.
                        let prepared =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                shared.prepare(batch, now)
                            }));
                        if let Ok(prepared) = prepared {
                            let _ = reply.send(prepared);
                        }
                    }
                })
                .map_err(PrepareError::Thread)?;
            threads.push(thread);
        }
        Ok(Preparer {
            jobs,
            _threads: Arc::new(Threads(threads)),
        })
    }

    /// A preparer for this desk's policy and store. `skip_recorded`: messages the desk has
    /// recorded are only hashed (for bulk loads, which often re-read what they have).
    pub(crate) fn for_desk(desk: &Desk, skip_recorded: bool) -> Result<Preparer, PrepareError> {
        Preparer::start(
            Arc::new(desk.policy().clone()),
            desk.store().message_codec(),
            skip_recorded.then(HashSet::new),
            if skip_recorded {
                desk.store().known()
            } else {
                None
            },
        )
    }

    /// Hand a batch over, waiting for room in the queue. Not from async code: await
    /// [`Preparer::submit`].
    pub(crate) fn submit_blocking(
        &self,
        batch: Vec<RawMessage>,
        now: Timestamp,
    ) -> Result<Pending, PrepareError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .blocking_send(Job { batch, now, reply })
            .map_err(|_| PrepareError::Stopped)?;
        Ok(Pending(answer))
    }

    /// Hand a batch over, waiting for room in the queue.
    pub(crate) async fn submit(
        &self,
        batch: Vec<RawMessage>,
        now: Timestamp,
    ) -> Result<Pending, PrepareError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { batch, now, reply })
            .await
            .map_err(|_| PrepareError::Stopped)?;
        Ok(Pending(answer))
    }

    /// Prepare a batch and wait for it.
    pub async fn prepare(
        &self,
        batch: Vec<RawMessage>,
        now: Timestamp,
    ) -> Result<Vec<Prepared>, PrepareError> {
        self.submit(batch, now).await?.recv().await
    }
}

/// What a bulk load did, for the person who ran it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IngestSummary {
    pub read: u64,
    pub new_messages: u64,
    pub bytes: u64,
    pub events: u64,
    /// Messages that could not be read at all (the path and why). Nothing else is dropped.
    pub unreadable: Vec<String>,
    pub notes: Vec<String>,
}

/// Ingest every message under each path (file, directory of .eml, Maildir, mbox) in batches of
/// `batch_size`, with `now` as the moment of sight: `cprwatch ingest` and `replay`.
pub fn ingest_paths(
    desk: &mut Desk,
    paths: &[(PathBuf, FolderRole)],
    batch_size: usize,
    now: impl Fn() -> Timestamp,
) -> Result<IngestSummary, DeskError> {
    let mut load = Bulk::start(desk, batch_size)?;
    for (path, role) in paths {
        let mut src = source::open(path, *role)?;
        load.read(src.by_ref(), &now)?;
        load.summary.notes.extend(src.notes().iter().cloned());
    }
    load.finish(now())
}

/// Ingest messages already in memory as one bulk load (see [`ingest_paths`]).
pub fn ingest(
    desk: &mut Desk,
    messages: Vec<RawMessage>,
    now: Timestamp,
) -> Result<IngestSummary, DeskError> {
    let mut load = Bulk::start(desk, messages.len().max(1))?;
    load.read(messages.into_iter().map(Ok), &|| now)?;
    load.finish(now)
}

/// A bulk load in progress: batches read, in preparation, recorded in order.
struct Bulk<'d> {
    desk: &'d mut Desk,
    preparer: Preparer,
    batch_size: usize,
    pending: VecDeque<Pending>,
    summary: IngestSummary,
}

impl<'d> Bulk<'d> {
    fn start(desk: &'d mut Desk, batch_size: usize) -> Result<Bulk<'d>, DeskError> {
        let preparer = Preparer::for_desk(desk, true)?;
        Ok(Bulk {
            desk,
            preparer,
            batch_size: batch_size.max(1),
            pending: VecDeque::new(),
            summary: IngestSummary::default(),
        })
    }

    /// Read one source to its end, handing over a batch whenever one is full and the rest at
    /// the end.
    fn read(
        &mut self,
        items: impl Iterator<Item = Result<RawMessage, SourceError>>,
        now: &dyn Fn() -> Timestamp,
    ) -> Result<(), DeskError> {
        let mut batch: Vec<RawMessage> = Vec::with_capacity(self.batch_size.min(4096));
        for item in items {
            match item {
                Ok(m) => {
                    self.summary.read += 1;
                    self.summary.bytes += m.raw.len() as u64;
                    batch.push(m);
                    if batch.len() >= self.batch_size {
                        self.hand_over(std::mem::take(&mut batch), now)?;
                    }
                }
                Err(e) => self.summary.unreadable.push(e.to_string()),
            }
        }
        if !batch.is_empty() {
            self.hand_over(batch, now)?;
        }
        Ok(())
    }

    /// Start preparing `batch`; record the oldest batches in preparation until [`AHEAD`] are
    /// left.
    fn hand_over(
        &mut self,
        batch: Vec<RawMessage>,
        now: &dyn Fn() -> Timestamp,
    ) -> Result<(), DeskError> {
        self.pending
            .push_back(self.preparer.submit_blocking(batch, now())?);
        while self.pending.len() > AHEAD {
            self.record_oldest(now())?;
        }
        Ok(())
    }

    fn record_oldest(&mut self, now: Timestamp) -> Result<(), DeskError> {
        let Some(pending) = self.pending.pop_front() else {
            return Ok(());
        };
        let prepared = pending.wait()?;
        // A bulk load derives cases and clocks once, at the end: folders read one after
        // another reach back in time, and each derivation after such mail starts again from
        // it and rewrites the tables from there. The derivation commits in pieces, so no
        // commit grows with the load.
        let done = self
            .desk
            .record(prepared, Vec::new(), now, Derive::Later, None)?;
        self.summary.new_messages += done.new_messages;
        self.summary.events += done.events;
        Ok(())
    }

    /// Record what is still in preparation, then derive cases and clocks at `now`.
    fn finish(mut self, now: Timestamp) -> Result<IngestSummary, DeskError> {
        while !self.pending.is_empty() {
            self.record_oldest(now)?;
        }
        let done = self
            .desk
            .record(Vec::new(), Vec::new(), now, Derive::Now, None)?;
        self.summary.events += done.events;
        Ok(self.summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deciding::cases::Settings;
    use crate::domain::timefmt::parse;
    use crate::reading::rules::RuleSet;
    use crate::reading::staff::StaffPolicy;
    use crate::store;

    fn desk() -> Desk {
        let policy = Policy {
            staff: StaffPolicy {
                staff_domains: vec!["example-ca.test".into()],
                staff_addresses: vec![],
                trusted_authserv_ids: vec!["mx.example-ca.test".into()],
            },
            rules: RuleSet::shipped(),
            limits: crate::reading::limits::Limits::default(),
            canary_keys: Vec::new(),
        };
        Desk::with_store(Box::new(store::memory()), policy, Settings::default()).unwrap()
    }

    #[test]
    fn batches_prepared_ahead_record_what_one_batch_does_and_nothing_twice() {
        let maildir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/maildir"));
        let paths = [(maildir, FolderRole::Inbox)];
        let now = || parse("2026-12-01T00:00:00Z").unwrap();

        // Batches of two: several are prepared while earlier ones are recorded.
        let mut small = desk();
        let first = ingest_paths(&mut small, &paths, 2, now).unwrap();
        assert!(first.new_messages >= 5, "{first:?}");
        let events = small.events().unwrap().len();
        let again = ingest_paths(&mut small, &paths, 2, now).unwrap();
        assert_eq!((again.read, again.new_messages), (first.read, 0));
        assert_eq!(small.events().unwrap().len(), events);

        // The same cases and clocks as reading everything in one batch.
        let mut whole = desk();
        ingest_paths(&mut whole, &paths, 10_000, now).unwrap();
        let (a, b) = (small.projection_at(now()), whole.projection_at(now()));
        assert_eq!(a.cases, b.cases);
        assert_eq!(a.clocks, b.clocks);
    }

    /// A message seen before in the same load is only hashed the second time, and recorded
    /// once, with the facts of its first copy.
    #[test]
    fn a_message_read_twice_is_prepared_once() {
        let policy = Arc::new(desk().policy().clone());
        let preparer = Preparer::start(policy, None, Some(HashSet::new()), None).unwrap();
        let raw = b"From: r@reporter.test\r\nSubject: x\r\n\r\nhttps://crt.sh/?id=7\r\n".to_vec();
        let meta = |pos: &str| SourceMeta {
            folder: FolderRole::Inbox,
            position: Some(crate::domain::ids::Position::from_stored(pos)),
            server_time: None,
        };
        let now = parse("2026-12-01T00:00:00Z").unwrap();
        let batch = vec![
            RawMessage {
                raw: raw.clone(),
                meta: meta("a"),
            },
            RawMessage {
                raw,
                meta: meta("b"),
            },
        ];
        let p = preparer
            .submit_blocking(batch, now)
            .unwrap()
            .wait()
            .unwrap();
        assert!(p[0].facts.is_some());
        assert!(p[1].facts.is_none());
        assert_eq!(p[0].content_hash(), p[1].content_hash());
    }

    /// The service awaits what the command line waits for: the same facts, compressed for a
    /// store that keeps messages so.
    #[test]
    fn awaited_and_waited_batches_are_prepared_alike() {
        let policy = Arc::new(desk().policy().clone());
        let preparer = Preparer::start(policy, Some(MessageCodec::default()), None, None).unwrap();
        let raw =
            b"From: r@reporter.test\r\nSubject: key compromise\r\n\r\nhttps://crt.sh/?id=7\r\n"
                .to_vec();
        let batch = || {
            vec![RawMessage {
                raw: raw.clone(),
                meta: SourceMeta {
                    folder: FolderRole::Inbox,
                    position: Some(crate::domain::ids::Position::from_stored("p")),
                    server_time: None,
                },
            }]
        };
        let now = parse("2026-12-01T00:00:00Z").unwrap();
        let waited = preparer
            .submit_blocking(batch(), now)
            .unwrap()
            .wait()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let awaited = rt.block_on(preparer.prepare(batch(), now)).unwrap();
        assert_eq!(waited[0].facts, awaited[0].facts);
        assert!(waited[0].facts.is_some());
        assert!(awaited[0].message.is_compressed());
    }
}
