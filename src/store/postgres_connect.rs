//! Connecting to PostgreSQL (issue 17): the one place that turns `[store] url` and a password
//! into a connection, so the TLS rule is decided once.
//!
//! The rule: **TLS is required and verified unless every host is on this machine.** Verified
//! means libpq's `sslmode=verify-full`: the server's certificate must chain to the system's roots
//! or `ca_file` and name the host of the URL (rustls checks both; there is no switch to turn
//! this off). On this machine means a loopback address (`127.0.0.0/8`, `::1`, also written
//! IPv4-mapped), the name `localhost`, or a Unix socket directory: nothing on such a path crosses
//! a network, and a database on the same host (or behind a local tunnel) is common. A `ca_file`
//! asks for TLS on loopback too (a local TLS endpoint, or a private CA on purpose). The URL's own
//! `sslmode` is overridden by this rule, so a URL copied from elsewhere cannot turn TLS off for a
//! remote server.
//!
//! The password is never part of the URL: it comes from `password_env`/`password_file`, so the
//! configuration file and every message that quotes the URL stay free of it; a URL with one is
//! refused.
//!
//! The client is the synchronous `postgres` crate (tokio-postgres underneath, on a private
//! current-thread runtime): the store is synchronous, one owner thread, as with rusqlite. So call
//! [`connect`] from a plain thread, not from inside a tokio runtime (the client would try to
//! start a runtime inside one and panic). TLS is tokio-postgres-rustls with the client
//! configuration of [`crate::tls`]: ring, system roots plus `ca_file`.
//!
//! Public (rather than `pub(crate)`) because the PostgreSQL harness test connects through it, to
//! prove the function the store will use, not a copy of it.

use postgres::config::{Host, SslMode};
use postgres::error::SqlState;
use postgres::{Client, Config, NoTls};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// How long one connection attempt may take, when the URL does not say (`connect_timeout`):
/// a server that does not answer must fail with a message, not hang the store.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why no connection was made. Each message says what was wrong and what to change; none
/// contains the password.
#[derive(Debug, thiserror::Error)]
pub enum PgConnectError {
    #[error(
        "[store] url is not a valid PostgreSQL URL ({detail}). Write it as \
         postgres://USER@HOST:PORT/DATABASE"
    )]
    Url {
        detail: String,
        source: postgres::Error,
    },
    #[error(
        "[store] url contains a password. Remove it from the URL and give it with \
         password_env or password_file, so it is neither in the configuration file nor in logs"
    )]
    PasswordInUrl,
    #[error("[store] url names no user. Write it as postgres://USER@HOST:PORT/DATABASE")]
    NoUser,
    #[error("[store] url names no host. Write it as postgres://USER@HOST:PORT/DATABASE")]
    NoHost,
    #[error("cannot set up TLS for PostgreSQL: {0}")]
    Tls(String),
    #[error(
        "PostgreSQL at {target} refused the password of role {user} ({detail}). Check the \
         password in password_env or password_file, and that the role exists and may log in"
    )]
    BadPassword {
        target: String,
        user: String,
        detail: String,
        source: postgres::Error,
    },
    #[error(
        "cannot connect to PostgreSQL at {target} as {user} ({mode}): {detail}. Check [store] \
         url, that the server is running and lets this host in (pg_hba.conf){tls_hint}"
    )]
    Connect {
        target: String,
        user: String,
        mode: &'static str,
        tls_hint: &'static str,
        detail: String,
        source: postgres::Error,
    },
}

/// What [`connect`] will do for a URL: the parsed configuration with the password and `sslmode`
/// set, and the TLS client configuration when TLS is required. Separate so the rule can be
/// tested without a server.
pub(crate) struct Plan {
    pub(crate) config: Config,
    pub(crate) tls: Option<rustls::ClientConfig>,
}

