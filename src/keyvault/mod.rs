//! Key Vault data-plane client: GET secret/key/certificate and version listings over the shared
//! HTTPS client, with the bearer token sent directly (the scope is known from the cloud, so there is
//! no unauthenticated challenge round trip like the SDKs make).

pub mod models;

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, RETRY_AFTER};
use serde::de::DeserializeOwned;

use crate::auth::AccessToken;
use crate::http::{FailureKind, TransportError, excerpt, read_body};
use models::{
    CertificateBundle, ErrorBody, KeyBundle, SecretBundle, VersionItem, VersionPage, version_of,
};

/// API version sent on every request (current and supported by every public cloud and Azure Stack Hub
/// 2301+).
pub const API_VERSION: &str = "7.4";

/// Attempts for throttled (429) and transient (5xx, connection) failures.
const MAX_ATTEMPTS: u32 = 3;
/// Longest `Retry-After` we wait inside one Mount; longer waits are better spent by the driver's retry.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// Pages followed in one version listing (25 versions each): a bound against a looping `nextLink`.
const MAX_PAGES: usize = 200;
/// Largest body read for one object: a secret value is at most 25 KB, and its JSON with id,
/// attributes and tags stays far below this.
pub const MAX_OBJECT_BODY: usize = 256 * 1024;
/// Largest body read for one page of a version listing (25 versions with their tags).
pub const MAX_PAGE_BODY: usize = 1024 * 1024;

/// Which Key Vault collection an object lives in (`objectType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// `secret`: `/secrets`.
    Secret,
    /// `key`: `/keys`.
    Key,
    /// `cert`: `/certificates`.
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
    /// No complete answer (DNS, TLS, connection, timeout, oversized body).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Key Vault answered with an error.
    #[error("HTTP {status} {code}{}: {message}", inner.as_deref().map(|i| format!(" ({i})")).unwrap_or_default())]
    Status {
        /// HTTP status.
        status: u16,
        /// `error.code`, or the status text for non-JSON bodies.
        code: String,
        /// `error.innererror.code` (`ForbiddenByRbac`, `AccessDenied`, `SecretDisabled`, …).
        inner: Option<String>,
        /// `error.message`, or an excerpt of a non-JSON body.
        message: String,
    },
    /// A 200 answer that is not what the API documents.
    #[error("unexpected response ({reason})")]
    Decode {
        /// What did not parse.
        reason: String,
    },
}

impl KeyVaultError {
    /// The HTTP status of an error answer.
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
            Self::Transport(t) => !matches!(t.kind, FailureKind::Dns | FailureKind::TooLarge),
            Self::Decode { .. } => false,
        }
    }
}

/// A Key Vault response body of one object kind, fetched with [`KeyVaultClient::get`].
pub trait KeyVaultObject: DeserializeOwned {
    /// The collection it lives in.
    const KIND: ObjectKind;
    /// The version id the answer names (the last segment of its `id` or `kid`).
    fn version(&self) -> &str;
}

impl KeyVaultObject for SecretBundle {
    const KIND: ObjectKind = ObjectKind::Secret;
    fn version(&self) -> &str {
        version_of(&self.id)
    }
}

impl KeyVaultObject for KeyBundle {
    const KIND: ObjectKind = ObjectKind::Key;
    fn version(&self) -> &str {
        version_of(self.key.kid.as_deref().unwrap_or_default())
    }
}

impl KeyVaultObject for CertificateBundle {
    const KIND: ObjectKind = ObjectKind::Cert;
    fn version(&self) -> &str {
        version_of(&self.id)
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
    /// A client over the shared HTTP client.
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

    /// `GET /{collection}/{name}[/{version}]` for the object kind `T` stands for.
    pub async fn get<T: KeyVaultObject>(
        &self,
        vault_url: &str,
        name: &str,
        version: Option<&str>,
        token: &AccessToken,
    ) -> Result<T, KeyVaultError> {
        let url = Self::object_url(vault_url, T::KIND, name, version);
        self.get_json(&url, MAX_OBJECT_BODY, token).await
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
            let page: VersionPage = self.get_json(&url, MAX_PAGE_BODY, token).await?;
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
        limit: usize,
        token: &AccessToken,
    ) -> Result<T, KeyVaultError> {
        let mut attempt = 1;
        loop {
            match self.get_once(url, limit, token).await {
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

    /// One GET; a failure comes with the `Retry-After` it carried.
    async fn get_once<T: DeserializeOwned>(
        &self,
        url: &str,
        limit: usize,
        token: &AccessToken,
    ) -> Result<T, (KeyVaultError, Option<Duration>)> {
        let response = self
            .http
            .get(url)
            .header(AUTHORIZATION, token.header_value())
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| (TransportError::new(url, e).into(), None))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = read_body(url, response, limit)
            .await
            .map_err(|e| (e.into(), retry_after))?;
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
            message: excerpt(body),
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
