//! `ferry-image`: writes the OCI image of ferry into a layout (see the library's docs).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Parser;
use ferry_image::{ImageSpec, build};

/// Writes an OCI image of ferry (linux/amd64) into an OCI image layout, without a container
/// engine; `ferry cp oci:OUT:VERSION REGISTRY/ferry:VERSION` publishes it.
#[derive(Debug, Parser)]
#[command(name = "ferry-image", version)]
struct Args {
    /// The ferry binary to put in the image.
    #[arg(long, default_value = "target/release/ferry")]
    binary: PathBuf,
    /// The layout to write (created if missing).
    #[arg(long, default_value = "target/image")]
    out: PathBuf,
    /// The version: the tag in the layout and the version annotation.
    #[arg(long = "tag", value_name = "VERSION", default_value = env!("CARGO_PKG_VERSION"))]
    image_version: String,
    /// The source annotation.
    #[arg(long, default_value = env!("CARGO_PKG_REPOSITORY"))]
    source: String,
    /// The revision annotation [default: `git rev-parse HEAD`].
    #[arg(long)]
    revision: Option<String>,
    /// The CA certificates (a PEM bundle).
    #[arg(long, default_value = "/etc/ssl/certs/ca-certificates.crt")]
    ca_certificates: PathBuf,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let revision = args.revision.clone().unwrap_or_else(|| {
        std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    });
    // SOURCE_DATE_EPOCH, as reproducible builds set it; else now.
    let created = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
        .unwrap_or_else(SystemTime::now);
    let spec = ImageSpec {
        binary: args.binary,
        ca_certificates: args.ca_certificates,
        version: args.image_version.clone(),
        source: args.source,
        revision,
        created,
    };
    match build(&spec, &args.out).await {
        Ok(built) => {
            println!(
                "Wrote oci:{}:{} ({}, layer {} bytes)",
                args.out.display(),
                args.image_version,
                built.manifest.digest(),
                built.layer.size()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
