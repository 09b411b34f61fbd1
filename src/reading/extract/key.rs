//! Key material (private keys, CSRs, public keys) → `spki:<SHA-256 of the SubjectPublicKeyInfo>`.
//!
//! A private key in a report is evidence of key compromise (BR 4.9.1.1 item 3); a CSR is the
//! usual proof of possession. What the CA needs is the key's identity, the SPKI hash crt.sh calls
//! `spkisha256`, so every certificate with that key can be found.
//!
//! SECURITY: nothing here may ever let key material out. Errors are [`KeyProblem`]s that carry
//! only static descriptions (never the bytes, never an underlying parser message), and the only
//! thing derived from a private key that leaves this module is the hash of its *public* half.
//!
//! The public key is always *computed* from the private key where we can, and a key that does
//! not validate is rejected: an attacker could otherwise pair a victim's public key with garbage
//! and have the victim's certificates revoked as "compromised".

use super::ed25519;
use crate::domain::model::{KeyEvidence, KeyRef};
use pkcs8::der::asn1::{AnyRef, BitStringRef};
use pkcs8::der::{Decode, Encode};
use pkcs8::spki::{AlgorithmIdentifierRef, ObjectIdentifier, SubjectPublicKeyInfoRef};
use pkcs8::{DecodePrivateKey, EncodePublicKey, PrivateKeyInfo};
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use sha2::{Digest, Sha256};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const ED448: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.113");

/// Why key material could not be turned into a key reference. Deliberately content-free.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum KeyProblem {
    #[error("{0}: not valid (bad DER or inconsistent key)")]
    Malformed(&'static str),
    #[error("{format}: {algorithm} private key whose public key cannot be derived here")]
    NoPublicKey {
        format: &'static str,
        algorithm: &'static str,
    },
    #[error(
        "{format}: {algorithm} public key taken from the key file, not checked against the \
         private key (verify before relying on it)"
    )]
    Unverified {
        format: &'static str,
        algorithm: &'static str,
    },
}

/// A derived SubjectPublicKeyInfo, with a note when it deserves one.
type Derived = (Vec<u8>, Option<KeyProblem>);

/// The key formats we read, by PEM label or by trying DER.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `PRIVATE KEY`: PKCS#8 PrivateKeyInfo.
    Pkcs8,
    /// `RSA PRIVATE KEY`: PKCS#1 RSAPrivateKey.
    Pkcs1,
    /// `EC PRIVATE KEY`: SEC1 ECPrivateKey.
    Sec1,
    /// `ENCRYPTED PRIVATE KEY`: PKCS#8 EncryptedPrivateKeyInfo.
    Encrypted,
    /// A legacy OpenSSL `Proc-Type: 4,ENCRYPTED` RSA/EC block: raw ciphertext.
    LegacyEncrypted,
    /// `CERTIFICATE REQUEST`: PKCS#10.
    Csr,
    /// `PUBLIC KEY`: SubjectPublicKeyInfo.
    Spki,
    /// `RSA PUBLIC KEY`: PKCS#1 RSAPublicKey.
    RsaPublic,
}

impl Format {
    /// The format a PEM label announces; `None` for labels that are not key material.
    pub(crate) fn from_label(label: &str, encrypted_header: bool) -> Option<Format> {
        Some(match label {
            "RSA PRIVATE KEY" | "EC PRIVATE KEY" if encrypted_header => Format::LegacyEncrypted,
            "PRIVATE KEY" => Format::Pkcs8,
            "RSA PRIVATE KEY" => Format::Pkcs1,
            "EC PRIVATE KEY" => Format::Sec1,
            "ENCRYPTED PRIVATE KEY" => Format::Encrypted,
            "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => Format::Csr,
            "PUBLIC KEY" => Format::Spki,
            "RSA PUBLIC KEY" => Format::RsaPublic,
            _ => return None,
        })
    }

