//! [`Counting`]: a store wrapper that counts every call made through it, capabilities
//! included.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use oci_spec::image::{Descriptor, Digest};

use ferry_core::error::Result;
use ferry_core::forward::{StoreWrapper, WriteStoreWrapper};
use ferry_core::store::{
    BlobMount, ByteStream, Capabilities, DeleteTag, FetchFromAddress, KnownAbsent, ListTags,
    LocalBlobs, Peek, ReadStore, RegistryRepository, StoreInfo, WriteStore,
};

/// Wraps a store and counts every call made through it, by method name: the store traits'
/// (`info`, `exists`, `fetch`, `resolve`, `referrers`, `capabilities`, `push`, `tag`,
/// `push_tagged`)
/// and those of every capability the inner store offers, which it offers in turn
/// (`list_tags`, `list_tags_resolved`, `delete_tag`, `peek`, `accepts`, `fetch_from_address`,
/// `registry`, `repository`, `mount_blob`, `filesystem`, `blob_file`, `staging_dir`,
/// `known_absent`).
///
/// Built on [`StoreWrapper`], it is what a decorator of someone else's store looks like, and
/// the conformance kits use it to check that a strategy works through any wrapper.
#[derive(Debug)]
pub struct Counting<S: ?Sized> {
    inner: Arc<S>,
    calls: Mutex<BTreeMap<&'static str, usize>>,
}

impl<S: ?Sized> Counting<S> {
    /// Wraps `inner`.
    pub fn new(inner: Arc<S>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            calls: Mutex::default(),
        })
    }

    /// How many times `method` was called.
    pub fn calls(&self, method: &str) -> usize {
        self.calls
            .lock()
            .expect("calls lock")
            .get(method)
            .copied()
            .unwrap_or(0)
    }

    /// Every method called, with its count.
    pub fn all_calls(&self) -> BTreeMap<&'static str, usize> {
        self.calls.lock().expect("calls lock").clone()
    }

    /// The wrapped store.
    pub fn wrapped(&self) -> &Arc<S> {
        &self.inner
    }

    fn count(&self, method: &'static str) {
        *self
            .calls
            .lock()
            .expect("calls lock")
            .entry(method)
            .or_default() += 1;
    }
}

impl<S: std::fmt::Display + ?Sized> std::fmt::Display for Counting<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

#[async_trait]
impl<S: ReadStore + ?Sized> StoreWrapper for Counting<S> {
    type Inner = S;

    fn inner(&self) -> &S {
        &self.inner
    }

    fn info(&self) -> &StoreInfo {
        self.count("info");
        self.inner().info()
    }

    async fn exists(&self, descriptor: &Descriptor) -> Result<bool> {
        self.count("exists");
        self.inner().exists(descriptor).await
    }

    async fn fetch(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        self.count("fetch");
        self.inner().fetch(descriptor).await
    }

    async fn resolve(&self, reference: &str) -> Result<Descriptor> {
        self.count("resolve");
        self.inner().resolve(reference).await
    }

    async fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>> {
        self.count("referrers");
        self.inner().referrers(subject).await
    }

    fn capabilities(&self) -> Capabilities<'_> {
        self.count("capabilities");
        let inner = self.inner().capabilities();
        let mut offered = Capabilities::default();
        if inner.list_tags.is_some() {
            offered = offered.with_list_tags(self);
        }
        if inner.delete_tag.is_some() {
            offered = offered.with_delete_tag(self);
        }
        if inner.peek.is_some() {
            offered = offered.with_peek(self);
        }
        if inner.fetch_from_address.is_some() {
            offered = offered.with_fetch_from_address(self);
        }
        if inner.registry_repository.is_some() {
            offered = offered.with_registry_repository(self);
        }
        if inner.local_blobs.is_some() {
            offered = offered.with_local_blobs(self);
        }
        if inner.known_absent.is_some() {
            offered = offered.with_known_absent(self);
        }
        offered
    }
}

