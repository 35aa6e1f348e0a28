//! A library consumer copies an image between two OCI layouts with a mount chain it builds at
//! run time, then prints the report.
//!
//! ```text
//! copy-between-layouts SRC_LAYOUT TAG DST_LAYOUT [STRATEGY...]
//! ```
//! STRATEGY is `shared-storage` or `shared-storage-trusted`; none means stream every blob.

use std::sync::Arc;

use ferry_core::{CopyOptions, MountChain, ReadStore, WriteStore, copy};
use ferry_fs_store::{OciLayout, SharedStorageMount};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [src, tag, dst, strategies @ ..] = args.as_slice() else {
        return Err("usage: copy-between-layouts SRC_LAYOUT TAG DST_LAYOUT [STRATEGY...]".into());
    };

    // The chain is built from what the caller asked for, at run time.
    let mut chain = MountChain::new();
    for name in strategies {
        chain = match name.as_str() {
            "shared-storage" => chain.with(SharedStorageMount::new()),
            "shared-storage-trusted" => chain.with(SharedStorageMount::trusting()),
            other => return Err(format!("unknown strategy `{other}`").into()),
        };
    }
    println!("chain: {chain}");

    let source: Arc<dyn ReadStore> = Arc::new(OciLayout::open(src)?);
    let destination: Arc<dyn WriteStore> = Arc::new(OciLayout::open_or_create(dst)?);
    let options = CopyOptions::default().with_chain(chain);
    let report = copy(source, tag, destination, Some(tag), &options).await?;

    ferry_examples::print_report(&report);
    Ok(())
}
