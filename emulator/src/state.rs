//! What the emulated services know and remember: principals and their credentials, issued access
//! tokens, vaults with their objects and behaviour knobs, the node-local identities, and the logs
//! and counters tests assert on. One `Mutex` guards it all: every request does a few map lookups
//! under it and never awaits while holding it, so contention stays negligible even in load tests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::clock::now;
use crate::issuer::{Issuer, Jwks};
use crate::pki::Pki;
use crate::recorded::Recorded;

/// The tenant Key Vault names in its challenge when no vault tenant or credential says otherwise.
pub const DEFAULT_TENANT: &str = "33333333-3333-3333-3333-333333333333";

/// Everything a request handler needs: the state, plus what never changes after start.
pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub recorded: Recorded,
    pub pki: Pki,
}

impl Shared {
    /// The state, even after a panicking test thread poisoned the lock: the data is still
    /// consistent (every mutation is a single insert or counter bump).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The three Key Vault object collections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// `/secrets`.
    Secret,
    /// `/keys`.
    Key,
    /// `/certificates`.
    Certificate,
}

impl ObjectKind {
    pub(crate) fn collection(self) -> &'static str {
        match self {
            ObjectKind::Secret => "secrets",
            ObjectKind::Key => "keys",
            ObjectKind::Certificate => "certificates",
        }
    }

    pub(crate) fn singular(self) -> &'static str {
        match self {
            ObjectKind::Secret => "secret",
            ObjectKind::Key => "key",
            ObjectKind::Certificate => "certificate",
        }
    }
}

/// One version of a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretVersion {
    /// 32 lower-case hex digits in the real service; any string here.
    pub version: String,
    /// The value, as Key Vault returns it (base64 PFX for `application/x-pkcs12`).
    pub value: String,
    /// `application/x-pkcs12`, `application/x-pem-file`, or anything for plain secrets.
    pub content_type: Option<String>,
    /// Set for certificate-backed secrets (then `managed: true` is returned too).
    pub kid: Option<String>,
    /// Unix seconds.
    pub created: i64,
    /// A disabled version answers 403 `SecretDisabled`.
    pub enabled: bool,
}

impl SecretVersion {
    /// A plain, enabled secret version.
    pub fn new(version: &str, value: &str, created: i64) -> Self {
        Self {
            version: version.into(),
            value: value.into(),
            content_type: None,
            kid: None,
            created,
            enabled: true,
        }
    }

    /// The same version, disabled.
    pub fn disabled(mut self) -> Self {
        self.enabled = false;
        self
    }

    /// The same version with a content type.
    pub fn content_type(mut self, content_type: &str) -> Self {
        self.content_type = Some(content_type.into());
        self
    }
}

/// A stored secret version; a certificate's secret gets its `kid` from the host it is read on,
/// as the real service names its own DNS name.
#[derive(Clone, Debug)]
pub(crate) struct StoredSecret {
    pub secret: SecretVersion,
    pub kid_from_host: bool,
}

impl StoredSecret {
    /// A certificate's secret: Key Vault answers `managed: true` for it (and refuses to change it).
    pub fn managed(&self) -> bool {
        self.secret.kid.is_some() || self.kid_from_host
    }
}

/// One version of a key or certificate: the payload fields besides id and attributes.
#[derive(Clone, Debug)]
pub(crate) struct StoredVersion {
    pub version: String,
    pub payload: Value,
    pub created: i64,
    pub enabled: bool,
}

/// (version, created, enabled) of one object version.
pub(crate) type VersionMeta = (String, i64, bool);

pub(crate) trait Versioned {
    fn meta(&self) -> VersionMeta;
}

impl Versioned for StoredSecret {
    fn meta(&self) -> VersionMeta {
        (
            self.secret.version.clone(),
            self.secret.created,
            self.secret.enabled,
        )
    }
}

impl Versioned for StoredVersion {
    fn meta(&self) -> VersionMeta {
        (self.version.clone(), self.created, self.enabled)
    }
}

impl Versioned for VersionMeta {
    fn meta(&self) -> VersionMeta {
        self.clone()
    }
}

/// An object's current version: the NEWEST by `created`, enabled or not, as the real service
/// chooses for a GET without a version and for the collection listing (one rule, so they agree).
pub(crate) fn current<T: Versioned>(versions: &[T]) -> Option<&T> {
    versions.iter().max_by_key(|x| x.meta().1)
}

/// Objects of one kind by lower-case name → (stored name, versions in insertion order).
pub(crate) type Store<T> = HashMap<String, (String, Vec<T>)>;

pub(crate) fn insert<T>(store: &mut Store<T>, name: &str, item: T) {
    store
        .entry(name.to_ascii_lowercase())
        .or_insert_with(|| (name.to_owned(), Vec::new()))
        .1
        .push(item);
}

