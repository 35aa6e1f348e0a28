//! Builds and runs every example.

use std::path::{Path, PathBuf};
use std::process::Command;

fn sample_layout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/hello")
}

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_copy-between-layouts"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "example failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn copy_between_layouts_mounts_with_the_chain_it_builds() {
    let dir = tempfile::tempdir().unwrap();
    // Copy the sample into the temp dir first so source and destination share a filesystem.
    let src = dir.path().join("src");
    let out = run(&[
        sample_layout().to_str().unwrap(),
        "v1",
        src.to_str().unwrap(),
    ]);
    assert!(out.contains("chain: MountChain[]"), "{out}");
    assert!(out.contains("0 mounted"), "an empty chain streams: {out}");

    let dst = dir.path().join("dst");
    let out = run(&[
        src.to_str().unwrap(),
        "v1",
        dst.to_str().unwrap(),
        "shared-storage",
    ]);
    assert!(
        out.contains("chain: MountChain[SharedStorageMount]"),
        "{out}"
    );
    assert!(
        out.contains("3 mounted"),
        "config and both layers mounted: {out}"
    );
    assert!(out.contains("by hardlink from"), "{out}");
    assert!(dst.join("index.json").exists());
}
