//! Reading an archive file: its member table first, then each blob by offset, so that a copy
//! of one image out of a large bundle reads that image's bytes (and the bundle's manifests).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use ferry_core::model::{Manifest, is_foreign_layer, is_manifest, media_type_str};
use ferry_core::{Descriptor, Digest, Error, Result, verify_bytes};

use super::bundle::{ArchiveBundle, Source, archive_info, read_at};
use super::compression::Compression;
use super::index::ArchiveIndex;
use super::names::{Kind, Member, classify, unsafe_entry};
use super::receipt::DeltaRecord;

/// How an archive is read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// The largest manifest (and index file) accepted, in bytes.
    pub manifest_limit: u64,
    /// The repository of the images an archive names none for (skopeo's archives name only
    /// a tag): the archive file's stem, as a rule.
    pub default_repository: String,
}

impl ReadOptions {
    /// Options with the default manifest limit, naming unnamed images `default_repository`.
    pub fn new(default_repository: impl Into<String>) -> Self {
        Self {
            manifest_limit: ferry_core::model::DEFAULT_MANIFEST_LIMIT,
            default_repository: default_repository.into(),
        }
    }

    /// Sets the largest manifest accepted.
    pub fn with_manifest_limit(mut self, limit: u64) -> Self {
        self.manifest_limit = limit;
        self
    }
}

/// One member of the table: a regular file, or a link to be resolved.
#[derive(Debug, Clone)]
pub(crate) struct RawMember {
    /// The cleaned name.
    pub name: String,
    pub kind: Kind,
    pub offset: u64,
    pub size: u64,
    /// The target of a link, as the entry names it.
    pub link: Option<String>,
}

/// The compression of the file at `path`, from its first bytes.
pub fn probe(path: &Path) -> Result<Compression> {
    use std::io::Read;
    let mut file = open_file(path)?;
    let mut head = [0u8; 8];
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(format!("reading `{}`", path.display()), e)),
        }
    }
    Compression::detect(&head[..filled], &path.display().to_string())
}

pub(crate) fn open_file(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound {
            what: format!("archive `{}`", path.display()),
            hint: Some("check the path after `oci-archive:` or `docker-archive:`".into()),
        },
        _ => Error::io(format!("opening `{}`", path.display()), e),
    })
}

/// The archive file at `path`, which must be an uncompressed tar (a compressed one is refused
/// with `advice`): it is read by offset.
pub(crate) fn open_uncompressed(path: &Path, what: &str, advice: &str) -> Result<std::fs::File> {
    let file = open_file(path)?;
    let compression = probe(path)?;
    if compression != Compression::None {
        return Err(Error::invalid(
            "archive",
            what,
            format!("it is {compression}-compressed: {advice}"),
        ));
    }
    Ok(file)
}

pub(crate) fn damaged(what: &str, reason: impl Into<String>) -> Error {
    Error::Damaged {
        what: what.to_string(),
        reason: reason.into(),
    }
}

/// Every member of the uncompressed tar `file`, with `check` run on each entry's raw name
/// and kind first (it refuses what the format may not hold). A member cut short by the end
/// of the file, or a missing end-of-archive marker, is damage.
pub(crate) fn scan_members(
    file: &std::fs::File,
    what: &str,
    check: &dyn Fn(&str, Kind) -> Result<Option<String>>,
) -> Result<Vec<RawMember>> {
    let len = file
        .metadata()
        .map_err(|e| Error::io(format!("reading `{what}`"), e))?
        .len();
    let mut archive = tar::Archive::new(file);
    let entries = archive
        .entries_with_seek()
        .map_err(|e| damaged(what, format!("not a tar archive: {e}")))?;
    let mut out = Vec::new();
    let mut end = 0u64;
    for entry in entries {
        let entry = entry.map_err(|e| damaged(what, format!("its tar headers break off: {e}")))?;
        let raw = String::from_utf8(entry.path_bytes().into_owned()).map_err(|e| {
            unsafe_entry(
                &String::from_utf8_lossy(e.as_bytes()),
                "a name that is not UTF-8",
            )
        })?;
        let kind = Kind::of(entry.header().entry_type());
        let offset = entry.raw_file_position();
        let size = entry.size();
        end = end.max(offset + size.div_ceil(512) * 512);
        let Some(name) = check(&raw, kind)? else {
            continue;
        };
        if offset + size > len {
            return Err(damaged(
                what,
                format!(
                    "it ends inside `{name}` ({} of {size} bytes)",
                    len.saturating_sub(offset)
                ),
            ));
        }
        let link = entry
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned());
        out.push(RawMember {
            name,
            kind,
            offset,
            size,
            link,
        });
    }
    let marker = read_at(file, end, 1024.min(len.saturating_sub(end)))?;
    if marker.len() < 1024 || marker.iter().any(|b| *b != 0) {
        return Err(damaged(
            what,
            "it ends without the end-of-archive marker (the archive is truncated, or its \
             writer failed)",
        ));
    }
    Ok(out)
}

