//! [`ArchiveBundle`]: an archive that was read, as a [`Catalog`] of repositories a sync or a
//! copy reads from.
//!
//! Where each blob is depends on how the archive was read: a file's member at an offset, a
//! manifest held in memory, or (a stream's blobs, and a delta's blobs expected at the
//! destination) a store of the destination it landed in. A copy out of the bundle fetches
//! each from there; one from a store is read back only when no strategy mounts it.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use ferry_core::model::{Manifest, is_foreign_layer, is_manifest, media_type_str};
use ferry_core::verify::read_to_bytes;
use ferry_core::{
    ByteStream, Catalog, Descriptor, Digest, Error, ReadStore, Result, StoreInfo, WriteStore,
    bytes_stream, verify_bytes,
};
use futures::stream::BoxStream;
use tokio::sync::mpsc;

use super::index::BundleEntry;
use super::receipt::{DeltaRecord, Receipt};
use crate::layout::{referrer_of, sniff_manifest_type};

/// The scheme of archives in [`StoreInfo`].
pub const OCI_ARCHIVE: &str = "oci-archive";

/// Reads of a member go in chunks this large.
const READ_CHUNK: u64 = 256 * 1024;
/// Chunks read ahead of their consumer.
const READ_AHEAD: usize = 2;

/// Where a blob of a bundle is.
#[derive(Clone)]
pub(crate) enum Source {
    /// A member of the archive file.
    Member { offset: u64, size: u64 },
    /// In memory (a manifest of a stream, a Docker image's manifest made from its
    /// `manifest.json`).
    Held(Bytes),
    /// At a store it landed in (or was expected in): read back from there.
    At(Arc<dyn ReadStore>),
    /// The archive carried it, but it was only scanned, not kept.
    Seen(u64),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Member { offset, size } => write!(f, "Member({offset}+{size})"),
            Source::Held(b) => write!(f, "Held({})", b.len()),
            Source::At(store) => write!(f, "At({store})"),
            Source::Seen(size) => write!(f, "Seen({size})"),
        }
    }
}

/// An archive that was read, as a [`Catalog`] of the repositories its `index.json` (or
/// Docker's `manifest.json`) names. Its stores are read-only.
#[derive(Clone)]
pub struct ArchiveBundle {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub info: StoreInfo,
    pub entries: Vec<BundleEntry>,
    pub blobs: RwLock<HashMap<Digest, Source>>,
    pub file: Option<Arc<std::fs::File>>,
    pub delta: Option<DeltaRecord>,
    pub manifest_limit: u64,
    pub referrers: tokio::sync::OnceCell<HashMap<Digest, Vec<Descriptor>>>,
}

impl std::fmt::Debug for ArchiveBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveBundle")
            .field("archive", &self.inner.info.namespace)
            .field("entries", &self.inner.entries.len())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for ArchiveBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.inner.info.namespace)
    }
}

