//! The three NIST curves Key Vault and the Go provider support (P-256, P-384, P-521): their OIDs and
//! sizes, and the two pieces of curve arithmetic the output depends on. Go derives an EC private key's
//! public point from the scalar rather than trusting the stored one, and refuses to marshal a public
//! key that is not on its curve; doing the same keeps our files identical to Go's and our errors early.

use p256::elliptic_curve::sec1::ToSec1Point as _;
use zeroize::Zeroizing;

/// A supported named curve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256 (secp256r1).
    P256,
    /// NIST P-384 (secp384r1).
    P384,
    /// NIST P-521 (secp521r1).
    P521,
}

/// OID content bytes of the named curves (RFC 5480).
const P256_OID: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_OID: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const P521_OID: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];

impl Curve {
    /// The curve with this JWK `crv` name.
    pub fn from_jwk_name(crv: &str) -> Option<Self> {
        match crv {
            "P-256" => Some(Self::P256),
            "P-384" => Some(Self::P384),
            "P-521" => Some(Self::P521),
            _ => None,
        }
    }

    /// The curve with this OID (content bytes).
    pub fn from_oid(oid: &[u8]) -> Option<Self> {
        [Self::P256, Self::P384, Self::P521]
            .into_iter()
            .find(|c| c.oid() == oid)
    }

    /// OID content bytes.
    pub fn oid(self) -> &'static [u8] {
        match self {
            Self::P256 => P256_OID,
            Self::P384 => P384_OID,
            Self::P521 => P521_OID,
        }
    }

    /// Size in bytes of a coordinate and of a private scalar.
    pub fn size(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }

    /// A big-endian number (coordinate or scalar) as exactly `size()` bytes: leading zero bytes
    /// dropped, then left-padded, as Go reads them; `None` when its significant bytes do not fit.
    pub fn fixed_size(self, bytes: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let size = self.size();
        let digits = &bytes[bytes.iter().take_while(|b| **b == 0).count()..];
        if digits.len() > size {
            return None;
        }
        let mut out = Zeroizing::new(vec![0u8; size - digits.len()]);
        out.extend_from_slice(digits);
        Some(out)
    }

    /// The uncompressed public point (`04 || x || y`) of a private scalar of exactly `size()` bytes;
    /// `None` when the scalar is zero or not below the group order.
    pub fn public_point(self, scalar: &[u8]) -> Option<Vec<u8>> {
        macro_rules! derive {
            ($krate:ident) => {
                $krate::SecretKey::from_slice(scalar)
                    .ok()
                    .map(|k| k.public_key().to_sec1_point(false).as_bytes().to_vec())
            };
        }
        if scalar.len() != self.size() {
            return None;
        }
        match self {
            Self::P256 => derive!(p256),
            Self::P384 => derive!(p384),
            Self::P521 => derive!(p521),
        }
    }

    /// Whether `point` is a valid uncompressed SEC1 point on the curve (not the identity).
    pub fn is_valid_uncompressed_point(self, point: &[u8]) -> bool {
        if point.len() != 1 + 2 * self.size() || point.first() != Some(&0x04) {
            return false;
        }
        match self {
            Self::P256 => p256::PublicKey::from_sec1_bytes(point).is_ok(),
            Self::P384 => p384::PublicKey::from_sec1_bytes(point).is_ok(),
            Self::P521 => p521::PublicKey::from_sec1_bytes(point).is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_one_gives_the_generator() {
        // P-256 generator, SEC 2 section 2.4.2.
        let g = hex::decode(
            "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296\
             4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
        )
        .unwrap();
        let mut one = vec![0u8; 32];
        one[31] = 1;
        assert_eq!(Curve::P256.public_point(&one).unwrap(), g);
        assert!(Curve::P256.is_valid_uncompressed_point(&g));
        let mut off = g.clone();
        off[64] ^= 1;
        assert!(!Curve::P256.is_valid_uncompressed_point(&off));
        assert!(Curve::P256.public_point(&[0u8; 32]).is_none());
        assert!(Curve::P256.public_point(&[0xffu8; 32]).is_none());
        assert!(Curve::P256.public_point(&one[1..]).is_none());
    }

    #[test]
    fn every_curve_derives_a_point_it_accepts() {
        for curve in [Curve::P256, Curve::P384, Curve::P521] {
            let mut scalar = vec![0u8; curve.size()];
            scalar[curve.size() - 1] = 7;
            let point = curve.public_point(&scalar).unwrap();
            assert_eq!(point.len(), 1 + 2 * curve.size());
            assert!(curve.is_valid_uncompressed_point(&point));
            assert_eq!(Curve::from_oid(curve.oid()), Some(curve));
        }
        assert_eq!(Curve::from_jwk_name("P-256K"), None);
    }
}
