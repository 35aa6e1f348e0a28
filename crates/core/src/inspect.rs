//! Describing a content graph without copying it: an index's platforms, each manifest's config
//! and layers, the referrers of each, and what it all weighs.
//!
//! ```no_run
//! # async fn demo(store: &dyn ferry_core::ReadStore) -> ferry_core::Result<()> {
//! use ferry_core::inspect::{InspectOptions, inspect};
//! let root = store.resolve("v1").await?;
//! let inspection = inspect(store, &root, &InspectOptions::default()).await?;
//! println!("{} bytes, {} unique", inspection.totals.compressed, inspection.totals.unique);
//! # Ok(()) }
//! ```

use std::collections::HashSet;

use futures::future::{BoxFuture, FutureExt};
use futures::{StreamExt, TryStreamExt};
use oci_spec::image::Descriptor;
use serde::{Deserialize, Serialize};

use crate::engine::{MAX_INDEX_DEPTH, fetch_manifest, select_platform};
use crate::error::Result;
use crate::model::{DEFAULT_MANIFEST_LIMIT, PlatformFilter, is_index, media_type_str};
use crate::store::ReadStore;
use crate::verify::{read_to_bytes, verify_bytes};

/// Media type of an OCI image configuration.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of a Docker image configuration.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The largest image configuration read for its platform and creation time; a larger one is
/// shown without them.
pub const CONFIG_LIMIT: u64 = 16 * 1024 * 1024;

/// What [`inspect`] looks at.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct InspectOptions {
    /// Only this platform's manifests of an index (and the indexes leading to them).
    pub platform: Option<PlatformFilter>,
    /// Whether the referrers of each manifest and index are listed.
    pub referrers: bool,
    /// Manifests fetched at once below one index.
    pub concurrency: usize,
    /// The largest manifest accepted.
    pub manifest_limit: u64,
}

impl Default for InspectOptions {
    fn default() -> Self {
        Self {
            platform: None,
            referrers: true,
            concurrency: 8,
            manifest_limit: DEFAULT_MANIFEST_LIMIT,
        }
    }
}

impl InspectOptions {
    /// Narrows indexes to `platform`.
    pub fn with_platform(mut self, platform: Option<PlatformFilter>) -> Self {
        self.platform = platform;
        self
    }

    /// Lists referrers (the default) or not.
    pub fn with_referrers(mut self, referrers: bool) -> Self {
        self.referrers = referrers;
        self
    }

    /// Fetches up to `n` manifests at once below one index.
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Refuses manifests larger than `limit` bytes.
    pub fn with_manifest_limit(mut self, limit: u64) -> Self {
        self.manifest_limit = limit;
        self
    }
}

/// A manifest or index and what it holds.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestNode {
    /// Its descriptor as the parent index lists it (platform, annotations), with the
    /// manifest's own `artifactType` when the entry gives none.
    #[serde(flatten)]
    pub descriptor: Descriptor,
    /// An index's entries (narrowed to a platform when asked); `None` for an image manifest
    /// and for an index not fetched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifests: Option<Vec<ManifestNode>>,
    /// An image manifest's configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<ConfigNode>,
    /// An image manifest's layers (an artifact's blobs); `None` for an index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<Vec<LayerNode>>,
    /// The manifest this one refers to (a signature's image).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// The manifests whose subject this is (signatures, SBOMs, attestations); `None` when
    /// they were not asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrers: Option<Vec<Descriptor>>,
    /// An index nested deeper than [`MAX_INDEX_DEPTH`] levels, not fetched.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub too_deep: bool,
}

impl ManifestNode {
    /// Whether it is an index.
    pub fn is_index(&self) -> bool {
        is_index(&media_type_str(&self.descriptor))
    }
}

/// An image configuration, with what it says of the image.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigNode {
    /// The config descriptor.
    #[serde(flatten)]
    pub descriptor: Descriptor,
    /// The operating system (`linux`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// The CPU architecture (`amd64`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// The CPU variant (`v8`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// When the image was built (RFC 3339), as the config says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

impl ConfigNode {
    /// `os/arch[/variant]`, when the config names them.
    pub fn platform(&self) -> Option<String> {
        let (os, arch) = (self.os.as_deref()?, self.architecture.as_deref()?);
        Some(match &self.variant {
            Some(v) => format!("{os}/{arch}/{v}"),
            None => format!("{os}/{arch}"),
        })
    }
}

