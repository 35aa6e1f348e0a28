//! A library consumer mirrors a directory of OCI layouts (one per repository) into another
//! with `ferry_sync`, keeping the newest semantic versions, and prints each image's
//! outcome. Blobs are hardlinked (or reflinked) when both directories share a filesystem, and
//! each is linked from the layout that received it first.
//!
//! ```text
//! sync-layouts SRC_DIR DST_DIR [SEMVER_RANGE [LATEST]]
//! ```

use std::sync::Arc;

use ferry_core::{CopyOptions, MountChain};
use ferry_fs_store::{OciDir, SharedStorageMount};
use ferry_sync::{SyncEntry, SyncOptions, SyncSource, TagFilter, sync};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (src, dst, range, latest) = match args.as_slice() {
        [src, dst] => (src, dst, None, None),
        [src, dst, range] => (src, dst, Some(range), None),
        [src, dst, range, latest] => (src, dst, Some(range), Some(latest.parse::<usize>()?)),
        _ => return Err("usage: sync-layouts SRC_DIR DST_DIR [SEMVER_RANGE [LATEST]]".into()),
    };
    let mut filter = TagFilter::new();
    if let Some(range) = range {
        filter = filter.semver(range)?;
    }
    if let Some(n) = latest {
        filter = filter.latest(n);
    }
    let entry = SyncEntry::new(SyncSource::Catalog {
        source: Arc::new(OciDir::open(src)?),
        source_prefix: String::new(),
        destination: Arc::new(OciDir::open_or_create(dst)?),
        destination_prefix: String::new(),
    })
    .with_filter(filter)
    .with_copy(
        CopyOptions::default().with_chain(MountChain::new().with(SharedStorageMount::new())),
    );
    let report = sync(vec![entry], SyncOptions::default()).await;
    for image in &report.images {
        println!(
            "{} {} ({} mounted, {} copied)",
            image.outcome.verb(),
            image.destination_ref(),
            image.mounted,
            image.copied
        );
    }
    let t = &report.totals;
    println!(
        "{} synced, {} unchanged, {} filtered, {} failed",
        t.synced, t.unchanged, t.filtered, t.failed
    );
    if !report.complete() {
        return Err("some images failed".into());
    }
    Ok(())
}
