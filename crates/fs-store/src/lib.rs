//! ferry-fs-store: OCI image-layout directories as ferry stores, and the mount strategies that
//! link blobs at the storage layer: between layouts on one filesystem, and between registries
//! that share a storage backend.
//!
//! - [`OciLayout`] reads and writes an [OCI image layout] (`oci-layout`, `index.json`,
//!   `blobs/<algorithm>/<hex>`), the format skopeo, umoci, buildah and oras use. Every blob is
//!   verified while it is written and becomes visible only once whole; tags are
//!   `org.opencontainers.image.ref.name` annotations in `index.json`, updated atomically under
//!   a file lock so that concurrent processes lose no tag.
//! - [`OciDir`] is a directory of layouts, one per repository (`PATH/team/app`), as a
//!   [`ferry_core::Catalog`] a sync lists and writes: the form many repositories take across
//!   an air gap. Layouts delete tags ([`ferry_core::DeleteTag`]) atomically under the lock.
//! - [`archive`]: an OCI layout in one tar (`oci-archive:`, `.tar.gz`, `.tar.zst`), many
//!   repositories at once, written as a [`ferry_core::Catalog`] ([`ArchiveWriter`]) that
//!   streams each blob into the tar as it arrives, and read as one ([`ArchiveBundle`]) by
//!   offset from a file or in one pass from a stream; `docker save` output as a source;
//!   deltas against a receipt of the previous import.
//! - [`SharedStorageMount`] is a [`ferry_core::MountStrategy`] for two layouts on one
//!   filesystem: it clones the source blob file (reflink) where the filesystem can, else
//!   hardlinks it, so no byte is copied. It verifies the source file's digest first unless
//!   built with [`SharedStorageMount::trusting`].
//! - [`DistributionStorageMount`] is a [`ferry_core::MountStrategy`] for registries (CNCF
//!   distribution, Harbor, GitLab) that keep their data in the distribution storage layout on
//!   a shared backend. Given one [`StorageRoot`] per registry authority (`file:///srv/reg-a`
//!   for the `filesystem` driver, `s3://bucket/prefix` for the `s3` driver), it makes the
//!   blob data present under the destination's root (hardlink on a filesystem, server-side
//!   copy within an S3 bucket, nothing when the roots are one), writes the destination
//!   repository's layer link, and has the destination registry confirm it serves the blob.
//!   No blob byte passes through the client. See `distribution_storage` for the layout,
//!   what operators configure, and trust.
//!
//! # Features
//!
//! - `distribution-storage`: [`DistributionStorageMount`] and [`StorageRoot`] on filesystem
//!   roots (object_store's local filesystem).
//! - `s3` (implies `distribution-storage`): S3-compatible roots, through object_store's S3
//!   client (reqwest, rustls with ring, handed to the client explicitly: the crate never
//!   installs a process-wide rustls provider).
//!
//! No feature is on by default: a program that only copies between layouts compiles neither
//! object_store nor reqwest. The `ferry` CLI turns `s3` on.
//!
//! ```no_run
//! # async fn demo() -> ferry_core::Result<()> {
//! use std::sync::Arc;
//! use ferry_core::{copy, CopyOptions, MountChain};
//! use ferry_fs_store::{OciLayout, SharedStorageMount};
//!
//! let src = Arc::new(OciLayout::open("images/app")?);
//! let dst = Arc::new(OciLayout::open_or_create("mirror/app")?);
//! let options = CopyOptions::default().with_chain(MountChain::new().with(SharedStorageMount::new()));
//! copy(src, "v1", dst, Some("v1"), &options).await?;
//! # Ok(()) }
//! ```
//!
//! [OCI image layout]: https://github.com/opencontainers/image-spec/blob/main/image-layout.md

pub mod archive;
pub mod dir;
#[cfg(feature = "distribution-storage")]
pub mod distribution_storage;
mod lanes;
pub mod layout;
pub mod planned;
pub mod shared;

pub use archive::{ArchiveBundle, ArchiveWriter};
pub use dir::OciDir;
#[cfg(feature = "distribution-storage")]
pub use distribution_storage::{DistributionStorageFactory, DistributionStorageMount, StorageRoot};
pub use layout::{OciLayout, blob_path_in, parse_digest, validate_tag};
pub use planned::PlannedLayout;
pub use shared::{SharedStorageFactory, SharedStorageMount};
