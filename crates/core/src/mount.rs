//! Mount strategies: ways for a destination to get a blob without the client streaming it.

use std::fmt::{Debug, Display};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use oci_spec::image::Descriptor;
use serde::Serialize;

use crate::error::Result;
use crate::locations::Location;
use crate::store::{ByteStream, ReadStore, WriteStore};

/// What a strategy is asked: bring `descriptor` to `destination`.
#[derive(Clone, Copy)]
pub struct MountRequest<'a> {
    /// The blob.
    pub descriptor: &'a Descriptor,
    /// Where the copy reads from.
    pub source: &'a dyn ReadStore,
    /// Where the blob must end up.
    pub destination: &'a dyn WriteStore,
    /// Other places the blob was seen (blob-location cache), most recent first.
    pub candidates: &'a [Location],
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

/// The result of one mount attempt. "Could not mount" is an outcome, never an error.
#[derive(Debug)]
pub enum MountOutcome {
    /// The destination now holds the blob.
    Mounted {
        /// The strategy that mounted it.
        by: String,
        /// Where it came from, for the user (`src/app`, `ipfs://bafk…`, a path).
        from: String,
    },
    /// The destination already held the blob.
    AlreadyPresent,
    /// The strategy cannot apply to this pair of stores or this blob.
    NotApplicable {
        /// Why, for the log and the report.
        reason: String,
    },
    /// The strategy applied but could not mount.
    Declined {
        /// Why, for the log and the report.
        reason: String,
        /// A write path the attempt left open, for the fallback copy.
        upload: Option<Box<dyn PreparedUpload>>,
    },
}

impl MountOutcome {
    /// [`MountOutcome::Mounted`] by the strategy named `by` (its [`MountStrategy::name`]),
    /// from `from` (shown to the user: `src/app`, a path, `ipfs://…`).
    pub fn mounted(by: impl Into<String>, from: impl Into<String>) -> Self {
        MountOutcome::Mounted {
            by: by.into(),
            from: from.into(),
        }
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
        }
    }

    /// A short word for the kind of outcome.
    pub fn kind(&self) -> &'static str {
        match self {
            MountOutcome::Mounted { .. } => "mounted",
            MountOutcome::AlreadyPresent => "already-present",
            MountOutcome::NotApplicable { .. } => "not-applicable",
            MountOutcome::Declined { .. } => "declined",
        }
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
}

/// One attempt of a chain, for the log and the report.
#[derive(Debug, Clone, Serialize)]
pub struct MountAttempt {
    /// The strategy's name.
    pub strategy: String,
    /// `mounted`, `already-present`, `not-applicable`, `declined` or `error`.
    pub outcome: &'static str,
    /// Where from, or why not.
    pub detail: String,
    /// How long the attempt took.
    #[serde(serialize_with = "crate::report::serialize_duration")]
    pub duration: Duration,
}

/// What a whole chain achieved for one blob.
#[derive(Debug)]
pub enum ChainOutcome {
    /// A strategy mounted the blob.
    Mounted {
        /// The strategy.
        by: String,
        /// Where from.
        from: String,
    },
    /// A strategy found the blob already at the destination.
    AlreadyPresent {
        /// The strategy that found it.
        by: String,
    },
    /// Nothing mounted; the blob must be streamed, into `upload` when one was prepared.
    Fallback {
        /// The write path left by the last strategy that prepared one.
        upload: Option<Box<dyn PreparedUpload>>,
    },
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
        for strategy in &self.strategies {
            let started = Instant::now();
            let result = strategy.mount(request).await;
            let duration = started.elapsed();
            let outcome = match result {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(strategy = strategy.name(), %digest, error = %e, "mount attempt failed");
                    attempts.push(MountAttempt {
                        strategy: strategy.name().to_string(),
                        outcome: "error",
                        detail: e.to_string(),
                        duration,
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
                outcome = outcome.kind(),
                detail = %detail,
                ms = duration.as_millis() as u64,
                "mount attempt"
            );
            attempts.push(MountAttempt {
                strategy: strategy.name().to_string(),
                outcome: outcome.kind(),
                detail,
                duration,
            });
            match outcome {
                MountOutcome::Mounted { by, from } => {
                    if let Some(p) = prepared.take() {
                        let _ = p.cancel().await;
                    }
                    return Ok((ChainOutcome::Mounted { by, from }, attempts));
                }
                MountOutcome::AlreadyPresent => {
                    if let Some(p) = prepared.take() {
                        let _ = p.cancel().await;
                    }
                    let by = strategy.name().to_string();
                    return Ok((ChainOutcome::AlreadyPresent { by }, attempts));
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
