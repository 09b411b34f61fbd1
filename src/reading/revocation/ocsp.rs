//! OCSP (RFC 6960): the request a responder expects, and what its answer says about one
//! certificate.
//!
//! A response is believed only when it is signed by the issuer itself or by a delegated
//! responder the issuer certified for it (id-kp-OCSPSigning, RFC 6960 §4.2.2.2), answers for
//! this very certificate (CertID), is current at `now`, and echoes our nonce if it echoes one.
//! Each way of failing is its own [`OcspError`] variant: a bad signature, a wrong responder or a
//! stale answer are things to alert on, not just "no answer".

use super::signed::{self, SigProblem};
use super::{CLOCK_SKEW, reason_name, timestamp};
use crate::domain::model::Timestamp;
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use sha1::{Digest, Sha1};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;
use x509_cert::ext::pkix::ExtendedKeyUsage;
use x509_ocsp::builder::OcspRequestBuilder;
use x509_ocsp::ext::Nonce;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspResponse, OcspResponseStatus, Request, ResponderId,
};

const ID_PKIX_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const ID_PKIX_OCSP_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
const ID_KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
const ID_CE_EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const SHA1_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");

/// RFC 5019 §5: a request whose encoding is shorter than this goes by GET (cacheable by the
/// CA's CDN), a longer one by POST.
pub const GET_LIMIT: usize = 255;

/// The DER OCSPRequest for `cert_der` issued by `issuer_der`: one request, a SHA-1 CertID
/// (what responders index by; RFC 5019 requires them to accept it), unsigned, with a nonce
/// extension when `nonce` is given (many CDN-fronted responders ignore nonces: send none to
/// them and rely on thisUpdate instead).
pub fn ocsp_request(
    cert_der: &[u8],
    issuer_der: &[u8],
    nonce: Option<&[u8]>,
) -> Result<Vec<u8>, OcspError> {
    let cert = certificate(cert_der, "certificate")?;
    let issuer = certificate(issuer_der, "issuer")?;
    let request = Request::from_cert::<Sha1>(&issuer, &cert)
        .map_err(|e| OcspError::BadInput(format!("CertID: {e}")))?;
    let mut builder = OcspRequestBuilder::default().with_request(request);
    if let Some(nonce) = nonce {
        let nonce = Nonce::new(nonce).map_err(|e| OcspError::BadInput(format!("nonce: {e}")))?;
        builder = builder
            .with_extension(nonce)
            .map_err(|e| OcspError::BadInput(format!("nonce: {e}")))?;
    }
    builder
        .build()
        .to_der()
        .map_err(|e| OcspError::BadInput(format!("encoding the request: {e}")))
}

/// The GET form of `request_der` at `responder_url` (RFC 6960 Appendix A.1: the URL-encoded
/// base64 of the DER appended as a path segment), or `None` when that is [`GET_LIMIT`] bytes
/// or more and the request must be POSTed (`application/ocsp-request`).
pub fn ocsp_get_url(responder_url: &str, request_der: &[u8]) -> Option<String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(request_der);
    let mut path = String::with_capacity(b64.len() + 16);
    for c in b64.chars() {
        match c {
            '+' => path.push_str("%2B"),
            '/' => path.push_str("%2F"),
            '=' => path.push_str("%3D"),
            c => path.push(c),
        }
    }
    if path.len() >= GET_LIMIT {
        return None;
    }
    let sep = if responder_url.ends_with('/') {
        ""
    } else {
        "/"
    };
    Some(format!("{responder_url}{sep}{path}"))
}

/// What a verified response says about the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspVerdict {
    pub status: OcspStatus,
    pub this_update: Timestamp,
    /// `None`: the responder promises nothing about when it will know more.
    pub next_update: Option<Timestamp>,
    pub produced_at: Timestamp,
    /// Signed by a delegated responder rather than the issuer's own key.
    pub delegated: bool,
}

/// The certificate's status as the responder states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OcspStatus {
    Good,
    Revoked {
        /// The revocation time the CA published: the stop time of a verified clock.
        revocation_time: Timestamp,
        /// The RFC 5280 CRLReason name (`keyCompromise`), when the responder gives one.
        reason: Option<&'static str>,
    },
    /// The responder does not know the certificate (not issued, or not yet in its database).
    Unknown,
}

/// A non-successful OCSPResponseStatus (RFC 6960 §4.2.1): the responder answered, but not
/// about the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MalformedRequest,
    InternalError,
    TryLater,
    SigRequired,
    Unauthorized,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::MalformedRequest => "malformedRequest",
            Refusal::InternalError => "internalError",
            Refusal::TryLater => "tryLater",
            Refusal::SigRequired => "sigRequired",
            Refusal::Unauthorized => "unauthorized",
        })
    }
}

