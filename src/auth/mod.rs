//! Getting a Key Vault access token for the identity a Mount selected (README, "Identity modes";
//! ARCHITECTURE.md, "Add an identity mode").
//!
//! One file per identity mode; [`entra`] holds the token endpoint shared by workload identity and
//! service principals. Entra ID and IMDS are called with plain REST over the shared client instead of
//! the Azure SDK credentials, which cache per credential object and so cannot share tokens between
//! the many Mounts of one workload.

pub mod assertion;
mod cache;
mod entra;
mod managed_identity;
mod pod_identity;
mod service_principal;
mod token_proxy;
mod workload;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use tracing::Instrument as _;

use crate::cloud::CloudEnvironment;
use crate::http::TransportError;
use crate::metrics::ErrorClass;
use crate::metrics::Metrics;
use crate::throttle::Gates;
use assertion::Assertion;
pub use cache::CacheKey;
use cache::TokenCache;

/// A bearer token for Key Vault. `Debug` never shows it.
#[derive(Clone)]
pub struct AccessToken {
    /// `Bearer <token>`, built once and marked sensitive so that HTTP logging never shows it.
    header: HeaderValue,
    /// When the token stops being valid, from `expires_in`.
    pub expires_at: Instant,
    /// Which token this is, unique in the process: a token Key Vault refused is replaced only if
    /// it is still the one cached, and requests are shared only between holders of the same token.
    serial: u64,
}

impl AccessToken {
    /// A token valid for `lifetime` from now; `None` when it cannot be sent in a header.
    pub fn new(secret: SecretString, lifetime: Duration) -> Option<Self> {
        static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut header =
            HeaderValue::try_from(format!("Bearer {}", secret.expose_secret())).ok()?;
        header.set_sensitive(true);
        Some(Self {
            header,
            expires_at: Instant::now() + lifetime,
            serial: SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// Which token this is (see the field).
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// The token itself (the header holds the only copy).
    #[cfg(test)]
    pub fn secret(&self) -> SecretString {
        let header = self.header.to_str().unwrap_or_default();
        SecretString::from(header.trim_start_matches("Bearer ").to_owned())
    }

    /// The `Authorization` header value (sensitive).
    pub fn header_value(&self) -> HeaderValue {
        self.header.clone()
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("serial", &self.serial)
            .finish()
    }
}

/// A JSON number that some peers send as a string (IMDS, NMI, ADFS and some proxies).
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum NumberOrString {
    Number(u64),
    String(String),
}

impl NumberOrString {
    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            Self::Number(n) => Some(*n),
            Self::String(s) => s.trim().parse().ok(),
        }
    }
}

/// Largest token-endpoint answer read (Entra, IMDS, NMI): tokens are a few kilobytes.
pub const MAX_TOKEN_BODY: usize = 64 * 1024;

impl crate::coalesce::Lost for AuthError {
    fn lost() -> Self {
        Self::Lost
    }
}

/// Who issued (or failed to issue) a token, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// The Entra ID token endpoint.
    Entra,
    /// The Azure Instance Metadata Service on the node.
    Imds,
    /// aad-pod-identity's NMI on the node.
    Nmi,
    /// The AKS identity-binding token proxy.
    TokenProxy,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Entra => "Entra ID",
            Self::Imds => "IMDS",
            Self::Nmi => "aad-pod-identity NMI",
            Self::TokenProxy => "the AKS token proxy",
        })
    }
}

/// A token answer that parsed but cannot be used (no token, or one that is not a valid header).
pub(crate) fn unusable_token(peer: Peer, host: &str) -> AuthError {
    AuthError::Decode {
        peer,
        host: host.to_owned(),
        reason: "the access token is empty or not a valid header value".to_owned(),
    }
}

/// The identity mode a SecretProviderClass selects, before the pod's credential is attached (what
/// `check` can know without a pod). [`Identity`] is the same mode with its credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `clientID`: the pod's service account federated with that identity.
    Workload {
        /// `clientID`.
        client_id: String,
    },
    /// `useAzureTokenProxy`: AKS identity binding.
    TokenProxy {
        /// `clientID`.
        client_id: String,
    },
    /// `useVMManagedIdentity`: the node's identity through IMDS.
    VmManagedIdentity {
        /// `userAssignedIdentityID`; `None` = system-assigned.
        client_id: Option<String>,
    },
    /// `usePodIdentity`: the deprecated aad-pod-identity.
    PodIdentity,
    /// No flag and no `clientID`: `clientid`/`clientsecret` from `nodePublishSecretRef`.
    ServicePrincipal,
}

