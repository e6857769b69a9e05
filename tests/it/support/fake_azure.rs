//! A fake Entra ID token endpoint and a fake Key Vault behind one HTTPS server on 127.0.0.1, routed by
//! host name. They speak the real REST shapes (spec 3 and 4): bodies and headers are modelled on the
//! recorded responses in `shared/vectors/keyvault/` (401 challenge, 403 ForbiddenByRbac, 404
//! *NotFound, 429 Throttled with Retry-After, AADSTS70021 / 7000215 token errors), and the provider
//! reaches them through its production path: resolver override, TLS verified against the test CA.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use super::pki;

/// One version of a secret.
#[derive(Clone, Debug)]
pub struct FakeSecret {
    pub version: String,
    pub value: String,
    pub content_type: Option<String>,
    pub kid: Option<String>,
    pub created: i64,
    pub enabled: bool,
}

/// One version of a key or certificate: the JSON payload fields besides id/attributes.
#[derive(Clone, Debug)]
struct FakeVersion {
    version: String,
    payload: serde_json::Value,
    created: i64,
    enabled: bool,
}

/// A request that reached the fake Key Vault.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub host: String,
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization_present: bool,
    pub user_agent: Option<String>,
}

#[derive(Clone)]
struct IssuedToken {
    client_id: String,
    expires_at: i64,
}

struct State {
    federated: Vec<(String, String, String, String, String)>,
    client_secrets: HashMap<(String, String), String>,
    tokens: HashMap<String, IssuedToken>,
    token_lifetime: i64,
    token_requests: Vec<String>,
    last_token_form: Option<HashMap<String, String>>,
    last_token_host: Option<String>,
    grants: HashSet<(String, String)>,
    secrets: HashMap<(String, String), Vec<FakeSecret>>,
    keys: HashMap<(String, String), Vec<FakeVersion>>,
    certificates: HashMap<(String, String), Vec<FakeVersion>>,
    raw: HashMap<(String, String), (u16, serde_json::Value)>,
    throttle: HashMap<String, (u32, u64)>,
    failures: HashMap<String, (u32, u16)>,
    latency: Duration,
    kv_requests: Vec<RecordedRequest>,
    page_size: usize,
    next_token: u64,
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
            secrets: HashMap::new(),
            keys: HashMap::new(),
            certificates: HashMap::new(),
            raw: HashMap::new(),
            throttle: HashMap::new(),
            failures: HashMap::new(),
            latency: Duration::ZERO,
            kv_requests: Vec::new(),
            page_size: 25,
            next_token: 0,
        }
    }
}

/// A handle on the fake's state that other fakes (IMDS, NMI) use to mint tokens Key Vault accepts.
#[derive(Clone)]
pub struct Handle(Arc<Mutex<State>>);

impl Handle {
    /// Issues an access token for `client_id`, as Entra would after any successful grant.
    pub fn mint_token(&self, _tenant: &str, client_id: &str) -> String {
        let mut s = self.0.lock().unwrap();
        mint(&mut s, client_id)
    }
}

fn mint(s: &mut State, client_id: &str) -> String {
    s.next_token += 1;
    let token = format!("fake-at.{}.{}", s.next_token, client_id.replace('-', ""));
    let expires_at = super::harness::now() + s.token_lifetime;
    s.tokens.insert(
        token.clone(),
        IssuedToken {
            client_id: client_id.to_owned(),
            expires_at,
        },
    );
    token
}

