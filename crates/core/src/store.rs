//! The store traits: where content is read from and written to.

use std::fmt::{Debug, Display};
use std::path::PathBuf;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use oci_spec::image::{Descriptor, Digest};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A stream of content bytes, as fetched from a store or given to one.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send + 'static>>;

/// A [`ByteStream`] over bytes already in memory.
pub fn bytes_stream(data: Bytes) -> ByteStream {
    Box::pin(futures::stream::once(async move { Ok(data) }))
}

/// A write path left open by a mount attempt (an OCI upload session a registry opened when it
/// answered a mount with 202). The engine streams the fallback copy into it, so a failed mount
/// costs no extra request.
#[async_trait]
pub trait PreparedUpload: Debug + Send + Sync {
    /// Streams `data` into the prepared path and commits it as `descriptor`. Commits only
    /// content whose size and digest match.
    async fn upload(self: Box<Self>, descriptor: &Descriptor, data: ByteStream) -> Result<()>;

    /// Abandons the prepared path (cancels the upload session).
    async fn cancel(self: Box<Self>) -> Result<()>;
}

/// Who a store is: enough for a mount strategy to decide whether it applies, without
/// downcasting, and for the blob-location cache to name where content lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StoreInfo {
    /// The kind of store: [`StoreInfo::REGISTRY`], [`StoreInfo::OCI_LAYOUT`], `memory`, or a
    /// vendor's own scheme.
    pub scheme: String,
    /// The server or storage holding the content: `host:port` for a registry, a filesystem
    /// identity (`dev:<device id>`) for a layout.
    pub authority: String,
    /// The place inside the authority: a repository name, a layout's absolute path.
    pub namespace: String,
}

impl StoreInfo {
    /// The scheme of OCI distribution registries.
    pub const REGISTRY: &'static str = "registry";
    /// The scheme of OCI image-layout directories.
    pub const OCI_LAYOUT: &'static str = "oci-layout";
    /// The scheme of IPFS addresses: the namespace is a CID, the authority the gateway asked
    /// (or empty).
    pub const IPFS: &'static str = "ipfs";

    /// A new store identity.
    pub fn new(
        scheme: impl Into<String>,
        authority: impl Into<String>,
        namespace: impl Into<String>,
    ) -> Self {
        Self {
            scheme: scheme.into(),
            authority: authority.into(),
            namespace: namespace.into(),
        }
    }

    /// Whether `other` is served by the same authority under the same scheme.
    pub fn same_authority(&self, other: &StoreInfo) -> bool {
        self.scheme == other.scheme && self.authority == other.authority
    }

    /// The store as seen from `here`: a repository of the registry `here` belongs to is named
    /// by its repository alone (`src/app`), anything else as [`Display`] names it.
    pub fn shown_from(&self, here: &StoreInfo) -> String {
        if self.scheme == StoreInfo::REGISTRY && self.same_authority(here) {
            if self.namespace.is_empty() {
                return "(any repository)".to_string();
            }
            return self.namespace.clone();
        }
        self.to_string()
    }
}

/// `host:port/repository` for a registry (`host:port (any repository)` without one),
/// `ipfs://CID` for an IPFS address, the path or name otherwise.
impl Display for StoreInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.scheme.as_str() {
            StoreInfo::REGISTRY if self.namespace.is_empty() => {
                write!(f, "{} (any repository)", self.authority)
            }
            StoreInfo::REGISTRY => write!(f, "{}/{}", self.authority, self.namespace),
            StoreInfo::IPFS => write!(f, "ipfs://{}", self.namespace),
            _ => f.write_str(&self.namespace),
        }
    }
}

