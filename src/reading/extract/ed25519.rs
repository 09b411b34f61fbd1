//! Ed25519 public key derivation (RFC 8032 §5.1.5), for PKCS#8 Ed25519 private keys.
//!
//! OpenSSL writes Ed25519 keys as PKCS#8 v1, which holds only the 32-byte seed, so the public
//! key must be computed. No Ed25519 crate is among our dependencies; the big integers of the
//! `rsa` crate do the arithmetic. This is slow (a few milliseconds) and not constant time,
//! which is fine here: it runs only on keys that were already disclosed in a report.

use rsa::BigUint;
use sha2::{Digest, Sha512};
use std::sync::LazyLock;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the key's 32 bytes follow.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

struct Curve {
    p: BigUint,
    /// 2·d mod p, as the addition formula uses it.
    d2: BigUint,
    base: Point,
}

#[derive(Clone)]
struct Point {
    x: BigUint,
    y: BigUint,
    z: BigUint,
    t: BigUint,
}

static CURVE: LazyLock<Curve> = LazyLock::new(|| {
    let dec = |s: &str| BigUint::parse_bytes(s.as_bytes(), 10).expect("decimal constant");
    let p = dec("57896044618658097711785492504343953926634992332820282019728792003956564819949");
    let d = dec("37095705934669439343138083508754565189542113879843219016388785533085940283555");
    let x = dec("15112221349535400772501151409588531511454012693041857206046113283949847762202");
    let y = dec("46316835694926478169428394003475163141307993866256225615783033603165251855960");
    let t = (&x * &y) % &p;
    Curve {
        d2: (&d * 2u32) % &p,
        base: Point {
            x,
            y,
            z: BigUint::from(1u32),
            t,
        },
        p,
    }
});

impl Curve {
    fn sub(&self, a: &BigUint, b: &BigUint) -> BigUint {
        (a + &self.p - b) % &self.p
    }

    fn mul(&self, a: &BigUint, b: &BigUint) -> BigUint {
        (a * b) % &self.p
    }

    /// Unified addition in extended coordinates (RFC 8032 §5.1.4); also correct for doubling.
    fn add(&self, a: &Point, b: &Point) -> Point {
        let aa = self.mul(&self.sub(&a.y, &a.x), &self.sub(&b.y, &b.x));
        let bb = self.mul(&(&a.y + &a.x), &(&b.y + &b.x));
        let cc = self.mul(&self.mul(&a.t, &self.d2), &b.t);
        let dd = self.mul(&(&a.z * 2u32), &b.z);
        let (e, f) = (self.sub(&bb, &aa), self.sub(&dd, &cc));
        let (g, h) = ((&dd + &cc) % &self.p, (&bb + &aa) % &self.p);
        Point {
            x: self.mul(&e, &f),
            y: self.mul(&g, &h),
            t: self.mul(&e, &h),
            z: self.mul(&f, &g),
        }
    }

    /// `k·B` by double-and-add over the little-endian scalar bytes.
    fn mul_base(&self, scalar_le: &[u8; 32]) -> Point {
        let zero = BigUint::from(0u32);
        let one = BigUint::from(1u32);
        let mut acc = Point {
            x: zero.clone(),
            y: one.clone(),
            z: one,
            t: zero,
        };
        let mut power = self.base.clone();
        for byte in scalar_le {
            for bit in 0..8 {
                if byte >> bit & 1 == 1 {
                    acc = self.add(&acc, &power);
                }
                power = self.add(&power, &power);
            }
        }
        acc
    }

    /// RFC 8032 point encoding: y little-endian, the sign of x in the top bit.
    fn encode(&self, point: &Point) -> [u8; 32] {
        let z_inv = point.z.modpow(&(&self.p - 2u32), &self.p);
        let x = self.mul(&point.x, &z_inv);
        let y = self.mul(&point.y, &z_inv);
        let mut out = [0u8; 32];
        let y_le = y.to_bytes_le();
        out[..y_le.len().min(32)].copy_from_slice(&y_le[..y_le.len().min(32)]);
        if x.to_bytes_le().first().is_some_and(|b| b & 1 == 1) {
            out[31] |= 0x80;
        }
        out
    }
}

/// The public key for a 32-byte seed.
fn public_key(seed: &[u8; 32]) -> [u8; 32] {
    let h = Sha512::digest(seed);
    let mut scalar = [0u8; 32];
    scalar.copy_from_slice(&h[..32]);
    scalar[0] &= 248;
    scalar[31] &= 127;
    scalar[31] |= 64;
    let curve = &*CURVE;
    curve.encode(&curve.mul_base(&scalar))
}

/// SPKI DER for the PKCS#8 `privateKey` field of an Ed25519 key: `OCTET STRING { seed }`
/// (RFC 8410 §7).
pub(crate) fn spki_from_pkcs8_key(private_key: &[u8]) -> Option<Vec<u8>> {
    let seed: &[u8; 32] = match private_key {
        [0x04, 0x20, rest @ ..] => rest.try_into().ok()?,
        _ => return None,
    };
    let mut spki = SPKI_PREFIX.to_vec();
    spki.extend_from_slice(&public_key(seed));
    Some(spki)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032 §7.1, test 1.
    #[test]
    fn rfc8032_test_vector() {
        let seed: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .expect("hex")
                .try_into()
                .expect("32 bytes");
        assert_eq!(
            hex::encode(public_key(&seed)),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
    }

    #[test]
    fn rejects_wrong_length() {
        assert_eq!(spki_from_pkcs8_key(&[0x04, 0x01, 0x00]), None);
    }
}