impl Mode {
    /// The mode's name as users know it (each mode's file holds it).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Workload { .. } => workload::NAME,
            Self::TokenProxy { .. } => token_proxy::NAME,
            Self::VmManagedIdentity { .. } => managed_identity::NAME,
            Self::PodIdentity => pod_identity::NAME,
            Self::ServicePrincipal => service_principal::NAME,
        }
    }
}

/// The identity a Mount authenticates as, selected and validated by [`crate::mount`].
#[derive(Clone, Debug)]
// The variants are the modes' names as users know them ("VM managed identity", "pod identity").
#[allow(clippy::enum_variant_names)]
pub enum Identity {
    /// Workload identity: the pod's service-account token federated with `client_id`.
    Workload {
        /// `clientID`.
        client_id: String,
        /// The pod's service-account token.
        assertion: Assertion,
    },
    /// An app registration's client secret from `nodePublishSecretRef`.
    ServicePrincipal {
        /// `clientid` of the Secret.
        client_id: String,
        /// `clientsecret` of the Secret.
        client_secret: SecretString,
    },
    /// The node's managed identity through IMDS; `None` = system-assigned.
    VmManagedIdentity {
        /// `userAssignedIdentityID`.
        client_id: Option<String>,
    },
    /// aad-pod-identity's NMI on the node.
    PodIdentity {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
    },
    /// AKS identity binding through the token proxy.
    TokenProxy {
        /// `clientID`.
        client_id: String,
        /// The pod's service-account token for the identity-binding audience.
        assertion: Assertion,
    },
}

impl Identity {
    /// The identity as users name it, for messages: mode and client id (or pod).
    pub fn describe(&self) -> String {
        match self {
            Self::Workload { client_id, .. }
            | Self::ServicePrincipal { client_id, .. }
            | Self::TokenProxy { client_id, .. } => {
                format!("{} with client ID {client_id}", self.mode())
            }
            Self::VmManagedIdentity { client_id: None } => {
                "node's system-assigned managed identity".to_owned()
            }
            Self::VmManagedIdentity {
                client_id: Some(id),
            } => format!("node's user-assigned managed identity {id}"),
            Self::PodIdentity { namespace, pod } => {
                format!("pod identity bound to {namespace}/{pod}")
            }
        }
    }

    /// The mode's name as users know it, for logs and messages.
    pub fn mode(&self) -> &'static str {
        self.selection().name()
    }

    /// The mode this identity was selected as, without its credential.
    pub fn selection(&self) -> Mode {
        match self {
            Self::Workload { client_id, .. } => Mode::Workload {
                client_id: client_id.clone(),
            },
            Self::TokenProxy { client_id, .. } => Mode::TokenProxy {
                client_id: client_id.clone(),
            },
            Self::ServicePrincipal { .. } => Mode::ServicePrincipal,
            Self::VmManagedIdentity { client_id } => Mode::VmManagedIdentity {
                client_id: client_id.clone(),
            },
            Self::PodIdentity { .. } => Mode::PodIdentity,
        }
    }
}

