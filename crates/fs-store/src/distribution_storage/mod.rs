//! Mounting blobs between registries that keep their data in the CNCF distribution storage
//! layout on one storage backend.
//!
//! Registry operators often run several registries on one storage backend: CNCF distribution
//! (`registry:2`), Harbor and GitLab's container registry all keep the same layout. Between
//! such registries a blob can be "mounted" at the storage layer, even across hosts, where the
//! OCI cross-repository mount (which works only within one registry) cannot help.
//! [`DistributionStorageMount`] does it without any blob byte passing through the client:
//!
//! 1. It applies when both the source and the destination store are registries (scheme
//!    `registry`) whose authorities (`host:port`) have a [`StorageRoot`] configured, and the
//!    descriptor is a blob (manifests are pushed over HTTP by the engine, and the registry
//!    then checks that their blobs are linked).
//! 2. When the destination repository links the blob already and its data is there, the
//!    outcome is `AlreadyPresent` ([`ferry_core::MountStrategy::probes_destination`] is true
//!    for the pairs it applies to, so the engine skips its own `HEAD`).
//! 3. The blob is taken from the source repository when its registry has a root, else (or
//!    when that fails) from the registry repositories where the blob-location cache saw it
//!    (the request's candidates) whose registries have a root, so a copy from a registry on
//!    other storage can still mount what an earlier copy brought to a registry on the
//!    destination's storage. The repository it is taken from must link the blob (a mount
//!    never hands out a blob that repository does not have). Unless that root is trusted,
//!    its data is read and hashed; data that does not match its digest is never linked.
//! 4. The blob data is made present under the destination root: nothing to do when it is
//!    there already (both registries share one root, or another repository of the
//!    destination has the blob); a hardlink between filesystem roots (on one filesystem; the
//!    roots being on different filesystems makes the strategy not applicable); a server-side
//!    `CopyObject` between roots in one S3 bucket.
//! 5. The destination repository's layer link is written, after the data.
//! 6. The destination registry is asked (`HEAD` of the blob) whether it now serves the blob;
//!    if it does not, the link just written is removed and the attempt is declined, so a
//!    wrong root can never make a copy believe a blob is there.
//!
//! Whatever prevents a mount (no root configured, storage unreachable, credentials refused,
//! data missing or corrupt, roots on different filesystems or buckets) is an outcome with a
//! reason (`NotApplicable` or `Declined`), never an error: the copy goes on with the next
//! strategy or by streaming.
//!
//! # The layout
//!
//! Under a registry's storage root (its `rootdirectory`; for S3, the key prefix inside the
//! bucket):
//!
//! ```text
//! docker/registry/v2/blobs/sha256/<first 2 hex>/<hex>/data                  the content
//! docker/registry/v2/repositories/<repo>/_layers/sha256/<hex>/link          "sha256:<hex>"
//! ```
//!
//! A link file holds the digest string without a trailing newline, as distribution writes it.
//! The data file and the repository's `_layers` link are all a registry needs to serve a blob
//! of a repository and to accept manifests that refer to it.
//!
//! # What operators configure
//!
//! - One [`StorageRoot`] per registry, under the authority its references use
//!   (`registry-a.example:5000`): `file:///srv/registry-a` for the `filesystem` driver with
//!   `rootdirectory: /srv/registry-a`, or `s3://bucket/tenant-b` for the `s3` driver with
//!   `bucket: bucket` and `rootdirectory: /tenant-b`. See [`StorageRoot::parse`] for the
//!   options (S3 endpoint, region, credentials; the `AWS_*` environment otherwise).
//! - A registry that has never stored anything has no root directory yet (distribution
//!   creates it on its first write). Such a root, inside a directory that exists, is an empty
//!   storage: the first mount creates it and the directories under it as distribution's
//!   filesystem driver does (mode `0777`, files `0666`, less the umask). A root whose parent
//!   directory is missing too is an unmounted volume or a wrong path: it is never created,
//!   and the strategy declines. An S3 prefix needs nothing created.
//! - Access: the process needs read access to the source root, and write access to the
//!   destination root, as the user the registry runs as or with permissions that let the
//!   registry read what it writes (files are created with the process's umask). Hardlinks
//!   between filesystem roots need both roots on one filesystem, and with
//!   `fs.protected_hardlinks=1` the process must own the source data files or be able to
//!   read and write them. S3 copies are made with the destination root's credentials, which
//!   must be able to read the source prefix.
//! - Trust: a root marked [trusted](StorageRoot::with_trusted) (`trusted = true`) is linked
//!   from without reading its data. Trust only storage that nothing but the registry writes.
//! - Caches: distribution's `storage.cache.blobdescriptor` cache (`inmemory` or `redis`)
//!   stores only descriptors of blobs it found, never "blob unknown" answers, so a blob linked
//!   behind the registry's back is served at once with or without it. A cache does keep
//!   answering for blobs deleted behind the registry's back; this strategy deletes nothing
//!   but a link it wrote itself and the registry refused to serve.
//! - Garbage collection: the registry's `garbage-collect` removes data that no manifest
//!   refers to, like any other; run it as usual. A mount whose manifest push then fails leaves
//!   a linked blob that the next garbage collection removes.
//!
//! ```no_run
//! # async fn demo(src: std::sync::Arc<dyn ferry_core::ReadStore>,
//! #               dst: std::sync::Arc<dyn ferry_core::WriteStore>) -> ferry_core::Result<()> {
//! use ferry_core::{copy, CopyOptions, MountChain};
//! use ferry_fs_store::distribution_storage::{DistributionStorageMount, StorageRoot};
//!
//! let mount = DistributionStorageMount::new()
//!     .with_registry(
//!         "registry-a.example:5000",
//!         StorageRoot::parse("s3://shared-bucket/tenant-a", [("trusted", "true")])?,
//!     )
//!     .with_registry(
//!         "registry-b.example:5000",
//!         StorageRoot::parse("s3://shared-bucket/tenant-b", [("region", "eu-west-1")])?,
//!     );
//! let options = CopyOptions::default().with_chain(MountChain::new().with(mount));
//! copy(src, "v1", dst, Some("v1"), &options).await?;
//! # Ok(()) }
//! ```

mod factory;
mod mount;
mod paths;
mod root;
#[cfg(feature = "s3")]
mod s3;

pub use factory::{DistributionStorageFactory, REST_AFTER_UNREACHABLE};
pub use mount::{DistributionStorageMount, NAME};
pub use root::{Backend, StorageRoot, TRUSTED_KEY};
#[cfg(feature = "s3")]
pub use root::{
    DEFAULT_S3_CONNECT_TIMEOUT, DEFAULT_S3_MAX_RETRIES, DEFAULT_S3_RETRY_TIMEOUT,
    DEFAULT_S3_TIMEOUT, S3_OPTION_KEYS, default_s3_retry, s3_retry,
};
