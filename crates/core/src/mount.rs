//! Mount strategies: ways for a destination to get a blob without the client streaming it.

use std::fmt::{Debug, Display};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use oci_spec::image::Descriptor;
use serde::Serialize;

use crate::engine::EventSink;
use crate::error::Result;
use crate::locations::Location;
use crate::report::CopyEvent;
use crate::store::{ByteStream, ReadStore, WriteStore};

/// What a strategy is asked: bring `descriptor` to `destination`.
///
/// Built with [`MountRequest::new`] (and [`MountRequest::with_candidates`]); it is
/// `#[non_exhaustive]`, so fields can be added without breaking strategies that read it.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct MountRequest<'a> {
    /// The blob.
    pub descriptor: &'a Descriptor,
    /// Where the copy reads from.
    pub source: &'a dyn ReadStore,
    /// Where the blob must end up.
    pub destination: &'a dyn WriteStore,
    /// Other places the blob was seen (blob-location cache), most recent first.
    pub candidates: &'a [Location],
    /// Counts the bytes an attempt moves through this process; set by the engine.
    meter: Option<&'a Meter>,
}

impl<'a> MountRequest<'a> {
    /// A request to bring `descriptor` from `source` to `destination`, with no candidates.
    pub fn new(
        descriptor: &'a Descriptor,
        source: &'a dyn ReadStore,
        destination: &'a dyn WriteStore,
    ) -> Self {
        Self {
            descriptor,
            source,
            destination,
            candidates: &[],
            meter: None,
        }
    }

    /// The places the blob-location cache saw the blob, most recent first.
    pub fn with_candidates(mut self, candidates: &'a [Location]) -> Self {
        self.candidates = candidates;
        self
    }

    pub(crate) fn with_meter(mut self, meter: &'a Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Passes blob bytes that move through this process (fetched from somewhere and pushed to
    /// the destination) through the copy's accounting: they are counted in the report's
    /// `bytes` and reported as progress events. A strategy that streams a blob through the
    /// client wraps the stream it pushes with this; a request built outside the engine counts
    /// nothing and returns the stream as it is.
    pub fn count_bytes(&self, stream: ByteStream) -> ByteStream {
        match self.meter {
            Some(meter) => meter.count(stream),
            None => stream,
        }
    }
}

impl Debug for MountRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MountRequest")
            .field("digest", &self.descriptor.digest().to_string())
            .field("source", &self.source.info())
            .field("destination", &self.destination.info())
            .field("candidates", &self.candidates.len())
            .finish()
    }
}

/// The byte accounting of one node of a copy: every byte streamed through the client for it,
/// by the fallback copy or by a strategy, and the progress events they produce.
pub(crate) struct Meter {
    descriptor: Descriptor,
    bytes: Arc<AtomicU64>,
    sink: Option<EventSink>,
}

impl Meter {
    pub(crate) fn new(descriptor: &Descriptor, sink: Option<EventSink>) -> Self {
        Self {
            descriptor: descriptor.clone(),
            bytes: Arc::default(),
            sink,
        }
    }

    /// Every byte counted so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Counts the bytes of `stream`; with a sink, announces the transfer and reports its
    /// progress (at most every 50 ms, and at the end).
    pub(crate) fn count(&self, stream: ByteStream) -> ByteStream {
        let bytes = self.bytes.clone();
        let Some(sink) = self.sink.clone() else {
            return Box::pin(stream.inspect(move |chunk| {
                if let Ok(c) = chunk {
                    bytes.fetch_add(c.len() as u64, Ordering::Relaxed);
                }
            }));
        };
        sink(&CopyEvent::Copying(self.descriptor.clone()));
        let descriptor = self.descriptor.clone();
        let total = descriptor.size();
        let mut done = 0u64;
        let mut last = Instant::now() - PROGRESS_INTERVAL;
        Box::pin(stream.inspect(move |chunk| {
            if let Ok(c) = chunk {
                bytes.fetch_add(c.len() as u64, Ordering::Relaxed);
                done += c.len() as u64;
                if done == total || last.elapsed() >= PROGRESS_INTERVAL {
                    last = Instant::now();
                    sink(&CopyEvent::Bytes {
                        descriptor: descriptor.clone(),
                        done,
                        total,
                    });
                }
            }
        }))
    }
}