/// Why no token could be had. Messages are shown to the user.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Entra ID answered with an error.
    #[error(
        "{peer} ({host}) refused the {mode} token request for client ID {client_id} in tenant {tenant}: \
         HTTP {status}: {description}{}",
        hint.as_deref().map(|h| format!(". {h}")).unwrap_or_default()
    )]
    Entra {
        /// Entra ID, or the AKS token proxy in front of it.
        peer: Peer,
        /// The authority's host.
        host: String,
        /// The identity mode that asked.
        mode: &'static str,
        /// `tenantID`.
        tenant: String,
        /// The client id the grant named.
        client_id: String,
        /// HTTP status.
        status: u16,
        /// `error_codes` (AADSTS numbers).
        codes: Vec<u64>,
        /// `error_description`, on one line.
        description: String,
        /// What to do about it, when we know.
        hint: Option<String>,
    },
    /// IMDS answered with an error.
    #[error(
        "the node's managed identity ({identity}) could not get a token (IMDS HTTP {status}): \
         {description}{}",
        hint.as_deref().map(|h| format!(". {h}")).unwrap_or_default()
    )]
    Imds {
        /// `system-assigned` or `user-assigned <client id>`.
        identity: String,
        /// HTTP status.
        status: u16,
        /// IMDS's `error_description`.
        description: String,
        /// What to do about it, when we know.
        hint: Option<String>,
    },
    /// IMDS could not be reached or gave no complete answer.
    #[error(
        "the node's managed identity ({identity}) could not get a token: cannot reach IMDS at \
         {endpoint}: {error}. the provider needs hostNetwork: true to reach IMDS, and the node must \
         be an Azure VM"
    )]
    ImdsUnreachable {
        /// `system-assigned` or `user-assigned <client id>`.
        identity: String,
        /// The IMDS base URL.
        endpoint: String,
        /// What went wrong; its kind is the metrics class.
        error: TransportError,
    },
    /// aad-pod-identity's NMI refused.
    #[error("pod identity for {pod}: {description}")]
    PodIdentity {
        /// `namespace/name`.
        pod: String,
        /// HTTP status.
        status: u16,
        /// What NMI said, with advice.
        description: String,
    },
    /// aad-pod-identity's NMI could not be reached or gave no complete answer.
    #[error(
        "pod identity for {pod}: cannot reach NMI at {endpoint}: {error}; is aad-pod-identity \
         installed and the provider running with hostNetwork: true?"
    )]
    NmiUnreachable {
        /// `namespace/name`.
        pod: String,
        /// The NMI base URL.
        endpoint: String,
        /// What went wrong; its kind is the metrics class.
        error: TransportError,
    },
    /// The token endpoint could not be reached or gave no complete answer.
    #[error("cannot get a token from {peer}: {error}")]
    Transport {
        /// Which endpoint.
        peer: Peer,
        /// What went wrong (names the host).
        error: TransportError,
    },
    /// The endpoint answered with something that is not a token response.
    #[error("{peer} at {host} sent an unexpected response: {reason}")]
    Decode {
        /// Which endpoint.
        peer: Peer,
        /// Its host.
        host: String,
        /// What did not parse.
        reason: String,
    },
    /// The token endpoint is throttling longer than the Mount can wait.
    #[error(
        "{peer} at {host} is throttling this node's token requests for another {}s; the driver will \
         retry the Mount",
        crate::throttle::whole_seconds(*remaining)
    )]
    Throttled {
        /// Which endpoint.
        peer: Peer,
        /// Its host.
        host: String,
        /// How long it will still refuse requests.
        remaining: Duration,
    },
    /// The Mount's deadline passed while waiting for a free request slot to the endpoint.
    #[error(
        "the Mount's deadline passed while waiting for a free request slot to {peer} at {host} (this \
         node has {ENTRA_IN_FLIGHT} token requests in flight to it, none of which answered in time); \
         the driver will retry the Mount"
    )]
    Busy {
        /// Which endpoint.
        peer: Peer,
        /// Its host.
        host: String,
    },
    /// The token request ended without an answer (an internal error).
    #[error("the token request was lost (internal error); the driver will retry the Mount")]
    Lost,
    /// The daemon lacks a setting this identity mode needs.
    #[error("{what}")]
    NotConfigured {
        /// What to set.
        what: String,
    },
}

impl AuthError {
    /// The metrics class of this failure.
    pub fn class(&self) -> ErrorClass {
        let of_status = |status: u16| match status {
            400..=499 if status != 429 => ErrorClass::Unauthenticated,
            other => ErrorClass::of_status(other),
        };
        match self {
            Self::Entra { status, .. } => of_status(*status),
            Self::Imds { status, .. } | Self::PodIdentity { status, .. } => of_status(*status),
            Self::Transport { error, .. }
            | Self::ImdsUnreachable { error, .. }
            | Self::NmiUnreachable { error, .. } => error.class(),
            Self::Decode { .. } | Self::Lost => ErrorClass::ServerError,
            Self::Throttled { .. } => ErrorClass::Throttled,
            Self::Busy { .. } => ErrorClass::Timeout,
            Self::NotConfigured { .. } => ErrorClass::Configuration,
        }
    }

