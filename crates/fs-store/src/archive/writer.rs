//! [`ArchiveWriter`]: an archive being written, as a [`Catalog`] of repositories a sync or a
//! copy writes into.
//!
//! Each blob pushed (through the store of any repository) is streamed into the tar as it
//! arrives from the source, verified on the way, and written once however many repositories
//! push it. The copies that write into it run at once; their blobs take turns, one entry at a
//! time, each waiting without reading its source until the entry before it is done. An entry
//! whose source fails or whose digest does not match is cut off again (a file is truncated
//! where the entry began), so the engine's retry writes it anew; on standard output that is
//! impossible, and the archive is broken off instead. Tags are kept in memory; `index.json`
//! (with Docker's `manifest.json` beside it) is written by [`ArchiveWriter::finish`], which
//! renames the file to its final name. An archive never finished leaves nothing under that
//! name.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use ferry_core::model::{Manifest, Platform, is_manifest, media_type_str};
use ferry_core::{
    ByteStream, Catalog, Descriptor, Digest, Error, ReadStore, Result, StoreInfo, WriteStore,
    verify_stream,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;

use super::bundle::{OCI_ARCHIVE, repository_info};
use super::compression::Compression;
use super::index::{BundleEntry, DockerItem, full_name, write_index};
use super::names::{DOCKER_MANIFEST_FILE, blob_name};
use super::receipt::{DELTA_MEDIA_TYPE, DeltaRecord, Expected, Receipt};
use super::sink::{EntryFailure, Sink, headers};
use super::stream::REPOSITORY_RECORD;
use crate::layout::{INDEX_FILE, LAYOUT_FILE, LAYOUT_VERSION, join};

/// Chunks in flight between a push and the writing thread.
const DEPTH: usize = 8;
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// Where an archive is written.
#[derive(Debug, Clone)]
pub enum Target {
    /// A file, written under a temporary name beside it and renamed at the end.
    File(PathBuf),
    /// Standard output.
    Stdout,
    /// Nowhere: a dry run's archive, which answers what it would hold and writes nothing.
    Planned(PathBuf),
}

/// How an archive is written.
#[derive(Debug, Clone, Default)]
pub struct WriterOptions {
    /// Whole-stream compression.
    pub compression: Compression,
    /// What the full names of the images start with (`registry.example/team/`): the source
    /// registry and prefix, so `docker load` names the images as they were named there.
    pub name_base: String,
    /// A delta's base: what the destination holds already, left out of the archive.
    pub base: Option<DeltaBase>,
    /// The largest manifest or config read to describe the images in `index.json` and
    /// `manifest.json`.
    pub manifest_limit: u64,
}

/// What a delta archive leaves out: the content of a receipt.
#[derive(Debug, Clone)]
pub struct DeltaBase {
    /// How the base was named (the receipt or previous archive).
    pub name: String,
    /// The receipt.
    pub receipt: Receipt,
    holders: HashMap<Digest, (String, u64)>,
}

impl DeltaBase {
    /// The base `receipt`, named `name`.
    pub fn new(name: impl Into<String>, receipt: Receipt) -> Self {
        Self {
            name: name.into(),
            holders: receipt.holders(),
            receipt,
        }
    }
}

/// What [`ArchiveWriter::finish`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveSummary {
    /// The archive's size in bytes (compressed, when it is).
    pub bytes: u64,
    /// Blobs and manifests in it.
    pub blobs: usize,
    /// Bytes of those blobs and manifests.
    pub content_bytes: u64,
    /// Images (tags) `index.json` names.
    pub images: usize,
    /// Blobs and manifests left out as expected at the destination (a delta).
    pub expected: usize,
}

/// An archive being written (see the module documentation).
#[derive(Clone)]
pub struct ArchiveWriter {
    inner: Arc<Inner>,
}

struct Inner {
    info: StoreInfo,
    options: WriterOptions,
    state: Mutex<State>,
    sink: tokio::sync::Mutex<Slot>,
}

enum Slot {
    Open(Sink),
    Broken(String),
    Finished,
    Planned,
}

#[derive(Default)]
struct State {
    written: HashMap<Digest, u64>,
    manifests: HashMap<Digest, Manifest>,
    configs: HashMap<Digest, ConfigInfo>,
    tags: Vec<BundleEntry>,
    expected: BTreeMap<String, Expected>,
}

