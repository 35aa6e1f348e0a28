//! Opening the stores an endpoint names.

use std::sync::Arc;

use anyhow::{Result, bail};
use ferry_core::{Error, ReadStore, WriteStore};
use ferry_fs_store::OciLayout;
use ferry_fs_store::archive::{ArchiveBundle, ArchiveWriter, DeltaBase};

use super::clients::{Clients, Side};
use crate::archive::{ArchiveFormat, ArchivePath, ArchiveRef, Opened};
use crate::endpoint::Endpoint;
use crate::options::ArchiveArgs;

/// The source store and what to resolve in it.
pub struct Source {
    pub store: Arc<dyn ReadStore>,
    pub reference: String,
    /// Whether `reference` is a tag (so a destination without one takes it).
    pub is_tag: bool,
    /// The archive the source is in, and the repository of it, for a receipt.
    pub archive: Option<(ArchiveBundle, String)>,
}

/// The destination store and the tag to set.
pub struct Destination {
    pub store: Arc<dyn WriteStore>,
    pub tag: Option<String>,
    /// How the summary line names it.
    pub display: String,
    /// The archive being written, finished once the copy is done.
    pub archive: Option<ArchiveWriter>,
}

/// What an `oci-archive:` destination is written with.
pub struct ArchiveSetup<'a> {
    pub args: &'a ArchiveArgs,
    pub manifest_limit: u64,
    pub base: Option<DeltaBase>,
    /// An archive opened already (to land a stream's blobs in), to go on writing.
    pub writer: Option<ArchiveWriter>,
}

/// The image `reference` names in `bundle`, as a copy's source.
pub fn archive_source(bundle: ArchiveBundle, reference: &ArchiveRef) -> Result<Source> {
    let digest = reference
        .digest
        .as_deref()
        .map(ferry_fs_store::parse_digest)
        .transpose()?;
    let find = |repository: Option<&str>| {
        bundle.find(repository, reference.tag.as_deref(), digest.as_ref())
    };
    // `registry.example/team/app` names the bundle's `team/app` too, as skopeo's
    // `docker-archive:PATH:NAME:TAG` does.
    let without_host = reference.repository.as_deref().and_then(|r| {
        let (host, rest) = r.split_once('/')?;
        (host.contains('.') || host == "localhost").then_some(rest)
    });
    let (repository, r) = match (find(reference.repository.as_deref()), without_host) {
        (Err(e), Some(rest)) if e.is_not_found() => find(Some(rest)).map_err(|_| e)?,
        (found, _) => found?,
    };
    Ok(Source {
        store: bundle.repository(&repository),
        is_tag: !r.contains(':'),
        reference: r,
        archive: Some((bundle, repository)),
    })
}

/// A store an endpoint names, opened to be changed (tagged, deleted from), and the tag or
/// digest the endpoint names in it.
pub struct Target {
    pub store: Arc<dyn WriteStore>,
    /// The tag or digest: as written, a registry's `latest` when none is, a layout's only tag.
    pub reference: String,
    /// Whether the endpoint names a tag or digest itself.
    pub named: bool,
    /// The repository or layout, as output names it (`HOST/REPO`, `oci:PATH`).
    pub name: String,
}

/// The store `ep` names, through the client of `side` for a registry; a layout must exist.
/// Returns it and its name as output shows it (`HOST/REPO`, `oci:PATH`).
pub fn open_store(
    ep: &Endpoint,
    clients: &Clients,
    side: Side,
) -> Result<(Arc<dyn WriteStore>, String)> {
    Ok(match ep {
        Endpoint::Layout { path, .. } => (
            Arc::new(OciLayout::open(path)?),
            format!("oci:{}", path.display()),
        ),
        Endpoint::Registry { reference, .. } => (
            clients
                .client(side, reference.registry())
                .repository(reference)?,
            format!("{}/{}", reference.registry(), reference.repository()),
        ),
        Endpoint::Archive { path, format, .. } => bail!(Error::invalid(
            "reference",
            format!("{}:{}", format.prefix(), path.shown()),
            "this command works on registries and layouts; copy the image out of the archive \
             first (`ferry cp oci-archive:PATH:REF oci:DIR:TAG`)"
        )),
    })
}

