//! Getting a Key Vault access token for the identity a Mount selected (spec 3).
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
mod workload;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::cloud::CloudEnvironment;
use crate::http::TransportError;
use assertion::Assertion;
use cache::{CacheKey, TokenCache};

/// A bearer token for Key Vault. `Debug` never shows it.
#[derive(Clone)]
pub struct AccessToken {
    secret: SecretString,
    /// `Bearer <token>`, built once and marked sensitive so that HTTP logging never shows it.
    header: HeaderValue,
    /// When the token stops being valid, from `expires_in`.
    pub expires_at: Instant,
}

impl AccessToken {
    /// A token valid for `lifetime` from now; `None` when it cannot be sent in a header.
    pub fn new(secret: SecretString, lifetime: Duration) -> Option<Self> {
        let mut header =
            HeaderValue::try_from(format!("Bearer {}", secret.expose_secret())).ok()?;
        header.set_sensitive(true);
        Some(Self {
            secret,
            header,
            expires_at: Instant::now() + lifetime,
        })
    }

    /// The token itself.
    pub fn secret(&self) -> &SecretString {
        &self.secret
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

/// The identity a Mount authenticates as, selected and validated by [`crate::mount`].
#[derive(Clone, Debug)]
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
    /// The mode's name as users know it, for logs and messages.
    pub fn mode(&self) -> &'static str {
        match self {
            Self::Workload { .. } => "workload identity",
            Self::ServicePrincipal { .. } => "service principal",
            Self::VmManagedIdentity { .. } => "VM managed identity",
            Self::PodIdentity { .. } => "pod identity",
            Self::TokenProxy { .. } => "identity binding",
        }
    }
}

/// Why no token could be had. Messages are shown to the user.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Entra ID answered with an error.
    #[error(
        "Entra ID refused the {mode} token request for client ID {client_id} in tenant {tenant}: \
         {description}{}",
        hint.as_deref().map(|h| format!(". {h}")).unwrap_or_default()
    )]
    Entra {
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
    /// IMDS answered with an error or could not be reached.
    #[error(
        "the node's managed identity ({identity}) could not get a token{}: {description}{}",
        status.map(|s| format!(" (IMDS HTTP {s})")).unwrap_or_default(),
        hint.as_deref().map(|h| format!(". {h}")).unwrap_or_default()
    )]
    Imds {
        /// `system-assigned` or `user-assigned <client id>`.
        identity: String,
        /// HTTP status; `None` when IMDS could not be reached.
        status: Option<u16>,
        /// IMDS's `error_description`, or the transport failure.
        description: String,
        /// What to do about it, when we know.
        hint: Option<String>,
    },
    /// aad-pod-identity's NMI refused or could not be reached.
    #[error("pod identity for {pod}: {description}")]
    PodIdentity {
        /// `namespace/name`.
        pod: String,
        /// HTTP status; `None` when NMI could not be reached.
        status: Option<u16>,
        /// What NMI said, or the transport failure, with advice.
        description: String,
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
    /// The daemon lacks a setting this identity mode needs.
    #[error("{what}")]
    NotConfigured {
        /// What to set.
        what: String,
    },
}

impl AuthError {
    /// Worth a retry by the driver (Entra or the network briefly unavailable).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Entra { status, .. } => *status == 429 || *status >= 500,
            Self::Imds { status, .. } | Self::PodIdentity { status, .. } => {
                status.is_none_or(|s| s == 429 || s >= 500)
            }
            Self::Decode { .. } | Self::NotConfigured { .. } => false,
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
    cache: Arc<TokenCache>,
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

impl Authenticator {
    /// An authenticator with its own token cache.
    pub fn new(
        http: reqwest::Client,
        local_http: reqwest::Client,
        endpoints: LocalEndpoints,
    ) -> Self {
        Self {
            http,
            local_http,
            endpoints,
            cache: Arc::new(TokenCache::default()),
        }
    }

    /// The federated grant (workload identity, identity binding), cached per presenter.
    async fn federated(
        &self,
        peer: Peer,
        mode: &'static str,
        cloud: &CloudEnvironment,
        tenant: &str,
        client_id: &str,
        assertion: &Assertion,
    ) -> Result<AccessToken, AuthError> {
        let key = CacheKey::Workload {
            authority: cloud.authority.clone(),
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            scope: cloud.key_vault_scope(),
            issuer: assertion.issuer.clone(),
            subject: assertion.subject.clone(),
        };
        self.cache
            .get_or_fetch(&key, || {
                workload::token(&self.http, peer, mode, cloud, tenant, client_id, assertion)
            })
            .await
    }

    /// A Key Vault token for `identity` in `tenant` on `cloud`.
    pub async fn token(
        &self,
        cloud: &CloudEnvironment,
        tenant: &str,
        identity: &Identity,
    ) -> Result<AccessToken, AuthError> {
        match identity {
            Identity::Workload {
                client_id,
                assertion,
            } => {
                self.federated(
                    Peer::Entra,
                    "workload identity",
                    cloud,
                    tenant,
                    client_id,
                    assertion,
                )
                .await
            }
            Identity::TokenProxy {
                client_id,
                assertion,
            } => {
                let Some(proxy) = &self.endpoints.token_proxy else {
                    return Err(AuthError::NotConfigured {
                        what: "useAzureTokenProxy needs the provider started with --token-proxy-url (and \
                               --sni-name); set them in the provider DaemonSet"
                            .to_owned(),
                    });
                };
                // The proxy stands in for the Entra authority; scope and grant are unchanged.
                let proxied = CloudEnvironment {
                    authority: proxy.clone(),
                    ..cloud.clone()
                };
                self.federated(
                    Peer::TokenProxy,
                    "identity binding",
                    &proxied,
                    tenant,
                    client_id,
                    assertion,
                )
                .await
            }
            Identity::ServicePrincipal {
                client_id,
                client_secret,
            } => {
                let key = CacheKey::ServicePrincipal {
                    authority: cloud.authority.clone(),
                    tenant: tenant.to_owned(),
                    client_id: client_id.clone(),
                    scope: cloud.key_vault_scope(),
                    secret_sha256: Sha256::digest(client_secret.expose_secret().as_bytes()).into(),
                };
                self.cache
                    .get_or_fetch(&key, || {
                        service_principal::token(
                            &self.http,
                            cloud,
                            tenant,
                            client_id,
                            client_secret,
                        )
                    })
                    .await
            }
            Identity::VmManagedIdentity { client_id } => {
                let key = CacheKey::ManagedIdentity {
                    endpoint: self.endpoints.imds.clone(),
                    identity: client_id.clone().unwrap_or_default(),
                    resource: cloud.key_vault_resource.clone(),
                };
                self.cache
                    .get_or_fetch(&key, || {
                        managed_identity::token(
                            &self.local_http,
                            &self.endpoints.imds,
                            &cloud.key_vault_resource,
                            client_id.as_deref(),
                        )
                    })
                    .await
            }
            Identity::PodIdentity { namespace, pod } => {
                let key = CacheKey::PodIdentity {
                    endpoint: self.endpoints.nmi.clone(),
                    namespace: namespace.clone(),
                    pod: pod.clone(),
                    resource: cloud.key_vault_resource.clone(),
                };
                self.cache
                    .get_or_fetch(&key, || {
                        pod_identity::token(
                            &self.local_http,
                            &self.endpoints.nmi,
                            &cloud.key_vault_resource,
                            namespace,
                            pod,
                        )
                    })
                    .await
            }
        }
    }
}
