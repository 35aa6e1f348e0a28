//! [`SharedStorageMount`]: links a blob file from one OCI layout into another on the same
//! filesystem, by reflink where the filesystem can clone files, else by hardlink.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ferry_core::model::DigestAlgorithm;
use ferry_core::{
    CorruptLocation, Digest, Error, Hasher, MountMethod, MountOutcome, MountPlan, MountRequest,
    MountStrategy, Result, StoreInfo,
};

use crate::lanes::{self, Failure};
use crate::layout::{blob_path_in, blocking};

/// How a blob was brought over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Reflink,
    Hardlink,
}

impl From<Method> for MountMethod {
    fn from(method: Method) -> Self {
        match method {
            Method::Reflink => MountMethod::Reflink,
            Method::Hardlink => MountMethod::Hardlink,
        }
    }
}

/// What the file work found.
enum Linked {
    /// Linked by this method.
    Done(Method),
    /// The destination holds the blob already.
    Present,
    /// The source file is missing, or changed while it was verified: declined.
    Corrupt(String),
    /// The source file has the wrong size or content: declined, and worth a warning when
    /// another place supplies the blob.
    Damaged(String),
    /// The filesystem cannot link these files: not applicable.
    Unsupported(String),
}

/// A [`MountStrategy`] for two OCI image layouts on one filesystem (same
/// [`StoreInfo::authority`], the device id): the destination gets the source's blob file by
/// reflink (a copy-on-write clone, on XFS, Btrfs, bcachefs...) where the filesystem supports
/// it, else by hardlink. No byte is copied either way; committed blobs are immutable, so
/// sharing an inode is safe.
///
/// By default the source file is hashed first (read, never written) and a file that does not
/// match its digest is not linked: a corrupt layout must not spread. [`Self::trusting`] skips
/// that read. Files verified at the same time (the blobs of an image, mounted concurrently) are
/// hashed together, up to four in lockstep per core, which on CPUs with SHA extensions takes
/// about half the time of one file per core after another.
///
/// The blob is taken from the source layout when it is on the destination's filesystem, else
/// (and when verifying) from another layout on that filesystem that the blob-location cache
/// names among the request's candidates, so a copy from a registry can still link what an
/// earlier copy put on disk. Only a destination that offers its blob files
/// ([`ferry_core::LocalBlobs`] among its capabilities, as an [`OciLayout`](crate::OciLayout)
/// does, and any wrapper that forwards them) is ever written; the source's file is found the
/// same way, or from the path of a layout its [`StoreInfo`] names.
///
/// A mount reports the method actually used, [`MountMethod::Reflink`] or
/// [`MountMethod::Hardlink`], and comes `from` the path of the layout the file came from.
#[derive(Debug, Clone, Default)]
pub struct SharedStorageMount {
    trusted: bool,
    /// Filesystems (device ids) where a clone failed: later blobs go straight to a hardlink
    /// instead of creating and removing a temporary file each.
    cannot_clone: Arc<Mutex<HashSet<String>>>,
}

impl SharedStorageMount {
    /// The strategy, verifying every source file before linking it.
    pub fn new() -> Self {
        Self::default()
    }

    /// The strategy, linking source files without reading them (the source layout is trusted).
    pub fn trusting() -> Self {
        Self::new().with_trusted(true)
    }

    /// Sets whether source files are trusted without being hashed.
    pub fn with_trusted(mut self, trusted: bool) -> Self {
        self.trusted = trusted;
        self
    }

    /// Whether source files are hashed before being linked.
    pub fn verifies(&self) -> bool {
        !self.trusted
    }
}

impl std::fmt::Display for SharedStorageMount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.trusted {
            f.write_str("SharedStorageMount(trusted)")
        } else {
            f.write_str("SharedStorageMount")
        }
    }
}

/// Sets the flag when the mount future is dropped, so the file work stops early.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[async_trait]
impl MountStrategy for SharedStorageMount {
    fn name(&self) -> &str {
        "shared-storage"
    }

