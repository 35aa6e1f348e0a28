//! What a copy did: events while it runs, a report when it ends.

mod attempt;

use std::sync::Arc;
use std::time::Duration;

use oci_spec::image::{Descriptor, Digest};
use serde::{Serialize, Serializer};

pub use attempt::{AttemptOutcome, MountAttempt, MountMethod, StrategyName};

use crate::locations::Location;
use crate::store::StoreInfo;

/// A callback receiving [`CopyEvent`]s.
pub type EventSink = Arc<dyn Fn(&CopyEvent) + Send + Sync>;

/// What happened to one node of the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Action {
    /// Its bytes were streamed from the source to the destination.
    Copied,
    /// A mount strategy brought it to the destination without streaming it.
    Mounted,
    /// The destination already held it (and, for a manifest, its whole subgraph).
    Exists,
    /// It is not copied on purpose (a foreign, non-distributable layer).
    Skipped,
    /// Dry run: its bytes would be streamed from the source.
    WouldCopy,
    /// Dry run: a strategy expects to mount it (the node's `strategy`, `from` and `method`
    /// say which, from where and how).
    WouldMount,
    /// Dry run: a strategy would try to mount it but cannot tell without writing (the node's
    /// `strategy` and `reason` say which and what); streamed if it does not mount.
    WouldTry,
}

impl Action {
    /// The word the text output starts a line with.
    pub fn verb(&self) -> &'static str {
        match self {
            Action::Copied => "Copied",
            Action::Mounted => "Mounted",
            Action::Exists => "Exists",
            Action::Skipped => "Skipped",
            Action::WouldCopy => "Would copy",
            Action::WouldMount => "Would mount",
            Action::WouldTry => "Would try",
        }
    }
}

/// One node of the report.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct NodeReport {
    /// The node.
    pub descriptor: Descriptor,
    /// What was done.
    pub action: Action,
    /// The strategy that mounted it or found it present, if any (its
    /// [`crate::MountStrategy::name`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<StrategyName>,
    /// Where a mounted blob came from (JSON: the store, as `source` and `destination` of the
    /// report are written).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_optional_place"
    )]
    pub from: Option<Location>,
    /// How a mounted blob got to the destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<MountMethod>,
    /// Why a node was skipped or found present without a request; in a dry run, what a
    /// strategy would try.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<NodeReason>,
    /// Bytes that passed through the client for this node: streamed from the source, or
    /// moved by a strategy (a blob fetched from an IPFS gateway), failed attempts included.
    pub bytes: u64,
    /// How many times a step of this node was tried again (a transfer cut on the way, a
    /// `503`), by the copy's retry policy; requests a registry client retried on its own are
    /// not counted here.
    #[serde(skip_serializing_if = "is_zero")]
    pub retries: u32,
    /// How long the node took, from its first request to its commit.
    #[serde(serialize_with = "serialize_duration")]
    pub duration: Duration,
    /// Every mount attempt made for it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<MountAttempt>,
    /// What went wrong on the way without failing the node (a corrupt copy of the blob that
    /// another place replaced).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<CopyWarning>,
}

/// Why a node ended as it did, where its action alone does not say.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeReason {
    /// [`Action::Skipped`]: a foreign (non-distributable) layer, which is not copied.
    ForeignLayer,
    /// [`Action::Exists`]: another copy of the same run brought it to this store.
    BroughtEarlierInRun,
    /// [`Action::WouldTry`]: what the strategy would try, in its own words.
    WouldTry(String),
}

impl std::fmt::Display for NodeReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeReason::ForeignLayer => f.write_str("foreign (non-distributable) layer"),
            NodeReason::BroughtEarlierInRun => f.write_str("brought here earlier in this run"),
            NodeReason::WouldTry(what) => f.write_str(what),
        }
    }
}

/// As its sentence.
impl Serialize for NodeReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Something a copy met and overcame, worth telling: it does not fail the copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum CopyWarning {
    /// A place's copy of the blob (the source's, or one the blob-location cache named)
    /// failed verification; the blob was taken from another place that verified.
    #[non_exhaustive]
    CorruptCopy {
        /// The blob.
        digest: Digest,
        /// The place whose copy is corrupt.
        #[serde(serialize_with = "serialize_place")]
        location: Location,
        /// Whether that place is the copy's source.
        is_source: bool,
        /// What was wrong with it.
        reason: String,
        /// Where the blob came from instead.
        #[serde(serialize_with = "serialize_place")]
        healed_from: Location,
    },
}

impl std::fmt::Display for CopyWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CopyWarning::CorruptCopy {
                digest,
                location,
                is_source,
                reason,
                healed_from,
            } => write!(
                f,
                "the {} copy of `{digest}` at `{location}` is corrupt ({reason}); it was taken \
                 from `{healed_from}` instead",
                if *is_source { "source's" } else { "cached" }
            ),
        }
    }
}

