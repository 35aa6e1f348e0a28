//! `ferry ls`: the tags of a repository or layout, the repositories of a registry (or under a
//! prefix), the layouts of a directory.

use std::sync::Arc;

use anyhow::{Result, bail};
use clap::Args;
use ferry_core::{Catalog, Error, ReadStore};
use ferry_fs_store::OciDir;
use ferry_sync::TagFilter;
use futures::TryStreamExt;
use serde_json::json;

use crate::app::App;
use crate::commands::sync::endpoint::SyncEndpoint;
use crate::endpoint::Endpoint;
use crate::options::{CommonArgs, Format, TagFilterArgs};
use crate::output::{print_json, print_lines};
use crate::setup::clients::Purpose;
use crate::setup::stores::{names_tag_or_digest, open_store, read_archive_file};

/// The examples and exit codes of `ferry ls --help`.
pub const LS_EXAMPLES: &str = "\
Examples:
  # Every tag of a repository, every page of the listing, one per line:
  ferry ls registry.example/team/app

  # The three newest 1.x releases (semantic versions, a `v` prefix allowed):
  ferry ls --semver '^1' --latest 3 registry.example/team/app

  # Tags matching a pattern (anchored), release candidates left out, as JSON:
  ferry ls --tags 'v2\\..*' --exclude-tags '.*-rc.*' --format json registry.example/team/app

  # The repositories of a registry (its catalog, every page), or those under a prefix:
  ferry ls localhost:5000/ --plain-http
  ferry ls registry.example/team/

  # The tags of a layout, and the layouts of a directory (as `ferry sync` writes them):
  ferry ls oci:./image
  ferry ls oci-dir:./mirror/

  # The tags of an archive of one repository, or the repositories of a bundle:
  ferry ls oci-archive:app.tar
  ferry ls oci-archive:team.tar

What it lists:
  HOST[:PORT]/REPO      the tags of a repository
  oci:PATH              the tags of an OCI layout
  HOST[:PORT]/          the repositories of a registry (GET /v2/_catalog)
  HOST[:PORT]/PREFIX/   the repositories under PREFIX
  oci-dir:PATH/         the layouts of a directory, by their path below it
  oci-archive:PATH      the tags of its one repository, else the repositories it holds
                        (an uncompressed file: it is read by its member table)