/// The read side of a store. Object-safe; stores are used as `Arc<dyn ReadStore>`.
#[async_trait]
pub trait ReadStore: Display + Debug + Send + Sync + 'static {
    /// Who this store is.
    fn info(&self) -> &StoreInfo;

    /// Whether the store holds the content `descriptor` names.
    async fn exists(&self, descriptor: &Descriptor) -> Result<bool>;

    /// The content `descriptor` names, as a stream. Callers that commit it verify it (see
    /// [`crate::verify_stream`]); [`crate::Error::NotFound`] when it is missing.
    async fn fetch(&self, descriptor: &Descriptor) -> Result<ByteStream>;

    /// The descriptor a tag or digest reference names in this store.
    async fn resolve(&self, reference: &str) -> Result<Descriptor>;

    /// The manifests whose `subject` is `subject` (signatures, SBOMs, attestations).
    async fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>>;

    /// Optional abilities of this store: listing and deleting tags, fetching from an address,
    /// acting as a registry repository, holding blobs as local files. None by default. A
    /// wrapper store forwards its inner store's (or offers its own implementations that wrap
    /// them), so a strategy that needs one works through any wrapper.
    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities::default()
    }
}

/// The write side of a store.
#[async_trait]
pub trait WriteStore: ReadStore {
    /// Stores `data` as the content `descriptor` names. Commits only when the bytes match the
    /// descriptor's size and digest; on any error nothing is visible. Pushing content the store
    /// already holds succeeds.
    async fn push(&self, descriptor: &Descriptor, data: ByteStream) -> Result<()>;

    /// Points `tag` at `descriptor`, which the store must already hold.
    async fn tag(&self, descriptor: &Descriptor, tag: &str) -> Result<()>;

    /// Stores the manifest `descriptor` from `data` and points `tag` at it. A store that can do
    /// both at once overrides this (a registry `PUT`s the manifest by tag: one request instead
    /// of two); the default pushes, then tags.
    async fn push_tagged(
        &self,
        descriptor: &Descriptor,
        data: ByteStream,
        tag: &str,
    ) -> Result<()> {
        self.push(descriptor, data).await?;
        self.tag(descriptor, tag).await
    }
}

/// Optional abilities a store may offer to the engine, to strategies and to sync.
#[derive(Default, Clone, Copy)]
#[non_exhaustive]
pub struct Capabilities<'a> {
    /// The destination can fetch content from an address (an `ipfs://` URL, for instance)
    /// itself, so no byte passes through the client.
    pub fetch_from_address: Option<&'a dyn FetchFromAddress>,
    /// The store can list its tags.
    pub list_tags: Option<&'a dyn ListTags>,
    /// The store can remove a tag.
    pub delete_tag: Option<&'a dyn DeleteTag>,
    /// The store can remove a manifest by digest, with every tag naming it.
    pub delete_manifest: Option<&'a dyn DeleteManifest>,
    /// The store can tell what a tag names more cheaply than [`ReadStore::resolve`].
    pub peek: Option<&'a dyn Peek>,
    /// The store is a repository of an OCI distribution registry that a strategy can ask to
    /// mount a blob from another of its repositories.
    pub registry_repository: Option<&'a dyn RegistryRepository>,
    /// The store keeps each blob as an immutable file on a local filesystem, which a strategy
    /// can link into another store on the same filesystem.
    pub local_blobs: Option<&'a dyn LocalBlobs>,
    /// The store can tell, without a request per blob, that it lacks content.
    pub known_absent: Option<&'a dyn KnownAbsent>,
}

impl<'a> Capabilities<'a> {
    /// Offers [`FetchFromAddress`]. `Capabilities` is `#[non_exhaustive]`, so a store outside
    /// ferry-core builds it with this rather than a struct literal:
    ///
    /// ```
    /// # use ferry_core::{Capabilities, FetchFromAddress};
    /// # fn demo(fetcher: &dyn FetchFromAddress) {
    /// let capabilities = Capabilities::default().with_fetch_from_address(fetcher);
    /// assert!(capabilities.fetch_from_address.is_some());
    /// # }
    /// ```
    pub fn with_fetch_from_address(mut self, fetcher: &'a dyn FetchFromAddress) -> Self {
        self.fetch_from_address = Some(fetcher);
        self
    }
}

