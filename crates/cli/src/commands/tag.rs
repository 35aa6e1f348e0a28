//! `ferry tag`: more tags for a manifest, in the same repository or layout.

use anyhow::Result;
use clap::Args;
use ferry_core::model::validate_tag;
use serde_json::json;

use crate::app::App;
use crate::endpoint::Endpoint;
use crate::options::{CommonArgs, Format};
use crate::output::{print_json, print_lines};
use crate::setup::clients::Purpose;

/// The examples and exit codes of `ferry tag --help`.
pub const TAG_EXAMPLES: &str = "\
Examples:
  # Promote a release candidate: the same manifest bytes under `1.4.2` and `latest`, in the
  # same repository (one GET, then one PUT per tag; no blob is read or written):
  ferry tag registry.example/team/app:1.4.2-rc1 1.4.2 latest

  # Tag by digest:
  ferry tag registry.example/team/app@sha256:3f5a…e1 stable

  # In a layout:
  ferry tag oci:./image:v1 v1.0 v1.0.0

Exit codes:
  0  every new tag names the manifest
  1  a request failed (I/O, registry or network error); the tags printed before it were set
  2  bad usage or invalid input (reference, tag)
  3  the repository, layout, tag or digest does not exist
  4  authentication or permission refused (pushing needs the registry's push right)
  5  the manifest failed verification";

/// `ferry tag`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// The manifest: `HOST[:PORT]/REPO[:TAG][@DIGEST]` or `oci:PATH[:TAG|@DIGEST]`.
    pub reference: String,
    /// The new tags, in the same repository or layout.
    #[arg(required = true, value_name = "NEWTAG")]
    pub tags: Vec<String>,
    /// Output, configuration and registry options.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Runs `ferry tag`; returns the exit code.
pub async fn run(app: &App, args: TagArgs) -> Result<u8> {
    let ep = Endpoint::parse(&args.reference)?;
    for tag in &args.tags {
        validate_tag(tag)?;
    }
    let target =
        crate::setup::open_one(&app.factories, &args.common, &ep, true, Purpose::default()).await?;
    // A registry keeps the manifest's bytes from this GET for the PUTs that follow.
    let descriptor = target.store.resolve(&target.reference).await?;
    let mut tagged = Vec::with_capacity(args.tags.len());
    for tag in &args.tags {
        target.store.tag(&descriptor, tag).await?;
        let line = format!("Tagged {}:{tag} {}", target.name, descriptor.digest());
        if args.common.format == Format::Text {
            print_lines(&[line]);
        }
        tagged.push(tag.clone());
    }
    if args.common.format == Format::Json {
        print_json(&json!({
            "reference": args.reference,
            "repository": target.name,
            "digest": descriptor.digest().to_string(),
            "mediaType": descriptor.media_type().to_string(),
            "size": descriptor.size(),
            "tags": tagged,
        }))?;
    }
    Ok(0)
}
