//! An operator copies an image between two registries that share one storage, with their own
//! [`AdminLinkMount`] in a chain with the built-in strategies, then prints the report.
//!
//! ```text
//! admin-link-copy [--plain-http] SRC DST ADMIN_URL
//! ```
//! SRC and DST are registry references (`HOST[:PORT]/REPO:TAG`); ADMIN_URL is the admin
//! endpoint that manages both registries. `REGISTRY_ADMIN_TOKEN`, when set, is sent to it as
//! a bearer token.

use std::sync::Arc;

use ferry_core::{CopyOptions, MountChain, copy};
use ferry_distribution::{ClientOptions, CrossRepoMount, Reference, RegistryClient};
use ferry_examples::admin_link::AdminLinkMount;
use ferry_fs_store::SharedStorageMount;

const USAGE: &str = "usage: admin-link-copy [--plain-http] SRC DST ADMIN_URL";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let plain_http = match args.iter().position(|a| a == "--plain-http") {
        Some(i) => {
            args.remove(i);
            true
        }
        None => false,
    };
    let [src, dst, admin_url] = args.as_slice() else {
        return Err(USAGE.into());
    };
    let src = Reference::parse(src)?;
    let dst = Reference::parse(dst)?;
    let Some(tag) = src.tag().map(str::to_string) else {
        return Err(format!("name a tag in `{src}`: {USAGE}").into());
    };

    let admin = AdminLinkMount::new(admin_url)?
        .managing([src.registry(), dst.registry()])
        .with_token(std::env::var("REGISTRY_ADMIN_TOKEN").unwrap_or_default())?
        // A timeout per attempt, and a silent endpoint left alone for a while.
        .layered();
    // The operator's strategy sits between the built-in ones: a cross-repository mount is
    // cheapest when source and destination share a registry; the admin link covers two
    // registries on one storage; the rest is streamed.
    let chain = MountChain::new()
        .with(CrossRepoMount::new())
        .with(admin)
        .with(SharedStorageMount::new());
    println!("chain: {chain}");

    let client = RegistryClient::new(ClientOptions {
        plain_http,
        ..ClientOptions::default()
    })?;
    let source = client.repository(&src)?;
    let destination = client.repository(&dst)?;
    let options = CopyOptions::default().with_chain(chain);
    let dst_tag = dst.tag().unwrap_or(&tag).to_string();
    let report = copy(
        Arc::clone(&source) as _,
        &tag,
        Arc::clone(&destination) as _,
        Some(&dst_tag),
        &options,
    )
    .await?;

    ferry_examples::print_report(&report);
    Ok(())
}
