//! OCI archives: an OCI image layout in one tar (`oci-archive:`), the interchange format
//! `docker save` (Engine 25 and later), containerd, podman, skopeo, regctl and crane read
//! and write, as a ferry source and destination of many repositories at once (a bundle); and
//! `docker save` output (`docker-archive:`) as a source.
//!
//! # What ferry writes
//!
//! ```text
//! blobs/sha256/<hex>     every blob and manifest, once across all images and repositories,
//!                        byte for byte as the source has it (compressed layers stay so)
//! oci-layout             {"imageLayoutVersion":"1.0.0"}
//! manifest.json          Docker's list of the single-platform images, for `docker load`
//! index.json             one entry per tag: `org.opencontainers.image.ref.name` = the tag,
//!                        `io.containerd.image.name` = the full name, and the repository in
//!                        the bundle (`dev.ferry.archive.repository`)
//! ```
//!
//! The index files come last, after every blob: they name what the copies tagged, known
//! only once they are done.
//!
//! # How it plugs into copies and syncs
//!
//! Writing: an [`ArchiveWriter`] is a [`ferry_core::Catalog`] whose stores (one per
//! repository of the bundle) are [`ferry_core::WriteStore`]s, so `ferry sync` of many
//! repositories and `ferry cp` write into it through the copy engine and the sync runner
//! unchanged. Each push streams into the tar as the blob arrives from the source (entries take
//! turns; the engine's guarantee that children come before parents holds within the tar too),
//! a blob already written (or, for a delta, held at the destination) answers
//! [`ferry_core::ReadStore::exists`] with yes, and tags stay in memory until
//! [`ArchiveWriter::finish`] writes the index files and renames the file from its temporary
//! name. On standard output the same writer streams, and a failure leaves the stream without
//! `index.json`, which every reader refuses.
//!
//! Reading a file: [`open_oci`] and [`open_docker`] read the tar's member table (every name
//! and type checked first), walk every image to check the archive holds what its index
//! names, and return an [`ArchiveBundle`], a read-only [`ferry_core::Catalog`] whose stores
//! read each blob by offset: a copy of one image out of a large bundle reads that image's
//! bytes.
//!
//! Reading a stream (stdin, a pipe, a compressed file): a stream cannot be read by offset, and
//! an import must cost no scratch disk, so [`read_stream`] pushes each blob, verified, to the
//! destination store a [`Landing`] names as its entry arrives, and holds the manifests in
//! memory. The [`ArchiveBundle`] it returns serves the held manifests and, for blobs, the
//! stores they landed in; the sync or copy that follows pushes the manifests children first
//! and tags last, finding each blob present (or mounting it from the repository it landed
//! in). A stream that breaks off or a blob that fails its digest ends [`read_stream`] with an
//! error: nothing is tagged.
//!
//! # Deltas and receipts
//!
//! An import can write a [`Receipt`]: per repository, every manifest and blob the destination
//! now holds from the bundle, and the images. An export given a receipt (or the previous
//! archive) as a [`DeltaBase`] leaves that content out, and records a [`DeltaRecord`]: what of
//! it the new content needs and where at the destination it is. The import checks that
//! every such blob is there before it pushes anything ([`ArchiveBundle::check_expected`]).
//!
//! # Safety
//!
//! Every entry's name and type is checked before anything is written: absolute paths, `..`,
//! names other than `blobs/<algorithm>/<hex>`, `oci-layout`, `index.json`, `manifest.json`
//! (and Docker's ignored `repositories`), symbolic and hard links, devices and FIFOs are
//! refused ([`ferry_core::Error::InvalidInput`]), as is a name repeated with other content. A
//! truncated archive or an index naming what the archive lacks is
//! [`ferry_core::Error::Damaged`]; a blob that fails its digest is
//! [`ferry_core::Error::DigestMismatch`]. Nothing is ever extracted to a filesystem. A
//! Docker archive's links (skopeo writes `<id>/layer.tar` links) are followed inside the
//! member table only, never out of it.

/// `Debug` and `Display` of a repository store of an archive, by its identity's namespace
/// (`oci-archive:PATH:REPOSITORY`).
macro_rules! repository_store_names {
    ($store:ident) => {
        impl std::fmt::Debug for $store {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($store))
                    .field("store", &self.info.namespace)
                    .finish()
            }
        }

        impl std::fmt::Display for $store {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.info.namespace)
            }
        }
    };
}

mod bundle;
mod compression;
mod docker;
mod file;
mod index;
mod names;
mod receipt;
mod sink;
mod stream;
mod writer;

use std::path::Path;

pub use bundle::{ArchiveBundle, OCI_ARCHIVE};
pub use compression::Compression;
pub use docker::open_docker;
pub use file::{ReadOptions, file_stem, open_oci, probe};
pub use index::{BundleEntry, CONTAINERD_NAME, DELTA_ANNOTATION, REPOSITORY_ANNOTATION};
pub use names::{DOCKER_MANIFEST_FILE, REPOSITORIES_FILE};
pub use receipt::{
    DELTA_MEDIA_TYPE, DeltaRecord, Expected, RECEIPT_VERSION, Receipt, ReceiptImage,
    ReceiptRepository,
};
pub use stream::{Landing, OneStore, REPOSITORY_RECORD, StreamOptions, read_stream};
pub use writer::{ArchiveSummary, ArchiveWriter, DeltaBase, Target, WriterOptions};

use ferry_core::{Error, Result};

/// The base of a delta export: a receipt file (`--receipt` of an import), or the previous
/// archive itself, whose receipt is worked out from what it carries (and what it recorded of
/// its own base).
pub async fn load_delta_base(path: &Path, manifest_limit: u64) -> Result<DeltaBase> {
    let name = path.display().to_string();
    let head = {
        use std::io::Read;
        let mut file = file::open_file(path)?;
        let mut head = [0u8; 64];
        let n = file
            .read(&mut head)
            .map_err(|e| Error::io(format!("reading `{name}`"), e))?;
        head[..n].to_vec()
    };
    if head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        let receipt = Receipt::read(path)?;
        return Ok(DeltaBase::new(name, receipt));
    }
    let stem = file_stem(path);
    let bundle = if probe(path)? == Compression::None {
        let path = path.to_path_buf();
        let options = ReadOptions::new(stem).with_manifest_limit(manifest_limit);
        crate::layout::blocking(move || open_oci(&path, &options)).await?
    } else {
        let file = file::open_file(path)?;
        let options = StreamOptions::new(stem).with_manifest_limit(manifest_limit);
        read_stream(
            Box::new(file),
            &format!("oci-archive:{name}"),
            None,
            &options,
        )
        .await?
    };
    let images: Vec<(String, String, ferry_core::Descriptor)> = bundle
        .entries()
        .iter()
        .filter_map(|e| Some((e.repository.clone(), e.tag.clone()?, e.descriptor.clone())))
        .collect();
    let receipt = bundle.receipt(&images, "", true).await?;
    Ok(DeltaBase::new(name, receipt))
}
