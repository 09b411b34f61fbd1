//! Revocation verified, not claimed (issue 16): OCSP (RFC 6960) and CRL (RFC 5280) answers
//! judged for one certificate, and the facts about a certificate a checker needs.
//!
//! Pure, like the rest of `reading/`: bytes and `now` in, a verdict or a named error out. No
//! socket, no clock: the scheduler fetches, this decides what the fetched bytes say, so every
//! observation can be replayed for an auditor. The ASN.1 is `x509-cert`/`x509-ocsp` (one
//! RustCrypto generation with `der` 0.7), never hand-rolled; signatures are checked with
//! `rsa`, `p256` and `p384` over the bytes as received ([`signed`]).
//!
//! The API is `pub` because the service and the end-to-end tests in `tests/` call it.

pub mod crl;
pub mod facts;
pub mod ocsp;
pub(crate) mod signed;
#[cfg(test)]
mod tests;

pub use crl::{CrlError, CrlStatus, CrlVerdict, check_crl};
pub use facts::{CertFacts, CertIdentity, FactsError, certificate_facts};
pub use ocsp::{
    OcspError, OcspStatus, OcspVerdict, Refusal, ResponderProblem, check_ocsp, ocsp_get_url,
    ocsp_request,
};

use crate::domain::model::Timestamp;
use time::OffsetDateTime;
use x509_cert::ext::pkix::CrlReason;

/// How far a responder's clock may run ahead of ours before its thisUpdate counts as "in the
/// future" (RFC 5019 §4 leaves it to the client; five minutes absorbs ordinary drift).
pub const CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// The RFC 5280 name of a CRLReason, as CAs and crt.sh write it, so a case can compare it with
/// the reason its BR item expects (`keyCompromise` for a key compromise).
pub(crate) fn reason_name(reason: CrlReason) -> &'static str {
    match reason {
        CrlReason::Unspecified => "unspecified",
        CrlReason::KeyCompromise => "keyCompromise",
        CrlReason::CaCompromise => "cACompromise",
        CrlReason::AffiliationChanged => "affiliationChanged",
        CrlReason::Superseded => "superseded",
        CrlReason::CessationOfOperation => "cessationOfOperation",
        CrlReason::CertificateHold => "certificateHold",
        CrlReason::RemoveFromCRL => "removeFromCRL",
        CrlReason::PrivilegeWithdrawn => "privilegeWithdrawn",
        CrlReason::AaCompromise => "aACompromise",
    }
}

/// A DER time as our timestamp (UTC, whole seconds). Times past what `time` holds are clamped
/// to its largest value, which any `now` precedes.
pub(crate) fn timestamp(since_epoch: std::time::Duration) -> Timestamp {
    let secs = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
    OffsetDateTime::from_unix_timestamp(secs)
        .unwrap_or_else(|_| time::PrimitiveDateTime::MAX.assume_utc())
}

/// A serial number's magnitude: the DER sign byte and any leading zeros dropped, so `00 F1`
/// (as encoded) and `F1` (as CAs write it) are one serial.
pub(crate) fn serial_magnitude(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}