impl<'a> Capabilities<'a> {
    /// Offers [`ListTags`].
    pub fn with_list_tags(mut self, lister: &'a dyn ListTags) -> Self {
        self.list_tags = Some(lister);
        self
    }

    /// Offers [`DeleteTag`].
    pub fn with_delete_tag(mut self, deleter: &'a dyn DeleteTag) -> Self {
        self.delete_tag = Some(deleter);
        self
    }

    /// Offers [`DeleteManifest`].
    pub fn with_delete_manifest(mut self, deleter: &'a dyn DeleteManifest) -> Self {
        self.delete_manifest = Some(deleter);
        self
    }

    /// Offers [`Peek`].
    pub fn with_peek(mut self, peek: &'a dyn Peek) -> Self {
        self.peek = Some(peek);
        self
    }

    /// Offers [`RegistryRepository`].
    pub fn with_registry_repository(mut self, repository: &'a dyn RegistryRepository) -> Self {
        self.registry_repository = Some(repository);
        self
    }

    /// Offers [`LocalBlobs`].
    pub fn with_local_blobs(mut self, blobs: &'a dyn LocalBlobs) -> Self {
        self.local_blobs = Some(blobs);
        self
    }

    /// Offers [`KnownAbsent`].
    pub fn with_known_absent(mut self, known: &'a dyn KnownAbsent) -> Self {
        self.known_absent = Some(known);
        self
    }
}

impl Debug for Capabilities<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capabilities")
            .field("fetch_from_address", &self.fetch_from_address.is_some())
            .field("list_tags", &self.list_tags.is_some())
            .field("delete_tag", &self.delete_tag.is_some())
            .field("delete_manifest", &self.delete_manifest.is_some())
            .field("peek", &self.peek.is_some())
            .field("registry_repository", &self.registry_repository.is_some())
            .field("local_blobs", &self.local_blobs.is_some())
            .field("known_absent", &self.known_absent.is_some())
            .finish()
    }
}

/// A store that can list its tags.
#[async_trait]
pub trait ListTags: Send + Sync {
    /// Every tag of the store, all pages of a paged listing followed. An error means the
    /// listing is incomplete: a caller must not take a tag's absence from a failed listing as
    /// its deletion.
    async fn list_tags(&self) -> Result<Vec<String>>;

    /// Every tag with the descriptor it names, when the store knows them without a request
    /// per tag (a layout's `index.json`, memory); `Ok(None)` when it does not (a registry),
    /// and a caller resolves the tags it needs.
    async fn list_tags_resolved(&self) -> Result<Option<Vec<(String, Descriptor)>>> {
        Ok(None)
    }
}

/// A store that can remove a tag without removing content other tags still name.
#[async_trait]
pub trait DeleteTag: Send + Sync {
    /// Removes `tag`. Removing a tag the store does not have is [`crate::Error::NotFound`].
    async fn delete_tag(&self, tag: &str) -> Result<()>;
}

/// A store that can remove a manifest by digest: the manifest goes, and with it every tag
/// naming it (a registry's `DELETE /v2/<name>/manifests/<digest>`, the entries of a layout's
/// `index.json`). Blobs are left to the store's garbage collection.
#[async_trait]
pub trait DeleteManifest: Send + Sync {
    /// Removes manifest `digest`. Removing one the store does not have is
    /// [`crate::Error::NotFound`].
    async fn delete_manifest(&self, digest: &Digest) -> Result<()>;
}

/// A store that can tell, without asking for each blob, that it lacks content: a registry
/// repository that its tag listing showed to be new holds only what was written into it since.
/// The copy engine asks it before its own existence check of a node and skips the check when
/// the answer is yes; strategies that check what they linked ask [`ReadStore::exists`], which
/// always asks the store itself.
#[async_trait]
pub trait KnownAbsent: Send + Sync {
    /// Whether `descriptor` is known not to be in the store (`false`: not known; ask).
    async fn known_absent(&self, descriptor: &Descriptor) -> bool;
}