/// The fake; the server stops when it is dropped.
pub struct FakeAzure {
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
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State::default()));
        let acceptor = tokio_rustls::TlsAcceptor::from(pki::server_tls_config());
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
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
        f(&mut self.state.lock().unwrap())
    }

    pub fn clone_handle(&self) -> Handle {
        Handle(self.state.clone())
    }

    pub fn add_federated_credential(
        &self,
        tenant: &str,
        client_id: &str,
        issuer: &str,
        subject: &str,
        audience: &str,
    ) {
        self.with(|s| {
            s.federated.push((
                tenant.into(),
                client_id.into(),
                issuer.into(),
                subject.into(),
                audience.into(),
            ))
        });
    }

    pub fn add_client_secret(&self, tenant: &str, client_id: &str, secret: &str) {
        self.with(|s| {
            s.client_secrets
                .insert((tenant.into(), client_id.into()), secret.into())
        });
    }

    pub fn set_token_lifetime(&self, secs: i64) {
        self.with(|s| s.token_lifetime = secs);
    }

    pub fn token_requests(&self) -> usize {
        self.with(|s| s.token_requests.len())
    }

    pub fn token_requests_for(&self, client_id: &str) -> usize {
        self.with(|s| s.token_requests.iter().filter(|c| *c == client_id).count())
    }

    /// The host name (TLS server name) the last token request was sent to.
    pub fn last_token_host(&self) -> Option<String> {
        self.with(|s| s.last_token_host.clone())
    }

    pub fn last_token_form(&self) -> Option<HashMap<String, String>> {
        self.with(|s| s.last_token_form.clone())
    }

    /// Gives `client_id` read access to every object of `vault`.
    pub fn grant(&self, vault: &str, client_id: &str) {
        self.with(|s| s.grants.insert((vault.into(), client_id.into())));
    }

    pub fn put_secret(&self, vault: &str, name: &str, secret: FakeSecret) {
        self.with(|s| {
            s.secrets
                .entry((vault.into(), name.into()))
                .or_default()
                .push(secret)
        });
    }

    /// A key version: `jwk` is the `key` object without `kid` (added from the URL).
    pub fn put_key(
        &self,
        vault: &str,
        name: &str,
        version: &str,
        jwk: serde_json::Value,
        created: i64,
        enabled: bool,
    ) {
        self.with(|s| {
            s.keys
                .entry((vault.into(), name.into()))
                .or_default()
                .push(FakeVersion {
                    version: version.into(),
                    payload: jwk,
                    created,
                    enabled,
                })
        });
    }

    pub fn put_certificate(
        &self,
        vault: &str,
        name: &str,
        version: &str,
        cer_base64: &str,
        created: i64,
        enabled: bool,
    ) {
        self.with(|s| {
            s.certificates
                .entry((vault.into(), name.into()))
                .or_default()
                .push(FakeVersion {
                    version: version.into(),
                    payload: serde_json::json!({ "cer": cer_base64 }),
                    created,
                    enabled,
                })
        });
    }

    /// Serves `body` with `status` for `path` (no query) on `vault`, after authentication.
    pub fn put_raw_json(&self, vault: &str, path: &str, status: u16, body: serde_json::Value) {
        self.with(|s| s.raw.insert((vault.into(), path.into()), (status, body)));
    }

    /// The next `n` Key Vault requests to `vault` get 429 Throttled with `Retry-After`.
    pub fn throttle_next(&self, vault: &str, n: u32, retry_after_secs: u64) {
        self.with(|s| s.throttle.insert(vault.into(), (n, retry_after_secs)));
    }

    /// The next `n` Key Vault requests to `vault` get `status`.
    pub fn fail_next(&self, vault: &str, n: u32, status: u16) {
        self.with(|s| s.failures.insert(vault.into(), (n, status)));
    }

    pub fn set_latency(&self, latency: Duration) {
        self.with(|s| s.latency = latency);
    }

    pub fn set_page_size(&self, n: usize) {
        self.with(|s| s.page_size = n.max(1));
    }

    pub fn kv_requests(&self) -> Vec<RecordedRequest> {
        self.with(|s| s.kv_requests.clone())
    }
}

fn json(status: u16, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        "content-type",
        "application/json; charset=utf-8".parse().unwrap(),
    );
    r
}

fn kv_error(status: u16, code: &str, message: &str, inner: Option<&str>) -> Response<Full<Bytes>> {
    let mut error = serde_json::json!({ "code": code, "message": message });
    if let Some(inner) = inner {
        error["innererror"] = serde_json::json!({ "code": inner });
    }
    json(status, &serde_json::json!({ "error": error }))
}

fn host_of(req: &Request<Incoming>) -> String {
    let host = req
        .uri()
        .authority()
        .map(|a| a.host().to_owned())
        .or_else(|| {
            req.headers()
                .get("host")
                .and_then(|h| h.to_str().ok())
                .map(|h| h.split(':').next().unwrap_or_default().to_owned())
        })
        .unwrap_or_default();
    host.to_ascii_lowercase()
}

