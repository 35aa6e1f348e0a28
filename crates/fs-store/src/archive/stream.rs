//! Reading an archive as a stream (stdin, a pipe, a compressed file), in one pass with no
//! scratch disk.
//!
//! A thread reads the tar (decompressed when its first bytes say so) entry by entry and
//! checks each name and type. Blobs are verified against their names while they stream and
//! pushed, as they arrive, to the store the caller's [`Landing`] names for them: ferry's
//! writer records with each blob the repository of the bundle it belongs to (a PAX
//! `comment`, which other readers ignore), so a bundle of many repositories lands each blob in one of them.
//! Entries small enough to be manifests that read as manifests (JSON with `mediaType`,
//! `config` or `manifests`) are held in memory, each bounded by the manifest limit, until the
//! stream ends; then the result is an [`ArchiveBundle`] whose manifests are those held and
//! whose blobs are where they landed. A copy or sync out of it pushes the manifests, children
//! first, and sets the tags last, finding the blobs present or mounting them from the
//! repository they landed in. A stream that breaks off, or a blob that fails its digest, ends
//! the reading with an error before any manifest is pushed or any tag set.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use ferry_core::{
    BlobLocations, ByteStream, Descriptor, Digest, Error, Hasher, Result, WriteStore,
};
use serde_json::Value;
use tokio::sync::mpsc;

use super::bundle::{ArchiveBundle, Source, archive_info};
use super::compression::Compression;
use super::file::{check_layout_version, damaged};
use super::index::ArchiveIndex;
use super::names::{Kind, Member, classify, unsafe_entry};
use super::receipt::DeltaRecord;

/// What starts the PAX `comment` record naming the repository of the bundle a blob belongs
/// to (`comment=dev.ferry.archive.repository=team/app`). POSIX has readers ignore a comment,
/// and they do (GNU tar, Go, Python), where an unknown keyword makes GNU tar warn.
pub const REPOSITORY_RECORD: &str = "dev.ferry.archive.repository=";

/// Blob data moves from the reading thread in chunks this large.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the reading thread and the push.
const DEPTH: usize = 4;

/// Where the blobs of a stream land.
#[async_trait]
pub trait Landing: Send + Sync {
    /// The store a blob of repository `hint` lands in (`None`: the archive does not say, as
    /// archives other tools wrote do not).
    async fn store(&self, hint: Option<&str>) -> Result<Arc<dyn WriteStore>>;
}

/// How a stream is read.
#[derive(Clone)]
pub struct StreamOptions {
    /// The largest manifest held, in bytes.
    pub manifest_limit: u64,
    /// The most bytes held in all.
    pub held_limit: u64,
    /// The repository of images the archive names none for.
    pub default_repository: String,
    /// Where landed blobs are recorded, for the mounts of the copies that follow.
    pub locations: Option<Arc<dyn BlobLocations>>,
}

impl StreamOptions {
    /// Options with the default manifest limit, and 64 times that held in all.
    pub fn new(default_repository: impl Into<String>) -> Self {
        let limit = ferry_core::model::DEFAULT_MANIFEST_LIMIT;
        Self {
            manifest_limit: limit,
            held_limit: limit * 64,
            default_repository: default_repository.into(),
            locations: None,
        }
    }

    /// Sets the largest manifest held (and 64 times that in all).
    pub fn with_manifest_limit(mut self, limit: u64) -> Self {
        self.manifest_limit = limit;
        self.held_limit = limit.saturating_mul(64);
        self
    }

    /// Records where blobs landed in `locations`.
    pub fn with_locations(mut self, locations: Arc<dyn BlobLocations>) -> Self {
        self.locations = Some(locations);
        self
    }
}

/// What the reading thread found.
enum Event {
    Layout(Vec<u8>),
    Index(Vec<u8>),
    DockerManifest,
    Held(Digest, Bytes),
    Blob {
        digest: Digest,
        size: u64,
        hint: Option<String>,
        data: mpsc::Receiver<Result<Bytes>>,
    },
}