    /// Worth a retry by the driver (Entra or the network briefly unavailable).
    pub fn is_transient(&self) -> bool {
        match self {
            // A garbled answer usually comes from a proxy or gateway in trouble: worth a retry. So
            // is a transport failure, even a redirect: the path to the peer may be fixed meanwhile.
            Self::Transport { .. }
            | Self::ImdsUnreachable { .. }
            | Self::NmiUnreachable { .. }
            | Self::Throttled { .. }
            | Self::Busy { .. }
            | Self::Lost
            | Self::Decode { .. } => true,
            Self::Entra { status, .. }
            | Self::Imds { status, .. }
            | Self::PodIdentity { status, .. } => *status == 429 || *status >= 500,
            Self::NotConfigured { .. } => false,
        }
    }
}

/// Gets tokens for every identity mode over the shared HTTP client, through the token cache.
#[derive(Clone, Debug)]
pub struct Authenticator {
    http: reqwest::Client,
    /// For the node-local endpoints (IMDS, NMI): plain HTTP, never through a proxy.
    local_http: reqwest::Client,
    endpoints: LocalEndpoints,
    cache: TokenCache,
    /// Entra authorities' throttling, shared by every Mount.
    gates: Gates,
    metrics: Metrics,
}

/// Node-local token endpoints.
#[derive(Clone, Debug)]
pub struct LocalEndpoints {
    /// IMDS base URL, e.g. `http://169.254.169.254`.
    pub imds: String,
    /// aad-pod-identity NMI base URL, e.g. `http://localhost:2579`.
    pub nmi: String,
    /// Identity binding: the token proxy as an authority (`https://<sni-name>[:port]/`), when
    /// `--token-proxy-url` is set.
    pub token_proxy: Option<String>,
}

/// Token requests in flight to one Entra authority at once (they are rare: one per identity and
/// hour).
const ENTRA_IN_FLIGHT: usize = 16;

/// A token and the cache key of the identity it was issued to (which also keys the object cache:
/// nothing fetched with one identity's token is ever served to another).
#[derive(Clone, Debug)]
pub struct IdentityToken {
    /// The bearer token.
    pub token: AccessToken,
    /// Who it was issued to.
    pub key: CacheKey,
}

impl Authenticator {
    /// An authenticator with its own token cache.
    pub fn new(
        http: reqwest::Client,
        local_http: reqwest::Client,
        endpoints: LocalEndpoints,
        metrics: Metrics,
    ) -> Self {
        Self {
            http,
            local_http,
            endpoints,
            cache: TokenCache::new(cache::DEFAULT_CAPACITY, metrics.clone()),
            gates: Gates::new(ENTRA_IN_FLIGHT),
            metrics,
        }
    }

    /// A Key Vault token for `identity` in `tenant` on `cloud`, within `deadline`.
    pub async fn token(
        &self,
        cloud: &CloudEnvironment,
        tenant: &str,
        identity: &Identity,
        deadline: Instant,
    ) -> Result<IdentityToken, Arc<AuthError>> {
        let (key, mode, fetch) = self.plan(cloud, tenant, identity, deadline, None)?;
        let fetch = self.counted(mode, fetch);
        let token = self.cache.get_or_fetch(&key, move || fetch).await?;
        Ok(IdentityToken { token, key })
    }

    /// A new token in place of `refused`, which Key Vault answered with 401 (revoked, or a claims
    /// challenge of continuous access evaluation, whose `claims` the new request carries; IMDS and
    /// NMI take none). Only that identity's entry is dropped, and only if it still holds the
    /// refused token; concurrent callers share one request.
    pub async fn replace(
        &self,
        cloud: &CloudEnvironment,
        tenant: &str,
        identity: &Identity,
        refused: &IdentityToken,
        claims: Option<String>,
        deadline: Instant,
    ) -> Result<IdentityToken, Arc<AuthError>> {
        let (key, mode, fetch) = self.plan(cloud, tenant, identity, deadline, claims)?;
        let fetch = self.counted(mode, fetch);
        let token = self
            .cache
            .replace(&key, refused.token.serial(), move || fetch)
            .await?;
        Ok(IdentityToken { token, key })
    }

