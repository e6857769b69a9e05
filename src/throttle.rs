//! Back-pressure per peer (a vault, an Entra authority), shared by every Mount of the process: a bound
//! on requests in flight, and one shared wait when the peer throttles.
//!
//! When a vault answers 429, every Mount of the node waits for that vault's `Retry-After` (a
//! jittered, growing backoff when it gives none) instead of each Mount retrying on its own. When
//! the wait is over exactly one request goes first (a probe); the others follow only once it got
//! through, so a vault that is still throttling sees one request per waiting period from this
//! node, not one per Mount. A caller whose deadline would pass before the peer opens is refused at
//! once with how long the peer is throttling, so that the Mount fails fast with a message saying so
//! (and the driver retries later) rather than hanging until its deadline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::retry::{Backoff, jittered};

/// Backoff after a 429 without `Retry-After`, by consecutive 429s: doubles from 1 s up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
const BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), MAX_BACKOFF);
/// Longest `Retry-After` honoured as given (longer values are clamped): a misbehaving proxy must not
/// shut a vault off for hours.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Why a request was not let through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The peer is throttling for `remaining` more, which is past the caller's deadline.
    Throttled {
        /// Time until the peer may be asked again.
        remaining: Duration,
    },
    /// The deadline passed while waiting for a free slot.
    Busy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    /// Nothing goes out before `until`.
    Throttled {
        until: Instant,
    },
    /// One request is out after a throttled period; the others wait for its answer.
    Probing,
}

struct Gate {
    permits: Arc<Semaphore>,
    state: watch::Sender<State>,
    /// Consecutive throttled answers, for the backoff when no `Retry-After` is given.
    strikes: Mutex<u32>,
}

/// The gates of every peer. Cheap to clone.
#[derive(Clone)]
pub struct Gates {
    gates: Arc<Mutex<HashMap<String, Arc<Gate>>>>,
    limit: usize,
}

impl std::fmt::Debug for Gates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gates")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// Permission to send one request; report how it went with [`Pass::throttled`] or
/// [`Pass::succeeded`]. Dropped without a report, it counts as an answer that was not a 429.
pub struct Pass {
    gate: Arc<Gate>,
    probe: bool,
    reported: bool,
    _permit: OwnedSemaphorePermit,
    /// How long this request waited because the peer was throttling.
    pub waited: Duration,
}

impl Gates {
    /// Gates letting at most `limit` requests per peer be in flight at once.
    pub fn new(limit: usize) -> Self {
        Self {
            gates: Arc::new(Mutex::new(HashMap::new())),
            limit: limit.max(1),
        }
    }

    fn gate(&self, peer: &str) -> Arc<Gate> {
        let new = || {
            Arc::new(Gate {
                permits: Arc::new(Semaphore::new(self.limit)),
                state: watch::Sender::new(State::Open),
                strikes: Mutex::new(0),
            })
        };
        let Ok(mut gates) = self.gates.lock() else {
            return new();
        };
        gates.entry(peer.to_owned()).or_insert_with(new).clone()
    }

    /// How long `peer` is known to be throttling from now on (zero when it is not); the daemon
    /// only ever waits at the gate, tests look at it.
    #[cfg(test)]
    pub fn throttled_for(&self, peer: &str) -> Duration {
        match *self.gate(peer).state.borrow() {
            State::Throttled { until } => until.saturating_duration_since(Instant::now()),
            _ => Duration::ZERO,
        }
    }

    /// Waits until a request to `peer` may go out, at the latest until `deadline`.
    pub async fn enter(&self, peer: &str, deadline: Instant) -> Result<Pass, Refused> {
        let gate = self.gate(peer);
        let mut waited = Duration::ZERO;
        loop {
            let probe = wait_until_open(&gate, deadline, &mut waited).await?;
            let permit =
                tokio::time::timeout_at(deadline.into(), gate.permits.clone().acquire_owned())
                    .await;
            let Ok(Ok(permit)) = permit else {
                // Closed never happens (the semaphore is never closed); a timeout is a busy peer.
                if probe {
                    reopen(&gate);
                }
                return Err(Refused::Busy);
            };
            // The peer may have started throttling while this request waited for a slot: then it
            // waits again rather than going out into the throttled period.
            let state = *gate.state.borrow();
            if probe || state == State::Open {
                return Ok(Pass {
                    gate,
                    probe,
                    reported: false,
                    _permit: permit,
                    waited,
                });
            }
        }
    }
}

/// Waits while the gate is throttled or probing; returns whether this caller became the probe.
async fn wait_until_open(
    gate: &Gate,
    deadline: Instant,
    waited: &mut Duration,
) -> Result<bool, Refused> {
    let mut changes = gate.state.subscribe();
    loop {
        let now = Instant::now();
        let state = *changes.borrow_and_update();
        match state {
            State::Open => return Ok(false),
            State::Throttled { until } if until <= now => {
                // The first caller to see the end of the wait becomes the probe.
                let became_probe = gate.state.send_if_modified(|s| {
                    if *s == state {
                        *s = State::Probing;
                        true
                    } else {
                        false
                    }
                });
                if became_probe {
                    return Ok(true);
                }
            }
            State::Throttled { until } => {
                if until > deadline {
                    return Err(Refused::Throttled {
                        remaining: until - now,
                    });
                }
                let wait_started = Instant::now();
                tokio::select! {
                    () = tokio::time::sleep_until(until.into()) => {}
                    _ = changes.changed() => {}
                }
                *waited += wait_started.elapsed();
            }
            State::Probing => {
                let wait_started = Instant::now();
                tokio::select! {
                    () = tokio::time::sleep_until(deadline.into()) => return Err(Refused::Busy),
                    _ = changes.changed() => {}
                }
                *waited += wait_started.elapsed();
            }
        }
    }
}

