//! The README's "Air gaps" section, run as written: each command of its `sh` blocks, with
//! `registry.example` and `mirror.example` standing for registries on loopback, `ssh airgap`
//! for a local shell, and `docker` for a daemon of the test's own (skipped with a note when
//! none can run).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use ferry_test_support::fixtures::push;
use ferry_test_support::{DockerDaemon, ImageBuilder, Registry};

use crate::archives::blob_counts;
use crate::support::*;
use crate::sync::{Corpus, remote_digest, uploads};

/// The commands of each `sh` block of the README's "Air gaps" section.
fn blocks() -> Vec<Vec<String>> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let start = readme.find("\n## Air gaps\n").expect("an Air gaps section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in section.lines() {
        match (line.trim(), &mut current) {
            ("```sh", None) => current = Some(Vec::new()),
            ("```", Some(_)) => blocks.push(current.take().unwrap()),
            (l, Some(block)) if !l.is_empty() && !l.starts_with('#') => block.push(l.to_string()),
            _ => {}
        }
    }
    blocks
}

/// Runs one README command in `cwd` with the hosts replaced; returns its stderr.
fn run(line: &str, cwd: &Path, src: &Registry, mirror: &Registry, docker: Option<&str>) -> String {
    let line = line
        .replace("registry.example", src.addr())
        .replace("mirror.example", mirror.addr())
        .replace("ssh airgap ", "bash -c ");
    let line = match docker {
        Some(host) => line.replace("docker ", &format!("docker -H {host} ")),
        None => line,
    };
    let bin = Path::new(env!("CARGO_BIN_EXE_ferry")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    std::fs::write(cwd.join("ferry.toml"), "[defaults]\nplain_http = true\n").unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -eo pipefail; {line}"))
        .current_dir(cwd)
        .env("PATH", path)
        .env("FERRY_CONFIG", cwd.join("ferry.toml"))
        .env("XDG_CACHE_HOME", cwd.join("cache"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "`{line}`: {}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr + &String::from_utf8_lossy(&out.stdout)
}

#[test]
fn the_readmes_air_gap_commands_work_as_written() {
    let blocks = blocks();
    assert_eq!(blocks.len(), 4, "{blocks:?}");
    let src = Registry::start().unwrap();
    let mirror = Registry::start().unwrap();
    let piped = Registry::start().unwrap();
    let corpus = Corpus::new(&["app", "db"], &["1.3", "1.4"], 81, 32 * 1024);
    corpus.push_to(&src, "team/");
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let digest = |repo: &str, tag: &str| {
        corpus
            .images
            .iter()
            .find(|i| i.repo == repo && i.tag == tag)
            .unwrap()
            .image
            .manifest
            .digest()
            .to_string()
    };

    // A file, then one image out of it.
    for line in &blocks[0] {
        run(line, cwd, &src, &mirror, None);
    }
    for i in &corpus.images {
        assert_eq!(
            remote_digest(mirror.addr(), &format!("team/{}:{}", i.repo, i.tag)),
            digest(&i.repo, &i.tag)
        );
    }
    assert_eq!(
        index_json(&cwd.join("app"))["manifests"][0]["digest"],
        digest("app", "1.4")
    );

    // A pipe over ssh (a local shell here), into a registry of its own.
    for line in &blocks[1] {
        run(line, cwd, &src, &piped, None);
    }
    for i in &corpus.images {
        assert_eq!(
            remote_digest(piped.addr(), &format!("team/{}:{}", i.repo, i.tag)),
            digest(&i.repo, &i.tag)
        );
    }

    // A delta with a receipt, after app:1.3 moved upstream.
    let moved = ImageBuilder::new()
        .shared_layer(corpus.base.clone())
        .layer(24 * 1024)
        .seed(8_181)
        .build();
    for line in &blocks[2] {
        if line.contains("--delta-from") {
            rt().block_on(push(&src.url(), "team/app", &moved, Some("1.3"), None))
                .unwrap();
        }
        let mark = mirror.mark();
        run(line, cwd, &src, &mirror, None);
        if line.starts_with("ferry sync oci-archive:team-delta.tar") {
            let uploaded: BTreeSet<String> =
                uploads(&mirror.requests_since(mark)).into_keys().collect();
            assert_eq!(
                uploaded,
                BTreeSet::from([
                    moved.config.digest().to_string(),
                    moved.layers[1].digest().to_string()
                ])
            );
        }
    }
    let carried = blob_counts(&cwd.join("team-delta.tar"));
    assert_eq!(
        carried.len(),
        4,
        "manifest, config, new layer, delta record: {carried:?}"
    );
    assert!(carried.contains_key(&moved.manifest.digest().to_string()));
    assert_eq!(
        remote_digest(mirror.addr(), "team/app:1.3"),
        moved.manifest.digest().to_string()
    );
    let receipt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cwd.join("team.json")).unwrap()).unwrap();
    assert_eq!(receipt["images"].as_array().unwrap().len(), 4);

    // docker load of a ferry archive.
    let daemon = DockerDaemon::start();
    let host = daemon.as_ref().map(DockerDaemon::host);
    for line in &blocks[3] {
        if line.starts_with("docker ") && host.is_none() {
            eprintln!("note: skipping `{line}`: no Docker daemon here");
            continue;
        }
        let said = run(line, cwd, &src, &mirror, host.as_deref());
        if line.starts_with("docker load") {
            assert!(
                said.contains(&format!("Loaded image: {}/team/app:1.4", src.addr())),
                "{said}"
            );
        }
    }
}
