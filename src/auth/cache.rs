//! The token cache (README, "Key Vault load: caching and throttling"): one Entra exchange serves every Mount of the same workload until the
//! token's refresh point, and never serves another workload.
//!
//! Key Vault authorizes the principal, not the pod, so a cached token may only be reused by a caller
//! who would have obtained the very same token from Entra. For workload identity that is a caller
//! presenting an assertion with the same issuer and subject for the same client id and tenant, so
//! those are in the key: a pod in another namespace that names someone else's `clientID` misses the
//! cache and meets Entra's own AADSTS70021. Service-principal entries are keyed on a hash of the
//! secret, so a rotated or wrong secret never rides on a token obtained with the right one.
//!
//! Concurrent Mounts that need the same token wait on one in-flight exchange (see
//! [`crate::coalesce`]) instead of stampeding Entra when a node starts a hundred pods at once. A
//! refresh runs in its own task, detached from the Mount that triggered it: a cancelled Mount never
//! throws a new token away, and while a refresh is out the other Mounts of that identity keep using
//! the current token as long as it has more than [`MIN_REMAINING`] left instead of waiting.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{AccessToken, AuthError};
use crate::coalesce::{Abandon, Coalescer, Joined};
use crate::metrics::{CacheEvent, Metrics};

/// Entries kept at most; beyond that the entry expiring first is evicted.
pub const DEFAULT_CAPACITY: usize = 4096;
/// A token is refreshed once this fraction of its lifetime has passed.
const REFRESH_FRACTION: f64 = 0.75;
/// Never hand out a token with less than this left, even when a refresh fails.
pub const MIN_REMAINING: Duration = Duration::from_secs(5 * 60);
/// After a failed refresh, the next one waits this long (the current token is served meanwhile),
/// so that an Entra outage does not turn every Mount into a token request.
const REFRESH_RETRY: Duration = Duration::from_secs(30);

/// Who a token was issued to. Every field that Entra uses to decide what it issues is part of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CacheKey {
    /// Workload identity and identity binding: who presented which assertion to which authority.
    Workload {
        /// The Entra authority (or the token proxy).
        authority: String,
        /// `tenantID`.
        tenant: String,
        /// `clientID`.
        client_id: String,
        /// The Key Vault scope of the cloud.
        scope: String,
        /// The assertion's `iss`.
        issuer: String,
        /// The assertion's `sub`.
        subject: String,
    },
    /// A service principal's client secret.
    ServicePrincipal {
        /// The Entra authority.
        authority: String,
        /// `tenantID`.
        tenant: String,
        /// `clientid` of the Secret.
        client_id: String,
        /// The Key Vault scope of the cloud.
        scope: String,
        /// SHA-256 of the client secret: the secret itself is never kept in the cache.
        secret_sha256: [u8; 32],
    },
    /// The node's managed identity.
    ManagedIdentity {
        /// The IMDS endpoint.
        endpoint: String,
        /// Client id of a user-assigned identity; empty for system-assigned.
        identity: String,
        /// The Key Vault resource of the cloud.
        resource: String,
    },
    /// aad-pod-identity: the identity NMI binds to one pod.
    PodIdentity {
        /// The NMI endpoint.
        endpoint: String,
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// The Key Vault resource of the cloud.
        resource: String,
    },
}

#[derive(Clone)]
struct Cached {
    token: AccessToken,
    refresh_at: Instant,
    /// No refresh is started before this (after a failed one).
    retry_not_before: Option<Instant>,
}

/// The cache. Cheap to clone; clones share entries.
#[derive(Clone)]
pub struct TokenCache {
    entries: Arc<Mutex<HashMap<CacheKey, Cached>>>,
    flights: Coalescer<CacheKey, AccessToken, AuthError>,
    capacity: usize,
    metrics: Metrics,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// What a lookup found.
enum Lookup {
    /// A token to use now.
    Use(AccessToken, CacheEvent),
    /// A token to use now, and a refresh to start.
    UseAndRefresh(AccessToken),
    /// Nothing usable: wait for a request.
    Fetch,
}

impl TokenCache {
    /// An empty cache of at most `capacity` entries.
    pub fn new(capacity: usize, metrics: Metrics) -> Self {
        Self {
            entries: Arc::new(Mutex::new(HashMap::new())),
            flights: Coalescer::new(Abandon::Finish),
            capacity: capacity.max(1),
            metrics,
        }
    }