fn reopen(gate: &Gate) {
    gate.state.send_if_modified(|s| {
        if *s == State::Probing {
            *s = State::Open;
            true
        } else {
            false
        }
    });
}

impl Pass {
    /// The peer answered 429: everyone waits `retry_after` (or a backoff). Returns the wait.
    pub fn throttled(mut self, retry_after: Option<Duration>) -> Duration {
        self.reported = true;
        let strikes = {
            let mut s = self.gate.strikes.lock().unwrap_or_else(|e| e.into_inner());
            *s = s.saturating_add(1);
            *s
        };
        let wait = match retry_after {
            Some(d) => d.min(MAX_RETRY_AFTER),
            None => jittered(backoff(strikes)),
        };
        let until = Instant::now() + wait;
        self.gate.state.send_modify(|s| {
            // Another request may have set a later end already; keep the later one.
            *s = match *s {
                State::Throttled { until: other } if other > until => {
                    State::Throttled { until: other }
                }
                _ => State::Throttled { until },
            };
        });
        wait
    }

    /// The peer answered (not 429): the gate opens for everyone.
    pub fn succeeded(mut self) {
        self.reported = true;
        if let Ok(mut s) = self.gate.strikes.lock() {
            *s = 0;
        }
        reopen(&self.gate);
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        // A probe that ends without a 429 (an error answer, a cancelled Mount) must not leave the
        // others waiting for an answer that never comes.
        if self.probe && !self.reported {
            reopen(&self.gate);
        }
    }
}

/// A wait in whole seconds, rounded up (at least 1), for messages.
pub fn whole_seconds(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

fn backoff(strikes: u32) -> Duration {
    BACKOFF.step(strikes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[tokio::test]
    async fn in_flight_requests_are_bounded_per_peer() {
        let gates = Gates::new(2);
        let a = gates.enter("v1", far()).await.unwrap();
        let _b = gates.enter("v1", far()).await.unwrap();
        // A third waits for a slot; another peer does not.
        let soon = Instant::now() + Duration::from_millis(50);
        assert_eq!(gates.enter("v1", soon).await.err(), Some(Refused::Busy));
        assert!(gates.enter("v2", soon).await.is_ok());
        drop(a);
        assert!(gates.enter("v1", soon).await.is_ok());
    }

    #[tokio::test]
    async fn a_throttled_peer_holds_everyone_then_lets_one_probe_through() {
        let gates = Gates::new(8);
        let pass = gates.enter("v", far()).await.unwrap();
        assert_eq!(
            pass.throttled(Some(Duration::from_millis(200))),
            Duration::from_millis(200)
        );
        assert!(gates.throttled_for("v") > Duration::from_millis(100));
        // A caller whose deadline ends before the peer opens is refused at once.
        let early = Instant::now() + Duration::from_millis(50);
        match gates.enter("v", early).await {
            Err(Refused::Throttled { remaining }) => {
                assert!(remaining > Duration::from_millis(100))
            }
            other => panic!("{:?}", other.err()),
        }
        // Ten callers wait; when the period ends exactly one goes out until it reports.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..10 {
            let gates = gates.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Ok(pass) = gates.enter("v", far()).await {
                    let _ = tx.send(pass);
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(350)).await;
        let probe = rx.try_recv().expect("the probe went out");
        assert!(rx.try_recv().is_err(), "only the probe is out");
        assert!(probe.probe);
        assert!(
            probe.waited >= Duration::from_millis(100),
            "{:?}",
            probe.waited
        );
        probe.succeeded();
        for _ in 0..9 {
            let pass = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .unwrap()
                .unwrap();
            assert!(!pass.probe);
        }
    }

    #[tokio::test]
    async fn a_probe_that_is_throttled_again_restarts_the_wait_and_backoff_grows() {
        let gates = Gates::new(8);
        let pass = gates.enter("v", far()).await.unwrap();
        let first = pass.throttled(None);
        assert!(first >= Duration::from_millis(800) && first <= Duration::from_millis(1200));
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(30), MAX_BACKOFF);
        // A dropped probe (no 429) reopens the gate.
        let gates = Gates::new(8);
        gates
            .enter("v", far())
            .await
            .unwrap()
            .throttled(Some(Duration::from_millis(10)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let probe = gates.enter("v", far()).await.unwrap();
        assert!(probe.probe);
        drop(probe);
        let next = gates.enter("v", far()).await.unwrap();
        assert!(!next.probe);
    }

    #[test]
    fn retry_after_is_clamped() {
        let d = MAX_RETRY_AFTER + Duration::from_secs(1000);
        assert_eq!(d.min(MAX_RETRY_AFTER), MAX_RETRY_AFTER);
    }
}