struct ConfigInfo {
    platform: Option<Platform>,
    layers: usize,
}

impl std::fmt::Debug for ArchiveWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter")
            .field("archive", &self.inner.info.namespace)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for ArchiveWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.inner.info.namespace)
    }
}

impl ArchiveWriter {
    /// Starts an archive at `target`.
    pub fn create(target: Target, options: WriterOptions) -> Result<Self> {
        let (sink, authority, shown) = match &target {
            Target::File(path) => (
                Slot::Open(Sink::file(path, options.compression)?),
                format!("file:{}", absolute(path).display()),
                path.display().to_string(),
            ),
            Target::Stdout => (
                Slot::Open(Sink::stdout(options.compression)?),
                "stdout".into(),
                "-".into(),
            ),
            Target::Planned(path) => (
                Slot::Planned,
                format!("file:{}", absolute(path).display()),
                path.display().to_string(),
            ),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                info: StoreInfo::new(OCI_ARCHIVE, authority, format!("oci-archive:{shown}")),
                options,
                state: Mutex::new(State::default()),
                sink: tokio::sync::Mutex::new(sink),
            }),
        })
    }

    /// The store of repository `name` of the bundle.
    pub fn repository(&self, name: &str) -> Result<Arc<dyn WriteStore>> {
        check_repository(name)?;
        Ok(Arc::new(WriterRepository {
            info: repository_info(&self.inner.info, name),
            inner: self.inner.clone(),
            repository: name.to_string(),
        }))
    }

    /// Writes the delta record, `oci-layout`, Docker's `manifest.json` and `index.json`, ends
    /// the archive and renames it to its final name. A dry run's archive writes nothing.
    pub async fn finish(&self) -> Result<ArchiveSummary> {
        let mut slot = self.inner.sink.lock().await;
        let sink = match std::mem::replace(&mut *slot, Slot::Finished) {
            Slot::Open(sink) => sink,
            Slot::Planned => return Ok(ArchiveSummary::default()),
            Slot::Broken(why) => return Err(self.broken(&why)),
            Slot::Finished => {
                return Err(Error::Cancelled(format!("{self} was finished already")));
            }
        };
        let (files, summary) = self.closing_files();
        let what = self.to_string();
        let bytes = join(
            tokio::task::spawn_blocking(move || {
                let mut sink = sink;
                for (name, body, records) in &files {
                    let records: Vec<(&str, &str)> =
                        records.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    sink.bytes_entry(&headers(name, body.len() as u64, &records), body)?;
                }
                sink.finish()
            })
            .await,
        )??;
        tracing::info!(archive = %what, bytes, images = summary.images, blobs = summary.blobs, "archive written");
        Ok(ArchiveSummary { bytes, ..summary })
    }

    /// The entries written last, and the summary of the archive.
    #[allow(clippy::type_complexity)]
    fn closing_files(
        &self,
    ) -> (
        Vec<(String, Vec<u8>, Vec<(&'static str, String)>)>,
        ArchiveSummary,
    ) {
        let state = self.inner.state.lock().expect("state lock");
        let mut files = Vec::new();
        let mut delta_digest = None;
        if let Some(base) = &self.inner.options.base {
            let record = DeltaRecord {
                media_type: DELTA_MEDIA_TYPE.into(),
                base: base.name.clone(),
                expected: state.expected.values().cloned().collect(),
                receipt: base.receipt.clone(),
            };
            let body = serde_json::to_vec(&record).expect("delta JSON");
            let digest = ferry_core::sha256(&body);
            files.push((blob_name(&digest), body, Vec::new()));
            delta_digest = Some(digest);
        }
        let layout = serde_json::json!({ "imageLayoutVersion": LAYOUT_VERSION });
        files.push((
            LAYOUT_FILE.to_string(),
            serde_json::to_vec(&layout).expect("JSON"),
            Vec::new(),
        ));
        let entries: Vec<BundleEntry> = state
            .tags
            .iter()
            .map(|e| {
                let mut e = e.clone();
                if let Some(p) = state.platform_of(e.descriptor.digest()) {
                    e.descriptor.set_platform(Some(p));
                }
                e
            })
            .collect();
        let docker = state.docker_items(&entries, &self.inner.options.name_base);
        if !docker.is_empty() {
            files.push((
                DOCKER_MANIFEST_FILE.to_string(),
                serde_json::to_vec(&docker).expect("JSON"),
                Vec::new(),
            ));
        }
        files.push((
            INDEX_FILE.to_string(),
            write_index(
                &entries,
                &self.inner.options.name_base,
                delta_digest.as_ref(),
            ),
            Vec::new(),
        ));
        let summary = ArchiveSummary {
            bytes: 0,
            blobs: state.written.len(),
            content_bytes: state.written.values().sum(),
            images: entries.len(),
            expected: state.expected.len(),
        };
        (files, summary)
    }

    fn broken(&self, why: &str) -> Error {
        Error::store(
            self.to_string(),
            format!(
                "the archive was broken off by a failed entry ({why}); nothing more can be written to it"
            ),
        )
    }
}

impl Inner {
    fn holds(&self, digest: &Digest) -> bool {
        self.state
            .lock()
            .expect("state lock")
            .written
            .contains_key(digest)
    }

    /// Whether the archive holds `d`, or the delta's base has it at the destination (it is
    /// then recorded as expected there).
    fn present(&self, d: &Descriptor) -> bool {
        let mut state = self.state.lock().expect("state lock");
        if state.written.contains_key(d.digest()) {
            return true;
        }
        let Some(base) = &self.options.base else {
            return false;
        };
        match base.holders.get(d.digest()) {
            Some((repository, size)) if *size == d.size() => {
                state
                    .expected
                    .entry(d.digest().to_string())
                    .or_insert_with(|| Expected {
                        repository: repository.clone(),
                        digest: d.digest().clone(),
                        size: *size,
                        media_type: is_manifest(&media_type_str(d)).then(|| media_type_str(d)),
                    });
                true
            }
            _ => false,
        }
    }

    /// Streams one blob into the archive, once.
    async fn write_blob(&self, repository: &str, d: &Descriptor, data: ByteStream) -> Result<()> {
        if self.holds(d.digest()) {
            return Ok(());
        }
        let mut slot = self.sink.lock().await;
        if self.holds(d.digest()) {
            return Ok(());
        }
        let mut sink = match std::mem::replace(&mut *slot, Slot::Finished) {
            Slot::Open(sink) => sink,
            other => {
                let error = match &other {
                    Slot::Broken(why) => Error::store(
                        self.info.namespace.clone(),
                        format!("the archive was broken off by a failed entry ({why})"),
                    ),
                    Slot::Planned => Error::Cancelled("a dry run writes no archive".into()),
                    _ => Error::Cancelled(format!("{} was finished already", self.info.namespace)),
                };
                *slot = other;
                return Err(error);
            }
        };
        let media_type = media_type_str(d);
        let keep = d.size() <= self.options.manifest_limit
            && (is_manifest(&media_type)
                || media_type == OCI_CONFIG
                || media_type == DOCKER_CONFIG);
        let comment = format!("{REPOSITORY_RECORD}{repository}");
        let head = headers(&blob_name(d.digest()), d.size(), &[("comment", &comment)]);
        let (tx, rx) = mpsc::channel::<Bytes>(DEPTH);
        let size = d.size();
        let task = tokio::task::spawn_blocking(move || {
            let result = sink.entry(&head, size, rx);
            (sink, result)
        });
        let mut kept = Vec::new();
        let mut failure = None;
        let mut stream = match verify_stream(d, data) {
            Ok(s) => s,
            Err(e) => {
                failure = Some(e);
                Box::pin(futures::stream::empty())
            }
        };
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    if keep {
                        kept.extend_from_slice(&bytes);
                    }
                    if tx.send(bytes).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let (sink, result) = join(task.await)?;
        match result {
            Ok(()) => *slot = Slot::Open(sink),
            Err(EntryFailure { error, broken }) => {
                let error = failure.unwrap_or(error);
                *slot = if broken {
                    Slot::Broken(error.to_string())
                } else {
                    Slot::Open(sink)
                };
                return Err(error);
            }
        }
        drop(slot);
        let mut state = self.state.lock().expect("state lock");
        state.written.insert(d.digest().clone(), d.size());
        if keep {
            state.describe(d, &media_type, Bytes::from(kept));
        }
        tracing::debug!(archive = %self.info.namespace, digest = %d.digest(), size, "blob written");
        Ok(())
    }

    fn tag(&self, repository: &str, d: &Descriptor, tag: &str) -> Result<()> {
        crate::layout::validate_tag(tag)?;
        if !self.present(d) {
            return Err(Error::NotFound {
                what: format!("`{}` in {}", d.digest(), self.info.namespace),
                hint: Some("push the manifest before tagging it".into()),
            });
        }
        let mut state = self.state.lock().expect("state lock");
        state
            .tags
            .retain(|e| !(e.repository == repository && e.tag.as_deref() == Some(tag)));
        let mut descriptor = Descriptor::new(d.media_type().clone(), d.size(), d.digest().clone());
        descriptor.set_artifact_type(d.artifact_type().clone());
        state.tags.push(BundleEntry {
            repository: repository.to_string(),
            tag: Some(tag.to_string()),
            descriptor,
        });
        Ok(())
    }

    /// Every tag of `repository`: the base's, overlaid with those set in this archive.
    fn tags(&self, repository: &str) -> Vec<(String, Descriptor)> {
        let mut out: BTreeMap<String, Descriptor> = BTreeMap::new();
        if let Some(base) = &self.options.base {
            for image in &base.receipt.images {
                if image.repository == repository {
                    out.insert(image.tag.clone(), image.descriptor.clone());
                }
            }
        }
        let state = self.state.lock().expect("state lock");
        for e in &state.tags {
            if e.repository == repository
                && let Some(t) = &e.tag
            {
                out.insert(t.clone(), e.descriptor.clone());
            }
        }
        out.into_iter().collect()
    }
}

impl State {
    /// Keeps what `index.json` and `manifest.json` say of a manifest or config written.
    fn describe(&mut self, d: &Descriptor, media_type: &str, bytes: Bytes) {
        if is_manifest(media_type) {
            if let Ok(m) = Manifest::parse(d, bytes) {
                self.manifests.insert(d.digest().clone(), m);
            }
            return;
        }
        #[derive(serde::Deserialize)]
        struct Config {
            os: Option<String>,
            architecture: Option<String>,
            variant: Option<String>,
            rootfs: Option<RootFs>,
        }
        #[derive(serde::Deserialize)]
        struct RootFs {
            #[serde(default)]
            diff_ids: Vec<serde_json::Value>,
        }
        let Ok(config) = serde_json::from_slice::<Config>(&bytes) else {
            return;
        };
        let platform = match (&config.os, &config.architecture) {
            (Some(os), Some(arch)) => {
                let mut p = serde_json::json!({"os": os, "architecture": arch});
                if let Some(v) = &config.variant {
                    p["variant"] = serde_json::json!(v);
                }
                serde_json::from_value(p).ok()
            }
            _ => None,
        };
        let layers = config.rootfs.map_or(usize::MAX, |r| r.diff_ids.len());
        self.configs
            .insert(d.digest().clone(), ConfigInfo { platform, layers });
    }

    fn platform_of(&self, manifest: &Digest) -> Option<Platform> {
        let config = self.manifests.get(manifest)?.config.as_ref()?;
        self.configs.get(config.digest())?.platform.clone()
    }

    /// One `manifest.json` item per single-platform image whose config and layers are in the
    /// archive and whose layers are tars: what `docker load` can load.
    fn docker_items(&self, entries: &[BundleEntry], name_base: &str) -> Vec<DockerItem> {
        let mut items: Vec<(Digest, DockerItem)> = Vec::new();
        for e in entries {
            let Some(tag) = &e.tag else { continue };
            let digest = e.descriptor.digest();
            let name = full_name(name_base, &e.repository, tag);
            if let Some((_, item)) = items.iter_mut().find(|(d, _)| d == digest) {
                item.repo_tags.get_or_insert_with(Vec::new).push(name);
                continue;
            }
            let Some(m) = self.manifests.get(digest) else {
                continue;
            };
            let Some(config) = &m.config else { continue };
            let Some(info) = self.configs.get(config.digest()) else {
                continue;
            };
            let loadable = info.layers == m.layers.len()
                && m.layers.iter().all(|l| {
                    let t = media_type_str(l);
                    self.written.contains_key(l.digest())
                        && (t.contains(".layer.v1.tar") || t.contains(".rootfs.diff.tar"))
                        && !t.contains("nondistributable")
                        && !t.contains("foreign")
                });
            if !loadable || !self.written.contains_key(config.digest()) {
                continue;
            }
            items.push((
                digest.clone(),
                DockerItem {
                    config: blob_name(config.digest()),
                    repo_tags: Some(vec![name]),
                    layers: m.layers.iter().map(|l| blob_name(l.digest())).collect(),
                },
            ));
        }
        items.into_iter().map(|(_, i)| i).collect()
    }
}

/// Refuses a repository name that cannot be a path of the bundle.
fn check_repository(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.contains('\0')
        && !name.contains('\\')
        && !name.contains(':')
        && !name.contains('@')
        && name
            .split('/')
            .all(|c| !c.is_empty() && !c.starts_with('.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "repository",
            name,
            "a repository of an archive is `/`-separated plain names (no `.` or `..`, no `:` \
             or `@`)",
        ))
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[async_trait]
impl Catalog for ArchiveWriter {
    fn info(&self) -> &StoreInfo {
        &self.inner.info
    }

    fn list(&self, prefix: &str) -> BoxStream<'static, Result<String>> {
        let mut names: Vec<String> = self
            .inner
            .state
            .lock()
            .expect("state lock")
            .tags
            .iter()
            .map(|e| e.repository.clone())
            .collect();
        if let Some(base) = &self.inner.options.base {
            names.extend(base.receipt.images.iter().map(|i| i.repository.clone()));
        }
        names.sort();
        names.dedup();
        let names: Vec<Result<String>> = names
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
        Ok(self.repository(name)?)
    }

    async fn open_write(&self, name: &str, _create: bool) -> Result<Option<Arc<dyn WriteStore>>> {
        self.repository(name).map(Some)
    }
}

/// One repository of an archive being written.
struct WriterRepository {
    info: StoreInfo,
    inner: Arc<Inner>,
    repository: String,
}

repository_store_names!(WriterRepository);

#[async_trait]
impl ReadStore for WriterRepository {
    fn info(&self) -> &StoreInfo {
        &self.info
    }

    async fn exists(&self, descriptor: &Descriptor) -> Result<bool> {
        Ok(self.inner.present(descriptor))
    }

    async fn fetch(&self, _descriptor: &Descriptor) -> Result<ByteStream> {
        Err(Error::NotSupported {
            store: self.to_string(),
            operation: "reading (an archive being written is write-only)".into(),
        })
    }

    async fn resolve(&self, reference: &str) -> Result<Descriptor> {
        let tags = self.inner.tags(&self.repository);
        tags.into_iter()
            .find(|(t, d)| t == reference || d.digest().to_string() == reference)
            .map(|(_, d)| d)
            .ok_or_else(|| Error::not_found(format!("`{reference}` in {self}")))
    }

    async fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>> {
        let state = self.inner.state.lock().expect("state lock");
        let mut out: Vec<Descriptor> = state
            .manifests
            .values()
            .filter(|m| m.subject.as_ref().map(|s| s.digest()) == Some(subject.digest()))
            .map(|m| {
                let mut d = m.descriptor.clone();
                if let Some(t) = &m.artifact_type {
                    d.set_artifact_type(Some(t.as_str().into()));
                }
                d
            })
            .collect();
        out.sort_by_key(|d| d.digest().to_string());
        Ok(out)
    }

    fn capabilities(&self) -> ferry_core::Capabilities<'_> {
        ferry_core::Capabilities::default().with_list_tags(self)
    }
}

#[async_trait]
impl ferry_core::ListTags for WriterRepository {
    async fn list_tags(&self) -> Result<Vec<String>> {
        Ok(self
            .inner
            .tags(&self.repository)
            .into_iter()
            .map(|(t, _)| t)
            .collect())
    }

    async fn list_tags_resolved(&self) -> Result<Option<Vec<(String, Descriptor)>>> {
        Ok(Some(self.inner.tags(&self.repository)))
    }
}

#[async_trait]
impl WriteStore for WriterRepository {
    async fn push(&self, descriptor: &Descriptor, data: ByteStream) -> Result<()> {
        self.inner
            .write_blob(&self.repository, descriptor, data)
            .await
    }

    async fn tag(&self, descriptor: &Descriptor, tag: &str) -> Result<()> {
        self.inner.tag(&self.repository, descriptor, tag)
    }
}