    fn lookup(&self, key: &CacheKey, now: Instant) -> Lookup {
        let Ok(entries) = self.entries.lock() else {
            return Lookup::Fetch;
        };
        let Some(c) = entries.get(key) else {
            return Lookup::Fetch;
        };
        if now < c.refresh_at {
            return Lookup::Use(c.token.clone(), CacheEvent::Hit);
        }
        if c.token.expires_at.saturating_duration_since(now) <= MIN_REMAINING {
            return Lookup::Fetch;
        }
        let may_refresh = c.retry_not_before.is_none_or(|t| now >= t);
        if may_refresh && !self.flights.in_flight(key) {
            Lookup::UseAndRefresh(c.token.clone())
        } else {
            Lookup::Use(c.token.clone(), CacheEvent::Stale)
        }
    }

    /// The cached token for `key`, or a new one from `fetch`. Callers for the same key share one
    /// request; a token past its refresh point is served while a detached refresh runs.
    pub async fn get_or_fetch<F, Fut>(
        &self,
        key: &CacheKey,
        fetch: F,
    ) -> Result<AccessToken, Arc<AuthError>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, AuthError>> + Send + 'static,
    {
        match self.lookup(key, Instant::now()) {
            Lookup::Use(token, event) => {
                self.metrics.token_cache(event);
                Ok(token)
            }
            Lookup::UseAndRefresh(token) => {
                if self
                    .flights
                    .spawn(key.clone(), self.storing(key.clone(), fetch()))
                {
                    self.metrics.token_cache(CacheEvent::Refresh);
                } else {
                    self.metrics.token_cache(CacheEvent::Stale);
                }
                Ok(token)
            }
            Lookup::Fetch => {
                let (result, joined) = self
                    .flights
                    .run(key.clone(), self.storing(key.clone(), fetch()))
                    .await;
                self.metrics.token_cache(match joined {
                    Joined::Started => CacheEvent::Miss,
                    Joined::Coalesced => CacheEvent::Coalesced,
                });
                result
            }
        }
    }

    /// A new token for `key` in place of the token `refused` (its serial), which Key Vault refused.
    /// The entry is dropped only while it still holds that token: when another Mount replaced it
    /// already, its new token is used; while another Mount's request for `key` is out, this one
    /// waits for it.
    pub async fn replace<F, Fut>(
        &self,
        key: &CacheKey,
        refused: u64,
        fetch: F,
    ) -> Result<AccessToken, Arc<AuthError>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, AuthError>> + Send + 'static,
    {
        if let Ok(mut entries) = self.entries.lock() {
            match entries.get(key) {
                Some(c) if c.token.serial() != refused => {
                    self.metrics.token_cache(CacheEvent::Hit);
                    return Ok(c.token.clone());
                }
                Some(_) => {
                    entries.remove(key);
                }
                None => {}
            }
        }
        let (result, joined) = self
            .flights
            .run(key.clone(), self.storing(key.clone(), fetch()))
            .await;
        self.metrics.token_cache(match joined {
            Joined::Started => CacheEvent::Replaced,
            Joined::Coalesced => CacheEvent::Coalesced,
        });
        result
    }

    /// `fetch`, then its result stored in the cache (inside the flight, so that it is stored even
    /// when the Mount that started it is gone).
    fn storing(
        &self,
        key: CacheKey,
        fetch: impl Future<Output = Result<AccessToken, AuthError>> + Send + 'static,
    ) -> impl Future<Output = Result<AccessToken, AuthError>> + Send + 'static {
        let cache = self.clone();
        async move {
            let issued = Instant::now();
            let result = fetch.await;
            match &result {
                Ok(token) => cache.store(key, token.clone(), issued),
                Err(err) => cache.failed(&key, err),
            }
            result
        }
    }

