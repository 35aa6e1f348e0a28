//! How a copy runs.

use std::sync::Arc;

use crate::locations::{BlobLocations, InMemoryLocations};
use crate::model::{self, PlatformFilter};
use crate::mount::MountChain;
use crate::report::{CopyEvent, EventSink};
use crate::retry::RetryPolicy;
use crate::stop::Stop;
use crate::transfers::BlobTransfers;

/// How a copy runs.
///
/// Built from [`CopyOptions::default`] with the `with_…` methods; it is `#[non_exhaustive]`,
/// so options can be added without breaking callers.
///
/// ```
/// # use ferry_core::{CopyOptions, MountChain};
/// let options = CopyOptions::default()
///     .with_chain(MountChain::new())
///     .with_concurrency(4)
///     .with_referrers(true);
/// assert_eq!(options.concurrency, 4);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct CopyOptions {
    /// The strategies asked before any blob is streamed. Empty: stream everything.
    pub chain: MountChain,
    /// Where blobs were seen; filled by this copy and asked by strategies.
    pub locations: Arc<dyn BlobLocations>,
    /// How many requests or transfers run at once (at least 1).
    pub concurrency: usize,
    /// The largest manifest accepted, in bytes.
    pub manifest_limit: u64,
    /// Copy only this platform's manifest out of an index at the root.
    pub platform: Option<PlatformFilter>,
    /// Report the plan and write nothing.
    pub dry_run: bool,
    /// Also copy the referrers (signatures, SBOMs, attestations) of every manifest copied.
    pub referrers: bool,
    /// Receives progress events.
    pub on_event: Option<EventSink>,
    /// The caller knows the destination lacks the root (a sync whose listing of the
    /// destination's tags does not name the tag): the root's existence is not checked, saving
    /// a request per copy. Were it there after all, the copy walks its children (found
    /// present) and pushes it again, which is harmless.
    pub root_absent: bool,
    /// The blob transfers of a run of many copies (a sync), shared by all of them: a blob
    /// another copy is bringing to the same destination authority is waited for and then
    /// mounted, not streamed again. `None`: this copy alone.
    pub transfers: Option<Arc<BlobTransfers>>,
    /// When a step that failed in a way that may pass (a blob transfer cut on the way, a
    /// registry's `503`) is tried again.
    pub retry: RetryPolicy,
    /// Pulled to stop the copy: at [`StopLevel::Drain`](crate::StopLevel::Drain) no new blob
    /// starts and no manifest is pushed (so no tag is written); the caller drops the copy's
    /// future when it will wait no longer.
    pub stop: Stop,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            chain: MountChain::new(),
            locations: Arc::new(InMemoryLocations::new()),
            concurrency: 8,
            manifest_limit: model::DEFAULT_MANIFEST_LIMIT,
            platform: None,
            dry_run: false,
            referrers: false,
            on_event: None,
            root_absent: false,
            transfers: None,
            retry: RetryPolicy::default(),
            stop: Stop::new(),
        }
    }
}

impl CopyOptions {
    /// The strategies asked before any blob is streamed.
    pub fn with_chain(mut self, chain: MountChain) -> Self {
        self.chain = chain;
        self
    }

    /// Where blobs were seen, filled by this copy and asked by strategies (an in-memory
    /// record by default; `ferry_cache::PersistentLocations` keeps it
    /// between runs).
    pub fn with_locations(mut self, locations: Arc<dyn BlobLocations>) -> Self {
        self.locations = locations;
        self
    }

    /// How many transfers run at once (at least 1; 8 by default).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// The largest manifest accepted, in bytes (4 MiB by default).
    pub fn with_manifest_limit(mut self, limit: u64) -> Self {
        self.manifest_limit = limit;
        self
    }

    /// Copies only this platform's manifest out of an index at the root.
    pub fn with_platform(mut self, platform: Option<PlatformFilter>) -> Self {
        self.platform = platform;
        self
    }

    /// Reports the plan and writes nothing.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Also copies the referrers (signatures, SBOMs, attestations) of every manifest copied.
    pub fn with_referrers(mut self, referrers: bool) -> Self {
        self.referrers = referrers;
        self
    }

    /// Delivers progress events to `sink` as the copy runs.
    pub fn on_event(mut self, sink: impl Fn(&CopyEvent) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(sink));
        self
    }

    /// Tells that the destination lacks the root (see [`CopyOptions::root_absent`]).
    pub fn with_root_absent(mut self, root_absent: bool) -> Self {
        self.root_absent = root_absent;
        self
    }

    /// Shares the blob transfers of a run of many copies (see [`CopyOptions::transfers`]).
    pub fn with_transfers(mut self, transfers: Arc<BlobTransfers>) -> Self {
        self.transfers = Some(transfers);
        self
    }

    /// Sets when failed steps are tried again ([`RetryPolicy::default`] by default).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the handle that stops the copy (see [`CopyOptions::stop`]).
    pub fn with_stop(mut self, stop: Stop) -> Self {
        self.stop = stop;
        self
    }
}

impl std::fmt::Debug for CopyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyOptions")
            .field("chain", &self.chain.to_string())
            .field("concurrency", &self.concurrency)
            .field("manifest_limit", &self.manifest_limit)
            .field("platform", &self.platform)
            .field("dry_run", &self.dry_run)
            .field("referrers", &self.referrers)
            .field("transfers", &self.transfers.is_some())
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}
