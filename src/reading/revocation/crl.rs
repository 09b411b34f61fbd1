//! CRLs (RFC 5280 §5): is this serial on the issuer's list, and can the list be believed now?

use super::signed::{self, SigProblem};
use super::{CLOCK_SKEW, reason_name, serial_magnitude, timestamp};
use crate::domain::model::Timestamp;
use der::Decode;
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::CrlReason;

/// What a verified CRL says about one serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlVerdict {
    pub status: CrlStatus,
    pub this_update: Timestamp,
    pub next_update: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrlStatus {
    NotListed,
    Revoked {
        /// The entry's revocationDate: the time the CA published as the revocation.
        revocation_time: Timestamp,
        /// The entry's CRLReason name (`keyCompromise`), when it has one.
        reason: Option<&'static str>,
    },
}

/// Why a CRL was not believed. Each is distinct so the caller can alert on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrlError {
    #[error("the issuer given is not a DER certificate ({0})")]
    BadInput(String),
    #[error("the CRL is not valid DER ({0}); keep the bytes and ask the CA")]
    Malformed(String),
    #[error("the CRL is issued by another name than the certificate's issuer")]
    IssuerMismatch,
    #[error("the CRL is signed with {0}, which cprwatch does not check")]
    UnsupportedAlgorithm(String),
    #[error("the CRL's signature does not verify with the issuer's key")]
    BadSignature,
    #[error("the CRL's thisUpdate {this_update} is in the future; check clocks")]
    NotYetValid { this_update: Timestamp },
    /// Past nextUpdate the CA owed a newer CRL (BR 4.9.7): neither "not listed" nor a missing
    /// entry can be trusted, and the CA publishing late is itself worth an alert.
    #[error("the CRL is stale: its nextUpdate {next_update} has passed; fetch a fresh one")]
    Stale { next_update: Timestamp },
}

/// Judge `crl_der` (a full CRL of `issuer_der`) for the certificate with serial `serial`
/// (big-endian bytes; a DER sign byte is ignored) at `now`.
pub fn check_crl(
    crl_der: &[u8],
    serial: &[u8],
    issuer_der: &[u8],
    now: Timestamp,
) -> Result<CrlVerdict, CrlError> {
    let issuer =
        Certificate::from_der(issuer_der).map_err(|e| CrlError::BadInput(e.to_string()))?;
    let malformed = |e: der::Error| CrlError::Malformed(e.to_string());
    let crl = CertificateList::from_der(crl_der).map_err(malformed)?;
    let tbs = &crl.tbs_cert_list;
    if tbs.issuer != issuer.tbs_certificate.subject {
        return Err(CrlError::IssuerMismatch);
    }
    let signed = signed::split(crl_der).map_err(malformed)?;
    match signed::verify(&signed, &issuer.tbs_certificate.subject_public_key_info) {
        Ok(()) => {}
        Err(SigProblem::Unsupported(alg)) => return Err(CrlError::UnsupportedAlgorithm(alg)),
        Err(SigProblem::BadKey | SigProblem::Mismatch) => return Err(CrlError::BadSignature),
    }
    let this_update = timestamp(tbs.this_update.to_unix_duration());
    let next_update = tbs.next_update.map(|t| timestamp(t.to_unix_duration()));
    if this_update > now + CLOCK_SKEW {
        return Err(CrlError::NotYetValid { this_update });
    }
    if let Some(next_update) = next_update
        && now >= next_update
    {
        return Err(CrlError::Stale { next_update });
    }
    let wanted = serial_magnitude(serial);
    let entry = tbs
        .revoked_certificates
        .iter()
        .flatten()
        .find(|rc| serial_magnitude(rc.serial_number.as_bytes()) == wanted);
    let status = match entry {
        None => CrlStatus::NotListed,
        Some(rc) => CrlStatus::Revoked {
            revocation_time: timestamp(rc.revocation_date.to_unix_duration()),
            reason: rc
                .crl_entry_extensions
                .iter()
                .flatten()
                .find(|e| e.extn_id == <CrlReason as der::oid::AssociatedOid>::OID)
                .and_then(|e| CrlReason::from_der(e.extn_value.as_bytes()).ok())
                .map(reason_name),
        },
    };
    Ok(CrlVerdict {
        status,
        this_update,
        next_update,
    })
}
