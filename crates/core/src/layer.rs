//! Layers: mount strategies that wrap another strategy to add what every strategy may need,
//! in the manner of tower's layers. A layer is itself a [`MountStrategy`], so layers stack,
//! and its `Display` prints the stack (`Resting(30s, Timeout(30s, AdminLinkMount(http://…)))`),
//! so a log line names the chain that ran.
//!
//! - [`Timeout`]: an attempt that takes too long is dropped (strategies leave no partial blob
//!   when dropped) and declined as [`MountOutcome::unreachable`].
//! - [`Resting`]: after an attempt that could not reach what it needs (an unreachable
//!   outcome: no answer, a refused connection, a timeout), the strategy is left alone for a
//!   while for the same pair of stores, so a copy of a hundred blobs does not wait for a dead
//!   endpoint a hundred times; the copy goes on with the next strategy or by streaming.
//! - [`Traced`]: a `tracing` span around every attempt, and an event with its outcome.
//!
//! [`MountStrategyExt`] builds them:
//!
//! ```
//! use std::time::Duration;
//! use ferry_core::layer::MountStrategyExt;
//! # use ferry_core::{MountOutcome, MountRequest, MountStrategy, Result};
//! # #[derive(Debug)] struct AdminLink;
//! # impl std::fmt::Display for AdminLink {
//! #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("AdminLink") }
//! # }
//! # #[async_trait::async_trait] impl MountStrategy for AdminLink {
//! #     fn name(&self) -> &str { "admin-link" }
//! #     async fn mount(&self, _: &MountRequest<'_>) -> Result<MountOutcome> { Ok(MountOutcome::declined("demo")) }
//! # }
//! let strategy = AdminLink
//!     .with_timeout(Duration::from_secs(30))
//!     .resting_after_failure(Duration::from_secs(60))
//!     .traced();
//! assert_eq!(strategy.to_string(), "Traced(Resting(1m, Timeout(30s, AdminLink)))");
//! assert_eq!(strategy.name(), "admin-link");
//! ```
//!
//! # Order
//!
//! Layers apply from the inside out, in the order they are added. Put [`Timeout`] inside
//! [`Resting`] (`.with_timeout(…)` before `.resting_after_failure(…)`): a timed-out attempt is
//! then an unreachable outcome that starts a rest; the other way round the rest never sees the
//! timeout. Put [`Traced`] outermost to log every attempt the chain makes, rested ones
//! included, or innermost to log only the attempts that reach the strategy. Every layer keeps
//! its inner strategy's [`MountStrategy::name`], which the output and the report show.

use std::collections::HashMap;
use std::fmt::{self, Debug, Display};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tracing::Instrument;

use crate::error::Result;
use crate::mount::{MountOutcome, MountPlan, MountRequest, MountStrategy};

/// A source of the current time for layers that wait or remember: the system's monotonic
/// clock by default, a [`ManualClock`] in tests and simulations.
pub trait Clock: Debug + Send + Sync {
    /// Now.
    fn now(&self) -> Instant;
}

/// The system's monotonic clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to ([`ManualClock::advance`]): a test moves time past a
/// rest instead of sleeping through it. Clones share one time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    start: Instant,
    elapsed: Arc<Mutex<Duration>>,
}

impl ManualClock {
    /// A clock standing still at the moment it was made.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            elapsed: Arc::default(),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        *self.elapsed.lock().expect("clock lock") += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + *self.elapsed.lock().expect("clock lock")
    }
}

/// Builds layers around a strategy. Implemented for every [`MountStrategy`].
pub trait MountStrategyExt: MountStrategy + Sized {
    /// Declines an attempt that takes longer than `limit`, as unreachable (see [`Timeout`]).
    fn with_timeout(self, limit: Duration) -> Timeout<Self> {
        Timeout::new(self, limit)
    }

    /// Leaves the strategy alone for `rest` after an attempt that could not reach what it
    /// needs (see [`Resting`]).
    fn resting_after_failure(self, rest: Duration) -> Resting<Self> {
        Resting::new(self, rest)
    }

    /// Traces every attempt (see [`Traced`]).
    fn traced(self) -> Traced<Self> {
        Traced::new(self)
    }
}

impl<S: MountStrategy> MountStrategyExt for S {}

/// A shared strategy is the strategy: layers wrap `Arc<dyn MountStrategy>` too.
#[async_trait]
impl<S: MountStrategy + ?Sized> MountStrategy for Arc<S> {
    fn name(&self) -> &str {
        (**self).name()
    }

