//! Key Vault data-plane client: GET secret/key/certificate and version listings over the shared
//! HTTPS client, with the bearer token sent directly (the scope is known from the cloud, so there is
//! no unauthenticated challenge round trip like the SDKs make).

pub mod cache;
pub mod models;

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::sync::Arc;
use std::time::Instant;

use reqwest::StatusCode;
use reqwest::header::AUTHORIZATION;
use serde::de::DeserializeOwned;
use tracing::Instrument as _;
use zeroize::Zeroizing;

use crate::auth::{AccessToken, IdentityToken};
use crate::coalesce::{Abandon, Coalescer, Joined};
use crate::http::{TransportError, excerpt, read_body};
use crate::metrics::ErrorClass;
use crate::metrics::{CacheEvent, Metrics};
use crate::retry::{Backoff, Failure, Policy};
use crate::throttle::{Gates, Refused};
use cache::{Body, ObjectCache, ObjectKey};
use models::{
    CertificateBundle, ErrorBody, KeyBundle, SecretBundle, VersionItem, VersionPage, version_of,
};

/// API version sent on every request (current and supported by every public cloud and Azure Stack Hub
/// 2301+).
pub const API_VERSION: &str = "7.4";

/// Three attempts for transient (5xx, connection) failures, 400 ms apart and doubling, or the
/// vault's `Retry-After` up to 10 s: longer waits are better spent by the driver's retry.
const RETRY: Policy = Policy {
    attempts: 3,
    backoff: Backoff::new(Duration::from_millis(400), Duration::from_secs(10)),
    max_retry_after: Duration::from_secs(10),
};
/// Pages followed in one version listing (25 versions each): a bound against a looping `nextLink`.
const MAX_PAGES: usize = 200;
/// Largest body read for one object: a secret value is at most 25 KB, and its JSON with id,
/// attributes and tags stays far below this.
pub const MAX_OBJECT_BODY: usize = 256 * 1024;
/// Most versions kept from a listing: what [`MAX_PAGES`] pages of 25 hold.
const MAX_VERSIONS: usize = MAX_PAGES * 25;
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
        /// With a 401: the claims of a continuous access evaluation challenge (`WWW-Authenticate:
        /// Bearer … error="insufficient_claims", claims="<base64 JSON>"`), decoded, for the request
        /// of the replacement token.
        claims: Option<String>,
    },
    /// The vault is throttling (429) for longer than the Mount can wait.
    #[error(
        "the vault is throttling requests (HTTP 429 Throttled) for another {}s; the driver will retry \
         the Mount",
        crate::throttle::whole_seconds(*remaining)
    )]
    Throttled {
        /// How long the vault will still refuse requests.
        remaining: Duration,
    },
    /// Every slot for this vault stayed taken until the Mount's deadline.
    #[error(
        "the Mount's deadline passed while waiting for a free request slot to the vault (too many \
         requests to it from this node; see --max-concurrent-fetches)"
    )]
    Busy,
    /// The request ended without an answer (an internal error).
    #[error("the request was lost (internal error); the driver will retry the Mount")]
    Lost,
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

    /// Key Vault refused the token (HTTP 401); with the claims its challenge asked for, if any.
    pub fn refused_token(&self) -> Option<Option<&str>> {
        match self {
            Self::Status {
                status: 401,
                claims,
                ..
            } => Some(claims.as_deref()),
            _ => None,
        }
    }

    /// The object does not exist (404) or is disabled (403 `…Disabled`): what `optional: "true"`
    /// forgives. `Some("not_found" | "disabled")`, the reason as metrics and logs name it.
    pub fn absence(&self) -> Option<&'static str> {
        match self {
            Self::Status { status: 404, .. } => Some("not_found"),
            Self::Status {
                status: 403,
                inner: Some(inner),
                ..
            } if inner.ends_with("Disabled") => Some("disabled"),
            _ => None,
        }
    }

    /// The metrics class of this failure.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Transport(t) => t.class(),
            Self::Status { status, .. } => ErrorClass::of_status(*status),
            Self::Throttled { .. } => ErrorClass::Throttled,
            Self::Busy => ErrorClass::Timeout,
            Self::Lost => ErrorClass::ServerError,
            Self::Decode { .. } => ErrorClass::Conversion,
        }
    }

    /// Worth retrying: throttling, server errors and transport failures other than DNS.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Transport(t) => t.is_transient(),
            Self::Throttled { .. } | Self::Busy | Self::Lost => true,
            Self::Decode { .. } => false,
        }
    }
}