/// A store that can tell what a tag names by a cheaper request than [`ReadStore::resolve`]
/// makes: a registry answers a `HEAD` with the digest, size and type, where a resolve that
/// keeps the manifest for the copy that follows is a `GET`. A sync compares tags with it and
/// resolves only the tags it copies.
#[async_trait]
pub trait Peek: Send + Sync {
    /// The descriptor `reference` (a tag or digest) names; [`crate::Error::NotFound`] when
    /// there is none.
    async fn peek(&self, reference: &str) -> Result<Descriptor>;
}

/// A destination that can obtain content from an address by itself, verifying it against the
/// descriptor before committing it.
#[async_trait]
pub trait FetchFromAddress: Send + Sync {
    /// Whether this destination can fetch from `address` (by its scheme, for instance).
    fn accepts(&self, address: &str) -> bool;

    /// Makes the destination fetch `descriptor`'s content from `address`. Returns `Ok(true)`
    /// when the content is now committed, `Ok(false)` when the destination could not get it.
    async fn fetch_from_address(&self, descriptor: &Descriptor, address: &str) -> Result<bool>;
}

/// A repository of an OCI distribution registry, as a mount strategy can use it: who it is, and
/// the registry's cross-repository blob mount
/// (`POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<repository>`).
///
/// A store that talks to a registry offers it through [`Capabilities::registry_repository`];
/// a strategy never needs the store's concrete type, so the mount works through any wrapper
/// that forwards the capability.
#[async_trait]
pub trait RegistryRepository: Send + Sync {
    /// The registry, as [`StoreInfo::authority`] names it (`host:port`).
    fn registry(&self) -> &str;

    /// The repository's name in the registry (`team/app`).
    fn repository(&self) -> &str;

    /// Asks the registry to mount blob `digest` into this repository from the repository
    /// `from` of the same registry, or, with `None`, from any repository the identity may
    /// read (as the distribution specification allows a registry to do). `mountable` names
    /// every repository the caller may try in this attempt, so that a registry with token
    /// authentication grants one token covering them all.
    ///
    /// A refusal of any kind (`401`, `403`, `404`, an unknown blob) is [`BlobMount::Refused`],
    /// not an error; `Err` is kept for requests that could not be made.
    async fn mount_blob(
        &self,
        digest: &Digest,
        from: Option<&str>,
        mountable: &[String],
    ) -> Result<BlobMount>;
}

/// The registry's answer to [`RegistryRepository::mount_blob`].
#[derive(Debug)]
#[non_exhaustive]
pub enum BlobMount {
    /// `201`: the repository now holds the blob (it may have held it already).
    Mounted,
    /// `202`: the registry opened an upload session instead. Stream the blob into it, or
    /// cancel it.
    Upload(Box<dyn PreparedUpload>),
    /// Any other answer: the blob was not mounted, and why.
    Refused(String),
}

/// A store that keeps every blob as an immutable file on a local filesystem (an OCI image
/// layout's `blobs/<algorithm>/<hex>`).
///
/// A strategy may read a blob's file, and commit a blob into the store by creating
/// [`LocalBlobs::blob_file`] without replacing an existing file (a hardlink, or a rename
/// without clobbering of a file prepared in [`LocalBlobs::staging_dir`]), once it has made sure
/// the file holds exactly the blob's bytes. The store serves a blob whose file exists, and
/// never opens a committed blob file for writing, so sharing its inode with another store is
/// safe.
pub trait LocalBlobs: Send + Sync {
    /// The filesystem holding the blob files: equal for two stores exactly when a file of one
    /// can be hardlinked into the other (`dev:<device id>`, as [`StoreInfo::authority`] of an
    /// OCI layout).
    fn filesystem(&self) -> &str;

    /// The file that holds, or would hold, blob `digest`. Refuses digests the store cannot
    /// hold.
    fn blob_file(&self, digest: &Digest) -> Result<PathBuf>;

    /// A directory on the same filesystem where files are prepared before they are renamed to
    /// [`LocalBlobs::blob_file`]; it may not exist yet.
    fn staging_dir(&self) -> PathBuf;
}
