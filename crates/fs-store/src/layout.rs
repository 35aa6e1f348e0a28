//! [`OciLayout`]: an OCI image-layout directory as a ferry store.
//!
//! The layout follows the OCI image-layout specification: an `oci-layout` marker file,
//! `index.json`, and content under `blobs/<algorithm>/<hex>`. Tags are
//! `org.opencontainers.image.ref.name` annotations on the entries of `index.json`, as skopeo,
//! umoci and other tools write them.
//!
//! ferry keeps its own working files in a `.ferry` directory inside the layout: `tmp/` holds
//! blobs while they are written and verified (a blob becomes visible only when it is renamed
//! into `blobs/`), and `index.lock` serializes updates of `index.json` between processes.

use std::collections::HashSet;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
pub use ferry_core::model::validate_tag;
use ferry_core::model::{Manifest, OCI_INDEX, OCI_MANIFEST, is_manifest};
use ferry_core::{
    ByteStream, Descriptor, Digest, Error, ReadStore, Result, StoreInfo, WriteStore,
    check_size_stream, verify_stream,
};
use futures::StreamExt;
use oci_spec::image::DigestAlgorithm;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

/// The annotation that names a tag on an `index.json` entry.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The marker file of an OCI image layout.
pub const LAYOUT_FILE: &str = "oci-layout";
/// The image-layout version ferry writes.
pub const LAYOUT_VERSION: &str = "1.0.0";
/// The index file of an OCI image layout.
pub const INDEX_FILE: &str = "index.json";
/// The directory holding content.
pub const BLOBS_DIR: &str = "blobs";
/// ferry's working directory inside a layout (temporary files and the index lock).
pub const WORK_DIR: &str = ".ferry";

const TMP_DIR: &str = "tmp";
const LOCK_FILE: &str = "index.lock";
/// Writes are buffered in chunks this large; larger chunks go straight to the file.
const WRITE_BUFFER: usize = 256 * 1024;
/// Fetches read the file in chunks this large.
const READ_CHUNK: usize = 256 * 1024;
/// Chunks a fetch reads ahead of its consumer: enough to overlap reading with hashing and
/// sending, few enough that many blobs read at once hold little memory (`READ_CHUNK` ×
/// (`READ_AHEAD` + 1) per blob, 768 KiB).
const READ_AHEAD: usize = 2;
/// Chunks in flight between the file thread and the async side.
const CHANNEL_DEPTH: usize = 8;
/// SHA-256 blobs this large are hashed once written, in lanes, rather than as they stream.
const HASH_WRITTEN_AT_LEAST: u64 = 1 << 20;
/// Only blobs this small are read when looking for manifests (referrers, resolve by digest).
const MANIFEST_SCAN_LIMIT: u64 = ferry_core::model::DEFAULT_MANIFEST_LIMIT;

/// An OCI image-layout directory, read and written as a ferry store.
///
/// Blob writes stream into a temporary file inside the layout, are synced, and are renamed into
/// `blobs/` only when size and digest match; a failed or dropped push leaves nothing visible.
/// Blobs of 1 MiB and more are counted as they stream and hashed once written, from the page
/// cache, by the SHA-256 lane workers, several at once per core (as `SharedStorageMount`
/// verifies source files); smaller ones, and other digests, are hashed as they stream
/// ([`verify_stream`]). `index.json` is replaced atomically under an exclusive file
/// lock, so several processes can tag one layout at once without losing a tag.
///
/// Pushing a manifest does not list it in `index.json`; [`WriteStore::tag`] does.
#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
    info: StoreInfo,
}

