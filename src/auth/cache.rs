//! The token cache (spec 3.6): one Entra exchange serves every Mount of the same workload until the
//! token's refresh point, and never serves another workload.
//!
//! Key Vault authorizes the principal, not the pod, so a cached token may only be reused by a caller
//! who would have obtained the very same token from Entra. For workload identity that is a caller
//! presenting an assertion with the same issuer and subject for the same client id and tenant, so
//! those are in the key: a pod in another namespace that names someone else's `clientID` misses the
//! cache and meets Entra's own AADSTS70021. Service-principal entries are keyed on a hash of the
//! secret, so a rotated or wrong secret never rides on a token obtained with the right one.
//!
//! Concurrent Mounts that need the same token wait on one in-flight exchange (a per-key async mutex)
//! instead of stampeding Entra when a node starts a hundred pods at once.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{AccessToken, AuthError};

/// Entries kept at most; beyond that the entry expiring first is evicted.
pub const DEFAULT_CAPACITY: usize = 4096;
/// A token is refreshed once this fraction of its lifetime has passed.
const REFRESH_FRACTION: f64 = 0.75;
/// Never hand out a token with less than this left, even when a refresh fails.
pub const MIN_REMAINING: Duration = Duration::from_secs(5 * 60);

/// Who a token was issued to. Every field that Entra uses to decide what it issues is part of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CacheKey {
    Workload {
        authority: String,
        tenant: String,
        client_id: String,
        scope: String,
        issuer: String,
        subject: String,
    },
    ServicePrincipal {
        authority: String,
        tenant: String,
        client_id: String,
        scope: String,
        /// SHA-256 of the client secret: the secret itself is never kept in the cache.
        secret_sha256: [u8; 32],
    },
    ManagedIdentity {
        endpoint: String,
        /// Client id of a user-assigned identity; empty for system-assigned.
        identity: String,
        resource: String,
    },
    PodIdentity {
        endpoint: String,
        namespace: String,
        pod: String,
        resource: String,
    },
}

#[derive(Clone)]
struct Cached {
    token: AccessToken,
    refresh_at: Instant,
}

#[derive(Default)]
struct Slot {
    cached: tokio::sync::Mutex<Option<Cached>>,
}

/// The cache. Cheap to share behind an `Arc`.
pub struct TokenCache {
    slots: Mutex<HashMap<CacheKey, Arc<Slot>>>,
    capacity: usize,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl TokenCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn slot(&self, key: &CacheKey) -> Arc<Slot> {
        let Ok(mut slots) = self.slots.lock() else {
            // A poisoned map only means another thread panicked mid-insert; a fresh slot is safe
            // (it just does not share).
            return Arc::new(Slot::default());
        };
        if let Some(slot) = slots.get(key) {
            return slot.clone();
        }
        if slots.len() >= self.capacity {
            evict(&mut slots);
        }
        let slot = Arc::new(Slot::default());
        slots.insert(key.clone(), slot.clone());
        slot
    }

    /// The cached token for `key`, or a new one from `fetch`. Callers for the same key wait for one
    /// fetch. A token past its refresh point is renewed; if renewing fails and the old token still
    /// has [`MIN_REMAINING`] left, the old token is served.
    pub async fn get_or_fetch<F, Fut>(
        &self,
        key: &CacheKey,
        fetch: F,
    ) -> Result<AccessToken, AuthError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, AuthError>>,
    {
        let slot = self.slot(key);
        let mut cached = slot.cached.lock().await;
        let now = Instant::now();
        let previous = cached.take();
        if let Some(c) = &previous
            && now < c.refresh_at
        {
            let token = c.token.clone();
            *cached = previous;
            return Ok(token);
        }
        let issued = Instant::now();
        match fetch().await {
            Ok(token) => {
                let lifetime = token.expires_at.saturating_duration_since(issued);
                let refresh_at = issued + lifetime.mul_f64(REFRESH_FRACTION);
                // A token that is already nearly expired when issued is used once, not cached.
                if lifetime > MIN_REMAINING {
                    *cached = Some(Cached {
                        token: token.clone(),
                        refresh_at,
                    });
                }
                Ok(token)
            }
            Err(err) => match previous {
                Some(c) if c.token.expires_at.saturating_duration_since(now) > MIN_REMAINING => {
                    tracing::warn!(error = %err, "token refresh failed; serving the current token until it nears expiry");
                    let token = c.token.clone();
                    *cached = Some(c);
                    Ok(token)
                }
                _ => Err(err),
            },
        }
    }
}

