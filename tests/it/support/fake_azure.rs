//! A fake Entra ID token endpoint and a fake Key Vault data plane behind ONE HTTPS server on
//! 127.0.0.1, routed by host name (HTTP/1 `Host` or HTTP/2 `:authority`, port stripped):
//!
//! - `login.*` hosts (and any path ending in `/oauth2/v2.0/token`, for the AKS token proxy) are Entra
//!   ID: `POST /{tenant}/oauth2/v2.0/token` with a federated client assertion or a client secret
//!   (spec 3.1, 3.2), plus `GET /{tenant}/v2.0/.well-known/openid-configuration`.
//! - `<vault>.vault.*` hosts are Key Vault (spec 4): `GET /{secrets|keys|certificates}/{name}[/{version}]`
//!   and `/{…}/{name}/versions` with `maxresults` and `nextLink` paging.
//!
//! The production client reaches it through its own resolver override and verifies TLS against the
//! test CA of [`super::pki`], exactly as in production.
//!
//! Error bodies are the real ones: they are loaded at start from the recorded vectors in
//! `tests/data/vectors/keyvault/` (see [`VECTOR_FILES`]) and only the names, ids and assertion claims are
//! substituted: the 401 challenge (`AKV10000`) with `WWW-Authenticate`, 403 `ForbiddenByRbac` /
//! `AccessDenied` / `SecretDisabled`, 404 `*NotFound`, 429 `Throttled` (plus `Retry-After`), and the
//! Entra envelope of AADSTS70021 / AADSTS7000215. Codes without a recording (AADSTS700016, 90002,
//! 700024, 500011, 1002012, 900144, AKV10022, AKV10032, `[TokenExpired]`) use the same envelope with
//! the message text users report for them.
//!
//! Deliberate fidelity choices a test writer should know:
//! - "latest" is the NEWEST version by `created`, enabled or not, as in the real service: if it is
//!   disabled, a GET without a version gets 403 `SecretDisabled` (real Key Vault does not fall back
//!   to an older enabled version).
//! - Object names are case-insensitive (the returned id keeps the stored casing).
//! - Access tokens are bound to (tenant, client id, resource): a token for another cloud's Key Vault
//!   resource gets 401 `AKV10022: Invalid audience`, an expired one `[TokenExpired]`, and (only when
//!   [`FakeAzure::set_vault_tenant`] was called) a token from another tenant `AKV10032: Invalid
//!   issuer`.
//! - `nextLink` is absolute on the request's host but WITHOUT the `:443` the real service adds: a URL
//!   port would defeat the test's DNS override (reqwest uses a URL's explicit port).
//! - Throttling/5xx injection applies to authenticated requests only (the unauthenticated challenge
//!   probe never consumes it). Latency applies to Key Vault requests only.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::pki;

/// The recorded exchanges the fake reuses, relative to `tests/data/vectors/keyvault/`.
pub const VECTOR_FILES: &[&str] = &[
    V_CHALLENGE,
    V_SECRET_NOT_FOUND,
    V_KEY_NOT_FOUND,
    V_CERT_NOT_FOUND,
    V_DISABLED,
    V_RBAC,
    V_ACCESS_DENIED,
    V_THROTTLED,
    V_FIC_MISMATCH,
    V_BAD_SECRET,
    V_TOKEN_OK,
];
const V_CHALLENGE: &str = "g_401_challenge/net__DownloadECDsaCertificateSignRemoteVerifyLocal_application_x-pem-file_P-521___000.json";
const V_SECRET_NOT_FOUND: &str = "h_errors/cpp__KeyVaultSecretClientTest.RecoverSecret__007.json";
const V_KEY_NOT_FOUND: &str = "h_errors/cpp__KeyVaultKeyClient.BackupKey__006.json";
const V_CERT_NOT_FOUND: &str =
    "h_errors/cpp__KeyVaultCertificateClientTest.GetDeletedCertificate__009.json";
const V_DISABLED: &str = "h_errors/node__keyVault-secret-tests@2018-06-27__008.json";
const V_RBAC: &str = "h_errors/observed_in_issues/issue__piyushsachdeva_Terraform_AKS_2__403_ForbiddenByRbac_get.json";
const V_ACCESS_DENIED: &str =
    "h_errors/observed_in_issues/issue__external-secrets_586__403_AccessDenied_get.json";
const V_THROTTLED: &str =
    "h_errors/observed_in_issues/issue__vcsjones_AzureSignTool_219__429_Throttled.json";
const V_FIC_MISMATCH: &str = "i_entra_token/observed_in_issues/issue__Azure_azure-workload-identity_616__400_AADSTS70021.json";
const V_BAD_SECRET: &str = "i_entra_token/net__GetTokenIncorrectPassword__000.json";
const V_TOKEN_OK: &str = "i_entra_token/net__VerifyViaMockK8TokenExchangeEnvironment__000.json";

/// The `client_assertion_type` of a federated (JWT bearer) client credential.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The tenant Key Vault names in its challenge when none is configured or registered.
pub const DEFAULT_TENANT: &str = "33333333-3333-3333-3333-333333333333";

/// One version of a secret.
#[derive(Clone, Debug)]
pub struct FakeSecret {
    pub version: String,
    pub value: String,
    /// `application/x-pkcs12`, `application/x-pem-file`, or anything for plain secrets.
    pub content_type: Option<String>,
    /// Set for certificate-backed secrets (then `managed: true` is returned too).
    pub kid: Option<String>,
    /// Unix seconds.
    pub created: i64,
    pub enabled: bool,
}

