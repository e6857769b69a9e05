//! An emulator of the Azure services the Key Vault CSI provider talks to: Entra ID's token
//! endpoint, the Key Vault data plane, and the node-local IMDS and NMI endpoints. It is a test
//! double the daemon's own code path never calls: tests, benchmarks and demos start one, point the
//! daemon at it with `--resolve` overrides and its generated CA, and assert on what it saw.
//!
//! Architecture, one module per concern:
//! - [`pki`]: the CA generated at start and the TLS server certificate for every emulated host;
//! - [`issuer`]: Kubernetes service-account token issuers (ES256), for signed client assertions;
//! - `entra`, `keyvault`, `local`: the request handlers, one per service;
//! - `state`: what the services know and remember, behind one lock;
//! - [`seed`]: the YAML seed format;
//! - [`standalone`]: running it as a program for a local cluster or CI.
//!
//! [`Emulator`] starts the listeners (an HTTPS one for Entra and Key Vault, routed by host name
//! like the real DNS names, and a plain HTTP one for IMDS/NMI) and is the programmatic API: its
//! views [`Emulator::entra`], [`Emulator::vault`] and [`Emulator::node`] configure each service.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod clock;
mod entra;
mod http;
pub mod issuer;
mod keyvault;
mod local;
pub mod pki;
mod recorded;
pub mod seed;
pub mod standalone;
mod state;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::Request;
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use clock::now;
pub use entra::JWT_BEARER;
pub use issuer::{Issuer, WORKLOAD_IDENTITY_AUDIENCE, tokens_attribute};
pub use recorded::VECTOR_FILES;
pub use seed::{EmulatorConfig, SeedError};
pub use state::{
    Counters, DEFAULT_TENANT, FederatedCredential, KvRequest, ObjectKind, SecretVersion,
};

use http::{Resp, host_of, json_response, kv_error};
use state::{RateLimit, Shared, StoredSecret, StoredVersion, insert};

/// Why the emulator could not start or be seeded.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why (in the message, so not named `source`: a `{:#}` chain would repeat it).
        error: std::io::Error,
    },
    /// The CA or a certificate could not be generated.
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    /// An embedded recording is broken (a build problem).
    #[error(transparent)]
    Recorded(#[from] recorded::RecordedError),
    /// An issuer key could not be generated.
    #[error(transparent)]
    Issuer(#[from] issuer::IssuerError),
    /// A file could not be written (standalone mode).
    #[error("cannot write {path}: {error}")]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// Why (in the message, so not named `source`).
        error: std::io::Error,
    },
}

/// Where the emulator listens, and what else its certificate must name.
#[derive(Clone, Debug)]
pub struct Listen {
    /// HTTPS: Entra ID and Key Vault.
    pub https: SocketAddr,
    /// Plain HTTP: IMDS and NMI.
    pub local: SocketAddr,
    /// Extra DNS names on the server certificate (e.g. issuer hosts, to serve their JWKS).
    pub extra_names: Vec<String>,
}

impl Default for Listen {
    /// Ephemeral ports on 127.0.0.1.
    fn default() -> Self {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            https: loopback,
            local: loopback,
            extra_names: Vec::new(),
        }
    }
}

/// A running emulator. Dropping it (or [`Emulator::stop`]) stops its listeners and connections.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    local_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, EmulatorError> {
    TcpListener::bind(addr)
        .await
        .map_err(|error| EmulatorError::Bind { addr, error })
}

impl Emulator {
    /// Starts on ephemeral ports of 127.0.0.1 with a new CA and empty state.
    pub async fn start() -> Result<Self, EmulatorError> {
        Self::start_on(Listen::default()).await
    }

