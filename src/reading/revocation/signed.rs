//! Signatures over DER structures shaped `SEQUENCE { tbs, AlgorithmIdentifier, BIT STRING, … }`:
//! certificates, CRLs and BasicOCSPResponses alike.
//!
//! The signed bytes are taken as they came (`tlv_bytes`), never re-encoded: a responder whose
//! DER is not quite canonical would otherwise fail for our encoder's sake, not its own.

use der::asn1::{BitString, ObjectIdentifier};
use der::{Decode, Reader, SliceReader};
use sha2::Digest;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_WITH_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// The three parts of a signed structure, the first as its raw bytes.
pub(crate) struct Signed<'a> {
    pub(crate) tbs: &'a [u8],
    pub(crate) algorithm: AlgorithmIdentifierOwned,
    pub(crate) signature: BitString,
}

/// Split `der` (one whole signed structure, nothing after it).
pub(crate) fn split(der: &[u8]) -> der::Result<Signed<'_>> {
    let mut reader = SliceReader::new(der)?;
    let signed = reader.sequence(|r| {
        let tbs = r.tlv_bytes()?;
        let algorithm = AlgorithmIdentifierOwned::decode(r)?;
        let signature = BitString::decode(r)?;
        // A BasicOCSPResponse carries its certificates after the signature.
        while !r.is_finished() {
            r.tlv_bytes()?;
        }
        Ok(Signed {
            tbs,
            algorithm,
            signature,
        })
    })?;
    reader.finish(signed)
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SigProblem {
    /// An algorithm (or key type) we do not check, named by OID. SHA-1 signatures are among
    /// them: the BRs have forbidden them for OCSP and CRLs since 2022, so one is news itself.
    Unsupported(String),
    /// The key is malformed, or does not fit the algorithm.
    BadKey,
    /// The signature does not verify.
    Mismatch,
}

enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn digest(&self, msg: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => sha2::Sha256::digest(msg).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(msg).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(msg).to_vec(),
        }
    }
}

/// Check `signed` against the public key `key`.
pub(crate) fn verify(
    signed: &Signed<'_>,
    key: &SubjectPublicKeyInfoOwned,
) -> Result<(), SigProblem> {
    let alg = signed.algorithm.oid;
    let sig = signed.signature.as_bytes().ok_or(SigProblem::Mismatch)?;
    let key_bits = key.subject_public_key.raw_bytes();
    let (rsa, hash) = match alg {
        SHA256_WITH_RSA => (true, Hash::Sha256),
        SHA384_WITH_RSA => (true, Hash::Sha384),
        SHA512_WITH_RSA => (true, Hash::Sha512),
        ECDSA_WITH_SHA256 => (false, Hash::Sha256),
        ECDSA_WITH_SHA384 => (false, Hash::Sha384),
        ECDSA_WITH_SHA512 => (false, Hash::Sha512),
        other => return Err(SigProblem::Unsupported(other.to_string())),
    };
    let digest = hash.digest(signed.tbs);
    if rsa {
        if key.algorithm.oid != RSA_ENCRYPTION {
            return Err(SigProblem::BadKey);
        }
        use rsa::pkcs1::DecodeRsaPublicKey;
        let public = rsa::RsaPublicKey::from_pkcs1_der(key_bits).map_err(|_| SigProblem::BadKey)?;
        let scheme = match hash {
            Hash::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
            Hash::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
            Hash::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
        };
        return public
            .verify(scheme, &digest, sig)
            .map_err(|_| SigProblem::Mismatch);
    }
    if key.algorithm.oid != EC_PUBLIC_KEY {
        return Err(SigProblem::BadKey);
    }
    let curve = key
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
        .ok_or(SigProblem::BadKey)?;
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    match curve {
        P256 => {
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(key_bits)
                .map_err(|_| SigProblem::BadKey)?;
            let s = p256::ecdsa::Signature::from_der(sig).map_err(|_| SigProblem::Mismatch)?;
            vk.verify_prehash(&digest, &s)
                .map_err(|_| SigProblem::Mismatch)
        }
        P384 => {
            let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(key_bits)
                .map_err(|_| SigProblem::BadKey)?;
            let s = p384::ecdsa::Signature::from_der(sig).map_err(|_| SigProblem::Mismatch)?;
            vk.verify_prehash(&digest, &s)
                .map_err(|_| SigProblem::Mismatch)
        }
        other => Err(SigProblem::Unsupported(other.to_string())),
    }
}
