//! A second process writing tags into one OCI layout, for the crate's tests of writers in
//! several processes (`tests/it/concurrency.rs`). Built only with the `test-programs`
//! feature, which the crate's own tests turn on.
//!
//! ```text
//! ferry-fs-store-tag-writer LAYOUT PREFIX COUNT
//! ```
//!
//! Opens the layout at LAYOUT, resolves its tag `base`, and tags that manifest
//! `PREFIX-0` … `PREFIX-<COUNT-1>`, one `tag` call each. Exits 0 when every tag was written,
//! else prints why on stderr and exits 1.

use std::process::ExitCode;

use ferry_core::{ReadStore, WriteStore};
use ferry_fs_store::OciLayout;

const USAGE: &str = "usage: ferry-fs-store-tag-writer LAYOUT PREFIX COUNT";

async fn run(args: &[String]) -> Result<(), String> {
    let [layout, prefix, count] = args else {
        return Err(USAGE.into());
    };
    let count: usize = count
        .parse()
        .map_err(|_| format!("COUNT `{count}` is not a number; {USAGE}"))?;
    let store = OciLayout::open(layout).map_err(|e| e.to_string())?;
    let manifest = store.resolve("base").await.map_err(|e| e.to_string())?;
    for i in 0..count {
        store
            .tag(&manifest, &format!("{prefix}-{i}"))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