impl ArchiveBundle {
    pub(crate) fn new(
        info: StoreInfo,
        entries: Vec<BundleEntry>,
        blobs: HashMap<Digest, Source>,
        file: Option<Arc<std::fs::File>>,
        delta: Option<DeltaRecord>,
        manifest_limit: u64,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                info,
                entries,
                blobs: RwLock::new(blobs),
                file,
                delta,
                manifest_limit,
                referrers: tokio::sync::OnceCell::new(),
            }),
        }
    }

    /// The images the archive names, in its order.
    pub fn entries(&self) -> &[BundleEntry] {
        &self.inner.entries
    }

    /// The repositories the archive names, sorted.
    pub fn repositories(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .inner
            .entries
            .iter()
            .map(|e| e.repository.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// What the archive records of the base it is a delta against, if it is one.
    pub fn delta(&self) -> Option<&DeltaRecord> {
        self.inner.delta.as_ref()
    }

    /// The store of repository `name`.
    pub fn repository(&self, name: &str) -> Arc<dyn ReadStore> {
        Arc::new(BundleRepository {
            info: self.store_info(name),
            bundle: self.inner.clone(),
            repository: name.to_string(),
        })
    }

    /// The image `repository:tag`, `tag` alone (when one repository has it), or `@digest`
    /// (with a repository when the archive has several), as the repository and the tag or
    /// digest to resolve in it. Every argument `None`: the archive's only image.
    pub fn find(
        &self,
        repository: Option<&str>,
        tag: Option<&str>,
        digest: Option<&Digest>,
    ) -> Result<(String, String)> {
        let candidates: Vec<&BundleEntry> = self
            .inner
            .entries
            .iter()
            .filter(|e| repository.is_none_or(|r| e.repository == r))
            .filter(|e| tag.is_none_or(|t| e.tag.as_deref() == Some(t)))
            .filter(|e| digest.is_none_or(|d| e.descriptor.digest() == d))
            .collect();
        let wanted = match (repository, tag, digest) {
            (Some(r), Some(t), _) => format!("`{r}:{t}`"),
            (None, Some(t), _) => format!("tag `{t}`"),
            (Some(r), None, Some(d)) => format!("`{r}@{d}`"),
            (None, None, Some(d)) => format!("`{d}`"),
            (Some(r), None, None) => format!("repository `{r}`"),
            (None, None, None) => "an image".into(),
        };
        let named = |entries: &[&BundleEntry]| {
            entries
                .iter()
                .map(|e| format!("`{}`", e.reference()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let reference = |e: &BundleEntry| match (digest, &e.tag) {
            (None, Some(t)) => t.clone(),
            _ => e.descriptor.digest().to_string(),
        };
        match candidates.as_slice() {
            [one] => Ok((one.repository.clone(), reference(one))),
            [] => {
                let repositories = self.repositories();
                if let (Some(d), None) = (digest, tag)
                    && self.holds(d)
                {
                    // A digest the index does not list, such as a platform's manifest.
                    match (repository, repositories.as_slice()) {
                        (Some(r), _) => return Ok((r.to_string(), d.to_string())),
                        (None, [only]) => return Ok((only.clone(), d.to_string())),
                        _ => {}
                    }
                }
                let all: Vec<&BundleEntry> = self.inner.entries.iter().collect();
                Err(Error::NotFound {
                    what: format!("{wanted} in {self}"),
                    hint: Some(if all.is_empty() {
                        "the archive names no image".into()
                    } else {
                        format!("it holds {}", named(&all))
                    }),
                })
            }
            many => {
                // One digest under several tags of one repository is one image.
                let first = many[0];
                if tag.is_none()
                    && many.iter().all(|e| {
                        e.descriptor.digest() == first.descriptor.digest()
                            && e.repository == first.repository
                    })
                {
                    return Ok((first.repository.clone(), reference(first)));
                }
                Err(Error::invalid(
                    "archive reference",
                    wanted,
                    format!(
                        "{self} has several: {}; name one as `REPOSITORY:TAG`",
                        named(many)
                    ),
                ))
            }
        }
    }

    /// Whether the bundle has `digest` (carried, held, or located at the destination).
    pub fn holds(&self, digest: &Digest) -> bool {
        self.inner
            .blobs
            .read()
            .expect("blobs lock")
            .contains_key(digest)
    }

    /// Checks that every blob and manifest the delta record expects at the destination is
    /// there: `at` names the destination store of a bundle repository. Afterwards a copy out
    /// of the bundle reads each from there when no strategy mounts it. Returns where each is.
    ///
    /// When one is missing, nothing is written and the error names the missing content and
    /// the base the delta was made against.
    pub async fn check_expected(
        &self,
        at: &(dyn Fn(&str) -> Option<Arc<dyn ReadStore>> + Send + Sync),
    ) -> Result<Vec<(Digest, StoreInfo)>> {
        let Some(delta) = &self.inner.delta else {
            return Ok(Vec::new());
        };
        let checks = delta.expected.iter().map(|e| async move {
            let media_type = e
                .media_type
                .as_deref()
                .unwrap_or("application/octet-stream");
            let descriptor = Descriptor::new(media_type.into(), e.size, e.digest.clone());
            let store = at(&e.repository);
            let present = match &store {
                Some(s) => s.exists(&descriptor).await?,
                None => false,
            };
            Ok::<_, Error>((e, store.filter(|_| present)))
        });
        let results = futures::future::try_join_all(checks).await?;
        let mut missing = Vec::new();
        let mut found = Vec::new();
        {
            let mut blobs = self.inner.blobs.write().expect("blobs lock");
            for (e, store) in results {
                match store {
                    Some(store) => {
                        found.push((e.digest.clone(), store.info().clone()));
                        blobs.entry(e.digest.clone()).or_insert(Source::At(store));
                    }
                    None => missing.push(format!("`{}` of `{}`", e.digest, e.repository)),
                }
            }
        }
        if !missing.is_empty() {
            let shown = if missing.len() > 8 {
                format!("{} and {} more", missing[..8].join(", "), missing.len() - 8)
            } else {
                missing.join(", ")
            };
            return Err(Error::NotFound {
                what: format!("content {self} leaves out as already at the destination ({shown})"),
                hint: Some(format!(
                    "the archive is a delta against `{}`; import what that receipt lists \
                     first, or export a whole archive (without `--delta-from`)",
                    delta.base
                )),
            });
        }
        Ok(found)
    }

    /// The receipt of an import of `images` (repository, tag, descriptor) from this bundle
    /// into `destination`: each image and every manifest and blob below it (and the
    /// referrers of those manifests the bundle holds, with `referrers`), laid over the base
    /// receipt a delta archive carries.
    pub async fn receipt(
        &self,
        images: &[(String, String, Descriptor)],
        destination: &str,
        referrers: bool,
    ) -> Result<Receipt> {
        let mut receipt = match &self.inner.delta {
            Some(d) => d.receipt.clone(),
            None => Receipt::new(destination),
        };
        let mut this = Receipt::new(destination);
        this.archives.push(self.inner.info.namespace.clone());
        for (repository, tag, descriptor) in images {
            let (manifests, blobs) = self.closure(descriptor, referrers).await?;
            this.add_content(repository, manifests, blobs);
            this.add_image(repository, tag, descriptor.clone());
        }
        receipt.merge(&this);
        Ok(receipt)
    }

    /// Every manifest and blob below `root`, `root` included (with the referrers the bundle
    /// holds of each manifest, when `referrers`). Manifests the bundle does not hold (a
    /// delta's, expected at the destination) are listed without their children, which the
    /// base receipt lists.
    pub(crate) async fn closure(
        &self,
        root: &Descriptor,
        referrers: bool,
    ) -> Result<(Vec<(Digest, u64)>, Vec<(Digest, u64)>)> {
        let mut manifests = Vec::new();
        let mut blobs = Vec::new();
        let mut seen = HashSet::new();
        let mut pending = vec![root.clone()];
        while let Some(d) = pending.pop() {
            if !seen.insert(d.digest().clone()) {
                continue;
            }
            let media_type = media_type_str(&d);
            if !is_manifest(&media_type) {
                if !is_foreign_layer(&media_type) {
                    blobs.push((d.digest().clone(), d.size()));
                }
                continue;
            }
            manifests.push((d.digest().clone(), d.size()));
            let Some(bytes) = self.inner.manifest_bytes(&d).await? else {
                continue;
            };
            let manifest = Manifest::parse(&d, bytes)?;
            pending.extend(manifest.successors());
            if referrers {
                pending.extend(self.inner.referrers_of(d.digest()).await?);
            }
        }
        Ok((manifests, blobs))
    }
}

impl Inner {
    fn source(&self, digest: &Digest) -> Option<Source> {
        self.blobs.read().expect("blobs lock").get(digest).cloned()
    }

    /// The bytes of manifest `d` when the bundle holds it, verified; `None` when it does not.
    pub(crate) async fn manifest_bytes(&self, d: &Descriptor) -> Result<Option<Bytes>> {
        let Some(source) = self.source(d.digest()) else {
            return Ok(None);
        };
        let stream = match source {
            Source::Seen(_) => return Ok(None),
            Source::At(store) => store.fetch(d).await?,
            other => self.open(d, other)?,
        };
        let bytes = read_to_bytes(
            stream,
            &format!("manifest `{}`", d.digest()),
            self.manifest_limit,
        )
        .await?;
        verify_bytes(d, &bytes)?;
        Ok(Some(bytes))
    }

    /// A stream of what `source` holds for `d`.
    fn open(&self, d: &Descriptor, source: Source) -> Result<ByteStream> {
        match source {
            Source::Held(bytes) => Ok(bytes_stream(bytes)),
            Source::Member { offset, size } => {
                let file = self.file.clone().expect("members are read from a file");
                Ok(read_member(file, offset, size))
            }
            Source::At(_) | Source::Seen(_) => Err(Error::store(
                self.info.namespace.clone(),
                format!("`{}` is not in the archive itself", d.digest()),
            )),
        }
    }

    /// The referrers of `subject` among the manifests the bundle holds.
    async fn referrers_of(self: &Arc<Self>, subject: &Digest) -> Result<Vec<Descriptor>> {
        let map = self
            .referrers
            .get_or_try_init(|| {
                let this = self.clone();
                crate::layout::blocking(move || this.scan_referrers())
            })
            .await?;
        Ok(map.get(subject).cloned().unwrap_or_default())
    }

    /// Reads every small member and held blob that is JSON, keeping the manifests that have
    /// a subject.
    fn scan_referrers(&self) -> Result<HashMap<Digest, Vec<Descriptor>>> {
        let candidates: Vec<(Digest, Source)> = self
            .blobs
            .read()
            .expect("blobs lock")
            .iter()
            .filter(|(_, s)| match s {
                Source::Held(b) => b.len() as u64 <= self.manifest_limit,
                Source::Member { size, .. } => *size <= self.manifest_limit && *size >= 2,
                _ => false,
            })
            .map(|(d, s)| (d.clone(), s.clone()))
            .collect();
        let mut out: HashMap<Digest, Vec<Descriptor>> = HashMap::new();
        for (digest, source) in candidates {
            let bytes = match source {
                Source::Held(b) => b,
                Source::Member { offset, size } => {
                    let file = self.file.clone().expect("a file");
                    let first = read_at(&file, offset, 1)?;
                    if first.first() != Some(&b'{') {
                        continue;
                    }
                    Bytes::from(read_at(&file, offset, size)?)
                }
                _ => continue,
            };
            if ferry_core::sha256(&bytes) != digest
                && *digest.algorithm() == oci_spec::image::DigestAlgorithm::Sha256
            {
                continue;
            }
            #[derive(serde::Deserialize)]
            struct Subject {
                subject: Option<Descriptor>,
            }
            let Ok(Subject {
                subject: Some(subject),
            }) = serde_json::from_slice::<Subject>(&bytes)
            else {
                continue;
            };
            if let Some(d) = referrer_of(&bytes, digest, subject.digest()) {
                out.entry(subject.digest().clone()).or_default().push(d);
            }
        }
        for list in out.values_mut() {
            list.sort_by_key(|d| d.digest().to_string());
        }
        Ok(out)
    }
}

/// Reads `len` bytes of `file` at `offset`.
pub(crate) fn read_at(file: &std::fs::File, offset: u64, len: u64) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, offset)
        .map_err(|e| Error::io("reading the archive", e))?;
    Ok(buf)
}

/// A stream of the member `size` bytes long at `offset`, read on the blocking pool.
fn read_member(file: Arc<std::fs::File>, offset: u64, size: u64) -> ByteStream {
    let (tx, rx) = mpsc::channel::<Result<Bytes>>(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        let end = offset + size;
        let mut pos = offset;
        while pos < end {
            let n = READ_CHUNK.min(end - pos);
            let chunk = read_at(&file, pos, n).map(Bytes::from);
            let failed = chunk.is_err();
            if tx.blocking_send(chunk).is_err() || failed {
                return;
            }
            pos += n;
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

#[async_trait]
impl Catalog for ArchiveBundle {
    fn info(&self) -> &StoreInfo {
        &self.inner.info
    }

    fn list(&self, prefix: &str) -> BoxStream<'static, Result<String>> {
        let names: Vec<Result<String>> = self
            .repositories()
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .map(Ok)
            .collect();
        Box::pin(futures::stream::iter(names))
    }

    fn store_info(&self, name: &str) -> StoreInfo {
        repository_info(&self.inner.info, name)
    }

    async fn open_read(&self, name: &str) -> Result<Arc<dyn ReadStore>> {
        if !self.inner.entries.iter().any(|e| e.repository == name) {
            return Err(Error::not_found(format!("repository `{name}` in {self}")));
        }
        Ok(self.repository(name))
    }

    async fn open_write(&self, _name: &str, _create: bool) -> Result<Option<Arc<dyn WriteStore>>> {
        Err(Error::NotSupported {
            store: self.to_string(),
            operation: "writing (an archive being read is read-only)".into(),
        })
    }
}

/// The identity of repository `name` of the archive `archive`: `ARCHIVE:NAME`.
pub(crate) fn repository_info(archive: &StoreInfo, name: &str) -> StoreInfo {
    StoreInfo::new(
        archive.scheme.clone(),
        archive.authority.clone(),
        if name.is_empty() {
            archive.namespace.clone()
        } else {
            format!("{}:{name}", archive.namespace)
        },
    )
}

/// One repository of a bundle.
struct BundleRepository {
    info: StoreInfo,
    bundle: Arc<Inner>,
    repository: String,
}

repository_store_names!(BundleRepository);

impl BundleRepository {
    fn tags(&self) -> Vec<(String, Descriptor)> {
        self.bundle
            .entries
            .iter()
            .filter(|e| e.repository == self.repository)
            .filter_map(|e| Some((e.tag.clone()?, e.descriptor.clone())))
            .collect()
    }
}

#[async_trait]
impl ReadStore for BundleRepository {
    fn info(&self) -> &StoreInfo {
        &self.info
    }

    async fn exists(&self, descriptor: &Descriptor) -> Result<bool> {
        Ok(self
            .bundle
            .blobs
            .read()
            .expect("blobs lock")
            .contains_key(descriptor.digest()))
    }

    async fn fetch(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        let Some(source) = self.bundle.source(descriptor.digest()) else {
            return Err(Error::not_found(format!(
                "`{}` in {self} (the archive does not carry it)",
                descriptor.digest()
            )));
        };
        tracing::debug!(archive = %self, digest = %descriptor.digest(), from = ?source, "fetch");
        match source {
            Source::At(store) => store.fetch(descriptor).await,
            other => self.bundle.open(descriptor, other),
        }
    }

    async fn resolve(&self, reference: &str) -> Result<Descriptor> {
        if reference.contains(':') {
            let digest = crate::layout::parse_digest(reference)?;
            if let Some(e) = self
                .bundle
                .entries
                .iter()
                .find(|e| e.descriptor.digest() == &digest)
            {
                return Ok(e.descriptor.clone());
            }
            let Some(source) = self.bundle.source(&digest) else {
                return Err(Error::not_found(format!("`{digest}` in {self}")));
            };
            let probe = Descriptor::new("application/octet-stream".into(), 0, digest.clone());
            let bytes = match source {
                Source::Held(b) => b,
                Source::Member { offset, size } if size <= self.bundle.manifest_limit => {
                    Bytes::from(read_at(
                        self.bundle.file.as_deref().expect("a file"),
                        offset,
                        size,
                    )?)
                }
                Source::At(store) => {
                    read_to_bytes(
                        store.fetch(&probe).await?,
                        "a manifest",
                        self.bundle.manifest_limit,
                    )
                    .await?
                }
                _ => Bytes::new(),
            };
            return match sniff_manifest_type(&bytes) {
                Some(t) => Ok(Descriptor::new(
                    t.as_str().into(),
                    bytes.len() as u64,
                    digest,
                )),
                None => Err(Error::invalid(
                    "reference",
                    digest.to_string(),
                    "the blob is not a manifest or index; name a manifest or index",
                )),
            };
        }
        let tags = self.tags();
        if let Some((_, d)) = tags.iter().find(|(t, _)| t == reference) {
            return Ok(d.clone());
        }
        let listed: Vec<String> = tags.iter().map(|(t, _)| format!("`{t}`")).collect();
        Err(Error::NotFound {
            what: format!("tag `{reference}` in {self}"),
            hint: Some(if listed.is_empty() {
                "the repository has no tags in the archive".into()
            } else {
                format!("it has the tags {}", listed.join(", "))
            }),
        })
    }

    async fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>> {
        self.bundle.referrers_of(subject.digest()).await
    }

    fn capabilities(&self) -> ferry_core::Capabilities<'_> {
        ferry_core::Capabilities::default().with_list_tags(self)
    }
}

#[async_trait]
impl ferry_core::ListTags for BundleRepository {
    async fn list_tags(&self) -> Result<Vec<String>> {
        Ok(self.tags().into_iter().map(|(t, _)| t).collect())
    }

    async fn list_tags_resolved(&self) -> Result<Option<Vec<(String, Descriptor)>>> {
        Ok(Some(self.tags()))
    }
}

/// The identity of an archive at `path` (or a stream when `None`), named `display`.
pub(crate) fn archive_info(path: Option<&PathBuf>, display: &str) -> StoreInfo {
    let authority = match path {
        Some(p) => format!("file:{}", p.display()),
        None => "stream".into(),
    };
    StoreInfo::new(OCI_ARCHIVE, authority, display)
}
