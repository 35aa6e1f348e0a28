//! A store in memory: for tests, examples and staging.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use oci_spec::image::{Descriptor, Digest};

use crate::error::{Error, Result};
use crate::model::{Manifest, is_manifest, media_type_str};
use crate::store::{ByteStream, ReadStore, StoreInfo, WriteStore, bytes_stream};
use crate::verify::{read_to_bytes, verify_stream};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A [`WriteStore`] holding everything in memory.
#[derive(Debug)]
pub struct MemoryStore {
    info: StoreInfo,
    blobs: RwLock<HashMap<Digest, (Descriptor, Bytes)>>,
    tags: RwLock<HashMap<String, Descriptor>>,
}

impl MemoryStore {
    /// An empty store named `name`; each store is its own authority.
    pub fn new(name: impl Into<String>) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Self {
            info: StoreInfo::new(
                "memory",
                format!("process-{}-{id}", std::process::id()),
                name,
            ),
            blobs: RwLock::default(),
            tags: RwLock::default(),
        }
    }

    /// An empty store named `name` in `authority`: stores of one authority are one server
    /// to the strategies and to a sync's shared transfers (as the repositories of a registry).
    pub fn with_authority(authority: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            info: StoreInfo::new("memory", authority, name),
            blobs: RwLock::default(),
            tags: RwLock::default(),
        }
    }

    /// Stores `data` and returns its descriptor (sha256).
    pub fn insert(&self, media_type: &str, data: impl Into<Bytes>) -> Descriptor {
        let data = data.into();
        let desc = Descriptor::new(
            media_type.into(),
            data.len() as u64,
            crate::verify::sha256(&data),
        );
        self.blobs
            .write()
            .expect("lock")
            .insert(desc.digest().clone(), (desc.clone(), data));
        desc
    }

    /// Stores bytes under `descriptor` without verifying them (to build corrupt fixtures).
    pub fn insert_unverified(&self, descriptor: &Descriptor, data: impl Into<Bytes>) {
        self.blobs.write().expect("lock").insert(
            descriptor.digest().clone(),
            (descriptor.clone(), data.into()),
        );
    }

    /// The bytes stored for `digest`.
    pub fn get(&self, digest: &Digest) -> Option<Bytes> {
        self.blobs
            .read()
            .expect("lock")
            .get(digest)
            .map(|(_, b)| b.clone())
    }

    /// How many blobs and manifests the store holds.
    pub fn len(&self) -> usize {
        self.blobs.read().expect("lock").len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "memory:{}", self.info.namespace)
    }
}

#[async_trait]
impl ReadStore for MemoryStore {
    fn info(&self) -> &StoreInfo {
        &self.info
    }

    async fn exists(&self, descriptor: &Descriptor) -> Result<bool> {
        Ok(self
            .blobs
            .read()
            .expect("lock")
            .contains_key(descriptor.digest()))
    }

    async fn fetch(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        match self.get(descriptor.digest()) {
            Some(b) => Ok(bytes_stream(b)),
            None => Err(Error::not_found(format!(
                "`{}` in {self}",
                descriptor.digest()
            ))),
        }
    }

    async fn resolve(&self, reference: &str) -> Result<Descriptor> {
        if let Ok(d) = Digest::try_from(reference) {
            return match self.blobs.read().expect("lock").get(&d) {
                Some((desc, _)) => Ok(desc.clone()),
                None => Err(Error::not_found(format!("`{reference}` in {self}"))),
            };
        }
        self.tags
            .read()
            .expect("lock")
            .get(reference)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                what: format!("tag `{reference}` in {self}"),
                hint: None,
            })
    }

    async fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>> {
        let blobs = self.blobs.read().expect("lock");
        let mut out = Vec::new();
        for (desc, bytes) in blobs.values() {
            if !is_manifest(&media_type_str(desc)) {
                continue;
            }
            if let Ok(m) = Manifest::parse(desc, bytes.clone())
                && m.subject.as_ref().map(|s| s.digest()) == Some(subject.digest())
            {
                let mut d = desc.clone();
                if let Some(t) = m.artifact_type {
                    d.set_artifact_type(Some(t.as_str().into()));
                }
                out.push(d);
            }
        }
        out.sort_by_key(|a| a.digest().to_string());
        Ok(out)
    }

    fn capabilities(&self) -> crate::store::Capabilities<'_> {
        crate::store::Capabilities::default()
            .with_list_tags(self)
            .with_delete_tag(self)
    }
}

#[async_trait]
impl crate::store::DeleteTag for MemoryStore {
    async fn delete_tag(&self, tag: &str) -> Result<()> {
        match self.tags.write().expect("lock").remove(tag) {
            Some(_) => Ok(()),
            None => Err(Error::not_found(format!("tag `{tag}` in {self}"))),
        }
    }
}

#[async_trait]
impl crate::store::ListTags for MemoryStore {
    async fn list_tags(&self) -> Result<Vec<String>> {
        let mut tags: Vec<String> = self.tags.read().expect("lock").keys().cloned().collect();
        tags.sort();
        Ok(tags)
    }

    async fn list_tags_resolved(&self) -> Result<Option<Vec<(String, Descriptor)>>> {
        let mut tags: Vec<(String, Descriptor)> = self
            .tags
            .read()
            .expect("lock")
            .iter()
            .map(|(t, d)| (t.clone(), d.clone()))
            .collect();
        tags.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Some(tags))
    }
}

#[async_trait]
impl WriteStore for MemoryStore {
    async fn push(&self, descriptor: &Descriptor, data: ByteStream) -> Result<()> {
        let stream = verify_stream(descriptor, data)?;
        let bytes = read_to_bytes(stream, "blob", u64::MAX).await?;
        self.blobs
            .write()
            .expect("lock")
            .insert(descriptor.digest().clone(), (descriptor.clone(), bytes));
        Ok(())
    }

    async fn tag(&self, descriptor: &Descriptor, tag: &str) -> Result<()> {
        if !self.exists(descriptor).await? {
            return Err(Error::not_found(format!(
                "`{}` in {self} (tag it after pushing it)",
                descriptor.digest()
            )));
        }
        self.tags
            .write()
            .expect("lock")
            .insert(tag.to_string(), descriptor.clone());
        Ok(())
    }
}
