//! Interoperability with real tools: skopeo and umoci read what ferry writes, and ferry reads
//! and copies what they write, with identical digests.

use std::path::Path;

use ferry_core::{Action, ReadStore, copy};
use ferry_fs_store::OciLayout;

use crate::support::{Image, layout, read_all, run, tempdir};

fn oci(path: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", path.display())
}

fn image_ref(path: &Path, tag: &str) -> String {
    format!("{}:{tag}", path.display())
}

/// skopeo's view of an image's manifest digest.
fn skopeo_digest(path: &Path, tag: &str) -> String {
    let out = run("skopeo", &["inspect", &oci(path, tag)]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("skopeo inspect JSON");
    json["Digest"].as_str().expect("Digest").to_string()
}

#[tokio::test]
async fn layouts_written_by_ferry_are_read_by_skopeo_and_umoci() {
    let dir = tempdir();
    let store = layout(dir.path(), "ferry");
    let image = Image::build("interop");
    image.push(store.as_ref(), "v1").await;
    let digest = image.manifest.digest().to_string();

    assert_eq!(skopeo_digest(store.path(), "v1"), digest);

    let other = dir.path().join("skopeo-copy");
    run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--preserve-digests",
            &oci(store.path(), "v1"),
            &oci(&other, "v1"),
        ],
    );
    assert_eq!(skopeo_digest(&other, "v1"), digest);
    let copied = OciLayout::open(&other).unwrap();
    assert_eq!(
        copied.resolve("v1").await.unwrap().digest().to_string(),
        digest
    );

    let stat = run(
        "umoci",
        &["stat", "--json", "--image", &image_ref(store.path(), "v1")],
    );
    assert!(stat.contains("ferry test interop"), "umoci stat: {stat}");
    // umoci unpacks the layers, checking them against the config's diff_ids.
    let bundle = dir.path().join("bundle");
    run(
        "umoci",
        &[
            "unpack",
            "--image",
            &image_ref(store.path(), "v1"),
            &bundle.to_string_lossy(),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/hello.txt")).unwrap(),
        "hello interop\n"
    );
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/etc/motd")).unwrap(),
        "ferry interop\n"
    );
}

/// Copies `tag` from `src` into a new layout with ferry and checks every digest and byte.
async fn ferry_copies(src_path: &Path, tag: &str, dst_path: &Path) {
    let src = std::sync::Arc::new(OciLayout::open(src_path).expect("open the tool's layout"));
    let dst = std::sync::Arc::new(OciLayout::create(dst_path).unwrap());
    let root = src.resolve(tag).await.expect("resolve the tool's tag");
    let report = copy(
        src.clone(),
        tag,
        dst.clone(),
        Some(tag),
        &Default::default(),
    )
    .await
    .expect("copy the tool's image");
    assert_eq!(report.root.digest(), root.digest());
    assert!(report.count(Action::Copied) >= 2, "{:?}", report.nodes);
    for node in &report.nodes {
        assert_eq!(
            read_all(dst.as_ref(), &node.descriptor).await,
            read_all(src.as_ref(), &node.descriptor).await
        );
    }
    assert_eq!(dst.resolve(tag).await.unwrap().digest(), root.digest());
    // And the tools read the copy, with the same digest.
    assert_eq!(skopeo_digest(dst_path, tag), root.digest().to_string());
    run("umoci", &["stat", "--image", &image_ref(dst_path, tag)]);
}

#[tokio::test]
async fn layouts_written_by_skopeo_are_read_and_copied_by_ferry() {
    let dir = tempdir();
    let store = layout(dir.path(), "ferry");
    let image = Image::build("from-skopeo");
    image.push(store.as_ref(), "t").await;
    let by_skopeo = dir.path().join("by-skopeo");
    run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--preserve-digests",
            "--dest-oci-accept-uncompressed-layers",
            &oci(store.path(), "t"),
            &oci(&by_skopeo, "t"),
        ],
    );
    let written = OciLayout::open(&by_skopeo).unwrap();
    assert_eq!(
        written.resolve("t").await.unwrap().digest(),
        image.manifest.digest()
    );
    ferry_copies(&by_skopeo, "t", &dir.path().join("copy")).await;
}

#[tokio::test]
async fn layouts_written_by_umoci_are_read_and_copied_by_ferry() {
    let dir = tempdir();
    let by_umoci = dir.path().join("by-umoci");
    run("umoci", &["init", "--layout", &by_umoci.to_string_lossy()]);
    run("umoci", &["new", "--image", &image_ref(&by_umoci, "t")]);
    run(
        "umoci",
        &[
            "config",
            "--image",
            &image_ref(&by_umoci, "t"),
            "--config.cmd",
            "/bin/true",
        ],
    );
    let written = OciLayout::open(&by_umoci).unwrap();
    let root = written.resolve("t").await.unwrap();
    assert_eq!(skopeo_digest(&by_umoci, "t"), root.digest().to_string());
    ferry_copies(&by_umoci, "t", &dir.path().join("copy")).await;
}