/// A layer (or an artifact's blob).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerNode {
    /// The layer descriptor.
    #[serde(flatten)]
    pub descriptor: Descriptor,
    /// `gzip`, `zstd` or `none` for a tar layer, as its media type says; absent for other
    /// blobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<&'static str>,
}

/// What a graph weighs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InspectTotals {
    /// Manifests and indexes in the tree (referrers not counted).
    pub manifests: usize,
    /// Configurations.
    pub configs: usize,
    /// Layers.
    pub layers: usize,
    /// Referrers listed.
    pub referrers: usize,
    /// The bytes of every manifest, config, layer and referrer manifest as listed (layers as
    /// stored, compressed), a blob counted each time it is listed.
    pub compressed: u64,
    /// The same with each digest counted once: what a copy into an empty store moves.
    pub unique: u64,
}

/// The tree of a graph and its totals.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The root manifest or index.
    pub root: ManifestNode,
    /// What it weighs.
    pub totals: InspectTotals,
}

/// The compression of a layer, from its media type: `gzip`, `zstd`, `none` (a plain tar), or
/// `None` for a blob that is not a tar layer.
pub fn layer_compression(media_type: &str) -> Option<&'static str> {
    let m = media_type;
    if m.ends_with("+gzip") || m.ends_with(".tar.gzip") || m.ends_with("tar.gzip") {
        Some("gzip")
    } else if m.ends_with("+zstd") || m.ends_with(".tar.zstd") {
        Some("zstd")
    } else if m.ends_with(".tar") || m.ends_with("layer.v1.tar") {
        Some("none")
    } else {
        None
    }
}

/// Describes the graph under `root` in `store`: indexes followed down to [`MAX_INDEX_DEPTH`]
/// levels (deeper ones are listed, not fetched), every image manifest with its config (os,
/// architecture, variant, creation time read from it) and layers, and the referrers of each
/// manifest and index. With [`InspectOptions::platform`], an index keeps only the entries of
/// that platform; when none matches, the error lists the platforms found.
pub async fn inspect(
    store: &dyn ReadStore,
    root: &Descriptor,
    options: &InspectOptions,
) -> Result<Inspection> {
    if let Some(filter) = &options.platform {
        // Fails with the platforms found when none matches.
        select_platform(store, root, filter, options.manifest_limit).await?;
    }
    let walk = Walk {
        store,
        options,
        first_referrers: tokio::sync::RwLock::new(()),
    };
    let root = walk.node(root.clone(), 1).await?;
    let totals = totals(&root);
    Ok(Inspection { root, totals })
}

struct Walk<'a> {
    store: &'a dyn ReadStore,
    options: &'a InspectOptions,
    /// Held for writing while the root's referrers are asked; every other node asks after it,
    /// so a store learns from the first answer how it serves referrers (a registry without
    /// the referrers API is asked for it once, not once per manifest), while the manifests
    /// below are fetched meanwhile.
    first_referrers: tokio::sync::RwLock<()>,
}

#[derive(Deserialize)]
struct ConfigProbe {
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    created: Option<String>,
}

