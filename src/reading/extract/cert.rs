//! X.509 certificates (PEM body or DER attachment) → a fully described [`CertificateRef`].
//!
//! When the certificate itself is in the message we know everything crt.sh would tell us, so we
//! fill every field: the engine then needs no lookup to know whether it is a CA certificate, a
//! precertificate or already expired.

use super::key;
use crate::domain::model::CertificateRef;
use crate::domain::timefmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::Oid;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The CT poison extension (RFC 6962 §3.1): a critical extension that makes a certificate a
/// precertificate, which no client will accept.
const CT_POISON: &str = "1.3.6.1.4.1.11129.2.4.3";

/// Parse a DER certificate. Trailing bytes (OpenSSL's `TRUSTED CERTIFICATE` auxiliary trust
/// data) are ignored; the fingerprint covers the certificate alone.
pub fn parse(der: &[u8]) -> Option<CertificateRef> {
    parse_prefix(der).map(|(c, _)| c)
}

/// Parse the DER certificate at the start of `der`; also how many bytes follow it.
pub(crate) fn parse_prefix(der: &[u8]) -> Option<(CertificateRef, usize)> {
    let (rest, cert) = X509Certificate::from_der(der).ok()?;
    let trailing = rest.len();
    let cert_der = &der[..der.len() - trailing];
    let sha256 = key::sha256_hex(cert_der);
    let validity = cert.validity();
    Some((
        CertificateRef {
            reference: crate::domain::ids::sha256_name(&sha256),
            crtsh_id: None,
            sha256: Some(sha256),
            serial: Some(serial_hex(cert.raw_serial())),
            issuer: Some(cert.issuer().to_string()),
            subject: Some(cert.subject().to_string()),
            sans: sans(&cert),
            not_before: Some(timefmt::normalize(validity.not_before.to_datetime())),
            not_after: Some(timefmt::normalize(validity.not_after.to_datetime())),
            spki_sha256: Some(key::sha256_hex(cert.tbs_certificate.subject_pki.raw)),
            is_ca: is_ca(&cert),
            precertificate: Some(is_precertificate(&cert)),
        },
        trailing,
    ))
}

/// Lowercase hex of the serial without the DER sign byte: `00 F1 …` is serial `f1…`, as CAs
/// and crt.sh write it.
fn serial_hex(raw: &[u8]) -> String {
    let bytes = match raw {
        [0, rest @ ..] if !rest.is_empty() => rest,
        _ => raw,
    };
    hex::encode(bytes)
}

/// dNSName and iPAddress SANs, in certificate order.
fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_string()),
            GeneralName::IPAddress(bytes) => ip_string(bytes),
            _ => None,
        })
        .collect()
}

fn ip_string(bytes: &[u8]) -> Option<String> {
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => return None,
    };
    Some(ip.to_string())
}

/// basicConstraints cA; a certificate without the extension is not a CA. `None` when the
/// extension is malformed or duplicated (we cannot tell).
fn is_ca(cert: &X509Certificate<'_>) -> Option<bool> {
    match cert.basic_constraints() {
        Ok(Some(bc)) => Some(bc.value.ca),
        Ok(None) => Some(false),
        Err(_) => None,
    }
}

fn is_precertificate(cert: &X509Certificate<'_>) -> bool {
    cert.extensions()
        .iter()
        .any(|ext| ext.critical && oid_is(&ext.oid, CT_POISON))
}

fn oid_is(oid: &Oid<'_>, dotted: &str) -> bool {
    oid.to_id_string() == dotted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::extract::pem;

    fn der_of(pem_text: &str) -> Vec<u8> {
        pem::blocks(pem_text)
            .into_iter()
            .next()
            .and_then(|b| b.der)
            .expect("fixture decodes")
    }

    // Expected values computed with openssl (see fixtures/keys/README.md).
    const LEAF_SHA256: &str = "55a7d05c16ef8fb68ef1c4d9b877b19d326f0ef41d50572194891ba8c9be5f5c";
    const RSA_SPKI: &str = "614d467560efeb0b7d1625cd8279b29427538346349146dc010040c071035fe7";

    #[test]
    fn leaf_certificate_fields() {
        let c = parse(&der_of(include_str!("../../../fixtures/keys/leaf.pem"))).expect("parses");
        assert_eq!(c.reference, format!("sha256:{LEAF_SHA256}"));
        assert_eq!(c.sha256.as_deref(), Some(LEAF_SHA256));
        assert_eq!(c.serial.as_deref(), Some("1234abcd"));
        assert_eq!(c.subject.as_deref(), Some("CN=www.example.com"));
        assert_eq!(
            c.issuer.as_deref(),
            Some("C=XX, O=Test CA, CN=Test Root CA")
        );
        assert_eq!(c.sans, vec!["www.example.com", "example.com", "192.0.2.1"]);
        assert_eq!(c.spki_sha256.as_deref(), Some(RSA_SPKI));
        assert_eq!(c.is_ca, Some(false));
        assert_eq!(c.precertificate, Some(false));
        let nb = c.not_before.expect("not_before");
        let na = c.not_after.expect("not_after");
        assert_eq!((na - nb).whole_days(), 90);
        assert_eq!(nb, timefmt::normalize(nb));
    }

    #[test]
    fn der_attachment_equals_pem() {
        let from_der = parse(include_bytes!("../../../fixtures/keys/leaf.der"));
        let from_pem = parse(&der_of(include_str!("../../../fixtures/keys/leaf.pem")));
        assert!(from_der.is_some());
        assert_eq!(from_der, from_pem);
    }

    /// The CA (serial with a DER sign byte) and the precertificate (CT poison), against
    /// openssl's fingerprints.
    #[test]
    fn ca_and_precertificate() {
        let ca = parse(&der_of(include_str!("../../../fixtures/keys/ca.pem"))).expect("ca");
        let pre = parse(&der_of(include_str!("../../../fixtures/keys/precert.pem"))).expect("pre");
        let fields = |c: &CertificateRef| {
            (
                c.sha256.clone(),
                c.serial.clone(),
                c.is_ca,
                c.precertificate,
            )
        };
        let ca_sha = "2ab774e2f3788dff85f24f8d9b57e5caae2ea4c61135e9b695a7ddb2d94fbb7f";
        let pre_sha = "88c053de44baef091e72499bf7b598244752a5c1609c053063b73e3fa448b110";
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            fields(&ca),
            (
                some(ca_sha),
                some("f1e2d3c4b5a69788"),
                Some(true),
                Some(false)
            )
        );
        assert_eq!(
            fields(&pre),
            (some(pre_sha), some("0abc"), Some(false), Some(true))
        );
        let p384 = "a9273c2f120fd7d4ae64413aabcdbeab16ca45a191ca2eb5205f62fa812d6d37";
        assert_eq!(ca.spki_sha256.as_deref(), Some(p384));
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(parse(b"\x30\x03\x02\x01\x01"), None);
        assert_eq!(parse(b""), None);
    }
}