/// Drops expired entries; if none were, the one expiring first.
fn evict(slots: &mut HashMap<CacheKey, Arc<Slot>>) {
    let now = Instant::now();
    let expiry = |slot: &Arc<Slot>| {
        slot.cached
            .try_lock()
            .ok()
            .and_then(|c| c.as_ref().map(|c| c.token.expires_at))
    };
    let before = slots.len();
    // Entries being fetched right now (locked) are kept.
    slots
        .retain(|_, slot| slot.cached.try_lock().is_err() || expiry(slot).is_some_and(|e| e > now));
    if slots.len() < before {
        return;
    }
    let victim = slots
        .iter()
        .filter_map(|(k, s)| expiry(s).map(|e| (e, k.clone())))
        .min_by_key(|(e, _)| *e)
        .map(|(_, k)| k);
    if let Some(k) = victim {
        slots.remove(&k);
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

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let cache = Arc::new(TokenCache::default());
        let fetches = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let cache = cache.clone();
            let fetches = fetches.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_fetch(&key("system:serviceaccount:a:b"), || async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(token("t1", Duration::from_secs(3600)))
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().secret().expose_secret(), "t1");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn other_subjects_do_not_hit() {
        let cache = TokenCache::default();
        let a = cache
            .get_or_fetch(&key("system:serviceaccount:a:b"), || async {
                Ok(token("A", Duration::from_secs(3600)))
            })
            .await
            .unwrap();
        let b = cache
            .get_or_fetch(&key("system:serviceaccount:other:b"), || async {
                Ok(token("B", Duration::from_secs(3600)))
            })
            .await
            .unwrap();
        assert_eq!(a.secret().expose_secret(), "A");
        assert_eq!(b.secret().expose_secret(), "B");
    }

    #[tokio::test]
    async fn a_token_past_its_refresh_point_is_renewed() {
        let cache = TokenCache::default();
        let k = key("s");
        // 400 s lifetime: cached (above MIN_REMAINING) but refreshed after 300 s; simulate by a
        // lifetime whose refresh point is already past: 0.75 * 400 s is in the future, so use
        // tokio's clock-free approach: a second call with a token whose refresh point passed.
        cache
            .get_or_fetch(&k, || async { Ok(token("old", Duration::from_secs(400))) })
            .await
            .unwrap();
        // Move the cached refresh point into the past.
        {
            let slot = cache.slot(&k);
            let mut c = slot.cached.lock().await;
            if let Some(c) = c.as_mut() {
                c.refresh_at = Instant::now() - Duration::from_secs(1);
            }
        }
        let renewed = cache
            .get_or_fetch(&k, || async { Ok(token("new", Duration::from_secs(3600))) })
            .await
            .unwrap();
        assert_eq!(renewed.secret().expose_secret(), "new");
    }

    #[tokio::test]
    async fn failed_refresh_serves_the_current_token_only_while_it_has_time_left() {
        let cache = TokenCache::default();
        let k = key("s");
        cache
            .get_or_fetch(&k, || async {
                Ok(token("current", Duration::from_secs(3600)))
            })
            .await
            .unwrap();
        let slot = cache.slot(&k);
        slot.cached.lock().await.as_mut().unwrap().refresh_at =
            Instant::now() - Duration::from_secs(1);
        let failing = || async {
            Err(AuthError::NotConfigured {
                what: "down".into(),
            })
        };
        let served = cache.get_or_fetch(&k, failing).await.unwrap();
        assert_eq!(served.secret().expose_secret(), "current");
        // Now make the current token nearly expired: a failed refresh must be an error.
        {
            let mut c = slot.cached.lock().await;
            let c = c.as_mut().unwrap();
            c.token.expires_at = Instant::now() + Duration::from_secs(60);
            c.refresh_at = Instant::now() - Duration::from_secs(1);
        }
        assert!(cache.get_or_fetch(&k, failing).await.is_err());
    }

    #[tokio::test]
    async fn short_lived_tokens_are_not_cached_and_failures_are_not_cached() {
        let cache = TokenCache::default();
        let k = key("s");
        let fetches = AtomicU32::new(0);
        for _ in 0..2 {
            cache
                .get_or_fetch(&k, || async {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    Ok(token("short", Duration::from_secs(60)))
                })
                .await
                .unwrap();
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        let k2 = key("s2");
        assert!(
            cache
                .get_or_fetch(&k2, || async {
                    Err(AuthError::NotConfigured {
                        what: "down".into(),
                    })
                })
                .await
                .is_err()
        );
        let ok = cache
            .get_or_fetch(&k2, || async {
                Ok(token("later", Duration::from_secs(3600)))
            })
            .await
            .unwrap();
        assert_eq!(ok.secret().expose_secret(), "later");
    }

    #[tokio::test]
    async fn capacity_is_bounded() {
        let cache = TokenCache::new(3);
        for i in 0..10 {
            cache
                .get_or_fetch(&key(&format!("s{i}")), || async {
                    Ok(token("x", Duration::from_secs(3600 + i)))
                })
                .await
                .unwrap();
        }
        assert!(cache.slots.lock().unwrap().len() <= 3);
    }
}