/// Why the key that signed a response is not one the issuer authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponderProblem {
    /// The responderID names neither the issuer nor a certificate in the response.
    NotFound,
    /// The responder certificate was not signed by the issuer's key (or names another issuer).
    NotIssuedByIssuer,
    /// The responder certificate lacks extendedKeyUsage id-kp-OCSPSigning.
    NoOcspSigning,
    /// The responder certificate is outside its validity at `now`.
    CertificateExpired,
}

impl std::fmt::Display for ResponderProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResponderProblem::NotFound => {
                "the responder ID names neither the issuer nor a certificate in the response"
            }
            ResponderProblem::NotIssuedByIssuer => {
                "the responder certificate is not signed by the issuer"
            }
            ResponderProblem::NoOcspSigning => "the responder certificate lacks id-kp-OCSPSigning",
            ResponderProblem::CertificateExpired => {
                "the responder certificate is not valid at this time"
            }
        })
    }
}

/// Why a response was not believed. Each is distinct so the caller can alert on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OcspError {
    #[error("the certificate or issuer given is not usable ({0}); pass DER certificates")]
    BadInput(String),
    #[error("the OCSP response is not valid DER ({0}); keep the bytes and ask the CA")]
    Malformed(String),
    #[error("the OCSP responder refused with responseStatus {0}; try again later")]
    Refused(Refusal),
    #[error("the OCSP response type is {0}, not id-pkix-ocsp-basic")]
    UnsupportedResponseType(String),
    #[error("the OCSP response is signed with {0}, which cprwatch does not check")]
    UnsupportedAlgorithm(String),
    #[error("the OCSP response comes from a responder the issuer did not authorise: {0}")]
    WrongResponder(ResponderProblem),
    #[error("the OCSP response's signature does not verify with the responder's key")]
    BadSignature,
    #[error("the OCSP response does not answer for this certificate (no matching CertID)")]
    CertIdMismatch,
    #[error("the OCSP response echoes a nonce other than the one sent (replayed answer?)")]
    NonceMismatch,
    #[error("the OCSP response's thisUpdate {this_update} is in the future; check clocks")]
    NotYetValid { this_update: Timestamp },
    #[error("the OCSP response expired at its nextUpdate {next_update}; fetch a fresh one")]
    Expired { next_update: Timestamp },
}

fn certificate(der: &[u8], what: &str) -> Result<Certificate, OcspError> {
    Certificate::from_der(der).map_err(|e| OcspError::BadInput(format!("{what}: {e}")))
}

/// Judge `response_der` for `cert_der` issued by `issuer_der` at `now`. `sent_nonce` is the
/// nonce of the request this answers, if it had one.
pub fn check_ocsp(
    response_der: &[u8],
    cert_der: &[u8],
    issuer_der: &[u8],
    sent_nonce: Option<&[u8]>,
    now: Timestamp,
) -> Result<OcspVerdict, OcspError> {
    let cert = certificate(cert_der, "certificate")?;
    let issuer = certificate(issuer_der, "issuer")?;
    let malformed = |e: der::Error| OcspError::Malformed(e.to_string());

    let response = OcspResponse::from_der(response_der).map_err(malformed)?;
    let refusal = match response.response_status {
        OcspResponseStatus::Successful => None,
        OcspResponseStatus::MalformedRequest => Some(Refusal::MalformedRequest),
        OcspResponseStatus::InternalError => Some(Refusal::InternalError),
        OcspResponseStatus::TryLater => Some(Refusal::TryLater),
        OcspResponseStatus::SigRequired => Some(Refusal::SigRequired),
        OcspResponseStatus::Unauthorized => Some(Refusal::Unauthorized),
    };
    if let Some(refusal) = refusal {
        return Err(OcspError::Refused(refusal));
    }
    let bytes = response
        .response_bytes
        .ok_or_else(|| OcspError::Malformed("successful but no responseBytes".into()))?;
    if bytes.response_type != ID_PKIX_OCSP_BASIC {
        return Err(OcspError::UnsupportedResponseType(
            bytes.response_type.to_string(),
        ));
    }
    let basic_der = bytes.response.as_bytes();
    let basic = BasicOcspResponse::from_der(basic_der).map_err(malformed)?;
    let signed = signed::split(basic_der).map_err(malformed)?;

    // Who signed: the issuer, or a responder certificate in the response that it names.
    let issuer_spki = &issuer.tbs_certificate.subject_public_key_info;
    let responder_id = &basic.tbs_response_data.responder_id;
    let (key, delegated) = if names(responder_id, &issuer) {
        (issuer_spki.clone(), false)
    } else {
        let responder = basic
            .certs
            .iter()
            .flatten()
            .find(|c| names(responder_id, c))
            .ok_or(OcspError::WrongResponder(ResponderProblem::NotFound))?;
        authorise(responder, &issuer, now)?;
        (
            responder.tbs_certificate.subject_public_key_info.clone(),
            true,
        )
    };
    match signed::verify(&signed, &key) {
        Ok(()) => {}
        Err(SigProblem::Unsupported(alg)) => return Err(OcspError::UnsupportedAlgorithm(alg)),
        Err(SigProblem::BadKey | SigProblem::Mismatch) => return Err(OcspError::BadSignature),
    }

    let data = &basic.tbs_response_data;
    let single = data
        .responses
        .iter()
        .find(|s| cert_id_matches(&s.cert_id, &cert, &issuer))
        .ok_or(OcspError::CertIdMismatch)?;

    if let Some(sent) = sent_nonce {
        let echoed = data
            .response_extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == ID_PKIX_OCSP_NONCE);
        if let Some(echoed) = echoed {
            let raw = echoed.extn_value.as_bytes();
            // RFC 8954 wraps the nonce in an OCTET STRING; some older responders did not.
            let inner = Nonce::from_der(raw).ok();
            let same = raw == sent || inner.is_some_and(|n| n.0.as_bytes() == sent);
            if !same {
                return Err(OcspError::NonceMismatch);
            }
        }
    }

    let this_update = timestamp(single.this_update.0.to_unix_duration());
    let next_update = single
        .next_update
        .map(|t| timestamp(t.0.to_unix_duration()));
    if this_update > now + CLOCK_SKEW {
        return Err(OcspError::NotYetValid { this_update });
    }
    if let Some(next_update) = next_update
        && now >= next_update
    {
        return Err(OcspError::Expired { next_update });
    }

    let status = match single.cert_status {
        CertStatus::Good(_) => OcspStatus::Good,
        CertStatus::Unknown(_) => OcspStatus::Unknown,
        CertStatus::Revoked(info) => OcspStatus::Revoked {
            revocation_time: timestamp(info.revocation_time.0.to_unix_duration()),
            reason: info.revocation_reason.map(reason_name),
        },
    };
    Ok(OcspVerdict {
        status,
        this_update,
        next_update,
        produced_at: timestamp(data.produced_at.0.to_unix_duration()),
        delegated,
    })
}