impl OciLayout {
    /// Opens an existing layout. The directory must hold an `oci-layout` file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let marker = path.join(LAYOUT_FILE);
        let text = match std::fs::read(&marker) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    what: format!(
                        "OCI image layout `{}` (no `{LAYOUT_FILE}` file there)",
                        path.display()
                    ),
                    hint: Some(
                        "create one with `OciLayout::create`, or copy an image into it with \
                         `ferry cp <source> oci:<path>:<tag>`"
                            .into(),
                    ),
                });
            }
            Err(e) => {
                return Err(Error::io(format!("reading `{}`", marker.display()), e));
            }
        };
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Marker {
            image_layout_version: String,
        }
        let parsed: Marker = serde_json::from_slice(&text).map_err(|e| {
            Error::invalid(
                "layout",
                path.display().to_string(),
                format!(
                    "its `{LAYOUT_FILE}` file is not valid JSON with `imageLayoutVersion`: {e}"
                ),
            )
        })?;
        if !parsed.image_layout_version.starts_with("1.") {
            return Err(Error::invalid(
                "layout",
                path.display().to_string(),
                format!(
                    "image-layout version `{}` is not supported; ferry reads version 1.x",
                    parsed.image_layout_version
                ),
            ));
        }
        Self::at(path)
    }

    /// Creates a new layout in `path` (created if missing, else it must be empty).
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        Self::create_or(path.as_ref(), false)
    }

    /// Creates a layout; when another process created it meanwhile, opens it if `or_open`.
    ///
    /// Processes creating or tagging one layout at once are serialized by the layout's lock,
    /// and `index.json` and the `oci-layout` marker appear whole (written aside, renamed), the
    /// marker last: a reader never sees a half-made layout.
    fn create_or(path: &Path, or_open: bool) -> Result<Self> {
        let exists = || {
            Error::invalid(
                "layout",
                path.display().to_string(),
                "the directory already holds an OCI image layout; open it with `OciLayout::open`",
            )
        };
        if path.join(LAYOUT_FILE).exists() {
            return if or_open {
                Self::open(path)
            } else {
                Err(exists())
            };
        }
        fs_err::create_dir_all(path).map_err(|e| Error::io("creating the layout directory", e))?;
        if !empty_or_interrupted_create(path)
            .map_err(|e| Error::io("listing the layout directory", e))?
        {
            return Err(Error::invalid(
                "layout",
                path.display().to_string(),
                "the directory is not empty and holds no OCI image layout; pick a new or empty \
                 directory",
            ));
        }
        let io = |e| Error::io("creating the OCI image layout", e);
        let work = path.join(WORK_DIR);
        let tmp = work.join(TMP_DIR);
        fs_err::create_dir_all(&tmp).map_err(io)?;
        let lock = lock_layout(&work)?;
        if path.join(LAYOUT_FILE).exists() {
            drop(lock);
            return if or_open {
                Self::open(path)
            } else {
                Err(exists())
            };
        }
        fs_err::create_dir_all(path.join(BLOBS_DIR).join("sha256")).map_err(io)?;
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [],
        });
        write_file_aside(
            &tmp,
            &path.join(INDEX_FILE),
            &serde_json::to_vec(&index).expect("JSON"),
        )
        .map_err(io)?;
        // The marker last: a layout is only opened once it is whole.
        let marker = serde_json::json!({ "imageLayoutVersion": LAYOUT_VERSION });
        write_file_aside(
            &tmp,
            &path.join(LAYOUT_FILE),
            &serde_json::to_vec(&marker).expect("JSON"),
        )
        .map_err(io)?;
        sync_dir(path).map_err(io)?;
        drop(lock);
        Self::at(path)
    }

    /// Opens the layout in `path`, creating it when the directory is missing or empty.
    pub fn open_or_create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::create_or(path, true)
    }

    fn at(path: &Path) -> Result<Self> {
        let root = fs_err::canonicalize(path).map_err(|e| Error::io("opening the layout", e))?;
        let meta = fs_err::metadata(&root).map_err(|e| Error::io("opening the layout", e))?;
        let info = StoreInfo::new(
            StoreInfo::OCI_LAYOUT,
            format!("dev:{}", meta.dev()),
            root.to_string_lossy().into_owned(),
        );
        Ok(Self { root, info })
    }

    /// The layout's absolute, canonical path.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` is (or would be) stored: `<layout>/blobs/<algorithm>/<hex>`.
    /// Refuses digests that are not well-formed sha256 or sha512 digests.
    pub fn blob_path(&self, digest: &Digest) -> Result<PathBuf> {
        blob_path_in(&self.root, digest)
    }

    /// Every tag in `index.json` and the descriptor it names, in index order.
    pub async fn tags(&self) -> Result<Vec<(String, Descriptor)>> {
        let this = self.clone();
        blocking(move || Ok(this.read_index()?.tags())).await
    }

    fn work_dir(&self) -> PathBuf {
        self.root.join(WORK_DIR)
    }

    /// The directory temporary files are written in before they are renamed into place.
    fn tmp_path(&self) -> PathBuf {
        self.work_dir().join(TMP_DIR)
    }

    fn tmp_dir(&self) -> Result<PathBuf> {
        let dir = self.tmp_path();
        fs_err::create_dir_all(&dir)
            .map_err(|e| Error::io("preparing the layout for writing", e))?;
        Ok(dir)
    }

    fn read_index(&self) -> Result<IndexJson> {
        IndexJson::read(&self.root.join(INDEX_FILE))
    }

    fn write_index(&self, index: &IndexJson) -> Result<()> {
        let io = |e| {
            Error::io(
                format!("writing `{}`", self.root.join(INDEX_FILE).display()),
                e,
            )
        };
        let tmp_dir = self.tmp_dir()?;
        // Blobs are renamed or linked into `blobs/<alg>/` without syncing the directory each
        // time; one sync per directory here makes every entry durable before the index that
        // refers to them, so a crash never leaves an index naming a blob that is not there.
        self.sync_blob_dirs().map_err(io)?;
        write_file_aside(&tmp_dir, &self.root.join(INDEX_FILE), &index.to_vec()).map_err(io)?;
        sync_dir(&self.root).map_err(io)?;
        Ok(())
    }

    /// Syncs every `blobs/<algorithm>` directory.
    fn sync_blob_dirs(&self) -> std::io::Result<()> {
        let blobs = self.root.join(BLOBS_DIR);
        let entries = match std::fs::read_dir(&blobs) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                sync_dir(&entry.path())?;
            }
        }
        Ok(())
    }

    /// Points `tag` at `descriptor` in `index.json`, holding the layout's lock throughout the
    /// read-modify-write.
    fn tag_locked(&self, descriptor: &Descriptor, tag: &str) -> Result<()> {
        let lock = lock_layout(&self.work_dir())?;
        let mut index = self.read_index()?;
        index.set_tag(descriptor, tag);
        let result = self.write_index(&index);
        drop(lock);
        result
    }

    fn resolve_digest(&self, digest: Digest) -> Result<Descriptor> {
        let index = self.read_index()?;
        if let Some(d) = index.resolve_digest(&digest) {
            return Ok(d);
        }
        let path = self.blob_path(&digest)?;
        let not_found = || Error::not_found(format!("`{digest}` in {self}"));
        let meta = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Err(not_found()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
            Err(e) => return Err(Error::io(format!("reading `{}`", path.display()), e)),
        };
        if meta.len() > MANIFEST_SCAN_LIMIT {
            return Err(Error::invalid(
                "reference",
                digest.to_string(),
                format!(
                    "the blob has {} bytes, too large for a manifest; name a manifest or index",
                    meta.len()
                ),
            ));
        }
        let bytes = fs_err::read(&path).map_err(|e| Error::io("reading a manifest", e))?;
        match sniff_manifest_type(&bytes) {
            Some(media_type) => Ok(Descriptor::new(
                media_type.as_str().into(),
                meta.len(),
                digest,
            )),
            None => Err(Error::invalid(
                "reference",
                digest.to_string(),
                "the blob is not a manifest or index (no `mediaType`, `config` or `manifests`); \
                 name a manifest or index",
            )),
        }
    }

    fn resolve_tag(&self, tag: &str) -> Result<Descriptor> {
        if tag.is_empty() || tag.contains('\0') {
            validate_tag(tag)?;
        }
        let index = self.read_index()?;
        if let Some(d) = index.resolve_tag(tag) {
            return Ok(d);
        }
        validate_tag(tag)?;
        let tags: Vec<String> = index
            .entries()
            .iter()
            .filter_map(ref_name)
            .map(|t| format!("`{t}`"))
            .collect();
        Err(Error::NotFound {
            what: format!("tag `{tag}` in {self}"),
            hint: Some(if tags.is_empty() {
                "the layout has no tags".into()
            } else {
                format!("the layout has the tags {}", tags.join(", "))
            }),
        })
    }

    fn scan_referrers(&self, subject: &Digest) -> Result<Vec<Descriptor>> {
        let mut out: Vec<Descriptor> = Vec::new();
        for algorithm in ["sha256", "sha512"] {
            let dir = self.root.join(BLOBS_DIR).join(algorithm);
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(format!("listing `{}`", dir.display()), e)),
            };
            for entry in entries {
                let entry =
                    entry.map_err(|e| Error::io(format!("listing `{}`", dir.display()), e))?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let Ok(digest) = Digest::try_from(format!("{algorithm}:{name}")) else {
                    continue;
                };
                let Ok(meta) = entry.metadata() else { continue };
                if !meta.is_file() || meta.len() > MANIFEST_SCAN_LIMIT || meta.len() < 2 {
                    continue;
                }
                let Ok(bytes) = read_if_json(&entry.path()) else {
                    continue;
                };
                let Some(bytes) = bytes else { continue };
                if let Some(d) = referrer_of(&bytes, digest, subject) {
                    out.push(d);
                }
            }
        }
        out.sort_by_key(|d| d.digest().to_string());
        Ok(out)
    }
}

