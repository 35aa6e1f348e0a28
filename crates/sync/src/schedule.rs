//! Runs on a schedule: every interval, with a little jitter, never two at once.
//!
//! A service keeps a mirror by running a sync every [`Schedule::every`]: the next run starts
//! an interval after the start of the one before, plus a jitter of up to
//! [`Schedule::max_jitter`] (so many mirrors started together do not ask their registries in
//! step). A run that takes longer than the interval is never overlapped: the next one starts
//! once it is over (plus the jitter), and the starts it missed are not made up.
//!
//! Waiting is on tokio's clock, so a test with paused time moves it:
//!
//! ```
//! use std::time::Duration;
//! use ferry_sync::{Schedule, Stop};
//!
//! # async fn run() {}
//! # async fn service() {
//! let schedule = Schedule::new(Duration::from_secs(300));
//! let stop = Stop::new();
//! loop {
//!     let started = tokio::time::Instant::now();
//!     run().await;
//!     if !schedule.wait_next(started, &stop).await {
//!         break; // stopped while waiting
//!     }
//! }
//! # }
//! ```

use std::time::Duration;

use tokio::time::Instant;

use crate::{Stop, StopLevel};

/// The longest jitter a [`Schedule::new`] adds.
pub const MAX_JITTER: Duration = Duration::from_secs(30);

/// When runs start; see the [module documentation](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// From the start of a run to the start of the next.
    pub every: Duration,
    /// The most added to each start, at random: a tenth of the interval, at most
    /// [`MAX_JITTER`], unless set.
    pub max_jitter: Duration,
}

impl Schedule {
    /// Runs every `every`, with a jitter of up to a tenth of it (at most 30 s).
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            max_jitter: (every / 10).min(MAX_JITTER),
        }
    }

    /// Sets the most jitter added to each start.
    pub fn with_max_jitter(mut self, max_jitter: Duration) -> Self {
        self.max_jitter = max_jitter;
        self
    }

    /// When the run after one that started at `started` and ended at `ended` starts, with
    /// `unit` (in `0.0..1.0`) the share of the jitter taken: an interval after `started`,
    /// or at `ended` when the run took longer, plus the jitter.
    pub fn next_start(&self, started: Instant, ended: Instant, unit: f64) -> Instant {
        let jitter = self.max_jitter.mul_f64(unit.clamp(0.0, 1.0));
        (started + self.every).max(ended) + jitter
    }

    /// Waits for the start of the run after one that started at `started` (which has
    /// ended), with a random jitter. Returns `false` at once when `stop` is pulled (gently or
    /// not) before then, or was already.
    pub async fn wait_next(&self, started: Instant, stop: &Stop) -> bool {
        let next = self.next_start(started, Instant::now(), rand::random::<f64>());
        tokio::select! {
            biased;
            _ = stop.reached(StopLevel::Drain) => false,
            _ = tokio::time::sleep_until(next) => true,
        }
    }
}
