//! Each rule of a store ability (`registry_repository`, `prepared_uploads`,
//! `fetch_from_address`, `local_blobs`) fails for a store whose ability is broken on purpose,
//! with the rule's own message; the same stores without their flaws pass the suite.
//!
//! No real registry, IPFS node or layout plays these parts: each would have to be broken. The
//! stores here keep their content in memory (and, for `local_blobs`, in files of a temporary
//! directory) and do one thing wrong.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use ferry_conformance::{Publish, StoreSubject, TEST_BLOB_TYPE, store};
use ferry_core::{
    BlobMount, ByteStream, Capabilities, Descriptor, Digest, Error, FetchFromAddress, LocalBlobs,
    MemoryStore, PreparedUpload, ReadStore, RegistryRepository, Result, StoreWrapper, WriteStore,
    WriteStoreWrapper, bytes_stream, verify::read_to_bytes,
};

/// What a [`Repository`] does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MountFlaw {
    /// Nothing: an honest repository.
    None,
    /// Answers "mounted" for a blob no repository holds.
    MountsAnything,
    /// Opens upload sessions that commit whatever they are given.
    CarelessUploads,
    /// Opens upload sessions that cannot be cancelled.
    UncancellableUploads,
}

/// A repository of an in-memory registry of two repositories: it mounts blobs its sibling
/// holds, and answers a mount of any other blob with an upload session, as a registry's `202`.
#[derive(Debug)]
struct Repository {
    store: Arc<MemoryStore>,
    sibling: Arc<MemoryStore>,
    flaw: MountFlaw,
}

fn repository(flaw: MountFlaw) -> StoreSubject {
    let sibling = Arc::new(MemoryStore::with_authority("registry.test", "team/sibling"));
    StoreSubject::new(Arc::new(Repository {
        store: Arc::new(MemoryStore::with_authority("registry.test", "team/app")),
        sibling: sibling.clone(),
        flaw,
    }))
    .with_sibling(sibling)
}

impl std::fmt::Display for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repository({:?})", self.flaw)
    }
}

impl StoreWrapper for Repository {
    type Inner = MemoryStore;

    fn inner(&self) -> &MemoryStore {
        &self.store
    }

    fn capabilities(&self) -> Capabilities<'_> {
        (*self.store).capabilities().with_registry_repository(self)
    }
}

impl WriteStoreWrapper for Repository {}

#[async_trait]
impl RegistryRepository for Repository {
    fn registry(&self) -> &str {
        &(*self.store).info().authority
    }

    fn repository(&self) -> &str {
        &(*self.store).info().namespace
    }

    async fn mount_blob(
        &self,
        digest: &Digest,
        _: Option<&str>,
        _: &[String],
    ) -> Result<BlobMount> {
        if let Some(bytes) = self.sibling.get(digest) {
            self.store.insert(TEST_BLOB_TYPE, bytes);
            return Ok(BlobMount::Mounted);
        }
        let upload = Upload {
            into: self.store.clone(),
            careless: self.flaw == MountFlaw::CarelessUploads,
            cancellable: self.flaw != MountFlaw::UncancellableUploads,
        };
        Ok(match self.flaw {
            MountFlaw::MountsAnything => BlobMount::Mounted,
            _ => BlobMount::Upload(Box::new(upload)),
        })
    }
}

/// An upload session into `into`.
#[derive(Debug)]
struct Upload {
    into: Arc<MemoryStore>,
    careless: bool,
    cancellable: bool,
}

#[async_trait]
impl PreparedUpload for Upload {
    async fn upload(self: Box<Self>, descriptor: &Descriptor, data: ByteStream) -> Result<()> {
        if self.careless {
            let bytes = read_to_bytes(data, "blob", u64::MAX).await?;
            self.into.insert_unverified(descriptor, bytes);
            return Ok(());
        }
        (*self.into).push(descriptor, data).await
    }

