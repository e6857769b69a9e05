//! The opt-in object cache (`--object-cache-ttl`): Key Vault response bodies kept for a while, so that
//! replicas of a workload starting together and rotation polls do not ask the vault again for what
//! it just answered.
//!
//! An entry is keyed on the identity that fetched it (the token cache's key: tenant, client id and,
//! for workload identity, the issuer and subject of the pod's token) and the exact request URL
//! (vault, collection, name, version, page). Key Vault decides per identity what it may read, so an
//! entry is only ever served to the identity that fetched it: a pod that names someone else's
//! `clientID` gets no token (Entra refuses its assertion) and so never reaches a cached object. Bodies
//! are zeroized when evicted or replaced. The cache is bounded in entries and in bytes; the entry
//! expiring first is evicted when either bound is reached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::auth::CacheKey;
use crate::metrics::Metrics;

/// Entries kept at most.
pub const MAX_ENTRIES: usize = 4096;

/// A response body, shared by the waiters of one fetch and the cache; zeroized when the last holder
/// drops it.
pub type Body = Arc<Zeroizing<Vec<u8>>>;

/// Who asked for what: one request of one identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    /// The identity whose token fetched it.
    pub identity: CacheKey,
    /// The full request URL.
    pub url: String,
}

struct Entry {
    body: Body,
    expires_at: Instant,
}

/// The entries and the bytes they hold, under one lock.
#[derive(Default)]
struct State {
    entries: HashMap<ObjectKey, Entry>,
    bytes: usize,
}

impl State {
    /// Removes one entry; returns its size.
    fn remove(&mut self, key: &ObjectKey) -> Option<usize> {
        let old = self.entries.remove(key)?;
        self.bytes -= old.body.len();
        Some(old.body.len())
    }

    /// Removes every entry expired at `now`; returns how many and their bytes.
    fn remove_expired(&mut self, now: Instant) -> (i64, i64) {
        let (mut count, mut size) = (0i64, 0usize);
        self.entries.retain(|_, e| {
            let keep = e.expires_at > now;
            if !keep {
                count += 1;
                size += e.body.len();
            }
            keep
        });
        self.bytes -= size;
        (count, size as i64)
    }
}

/// The cache. Cheap to clone.
#[derive(Clone)]
pub struct ObjectCache {
    state: Arc<Mutex<State>>,
    ttl: Duration,
    max_bytes: usize,
    metrics: Metrics,
}

impl std::fmt::Debug for ObjectCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectCache")
            .field("ttl", &self.ttl)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl ObjectCache {
    /// A cache keeping bodies for `ttl`, at most `max_bytes` of them in all. Inside a Tokio runtime
    /// a sweeper drops expired entries every TTL (at least every second, at most every minute), so
    /// that secret material does not stay in memory past its TTL when nothing asks for it again; it
    /// ends when the last clone of the cache is dropped.
    pub fn new(ttl: Duration, max_bytes: usize, metrics: Metrics) -> Self {
        let cache = Self {
            state: Arc::new(Mutex::new(State::default())),
            ttl,
            max_bytes,
            metrics,
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let state = Arc::downgrade(&cache.state);
            let metrics = cache.metrics.clone();
            let period = ttl.clamp(Duration::from_secs(1), Duration::from_secs(60));
            runtime.spawn(async move {
                let mut ticks = tokio::time::interval(period);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticks.tick().await;
                loop {
                    ticks.tick().await;
                    let Some(state) = state.upgrade() else {
                        break;
                    };
                    sweep(&state, &metrics);
                }
            });
        }
        cache
    }

    /// The body for `key`, while it is fresh; an expired entry is dropped on the way.
    pub fn get(&self, key: &ObjectKey) -> Option<Body> {
        let mut state = self.state.lock().ok()?;
        let entry = state.entries.get(key)?;
        if Instant::now() < entry.expires_at {
            return Some(entry.body.clone());
        }
        if let Some(size) = state.remove(key) {
            self.metrics.object_cache_size(-1, -(size as i64));
        }
        None
    }

    /// Keeps `body` for the TTL. A body larger than the whole cache is not kept.
    pub fn insert(&self, key: ObjectKey, body: Body) {
        let size = body.len();
        if size > self.max_bytes {
            return;
        }
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let (mut removed_entries, mut removed_bytes) = (0i64, 0i64);
        if let Some(old) = state.remove(&key) {
            removed_entries += 1;
            removed_bytes += old as i64;
        }
        let now = Instant::now();
        // Expired entries first, then the ones expiring soonest, until the new body fits.
        if state.entries.len() >= MAX_ENTRIES || state.bytes + size > self.max_bytes {
            let (count, bytes) = state.remove_expired(now);
            removed_entries += count;
            removed_bytes += bytes;
        }
        while state.entries.len() >= MAX_ENTRIES || state.bytes + size > self.max_bytes {
            let Some(victim) = state
                .entries
                .iter()
                .min_by_key(|(_, e)| e.expires_at)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(old) = state.remove(&victim) {
                removed_entries += 1;
                removed_bytes += old as i64;
            }
        }
        state.bytes += size;
        state.entries.insert(
            key,
            Entry {
                body,
                expires_at: now + self.ttl,
            },
        );
        self.metrics
            .object_cache_size(1 - removed_entries, size as i64 - removed_bytes);
    }

    /// Bytes and entries held (fresh or not yet swept).
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        self.state
            .lock()
            .map(|s| (s.bytes, s.entries.len()))
            .unwrap_or((0, 0))
    }
}