/// Opens the store `ep` names (see [`open_store`]) and finds the tag or digest it names in it.
pub async fn open_target(ep: &Endpoint, clients: &Clients, side: Side) -> Result<Target> {
    let (store, name) = open_store(ep, clients, side)?;
    let (reference, named) = match ep {
        Endpoint::Layout { reference, .. } => match reference {
            Some(r) => (r.clone(), true),
            None => (only_tag(store.as_ref(), &name).await?, false),
        },
        Endpoint::Registry { text, reference } => (reference.target(), names_tag_or_digest(text)),
        Endpoint::Archive { .. } => unreachable!("`open_store` refuses an archive"),
    };
    Ok(Target {
        store,
        reference,
        named,
        name,
    })
}

/// A store an endpoint names, opened to be read (inspected, resolved, listed), and the tag or
/// digest the endpoint names in it.
pub struct Reader {
    pub store: Arc<dyn ReadStore>,
    /// The tag or digest, as in [`Target`]; an archive's only image when none is named.
    pub reference: String,
}

/// Opens what `ep` names to be read: what [`open_target`] opens, and an archive file's image.
pub async fn open_reader(ep: &Endpoint, clients: &Clients, side: Side) -> Result<Reader> {
    match ep {
        Endpoint::Archive {
            format,
            path,
            reference,
        } => {
            let bundle = read_archive_file(*format, path).await?;
            let source = archive_source(bundle, reference)?;
            Ok(Reader {
                store: source.store,
                reference: source.reference,
            })
        }
        _ => {
            let target = open_target(ep, clients, side).await?;
            Ok(Reader {
                store: target.store,
                reference: target.reference,
            })
        }
    }
}

/// The bundle of an archive file, read by its member table. Standard input and compressed
/// files are read as streams, whose blobs are not kept, so they are refused, saying so.
pub async fn read_archive_file(format: ArchiveFormat, path: &ArchivePath) -> Result<ArchiveBundle> {
    match crate::archive::open_read(format, path, ferry_core::model::DEFAULT_MANIFEST_LIMIT).await?
    {
        Opened::Bundle(bundle) => Ok(bundle),
        Opened::Stream { what, .. } => bail!(Error::invalid(
            "archive",
            what,
            "this command reads an uncompressed archive file by its member table, and standard \
             input or a compressed file can only be streamed; decompress it first (`zstd -d`, \
             `gunzip`) or copy the image out of it with `ferry cp`"
        )),
    }
}

/// Whether the user wrote a tag or digest in a registry reference (the parser fills in
/// `latest` otherwise).
pub(crate) fn names_tag_or_digest(reference: &str) -> bool {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    last.contains(':') || last.contains('@')
}

pub async fn open_source(ep: &Endpoint, clients: &Clients) -> Result<Source> {
    if let Endpoint::Archive { .. } = ep {
        unreachable!("an archive source is opened with `archive_source`")
    }
    let target = open_target(ep, clients, Side::From).await?;
    Ok(Source {
        is_tag: !target.reference.contains(':'),
        store: target.store,
        reference: target.reference,
        archive: None,
    })
}