    async fn mount(&self, request: &MountRequest<'_>) -> Result<MountOutcome> {
        let (dst_blobs, origins) = match self.origins(request)? {
            Ok(found) => found,
            Err(reason) => return Ok(MountOutcome::not_applicable(reason)),
        };
        let filesystem = dst_blobs.filesystem();
        let dst = request.destination.info();
        let digest = request.descriptor.digest().clone();
        let dst_path = dst_blobs.blob_file(&digest)?;
        if tokio::fs::metadata(&dst_path)
            .await
            .is_ok_and(|m| m.is_file())
        {
            return Ok(MountOutcome::AlreadyPresent);
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let _guard = CancelOnDrop(cancel.clone());
        let try_clone = !self
            .cannot_clone
            .lock()
            .expect("clone memo lock")
            .contains(filesystem);
        let tmp_dir = dst_blobs.staging_dir();
        let mut declined = Vec::new();
        let mut unsupported = Vec::new();
        let mut corrupt = Vec::new();
        for origin in origins {
            tracing::debug!(
                strategy = %self,
                %digest,
                source = %origin.path.display(),
                destination = %dst.namespace,
                "shared-storage mount attempt"
            );
            let work = LinkWork {
                src_path: origin.path,
                dst_path: dst_path.clone(),
                tmp_dir: tmp_dir.clone(),
                digest: digest.clone(),
                size: request.descriptor.size(),
                verify: !self.trusted,
                try_clone,
                cancel: cancel.clone(),
            };
            match blocking(move || work.run()).await? {
                Linked::Done(method) => {
                    if method == Method::Hardlink && try_clone {
                        // The clone was refused: this filesystem cannot clone.
                        self.cannot_clone
                            .lock()
                            .expect("clone memo lock")
                            .insert(filesystem.to_string());
                    }
                    return Ok(
                        MountOutcome::mounted(origin.place, method.into()).with_corrupt(corrupt)
                    );
                }
                Linked::Present => return Ok(MountOutcome::AlreadyPresent),
                Linked::Damaged(reason) => {
                    corrupt.push(CorruptLocation::new(
                        origin.place,
                        origin.is_source,
                        reason.clone(),
                    ));
                    declined.push(reason);
                }
                Linked::Corrupt(reason) => declined.push(reason),
                Linked::Unsupported(reason) => unsupported.push(reason),
            }
        }
        Ok(if declined.is_empty() {
            MountOutcome::not_applicable(unsupported.join("; "))
        } else {
            declined.extend(unsupported);
            MountOutcome::declined(declined.join("; "))
        })
    }

    /// Stats only: the destination's blob file (present), then each place the blob's file
    /// may be taken from, the first whose file exists with the blob's size being where a
    /// mount is expected from. The file's content is hashed only by the mount itself.
    async fn plan(&self, request: &MountRequest<'_>) -> Result<MountPlan> {
        let (dst_blobs, origins) = match self.origins(request)? {
            Ok(found) => found,
            Err(reason) => return Ok(MountPlan::not_applicable(reason)),
        };
        let digest = request.descriptor.digest();
        let dst_path = dst_blobs.blob_file(digest)?;
        if tokio::fs::metadata(&dst_path)
            .await
            .is_ok_and(|m| m.is_file())
        {
            return Ok(MountPlan::AlreadyPresent);
        }
        let filesystem = dst_blobs.filesystem().to_string();
        let mut reasons = Vec::new();
        for origin in origins {
            match tokio::fs::metadata(&origin.path).await {
                Ok(m) if m.is_file() && m.len() == request.descriptor.size() => {
                    let known_not_to_clone = self
                        .cannot_clone
                        .lock()
                        .expect("clone memo lock")
                        .contains(&filesystem);
                    let path = origin.path.clone();
                    let clones =
                        !known_not_to_clone && blocking(move || Ok(can_clone(&path))).await?;
                    let method = if clones {
                        MountMethod::Reflink
                    } else {
                        MountMethod::Hardlink
                    };
                    return Ok(MountPlan::would_mount(origin.place, method));
                }
                Ok(m) => reasons.push(format!(
                    "`{}` has {} bytes but the descriptor of `{digest}` says {}",
                    origin.path.display(),
                    m.len(),
                    request.descriptor.size()
                )),
                Err(_) => reasons.push(format!(
                    "`{}` is not there; the layout does not hold `{digest}`",
                    origin.path.display()
                )),
            }
        }
        Ok(MountPlan::not_applicable(reasons.join("; ")))
    }
}

/// A place the blob's file may be taken from.
struct Origin {
    /// The layout.
    place: StoreInfo,
    /// The blob's file there.
    path: PathBuf,
    /// Whether it is the copy's source (rather than a layout the blob-location cache named).
    is_source: bool,
}

impl SharedStorageMount {
    /// The destination's blob files and the places the blob's file may be taken from, or why
    /// the strategy does not apply.
    #[allow(clippy::type_complexity)]
    fn origins<'a>(
        &self,
        request: &MountRequest<'a>,
    ) -> Result<std::result::Result<(&'a dyn ferry_core::LocalBlobs, Vec<Origin>), String>> {
        // Files are only ever written into a store that offers its blob files for it
        // (`LocalBlobs`), whatever a store's `StoreInfo` claims.
        let Some(dst_blobs) = request.destination.capabilities().local_blobs else {
            return Ok(Err(format!(
                "destination {} is not an OCI layout (it keeps no blob files to link into)",
                request.destination
            )));
        };
        let filesystem = dst_blobs.filesystem();
        let dst = request.destination.info();
        let src = request.source.info();
        let digest = request.descriptor.digest().clone();
        let mut origins: Vec<Origin> = Vec::new();
        match request.source.capabilities().local_blobs {
            Some(src_blobs) if src_blobs.filesystem() == filesystem => {
                origins.push(Origin {
                    place: src.clone(),
                    path: src_blobs.blob_file(&digest)?,
                    is_source: true,
                });
            }
            Some(_) => {}
            None if src.scheme == StoreInfo::OCI_LAYOUT && src.authority == filesystem => {
                origins.push(Origin {
                    place: src.clone(),
                    path: blob_path_in(Path::new(&src.namespace), &digest)?,
                    is_source: true,
                });
            }
            None => {}
        }
        if !self.trusted {
            // Other layouts on the destination's filesystem that held the blob (the
            // blob-location cache); only when their files are verified.
            for c in request.candidates {
                let c = &c.store;
                if c.scheme == StoreInfo::OCI_LAYOUT
                    && c.authority == filesystem
                    && c.namespace != dst.namespace
                    && !origins.iter().any(|o| o.place.namespace == c.namespace)
                {
                    origins.push(Origin {
                        place: c.clone(),
                        path: blob_path_in(Path::new(&c.namespace), &digest)?,
                        is_source: false,
                    });
                }
            }
        }
        if origins.is_empty() {
            let reason = if request.source.capabilities().local_blobs.is_none()
                && src.scheme != StoreInfo::OCI_LAYOUT
            {
                format!(
                    "the source is a `{}` store, not an OCI layout, and no layout on the \
                     destination's filesystem is known to hold the blob",
                    src.scheme
                )
            } else {
                format!(
                    "`{}` and `{}` are on different filesystems (`{}`, `{}`)",
                    src.namespace, dst.namespace, src.authority, filesystem
                )
            };
            return Ok(Err(reason));
        }
        if Hasher::for_digest(&digest).is_err() {
            return Ok(Err(format!(
                "cannot verify `{digest}`: unsupported digest algorithm"
            )));
        }
        Ok(Ok((dst_blobs, origins)))
    }
}

