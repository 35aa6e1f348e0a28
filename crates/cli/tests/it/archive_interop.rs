//! ferry's archives and other tools' archives, both ways: skopeo (`oci-archive:` and
//! `docker-archive:`), regctl (`image import`/`export`), crane (`push`/`pull` of a tarball),
//! umoci (the layout inside), and `docker load` when a Docker daemon can run here. Peers
//! that are absent are skipped with a note on stderr.

use std::path::{Path, PathBuf};

use ferry_test_support::fixtures::{push, write_oci_layout};
use ferry_test_support::{
    DockerDaemon, Image, ImageBuilder, Registry, peer, run_peer, skopeo, umoci,
};

use crate::archives::member;
use crate::support::*;
use crate::sync::remote_digest;

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// An image with real tar layers (its config lists their diff IDs, as loaders check).
fn image(seed: u64) -> Image {
    ImageBuilder::new()
        .layers(&[6 * 1024, 20 * 1024])
        .seed(seed)
        .build()
}

/// A layout holding `image` as `tag`.
fn layout(dir: &Path, image: &Image, tag: &str) -> PathBuf {
    write_oci_layout(dir, &[(Some(tag), image)]).unwrap();
    dir.to_path_buf()
}

/// ferry's archive of `image`, copied from a layout as `repository:tag`.
fn ferry_archive(dir: &Path, image: &Image, repository: &str, tag: &str) -> PathBuf {
    let file = repository.replace('/', "-");
    let src = layout(&dir.join(format!("src-{file}")), image, tag);
    let archive = dir.join(format!("{file}.tar"));
    let run = ferry(&[
        "cp",
        &format!("oci:{}:{tag}", s(&src)),
        &format!("oci-archive:{}:{repository}:{tag}", s(&archive)),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    archive
}

/// The manifest digest of `oci:DIR:TAG` as skopeo reads it.
fn layout_digest(dir: &Path, tag: &str) -> String {
    let raw = skopeo(&["inspect", "--raw", &format!("oci:{}:{tag}", s(dir))]).unwrap();
    ferry_core::sha256(&raw.stdout).to_string()
}

#[test]
fn skopeo_reads_ferrys_archives_and_ferry_reads_skopeos() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(201);
    let archive = ferry_archive(dir.path(), &img, "team/app", "v1");

    // oci-archive: the digest kept.
    let out = dir.path().join("skopeo-oci");
    skopeo(&[
        "copy",
        "--preserve-digests",
        &format!("oci-archive:{}:v1", s(&archive)),
        &format!("oci:{}:v1", s(&out)),
    ])
    .unwrap();
    assert_eq!(layout_digest(&out, "v1"), img.manifest.digest().to_string());
    // docker-archive: through Docker's manifest.json; skopeo reports the layers by diff ID.
    let inspected = skopeo(&["inspect", &format!("docker-archive:{}", s(&archive))]).unwrap();
    let inspected: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    let layers: Vec<String> = img.layers.iter().map(|l| l.digest().to_string()).collect();
    assert_eq!(inspected["Layers"], serde_json::json!(layers));

    // skopeo's oci-archive (a tag only, no repository: ferry names it by the file).
    let src = layout(&dir.path().join("src"), &img, "v1");
    let theirs = dir.path().join("skopeo-made.tar");
    skopeo(&[
        "copy",
        "--preserve-digests",
        &format!("oci:{}:v1", s(&src)),
        &format!("oci-archive:{}:v1", s(&theirs)),
    ])
    .unwrap();
    let back = dir.path().join("from-skopeo");
    let run = ferry(&[
        "cp",
        &format!("oci-archive:{}", s(&theirs)),
        &format!("oci:{}:v1", s(&back)),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        layout_digest(&back, "v1"),
        img.manifest.digest().to_string()
    );
    assert!(run.stdout.contains("[oci-archive]"), "{}", run.stdout);
    // As a stream (it names no repository for its blobs: they land in the one destination).
    let streamed = dir.path().join("from-skopeo-stream");
    stdin_copy(&theirs, &format!("oci:{}:v1", s(&streamed)));
    assert_eq!(
        layout_digest(&streamed, "v1"),
        img.manifest.digest().to_string()
    );
    // Into many repositories a stream that names none cannot land: the error says what to do.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["sync", "--no-cache", "oci-archive:-"])
        .arg(format!("oci-dir:{}", s(&dir.path().join("many"))))
        .stdin(std::fs::File::open(&theirs).unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("sync it into one repository"), "{stderr}");

    // skopeo's docker-archive (layers under their digests, links in legacy directories): a
    // bundle whose repository comes from the image's name.
    let docker = dir.path().join("docker-made.tar");
    skopeo(&[
        "copy",
        &format!("oci:{}:v1", s(&src)),
        &format!("docker-archive:{}:example.com/team/app:v1", s(&docker)),
    ])
    .unwrap();
    let out = dir.path().join("dir");
    let run = ferry(&[
        "sync",
        &format!("docker-archive:{}", s(&docker)),
        &format!("oci-dir:{}", s(&out)),
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let copied = out.join("team/app");
    let raw = skopeo(&["inspect", "--raw", &format!("oci:{}:v1", s(&copied))]).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        manifest["config"]["digest"],
        img.config.digest().to_string()
    );
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 2);
    // One image by the name skopeo gave it.
    let one = dir.path().join("one");
    let run = ferry(&[
        "cp",
        &format!("docker-archive:{}:example.com/team/app:v1", s(&docker)),
        &format!("oci:{}:v1", s(&one)),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        layout_digest(&one, "v1"),
        layout_digest(&copied, "v1"),
        "the same manifest, made the same way"
    );
}

#[test]
fn umoci_reads_the_layout_inside_a_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    layout(&export.join("team/app"), &image(211), "v1");
    layout(&export.join("team/db"), &image(212), "v2");
    let bundle = dir.path().join("bundle.tar");
    let run = ferry(&[
        "sync",
        &format!("oci-dir:{}", s(&export)),
        &format!("oci-archive:{}", s(&bundle)),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    let untar = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&bundle)
        .arg("-C")
        .arg(&unpacked)
        .output()
        .unwrap();
    assert!(untar.status.success());
    assert!(
        untar.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&untar.stderr)
    );
    let listed = umoci(&["ls", "--layout", &s(&unpacked)]).unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("v1") && listed.contains("v2"), "{listed}");
    let rootfs = dir.path().join("rootfs");
    umoci(&[
        "unpack",
        "--rootless",
        "--image",
        &format!("{}:v2", s(&unpacked)),
        &s(&rootfs),
    ])
    .unwrap();
    assert_eq!(
        std::fs::metadata(rootfs.join("rootfs/layer-1.bin"))
            .unwrap()
            .len(),
        20 * 1024
    );
}

#[test]
fn regctl_imports_ferrys_archive_and_ferry_reads_regctls_export() {
    let Some(regctl) = peer("regctl") else { return };
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".regctl")).unwrap();
    std::fs::write(
        home.join(".regctl/config.json"),
        serde_json::json!({"hosts": {reg.addr(): {"tls": "disabled"}}}).to_string(),
    )
    .unwrap();
    let env = [("HOME", home.as_path())];
    let img = image(221);
    let archive = ferry_archive(dir.path(), &img, "app", "v1");
    run_peer(
        &regctl,
        &[
            "image",
            "import",
            &format!("{}/imported:v1", reg.addr()),
            &s(&archive),
        ],
        &env,
    )
    .unwrap();
    assert_eq!(
        remote_digest(reg.addr(), "imported:v1"),
        img.manifest.digest().to_string()
    );

    let exported = dir.path().join("regctl-made.tar");
    run_peer(
        &regctl,
        &[
            "image",
            "export",
            &format!("{}/imported:v1", reg.addr()),
            &s(&exported),
        ],
        &env,
    )
    .unwrap();
    let back = dir.path().join("from-regctl");
    let run = ferry(&[
        "cp",
        &format!("oci-archive:{}", s(&exported)),
        &format!("oci:{}:v1", s(&back)),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        layout_digest(&back, "v1"),
        img.manifest.digest().to_string()
    );
    // regctl writes the index files first, the blobs after: read as a stream too.
    let streamed = dir.path().join("from-regctl-stream");
    stdin_copy(&exported, &format!("oci:{}:v1", s(&streamed)));
    assert_eq!(
        layout_digest(&streamed, "v1"),
        img.manifest.digest().to_string()
    );
}

