//! `oci-archive:` and `docker-archive:` endpoints: how they are written on the command line,
//! and the one way `ferry cp` and `ferry sync` open, land, write and receipt them.
//!
//! ```text
//! oci-archive:PATH[:REF][@DIGEST]    REF: TAG, REPO:TAG, or REPO (with @DIGEST)
//! docker-archive:PATH[:REF]          a `docker save` tar, as a source
//! ```
//!
//! As skopeo reads them, the first `:` after `oci-archive:` ends the path, so a file whose
//! name holds `:` is named through a directory without one (`./dir/file`, no `:` in it).

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use async_trait::async_trait;
use ferry_core::model::validate_tag;
use ferry_core::{BlobLocations, Catalog, Descriptor, Error, ReadStore, StoreInfo, WriteStore};
use ferry_fs_store::archive::{
    ArchiveBundle, ArchiveSummary, ArchiveWriter, Compression, DeltaBase, Landing, ReadOptions,
    Receipt, StreamOptions, Target, WriterOptions,
};

use crate::options::ArchiveArgs;

/// Which archive format an endpoint names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// `oci-archive:`.
    Oci,
    /// `docker-archive:` (read only).
    Docker,
}

impl ArchiveFormat {
    /// The prefix as written.
    pub fn prefix(self) -> &'static str {
        match self {
            ArchiveFormat::Oci => "oci-archive",
            ArchiveFormat::Docker => "docker-archive",
        }
    }
}

/// Where an archive is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ArchivePath {
    /// `-`: standard input or output.
    Stdio,
    /// A file.
    File(PathBuf),
}

impl ArchivePath {
    /// As the user wrote it.
    pub fn shown(&self) -> String {
        match self {
            ArchivePath::Stdio => "-".into(),
            ArchivePath::File(p) => p.display().to_string(),
        }
    }

    /// The repository of images the archive names none for: the file's stem.
    pub fn stem(&self) -> String {
        match self {
            ArchivePath::Stdio => "archive".into(),
            ArchivePath::File(p) => ferry_fs_store::archive::file_stem(p),
        }
    }
}

/// The image an archive reference names inside the archive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveRef {
    /// The repository of the bundle.
    pub repository: Option<String>,
    /// The tag.
    pub tag: Option<String>,
    /// The digest.
    pub digest: Option<String>,
}

fn invalid(whole: &str, reason: impl Into<String>) -> Error {
    Error::invalid("reference", whole, reason)
}

/// Parses `oci-archive:…` or `docker-archive:…`; `None` when `whole` is neither.
pub fn parse(whole: &str) -> Option<ferry_core::Result<(ArchiveFormat, ArchivePath, ArchiveRef)>> {
    let (format, rest) = if let Some(rest) = whole.strip_prefix("oci-archive:") {
        (ArchiveFormat::Oci, rest)
    } else if let Some(rest) = whole.strip_prefix("docker-archive:") {
        (ArchiveFormat::Docker, rest)
    } else {
        return None;
    };
    Some(parse_rest(whole, format, rest).map(|(p, r)| (format, p, r)))
}