/// Reads the archive stream `input`, named `what` (`oci-archive:-`), landing each blob where
/// `landing` says (or only verifying it, with `None`: a scan). Returns the bundle once the
/// stream has ended.
pub async fn read_stream(
    input: Box<dyn Read + Send>,
    what: &str,
    landing: Option<&dyn Landing>,
    options: &StreamOptions,
) -> Result<ArchiveBundle> {
    let (tx, mut rx) = mpsc::channel::<Result<Event>>(DEPTH);
    let thread_what = what.to_string();
    let limit = options.manifest_limit;
    let reader = tokio::task::spawn_blocking(move || {
        if let Err(e) = read_entries(input, &thread_what, limit, &tx) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let mut layout = None;
    let mut index = None;
    let mut docker = false;
    let mut held_bytes = 0u64;
    let mut blobs: HashMap<Digest, Source> = HashMap::new();
    while let Some(event) = rx.recv().await {
        match event? {
            Event::Layout(bytes) => layout = Some(bytes),
            Event::Index(bytes) => index = Some(bytes),
            Event::DockerManifest => docker = true,
            Event::Held(digest, bytes) => {
                held_bytes += bytes.len() as u64;
                if held_bytes > options.held_limit {
                    return Err(Error::TooLarge {
                        what: format!("the manifests {what} holds"),
                        size: held_bytes,
                        limit: options.held_limit,
                    });
                }
                blobs.insert(digest, Source::Held(bytes));
            }
            Event::Blob {
                digest,
                size,
                hint,
                data,
            } => {
                let source = land(landing, &digest, size, hint.as_deref(), data, options).await?;
                blobs.entry(digest).or_insert(source);
            }
        }
    }
    crate::layout::join(reader.await)?;
    let Some(index) = index else {
        if docker {
            return Err(Error::invalid(
                "archive",
                what,
                "it has Docker's `manifest.json` but no OCI `index.json`; ferry reads a Docker \
                 archive from a file only (`docker-archive:PATH`)",
            ));
        }
        return Err(damaged(
            what,
            "the stream ended before its `index.json` (truncated, or not an OCI archive)",
        ));
    };
    let Some(layout) = layout else {
        return Err(damaged(what, "it has no `oci-layout`"));
    };
    check_layout_version(&layout, what)?;
    let mut parsed = ArchiveIndex::parse(&index, what)?;
    for e in &mut parsed.entries {
        if e.repository.is_empty() {
            e.repository = options.default_repository.clone();
        }
    }
    let delta = match &parsed.delta {
        Some(d) => match blobs.get(d) {
            Some(Source::Held(bytes)) => Some(DeltaRecord::parse(bytes, what)?),
            _ => return Err(damaged(what, format!("it lacks its delta record `{d}`"))),
        },
        None => None,
    };
    check_held(what, &parsed, &blobs, delta.as_ref())?;
    Ok(ArchiveBundle::new(
        archive_info(None, what),
        parsed.entries,
        blobs,
        None,
        delta,
        options.manifest_limit,
    ))
}

/// Pushes one blob to where `landing` says (unless it is there already), or drains it.
async fn land(
    landing: Option<&dyn Landing>,
    digest: &Digest,
    size: u64,
    hint: Option<&str>,
    data: mpsc::Receiver<Result<Bytes>>,
    options: &StreamOptions,
) -> Result<Source> {
    let Some(landing) = landing else {
        drain(data).await?;
        return Ok(Source::Seen(size));
    };
    let store = landing.store(hint).await?;
    let descriptor = Descriptor::new("application/octet-stream".into(), size, digest.clone());
    if store.exists(&descriptor).await? {
        tracing::debug!(%digest, store = %store, "blob already at the destination");
        drain(data).await?;
    } else {
        tracing::debug!(%digest, size, store = %store, "blob lands");
        let stream: ByteStream = Box::pin(futures::stream::unfold(data, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }));
        store.push(&descriptor, stream).await?;
    }
    if let Some(locations) = &options.locations {
        locations.record(digest, store.info());
    }
    let read: Arc<dyn ferry_core::ReadStore> = store;
    Ok(Source::At(read))
}

/// Reads a blob's data to its end without keeping it; an error in it (a truncated stream, a
/// repeated name with other content) still counts.
async fn drain(mut data: mpsc::Receiver<Result<Bytes>>) -> Result<()> {
    while let Some(chunk) = data.recv().await {
        chunk?;
    }
    Ok(())
}

/// Every image's manifests must have arrived (they are held); blobs are where they landed.
fn check_held(
    what: &str,
    index: &ArchiveIndex,
    blobs: &HashMap<Digest, Source>,
    delta: Option<&DeltaRecord>,
) -> Result<()> {
    let expected: HashSet<&Digest> = delta
        .iter()
        .flat_map(|d| d.expected.iter().map(|e| &e.digest))
        .collect();
    let mut seen = HashSet::new();
    let mut pending: Vec<Descriptor> = index.entries.iter().map(|e| e.descriptor.clone()).collect();
    while let Some(d) = pending.pop() {
        if !seen.insert(d.digest().clone()) {
            continue;
        }
        let media_type = ferry_core::model::media_type_str(&d);
        if ferry_core::model::is_foreign_layer(&media_type) || expected.contains(d.digest()) {
            continue;
        }
        match blobs.get(d.digest()) {
            None => {
                return Err(damaged(
                    what,
                    format!("it lacks `{}` ({media_type})", d.digest()),
                ));
            }
            Some(Source::Held(bytes)) if ferry_core::model::is_manifest(&media_type) => {
                let manifest = ferry_core::Manifest::parse(&d, bytes.clone())?;
                pending.extend(manifest.successors());
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The reading thread: entry after entry, until the end of the archive.
fn read_entries(
    input: Box<dyn Read + Send>,
    what: &str,
    limit: u64,
    tx: &mpsc::Sender<Result<Event>>,
) -> Result<()> {
    let io = |e: std::io::Error| damaged(what, format!("reading it failed: {e}"));
    let mut buffered = BufReader::with_capacity(CHUNK, input);
    let head = buffered.fill_buf().map_err(io)?.to_vec();
    let compression = Compression::detect(&head, what)?;
    let decoded = compression.decoder(buffered).map_err(io)?;
    let mut archive = tar::Archive::new(decoded);
    let mut names: HashSet<String> = HashSet::new();
    let entries = archive
        .entries()
        .map_err(|e| damaged(what, format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| damaged(what, format!("its tar headers break off: {e}")))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = Kind::of(entry.header().entry_type());
        let Some(member) = classify(&raw, kind)? else {
            continue;
        };
        let size = entry.size();
        let name = super::names::normalize(&raw)?;
        let repeated = !names.insert(name.clone());
        let send = |event: Event| tx.blocking_send(Ok(event)).is_ok();
        match member {
            Member::Directory | Member::Repositories => {}
            Member::Layout | Member::Index if repeated => {
                return Err(unsafe_entry(
                    &raw,
                    "a name repeated (the index files come once)",
                ));
            }
            Member::Layout => {
                if !send(Event::Layout(read_small(
                    &mut entry, size, limit, &raw, what,
                )?)) {
                    return Ok(());
                }
            }
            Member::Index => {
                if !send(Event::Index(read_small(
                    &mut entry, size, limit, &raw, what,
                )?)) {
                    return Ok(());
                }
            }
            Member::DockerManifest => {
                if !send(Event::DockerManifest) {
                    return Ok(());
                }
            }
            Member::Blob(digest) if repeated => {
                // The first copy was verified against the name; this one must be the same.
                let mut hasher = Hasher::for_digest(&digest)?;
                let mut buf = vec![0u8; CHUNK];
                loop {
                    let n = entry.read(&mut buf).map_err(io)?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                }
                if hasher.finish() != digest {
                    return Err(unsafe_entry(&raw, "a name repeated with other content"));
                }
            }
            Member::Blob(digest) => {
                let hint = repository_hint(&mut entry).map_err(io)?;
                if size <= limit {
                    let bytes = read_small(&mut entry, size, limit, &raw, what)?;
                    let descriptor =
                        Descriptor::new("application/octet-stream".into(), size, digest.clone());
                    ferry_core::verify_bytes(&descriptor, &bytes)?;
                    let bytes = Bytes::from(bytes);
                    let event = if looks_held(&bytes) {
                        Event::Held(digest, bytes)
                    } else {
                        let (data_tx, data) = mpsc::channel(1);
                        let _ = data_tx.try_send(Ok(bytes));
                        Event::Blob {
                            digest,
                            size,
                            hint,
                            data,
                        }
                    };
                    if !send(event) {
                        return Ok(());
                    }
                    continue;
                }
                let (data_tx, data) = mpsc::channel(DEPTH);
                if !send(Event::Blob {
                    digest: digest.clone(),
                    size,
                    hint,
                    data,
                }) {
                    return Ok(());
                }
                stream_blob(&mut entry, &digest, size, &raw, what, &data_tx)?;
            }
        }
    }
    Ok(())
}

/// Streams a blob's data into `tx`, hashing it; the chunk that completes it is sent only once
/// the digest matches. When the receiver is gone (the blob is not wanted), the rest is left
/// for the archive reader to skip.
fn stream_blob(
    entry: &mut impl Read,
    digest: &Digest,
    size: u64,
    raw: &str,
    what: &str,
    tx: &mpsc::Sender<Result<Bytes>>,
) -> Result<()> {
    let mut hasher = Some(Hasher::for_digest(digest)?);
    let mut done = 0u64;
    while done < size {
        let want = (size - done).min(CHUNK as u64) as usize;
        let mut chunk = Vec::with_capacity(want);
        let read = entry.take(want as u64).read_to_end(&mut chunk);
        let n = chunk.len();
        // A failure goes to the push reading the blob, which ends the reading with it.
        let failure = if let Err(e) = read {
            Some(damaged(what, format!("reading `{raw}` failed: {e}")))
        } else if n == 0 {
            Some(damaged(
                what,
                format!("the stream ends inside `{raw}` ({done} of {size} bytes)"),
            ))
        } else {
            done += n as u64;
            let h = hasher.as_mut().expect("hashing until the end");
            h.update(&chunk);
            match hasher.take_if(|_| done == size).map(Hasher::finish) {
                Some(actual) if &actual != digest => Some(Error::DigestMismatch {
                    expected: digest.clone(),
                    actual: Some(actual),
                }),
                _ => None,
            }
        };
        if let Some(error) = failure {
            let _ = tx.blocking_send(Err(error));
            return Err(Error::Cancelled(format!(
                "the reading of {what} stopped at `{raw}`"
            )));
        }
        if tx.blocking_send(Ok(Bytes::from(chunk))).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// The repository ferry's writer recorded for the blob, if any.
fn repository_hint<R: Read>(entry: &mut tar::Entry<'_, R>) -> std::io::Result<Option<String>> {
    let Some(extensions) = entry.pax_extensions()? else {
        return Ok(None);
    };
    for extension in extensions {
        let extension = extension?;
        if extension.key() == Ok("comment")
            && let Some(repository) = extension
                .value()
                .ok()
                .and_then(|v| v.strip_prefix(REPOSITORY_RECORD))
        {
            return Ok(Some(repository.to_string()));
        }
    }
    Ok(None)
}

fn read_small(
    entry: &mut impl Read,
    size: u64,
    limit: u64,
    raw: &str,
    what: &str,
) -> Result<Vec<u8>> {
    if size > limit {
        return Err(Error::TooLarge {
            what: format!("`{raw}` of {what}"),
            size,
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    entry
        .take(size)
        .read_to_end(&mut bytes)
        .map_err(|e| damaged(what, format!("reading `{raw}` failed: {e}")))?;
    if (bytes.len() as u64) < size {
        return Err(damaged(
            what,
            format!(
                "the stream ends inside `{raw}` ({} of {size} bytes)",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

/// Whether a small blob is held: a JSON object with a manifest's fields (`mediaType`,
/// `config`, `manifests`). Image configs have `config` too and are held as well: they are
/// small, and a copy pushes them like any blob.
fn looks_held(bytes: &[u8]) -> bool {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return false;
    }
    match serde_json::from_slice::<serde_json::Map<String, Value>>(bytes) {
        Ok(doc) => ["mediaType", "config", "manifests"]
            .iter()
            .any(|k| doc.contains_key(*k)),
        Err(_) => false,
    }
}

/// A landing in one store, whatever the archive says.
pub struct OneStore(pub Arc<dyn WriteStore>);

#[async_trait]
impl Landing for OneStore {
    async fn store(&self, _hint: Option<&str>) -> Result<Arc<dyn WriteStore>> {
        Ok(self.0.clone())
    }
}
