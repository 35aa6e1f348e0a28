//! `ferry logout`: a registry's credentials removed from everywhere ferry reads them.

use anyhow::{Result, bail};
use clap::Args;
use ferry_core::Error;
use ferry_distribution::Credentials;
use serde_json::json;

use crate::app::App;
use crate::commands::login::{location_json, registry_name};
use crate::options::{CommonArgs, Format};
use crate::output::{print_json, print_lines};

/// The examples and exit codes of `ferry logout --help`.
pub const LOGOUT_EXAMPLES: &str = "\
Examples:
  ferry logout registry.example
  ferry logout docker.io

Removes the registry's credentials from every auth file ferry reads (and from the credential
helpers they name for it), so no ferry command finds them afterwards.

Exit codes:
  0  removed
  1  a file or credential helper could not be changed
  3  no credentials were stored for the registry";

/// `ferry logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry: `HOST[:PORT]` (`docker.io` for Docker Hub).
    pub registry: String,
    /// Output, configuration and registry options.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Runs `ferry logout`; returns the exit code.
pub async fn run(_app: &App, args: LogoutArgs) -> Result<u8> {
    let registry = registry_name(&args.registry)?;
    let credentials = Credentials::from_docker_config();
    let removed = credentials.erase(&registry).await?;
    if removed.is_empty() {
        let files: Vec<String> = credentials
            .auth_files()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        bail!(Error::NotFound {
            what: format!("credentials for {registry}"),
            hint: Some(format!(
                "none are stored in the auth files ({}) or the credential helpers they name",
                files.join(", ")
            )),
        });
    }
    match args.common.format {
        Format::Text => print_lines(
            &removed
                .iter()
                .map(|l| format!("Removed the credentials for {registry} from {l}"))
                .collect::<Vec<_>>(),
        ),
        Format::Json => print_json(&json!({
            "registry": registry,
            "removedFrom": removed.iter().map(location_json).collect::<Vec<_>>(),
        }))?,
    }
    Ok(0)
}
