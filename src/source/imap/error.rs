//! What can go wrong talking to the IMAP server, in words an operator can act on.
//!
//! The watcher decides from [`ImapError::is_auth`] and [`ImapError::is_retryable`] whether to
//! back off and try again or to stop and ask a person; the message says which and what to do.
//! No variant ever holds the password: the server's own text is passed through
//! [`scrub`] before it is kept, in case a server echoes what it was sent.

use std::time::Duration;

/// An error from the read-only IMAP client. `server` is always `host:port`.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// The account settings cannot work as given; nothing was sent.
    #[error("IMAP account {account:?}: {reason}")]
    Config { account: String, reason: String },

    #[error(
        "cannot connect to IMAP server {server}: {source}. Check the host and port, and that \
         the server is up and reachable from here; cprwatch will retry."
    )]
    Connect {
        server: String,
        source: std::io::Error,
    },

    /// `reason` names the server and says what to do.
    #[error("{reason}")]
    Tls { server: String, reason: String },

    #[error(
        "IMAP login as {user:?} at {server} was rejected: {reason}. Check the username and the \
         password (from the account's password environment variable or file)."
    )]
    Auth {
        server: String,
        user: String,
        reason: String,
    },

    #[error("IMAP server {server} failed {step}: {reason}. cprwatch will reconnect and retry.")]
    Protocol {
        server: String,
        step: &'static str,
        reason: String,
    },

    #[error(
        "IMAP server {server} did not complete {step} within {}s. The connection was dropped; \
         cprwatch will reconnect. If the server is just slow, raise the timeout.",
        after.as_secs_f32()
    )]
    Timeout {
        server: String,
        step: &'static str,
        after: Duration,
    },

    #[error("connection to IMAP server {server} is closed: {reason}. cprwatch will reconnect.")]
    Closed { server: String, reason: String },

    #[error(
        "IMAP server {server} does not support IDLE, so new mail cannot be pushed; poll the \
         folder instead."
    )]
    NoIdle { server: String },

    #[error(
        "IMAP folder {folder:?} cannot be opened on {server}: {reason}. Check the folder name \
         in the configuration (names other than INBOX are case-sensitive; subfolders use the \
         server's separator, e.g. \"INBOX.Junk\" or \"INBOX/Junk\")."
    )]
    FolderMissing {
        server: String,
        folder: String,
        reason: String,
    },
}

impl ImapError {
    /// The server refused the credentials: retrying with the same password cannot help and may
    /// lock the account.
    pub fn is_auth(&self) -> bool {
        matches!(self, ImapError::Auth { .. })
    }

    /// Reconnecting later may succeed without anyone changing anything (network, server restart,
    /// timeout). False for settings, credentials, certificates and missing capabilities or
    /// folders, which need a person.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ImapError::Connect { .. }
                | ImapError::Protocol { .. }
                | ImapError::Timeout { .. }
                | ImapError::Closed { .. }
        )
    }
}

/// The server's words from an async-imap error, readable: async-imap formats NO/BAD as
/// `code: Some(X), info: Some("text")`; keep `text (X)`.
pub(crate) fn server_text(e: &async_imap::error::Error) -> String {
    use async_imap::error::Error;
    match e {
        Error::No(s) | Error::Bad(s) => tidy(s),
        Error::Io(io) => io.to_string(),
        Error::ConnectionLost => "connection lost".into(),
        other => other.to_string(),
    }
}

fn tidy(s: &str) -> String {
    let info = s
        .find("info: Some(\"")
        .map(|i| &s[i + "info: Some(\"".len()..])
        .and_then(|rest| rest.rfind("\")").map(|j| &rest[..j]));
    let code = s
        .strip_prefix("code: Some(")
        .and_then(|rest| rest.find("), info:").map(|j| &rest[..j]));
    match (info, code) {
        (Some(i), Some(c)) => format!("{i} ({c})"),
        (Some(i), None) => i.to_string(),
        _ => s.to_string(),
    }
}

/// Remove every occurrence of `secret` from `text` (defence in depth: a server might echo the
/// command it rejected).
pub(crate) fn scrub(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        text.to_string()
    } else {
        text.replace(secret, "<redacted>")
    }
}
