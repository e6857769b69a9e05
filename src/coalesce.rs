//! Single flight: concurrent requests for the same key share one execution, and every waiter gets
//! its result or its error.
//!
//! The work runs in its own task, so the first caller going away does not cancel it for the
//! others. What happens when *every* waiter has gone away is the caller's choice ([`Abandon`]): a
//! token refresh must finish (a cancelled Mount must not throw away a still-valid token), while a
//! Key Vault fetch nobody waits for any more is aborted, so that a cancelled Mount leaves no task
//! and no buffered secret behind.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// What to do with work whose waiters have all gone away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abandon {
    /// Let it finish (its completion has side effects worth having, such as filling a cache).
    Finish,
    /// Abort it.
    Abort,
}

/// How a caller got its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Joined {
    /// This call started the work.
    Started,
    /// This call waited for work another call had started.
    Coalesced,
}

type Outcome<V, E> = Option<Result<V, Arc<E>>>;

struct Flight<V, E> {
    /// Tells this flight from a later one of the same key: a waiter of a finished flight must not
    /// count itself out of the next one.
    id: u64,
    result: watch::Receiver<Outcome<V, E>>,
    waiters: usize,
    abort: tokio::task::AbortHandle,
}

/// Shares executions by key. Cheap to clone.
pub struct Coalescer<K, V, E> {
    flights: Arc<Mutex<HashMap<K, Flight<V, E>>>>,
    next_id: Arc<std::sync::atomic::AtomicU64>,
    abandon: Abandon,
}

impl<K, V, E> Clone for Coalescer<K, V, E> {
    fn clone(&self) -> Self {
        Self {
            flights: self.flights.clone(),
            next_id: self.next_id.clone(),
            abandon: self.abandon,
        }
    }
}

impl<K, V, E> std::fmt::Debug for Coalescer<K, V, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer")
            .field("abandon", &self.abandon)
            .finish_non_exhaustive()
    }
}

/// The waiter's share of a flight; its drop is how a flight learns that a waiter went away.
struct Waiter<K: Eq + Hash, V, E> {
    key: Option<K>,
    /// The flight this waiter waits for.
    id: u64,
    flights: Arc<Mutex<HashMap<K, Flight<V, E>>>>,
    abandon: Abandon,
}

impl<K: Eq + Hash, V, E> Drop for Waiter<K, V, E> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let Ok(mut flights) = self.flights.lock() else {
            return;
        };
        // The flight may be over and the key taken by a newer one, which is not ours to count.
        let Some(flight) = flights.get_mut(&key).filter(|f| f.id == self.id) else {
            return;
        };
        flight.waiters = flight.waiters.saturating_sub(1);
        if flight.waiters == 0 && self.abandon == Abandon::Abort {
            flight.abort.abort();
            flights.remove(&key);
        }
    }
}

impl<K, V, E> Coalescer<K, V, E>
where
    K: Clone + Eq + Hash + Send + 'static,
    V: Clone + Send + Sync + 'static,
    E: Lost + Send + Sync + 'static,
{
    /// A coalescer with the given policy for abandoned work.
    pub fn new(abandon: Abandon) -> Self {
        Self {
            flights: Arc::new(Mutex::new(HashMap::new())),
            next_id: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            abandon,
        }
    }

    /// Whether work for `key` is running now.
    pub fn in_flight(&self, key: &K) -> bool {
        self.flights
            .lock()
            .map(|f| f.contains_key(key))
            .unwrap_or(false)
    }

    /// Starts `work` for `key` without waiting for it, unless work for `key` is already running.
    /// Returns whether it started it.
    pub fn spawn<F>(&self, key: K, work: F) -> bool
    where
        F: Future<Output = Result<V, E>> + Send + 'static,
    {
        let Ok(mut flights) = self.flights.lock() else {
            return false;
        };
        if flights.contains_key(&key) {
            return false;
        }
        let flight = self.launch(key.clone(), work);
        flights.insert(key, flight);
        true
    }

    /// The result of `work` for `key`: this call's own execution, or the one already running.
    pub async fn run<F>(&self, key: K, work: F) -> (Result<V, Arc<E>>, Joined)
    where
        F: Future<Output = Result<V, E>> + Send + 'static,
    {
        let (mut result, joined, id) = {
            let Ok(mut flights) = self.flights.lock() else {
                // A poisoned map means a thread panicked while holding it; run unshared.
                return (work.await.map_err(Arc::new), Joined::Started);
            };
            match flights.get_mut(&key) {
                Some(flight) => {
                    flight.waiters += 1;
                    (flight.result.clone(), Joined::Coalesced, flight.id)
                }
                None => {
                    let mut flight = self.launch(key.clone(), work);
                    flight.waiters = 1;
                    let (rx, id) = (flight.result.clone(), flight.id);
                    flights.insert(key.clone(), flight);
                    (rx, Joined::Started, id)
                }
            }
        };
        let _waiter = Waiter {
            key: Some(key),
            id,
            flights: self.flights.clone(),
            abandon: self.abandon,
        };
        let outcome = match result.wait_for(Option::is_some).await {
            Ok(done) => done.clone(),
            // The sender is gone without a result: the task was aborted, which only happens when
            // no one waits, or it panicked.
            Err(_) => None,
        };
        match outcome {
            Some(r) => (r, joined),
            None => (Err(Arc::new(E::lost())), joined),
        }
    }

    fn launch<F>(&self, key: K, work: F) -> Flight<V, E>
    where
        F: Future<Output = Result<V, E>> + Send + 'static,
    {
        let (tx, rx) = watch::channel(None);
        let flights = Arc::downgrade(&self.flights);
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let task = tokio::spawn(async move {
            let result = work.await.map_err(Arc::new);
            // Remove the flight before publishing, so that a caller arriving after the result
            // starts fresh work instead of reading a finished flight.
            if let Some(flights) = flights.upgrade()
                && let Ok(mut flights) = flights.lock()
                && flights.get(&key).is_some_and(|f| f.id == id)
            {
                flights.remove(&key);
            }
            let _ = tx.send(Some(result));
        });
        Flight {
            id,
            result: rx,
            waiters: 0,
            abort: task.abort_handle(),
        }
    }
}