    /// Starts on the given addresses with a new CA and empty state.
    pub async fn start_on(listen: Listen) -> Result<Self, EmulatorError> {
        let https = bind(listen.https).await?;
        let local = bind(listen.local).await?;
        let addr = https.local_addr().map_err(|error| EmulatorError::Bind {
            addr: listen.https,
            error,
        })?;
        let local_addr = local.local_addr().map_err(|error| EmulatorError::Bind {
            addr: listen.local,
            error,
        })?;
        let ips: Vec<IpAddr> = vec![addr.ip(), local_addr.ip()];
        let pki = pki::Pki::generate(&listen.extra_names, &ips)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(state::State::default()),
            recorded: recorded::Recorded::load()?,
            pki,
        });
        let tasks = vec![
            tokio::spawn(http::serve_tls(
                https,
                shared.pki.server_config(),
                shared.clone(),
                route_https,
            )),
            tokio::spawn(http::serve_plain(local, shared.clone(), route_local)),
        ];
        Ok(Self {
            shared,
            addr,
            local_addr,
            tasks,
        })
    }

    /// Stops the listeners and every open connection.
    pub fn stop(self) {
        drop(self);
    }

    /// The HTTPS address: map every Entra and Key Vault host name to it (`--resolve`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The plain-HTTP address of IMDS and NMI.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://{local_addr}`: the IMDS base (`AZURE_POD_IDENTITY_AUTHORITY_HOST`) and NMI endpoint.
    pub fn local_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// The generated CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        self.shared.pki.ca_pem()
    }

    /// The generated CA certificate, DER.
    pub fn ca_der(&self) -> &[u8] {
        self.shared.pki.ca_der()
    }

    /// The PKI, e.g. for a client configuration trusting only the CA.
    pub fn pki(&self) -> &pki::Pki {
        &self.shared.pki
    }

    /// Entra ID: apps, credentials, issuers, token requests.
    pub fn entra(&self) -> Entra<'_> {
        Entra(&self.shared)
    }

    /// Key Vault `name` (created on first use; any name is served).
    pub fn vault(&self, name: &str) -> VaultRef<'_> {
        VaultRef {
            shared: &self.shared,
            name: name.to_ascii_lowercase(),
        }
    }

    /// The node: IMDS identities and NMI pod bindings.
    pub fn node(&self) -> Node<'_> {
        Node(&self.shared)
    }

    /// Revokes every access token issued to `client_id` so far (by Entra, IMDS or NMI): Key Vault
    /// answers them with the 401 challenge from now on, as for a token it does not accept.
    pub fn revoke_tokens(&self, client_id: &str) {
        self.shared
            .lock()
            .tokens
            .retain(|_, t| !t.client_id.eq_ignore_ascii_case(client_id));
    }

    /// Delay before every Key Vault response (added to any per-vault latency).
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// Largest page of a listing, of versions or of a collection (default 25, as the service);
    /// `maxresults` may lower it.
    pub fn set_page_size(&self, n: usize) {
        self.shared.lock().page_size = n.max(1);
    }

    /// Every request that reached Key Vault, in order.
    pub fn kv_requests(&self) -> Vec<KvRequest> {
        self.shared.lock().kv_requests.clone()
    }

    /// Counters since start.
    pub fn counters(&self) -> Counters {
        self.shared.lock().counters.clone()
    }

    /// Applies a seed: principals, issuers, node identities and vault contents. Returns the
    /// issuers the seed's federated credentials name (each with a fresh key).
    pub fn seed(&self, config: &EmulatorConfig) -> Result<Vec<Issuer>, EmulatorError> {
        seed::apply(self, config)
    }
}

