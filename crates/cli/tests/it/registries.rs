//! `ferry cp` against the real CNCF distribution registry (docker-registry 2.8) on loopback.

use base64::Engine as _;
use ferry_test_support::fixtures::write_oci_layout;
use ferry_test_support::{
    ArtifactBuilder, Content, ImageBuilder, IndexBuilder, Registry, TokenIssuer, skopeo,
};

use crate::support::*;

fn layout_of(dir: &std::path::Path, tag: &str, content: &dyn Content) -> String {
    write_oci_layout(dir, &[(Some(tag), content)]).unwrap();
    format!("oci:{}:{tag}", dir.display())
}

/// The digest skopeo sees for `reference` (`docker://...`) on a plain-HTTP registry.
fn skopeo_digest(reference: &str, creds: Option<&str>) -> String {
    let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
    if let Some(c) = creds {
        args.extend(["--creds", c]);
    }
    args.push(reference);
    let out = skopeo(&args).unwrap();
    ferry_core::sha256(&out.stdout).to_string()
}

#[test]
fn promotion_inside_one_registry_mounts_every_blob_and_uploads_nothing() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new()
        .layers(&[3000, 5000, 7000])
        .seed(11)
        .build();
    let src_layout = layout_of(&dir.path().join("l"), "v1", &image);
    let r = reg.addr();
    let run = ferry(&[
        "cp",
        "--plain-http",
        &src_layout,
        &format!("{r}/team/app:rc1"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    let mark = reg.mark();
    let run = ferry(&[
        "cp",
        "--plain-http",
        &format!("{r}/team/app:rc1"),
        &format!("{r}/prod/app:1.0"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mounted: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("Mounted "))
        .collect();
    assert_eq!(mounted.len(), 4, "config and 3 layers: {}", run.stdout);
    assert!(
        mounted
            .iter()
            .all(|l| l.ends_with("from team/app (cross-repo)")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(&format!(
        "Copied [registry] {r}/team/app:rc1 => [registry] {r}/prod/app:1.0"
    )));

    let seen = reg.requests_since(mark);
    let uploads = seen
        .iter()
        .filter(|q| (q.method == "PATCH" || q.method == "PUT") && q.path.contains("/blobs/uploads"))
        .count();
    assert_eq!(uploads, 0, "no blob upload: {seen:#?}");
    let n = 4;
    assert!(
        seen.len() <= n + 4,
        "at most N+4 requests, saw {}: {seen:#?}",
        seen.len()
    );
    assert_eq!(
        skopeo_digest(&format!("docker://{r}/prod/app:1.0"), None),
        image.manifest.digest().to_string()
    );
}

#[test]
fn layout_to_registry_to_layout_keeps_every_digest() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new()
        .layers(&[100_000, 2_000_000])
        .seed(12)
        .build();
    let src = layout_of(&dir.path().join("in"), "v1", &image);
    let r = reg.addr();
    assert_eq!(
        ferry(&["cp", "--plain-http", &src, &format!("{r}/x/app:v1")]).code,
        0
    );
    assert_eq!(
        skopeo_digest(&format!("docker://{r}/x/app:v1"), None),
        image.manifest.digest().to_string()
    );
    let out = dir.path().join("out");
    let run = ferry(&[
        "cp",
        "--plain-http",
        "--mount",
        "none",
        &format!("{r}/x/app:v1"),
        &format!("oci:{}", out.display()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(tags(&out), ["v1"], "the source tag is kept");
    let raw = skopeo(&["inspect", "--raw", &format!("oci:{}:v1", out.display())]).unwrap();
    assert_eq!(ferry_core::sha256(&raw.stdout), *image.manifest.digest());
    for blob in image.all() {
        assert!(
            out.join("blobs/sha256")
                .join(blob.digest().digest())
                .exists()
        );
    }
}

#[test]
fn copy_between_two_registries_streams_and_keeps_digests() {
    let (a, b) = (Registry::start().unwrap(), Registry::start().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new()
        .layers(&[10_000, 20_000])
        .seed(13)
        .build();
    let src = layout_of(&dir.path().join("in"), "v1", &image);
    assert_eq!(
        ferry(&["cp", "--plain-http", &src, &format!("{}/app:v1", a.addr())]).code,
        0
    );
    let run = ferry(&[
        "cp",
        "--plain-http",
        &format!("{}/app:v1", a.addr()),
        &format!("{}/mirror/app:v1", b.addr()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.starts_with("Copied  "))
            .count(),
        4,
        "{}",
        run.stdout
    );
    assert_eq!(
        skopeo_digest(&format!("docker://{}/mirror/app:v1", b.addr()), None),
        image.manifest.digest().to_string()
    );
}

#[test]
fn a_multi_arch_index_goes_whole_or_by_platform() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let index = IndexBuilder::new()
        .platforms(&["linux/amd64", "linux/arm64/v8"], &[4000], 14)
        .build();
    let src = layout_of(&dir.path().join("in"), "multi", &index);
    let r = reg.addr();
    assert_eq!(
        ferry(&["cp", "--plain-http", &src, &format!("{r}/multi:all")]).code,
        0
    );
    assert_eq!(
        skopeo_digest(&format!("docker://{r}/multi:all"), None),
        index.index.digest().to_string()
    );
    for image in &index.images {
        assert_eq!(
            skopeo_digest(
                &format!("docker://{r}/multi@{}", image.manifest.digest()),
                None
            ),
            image.manifest.digest().to_string(),
            "every platform's manifest is in the registry"
        );
    }
    let run = ferry(&[
        "cp",
        "--plain-http",
        "--platform",
        "linux/arm64",
        &src,
        &format!("{r}/arm:only"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let arm = &index.images[1];
    assert_eq!(
        skopeo_digest(&format!("docker://{r}/arm:only"), None),
        arm.manifest.digest().to_string()
    );
    let other = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{r}/arm@{}", index.images[0].manifest.digest()),
    ]);
    assert!(other.is_err(), "the other platform is not copied");
}

/// An index of indexes in a registry: `--platform` finds a manifest two levels down, and a
/// platform that is nowhere is refused with every platform that was found.
#[test]
fn platform_is_found_through_an_index_of_indexes_in_a_registry() {
    let reg = Registry::start().unwrap();
    let r = reg.addr();
    let dir = tempfile::tempdir().unwrap();
    let index = nested_index(21);
    let src = layout_of(&dir.path().join("in"), "nested", &index);
    let run = ferry(&["cp", "--plain-http", &src, &format!("{r}/nested:all")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let arm_v7 = &index.indexes[1].indexes[0].images[0];

    let run = ferry(&[
        "cp",
        "--plain-http",
        "--platform",
        "linux/arm/v7",
        &format!("{r}/nested:all"),
        &format!("{r}/arm:v7"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .ends_with(&format!("Digest: {}\n", arm_v7.manifest.digest())),
        "{}",
        run.stdout
    );
    assert_eq!(
        skopeo_digest(&format!("docker://{r}/arm:v7"), None),
        arm_v7.manifest.digest().to_string()
    );

    let run = ferry(&[
        "cp",
        "--plain-http",
        "--platform",
        "linux/riscv64",
        &format!("{r}/nested:all"),
        &format!("{r}/riscv:v1"),
    ]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("linux/amd64, linux/arm64, linux/ppc64le, linux/arm/v7"),
        "every platform found is listed: {}",
        run.stderr
    );
}

#[test]
fn referrers_travel_with_recursive() {
    let (a, b) = (Registry::start().unwrap(), Registry::start().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new().layers(&[1000]).seed(15).build();
    let sig = ArtifactBuilder::signature(image.descriptor(), b"signed by the test").build();
    let layout = dir.path().join("in");
    write_oci_layout(&layout, &[(Some("v1"), &image), (None, &sig)]).unwrap();
    let src = format!("oci:{}:v1", layout.display());
    // Into registry A with its referrers (registry 2.8 has no referrers API: tag-schema fallback).
    let run = ferry(&[
        "cp",
        "-r",
        "--plain-http",
        &src,
        &format!("{}/app:v1", a.addr()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let fallback = format!("sha256-{}", image.manifest.digest().digest());
    assert!(
        skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/app:{fallback}", a.addr())
        ])
        .is_ok()
    );

    // Without -r the signature stays behind.
    assert_eq!(
        ferry(&[
            "cp",
            "--plain-http",
            &format!("{}/app:v1", a.addr()),
            &format!("{}/plain:v1", b.addr())
        ])
        .code,
        0
    );
    assert!(
        skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/plain@{}", b.addr(), sig.manifest.digest())
        ])
        .is_err()
    );

    // With -r it follows, found through the fallback tag of A and recorded in B's.
    let run = ferry(&[
        "cp",
        "-r",
        "--plain-http",
        &format!("{}/app:v1", a.addr()),
        &format!("{}/app:v1", b.addr()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        skopeo_digest(
            &format!("docker://{}/app@{}", b.addr(), sig.manifest.digest()),
            None
        ),
        sig.manifest.digest().to_string()
    );
    assert!(
        skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/app:{fallback}", b.addr())
        ])
        .is_ok()
    );
}

#[test]
fn basic_auth_with_credentials_from_docker_config_and_flags() {
    let reg = Registry::builder().user("alice", "s3cret").start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new().layers(&[1000]).seed(16).build();
    let src = layout_of(&dir.path().join("in"), "v1", &image);
    let r = reg.addr();

    // No credentials: refused with exit code 4 and a message that says what to do.
    let run = ferry(&["cp", "--plain-http", &src, &format!("{r}/app:v1")]);
    assert_eq!(run.code, 4, "{}", run.stderr);

    // docker config.json.
    let docker = dir.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths": {{"{r}": {{"auth": "{auth}"}}}}}}"#),
    )
    .unwrap();
    let env = [("DOCKER_CONFIG", docker.to_str().unwrap())];
    let run = ferry_with(
        &["cp", "--plain-http", &src, &format!("{r}/app:v1")],
        &env,
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        !run.stderr.contains("s3cret"),
        "secrets never reach the output"
    );

    // Flags, with the password on stdin.
    let run = ferry_with(
        &[
            "cp",
            "--plain-http",
            "--to-username",
            "alice",
            "--password-stdin",
            &src,
            &format!("{r}/app:v2"),
        ],
        &[],
        Some("s3cret\n"),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        skopeo_digest(&format!("docker://{r}/app:v2"), Some("alice:s3cret")),
        image.manifest.digest().to_string()
    );

    // Wrong password: a clear error, exit code 4, nothing tagged.
    let run = ferry(&[
        "cp",
        "--plain-http",
        "--to-username",
        "alice",
        "--to-password",
        "wrong",
        &src,
        &format!("{r}/app:v3"),
    ]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("authentication"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("wrong"),
        "the password is not echoed: {}",
        run.stderr
    );
    assert!(
        skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            "alice:s3cret",
            &format!("docker://{r}/app:v3")
        ])
        .is_err()
    );
}

#[test]
fn token_auth_streams_when_the_mount_source_may_not_be_read() {
    let issuer = TokenIssuer::builder()
        .user("admin", "adminpw")
        .allow("admin", "*", &["pull", "push"])
        .user("bob", "bobpw")
        .allow("bob", "dst/app", &["pull", "push"])
        .start()
        .unwrap();
    let reg = Registry::builder().token_auth(&issuer).start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new().layers(&[2000, 3000]).seed(17).build();
    let src = layout_of(&dir.path().join("in"), "v1", &image);
    let r = reg.addr();
    let admin = ["--to-username", "admin", "--to-password", "adminpw"];
    let mut args = vec!["cp", "--plain-http"];
    args.extend(admin);
    let target = format!("{r}/private/app:v1");
    args.extend([src.as_str(), target.as_str()]);
    let run = ferry(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);

    // bob may push dst/app but may not read private/app: the mounts are refused, the copy streams.
    let dst = format!("{r}/dst/app:v1");
    let run = ferry(&[
        "cp",
        "--plain-http",
        "--to-username",
        "bob",
        "--to-password",
        "bobpw",
        "--mount-from",
        "private/app",
        &src,
        &dst,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.starts_with("Copied  "))
            .count(),
        4,
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.starts_with("Mounted "))
            .count(),
        0,
        "{}",
        run.stdout
    );

    // Wrong password with token auth: exit code 4, nothing tagged.
    let run = ferry(&[
        "cp",
        "--plain-http",
        "--to-username",
        "bob",
        "--to-password",
        "nope",
        &src,
        &format!("{r}/dst/app:v2"),
    ]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            "admin:adminpw",
            &format!("docker://{r}/dst/app:v2")
        ])
        .is_err()
    );
}

#[test]
fn https_registries_need_trust_or_insecure_and_speak_http2() {
    let reg = Registry::builder().tls(true).start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new().layers(&[5000]).seed(18).build();
    let src = layout_of(&dir.path().join("in"), "v1", &image);
    let r = reg.addr();

    // A self-signed certificate is refused unless the user says otherwise.
    let run = ferry(&["cp", &src, &format!("{r}/app:v1")]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.to_lowercase().contains("certificate"),
        "{}",
        run.stderr
    );

    let run = ferry(&["cp", "--to-insecure", &src, &format!("{r}/app:v1")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = ferry(&[
        "cp",
        "--insecure",
        "--mount",
        "none",
        &format!("{r}/app:v1"),
        &format!("{r}/copy:v1"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        skopeo_digest(&format!("docker://{r}/copy:v1"), None),
        image.manifest.digest().to_string()
    );

    // ALPN picked HTTP/2.
    let log = std::fs::read_to_string(reg.access_log_path()).unwrap();
    assert!(log.contains("HTTP/2.0"), "requests were not HTTP/2: {log}");
}

#[test]
fn copies_into_and_out_of_a_registry_on_object_storage() {
    // distribution on S3-compatible storage (SeaweedFS) finishes uploads through the S3
    // multipart API, which is where clients meet object-store quirks.
    let seaweed = ferry_test_support::s3::SeaweedFs::start().unwrap();
    seaweed.create_bucket("registry").unwrap();
    let reg = Registry::builder()
        .s3(seaweed.storage("registry", "/one").unwrap())
        .start()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new()
        .layers(&[50_000, 300_000])
        .seed(19)
        .build();
    let src = layout_of(&dir.path().join("in"), "v1", &image);
    let r = reg.addr();
    let run = ferry(&["cp", "--plain-http", &src, &format!("{r}/app:v1")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        skopeo_digest(&format!("docker://{r}/app:v1"), None),
        image.manifest.digest().to_string()
    );
    let out = dir.path().join("out");
    let run = ferry(&[
        "cp",
        "--plain-http",
        &format!("{r}/app:v1"),
        &format!("oci:{}:v1", out.display()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for blob in image.all() {
        assert!(
            out.join("blobs/sha256")
                .join(blob.digest().digest())
                .exists()
        );
    }
}

/// An anonymous mount (no `from`) lets a registry that finds the blob anywhere mount it. The
/// fake registry stands in for such a registry: distribution 2.8 ignores a mount without
/// `from`.
#[test]
fn anonymous_mount_is_tried_last_when_asked_for() {
    let fake = ferry_test_support::FakeRegistry::start().unwrap();
    let image = ImageBuilder::new().layers(&[2000, 3000]).seed(41).build();
    fake.put_content("elsewhere/app", &image, Some("v1"));
    let dir = tempfile::tempdir().unwrap();
    let src = layout_of(&dir.path().join("in"), "v1", &image);

    let run = ferry(&[
        "cp",
        "--plain-http",
        "--anonymous-mount",
        &src,
        &format!("{}/dst/app:v1", fake.addr()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.starts_with("Mounted "))
            .count(),
        3,
        "{}",
        run.stdout
    );
    let anonymous = fake
        .requests()
        .iter()
        .filter(|r| {
            r.method == "POST"
                && r.query_param("mount").is_some()
                && r.query_param("from").is_none()
        })
        .count();
    assert_eq!(anonymous, 3, "one mount without `from` per blob");

    // Without the flag no such request is sent (a new repository's uploads start as mounts
    // from itself, never without `from`) and the blobs are streamed.
    fake.reset_counts();
    let run = ferry(&[
        "cp",
        "--plain-http",
        &src,
        &format!("{}/plain/app:v1", fake.addr()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains("Mounted "), "{}", run.stdout);
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.query_param("mount").is_none() || r.query_param("from").is_some()),
        "{:#?}",
        fake.requests()
    );
    assert_eq!(fake.count("PUT", "/plain/app/blobs/uploads/"), 3);
}

/// A layer whose bytes do not match its digest, pushed to the real registry: by default ferry
/// only counts the bytes and the registry, which hashes what it commits, refuses them
/// (`DIGEST_INVALID`); with `--verify-uploads` ferry finds the mismatch itself and never
/// completes the upload. Either way the copy fails with exit 5 naming the digest, and neither
/// the layer nor the manifest is in the repository.
#[test]
fn a_corrupt_blob_is_refused_by_the_registry_or_by_ferry_and_nothing_is_tagged() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new()
        .layers(&[40_000, 300_000])
        .seed(21)
        .build();
    let src_dir = dir.path().join("in");
    let src = layout_of(&src_dir, "v1", &image);
    let layer = image.layers[1].clone();
    let layer_path = src_dir.join("blobs/sha256").join(layer.digest().digest());
    let mut bytes = std::fs::read(&layer_path).unwrap();
    bytes[123_456] ^= 0x01;
    std::fs::write(&layer_path, bytes).unwrap();
    let r = reg.addr();

    // The same for this registry only, from the operator configuration.
    let config = dir.path().join("ferry.toml");
    std::fs::write(
        &config,
        format!("[registries.\"{r}\"]\nverify_uploads = true\n"),
    )
    .unwrap();
    let config = config.display().to_string();
    for (repo, extra, by_ferry) in [
        ("by-registry", vec![], false),
        ("by-ferry", vec!["--verify-uploads"], true),
        ("by-ferry-config", vec!["--config", config.as_str()], true),
    ] {
        let mark = reg.mark();
        let mut args = vec!["cp", "--plain-http"];
        args.extend(extra);
        let dst = format!("{r}/{repo}/app:v1");
        args.extend([src.as_str(), dst.as_str()]);
        let run = ferry(&args);
        assert_eq!(run.code, 5, "{repo}: {}", run.stderr);
        assert!(
            run.stderr.contains(&layer.digest().to_string())
                && run.stderr.contains("does not match its digest"),
            "{repo}: the error names the blob: {}",
            run.stderr
        );
        let seen = reg.requests_since(mark);
        let refused = seen
            .iter()
            .filter(|q| q.method == "PUT" && q.path.contains("/blobs/uploads/") && q.status == 400)
            .count();
        let layer_commits = seen
            .iter()
            .filter(|q| {
                q.method == "PUT"
                    && q.query_param("digest").as_deref() == Some(layer.digest().as_ref())
                    && q.status == 201
            })
            .count();
        assert_eq!(layer_commits, 0, "{repo}: {seen:#?}");
        if !by_ferry {
            assert!(refused >= 1, "the registry refused the bytes: {seen:#?}");
        } else {
            assert_eq!(refused, 0, "ferry never completed the upload: {seen:#?}");
        }
        assert_eq!(
            reg.count("PUT", &format!("/v2/{repo}/app/manifests/")),
            0,
            "{repo}: no manifest without its layers"
        );
        let head = rt()
            .block_on(ferry_test_support::http(
                "HEAD",
                &format!("http://{r}/v2/{repo}/app/blobs/{}", layer.digest()),
                &[],
                Vec::new(),
            ))
            .unwrap();
        assert_eq!(
            head.status, 404,
            "{repo}: the layer is not in the repository"
        );
    }
}
