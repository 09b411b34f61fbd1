//! The byte stream under IMAP: TCP, optionally wrapped in TLS, as one type so plain and TLS
//! connections share one `async_imap::Session` type.
//!
//! TLS verification is always on: the roots are the system's (rustls-native-certs) plus the
//! account's `ca_file`. The crypto provider is set explicitly (ring) on every config, never
//! taken from a process default, so no other crate's choice can change it.

use super::account::Account;
use super::error::ImapError;
use rustls::pki_types::ServerName;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A connection to the server, plain or TLS.
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Resolve and connect, trying each address in turn. With `loopback_only` (plaintext
/// accounts) an address that is not loopback is never contacted, whatever the name resolves to.
pub(crate) async fn tcp(
    account: &Account,
    timeout: Duration,
    loopback_only: bool,
) -> Result<TcpStream, ImapError> {
    let server = account.server();
    let host = account.bare_host().to_string();
    let timed_out = |step| ImapError::Timeout {
        server: server.clone(),
        step,
        after: timeout,
    };
    let addrs: Vec<SocketAddr> = tokio::time::timeout(
        timeout,
        tokio::net::lookup_host((host.as_str(), account.port)),
    )
    .await
    .map_err(|_| timed_out("the host name lookup"))?
    .map_err(|source| ImapError::Connect {
        server: server.clone(),
        source,
    })?
    .filter(|a| !loopback_only || a.ip().is_loopback())
    .collect();
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        "the host name resolves to no usable address",
    );
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => {
                // IMAP is a chatty request/response protocol: don't let Nagle delay commands.
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Ok(Err(e)) => last = e,
            Err(_) => return Err(timed_out("the TCP connection")),
        }
    }
    Err(ImapError::Connect {
        server,
        source: last,
    })
}

/// The TLS client configuration for this account: [`crate::tls::client_config`] (ring, safe
/// default protocol versions, system roots plus `ca_file`).
pub(crate) fn client_config(account: &Account) -> Result<rustls::ClientConfig, ImapError> {
    crate::tls::client_config(account.ca_file.as_deref()).map_err(|e| match e {
        crate::tls::TlsSetupError::Protocol(_) => ImapError::Tls {
            server: account.server(),
            reason: format!("TLS with {}: {e}", account.server()),
        },
        e => ImapError::Config {
            account: account.name.clone(),
            reason: e.to_string(),
        },
    })
}

/// TLS handshake over `tcp`, verifying the certificate against the account's host name.
pub(crate) async fn tls(
    account: &Account,
    config: Arc<rustls::ClientConfig>,
    tcp: TcpStream,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, ImapError> {
    let server = account.server();
    let host = account.bare_host().to_string();
    let name = ServerName::try_from(host).map_err(|e| ImapError::Config {
        account: account.name.clone(),
        reason: format!(
            "host {:?} is not a valid DNS name or IP address for TLS: {e}",
            account.host
        ),
    })?;
    let connector = TlsConnector::from(config);
    match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
        Err(_) => Err(ImapError::Timeout {
            server,
            step: "the TLS handshake",
            after: timeout,
        }),
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(handshake_error(&server, &account.host, e)),
    }
}

/// Say what a failed handshake means. Certificate problems need a person (not retryable);
/// a connection that broke during the handshake is a network problem (retryable).
pub(super) fn handshake_error(server: &str, host: &str, e: io::Error) -> ImapError {
    use rustls::CertificateError as C;
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return ImapError::Connect {
            server: server.to_string(),
            source: e,
        };
    };
    let reason = match tls {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => format!(
            "TLS certificate of {server} not trusted: it was not issued by a CA this machine \
             trusts ({tls}) — set ca_file for a private CA, or install the CA in the system's \
             trust store"
        ),
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => {
            format!(
                "TLS certificate of {server} is not valid for the name {host:?} ({tls}) — \
                 set host to a name the certificate lists"
            )
        }
        rustls::Error::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => format!(
            "TLS certificate of {server} is outside its validity period ({tls}) — the server's \
             certificate must be renewed, or this machine's clock is wrong"
        ),
        other => {
            format!("TLS handshake with {server} failed: {other} — check the server's TLS setup")
        }
    };
    ImapError::Tls {
        server: server.to_string(),
        reason,
    }
}
