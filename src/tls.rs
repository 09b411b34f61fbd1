//! The one TLS client setup of cprwatch's own connections (IMAP, and the revocation fetches of
//! [`crate::fetch`]): rustls with the ring provider, the system's roots plus an optional extra
//! CA file, safe default protocol versions, no client certificate.
//!
//! The provider is set explicitly on every config (`builder_with_provider`), never taken from a
//! process default, so no other crate's choice can change it; and there is no way to turn
//! verification off. (SMTP goes through lettre, built with its `ring` feature: the same
//! provider, set up by lettre.)

use rustls::pki_types::{CertificateDer, pem::PemObject};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a TLS client configuration could not be made. Each message names the file and says what
/// it must contain.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsSetupError {
    #[error(
        "cannot read ca_file {}: {source}. Give the path of a PEM file with the CA \
         certificate(s) that signed the server's certificate.",
        path.display()
    )]
    Unreadable {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error(
        "ca_file {} is not valid PEM: {source}. It must contain `-----BEGIN \
         CERTIFICATE-----` blocks.",
        path.display()
    )]
    NotPem {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error(
        "ca_file {} contains no certificate. It must contain `-----BEGIN \
         CERTIFICATE-----` blocks.",
        path.display()
    )]
    Empty { path: PathBuf },
    #[error(
        "ca_file {} holds a certificate that cannot be a trust anchor: {source}",
        path.display()
    )]
    BadAnchor {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("no usable TLS protocol version ({0}); this is a build problem")]
    Protocol(rustls::Error),
}

/// The crypto provider of every TLS connection cprwatch makes itself: ring.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The trust anchors: the system's roots plus every certificate in `ca_file`.
///
/// Unreadable system certificates are not fatal: a private CA in `ca_file` may be all that is
/// needed, and an untrusted server is refused at the handshake with a clear message anyway.
pub(crate) fn root_store(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let _ = roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|source| TlsSetupError::Unreadable {
                path: path.to_path_buf(),
                source,
            })?
            .collect::<Result<_, _>>()
            .map_err(|source| TlsSetupError::NotPem {
                path: path.to_path_buf(),
                source,
            })?;
        if certs.is_empty() {
            return Err(TlsSetupError::Empty {
                path: path.to_path_buf(),
            });
        }
        for cert in certs {
            roots.add(cert).map_err(|source| TlsSetupError::BadAnchor {
                path: path.to_path_buf(),
                source,
            })?;
        }
    }
    Ok(roots)
}

/// A client configuration: [`provider`], safe default protocol versions, [`root_store`] of
/// `ca_file`, no client authentication. Callers set ALPN themselves when they need it.
pub(crate) fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, TlsSetupError> {
    let roots = root_store(ca_file)?;
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Protocol)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_file_names_the_file() {
        let err = client_config(Some(Path::new("/nonexistent/ca.pem"))).expect_err("must fail");
        assert!(matches!(err, TlsSetupError::Unreadable { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").expect("write");
        let err = client_config(Some(&path)).expect_err("must fail");
        assert!(matches!(err, TlsSetupError::Empty { .. }), "{err:?}");
        assert!(err.to_string().contains("no certificate"), "{err}");
    }
}
