//! The clock the token cache and the pacing of a registry's quota read and wait on.

use std::time::{Duration, Instant};

/// Where the token cache and the pacing of a registry's quota ([`crate::quota`]) read the
/// time and wait: the system's monotonic clock ([`SystemClock`]), or a clock a test moves.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> Instant;

    /// Waits for `duration` of this clock's time (tokio's timer by default).
    fn sleep(
        &self,
        duration: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The system's monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}