/// `<root>/blobs/<algorithm>/<hex>` for a well-formed sha256 or sha512 digest.
pub fn blob_path_in(root: &Path, digest: &Digest) -> Result<PathBuf> {
    let (algorithm, length) = match digest.algorithm() {
        DigestAlgorithm::Sha256 => ("sha256", 64),
        DigestAlgorithm::Sha512 => ("sha512", 128),
        other => {
            return Err(Error::UnsupportedDigest {
                algorithm: other.to_string(),
                digest: digest.clone(),
            });
        }
    };
    let hex = digest.digest();
    if hex.len() != length || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(Error::invalid(
            "digest",
            digest.to_string(),
            format!("a {algorithm} digest is {length} lowercase hexadecimal characters"),
        ));
    }
    Ok(root.join(BLOBS_DIR).join(algorithm).join(hex))
}

/// Parses a digest reference, accepting only well-formed sha256 and sha512 digests.
pub fn parse_digest(reference: &str) -> Result<Digest> {
    let digest = Digest::try_from(reference).map_err(|e| {
        Error::invalid(
            "digest",
            reference.escape_debug().to_string(),
            format!(
                "{e}; a digest is `sha256:` followed by 64 lowercase hexadecimal characters \
                 (or `sha512:` and 128)"
            ),
        )
    })?;
    // Checks the algorithm and the encoding.
    blob_path_in(Path::new(""), &digest)?;
    Ok(digest)
}