impl crate::coalesce::Lost for KeyVaultError {
    fn lost() -> Self {
        Self::Lost
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

/// Key Vault REST client, shared by every Mount (cheap to clone).
///
/// Requests go through three shared mechanisms: identical requests of one identity in flight at the
/// same time are sent once ([`Coalescer`]); each vault has a bound on requests in flight and one
/// shared wait when it throttles ([`Gates`]); and, when `--object-cache-ttl` is set, answers are kept
/// for that long ([`ObjectCache`]).
#[derive(Clone, Debug)]
pub struct KeyVaultClient {
    http: reqwest::Client,
    metrics: Metrics,
    gates: Gates,
    /// Keyed by the request and the token's serial: a Mount holding a replacement token never waits
    /// for (and so never gets the 401 of) a request made with the token it replaced.
    flights: Coalescer<(ObjectKey, u64), Body, KeyVaultError>,
    cache: Option<ObjectCache>,
}

/// Who asks, and until when: the per-Mount part of a request.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    /// The token, and the identity it belongs to (which keys coalescing and the cache).
    pub token: &'a IdentityToken,
    /// The Mount's deadline: no wait extends past it.
    pub deadline: Instant,
}

/// Settings of the client.
#[derive(Clone, Copy, Debug)]
pub struct ClientSettings {
    /// Requests in flight per vault.
    pub max_in_flight_per_vault: usize,
    /// How long answers are kept; zero: not at all.
    pub cache_ttl: Duration,
    /// Bytes the cache may hold.
    pub cache_max_bytes: usize,
}

/// What one request needs once it leaves the caller (it may outlive the Mount that started it).
struct Job {
    http: reqwest::Client,
    metrics: Metrics,
    gates: Gates,
    cache: Option<ObjectCache>,
    key: ObjectKey,
    kind: ObjectKind,
    name: String,
    limit: usize,
    token: AccessToken,
    deadline: Instant,
}

impl KeyVaultClient {
    /// A client over the shared HTTP client.
    pub fn new(http: reqwest::Client, metrics: Metrics, settings: ClientSettings) -> Self {
        let cache = (!settings.cache_ttl.is_zero()).then(|| {
            ObjectCache::new(
                settings.cache_ttl,
                settings.cache_max_bytes,
                metrics.clone(),
            )
        });
        Self {
            http,
            gates: Gates::new(settings.max_in_flight_per_vault),
            flights: Coalescer::new(Abandon::Abort),
            cache,
            metrics,
        }
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
        caller: Caller<'_>,
        vault_url: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<T, Arc<KeyVaultError>> {
        let url = Self::object_url(vault_url, T::KIND, name, version);
        let body = self
            .fetch(caller, url, T::KIND, name, MAX_OBJECT_BODY)
            .await?;
        decode(&body)
    }

    /// Every version of an object, following `nextLink` (only within the same vault).
    pub async fn list_versions(
        &self,
        caller: Caller<'_>,
        vault_url: &str,
        kind: ObjectKind,
        name: &str,
    ) -> Result<Vec<VersionItem>, Arc<KeyVaultError>> {
        let url = format!(
            "{vault_url}/{}/{}/versions?api-version={API_VERSION}&maxresults=25",
            kind.collection(),
            utf8_percent_encode(name, SEGMENT)
        );
        self.list(caller, (vault_url, url), kind, name, "versions")
            .await
    }

    /// Every object of a kind in the vault (`GET /{collection}`), following `nextLink`: its base id
    /// (no version), attributes and whether it is managed (backs a certificate).
    pub async fn list_objects(
        &self,
        caller: Caller<'_>,
        vault_url: &str,
        kind: ObjectKind,
    ) -> Result<Vec<VersionItem>, Arc<KeyVaultError>> {
        let url = format!(
            "{vault_url}/{}?api-version={API_VERSION}&maxresults=25",
            kind.collection()
        );
        let what = format!("({} listing)", kind.collection());
        self.list(caller, (vault_url, url), kind, &what, kind.collection())
            .await
    }

    /// The items of every page from the first (`(vault URL, first page URL)`) on; pages past
    /// the first only from the same vault. `noun` names what is listed, in errors.
    async fn list(
        &self,
        caller: Caller<'_>,
        (vault_url, mut url): (&str, String),
        kind: ObjectKind,
        name: &str,
        noun: &str,
    ) -> Result<Vec<VersionItem>, Arc<KeyVaultError>> {
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let body = self.fetch(caller, url, kind, name, MAX_PAGE_BODY).await?;
            let page: VersionPage = decode(&body)?;
            // Pages are asked for 25 at a time; a peer sending many tiny items per page must not
            // make the list (kept while the pages are followed) grow past what 200 real pages hold.
            if items.len() + page.value.len() > MAX_VERSIONS {
                return Err(Arc::new(KeyVaultError::Decode {
                    reason: format!("more than {MAX_VERSIONS} {noun} listed"),
                }));
            }
            items.extend(page.value);
            match page.next_link.filter(|l| !l.is_empty()) {
                // The token must only ever go to the vault it was asked for.
                Some(next) if next.starts_with(&format!("{vault_url}/")) => url = next,
                Some(next) => {
                    return Err(Arc::new(KeyVaultError::Decode {
                        // The host only: the rest of a foreign URL may carry anything.
                        reason: format!(
                            "nextLink points outside {vault_url}, to {}",
                            crate::http::host_of(&next)
                        ),
                    }));
                }
                None => return Ok(items),
            }
        }
        Err(Arc::new(KeyVaultError::Decode {
            reason: format!("more than {MAX_PAGES} pages of {noun}"),
        }))
    }

