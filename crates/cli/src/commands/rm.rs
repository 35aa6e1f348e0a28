//! `ferry rm`: deletes a tag, or with `--manifest` a manifest and every tag naming it.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, Result, bail};
use clap::Args;
use ferry_core::{Digest, Error};
use serde_json::json;

use crate::app::App;
use crate::endpoint::Endpoint;
use crate::exit;
use crate::options::{CommonArgs, Format};
use crate::output::{print_json, print_lines};
use crate::setup::clients::Purpose;

/// The examples and exit codes of `ferry rm --help`.
pub const RM_EXAMPLES: &str = "\
Examples:
  # Delete a tag. A registry without the OCI 1.1 tag delete (CNCF distribution 2.x) deletes by
  # digest, which takes every tag naming the manifest: ferry then deletes only when no other
  # tag names it or an index holding it, and otherwise refuses, naming that tag:
  ferry rm registry.example/team/app:1.4.2-rc1

  # Delete a manifest and every tag naming it (asks on a terminal; --yes in scripts):
  ferry rm --manifest --yes registry.example/team/app@sha256:3f5a…e1

  # In a layout: the tag's entry leaves index.json (blobs stay for other entries):
  ferry rm oci:./image:old

Exit codes:
  0  deleted
  1  the delete failed (I/O, registry or network error), or was not confirmed
  2  bad usage or invalid input; or the registry cannot delete that tag alone, or at all
  3  the repository, layout, tag or digest does not exist
  4  authentication or permission refused (deleting needs the registry's delete right)";

/// `ferry rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// The tag to delete, `HOST[:PORT]/REPO:TAG` or `oci:PATH:TAG`; with `--manifest`, a
    /// digest (`HOST[:PORT]/REPO@DIGEST`, `oci:PATH@DIGEST`) or a tag naming the manifest.
    pub reference: String,
    /// Delete the manifest by digest, and with it every tag naming it.
    #[arg(long)]
    pub manifest: bool,
    /// Do not ask before deleting a manifest (needed when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Output, configuration and registry options.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Runs `ferry rm`; returns the exit code.
pub async fn run(app: &App, args: RmArgs) -> Result<u8> {
    let ep = Endpoint::parse(&args.reference)?;
    let target =
        crate::setup::open_one(&app.factories, &args.common, &ep, true, Purpose::default()).await?;
    if !target.named {
        bail!(Error::invalid(
            "reference",
            &args.reference,
            "name what to delete: `HOST/REPO:TAG` or `oci:PATH:TAG` (with `--manifest`, \
             `@DIGEST`)"
        ));
    }
    let by_digest = target.reference.contains(':');
    let capabilities = target.store.capabilities();
    if !args.manifest {
        if by_digest {
            bail!(Error::invalid(
                "reference",
                &args.reference,
                "it names a digest; deleting a manifest takes every tag naming it with it: pass \
                 `--manifest` to do that"
            ));
        }
        let Some(deleter) = capabilities.delete_tag else {
            bail!(Error::NotSupported {
                store: target.name,
                operation: "deleting tags".into(),
            });
        };
        deleter.delete_tag(&target.reference).await?;
        match args.common.format {
            Format::Text => {
                print_lines(&[format!("Deleted tag {}:{}", target.name, target.reference)])
            }
            Format::Json => print_json(&json!({
                "deleted": "tag",
                "repository": target.name,
                "tag": target.reference,
            }))?,
        }
        return Ok(0);
    }
    let Some(deleter) = capabilities.delete_manifest else {
        bail!(Error::NotSupported {
            store: target.name,
            operation: "deleting manifests".into(),
        });
    };
    let digest: Digest = if by_digest {
        target.reference.parse().map_err(|e| {
            Error::invalid(
                "digest",
                &target.reference,
                format!("expected `sha256:<64 hex digits>` ({e})"),
            )
        })?
    } else {
        crate::commands::digest::peek_or_resolve(target.store.as_ref(), &target.reference)
            .await?
            .digest()
            .clone()
    };
    let shown = format!("{}@{digest}", target.name);
    if !args.yes && !confirmed(&shown)? {
        eprintln!("Nothing was deleted.");
        return Ok(exit::FAILED);
    }
    deleter.delete_manifest(&digest).await?;
    match args.common.format {
        Format::Text => print_lines(&[format!("Deleted manifest {shown}")]),
        Format::Json => print_json(&json!({
            "deleted": "manifest",
            "repository": target.name,
            "digest": digest.to_string(),
        }))?,
    }
    Ok(0)
}

/// Asks on the terminal whether to delete `shown`; refuses without a terminal to ask on.
fn confirmed(shown: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        bail!(Error::invalid(
            "flag",
            "--manifest",
            "it deletes the manifest and every tag naming it; stdin is not a terminal to \
             confirm on, so pass `--yes`"
        ));
    }
    eprint!("Delete manifest {shown} and every tag naming it? [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the answer")?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}
