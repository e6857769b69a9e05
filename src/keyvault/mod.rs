//! Key Vault data-plane client: GET secret/key/certificate and version listings over the shared
//! HTTPS client, with the bearer token sent directly (the scope is known from the cloud, so there is
//! no unauthenticated challenge round trip like the SDKs make).

pub mod models;

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;

use crate::auth::AccessToken;
use models::{CertificateBundle, ErrorBody, KeyBundle, SecretBundle, VersionItem, VersionPage};

/// API version sent on every request (current and supported by every public cloud and Azure Stack Hub
/// 2301+).
pub const API_VERSION: &str = "7.4";

/// Attempts for throttled (429) and transient (5xx, connection) failures.
const MAX_ATTEMPTS: u32 = 3;
/// Longest `Retry-After` we wait inside one Mount; longer waits are better spent by the driver's retry.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// Pages followed in one version listing (25 versions each): a bound against a looping `nextLink`.
const MAX_PAGES: usize = 200;

/// Which Key Vault collection an object lives in (`objectType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    Secret,
    Key,
    Cert,
}

impl ObjectKind {
    /// The `objectType` spelling, also the prefix of object version ids.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::Key => "key",
            Self::Cert => "cert",
        }
    }

    /// The REST collection.
    pub fn collection(self) -> &'static str {
        match self {
            Self::Secret => "secrets",
            Self::Key => "keys",
            Self::Cert => "certificates",
        }
    }
}

/// A failed Key Vault call. The caller adds the vault and object names.
#[derive(Debug, thiserror::Error)]
pub enum KeyVaultError {
    #[error("{0}")]
    Dns(String),
    #[error("request to {host} failed: {reason}")]
    Transport { host: String, reason: String },
    #[error("HTTP {status} {code}{}: {message}", inner.as_deref().map(|i| format!(" ({i})")).unwrap_or_default())]
    Status {
        status: u16,
        code: String,
        inner: Option<String>,
        message: String,
    },
    #[error("unexpected response ({reason})")]
    Decode { reason: String },
}

impl KeyVaultError {
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Worth retrying: throttling, server errors and transport failures other than DNS.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Transport { .. } => true,
            Self::Dns(_) | Self::Decode { .. } => false,
        }
    }
}

/// Characters escaped in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// Key Vault REST client (cheap to clone: the HTTP client is shared).
#[derive(Clone, Debug)]
pub struct KeyVaultClient {
    http: reqwest::Client,
}

impl KeyVaultClient {
    pub fn new(http: reqwest::Client) -> Self {
        Self { http }
    }

    fn object_url(vault_url: &str, kind: ObjectKind, name: &str, version: Option<&str>) -> String {
        let name = utf8_percent_encode(name, SEGMENT);
        match version {
            Some(v) => format!(
                "{vault_url}/{}/{name}/{}?api-version={API_VERSION}",
                kind.collection(),
                utf8_percent_encode(v, SEGMENT)
            ),
            None => format!(
                "{vault_url}/{}/{name}?api-version={API_VERSION}",
                kind.collection()
            ),
        }
    }

    /// `GET /secrets/{name}[/{version}]`.
    pub async fn get_secret(
        &self,
        vault_url: &str,
        name: &str,
        version: Option<&str>,
        token: &AccessToken,
    ) -> Result<SecretBundle, KeyVaultError> {
        self.get_json(
            &Self::object_url(vault_url, ObjectKind::Secret, name, version),
            token,
        )
        .await
    }

    /// `GET /keys/{name}[/{version}]`.
    pub async fn get_key(
        &self,
        vault_url: &str,
        name: &str,
        version: Option<&str>,
        token: &AccessToken,
    ) -> Result<KeyBundle, KeyVaultError> {
        self.get_json(
            &Self::object_url(vault_url, ObjectKind::Key, name, version),
            token,
        )
        .await
    }

    /// `GET /certificates/{name}[/{version}]`.
    pub async fn get_certificate(
        &self,
        vault_url: &str,
        name: &str,
        version: Option<&str>,
        token: &AccessToken,
    ) -> Result<CertificateBundle, KeyVaultError> {
        self.get_json(
            &Self::object_url(vault_url, ObjectKind::Cert, name, version),
            token,
        )
        .await
    }

