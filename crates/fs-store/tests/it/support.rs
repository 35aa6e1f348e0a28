//! Fixtures built in code: layouts in temporary directories and small, valid images.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use ferry_core::model::OCI_MANIFEST;
use ferry_core::{Descriptor, WriteStore, bytes_stream, sha256};
use ferry_fs_store::OciLayout;
use futures::StreamExt;

/// Media type of an uncompressed layer.
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Media type of an image config.
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// A fresh temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ferry-fs-store-")
        .tempdir()
        .expect("temporary directory")
}

/// A new layout in `dir/name`.
pub fn layout(dir: &Path, name: &str) -> Arc<OciLayout> {
    Arc::new(OciLayout::create(dir.join(name)).expect("create layout"))
}

/// A tar archive holding one regular file.
pub fn tar_layer(name: &str, content: &[u8]) -> Bytes {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, name, content)
        .expect("tar entry");
    Bytes::from(builder.into_inner().expect("tar"))
}

/// A small valid image: config (with matching diff_ids), two uncompressed layers, manifest.
pub struct Image {
    /// The config.
    pub config: Descriptor,
    /// The layers.
    pub layers: Vec<Descriptor>,
    /// The manifest.
    pub manifest: Descriptor,
    /// Every blob and the manifest, with their bytes, children first.
    pub contents: Vec<(Descriptor, Bytes)>,
}

impl Image {
    /// A new image; `salt` makes its digests unique.
    pub fn build(salt: &str) -> Self {
        let layer_data = [
            tar_layer("hello.txt", format!("hello {salt}\n").as_bytes()),
            tar_layer("etc/motd", format!("ferry {salt}\n").as_bytes()),
        ];
        let layers: Vec<Descriptor> = layer_data
            .iter()
            .map(|d| Descriptor::new(LAYER_TAR.into(), d.len() as u64, sha256(d)))
            .collect();
        let config_json = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": { "Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"] },
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l.digest().to_string()).collect::<Vec<_>>(),
            },
            "created": "2024-01-01T00:00:00Z",
            "history": [
                { "created": "2024-01-01T00:00:00Z", "created_by": format!("ferry test {salt}") },
                { "created": "2024-01-01T00:00:00Z", "created_by": "second layer" },
            ],
        });
        let config_data = Bytes::from(serde_json::to_vec(&config_json).unwrap());
        let config = Descriptor::new(
            CONFIG.into(),
            config_data.len() as u64,
            sha256(&config_data),
        );
        let manifest_json = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": layers,
        });
        let manifest_data = Bytes::from(serde_json::to_vec(&manifest_json).unwrap());
        let manifest = Descriptor::new(
            OCI_MANIFEST.into(),
            manifest_data.len() as u64,
            sha256(&manifest_data),
        );
        let mut contents = vec![(config.clone(), config_data)];
        contents.extend(layers.iter().cloned().zip(layer_data));
        contents.push((manifest.clone(), manifest_data));
        Self {
            config,
            layers,
            manifest,
            contents,
        }
    }

    /// Pushes the image into `store` and tags it.
    pub async fn push(&self, store: &dyn WriteStore, tag: &str) {
        for (desc, data) in &self.contents {
            store
                .push(desc, bytes_stream(data.clone()))
                .await
                .expect("push");
        }
        store.tag(&self.manifest, tag).await.expect("tag");
    }

    /// Every blob (config and layers), without the manifest.
    pub fn blobs(&self) -> Vec<Descriptor> {
        let mut out = vec![self.config.clone()];
        out.extend(self.layers.iter().cloned());
        out
    }
}

/// Reads a whole blob from a store.
pub async fn read_all(store: &dyn WriteStore, desc: &Descriptor) -> Bytes {
    let mut stream = store.fetch(desc).await.expect("fetch");
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("chunk"));
    }
    Bytes::from(out)
}

/// Every path below `dir`, relative, sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            out.push(
                path.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
            if path.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Runs a command, panicking with its output when it fails; returns its stdout.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `{program}`: {e}; install it (`apt-get install -y {program}`)")
        });
    assert!(
        output.status.success(),
        "`{program} {}` failed ({}):\n{}\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A memory store that reports `info` as its identity whatever it is: the fake a strategy must
/// not be fooled by (it would write into the store `info` names), and the carrier of names no
/// real store accepts.
#[derive(Debug)]
pub struct ClaimingStore {
    inner: ferry_core::MemoryStore,
    info: ferry_core::StoreInfo,
}

impl ClaimingStore {
    /// A store claiming to be `info`.
    pub fn new(info: ferry_core::StoreInfo) -> Self {
        Self {
            inner: ferry_core::MemoryStore::new(info.namespace.clone()),
            info,
        }
    }
}

impl std::fmt::Display for ClaimingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.info)
    }
}

#[async_trait::async_trait]
impl ferry_core::ReadStore for ClaimingStore {
    fn info(&self) -> &ferry_core::StoreInfo {
        &self.info
    }
    async fn exists(&self, d: &Descriptor) -> ferry_core::Result<bool> {
        self.inner.exists(d).await
    }
    async fn fetch(&self, d: &Descriptor) -> ferry_core::Result<ferry_core::ByteStream> {
        self.inner.fetch(d).await
    }
    async fn resolve(&self, reference: &str) -> ferry_core::Result<Descriptor> {
        self.inner.resolve(reference).await
    }
    async fn referrers(&self, subject: &Descriptor) -> ferry_core::Result<Vec<Descriptor>> {
        self.inner.referrers(subject).await
    }
}

#[async_trait::async_trait]
impl WriteStore for ClaimingStore {
    async fn push(&self, d: &Descriptor, data: ferry_core::ByteStream) -> ferry_core::Result<()> {
        self.inner.push(d, data).await
    }
    async fn tag(&self, d: &Descriptor, tag: &str) -> ferry_core::Result<()> {
        self.inner.tag(d, tag).await
    }
}
