//! Over the committed fixtures of `fixtures/revocation/make.sh`: a test CA and real answers by
//! `openssl ocsp` and `openssl ca -gencrl`. They were all made at one moment, the root's
//! notBefore (`t0`), so every `now` here is relative to it.

use super::ocsp::GET_LIMIT;
use super::signed;
use super::*;
use der::{Decode, Encode};
use time::Duration;
use x509_cert::Certificate;
use x509_ocsp::{OcspRequest, OcspResponse, OcspResponseStatus, ResponseBytes};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../../fixtures/revocation/", $name)).as_slice()
    };
}

const ROOT: &[u8] = fixture!("root.der");
const INTER: &[u8] = fixture!("intermediate.der");
const LOOKALIKE: &[u8] = fixture!("lookalike.der");
const GOOD: &[u8] = fixture!("leaf-good.der");
const REVOKED: &[u8] = fixture!("leaf-revoked.der");
const UNKNOWN: &[u8] = fixture!("leaf-unknown.der");
const PRECERT: &[u8] = fixture!("leaf-precert.der");

/// The moment the fixtures were made.
fn t0() -> Timestamp {
    let root = Certificate::from_der(ROOT).expect("root parses");
    timestamp(root.tbs_certificate.validity.not_before.to_unix_duration())
}

fn now() -> Timestamp {
    t0() + Duration::days(1)
}

fn ocsp(response: &[u8], cert: &[u8]) -> Result<OcspVerdict, OcspError> {
    check_ocsp(response, cert, INTER, None, now())
}

fn serial_of(cert: &[u8]) -> Vec<u8> {
    certificate_facts(cert).expect("facts").serial
}

// --- OCSP requests ---

/// Byte for byte what `openssl ocsp -issuer … -cert … -no_nonce -reqout` writes.
#[test]
fn request_is_openssls() {
    let ours = ocsp_request(GOOD, INTER, None).expect("request");
    assert_eq!(ours, fixture!("req-good.der"));
    assert_ne!(ocsp_request(REVOKED, INTER, None).expect("request"), ours);
}

#[test]
fn request_carries_the_nonce() {
    let nonce = [7u8; 16];
    let der = ocsp_request(GOOD, INTER, Some(&nonce)).expect("request");
    let req = OcspRequest::from_der(&der).expect("decodes");
    let ext = req.tbs_request.request_extensions.expect("extensions");
    let n = x509_ocsp::ext::Nonce::from_der(ext[0].extn_value.as_bytes()).expect("nonce");
    assert_eq!(n.0.as_bytes(), nonce);
}

#[test]
fn get_form_when_small_post_when_large() {
    let der = ocsp_request(GOOD, INTER, None).expect("request");
    let url = ocsp_get_url("http://ocsp.example-ca.test", &der).expect("small: GET");
    let path = url
        .strip_prefix("http://ocsp.example-ca.test/")
        .expect("one slash between");
    assert!(!path.contains('/') && !path.contains('+') && !path.contains('='));
    let b64 = path
        .replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=");
    use base64::Engine;
    let back = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    assert_eq!(back, der);
    assert_eq!(
        ocsp_get_url("http://ocsp.example-ca.test/", &der),
        Some(url)
    );
    assert_eq!(ocsp_get_url("http://x/", &[0u8; GET_LIMIT]), None);
}

// --- OCSP verdicts ---

#[test]
fn ocsp_good() {
    let v = ocsp(fixture!("ocsp-good.der"), GOOD).expect("verified");
    assert_eq!(v.status, OcspStatus::Good);
    assert!(!v.delegated);
    assert!((v.this_update - t0()).abs() < Duration::minutes(1));
    assert!(v.next_update.expect("nextUpdate") > t0() + Duration::days(36_000));
}

#[test]
fn ocsp_revoked_for_key_compromise() {
    let v = ocsp(fixture!("ocsp-revoked.der"), REVOKED).expect("verified");
    let OcspStatus::Revoked {
        revocation_time,
        reason,
    } = v.status
    else {
        panic!("not revoked: {v:?}");
    };
    assert_eq!(reason, Some("keyCompromise"));
    assert!((revocation_time - t0()).abs() < Duration::minutes(1));
}