/// A request that reached the fake Key Vault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Lower-case host name without port.
    pub host: String,
    pub method: String,
    /// Path as sent (still percent-encoded).
    pub path: String,
    /// Raw query string ("" when none).
    pub query: String,
    pub authorization_present: bool,
    pub user_agent: Option<String>,
}

/// One version of a key or certificate: the payload fields besides id/attributes.
#[derive(Clone, Debug)]
struct FakeVersion {
    version: String,
    payload: Value,
    created: i64,
    enabled: bool,
}

#[derive(Clone, Debug)]
struct IssuedToken {
    tenant: String,
    client_id: String,
    /// The resource the token is for (scope without `/.default`); `None` for [`Handle::mint_token`].
    resource: Option<String>,
    expires_at: i64,
}

#[derive(Clone, Debug)]
struct Federated {
    tenant: String,
    client_id: String,
    issuer: String,
    subject: String,
    audience: String,
}

/// (version, created, enabled) of one object version.
type VersionMeta = (String, i64, bool);

/// Objects of one kind, by (vault, lower-case name) → (stored name, versions in insertion order).
type Store<T> = HashMap<(String, String), (String, Vec<T>)>;

struct State {
    federated: Vec<Federated>,
    client_secrets: HashMap<(String, String), String>,
    tokens: HashMap<String, IssuedToken>,
    token_lifetime: i64,
    token_requests: Vec<String>,
    last_token_form: Option<HashMap<String, String>>,
    last_token_host: Option<String>,
    grants: HashSet<(String, String)>,
    access_policy_vaults: HashSet<String>,
    vault_tenants: HashMap<String, String>,
    secrets: Store<FakeSecret>,
    keys: Store<FakeVersion>,
    certificates: Store<FakeVersion>,
    raw: HashMap<(String, String), (u16, Value)>,
    throttle: HashMap<String, (u32, u64)>,
    failures: HashMap<String, (u32, u16)>,
    latency: Duration,
    kv_requests: Vec<RecordedRequest>,
    page_size: usize,
    counter: u64,
}

impl Default for State {
    fn default() -> Self {
        Self {
            federated: Vec::new(),
            client_secrets: HashMap::new(),
            tokens: HashMap::new(),
            token_lifetime: 3599,
            token_requests: Vec::new(),
            last_token_form: None,
            last_token_host: None,
            grants: HashSet::new(),
            access_policy_vaults: HashSet::new(),
            vault_tenants: HashMap::new(),
            secrets: HashMap::new(),
            keys: HashMap::new(),
            certificates: HashMap::new(),
            raw: HashMap::new(),
            throttle: HashMap::new(),
            failures: HashMap::new(),
            latency: Duration::ZERO,
            kv_requests: Vec::new(),
            page_size: 25,
            counter: 0,
        }
    }
}

