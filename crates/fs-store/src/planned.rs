//! [`PlannedLayout`]: an OCI layout that does not exist yet, as a dry run sees it.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use ferry_core::{
    ByteStream, Capabilities, Descriptor, Digest, Error, LocalBlobs, MemoryStore, Result,
    StoreInfo, StoreWrapper, WriteStoreWrapper,
};

use crate::layout::blob_path_in;

/// The destination of a dry run into a layout directory that does not exist yet: it holds
/// nothing and refuses every write, but names the layout's path and the filesystem it would be
/// created on (that of its nearest existing ancestor directory), and offers the files its blobs
/// would have ([`LocalBlobs`]), so a plan can tell that a blob would be linked there (a
/// [`SharedStorageMount`](crate::SharedStorageMount) from a layout on the same filesystem).
/// Nothing is created, not even the directory.
#[derive(Debug)]
pub struct PlannedLayout {
    empty: MemoryStore,
    info: StoreInfo,
    root: PathBuf,
}

impl PlannedLayout {
    /// The layout `path` would be. Fails when no ancestor of `path` can be read.
    pub fn new(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let absolute = std::path::absolute(path)
            .map_err(|e| Error::io(format!("resolving `{}`", path.display()), e))?;
        let mut existing = absolute.as_path();
        let meta = loop {
            match std::fs::metadata(existing) {
                Ok(m) => break m,
                Err(e) => match existing.parent() {
                    Some(parent) => existing = parent,
                    None => {
                        return Err(Error::io(
                            format!("finding where `{}` would be created", path.display()),
                            e,
                        ));
                    }
                },
            }
        };
        let info = StoreInfo::new(
            StoreInfo::OCI_LAYOUT,
            format!("dev:{}", meta.dev()),
            absolute.to_string_lossy().into_owned(),
        );
        Ok(Self {
            empty: MemoryStore::new(absolute.display().to_string()),
            info,
            root: absolute,
        })
    }

    fn refuse(&self) -> Error {
        Error::invalid(
            "destination",
            self.root.display().to_string(),
            "a layout planned by a dry run is never written",
        )
    }
}

impl fmt::Display for PlannedLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[oci-layout, to be created] {}", self.root.display())
    }
}

#[async_trait]
impl StoreWrapper for PlannedLayout {
    type Inner = MemoryStore;

    fn inner(&self) -> &MemoryStore {
        &self.empty
    }

    fn info(&self) -> &StoreInfo {
        &self.info
    }

    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities::default().with_local_blobs(self)
    }
}

#[async_trait]
impl WriteStoreWrapper for PlannedLayout {
    async fn push(&self, _descriptor: &Descriptor, _data: ByteStream) -> Result<()> {
        Err(self.refuse())
    }

    async fn tag(&self, _descriptor: &Descriptor, _tag: &str) -> Result<()> {
        Err(self.refuse())
    }

    async fn push_tagged(&self, _: &Descriptor, _: ByteStream, _: &str) -> Result<()> {
        Err(self.refuse())
    }
}

impl LocalBlobs for PlannedLayout {
    fn filesystem(&self) -> &str {
        &self.info.authority
    }

    fn blob_file(&self, digest: &Digest) -> Result<PathBuf> {
        blob_path_in(&self.root, digest)
    }

    fn staging_dir(&self) -> PathBuf {
        self.root.join(".ferry-planned")
    }
}