#[test]
fn ocsp_unknown_without_next_update() {
    let v = ocsp(fixture!("ocsp-unknown.der"), UNKNOWN).expect("verified");
    assert_eq!(v.status, OcspStatus::Unknown);
    assert_eq!(v.next_update, None);
}

#[test]
fn ocsp_delegated_responder() {
    let v = ocsp(fixture!("ocsp-delegated.der"), GOOD).expect("verified");
    assert_eq!(v.status, OcspStatus::Good);
    assert!(v.delegated);
}

#[test]
fn ocsp_bad_signature() {
    // Names the intermediate as responder, signed by the look-alike's key.
    assert_eq!(
        ocsp(fixture!("ocsp-lookalike.der"), GOOD),
        Err(OcspError::BadSignature)
    );
}

#[test]
fn ocsp_sha1_signature_is_not_checked() {
    assert_eq!(
        ocsp(fixture!("ocsp-sha1.der"), GOOD),
        Err(OcspError::UnsupportedAlgorithm(
            "1.2.840.113549.1.1.5".into()
        ))
    );
}

#[test]
fn ocsp_responder_without_ocsp_signing() {
    assert_eq!(
        ocsp(fixture!("ocsp-no-eku.der"), GOOD),
        Err(OcspError::WrongResponder(ResponderProblem::NoOcspSigning))
    );
}

#[test]
fn ocsp_responder_not_issued_by_the_issuer() {
    assert_eq!(
        ocsp(fixture!("ocsp-rogue-delegated.der"), GOOD),
        Err(OcspError::WrongResponder(
            ResponderProblem::NotIssuedByIssuer
        ))
    );
}

#[test]
fn ocsp_responder_not_found() {
    // The intermediate's own answer, judged as if the root issued the leaf.
    assert_eq!(
        check_ocsp(fixture!("ocsp-good.der"), GOOD, ROOT, None, now()),
        Err(OcspError::WrongResponder(ResponderProblem::NotFound))
    );
}

#[test]
fn ocsp_responder_certificate_expired() {
    let later = t0() + Duration::days(36_600);
    assert_eq!(
        check_ocsp(fixture!("ocsp-delegated.der"), GOOD, INTER, None, later),
        Err(OcspError::WrongResponder(
            ResponderProblem::CertificateExpired
        ))
    );
}

#[test]
fn ocsp_cert_id_mismatch() {
    assert_eq!(
        ocsp(fixture!("ocsp-good.der"), REVOKED),
        Err(OcspError::CertIdMismatch)
    );
}

#[test]
fn ocsp_expired_after_next_update() {
    let one_day = fixture!("ocsp-good-1day.der");
    let soon = t0() + Duration::hours(1);
    let ok = check_ocsp(one_day, GOOD, INTER, None, soon).expect("current an hour on");
    let next_update = ok.next_update.expect("nextUpdate");
    assert_eq!(
        check_ocsp(one_day, GOOD, INTER, None, t0() + Duration::days(2)),
        Err(OcspError::Expired { next_update })
    );
    assert!(check_ocsp(one_day, GOOD, INTER, None, next_update).is_err());
}

#[test]
fn ocsp_not_yet_valid() {
    let before = t0() - Duration::hours(1);
    let r = check_ocsp(fixture!("ocsp-good.der"), GOOD, INTER, None, before);
    assert!(matches!(r, Err(OcspError::NotYetValid { .. })), "{r:?}");
    // Within the allowed skew it is fine.
    let skewed = t0() - Duration::minutes(4);
    assert!(check_ocsp(fixture!("ocsp-good.der"), GOOD, INTER, None, skewed).is_ok());
}

/// The nonce of openssl's request that `ocsp-good-nonce.der` answers.
fn sent_nonce() -> Vec<u8> {
    let req = OcspRequest::from_der(fixture!("req-good-nonce.der")).expect("request");
    let ext = req.tbs_request.request_extensions.expect("extensions");
    let n = x509_ocsp::ext::Nonce::from_der(ext[0].extn_value.as_bytes()).expect("nonce");
    n.0.as_bytes().to_vec()
}

