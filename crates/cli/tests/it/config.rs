//! The operator configuration file, and `DistributionStorageMount` between registries that
//! share a storage backend, driven from it.

use std::path::Path;

use ferry_test_support::fixtures::write_oci_layout;
use ferry_test_support::{Content, ImageBuilder, Registry, skopeo};

use crate::support::*;

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("ferry.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn unknown_keys_and_missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    layout_with_image(&src, "v1", 1);
    let s = format!("oci:{}:v1", src.display());
    let d = format!("oci:{}:v1", dir.path().join("dst").display());

    let cfg = write_config(dir.path(), "[defaults]\nconcurency = 3\n");
    let run = ferry(&["cp", "--config", &cfg, &s, &d]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("concurency"), "{}", run.stderr);

    let cfg = write_config(dir.path(), "[registries.\"r:5000\"]\nplain_htp = true\n");
    let run = ferry(&["cp", "--config", &cfg, &s, &d]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("plain_htp"), "{}", run.stderr);

    let cfg = write_config(
        dir.path(),
        "[registries.\"r:5000\"]\nstorage = \"s3://bucket/x\"\nendpont = \"http://x\"\n",
    );
    let run = ferry(&["cp", "--config", &cfg, &s, &d]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("endpont"), "{}", run.stderr);

    let run = ferry(&["cp", "--config", "/nonexistent/ferry.toml", &s, &d]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("/nonexistent/ferry.toml"),
        "{}",
        run.stderr
    );
}