impl Walk<'_> {
    /// The node of `descriptor`, an index at `depth` (the root is 1).
    fn node(&self, descriptor: Descriptor, depth: usize) -> BoxFuture<'_, Result<ManifestNode>> {
        async move {
            let index = is_index(&media_type_str(&descriptor));
            let mut node = ManifestNode {
                descriptor,
                manifests: None,
                config: None,
                layers: None,
                subject: None,
                referrers: None,
                too_deep: false,
            };
            if index && depth > MAX_INDEX_DEPTH {
                node.too_deep = true;
                return Ok(node);
            }
            let manifest =
                fetch_manifest(self.store, &node.descriptor, self.options.manifest_limit).await?;
            // An image's config type is not an artifact type.
            if node.descriptor.artifact_type().is_none()
                && let Some(t) = &manifest.artifact_type
                && !index
                && t != OCI_CONFIG
                && t != DOCKER_CONFIG
            {
                node.descriptor.set_artifact_type(Some(t.as_str().into()));
            }
            node.subject = manifest.subject.clone();
            let first = match depth {
                1 => Some(self.first_referrers.write().await),
                _ => None,
            };
            let referrers = async {
                let _order = match first {
                    Some(held) => held,
                    None => {
                        drop(self.first_referrers.read().await);
                        return self.referrers(&node.descriptor).await;
                    }
                };
                self.referrers(&node.descriptor).await
            };
            if index {
                let children = self.children(&manifest.manifests, depth);
                let (children, referrers) = futures::try_join!(children, referrers)?;
                node.manifests = Some(children);
                node.referrers = referrers;
            } else {
                let config = async {
                    match &manifest.config {
                        Some(c) => self.config(c).await.map(Some),
                        None => Ok(None),
                    }
                };
                let (config, referrers) = futures::try_join!(config, referrers)?;
                node.config = config;
                node.referrers = referrers;
                node.layers = Some(
                    manifest
                        .layers
                        .iter()
                        .map(|l| LayerNode {
                            compression: layer_compression(&media_type_str(l)),
                            descriptor: l.clone(),
                        })
                        .collect(),
                );
            }
            Ok(node)
        }
        .boxed()
    }

    /// The referrers of `descriptor`, when they are asked for.
    async fn referrers(&self, descriptor: &Descriptor) -> Result<Option<Vec<Descriptor>>> {
        if !self.options.referrers {
            return Ok(None);
        }
        self.store.referrers(descriptor).await.map(Some)
    }

    /// The entries of an index at `depth`, narrowed to the platform asked for, fetched
    /// `concurrency` at a time and kept in order.
    async fn children(&self, entries: &[Descriptor], depth: usize) -> Result<Vec<ManifestNode>> {
        let filter = self.options.platform.as_ref();
        let wanted: Vec<Descriptor> = entries
            .iter()
            .filter(|e| match (filter, e.platform()) {
                (None, _) => true,
                (Some(f), Some(p)) => f.matches(p),
                // An entry without a platform: an index may hold the platform below.
                (Some(_), None) => is_index(&media_type_str(e)),
            })
            .cloned()
            .collect();
        let nodes: Vec<ManifestNode> = futures::stream::iter(wanted)
            .map(|e| self.node(e, depth + 1))
            .buffered(self.options.concurrency.max(1))
            .try_collect()
            .await?;
        Ok(nodes
            .into_iter()
            .filter(|n| {
                // Below a platform filter, an index without a platform of its own stays only
                // when it leads to the platform.
                filter.is_none()
                    || n.descriptor.platform().is_some()
                    || !n.is_index()
                    || n.too_deep
                    || n.manifests.as_ref().is_some_and(|m| !m.is_empty())
            })
            .collect())
    }

    /// The config node of `descriptor`: an image configuration is read for its platform and
    /// creation time; other configs (an artifact's) are listed as they are.
    async fn config(&self, descriptor: &Descriptor) -> Result<ConfigNode> {
        let mut node = ConfigNode {
            descriptor: descriptor.clone(),
            os: None,
            architecture: None,
            variant: None,
            created: None,
        };
        let media_type = media_type_str(descriptor);
        if !(media_type == OCI_CONFIG || media_type == DOCKER_CONFIG)
            || descriptor.size() > CONFIG_LIMIT
        {
            return Ok(node);
        }
        let what = format!("config `{}`", descriptor.digest());
        let stream = self.store.fetch(descriptor).await?;
        let bytes = read_to_bytes(stream, &what, CONFIG_LIMIT).await?;
        verify_bytes(descriptor, &bytes)?;
        if let Ok(probe) = serde_json::from_slice::<ConfigProbe>(&bytes) {
            node.os = probe.os;
            node.architecture = probe.architecture;
            node.variant = probe.variant;
            node.created = probe.created;
        }
        Ok(node)
    }
}