#[test]
fn ocsp_nonce_echoed() {
    let sent = sent_nonce();
    let response = fixture!("ocsp-good-nonce.der");
    let v = check_ocsp(response, GOOD, INTER, Some(&sent), now()).expect("same nonce");
    assert_eq!(v.status, OcspStatus::Good);
    assert_eq!(
        check_ocsp(response, GOOD, INTER, Some(b"another nonce"), now()),
        Err(OcspError::NonceMismatch)
    );
    // A responder that echoes none (a cached answer) is judged by its times alone.
    let plain = fixture!("ocsp-good.der");
    assert!(check_ocsp(plain, GOOD, INTER, Some(&sent), now()).is_ok());
}

#[test]
fn ocsp_refusals() {
    let try_later = OcspResponse::try_later().to_der().expect("encodes");
    assert_eq!(
        ocsp(&try_later, GOOD),
        Err(OcspError::Refused(Refusal::TryLater))
    );
    let unauthorized = OcspResponse::unauthorized().to_der().expect("encodes");
    assert_eq!(
        ocsp(&unauthorized, GOOD),
        Err(OcspError::Refused(Refusal::Unauthorized))
    );
}

#[test]
fn ocsp_other_response_type() {
    let response = OcspResponse {
        response_status: OcspResponseStatus::Successful,
        response_bytes: Some(ResponseBytes {
            response_type: der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.99"),
            response: der::asn1::OctetString::new(vec![0x05, 0x00]).expect("octets"),
        }),
    };
    let der = response.to_der().expect("encodes");
    assert_eq!(
        ocsp(&der, GOOD),
        Err(OcspError::UnsupportedResponseType(
            "1.3.6.1.5.5.7.48.1.99".into()
        ))
    );
}

#[test]
fn ocsp_malformed_and_bad_input() {
    assert!(matches!(
        ocsp(b"\x30\x03\x0a\x01\x00garbage", GOOD),
        Err(OcspError::Malformed(_))
    ));
    assert!(matches!(
        check_ocsp(fixture!("ocsp-good.der"), b"not a cert", INTER, None, now()),
        Err(OcspError::BadInput(_))
    ));
}

// --- CRLs ---

fn crl(der: &[u8], cert: &[u8], at: Timestamp) -> Result<CrlVerdict, CrlError> {
    check_crl(der, &serial_of(cert), INTER, at)
}

#[test]
fn crl_not_listed() {
    let v = crl(fixture!("intermediate.crl"), GOOD, now()).expect("verified");
    assert_eq!(v.status, CrlStatus::NotListed);
    assert!((v.this_update - t0()).abs() < Duration::minutes(1));
}

#[test]
fn crl_revoked_for_key_compromise() {
    let v = crl(fixture!("intermediate.crl"), REVOKED, now()).expect("verified");
    let CrlStatus::Revoked {
        revocation_time,
        reason,
    } = v.status
    else {
        panic!("not listed: {v:?}");
    };
    assert_eq!(reason, Some("keyCompromise"));
    assert!((revocation_time - t0()).abs() < Duration::minutes(1));
    // A serial with a DER sign byte is the same serial.
    let mut signed_serial = vec![0];
    signed_serial.extend(serial_of(REVOKED));
    let again = check_crl(fixture!("intermediate.crl"), &signed_serial, INTER, now());
    assert_eq!(again.map(|v| v.status), Ok(v.status));
}

#[test]
fn crl_bad_signature() {
    // Same issuer name, the look-alike's key.
    assert_eq!(
        crl(fixture!("lookalike.crl"), GOOD, now()),
        Err(CrlError::BadSignature)
    );
}

#[test]
fn crl_of_another_issuer() {
    assert_eq!(
        crl(fixture!("root.crl"), GOOD, now()),
        Err(CrlError::IssuerMismatch)
    );
}