/// Refuses a name that appears twice with other content; a repeat with the same content is
/// dropped.
pub(crate) fn dedup_members(
    file: &std::fs::File,
    members: Vec<RawMember>,
) -> Result<Vec<RawMember>> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<RawMember> = Vec::with_capacity(members.len());
    for m in members {
        if let Some(&i) = seen.get(&m.name) {
            let first = &out[i];
            let same = first.kind == m.kind
                && first.size == m.size
                && first.link == m.link
                && same_bytes(file, first.offset, m.offset, m.size)?;
            if !same {
                return Err(unsafe_entry(&m.name, "a name repeated with other content"));
            }
            continue;
        }
        seen.insert(m.name.clone(), out.len());
        out.push(m);
    }
    Ok(out)
}

fn same_bytes(file: &std::fs::File, a: u64, b: u64, len: u64) -> Result<bool> {
    const CHUNK: u64 = 1 << 20;
    let mut done = 0;
    while done < len {
        let n = CHUNK.min(len - done);
        if read_at(file, a + done, n)? != read_at(file, b + done, n)? {
            return Ok(false);
        }
        done += n;
    }
    Ok(true)
}

/// Opens the OCI archive at `path` (an uncompressed tar): every entry's name and type
/// checked, every image `index.json` names walked to check the archive holds its content
/// (or, for a delta, expects it at the destination), and the manifests held in memory.
/// Blocking: run it on the blocking pool.
pub fn open_oci(path: &Path, options: &ReadOptions) -> Result<ArchiveBundle> {
    let what = format!("oci-archive:{}", path.display());
    let file = open_uncompressed(path, &what, "read it as a stream")?;
    // Paths and types first; a Docker archive (no OCI index) is told apart before the names
    // an OCI archive may hold are checked, so its error says how to read it.
    let members = scan_members(&file, &what, &|raw, kind| match kind {
        Kind::Directory => classify(raw, kind).map(|_| None),
        _ => super::names::docker_name(raw, kind),
    })?;
    let has = |name: &str| members.iter().any(|m| m.name == name);
    if !has(crate::layout::INDEX_FILE) && has(super::names::DOCKER_MANIFEST_FILE) {
        return Err(Error::invalid(
            "archive",
            what,
            "it has Docker's `manifest.json` but no OCI `oci-layout` and `index.json`: read it \
             as `docker-archive:PATH`",
        ));
    }
    for m in &members {
        classify(&m.name, m.kind)?;
    }
    let members = dedup_members(&file, members)?;
    let mut layout = None;
    let mut index = None;
    let mut blobs: HashMap<Digest, Source> = HashMap::new();
    for m in &members {
        match classify(&m.name, m.kind)? {
            Some(Member::Layout) => layout = Some(m),
            Some(Member::Index) => index = Some(m),
            Some(Member::Blob(d)) => {
                blobs.insert(
                    d,
                    Source::Member {
                        offset: m.offset,
                        size: m.size,
                    },
                );
            }
            _ => {}
        }
    }
    let small = |m: &RawMember, name: &str| -> Result<Vec<u8>> {
        if m.size > options.manifest_limit {
            return Err(Error::TooLarge {
                what: format!("`{name}` of {what}"),
                size: m.size,
                limit: options.manifest_limit,
            });
        }
        read_at(&file, m.offset, m.size)
    };
    let (Some(layout), Some(index)) = (layout, index) else {
        return Err(damaged(
            &what,
            "it has no `oci-layout` and `index.json` (an OCI archive has both)",
        ));
    };
    check_layout_version(&small(layout, "oci-layout")?, &what)?;
    let mut parsed = ArchiveIndex::parse(&small(index, "index.json")?, &what)?;
    for e in &mut parsed.entries {
        if e.repository.is_empty() {
            e.repository = options.default_repository.clone();
        }
    }
    let delta = match &parsed.delta {
        Some(d) => {
            let Some(Source::Member { offset, size }) = blobs.get(d).cloned() else {
                return Err(damaged(&what, format!("it lacks its delta record `{d}`")));
            };
            let bytes = read_at(&file, offset, size.min(options.manifest_limit * 16))?;
            let descriptor = Descriptor::new("application/octet-stream".into(), size, d.clone());
            verify_bytes(&descriptor, &bytes)?;
            Some(DeltaRecord::parse(&bytes, &what)?)
        }
        None => None,
    };
    let expected: HashSet<Digest> = delta
        .iter()
        .flat_map(|d| d.expected.iter().map(|e| e.digest.clone()))
        .collect();
    check_graph(&file, &what, &parsed, &mut blobs, &expected, options)?;
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    Ok(ArchiveBundle::new(
        archive_info(Some(&canonical), &what),
        parsed.entries,
        blobs,
        Some(Arc::new(file)),
        delta,
        options.manifest_limit,
    ))
}