impl State {
    fn next_id(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn mint(&mut self, tenant: &str, client_id: &str, resource: Option<String>) -> String {
        let n = self.next_id();
        // Opaque, unique, and not a JWT: the provider must not need to parse access tokens.
        let token = format!("fake-at.{n}.{}", client_id.replace('-', ""));
        let expires_at = now() + self.token_lifetime;
        self.tokens.insert(
            token.clone(),
            IssuedToken {
                tenant: tenant.to_owned(),
                client_id: client_id.to_owned(),
                resource,
                expires_at,
            },
        );
        token
    }

    /// The tenant a vault belongs to: configured, else the first tenant with a credential.
    fn vault_tenant(&self, vault: &str) -> String {
        self.vault_tenants
            .get(vault)
            .cloned()
            .or_else(|| self.federated.first().map(|f| f.tenant.clone()))
            .or_else(|| self.client_secrets.keys().next().map(|k| k.0.clone()))
            .unwrap_or_else(|| DEFAULT_TENANT.to_owned())
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A handle on the fake's state that other fakes (IMDS, NMI) use to mint tokens Key Vault accepts.
#[derive(Clone)]
pub struct Handle(Arc<Mutex<State>>);

impl Handle {
    /// Issues an access token for `client_id`, as Entra would after any successful grant. It is valid
    /// for every cloud's Key Vault resource.
    pub fn mint_token(&self, tenant: &str, client_id: &str) -> String {
        lock(&self.0).mint(tenant, client_id, None)
    }
}

/// The fake; the server stops when it is dropped.
pub struct FakeAzure {
    /// Where the one HTTPS server listens; map every fake host name to it.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeAzure {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeAzure {
    /// Binds 127.0.0.1:0 and serves HTTP/1.1 and HTTP/2 over TLS (test CA) until dropped.
    ///
    /// Panics (in the test, not the server) if a recorded vector cannot be loaded.
    pub async fn start() -> Self {
        let _ = recorded();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State::default()));
        let acceptor = tokio_rustls::TlsAcceptor::from(pki::server_tls_config());
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                let acceptor = acceptor.clone();
                let st = st.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(route(req, &st).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Self { addr, state, task }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut lock(&self.state))
    }

    /// A handle for minting tokens from other fakes.
    pub fn clone_handle(&self) -> Handle {
        Handle(self.state.clone())
    }

    // ---- Entra ID ----

    /// A federated identity credential on app `client_id` in `tenant`: assertions with exactly this
    /// issuer, subject and audience are exchanged.
    pub fn add_federated_credential(
        &self,
        tenant: &str,
        client_id: &str,
        issuer: &str,
        subject: &str,
        audience: &str,
    ) {
        self.with(|s| {
            s.federated.push(Federated {
                tenant: tenant.into(),
                client_id: client_id.into(),
                issuer: issuer.into(),
                subject: subject.into(),
                audience: audience.into(),
            })
        });
    }

    /// A client secret on app `client_id` in `tenant` (replaces any earlier one).
    pub fn add_client_secret(&self, tenant: &str, client_id: &str, secret: &str) {
        self.with(|s| {
            s.client_secrets
                .insert((tenant.into(), client_id.into()), secret.into())
        });
    }

    /// `expires_in` of tokens issued from now on (default 3599).
    pub fn set_token_lifetime(&self, secs: i64) {
        self.with(|s| s.token_lifetime = secs);
    }

    /// Token requests received (successful or not).
    pub fn token_requests(&self) -> usize {
        self.with(|s| s.token_requests.len())
    }

    /// Token requests received with this `client_id` (successful or not).
    pub fn token_requests_for(&self, client_id: &str) -> usize {
        self.with(|s| s.token_requests.iter().filter(|c| *c == client_id).count())
    }

    /// The host name (TLS server name) the last token request was sent to.
    pub fn last_token_host(&self) -> Option<String> {
        self.with(|s| s.last_token_host.clone())
    }

    /// The form fields of the last token request.
    pub fn last_token_form(&self) -> Option<HashMap<String, String>> {
        self.with(|s| s.last_token_form.clone())
    }

    // ---- Key Vault ----

    /// Gives `client_id` read access to every object of `vault`.
    pub fn grant(&self, vault: &str, client_id: &str) {
        self.with(|s| s.grants.insert((vault.into(), client_id.into())));
    }

    /// `vault` uses access policies, not RBAC: callers without a grant get 403 `AccessDenied`
    /// instead of `ForbiddenByRbac`.
    pub fn use_access_policies(&self, vault: &str) {
        self.with(|s| s.access_policy_vaults.insert(vault.into()));
    }

    /// The tenant `vault` belongs to: named in its challenge, and tokens of other tenants get 401
    /// `AKV10032`. Without it the challenge names the first tenant with a credential.
    pub fn set_vault_tenant(&self, vault: &str, tenant: &str) {
        self.with(|s| s.vault_tenants.insert(vault.into(), tenant.into()));
    }

    /// Adds a secret version (versions may be added in any order).
    pub fn put_secret(&self, vault: &str, name: &str, secret: FakeSecret) {
        self.with(|s| {
            s.secrets
                .entry((vault.into(), name.to_ascii_lowercase()))
                .or_insert_with(|| (name.to_owned(), Vec::new()))
                .1
                .push(secret)
        });
    }

    /// A key version: `jwk` is the `key` object (`kty`, `n`/`e` or `crv`/`x`/`y`, `key_ops`…); its
    /// `kid` is set from the request URL.
    pub fn put_key(
        &self,
        vault: &str,
        name: &str,
        version: &str,
        jwk: Value,
        created: i64,
        enabled: bool,
    ) {
        self.with(|s| {
            s.keys
                .entry((vault.into(), name.to_ascii_lowercase()))
                .or_insert_with(|| (name.to_owned(), Vec::new()))
                .1
                .push(FakeVersion {
                    version: version.into(),
                    payload: jwk,
                    created,
                    enabled,
                })
        });
    }

    /// A certificate version; `cer_base64` is the standard-base64 DER of the leaf. `x5t` is computed.
    pub fn put_certificate(
        &self,
        vault: &str,
        name: &str,
        version: &str,
        cer_base64: &str,
        created: i64,
        enabled: bool,
    ) {
        let x5t = base64::engine::general_purpose::STANDARD
            .decode(cer_base64)
            .map(|der| {
                let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
            })
            .unwrap_or_default();
        self.with(|s| {
            s.certificates
                .entry((vault.into(), name.to_ascii_lowercase()))
                .or_insert_with(|| (name.to_owned(), Vec::new()))
                .1
                .push(FakeVersion {
                    version: version.into(),
                    payload: json!({ "cer": cer_base64, "x5t": x5t }),
                    created,
                    enabled,
                })
        });
    }

    /// Serves `body` with `status` for exactly `path` (no query, as sent) on `vault`, after
    /// authentication and before the grant check and the object model.
    pub fn put_raw_json(&self, vault: &str, path: &str, status: u16, body: Value) {
        self.with(|s| s.raw.insert((vault.into(), path.into()), (status, body)));
    }

    /// The next `n` authenticated requests to `vault` get the recorded 429 `Throttled` with
    /// `Retry-After: retry_after_secs`.
    pub fn throttle_next(&self, vault: &str, n: u32, retry_after_secs: u64) {
        self.with(|s| s.throttle.insert(vault.into(), (n, retry_after_secs)));
    }

    /// The next `n` authenticated requests to `vault` get `status` (meant for 5xx).
    pub fn fail_next(&self, vault: &str, n: u32, status: u16) {
        self.with(|s| s.failures.insert(vault.into(), (n, status)));
    }

    /// Delay before every Key Vault response.
    pub fn set_latency(&self, latency: Duration) {
        self.with(|s| s.latency = latency);
    }

    /// Largest page of a versions listing (default 25, as the service); `maxresults` may lower it.
    pub fn set_page_size(&self, n: usize) {
        self.with(|s| s.page_size = n.max(1));
    }

    /// Every request that reached Key Vault, in order.
    pub fn kv_requests(&self) -> Vec<RecordedRequest> {
        self.with(|s| s.kv_requests.clone())
    }
}

// ---------------------------------------------------------------------------------------------
// Recorded bodies

struct Recorded {
    challenge: Value,
    secret_not_found: (Value, &'static str),
    key_not_found: (Value, &'static str),
    cert_not_found: (Value, &'static str),
    disabled: Value,
    rbac: Value,
    access_denied: Value,
    throttled: Value,
    fic_mismatch: Value,
    bad_secret: (u16, Value),
    token_ok: Value,
}

fn load(rel: &str) -> Value {
    let path =
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/vectors/keyvault/").to_owned() + rel;
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("recorded vector {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("recorded vector {path}: {e}"))
}

fn body_of(rel: &str) -> Value {
    load(rel)["response"]["body"].clone()
}

fn recorded() -> &'static Recorded {
    static R: OnceLock<Recorded> = OnceLock::new();
    R.get_or_init(|| {
        let bad = load(V_BAD_SECRET);
        Recorded {
            challenge: body_of(V_CHALLENGE),
            secret_not_found: (body_of(V_SECRET_NOT_FOUND), "RecoverSecret"),
            key_not_found: (body_of(V_KEY_NOT_FOUND), "BackupKey"),
            cert_not_found: (body_of(V_CERT_NOT_FOUND), "GetDeletedCertificate"),
            disabled: body_of(V_DISABLED),
            rbac: body_of(V_RBAC),
            access_denied: body_of(V_ACCESS_DENIED),
            throttled: body_of(V_THROTTLED),
            fic_mismatch: body_of(V_FIC_MISMATCH),
            bad_secret: (
                bad["response"]["status"].as_u64().unwrap_or(401) as u16,
                bad["response"]["body"].clone(),
            ),
            token_ok: body_of(V_TOKEN_OK),
        }
    })
}

/// Replaces the text between the first `start` and the next `end` after it.
fn replace_between(s: &str, start: &str, end: &str, new: &str) -> String {
    let Some(i) = s.find(start).map(|i| i + start.len()) else {
        return s.to_owned();
    };
    let Some(j) = s[i..].find(end).map(|j| i + j) else {
        return s.to_owned();
    };
    format!("{}{new}{}", &s[..i], &s[j..])
}

fn with_message(mut body: Value, f: impl FnOnce(&str) -> String) -> Value {
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    body["error"]["message"] = f(&message).into();
    body
}

// ---------------------------------------------------------------------------------------------
// HTTP plumbing

type Resp = Response<Full<Bytes>>;

fn json_response(status: u16, body: &Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn set_header(r: &mut Resp, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

fn kv_error(status: u16, code: &str, message: &str) -> Resp {
    json_response(
        status,
        &json!({ "error": { "code": code, "message": message } }),
    )
}

fn host_of(req: &Request<Incoming>) -> String {
    let host = match req.uri().authority() {
        Some(a) => a.host().to_owned(),
        None => {
            let h = req
                .headers()
                .get(hyper::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default();
            if let Some(rest) = h.strip_prefix('[') {
                rest.split(']').next().unwrap_or_default().to_owned()
            } else {
                h.split(':').next().unwrap_or_default().to_owned()
            }
        }
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

async fn route(req: Request<Incoming>, state: &Mutex<State>) -> Resp {
    let host = host_of(&req);
    let path = req.uri().path();
    // Entra, or the AKS identity-binding token proxy that stands in for it.
    if host.starts_with("login.") || path.ends_with("/oauth2/v2.0/token") {
        return entra(req, &host, state).await;
    }
    if host.split('.').nth(1) == Some("vault") {
        let latency = lock(state).latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        return keyvault(&req, &host, state);
    }
    kv_error(
        404,
        "NotFound",
        &format!("no fake service for host '{host}'"),
    )
}

// ---------------------------------------------------------------------------------------------
// Entra ID

/// An Entra error in the recorded envelope (`error`, `error_description` with trace/correlation
/// lines, `error_codes`, `timestamp`, `trace_id`, `correlation_id`, `error_uri`).
fn aad_error(status: u16, error: &str, code: u64, text: &str) -> Resp {
    let mut body = recorded().fic_mismatch.clone();
    let recorded_description = body["error_description"].as_str().unwrap_or_default();
    let tail = recorded_description
        .find("\r\nTrace ID:")
        .map(|i| recorded_description[i..].to_owned())
        .unwrap_or_default();
    body["error"] = error.into();
    body["error_description"] = format!("AADSTS{code}: {text}{tail}").into();
    body["error_codes"] = json!([code]);
    body["error_uri"] = format!("https://login.microsoftonline.com/error?code={code}").into();
    json_response(status, &body)
}

fn jwt_claims(token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .filter(Value::is_object)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for unix seconds (proleptic Gregorian, UTC).
fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The Key Vault resource a given Entra authority host issues tokens for; `None` for non-Entra
/// hosts (the AKS token proxy forwards to whatever cloud it is in).
fn kv_resource_for_login(host: &str) -> Option<String> {
    let suffix = host.strip_prefix("login.")?;
    Some(
        match suffix {
            "microsoftonline.com" | "windows.net" => "https://vault.azure.net",
            "microsoftonline.us" => "https://vault.usgovcloudapi.net",
            "chinacloudapi.cn" => "https://vault.azure.cn",
            "microsoftonline.de" => "https://vault.microsoftazure.de",
            other => return Some(format!("https://vault.{other}")),
        }
        .to_owned(),
    )
}

fn missing_parameter(name: &str) -> Resp {
    aad_error(
        400,
        "invalid_request",
        900144,
        &format!("The request body must contain the following parameter: '{name}'."),
    )
}

async fn entra(req: Request<Incoming>, host: &str, state: &Mutex<State>) -> Resp {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let trimmed = path.trim_start_matches('/');
    if let Some(tenant) = trimmed.strip_suffix("/v2.0/.well-known/openid-configuration") {
        let base = format!("https://{host}/{tenant}");
        return json_response(
            200,
            &json!({
                "token_endpoint": format!("{base}/oauth2/v2.0/token"),
                "issuer": format!("{base}/v2.0"),
                "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "tenant_region_scope": "WW",
            }),
        );
    }
    let Some(tenant) = trimmed
        .strip_suffix("/oauth2/v2.0/token")
        .filter(|t| !t.is_empty() && !t.contains('/'))
        .map(str::to_owned)
    else {
        return json_response(404, &json!({ "error": "not_found", "path": path }));
    };
    if method != hyper::Method::POST {
        return aad_error(
            400,
            "invalid_request",
            900561,
            "The endpoint only accepts POST requests. Received a GET request.",
        );
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let mut s = lock(state);
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    s.token_requests.push(client_id.clone());
    s.last_token_form = Some(form.clone());
    s.last_token_host = Some(host.to_owned());
    let known_tenant = s.federated.iter().any(|f| f.tenant == tenant)
        || s.client_secrets.keys().any(|k| k.0 == tenant);
    if !known_tenant {
        return aad_error(
            400,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
            ),
        );
    }
    let Some(grant_type) = form.get("grant_type") else {
        return missing_parameter("grant_type");
    };
    if grant_type != "client_credentials" {
        return aad_error(
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    let Some(scope) = form.get("scope") else {
        return missing_parameter("scope");
    };
    let Some(resource) = scope
        .strip_suffix("/.default")
        .filter(|r| !r.is_empty() && !r.contains(' '))
    else {
        return aad_error(
            400,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        );
    };
    if let Some(expected) = kv_resource_for_login(host)
        && resource.trim_end_matches('/') != expected
    {
        return aad_error(
            400,
            "invalid_resource",
            500011,
            &format!(
                "The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
            ),
        );
    }
    if client_id.is_empty() {
        return missing_parameter("client_id");
    }
    let known_client = s
        .federated
        .iter()
        .any(|f| f.tenant == tenant && f.client_id == client_id)
        || s.client_secrets
            .contains_key(&(tenant.clone(), client_id.clone()));
    if !known_client {
        return aad_error(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        );
    }
    if let Some(assertion) = form.get("client_assertion") {
        if form.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
            return aad_error(
                400,
                "invalid_request",
                50027,
                "Invalid client_assertion_type: expected urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
            );
        }
        let Some(claims) = jwt_claims(assertion) else {
            return aad_error(
                400,
                "invalid_request",
                50027,
                "JWT token is invalid or malformed.",
            );
        };
        let iss = claims["iss"].as_str().unwrap_or_default().to_owned();
        let sub = claims["sub"].as_str().unwrap_or_default().to_owned();
        let aud: Vec<String> = match &claims["aud"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let exp = claims["exp"].as_i64().unwrap_or(0);
        let nbf = claims["nbf"]
            .as_i64()
            .or_else(|| claims["iat"].as_i64())
            .unwrap_or(exp);
        let t = now();
        if exp <= t || nbf > t + 300 {
            return aad_error(
                400,
                "invalid_client",
                700024,
                &format!(
                    "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .",
                    rfc3339(t),
                    rfc3339(nbf),
                    rfc3339(exp)
                ),
            );
        }
        let matched = s.federated.iter().any(|f| {
            f.tenant == tenant
                && f.client_id == client_id
                && f.issuer == iss
                && f.subject == sub
                && aud.contains(&f.audience)
        });
        if !matched {
            let mut body = recorded().fic_mismatch.clone();
            let description = body["error_description"].as_str().unwrap_or_default();
            let description = replace_between(description, "Assertion Issuer: '", "'.", &iss);
            let description = replace_between(&description, "Assertion Subject: '", "'.", &sub);
            let description =
                replace_between(&description, "Assertion Audience: '", "'.", &aud.join(","));
            body["error_description"] = description.into();
            return json_response(400, &body);
        }
    } else if let Some(secret) = form.get("client_secret") {
        if s.client_secrets.get(&(tenant.clone(), client_id.clone())) != Some(secret) {
            let (status, body) = &recorded().bad_secret;
            return json_response(*status, body);
        }
    } else {
        return aad_error(
            400,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    }
    let lifetime = s.token_lifetime;
    let token = s.mint(&tenant, &client_id, Some(resource.to_owned()));
    let mut body = recorded().token_ok.clone();
    body["token_type"] = "Bearer".into();
    body["expires_in"] = lifetime.into();
    body["ext_expires_in"] = lifetime.into();
    body["access_token"] = token.into();
    let mut r = json_response(200, &body);
    set_header(&mut r, "cache-control", "no-store, no-cache");
    r
}

// ---------------------------------------------------------------------------------------------
// Key Vault

fn attributes(created: i64, enabled: bool) -> Value {
    json!({ "enabled": enabled, "created": created, "updated": created, "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90 })
}

/// (Entra authority, Key Vault resource) of the cloud a vault host belongs to.
fn cloud_of(host: &str) -> (String, String) {
    let suffix = host.split_once('.').map(|x| x.1).unwrap_or_default();
    let authority = match suffix {
        "vault.azure.net" => "https://login.microsoftonline.com".to_owned(),
        "vault.usgovcloudapi.net" => "https://login.microsoftonline.us".to_owned(),
        "vault.azure.cn" => "https://login.chinacloudapi.cn".to_owned(),
        "vault.microsoftazure.de" => "https://login.microsoftonline.de".to_owned(),
        other => format!(
            "https://login.{}",
            other.strip_prefix("vault.").unwrap_or(other)
        ),
    };
    (authority, format!("https://{suffix}"))
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn query_param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn skiptoken_encode(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({ "NextMarker": format!("2!{offset}"), "TargetLocation": 0 }).to_string())
}

fn skiptoken_decode(token: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v["NextMarker"].as_str()?.strip_prefix("2!")?.parse().ok()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Secret,
    Key,
    Certificate,
}

impl Kind {
    fn collection(self) -> &'static str {
        match self {
            Kind::Secret => "secrets",
            Kind::Key => "keys",
            Kind::Certificate => "certificates",
        }
    }

    fn singular(self) -> &'static str {
        match self {
            Kind::Secret => "secret",
            Kind::Key => "key",
            Kind::Certificate => "certificate",
        }
    }

    fn rbac_action(self, listing: bool) -> &'static str {
        match (self, listing) {
            (Kind::Secret, false) => "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            (Kind::Secret, true) => "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
            (Kind::Key, _) => "Microsoft.KeyVault/vaults/keys/read",
            (Kind::Certificate, _) => "Microsoft.KeyVault/vaults/certificates/read",
        }
    }
}

fn challenge(host: &str, tenant: &str, message: Option<&str>) -> Resp {
    let (authority, resource) = cloud_of(host);
    let body = match message {
        None => recorded().challenge.clone(),
        Some(m) => with_message(recorded().challenge.clone(), |_| m.to_owned()),
    };
    let mut r = json_response(401, &body);
    set_header(
        &mut r,
        "www-authenticate",
        &format!("Bearer authorization=\"{authority}/{tenant}\", resource=\"{resource}\""),
    );
    r
}

fn keyvault(req: &Request<Incoming>, host: &str, state: &Mutex<State>) -> Resp {
    let mut s = lock(state);
    let request_id = s.next_id();
    let mut r = keyvault_inner(req, host, &mut s);
    set_header(&mut r, "cache-control", "no-cache");
    set_header(&mut r, "x-ms-keyvault-service-version", "1.9.2400.1");
    set_header(&mut r, "x-ms-keyvault-region", "westeurope");
    set_header(
        &mut r,
        "x-ms-request-id",
        &format!("00000000-0000-4000-8000-{request_id:012x}"),
    );
    r
}

fn keyvault_inner(req: &Request<Incoming>, host: &str, s: &mut State) -> Resp {
    let vault = host.split('.').next().unwrap_or_default().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let auth = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    s.kv_requests.push(RecordedRequest {
        host: host.to_owned(),
        method: req.method().to_string(),
        path: path.clone(),
        query: query.clone(),
        authorization_present: auth.is_some(),
        user_agent: req
            .headers()
            .get(hyper::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
    if query_param(&query, "api-version").is_none_or(|v| v.is_empty()) {
        return kv_error(
            400,
            "BadParameter",
            "The 'api-version' query parameter is missing.",
        );
    }

    // Authentication.
    let tenant = s.vault_tenant(&vault);
    let presented = auth.as_deref().and_then(|a| {
        a.strip_prefix("Bearer ")
            .or_else(|| a.strip_prefix("bearer "))
    });
    let Some(presented) = presented.map(str::trim).filter(|t| !t.is_empty()) else {
        return challenge(host, &tenant, None);
    };
    let Some(caller) = s.tokens.get(presented).cloned() else {
        return challenge(host, &tenant, None);
    };
    if caller.expires_at <= now() {
        return challenge(
            host,
            &tenant,
            Some("[TokenExpired] Error validating token: 'S2S12086'."),
        );
    }
    let (_, expected_resource) = cloud_of(host);
    if let Some(found) = &caller.resource
        && *found != expected_resource
    {
        return challenge(
            host,
            &tenant,
            Some(&format!(
                "AKV10022: Invalid audience. Expected {expected_resource}, found: {found}."
            )),
        );
    }
    if s.vault_tenants.contains_key(&vault) && caller.tenant != tenant {
        return challenge(
            host,
            &tenant,
            Some(&format!(
                "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{tenant}/, found https://sts.windows.net/{}/.",
                caller.tenant
            )),
        );
    }

    // Injected throttling and failures.
    if let Some((n, retry_after)) = s.throttle.get_mut(&vault)
        && *n > 0
    {
        *n -= 1;
        let retry_after = *retry_after;
        let mut r = json_response(429, &recorded().throttled);
        set_header(&mut r, "retry-after", &retry_after.to_string());
        return r;
    }
    if let Some((n, status)) = s.failures.get_mut(&vault)
        && *n > 0
    {
        *n -= 1;
        let status = *status;
        return kv_error(
            status,
            "ServiceUnavailable",
            "The service is temporarily unavailable, please retry later.",
        );
    }

    if let Some((status, body)) = s.raw.get(&(vault.clone(), path.clone())) {
        return json_response(*status, body);
    }

    if req.method() != hyper::Method::GET {
        return kv_error(
            405,
            "MethodNotAllowed",
            &format!("The fake Key Vault only serves GET, not {}.", req.method()),
        );
    }
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let kind = match segments.first().map(String::as_str) {
        Some("secrets") => Kind::Secret,
        Some("keys") => Kind::Key,
        Some("certificates") => Kind::Certificate,
        _ => {
            return kv_error(
                400,
                "BadParameter",
                &format!("The request URI '{path}' is not a supported operation."),
            );
        }
    };
    let name = segments.get(1).cloned().unwrap_or_default();
    let rest: Vec<&str> = segments[2.min(segments.len())..]
        .iter()
        .map(String::as_str)
        .collect();
    let (listing, requested_version) = match rest.as_slice() {
        [] | [""] => (false, None),
        ["versions"] => (true, None),
        [v] | [v, ""] => (false, Some(v.to_string())),
        _ => {
            return kv_error(
                400,
                "BadParameter",
                &format!("The request URI '{path}' is not a supported operation."),
            );
        }
    };
    if name.is_empty() {
        return kv_error(
            400,
            "BadParameter",
            &format!("The request URI '{path}' is missing the object name."),
        );
    }

    // Authorization.
    if !s
        .grants
        .contains(&(vault.clone(), caller.client_id.clone()))
    {
        let caller_id = format!(
            "appid={};oid={};iss=https://sts.windows.net/{}/",
            caller.client_id,
            object_id(&caller.client_id),
            caller.tenant
        );
        let collection = kind.collection();
        if s.access_policy_vaults.contains(&vault) {
            let op = if listing { "list" } else { "get" };
            let body = with_message(recorded().access_denied.clone(), |m| {
                let m = replace_between(m, "application '", "' does not", &caller_id);
                let m = replace_between(
                    &m,
                    "does not have ",
                    " permission",
                    &format!("{collection} {op}"),
                );
                replace_between(&m, "key vault '", ";location=", &vault)
            });
            return json_response(403, &body);
        }
        let body = with_message(recorded().rbac.clone(), |m| {
            m.split("\r\n")
                .map(|line| {
                    if line.starts_with("Caller: ") {
                        format!("Caller: {caller_id}")
                    } else if line.starts_with("Action: ") {
                        format!("Action: '{}'", kind.rbac_action(listing))
                    } else if line.starts_with("Resource: ") {
                        format!(
                            "Resource: '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/microsoft.keyvault/vaults/{vault}/{collection}/{}'",
                            name.to_ascii_lowercase()
                        )
                    } else if line.starts_with("Vault: ") {
                        format!("Vault: {vault};location=westeurope")
                    } else {
                        line.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("\r\n")
        });
        return json_response(403, &body);
    }

    // Objects.
    let key = (vault.clone(), name.to_ascii_lowercase());
    // (stored name, [(version, created, enabled)]) of the object.
    let object: Option<(String, Vec<VersionMeta>)> = match kind {
        Kind::Secret => s.secrets.get(&key).map(|(n, v)| {
            (
                n.clone(),
                v.iter()
                    .map(|x| (x.version.clone(), x.created, x.enabled))
                    .collect(),
            )
        }),
        Kind::Key => s.keys.get(&key).map(|(n, v)| {
            (
                n.clone(),
                v.iter()
                    .map(|x| (x.version.clone(), x.created, x.enabled))
                    .collect(),
            )
        }),
        Kind::Certificate => s.certificates.get(&key).map(|(n, v)| {
            (
                n.clone(),
                v.iter()
                    .map(|x| (x.version.clone(), x.created, x.enabled))
                    .collect(),
            )
        }),
    };
    let Some((stored_name, versions)) = object.filter(|(_, v)| !v.is_empty()) else {
        return not_found(kind, &name);
    };
    let base = format!("https://{host}/{}/{stored_name}", kind.collection());

    if listing {
        return list_versions(s, kind, host, &base, &key, &query, &versions);
    }

    let chosen = match &requested_version {
        Some(v) => versions
            .iter()
            .rev()
            .find(|(id, _, _)| id.eq_ignore_ascii_case(v)),
        // The current version is the newest, enabled or not.
        None => versions.iter().max_by_key(|(_, c, _)| *c),
    };
    let Some((version, created, enabled)) = chosen.cloned() else {
        return not_found(
            kind,
            &format!("{name}/{}", requested_version.unwrap_or_default()),
        );
    };
    if !enabled {
        let singular = kind.singular();
        let inner = format!("{}{}Disabled", singular[..1].to_uppercase(), &singular[1..]);
        let mut body = with_message(recorded().disabled.clone(), |m| {
            m.replace("disabled secret", &format!("disabled {singular}"))
        });
        body["error"]["innererror"]["code"] = inner.into();
        return json_response(403, &body);
    }
    let id = format!("{base}/{version}");
    let body = match kind {
        Kind::Secret => {
            let Some(x) = s
                .secrets
                .get(&key)
                .and_then(|(_, v)| v.iter().rev().find(|x| x.version == version))
            else {
                return not_found(kind, &name);
            };
            let mut b = json!({ "value": x.value, "id": id, "attributes": attributes(created, enabled), "tags": {} });
            if let Some(ct) = &x.content_type {
                b["contentType"] = ct.clone().into();
            }
            if let Some(kid) = &x.kid {
                b["kid"] = kid.clone().into();
                b["managed"] = true.into();
            }
            b
        }
        Kind::Key => {
            let Some(x) = s
                .keys
                .get(&key)
                .and_then(|(_, v)| v.iter().rev().find(|x| x.version == version))
            else {
                return not_found(kind, &name);
            };
            let mut jwk = x.payload.clone();
            if !jwk.is_object() {
                jwk = json!({});
            }
            jwk["kid"] = id.clone().into();
            json!({ "key": jwk, "attributes": attributes(created, enabled), "tags": {} })
        }
        Kind::Certificate => {
            let Some(x) = s
                .certificates
                .get(&key)
                .and_then(|(_, v)| v.iter().rev().find(|x| x.version == version))
            else {
                return not_found(kind, &name);
            };
            json!({
                "id": id,
                "kid": format!("https://{host}/keys/{stored_name}/{version}"),
                "sid": format!("https://{host}/secrets/{stored_name}/{version}"),
                "x5t": x.payload["x5t"],
                "cer": x.payload["cer"],
                "attributes": attributes(created, enabled),
                "tags": {},
            })
        }
    };
    json_response(200, &body)
}

fn list_versions(
    s: &State,
    kind: Kind,
    host: &str,
    base: &str,
    key: &(String, String),
    query: &str,
    versions: &[VersionMeta],
) -> Resp {
    let mut page = s.page_size;
    let maxresults = query_param(query, "maxresults");
    if let Some(m) = &maxresults {
        match m.parse::<usize>() {
            Ok(n @ 1..=25) => page = page.min(n),
            _ => {
                return kv_error(
                    400,
                    "BadParameter",
                    &format!("Invalid maxresults value '{m}'. It must be between 1 and 25."),
                );
            }
        }
    }
    let skip = match query_param(query, "$skiptoken") {
        None => 0,
        Some(t) => match skiptoken_decode(&t) {
            Some(n) => n,
            None => return kv_error(400, "BadParameter", "The skip token is not valid."),
        },
    };
    let items: Vec<Value> = versions
        .iter()
        .skip(skip)
        .take(page)
        .map(|(v, created, enabled)| {
            let id = format!("{base}/{v}");
            let mut item = match kind {
                Kind::Key => json!({ "kid": id }),
                _ => json!({ "id": id }),
            };
            item["attributes"] = attributes(*created, *enabled);
            item["tags"] = json!({});
            match kind {
                Kind::Secret => {
                    if let Some(x) = s
                        .secrets
                        .get(key)
                        .and_then(|(_, all)| all.iter().find(|x| &x.version == v))
                    {
                        if let Some(ct) = &x.content_type {
                            item["contentType"] = ct.clone().into();
                        }
                        if x.kid.is_some() {
                            item["managed"] = true.into();
                        }
                    }
                }
                Kind::Certificate => {
                    if let Some(x) = s
                        .certificates
                        .get(key)
                        .and_then(|(_, all)| all.iter().find(|x| &x.version == v))
                    {
                        item["x5t"] = x.payload["x5t"].clone();
                    }
                }
                Kind::Key => {}
            }
            item
        })
        .collect();
    let next = (skip + page < versions.len()).then(|| {
        let api_version = query_param(query, "api-version").unwrap_or_default();
        let mut link = format!(
            "https://{host}{}/versions?api-version={api_version}&$skiptoken={}",
            base.strip_prefix(&format!("https://{host}"))
                .unwrap_or(base),
            skiptoken_encode(skip + page)
        );
        if let Some(m) = maxresults {
            link.push_str(&format!("&maxresults={m}"));
        }
        link
    });
    json_response(200, &json!({ "value": items, "nextLink": next }))
}

fn not_found(kind: Kind, name: &str) -> Resp {
    let r = recorded();
    let (template, original) = match kind {
        Kind::Secret => &r.secret_not_found,
        Kind::Key => &r.key_not_found,
        Kind::Certificate => &r.cert_not_found,
    };
    let body = with_message(template.clone(), |m| {
        m.replacen(
            &format!("(name/id) {original} "),
            &format!("(name/id) {name} "),
            1,
        )
    });
    json_response(404, &body)
}

/// A stable, made-up object id for an app's service principal.
fn object_id(client_id: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, client_id.as_bytes());
    let h: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

// ---------------------------------------------------------------------------------------------
// Kubernetes inputs

/// A projected service-account token as kubelet issues it: well-formed JWT, header
/// `{"alg":"RS256","kid":"test"}`, claims `iss`, `sub` = `system:serviceaccount:<ns>:<sa>`, `aud`
/// (array), `exp`, `iat`/`nbf` (= exp − 3600) and the `kubernetes.io` block. The signature segment
/// is a fixed string: Entra, not the provider, verifies signatures, and the fake Entra does not.
pub fn service_account_token(
    issuer: &str,
    namespace: &str,
    sa: &str,
    audience: &str,
    exp_unix: i64,
) -> String {
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = json!({ "alg": "RS256", "kid": "test" });
    let claims = json!({
        "aud": [audience], "exp": exp_unix, "iat": exp_unix - 3600, "nbf": exp_unix - 3600, "iss": issuer,
        "sub": format!("system:serviceaccount:{namespace}:{sa}"),
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": { "name": sa, "uid": "9b7c1f0e-0000-4000-8000-000000000001" },
        },
    });
    format!(
        "{}.{}.c2lnbmF0dXJlLW5vdC1jaGVja2VkLWhlcmU",
        e.encode(header.to_string()),
        e.encode(claims.to_string())
    )
}

/// The `csi.storage.k8s.io/serviceAccount.tokens` attribute value:
/// `{"<audience>":{"token":"…","expirationTimestamp":"…"}}`.
pub fn tokens_attribute(audience: &str, token: &str, expiry_rfc3339: &str) -> String {
    json!({ audience: { "token": token, "expirationTimestamp": expiry_rfc3339 } }).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_666_913_962), "2022-10-27T23:39:22Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