#[test]
fn crl_stale_after_next_update() {
    let hourly = fixture!("intermediate-1hour.crl");
    let fresh = crl(hourly, GOOD, t0() + Duration::minutes(30)).expect("fresh");
    let next_update = fresh.next_update.expect("nextUpdate");
    assert_eq!(
        crl(hourly, REVOKED, now()),
        Err(CrlError::Stale { next_update })
    );
}

#[test]
fn crl_not_yet_valid() {
    let r = crl(
        fixture!("intermediate.crl"),
        GOOD,
        t0() - Duration::hours(1),
    );
    assert!(matches!(r, Err(CrlError::NotYetValid { .. })), "{r:?}");
}

#[test]
fn crl_malformed() {
    assert!(matches!(
        crl(b"\x30\x00", GOOD, now()),
        Err(CrlError::Malformed(_))
    ));
}

// --- certificate facts ---

#[test]
fn facts_of_a_leaf() {
    let f = certificate_facts(GOOD).expect("facts");
    assert_eq!(f.ocsp_urls, vec!["http://ocsp.example-ca.test/"]);
    assert_eq!(
        f.ca_issuers_urls,
        vec!["http://ca.example-ca.test/intermediate.der"]
    );
    assert_eq!(
        f.crl_urls,
        vec!["http://crl.example-ca.test/intermediate.crl"]
    );
    assert_eq!(f.certificate.precertificate, Some(false));
    assert_eq!(
        f.certificate.serial.as_deref(),
        Some(f.identity.serial.as_str())
    );
    let not_after = f.certificate.not_after.expect("notAfter");
    assert!(not_after > t0() + Duration::days(36_000));
    assert_eq!(f.der, GOOD);
    let pem = certificate_facts(fixture!("leaf-good.pem")).expect("PEM");
    assert_eq!(pem, f);
}

#[test]
fn precertificate_shares_the_identity() {
    let final_cert = certificate_facts(GOOD).expect("final");
    let pre = certificate_facts(PRECERT).expect("precertificate");
    assert_eq!(pre.certificate.precertificate, Some(true));
    assert_eq!(pre.identity, final_cert.identity);
    assert_ne!(pre.certificate.sha256, final_cert.certificate.sha256);
    // Another serial of the same issuer is another certificate.
    let other = certificate_facts(REVOKED).expect("revoked");
    assert_eq!(
        other.identity.issuer_name_sha256,
        final_cert.identity.issuer_name_sha256
    );
    assert_ne!(other.identity, final_cert.identity);
}

#[test]
fn facts_of_garbage() {
    assert_eq!(
        certificate_facts(b"hello"),
        Err(FactsError::NotACertificate)
    );
    assert_eq!(
        certificate_facts(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        Err(FactsError::NotACertificate)
    );
}

// --- signatures: each key type once ---

fn spki(cert: &[u8]) -> spki::SubjectPublicKeyInfoOwned {
    Certificate::from_der(cert)
        .expect("cert")
        .tbs_certificate
        .subject_public_key_info
}

#[test]
fn signatures_rsa_p256_p384() {
    // RSA (sha256WithRSAEncryption): the root signed the intermediate.
    let inter = signed::split(INTER).expect("split");
    assert_eq!(signed::verify(&inter, &spki(ROOT)), Ok(()));
    assert!(signed::verify(&inter, &spki(LOOKALIKE)).is_err());
    // P-256 (ecdsa-with-SHA256): the leaf signed ocsp-no-eku.der.
    let response = OcspResponse::from_der(fixture!("ocsp-no-eku.der")).expect("response");
    let basic = response.response_bytes.expect("bytes");
    let basic = signed::split(basic.response.as_bytes()).expect("split");
    assert_eq!(signed::verify(&basic, &spki(GOOD)), Ok(()));
    assert_eq!(
        signed::verify(&basic, &spki(REVOKED)),
        Err(signed::SigProblem::Mismatch)
    );
    // P-384 (ecdsa-with-SHA384): the intermediate signed the leaf.
    let leaf = signed::split(GOOD).expect("split");
    assert_eq!(signed::verify(&leaf, &spki(INTER)), Ok(()));
    assert_eq!(
        signed::verify(&leaf, &spki(LOOKALIKE)),
        Err(signed::SigProblem::Mismatch)
    );
}