    async fn mount(&self, request: &MountRequest<'_>) -> Result<MountOutcome> {
        (**self).mount(request).await
    }

    async fn plan(&self, request: &MountRequest<'_>) -> Result<MountPlan> {
        (**self).plan(request).await
    }

    fn probes_destination(&self, request: &MountRequest<'_>) -> bool {
        (**self).probes_destination(request)
    }
}

/// A boxed strategy is the strategy.
#[async_trait]
impl<S: MountStrategy + ?Sized> MountStrategy for Box<S> {
    fn name(&self) -> &str {
        (**self).name()
    }

    async fn mount(&self, request: &MountRequest<'_>) -> Result<MountOutcome> {
        (**self).mount(request).await
    }

    async fn plan(&self, request: &MountRequest<'_>) -> Result<MountPlan> {
        (**self).plan(request).await
    }

    fn probes_destination(&self, request: &MountRequest<'_>) -> bool {
        (**self).probes_destination(request)
    }
}

/// A duration as a person writes it: `30s`, `1m`, `1m30s`, `250ms`.
struct Shown(Duration);

impl Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_millis() != 0 || d.as_secs() == 0 {
            return write!(f, "{}ms", d.as_millis());
        }
        let (m, s) = (d.as_secs() / 60, d.as_secs() % 60);
        match (m, s) {
            (0, s) => write!(f, "{s}s"),
            (m, 0) => write!(f, "{m}m"),
            (m, s) => write!(f, "{m}m{s}s"),
        }
    }
}

/// Declines an attempt of the inner strategy that takes longer than a limit.
///
/// The inner attempt's future is dropped at the limit (a strategy leaves no partial blob when
/// dropped) and the outcome is [`MountOutcome::unreachable`], naming the limit, so a
/// [`Resting`] layer around it leaves the strategy alone for a while. Other outcomes pass
/// unchanged. The limit is measured on tokio's clock, which tests can pause and move.
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    limit: Duration,
}

impl<S> Timeout<S> {
    /// `inner` with attempts limited to `limit`.
    pub fn new(inner: S, limit: Duration) -> Self {
        Self { inner, limit }
    }

    /// The wrapped strategy.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: Display> Display for Timeout<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timeout({}, {})", Shown(self.limit), self.inner)
    }
}

#[async_trait]
impl<S: MountStrategy> MountStrategy for Timeout<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn mount(&self, request: &MountRequest<'_>) -> Result<MountOutcome> {
        match tokio::time::timeout(self.limit, self.inner.mount(request)).await {
            Ok(result) => result,
            Err(_) => Ok(MountOutcome::unreachable(format!(
                "{} did not answer within {}",
                self.inner,
                Shown(self.limit)
            ))),
        }
    }

    async fn plan(&self, request: &MountRequest<'_>) -> Result<MountPlan> {
        match tokio::time::timeout(self.limit, self.inner.plan(request)).await {
            Ok(result) => result,
            Err(_) => Ok(MountPlan::would_try(format!(
                "{} did not answer within {} while planning",
                self.inner,
                Shown(self.limit)
            ))),
        }
    }

    fn probes_destination(&self, request: &MountRequest<'_>) -> bool {
        self.inner.probes_destination(request)
    }
}

/// Which attempts a rest applies to: the schemes and authorities of the source and the
/// destination.
type Route = (String, String, String, String);

fn route(request: &MountRequest<'_>) -> Route {
    let (src, dst) = (request.source.info(), request.destination.info());
    (
        src.scheme.clone(),
        src.authority.clone(),
        dst.scheme.clone(),
        dst.authority.clone(),
    )
}

/// Leaves the inner strategy alone for a while after an attempt that could not reach what it
/// needs ([`MountOutcome::unreachable`]: no answer, a refused connection, a [`Timeout`]).
///
/// A rest applies to the pair of stores that met the failure, by their authorities (the same
/// registries or filesystems mean the same endpoints): while it lasts, attempts between them
/// are declined at once with the remembered reason, and
/// [`MountStrategy::probes_destination`] is false so the engine checks the destination
/// itself. Attempts between other stores go on. Clones share their rests; the time comes
/// from a [`Clock`] ([`SystemClock`] unless [`Resting::with_clock`] gives another).
#[derive(Debug, Clone)]
pub struct Resting<S> {
    inner: S,
    rest: Duration,
    clock: Arc<dyn Clock>,
    rests: Arc<Mutex<HashMap<Route, Rest>>>,
}

/// A rest: until when, why, and since when.
#[derive(Debug, Clone)]
struct Rest {
    since: Instant,
    until: Instant,
    reason: String,
}