    fn evidence(self) -> KeyEvidence {
        match self {
            Format::Pkcs8 | Format::Pkcs1 | Format::Sec1 => KeyEvidence::PrivateKey,
            Format::Encrypted | Format::LegacyEncrypted => KeyEvidence::EncryptedPrivateKey,
            Format::Csr => KeyEvidence::Csr,
            Format::Spki | Format::RsaPublic => KeyEvidence::PublicKey,
        }
    }
}

/// Lowercase hex SHA-256.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Read key material of a known format.
///
/// `Ok` may still carry a note: a private key whose public half we cannot compute is evidence
/// of compromise even without a reference, so it is returned *and* explained.
pub(crate) fn decode(
    format: Format,
    der: &[u8],
    legacy_algorithm: Option<&'static str>,
) -> Result<(KeyRef, Option<KeyProblem>), KeyProblem> {
    let spki = match format {
        Format::Encrypted | Format::LegacyEncrypted => {
            encrypted_shape(der, format == Format::LegacyEncrypted)?;
            let key = KeyRef {
                reference: None,
                evidence: KeyEvidence::EncryptedPrivateKey,
                algorithm: legacy_algorithm.map(str::to_string),
            };
            return Ok((key, None));
        }
        Format::Pkcs8 => spki_of_pkcs8(der),
        Format::Sec1 => spki_of_sec1(der, None),
        Format::Pkcs1 => spki_of_pkcs1(der).map(|spki| (spki, None)),
        Format::Csr => spki_of_csr(der).map(|spki| (spki, None)),
        Format::Spki => spki_checked(der).map(|spki| (spki, None)),
        Format::RsaPublic => spki_of_rsa_public(der).map(|spki| (spki, None)),
    };
    match spki {
        Ok((spki, note)) => Ok((key_ref(&spki, format.evidence()), note)),
        Err(problem @ KeyProblem::NoPublicKey { algorithm, .. }) => {
            let key = KeyRef {
                reference: None,
                evidence: format.evidence(),
                algorithm: Some(algorithm.to_string()),
            };
            Ok((key, Some(problem)))
        }
        Err(problem) => Err(problem),
    }
}

/// Whether `der` can be an encrypted private key: what is checkable without the passphrase.
/// Anything passes otherwise, even the nothing between a BEGIN and END line quoted in prose,
/// and an encrypted key is compromise evidence.
///
/// A legacy OpenSSL block (`Proc-Type: 4,ENCRYPTED`) is raw CBC ciphertext of DES or AES:
/// whole blocks of 8 bytes. PKCS#8 is an `EncryptedPrivateKeyInfo` structure.
fn encrypted_shape(der: &[u8], legacy: bool) -> Result<(), KeyProblem> {
    let fits = if legacy {
        !der.is_empty() && der.len().is_multiple_of(8)
    } else {
        pkcs8::EncryptedPrivateKeyInfo::try_from(der).is_ok()
    };
    fits.then_some(())
        .ok_or(KeyProblem::Malformed("encrypted private key"))
}

/// Guess the format of a DER attachment: the first format that parses wins. Encrypted PKCS#8
/// comes last because its structure is the loosest.
pub(crate) fn guess(der: &[u8]) -> Option<(KeyRef, Option<KeyProblem>)> {
    const ORDER: [Format; 6] = [
        Format::Csr,
        Format::Pkcs8,
        Format::Pkcs1,
        Format::Sec1,
        Format::Spki,
        Format::RsaPublic,
    ];
    ORDER
        .iter()
        .find_map(|f| decode(*f, der, None).ok())
        .or_else(|| decode(Format::Encrypted, der, None).ok())
}

/// The key reference for a SubjectPublicKeyInfo DER.
pub(crate) fn key_ref(spki_der: &[u8], evidence: KeyEvidence) -> KeyRef {
    KeyRef {
        reference: Some(crate::domain::ids::spki_name(&sha256_hex(spki_der))),
        evidence,
        algorithm: algorithm(spki_der),
    }
}