async fn route(req: Request<Incoming>, state: &Arc<Mutex<State>>) -> Response<Full<Bytes>> {
    let host = host_of(&req);
    // Entra, or the AKS identity-binding token proxy that stands in for it.
    if host.starts_with("login.") || req.uri().path().ends_with("/oauth2/v2.0/token") {
        state.lock().unwrap().last_token_host = Some(host.clone());
        return entra(req, state).await;
    }
    if host.contains(".vault.") {
        let latency = state.lock().unwrap().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        return keyvault(req, &host, state);
    }
    json(404, &serde_json::json!({ "error": "unknown host" }))
}

fn aad_error(status: u16, error: &str, code: u64, text: &str) -> Response<Full<Bytes>> {
    json(
        status,
        &serde_json::json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: 30b6df93-efd2-459c-ae6a-bad0838f6f00\r\nCorrelation ID: dffc6012-a4af-4f00-80ab-3e831069b3cc\r\nTimestamp: 2026-11-24 12:00:00Z"),
            "error_codes": [code],
            "timestamp": "2026-11-24 12:00:00Z",
            "trace_id": "30b6df93-efd2-459c-ae6a-bad0838f6f00",
            "correlation_id": "dffc6012-a4af-4f00-80ab-3e831069b3cc",
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

fn jwt_claims(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

async fn entra(req: Request<Incoming>, state: &Mutex<State>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let Some(tenant) = path
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix("/oauth2/v2.0/token"))
        .map(str::to_owned)
    else {
        return json(404, &serde_json::json!({ "error": "not_found" }));
    };
    if method != hyper::Method::POST {
        return json(405, &serde_json::json!({ "error": "method_not_allowed" }));
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let mut s = state.lock().unwrap();
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    s.token_requests.push(client_id.clone());
    s.last_token_form = Some(form.clone());
    let known_tenant =
        s.federated.iter().any(|f| f.0 == tenant) || s.client_secrets.keys().any(|k| k.0 == tenant);
    if !known_tenant {
        return aad_error(
            400,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return aad_error(
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    if !form.get("scope").is_some_and(|s| s.ends_with("/.default")) {
        return aad_error(
            400,
            "invalid_scope",
            1002012,
            "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
        );
    }
    let known_client = s
        .federated
        .iter()
        .any(|f| f.0 == tenant && f.1 == client_id)
        || s.client_secrets
            .contains_key(&(tenant.clone(), client_id.clone()));
    if !known_client {
        return aad_error(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        );
    }
    if let Some(assertion) = form.get("client_assertion") {
        if form.get("client_assertion_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return aad_error(
                400,
                "invalid_request",
                50027,
                "Invalid client_assertion_type.",
            );
        }
        let Some(claims) = jwt_claims(assertion) else {
            return aad_error(
                400,
                "invalid_client",
                50027,
                "JWT token is invalid or malformed.",
            );
        };
        let iss = claims["iss"].as_str().unwrap_or_default().to_owned();
        let sub = claims["sub"].as_str().unwrap_or_default().to_owned();
        let aud: Vec<String> = match &claims["aud"] {
            serde_json::Value::String(a) => vec![a.clone()],
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        if claims["exp"].as_i64().unwrap_or(0) <= super::harness::now() {
            return aad_error(
                400,
                "invalid_client",
                700024,
                "Client assertion is not within its valid time range.",
            );
        }
        let matched = s.federated.iter().any(|f| {
            f.0 == tenant && f.1 == client_id && f.2 == iss && f.3 == sub && aud.contains(&f.4)
        });
        if !matched {
            return aad_error(
                400,
                "invalid_request",
                70021,
                &format!(
                    "No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{}'. https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation",
                    aud.join(",")
                ),
            );
        }
    } else if let Some(secret) = form.get("client_secret") {
        if s.client_secrets.get(&(tenant.clone(), client_id.clone())) != Some(secret) {
            return aad_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret is provided.",
            );
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
    let token = mint(&mut s, &client_id);
    json(
        200,
        &serde_json::json!({ "token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token }),
    )
}

fn attributes(created: i64, enabled: bool) -> serde_json::Value {
    serde_json::json!({ "enabled": enabled, "created": created, "updated": created, "recoveryLevel": "Recoverable+Purgeable" })
}

fn keyvault(req: Request<Incoming>, host: &str, state: &Mutex<State>) -> Response<Full<Bytes>> {
    let vault = host.split('.').next().unwrap_or_default().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut s = state.lock().unwrap();
    s.kv_requests.push(RecordedRequest {
        host: host.to_owned(),
        method: req.method().to_string(),
        path: path.clone(),
        query: query.clone(),
        authorization_present: auth.is_some(),
        user_agent: req
            .headers()
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
    if !query.contains("api-version=") {
        return kv_error(
            400,
            "BadParameter",
            "The 'api-version' query parameter is missing.",
            None,
        );
    }
    let caller = auth
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .and_then(|t| s.tokens.get(t).cloned())
        .filter(|t| t.expires_at > super::harness::now());
    let Some(caller) = caller else {
        let mut r = kv_error(
            401,
            "Unauthorized",
            "AKV10000: Request is missing a Bearer or PoP token.",
            None,
        );
        r.headers_mut().insert(
            "www-authenticate",
            "Bearer authorization=\"https://login.microsoftonline.com/33333333-3333-3333-3333-333333333333\", resource=\"https://vault.azure.net\""
                .parse()
                .unwrap(),
        );
        return r;
    };
    if let Some((n, retry_after)) = s.throttle.get_mut(&vault)
        && *n > 0
    {
        *n -= 1;
        let retry_after = *retry_after;
        let mut r = kv_error(
            429,
            "Throttled",
            "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
            None,
        );
        r.headers_mut()
            .insert("retry-after", retry_after.to_string().parse().unwrap());
        return r;
    }
    if let Some((n, status)) = s.failures.get_mut(&vault)
        && *n > 0
    {
        *n -= 1;
        let status = *status;
        return kv_error(
            status,
            "InternalServerError",
            "The service is temporarily unavailable.",
            None,
        );
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (collection, kind_action, not_found) = match segments.first().copied() {
        Some("secrets") => ("secrets", "secrets/getSecret", "SecretNotFound"),
        Some("keys") => ("keys", "keys/read", "KeyNotFound"),
        Some("certificates") => ("certificates", "certificates/read", "CertificateNotFound"),
        _ => return kv_error(404, "NotFound", "Unknown path", None),
    };
    if !s
        .grants
        .contains(&(vault.clone(), caller.client_id.clone()))
    {
        let message = format!(
            "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid={};oid=00000000-0000-0000-0000-000000000000;iss=https://sts.windows.net/33333333-3333-3333-3333-333333333333/\r\nAction: 'Microsoft.KeyVault/vaults/{kind_action}/action'\r\nResource: '/subscriptions/0000/resourcegroups/rg/providers/microsoft.keyvault/vaults/{vault}/{}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\nVault: {vault};location=westeurope\r\n",
            caller.client_id,
            segments[1..].join("/")
        );
        return kv_error(403, "Forbidden", &message, Some("ForbiddenByRbac"));
    }
    if let Some((status, body)) = s.raw.get(&(vault.clone(), path.clone())) {
        return json(*status, body);
    }
    let name = segments.get(1).copied().unwrap_or_default().to_owned();
    let base = format!("https://{host}/{collection}/{name}");
    let key = (vault.clone(), name.clone());
    // (version, created, enabled) of every version.
    let versions: Vec<(String, i64, bool)> = match collection {
        "secrets" => s.secrets.get(&key).map(|v| {
            v.iter()
                .map(|x| (x.version.clone(), x.created, x.enabled))
                .collect()
        }),
        "keys" => s.keys.get(&key).map(|v| {
            v.iter()
                .map(|x| (x.version.clone(), x.created, x.enabled))
                .collect()
        }),
        _ => s.certificates.get(&key).map(|v| {
            v.iter()
                .map(|x| (x.version.clone(), x.created, x.enabled))
                .collect()
        }),
    }
    .unwrap_or_default();
    let singular = &collection[..collection.len() - 1];
    if versions.is_empty() {
        let message = format!(
            "A {singular} with (name/id) {name} was not found in this key vault. If you recently deleted this {singular} you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
        );
        return kv_error(404, not_found, &message, None);
    }
    if segments.get(2) == Some(&"versions") {
        let skip: usize = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "$skiptoken")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let page = s.page_size;
        let id_field = if collection == "keys" { "kid" } else { "id" };
        let items: Vec<serde_json::Value> = versions
            .iter()
            .skip(skip)
            .take(page)
            .map(|(v, created, enabled)| serde_json::json!({ id_field: format!("{base}/{v}"), "attributes": attributes(*created, *enabled) }))
            .collect();
        let next = (skip + page < versions.len())
            .then(|| format!("https://{host}/{collection}/{name}/versions?api-version=7.4&maxresults={page}&$skiptoken={}", skip + page));
        return json(
            200,
            &serde_json::json!({ "value": items, "nextLink": next }),
        );
    }
    let requested = segments.get(2).copied().filter(|v| !v.is_empty());
    let chosen = match requested {
        Some(v) => versions.iter().find(|(id, _, _)| id == v).cloned(),
        None => versions
            .iter()
            .filter(|(_, _, e)| *e)
            .max_by_key(|(_, c, _)| *c)
            .cloned(),
    };
    let Some((version, created, enabled)) = chosen else {
        let message = format!(
            "A {singular} with (name/id) {name}/{} was not found in this key vault.",
            requested.unwrap_or_default()
        );
        return kv_error(404, not_found, &message, None);
    };
    if !enabled {
        let code = format!("{}Disabled", &singular[..1].to_uppercase()) + &singular[1..];
        return kv_error(
            403,
            "Forbidden",
            &format!("Operation get is not allowed on a disabled {singular}."),
            Some(&code),
        );
    }
    let id = format!("{base}/{version}");
    let body = match collection {
        "secrets" => {
            let x = s.secrets[&key]
                .iter()
                .find(|x| x.version == version)
                .cloned()
                .unwrap();
            let mut b = serde_json::json!({ "value": x.value, "id": id, "attributes": attributes(created, enabled), "tags": {} });
            if let Some(ct) = x.content_type {
                b["contentType"] = ct.into();
            }
            if let Some(kid) = x.kid {
                b["kid"] = kid.into();
                b["managed"] = true.into();
            }
            b
        }
        "keys" => {
            let x = s.keys[&key]
                .iter()
                .find(|x| x.version == version)
                .cloned()
                .unwrap();
            let mut jwk = x.payload;
            jwk["kid"] = id.clone().into();
            serde_json::json!({ "key": jwk, "attributes": attributes(created, enabled) })
        }
        _ => {
            let x = s.certificates[&key]
                .iter()
                .find(|x| x.version == version)
                .cloned()
                .unwrap();
            serde_json::json!({
                "id": id, "kid": format!("https://{host}/keys/{name}/{version}"), "sid": format!("https://{host}/secrets/{name}/{version}"),
                "x5t": "fake", "cer": x.payload["cer"], "attributes": attributes(created, enabled)
            })
        }
    };
    json(200, &body)
}

/// A projected service-account token as kubelet issues it (unsigned: Entra, not the provider, checks
/// signatures, and the fake Entra does not).
pub fn service_account_token(
    issuer: &str,
    namespace: &str,
    sa: &str,
    audience: &str,
    exp_unix: i64,
) -> String {
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = serde_json::json!({ "alg": "RS256", "kid": "test" });
    let claims = serde_json::json!({
        "aud": [audience], "exp": exp_unix, "iat": exp_unix - 3600, "nbf": exp_unix - 3600, "iss": issuer,
        "sub": format!("system:serviceaccount:{namespace}:{sa}"),
        "kubernetes.io": { "namespace": namespace, "serviceaccount": { "name": sa, "uid": "9b7c1f0e-0000-4000-8000-000000000001" } },
    });
    format!(
        "{}.{}.c2lnbmF0dXJlLW5vdC1jaGVja2VkLWhlcmU",
        e.encode(header.to_string()),
        e.encode(claims.to_string())
    )
}

/// The `csi.storage.k8s.io/serviceAccount.tokens` attribute value.
pub fn tokens_attribute(audience: &str, token: &str, expiry_rfc3339: &str) -> String {
    serde_json::json!({ audience: { "token": token, "expirationTimestamp": expiry_rfc3339 } })
        .to_string()
}
