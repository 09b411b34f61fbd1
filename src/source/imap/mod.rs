//! A read-only IMAP client for the problem-report mailbox: connect, open a folder, list UIDs,
//! fetch raw messages with their server receipt time (INTERNALDATE), and wait for new mail with
//! IDLE.
//!
//! **Read-only by construction.** cprwatch is a witness, not a mail client: it must never change
//! what it watches (a message marked read by a robot is a message a person skips). Folders are
//! opened with EXAMINE, bodies fetched with `BODY.PEEK[]` (which leaves `\Seen` alone), and this
//! module has no code path that writes: no flag, copy, move, expunge, delete or read-write
//! open. A unit test reads this module's own source and fails if such a command appears.
//!
//! Every network step runs under the timeout given to [`Connection::connect`]. After a timeout
//! or a broken connection the session is dropped (its state is unknown) and every later call
//! says [`ImapError::Closed`]: the caller reconnects.
//!
//! The sync logic (checkpoints, per-folder tasks, back-off) lives elsewhere; this module only
//! speaks the protocol.

mod account;
mod error;
mod transport;

pub use account::{Account, TlsMode, is_loopback_host};
pub use error::ImapError;

use async_imap::extensions::idle::IdleResponse;
use async_imap::imap_proto::{MailboxDatum, Response, Status};
use async_imap::types::UnsolicitedResponse;
use error::{scrub, server_text};
use futures::TryStreamExt;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use transport::Stream;

type Session = async_imap::Session<Stream>;

/// The state of a folder as EXAMINE reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FolderInfo {
    /// Positions (UIDs) are only comparable while this stays the same; a change means the
    /// folder was recreated and every UID must be read afresh.
    pub uidvalidity: u32,
    /// The UID the next message will get, when the server says (it should).
    pub uidnext: Option<u32>,
    /// Number of messages in the folder.
    pub exists: u32,
}

/// One fetched message: the exact bytes the server stores and its receipt time.
#[derive(Clone, PartialEq, Eq)]
pub struct Fetched {
    pub uid: u32,
    /// INTERNALDATE (the CA's receipt time, README "How clocks work"), normalised to UTC whole
    /// seconds; `None` when the server gave none or an unreadable one.
    pub internal_date: Option<time::OffsetDateTime>,
    pub raw: Vec<u8>,
}

impl fmt::Debug for Fetched {
    /// Never prints the message: reports carry private keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetched")
            .field("uid", &self.uid)
            .field("internal_date", &self.internal_date)
            .field("raw_len", &self.raw.len())
            .finish()
    }
}

/// How an IDLE wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// The server reported new messages (EXISTS or RECENT): look for UIDs above the last seen.
    NewMail,
    /// `max` passed without news.
    Timeout,
}

/// A logged-in, read-only IMAP connection.
pub struct Connection {
    /// `None` once the connection is known broken (timeout mid-command, I/O error, BYE): its
    /// protocol state is unknown, so it is never used again.
    session: Option<Session>,
    server: String,
    timeout: Duration,
    idle: bool,
    folder: Option<String>,
    /// The server announced new mail while answering some other command. Kept so the next
    /// [`Connection::idle`] returns at once instead of sleeping on mail already here.
    new_mail: bool,
    closed_reason: String,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("server", &self.server)
            .field("open", &self.session.is_some())
            .field("idle", &self.idle)
            .field("folder", &self.folder)
            .finish()
    }
}

