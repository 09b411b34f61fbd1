//! Fetching what a certificate points to: its OCSP responder's answer, its CRL, its issuer.
//!
//! Bytes only: whether an answer is believed is [`crate::reading::revocation`]'s call
//! (`check_ocsp`, `check_crl`), and when to ask again is the scheduler's.

use super::http::{FetchError, Fetched, HttpClient};
use crate::escape;
use crate::reading::extract::pem;
use der::asn1::ObjectIdentifier;
use der::{Decode, Tagged};

/// An OCSP response larger than this is refused: real ones are a few kilobytes (one
/// SingleResponse, perhaps a responder certificate).
pub const OCSP_MAX_BYTES: usize = 64 * 1024;
/// A certificate at a caIssuers URL larger than this is refused.
pub const ISSUER_MAX_BYTES: usize = 256 * 1024;
/// A default cap for [`crl`]: a large CA's full CRL runs to tens of megabytes; a partitioned
/// CRL (the BR's norm now) is far smaller.
pub const CRL_MAX_BYTES: usize = 64 * 1024 * 1024;

const OCSP_REQUEST: &str = "application/ocsp-request";
const OCSP_RESPONSE: &str = "application/ocsp-response";
/// PKCS#7 SignedData (RFC 5652), the content type of a `.p7c` bundle.
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");

/// Ask the responder at `url` about `request_der` (from
/// [`crate::reading::revocation::ocsp_request`]): by GET (RFC 6960 appendix A.1; RFC 5019 has
/// responders' CDNs cache it) when the encoded request fits [`ocsp_get_url`]'s limit, by POST
/// (`application/ocsp-request`) otherwise. The answer must be `application/ocsp-response`; its
/// body is the DER response for `check_ocsp`, and `max_age` the freshness the responder gave.
///
/// A GET refused with 400, 404, 405 or 414 (a responder that only takes POST) is asked once
/// more by POST.
///
/// [`ocsp_get_url`]: crate::reading::revocation::ocsp_get_url
pub async fn ocsp(
    client: &HttpClient,
    url: &str,
    request_der: &[u8],
) -> Result<Fetched, FetchError> {
    // The URL is checked before it is extended with the request.
    super::http::parse_url(url)?;
    if let Some(get_url) = crate::reading::revocation::ocsp_get_url(url, request_der) {
        match client.get(&get_url, OCSP_RESPONSE, OCSP_MAX_BYTES).await {
            Err(FetchError::Status {
                status: 400 | 404 | 405 | 414,
                ..
            }) => {}
            other => return expect_type(other?, OCSP_RESPONSE),
        }
    }
    let fetched = client
        .post(
            url,
            OCSP_REQUEST,
            request_der.to_vec(),
            OCSP_RESPONSE,
            OCSP_MAX_BYTES,
        )
        .await?;
    expect_type(fetched, OCSP_RESPONSE)
}

fn expect_type(fetched: Fetched, expected: &'static str) -> Result<Fetched, FetchError> {
    match fetched.media_type() {
        Some(t) if t == expected => Ok(fetched),
        other => Err(FetchError::WrongType {
            url: fetched.url,
            content_type: other.unwrap_or_else(|| "(none)".into()),
            expected,
        }),
    }
}

/// The CRL at `url`, refused beyond `max_bytes` ([`CRL_MAX_BYTES`] is a default). The body is
/// the DER CRL for `check_crl`: a PEM `X509 CRL` (which some CAs publish) is decoded. The
/// `Content-Type` is not checked (CAs serve CRLs under many names).
pub async fn crl(client: &HttpClient, url: &str, max_bytes: usize) -> Result<Fetched, FetchError> {
    let mut fetched = client
        .get(
            url,
            "application/pkix-crl, application/x-pkcs7-crl, */*",
            max_bytes,
        )
        .await?;
    if let Some(der) = pem_block(&fetched.body, |label| label.ends_with("CRL")) {
        fetched.body = der.map_err(|reason| FetchError::BadBody {
            url: fetched.url.clone(),
            reason,
        })?;
    }
    Ok(fetched)
}

/// The issuer certificate at a caIssuers URL (RFC 5280 §4.2.2.1), as DER: the URL may serve a
/// DER or a PEM certificate.
///
/// A PKCS#7 "certs-only" bundle (`.p7c`, `application/pkcs7-mime`), which RFC 5280 also
/// allows, is not read: it is refused with [`FetchError::BadBody`] saying so; give the issuer
/// another way (`[revocation] issuers`, or the crt.sh endpoint).
pub async fn issuer(client: &HttpClient, url: &str) -> Result<Vec<u8>, FetchError> {
    let fetched = client
        .get(
            url,
            "application/pkix-cert, application/x-x509-ca-cert, application/x-pem-file, */*",
            ISSUER_MAX_BYTES,
        )
        .await?;
    certificate_der(&fetched).map_err(|reason| FetchError::BadBody {
        url: fetched.url.clone(),
        reason,
    })
}