/// The shortest time between two progress events of one transfer.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(50);

/// A write path left open by a mount attempt (an OCI upload session a registry opened when it
/// answered a mount with 202). The engine streams the fallback copy into it, so a failed mount
/// costs no extra request.
#[async_trait]
pub trait PreparedUpload: Debug + Send + Sync {
    /// Streams `data` into the prepared path and commits it as `descriptor`. Commits only
    /// content whose size and digest match.
    async fn upload(self: Box<Self>, descriptor: &Descriptor, data: ByteStream) -> Result<()>;

    /// Abandons the prepared path (cancels the upload session).
    async fn cancel(self: Box<Self>) -> Result<()>;
}

/// How a strategy brought a blob to the destination, for the report and the output.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MountMethod {
    /// The registry linked the blob from another of its repositories (the OCI
    /// cross-repository mount).
    CrossRepository,
    /// A copy-on-write clone of the blob's file.
    Reflink,
    /// A hardlink to the blob's file.
    Hardlink,
    /// A copy made by the storage service itself (`CopyObject`).
    ServerSideCopy,
    /// The data was in the destination's storage already; only the repository's link to it
    /// was written.
    LinkOnly,
    /// The client fetched the blob from an address (an `ipfs://` URL) rather than from the
    /// source, and pushed it.
    FetchedFromAddress,
    /// The destination fetched the blob from an address by itself
    /// ([`crate::FetchFromAddress`]).
    FetchedByDestination,
    /// Any other way, named by the strategy (a vendor API's link, for instance).
    Other(String),
}

impl MountMethod {
    /// A method of a strategy's own, such as `admin link`.
    pub fn other(name: impl Into<String>) -> Self {
        MountMethod::Other(name.into())
    }

    /// A stable identifier, as the JSON report writes it (`hardlink`, `server-side-copy`).
    pub fn id(&self) -> &str {
        match self {
            MountMethod::CrossRepository => "cross-repository",
            MountMethod::Reflink => "reflink",
            MountMethod::Hardlink => "hardlink",
            MountMethod::ServerSideCopy => "server-side-copy",
            MountMethod::LinkOnly => "link-only",
            MountMethod::FetchedFromAddress => "fetched-from-address",
            MountMethod::FetchedByDestination => "fetched-by-destination",
            MountMethod::Other(name) => name,
        }
    }
}

impl Display for MountMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MountMethod::CrossRepository => "cross-repository mount",
            MountMethod::Reflink => "reflink",
            MountMethod::Hardlink => "hardlink",
            MountMethod::ServerSideCopy => "server-side copy",
            MountMethod::LinkOnly => "link only",
            MountMethod::FetchedFromAddress => "fetched from address",
            MountMethod::FetchedByDestination => "fetched by the destination",
            MountMethod::Other(name) => name,
        })
    }
}