/// Drops the expired entries of `state`.
fn sweep(state: &Mutex<State>, metrics: &Metrics) {
    let Ok(mut state) = state.lock() else {
        return;
    };
    let (count, bytes) = state.remove_expired(Instant::now());
    if count > 0 {
        metrics.object_cache_size(-count, -bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(subject: &str, url: &str) -> ObjectKey {
        ObjectKey {
            identity: CacheKey::Workload {
                authority: "https://login.microsoftonline.com/".into(),
                tenant: "t".into(),
                client_id: "c".into(),
                scope: "https://vault.azure.net/.default".into(),
                issuer: "https://oidc/".into(),
                subject: subject.into(),
            },
            url: url.into(),
        }
    }

    fn body(n: usize) -> Body {
        Arc::new(Zeroizing::new(vec![b'x'; n]))
    }

    #[test]
    fn entries_are_per_identity_and_expire() {
        let cache = ObjectCache::new(Duration::from_millis(50), 1 << 20, Metrics::disabled());
        cache.insert(key("a", "u"), body(10));
        assert!(cache.get(&key("a", "u")).is_some());
        assert!(
            cache.get(&key("b", "u")).is_none(),
            "another identity never hits"
        );
        assert!(cache.get(&key("a", "v")).is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get(&key("a", "u")).is_none());
    }

    /// Regression: an expired entry stayed in memory (its secret body not zeroized) until the
    /// cache filled up, however long that took.
    #[tokio::test]
    async fn expired_entries_are_dropped_without_waiting_for_the_cache_to_fill() {
        let metrics = Metrics::prometheus();
        let cache = ObjectCache::new(Duration::from_millis(50), 1 << 20, metrics.clone());
        cache.insert(key("a", "u"), body(10));
        cache.insert(key("a", "v"), body(20));
        let watched = Arc::downgrade(&cache.get(&key("a", "v")).unwrap());
        tokio::time::sleep(Duration::from_millis(60)).await;
        // Asking for an expired entry drops it...
        assert!(cache.get(&key("a", "u")).is_none());
        assert_eq!(cache.held(), (20, 1));
        // ...and the sweeper drops the rest within its period (1 s at this TTL).
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(cache.held(), (0, 0));
        assert!(watched.upgrade().is_none(), "the body was released");
        let text = metrics.encode_prometheus().unwrap();
        assert!(text.contains("akv_object_cache_bytes 0"), "{text}");
        assert!(text.contains("akv_object_cache_entries 0"), "{text}");
    }

    #[test]
    fn bytes_are_bounded_and_accounted() {
        let metrics = Metrics::prometheus();
        let cache = ObjectCache::new(Duration::from_secs(60), 100, metrics.clone());
        for i in 0..10 {
            cache.insert(key("a", &format!("u{i}")), body(30));
            assert!(cache.held().0 <= 100);
        }
        assert_eq!(cache.held(), (90, 3));
        cache.insert(key("a", "u9"), body(20));
        assert_eq!(cache.held().0, 80);
        cache.insert(key("a", "huge"), body(101));
        assert!(cache.get(&key("a", "huge")).is_none());
        let text = metrics.encode_prometheus().unwrap();
        assert!(text.contains("akv_object_cache_bytes 80"), "{text}");
        assert!(text.contains("akv_object_cache_entries 3"), "{text}");
    }
}