/// `rsa-2048`, `ec-p256`, `ed25519`, … for staff; `None` if the SPKI says nothing we know.
pub(crate) fn algorithm(spki_der: &[u8]) -> Option<String> {
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der).ok()?;
    let oid = spki.algorithm.oid;
    if oid == RSA_ENCRYPTION {
        let key = rsa::pkcs1::RsaPublicKey::from_der(spki.subject_public_key.raw_bytes()).ok()?;
        return Some(format!("rsa-{}", bit_length(key.modulus.as_bytes())));
    }
    if oid == EC_PUBLIC_KEY {
        let curve = spki.algorithm.parameters_oid().ok()?;
        return Some(curve_name(curve).to_string());
    }
    [(ED25519, "ed25519"), (ED448, "ed448")]
        .iter()
        .find(|(o, _)| *o == oid)
        .map(|(_, name)| (*name).to_string())
}

fn curve_name(curve: ObjectIdentifier) -> &'static str {
    match curve {
        c if c == P256 => "ec-p256",
        c if c == P384 => "ec-p384",
        c if c == P521 => "ec-p521",
        _ => "ec",
    }
}

/// Bits in a big-endian unsigned integer without leading zero bytes.
fn bit_length(bytes: &[u8]) -> usize {
    let bytes = match bytes.iter().position(|b| *b != 0) {
        Some(i) => &bytes[i..],
        None => return 0,
    };
    bytes.len() * 8 - bytes[0].leading_zeros() as usize
}

/// PKCS#8: dispatch on the algorithm; the inner key is PKCS#1 (RSA), SEC1 (EC, with the curve
/// possibly only in the PKCS#8 parameters) or a raw Ed25519 seed.
fn spki_of_pkcs8(der: &[u8]) -> Result<Derived, KeyProblem> {
    const FORMAT: &str = "PKCS#8 private key";
    let info = PrivateKeyInfo::try_from(der).map_err(|_| KeyProblem::Malformed(FORMAT))?;
    let oid = info.algorithm.oid;
    if oid == RSA_ENCRYPTION {
        let key =
            rsa::RsaPrivateKey::from_pkcs8_der(der).map_err(|_| KeyProblem::Malformed(FORMAT))?;
        return rsa_spki(&key, FORMAT).map(|spki| (spki, None));
    }
    if oid == EC_PUBLIC_KEY {
        let curve = info.algorithm.parameters_oid().ok();
        return spki_of_sec1(info.private_key, curve);
    }
    if oid == ED25519 {
        return ed25519::spki_from_pkcs8_key(info.private_key)
            .map(|spki| (spki, None))
            .ok_or(KeyProblem::Malformed(FORMAT));
    }
    Err(KeyProblem::NoPublicKey {
        format: FORMAT,
        algorithm: if oid == ED448 { "ed448" } else { "unknown" },
    })
}

/// PKCS#1 RSA private key, validated by the `rsa` crate (p·q = n, d·e ≡ 1).
fn spki_of_pkcs1(der: &[u8]) -> Result<Vec<u8>, KeyProblem> {
    const FORMAT: &str = "PKCS#1 RSA private key";
    let key = rsa::RsaPrivateKey::from_pkcs1_der(der).map_err(|_| KeyProblem::Malformed(FORMAT))?;
    rsa_spki(&key, FORMAT)
}

fn rsa_spki(key: &rsa::RsaPrivateKey, format: &'static str) -> Result<Vec<u8>, KeyProblem> {
    key.to_public_key()
        .to_public_key_der()
        .map(|doc| doc.into_vec())
        .map_err(|_| KeyProblem::Malformed(format))
}