impl<S> Resting<S> {
    /// `inner`, left alone for `rest` after an unreachable outcome.
    pub fn new(inner: S, rest: Duration) -> Self {
        Self {
            inner,
            rest,
            clock: Arc::new(SystemClock),
            rests: Arc::default(),
        }
    }

    /// Takes the time from `clock` (a [`ManualClock`] in tests).
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The wrapped strategy.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The rest in force for `route`, if any; an expired one is forgotten.
    fn resting(&self, route: &Route) -> Option<Rest> {
        let mut rests = self.rests.lock().expect("rests lock");
        let rest = rests.get(route)?;
        if self.clock.now() < rest.until {
            return Some(rest.clone());
        }
        rests.remove(route);
        None
    }
}

impl<S: Display> Display for Resting<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Resting({}, {})", Shown(self.rest), self.inner)
    }
}

#[async_trait]
impl<S: MountStrategy> MountStrategy for Resting<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn mount(&self, request: &MountRequest<'_>) -> Result<MountOutcome> {
        let route = route(request);
        if let Some(rest) = self.resting(&route) {
            let now = self.clock.now();
            return Ok(MountOutcome::declined(format!(
                "not asked again for {}: {} ({} ago)",
                Shown(Duration::from_secs(
                    rest.until.saturating_duration_since(now).as_secs().max(1)
                )),
                rest.reason,
                Shown(Duration::from_secs(
                    now.saturating_duration_since(rest.since).as_secs()
                )),
            )));
        }
        let outcome = self.inner.mount(request).await?;
        if let MountOutcome::Declined {
            reason,
            unreachable: true,
            ..
        } = &outcome
        {
            let since = self.clock.now();
            tracing::debug!(strategy = %self.inner, rest = %Shown(self.rest), %reason, "resting a strategy that could not reach what it needs");
            self.rests.lock().expect("rests lock").insert(
                route,
                Rest {
                    since,
                    until: since + self.rest,
                    reason: reason.clone(),
                },
            );
        }
        Ok(outcome)
    }

    /// A resting strategy would not be asked; else the inner strategy's plan.
    async fn plan(&self, request: &MountRequest<'_>) -> Result<MountPlan> {
        if let Some(rest) = self.resting(&route(request)) {
            return Ok(MountPlan::not_applicable(format!(
                "resting: {}",
                rest.reason
            )));
        }
        self.inner.plan(request).await
    }

    fn probes_destination(&self, request: &MountRequest<'_>) -> bool {
        self.inner.probes_destination(request) && self.resting(&route(request)).is_none()
    }
}

/// Traces every attempt of the inner strategy: a `mount` span (strategy, digest, source,
/// destination) around it, so the inner strategy's own events nest in it, and an event with
/// the outcome and the time taken.
#[derive(Debug, Clone)]
pub struct Traced<S> {
    inner: S,
}

impl<S> Traced<S> {
    /// `inner`, traced.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The wrapped strategy.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: Display> Display for Traced<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Traced({})", self.inner)
    }
}

#[async_trait]
impl<S: MountStrategy> MountStrategy for Traced<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn mount(&self, request: &MountRequest<'_>) -> Result<MountOutcome> {
        let span = tracing::debug_span!(
            "mount",
            strategy = %self.inner,
            digest = %request.descriptor.digest(),
            source = %request.source,
            destination = %request.destination,
        );
        let started = Instant::now();
        let result = self.inner.mount(request).instrument(span.clone()).await;
        let ms = started.elapsed().as_millis() as u64;
        let _entered = span.enter();
        match &result {
            Ok(outcome) => tracing::debug!(
                outcome = %outcome.kind(),
                reason = outcome.reason().unwrap_or_default(),
                ms,
                "mount attempt done"
            ),
            Err(e) => tracing::debug!(error = %e, ms, "mount attempt failed"),
        }
        result
    }

    async fn plan(&self, request: &MountRequest<'_>) -> Result<MountPlan> {
        let span = tracing::debug_span!(
            "plan",
            strategy = %self.inner,
            digest = %request.descriptor.digest(),
            source = %request.source,
            destination = %request.destination,
        );
        let result = self.inner.plan(request).instrument(span.clone()).await;
        let _entered = span.enter();
        match &result {
            Ok(plan) => tracing::debug!(plan = ?plan, "mount plan"),
            Err(e) => tracing::debug!(error = %e, "mount plan failed"),
        }
        result
    }

    fn probes_destination(&self, request: &MountRequest<'_>) -> bool {
        self.inner.probes_destination(request)
    }
}