impl std::fmt::Display for OciLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "oci:{}", self.root.display())
    }
}

#[async_trait]
impl ReadStore for OciLayout {
    fn info(&self) -> &StoreInfo {
        &self.info
    }

    async fn exists(&self, descriptor: &Descriptor) -> Result<bool> {
        let path = self.blob_path(descriptor.digest())?;
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(format!("checking `{}`", path.display()), e)),
        }
    }

    async fn fetch(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        let path = self.blob_path(descriptor.digest())?;
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::not_found(format!(
                    "`{}` in {self}",
                    descriptor.digest()
                )));
            }
            Err(e) => return Err(Error::io(format!("opening `{}`", path.display()), e)),
        };
        tracing::debug!(layout = %self, digest = %descriptor.digest(), "fetch blob");
        let (tx, rx) = mpsc::channel::<Result<Bytes>>(READ_AHEAD);
        tokio::task::spawn_blocking(move || read_file_into(file, &path, tx));
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })))
    }

    async fn resolve(&self, reference: &str) -> Result<Descriptor> {
        let this = self.clone();
        if reference.contains(':') {
            let digest = parse_digest(reference)?;
            blocking(move || this.resolve_digest(digest)).await
        } else {
            let tag = reference.to_string();
            blocking(move || this.resolve_tag(&tag)).await
        }
    }

    async fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>> {
        let this = self.clone();
        let digest = subject.digest().clone();
        blocking(move || this.scan_referrers(&digest)).await
    }

    fn capabilities(&self) -> ferry_core::Capabilities<'_> {
        ferry_core::Capabilities::default()
            .with_list_tags(self)
            .with_delete_tag(self)
            .with_delete_manifest(self)
            .with_local_blobs(self)
    }
}

/// Blob files are written once, renamed into `blobs/` whole and never opened for writing
/// again, so another store on the filesystem may link them, and a verified file linked or
/// renamed into [`OciLayout::blob_path`] is a committed blob.
impl ferry_core::LocalBlobs for OciLayout {
    fn filesystem(&self) -> &str {
        &self.info.authority
    }

    fn blob_file(&self, digest: &Digest) -> Result<PathBuf> {
        self.blob_path(digest)
    }

    fn staging_dir(&self) -> PathBuf {
        self.tmp_path()
    }
}

#[async_trait]
impl ferry_core::ListTags for OciLayout {
    async fn list_tags(&self) -> Result<Vec<String>> {
        Ok(self.tags().await?.into_iter().map(|(t, _)| t).collect())
    }

    async fn list_tags_resolved(&self) -> Result<Option<Vec<(String, Descriptor)>>> {
        Ok(Some(self.tags().await?))
    }
}

#[async_trait]
impl ferry_core::DeleteTag for OciLayout {
    /// Removes the entries `tag` names from `index.json`, atomically under the layout's lock.
    /// The content stays in `blobs/` (other entries or layouts may share it).
    async fn delete_tag(&self, tag: &str) -> Result<()> {
        validate_tag(tag)?;
        let this = self.clone();
        let tag = tag.to_string();
        blocking(move || {
            let lock = lock_layout(&this.work_dir())?;
            let mut index = this.read_index()?;
            if !index.remove_tag(&tag) {
                return Err(Error::not_found(format!("tag `{tag}` in {this}")));
            }
            tracing::debug!(layout = %this, tag, "untag");
            let result = this.write_index(&index);
            drop(lock);
            result
        })
        .await
    }
}

#[async_trait]
impl ferry_core::DeleteManifest for OciLayout {
    /// Removes every entry of `index.json` that lists `digest`, tagged or not, atomically under
    /// the layout's lock. The blobs stay in `blobs/` (other entries or layouts may share them).
    async fn delete_manifest(&self, digest: &Digest) -> Result<()> {
        let this = self.clone();
        let digest = digest.clone();
        blocking(move || {
            let lock = lock_layout(&this.work_dir())?;
            let mut index = this.read_index()?;
            if !index.remove_digest(&digest) {
                return Err(Error::NotFound {
                    what: format!("manifest `{digest}` in {this}"),
                    hint: Some("`index.json` lists no entry with that digest".into()),
                });
            }
            tracing::debug!(layout = %this, %digest, "manifest entries removed");
            let result = this.write_index(&index);
            drop(lock);
            result
        })
        .await
    }
}