    /// Every version of an object, following `nextLink` (only within the same vault).
    pub async fn list_versions(
        &self,
        vault_url: &str,
        kind: ObjectKind,
        name: &str,
        token: &AccessToken,
    ) -> Result<Vec<VersionItem>, KeyVaultError> {
        let mut url = format!(
            "{vault_url}/{}/{}/versions?api-version={API_VERSION}&maxresults=25",
            kind.collection(),
            utf8_percent_encode(name, SEGMENT)
        );
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let page: VersionPage = self.get_json(&url, token).await?;
            items.extend(page.value);
            match page.next_link.filter(|l| !l.is_empty()) {
                // The token must only ever go to the vault it was asked for.
                Some(next) if next.starts_with(&format!("{vault_url}/")) => url = next,
                Some(next) => {
                    return Err(KeyVaultError::Decode {
                        reason: format!("nextLink {next:?} points outside {vault_url}"),
                    });
                }
                None => return Ok(items),
            }
        }
        Err(KeyVaultError::Decode {
            reason: format!("more than {MAX_PAGES} pages of versions"),
        })
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        url: &str,
        token: &AccessToken,
    ) -> Result<T, KeyVaultError> {
        let mut attempt = 1;
        loop {
            match self.get_once(url, token).await {
                Err((err, retry_after)) if err.is_transient() && attempt < MAX_ATTEMPTS => {
                    let backoff = retry_after
                        .unwrap_or(Duration::from_millis(200 * 2u64.pow(attempt)))
                        .min(MAX_RETRY_AFTER);
                    tracing::debug!(attempt, error = %err, ?backoff, "retrying Key Vault request");
                    tokio::time::sleep(backoff).await;
                    attempt += 1;
                }
                Err((err, _)) => return Err(err),
                Ok(v) => return Ok(v),
            }
        }
    }

    async fn get_once<T: DeserializeOwned>(
        &self,
        url: &str,
        token: &AccessToken,
    ) -> Result<T, (KeyVaultError, Option<Duration>)> {
        let mut auth = HeaderValue::try_from(format!("Bearer {}", token.secret().expose_secret()))
            .map_err(|_| {
                (
                    KeyVaultError::Decode {
                        reason: "the access token is not a valid header value".to_owned(),
                    },
                    None,
                )
            })?;
        auth.set_sensitive(true);
        let response = self
            .http
            .get(url)
            .header(AUTHORIZATION, auth)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| (transport_error(url, &e), None))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response
            .bytes()
            .await
            .map_err(|e| (transport_error(url, &e), None))?;
        if status == StatusCode::OK {
            return serde_json::from_slice(&body).map_err(|e| {
                (
                    KeyVaultError::Decode {
                        reason: format!("HTTP 200 with a body that is not the expected JSON: {e}"),
                    },
                    None,
                )
            });
        }
        Err((status_error(status, &body), retry_after))
    }
}

fn transport_error(url: &str, err: &reqwest::Error) -> KeyVaultError {
    if let Some(dns) = crate::http::dns_error(err) {
        return KeyVaultError::Dns(dns.to_string());
    }
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    KeyVaultError::Transport {
        host,
        reason: crate::http::describe_transport_error(err),
    }
}

fn status_error(status: StatusCode, body: &[u8]) -> KeyVaultError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => KeyVaultError::Status {
            status: status.as_u16(),
            code: error.code,
            inner: error.innererror.map(|i| i.code).filter(|c| !c.is_empty()),
            message: error.message,
        },
        Err(_) => KeyVaultError::Status {
            status: status.as_u16(),
            code: status.canonical_reason().unwrap_or("").to_owned(),
            inner: None,
            // Bodies of non-JSON errors (proxies, gateways) are short HTML or text; a bounded excerpt
            // helps more than nothing and cannot carry a secret (the request had none in its body).
            message: String::from_utf8_lossy(&body[..body.len().min(200)])
                .trim()
                .to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_escape_names_and_carry_the_api_version() {
        assert_eq!(
            KeyVaultClient::object_url(
                "https://kv.vault.azure.net",
                ObjectKind::Secret,
                "db-pass",
                None
            ),
            "https://kv.vault.azure.net/secrets/db-pass?api-version=7.4"
        );
        assert_eq!(
            KeyVaultClient::object_url(
                "https://kv.vault.azure.net",
                ObjectKind::Cert,
                "a b",
                Some("v1")
            ),
            "https://kv.vault.azure.net/certificates/a%20b/v1?api-version=7.4"
        );
    }

    #[test]
    fn error_bodies_keep_code_inner_code_and_message() {
        let body = br#"{"error":{"code":"Forbidden","message":"Caller is not authorized","innererror":{"code":"ForbiddenByRbac"}}}"#;
        let err = status_error(StatusCode::FORBIDDEN, body);
        assert_eq!(
            err.to_string(),
            "HTTP 403 Forbidden (ForbiddenByRbac): Caller is not authorized"
        );
        assert!(!err.is_transient());
        let err = status_error(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert!(err.is_transient());
        assert!(err.to_string().contains("bad gateway"));
    }
}
