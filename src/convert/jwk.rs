//! `objectType: key`: the public part of a Key Vault JSON Web Key as a SubjectPublicKeyInfo PEM
//! (`PUBLIC KEY`), byte for byte what Go's `x509.MarshalPKIXPublicKey` writes (spec 5.2).

use base64::Engine as _;
use serde::Deserialize;

use super::ConvertError;
use super::der_writer::{NULL, bit_string, oid, sequence, tlv, unsigned_integer};
use super::pem;

/// OID content bytes.
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
pub(crate) const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub(crate) const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
pub(crate) const P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];

/// The `key` of a GET key response (public parts only; private fields are never returned by Key
/// Vault and are ignored if present).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Jwk {
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub kty: Option<String>,
    #[serde(default)]
    pub n: Option<String>,
    #[serde(default)]
    pub e: Option<String>,
    #[serde(default)]
    pub crv: Option<String>,
    #[serde(default)]
    pub x: Option<String>,
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

/// A named curve: (OID, coordinate size in bytes).
fn curve(crv: &str) -> Option<(&'static [u8], usize)> {
    match crv {
        "P-256" => Some((P256, 32)),
        "P-384" => Some((P384, 48)),
        "P-521" => Some((P521, 66)),
        _ => None,
    }
}

/// Left-pads a coordinate to the curve's size; refuses one that is longer.
fn coordinate(field: &'static str, bytes: &[u8], size: usize) -> Result<Vec<u8>, ConvertError> {
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let digits = &bytes[skip..];
    if digits.len() > size {
        return Err(ConvertError::Unsupported(format!(
            "the key's {field} coordinate is {} bytes, longer than the curve allows ({size})",
            digits.len()
        )));
    }
    let mut out = vec![0; size - digits.len()];
    out.extend_from_slice(digits);
    Ok(out)
}

/// The SubjectPublicKeyInfo DER of a JWK.
pub fn public_key_der(jwk: &Jwk) -> Result<Vec<u8>, ConvertError> {
    let kty = jwk.kty.as_deref().unwrap_or_default();
    match kty {
        "RSA" | "RSA-HSM" => {
            let n = b64url("n", jwk.n.as_deref())?;
            let e = b64url("e", jwk.e.as_deref())?;
            let rsa_public_key = sequence(&[&unsigned_integer(&n), &unsigned_integer(&e)]);
            let algorithm = sequence(&[&oid(RSA_ENCRYPTION), &tlv(NULL, &[])]);
            Ok(sequence(&[&algorithm, &bit_string(&rsa_public_key)]))
        }
        "EC" | "EC-HSM" => {
            let crv = jwk.crv.as_deref().unwrap_or_default();
            let (curve_oid, size) = curve(crv).ok_or_else(|| {
                ConvertError::Unsupported(format!(
                    "EC key on curve {crv:?} is not supported: only P-256, P-384 and P-521 keys can be \
                     written as PEM (P-256K has no standard PEM encoding the Go provider writes)"
                ))
            })?;
            let x = coordinate("x", &b64url("x", jwk.x.as_deref())?, size)?;
            let y = coordinate("y", &b64url("y", jwk.y.as_deref())?, size)?;
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let algorithm = sequence(&[&oid(EC_PUBLIC_KEY), &oid(curve_oid)]);
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
            "{}/../shared/vectors/keyvault/{path}",
            env!("CARGO_MANIFEST_DIR")
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(full).unwrap()).unwrap();
        serde_json::from_value(v["response"]["body"]["key"].clone()).unwrap()
    }

    fn expected(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/it/testdata/{name}.pem",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn recorded_keys_match_openssl() {
        for (name, path) in [
            (
                "rsa",
                "d_get_key_rsa/cpp__KeyVaultKeyClient.CreateRsaKey__001.json",
            ),
            (
                "rsa-hsm",
                "d_get_key_rsa/cpp__KeyVaultKeyClient.CreateRsaHsmKey__001.json",
            ),
            (
                "ec-p256",
                "d_get_key_ec/cpp__KeyVaultKeyClient.BackupKey__008.json",
            ),
            (
                "ec-p384",
                "d_get_key_ec/cpp__KeyVaultKeyClient.CreateEcKeyWithCurve__001.json",
            ),
            (
                "ec-p521",
                "d_get_key_ec/net__DownloadECDsaCertificateSignRemoteVerifyLocal_application_x-pem-file_P-521___001.json",
            ),
        ] {
            assert_eq!(
                public_key_pem(&recorded(path)).unwrap(),
                expected(name),
                "{name}"
            );
        }
    }

    #[test]
    fn every_recorded_key_converts_or_says_why() {
        let dir = format!("{}/../shared/vectors/keyvault", env!("CARGO_MANIFEST_DIR"));
        let mut converted = 0;
        for sub in ["d_get_key_rsa", "d_get_key_ec"] {
            for entry in std::fs::read_dir(format!("{dir}/{sub}")).unwrap() {
                let v: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap())
                        .unwrap();
                let Some(key) = v["response"]["body"].get("key") else {
                    continue;
                };
                let jwk: Jwk = serde_json::from_value(key.clone()).unwrap();
                match public_key_pem(&jwk) {
                    Ok(pem) => {
                        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
                        converted += 1;
                    }
                    Err(e) => assert!(
                        jwk.crv.as_deref() == Some("P-256K")
                            || jwk.kty.as_deref().is_some_and(|k| k.starts_with("oct")),
                        "{e}"
                    ),
                }
            }
        }
        assert!(converted > 20, "{converted}");
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
        assert!(
            public_key_pem(&k(r#"{"kty":"oct"}"#))
                .unwrap_err()
                .to_string()
                .contains("\"oct\"")
        );
        assert!(public_key_pem(&k(r#"{"kty":"RSA","n":"!!","e":"AQAB"}"#)).is_err());
        assert!(public_key_pem(&k(r#"{"kty":"RSA","e":"AQAB"}"#)).is_err());
        let too_long = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([1u8; 33]);
        let json = format!(r#"{{"kty":"EC","crv":"P-256","x":"{too_long}","y":"AA"}}"#);
        assert!(public_key_pem(&k(&json)).is_err());
    }
}
