//! Fixtures: valid images, indexes and referrers that real tools accept.

use std::io::Read as _;

use ferry_core::model::{OCI_INDEX, OCI_MANIFEST};
use ferry_core::{Manifest, MemoryStore, ReadStore as _};
use ferry_test_support::fixtures::{OCI_LAYER, SIGNATURE_ARTIFACT_TYPE, push, write_oci_layout};
use ferry_test_support::{
    ArtifactBuilder, Content, ImageBuilder, IndexBuilder, Registry, skopeo, tempdir,
};

#[test]
fn image_layers_are_tars_and_config_lists_their_diff_ids() {
    let image = ImageBuilder::new().layers(&[1000, 5000]).seed(3).build();
    assert_eq!(image.layers.len(), 2);
    let config: serde_json::Value = serde_json::from_slice(&image.config.bytes).unwrap();
    let diff_ids: Vec<String> = image
        .layers
        .iter()
        .map(|l| l.digest().to_string())
        .collect();
    assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!(diff_ids));
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");

    for (layer, size) in image.layers.iter().zip([1000u64, 5000]) {
        assert_eq!(layer.media_type(), OCI_LAYER);
        let mut archive = tar::Archive::new(&layer.bytes[..]);
        let mut entries = archive.entries().unwrap();
        let mut entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.header().size().unwrap(), size);
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        assert_eq!(content.len() as u64, size);
        assert!(entries.next().is_none(), "one entry per layer");
    }

    let manifest = Manifest::parse(image.descriptor(), image.manifest.bytes.clone()).unwrap();
    assert_eq!(manifest.config.as_ref(), Some(&image.config.descriptor));
    assert_eq!(
        manifest.layers,
        vec![
            image.layers[0].descriptor.clone(),
            image.layers[1].descriptor.clone()
        ]
    );
}

#[test]
fn seeds_make_images_reproducible_and_distinct() {
    let a = ImageBuilder::new().layer(100).seed(1).build();
    let b = ImageBuilder::new().layer(100).seed(1).build();
    let c = ImageBuilder::new().layer(100).seed(2).build();
    assert_eq!(a.manifest.bytes, b.manifest.bytes);
    assert_ne!(a.layers[0].digest(), c.layers[0].digest());
    assert_ne!(a.config.digest(), c.config.digest());
}

#[test]
fn index_lists_platforms_and_artifact_points_at_subject() {
    let index = IndexBuilder::new()
        .platforms(&["linux/amd64", "linux/arm64/v8"], &[64], 9)
        .build();
    assert_eq!(index.index.media_type(), OCI_INDEX);
    let json: serde_json::Value = serde_json::from_slice(&index.index.bytes).unwrap();
    assert_eq!(
        json["manifests"][1]["platform"],
        serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"})
    );
    let parsed = Manifest::parse(index.descriptor(), index.index.bytes.clone()).unwrap();
    assert_eq!(parsed.manifests.len(), 2);
    assert_eq!(
        parsed.manifests[0].digest(),
        index.images[0].manifest.digest()
    );
    assert_ne!(
        index.images[0].layers[0].digest(),
        index.images[1].layers[0].digest()
    );
    assert_eq!(index.all().last().unwrap().digest(), index.index.digest());

    let signature = ArtifactBuilder::signature(index.descriptor(), b"signed!").build();
    let parsed = Manifest::parse(signature.descriptor(), signature.manifest.bytes.clone()).unwrap();
    assert_eq!(
        parsed.subject.as_ref().unwrap().digest(),
        index.index.digest()
    );
    assert_eq!(
        parsed.artifact_type.as_deref(),
        Some(SIGNATURE_ARTIFACT_TYPE)
    );
    assert_eq!(signature.manifest.media_type(), OCI_MANIFEST);
}

#[tokio::test]
async fn memory_store_holds_inserted_content_and_its_referrers() {
    let image = ImageBuilder::new().layer(10).build();
    let signature = ArtifactBuilder::signature(image.descriptor(), b"sig").build();
    let store = MemoryStore::new("fixtures");
    image.insert_into(&store, Some("v1"));
    signature.insert_into(&store, None);
    assert_eq!(
        store.resolve("v1").await.unwrap().digest(),
        image.manifest.digest()
    );
    let referrers = store.referrers(image.descriptor()).await.unwrap();
    assert_eq!(referrers.len(), 1);
    assert_eq!(referrers[0].digest(), signature.manifest.digest());
}

#[tokio::test]
async fn pushed_image_reads_back_through_skopeo() {
    let registry = Registry::start().unwrap();
    let image = ImageBuilder::new().layers(&[2048, 10]).seed(5).build();
    push(&registry.url(), "fixtures/app", &image, Some("v1"), None)
        .await
        .unwrap();
    assert_eq!(registry.count("PUT", "/v2/fixtures/app/manifests/v1"), 1);
    assert_eq!(registry.count("PUT", "/v2/fixtures/app/blobs/uploads/"), 3);

    let source = format!("docker://{}/fixtures/app:v1", registry.addr());
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &source]).unwrap();
    assert_eq!(
        raw.stdout,
        image.manifest.bytes.to_vec(),
        "the registry keeps the exact bytes"
    );

    let layout = tempdir();
    let dest = format!("oci:{}:copied", layout.path().display());
    skopeo(&[
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        &source,
        &dest,
    ])
    .unwrap();
    let copied = layout
        .path()
        .join("blobs/sha256")
        .join(image.layers[0].digest().digest());
    assert_eq!(
        std::fs::read(copied).unwrap(),
        image.layers[0].bytes.to_vec()
    );
}

#[tokio::test]
async fn written_layout_is_accepted_by_skopeo() {
    let registry = Registry::start().unwrap();
    let index = IndexBuilder::new()
        .platforms(&["linux/amd64", "linux/arm64"], &[300], 1)
        .build();
    let layout = tempdir();
    write_oci_layout(layout.path(), &[(Some("multi"), &index)]).unwrap();

    let source = format!("oci:{}:multi", layout.path().display());
    let dest = format!("docker://{}/fixtures/multi:latest", registry.addr());
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &source,
        &dest,
    ])
    .unwrap();
    assert_eq!(
        registry.count("PUT", "/v2/fixtures/multi/manifests/latest"),
        1
    );
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &dest]).unwrap();
    assert_eq!(raw.stdout, index.index.bytes.to_vec());
}
