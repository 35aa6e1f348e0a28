//! Stopping a copy or a sync from outside (a signal handler): first gently, then at once.

use std::sync::Arc;

use tokio::sync::watch;

/// How far a copy or a sync has been asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StopLevel {
    /// Keep going.
    Run,
    /// Start nothing new (no image of a sync, no blob or manifest of a copy); let what is in
    /// flight finish within the grace period.
    Drain,
    /// Stop what is in flight at once.
    Abort,
}

/// A handle to ask a running copy or sync to stop; clones share one state.
///
/// [`Stop::drain`] (the first SIGINT or SIGTERM): nothing new starts (a sync starts no new
/// image; a copy no new blob transfer and no manifest push), what is in flight gets a grace
/// period to finish, then it is stopped. [`Stop::abort`] (a second signal): it is stopped at
/// once. A stopped copy never leaves a tag naming content that is not there: the copy engine
/// tags last, and pushes no manifest once draining.
#[derive(Debug, Clone)]
pub struct Stop {
    level: Arc<watch::Sender<StopLevel>>,
}

impl Default for Stop {
    fn default() -> Self {
        Self::new()
    }
}

impl Stop {
    /// A handle nobody has pulled yet.
    pub fn new() -> Self {
        Self {
            level: Arc::new(watch::Sender::new(StopLevel::Run)),
        }
    }

    /// Asks for a gentle stop (or, when one was asked already, for a stop at once). Returns
    /// the level now in force.
    pub fn escalate(&self) -> StopLevel {
        let mut now = StopLevel::Run;
        self.level.send_modify(|l| {
            *l = match *l {
                StopLevel::Run => StopLevel::Drain,
                _ => StopLevel::Abort,
            };
            now = *l;
        });
        now
    }

    /// Asks for a gentle stop.
    pub fn drain(&self) {
        self.raise(StopLevel::Drain);
    }

    /// Asks for a stop at once.
    pub fn abort(&self) {
        self.raise(StopLevel::Abort);
    }

    fn raise(&self, to: StopLevel) {
        self.level.send_if_modified(|l| {
            if *l < to {
                *l = to;
                true
            } else {
                false
            }
        });
    }

    /// The level in force.
    pub fn level(&self) -> StopLevel {
        *self.level.borrow()
    }

    /// Returns once the level is at least `level`.
    pub async fn reached(&self, level: StopLevel) {
        let mut rx = self.level.subscribe();
        // The sender lives as long as `self`, so waiting cannot fail.
        let _ = rx.wait_for(|l| *l >= level).await;
    }
}