/// The totals of a dry run: what the copy would move and what it would not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PlanTotals {
    /// Blobs that would be streamed from the source.
    pub copy_blobs: usize,
    /// Their bytes.
    pub copy_bytes: u64,
    /// Blobs a strategy expects to mount.
    pub mount_blobs: usize,
    /// Their bytes (not streamed).
    pub mount_bytes: u64,
    /// Blobs a strategy would try to mount without being able to tell; streamed if not.
    pub try_blobs: usize,
    /// Their bytes.
    pub try_bytes: u64,
    /// Blobs the destination holds already.
    pub present_blobs: usize,
    /// Manifests and indexes that would be pushed.
    pub copy_manifests: usize,
    /// Their bytes.
    pub copy_manifest_bytes: u64,
    /// Manifests and indexes the destination holds already (with their whole subgraph).
    pub present_manifests: usize,
}

impl PlanTotals {
    /// The totals of `nodes`, as the dry run reported them.
    pub fn of(nodes: &[NodeReport]) -> Self {
        let mut t = PlanTotals::default();
        for n in nodes {
            let size = n.descriptor.size();
            let manifest = crate::model::is_manifest(&crate::model::media_type_str(&n.descriptor));
            match (n.action, manifest) {
                (Action::WouldCopy, true) => {
                    t.copy_manifests += 1;
                    t.copy_manifest_bytes += size;
                }
                (Action::Exists, true) => t.present_manifests += 1,
                (Action::WouldCopy, false) => {
                    t.copy_blobs += 1;
                    t.copy_bytes += size;
                }
                (Action::WouldMount, _) => {
                    t.mount_blobs += 1;
                    t.mount_bytes += size;
                }
                (Action::WouldTry, _) => {
                    t.try_blobs += 1;
                    t.try_bytes += size;
                }
                (Action::Exists, false) => t.present_blobs += 1,
                _ => {}
            }
        }
        t
    }
}

/// The result of a copy.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct CopyReport {
    /// The source store.
    pub source: StoreInfo,
    /// The destination store.
    pub destination: StoreInfo,
    /// The root that was copied.
    pub root: Descriptor,
    /// The tags set at the destination.
    pub tags: Vec<String>,
    /// The mount chain that ran.
    pub chain: String,
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
    /// A dry run's totals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanTotals>,
    /// One entry per node, children before parents, the root last.
    pub nodes: Vec<NodeReport>,
    /// Bytes that passed through the client in all.
    pub bytes: u64,
    /// Steps tried again, in all (the nodes' and the copy's own: resolve, tag, referrers).
    pub retries: u32,
    /// Wall time of the whole copy.
    #[serde(serialize_with = "serialize_duration")]
    pub duration: Duration,
}

impl CopyReport {
    /// How many nodes ended with `action`.
    pub fn count(&self, action: Action) -> usize {
        self.nodes.iter().filter(|n| n.action == action).count()
    }

    /// Every warning of every node, in node order.
    pub fn warnings(&self) -> impl Iterator<Item = &CopyWarning> {
        self.nodes.iter().flat_map(|n| n.warnings.iter())
    }

    /// The report entry of `digest`, if the copy met it.
    pub fn node(&self, digest: &oci_spec::image::Digest) -> Option<&NodeReport> {
        self.nodes.iter().find(|n| n.descriptor.digest() == digest)
    }
}

/// Progress of a copy, delivered to [`crate::CopyOptions::on_event`] as it happens.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CopyEvent {
    /// Bytes of a node start to pass through the client: the fallback stream, or a
    /// strategy's (a blob fetched from an address). A node whose first transfer failed may
    /// announce another.
    Copying(Descriptor),
    /// Bytes of a node were streamed: `done` of `total` so far.
    Bytes {
        /// The node.
        descriptor: Descriptor,
        /// Bytes streamed so far.
        done: u64,
        /// The node's size.
        total: u64,
    },
    /// A node is finished: copied, mounted, present, skipped or planned.
    Done(Box<NodeReport>),
    /// A step failed in a way that may pass and is about to be tried again.
    Retrying {
        /// The node the step belongs to; `None` for a step of the copy as a whole (resolving
        /// the source, the tag, a referrers listing).
        descriptor: Option<Descriptor>,
        /// The retry about to be made (from 1).
        retry: u32,
        /// Why: the failure, as its message reads.
        error: String,
    },
}

/// Serializes a duration as fractional seconds (to the microsecond), as every report of ferry
/// writes durations.
pub fn serialize_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e6)
}

/// A place as the store it names (`{"scheme", "authority", "namespace"}`).
fn serialize_place<S: Serializer>(place: &Location, s: S) -> Result<S::Ok, S::Error> {
    place.store.serialize(s)
}

fn serialize_optional_place<S: Serializer>(
    place: &Option<Location>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match place {
        Some(place) => place.store.serialize(s),
        None => s.serialize_none(),
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
