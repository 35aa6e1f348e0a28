//! `ferry inspect`: what an image or index holds, as a tree; or its exact manifest or config
//! bytes.

use std::io::Write;

use anyhow::{Context, Result, bail};
use clap::Args;
use ferry_core::inspect::{InspectOptions, Inspection, ManifestNode};
use ferry_core::model::{DEFAULT_MANIFEST_LIMIT, is_index, media_type_str};
use ferry_core::verify::{read_to_bytes, verify_bytes};
use ferry_core::{Descriptor, Error, ReadStore, fetch_manifest, select_platform};
use serde_json::json;

use crate::app::App;
use crate::endpoint::Endpoint;
use crate::options::{CommonArgs, Format};
use crate::output::{bytes, print_json, print_lines};
use crate::setup::clients::Purpose;

/// The examples and exit codes of `ferry inspect --help`.
pub const INSPECT_EXAMPLES: &str = "\
Examples:
  # The tree of a multi-arch image: index, each platform's manifest, its config (platform,
  # creation time) and layers (media type, compression, size), the referrers of each, and
  # the totals:
  ferry inspect registry.example/team/app:1.4.2

  # One platform's branch of the tree:
  ferry inspect --platform linux/arm64 registry.example/team/app:1.4.2

  # The manifest's exact bytes (what its digest is computed over), and a platform's config:
  ferry inspect --raw registry.example/team/app:1.4.2
  ferry inspect --config --platform linux/amd64 registry.example/team/app:1.4.2 | jq .config

  # The whole tree as one JSON document, from a layout:
  ferry inspect --format json oci:./image:v1

  # An image inside an archive file (a bundle's `REPO:TAG`):
  ferry inspect oci-archive:team.tar:team/app:1.4.2

The tree:
  Index sha256:… MEDIA TYPE, SIZE
  ├── Manifest sha256:… PLATFORM, MEDIA TYPE, SIZE
  │   ├── Config sha256:… OS/ARCH[/VARIANT], created TIME, SIZE
  │   ├── Layer sha256:… MEDIA TYPE, COMPRESSION, SIZE
  │   └── Referrer sha256:… ARTIFACT TYPE, SIZE
  Total: … manifests, … configs, … layers, … referrers: N bytes compressed, M bytes unique
Compressed counts every manifest, config, layer and referrer as listed (layers as stored);
unique counts each digest once: what a copy into an empty store moves. Indexes are followed
down to 8 levels; a deeper one is listed, not fetched.

Exit codes:
  0  printed
  1  a request failed (I/O, registry or network error)
  2  bad usage or invalid input (reference, platform)
  3  the repository, tag, digest or platform does not exist
  4  authentication or permission refused
  5  content failed verification (size or digest mismatch)";

/// `ferry inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// `HOST[:PORT]/REPO[:TAG][@DIGEST]` or `oci:PATH[:TAG|@DIGEST]`.
    pub reference: String,
    /// Only this platform's branch of an index (`os/arch[/variant]`): with `--raw` or
    /// `--config`, that platform's manifest or config. Indexes listed by the index are
    /// searched too, down to 8 levels.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Print the manifest's exact bytes (verified against its digest) instead of the tree.
    #[arg(long, conflicts_with = "config")]
    pub raw: bool,
    /// Print the image's config blob, exactly as stored (an index needs `--platform`).
    #[arg(long)]
    pub config: bool,
    /// Leave out the referrers (one request fewer per manifest on registries).
    #[arg(long)]
    pub no_referrers: bool,
    /// Output, configuration and registry options.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Runs `ferry inspect`; returns the exit code.
pub async fn run(app: &App, args: InspectArgs) -> Result<u8> {
    let ep = Endpoint::parse(&args.reference)?;
    let platform = crate::options::platform(args.platform.as_deref())?;
    let target =
        crate::setup::open_one_reader(&app.factories, &args.common, &ep, Purpose::default())
            .await?;
    let store = target.store.as_ref();
    let root = store.resolve(&target.reference).await?;
    if args.raw || args.config {
        let chosen = match &platform {
            Some(filter) => select_platform(store, &root, filter, DEFAULT_MANIFEST_LIMIT).await?,
            None => root,
        };
        let bytes = if args.raw {
            blob(store, &chosen, DEFAULT_MANIFEST_LIMIT).await?
        } else {
            config_bytes(store, &chosen, &args.reference).await?
        };
        let mut out = std::io::stdout().lock();
        out.write_all(&bytes)
            .and_then(|()| out.flush())
            .context("writing to stdout")?;
        return Ok(0);
    }
    let options = InspectOptions::default()
        .with_platform(platform)
        .with_referrers(!args.no_referrers);
    let inspection = ferry_core::inspect::inspect(store, &root, &options).await?;
    match args.common.format {
        Format::Text => print_lines(&tree(&inspection)),
        Format::Json => print_json(&json!({
            "reference": args.reference,
            "root": inspection.root,
            "totals": inspection.totals,
        }))?,
    }
    Ok(0)
}