impl Serialize for MountMethod {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

/// The result of one mount attempt. "Could not mount" is an outcome, never an error.
///
/// Built with its constructors ([`MountOutcome::mounted`], [`MountOutcome::not_applicable`],
/// [`MountOutcome::declined`], [`MountOutcome::unreachable`], …); the enum and its variants
/// are `#[non_exhaustive]`, so match with `..` and a wildcard arm.
#[derive(Debug)]
#[non_exhaustive]
pub enum MountOutcome {
    /// The destination now holds the blob.
    #[non_exhaustive]
    Mounted {
        /// Where it came from, for the user (`src/app`, `ipfs://bafk…`, a path).
        from: String,
        /// How it got there.
        method: MountMethod,
        /// Places the strategy tried first whose copy of the blob failed verification (the
        /// source's file or storage, a cached location): the blob came from `from` instead.
        corrupt: Vec<CorruptLocation>,
    },
    /// The destination already held the blob.
    AlreadyPresent,
    /// The strategy cannot apply to this pair of stores or this blob.
    #[non_exhaustive]
    NotApplicable {
        /// Why, for the log and the report.
        reason: String,
    },
    /// The strategy applied but could not mount.
    #[non_exhaustive]
    Declined {
        /// Why, for the log and the report.
        reason: String,
        /// A write path the attempt left open, for the fallback copy.
        upload: Option<Box<dyn PreparedUpload>>,
        /// Whether the strategy could not reach what it needs (an endpoint that did not
        /// answer, storage that could not be reached), as opposed to being refused: a
        /// [`Resting`](crate::layer::Resting) layer leaves the strategy alone for a while
        /// after such an attempt.
        unreachable: bool,
    },
}

impl MountOutcome {
    /// [`MountOutcome::Mounted`]: the blob came from `from` (shown to the user: `src/app`, a
    /// path, `ipfs://…`) by `method`. The chain records which strategy it was.
    pub fn mounted(from: impl Into<String>, method: MountMethod) -> Self {
        MountOutcome::Mounted {
            from: from.into(),
            method,
            corrupt: Vec::new(),
        }
    }

    /// Records, on a [`MountOutcome::Mounted`], the places tried first whose copy of the blob
    /// failed verification; the copy reports them as warnings. Any other outcome is returned
    /// unchanged.
    pub fn with_corrupt(mut self, locations: Vec<CorruptLocation>) -> Self {
        if let MountOutcome::Mounted { corrupt, .. } = &mut self {
            corrupt.extend(locations);
        }
        self
    }

    /// [`MountOutcome::NotApplicable`] with a reason.
    pub fn not_applicable(reason: impl Into<String>) -> Self {
        MountOutcome::NotApplicable {
            reason: reason.into(),
        }
    }

    /// [`MountOutcome::Declined`] with a reason and no prepared upload.
    pub fn declined(reason: impl Into<String>) -> Self {
        MountOutcome::Declined {
            reason: reason.into(),
            upload: None,
            unreachable: false,
        }
    }

    /// [`MountOutcome::Declined`] with a reason and the write path the attempt left open
    /// (see [`PreparedUpload`]).
    pub fn declined_with_upload(
        reason: impl Into<String>,
        upload: Box<dyn PreparedUpload>,
    ) -> Self {
        MountOutcome::Declined {
            reason: reason.into(),
            upload: Some(upload),
            unreachable: false,
        }
    }

    /// [`MountOutcome::Declined`] because the strategy could not reach what it needs (no
    /// answer, a connection refused, a timeout).
    pub fn unreachable(reason: impl Into<String>) -> Self {
        MountOutcome::Declined {
            reason: reason.into(),
            upload: None,
            unreachable: true,
        }
    }

    /// The kind of outcome, as the report records it.
    pub fn kind(&self) -> AttemptOutcome {
        match self {
            MountOutcome::Mounted { .. } => AttemptOutcome::Mounted,
            MountOutcome::AlreadyPresent => AttemptOutcome::AlreadyPresent,
            MountOutcome::NotApplicable { .. } => AttemptOutcome::NotApplicable,
            MountOutcome::Declined { .. } => AttemptOutcome::Declined,
        }
    }

    /// The reason of a [`MountOutcome::NotApplicable`] or [`MountOutcome::Declined`].
    pub fn reason(&self) -> Option<&str> {
        match self {
            MountOutcome::NotApplicable { reason } | MountOutcome::Declined { reason, .. } => {
                Some(reason)
            }
            _ => None,
        }
    }

    /// Whether this is a [`MountOutcome::Declined`] marked unreachable.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            MountOutcome::Declined {
                unreachable: true,
                ..
            }
        )
    }
}

/// A way for a destination to obtain a blob without the client streaming it from the source.
///
/// Implementations must leave the destination unchanged unless they return
/// [`MountOutcome::Mounted`] (with exactly the blob's bytes committed) or
/// [`MountOutcome::AlreadyPresent`], and must leave no partial blob behind when their future
/// is dropped.
#[async_trait]
pub trait MountStrategy: Display + Debug + Send + Sync {
    /// A short, stable name (`cross-repo`, `hardlink`, `ipfs`), shown in the output.
    fn name(&self) -> &str;

