//! Key Vault REST response bodies (API 7.x), only the fields the provider uses.

use secrecy::SecretString;
use serde::Deserialize;

/// `GET /secrets/{name}/{version}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretBundle {
    /// The secret's value (for a certificate: the PFX in base64, or PEM).
    pub value: SecretString,
    /// `application/x-pkcs12`, `application/x-pem-file`, or anything the user set.
    #[serde(default)]
    pub content_type: Option<String>,
    /// `https://{vault}/secrets/{name}/{version}`.
    pub id: String,
    /// Set only for the secret behind a certificate.
    #[serde(default)]
    pub kid: Option<String>,
}

/// `GET /keys/{name}/{version}`.
#[derive(Debug, Deserialize)]
pub struct KeyBundle {
    /// The public key.
    pub key: Jwk,
}

/// The JWK model belongs to the conversion that reads it (`convert` never depends on `keyvault`).
pub use crate::convert::jwk::Jwk;

/// `GET /certificates/{name}/{version}`.
#[derive(Debug, Deserialize)]
pub struct CertificateBundle {
    /// `https://{vault}/certificates/{name}/{version}`.
    pub id: String,
    /// Base64 DER of the leaf certificate.
    pub cer: String,
}

/// One page of `GET /{collection}/{name}/versions`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionPage {
    /// The versions on this page.
    #[serde(default)]
    pub value: Vec<VersionItem>,
    /// The next page, absolute; `null` on the last.
    #[serde(default)]
    pub next_link: Option<String>,
}

/// One item of a listing (of an object's versions, or of a vault's objects); keys carry `kid`,
/// secrets and certificates `id`.
#[derive(Debug, Deserialize)]
pub struct VersionItem {
    /// Secrets and certificates: the version's id.
    #[serde(default)]
    pub id: Option<String>,
    /// Keys: the version's id.
    #[serde(default)]
    pub kid: Option<String>,
    /// Enabled and created.
    #[serde(default)]
    pub attributes: Attributes,
    /// Set on the secret and key behind a certificate.
    #[serde(default)]
    pub managed: Option<bool>,
}

/// Object attributes (Unix seconds).
#[derive(Debug, Default, Deserialize)]
pub struct Attributes {
    /// Disabled versions cannot be read.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Creation time, Unix seconds.
    #[serde(default)]
    pub created: Option<i64>,
}

/// Error body: `{"error":{"code":…,"message":…,"innererror":{"code":…}}}`.
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// `error` or `innererror` of an error body.
#[derive(Debug, Deserialize)]
pub struct ErrorDetail {
    /// `Forbidden`, `SecretNotFound`, …
    #[serde(default)]
    pub code: String,
    /// The human-readable explanation.
    #[serde(default)]
    pub message: String,
    /// The more specific code (`ForbiddenByRbac`, `SecretDisabled`, …).
    #[serde(default)]
    pub innererror: Option<Box<ErrorDetail>>,
}

/// The version id: the last path segment of an object id (`…/secrets/{name}/{version}`).
pub fn version_of(id: &str) -> &str {
    id.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_last_segment() {
        assert_eq!(
            version_of("https://v.vault.azure.net/secrets/s/c35fc1a31f9144c2877aa67b6ad4c31a"),
            "c35fc1a31f9144c2877aa67b6ad4c31a"
        );
        assert_eq!(version_of(""), "");
    }

    #[test]
    fn recorded_secret_parses() {
        let raw = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/vectors/keyvault/a_get_secret_plain/net__GetSecretWithVersion__001.json"
        ))
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
        let bundle: SecretBundle = serde_json::from_value(v["response"]["body"].clone()).unwrap();
        assert_eq!(version_of(&bundle.id), "c35fc1a31f9144c2877aa67b6ad4c31a");
        assert!(bundle.kid.is_none());
        use secrecy::ExposeSecret;
        assert_eq!(bundle.value.expose_secret(), "value2");
    }
}
