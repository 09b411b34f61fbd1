//! `[[mailbox]]`: an IMAP account watched by `cprwatch run`.
//!
//! The password never sits in the file: `password_env` names an environment variable,
//! `password_file` a file (a mounted secret). Both are read only when connecting, so the
//! parsed configuration never holds a secret and printing it can leak nothing. TLS is verified
//! unless `tls = "none"`, which is refused for anything but a loopback address.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use time::Duration;

use super::{FolderConfig, RawFolder};
use crate::domain::model::FolderRole;
use crate::domain::timefmt::parse_span;
use crate::source::imap::{TlsMode, is_loopback_host};

/// Where the password comes from. Never the password itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasswordSource {
    Env(String),
    File(PathBuf),
}

impl PasswordSource {
    /// Read the secret now. The error names the variable or file, never a secret.
    pub(crate) fn read(&self) -> Result<String, String> {
        match self {
            PasswordSource::Env(var) => std::env::var(var).map_err(|_| {
                format!("environment variable {var} (password_env) is not set; export it before starting cprwatch")
            }),
            PasswordSource::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
                .map_err(|e| {
                    format!(
                        "cannot read password_file {}: {e}; check the path and its permissions",
                        path.display()
                    )
                }),
        }
    }
}

/// Where a secret comes from, given `<what>_env` and `<what>_file` (`None` when neither is
/// given); an error is `(key, problem)`, `key` naming the `_env` key.
pub(super) fn secret(
    key: &str,
    what: &str,
    env: Option<String>,
    file: Option<PathBuf>,
    resolve: impl Fn(&Path) -> PathBuf,
) -> Result<Option<PasswordSource>, (String, String)> {
    match (env, file) {
        (Some(v), None) if !v.trim().is_empty() => {
            Ok(Some(PasswordSource::Env(v.trim().to_string())))
        }
        (None, Some(f)) => Ok(Some(PasswordSource::File(resolve(&f)))),
        (Some(_), Some(_)) => Err((
            key.to_string(),
            format!("give {what}_env or {what}_file, not both"),
        )),
        (Some(_), None) => Err((
            key.to_string(),
            "is empty: name an environment variable".into(),
        )),
        (None, None) => Ok(None),
    }
}

/// A `tls` value: `implicit`, `starttls`, or `none`, which is refused unless `host` is a
/// loopback address (`sends` says what would cross the network in clear).
pub(super) fn tls_mode(
    key: &str,
    raw: &str,
    host: &str,
    sends: &str,
) -> Result<TlsMode, (String, String)> {
    match raw.to_ascii_lowercase().as_str() {
        "implicit" => Ok(TlsMode::Implicit),
        "starttls" => Ok(TlsMode::StartTls),
        "none" if is_loopback_host(host) => Ok(TlsMode::None),
        "none" => Err((
            key.to_string(),
            format!(
                "\"none\" sends {sends} in clear; it is allowed only for a loopback host, not {host:?}; use \"implicit\" or \"starttls\""
            ),
        )),
        other => Err((
            key.to_string(),
            format!("{other:?} is not a TLS mode; use \"implicit\", \"starttls\" or \"none\""),
        )),
    }
}

/// One IMAP account, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxConfig {
    /// A short label used in logs, positions and `status` (default `<username>@<host>`).
    pub name: String,
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// An extra trusted root (a private CA) on top of the system's.
    pub ca_file: Option<PathBuf>,
    pub username: String,
    pub password: PasswordSource,
    /// IMAP folder names and their roles.
    pub folders: Vec<FolderConfig>,
    /// Polling interval where the server has no IDLE, and the safety net where it has.
    pub poll_seconds: u64,
    /// A folder that has not synced for this long is reported as a problem.
    pub stale_after: Duration,
    /// How often every UID on the server is compared with the store (finds silent losses).
    pub reconcile_every: Duration,
    /// Messages per `UID FETCH`: memory stays flat whatever the mailbox size.
    pub fetch_batch: usize,
    /// Every network step must finish within this.
    pub timeout: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMailbox {
    name: Option<String>,
    host: String,
    port: Option<u16>,
    #[serde(default = "default_tls")]
    tls: String,
    ca_file: Option<PathBuf>,
    username: String,
    /// Accepted only to refuse it with a useful message.
    password: Option<toml::Value>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    folders: Option<Vec<RawFolder>>,
    #[serde(default = "default_poll")]
    poll_seconds: u64,
    #[serde(default = "default_stale")]
    stale_after: String,
    #[serde(default = "default_reconcile")]
    reconcile_every: String,
    #[serde(default = "default_batch")]
    fetch_batch: usize,
    #[serde(default = "default_timeout")]
    timeout: String,
}

