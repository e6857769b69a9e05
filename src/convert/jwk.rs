//! `objectType: key`: the public part of a Key Vault JSON Web Key as a SubjectPublicKeyInfo PEM
//! (`PUBLIC KEY`), byte for byte what Go's `x509.MarshalPKIXPublicKey` writes (README, "Object types").

use super::ConvertError;
use super::der_writer::{
    EC_PUBLIC_KEY_OID, NULL, RSA_ENCRYPTION_OID, bit_string, oid, sequence, tlv, unsigned_integer,
};
use super::ec::Curve;
use super::pem;
use base64::Engine as _;
use serde::Deserialize;

/// The `key` of a GET key response: the public parameters of a JSON Web Key (private fields are
/// never returned by Key Vault and are ignored if present).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Jwk {
    /// `https://{vault}/keys/{name}/{version}`.
    #[serde(default)]
    pub kid: Option<String>,
    /// `RSA`, `RSA-HSM`, `EC`, `EC-HSM`, `oct`, …
    #[serde(default)]
    pub kty: Option<String>,
    /// RSA modulus, base64url.
    #[serde(default)]
    pub n: Option<String>,
    /// RSA public exponent, base64url.
    #[serde(default)]
    pub e: Option<String>,
    /// EC curve: `P-256`, `P-384`, `P-521`, `P-256K`.
    #[serde(default)]
    pub crv: Option<String>,
    /// EC x coordinate, base64url.
    #[serde(default)]
    pub x: Option<String>,
    /// EC y coordinate, base64url.
    #[serde(default)]
    pub y: Option<String>,
}

fn b64url(field: &'static str, value: Option<&str>) -> Result<Vec<u8>, ConvertError> {
    let value = value
        .ok_or_else(|| ConvertError::Unsupported(format!("the key has no {field} parameter")))?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|e| ConvertError::Unsupported(format!("the key's {field} is not base64url: {e}")))
}

/// A coordinate as exactly the curve's size; refuses one that is longer.
fn coordinate(field: &'static str, bytes: &[u8], curve: Curve) -> Result<Vec<u8>, ConvertError> {
    curve.fixed_size(bytes).map(|c| c.to_vec()).ok_or_else(|| {
        ConvertError::Unsupported(format!(
            "the key's {field} coordinate is longer than the curve allows ({} bytes)",
            curve.size()
        ))
    })
}

/// The SubjectPublicKeyInfo DER of a JWK.
pub fn public_key_der(jwk: &Jwk) -> Result<Vec<u8>, ConvertError> {
    let kty = jwk.kty.as_deref().unwrap_or_default();
    match kty {
        "RSA" | "RSA-HSM" => {
            let n = b64url("n", jwk.n.as_deref())?;
            let e = b64url("e", jwk.e.as_deref())?;
            let rsa_public_key = sequence(&[&unsigned_integer(&n), &unsigned_integer(&e)]);
            let algorithm = sequence(&[&oid(RSA_ENCRYPTION_OID), &tlv(NULL, &[])]);
            Ok(sequence(&[&algorithm, &bit_string(&rsa_public_key)]))
        }
        "EC" | "EC-HSM" => {
            let crv = jwk.crv.as_deref().unwrap_or_default();
            let curve = Curve::from_jwk_name(crv).ok_or_else(|| {
                ConvertError::Unsupported(format!(
                    "EC key on curve {crv:?} is not supported: only P-256, P-384 and P-521 keys can be \
                     written as PEM (P-256K has no standard PEM encoding the Go provider writes)"
                ))
            })?;
            let size = curve.size();
            let x = coordinate("x", &b64url("x", jwk.x.as_deref())?, curve)?;
            let y = coordinate("y", &b64url("y", jwk.y.as_deref())?, curve)?;
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            // Go's MarshalPKIXPublicKey refuses such a key too; a point off the curve means the
            // response was corrupted, and writing it would only fail later in the workload.
            if !curve.is_valid_uncompressed_point(&point) {
                return Err(ConvertError::Unsupported(format!(
                    "the {crv} key's point (x, y) is not on the curve: the key returned by Key Vault is \
                     corrupt"
                )));
            }
            let algorithm = sequence(&[&oid(EC_PUBLIC_KEY_OID), &oid(curve.oid())]);
            Ok(sequence(&[&algorithm, &bit_string(&point)]))
        }
        other => Err(ConvertError::Unsupported(format!(
            "key type {other:?} is not supported: only RSA, RSA-HSM, EC and EC-HSM keys have a public key \
             to write (symmetric oct keys never leave Key Vault)"
        ))),
    }
}