/// Run `f`, which blocks on the synchronous PostgreSQL client, where blocking is allowed: on a
/// worker of the service's tokio runtime it is moved off the worker first
/// ([`tokio::task::block_in_place`]); elsewhere (a plain thread, a blocking task, a command)
/// it just runs. The client runs a small runtime of its own and refuses to start it on a
/// thread that drives async tasks, which without this would make every call site remember.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Connect to the PostgreSQL server of `url` (`postgres://USER@HOST:PORT/DATABASE`, or libpq's
/// `key=value` form) as its user with `password`; TLS required and verified unless every host
/// is on this machine, or whenever `ca_file` is given (module doc).
pub fn connect(
    url: &str,
    password: &str,
    ca_file: Option<&Path>,
) -> Result<Client, PgConnectError> {
    let plan = plan(url, password, ca_file)?;
    let target = target(&plan.config);
    let user = plan.config.get_user().unwrap_or_default().to_string();
    let tls_used = plan.tls.is_some();
    let result = match plan.tls {
        Some(tls) => plan
            .config
            .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls)),
        None => plan.config.connect(NoTls),
    };
    result.map_err(|source| {
        let detail = describe(&source);
        if matches!(
            source.code(),
            Some(&SqlState::INVALID_PASSWORD)
                | Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
        ) && source
            .as_db_error()
            .is_some_and(|db| db.message().contains("password"))
        {
            PgConnectError::BadPassword {
                target,
                user,
                detail,
                source,
            }
        } else {
            PgConnectError::Connect {
                target,
                user,
                mode: if tls_used {
                    "TLS required, verified"
                } else {
                    "without TLS: the server is on this machine"
                },
                tls_hint: if tls_used {
                    ", and that its certificate names that host and is signed by a CA in the \
                     system's roots or ca_file"
                } else {
                    ""
                },
                detail,
                source,
            }
        }
    })
}

/// Parse `url`, check it, and decide TLS (module doc).
pub(crate) fn plan(
    url: &str,
    password: &str,
    ca_file: Option<&Path>,
) -> Result<Plan, PgConnectError> {
    let mut config: Config = url.parse().map_err(|source| PgConnectError::Url {
        detail: describe(&source),
        source,
    })?;
    if config.get_password().is_some() {
        return Err(PgConnectError::PasswordInUrl);
    }
    if config.get_user().is_none_or(str::is_empty) {
        return Err(PgConnectError::NoUser);
    }
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        return Err(PgConnectError::NoHost);
    }
    config.password(password);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let tls = if ca_file.is_some() || !on_this_machine(&config) {
        config.ssl_mode(SslMode::Require);
        Some(crate::tls::client_config(ca_file).map_err(|e| PgConnectError::Tls(e.to_string()))?)
    } else {
        config.ssl_mode(SslMode::Disable);
        None
    };
    Ok(Plan { config, tls })
}

/// Whether every host the client may connect to is on this machine: each host a loopback
/// address, `localhost` or a Unix socket directory, and each `hostaddr` (which the client
/// connects to instead of resolving the host) a loopback address.
pub(crate) fn on_this_machine(config: &Config) -> bool {
    config.get_hosts().iter().all(|h| match h {
        Host::Tcp(name) => is_loopback_host(name),
        Host::Unix(_) => true,
    }) && config
        .get_hostaddrs()
        .iter()
        .all(|a| a.to_canonical().is_loopback())
}

/// `localhost`, or a loopback IP address (IPv6 with or without brackets, IPv4-mapped too).
/// A name that merely resolves to loopback (`db.internal` in /etc/hosts) is not: it could
/// resolve elsewhere tomorrow.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<IpAddr>()
        .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// The error with its causes, on one line: the client's own text is only the kind of failure
