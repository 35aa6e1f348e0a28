//! Graphs built in code, and store wrappers that watch what the engine does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use ferry_conformance::random_bytes;
use ferry_core::model::{OCI_INDEX, OCI_MANIFEST};
use ferry_core::{ByteStream, Descriptor, MemoryStore, ReadStore, Result, StoreInfo, WriteStore};
use serde_json::json;

pub const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// Puts a JSON manifest into `store` and returns its descriptor.
pub fn put_json(store: &MemoryStore, media_type: &str, value: serde_json::Value) -> Descriptor {
    store.insert(media_type, Bytes::from(serde_json::to_vec(&value).unwrap()))
}

/// An image with a config and the given layers; returns (manifest, config, layers).
pub fn image(store: &MemoryStore, layers: &[Descriptor]) -> (Descriptor, Descriptor) {
    let config = store.insert(
        CONFIG,
        Bytes::from(format!("{{\"n\":\"{}\"}}", hex(&random_bytes(8)))),
    );
    let manifest = put_json(
        store,
        OCI_MANIFEST,
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers}),
    );
    (manifest, config)
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn layer(store: &MemoryStore, size: usize) -> Descriptor {
    store.insert(LAYER, random_bytes(size))
}

/// An index over `manifests`, with a platform each (`linux/<arch>`).
pub fn index(store: &MemoryStore, manifests: &[(Descriptor, &str)]) -> Descriptor {
    let entries: Vec<serde_json::Value> = manifests
        .iter()
        .map(|(d, arch)| {
            let mut v = serde_json::to_value(d).unwrap();
            v["platform"] = json!({"os": "linux", "architecture": arch});
            v
        })
        .collect();
    put_json(
        store,
        OCI_INDEX,
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}),
    )
}

/// A destination that records the order of pushes and fails if a manifest arrives before
/// any of its children.
#[derive(Debug)]
pub struct Watched {
    pub inner: MemoryStore,
    pub pushes: Mutex<Vec<String>>,
    pub fetches: Mutex<HashMap<String, usize>>,
    pub exists_calls: Mutex<usize>,
}

impl Watched {
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryStore::new(name),
            pushes: Mutex::default(),
            fetches: Mutex::default(),
            exists_calls: Mutex::default(),
        })
    }

    pub fn fetch_count(&self, d: &Descriptor) -> usize {
        *self
            .fetches
            .lock()
            .unwrap()
            .get(&d.digest().to_string())
            .unwrap_or(&0)
    }

    pub fn pushed(&self) -> Vec<String> {
        self.pushes.lock().unwrap().clone()
    }
}

impl std::fmt::Display for Watched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "watched({})", self.inner)
    }
}

#[async_trait]
impl ReadStore for Watched {
    fn info(&self) -> &StoreInfo {
        self.inner.info()
    }
    async fn exists(&self, d: &Descriptor) -> Result<bool> {
        *self.exists_calls.lock().unwrap() += 1;
        self.inner.exists(d).await
    }
    async fn fetch(&self, d: &Descriptor) -> Result<ByteStream> {
        *self
            .fetches
            .lock()
            .unwrap()
            .entry(d.digest().to_string())
            .or_default() += 1;
        self.inner.fetch(d).await
    }
    async fn resolve(&self, r: &str) -> Result<Descriptor> {
        self.inner.resolve(r).await
    }
    async fn referrers(&self, s: &Descriptor) -> Result<Vec<Descriptor>> {
        self.inner.referrers(s).await
    }
}

#[async_trait]
impl WriteStore for Watched {
    async fn push(&self, d: &Descriptor, data: ByteStream) -> Result<()> {
        // A manifest must never arrive before its children.
        if ferry_core::model::is_manifest(d.media_type().as_ref()) {
            let bytes = ferry_core::verify::read_to_bytes(data, "m", u64::MAX).await?;
            let m = ferry_core::Manifest::parse(d, bytes.clone())?;
            for child in m.successors() {
                if !ferry_core::model::is_foreign_layer(child.media_type().as_ref()) {
                    assert!(
                        self.inner.exists(&child).await?,
                        "manifest {} pushed before its child {}",
                        d.digest(),
                        child.digest()
                    );
                }
            }
            self.pushes.lock().unwrap().push(d.digest().to_string());
            return self.inner.push(d, ferry_core::bytes_stream(bytes)).await;
        }
        self.inner.push(d, data).await?;
        self.pushes.lock().unwrap().push(d.digest().to_string());
        Ok(())
    }
    async fn tag(&self, d: &Descriptor, t: &str) -> Result<()> {
        self.inner.tag(d, t).await
    }
}