impl Connection {
    /// TCP, TLS (implicit, or STARTTLS after the greeting), greeting, LOGIN, CAPABILITY. Each
    /// network step must finish within `timeout`, and so must every later command on this
    /// connection (IDLE waits excepted: they have their own `max`).
    ///
    /// `TlsMode::None` is refused, before any lookup, unless the host is a loopback address.
    pub async fn connect(account: &Account, timeout: Duration) -> Result<Connection, ImapError> {
        let server = account.server();
        let plaintext = account.tls == TlsMode::None;
        if plaintext && !is_loopback_host(&account.host) {
            return Err(ImapError::Config {
                account: account.name.clone(),
                reason: format!(
                    "tls = none is only allowed to a loopback address (127.0.0.1, ::1, \
                     localhost), not {:?}: the password and the reports would cross the network \
                     in clear. Use tls = implicit (port 993) or starttls (port 143).",
                    account.host
                ),
            });
        }
        let tls_config = match account.tls {
            TlsMode::None => None,
            _ => Some(Arc::new(transport::client_config(account)?)),
        };
        let tcp = transport::tcp(account, timeout, plaintext).await?;
        let timed_out = |step| ImapError::Timeout {
            server: server.clone(),
            step,
            after: timeout,
        };

        let stream = match (&account.tls, &tls_config) {
            (TlsMode::Implicit, Some(cfg)) => Stream::Tls(Box::new(
                transport::tls(account, cfg.clone(), tcp, timeout).await?,
            )),
            _ => Stream::Plain(tcp),
        };
        let mut client = async_imap::Client::new(stream);
        greeting(&mut client, &server, timeout).await?;

        if let (TlsMode::StartTls, Some(cfg)) = (&account.tls, tls_config) {
            tokio::time::timeout(timeout, client.run_command_and_check_ok("STARTTLS", None))
                .await
                .map_err(|_| timed_out("STARTTLS"))?
                .map_err(|e| ImapError::Tls {
                    server: server.clone(),
                    reason: format!(
                        "STARTTLS refused by {server}: {} — use tls = implicit (port 993) if \
                         the server offers it",
                        server_text(&e)
                    ),
                })?;
            // Anything the server sent after its OK is discarded with the plain client
            // (a man in the middle could inject responses there: CVE-2011-0411 style).
            let Stream::Plain(tcp) = client.into_inner() else {
                return Err(ImapError::Closed {
                    server,
                    reason: "unexpected TLS stream before STARTTLS".into(),
                });
            };
            let tls = transport::tls(account, cfg, tcp, timeout).await?;
            client = async_imap::Client::new(Stream::Tls(Box::new(tls)));
        }

        let login = tokio::time::timeout(
            timeout,
            client.login_with_capabilities(&account.username, &account.password),
        )
        .await
        .map_err(|_| timed_out("LOGIN"))?;
        let (mut session, caps) = match login {
            Ok(ok) => ok,
            Err((e, _client)) => return Err(login_error(account, &server, e)),
        };
        let idle = match caps {
            Some(caps) => caps.has_str("IDLE"),
            None => tokio::time::timeout(timeout, session.capabilities())
                .await
                .map_err(|_| timed_out("CAPABILITY"))?
                .map_err(|e| ImapError::Protocol {
                    server: server.clone(),
                    step: "CAPABILITY",
                    reason: server_text(&e),
                })?
                .has_str("IDLE"),
        };
        Ok(Connection {
            session: Some(session),
            server,
            timeout,
            idle,
            folder: None,
            new_mail: false,
            closed_reason: String::new(),
        })
    }

    /// Whether the server offers IDLE (RFC 2177). Without it, [`Connection::idle`] fails with
    /// [`ImapError::NoIdle`] and the caller polls.
    pub fn has_idle(&self) -> bool {
        self.idle
    }

    /// Open `folder` read-only (EXAMINE). Replaces any folder opened before.
    pub async fn examine(&mut self, folder: &str) -> Result<FolderInfo, ImapError> {
        let name = folder.to_string();
        let result = self
            .run("EXAMINE", async |s: &mut Session| s.examine(&name).await)
            .await;
        let mailbox = match result {
            Ok(m) => m,
            Err(ImapError::Protocol { reason, .. }) => {
                self.folder = None;
                return Err(ImapError::FolderMissing {
                    server: self.server.clone(),
                    folder: folder.to_string(),
                    reason,
                });
            }
            Err(e) => return Err(e),
        };
        // The examined folder's own counts came with EXAMINE; news from before is stale.
        self.new_mail = false;
        self.folder = Some(folder.to_string());
        let uidvalidity = mailbox.uid_validity.ok_or_else(|| ImapError::Protocol {
            server: self.server.clone(),
            step: "EXAMINE",
            reason: format!(
                "no UIDVALIDITY for folder {folder:?}, so positions in it cannot be remembered"
            ),
        })?;
        Ok(FolderInfo {
            uidvalidity,
            uidnext: mailbox.uid_next,
            exists: mailbox.exists,
        })
    }