/// Refuses an `oci-layout` whose version is not 1.x.
pub(crate) fn check_layout_version(bytes: &[u8], what: &str) -> Result<()> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Marker {
        image_layout_version: String,
    }
    let marker: Marker = serde_json::from_slice(bytes)
        .map_err(|e| damaged(what, format!("its `oci-layout` is not valid: {e}")))?;
    if !marker.image_layout_version.starts_with("1.") {
        return Err(Error::invalid(
            "archive",
            what,
            format!(
                "image-layout version `{}` is not supported; ferry reads version 1.x",
                marker.image_layout_version
            ),
        ));
    }
    Ok(())
}

/// Walks every image the index names: each manifest must be in the archive (it is read,
/// verified and kept in memory) and each blob too, with the size its descriptor gives, unless
/// the archive is a delta that expects it at the destination.
fn check_graph(
    file: &std::fs::File,
    what: &str,
    index: &ArchiveIndex,
    blobs: &mut HashMap<Digest, Source>,
    expected: &HashSet<Digest>,
    options: &ReadOptions,
) -> Result<()> {
    let mut seen: HashSet<Digest> = HashSet::new();
    let mut pending: Vec<(Descriptor, Digest)> = index
        .entries
        .iter()
        .map(|e| (e.descriptor.clone(), e.descriptor.digest().clone()))
        .collect();
    while let Some((d, parent)) = pending.pop() {
        if !seen.insert(d.digest().clone()) {
            continue;
        }
        let media_type = media_type_str(&d);
        if is_foreign_layer(&media_type) {
            continue;
        }
        let source = blobs.get(d.digest()).cloned();
        let (offset, size) = match source {
            Some(Source::Member { offset, size }) => (offset, size),
            Some(_) => continue,
            None if expected.contains(d.digest()) => continue,
            None => {
                return Err(damaged(
                    what,
                    format!("it lacks `{}`, which `{parent}` names", d.digest()),
                ));
            }
        };
        if size != d.size() {
            return Err(Error::SizeMismatch {
                digest: d.digest().clone(),
                expected: d.size(),
                actual: size,
                truncated: false,
            });
        }
        if !is_manifest(&media_type) {
            continue;
        }
        if size > options.manifest_limit {
            return Err(Error::TooLarge {
                what: format!("manifest `{}` of {what}", d.digest()),
                size,
                limit: options.manifest_limit,
            });
        }
        let bytes = Bytes::from(read_at(file, offset, size)?);
        verify_bytes(&d, &bytes)?;
        let manifest = Manifest::parse(&d, bytes.clone())?;
        for child in manifest.successors() {
            pending.push((child, d.digest().clone()));
        }
        blobs.insert(d.digest().clone(), Source::Held(bytes));
    }
    Ok(())
}

/// The stem of an archive's file name (`bundle` of `bundle.tar.gz`): the repository of
/// images an archive names none for.
pub fn file_stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut stem = name.as_str();
    for suffix in [".gz", ".tgz", ".zst", ".tzst", ".zstd", ".tar"] {
        stem = stem.strip_suffix(suffix).unwrap_or(stem);
    }
    let cleaned: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned.trim_matches('-').to_string();
    if cleaned.is_empty() {
        "archive".into()
    } else {
        cleaned
    }
}