#[async_trait]
impl WriteStore for OciLayout {
    async fn push(&self, descriptor: &Descriptor, data: ByteStream) -> Result<()> {
        let target = self.blob_path(descriptor.digest())?;
        if tokio::fs::metadata(&target)
            .await
            .is_ok_and(|m| m.is_file())
        {
            tracing::debug!(layout = %self, digest = %descriptor.digest(), "blob already present");
            return Ok(());
        }
        // One SHA-256 stream runs at 1.7 GB/s a core; the lane workers hash the blobs a copy
        // writes at once in lockstep, at 3.1 GB/s a core, from the file just written.
        let hash_written = *descriptor.digest().algorithm() == DigestAlgorithm::Sha256
            && descriptor.size() >= HASH_WRITTEN_AT_LEAST;
        let (mut stream, check) = if hash_written {
            (
                check_size_stream(descriptor, data),
                Some(descriptor.clone()),
            )
        } else {
            (verify_stream(descriptor, data)?, None)
        };
        let tmp_dir = self.tmp_dir()?;
        tracing::debug!(layout = %self, digest = %descriptor.digest(), size = descriptor.size(), "push blob");
        let (tx, rx) = mpsc::channel::<Chunk>(CHANNEL_DEPTH);
        let writer =
            tokio::task::spawn_blocking(move || write_blob(rx, &tmp_dir, &target, check.as_ref()));
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    if tx.send(Chunk::Data(bytes)).await.is_err() {
                        // The writer stopped on an error, which it returns below.
                        break;
                    }
                }
                Err(e) => {
                    drop(tx);
                    let _ = writer.await;
                    return Err(e);
                }
            }
        }
        let _ = tx.send(Chunk::Commit).await;
        drop(tx);
        join(writer.await)?
    }

    async fn tag(&self, descriptor: &Descriptor, tag: &str) -> Result<()> {
        validate_tag(tag)?;
        if !self.exists(descriptor).await? {
            return Err(Error::NotFound {
                what: format!("`{}` in {self}", descriptor.digest()),
                hint: Some("push the manifest before tagging it".into()),
            });
        }
        tracing::debug!(layout = %self, digest = %descriptor.digest(), tag, "tag");
        let this = self.clone();
        let descriptor = descriptor.clone();
        let tag = tag.to_string();
        blocking(move || this.tag_locked(&descriptor, &tag)).await
    }
}

/// The layout's lock, held until the guard drops: it serializes the processes that
/// create or tag the layout in `work` (its `.ferry` directory).
struct LayoutLock(fs_err::File);

impl Drop for LayoutLock {
    fn drop(&mut self) {
        // Closing the file releases the lock; unlock first to be explicit.
        let _ = fs4::fs_std::FileExt::unlock(self.0.file());
    }
}

fn lock_layout(work: &Path) -> Result<LayoutLock> {
    fs_err::create_dir_all(work).map_err(|e| Error::io("preparing the layout lock", e))?;
    let lock_path = work.join(LOCK_FILE);
    let lock = fs_err::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io("opening the layout lock", e))?;
    lock_exclusive(lock.file(), &lock_path)?;
    Ok(LayoutLock(lock))
}