/// "At most `max` requests per fixed window of `window`", the shape of Key Vault's service limits.
#[derive(Clone, Debug)]
pub(crate) struct RateLimit {
    pub max: u32,
    pub window: Duration,
    /// Start of the current window; a window opens with the first request after the last one ended.
    pub started: Option<Instant>,
    pub used: u32,
}

impl RateLimit {
    /// `Ok` and counts the request if it fits the window, else the whole seconds until the window
    /// ends (at least 1, rounded up so a client that waits that long finds a new window).
    pub fn admit(&mut self, at: Instant) -> Result<(), u64> {
        let started = match self.started {
            Some(s) if at.duration_since(s) < self.window => s,
            _ => {
                self.started = Some(at);
                self.used = 0;
                at
            }
        };
        if self.used < self.max {
            self.used += 1;
            return Ok(());
        }
        let left = self.window.saturating_sub(at.duration_since(started));
        let secs = left
            .as_secs()
            .saturating_add(u64::from(left.subsec_nanos() > 0));
        Err(secs.max(1))
    }
}

/// One vault's objects, access rules and behaviour.
#[derive(Debug, Default)]
pub(crate) struct Vault {
    /// Client ids with read access to every object, listings included.
    pub grants: HashSet<String>,
    /// Client ids that may GET every object but not list (an access policy with `get` alone, or
    /// a role with only the get action): the common least-privilege setup.
    pub get_only: HashSet<String>,
    /// Access-policy vault: 403 `AccessDenied` instead of `ForbiddenByRbac`.
    pub access_policies: bool,
    /// Named in the challenge; tokens of other tenants get 401 `AKV10032`.
    pub tenant: Option<String>,
    pub secrets: Store<StoredSecret>,
    pub keys: Store<StoredVersion>,
    pub certificates: Store<StoredVersion>,
    /// Path (as sent) → (status, body), served after authentication.
    pub raw: HashMap<String, (u16, Value)>,
    /// (requests left, Retry-After seconds).
    pub throttle_next: (u32, u64),
    /// (requests left, status).
    pub fail_next: (u32, u16),
    pub latency: Duration,
    pub limit: Option<RateLimit>,
    /// Continuous access evaluation: tokens not issued with exactly these claims get a 401
    /// claims challenge.
    pub required_claims: Option<String>,
}

/// An access token the emulated Entra (or IMDS/NMI) issued.
#[derive(Clone, Debug)]
pub(crate) struct IssuedToken {
    pub tenant: String,
    pub client_id: String,
    /// The resource it is for (scope without `/.default`); `None`: valid for every cloud.
    pub resource: Option<String>,
    pub expires_at: i64,
    /// The `claims` request parameter the token was issued with.
    pub claims: Option<String>,
}

/// A federated identity credential on an app or managed identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FederatedCredential {
    /// Tenant of the app.
    pub tenant: String,
    /// The app's client id.
    pub client_id: String,
    /// `iss` an assertion must have.
    pub issuer: String,
    /// `sub` an assertion must have.
    pub subject: String,
    /// One of the assertion's `aud` values.
    pub audience: String,
}

/// A request that reached the emulated Key Vault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvRequest {
    /// When the vault processed it (after any injected latency).
    pub at: Instant,
    /// Lower-case host name without port.
    pub host: String,
    /// The vault: the first label of the host.
    pub vault: String,
    /// `GET`, normally.
    pub method: String,
    /// Path as sent (still percent-encoded).
    pub path: String,
    /// Raw query string ("" when none).
    pub query: String,
    /// The collection, if the path named one.
    pub kind: Option<ObjectKind>,
    /// The object name (decoded), if any (`None` for a collection listing).
    pub name: Option<String>,
    /// The version named in the path, if any.
    pub version: Option<String>,
    /// A listing: `/{name}/versions`, or the collection itself (then `name` is `None`).
    pub listing: bool,
    /// Whether an `Authorization` header was sent.
    pub authorization_present: bool,
    /// The client id of the bearer token presented, if the emulator issued it.
    pub client_id: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The status the emulator answered.
    pub status: u16,
}

/// Counters since start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Key Vault GET requests per vault (any outcome).
    pub kv_gets: BTreeMap<String, u64>,
    /// Successful token issuances per client id (Entra, IMDS and NMI).
    pub token_exchanges: BTreeMap<String, u64>,
    /// Token requests to Entra per client id (any outcome).
    pub token_requests: BTreeMap<String, u64>,
    /// 429 answers per vault (injected or from the throttling model).
    pub throttled: BTreeMap<String, u64>,
    /// Requests to IMDS and NMI.
    pub local_requests: u64,
    /// Token requests Entra was answering at the same time, at most (with a token latency set).
    pub token_in_flight_max: u64,
}

impl Counters {
    /// Every 429 sent.
    pub fn throttled_total(&self) -> u64 {
        self.throttled.values().sum()
    }
}