#[async_trait]
impl<S: WriteStore + ?Sized> WriteStoreWrapper for Counting<S> {
    async fn push(&self, descriptor: &Descriptor, data: ByteStream) -> Result<()> {
        self.count("push");
        self.inner().push(descriptor, data).await
    }

    async fn tag(&self, descriptor: &Descriptor, tag: &str) -> Result<()> {
        self.count("tag");
        self.inner().tag(descriptor, tag).await
    }

    async fn push_tagged(
        &self,
        descriptor: &Descriptor,
        data: ByteStream,
        tag: &str,
    ) -> Result<()> {
        self.count("push_tagged");
        self.inner().push_tagged(descriptor, data, tag).await
    }
}

/// The inner store's capability, which [`Counting::capabilities`] offers only when present.
macro_rules! inner_capability {
    ($self:ident, $field:ident) => {
        $self.inner().capabilities().$field.expect(concat!(
            "offered only when the inner store offers ",
            stringify!($field)
        ))
    };
}

#[async_trait]
impl<S: ReadStore + ?Sized> ListTags for Counting<S> {
    async fn list_tags(&self) -> Result<Vec<String>> {
        self.count("list_tags");
        inner_capability!(self, list_tags).list_tags().await
    }

    async fn list_tags_resolved(&self) -> Result<Option<Vec<(String, Descriptor)>>> {
        self.count("list_tags_resolved");
        inner_capability!(self, list_tags)
            .list_tags_resolved()
            .await
    }
}

#[async_trait]
impl<S: ReadStore + ?Sized> Peek for Counting<S> {
    async fn peek(&self, reference: &str) -> Result<Descriptor> {
        self.count("peek");
        inner_capability!(self, peek).peek(reference).await
    }
}

#[async_trait]
impl<S: ReadStore + ?Sized> DeleteTag for Counting<S> {
    async fn delete_tag(&self, tag: &str) -> Result<()> {
        self.count("delete_tag");
        inner_capability!(self, delete_tag).delete_tag(tag).await
    }
}

#[async_trait]
impl<S: ReadStore + ?Sized> FetchFromAddress for Counting<S> {
    fn accepts(&self, address: &str) -> bool {
        self.count("accepts");
        inner_capability!(self, fetch_from_address).accepts(address)
    }

    async fn fetch_from_address(&self, descriptor: &Descriptor, address: &str) -> Result<bool> {
        self.count("fetch_from_address");
        inner_capability!(self, fetch_from_address)
            .fetch_from_address(descriptor, address)
            .await
    }
}

#[async_trait]
impl<S: ReadStore + ?Sized> RegistryRepository for Counting<S> {
    fn registry(&self) -> &str {
        self.count("registry");
        inner_capability!(self, registry_repository).registry()
    }

    fn repository(&self) -> &str {
        self.count("repository");
        inner_capability!(self, registry_repository).repository()
    }

    async fn mount_blob(
        &self,
        digest: &Digest,
        from: Option<&str>,
        mountable: &[String],
    ) -> Result<BlobMount> {
        self.count("mount_blob");
        inner_capability!(self, registry_repository)
            .mount_blob(digest, from, mountable)
            .await
    }
}

impl<S: ReadStore + ?Sized> LocalBlobs for Counting<S> {
    fn filesystem(&self) -> &str {
        self.count("filesystem");
        inner_capability!(self, local_blobs).filesystem()
    }

    fn blob_file(&self, digest: &Digest) -> Result<PathBuf> {
        self.count("blob_file");
        inner_capability!(self, local_blobs).blob_file(digest)
    }

    fn staging_dir(&self) -> PathBuf {
        self.count("staging_dir");
        inner_capability!(self, local_blobs).staging_dir()
    }
}

#[async_trait]
impl<S: ReadStore + ?Sized> KnownAbsent for Counting<S> {
    async fn known_absent(&self, descriptor: &Descriptor) -> bool {
        self.count("known_absent");
        inner_capability!(self, known_absent)
            .known_absent(descriptor)
            .await
    }
}