    /// Tries to bring the blob to the destination.
    async fn mount(&self, request: &MountRequest<'_>) -> Result<MountOutcome>;

    /// Whether an attempt on `request` also tells whether the destination already holds the
    /// blob (an OCI mount answers 201 for a blob the repository has). When some strategy of the
    /// chain says so, the engine skips its own existence check, saving a request per blob.
    fn probes_destination(&self, _request: &MountRequest<'_>) -> bool {
        false
    }

    /// What [`MountStrategy::mount`] would do with `request`, found out with reads only: a
    /// plan (a dry run) must not write anything anywhere, at the destination least of all
    /// (no upload session, no link, no directory, no file).
    ///
    /// The default is [`MountPlan::WouldTry`]: the strategy cannot tell without trying. A
    /// strategy that can tell from what it can read (a stat, a `HEAD`, the blob-location
    /// cache) says [`MountPlan::WouldMount`], [`MountPlan::AlreadyPresent`] or
    /// [`MountPlan::NotApplicable`].
    async fn plan(&self, _request: &MountRequest<'_>) -> Result<MountPlan> {
        Ok(MountPlan::would_try("cannot tell without trying"))
    }
}

/// What a strategy expects [`MountStrategy::mount`] would give, found out without writing
/// (see [`MountStrategy::plan`]).
///
/// Built with its constructors; the enum and its variants are `#[non_exhaustive]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MountPlan {
    /// The strategy expects to mount the blob.
    #[non_exhaustive]
    WouldMount {
        /// Where from, as a mount would report it (`src/app`, a path, `ipfs://…`).
        from: String,
        /// How.
        method: MountMethod,
    },
    /// The strategy found the blob at the destination already.
    AlreadyPresent,
    /// The strategy would try, but cannot tell without writing whether it would mount.
    #[non_exhaustive]
    WouldTry {
        /// What it would try, or why it cannot tell.
        reason: String,
    },
    /// The strategy would not apply (or would decline), for this reason.
    #[non_exhaustive]
    NotApplicable {
        /// Why.
        reason: String,
    },
}

impl MountPlan {
    /// [`MountPlan::WouldMount`] from `from` by `method`.
    pub fn would_mount(from: impl Into<String>, method: MountMethod) -> Self {
        MountPlan::WouldMount {
            from: from.into(),
            method,
        }
    }

    /// [`MountPlan::WouldTry`] with what would be tried.
    pub fn would_try(reason: impl Into<String>) -> Self {
        MountPlan::WouldTry {
            reason: reason.into(),
        }
    }

    /// [`MountPlan::NotApplicable`] with a reason.
    pub fn not_applicable(reason: impl Into<String>) -> Self {
        MountPlan::NotApplicable {
            reason: reason.into(),
        }
    }
}

/// A place whose copy of a blob failed verification (wrong size or digest) while a strategy
/// looked for the blob, which it then took from elsewhere. The copy succeeds; the report and
/// `ferry cp` warn about the corrupt place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CorruptLocation {
    /// The place, as the strategy names it (a layout's path, `registry/repository`).
    pub location: String,
    /// Whether it is the copy's source (rather than another place the blob-location cache
    /// named).
    pub is_source: bool,
    /// What was wrong with it.
    pub reason: String,
}

impl CorruptLocation {
    /// The copy at `location` failed verification for `reason`; `is_source` when it is the
    /// copy's source.
    pub fn new(location: impl Into<String>, is_source: bool, reason: impl Into<String>) -> Self {
        Self {
            location: location.into(),
            is_source,
            reason: reason.into(),
        }
    }
}

/// What one attempt of a chain gave, as the report records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// The strategy mounted the blob.
    Mounted,
    /// The strategy found the blob at the destination.
    AlreadyPresent,
    /// The strategy did not apply.
    NotApplicable,
    /// The strategy applied but could not mount.
    Declined,
    /// The strategy failed, and the chain with it.
    Error,
}

