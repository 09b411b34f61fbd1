//! What a revocation checker needs to know about a certificate: who it is (issuer + serial,
//! RFC 5280), until when it matters (notAfter), whether it is a precertificate, and where to
//! ask (AIA OCSP and caIssuers, CRL distribution points).
//!
//! The description itself is `extract::cert`'s (the same parse a reported certificate gets);
//! this adds only the URLs and the identity.

use crate::domain::model::CertificateRef;
use crate::reading::extract::{cert, pem};
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

const AD_OCSP: &str = "1.3.6.1.5.5.7.48.1";
const AD_CA_ISSUERS: &str = "1.3.6.1.5.5.7.48.2";

/// A certificate's identity: its issuer's name (as the SHA-256 of its DER, exact where a
/// printed name is not) and its serial. A precertificate and its final certificate share it,
/// so they are one certificate with one revocation clock.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CertIdentity {
    /// Lowercase hex SHA-256 of the issuer Name's DER.
    pub issuer_name_sha256: String,
    /// Lowercase hex of the serial, no sign byte (as `CertificateRef::serial`).
    pub serial: String,
}

impl std::fmt::Display for CertIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "issuer:{}/serial:{}",
            self.issuer_name_sha256, self.serial
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    pub identity: CertIdentity,
    /// Everything `extract::cert` knows (issuer, notAfter, precertificate, SHA-256, …).
    pub certificate: CertificateRef,
    /// The serial's bytes, as [`super::check_crl`] takes them.
    pub serial: Vec<u8>,
    pub ocsp_urls: Vec<String>,
    pub ca_issuers_urls: Vec<String>,
    pub crl_urls: Vec<String>,
    /// The certificate's DER (decoded from PEM when PEM was given), for the OCSP request.
    pub der: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactsError {
    #[error("no certificate found: give one DER certificate or a PEM CERTIFICATE block")]
    NotACertificate,
}

/// The facts of the certificate in `input`: DER, or text holding a PEM `CERTIFICATE` block
/// (the first is taken).
pub fn certificate_facts(input: &[u8]) -> Result<CertFacts, FactsError> {
    let der = match std::str::from_utf8(input) {
        Ok(text) if text.contains("-----BEGIN") => pem::blocks(text)
            .into_iter()
            .filter(|b| b.label.ends_with("CERTIFICATE"))
            .find_map(|b| b.der)
            .ok_or(FactsError::NotACertificate)?,
        _ => input.to_vec(),
    };
    let (certificate, trailing) = cert::parse_prefix(&der).ok_or(FactsError::NotACertificate)?;
    let der = der[..der.len() - trailing].to_vec();
    let (_, parsed) = X509Certificate::from_der(&der).map_err(|_| FactsError::NotACertificate)?;
    let serial = super::serial_magnitude(parsed.raw_serial()).to_vec();
    let identity = CertIdentity {
        issuer_name_sha256: crate::reading::extract::key::sha256_hex(parsed.issuer().as_raw()),
        serial: hex::encode(&serial),
    };
    let (mut ocsp_urls, mut ca_issuers_urls, mut crl_urls) = (Vec::new(), Vec::new(), Vec::new());
    for ext in parsed.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::AuthorityInfoAccess(aia) => {
                for ad in &aia.accessdescs {
                    let GeneralName::URI(uri) = ad.access_location else {
                        continue;
                    };
                    match ad.access_method.to_id_string().as_str() {
                        AD_OCSP => ocsp_urls.push(uri.to_string()),
                        AD_CA_ISSUERS => ca_issuers_urls.push(uri.to_string()),
                        _ => {}
                    }
                }
            }
            ParsedExtension::CRLDistributionPoints(dps) => {
                for dp in &dps.points {
                    if let Some(DistributionPointName::FullName(names)) = &dp.distribution_point {
                        crl_urls.extend(names.iter().filter_map(|n| match n {
                            GeneralName::URI(uri) => Some(uri.to_string()),
                            _ => None,
                        }));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(CertFacts {
        identity,
        certificate,
        serial,
        ocsp_urls,
        ca_issuers_urls,
        crl_urls,
        der,
    })
}
