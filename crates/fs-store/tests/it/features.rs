//! What a library user compiles. ferry-core, ferry-sync, ferry-conformance and ferry-fs-store
//! (by default) build no HTTP stack, no S3 client and no database: a program that only copies
//! between layouts pays for none of them. `cargo tree` reads the lock
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

/// The default build of each library that speaks no HTTP holds no HTTP stack, no S3 client
/// and no database; the crates and features that bring them do.
#[test]
fn default_builds_pull_no_http_stack_s3_client_or_database() {
    for krate in [
        "ferry-core",
        "ferry-sync",
        "ferry-conformance",
        "ferry-fs-store",
    ] {
        let names = packages(&["-p", krate]);
        assert!(
            names.iter().any(|n| n == "oci-spec"),
            "the listing names {krate}'s dependencies: {names:?}"
        );
        assert_eq!(heavy_in(&names), Vec::<&str>::new(), "{krate}");
    }

    // The crates and features that bring them, so the listings above would show them if they
    // leaked.
    let s3 = packages(&["-p", "ferry-fs-store", "--features", "s3"]);
    assert!(heavy_in(&s3).contains(&"object_store") && heavy_in(&s3).contains(&"reqwest"));
    let cache = packages(&["-p", "ferry-cache"]);
    assert!(heavy_in(&cache).contains(&"redb"));
    let http = packages(&["-p", "ferry-http"]);
    assert!(heavy_in(&http).contains(&"hyper") && heavy_in(&http).contains(&"rustls"));
}