/// An error for work that ended without a result (it panicked), so that a waiter gets an error
/// rather than a hang.
pub trait Lost {
    /// The error a waiter gets when the work ended without a result.
    fn lost() -> Self;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[derive(Debug, PartialEq)]
    struct Failed(&'static str);

    impl Lost for Failed {
        fn lost() -> Self {
            Failed("lost")
        }
    }

    fn counting(
        runs: &Arc<AtomicUsize>,
        result: Result<u32, Failed>,
        delay: Duration,
    ) -> impl Future<Output = Result<u32, Failed>> + Send + 'static {
        let runs = runs.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            result
        }
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_execution_and_its_error() {
        let c = Coalescer::<&str, u32, Failed>::new(Abandon::Abort);
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let c = c.clone();
            let work = counting(&runs, Err(Failed("boom")), Duration::from_millis(50));
            tasks.push(tokio::spawn(async move { c.run("k", work).await }));
        }
        let mut started = 0;
        for t in tasks {
            let (result, joined) = t.await.unwrap();
            assert_eq!(*result.unwrap_err(), Failed("boom"));
            started += usize::from(joined == Joined::Started);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(started, 1);
        // Finished work is not reused: the next call runs again.
        let (result, joined) = c.run("k", counting(&runs, Ok(7), Duration::ZERO)).await;
        assert_eq!((result.unwrap(), joined), (7, Joined::Started));
        assert!(!c.in_flight(&"k"));
    }

    #[tokio::test]
    async fn abandoned_work_is_aborted_or_finished_as_asked() {
        for (abandon, finished) in [(Abandon::Abort, 0), (Abandon::Finish, 1)] {
            let c = Coalescer::<&str, u32, Failed>::new(abandon);
            let done = Arc::new(AtomicUsize::new(0));
            let d = done.clone();
            let work = async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                d.fetch_add(1, Ordering::SeqCst);
                Ok(1)
            };
            let waiter = tokio::time::timeout(Duration::from_millis(5), c.run("k", work)).await;
            assert!(waiter.is_err(), "the waiter timed out");
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(done.load(Ordering::SeqCst), finished, "{abandon:?}");
            assert!(!c.in_flight(&"k"));
        }
    }

    #[tokio::test]
    async fn spawned_work_is_joined_by_later_callers() {
        let c = Coalescer::<&str, u32, Failed>::new(Abandon::Finish);
        let runs = Arc::new(AtomicUsize::new(0));
        assert!(c.spawn("k", counting(&runs, Ok(3), Duration::from_millis(30))));
        assert!(!c.spawn("k", counting(&runs, Ok(4), Duration::ZERO)));
        let (result, joined) = c.run("k", counting(&runs, Ok(5), Duration::ZERO)).await;
        assert_eq!((result.unwrap(), joined), (3, Joined::Coalesced));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_panicking_execution_is_an_error_for_its_waiters() {
        let c = Coalescer::<&str, u32, Failed>::new(Abandon::Abort);
        let (result, _) = c
            .run("k", async {
                if true {
                    panic!("bug");
                }
                Ok(0)
            })
            .await;
        assert_eq!(*result.unwrap_err(), Failed("lost"));
        assert!(!c.in_flight(&"k"));
    }
}