    /// Every UID in the examined folder, ascending.
    pub async fn uids(&mut self) -> Result<Vec<u32>, ImapError> {
        self.search("ALL".to_string(), 0).await
    }

    /// UIDs `>= first` in the examined folder, ascending. (`UID SEARCH UID n:*` also returns the
    /// highest UID when it is below `n`, because `*` stands for it; such UIDs are filtered out.)
    pub async fn uids_from(&mut self, first: u32) -> Result<Vec<u32>, ImapError> {
        let first = first.max(1);
        self.search(format!("UID {first}:*"), first).await
    }

    async fn search(&mut self, query: String, min: u32) -> Result<Vec<u32>, ImapError> {
        self.need_folder("UID SEARCH")?;
        let found = self
            .run("UID SEARCH", async |s: &mut Session| {
                s.uid_search(&query).await
            })
            .await?;
        let mut uids: Vec<u32> = found.into_iter().filter(|&u| u >= min).collect();
        uids.sort_unstable();
        Ok(uids)
    }

    /// `UID FETCH <uids> (UID INTERNALDATE BODY.PEEK[])`: the exact stored bytes and receipt
    /// time of each message, ascending by UID. PEEK: the server does not set `\Seen`.
    ///
    /// A UID that no longer exists (expunged meanwhile) is simply absent from the result. The
    /// caller bounds the batch: the whole answer must arrive within the connection's timeout.
    pub async fn fetch(&mut self, uids: &[u32]) -> Result<Vec<Fetched>, ImapError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        self.need_folder("UID FETCH")?;
        let set = uid_set(uids);
        let responses = self
            .run("UID FETCH", async |s: &mut Session| {
                s.uid_fetch(&set, "(UID INTERNALDATE BODY.PEEK[])")
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await?;
        let wanted: std::collections::HashSet<u32> = uids.iter().copied().collect();
        let mut out = BTreeMap::new();
        for f in &responses {
            // Other FETCH responses (flag changes by other clients) carry no body: skip them.
            let (Some(uid), Some(body)) = (f.uid, f.body()) else {
                continue;
            };
            if !wanted.contains(&uid) {
                continue;
            }
            let internal_date = f.internal_date().and_then(|d| {
                time::OffsetDateTime::from_unix_timestamp(d.timestamp())
                    .ok()
                    .map(crate::domain::timefmt::normalize)
            });
            out.entry(uid).or_insert_with(|| Fetched {
                uid,
                internal_date,
                raw: body.to_vec(),
            });
        }
        Ok(out.into_values().collect())
    }

    /// Wait on the examined folder until the server reports new mail or `max` passes. The
    /// caller re-issues it (RFC 2177 asks for less than 29 minutes per IDLE).
    ///
    /// Returns [`Wake::NewMail`] at once when the server already announced new mail while
    /// answering an earlier command, so nothing that arrived between the last search and this
    /// call is slept on.
    pub async fn idle(&mut self, max: Duration) -> Result<Wake, ImapError> {
        if !self.idle {
            return Err(ImapError::NoIdle {
                server: self.server.clone(),
            });
        }
        self.need_folder("IDLE")?;
        let Some(session) = self.session.take() else {
            return Err(self.closed());
        };
        let mut session = session;
        self.new_mail |= drain_new_mail(&mut session);
        if std::mem::take(&mut self.new_mail) {
            self.session = Some(session);
            return Ok(Wake::NewMail);
        }

        // async-imap's IDLE handle owns the session until DONE gives it back; on any failure
        // in between the session is gone, which is what a broken connection means anyway.
        let mut handle = session.idle();
        match tokio::time::timeout(self.timeout, handle.init()).await {
            Err(_) => return Err(self.lost_timeout("IDLE")),
            Ok(Err(e)) => return Err(self.lost(&e)),
            Ok(Ok(())) => {}
        }
        let deadline = tokio::time::Instant::now() + max;
        let wake = loop {
            // wait_with_timeout restarts its clock on every keep-alive; the outer deadline
            // bounds the whole wait. The stop source must outlive the wait: dropping it
            // interrupts.
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (wait, stop) = handle.wait_with_timeout(remaining);
            let got = tokio::time::timeout_at(deadline, wait).await;
            drop(stop);
            match got {
                Err(_) | Ok(Ok(IdleResponse::Timeout)) => break Wake::Timeout,
                Ok(Ok(IdleResponse::NewData(data))) => match data.parsed() {
                    Response::MailboxData(MailboxDatum::Exists(_) | MailboxDatum::Recent(_)) => {
                        break Wake::NewMail;
                    }
                    Response::Data {
                        status: Status::Bye,
                        information,
                        ..
                    } => {
                        let reason = format!(
                            "the server said goodbye during IDLE: {}",
                            information.as_deref().unwrap_or("")
                        );
                        return Err(self.lost_because(reason));
                    }
                    // Expunges and flag changes are not new mail.
                    _ => continue,
                },
                Ok(Ok(IdleResponse::ManualInterrupt)) => {
                    // Never interrupted by us: the stream ended.
                    return Err(self.lost_because("the server closed the connection".into()));
                }
                Ok(Err(e)) => return Err(self.lost(&e)),
            }
        };
        match tokio::time::timeout(self.timeout, handle.done()).await {
            Err(_) => Err(self.lost_timeout("IDLE DONE")),
            Ok(Err(e)) => Err(self.lost(&e)),
            Ok(Ok(mut session)) => {
                // Mail that arrived while DONE was on its way.
                let late = drain_new_mail(&mut session);
                self.session = Some(session);
                Ok(if late { Wake::NewMail } else { wake })
            }
        }
    }

    /// NOOP: keeps the connection alive and lets the server report news (which a following
    /// [`Connection::idle`] then returns at once).
    pub async fn noop(&mut self) -> Result<(), ImapError> {
        self.run("NOOP", async |s: &mut Session| s.noop().await)
            .await
    }

    /// LOGOUT, best effort: errors are irrelevant when leaving.
    pub async fn logout(mut self) {
        if let Some(mut s) = self.session.take() {
            let _ = tokio::time::timeout(self.timeout, s.logout()).await;
        }
    }

    /// Run one command under the timeout. A NO or BAD answer leaves the session usable; any
    /// other failure drops it.
    async fn run<T>(
        &mut self,
        step: &'static str,
        command: impl AsyncFnOnce(&mut Session) -> async_imap::error::Result<T>,
    ) -> Result<T, ImapError> {
        let Some(session) = self.session.as_mut() else {
            return Err(self.closed());
        };
        let result = tokio::time::timeout(self.timeout, command(session)).await;
        match result {
            Err(_) => Err(self.lost_timeout(step)),
            Ok(Ok(v)) => {
                if let Some(s) = self.session.as_mut() {
                    self.new_mail |= drain_new_mail(s);
                }
                Ok(v)
            }
            Ok(Err(e @ (async_imap::error::Error::No(_) | async_imap::error::Error::Bad(_)))) => {
                Err(ImapError::Protocol {
                    server: self.server.clone(),
                    step,
                    reason: server_text(&e),
                })
            }
            Ok(Err(e)) => Err(self.lost(&e)),
        }
    }

    fn need_folder(&self, step: &'static str) -> Result<(), ImapError> {
        if self.folder.is_none() {
            return Err(ImapError::Protocol {
                server: self.server.clone(),
                step,
                reason: "no folder is open (call examine first)".into(),
            });
        }
        Ok(())
    }

    fn closed(&self) -> ImapError {
        ImapError::Closed {
            server: self.server.clone(),
            reason: if self.closed_reason.is_empty() {
                "it was closed earlier".into()
            } else {
                format!("earlier, {}", self.closed_reason)
            },
        }
    }

    fn lost_because(&mut self, reason: String) -> ImapError {
        self.session = None;
        self.closed_reason = reason.clone();
        ImapError::Closed {
            server: self.server.clone(),
            reason,
        }
    }

    fn lost(&mut self, e: &async_imap::error::Error) -> ImapError {
        self.lost_because(server_text(e))
    }

    fn lost_timeout(&mut self, step: &'static str) -> ImapError {
        self.session = None;
        self.closed_reason = format!("{step} timed out");
        ImapError::Timeout {
            server: self.server.clone(),
            step,
            after: self.timeout,
        }
    }
}

/// Read the greeting: `* OK` goes on; `* BYE` or silence is an error.
async fn greeting(
    client: &mut async_imap::Client<Stream>,
    server: &str,
    timeout: Duration,
) -> Result<(), ImapError> {
    let greeting = tokio::time::timeout(timeout, client.read_response())
        .await
        .map_err(|_| ImapError::Timeout {
            server: server.to_string(),
            step: "the server greeting",
            after: timeout,
        })?
        .map_err(|e| ImapError::Closed {
            server: server.to_string(),
            reason: format!("reading the greeting failed: {e}"),
        })?;
    let Some(greeting) = greeting else {
        return Err(ImapError::Closed {
            server: server.to_string(),
            reason: "the server closed the connection before greeting".into(),
        });
    };
    match greeting.parsed() {
        Response::Data {
            status: Status::Ok, ..
        } => Ok(()),
        Response::Data {
            status,
            information,
            ..
        } => Err(ImapError::Protocol {
            server: server.to_string(),
            step: "the greeting",
            reason: format!(
                "the server answered {status:?}: {}",
                information.as_deref().unwrap_or("")
            ),
        }),
        other => Err(ImapError::Protocol {
            server: server.to_string(),
            step: "the greeting",
            reason: format!("unexpected first response {other:?}; is this an IMAP port?"),
        }),
    }
}

fn login_error(account: &Account, server: &str, e: async_imap::error::Error) -> ImapError {
    use async_imap::error::Error;
    let text = scrub(&server_text(&e), &account.password);
    match e {
        // Dovecot and others say UNAVAILABLE when their password backend is down: not the
        // password's fault, worth retrying.
        Error::No(_) if text.contains("Unavailable") || text.contains("UNAVAILABLE") => {
            ImapError::Protocol {
                server: server.to_string(),
                step: "LOGIN",
                reason: text,
            }
        }
        Error::No(_) | Error::Bad(_) => ImapError::Auth {
            server: server.to_string(),
            user: account.username.clone(),
            reason: text,
        },
        Error::Validate(v) => ImapError::Config {
            account: account.name.clone(),
            reason: format!(
                "the username or password contains a character IMAP LOGIN cannot carry ({:?})",
                v.0
            ),
        },
        _ => ImapError::Closed {
            server: server.to_string(),
            reason: format!("during LOGIN: {text}"),
        },
    }
}

/// Whether the server announced new messages in responses the last command did not consume.
/// Draining also keeps async-imap's bounded channel (100) from filling, after which it would
/// silently drop announcements.
fn drain_new_mail(session: &mut Session) -> bool {
    let mut new_mail = false;
    while let Ok(r) = session.unsolicited_responses.try_recv() {
        if matches!(
            r,
            UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
        ) {
            new_mail = true;
        }
    }
    new_mail
}

/// A compact UID set: `1:3,7,9:10`. Input in any order, duplicates allowed.
fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests;