fn route_https(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Pin<Box<dyn Future<Output = Resp> + Send>> {
    Box::pin(async move {
        let host = host_of(&req);
        let path = req.uri().path().to_owned();
        // Entra, or the AKS identity-binding token proxy that stands in for it.
        if host.starts_with("login.") || path.ends_with("/oauth2/v2.0/token") {
            return entra::handle(req, &host, &shared).await;
        }
        if host.split('.').nth(1) == Some("vault") {
            let vault = keyvault::vault_of(&host);
            let latency = keyvault::latency(&shared.lock(), &vault);
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            return keyvault::handle(&req, &host, &shared);
        }
        if let Some(r) = issuer_document(&shared, &host, &path) {
            return r;
        }
        kv_error(
            404,
            "NotFound",
            &format!("no emulated service for host '{host}'"),
        )
    })
}

fn route_local(
    req: Request<Incoming>,
    shared: Arc<Shared>,
) -> Pin<Box<dyn Future<Output = Resp> + Send>> {
    Box::pin(local::handle(req, shared))
}

/// `{issuer}/openid/v1/jwks` and `{issuer}/.well-known/openid-configuration` of a known issuer
/// whose host is routed here.
fn issuer_document(shared: &Shared, host: &str, path: &str) -> Option<Resp> {
    let s = shared.lock();
    s.issuers.values().find_map(|issuer| {
        let rest = issuer.url().strip_prefix("https://")?;
        let (issuer_host, issuer_path) = rest.split_once('/').unwrap_or((rest, ""));
        if !issuer_host.eq_ignore_ascii_case(host) {
            return None;
        }
        let base = format!("/{}", issuer_path.trim_end_matches('/'));
        let base = base.trim_end_matches('/');
        let doc = path.strip_prefix(base)?;
        match doc {
            "/openid/v1/jwks" => Some(json_response(200, &issuer.jwks())),
            "/.well-known/openid-configuration" => Some(json_response(200, &issuer.discovery())),
            _ => None,
        }
    })
}

/// Entra ID's configuration: see [`Emulator::entra`].
#[derive(Clone, Copy)]
pub struct Entra<'a>(&'a Shared);

impl Entra<'_> {
    /// A federated identity credential on app `client_id` in `tenant`: assertions with exactly
    /// this issuer and subject, and this among their audiences, are exchanged.
    pub fn add_federated_credential(
        &self,
        tenant: &str,
        client_id: &str,
        issuer: &str,
        subject: &str,
        audience: &str,
    ) {
        self.0.lock().federated.push(FederatedCredential {
            tenant: tenant.into(),
            client_id: client_id.into(),
            issuer: issuer.into(),
            subject: subject.into(),
            audience: audience.into(),
        });
    }

    /// A client secret on app `client_id` in `tenant` (replaces any earlier one).
    pub fn add_client_secret(&self, tenant: &str, client_id: &str, secret: &str) {
        self.0
            .lock()
            .client_secrets
            .insert((tenant.into(), client_id.into()), secret.into());
    }

    /// A new issuer with its own key, trusted from now on: assertions claiming it must carry its
    /// signature (else AADSTS700027).
    pub fn add_issuer(&self, url: &str) -> Result<Issuer, EmulatorError> {
        let issuer = Issuer::generate(url)?;
        self.trust_issuer(&issuer);
        Ok(issuer)
    }

    /// Trusts `issuer`'s key for assertions claiming its URL (replacing any earlier key). Issuers
    /// never trusted are accepted on their claims alone: the emulator cannot fetch their JWKS.
    pub fn trust_issuer(&self, issuer: &Issuer) {
        self.0
            .lock()
            .issuers
            .insert(issuer.url().to_owned(), issuer.clone());
    }

    /// Trusts the public keys of `jwks` (a JWKS document, e.g. a real cluster's from `kubectl get
    /// --raw /openid/v1/jwks`) for assertions claiming issuer `url`: RS256 and ES256 signatures
    /// are verified as Entra verifies them.
    pub fn trust_jwks(&self, url: &str, jwks: &Value) -> Result<(), EmulatorError> {
        let keys = issuer::Jwks::parse(jwks)?;
        self.0.lock().jwks.insert(url.to_owned(), keys);
        Ok(())
    }

    /// The issuer with this URL, if trusted.
    pub fn issuer(&self, url: &str) -> Option<Issuer> {
        self.0.lock().issuers.get(url).cloned()
    }

    /// Delay before every token answer; requests being delayed at once are counted
    /// (`Counters::token_in_flight_max`).
    pub fn set_latency(&self, latency: Duration) {
        self.0.lock().token_latency = latency;
    }

    /// `expires_in` of tokens issued from now on (default 3599).
    pub fn set_token_lifetime(&self, secs: i64) {
        self.0.lock().token_lifetime = secs;
    }

    /// The next `n` token requests are recorded as usual, then answered with `status` and `body`
    /// instead of Entra's own answer: for answers Entra does not give by itself (oversized, 5xx,
    /// unexpected shapes).
    pub fn answer_next(&self, n: u32, status: u16, body: Value) {
        let mut s = self.0.lock();
        for _ in 0..n {
            s.token_answers.push_back((status, body.clone()));
        }
    }

    /// Token requests received (successful or not).
    pub fn requests(&self) -> usize {
        self.0.lock().token_requests.len()
    }

    /// Token requests received with this `client_id` (successful or not).
    pub fn requests_for(&self, client_id: &str) -> usize {
        self.0
            .lock()
            .token_requests
            .iter()
            .filter(|c| *c == client_id)
            .count()
    }

    /// The host name (TLS server name) the last token request was sent to.
    pub fn last_host(&self) -> Option<String> {
        self.0.lock().last_token_host.clone()
    }

    /// The form fields of the last token request.
    pub fn last_form(&self) -> Option<HashMap<String, String>> {
        self.0.lock().last_token_form.clone()
    }
}