fn parse_rest(
    whole: &str,
    format: ArchiveFormat,
    rest: &str,
) -> ferry_core::Result<(ArchivePath, ArchiveRef)> {
    let prefix = format.prefix();
    let (rest, digest) = match rest.rsplit_once('@') {
        Some((r, d)) if d.contains(':') => {
            ferry_fs_store::parse_digest(d)?;
            (r, Some(d.to_string()))
        }
        Some(_) => {
            return Err(invalid(
                whole,
                format!(
                    "the text after `@` is not a digest; write `{prefix}:PATH@sha256:<64 hex>`"
                ),
            ));
        }
        None => (rest, None),
    };
    let (path, reference) = match rest.split_once(':') {
        Some((p, r)) => (p, Some(r)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(invalid(
            whole,
            format!("names no file; write `{prefix}:PATH`, or `{prefix}:-` for stdin or stdout"),
        ));
    }
    let path = if path == "-" {
        ArchivePath::Stdio
    } else {
        ArchivePath::File(PathBuf::from(path))
    };
    let mut out = ArchiveRef {
        digest,
        ..ArchiveRef::default()
    };
    match reference {
        None => {}
        Some("") => {
            return Err(invalid(
                whole,
                format!(
                    "ends with `:` but names no image; write `{prefix}:PATH:TAG` or `{prefix}:PATH:REPO:TAG`"
                ),
            ));
        }
        Some(r) => {
            if let Some((repo, tag)) = r.rsplit_once(':') {
                out.repository = Some(repo.to_string());
                out.tag = Some(tag.to_string());
            } else if r.contains('/') || out.digest.is_some() {
                out.repository = Some(r.to_string());
            } else {
                out.tag = Some(r.to_string());
            }
        }
    }
    if let Some(tag) = &out.tag {
        validate_tag(tag).map_err(|e| invalid(whole, format!("{e}")))?;
    }
    if let Some(repo) = &out.repository {
        ferry_distribution::reference::validate_repository(repo)
            .map_err(|e| invalid(whole, format!("{e}")))?;
    }
    Ok((path, out))
}

/// Refuses archive options that name no archive: `--receipt` needs an archive source,
/// `--delta-from` and `--archive-compression` an archive destination.
pub fn check_flags(args: &ArchiveArgs, src_archive: bool, dst_archive: bool) -> Result<()> {
    let refuse =
        |flag: &str, why: &str| -> Result<()> { Err(Error::invalid("option", flag, why).into()) };
    if args.receipt.is_some() && !src_archive {
        return refuse(
            "--receipt",
            "a receipt is written by an import of an archive: the source must be \
             `oci-archive:PATH` or `docker-archive:PATH`",
        );
    }
    if args.delta_from.is_some() && !dst_archive {
        return refuse(
            "--delta-from",
            "a delta is an archive: the destination must be `oci-archive:PATH`",
        );
    }
    if args.archive_compression.is_some() && !dst_archive {
        return refuse(
            "--archive-compression",
            "it compresses an archive written: the destination must be `oci-archive:PATH` \
             (reading finds the compression by itself)",
        );
    }
    Ok(())
}

/// An archive opened to be read: a file's bundle, ready, or a stream whose blobs must land at
/// the destination first.
pub enum Opened {
    /// A file read by offset.
    Bundle(ArchiveBundle),
    /// Standard input or a compressed file.
    Stream {
        /// The bytes.
        input: Box<dyn Read + Send>,
        /// How the archive is named.
        what: String,
        /// The repository of images it names none for.
        stem: String,
    },
}

/// Opens an archive to read.
pub async fn open_read(
    format: ArchiveFormat,
    path: &ArchivePath,
    manifest_limit: u64,
) -> Result<Opened> {
    let what = format!("{}:{}", format.prefix(), path.shown());
    let stem = path.stem();
    let file = match path {
        ArchivePath::Stdio => {
            if format == ArchiveFormat::Docker {
                anyhow::bail!(Error::invalid(
                    "source",
                    what,
                    "a Docker archive is read from a file (by offset); save it to a file first"
                ));
            }
            let fd = std::io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .context("reading standard input")?;
            return Ok(Opened::Stream {
                input: Box::new(std::fs::File::from(fd)),
                what,
                stem,
            });
        }
        ArchivePath::File(p) => p.clone(),
    };
    let compression = ferry_fs_store::archive::probe(&file)?;
    if compression != Compression::None && format == ArchiveFormat::Oci {
        let input =
            std::fs::File::open(&file).with_context(|| format!("opening `{}`", file.display()))?;
        return Ok(Opened::Stream {
            input: Box::new(input),
            what,
            stem,
        });
    }
    let options = ReadOptions::new(stem).with_manifest_limit(manifest_limit);
    let bundle = tokio::task::spawn_blocking(move || match format {
        ArchiveFormat::Oci => ferry_fs_store::archive::open_oci(&file, &options),
        ArchiveFormat::Docker => ferry_fs_store::archive::open_docker(&file, &options),
    })
    .await
    .context("reading the archive")??;
    Ok(Opened::Bundle(bundle))
}

/// The bundle of an opened archive: a stream's blobs land where `landing` says (a dry run
/// gives none: they are only verified).
pub async fn bundle(
    opened: Opened,
    landing: Option<&dyn Landing>,
    locations: Arc<dyn BlobLocations>,
    manifest_limit: u64,
) -> Result<ArchiveBundle> {
    match opened {
        Opened::Bundle(b) => Ok(b),
        Opened::Stream { input, what, stem } => {
            let options = StreamOptions::new(stem)
                .with_manifest_limit(manifest_limit)
                .with_locations(locations);
            Ok(ferry_fs_store::archive::read_stream(input, &what, landing, &options).await?)
        }
    }
}

/// Lands the blobs of a stream in the stores of a catalog under a prefix: each in the
/// repository the archive records for it.
pub struct CatalogLanding {
    catalog: Arc<dyn Catalog>,
    prefix: String,
    what: String,
    opened: Mutex<HashMap<String, Arc<dyn WriteStore>>>,
}

impl CatalogLanding {
    /// Landing in `catalog` under `prefix`; `what` names the archive in errors.
    pub fn new(catalog: Arc<dyn Catalog>, prefix: String, what: String) -> Self {
        Self {
            catalog,
            prefix,
            what,
            opened: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl Landing for CatalogLanding {
    async fn store(&self, hint: Option<&str>) -> ferry_core::Result<Arc<dyn WriteStore>> {
        let Some(repository) = hint else {
            return Err(Error::invalid(
                "source",
                self.what.clone(),
                "the stream does not say which repository its blobs belong to (another tool \
                 wrote it), so they cannot land in a destination of many repositories; read \
                 it from a file, or sync it into one repository (`HOST/REPO`)",
            ));
        };
        let name = format!("{}{repository}", self.prefix);
        if let Some(store) = self.opened.lock().expect("landing lock").get(&name) {
            return Ok(store.clone());
        }
        let store = self
            .catalog
            .open_write(&name, true)
            .await?
            .ok_or_else(|| Error::not_found(format!("`{name}` in {}", self.catalog)))?;
        self.opened
            .lock()
            .expect("landing lock")
            .insert(name, store.clone());
        Ok(store)
    }
}

/// The delta base `--delta-from` names, if any.
pub async fn delta_base(args: &ArchiveArgs, manifest_limit: u64) -> Result<Option<DeltaBase>> {
    match &args.delta_from {
        Some(path) => Ok(Some(
            ferry_fs_store::archive::load_delta_base(path, manifest_limit)
                .await
                .with_context(|| format!("reading `--delta-from {}`", path.display()))?,
        )),
        None => Ok(None),
    }
}

/// An archive to write at `path`, its images named `name_base` + repository + tag.
pub fn writer(
    path: &ArchivePath,
    args: &ArchiveArgs,
    name_base: String,
    base: Option<DeltaBase>,
    dry_run: bool,
    manifest_limit: u64,
) -> Result<ArchiveWriter> {
    let compression = match (&args.archive_compression, path) {
        (Some(c), _) => c.parse::<Compression>()?,
        (None, ArchivePath::File(p)) => Compression::from_extension(p),
        (None, ArchivePath::Stdio) => Compression::None,
    };
    let target = match (path, dry_run) {
        (ArchivePath::Stdio, true) => Target::Planned(PathBuf::from("-")),
        (ArchivePath::Stdio, false) => {
            crate::output::stdout_carries_data();
            Target::Stdout
        }
        (ArchivePath::File(p), true) => Target::Planned(p.clone()),
        (ArchivePath::File(p), false) => Target::File(p.clone()),
    };
    let options = WriterOptions {
        compression,
        name_base,
        base,
        manifest_limit,
    };
    Ok(ArchiveWriter::create(target, options)?)
}

/// Finishes the archive and says so on stderr.
pub async fn finish(writer: &ArchiveWriter) -> Result<ArchiveSummary> {
    let summary = writer.finish().await?;
    if summary.bytes > 0 {
        crate::output::eprintln_flush(&format!(
            "Wrote {writer}: {} images, {} blobs ({} bytes), {} bytes in all{}",
            summary.images,
            summary.blobs,
            summary.content_bytes,
            summary.bytes,
            if summary.expected > 0 {
                format!(
                    ", {} left out as already at the destination",
                    summary.expected
                )
            } else {
                String::new()
            }
        ));
    }
    Ok(summary)
}

/// Checks that what a delta archive expects at the destination is there, opening the
/// destination store of each repository it names with `open`; records where each is.
pub async fn check_expected<F, Fut>(
    bundle: &ArchiveBundle,
    open: F,
    locations: &dyn BlobLocations,
) -> Result<()>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<Arc<dyn ReadStore>>>>,
{
    let Some(delta) = bundle.delta() else {
        return Ok(());
    };
    let mut stores: HashMap<String, Option<Arc<dyn ReadStore>>> = HashMap::new();
    for e in &delta.expected {
        if !stores.contains_key(&e.repository) {
            stores.insert(e.repository.clone(), open(e.repository.clone()).await?);
        }
    }
    let found = bundle
        .check_expected(&move |repo: &str| stores.get(repo).cloned().flatten())
        .await?;
    for (digest, at) in &found {
        locations.record(digest, at);
    }
    Ok(())
}

/// Writes the receipt of an import of `images` (bundle repository, tag, root digest) from
/// `bundle` into `destination`, when `--receipt` asks for one.
pub async fn write_receipt(
    args: &ArchiveArgs,
    bundle: &ArchiveBundle,
    images: &[(String, String, ferry_core::Digest)],
    destination: &str,
    referrers: bool,
) -> Result<()> {
    let Some(path) = &args.receipt else {
        return Ok(());
    };
    let mut resolved: Vec<(String, String, Descriptor)> = Vec::new();
    for (repo, tag, digest) in images {
        let listed = bundle
            .entries()
            .iter()
            .find(|e| &e.repository == repo && e.descriptor.digest() == digest)
            .map(|e| e.descriptor.clone());
        let descriptor = match listed {
            Some(d) => d,
            None => bundle.repository(repo).resolve(digest.as_ref()).await?,
        };
        resolved.push((repo.clone(), tag.clone(), descriptor));
    }
    let receipt: Receipt = bundle.receipt(&resolved, destination, referrers).await?;
    receipt
        .write(path)
        .with_context(|| format!("writing `--receipt {}`", path.display()))?;
    crate::output::eprintln_flush(&format!(
        "Receipt {}: {} images in {} repositories",
        path.display(),
        receipt.images.len(),
        receipt.repositories.len()
    ));
    Ok(())
}

/// What the full names of images exported from `info` start with: a registry's
/// `host/` (the repository follows), nothing for files.
pub fn name_base(info: &StoreInfo) -> String {
    if info.scheme == StoreInfo::REGISTRY {
        format!("{}/", info.authority)
    } else {
        String::new()
    }
}

/// The repository an image copied from `info` is kept under in an archive: a registry's
/// repository, a layout's directory name, an archive's repository.
pub fn repository_of(info: &StoreInfo) -> String {
    match info.scheme.as_str() {
        StoreInfo::REGISTRY => info.namespace.clone(),
        ferry_fs_store::archive::OCI_ARCHIVE | "docker-archive" => info
            .namespace
            .rsplit_once(':')
            .map(|(_, r)| r.to_string())
            .unwrap_or_else(|| "archive".into()),
        _ => Path::new(&info.namespace)
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_else(|| "image".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(repo: Option<&str>, tag: Option<&str>, digest: Option<&str>) -> ArchiveRef {
        ArchiveRef {
            repository: repo.map(String::from),
            tag: tag.map(String::from),
            digest: digest.map(String::from),
        }
    }

    #[test]
    fn parses_archive_references() {
        let d = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let p = |s: &str| parse(s).expect("an archive").expect(s);
        assert_eq!(
            p("oci-archive:b.tar"),
            (
                ArchiveFormat::Oci,
                ArchivePath::File("b.tar".into()),
                r(None, None, None)
            )
        );
        assert_eq!(p("oci-archive:b.tar:v1").2, r(None, Some("v1"), None));
        assert_eq!(
            p("oci-archive:b.tar:team/app:1.4").2,
            r(Some("team/app"), Some("1.4"), None)
        );
        assert_eq!(
            p("oci-archive:b.tar:team/app").2,
            r(Some("team/app"), None, None)
        );
        assert_eq!(
            p(&format!("oci-archive:b.tar@{d}")).2,
            r(None, None, Some(d))
        );
        assert_eq!(
            p(&format!("oci-archive:b.tar:app@{d}")).2,
            r(Some("app"), None, Some(d))
        );
        assert_eq!(p("oci-archive:-").1, ArchivePath::Stdio);
        assert_eq!(p("docker-archive:/x/s.tar").0, ArchiveFormat::Docker);
        assert!(parse("oci:x").is_none());
        for bad in [
            "oci-archive:",
            "oci-archive::v1",
            "oci-archive:b.tar:",
            "oci-archive:b.tar:-x",
            "oci-archive:b.tar@nope",
            "oci-archive:b.tar:Team/App:1",
        ] {
            assert!(parse(bad).expect("an archive").is_err(), "{bad}");
        }
    }
}
