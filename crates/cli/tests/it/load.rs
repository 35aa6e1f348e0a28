//! 50 `ferry cp` processes at once into one layout and into one registry, sharing one
//! blob-location cache: every tag lands, no blob is lost or partial, `index.json` and the
//! cache stay whole.

use std::process::{Command, Stdio};

use ferry_cache::PersistentLocations;
use ferry_test_support::fixtures::write_oci_layout;
use ferry_test_support::{Content, Image, ImageBuilder, Registry, skopeo, umoci};

use crate::support::*;

const PROCESSES: usize = 50;
/// Distinct images; process `i` copies image `i % IMAGES`, so each blob is raced for by
/// `PROCESSES / IMAGES` processes.
const IMAGES: usize = 5;

fn images() -> Vec<Image> {
    (0..IMAGES)
        .map(|i| {
            ImageBuilder::new()
                .layers(&[40_000, 90_000])
                .seed(900 + i as u64)
                .build()
        })
        .collect()
}

fn source_layout(dir: &std::path::Path, images: &[Image]) -> String {
    let tags: Vec<String> = (0..images.len()).map(|i| format!("img{i}")).collect();
    let contents: Vec<(Option<&str>, &dyn Content)> = images
        .iter()
        .zip(&tags)
        .map(|(img, t)| (Some(t.as_str()), img as &dyn Content))
        .collect();
    write_oci_layout(dir, &contents).unwrap();
    dir.display().to_string()
}

/// Starts every command at once, then waits for all; returns (exit code, stderr) each.
fn all_at_once(commands: Vec<Vec<String>>, cache: &str) -> Vec<(i32, String)> {
    let children: Vec<_> = commands
        .iter()
        .map(|args| {
            Command::new(env!("CARGO_BIN_EXE_ferry"))
                .args(args)
                .env("XDG_CACHE_HOME", cache)
                .env("DOCKER_CONFIG", "/nonexistent/ferry-test-docker-config")
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
        .collect()
}

fn check_all_succeeded(results: &[(i32, String)]) {
    for (i, (code, stderr)) in results.iter().enumerate() {
        assert_eq!(*code, 0, "process {i} failed: {stderr}");
    }
    let skipped_cache = results
        .iter()
        .filter(|(_, e)| e.contains("blob-location cache"))
        .count();
    eprintln!("{skipped_cache} of {PROCESSES} processes went on without the busy cache");
    if let Some((_, e)) = results
        .iter()
        .find(|(_, e)| e.contains("blob-location cache"))
    {
        eprintln!("for example: {e}");
    }
}

fn check_cache(cache: &std::path::Path) {
    let file = cache.join("ferry/locations.redb");
    assert!(file.exists(), "the cache was written");
    PersistentLocations::open(&file).unwrap();
}

#[test]
fn fifty_processes_into_one_layout_land_every_tag() {
    let images = images();
    let work = tempfile::tempdir().unwrap();
    let src = source_layout(&work.path().join("src"), &images);
    let dst = work.path().join("dst");
    let cache = work.path().join("cache");
    let commands = (0..PROCESSES)
        .map(|i| {
            vec![
                "cp".to_string(),
                "--mount".into(),
                "none".into(),
                format!("oci:{src}:img{}", i % IMAGES),
                format!("oci:{}:t{i}", dst.display()),
            ]
        })
        .collect();
    let results = all_at_once(commands, &cache.display().to_string());
    check_all_succeeded(&results);

    let index = index_json(&dst);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), PROCESSES, "one entry per tag: {index}");
    for i in 0..PROCESSES {
        let tag = format!("t{i}");
        let entry = manifests
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag.as_str())
            .unwrap_or_else(|| panic!("tag `{tag}` is missing from index.json"));
        assert_eq!(
            entry["digest"],
            images[i % IMAGES].manifest.digest().to_string()
        );
    }
    let blobs = blobs_match_their_names(&dst);
    for image in &images {
        for blob in image.all() {
            assert!(
                blobs.contains(&blob.digest().to_string()),
                "blob `{}` lost",
                blob.digest()
            );
        }
    }
    assert_eq!(blobs.len(), IMAGES * 4, "no stray blob");
    for i in 0..IMAGES {
        umoci(&["stat", "--image", &format!("{}:t{i}", dst.display())]).unwrap();
    }
    check_cache(&cache);
}

#[test]
fn fifty_processes_into_one_registry_land_every_tag() {
    let images = images();
    let reg = Registry::start().unwrap();
    let work = tempfile::tempdir().unwrap();
    let src = source_layout(&work.path().join("src"), &images);
    let cache = work.path().join("cache");
    let r = reg.addr();
    let commands = (0..PROCESSES)
        .map(|i| {
            vec![
                "cp".to_string(),
                "--plain-http".into(),
                format!("oci:{src}:img{}", i % IMAGES),
                format!("{r}/load/app:t{i}"),
            ]
        })
        .collect();
    let results = all_at_once(commands, &cache.display().to_string());
    check_all_succeeded(&results);

    let list = rt()
        .block_on(ferry_test_support::http(
            "GET",
            &format!("{}/v2/load/app/tags/list", reg.url()),
            &[],
            Vec::new(),
        ))
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
    let tags: Vec<&str> = list["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tags.len(), PROCESSES, "{tags:?}");
    for i in 0..PROCESSES {
        let raw = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{r}/load/app:t{i}"),
        ])
        .unwrap();
        assert_eq!(
            ferry_core::sha256(&raw.stdout),
            *images[i % IMAGES].manifest.digest(),
            "t{i}"
        );
    }
    for image in &images {
        crate::faults::no_manifest_without_children(&reg, "load/app", image);
    }
    check_cache(&cache);
}
