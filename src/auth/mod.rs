//! Getting a Key Vault access token for the identity a Mount selected (spec 3).
//!
//! One file per identity mode; [`entra`] holds the token endpoint shared by workload identity and
//! service principals. Entra ID and IMDS are called with plain REST over the shared client instead of
//! the Azure SDK credentials, which cache per credential object and so cannot share tokens between
//! the many Mounts of one workload.

pub mod assertion;
pub mod cache;
pub mod entra;
pub mod managed_identity;
pub mod pod_identity;
pub mod service_principal;
pub mod workload;

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::cloud::CloudEnvironment;
use assertion::Assertion;
use cache::{CacheKey, TokenCache};

/// A bearer token for Key Vault. `Debug` never shows it.
#[derive(Clone)]
pub struct AccessToken {
    secret: SecretString,
    /// When the token stops being valid, from `expires_in`.
    pub expires_at: Instant,
}

impl AccessToken {
    pub fn new(secret: SecretString, lifetime: Duration) -> Self {
        Self {
            secret,
            expires_at: Instant::now() + lifetime,
        }
    }

    pub fn secret(&self) -> &SecretString {
        &self.secret
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

/// The identity a Mount authenticates as, selected and validated by [`crate::mount`].
#[derive(Clone, Debug)]
pub enum Identity {
    /// Workload identity: the pod's service-account token federated with `client_id`.
    Workload {
        client_id: String,
        assertion: Assertion,
    },
    /// An app registration's client secret from `nodePublishSecretRef`.
    ServicePrincipal {
        client_id: String,
        client_secret: SecretString,
    },
    /// The node's managed identity through IMDS; `None` = system-assigned.
    VmManagedIdentity { client_id: Option<String> },
    /// aad-pod-identity's NMI on the node.
    PodIdentity { namespace: String, pod: String },
    /// AKS identity binding through the token proxy.
    TokenProxy {
        client_id: String,
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
        mode: &'static str,
        tenant: String,
        client_id: String,
        status: u16,
        codes: Vec<u64>,
        description: String,
        hint: Option<String>,
    },
    /// IMDS answered with an error or could not be reached.
    #[error(
        "the node's managed identity ({identity}) could not get a token{}: {description}{}",
        status.map(|s| format!(" (IMDS HTTP {s})")).unwrap_or_default(),
        hint.as_deref().map(|h| format!(". {h}")).unwrap_or_default()
    )]
    Imds {
        identity: String,
        status: Option<u16>,
        description: String,
        hint: Option<String>,
    },
    /// aad-pod-identity's NMI refused or could not be reached.
    #[error("pod identity for {pod}: {description}")]
    PodIdentity {
        pod: String,
        status: Option<u16>,
        description: String,
    },
    #[error("cannot reach Entra ID at {host}: {reason}")]
    Transport { host: String, reason: String },
    #[error("Entra ID at {host} sent an unexpected response: {reason}")]
    Decode { host: String, reason: String },
    #[error("{what}")]
    NotConfigured { what: String },
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

    /// Cache statistics.
    pub fn cache_stats(&self) -> cache::CacheStats {
        self.cache.stats()
    }

    /// The federated grant (workload identity, identity binding), cached per presenter.
    async fn federated(
        &self,
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
                workload::token(&self.http, mode, cloud, tenant, client_id, assertion)
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
                self.federated("workload identity", cloud, tenant, client_id, assertion)
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
                self.federated("identity binding", &proxied, tenant, client_id, assertion)
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