/// The totals of the tree under `root`.
fn totals(root: &ManifestNode) -> InspectTotals {
    let mut totals = InspectTotals::default();
    let mut seen = HashSet::new();
    let mut count = |totals: &mut InspectTotals, d: &Descriptor| {
        totals.compressed += d.size();
        if seen.insert(d.digest().clone()) {
            totals.unique += d.size();
        }
    };
    let mut pending = vec![root];
    while let Some(node) = pending.pop() {
        totals.manifests += 1;
        count(&mut totals, &node.descriptor);
        if let Some(c) = &node.config {
            totals.configs += 1;
            count(&mut totals, &c.descriptor);
        }
        for l in node.layers.iter().flatten() {
            totals.layers += 1;
            count(&mut totals, &l.descriptor);
        }
        for r in node.referrers.iter().flatten() {
            totals.referrers += 1;
            count(&mut totals, r);
        }
        pending.extend(node.manifests.iter().flatten().rev());
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::model::{OCI_INDEX, OCI_MANIFEST};

    fn image(store: &MemoryStore, arch: &str, layer: &[u8]) -> Descriptor {
        let config = format!(
            r#"{{"architecture":"{arch}","os":"linux","created":"2026-01-01T00:00:00Z","rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        );
        let config = store.insert(OCI_CONFIG, config.into_bytes());
        let layer = store.insert(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            layer.to_vec(),
        );
        let m = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": config, "layers": [layer]});
        store.insert(OCI_MANIFEST, m.to_string().into_bytes())
    }

    fn index(store: &MemoryStore, entries: &[(Descriptor, Option<&str>)]) -> Descriptor {
        let manifests: Vec<serde_json::Value> = entries
            .iter()
            .map(|(d, arch)| {
                let mut v = serde_json::to_value(d).unwrap();
                if let Some(a) = arch {
                    v["platform"] = serde_json::json!({"os": "linux", "architecture": a});
                }
                v
            })
            .collect();
        let idx =
            serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        store.insert(OCI_INDEX, idx.to_string().into_bytes())
    }

    #[tokio::test]
    async fn describes_an_index_with_totals_counting_shared_layers_once() {
        let store = MemoryStore::new("m");
        let amd = image(&store, "amd64", b"shared");
        let arm = image(&store, "arm64", b"shared");
        let root = index(
            &store,
            &[(amd.clone(), Some("amd64")), (arm.clone(), Some("arm64"))],
        );
        let options = InspectOptions::default().with_referrers(false);
        let got = inspect(&store, &root, &options).await.unwrap();
        let children = got.root.manifests.as_ref().unwrap();
        assert_eq!(children.len(), 2);
        let config = children[1].config.as_ref().unwrap();
        assert_eq!(config.platform().as_deref(), Some("linux/arm64"));
        assert_eq!(config.created.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(
            children[0].layers.as_ref().unwrap()[0].compression,
            Some("gzip")
        );
        assert_eq!(got.totals.manifests, 3);
        assert_eq!(got.totals.layers, 2);
        let layer = children[0].layers.as_ref().unwrap()[0].descriptor.size();
        assert_eq!(got.totals.compressed - got.totals.unique, layer);
    }

    #[tokio::test]
    async fn a_platform_narrows_the_tree_and_nested_indexes_stop_at_the_depth_limit() {
        let store = MemoryStore::new("m");
        let amd = image(&store, "amd64", b"a");
        let arm = image(&store, "arm64", b"b");
        let inner = index(&store, &[(arm.clone(), Some("arm64"))]);
        let root = index(&store, &[(amd.clone(), Some("amd64")), (inner, None)]);
        let options = InspectOptions::default()
            .with_referrers(false)
            .with_platform(Some("linux/arm64".parse().unwrap()));
        let got = inspect(&store, &root, &options).await.unwrap();
        let children = got.root.manifests.as_ref().unwrap();
        assert_eq!(children.len(), 1, "only the index leading to arm64");
        let leaf = &children[0].manifests.as_ref().unwrap()[0];
        assert_eq!(leaf.descriptor.digest(), arm.digest());

        let missing = InspectOptions::default().with_platform(Some("linux/s390x".parse().unwrap()));
        let e = inspect(&store, &root, &missing)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux/amd64, linux/arm64"), "{e}");

        let mut deep = amd.clone();
        for _ in 0..MAX_INDEX_DEPTH {
            deep = index(&store, &[(deep, None)]);
        }
        // The entry below the index at level 8.
        let ninth = |root: Descriptor| {
            let store = &store;
            async move {
                let options = InspectOptions::default().with_referrers(false);
                let got = inspect(store, &root, &options).await.unwrap();
                let mut node = got.root;
                for _ in 0..MAX_INDEX_DEPTH {
                    node = node.manifests.unwrap().remove(0);
                }
                node
            }
        };
        assert!(!ninth(deep.clone()).await.too_deep, "an image at level 9");
        let deeper = index(&store, &[(deep, None)]);
        assert!(ninth(deeper).await.too_deep, "an index at level 9");
    }
}