/// The bytes of `descriptor`, verified.
async fn blob(store: &dyn ReadStore, descriptor: &Descriptor, limit: u64) -> Result<Vec<u8>> {
    let what = format!("`{}`", descriptor.digest());
    let data = read_to_bytes(store.fetch(descriptor).await?, &what, limit).await?;
    verify_bytes(descriptor, &data)?;
    Ok(data.to_vec())
}

/// The config blob of the image manifest `descriptor`.
async fn config_bytes(
    store: &dyn ReadStore,
    descriptor: &Descriptor,
    reference: &str,
) -> Result<Vec<u8>> {
    let manifest = fetch_manifest(store, descriptor, DEFAULT_MANIFEST_LIMIT).await?;
    if is_index(&media_type_str(descriptor)) {
        let platforms: Vec<String> = manifest
            .manifests
            .iter()
            .filter_map(|m| m.platform().as_ref().map(platform_text))
            .collect();
        let has = if platforms.is_empty() {
            String::new()
        } else {
            format!(" (it lists {})", platforms.join(", "))
        };
        bail!(Error::invalid(
            "reference",
            reference,
            format!(
                "it names an index, which has no config{has}; choose a platform with `--platform OS/ARCH`"
            )
        ));
    }
    let Some(config) = &manifest.config else {
        bail!(Error::invalid(
            "reference",
            reference,
            "its manifest has no config"
        ));
    };
    blob(store, config, ferry_core::inspect::CONFIG_LIMIT).await
}

fn platform_text(p: &ferry_core::model::Platform) -> String {
    let mut s = format!("{}/{}", p.os(), p.architecture());
    if let Some(v) = p.variant() {
        s.push('/');
        s.push_str(v);
    }
    s
}

/// The tree's lines, then the totals.
fn tree(inspection: &Inspection) -> Vec<String> {
    let mut lines = Vec::new();
    node_lines(&inspection.root, "", None, &mut lines);
    let t = &inspection.totals;
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    lines.push(format!(
        "Total: {}, {}, {}, {}: {} compressed, {} unique",
        count(t.manifests, "manifest"),
        count(t.configs, "config"),
        count(t.layers, "layer"),
        count(t.referrers, "referrer"),
        bytes(t.compressed),
        bytes(t.unique),
    ));
    lines
}

/// The line of `node` (after `branch`, its connector) and the lines below it, each prefixed
/// by `indent`.
fn node_lines(node: &ManifestNode, indent: &str, branch: Option<bool>, lines: &mut Vec<String>) {
    let (connector, below) = match branch {
        None => ("", String::new()),
        Some(true) => ("└── ", format!("{indent}    ")),
        Some(false) => ("├── ", format!("{indent}│   ")),
    };
    let d = &node.descriptor;
    let kind = if node.is_index() { "Index" } else { "Manifest" };
    let mut details = Vec::new();
    if let Some(p) = d.platform() {
        details.push(platform_text(p));
    }
    details.push(media_type_str(d));
    if let Some(t) = d.artifact_type() {
        details.push(format!("artifact {t}"));
    }
    details.push(bytes(d.size()));
    let mut line = format!(
        "{indent}{connector}{kind} {} {}",
        d.digest(),
        details.join(", ")
    );
    if node.too_deep {
        line.push_str(" (nested deeper than 8 indexes: not fetched)");
    }
    lines.push(line);

    let mut children: Vec<Child<'_>> = Vec::new();
    if let Some(s) = &node.subject {
        children.push(Child::Line(format!(
            "Subject {} {}, {}",
            s.digest(),
            media_type_str(s),
            bytes(s.size())
        )));
    }
    children.extend(node.manifests.iter().flatten().map(Child::Node));
    if let Some(c) = &node.config {
        let mut details = Vec::new();
        match c.platform() {
            Some(p) => details.push(p),
            None => details.push(media_type_str(&c.descriptor)),
        }
        if let Some(created) = &c.created {
            details.push(format!("created {created}"));
        }
        details.push(bytes(c.descriptor.size()));
        children.push(Child::Line(format!(
            "Config {} {}",
            c.descriptor.digest(),
            details.join(", ")
        )));
    }
    for l in node.layers.iter().flatten() {
        let mut details = vec![media_type_str(&l.descriptor)];
        details.extend(l.compression.map(str::to_string));
        details.push(bytes(l.descriptor.size()));
        children.push(Child::Line(format!(
            "Layer {} {}",
            l.descriptor.digest(),
            details.join(", ")
        )));
    }
    for r in node.referrers.iter().flatten() {
        let kind = r
            .artifact_type()
            .as_ref()
            .map(|t| t.to_string())
            .unwrap_or_else(|| media_type_str(r));
        children.push(Child::Line(format!(
            "Referrer {} {kind}, {}",
            r.digest(),
            bytes(r.size())
        )));
    }
    let last = children.len().saturating_sub(1);
    for (i, child) in children.into_iter().enumerate() {
        match child {
            Child::Node(n) => node_lines(n, &below, Some(i == last), lines),
            Child::Line(text) => {
                let connector = if i == last {
                    "└── "
                } else {
                    "├── "
                };
                lines.push(format!("{below}{connector}{text}"));
            }
        }
    }
}

enum Child<'a> {
    Node(&'a ManifestNode),
    Line(String),
}