/// Whether the filesystem holding `path` is of a kind that clones files (XFS, Btrfs,
/// bcachefs), read with `statfs`; a plan's guess at the method a mount would use.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn can_clone(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    const XFS: i64 = 0x5846_5342;
    const BTRFS: i64 = 0x9123_683e;
    const BCACHEFS: i64 = 0xca45_1a4e;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut stat = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` points to writable memory
    // of the size `statfs` fills.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return false;
    }
    // SAFETY: `statfs` returned 0, so it filled the struct.
    // `f_type`'s integer type differs between targets.
    #[allow(clippy::unnecessary_cast)]
    let kind = unsafe { stat.assume_init() }.f_type as i64;
    matches!(kind, XFS | BTRFS | BCACHEFS)
}

/// Reflinks are only implemented on Linux.
#[cfg(not(target_os = "linux"))]
fn can_clone(_path: &Path) -> bool {
    false
}

/// The file work of one mount, run on the blocking pool.
struct LinkWork {
    src_path: PathBuf,
    dst_path: PathBuf,
    tmp_dir: PathBuf,
    digest: Digest,
    size: u64,
    verify: bool,
    /// Whether to try a copy-on-write clone before a hardlink.
    try_clone: bool,
    cancel: Arc<AtomicBool>,
}

impl LinkWork {
    fn run(self) -> Result<Linked> {
        let parent = self.dst_path.parent().expect("blob paths have a parent");
        fs_err::create_dir_all(parent).map_err(|e| Error::io("preparing the destination", e))?;
        let src = match File::open(&self.src_path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Linked::Corrupt(format!(
                    "`{}` is not there; the layout does not hold `{}`",
                    self.src_path.display(),
                    self.digest
                )));
            }
            Err(e) => return Err(io("opening", &self.src_path, e)),
        };
        let meta = src
            .metadata()
            .map_err(|e| io("reading metadata of", &self.src_path, e))?;
        if !meta.is_file() || meta.len() != self.size {
            return Ok(Linked::Damaged(format!(
                "`{}` has {} bytes but the descriptor of `{}` says {}; not linked",
                self.src_path.display(),
                meta.len(),
                self.digest,
                self.size
            )));
        }

        // 1. A copy-on-write clone into a temporary file, verified, then renamed into place.
        if self.try_clone
            && let Some(done) = self.clone_file(&src)?
        {
            return Ok(done);
        }

        // 2. A hardlink: the same inode, so the source file is what gets verified.
        if self.verify
            && let Some(refused) = self.check(&src, &self.src_path)?
        {
            return Ok(refused);
        }
        self.check_cancelled()?;
        match std::fs::hard_link(&self.src_path, &self.dst_path) {
            // The link is made by path: a file renamed over the source since it was opened
            // (another store replacing the blob) is not the file that was verified.
            Ok(()) if self.verify && !same_file(&meta, &self.dst_path) => {
                let _ = std::fs::remove_file(&self.dst_path);
                Ok(Linked::Corrupt(format!(
                    "`{}` was replaced while it was verified; not linked",
                    self.src_path.display()
                )))
            }
            Ok(()) => Ok(Linked::Done(Method::Hardlink)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Linked::Present),
            Err(e) => Ok(Linked::Unsupported(format!(
                "cannot reflink or hardlink `{}` to `{}`: {e}",
                self.src_path.display(),
                self.dst_path.display()
            ))),
        }
    }

    /// Clones `src` into place; `None` when the filesystem cannot clone it.
    fn clone_file(&self, src: &File) -> Result<Option<Linked>> {
        fs_err::create_dir_all(&self.tmp_dir)
            .map_err(|e| Error::io("preparing the destination", e))?;
        let tmp = tempfile::Builder::new()
            .prefix("clone-")
            .tempfile_in(&self.tmp_dir)
            .map_err(|e| io("creating a file in", &self.tmp_dir, e))?;
        match reflink(src, tmp.as_file()) {
            Ok(()) => {
                if self.verify
                    && let Some(refused) = self.check(tmp.as_file(), &self.src_path)?
                {
                    return Ok(Some(refused));
                }
                self.check_cancelled()?;
                let file = tmp.as_file();
                file.set_permissions(std::fs::Permissions::from_mode(0o644))
                    .map_err(|e| io("setting permissions of", tmp.path(), e))?;
                file.sync_all().map_err(|e| io("syncing", tmp.path(), e))?;
                match tmp.persist_noclobber(&self.dst_path) {
                    Ok(_) => Ok(Some(Linked::Done(Method::Reflink))),
                    Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                        Ok(Some(Linked::Present))
                    }
                    Err(e) => Err(io("renaming into", &self.dst_path, e.error)),
                }
            }
            Err(e) => {
                tracing::debug!(
                    source = %self.src_path.display(),
                    error = %e,
                    "reflink not possible, trying a hardlink"
                );
                Ok(None)
            }
        }
    }

    fn check_cancelled(&self) -> Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(self.cancelled())
        } else {
            Ok(())
        }
    }

    /// Why a source file that changed size while it was hashed is not linked.
    fn changed(&self) -> String {
        format!(
            "source file `{}` changed size while it was verified against `{}`; not linked",
            self.src_path.display(),
            self.digest
        )
    }

    fn cancelled(&self) -> Error {
        Error::Cancelled(format!(
            "mount of `{}` abandoned; nothing was linked",
            self.digest
        ))
    }

    /// Hashes `file` from its start; `Some(refusal)` when it does not match the digest
    /// ([`Linked::Damaged`]) or changed while it was read ([`Linked::Corrupt`]).
    ///
    /// SHA-256 files go to the lane workers, which hash several files per core at once.
    fn check(&self, file: &File, path: &Path) -> Result<Option<Linked>> {
        let file = file
            .try_clone()
            .map_err(|e| io("duplicating the handle of", path, e))?;
        let hashed = if *self.digest.algorithm() == DigestAlgorithm::Sha256 {
            lanes::sha256_file(file, self.size, self.cancel.clone()).map(|sum| {
                Digest::try_from(format!("sha256:{}", hex::encode(sum)))
                    .expect("a hex SHA-256 is a digest")
            })
        } else {
            let mut hasher = Hasher::for_digest(&self.digest)?;
            lanes::hash_file(file, self.size, self.cancel.clone(), |b| hasher.update(b))
                .map(|()| hasher.finish())
        };
        let actual = match hashed {
            Ok(actual) => actual,
            Err(Failure::Cancelled) => return Err(self.cancelled()),
            Err(Failure::Changed) => return Ok(Some(Linked::Corrupt(self.changed()))),
            Err(Failure::Io(e)) => return Err(io("reading", path, e)),
        };
        if actual == self.digest {
            Ok(None)
        } else {
            Ok(Some(Linked::Damaged(format!(
                "source file `{}` does not match `{}` (its content hashes to `{actual}`); \
                 not linked, so the corruption does not spread",
                self.src_path.display(),
                self.digest
            ))))
        }
    }
}

/// Whether `path` is the file `meta` was taken from (same device and inode).
fn same_file(meta: &std::fs::Metadata, path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino())
}

/// The error for `what` (`opening`, `syncing`, ...) failing on `path`.
fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::io(format!("{what} `{}`", path.display()), e)
}

/// Makes `dst` a copy-on-write clone of `src` (`FICLONE`). Fails where the filesystem cannot
/// clone; never falls back to copying bytes.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn reflink(src: &File, dst: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: FICLONE takes the source file descriptor as its integer argument and reads no
    // memory of ours; both descriptors belong to files borrowed for the whole call.
    let rc = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) };
    if rc == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Reflinks are only implemented on Linux.
#[cfg(not(target_os = "linux"))]
fn reflink(_src: &File, _dst: &File) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// [`SharedStorageMount`] by name (`shared-storage`, also `hardlink` and `reflink`), for
/// applications that compose chains from names ([`ferry_core::StrategyFactories`]).
///
/// Setting: `trusted` (link source files without hashing them first).
#[derive(Debug, Clone, Copy, Default)]
pub struct SharedStorageFactory;

impl SharedStorageFactory {
    /// The name it is registered by.
    pub const NAME: &'static str = "shared-storage";
}

impl ferry_core::StrategyFactory for SharedStorageFactory {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["hardlink", "reflink"]
    }

    fn summary(&self) -> &'static str {
        "a reflink or hardlink between OCI layouts on one filesystem"
    }

    fn plan_label(&self) -> &'static str {
        "a layout's blob file on the destination's filesystem, linked (reflink, else hardlink)"
    }

    fn settings(&self) -> &'static [ferry_core::mount::Setting] {
        const SETTINGS: &[ferry_core::mount::Setting] = &[ferry_core::mount::Setting::new(
            "trusted",
            "link source files without hashing them first (storage you trust)",
        )];
        SETTINGS
    }

    fn reaches_registries(&self) -> bool {
        false
    }

    fn build(&self, config: &ferry_core::StrategyConfig) -> Result<Arc<dyn MountStrategy>> {
        let trusted = config.flag(Self::NAME, "trusted")?;
        Ok(Arc::new(SharedStorageMount::new().with_trusted(trusted)))
    }
}