    async fn cancel(self: Box<Self>) -> Result<()> {
        if self.cancellable {
            Ok(())
        } else {
            Err(Error::store(
                "registry.test",
                "the upload session could not be cancelled",
            ))
        }
    }
}

mod honest_repository {
    use super::*;

    async fn subject() -> StoreSubject {
        repository(MountFlaw::None)
    }

    ferry_conformance::store_suite!(
        setup: subject,
        declares: [list_tags, delete_tag, registry_repository, prepared_uploads]
    );
}

#[tokio::test]
#[should_panic(expected = "mounted a blob no repository holds")]
async fn a_repository_mounting_anything_fails_the_mount_rule() {
    store::registry_repository_mounts_from_a_sibling(&repository(MountFlaw::MountsAnything)).await;
}

#[tokio::test]
#[should_panic(expected = "a prepared upload accepted bytes that do not match")]
async fn a_careless_upload_session_fails_the_prepared_upload_rule() {
    store::prepared_upload_commits_only_matching_content(&repository(MountFlaw::CarelessUploads))
        .await;
}

#[tokio::test]
#[should_panic(expected = "cancelling a prepared upload failed")]
async fn an_uncancellable_upload_session_fails_the_cancel_rule() {
    store::cancelling_a_prepared_upload_leaves_nothing(&repository(
        MountFlaw::UncancellableUploads,
    ))
    .await;
}

/// Content published at `mem://N` addresses.
#[derive(Debug, Default)]
struct Published(Mutex<HashMap<String, Bytes>>);

#[async_trait]
impl Publish for Published {
    async fn publish(&self, data: Bytes) -> String {
        let mut published = self.0.lock().unwrap();
        let address = format!("mem://{}", published.len());
        published.insert(address.clone(), data);
        address
    }
}

/// A memory store that fetches `mem://` addresses; a careless one commits what it finds
/// there unverified.
#[derive(Debug)]
struct Fetching {
    store: MemoryStore,
    published: Arc<Published>,
    careless: bool,
}

fn fetching(careless: bool) -> StoreSubject {
    let published = Arc::new(Published::default());
    StoreSubject::new(Arc::new(Fetching {
        store: MemoryStore::new("fetching"),
        published: published.clone(),
        careless,
    }))
    .with_publisher(published)
}

impl std::fmt::Display for Fetching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fetching(careless: {})", self.careless)
    }
}

impl StoreWrapper for Fetching {
    type Inner = MemoryStore;

    fn inner(&self) -> &MemoryStore {
        &self.store
    }

    fn capabilities(&self) -> Capabilities<'_> {
        self.store.capabilities().with_fetch_from_address(self)
    }
}

impl WriteStoreWrapper for Fetching {}

#[async_trait]
impl FetchFromAddress for Fetching {
    fn accepts(&self, address: &str) -> bool {
        address.starts_with("mem://")
    }

    async fn fetch_from_address(&self, descriptor: &Descriptor, address: &str) -> Result<bool> {
        let Some(bytes) = self.published.0.lock().unwrap().get(address).cloned() else {
            return Ok(false);
        };
        if self.careless {
            self.store.insert_unverified(descriptor, bytes);
        } else {
            self.store.push(descriptor, bytes_stream(bytes)).await?;
        }
        Ok(true)
    }
}

mod honest_fetching {
    use super::*;

    async fn subject() -> StoreSubject {
        fetching(false)
    }

    ferry_conformance::store_suite!(
        setup: subject,
        declares: [list_tags, delete_tag, fetch_from_address]
    );
}

#[tokio::test]
#[should_panic(expected = "reported committing content that is not the descriptor's")]
async fn a_store_committing_fetched_content_unverified_fails_the_fetch_from_address_rule() {
    store::fetch_from_address_commits_only_matching_content(&fetching(true)).await;
}