/// ("db error", "error performing TLS handshake"); the server's message or the certificate
/// problem is in its source.
pub(crate) fn describe(error: &postgres::Error) -> String {
    let mut out = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `host:port` of every host, for messages.
fn target(config: &Config) -> String {
    let ports = config.get_ports();
    let port = |i: usize| {
        ports
            .get(i)
            .or_else(|| ports.first())
            .copied()
            .unwrap_or(5432)
    };
    let mut out: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| match h {
            Host::Tcp(name) if name.contains(':') => format!("[{name}]:{}", port(i)),
            Host::Tcp(name) => format!("{name}:{}", port(i)),
            Host::Unix(dir) => format!("{} (port {})", dir.display(), port(i)),
        })
        .collect();
    if out.is_empty() {
        out = config
            .get_hostaddrs()
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{a}:{}", port(i)))
            .collect();
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_of(url: &str) -> bool {
        let plan = plan(url, "pw", None).expect("plan");
        let tls = plan.tls.is_some();
        assert_eq!(
            plan.config.get_ssl_mode(),
            if tls {
                SslMode::Require
            } else {
                SslMode::Disable
            },
            "sslmode follows the rule for {url}"
        );
        tls
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for h in [
            "127.0.0.1",
            "127.3.2.1",
            "::1",
            "[::1]",
            "localhost",
            "LocalHost",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_loopback_host(h), "{h} is loopback");
        }
        for h in [
            "10.0.0.1",
            "192.168.1.5",
            "0.0.0.0",
            "::",
            "db.example-ca.test",
            "127.0.0.1.example.com",
            "localhost.example.com",
            "::ffff:10.0.0.1",
            "",
        ] {
            assert!(!is_loopback_host(h), "{h} is not loopback");
        }
    }

    #[test]
    fn tls_is_required_unless_every_host_is_on_this_machine() {
        assert!(!tls_of("postgres://cprwatch@127.0.0.1:5433/cprwatch"));
        assert!(!tls_of("postgres://cprwatch@localhost/cprwatch"));
        assert!(!tls_of("postgres://cprwatch@[::1]:5433/cprwatch"));
        assert!(!tls_of(
            "host=/run/postgresql user=cprwatch dbname=cprwatch"
        ));
        assert!(tls_of("postgres://cprwatch@db.example-ca.test/cprwatch"));
        assert!(tls_of("postgres://cprwatch@10.1.2.3:5432/cprwatch"));
        // One remote host among local ones: TLS for all.
        assert!(tls_of(
            "postgres://cprwatch@127.0.0.1,db.example-ca.test/cprwatch"
        ));
        // The client connects to hostaddr, whatever the host says.
        assert!(tls_of(
            "host=localhost hostaddr=10.1.2.3 user=cprwatch dbname=cprwatch"
        ));
    }

    #[test]
    fn the_urls_sslmode_cannot_turn_tls_off_for_a_remote_host() {
        assert!(tls_of(
            "postgres://cprwatch@db.example-ca.test/cprwatch?sslmode=disable"
        ));
        assert!(tls_of(
            "host=db.example-ca.test sslmode=prefer user=cprwatch dbname=cprwatch"
        ));
    }

    #[test]
    fn a_ca_file_asks_for_tls_on_loopback_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, include_str!("../../fixtures/keys/ca.pem")).expect("write");
        let plan = plan("postgres://cprwatch@127.0.0.1/cprwatch", "pw", Some(&ca)).expect("plan");
        assert!(plan.tls.is_some());
        assert_eq!(plan.config.get_ssl_mode(), SslMode::Require);
    }

    #[test]
    fn a_missing_ca_file_for_a_remote_host_is_an_error_before_any_connection() {
        let err = connect(
            "postgres://cprwatch@db.example-ca.test/cprwatch",
            "pw",
            Some(Path::new("/nonexistent/ca.pem")),
        )
        .err()
        .expect("must fail");
        assert!(matches!(err, PgConnectError::Tls(_)), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn the_password_is_set_and_never_taken_from_the_url() {
        let plan = plan("postgres://cprwatch@127.0.0.1/cprwatch", "s3cret", None).expect("plan");
        assert_eq!(plan.config.get_password(), Some(&b"s3cret"[..]));
        let err = super::plan("postgres://cprwatch:hunter2@127.0.0.1/cprwatch", "pw", None)
            .err()
            .expect("must fail");
        assert!(matches!(err, PgConnectError::PasswordInUrl), "{err:?}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("password_env"), "{err}");
    }

    #[test]
    fn a_url_without_user_or_host_or_with_nonsense_is_refused() {
        assert!(matches!(
            plan("postgres://127.0.0.1/cprwatch", "pw", None).err(),
            Some(PgConnectError::NoUser)
        ));
        assert!(matches!(
            plan("user=cprwatch dbname=cprwatch", "pw", None).err(),
            Some(PgConnectError::NoHost)
        ));
        assert!(matches!(
            plan("postgres://cprwatch@127.0.0.1:notaport/x", "pw", None).err(),
            Some(PgConnectError::Url { .. })
        ));
    }

    #[test]
    fn a_connect_timeout_is_always_set() {
        let plan = plan("postgres://cprwatch@127.0.0.1/cprwatch", "pw", None).expect("plan");
        assert_eq!(plan.config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        let plan = super::plan(
            "postgres://cprwatch@127.0.0.1/cprwatch?connect_timeout=3",
            "pw",
            None,
        )
        .expect("plan");
        assert_eq!(
            plan.config.get_connect_timeout(),
            Some(&Duration::from_secs(3))
        );
    }

    #[test]
    fn targets_name_every_host_and_port() {
        let plan = plan(
            "postgres://cprwatch@127.0.0.1:5433,[::1]:5434/cprwatch",
            "pw",
            None,
        )
        .expect("plan");
        assert_eq!(target(&plan.config), "127.0.0.1:5433, [::1]:5434");
    }
}
