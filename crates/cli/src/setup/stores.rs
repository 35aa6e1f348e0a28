//! Opening the stores an endpoint names.

use std::sync::Arc;

use anyhow::{Result, bail};
use ferry_core::{Error, ReadStore, WriteStore};
use ferry_fs_store::OciLayout;

use super::clients::{Clients, Side};
use crate::endpoint::Endpoint;

/// The source store and what to resolve in it.
pub struct Source {
    pub store: Arc<dyn ReadStore>,
    pub reference: String,
    /// Whether `reference` is a tag (so a destination without one takes it).
    pub is_tag: bool,
}

/// The destination store and the tag to set.
pub struct Destination {
    pub store: Arc<dyn WriteStore>,
    pub tag: Option<String>,
    /// How the summary line names it.
    pub display: String,
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
    };
    Ok(Target {
        store,
        reference,
        named,
        name,
    })
}

/// Whether the user wrote a tag or digest in a registry reference (the parser fills in
/// `latest` otherwise).
pub(crate) fn names_tag_or_digest(reference: &str) -> bool {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    last.contains(':') || last.contains('@')
}

pub async fn open_source(ep: &Endpoint, clients: &Clients) -> Result<Source> {
    let target = open_target(ep, clients, Side::From).await?;
    Ok(Source {
        is_tag: !target.reference.contains(':'),
        store: target.store,
        reference: target.reference,
    })
}

pub fn open_destination(
    ep: &Endpoint,
    dst_text: &str,
    src: &Source,
    dry_run: bool,
    clients: &Clients,
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
