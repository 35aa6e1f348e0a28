//! [`OciDir`]: a directory of OCI image layouts, one per repository (`PATH/team/app`), as a
//! [`ferry_core::Catalog`]: the form a sync takes to carry many repositories across an air
//! gap, in either direction.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::{Catalog, Error, ReadStore, Result, StoreInfo, WriteStore};
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::layout::{BLOBS_DIR, LAYOUT_FILE, OciLayout, WORK_DIR, blocking};

/// The scheme of [`OciDir`] in [`StoreInfo`].
pub const OCI_DIR: &str = "oci-dir";

/// A directory whose layouts are named by their path below it: `PATH/team/app` is the layout
/// of repository `team/app`, and `PATH/team/app/sub` that of `team/app/sub`, as a registry
/// may hold both. Listing walks the directory for `oci-layout` files (not into a layout's
/// `blobs`, not into hidden directories, not through symbolic links); writing creates the
/// layout of a repository when it is first written.
///
/// The layouts of one directory are on one filesystem (as [`StoreInfo::authority`] says), so
/// a sync into it with [`crate::SharedStorageMount`] links each blob from the layout that
/// received it first: the export stores every blob once on disk.
#[derive(Debug, Clone)]
pub struct OciDir {
    root: PathBuf,
    info: StoreInfo,
}

impl OciDir {
    /// Opens the directory `path`, which must exist.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    what: format!("directory of OCI layouts `{}`", path.display()),
                    hint: Some("check the path after `oci-dir:`".into()),
                });
            }
            Err(e) => return Err(Error::io(format!("reading `{}`", path.display()), e)),
        };
        if !meta.is_dir() {
            return Err(Error::invalid(
                "directory",
                path.display().to_string(),
                "not a directory; `oci-dir:` names a directory holding one OCI layout per repository",
            ));
        }
        if path.join(LAYOUT_FILE).exists() {
            return Err(Error::invalid(
                "directory",
                path.display().to_string(),
                "it is an OCI layout itself; write `oci:PATH` for one layout, `oci-dir:PATH/` \
                 for a directory of them",
            ));
        }
        let root = fs_err::canonicalize(path).map_err(|e| Error::io("opening the directory", e))?;
        let info = StoreInfo::new(
            OCI_DIR,
            format!("dev:{}", meta.dev()),
            root.to_string_lossy().into_owned(),
        );
        Ok(Self { root, info })
    }

    /// Opens the directory `path`, creating it when missing.
    pub fn open_or_create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        fs_err::create_dir_all(path).map_err(|e| Error::io("creating the directory", e))?;
        Self::open(path)
    }

    /// The directory's absolute, canonical path.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Where the layout of repository `name` is.
    pub fn layout_path(&self, name: &str) -> Result<PathBuf> {
        let bad = |why: &str| Error::invalid("repository", name, why.to_string());
        if name.is_empty() {
            return Err(bad("empty"));
        }
        if name.contains('\0') || name.contains('\\') {
            return Err(bad(
                "a layout name is `/`-separated path components without NUL or `\\`",
            ));
        }
        for component in name.split('/') {
            if component.is_empty() || component.starts_with('.') {
                return Err(bad(
                    "each `/`-separated component must be a plain name (not empty, no leading \
                     `.`, so no `.`, `..` or absolute path)",
                ));
            }
        }
        Ok(self.root.join(name))
    }

    /// The relative names of every layout below the directory, sorted, layouts below other
    /// layouts included.
    pub fn layouts(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        // Each directory to walk, and whether it is a layout (whose `blobs` holds no layout).
        let mut pending = vec![(PathBuf::new(), false)];
        while let Some((rel, in_layout)) = pending.pop() {
            let dir = self.root.join(&rel);
            let entries = fs_err::read_dir(&dir)
                .map_err(|e| Error::io(format!("listing `{}`", dir.display()), e))?;
            for entry in entries {
                let entry =
                    entry.map_err(|e| Error::io(format!("listing `{}`", dir.display()), e))?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else {
                    tracing::warn!(path = %entry.path().display(), "skipping a directory whose name is not UTF-8");
                    continue;
                };
                if name.starts_with('.') || name == WORK_DIR || (in_layout && name == BLOBS_DIR) {
                    continue;
                }
                let kind = entry
                    .file_type()
                    .map_err(|e| Error::io(format!("reading `{}`", entry.path().display()), e))?;
                if !kind.is_dir() {
                    continue;
                }
                let child = rel.join(name);
                let is_layout = entry.path().join(LAYOUT_FILE).is_file();
                if is_layout {
                    out.push(child.to_string_lossy().into_owned());
                }
                pending.push((child, is_layout));
            }
        }
        out.sort();
        Ok(out)
    }
}

impl std::fmt::Display for OciDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "oci-dir:{}", self.root.display())
    }
}

#[async_trait]
impl Catalog for OciDir {
    fn info(&self) -> &StoreInfo {
        &self.info
    }

    fn list(&self, prefix: &str) -> BoxStream<'static, Result<String>> {
        let this = self.clone();
        let prefix = prefix.to_string();
        futures::stream::once(async move { blocking(move || this.layouts()).await })
            .flat_map(move |listed| {
                let items: Vec<Result<String>> = match listed {
                    Ok(names) => names
                        .into_iter()
                        .filter(|n| n.starts_with(prefix.as_str()))
                        .map(Ok)
                        .collect(),
                    Err(e) => vec![Err(e)],
                };
                futures::stream::iter(items)
            })
            .boxed()
    }

    /// The layout `name` would be: an OCI layout on the directory's filesystem.
    fn store_info(&self, name: &str) -> StoreInfo {
        let path = if name.is_empty() {
            self.root.clone()
        } else {
            self.root.join(name)
        };
        StoreInfo::new(
            StoreInfo::OCI_LAYOUT,
            self.info.authority.clone(),
            path.to_string_lossy().into_owned(),
        )
    }

    async fn open_read(&self, name: &str) -> Result<Arc<dyn ReadStore>> {
        let path = self.layout_path(name)?;
        Ok(Arc::new(blocking(move || OciLayout::open(path)).await?))
    }

    async fn open_write(&self, name: &str, create: bool) -> Result<Option<Arc<dyn WriteStore>>> {
        let path = self.layout_path(name)?;
        blocking(move || {
            if path.join(LAYOUT_FILE).exists() {
                return Ok(Some(
                    Arc::new(OciLayout::open(&path)?) as Arc<dyn WriteStore>
                ));
            }
            if !create {
                return Ok(None);
            }
            Ok(Some(
                Arc::new(OciLayout::open_or_create(&path)?) as Arc<dyn WriteStore>
            ))
        })
        .await
    }
}