Output: one name per line in the order the store lists them; `--format json` gives
{\"target\": ..., \"tags\": [...]} or {\"target\": ..., \"repositories\": [...]}.

Exit codes:
  0  listed (an empty repository lists nothing)
  1  the listing failed (I/O, registry or network error)
  2  bad usage or invalid input (reference, pattern, range)
  3  the repository, layout or directory does not exist, or the registry serves no catalog
  4  authentication or permission refused";

/// `ferry ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// What to list: `HOST[:PORT]/REPO` or `oci:PATH` (tags), `HOST[:PORT]/` or
    /// `HOST[:PORT]/PREFIX/` (repositories), `oci-dir:PATH/` (layouts), `oci-archive:PATH`
    /// (the tags of its one repository, or the repositories of a bundle of many).
    pub target: String,
    /// Which tags (as `ferry sync` chooses them).
    #[command(flatten)]
    pub filter: TagFilterArgs,
    /// Output, configuration and registry options.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// What `ferry ls` was asked to list.
enum Listing {
    /// The tags of a repository or layout.
    Tags(Endpoint),
    /// The repositories of a registry under a prefix.
    Repositories { registry: String, prefix: String },
    /// The layouts of a directory.
    Layouts(std::path::PathBuf),
}

fn parse(text: &str) -> Result<Listing> {
    let many = text.starts_with("oci-dir:") || (text.ends_with('/') && !text.starts_with("oci:"));
    if many {
        let parsed = SyncEndpoint::parse(text).map_err(|e| match e {
            Error::InvalidInput { value, reason, .. } => Error::invalid("listing", value, reason),
            other => other,
        })?;
        return Ok(match parsed {
            SyncEndpoint::Registry { registry, prefix } => {
                Listing::Repositories { registry, prefix }
            }
            SyncEndpoint::Dir { path } => Listing::Layouts(path),
            _ => unreachable!("a text ending in `/` or starting with `oci-dir:` names many"),
        });
    }
    let ep = Endpoint::parse(text)?;
    let named = match &ep {
        Endpoint::Layout { reference, .. } => reference.is_some(),
        Endpoint::Registry { text, .. } => names_tag_or_digest(text),
        Endpoint::Archive { reference, .. } => {
            reference.tag.is_some() || reference.digest.is_some()
        }
    };
    if named {
        bail!(Error::invalid(
            "listing",
            text,
            "`ferry ls` lists every tag of a repository or layout; drop the tag or digest (and \
             choose tags with `--tags`), or use `ferry inspect` for one image"
        ));
    }
    Ok(Listing::Tags(ep))
}

/// Runs `ferry ls`; returns the exit code.
pub async fn run(app: &App, args: LsArgs) -> Result<u8> {
    let listing = parse(&args.target)?;
    let filter = if args.filter.is_given() {
        Some(
            args.filter
                .to_filter(|key| format!("--{}", key.replace('_', "-")))?,
        )
    } else {
        None
    };
    let host = match &listing {
        Listing::Tags(ep) => ep.registry().map(str::to_string),
        Listing::Repositories { registry, .. } => Some(registry.clone()),
        Listing::Layouts(_) => None,
    };
    if filter.is_some() && !matches!(listing, Listing::Tags(_)) {
        bail!(Error::invalid(
            "flag",
            "--tags/--exclude-tags/--semver/--latest",
            "they choose tags; give a repository (`HOST/REPO`) or a layout (`oci:PATH`)"
        ));
    }
    let (clients, side) = crate::setup::clients_for_one(
        &app.factories,
        &args.common,
        host.as_deref(),
        false,
        Purpose::default(),
    )?;
    let (key, names) = match &listing {
        Listing::Tags(Endpoint::Archive { format, path, .. }) => {
            // One repository: its tags; a bundle of many: its repositories.
            let bundle = read_archive_file(*format, path).await?;
            match bundle.repositories().as_slice() {
                [one] => {
                    let name = format!("{}:{}", format.prefix(), path.shown());
                    let tags = tags_of(bundle.repository(one).as_ref(), name, &filter).await?;
                    ("tags", tags)
                }
                many => ("repositories", many.to_vec()),
            }
        }
        Listing::Tags(ep) => {
            let (store, name) = open_store(ep, &clients, side)?;
            ("tags", tags_of(store.as_ref(), name, &filter).await?)
        }
        Listing::Repositories { registry, prefix } => {
            let catalog = clients.client(side, registry).catalog(registry)?;
            ("repositories", list(catalog, prefix).await?)
        }
        Listing::Layouts(path) => {
            let dir = OciDir::open(path)?;
            ("repositories", list(Arc::new(dir), "").await?)
        }
    };
    match args.common.format {
        Format::Text => print_lines(&names),
        Format::Json => {
            let mut doc = serde_json::Map::new();
            doc.insert("target".into(), json!(args.target));
            doc.insert(key.into(), json!(names));
            print_json(&doc)?
        }
    }
    Ok(0)
}

/// Every name of `catalog` under `prefix`, every page.
async fn list(catalog: Arc<dyn Catalog>, prefix: &str) -> Result<Vec<String>> {
    Ok(catalog.list(prefix).try_collect().await?)
}

/// Every tag of `store` (named `name` in errors), those `filter` keeps if there is one.
async fn tags_of(
    store: &dyn ReadStore,
    name: String,
    filter: &Option<TagFilter>,
) -> Result<Vec<String>> {
    let Some(lister) = store.capabilities().list_tags else {
        bail!(Error::NotSupported {
            store: name,
            operation: "listing tags".into(),
        });
    };
    let tags = lister.list_tags().await?;
    Ok(match filter {
        Some(f) => f.select(&tags).kept,
        None => tags,
    })
}
