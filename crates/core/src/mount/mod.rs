//! Mount strategies: ways for a destination to get a blob without the client streaming it.

mod chain;
mod factory;
mod meter;

use std::fmt::{Debug, Display};

use async_trait::async_trait;
use oci_spec::image::Descriptor;
use serde::Serialize;

pub use chain::{ChainOutcome, ChainPlan, MountChain};
pub use factory::{Setting, StrategyConfig, StrategyFactories, StrategyFactory};
pub(crate) use meter::Meter;

use crate::error::Result;
use crate::locations::Location;
use crate::report::{AttemptOutcome, MountMethod};
use crate::store::{ByteStream, PreparedUpload, ReadStore, WriteStore};

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
        /// Where it came from: a repository, a layout, another registry's storage, an IPFS
        /// address.
        from: Location,
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
    /// [`MountOutcome::Mounted`]: the blob came from `from` (a [`StoreInfo`](crate::StoreInfo)
    /// converts) by `method`. The chain records which strategy it was.
    pub fn mounted(from: impl Into<Location>, method: MountMethod) -> Self {
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
        /// Where from, as a mount would report it.
        from: Location,
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
    pub fn would_mount(from: impl Into<Location>, method: MountMethod) -> Self {
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
    /// The place.
    pub location: Location,
    /// Whether it is the copy's source (rather than another place the blob-location cache
    /// named).
    pub is_source: bool,
    /// What was wrong with it.
    pub reason: String,
}

impl CorruptLocation {
    /// The copy at `location` failed verification for `reason`; `is_source` when it is the
    /// copy's source.
    pub fn new(location: impl Into<Location>, is_source: bool, reason: impl Into<String>) -> Self {
        Self {
            location: location.into(),
            is_source,
            reason: reason.into(),
        }
    }
}
