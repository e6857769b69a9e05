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

/// The cache. Cheap to clone.
#[derive(Clone)]
pub struct ObjectCache {
    entries: Arc<Mutex<HashMap<ObjectKey, Entry>>>,
    bytes: Arc<Mutex<usize>>,
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
    /// A cache keeping bodies for `ttl`, at most `max_bytes` of them in all.
    pub fn new(ttl: Duration, max_bytes: usize, metrics: Metrics) -> Self {
        Self {
            entries: Arc::new(Mutex::new(HashMap::new())),
            bytes: Arc::new(Mutex::new(0)),
            ttl,
            max_bytes,
            metrics,
        }
    }

    /// The body for `key`, while it is fresh.
    pub fn get(&self, key: &ObjectKey) -> Option<Body> {
        let entries = self.entries.lock().ok()?;
        let entry = entries.get(key)?;
        (Instant::now() < entry.expires_at).then(|| entry.body.clone())
    }

    /// Keeps `body` for the TTL. A body larger than the whole cache is not kept.
    pub fn insert(&self, key: ObjectKey, body: Body) {
        let size = body.len();
        if size > self.max_bytes {
            return;
        }
        let (Ok(mut entries), Ok(mut bytes)) = (self.entries.lock(), self.bytes.lock()) else {
            return;
        };
        let (mut removed_entries, mut removed_bytes) = (0i64, 0i64);
        if let Some(old) = entries.remove(&key) {
            removed_entries += 1;
            removed_bytes += old.body.len() as i64;
            *bytes -= old.body.len();
        }
        let now = Instant::now();
        // Expired entries first, then the ones expiring soonest, until the new body fits.
        if entries.len() >= MAX_ENTRIES || *bytes + size > self.max_bytes {
            entries.retain(|_, e| {
                let keep = e.expires_at > now;
                if !keep {
                    removed_entries += 1;
                    removed_bytes += e.body.len() as i64;
                    *bytes -= e.body.len();
                }
                keep
            });
        }
        while entries.len() >= MAX_ENTRIES || *bytes + size > self.max_bytes {
            let Some(victim) = entries
                .iter()
                .min_by_key(|(_, e)| e.expires_at)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(old) = entries.remove(&victim) {
                removed_entries += 1;
                removed_bytes += old.body.len() as i64;
                *bytes -= old.body.len();
            }
        }
        *bytes += size;
        entries.insert(
            key,
            Entry {
                body,
                expires_at: now + self.ttl,
            },
        );
        self.metrics
            .object_cache_size(1 - removed_entries, size as i64 - removed_bytes);
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes.lock().map(|b| *b).unwrap_or(0)
    }

    /// Entries held (fresh or not yet evicted).
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    #[test]
    fn bytes_are_bounded_and_accounted() {
        let metrics = Metrics::prometheus();
        let cache = ObjectCache::new(Duration::from_secs(60), 100, metrics.clone());
        for i in 0..10 {
            cache.insert(key("a", &format!("u{i}")), body(30));
            assert!(cache.bytes() <= 100);
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.bytes(), 90);
        cache.insert(key("a", "u9"), body(20));
        assert_eq!(cache.bytes(), 80);
        cache.insert(key("a", "huge"), body(101));
        assert!(cache.get(&key("a", "huge")).is_none());
        let text = metrics.encode_prometheus().unwrap();
        assert!(text.contains("akv_object_cache_bytes 80"), "{text}");
        assert!(text.contains("akv_object_cache_entries 3"), "{text}");
    }
}
