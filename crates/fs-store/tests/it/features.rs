//! What a library user compiles. Without default features, ferry-fs-store (and the ferry-core
//! it brings) build none of the S3 backend's HTTP stack nor the persistent cache's database:
//! a program that only copies between layouts pays for neither. `cargo tree` reads the lock
//! file, offline, so this guards the feature wiring without building anything.

use std::path::Path;
use std::process::Command;

/// The crates of the storage strategy's S3 backend and of the persistent cache.
const HEAVY: [&str; 5] = ["object_store", "reqwest", "redb", "hyper", "rustls"];

/// The names of the packages `cargo tree` lists as normal dependencies for `args`.
fn packages(args: &[&str]) -> Vec<String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tree = [
        "tree",
        "--locked",
        "--offline",
        "-e",
        "normal",
        "--prefix",
        "none",
    ];
    let out = Command::new(env!("CARGO"))
        .current_dir(&workspace)
        .args(tree)
        .args(args)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(String::from))
        .collect();
    names.sort();
    names.dedup();
    names
}

fn heavy_in(names: &[String]) -> Vec<&'static str> {
    HEAVY
        .into_iter()
        .filter(|h| names.iter().any(|n| n == h))
        .collect()
}

#[test]
fn without_default_features_neither_crate_pulls_object_store_reqwest_or_redb() {
    let fs_store = packages(&["-p", "ferry-fs-store", "--no-default-features"]);
    assert!(
        fs_store.iter().any(|n| n == "ferry-core"),
        "the listing names the crate's dependencies: {fs_store:?}"
    );
    assert_eq!(heavy_in(&fs_store), Vec::<&str>::new(), "ferry-fs-store");

    let core = packages(&["-p", "ferry-core", "--no-default-features"]);
    assert_eq!(heavy_in(&core), Vec::<&str>::new(), "ferry-core");

    // The features bring them, so the listing above would show them if they leaked.
    let s3 = packages(&[
        "-p",
        "ferry-fs-store",
        "--no-default-features",
        "--features",
        "s3",
    ]);
    assert!(heavy_in(&s3).contains(&"object_store") && heavy_in(&s3).contains(&"reqwest"));
    let cache = packages(&["-p", "ferry-core", "--features", "persistent-cache"]);
    assert!(heavy_in(&cache).contains(&"redb"));
}