/// Writes `bytes` to a synced temporary file in `tmp_dir` and renames it to `target`, so
/// `target` is never seen half-written.
fn write_file_aside(tmp_dir: &Path, target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = tempfile::Builder::new()
        .prefix("new-")
        .tempfile_in(tmp_dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    tmp.as_file().sync_all()?;
    tmp.persist(target).map_err(|e| e.error)?;
    Ok(())
}

/// Whether `dir` is empty, or holds only what a [`OciLayout::create`] killed before its
/// `oci-layout` marker leaves (an empty `blobs/sha256/`, `index.json`, ferry's `.ferry`
/// working directory): both may be created into.
fn empty_or_interrupted_create(dir: &Path) -> std::io::Result<bool> {
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == INDEX_FILE || (name == WORK_DIR && entry.file_type()?.is_dir()) {
            continue;
        }
        if name != BLOBS_DIR || !entry.file_type()?.is_dir() {
            return Ok(false);
        }
        for sub in fs_err::read_dir(entry.path())? {
            let sub = sub?;
            let empty_sha256 = sub.file_name() == "sha256"
                && sub.file_type()?.is_dir()
                && fs_err::read_dir(sub.path())?.next().is_none();
            if !empty_sha256 {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Takes the exclusive lock on `file`, naming `path` on failure.
fn lock_exclusive(file: &std::fs::File, path: &Path) -> Result<()> {
    fs4::fs_std::FileExt::lock_exclusive(file)
        .map_err(|e| Error::io(format!("locking `{}`", path.display()), e))
}

/// What the async side of a push sends to the file thread.
enum Chunk {
    Data(Bytes),
    /// Every byte was sent and verified: commit the blob.
    Commit,
}

/// Writes chunks into a temporary file and renames it to `target` on [`Chunk::Commit`], once
/// the file hashes to `check`'s digest when given (the stream was only counted). The
/// temporary file is removed when the channel closes without a commit (a failed or dropped
/// push) and on any error.
fn write_blob(
    mut rx: mpsc::Receiver<Chunk>,
    tmp_dir: &Path,
    target: &Path,
    check: Option<&Descriptor>,
) -> Result<()> {
    let io = |e| Error::io(format!("writing blob `{}`", target.display()), e);
    let tmp = tempfile::Builder::new()
        .prefix("blob-")
        .tempfile_in(tmp_dir)
        .map_err(io)?;
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER, tmp);
    while let Some(chunk) = rx.blocking_recv() {
        match chunk {
            Chunk::Data(bytes) => writer.write_all(&bytes).map_err(io)?,
            Chunk::Commit => {
                let tmp = writer.into_inner().map_err(|e| io(e.into_error()))?;
                if let Some(descriptor) = check {
                    check_written(tmp.as_file(), descriptor).map_err(|e| match e {
                        Failure::Io(e) => io(e),
                        Failure::Cancelled | Failure::Changed => Error::SizeMismatch {
                            digest: descriptor.digest().clone(),
                            expected: descriptor.size(),
                            actual: tmp.as_file().metadata().map_or(0, |m| m.len()),
                            truncated: false,
                        },
                        Failure::Mismatch(actual) => Error::DigestMismatch {
                            expected: descriptor.digest().clone(),
                            actual: Some(actual),
                        },
                    })?;
                }
                let file = tmp.as_file();
                file.set_permissions(std::fs::Permissions::from_mode(0o644))
                    .map_err(io)?;
                file.sync_all().map_err(io)?;
                let parent = target.parent().expect("blob paths have a parent");
                fs_err::create_dir_all(parent).map_err(io)?;
                match tmp.persist_noclobber(target) {
                    Ok(_) => {}
                    // Another writer committed the same content first; ours is dropped.
                    Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io(e.error)),
                }
                // The directory entry is made durable with all others of the copy, before
                // `index.json` refers to it (see `OciLayout::write_index`).
                return Ok(());
            }
        }
    }
    Err(Error::Cancelled(format!(
        "push of `{}` abandoned; nothing was committed",
        target.display()
    )))
}

/// Why a written blob was not committed.
enum Failure {
    Io(std::io::Error),
    Cancelled,
    Changed,
    Mismatch(Digest),
}

/// Hashes the SHA-256 blob just written to `file` (its size checked on the way in) with the
/// lane workers.
fn check_written(file: &std::fs::File, descriptor: &Descriptor) -> Result<(), Failure> {
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let file = file.try_clone().map_err(Failure::Io)?;
    let sum = crate::lanes::sha256_file(file, descriptor.size(), cancel).map_err(|e| match e {
        crate::lanes::Failure::Io(e) => Failure::Io(e),
        crate::lanes::Failure::Cancelled => Failure::Cancelled,
        crate::lanes::Failure::Changed => Failure::Changed,
    })?;
    let actual = Digest::try_from(format!("sha256:{}", hex::encode(sum)))
        .expect("a hex SHA-256 is a digest");
    if &actual == descriptor.digest() {
        Ok(())
    } else {
        Err(Failure::Mismatch(actual))
    }
}

/// Reads `file` in chunks of [`READ_CHUNK`] into `tx` until the end, an error, or the receiver
/// is gone.
///
/// Each chunk is read into the spare capacity of a fresh buffer by `read_to_end`, which neither
/// zeroes it first nor gives up on `EINTR`.
fn read_file_into(mut file: std::fs::File, path: &Path, tx: mpsc::Sender<Result<Bytes>>) {
    loop {
        let mut chunk = Vec::with_capacity(READ_CHUNK);
        let result = (&mut file).take(READ_CHUNK as u64).read_to_end(&mut chunk);
        let filled = chunk.len();
        if filled > 0 && tx.blocking_send(Ok(Bytes::from(chunk))).is_err() {
            return;
        }
        match result {
            Err(e) => {
                let _ =
                    tx.blocking_send(Err(Error::io(format!("reading `{}`", path.display()), e)));
                return;
            }
            Ok(_) if filled < READ_CHUNK => return,
            Ok(_) => {}
        }
    }
}

/// `index.json` as the layout reads and rewrites it, kept as JSON so that fields and entries
/// other tools wrote survive a rewrite.
///
/// [`OciLayout`] parses its `index.json` with this type, resolves tags and digests with
/// [`IndexJson::resolve_tag`] and [`IndexJson::resolve_digest`], and tags with
/// [`IndexJson::set_tag`] and [`IndexJson::to_vec`]; it is public so that the parser can be
/// exercised on its own (the `index_json` fuzz target does).
///
/// ```
/// use ferry_fs_store::layout::IndexJson;
/// let index = IndexJson::parse(br#"{"schemaVersion":2,"manifests":[{
///     "mediaType":"application/vnd.oci.image.manifest.v1+json","size":7,
///     "digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
///     "annotations":{"org.opencontainers.image.ref.name":"v1"}}]}"#).unwrap();
/// assert_eq!(index.resolve_tag("v1").unwrap().size(), 7);
/// ```
#[derive(Debug, Clone)]
pub struct IndexJson {
    doc: Map<String, Value>,
}

impl IndexJson {
    /// Parses `index.json` bytes. Only bytes that are not a JSON object are refused; entries
    /// that are not descriptors are kept, and skipped when resolving.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        Self::parse_named(bytes, INDEX_FILE)
    }

    fn parse_named(bytes: &[u8], name: &str) -> Result<Self> {
        let doc: Map<String, Value> = serde_json::from_slice(bytes).map_err(|e| {
            Error::invalid(
                "layout index",
                name,
                format!("not a JSON object: {e}; repair or remove the file"),
            )
        })?;
        Ok(Self { doc })
    }

    /// The document as the layout writes it.
    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(&self.doc).expect("JSON")
    }

    /// Every tag and the descriptor it names, in index order, skipping entries that are not
    /// descriptors.
    pub fn tags(&self) -> Vec<(String, Descriptor)> {
        self.entries()
            .iter()
            .filter_map(|e| Some((ref_name(e)?.to_string(), entry_descriptor(e)?)))
            .collect()
    }

    /// The descriptor `tag` names: that of the first entry carrying the tag that is a
    /// descriptor.
    pub fn resolve_tag(&self, tag: &str) -> Option<Descriptor> {
        self.entries()
            .iter()
            .filter(|e| ref_name(e) == Some(tag))
            .find_map(entry_descriptor)
    }

    /// The descriptor of the first entry listing `digest`, without its tag annotation.
    pub fn resolve_digest(&self, digest: &Digest) -> Option<Descriptor> {
        self.entries()
            .iter()
            .filter_map(entry_descriptor)
            .find(|d| d.digest() == digest)
    }

    fn read(path: &Path) -> Result<Self> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut doc = Map::new();
                doc.insert("schemaVersion".into(), 2.into());
                doc.insert("mediaType".into(), OCI_INDEX.into());
                doc.insert("manifests".into(), Value::Array(Vec::new()));
                return Ok(Self { doc });
            }
            Err(e) => return Err(Error::io(format!("reading `{}`", path.display()), e)),
        };
        Self::parse_named(&bytes, &path.display().to_string())
    }

    fn entries(&self) -> &[Value] {
        match self.doc.get("manifests") {
            Some(Value::Array(a)) => a,
            _ => &[],
        }
    }

    fn entries_mut(&mut self) -> &mut Vec<Value> {
        let slot = self
            .doc
            .entry("manifests")
            .or_insert_with(|| Value::Array(Vec::new()));
        if !slot.is_array() {
            *slot = Value::Array(Vec::new());
        }
        slot.as_array_mut().expect("array")
    }

    /// Points `tag` at `descriptor`: removes it from every other entry, tags an untagged
    /// entry that describes the same content or appends one, and drops untagged entries whose
    /// digest another entry lists.
    ///
    /// An entry describes the same content when it is a descriptor with the same digest, size
    /// and media type; its other fields (platform, annotations) are kept. An entry that only
    /// names the digest (no size, say) loses the tag, or `tag` would resolve to nothing.
    pub fn set_tag(&mut self, descriptor: &Descriptor, tag: &str) {
        let entries = self.entries_mut();
        let mut has_target = false;
        for entry in entries.iter_mut() {
            if ref_name(entry) != Some(tag) {
                continue;
            }
            if !has_target && describes(entry, descriptor) {
                has_target = true;
            } else {
                remove_ref_name(entry);
            }
        }
        if !has_target {
            if let Some(entry) = entries
                .iter_mut()
                .find(|e| ref_name(e).is_none() && describes(e, descriptor))
            {
                set_ref_name(entry, tag);
            } else {
                let mut entry = serde_json::to_value(descriptor).expect("descriptor JSON");
                remove_ref_name(&mut entry);
                set_ref_name(&mut entry, tag);
                entries.push(entry);
            }
        }
        // An untagged entry is kept (other tools write them, and they keep content
        // reachable) unless another entry already lists its digest.
        let tagged: HashSet<String> = entries
            .iter()
            .filter(|e| ref_name(e).is_some())
            .filter_map(|e| entry_digest(e).map(str::to_string))
            .collect();
        let mut untagged_seen = HashSet::new();
        entries.retain(|e| {
            if ref_name(e).is_some() {
                return true;
            }
            match entry_digest(e) {
                Some(d) => !tagged.contains(d) && untagged_seen.insert(d.to_string()),
                None => true,
            }
        });
    }
}

