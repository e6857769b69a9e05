//! `objectType: key`: a JSON Web Key from Key Vault as a SubjectPublicKeyInfo PEM.

use serde::Deserialize;

use super::ConvertError;

/// The `key` of a GET key response (public parts only).
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

/// The public key as `PUBLIC KEY` PEM.
pub fn public_key_pem(jwk: &Jwk) -> Result<String, ConvertError> {
    Err(ConvertError::Unsupported(format!(
        "key type {:?} is not supported yet",
        jwk.kty
    )))
}
