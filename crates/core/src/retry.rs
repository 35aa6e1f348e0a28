//! One retry policy for everything ferry tries again: a registry request, a blob transfer of
//! the copy engine, a token fetch, a gateway request.
//!
//! [`RetryPolicy`] decides *whether* and *when* (exponential back-off with full jitter, a
//! budget of retries and of total time, a server's `Retry-After` honoured); [`retry`] is the
//! one loop that does it, for any fallible async step, reporting each retry to a callback
//! and the log. Which failures are worth another try is the step's [`Retryable`] answer:
//! for [`Error`], a temporary error (a reset, a timeout, `429`/`5xx`), never a refusal or an
//! input the user must fix.
//!
//! Waits use tokio's clock, so a test pauses time (`#[tokio::test(start_paused = true)]`)
//! and moves it, and sees exactly the waits the policy chose.
//!
//! ```
//! # async fn demo() -> ferry_core::Result<()> {
//! use std::time::Duration;
//! use ferry_core::retry::{retry, RetryPolicy};
//! let policy = RetryPolicy::default().with_max_retries(3);
//! let value = retry(&policy, "reading the answer", |_attempt| async { Ok::<_, ferry_core::Error>(42) }, |_| {}).await?;
//! assert_eq!(value, 42);
//! # Ok(()) }
//! ```

use std::future::Future;
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};

/// When and how often a failed step is tried again.
///
/// The wait before retry `n` (from 1) is drawn uniformly from zero to
/// `min(max_delay, base_delay × 2ⁿ⁻¹)` ("full jitter": concurrent clients that failed together
/// do not retry together), or the server's `Retry-After` when it asks for longer. A step is
/// given up after `max_retries` retries, or when waiting again would make its waits add up to
/// more than `max_wait`. The time its tries take is not counted: a blob transfer that breaks
/// after a long while is tried again like one that breaks at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries after the first try.
    pub max_retries: u32,
    /// The ceiling of the first wait; it doubles with each retry.
    pub base_delay: Duration,
    /// The largest ceiling of one wait.
    pub max_delay: Duration,
    /// The most time a step may spend waiting between its tries, in all.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    /// 30 retries within 60 s, waits from 100 ms doubling up to 2 s: a blob whose upload
    /// breaks half the time still lands (the chance of 31 failures in a row is 10⁻⁹), and a
    /// registry that stays down is given up on within a minute.
    fn default() -> Self {
        Self {
            max_retries: 30,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            max_wait: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn never() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// Sets the retries after the first try.
    pub fn with_max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Sets the ceiling of the first wait.
    pub fn with_base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// Sets the largest ceiling of one wait.
    pub fn with_max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Sets the most time a step may spend waiting between its tries, in all.
    pub fn with_max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait;
        self
    }

    /// The ceiling of the wait before retry `retry` (from 1).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let doubled = self
            .base_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20));
        doubled.min(self.max_delay)
    }

    /// The wait before retry `retry` (from 1), `jitter` in `[0, 1)` choosing where in the
    /// ceiling it falls, or the server's `retry_after` when that is longer.
    pub fn delay(&self, retry: u32, jitter: f64, retry_after: Option<Duration>) -> Duration {
        let drawn = self.ceiling(retry).mul_f64(jitter.clamp(0.0, 1.0));
        match retry_after {
            Some(asked) => asked.max(drawn),
            None => drawn,
        }
    }

    /// Whether to retry after `retries` retries so far that waited `waited` in all, and after
    /// how long: `None` to give up.
    pub fn next(
        &self,
        retries: u32,
        waited: Duration,
        jitter: f64,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        if retries >= self.max_retries {
            return None;
        }
        let wait = self.delay(retries + 1, jitter, retry_after);
        (waited + wait <= self.max_wait).then_some(wait)
    }
}

/// What a failure says about trying again.
pub trait Retryable {
    /// Whether trying the same step again may succeed.
    fn is_transient(&self) -> bool;

    /// How long the server asked to wait (`Retry-After`), if it did.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

impl Retryable for Error {
    fn is_transient(&self) -> bool {
        self.is_temporary()
    }
}

/// One retry, as [`retry`] reports it.
#[derive(Debug)]
#[non_exhaustive]
pub struct RetryEvent<'a, E> {
    /// What is retried (`copy blob`, `PUT /v2/app/blobs/uploads/…`).
    pub what: &'a str,
    /// The retry about to be made (from 1).
    pub retry: u32,
    /// The wait before it.
    pub delay: Duration,
    /// The failure that made it necessary.
    pub error: &'a E,
}

/// Runs `step` (given the try's number, from 1) until it succeeds, fails in a way that is not
/// [transient](Retryable::is_transient), or `policy` gives up; `on_retry` hears of every retry
/// before its wait, which is logged at `debug` too. The last failure is returned.
pub async fn retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut step: F,
    mut on_retry: impl FnMut(&RetryEvent<'_, E>),
) -> std::result::Result<T, E>
where
    E: Retryable + std::fmt::Display,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = std::result::Result<T, E>>,
{
    let mut waited = Duration::ZERO;
    let mut retries = 0;
    loop {
        let error = match step(retries + 1).await {
            Ok(value) => return Ok(value),
            Err(e) if !e.is_transient() => return Err(e),
            Err(e) => e,
        };
        let Some(delay) = policy.next(retries, waited, jitter(), error.retry_after()) else {
            tracing::debug!(what, retries, error = %error, "giving up");
            return Err(error);
        };
        retries += 1;
        tracing::debug!(
            what,
            retry = retries,
            delay_ms = delay.as_millis() as u64,
            error = %error,
            "retrying"
        );
        on_retry(&RetryEvent {
            what,
            retry: retries,
            delay,
            error: &error,
        });
        drop(error);
        tokio::time::sleep(delay).await;
        waited += delay;
    }
}

/// [`retry`] for steps failing with [`Error`].
pub async fn retry_step<T, F, Fut>(policy: &RetryPolicy, what: &str, step: F) -> Result<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    retry(policy, what, step, |_| {}).await
}

/// A number in `[0, 1)`: a xorshift of a per-thread state seeded from the clock and a counter,
/// enough to spread the retries of concurrent clients.
fn jitter() -> f64 {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEED: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            (SEED.fetch_add(0x2545_F491_4F6C_DD1D, Ordering::Relaxed) ^ nanos) | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}