/// The DER certificate in an answer that should hold one (PEM or DER).
pub(crate) fn certificate_der(fetched: &Fetched) -> Result<Vec<u8>, String> {
    const PKCS7: &str = "a PKCS#7 bundle (.p7c), which cprwatch does not read; give the \
                         issuer certificate in [revocation] issuers instead";
    let body = &fetched.body;
    if let Some(der) = pem_block(body, |label| label == "PKCS7" || label == "CMS") {
        let _ = der;
        return Err(PKCS7.into());
    }
    let der = match pem_block(body, |label| label == "CERTIFICATE") {
        Some(der) => der?,
        None => body.clone(),
    };
    if is_pkcs7(&der)
        || fetched
            .media_type()
            .is_some_and(|t| t.contains("pkcs7") || t.contains("pkcs-7"))
    {
        return Err(PKCS7.into());
    }
    match x509_cert::Certificate::from_der(&der) {
        Ok(_) => Ok(der),
        Err(e) => Err(format!(
            "not a DER or PEM certificate ({})",
            escape::text(&e.to_string())
        )),
    }
}

/// The first PEM block whose label `wanted` accepts, decoded; `None` when the body is not PEM
/// text or has no such block.
fn pem_block(body: &[u8], wanted: impl Fn(&str) -> bool) -> Option<Result<Vec<u8>, String>> {
    let text = std::str::from_utf8(body).ok()?;
    if !text.contains("-----BEGIN") {
        return None;
    }
    let block = pem::blocks(text).into_iter().find(|b| wanted(&b.label))?;
    Some(block.der.ok_or_else(|| {
        format!(
            "the PEM {} block is not valid base64",
            escape::text(&block.label)
        )
    }))
}

/// A DER ContentInfo of SignedData: a SEQUENCE whose first element is id-signedData.
fn is_pkcs7(der: &[u8]) -> bool {
    let Ok(any) = der::asn1::AnyRef::from_der(der) else {
        return false;
    };
    if any.tag() != der::Tag::Sequence {
        return false;
    }
    let Ok(mut reader) = der::SliceReader::new(any.value()) else {
        return false;
    };
    <ObjectIdentifier as Decode>::decode(&mut reader).is_ok_and(|oid| oid == ID_SIGNED_DATA)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetched(body: &[u8], content_type: Option<&str>) -> Fetched {
        Fetched {
            status: 200,
            body: body.to_vec(),
            content_type: content_type.map(String::from),
            max_age: None,
            retry_after: None,
            url: "http://ca.example.test/issuer".into(),
        }
    }

    /// A real certificate from the fixtures (PEM and DER).
    fn fixture_cert() -> (String, Vec<u8>) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/revocation");
        (
            std::fs::read_to_string(dir.join("leaf-good.pem")).expect("leaf-good.pem"),
            std::fs::read(dir.join("leaf-good.der")).expect("leaf-good.der"),
        )
    }

    #[test]
    fn a_certificate_is_read_from_der_or_pem() {
        let (pem, der) = fixture_cert();
        assert_eq!(
            certificate_der(&fetched(&der, Some("application/pkix-cert"))),
            Ok(der.clone())
        );
        assert_eq!(
            certificate_der(&fetched(pem.as_bytes(), Some("application/x-pem-file"))),
            Ok(der.clone())
        );
        let err = certificate_der(&fetched(b"<html>moved</html>", Some("text/html")))
            .expect_err("not a certificate");
        assert!(err.contains("not a DER or PEM certificate"), "{err}");
    }

    #[test]
    fn a_pkcs7_bundle_is_refused_by_name() {
        // ContentInfo { contentType id-signedData, content [0] { ... } }, truncated content.
        let p7 = [
            0x30, 0x0f, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0,
            0x02, 0x30, 0x00,
        ];
        assert!(is_pkcs7(&p7));
        let err = certificate_der(&fetched(&p7, None)).expect_err("p7c");
        assert!(err.contains("PKCS#7"), "{err}");
        let (_, der) = fixture_cert();
        assert!(!is_pkcs7(&der));
        let err = certificate_der(&fetched(&der, Some("application/pkcs7-mime"))).expect_err("");
        assert!(err.contains("PKCS#7"), "{err}");
        let pem7 = "-----BEGIN PKCS7-----\nMA8GCSqGSIb3DQEHAqACMAA=\n-----END PKCS7-----\n";
        let err = certificate_der(&fetched(pem7.as_bytes(), None)).expect_err("pem p7");
        assert!(err.contains("PKCS#7"), "{err}");
    }

    #[test]
    fn a_pem_crl_is_decoded() {
        let pem = "-----BEGIN X509 CRL-----\nMAMCAQA=\n-----END X509 CRL-----\n";
        assert_eq!(
            pem_block(pem.as_bytes(), |l| l.ends_with("CRL")),
            Some(Ok(vec![0x30, 0x03, 0x02, 0x01, 0x00]))
        );
        assert_eq!(pem_block(&[0x30, 0x03], |l| l.ends_with("CRL")), None);
    }

    #[test]
    fn an_ocsp_answer_of_another_type_is_refused() {
        let ok = expect_type(
            fetched(b"x", Some("application/ocsp-response")),
            OCSP_RESPONSE,
        );
        assert!(ok.is_ok());
        let err = expect_type(
            fetched(b"<html>", Some("text/html; charset=utf-8")),
            OCSP_RESPONSE,
        )
        .expect_err("html");
        assert!(
            matches!(&err, FetchError::WrongType { content_type, .. } if content_type == "text/html"),
            "{err:?}"
        );
        assert!(matches!(
            expect_type(fetched(b"x", None), OCSP_RESPONSE),
            Err(FetchError::WrongType { .. })
        ));
    }
}
