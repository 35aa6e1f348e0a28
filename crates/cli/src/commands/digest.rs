//! `ferry digest`: the digest of the manifest a reference names.

use anyhow::Result;
use clap::Args;
use ferry_core::{Descriptor, ReadStore};
use serde_json::json;

use crate::app::App;
use crate::endpoint::Endpoint;
use crate::options::{CommonArgs, Format};
use crate::output::{print_json, print_lines};
use crate::setup::clients::Purpose;

/// The examples and exit codes of `ferry digest --help`.
pub const DIGEST_EXAMPLES: &str = "\
Examples:
  # The digest to deploy by (one HEAD request where the registry answers it with the digest):
  ferry digest registry.example/team/app:1.4.2

  # Pin a deployment to it:
  image=registry.example/team/app@$(ferry digest registry.example/team/app:1.4.2)

  # The digest of one platform's manifest out of a multi-arch index:
  ferry digest --platform linux/arm64 registry.example/team/app:1.4.2

  # In a layout, with the media type and size:
  ferry digest --format json oci:./image:v1

Exit codes:
  0  printed
  1  the request failed (I/O, registry or network error)
  2  bad usage or invalid input (reference, platform)
  3  the repository, tag, digest or platform does not exist
  4  authentication or permission refused";

/// `ferry digest`.
#[derive(Debug, Args)]
pub struct DigestArgs {
    /// `HOST[:PORT]/REPO[:TAG][@DIGEST]` or `oci:PATH[:TAG|@DIGEST]`.
    pub reference: String,
    /// The digest of this platform's manifest out of an index (`os/arch[/variant]`); indexes
    /// listed by the index are searched too, down to 8 levels.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Output, configuration and registry options.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// What `reference` names in `store`: a `HEAD` where the store offers one that answers with
/// the digest ([`ferry_core::Peek`]), else its resolution.
pub async fn peek_or_resolve(store: &dyn ReadStore, reference: &str) -> Result<Descriptor> {
    Ok(match store.capabilities().peek {
        Some(peek) => peek.peek(reference).await?,
        None => store.resolve(reference).await?,
    })
}

/// Runs `ferry digest`; returns the exit code.
pub async fn run(app: &App, args: DigestArgs) -> Result<u8> {
    let ep = Endpoint::parse(&args.reference)?;
    let platform = crate::options::platform(args.platform.as_deref())?;
    let purpose = Purpose {
        resolve_with_head: true,
    };
    let target = crate::setup::open_one_reader(&app.factories, &args.common, &ep, purpose).await?;
    let mut descriptor = peek_or_resolve(target.store.as_ref(), &target.reference).await?;
    if let Some(filter) = &platform {
        descriptor = ferry_core::select_platform(
            target.store.as_ref(),
            &descriptor,
            filter,
            ferry_core::model::DEFAULT_MANIFEST_LIMIT,
        )
        .await?;
    }
    match args.common.format {
        Format::Text => print_lines(&[descriptor.digest().to_string()]),
        Format::Json => {
            let mut doc = json!({
                "reference": args.reference,
                "digest": descriptor.digest().to_string(),
                "mediaType": descriptor.media_type().to_string(),
                "size": descriptor.size(),
            });
            if let Some(p) = &platform {
                doc["platform"] = json!(p.to_string());
            }
            print_json(&doc)?;
        }
    }
    Ok(0)
}