    /// `fetch`, logged and counted in `akv_token_requests_total`.
    fn counted(
        &self,
        mode: &'static str,
        fetch: TokenFuture,
    ) -> impl std::future::Future<Output = Result<AccessToken, AuthError>> + Send + 'static {
        let metrics = self.metrics.clone();
        async move {
            tracing::debug!(mode, "requesting a token");
            let started = std::time::Instant::now();
            let result = fetch.await;
            tracing::debug!(
                mode,
                outcome = result.as_ref().err().map_or("ok", |e| e.class().as_str()),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "token request finished"
            );
            metrics.token_request(mode, result.as_ref().err().map(AuthError::class));
            result
        }
        // Runs in its own task (it may outlive this Mount): it logs in this Mount's span.
        .instrument(tracing::Span::current())
    }

    /// The cache key, the mode's name and the request that gets a new token. Each mode's file owns
    /// its key and its request; this only hands them what they may need.
    fn plan(
        &self,
        cloud: &CloudEnvironment,
        tenant: &str,
        identity: &Identity,
        deadline: Instant,
        claims: Option<String>,
    ) -> Result<(CacheKey, &'static str, TokenFuture), Arc<AuthError>> {
        let ctx = TokenContext {
            cloud: cloud.clone(),
            tenant: tenant.to_owned(),
            endpoints: self.endpoints.clone(),
            local_http: self.local_http.clone(),
            deadline,
            entra: EntraContext {
                http: self.http.clone(),
                gates: self.gates.clone(),
                deadline,
                claims,
            },
        };
        let planned = match identity {
            Identity::Workload {
                client_id,
                assertion,
            } => Ok(workload::plan(ctx, client_id, assertion)),
            Identity::TokenProxy {
                client_id,
                assertion,
            } => token_proxy::plan(ctx, client_id, assertion),
            Identity::ServicePrincipal {
                client_id,
                client_secret,
            } => Ok(service_principal::plan(ctx, client_id, client_secret)),
            Identity::VmManagedIdentity { client_id } => {
                Ok(managed_identity::plan(ctx, client_id.as_deref()))
            }
            Identity::PodIdentity { namespace, pod } => Ok(pod_identity::plan(ctx, namespace, pod)),
        };
        let (key, fetch) = planned?;
        Ok((key, identity.mode(), fetch))
    }
}

/// A token request, owned so that it can outlive the Mount that started it.
pub(crate) type TokenFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<AccessToken, AuthError>> + Send>>;

/// A mode's cache key and the request that gets it a new token.
pub(crate) type Planned = (CacheKey, TokenFuture);

/// Everything a mode's token request may need, owned (the request can outlive the Mount).
pub(crate) struct TokenContext {
    pub(crate) cloud: CloudEnvironment,
    pub(crate) tenant: String,
    pub(crate) endpoints: LocalEndpoints,
    /// For the node-local endpoints (IMDS, NMI).
    pub(crate) local_http: reqwest::Client,
    pub(crate) deadline: Instant,
    /// For Entra ID and the token proxy.
    pub(crate) entra: EntraContext,
}

/// What a request to Entra (or the token proxy) needs besides the grant.
pub(crate) struct EntraContext {
    pub(crate) http: reqwest::Client,
    pub(crate) gates: Gates,
    pub(crate) deadline: Instant,
    /// A claims challenge to satisfy (the JSON Key Vault's `WWW-Authenticate` carried, decoded).
    pub(crate) claims: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a token request that found every slot to its authority taken until the
    /// deadline was reported as "throttling ... for another 0s", sending operators to look for
    /// 429s that never came.
    #[test]
    fn waiting_for_a_slot_is_not_reported_as_throttling() {
        let busy = AuthError::Busy {
            peer: Peer::Entra,
            host: "login.microsoftonline.com".into(),
        };
        let text = busy.to_string();
        assert!(!text.contains("throttling"), "{text}");
        assert!(text.contains("login.microsoftonline.com"), "{text}");
        assert!(text.contains("free request slot"), "{text}");
        assert_eq!(busy.class(), ErrorClass::Timeout);
        assert!(busy.is_transient());
    }
}
