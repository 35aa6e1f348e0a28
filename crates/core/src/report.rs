//! What a copy did: events while it runs, a report when it ends.

use std::time::Duration;

use oci_spec::image::Descriptor;
use serde::{Serialize, Serializer};

use crate::mount::{MountAttempt, MountMethod};
use crate::store::StoreInfo;

/// What happened to one node of the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
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
    /// Dry run: it would be copied or mounted.
    Planned,
}

impl Action {
    /// The word the text output starts a line with.
    pub fn verb(&self) -> &'static str {
        match self {
            Action::Copied => "Copied",
            Action::Mounted => "Mounted",
            Action::Exists => "Exists",
            Action::Skipped => "Skipped",
            Action::Planned => "Planned",
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
    pub strategy: Option<String>,
    /// Where a mounted blob came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// How a mounted blob got to the destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<MountMethod>,
    /// Why a node was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Bytes that passed through the client for this node: streamed from the source, or
    /// moved by a strategy (a blob fetched from an IPFS gateway), failed attempts included.
    pub bytes: u64,
    /// How long the node took, from its first request to its commit.
    #[serde(serialize_with = "serialize_duration")]
    pub duration: Duration,
    /// Every mount attempt made for it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<MountAttempt>,
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
    /// One entry per node, children before parents, the root last.
    pub nodes: Vec<NodeReport>,
    /// Bytes that passed through the client in all.
    pub bytes: u64,
    /// Wall time of the whole copy.
    #[serde(serialize_with = "serialize_duration")]
    pub duration: Duration,
}

impl CopyReport {
    /// How many nodes ended with `action`.
    pub fn count(&self, action: Action) -> usize {
        self.nodes.iter().filter(|n| n.action == action).count()
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
    Done(NodeReport),
}

/// Serializes a duration as fractional seconds.
pub(crate) fn serialize_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e6)
}