pub fn open_destination(
    ep: &Endpoint,
    dst_text: &str,
    src: &Source,
    dry_run: bool,
    clients: &Clients,
    archive: ArchiveSetup<'_>,
) -> Result<Destination> {
    let inherited = src.is_tag.then(|| src.reference.clone());
    match ep {
        Endpoint::Layout { path, reference } => {
            let tag = match reference {
                Some(r) if r.contains(':') => bail!(Error::invalid(
                    "destination",
                    dst_text.to_string(),
                    "a layout destination needs a tag, not a digest: write `oci:PATH:TAG`"
                )),
                Some(r) => r.clone(),
                None => inherited.ok_or_else(|| {
                    Error::invalid(
                        "destination",
                        dst_text.to_string(),
                        "the source is named by digest, so name a tag for the layout: `oci:PATH:TAG`",
                    )
                })?,
            };
            ferry_fs_store::validate_tag(&tag)?;
            let store: Arc<dyn WriteStore> = if dry_run && !path.join("oci-layout").exists() {
                // A dry run must not create the layout; the planned layout holds nothing, as
                // the layout to be created would, and names the filesystem it would be on.
                Arc::new(ferry_fs_store::PlannedLayout::new(path)?)
            } else {
                Arc::new(OciLayout::open_or_create(path)?)
            };
            Ok(Destination {
                store,
                display: format!("[oci-layout] {}:{tag}", path.display()),
                tag: Some(tag),
                archive: None,
            })
        }
        Endpoint::Archive {
            format,
            path,
            reference,
        } => {
            if *format == ArchiveFormat::Docker {
                bail!(Error::invalid(
                    "destination",
                    dst_text.to_string(),
                    "ferry writes OCI archives, which `docker load` reads too: write \
                     `oci-archive:PATH`"
                ));
            }
            if reference.digest.is_some() {
                bail!(Error::invalid(
                    "destination",
                    dst_text.to_string(),
                    "an archive destination needs a tag, not a digest: write \
                     `oci-archive:PATH:TAG` or `oci-archive:PATH:REPO:TAG`"
                ));
            }
            let tag = match (&reference.tag, inherited) {
                (Some(t), _) => t.clone(),
                (None, Some(t)) => t,
                (None, None) => bail!(Error::invalid(
                    "destination",
                    dst_text.to_string(),
                    "the source is named by digest, so name a tag for the archive: \
                     `oci-archive:PATH:TAG`"
                )),
            };
            let info = src.store.info();
            let repository = match (&reference.repository, &src.archive) {
                (Some(r), _) => r.clone(),
                (None, Some((_, r))) => r.clone(),
                (None, None) => crate::archive::repository_of(info),
            };
            let writer = match archive.writer {
                Some(w) => w,
                None => crate::archive::writer(
                    path,
                    archive.args,
                    crate::archive::name_base(info),
                    archive.base,
                    dry_run,
                    archive.manifest_limit,
                )?,
            };
            Ok(Destination {
                store: writer.repository(&repository)?,
                display: format!("[oci-archive] {}:{repository}:{tag}", path.shown()),
                tag: Some(tag),
                archive: Some(writer),
            })
        }
        Endpoint::Registry { text, reference } => {
            let repo = clients
                .client(Side::To, reference.registry())
                .repository(reference)?;
            let tag = if names_tag_or_digest(text) {
                reference.tag().map(str::to_string)
            } else {
                inherited.or_else(|| reference.tag().map(str::to_string))
            };
            let display = match &tag {
                Some(t) => format!(
                    "[registry] {}/{}:{t}",
                    reference.registry(),
                    reference.repository()
                ),
                None => format!(
                    "[registry] {}/{}",
                    reference.registry(),
                    reference.repository()
                ),
            };
            Ok(Destination {
                store: repo,
                tag,
                display,
                archive: None,
            })
        }
    }
}

/// The single tag of a layout (`name`), for a source named without one.
async fn only_tag(store: &dyn WriteStore, name: &str) -> Result<String> {
    let tags = match store.capabilities().list_tags {
        Some(lister) => lister.list_tags().await?,
        None => Vec::new(),
    };
    match tags.as_slice() {
        [tag] => Ok(tag.clone()),
        [] => Err(Error::NotFound {
            what: format!("a tagged image in `{}`", name.trim_start_matches("oci:")),
            hint: Some("the layout holds no tag; name a digest with `oci:PATH@DIGEST`".into()),
        }
        .into()),
        many => Err(Error::invalid(
            "source",
            name.to_string(),
            format!(
                "the layout has several tags ({}); name one with `oci:PATH:TAG`",
                many.join(", ")
            ),
        )
        .into()),
    }
}