fn default_tls() -> String {
    "implicit".into()
}
fn default_poll() -> u64 {
    60
}
fn default_stale() -> String {
    "10m".into()
}
fn default_reconcile() -> String {
    "10m".into()
}
fn default_batch() -> usize {
    200
}
fn default_timeout() -> String {
    "30s".into()
}

/// A required password: from `password_env` or `password_file`, never `password` itself
/// (`inline` says the file tried); `key` makes a key's full name for errors.
pub(super) fn password(
    key: &dyn Fn(&str) -> String,
    inline: bool,
    env: Option<String>,
    file: Option<PathBuf>,
    resolve: impl Fn(&Path) -> PathBuf,
) -> Result<PasswordSource, (String, String)> {
    if inline {
        return Err((
            key("password"),
            "a password never goes in the config file; use password_env = \"VAR\" or \
             password_file = \"/path\""
                .into(),
        ));
    }
    secret(&key("password_env"), "password", env, file, resolve)?.ok_or_else(|| {
        (
            key("password_env"),
            "missing: name the password's environment variable (password_env) or file \
             (password_file)"
                .into(),
        )
    })
}

/// Validate one `[[mailbox]]`; an error is `(key, problem)`.
pub(super) fn validate(
    i: usize,
    raw: RawMailbox,
    resolve: impl Fn(&Path) -> PathBuf,
) -> Result<MailboxConfig, (String, String)> {
    let key = |k: &str| format!("mailbox[{i}].{k}");
    let password = password(
        &key,
        raw.password.is_some(),
        raw.password_env,
        raw.password_file,
        &resolve,
    )?;
    let host = raw.host.trim().to_string();
    if host.is_empty() {
        return Err((key("host"), "is empty".into()));
    }
    let tls = tls_mode(&key("tls"), &raw.tls, &host, "the password")?;
    let port = raw.port.unwrap_or(match tls {
        TlsMode::Implicit => 993,
        _ => 143,
    });
    let folders = match raw.folders {
        None => vec![FolderConfig {
            name: "INBOX".into(),
            role: FolderRole::Inbox,
        }],
        Some(list) if list.is_empty() => {
            return Err((key("folders"), "is empty: watch at least INBOX".into()));
        }
        Some(list) => {
            let mut out: Vec<FolderConfig> = Vec::new();
            for (j, f) in list.into_iter().enumerate() {
                let role = FolderRole::parse(&f.role).ok_or_else(|| {
                    (
                        key(&format!("folders[{j}].role")),
                        format!(
                            "{:?} is not a folder role; use \"inbox\", \"junk\" or \"sent\"",
                            f.role
                        ),
                    )
                })?;
                let name = f.name.trim().to_string();
                if name.is_empty() || out.iter().any(|o| o.name == name) {
                    return Err((
                        key(&format!("folders[{j}].name")),
                        format!("{name:?} is empty or listed twice"),
                    ));
                }
                out.push(FolderConfig { name, role });
            }
            out
        }
    };
    let span = |k: &str, text: &str| match parse_span(text) {
        Some(d) if d.is_positive() => Ok(d),
        _ => Err((
            key(k),
            format!("{text:?} is not a span; write a whole number with s, m, h or d, like \"10m\""),
        )),
    };
    if raw.poll_seconds == 0 {
        return Err((key("poll_seconds"), "must be at least 1".into()));
    }
    if raw.fetch_batch == 0 || raw.fetch_batch > 5000 {
        return Err((key("fetch_batch"), "must be between 1 and 5000".into()));
    }
    let username = raw.username.trim().to_string();
    let name = raw
        .name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("{username}@{host}"));
    if name.contains('/') {
        return Err((key("name"), "may not contain '/'".into()));
    }
    Ok(MailboxConfig {
        name,
        host,
        port,
        tls,
        ca_file: raw.ca_file.as_deref().map(&resolve),
        username,
        password,
        folders,
        poll_seconds: raw.poll_seconds,
        stale_after: span("stale_after", &raw.stale_after)?,
        reconcile_every: span("reconcile_every", &raw.reconcile_every)?,
        fetch_batch: raw.fetch_batch,
        timeout: span("timeout", &raw.timeout)?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::from_str;
    use super::*;

    fn parse(mailbox: &str) -> Result<MailboxConfig, String> {
        let text = format!("[desk]\nstaff_domains = []\n[[mailbox]]\n{mailbox}\n");
        from_str(&text, Path::new("/etc/cprwatch/c.toml"))
            .map(|mut c| c.mailbox.remove(0))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_resolution() {
        let m = parse(
            "host = \"imap.example-ca.test\"\nusername = \"cpr\"\npassword_file = \"secret\"\n\
             folders = [{ name = \"INBOX\", role = \"inbox\" }, { name = \"Junk\", role = \"junk\" }]",
        )
        .unwrap();
        assert_eq!(m.name, "cpr@imap.example-ca.test");
        assert_eq!((m.port, m.tls), (993, TlsMode::Implicit));
        assert_eq!(
            m.password,
            PasswordSource::File("/etc/cprwatch/secret".into())
        );
        assert_eq!(m.folders[1].role, FolderRole::Junk);
        assert_eq!(m.stale_after, Duration::minutes(10));
        assert_eq!(m.fetch_batch, 200);
    }

    #[test]
    fn a_password_in_the_file_is_refused_without_echoing_it() {
        let e = parse("host = \"h\"\nusername = \"u\"\npassword = \"hunter2\"").unwrap_err();
        assert!(
            e.contains("mailbox[0].password") && e.contains("password_env"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn plain_imap_only_on_loopback() {
        let e = parse("host = \"imap.example-ca.test\"\ntls = \"none\"\nusername = \"u\"\npassword_env = \"P\"")
            .unwrap_err();
        assert!(
            e.contains("mailbox[0].tls") && e.contains("loopback"),
            "{e}"
        );
        let m =
            parse("host = \"127.0.0.1\"\ntls = \"none\"\nusername = \"u\"\npassword_env = \"P\"")
                .unwrap();
        assert_eq!((m.tls, m.port), (TlsMode::None, 143));
        assert!(
            is_loopback_host("::1")
                && is_loopback_host("localhost")
                && !is_loopback_host("10.0.0.1")
        );
    }

    #[test]
    fn missing_or_double_password_sources_are_errors() {
        let e = parse("host = \"h\"\nusername = \"u\"").unwrap_err();
        assert!(e.contains("password_env") && e.contains("missing"), "{e}");
        let e =
            parse("host = \"h\"\nusername = \"u\"\npassword_env = \"P\"\npassword_file = \"f\"")
                .unwrap_err();
        assert!(e.contains("not both"), "{e}");
    }

    #[test]
    fn password_sources_read_without_leaking() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        assert_eq!(PasswordSource::File(f).read().unwrap(), "s3cret");
        let e = PasswordSource::Env("CPRWATCH_TEST_SURELY_UNSET".into())
            .read()
            .unwrap_err();
        assert!(e.contains("CPRWATCH_TEST_SURELY_UNSET"), "{e}");
    }
}
