//! What a sync did: one entry per image (and per pruned tag), totals, and events as it runs.
//!
//! The report types are `#[non_exhaustive]`, so fields and variants can be added without
//! breaking their users: read the fields, match with a wildcard arm, and leave building them
//! to [`crate::sync`]. Outside ferry-sync this does not compile:
//!
//! ```compile_fail
//! let totals = ferry_sync::Totals { synced: 1, ..Default::default() };
//! ```
//!
//! and neither does a match without a wildcard arm:
//!
//! ```compile_fail
//! use ferry_sync::Outcome;
//! fn done(outcome: Outcome) -> bool {
//!     match outcome {
//!         Outcome::Synced | Outcome::Unchanged | Outcome::Pruned => true,
//!         Outcome::Filtered | Outcome::Failed | Outcome::Interrupted | Outcome::Planned => false,
//!         Outcome::BackedUp => true,
//!     }
//! }
//! ```

use std::sync::Arc;
use std::time::Duration;

use oci_spec::image::Digest;
use serde::Serialize;

use crate::filter::FilteredBy;
use ferry_core::StoreInfo;
use ferry_core::error::Error;
use ferry_core::report::{CopyEvent, serialize_duration};
use ferry_core::transfers::TransferStats;

/// What happened to one image (one tag of one repository), or to one destination tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Outcome {
    /// The image was copied (some of it mounted or found) and tagged at the destination.
    Synced,
    /// The destination tag already named the source's digest (or is immutable); nothing was
    /// written.
    Unchanged,
    /// A filter left the tag out.
    Filtered,
    /// The image, or a listing of its repository, failed; `reason` says why.
    Failed,
    /// The sync was stopped before the image finished. Its destination tag names what it
    /// named before, or (when the stop came as the tag was being written) the whole image.
    Interrupted,
    /// The destination tag was deleted (`--prune`): the filtered source no longer has it.
    Pruned,
    /// Dry run: the image would be copied (or, for a destination tag, deleted).
    Planned,
    /// The destination tag's manifest was tagged with a backup name (`backup`) before the tag
    /// was overwritten or pruned; `digest` is the manifest kept.
    #[serde(rename = "backed-up")]
    BackedUp,
}

impl Outcome {
    /// The word the text output starts a line with.
    pub fn verb(&self) -> &'static str {
        match self {
            Outcome::Synced => "Synced",
            Outcome::Unchanged => "Unchanged",
            Outcome::Filtered => "Filtered",
            Outcome::Failed => "Failed",
            Outcome::Interrupted => "Interrupted",
            Outcome::Pruned => "Pruned",
            Outcome::Planned => "Planned",
            Outcome::BackedUp => "Backed up",
        }
    }
}

/// What kind of failure, for exit codes and automation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FailureKind {
    /// A store asked for credentials or refused the ones given.
    Unauthenticated,
    /// A store refused the operation for the identity used.
    PermissionDenied,
    /// Something named does not exist (a blob the source's manifest names, a tag).
    NotFound,
    /// Content did not match its digest or size; nothing corrupt was committed.
    Integrity,
    /// A store cannot do what the sync needs (list or delete tags).
    NotSupported,
    /// `--prune` would delete more tags than `--prune-max`, so it deleted none.
    PruneGuard,
    /// A registry's quota of pulls was used up for longer than the sync may wait.
    RateLimited,
    /// Anything else: I/O, network, a registry's error.
    Other,
}

impl FailureKind {
    /// The kind of `error`.
    pub fn of(error: &Error) -> Self {
        match error {
            Error::Unauthenticated { .. } => FailureKind::Unauthenticated,
            Error::PermissionDenied { .. } => FailureKind::PermissionDenied,
            Error::NotFound { .. } => FailureKind::NotFound,
            Error::DigestMismatch { .. } | Error::SizeMismatch { .. } | Error::Damaged { .. } => {
                FailureKind::Integrity
            }
            Error::NotSupported { .. } => FailureKind::NotSupported,
            Error::QuotaExhausted { .. } => FailureKind::RateLimited,
            _ => FailureKind::Other,
        }
    }
}

/// One image of a sync, or one destination tag it pruned.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ImageReport {
    /// The entry of the sync this image belongs to (0 for a sync of one entry).
    pub entry: usize,
    /// The repository, as the source names it (`team/app`, a layout's relative path).
    pub repository: String,
    /// The tag; `None` for a failure of the repository as a whole (a listing).
    pub tag: Option<String>,
    /// The source store.
    pub source: StoreInfo,
    /// The destination store.
    pub destination: StoreInfo,
    /// What happened.
    pub outcome: Outcome,
    /// The digest the source tag names (the platform's manifest with a platform filter);
    /// for a pruned tag, the digest it named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// The digest the destination tag named before, when it had the tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<Digest>,
    /// Nodes a mount strategy brought over.
    pub mounted: usize,
    /// Nodes streamed from the source.
    pub copied: usize,
    /// Nodes the destination held already.
    pub existed: usize,
    /// Bytes streamed through ferry.
    pub bytes: u64,
    /// Bytes of the blobs a mount strategy brought over (none of them through ferry).
    pub mounted_bytes: u64,
    /// The backup tag made (`Backed up`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// Steps of its copies tried again (transfers cut on the way, `503`s).
    #[serde(skip_serializing_if = "is_zero")]
    pub retries: u32,
    /// Why a tag was filtered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filtered_by: Option<FilteredBy>,
    /// Why the image failed, was interrupted, or was left unchanged without asking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The kind of failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureKind>,
    /// From the image's first request to its end.
    #[serde(serialize_with = "serialize_duration")]
    pub duration: Duration,
    /// What the image's copies met and overcame (a corrupt copy of a blob passed over for a
    /// verified one), as their nodes reported it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<ferry_core::report::CopyWarning>,
}

