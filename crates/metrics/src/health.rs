//! `/healthz` and `/readyz`: alive, and whether the mirror is being kept.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Whether the service is ready, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Ready; what the last run was.
    Ready(String),
    /// Not ready; why.
    NotReady(String),
}

/// The health of a sync service: ready when a run finished within two intervals and did not
/// fail as a whole. Every answer is a function of the time it is asked for, so a test moves
/// the clock by asking for later instants.
#[derive(Debug)]
pub struct Health {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    every: Option<Duration>,
    /// When the last run finished, and why it failed as a whole if it did.
    last: Option<(Instant, Option<String>)>,
}

impl Health {
    /// The health of a service running every `every` (`None`: a single run).
    pub fn new(every: Option<Duration>) -> Self {
        Self {
            state: Mutex::new(State { every, last: None }),
        }
    }

    /// The interval changed (the mirror file was read again).
    pub fn set_every(&self, every: Option<Duration>) {
        self.state.lock().expect("health lock").every = every;
    }

    /// A run finished at `at`; `failed_wholly` says why it failed as a whole, if it did.
    pub fn run_finished(&self, at: Instant, failed_wholly: Option<String>) {
        self.state.lock().expect("health lock").last = Some((at, failed_wholly));
    }

    /// Whether the service is ready at `now`.
    pub fn readiness(&self, now: Instant) -> Readiness {
        let state = self.state.lock().expect("health lock");
        let Some((at, failed)) = &state.last else {
            return Readiness::NotReady("no run has finished yet".into());
        };
        if let Some(why) = failed {
            return Readiness::NotReady(why.clone());
        }
        let age = now.saturating_duration_since(*at);
        if let Some(every) = state.every
            && age > every * 2
        {
            return Readiness::NotReady(format!(
                "the last run finished {} s ago, more than two intervals ({} s)",
                age.as_secs(),
                (every * 2).as_secs()
            ));
        }
        Readiness::Ready(format!("the last run finished {} s ago", age.as_secs()))
    }
}