/// One vault's configuration: see [`Emulator::vault`].
pub struct VaultRef<'a> {
    shared: &'a Shared,
    name: String,
}

impl VaultRef<'_> {
    fn with<R>(&self, f: impl FnOnce(&mut state::Vault) -> R) -> R {
        f(self.shared.lock().vault(&self.name))
    }

    /// Gives `client_id` read access to every object, listings included (an RBAC role assignment
    /// such as Key Vault Secrets User, or a get/list access policy). Replaces a
    /// [`grant_without_list`](Self::grant_without_list).
    pub fn grant(&self, client_id: &str) -> &Self {
        self.with(|v| {
            v.get_only.remove(client_id);
            v.grants.insert(client_id.into())
        });
        self
    }

    /// Lets `client_id` GET every object but not list: the collection listings (`GET /secrets`…)
    /// and `/{name}/versions` get 403 in the vault's style (RBAC `ForbiddenByRbac` naming the
    /// listing's action, e.g. `…/secrets/readMetadata/action`; access policies `AccessDenied` "does
    /// not have secrets list permission"), as for an access policy with `get` alone or a role with
    /// only the get action. Replaces a [`grant`](Self::grant).
    pub fn grant_without_list(&self, client_id: &str) -> &Self {
        self.with(|v| {
            v.grants.remove(client_id);
            v.get_only.insert(client_id.into())
        });
        self
    }

    /// An access-policy vault: callers without a grant get 403 `AccessDenied` instead of
    /// `ForbiddenByRbac`.
    pub fn use_access_policies(&self) -> &Self {
        self.with(|v| v.access_policies = true);
        self
    }

    /// The tenant the vault belongs to: named in its challenge, and tokens of other tenants get
    /// 401 `AKV10032`. Without it the challenge names the first tenant with a credential.
    pub fn set_tenant(&self, tenant: &str) -> &Self {
        self.with(|v| v.tenant = Some(tenant.into()));
        self
    }

    /// Adds a secret version (versions may be added in any order; the newest `created` is latest).
    pub fn put_secret(&self, name: &str, secret: SecretVersion) -> &Self {
        self.with(|v| {
            insert(
                &mut v.secrets,
                name,
                StoredSecret {
                    secret,
                    kid_from_host: false,
                },
            )
        });
        self
    }

    /// A key version: `jwk` is the `key` object (`kty`, `n`/`e` or `crv`/`x`/`y`, `key_ops`…);
    /// its `kid` is set from the request URL.
    pub fn put_key(
        &self,
        name: &str,
        version: &str,
        jwk: Value,
        created: i64,
        enabled: bool,
    ) -> &Self {
        self.with(|v| {
            insert(
                &mut v.keys,
                name,
                StoredVersion {
                    version: version.into(),
                    payload: jwk,
                    created,
                    enabled,
                },
            )
        });
        self
    }

    /// A certificate version without a secret; `cer_base64` is the standard-base64 DER of the
    /// leaf. `x5t` is computed, and so are the `nbf`/`exp` attributes (its validity) when the DER
    /// parses as X.509 (dates from 1970 on).
    pub fn put_certificate(
        &self,
        name: &str,
        version: &str,
        cer_base64: &str,
        created: i64,
        enabled: bool,
    ) -> &Self {
        use base64::Engine as _;
        let der = base64::engine::general_purpose::STANDARD
            .decode(cer_base64)
            .ok();
        let x5t = der
            .as_deref()
            .map(|der| {
                let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
            })
            .unwrap_or_default();
        let mut payload = json!({ "cer": cer_base64, "x5t": x5t });
        // Parsed once here rather than on every GET; tests may store bytes that are not X.509,
        // which are then served without `nbf`/`exp`.
        if let Some((nbf, exp)) = der.as_deref().and_then(keyvault::validity) {
            payload["nbf"] = nbf.into();
            payload["exp"] = exp.into();
        }
        self.with(|v| {
            insert(
                &mut v.certificates,
                name,
                StoredVersion {
                    version: version.into(),
                    payload,
                    created,
                    enabled,
                },
            )
        });
        self
    }

    /// A certificate version as Key Vault stores one: the certificate (`cer`) and its secret of
    /// the same name and version, holding `secret_value` (base64 PFX for `application/x-pkcs12`,
    /// PEM key then certificates for `application/x-pem-file`) with a `kid` naming the key.
    #[allow(clippy::too_many_arguments)]
    pub fn put_certificate_with_secret(
        &self,
        name: &str,
        version: &str,
        cer_base64: &str,
        secret_value: &str,
        content_type: &str,
        created: i64,
        enabled: bool,
    ) -> &Self {
        self.put_certificate(name, version, cer_base64, created, enabled);
        self.with(|v| {
            insert(
                &mut v.secrets,
                name,
                StoredSecret {
                    secret: SecretVersion {
                        version: version.into(),
                        value: secret_value.into(),
                        content_type: Some(content_type.into()),
                        kid: None,
                        created,
                        enabled,
                    },
                    kid_from_host: true,
                },
            )
        });
        self
    }

    /// Serves `body` with `status` for exactly `path` (no query, as sent), after authentication
    /// and before the grant check and the object model.
    pub fn put_raw_json(&self, path: &str, status: u16, body: Value) -> &Self {
        self.with(|v| v.raw.insert(path.into(), (status, body)));
        self
    }

    /// The next `n` authenticated requests get the recorded 429 `Throttled` with `Retry-After:
    /// retry_after_secs`.
    pub fn throttle_next(&self, n: u32, retry_after_secs: u64) -> &Self {
        self.with(|v| v.throttle_next = (n, retry_after_secs));
        self
    }

    /// The throttling model: at most `max_requests` authenticated requests per fixed `window`
    /// (opened by the first request after the previous one ended); the rest get 429 `Throttled`
    /// with `Retry-After` = whole seconds until the window ends. Throttled requests do not count.
    pub fn limit_requests(&self, max_requests: u32, window: Duration) -> &Self {
        self.with(|v| {
            v.limit = Some(RateLimit {
                max: max_requests,
                window,
                started: None,
                used: 0,
            })
        });
        self
    }

    /// Continuous access evaluation: from now on, tokens not issued with exactly `claims` (the
    /// token request's `claims` parameter) get 401 with an `insufficient_claims` challenge carrying
    /// `claims` base64-encoded, as Key Vault answers a token that no longer satisfies a policy.
    pub fn require_claims(&self, claims: &str) -> &Self {
        self.with(|v| v.required_claims = Some(claims.to_owned()));
        self
    }

    /// The next `n` authenticated requests get `status` (meant for 5xx).
    pub fn fail_next(&self, n: u32, status: u16) -> &Self {
        self.with(|v| v.fail_next = (n, status));
        self
    }

    /// Delay before every response of this vault (added to the global latency).
    pub fn set_latency(&self, latency: Duration) -> &Self {
        self.with(|v| v.latency = latency);
        self
    }

    /// Key Vault GET requests this vault received.
    pub fn gets(&self) -> u64 {
        self.shared
            .lock()
            .counters
            .kv_gets
            .get(&self.name)
            .copied()
            .unwrap_or(0)
    }

    /// This vault's requests, in order.
    pub fn requests(&self) -> Vec<KvRequest> {
        let s = self.shared.lock();
        s.kv_requests
            .iter()
            .filter(|r| r.vault == self.name)
            .cloned()
            .collect()
    }
}