/// The public key as `PUBLIC KEY` PEM.
pub fn public_key_pem(jwk: &Jwk) -> Result<String, ConvertError> {
    Ok(pem::encode("PUBLIC KEY", &public_key_der(jwk)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(path: &str) -> Jwk {
        let full = format!(
            "{}/tests/data/vectors/keyvault/{path}",
            env!("CARGO_MANIFEST_DIR")
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(full).unwrap()).unwrap();
        serde_json::from_value(v["response"]["body"]["key"].clone()).unwrap()
    }

    /// Every recorded GET key response, against `testdata/jwk-expected.json` (python-cryptography,
    /// checked with the openssl CLI by `testdata/gen_jwk.py`).
    #[test]
    fn every_recorded_key_matches_openssl() {
        let expected: std::collections::BTreeMap<String, Option<String>> = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/src/convert/testdata/jwk-expected.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        let mut kinds = std::collections::BTreeSet::new();
        for (path, want) in &expected {
            let jwk = recorded(path);
            match (public_key_pem(&jwk), want) {
                (Ok(got), Some(want)) => assert_eq!(&got, want, "{path}"),
                (Err(_), None) => {}
                (got, want) => panic!("{path}: got {got:?}, want {want:?}"),
            }
            kinds.insert(format!("{:?} {:?}", jwk.kty, jwk.crv));
        }
        assert!(expected.len() >= 70, "{}", expected.len());
        // RSA, RSA-HSM, EC P-256/384/521, EC-HSM.
        assert!(kinds.len() >= 6, "{kinds:?}");
    }

    /// The P-256 generator as a JWK: a coordinate with a stray leading zero byte still gives the
    /// fixed-size point, and a point off the curve is refused.
    #[test]
    fn ec_points_are_fixed_size_and_on_the_curve() {
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let gx = hex::decode("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296")
            .unwrap();
        let gy = hex::decode("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5")
            .unwrap();
        let key = |x: &[u8], y: &[u8]| Jwk {
            kty: Some("EC-HSM".into()),
            crv: Some("P-256".into()),
            x: Some(b64(x)),
            y: Some(b64(y)),
            ..Jwk::default()
        };
        let der = public_key_der(&key(&gx, &gy)).unwrap();
        let mut with_zero = vec![0u8];
        with_zero.extend_from_slice(&gx);
        assert_eq!(public_key_der(&key(&with_zero, &gy)).unwrap(), der);
        assert_eq!(&der[der.len() - 64..der.len() - 32], gx.as_slice());
        let mut off = gy.clone();
        off[31] ^= 1;
        let err = public_key_pem(&key(&gx, &off)).unwrap_err().to_string();
        assert!(err.contains("not on the curve"), "{err}");
        // base64url with padding is accepted.
        let mut padded = key(&gx, &gy);
        padded.x = Some(format!("{}=", b64(&gx)));
        assert_eq!(public_key_der(&padded).unwrap(), der);
    }

    /// Fields Key Vault adds (key_ops, private parts it never sends) do not get in the way.
    #[test]
    fn unknown_fields_are_ignored() {
        let jwk: Jwk = serde_json::from_str(
            r#"{"kid":"https://v.vault.azure.net/keys/k/1","kty":"RSA","key_ops":["sign"],"n":"AQAB","e":"AQAB","d":"AA"}"#,
        )
        .unwrap();
        assert_eq!(
            jwk.kid.as_deref(),
            Some("https://v.vault.azure.net/keys/k/1")
        );
        assert!(public_key_pem(&jwk).is_ok());
    }

    #[test]
    fn unsupported_and_malformed_keys_are_errors() {
        let k = |json: &str| serde_json::from_str::<Jwk>(json).unwrap();
        assert!(
            public_key_pem(&k(r#"{"kty":"EC","crv":"P-256K","x":"AA","y":"AA"}"#))
                .unwrap_err()
                .to_string()
                .contains("P-256K")
        );
        for (json, named) in [
            (r#"{"kty":"oct"}"#, "\"oct\""),
            (r#"{"kty":"oct-HSM"}"#, "\"oct-HSM\""),
            (r#"{"kty":"OKP","crv":"Ed25519"}"#, "\"OKP\""),
            (r#"{}"#, "\"\""),
            (r#"{"kty":"EC-HSM","crv":"P-256K"}"#, "\"P-256K\""),
            (r#"{"kty":"EC","x":"AA","y":"AA"}"#, "\"\""),
        ] {
            let err = public_key_pem(&k(json)).unwrap_err().to_string();
            assert!(
                err.contains(named) && err.contains("not supported"),
                "{json}: {err}"
            );
        }
        assert!(public_key_pem(&k(r#"{"kty":"RSA","n":"!!","e":"AQAB"}"#)).is_err());
        assert!(public_key_pem(&k(r#"{"kty":"RSA","e":"AQAB"}"#)).is_err());
        let too_long = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([1u8; 33]);
        let json = format!(r#"{{"kty":"EC","crv":"P-256","x":"{too_long}","y":"AA"}}"#);
        assert!(public_key_pem(&k(&json)).is_err());
    }
}
