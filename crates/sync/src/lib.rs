//! ferry-sync: many copies planned and run as one.
//!
//! A sync enumerates its sources (the tags of one store, or every store of a [`Catalog`]
//! under a prefix, page by page), filters the tags ([`TagFilter`]), compares each with the
//! destination by digest (one listing of the destination's tags per repository, then a
//! resolve of the source tag and of the destination tag, which a registry answers to a
//! `HEAD`: never a `GET` to compare), and copies what changed with the copy engine. Every
//! copy of the run shares one [`BlobLocations`] and one [`BlobTransfers`], so a blob that
//! many repositories need is read from the source and streamed into a destination authority
//! once, and mounted everywhere else.
//!
//! Images run concurrently ([`SyncOptions::images`]), while later repositories are still
//! being listed; each copy pushes children before parents and the tag last, so an image that
//! fails or is stopped leaves its destination tag as it was. A failed image does not stop the
//! others unless [`SyncOptions::fail_fast`]. [`Stop`] stops a sync gently (no new image, the
//! images in flight get [`SyncOptions::grace`]) or at once. With [`SyncEntry::prune`],
//! destination tags that the filtered source no longer has are deleted at the end, unless the
//! source listing was incomplete, the run was stopped, or there are more than
//! [`SyncEntry::prune_max`] of them.
//!
//! ```no_run
//! # async fn demo(
//! #     src: std::sync::Arc<dyn ferry_core::Catalog>,
//! #     dst: std::sync::Arc<dyn ferry_core::Catalog>,
//! # ) -> ferry_core::Result<()> {
//! use ferry_sync::{sync, SyncEntry, SyncOptions, SyncSource, TagFilter};
//!
//! let entry = SyncEntry::new(SyncSource::Catalog {
//!     source: src,
//!     source_prefix: "team/".into(),
//!     destination: dst,
//!     destination_prefix: "mirror/team/".into(),
//! })
//! .with_filter(TagFilter::new().semver(">=1.0")?.latest(3));
//! let report = sync(vec![entry], SyncOptions::default()).await;
//! for image in &report.images {
//!     println!("{} {}", image.outcome.verb(), image.destination_ref());
//! }
//! # Ok(()) }
//! ```

pub mod backup;
pub mod filter;
pub mod report;
mod runner;
pub mod schedule;
pub mod shard;

use std::sync::Arc;
use std::time::Duration;

pub use backup::BackupTemplate;
pub use ferry_core::stop::{Stop, StopLevel};
pub use filter::{
    FilteredBy, Selection, TagFilter, TagPatterns, parse_semver, referrers_tag_subject,
};
pub use report::{FailureKind, ImageReport, Outcome, SyncEvent, SyncReport, Totals};
pub use runner::sync;
pub use schedule::Schedule;
pub use shard::{Shard, fnv1a64, shard_of};

use ferry_core::catalog::Catalog;
use ferry_core::engine::CopyOptions;
use ferry_core::locations::{BlobLocations, InMemoryLocations};
use ferry_core::store::{ReadStore, WriteStore};
use ferry_core::transfers::BlobTransfers;

/// The default grace period for images in flight after a gentle stop: inside the 30 s
/// Kubernetes gives a pod between SIGTERM and SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(25);

/// The default [`SyncEntry::prune_max`].
pub const DEFAULT_PRUNE_MAX: usize = 10;

/// What an entry syncs from and to.
#[derive(Clone)]
pub enum SyncSource {
    /// Every tag of one store into one store.
    Store {
        /// The source repository's path, for sharding and the report (`team/app`).
        name: String,
        /// The source.
        source: Arc<dyn ReadStore>,
        /// The destination.
        destination: Arc<dyn WriteStore>,
    },
    /// Every store of `source` whose name starts with `source_prefix`, each into the store
    /// of `destination` named `destination_prefix` + the rest of its name.
    Catalog {
        /// The source catalog.
        source: Arc<dyn Catalog>,
        /// Empty, or ending in `/`.
        source_prefix: String,
        /// The destination catalog.
        destination: Arc<dyn Catalog>,
        /// Empty, or ending in `/`.
        destination_prefix: String,
    },
}

impl std::fmt::Debug for SyncSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncSource::Store {
                name,
                source,
                destination,
            } => f
                .debug_struct("Store")
                .field("name", name)
                .field("source", &source.to_string())
                .field("destination", &destination.to_string())
                .finish(),
            SyncSource::Catalog {
                source,
                source_prefix,
                destination,
                destination_prefix,
            } => f
                .debug_struct("Catalog")
                .field("source", &source.to_string())
                .field("source_prefix", source_prefix)
                .field("destination", &destination.to_string())
                .field("destination_prefix", destination_prefix)
                .finish(),
        }
    }
}

/// One source and destination with its filters: a `[[sync]]` entry, or `SRC DST`.
///
/// Built with [`SyncEntry::new`] and the `with_` methods; its fields may be read and set, and
/// fields may be added in a minor release.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SyncEntry {
    /// From where to where.
    pub source: SyncSource,
    /// Which tags.
    pub filter: TagFilter,
    /// Tags taken as unchanged, without asking the source, when the destination has them.
    pub immutable: TagPatterns,
    /// Delete destination tags the filter manages that the filtered source no longer has.
    pub prune: bool,
    /// The most tags pruning may delete in this entry; with more, it deletes none.
    pub prune_max: usize,
    /// How each image is copied: mount chain, concurrency, platform, referrers, manifest
    /// limit. Its locations, transfers, events and dry run are the run's.
    pub copy: CopyOptions,
    /// Before a destination tag is overwritten (its source tag moved) or pruned, its manifest
    /// is tagged with a name made from this template ([`BackupTemplate`]); tags it can make
    /// are never pruned.
    pub backup: Option<BackupTemplate>,
}