/// `ferry cp oci-archive:- DST` with `archive` on stdin.
fn stdin_copy(archive: &Path, dst: &str) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["cp", "--no-cache", "oci-archive:-", dst])
        .stdin(std::fs::File::open(archive).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn oras_restores_ferrys_archive_and_ferry_reads_oras_backup() {
    let Some(oras) = peer("oras") else { return };
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let img = image(225);
    let archive = ferry_archive(dir.path(), &img, "app", "v1");
    run_peer(
        &oras,
        &[
            "restore",
            "--plain-http",
            "--input",
            &s(&archive),
            &format!("{}/restored:v1", reg.addr()),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(
        remote_digest(reg.addr(), "restored:v1"),
        img.manifest.digest().to_string()
    );
    let backup = dir.path().join("oras-made.tar");
    run_peer(
        &oras,
        &[
            "backup",
            "--plain-http",
            "--output",
            &s(&backup),
            &format!("{}/restored:v1", reg.addr()),
        ],
        &[],
    )
    .unwrap();
    let back = dir.path().join("from-oras");
    let run = ferry(&[
        "cp",
        &format!("oci-archive:{}", s(&backup)),
        &format!("oci:{}:v1", s(&back)),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        layout_digest(&back, "v1"),
        img.manifest.digest().to_string()
    );
}

#[test]
fn crane_pushes_ferrys_archive_and_ferry_reads_cranes_tarball() {
    let Some(crane) = peer("crane") else { return };
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let img = image(231);
    let archive = ferry_archive(dir.path(), &img, "app", "v1");
    // crane reads Docker's manifest.json; it gzips uncompressed layers, so the manifest is
    // its own, the config the same.
    run_peer(
        &crane,
        &[
            "push",
            "--insecure",
            &s(&archive),
            &format!("{}/craned:v1", reg.addr()),
        ],
        &[],
    )
    .unwrap();
    let pushed = run_peer(
        &crane,
        &[
            "manifest",
            "--insecure",
            &format!("{}/craned:v1", reg.addr()),
        ],
        &[],
    )
    .unwrap();
    let pushed: serde_json::Value = serde_json::from_slice(&pushed.stdout).unwrap();
    assert_eq!(pushed["config"]["digest"], img.config.digest().to_string());
    assert_eq!(pushed["layers"].as_array().unwrap().len(), 2);

    rt().block_on(push(&reg.url(), "app", &img, Some("v1"), None))
        .unwrap();
    let tarball = dir.path().join("crane-made.tar");
    run_peer(
        &crane,
        &[
            "pull",
            "--insecure",
            &format!("{}/app:v1", reg.addr()),
            &s(&tarball),
        ],
        &[],
    )
    .unwrap();
    // Not an OCI archive: the error says how to read it.
    let run = ferry(&[
        "cp",
        &format!("oci-archive:{}", s(&tarball)),
        &format!("oci:{}:v1", s(&dir.path().join("no"))),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("docker-archive:PATH"), "{}", run.stderr);
    let back = dir.path().join("from-crane");
    let run = ferry(&[
        "cp",
        &format!("docker-archive:{}", s(&tarball)),
        &format!("oci:{}:v1", s(&back)),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let raw = skopeo(&["inspect", "--raw", &format!("oci:{}:v1", s(&back))]).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        manifest["config"]["digest"],
        img.config.digest().to_string()
    );
    let layers: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = img.layers.iter().map(|l| l.digest().to_string()).collect();
    assert_eq!(layers, expected);
}

#[test]
fn docker_loads_a_bundle_ferry_wrote() {
    let Some(docker) = DockerDaemon::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    let (a, b) = (image(241), image(242));
    layout(&export.join("team/app"), &a, "1.0");
    layout(&export.join("team/db"), &b, "2.0");
    for (name, compression) in [("bundle.tar", "none"), ("bundle.tar.gz", "gzip")] {
        let bundle = dir.path().join(name);
        let run = ferry(&[
            "sync",
            &format!("oci-dir:{}", s(&export)),
            &format!("oci-archive:{}", s(&bundle)),
            "--archive-compression",
            compression,
        ]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let loaded = docker.docker(&["load", "-i", &s(&bundle)]).unwrap();
        let loaded = String::from_utf8_lossy(&loaded.stdout);
        assert!(
            loaded.contains("Loaded image: team/app:1.0")
                && loaded.contains("Loaded image: team/db:2.0"),
            "{name}: {loaded}"
        );
    }
    let inspected = docker
        .docker(&[
            "image",
            "inspect",
            "team/db:2.0",
            "--format",
            "{{json .RootFS.Layers}}",
        ])
        .unwrap();
    let layers: Vec<String> = serde_json::from_slice(&inspected.stdout).unwrap();
    let expected: Vec<String> = b.layers.iter().map(|l| l.digest().to_string()).collect();
    assert_eq!(layers, expected);
    let items: serde_json::Value =
        serde_json::from_slice(&member(&dir.path().join("bundle.tar"), "manifest.json")).unwrap();
    assert_eq!(items.as_array().unwrap().len(), 2);

    // And ferry reads what `docker save` writes (Docker 20: layers in legacy directories,
    // hashed once to name them), configs and layers unchanged.
    let saved = dir.path().join("saved.tar");
    docker
        .docker(&["save", "-o", &s(&saved), "team/db:2.0"])
        .unwrap();
    let back = dir.path().join("from-docker");
    let run = ferry(&[
        "cp",
        &format!("docker-archive:{}:team/db:2.0", s(&saved)),
        &format!("oci:{}:v1", s(&back)),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let raw = skopeo(&["inspect", "--raw", &format!("oci:{}:v1", s(&back))]).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(manifest["config"]["digest"], b.config.digest().to_string());
    let layers: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    assert_eq!(layers, expected);
}