#[test]
fn defaults_and_registry_settings_apply_unless_flags_say_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::start().unwrap();
    let src = dir.path().join("src");
    layout_with_image(&src, "v1", 2);
    let cfg = write_config(
        dir.path(),
        &format!(
            "[defaults]\nmount = \"none\"\n[registries.\"{}\"]\nplain_http = true\n",
            reg.addr()
        ),
    );
    // plain_http from the registry's table: no flag needed.
    let run = ferry(&[
        "cp",
        "--config",
        &cfg,
        &format!("oci:{}:v1", src.display()),
        &format!("{}/app:v1", reg.addr()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // mount = "none" from the defaults: layouts on one filesystem are streamed.
    let run = ferry(&[
        "cp",
        "--config",
        &cfg,
        &format!("oci:{}:v1", src.display()),
        &format!("oci:{}:v1", dir.path().join("a").display()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains("Mounted"), "{}", run.stdout);
    // A flag wins over the file.
    let run = ferry(&[
        "cp",
        "--config",
        &cfg,
        "--mount",
        "auto",
        &format!("oci:{}:v1", src.display()),
        &format!("oci:{}:v1", dir.path().join("b").display()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.matches("via hardlink (shared-storage)").count(),
        3,
        "{}",
        run.stdout
    );
    // The default file is found through XDG_CONFIG_HOME.
    let xdg = dir.path().join("xdg");
    std::fs::create_dir_all(xdg.join("ferry")).unwrap();
    std::fs::copy(&cfg, xdg.join("ferry/ferry.toml")).unwrap();
    let run = ferry_with(
        &[
            "cp",
            &format!("oci:{}:v1", src.display()),
            &format!("oci:{}:v1", dir.path().join("c").display()),
        ],
        &[("XDG_CONFIG_HOME", xdg.to_str().unwrap())],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        !run.stdout.contains("Mounted"),
        "the default file's mount = none applies: {}",
        run.stdout
    );
}

fn push_image(reg: &Registry, repo: &str, seed: u64) -> ferry_test_support::Image {
    let dir = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new()
        .layers(&[20_000, 300_000])
        .seed(seed)
        .build();
    write_oci_layout(dir.path(), &[(Some("v1"), &image as &dyn Content)]).unwrap();
    let run = ferry(&[
        "cp",
        "--plain-http",
        &format!("oci:{}:v1", dir.path().display()),
        &format!("{}/{repo}:v1", reg.addr()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    image
}

/// Upload requests (`POST`, `PATCH`, `PUT` under `/blobs/uploads`) since `mark`.
fn uploads_since(reg: &Registry, mark: usize) -> usize {
    reg.requests_since(mark)
        .iter()
        .filter(|q| {
            matches!(q.method.as_str(), "POST" | "PATCH" | "PUT")
                && q.path.contains("/blobs/uploads")
        })
        .count()
}

fn skopeo_copy_verifies(reference: &str) {
    let out = tempfile::tempdir().unwrap();
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--preserve-digests",
        "--dest-oci-accept-uncompressed-layers",
        reference,
        &format!("oci:{}:x", out.path().display()),
    ])
    .unwrap();
}

/// The modes of `path` and of every directory above it up to `root`, `root` included.
fn modes_below(root: &Path, path: &Path) -> Vec<u32> {
    use std::os::unix::fs::PermissionsExt;
    path.ancestors()
        .take_while(|p| p.starts_with(root))
        .map(|p| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777)
        .collect()
}

/// The path of a blob's data, and of its layer link in `repo`, under a distribution root.
fn blob_paths(root: &Path, repo: &str, digest: &ferry_core::Digest) -> [std::path::PathBuf; 2] {
    let hex = digest.digest();
    let v2 = root.join("docker/registry/v2");
    [
        v2.join("blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data"),
        v2.join("repositories")
            .join(repo)
            .join("_layers/sha256")
            .join(hex)
            .join("link"),
    ]
}

/// The first copy into a registry that has never stored anything: its root does not exist
/// yet (distribution creates it on its first write), and ferry creates what it needs there
/// as distribution would, with the same modes.
#[test]
fn registries_on_one_filesystem_mount_every_blob_through_storage() {
    let dir = tempfile::tempdir().unwrap();
    let (root_a, root_b) = (dir.path().join("a"), dir.path().join("b"));
    let a = Registry::builder()
        .root(&root_a)
        .create_root(false)
        .start()
        .unwrap();
    let b = Registry::builder()
        .root(&root_b)
        .create_root(false)
        .start()
        .unwrap();
    let image = push_image(&a, "x", 31);
    assert!(!root_b.exists(), "B has never stored anything");
    let cfg = write_config(
        dir.path(),
        &format!(
            "[defaults]\nplain_http = true\n\
             [registries.\"{}\"]\nstorage = \"file://{}\"\n\
             [registries.\"{}\"]\nstorage = \"file://{}\"\n",
            a.addr(),
            root_a.display(),
            b.addr(),
            root_b.display()
        ),
    );
    let mark = b.mark();
    let run = ferry(&[
        "cp",
        "--config",
        &cfg,
        &format!("{}/x:v1", a.addr()),
        &format!("{}/y:v1", b.addr()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mounted: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("Mounted "))
        .collect();
    assert_eq!(mounted.len(), 3, "config and two layers: {}", run.stdout);
    assert!(
        mounted
            .iter()
            .all(|l| l.ends_with("(distribution-storage)")),
        "{}",
        run.stdout
    );
    assert_eq!(uploads_since(&b, mark), 0, "no blob upload reached B");
    skopeo_copy_verifies(&format!("docker://{}/y:v1", b.addr()));
    // What ferry created under B's root has the modes distribution gave the same paths
    // under A's (both processes run with this process's umask).
    for blob in image.all().into_iter().filter(|b| !b.is_manifest()) {
        let digest = blob.descriptor.digest();
        for (in_a, in_b) in blob_paths(&root_a, "x", digest)
            .into_iter()
            .zip(blob_paths(&root_b, "y", digest))
        {
            assert_eq!(
                modes_below(&root_a, &in_a),
                modes_below(&root_b, &in_b),
                "modes of `{}` and the directories above it, as distribution made `{}`",
                in_b.display(),
                in_a.display()
            );
        }
    }
}

#[test]
fn registries_on_one_s3_bucket_mount_every_blob_by_server_side_copy() {
    let seaweed = ferry_test_support::SeaweedFs::start().unwrap();
    seaweed.create_bucket("shared").unwrap();
    let a = Registry::builder()
        .s3(seaweed.storage("shared", "/tenant-a").unwrap())
        .start()
        .unwrap();
    let b = Registry::builder()
        .s3(seaweed.storage("shared", "/tenant-b").unwrap())
        .start()
        .unwrap();
    push_image(&a, "x", 32);
    assert_eq!(
        seaweed.keys("shared", "tenant-b/").unwrap(),
        Vec::<String>::new(),
        "B has never stored anything"
    );
    let dir = tempfile::tempdir().unwrap();
    let s3 = |prefix: &str| {
        format!(
            "storage = \"s3://shared/{prefix}\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\n\
             access_key_id = \"any\"\nsecret_access_key = \"any\"\nallow_http = true\n",
            seaweed.s3_url()
        )
    };
    let cfg = write_config(
        dir.path(),
        &format!(
            "[defaults]\nplain_http = true\n[registries.\"{}\"]\n{}[registries.\"{}\"]\n{}",
            a.addr(),
            s3("tenant-a"),
            b.addr(),
            s3("tenant-b")
        ),
    );
    let mark = b.mark();
    let run = ferry(&[
        "cp",
        "--config",
        &cfg,
        &format!("{}/x:v1", a.addr()),
        &format!("{}/y:v1", b.addr()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.matches("(distribution-storage)").count(),
        3,
        "{}",
        run.stdout
    );
    assert_eq!(uploads_since(&b, mark), 0, "no blob upload reached B");
    skopeo_copy_verifies(&format!("docker://{}/y:v1", b.addr()));
}

#[test]
fn misconfigured_storage_is_reported_and_the_copy_streams() {
    let dir = tempfile::tempdir().unwrap();
    let a = Registry::builder()
        .root(dir.path().join("a"))
        .start()
        .unwrap();
    let b = Registry::start().unwrap();
    let c = Registry::start().unwrap();
    push_image(&a, "x", 33);
    let dead = format!("http://127.0.0.1:{}", ferry_test_support::free_port());
    let cfg = write_config(
        dir.path(),
        &format!(
            "[defaults]\nplain_http = true\n\
             [registries.\"{}\"]\nstorage = \"file://{}\"\n\
             [registries.\"{}\"]\nstorage = \"s3://nowhere/b\"\nendpoint = \"{dead}\"\nregion = \"us-east-1\"\n\
             access_key_id = \"k\"\nsecret_access_key = \"s\"\nallow_http = true\nmax_retries = 0\nconnect_timeout = \"1s\"\n",
            a.addr(),
            dir.path().join("a").display(),
            b.addr()
        ),
    );
    // B's storage is unreachable: declined with the reason, then streamed.
    let run = ferry(&[
        "cp",
        "--config",
        &cfg,
        "--format",
        "json",
        &format!("{}/x:v1", a.addr()),
        &format!("{}/y:v1", b.addr()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let blobs: Vec<&serde_json::Value> = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["descriptor"]["mediaType"] != ferry_core::model::OCI_MANIFEST)
        .collect();
    assert_eq!(blobs.len(), 3);
    for n in &blobs {
        assert_eq!(n["action"], "copied", "{n}");
        let attempt = n["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["strategy"] == "distribution-storage")
            .unwrap();
        assert_ne!(attempt["outcome"], "mounted");
        assert!(
            !attempt["detail"].as_str().unwrap().is_empty(),
            "a reason is given: {attempt}"
        );
    }
    // C has no configured root: not applicable, naming the registry, then streamed.
    let run = ferry(&[
        "cp",
        "--config",
        &cfg,
        "--format",
        "json",
        &format!("{}/x:v1", a.addr()),
        &format!("{}/y:v1", c.addr()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(c.addr()),
        "the reason names the registry without a root: {}",
        run.stdout
    );
}