/// SEC1 EC private key. The curve comes from the SEC1 parameters or, inside PKCS#8, from the
/// outer algorithm parameters.
///
/// For P-256 and P-384 the public key is computed from the private scalar (and an embedded
/// public key that disagrees makes the key invalid). For other named curves the embedded public
/// key is the only source: it is used, with a note that it is unverified. Missing a key
/// compromise costs a BR deadline, so an unverifiable key is still reported, but staff are told.
fn spki_of_sec1(der: &[u8], outer_curve: Option<ObjectIdentifier>) -> Result<Derived, KeyProblem> {
    const FORMAT: &str = "SEC1 EC private key";
    let key = sec1::EcPrivateKey::try_from(der).map_err(|_| KeyProblem::Malformed(FORMAT))?;
    let curve = key
        .parameters
        .and_then(|p| p.named_curve())
        .or(outer_curve)
        .ok_or(KeyProblem::NoPublicKey {
            format: FORMAT,
            algorithm: "ec (curve not named)",
        })?;
    let computed = match curve {
        c if c == P256 => Some(p256_spki(key.private_key)),
        c if c == P384 => Some(p384_spki(key.private_key)),
        _ => None,
    };
    match (computed, key.public_key) {
        (Some(Some(spki)), embedded) => {
            let consistent =
                embedded.is_none_or(|point| ec_point_spki(curve, point).is_some_and(|e| e == spki));
            consistent
                .then_some((spki, None))
                .ok_or(KeyProblem::Malformed(FORMAT))
        }
        (Some(None), _) => Err(KeyProblem::Malformed(FORMAT)),
        (None, Some(point)) => {
            let note = KeyProblem::Unverified {
                format: FORMAT,
                algorithm: curve_name(curve),
            };
            let spki = ec_point_spki(curve, point).ok_or(KeyProblem::Malformed(FORMAT))?;
            Ok((spki, Some(note)))
        }
        (None, None) => Err(KeyProblem::NoPublicKey {
            format: FORMAT,
            algorithm: curve_name(curve),
        }),
    }
}

fn p256_spki(scalar: &[u8]) -> Option<Vec<u8>> {
    let secret = p256::SecretKey::from_slice(scalar).ok()?;
    Some(secret.public_key().to_public_key_der().ok()?.into_vec())
}

fn p384_spki(scalar: &[u8]) -> Option<Vec<u8>> {
    let secret = p384::SecretKey::from_slice(scalar).ok()?;
    Some(secret.public_key().to_public_key_der().ok()?.into_vec())
}

/// SPKI for an EC point: id-ecPublicKey, the namedCurve OID and the point bytes as given.
///
/// Points are normally uncompressed (`04 …`), which is what certificates carry; a compressed
/// point on P-256/P-384 is expanded first so its hash matches the certificates'.
fn ec_point_spki(curve: ObjectIdentifier, point: &[u8]) -> Option<Vec<u8>> {
    if point.first() != Some(&0x04) {
        if curve == P256 {
            let key = p256::PublicKey::from_sec1_bytes(point).ok()?;
            return Some(key.to_public_key_der().ok()?.into_vec());
        }
        if curve == P384 {
            let key = p384::PublicKey::from_sec1_bytes(point).ok()?;
            return Some(key.to_public_key_der().ok()?.into_vec());
        }
    }
    let spki = SubjectPublicKeyInfoRef {
        algorithm: AlgorithmIdentifierRef {
            oid: EC_PUBLIC_KEY,
            parameters: Some(AnyRef::from(&curve)),
        },
        subject_public_key: BitStringRef::from_bytes(point).ok()?,
    };
    spki.to_der().ok()
}

/// PKCS#10: the SPKI exactly as the request encodes it.
fn spki_of_csr(der: &[u8]) -> Result<Vec<u8>, KeyProblem> {
    // Bytes after the request mean a damaged body, not a request.
    let (_, csr) = X509CertificationRequest::from_der(der)
        .ok()
        .filter(|(rest, _)| rest.is_empty())
        .ok_or(KeyProblem::Malformed("certificate request"))?;
    Ok(csr.certification_request_info.subject_pki.raw.to_vec())
}

