//! The one model of retrying a request and of backing off, used by every peer: Key Vault
//! ([`crate::keyvault`]), IMDS (`auth::managed_identity`) and the shared throttle gate's wait when a
//! 429 carries no `Retry-After` ([`crate::throttle`]).
//!
//! A [`Policy`] says how many attempts and how the wait grows; [`run`] calls an attempt until it
//! succeeds, fails for good, or another attempt would not finish before the Mount's deadline (then
//! the last failure is returned at once, so that the driver retries the Mount rather than the
//! Mount hanging until its deadline).

use std::future::Future;
use std::time::{Duration, Instant};

/// A wait that doubles from `first` at each step, up to `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Backoff {
    first: Duration,
    max: Duration,
}

impl Backoff {
    /// Doubles from `first` up to `max`.
    pub(crate) const fn new(first: Duration, max: Duration) -> Self {
        Self { first, max }
    }

    /// The wait at step `n` (1 = the first): `first` doubled `n - 1` times, at most `max`.
    pub(crate) fn step(&self, n: u32) -> Duration {
        self.first
            .saturating_mul(1u32 << n.saturating_sub(1).min(16))
            .min(self.max)
    }
}

/// ±20 %, so that callers that failed together do not come back together.
pub(crate) fn jittered(d: Duration) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    let r = RandomState::new().hash_one(Instant::now()) % 401;
    d.mul_f64(0.8 + r as f64 / 1000.0)
}

/// How a request is retried.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Policy {
    /// Attempts in all (transient failures only; see [`Failure::Again`]).
    pub(crate) attempts: u32,
    /// The wait before the second attempt, the third, …
    pub(crate) backoff: Backoff,
    /// Longest `Retry-After` honoured as given (longer values are clamped).
    pub(crate) max_retry_after: Duration,
}

impl Policy {
    /// The wait after failed attempt `attempt`: the peer's `Retry-After` (clamped) or the backoff.
    pub(crate) fn wait(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        retry_after.map_or_else(
            || self.backoff.step(attempt),
            |d| d.min(self.max_retry_after),
        )
    }
}

/// How one attempt failed.
#[derive(Debug)]
pub(crate) enum Failure<E> {
    /// A definite answer: returned as is.
    Final(E),
    /// Worth another attempt, after the peer's `Retry-After` or the policy's backoff.
    Transient {
        /// What went wrong (returned when no attempt is left).
        error: E,
        /// The peer's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// Try again at once, not counted as an attempt: the wait happened elsewhere (a throttle gate
    /// that every Mount waits at, which refuses once the deadline is too near).
    Again,
}

/// Calls `attempt` (with its number, from 1) until it succeeds or fails for good, waiting between
/// transient failures as `policy` says. `what` names the peer in the debug log of each retry.
pub(crate) async fn run<T, E, F, Fut>(
    policy: &Policy,
    what: &'static str,
    deadline: Instant,
    mut attempt: F,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Failure<E>>>,
{
    let mut n = 1;
    loop {
        let (error, retry_after) = match attempt(n).await {
            Ok(value) => return Ok(value),
            Err(Failure::Final(error)) => return Err(error),
            Err(Failure::Again) => continue,
            Err(Failure::Transient { error, retry_after }) => (error, retry_after),
        };
        let wait = policy.wait(n, retry_after);
        // Another attempt only if its wait still ends before the Mount's deadline.
        if n >= policy.attempts || Instant::now() + wait >= deadline {
            return Err(error);
        }
        tracing::debug!(attempt = n, error = %error, backoff = ?wait, "retrying {what}");
        tokio::time::sleep(wait).await;
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let b = Backoff::new(Duration::from_millis(400), Duration::from_secs(2));
        assert_eq!(b.step(1), Duration::from_millis(400));
        assert_eq!(b.step(2), Duration::from_millis(800));
        assert_eq!(b.step(3), Duration::from_millis(1600));
        assert_eq!(b.step(4), Duration::from_secs(2));
        assert_eq!(b.step(u32::MAX), Duration::from_secs(2));
    }

    #[tokio::test]
    async fn transient_failures_are_retried_up_to_the_attempts_and_the_deadline() {
        let policy = Policy {
            attempts: 3,
            backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(1)),
            max_retry_after: Duration::from_millis(1),
        };
        let far = Instant::now() + Duration::from_secs(60);
        let mut calls = 0;
        let result: Result<(), &str> = run(&policy, "test", far, |_| {
            calls += 1;
            async {
                Err(Failure::Transient {
                    error: "down",
                    retry_after: None,
                })
            }
        })
        .await;
        assert_eq!((result, calls), (Err("down"), 3));

        // A wait that would end past the deadline is not taken.
        let mut calls = 0;
        let near = Instant::now() + Duration::from_micros(10);
        let _ = run(&policy, "test", near, |_| {
            calls += 1;
            async {
                Err::<(), _>(Failure::Transient {
                    error: "down",
                    retry_after: Some(Duration::from_secs(1)),
                })
            }
        })
        .await;
        assert_eq!(calls, 1);

        let mut calls = 0;
        let result: Result<(), &str> = run(&policy, "test", far, |_| {
            calls += 1;
            async { Err(Failure::Final("no")) }
        })
        .await;
        assert_eq!((result, calls), (Err("no"), 1));
    }
}