impl AttemptOutcome {
    /// `mounted`, `already-present`, `not-applicable`, `declined` or `error`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AttemptOutcome::Mounted => "mounted",
            AttemptOutcome::AlreadyPresent => "already-present",
            AttemptOutcome::NotApplicable => "not-applicable",
            AttemptOutcome::Declined => "declined",
            AttemptOutcome::Error => "error",
        }
    }
}

impl Display for AttemptOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One attempt of a chain, for the log and the report.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MountAttempt {
    /// The strategy's name.
    pub strategy: String,
    /// What the attempt gave.
    pub outcome: AttemptOutcome,
    /// Where from, or why not.
    pub detail: String,
    /// How long the attempt took.
    #[serde(serialize_with = "crate::report::serialize_duration")]
    pub duration: Duration,
    /// Bytes the attempt moved through the client (a blob fetched from an address and
    /// pushed).
    #[serde(skip_serializing_if = "is_zero")]
    pub bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a whole chain achieved for one blob.
#[derive(Debug)]
#[non_exhaustive]
pub enum ChainOutcome {
    /// A strategy mounted the blob.
    Mounted {
        /// The strategy's name.
        strategy: String,
        /// Where from.
        from: String,
        /// How.
        method: MountMethod,
        /// Places tried first whose copy failed verification.
        corrupt: Vec<CorruptLocation>,
    },
    /// A strategy found the blob already at the destination.
    AlreadyPresent {
        /// The strategy's name.
        strategy: String,
    },
    /// Nothing mounted; the blob must be streamed, into `upload` when one was prepared.
    Fallback {
        /// The write path left by the last strategy that prepared one.
        upload: Option<Box<dyn PreparedUpload>>,
    },
}

/// What a whole chain expects for one blob (see [`MountChain::plan`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainPlan {
    /// A strategy expects to mount the blob.
    WouldMount {
        /// The strategy's name.
        strategy: String,
        /// Where from.
        from: String,
        /// How.
        method: MountMethod,
    },
    /// A strategy found the blob at the destination.
    AlreadyPresent {
        /// The strategy's name.
        strategy: String,
    },
    /// No strategy can tell; the first that would try is named. The blob is streamed if it
    /// does not mount.
    WouldTry {
        /// The strategy's name.
        strategy: String,
        /// What it would try.
        reason: String,
    },
    /// No strategy applies: the blob would be streamed.
    Copy,
}

/// An ordered list of strategies, built at run time, tried in turn until one mounts.
#[derive(Clone, Default)]
pub struct MountChain {
    strategies: Vec<Arc<dyn MountStrategy>>,
}

impl MountChain {
    /// An empty chain: every blob is streamed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a strategy.
    pub fn with(mut self, strategy: impl MountStrategy + 'static) -> Self {
        self.strategies.push(Arc::new(strategy));
        self
    }

    /// Appends a shared strategy.
    pub fn push(&mut self, strategy: Arc<dyn MountStrategy>) {
        self.strategies.push(strategy);
    }

    /// The strategies, in order.
    pub fn strategies(&self) -> &[Arc<dyn MountStrategy>] {
        &self.strategies
    }

    /// Whether the chain has no strategy.
    pub fn is_empty(&self) -> bool {
        self.strategies.is_empty()
    }

    /// Whether some strategy's attempt on `request` also probes the destination.
    pub fn probes_destination(&self, request: &MountRequest<'_>) -> bool {
        self.strategies
            .iter()
            .any(|s| s.probes_destination(request))
    }