/// What a [`Files`] store does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileFlaw {
    /// Nothing: an honest store of blob files.
    None,
    /// Writes a header before the bytes of each blob file.
    HeaderedFiles,
    /// Knows only the blobs pushed through it, not the files linked into place.
    IgnoresLinkedFiles,
}

/// A memory store that also keeps each blob as a file `blobs/<hex>` of a directory, and
/// serves a blob whose file was linked into place.
#[derive(Debug)]
struct Files {
    store: MemoryStore,
    dir: tempfile::TempDir,
    filesystem: String,
    flaw: FileFlaw,
}

fn files(flaw: FileFlaw) -> StoreSubject {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("blobs")).unwrap();
    let filesystem = format!("dev:{}", std::fs::metadata(dir.path()).unwrap().dev());
    StoreSubject::new(Arc::new(Files {
        store: MemoryStore::new("files"),
        dir,
        filesystem,
        flaw,
    }))
}

impl Files {
    fn file(&self, digest: &Digest) -> PathBuf {
        self.dir.path().join("blobs").join(digest.digest())
    }

    /// The bytes of a linked blob file the memory store does not hold.
    fn linked(&self, descriptor: &Descriptor) -> Option<Bytes> {
        if self.flaw == FileFlaw::IgnoresLinkedFiles
            || self.store.get(descriptor.digest()).is_some()
        {
            return None;
        }
        std::fs::read(self.file(descriptor.digest()))
            .ok()
            .map(Bytes::from)
    }
}

impl std::fmt::Display for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Files({:?})", self.flaw)
    }
}

#[async_trait]
impl StoreWrapper for Files {
    type Inner = MemoryStore;

    fn inner(&self) -> &MemoryStore {
        &self.store
    }

    async fn exists(&self, descriptor: &Descriptor) -> Result<bool> {
        Ok(self.linked(descriptor).is_some() || self.store.exists(descriptor).await?)
    }

    async fn fetch(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        match self.linked(descriptor) {
            Some(bytes) => Ok(bytes_stream(bytes)),
            None => self.store.fetch(descriptor).await,
        }
    }

    fn capabilities(&self) -> Capabilities<'_> {
        self.store.capabilities().with_local_blobs(self)
    }
}

#[async_trait]
impl WriteStoreWrapper for Files {
    async fn push(&self, descriptor: &Descriptor, data: ByteStream) -> Result<()> {
        self.store.push(descriptor, data).await?;
        let bytes = self.store.get(descriptor.digest()).expect("just pushed");
        let mut content = Vec::new();
        if self.flaw == FileFlaw::HeaderedFiles {
            content.extend_from_slice(b"FILE");
        }
        content.extend_from_slice(&bytes);
        std::fs::write(self.file(descriptor.digest()), content)
            .map_err(|e| Error::io("writing a blob file", e))
    }
}

impl LocalBlobs for Files {
    fn filesystem(&self) -> &str {
        &self.filesystem
    }

    fn blob_file(&self, digest: &Digest) -> Result<PathBuf> {
        Ok(self.file(digest))
    }

    fn staging_dir(&self) -> PathBuf {
        self.dir.path().join("staging")
    }
}

mod honest_files {
    use super::*;

    async fn subject() -> StoreSubject {
        files(FileFlaw::None)
    }

    ferry_conformance::store_suite!(setup: subject, declares: [list_tags, delete_tag, local_blobs]);
}

#[tokio::test]
#[should_panic(expected = "the blob file holds other bytes")]
async fn a_store_with_headers_in_its_blob_files_fails_the_local_blobs_rule() {
    store::local_blob_files_hold_exactly_the_committed_bytes(&files(FileFlaw::HeaderedFiles)).await;
}

#[tokio::test]
#[should_panic(expected = "a blob linked into its file is not present")]
async fn a_store_ignoring_linked_files_fails_the_local_blobs_rule() {
    store::local_blob_files_hold_exactly_the_committed_bytes(&files(FileFlaw::IgnoresLinkedFiles))
        .await;
}