impl IndexJson {
    /// Removes every entry listing `digest`, tagged or not. Returns whether there was one.
    pub fn remove_digest(&mut self, digest: &Digest) -> bool {
        let entries = self.entries_mut();
        let before = entries.len();
        entries.retain(|e| entry_digest(e) != Some(digest.as_ref()));
        entries.len() != before
    }

    /// Removes every entry `tag` names. Returns whether there was one.
    pub fn remove_tag(&mut self, tag: &str) -> bool {
        let entries = self.entries_mut();
        let before = entries.len();
        entries.retain(|e| ref_name(e) != Some(tag));
        entries.len() != before
    }
}

/// Whether the index entry is a descriptor of the same content as `descriptor`.
fn describes(entry: &Value, descriptor: &Descriptor) -> bool {
    entry_descriptor(entry).is_some_and(|d| {
        d.digest() == descriptor.digest()
            && d.size() == descriptor.size()
            && d.media_type() == descriptor.media_type()
    })
}

fn entry_digest(entry: &Value) -> Option<&str> {
    entry.get("digest")?.as_str()
}

fn ref_name(entry: &Value) -> Option<&str> {
    entry.get("annotations")?.get(REF_NAME)?.as_str()
}

fn remove_ref_name(entry: &mut Value) {
    let Some(obj) = entry.as_object_mut() else {
        return;
    };
    let empty = match obj.get_mut("annotations").and_then(Value::as_object_mut) {
        Some(a) => {
            a.remove(REF_NAME);
            a.is_empty()
        }
        None => false,
    };
    if empty {
        obj.remove("annotations");
    }
}