/// The node's token endpoints: see [`Emulator::node`].
#[derive(Clone, Copy)]
pub struct Node<'a>(&'a Shared);

impl Node<'_> {
    /// The node's system-assigned identity (IMDS without `client_id`).
    pub fn set_system_identity(&self, client_id: &str) {
        self.0.lock().local.system = Some(client_id.to_owned());
    }

    /// A user-assigned identity on the node.
    pub fn assign_user_identity(&self, client_id: &str) {
        self.0.lock().local.user.push(client_id.to_owned());
    }

    /// NMI: pod `namespace/pod` gets tokens for `client_id`.
    pub fn bind_pod(&self, namespace: &str, pod: &str, client_id: &str) {
        self.0
            .lock()
            .local
            .pod_bindings
            .insert(format!("{namespace}/{pod}"), client_id.to_owned());
    }

    /// The tenant node-local tokens are issued in (default: the first tenant with a credential).
    pub fn set_tenant(&self, tenant: &str) {
        self.0.lock().local.tenant = Some(tenant.to_owned());
    }

    /// The next requests answer these statuses, in order, with a "temporarily unavailable" body.
    pub fn fail_next(&self, statuses: &[u16]) {
        let body = serde_json::json!({
            "error": "unavailable",
            "error_description": "temporarily unavailable",
        });
        let mut s = self.0.lock();
        for &status in statuses {
            s.local.answers.push_back((status, body.clone()));
        }
    }

    /// The next `n` requests to IMDS or NMI are answered with `status` and `body` instead of the
    /// endpoint's own answer: for answers the endpoints do not give by themselves (oversized,
    /// unexpected shapes).
    pub fn answer_next(&self, n: u32, status: u16, body: Value) {
        let mut s = self.0.lock();
        for _ in 0..n {
            s.local.answers.push_back((status, body.clone()));
        }
    }

    /// Requests received by IMDS and NMI.
    pub fn requests(&self) -> u64 {
        self.0.lock().counters.local_requests
    }

    /// IMDS requests refused for lacking `Metadata: true`.
    pub fn requests_without_metadata_header(&self) -> u32 {
        self.0.lock().local.missing_metadata_header
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OS error is in `Bind`'s message and so not also its `source()`: a chain printed the way
    /// anyhow's `{:#}` does names it once.
    #[tokio::test]
    async fn a_bind_failure_names_the_os_error_once_in_a_chain() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let err = bind(taken.local_addr().unwrap()).await.unwrap_err();
        let EmulatorError::Bind { error, .. } = &err else {
            panic!("expected a bind failure, got {err:?}");
        };
        let os_text = error.to_string();
        let mut chain = Vec::new();
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = current {
            chain.push(e.to_string());
            current = e.source();
        }
        let chain = chain.join(": ");
        assert_eq!(chain.matches(&os_text).count(), 1, "{chain}");
    }
}
