//! Handing a message to the SMTP server `[smtp]` names, and saying how it went.
//!
//! TLS is always verified: the system's roots plus `ca_file`. `tls = "none"` exists only for a
//! loopback host (the configuration refuses it otherwise, and [`Mailer::new`] checks again).
//! The rustls crypto provider is ring, as everywhere in cprwatch: lettre is built with its
//! `ring` feature only and nothing in cprwatch installs a process-wide provider.
//!
//! What the server answered decides what happens next: a 4xx or a lost connection is
//! [`SendError::Transient`] (the sender retries with back-off, an outage of hours delays but
//! loses nothing), a 5xx is [`SendError::Permanent`] (recorded, alerted as `delivery`, not
//! retried forever).

use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncTransport, Tokio1Executor, address::Envelope};

use crate::config::SmtpConfig;
use crate::source::imap::{TlsMode, is_loopback_host};

/// Why a mailer could not be set up: the configuration names something unusable.
#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error("[smtp] ca_file {path}: {problem} — give a PEM file holding the CA certificate")]
    CaFile { path: String, problem: String },
    #[error("[smtp] password: {0}")]
    Password(String),
    #[error("[smtp] {0}")]
    Setup(String),
}

/// How one hand-over failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again later: a 4xx, a timeout, a refused or dropped connection, a TLS failure
    /// (a certificate may be fixed; the mail must not be lost meanwhile).
    #[error("temporary failure, will retry: {0}")]
    Transient(String),
    /// The server refused it for good (5xx): recorded and not retried.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// An SMTP client for one `[smtp]` table. Cheap to clone; connections are opened per send
/// (alerts are few and a pooled connection would outlive a server restart).
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Address,
    server: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Set up a client for `config`. Reads the password and the CA file now, so a missing
    /// secret is an error at start, not at the first alert.
    pub fn new(config: &SmtpConfig) -> Result<Mailer, MailerError> {
        let host = config
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tls = match config.tls {
            TlsMode::None if is_loopback_host(&config.host) => Tls::None,
            TlsMode::None => {
                return Err(MailerError::Setup(format!(
                    "tls = \"none\" is allowed only for a loopback host, not {:?}",
                    config.host
                )));
            }
            mode => {
                let mut params = TlsParameters::builder(host.clone());
                if let Some(path) = &config.ca_file {
                    let problem = |p: String| MailerError::CaFile {
                        path: path.display().to_string(),
                        problem: p,
                    };
                    let pem = std::fs::read(path).map_err(|e| problem(e.to_string()))?;
                    let cert = Certificate::from_pem(&pem).map_err(|e| problem(e.to_string()))?;
                    params = params.add_root_certificate(cert);
                }
                let params = params
                    .build_rustls()
                    .map_err(|e| MailerError::Setup(format!("TLS: {e}")))?;
                if mode == TlsMode::Implicit {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(config.port)
            .tls(tls)
            .timeout(Some(std::time::Duration::from_secs(
                config.timeout.whole_seconds().max(1) as u64,
            )));
        if let Some((user, source)) = &config.login {
            let password = source.read().map_err(MailerError::Password)?;
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        let from: Address = config
            .from
            .parse()
            .map_err(|e| MailerError::Setup(format!("from {:?}: {e}", config.from)))?;
        Ok(Mailer {
            transport: builder.build(),
            from,
            server: format!("{}:{}", config.host, config.port),
        })
    }

    /// The address everything is sent from (envelope and `From:`).
    pub fn from(&self) -> &Address {
        &self.from
    }

    /// Hand `message` (a whole RFC 5322 message, CRLF line ends) to the server for `to`.
    /// Returns the server's answer to the message (its queue id, usually).
    pub async fn send(&self, to: &[Address], message: &[u8]) -> Result<String, SendError> {
        let envelope = Envelope::new(Some(self.from.clone()), to.to_vec())
            .map_err(|e| SendError::Permanent(format!("no recipient: {e}")))?;
        match self.transport.send_raw(&envelope, message).await {
            Ok(response) => Ok(response.message().collect::<Vec<_>>().join(" ")),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(format!(
                "{} answered {e}",
                self.server
            ))),
            Err(e) => Err(SendError::Transient(format!("{}: {e}", self.server))),
        }
    }
}