/// `PUBLIC KEY`: already an SPKI; checked, then hashed as is.
fn spki_checked(der: &[u8]) -> Result<Vec<u8>, KeyProblem> {
    SubjectPublicKeyInfoRef::from_der(der)
        .map(|_| der.to_vec())
        .map_err(|_| KeyProblem::Malformed("public key"))
}

/// `RSA PUBLIC KEY`: PKCS#1, wrapped into an SPKI the way certificates carry it.
fn spki_of_rsa_public(der: &[u8]) -> Result<Vec<u8>, KeyProblem> {
    const FORMAT: &str = "PKCS#1 RSA public key";
    let key = rsa::RsaPublicKey::from_pkcs1_der(der).map_err(|_| KeyProblem::Malformed(FORMAT))?;
    key.to_public_key_der()
        .map(|doc| doc.into_vec())
        .map_err(|_| KeyProblem::Malformed(FORMAT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::extract::pem;

    // Expected SPKI hashes computed by openssl (fixtures/keys/README.md).
    const RSA_SPKI: &str = "spki:614d467560efeb0b7d1625cd8279b29427538346349146dc010040c071035fe7";
    const P256_SPKI: &str = "spki:855de8bc01a5d2841dac952095aedf075145cbd9426314308841620366b4464c";
    const P384_SPKI: &str = "spki:a9273c2f120fd7d4ae64413aabcdbeab16ca45a191ca2eb5205f62fa812d6d37";
    const ED25519_SPKI: &str =
        "spki:d7e0ffe7d8ca7ad39db978a6a6b782082ce4eeed2db07dfd2b7a6a74596063f3";

    fn read(pem_text: &str) -> Result<(KeyRef, Option<KeyProblem>), KeyProblem> {
        let block = pem::blocks(pem_text).into_iter().next().expect("one block");
        let format = Format::from_label(&block.label, block.encrypted_header).expect("key label");
        decode(format, block.der.as_deref().expect("base64"), None)
    }

    /// Every readable key fixture and what openssl says its SPKI hash is.
    #[test]
    fn every_fixture_matches_openssl() {
        use KeyEvidence::{Csr, PrivateKey, PublicKey};
        let cases = [
            (
                include_str!("../../../fixtures/keys/rsa-pkcs8.pem"),
                RSA_SPKI,
                PrivateKey,
                "rsa-2048",
            ),
            (
                include_str!("../../../fixtures/keys/rsa-pkcs1.pem"),
                RSA_SPKI,
                PrivateKey,
                "rsa-2048",
            ),
            (
                include_str!("../../../fixtures/keys/ec-p256-sec1.pem"),
                P256_SPKI,
                PrivateKey,
                "ec-p256",
            ),
            (
                include_str!("../../../fixtures/keys/ec-p256-sec1-nopub.pem"),
                P256_SPKI,
                PrivateKey,
                "ec-p256",
            ),
            (
                include_str!("../../../fixtures/keys/ec-p256-pkcs8.pem"),
                P256_SPKI,
                PrivateKey,
                "ec-p256",
            ),
            (
                include_str!("../../../fixtures/keys/ec-p384-sec1.pem"),
                P384_SPKI,
                PrivateKey,
                "ec-p384",
            ),
            (
                include_str!("../../../fixtures/keys/ec-p384-pkcs8.pem"),
                P384_SPKI,
                PrivateKey,
                "ec-p384",
            ),
            (
                include_str!("../../../fixtures/keys/ed25519-pkcs8.pem"),
                ED25519_SPKI,
                PrivateKey,
                "ed25519",
            ),
            (
                include_str!("../../../fixtures/keys/ec-p256.csr"),
                P256_SPKI,
                Csr,
                "ec-p256",
            ),
            (
                include_str!("../../../fixtures/keys/ec-p384-public.pem"),
                P384_SPKI,
                PublicKey,
                "ec-p384",
            ),
            (
                include_str!("../../../fixtures/keys/rsa-pkcs1-public.pem"),
                RSA_SPKI,
                PublicKey,
                "rsa-2048",
            ),
        ];
        for (i, (pem_text, reference, evidence, algorithm)) in cases.into_iter().enumerate() {
            let (key, problem) = read(pem_text).expect("decodes");
            assert_eq!(problem, None, "case {i}");
            assert_eq!(key.reference.as_deref(), Some(reference), "case {i}");
            assert_eq!(key.evidence, evidence, "case {i}");
            assert_eq!(key.algorithm.as_deref(), Some(algorithm), "case {i}");
        }
    }

    /// P-521 cannot be computed without another crate: the embedded public key is used, with
    /// a note saying it is unverified.
    #[test]
    fn p521_uses_embedded_public_key_with_a_note() {
        let (key, note) =
            read(include_str!("../../../fixtures/keys/ec-p521-sec1.pem")).expect("decodes");
        assert_eq!(
            key.reference.as_deref(),
            Some("spki:afc92ade9727d6a303009c7bd5cd4bc629502d8036169f3fadabe90034c8235f")
        );
        assert_eq!(key.algorithm.as_deref(), Some("ec-p521"));
        assert!(matches!(note, Some(KeyProblem::Unverified { .. })));
    }

    #[test]
    fn encrypted_keys_have_no_reference() {
        for text in [
            include_str!("../../../fixtures/keys/rsa-encrypted-pkcs8.pem"),
            include_str!("../../../fixtures/keys/rsa-legacy-encrypted.pem"),
        ] {
            let (key, _) = read(text).expect("decodes");
            assert_eq!(key.reference, None);
            assert_eq!(key.evidence, KeyEvidence::EncryptedPrivateKey);
        }
    }

    /// Nothing, or bytes no cipher wrote, is no encrypted key: prose quoting the label
    /// carries none.
    #[test]
    fn encrypted_keys_need_their_shape() {
        for (format, der) in [
            (Format::Encrypted, &b""[..]),
            (Format::Encrypted, &[0x30, 0x03, 0x02, 0x01, 0x00][..]),
            (Format::LegacyEncrypted, &b""[..]),
            (Format::LegacyEncrypted, &b"and th"[..]),
        ] {
            assert!(decode(format, der, None).is_err(), "{format:?} {der:?}");
        }
        assert!(decode(Format::LegacyEncrypted, &[7; 16], Some("rsa")).is_ok());
    }

    #[test]
    fn der_guessing() {
        let der = |t: &str| pem::blocks(t).remove(0).der.expect("base64");
        let (key, _) =
            guess(&der(include_str!("../../../fixtures/keys/rsa-pkcs1.pem"))).expect("key");
        assert_eq!(key.reference.as_deref(), Some(RSA_SPKI));
        let (key, _) =
            guess(&der(include_str!("../../../fixtures/keys/ec-p256.csr"))).expect("csr");
        assert_eq!(key.evidence, KeyEvidence::Csr);
        let (key, _) = guess(&der(include_str!(
            "../../../fixtures/keys/rsa-encrypted-pkcs8.pem"
        )))
        .expect("enc");
        assert_eq!(key.evidence, KeyEvidence::EncryptedPrivateKey);
        assert!(guess(b"not a key").is_none());
    }

    #[test]
    fn forged_embedded_public_key_is_rejected() {
        // A P-256 private scalar paired with somebody else's public key must not name that key.
        let mine = pem::blocks(include_str!("../../../fixtures/keys/ec-p256-sec1.pem")).remove(0);
        let mut der = mine.der.expect("base64");
        let len = der.len();
        der[len - 1] ^= 0x01; // flip a bit of the embedded point
        assert!(matches!(
            decode(Format::Sec1, &der, None),
            Err(KeyProblem::Malformed(_))
        ));
    }

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_length(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(bit_length(&[0x01]), 1);
        assert_eq!(bit_length(&[]), 0);
    }
}