impl SyncEntry {
    /// An entry taking every tag, without pruning, copying with the default options.
    pub fn new(source: SyncSource) -> Self {
        Self {
            source,
            filter: TagFilter::new(),
            immutable: TagPatterns::new(),
            prune: false,
            prune_max: DEFAULT_PRUNE_MAX,
            copy: CopyOptions::default(),
            backup: None,
        }
    }

    /// Sets the tag filter.
    pub fn with_filter(mut self, filter: TagFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Sets the copy options (mount chain, concurrency, platform, referrers).
    pub fn with_copy(mut self, copy: CopyOptions) -> Self {
        self.copy = copy;
        self
    }

    /// Sets the immutable tags.
    pub fn with_immutable(mut self, immutable: TagPatterns) -> Self {
        self.immutable = immutable;
        self
    }

    /// Backs up destination tags before they are overwritten or pruned, as `template` names
    /// the backups.
    pub fn with_backup(mut self, template: BackupTemplate) -> Self {
        self.backup = Some(template);
        self
    }

    /// Turns pruning on, deleting at most `max` tags.
    pub fn with_prune(mut self, max: usize) -> Self {
        self.prune = true;
        self.prune_max = max;
        self
    }
}

/// A callback receiving [`SyncEvent`]s.
pub type SyncEventSink = Arc<dyn Fn(&SyncEvent) + Send + Sync>;

/// How a sync runs.
///
/// Built from [`SyncOptions::default`] with the `with_` methods; its fields may be read and
/// set, and fields may be added in a minor release.
#[derive(Clone)]
#[non_exhaustive]
pub struct SyncOptions {
    /// Images copied at once (at least 1).
    pub images: usize,
    /// Tags compared at once (resolves of the source and destination tags; at least 1).
    pub checks: usize,
    /// Repositories listed at once (at least 1).
    pub listings: usize,
    /// Stop starting images after the first failure.
    pub fail_fast: bool,
    /// Report what would be copied and pruned; write nothing.
    pub dry_run: bool,
    /// Take only the repositories of this shard.
    pub shard: Option<Shard>,
    /// How long images in flight may take to finish after a gentle stop.
    pub grace: Duration,
    /// Pulled to stop the sync.
    pub stop: Stop,
    /// Where blobs were seen: shared by every copy of the run, asked by mount strategies.
    pub locations: Arc<dyn BlobLocations>,
    /// The run's blob transfers, shared by every copy.
    pub transfers: Arc<BlobTransfers>,
    /// Receives progress events.
    pub on_event: Option<SyncEventSink>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            images: 8,
            checks: 16,
            listings: 4,
            fail_fast: false,
            dry_run: false,
            shard: None,
            grace: DEFAULT_GRACE,
            stop: Stop::new(),
            locations: Arc::new(InMemoryLocations::new()),
            transfers: Arc::new(BlobTransfers::new()),
            on_event: None,
        }
    }
}

impl SyncOptions {
    /// Sets the images copied at once (at least 1).
    pub fn with_images(mut self, images: usize) -> Self {
        self.images = images;
        self
    }

    /// Sets the tags compared at once (at least 1).
    pub fn with_checks(mut self, checks: usize) -> Self {
        self.checks = checks;
        self
    }

    /// Sets the repositories listed at once (at least 1).
    pub fn with_listings(mut self, listings: usize) -> Self {
        self.listings = listings;
        self
    }

    /// Stops starting images after the first failure.
    pub fn with_fail_fast(mut self, fail_fast: bool) -> Self {
        self.fail_fast = fail_fast;
        self
    }

    /// Reports what would be copied and pruned, writing nothing.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Takes only the repositories of `shard`.
    pub fn with_shard(mut self, shard: Option<Shard>) -> Self {
        self.shard = shard;
        self
    }

    /// Sets how long images in flight may take to finish after a gentle stop.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Sets the handle that stops the sync.
    pub fn with_stop(mut self, stop: Stop) -> Self {
        self.stop = stop;
        self
    }

    /// Sets where blobs were seen (shared by every copy of the run).
    pub fn with_locations(mut self, locations: Arc<dyn BlobLocations>) -> Self {
        self.locations = locations;
        self
    }

    /// Sets the table of blob transfers shared by every copy of the run.
    pub fn with_transfers(mut self, transfers: Arc<BlobTransfers>) -> Self {
        self.transfers = transfers;
        self
    }

    /// Sends progress events to `sink`.
    pub fn on_event(mut self, sink: impl Fn(&SyncEvent) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(sink));
        self
    }
}

impl std::fmt::Debug for SyncOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncOptions")
            .field("images", &self.images)
            .field("checks", &self.checks)
            .field("listings", &self.listings)
            .field("fail_fast", &self.fail_fast)
            .field("dry_run", &self.dry_run)
            .field("shard", &self.shard)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}