/// The node-local endpoints' view: which identities the node and its pods have.
#[derive(Debug, Default)]
pub(crate) struct Local {
    pub system: Option<String>,
    pub user: Vec<String>,
    /// NMI: "namespace/pod" → client id.
    pub pod_bindings: HashMap<String, String>,
    pub tenant: Option<String>,
    /// Answers given instead of the endpoints' own, in order.
    pub answers: std::collections::VecDeque<(u16, Value)>,
    pub missing_metadata_header: u32,
}

/// All mutable state.
pub(crate) struct State {
    pub federated: Vec<FederatedCredential>,
    /// (tenant, client id) → secret.
    pub client_secrets: HashMap<(String, String), String>,
    /// Issuers whose signing key the emulator holds, by URL.
    pub issuers: HashMap<String, Issuer>,
    /// Issuers known by their public keys only (a real cluster's JWKS), by URL.
    pub jwks: HashMap<String, Jwks>,
    pub tokens: HashMap<String, IssuedToken>,
    pub token_lifetime: i64,
    pub token_requests: Vec<String>,
    pub last_token_form: Option<HashMap<String, String>>,
    pub last_token_host: Option<String>,
    /// Answers (status, body) that replace Entra's own for the next token requests, in order.
    pub token_answers: std::collections::VecDeque<(u16, Value)>,
    /// Delay before every token answer.
    pub token_latency: Duration,
    /// Token requests being delayed now.
    pub token_in_flight: u64,
    pub vaults: HashMap<String, Vault>,
    pub latency: Duration,
    pub page_size: usize,
    pub kv_requests: Vec<KvRequest>,
    pub counters: Counters,
    pub local: Local,
    counter: u64,
}

impl Default for State {
    fn default() -> Self {
        Self {
            federated: Vec::new(),
            client_secrets: HashMap::new(),
            issuers: HashMap::new(),
            jwks: HashMap::new(),
            tokens: HashMap::new(),
            token_lifetime: 3599,
            token_requests: Vec::new(),
            last_token_form: None,
            last_token_host: None,
            token_answers: std::collections::VecDeque::new(),
            token_latency: Duration::ZERO,
            token_in_flight: 0,
            vaults: HashMap::new(),
            latency: Duration::ZERO,
            page_size: 25,
            kv_requests: Vec::new(),
            counters: Counters::default(),
            local: Local::default(),
            counter: 0,
        }
    }
}

impl State {
    pub fn next_id(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    pub fn vault(&mut self, name: &str) -> &mut Vault {
        self.vaults.entry(name.to_ascii_lowercase()).or_default()
    }

    /// Issues an access token for `client_id`, as Entra does after any successful grant.
    pub fn mint(
        &mut self,
        tenant: &str,
        client_id: &str,
        resource: Option<String>,
        lifetime: i64,
    ) -> String {
        let n = self.next_id();
        // Opaque, unique, and not a JWT: the daemon must not need to parse access tokens.
        let token = format!("emulator-at.{n}.{}", client_id.replace('-', ""));
        self.tokens.insert(
            token.clone(),
            IssuedToken {
                tenant: tenant.to_owned(),
                client_id: client_id.to_owned(),
                resource,
                expires_at: now().saturating_add(lifetime),
                claims: None,
            },
        );
        *self
            .counters
            .token_exchanges
            .entry(client_id.to_owned())
            .or_default() += 1;
        token
    }

    /// The tenant a vault belongs to: configured, else the first tenant with a credential.
    pub fn vault_tenant(&self, vault: &str) -> String {
        self.vaults
            .get(vault)
            .and_then(|v| v.tenant.clone())
            .or_else(|| self.federated.first().map(|f| f.tenant.clone()))
            .or_else(|| self.client_secrets.keys().next().map(|k| k.0.clone()))
            .unwrap_or_else(|| DEFAULT_TENANT.to_owned())
    }

    /// The tenant node-local identities' tokens are issued in.
    pub fn local_tenant(&self) -> String {
        self.local
            .tenant
            .clone()
            .or_else(|| self.federated.first().map(|f| f.tenant.clone()))
            .or_else(|| self.client_secrets.keys().next().map(|k| k.0.clone()))
            .unwrap_or_else(|| DEFAULT_TENANT.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_opens_a_window_per_first_request_and_rounds_retry_after_up() {
        let mut limit = RateLimit {
            max: 2,
            window: Duration::from_millis(2500),
            started: None,
            used: 0,
        };
        let t0 = Instant::now();
        assert_eq!(limit.admit(t0), Ok(()));
        assert_eq!(limit.admit(t0 + Duration::from_millis(100)), Ok(()));
        assert_eq!(limit.admit(t0 + Duration::from_millis(200)), Err(3));
        assert_eq!(limit.admit(t0 + Duration::from_millis(2400)), Err(1));
        assert_eq!(limit.admit(t0 + Duration::from_millis(2500)), Ok(()));
    }
}
