//! `ferry cp --ipfs-gateway` against a real IPFS node (Helia behind a trustless gateway).

use bytes::Bytes;
use ferry_core::model::OCI_MANIFEST;
use ferry_test_support::fixtures::{Blob, tar_layer, write_oci_layout};
use ferry_test_support::helia::Helia;
use ferry_test_support::{Content, ImageBuilder};

use crate::support::*;

fn rt_block<F: std::future::Future>(f: F) -> F::Output {
    rt().block_on(f)
}

/// The README's walk-through: blobs added to IPFS as raw blocks are mounted from IPFS by the
/// raw CIDs of their digests.
#[test]
fn blobs_in_ipfs_are_mounted_from_the_gateway() {
    let helia = Helia::start();
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/hello");
    rt_block(async {
        for entry in std::fs::read_dir(sample.join("blobs/sha256")).unwrap() {
            helia
                .add_raw(&std::fs::read(entry.unwrap().path()).unwrap())
                .await;
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("copy");
    let run = ferry(&[
        "cp",
        "--mount",
        "ipfs",
        "--ipfs-gateway",
        helia.url(),
        &format!("oci:{}:v1", sample.display()),
        &format!("oci:{}:v1", dst.display()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mounted: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("Mounted "))
        .collect();
    assert_eq!(mounted.len(), 3, "{}", run.stdout);
    assert!(
        mounted
            .iter()
            .all(|l| l.contains(" from ipfs://bafkrei") && l.ends_with(" (ipfs)")),
        "{}",
        run.stdout
    );
    let raw =
        ferry_test_support::skopeo(&["inspect", "--raw", &format!("oci:{}:v1", dst.display())])
            .unwrap();
    assert_eq!(
        ferry_core::sha256(&raw.stdout).to_string(),
        "sha256:6aa0860f46ca413c555d3aaa722091f5f08ef444abc0e142d984e380086d4d80"
    );
}

/// nerdctl-style images: a layer named by `ipfs://CID` in its descriptor's `urls` that the
/// source layout does not hold at all comes from IPFS; the other strategies say why they could
/// not mount it.
#[test]
fn a_layer_only_in_ipfs_is_fetched_by_its_url_with_the_auto_chain() {
    let helia = Helia::start();
    let base = ImageBuilder::new().layers(&[1000]).seed(21).build();
    // A multi-block layer (256 KiB chunks) that lives only in IPFS.
    let content = ferry_test_support::fixtures::random_bytes(22, 700_000);
    let layer = Blob::new(
        "application/vnd.oci.image.layer.v1.tar",
        tar_layer("big.bin", &content),
    );
    let cid = rt_block(helia.add(&layer.bytes, 262_144));
    let mut layer_desc = serde_json::to_value(&layer.descriptor).unwrap();
    layer_desc["urls"] = serde_json::json!([format!("ipfs://{cid}")]);
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": base.config.descriptor, "layers": [base.layers[0].descriptor, layer_desc],
    });
    let manifest = Blob::new(OCI_MANIFEST, Bytes::from(manifest.to_string()));
    let image = ferry_test_support::Image {
        manifest,
        config: base.config.clone(),
        layers: vec![base.layers[0].clone(), layer.clone()],
    };
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_oci_layout(&src, &[(Some("v1"), &image as &dyn Content)]).unwrap();
    std::fs::remove_file(src.join("blobs/sha256").join(layer.digest().digest())).unwrap();

    let dst = dir.path().join("dst");
    let run = ferry(&[
        "cp",
        "--format",
        "json",
        "--ipfs-gateway",
        helia.url(),
        &format!("oci:{}:v1", src.display()),
        &format!("oci:{}:v1", dst.display()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let node = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["descriptor"]["digest"] == layer.digest().to_string())
        .unwrap();
    assert_eq!(node["action"], "mounted");
    assert_eq!(node["strategy"], "ipfs");
    assert_eq!(node["from"]["scheme"], "ipfs");
    assert_eq!(node["from"]["namespace"], cid.to_string());
    let attempts: Vec<&str> = node["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["strategy"].as_str().unwrap())
        .collect();
    assert_eq!(
        attempts,
        ["cross-repo", "shared-storage", "ipfs"],
        "every strategy was asked, in order"
    );
    assert_eq!(
        std::fs::read(dst.join("blobs/sha256").join(layer.digest().digest())).unwrap(),
        layer.bytes
    );

    // Without the gateway the copy cannot succeed: the source does not hold the layer.
    let run = ferry(&[
        "cp",
        &format!("oci:{}:v1", src.display()),
        &format!("oci:{}:v2", dir.path().join("d2").display()),
    ]);
    assert_eq!(run.code, 3, "{}", run.stderr);
}
