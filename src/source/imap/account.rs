//! Where and how to reach one mailbox: the account settings the IMAP client needs.
//!
//! Kept apart from the protocol code so the rules that protect the password (never printed)
//! and the plaintext rule (only over loopback) live in one small, testable place.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

/// How the connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// TLS from the first byte (IMAPS, usually port 993).
    Implicit,
    /// Plain connection upgraded with STARTTLS right after the greeting (usually port 143).
    /// Nothing, not even the login, is sent before the upgrade.
    StartTls,
    /// No TLS at all. Refused unless the host is a loopback address: the password and the
    /// reports would otherwise cross a network in clear.
    None,
}

/// One IMAP account. The password comes from wherever the configuration says (an environment
/// variable or a file, never the config file itself) and is never shown: `Debug` redacts it and
/// no error message contains it.
#[derive(Clone)]
pub struct Account {
    /// A name for logs and error messages (e.g. the config section's name).
    pub name: String,
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// Extra trusted root certificates (PEM), for a server whose certificate comes from a
    /// private CA. Added to the system's roots, never instead of verification.
    pub ca_file: Option<PathBuf>,
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("ca_file", &self.ca_file)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Account {
    /// `host:port`, for messages (IPv6 literals in brackets).
    pub fn server(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The host without the brackets an IPv6 literal may be written with.
    pub(crate) fn bare_host(&self) -> &str {
        bare(&self.host)
    }
}

fn bare(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Whether `host` names this machine: 127.0.0.0/8, ::1, or `localhost`. Decided from the name
/// alone, before any lookup, so a refused plaintext account never touches the network.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = bare(host);
    if bare.eq_ignore_ascii_case("localhost") || bare.eq_ignore_ascii_case("localhost.") {
        return true;
    }
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