    fn store(&self, key: CacheKey, token: AccessToken, issued: Instant) {
        let lifetime = token.expires_at.saturating_duration_since(issued);
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        // A token that is already nearly expired when issued is used once, not cached.
        if lifetime <= MIN_REMAINING {
            entries.remove(&key);
            return;
        }
        if !entries.contains_key(&key) && entries.len() >= self.capacity {
            evict(&mut entries);
        }
        entries.insert(
            key,
            Cached {
                token,
                refresh_at: issued + lifetime.mul_f64(REFRESH_FRACTION),
                retry_not_before: None,
            },
        );
    }

    fn failed(&self, key: &CacheKey, err: &AuthError) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if let Some(c) = entries.get_mut(key) {
            tracing::warn!(
                error = %err,
                "token refresh failed; serving the current token until it nears expiry"
            );
            c.retry_not_before = Some(Instant::now() + REFRESH_RETRY);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}

/// Drops expired entries; if none were, the one expiring first.
fn evict(entries: &mut HashMap<CacheKey, Cached>) {
    let now = Instant::now();
    let before = entries.len();
    entries.retain(|_, c| c.token.expires_at > now);
    if entries.len() < before {
        return;
    }
    let victim = entries
        .iter()
        .min_by_key(|(_, c)| c.token.expires_at)
        .map(|(k, _)| k.clone());
    if let Some(k) = victim {
        entries.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use secrecy::{ExposeSecret, SecretString};

    use super::*;

    fn key(subject: &str) -> CacheKey {
        CacheKey::Workload {
            authority: "https://login.microsoftonline.com/".into(),
            tenant: "t".into(),
            client_id: "c".into(),
            scope: "https://vault.azure.net/.default".into(),
            issuer: "https://oidc/".into(),
            subject: subject.into(),
        }
    }

    fn token(value: &str, lifetime: Duration) -> AccessToken {
        AccessToken::new(SecretString::from(value.to_owned()), lifetime).unwrap()
    }

    fn cache() -> TokenCache {
        TokenCache::new(DEFAULT_CAPACITY, Metrics::prometheus())
    }

    /// A fetch that counts its runs, waits `delay` and returns `value` (or fails for "").
    fn fetch(
        runs: &Arc<AtomicU32>,
        value: &'static str,
        lifetime: Duration,
        delay: Duration,
    ) -> impl FnOnce() -> std::pin::Pin<
        Box<dyn Future<Output = Result<AccessToken, AuthError>> + Send + 'static>,
    > + use<> {
        let runs = runs.clone();
        move || {
            Box::pin(async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                if value.is_empty() {
                    Err(AuthError::NotConfigured {
                        what: "down".into(),
                    })
                } else {
                    Ok(token(value, lifetime))
                }
            })
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    fn secret(t: &Result<AccessToken, Arc<AuthError>>) -> String {
        t.as_ref().unwrap().secret().expose_secret().to_owned()
    }

    fn set_refresh_due(cache: &TokenCache, k: &CacheKey, expires_in: Duration) {
        let mut entries = cache.entries.lock().unwrap();
        let c = entries.get_mut(k).unwrap();
        c.refresh_at = Instant::now() - Duration::from_secs(1);
        c.token.expires_at = Instant::now() + expires_in;
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let cache = cache();
        let runs = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let cache = cache.clone();
            let f = fetch(&runs, "t1", HOUR, Duration::from_millis(50));
            tasks.push(tokio::spawn(async move {
                cache.get_or_fetch(&key("s"), f).await
            }));
        }
        for t in tasks {
            assert_eq!(secret(&t.await.unwrap()), "t1");
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let text = cache.metrics.encode_prometheus().unwrap();
        assert!(
            text.contains("akv_token_cache_total{result=\"miss\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("akv_token_cache_total{result=\"coalesced\"} 19"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn other_subjects_do_not_hit() {
        let cache = cache();
        let runs = Arc::new(AtomicU32::new(0));
        let a = cache
            .get_or_fetch(&key("a"), fetch(&runs, "A", HOUR, Duration::ZERO))
            .await;
        let b = cache
            .get_or_fetch(&key("b"), fetch(&runs, "B", HOUR, Duration::ZERO))
            .await;
        assert_eq!((secret(&a), secret(&b)), ("A".into(), "B".into()));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn past_its_refresh_point_the_current_token_is_served_while_a_detached_refresh_runs() {
        let cache = cache();
        let k = key("s");
        let runs = Arc::new(AtomicU32::new(0));
        cache
            .get_or_fetch(&k, fetch(&runs, "old", HOUR, Duration::ZERO))
            .await
            .unwrap();
        set_refresh_due(&cache, &k, Duration::from_secs(1800));
        // Served at once, without waiting for the slow refresh it starts.
        let started = Instant::now();
        let served = cache
            .get_or_fetch(&k, fetch(&runs, "new", HOUR, Duration::from_millis(200)))
            .await;
        assert_eq!(secret(&served), "old");
        assert!(started.elapsed() < Duration::from_millis(100));
        // While it runs, others get the current token too and start nothing.
        let again = cache
            .get_or_fetch(&k, fetch(&runs, "x", HOUR, Duration::ZERO))
            .await;
        assert_eq!(secret(&again), "old");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let renewed = cache
            .get_or_fetch(&k, fetch(&runs, "y", HOUR, Duration::ZERO))
            .await;
        assert_eq!(secret(&renewed), "new");
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    /// Regression: the token was taken out of the slot before awaiting the fetch, so a Mount
    /// cancelled mid-fetch lost both the old token and the new one.
    #[tokio::test]
    async fn a_cancelled_caller_does_not_discard_the_token_it_was_fetching() {
        let cache = cache();
        let k = key("s");
        let runs = Arc::new(AtomicU32::new(0));
        let cancelled = tokio::time::timeout(
            Duration::from_millis(20),
            cache.get_or_fetch(&k, fetch(&runs, "t", HOUR, Duration::from_millis(100))),
        )
        .await;
        assert!(cancelled.is_err());
        tokio::time::sleep(Duration::from_millis(150)).await;
        let later = cache
            .get_or_fetch(&k, fetch(&runs, "other", HOUR, Duration::ZERO))
            .await;
        assert_eq!(secret(&later), "t");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_refresh_serves_the_current_token_only_while_it_has_time_left() {
        let cache = cache();
        let k = key("s");
        let runs = Arc::new(AtomicU32::new(0));
        cache
            .get_or_fetch(&k, fetch(&runs, "current", HOUR, Duration::ZERO))
            .await
            .unwrap();
        set_refresh_due(&cache, &k, Duration::from_secs(1800));
        assert_eq!(
            secret(
                &cache
                    .get_or_fetch(&k, fetch(&runs, "", HOUR, Duration::ZERO))
                    .await
            ),
            "current"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The refresh failed: no new attempt for a while, the current token is still served.
        assert_eq!(
            secret(
                &cache
                    .get_or_fetch(&k, fetch(&runs, "", HOUR, Duration::ZERO))
                    .await
            ),
            "current"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // Nearly expired: a caller must wait for a request, which fails.
        set_refresh_due(&cache, &k, Duration::from_secs(60));
        assert!(
            cache
                .get_or_fetch(&k, fetch(&runs, "", HOUR, Duration::ZERO))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn short_lived_tokens_and_failures_are_not_cached() {
        let cache = cache();
        let runs = Arc::new(AtomicU32::new(0));
        for _ in 0..2 {
            let short = fetch(&runs, "short", Duration::from_secs(60), Duration::ZERO);
            cache.get_or_fetch(&key("s"), short).await.unwrap();
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(
            cache
                .get_or_fetch(&key("s2"), fetch(&runs, "", HOUR, Duration::ZERO))
                .await
                .is_err()
        );
        let ok = cache
            .get_or_fetch(&key("s2"), fetch(&runs, "later", HOUR, Duration::ZERO))
            .await;
        assert_eq!(secret(&ok), "later");
    }

    #[tokio::test]
    async fn capacity_is_bounded() {
        let cache = TokenCache::new(3, Metrics::disabled());
        let runs = Arc::new(AtomicU32::new(0));
        for i in 0..10 {
            let f = fetch(&runs, "x", HOUR + Duration::from_secs(i), Duration::ZERO);
            cache.get_or_fetch(&key(&format!("s{i}")), f).await.unwrap();
        }
        assert!(cache.len() <= 3);
    }
}