    /// Asks each strategy in order what it would do ([`MountStrategy::plan`], reads only):
    /// the first that would mount the blob or finds it present decides; else the first that
    /// would try is named; else the blob would be streamed. An `Err` from a strategy's plan
    /// is logged and taken as "would try" (the copy would try it and see).
    pub async fn plan(&self, request: &MountRequest<'_>) -> ChainPlan {
        let digest = request.descriptor.digest();
        let mut first_try: Option<ChainPlan> = None;
        for strategy in &self.strategies {
            let plan = match strategy.plan(request).await {
                Ok(plan) => plan,
                Err(e) => MountPlan::would_try(format!("planning failed: {e}")),
            };
            tracing::debug!(strategy = strategy.name(), %digest, plan = ?plan, "mount plan");
            let name = strategy.name().to_string();
            match plan {
                MountPlan::WouldMount { from, method } => {
                    return ChainPlan::WouldMount {
                        strategy: name,
                        from,
                        method,
                    };
                }
                MountPlan::AlreadyPresent => return ChainPlan::AlreadyPresent { strategy: name },
                MountPlan::WouldTry { reason } => {
                    first_try.get_or_insert(ChainPlan::WouldTry {
                        strategy: name,
                        reason,
                    });
                }
                MountPlan::NotApplicable { .. } => {}
            }
        }
        first_try.unwrap_or(ChainPlan::Copy)
    }

    /// Tries each strategy in order. Returns what the chain achieved and every attempt.
    ///
    /// A prepared upload left by a strategy is kept for the fallback copy; one left by an
    /// earlier strategy is cancelled when a later one prepares another or mounts. An `Err` from
    /// a strategy ends the chain and is returned: strategies report "could not" as outcomes.
    pub async fn mount(
        &self,
        request: &MountRequest<'_>,
    ) -> Result<(ChainOutcome, Vec<MountAttempt>)> {
        let mut attempts = Vec::with_capacity(self.strategies.len());
        let mut prepared: Option<Box<dyn PreparedUpload>> = None;
        let digest = request.descriptor.digest();
        let counted = || request.meter.map_or(0, Meter::bytes);
        for strategy in &self.strategies {
            let started = Instant::now();
            let bytes_before = counted();
            let result = strategy.mount(request).await;
            let duration = started.elapsed();
            let bytes = counted() - bytes_before;
            let outcome = match result {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(strategy = strategy.name(), %digest, error = %e, "mount attempt failed");
                    attempts.push(MountAttempt {
                        strategy: strategy.name().to_string(),
                        outcome: AttemptOutcome::Error,
                        detail: e.to_string(),
                        duration,
                        bytes,
                    });
                    if let Some(p) = prepared.take() {
                        let _ = p.cancel().await;
                    }
                    return Err(e);
                }
            };
            let detail = match &outcome {
                MountOutcome::Mounted { from, .. } => from.clone(),
                MountOutcome::AlreadyPresent => String::new(),
                MountOutcome::NotApplicable { reason } | MountOutcome::Declined { reason, .. } => {
                    reason.clone()
                }
            };
            tracing::debug!(
                strategy = strategy.name(),
                %digest,
                outcome = %outcome.kind(),
                detail = %detail,
                ms = duration.as_millis() as u64,
                "mount attempt"
            );
            attempts.push(MountAttempt {
                strategy: strategy.name().to_string(),
                outcome: outcome.kind(),
                detail,
                duration,
                bytes,
            });
            match outcome {
                MountOutcome::Mounted {
                    from,
                    method,
                    corrupt,
                } => {
                    if let Some(p) = prepared.take() {
                        let _ = p.cancel().await;
                    }
                    let strategy = strategy.name().to_string();
                    return Ok((
                        ChainOutcome::Mounted {
                            strategy,
                            from,
                            method,
                            corrupt,
                        },
                        attempts,
                    ));
                }
                MountOutcome::AlreadyPresent => {
                    if let Some(p) = prepared.take() {
                        let _ = p.cancel().await;
                    }
                    let strategy = strategy.name().to_string();
                    return Ok((ChainOutcome::AlreadyPresent { strategy }, attempts));
                }
                MountOutcome::NotApplicable { .. } => {}
                MountOutcome::Declined { upload, .. } => {
                    if let Some(new) = upload
                        && let Some(old) = prepared.replace(new)
                    {
                        let _ = old.cancel().await;
                    }
                }
            }
        }
        Ok((ChainOutcome::Fallback { upload: prepared }, attempts))
    }
}

impl Display for MountChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MountChain[")?;
        for (i, s) in self.strategies.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{s}")?;
        }
        f.write_str("]")
    }
}

impl Debug for MountChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.strategies.iter()).finish()
    }
}