    /// The body at `url` for the caller's identity: from the cache, from an identical request in
    /// flight, or from a new one.
    async fn fetch(
        &self,
        caller: Caller<'_>,
        url: String,
        kind: ObjectKind,
        name: &str,
        limit: usize,
    ) -> Result<Body, Arc<KeyVaultError>> {
        let key = ObjectKey {
            identity: caller.token.key.clone(),
            url,
        };
        if let Some(body) = self.cache.as_ref().and_then(|c| c.get(&key)) {
            self.metrics.object_cache(CacheEvent::Hit);
            return Ok(body);
        }
        let job = Job {
            http: self.http.clone(),
            metrics: self.metrics.clone(),
            gates: self.gates.clone(),
            cache: self.cache.clone(),
            key: key.clone(),
            kind,
            name: name.to_owned(),
            limit,
            token: caller.token.token.clone(),
            deadline: caller.deadline,
        };
        // The request may run in another task (shared by coalesced callers): it logs in the span of
        // the Mount that started it.
        let work = job.run().instrument(tracing::Span::current());
        let (result, joined) = self
            .flights
            .run((key, caller.token.token.serial()), work)
            .await;
        self.metrics.object_cache(match joined {
            Joined::Started => CacheEvent::Miss,
            Joined::Coalesced => CacheEvent::Coalesced,
        });
        result
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Arc<KeyVaultError>> {
    serde_json::from_slice(body).map_err(|e| {
        Arc::new(KeyVaultError::Decode {
            reason: format!("HTTP 200 with a body that is not the expected JSON: {e}"),
        })
    })
}

impl Job {
    /// The request with its retries, timed for `keyvault_request`, its answer kept when caching.
    async fn run(self) -> Result<Body, KeyVaultError> {
        let started = Instant::now();
        let result = self.with_retries().await;
        tracing::debug!(
            object_type = self.kind.as_str(),
            object = %self.name,
            elapsed_ms = started.elapsed().as_millis() as u64,
            bytes = result.as_ref().map_or(0, |b| b.len()),
            outcome = result.as_ref().err().map_or("ok", |e| e.class().as_str()),
            "Key Vault request"
        );
        self.metrics.keyvault_request(
            self.kind.as_str(),
            &self.name,
            result.as_ref().err().map(KeyVaultError::class),
            started.elapsed(),
        );
        if let (Ok(body), Some(cache)) = (&result, &self.cache) {
            cache.insert(self.key.clone(), body.clone());
        }
        result
    }

    async fn with_retries(&self) -> Result<Body, KeyVaultError> {
        let url = &self.key.url;
        let host = &crate::http::host_of(url);
        // The vault's name, for metrics: the first label of its host.
        let vault = &host.split('.').next().unwrap_or_default().to_owned();
        crate::retry::run(&RETRY, "Key Vault request", self.deadline, |_| async move {
            let pass = self
                .gates
                .enter(host, self.deadline)
                .await
                .map_err(|refused| {
                    Failure::Final(match refused {
                        Refused::Throttled { remaining } => KeyVaultError::Throttled { remaining },
                        Refused::Busy => KeyVaultError::Busy,
                    })
                })?;
            if !pass.waited.is_zero() {
                self.metrics.throttle_wait(vault, pass.waited);
            }
            match get_once(&self.http, url, self.limit, &self.token, self.deadline).await {
                Ok(body) => {
                    pass.succeeded();
                    Ok(Arc::new(body))
                }
                // Every Mount waits at the vault's gate (which refuses once the deadline is too
                // near): not an attempt of this request's own.
                Err((err, retry_after)) if err.status() == Some(429) => {
                    self.metrics.keyvault_throttled(vault);
                    let wait = pass.throttled(retry_after);
                    tracing::warn!(vault = %vault, ?wait, "Key Vault is throttling; requests to it wait");
                    Err(Failure::Again)
                }
                Err((error, retry_after)) if error.is_transient() => {
                    Err(Failure::Transient { error, retry_after })
                }
                Err((err, _)) => Err(Failure::Final(err)),
            }
        })
        .await
    }
}

/// One GET; a failure comes with the `Retry-After` it carried.
async fn get_once(
    http: &reqwest::Client,
    url: &str,
    limit: usize,
    token: &AccessToken,
    deadline: Instant,
) -> Result<Zeroizing<Vec<u8>>, (KeyVaultError, Option<Duration>)> {
    let response = http
        .get(url)
        .header(AUTHORIZATION, token.header_value())
        .header("Accept", "application/json")
        .timeout(crate::http::until(deadline))
        .send()
        .await
        .map_err(|e| (TransportError::new(url, e).into(), None))?;
    let status = response.status();
    let retry_after = crate::http::retry_after(response.headers());
    let claims = (status == StatusCode::UNAUTHORIZED)
        .then(|| challenge_claims(response.headers()))
        .flatten();
    let body = read_body(url, response, limit)
        .await
        .map_err(|e| (e.into(), retry_after))?;
    if status == StatusCode::OK {
        return Ok(Zeroizing::new(body.to_vec()));
    }
    Err((status_error(status, &body, claims), retry_after))
}

/// The error answer `body` with `status`; `claims` from a 401's challenge.
fn status_error(status: StatusCode, body: &[u8], claims: Option<String>) -> KeyVaultError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => KeyVaultError::Status {
            status: status.as_u16(),
            code: error.code,
            inner: error.innererror.map(|i| i.code).filter(|c| !c.is_empty()),
            message: error.message,
            claims,
        },
        Err(_) => KeyVaultError::Status {
            status: status.as_u16(),
            code: status.canonical_reason().unwrap_or("").to_owned(),
            inner: None,
            // Bodies of non-JSON errors (proxies, gateways) are short HTML or text; a bounded excerpt
            // helps more than nothing and cannot carry a secret (the request had none in its body).
            message: excerpt(body),
            claims,
        },
    }
}

/// The decoded `claims` of a `WWW-Authenticate: Bearer …, claims="<base64 JSON>"` challenge; a
/// value that is not base64 of a JSON object is ignored (the token is then replaced without it).
fn challenge_claims(headers: &reqwest::header::HeaderMap) -> Option<String> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let value = headers
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let start = v.find("claims=\"")? + "claims=\"".len();
            let len = v[start..].find('"')?;
            Some(v[start..start + len].trim().to_owned())
        })?;
    let decoded = [
        GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT),
        GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT),
    ]
    .iter()
    .find_map(|engine| engine.decode(&value).ok())?;
    // Sent on as decoded: Entra matches the claims request, not a re-serialization of it.
    let text = String::from_utf8(decoded).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.is_object().then_some(text)
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
    fn a_claims_challenge_is_decoded() {
        use reqwest::header::{HeaderMap, HeaderValue, WWW_AUTHENTICATE};
        let mut headers = HeaderMap::new();
        // {"access_token":{"nbf":{"essential":true,"value":"1726077595"}}}, padding dropped.
        headers.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", \
                 error=\"insufficient_claims\", \
                 claims=\"eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwidmFsdWUiOiIxNzI2MDc3NTk1In19fQ\"",
            ),
        );
        assert_eq!(
            challenge_claims(&headers).as_deref(),
            Some(r#"{"access_token":{"nbf":{"essential":true,"value":"1726077595"}}}"#)
        );
        headers.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer authorization=\"https://login.windows.net/t\", resource=\"https://vault.azure.net\""),
        );
        assert_eq!(challenge_claims(&headers), None);
        headers.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer claims=\"bm90IGpzb24\""),
        );
        assert_eq!(challenge_claims(&headers), None, "not JSON");
    }

    #[test]
    fn error_bodies_keep_code_inner_code_and_message() {
        let body = br#"{"error":{"code":"Forbidden","message":"Caller is not authorized","innererror":{"code":"ForbiddenByRbac"}}}"#;
        let err = status_error(StatusCode::FORBIDDEN, body, None);
        assert_eq!(
            err.to_string(),
            "HTTP 403 Forbidden (ForbiddenByRbac): Caller is not authorized"
        );
        assert!(!err.is_transient());
        let err = status_error(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>", None);
        assert!(err.is_transient());
        assert!(err.to_string().contains("bad gateway"));
    }
}