/// Does the responderID name this certificate: by subject, or by the SHA-1 of its public key
/// bits (RFC 6960 §4.2.1 `KeyHash`)?
fn names(id: &ResponderId, cert: &Certificate) -> bool {
    match id {
        ResponderId::ByName(name) => *name == cert.tbs_certificate.subject,
        ResponderId::ByKey(hash) => {
            hash.as_bytes() == key_hash_sha1(&cert.tbs_certificate.subject_public_key_info)
        }
    }
}

fn key_hash_sha1(spki: &SubjectPublicKeyInfoOwned) -> [u8; 20] {
    Sha1::digest(spki.subject_public_key.raw_bytes()).into()
}

/// A delegated responder must be certified by the issuer for OCSP signing (RFC 6960
/// §4.2.2.2) and valid now; otherwise anyone holding any certificate could answer.
fn authorise(
    responder: &Certificate,
    issuer: &Certificate,
    now: Timestamp,
) -> Result<(), OcspError> {
    let wrong = OcspError::WrongResponder;
    if responder.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return Err(wrong(ResponderProblem::NotIssuedByIssuer));
    }
    let der = responder
        .to_der()
        .map_err(|e| OcspError::Malformed(e.to_string()))?;
    let signed = signed::split(&der).map_err(|e| OcspError::Malformed(e.to_string()))?;
    if signed::verify(&signed, &issuer.tbs_certificate.subject_public_key_info).is_err() {
        return Err(wrong(ResponderProblem::NotIssuedByIssuer));
    }
    let eku = responder
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == ID_CE_EXT_KEY_USAGE)
        .and_then(|e| ExtendedKeyUsage::from_der(e.extn_value.as_bytes()).ok());
    if !eku.is_some_and(|eku| eku.0.contains(&ID_KP_OCSP_SIGNING)) {
        return Err(wrong(ResponderProblem::NoOcspSigning));
    }
    let validity = &responder.tbs_certificate.validity;
    let not_before = timestamp(validity.not_before.to_unix_duration());
    let not_after = timestamp(validity.not_after.to_unix_duration());
    if now + CLOCK_SKEW < not_before || now > not_after {
        return Err(wrong(ResponderProblem::CertificateExpired));
    }
    Ok(())
}

/// Does `id` name `cert` of `issuer`? Compared under the hash the responder chose (SHA-1 as
/// we ask, or SHA-256 from responders that answer in their own), serials by magnitude.
fn cert_id_matches(id: &CertId, cert: &Certificate, issuer: &Certificate) -> bool {
    let expected = if id.hash_algorithm.oid == SHA1_OID {
        CertId::from_cert::<Sha1>(issuer, cert)
    } else if id.hash_algorithm.oid == ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1") {
        CertId::from_cert::<sha2::Sha256>(issuer, cert)
    } else {
        return false;
    };
    let Ok(expected) = expected else {
        return false;
    };
    id.issuer_name_hash == expected.issuer_name_hash
        && id.issuer_key_hash == expected.issuer_key_hash
        && super::serial_magnitude(id.serial_number.as_bytes())
            == super::serial_magnitude(expected.serial_number.as_bytes())
}