fn set_ref_name(entry: &mut Value, tag: &str) {
    let Some(obj) = entry.as_object_mut() else {
        return;
    };
    let annotations = obj
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !annotations.is_object() {
        *annotations = Value::Object(Map::new());
    }
    annotations
        .as_object_mut()
        .expect("object")
        .insert(REF_NAME.into(), tag.into());
}

/// The descriptor of an index entry, without the tag annotation.
fn entry_descriptor(entry: &Value) -> Option<Descriptor> {
    let mut entry = entry.clone();
    remove_ref_name(&mut entry);
    match serde_json::from_value::<Descriptor>(entry) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::debug!(error = %e, "skipping an index.json entry that is not a descriptor");
            None
        }
    }
}

/// The media type of a manifest document: its `mediaType`, else guessed from its shape.
pub(crate) fn sniff_manifest_type(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Shape {
        media_type: Option<String>,
        config: Option<Value>,
        manifests: Option<Value>,
    }
    let shape: Shape = serde_json::from_slice(bytes).ok()?;
    match shape.media_type {
        Some(m) => Some(m),
        None if shape.manifests.is_some() => Some(OCI_INDEX.into()),
        None if shape.config.is_some() => Some(OCI_MANIFEST.into()),
        None => None,
    }
}

/// The referrer descriptor of the manifest `bytes` when its `subject` is `subject`.
pub(crate) fn referrer_of(bytes: &[u8], digest: Digest, subject: &Digest) -> Option<Descriptor> {
    #[derive(serde::Deserialize)]
    struct Subject {
        subject: Option<Descriptor>,
    }
    let s: Subject = serde_json::from_slice(bytes).ok()?;
    if s.subject.as_ref()?.digest() != subject {
        return None;
    }
    let media_type = sniff_manifest_type(bytes)?;
    if !is_manifest(&media_type) {
        return None;
    }
    let mut desc = Descriptor::new(media_type.as_str().into(), bytes.len() as u64, digest);
    let manifest = Manifest::parse(&desc, Bytes::copy_from_slice(bytes)).ok()?;
    if let Some(t) = manifest.artifact_type {
        desc.set_artifact_type(Some(t.as_str().into()));
    }
    Some(desc)
}

/// The file's bytes when it starts (after whitespace) with `{`, else `None`.
fn read_if_json(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let mut file = std::fs::File::open(path)?;
    let mut head = [0u8; 64];
    let n = file.read(&mut head)?;
    match head[..n].iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        _ => return Ok(None),
    }
    let mut bytes = head[..n].to_vec();
    file.read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// Syncs a directory, so that a rename in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs_err::File::open(dir)?.sync_all()
}

/// Runs `f` on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    join(tokio::task::spawn_blocking(f).await)?
}

/// The result of a blocking task; a panic in it is resumed here.
pub(crate) fn join<T>(r: Result<T, tokio::task::JoinError>) -> Result<T> {
    match r {
        Ok(v) => Ok(v),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::Cancelled(format!("file task: {e}"))),
    }
}