impl ImageReport {
    /// A report of `outcome` for one image (or, without a tag, one repository or entry), its
    /// counts at zero and nothing else said yet.
    pub(crate) fn new(
        entry: usize,
        repository: String,
        tag: Option<String>,
        source: StoreInfo,
        destination: StoreInfo,
        outcome: Outcome,
    ) -> Self {
        Self {
            entry,
            repository,
            tag,
            source,
            destination,
            outcome,
            digest: None,
            previous: None,
            mounted: 0,
            copied: 0,
            existed: 0,
            bytes: 0,
            mounted_bytes: 0,
            backup: None,
            retries: 0,
            filtered_by: None,
            reason: None,
            failure: None,
            duration: Default::default(),
            warnings: Vec::new(),
        }
    }

    /// `SOURCE:TAG` as the output names the source image.
    pub fn source_ref(&self) -> String {
        reference(&self.source, self.tag.as_deref())
    }

    /// `DESTINATION:TAG` as the output names the destination image.
    pub fn destination_ref(&self) -> String {
        reference(&self.destination, self.tag.as_deref())
    }
}

fn reference(store: &StoreInfo, tag: Option<&str>) -> String {
    match tag {
        Some(t) => format!("{store}:{t}"),
        None => store.to_string(),
    }
}

/// Counts over the whole sync.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct Totals {
    /// Repositories listed (after sharding).
    pub repositories: usize,
    /// Images selected by the filters.
    pub selected: usize,
    /// Images copied and tagged.
    pub synced: usize,
    /// Images found unchanged.
    pub unchanged: usize,
    /// Tags left out by filters.
    pub filtered: usize,
    /// Images (and repositories) that failed.
    pub failed: usize,
    /// Images stopped by a signal before they finished.
    pub interrupted: usize,
    /// Selected images that never started because the sync was stopped.
    pub not_started: usize,
    /// Destination tags deleted (or, in a dry run, to delete).
    pub pruned: usize,
    /// Images a dry run would copy.
    pub planned: usize,
    /// Destination tags backed up before they were overwritten or pruned.
    pub backed_up: usize,
    /// Bytes streamed through ferry.
    pub bytes: u64,
    /// Bytes of blobs brought over by a mount strategy.
    pub mounted_bytes: u64,
    /// Blobs and manifests streamed.
    pub copied: usize,
    /// Blobs brought over by a mount strategy.
    pub mounted: usize,
    /// Blobs and manifests the destination held already.
    pub existed: usize,
    /// Steps of copies tried again.
    pub retries: u32,
    /// How the run shared its blob transfers.
    pub transfers: TransferStats,
}

/// The result of a sync.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SyncReport {
    /// Every image and pruned tag, in the order they finished. Filtered tags are included.
    pub images: Vec<ImageReport>,
    /// Counts.
    pub totals: Totals,
    /// Whether a signal (or `--fail-fast`) stopped the sync before it was done.
    pub interrupted: bool,
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
    /// Why pruning did not run, where it was asked for and did not.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prune_skipped: Vec<String>,
    /// Wall time.
    #[serde(serialize_with = "serialize_duration")]
    pub duration: Duration,
}

impl SyncReport {
    /// Whether every selected image is at the destination: nothing failed, nothing was left
    /// undone.
    pub fn complete(&self) -> bool {
        self.totals.failed == 0 && !self.interrupted
    }

    /// The images (and repositories) that failed.
    pub fn failures(&self) -> impl Iterator<Item = &ImageReport> {
        self.images.iter().filter(|i| i.outcome == Outcome::Failed)
    }
}

/// Progress of a sync, delivered to [`crate::SyncOptions::on_event`] as it happens.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SyncEvent {
    /// A repository was listed and filtered: `images` more images are known.
    Planned {
        /// The repository.
        repository: String,
        /// Images selected in it.
        images: usize,
    },
    /// An image (or a pruned tag) is finished, whatever its outcome.
    Image(Arc<ImageReport>),
    /// An image's copy starts (it changed): it is in flight until its [`SyncEvent::Image`].
    Copying {
        /// The entry.
        entry: usize,
        /// The repository, as the source names it.
        repository: String,
        /// The tag.
        tag: String,
    },
    /// Progress inside one copy (bytes streamed).
    Copy(Box<CopyEvent>),
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
