//! Regressions found by the `index_json` fuzz target (`fuzz/`): tagging must leave the tag
//! resolving to the tagged content whatever other tools left in `index.json`.

use ferry_core::model::OCI_MANIFEST;
use ferry_core::{Descriptor, Digest, ReadStore, WriteStore};
use ferry_fs_store::layout::IndexJson;
use serde_json::json;

use crate::support::{Image, layout, tempdir};

const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The fuzzer's reproducer, reduced: two entries carry `latest` for the same digest, and the
/// first is not a descriptor (its `mediaType` key is mangled). Tagging `latest` at the second
/// once kept the tag on the broken entry and removed it from the good one, so `latest`
/// resolved to nothing.
#[test]
fn retagging_does_not_keep_the_tag_on_an_entry_that_is_not_a_descriptor() {
    let digest = "sha256:30cd94e2bfee19ee9da57484441aa7c946c6e4750616fc260c52ef09172e8035";
    let bytes = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [
            {"medpeTaiy": OCI_MANIFEST, "digest": digest, "size": 192,
             "annotations": {REF_NAME: "latest"}},
            {"mediaType": OCI_MANIFEST, "digest": digest, "size": 192,
             "annotations": {REF_NAME: "latest"}},
        ],
    }))
    .unwrap();
    let index = IndexJson::parse(&bytes).unwrap();
    let descriptor = index
        .resolve_tag("latest")
        .expect("the second entry resolves");

    let mut tagged = index.clone();
    tagged.set_tag(&descriptor, "latest");
    let reread = IndexJson::parse(&tagged.to_vec()).unwrap();
    assert_eq!(reread.resolve_tag("latest"), Some(descriptor));
    assert_eq!(reread.tags().len(), 1, "{:?}", reread.tags());
}

/// The same through the store: an entry that names the manifest's digest with a wrong size
/// does not keep the tag; the tag resolves to the descriptor that was tagged.
#[tokio::test]
async fn a_tag_on_an_entry_with_the_wrong_size_moves_to_the_tagged_descriptor() {
    let dir = tempdir();
    let store = layout(dir.path(), "l");
    let image = Image::build("wrong-size");
    image.push(store.as_ref(), "v1").await;
    let index_path = store.path().join("index.json");
    let manifest = &image.manifest;
    std::fs::write(
        &index_path,
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": manifest.digest().to_string(),
                 "size": manifest.size() + 1, "annotations": {REF_NAME: "v1"}},
                {"mediaType": OCI_MANIFEST, "digest": manifest.digest().to_string(),
                 "annotations": {REF_NAME: "v2"}},
            ],
        }))
        .unwrap(),
    )
    .unwrap();

    store.tag(manifest, "v1").await.unwrap();
    store.tag(manifest, "v2").await.unwrap();
    for tag in ["v1", "v2"] {
        let resolved = store.resolve(tag).await.unwrap();
        assert_eq!(resolved.digest(), manifest.digest(), "{tag}");
        assert_eq!(resolved.size(), manifest.size(), "{tag}");
    }
    let tags = store.tags().await.unwrap();
    assert_eq!(tags.len(), 2, "{tags:?}");
}

/// What another tool wrote on the entry that already describes the content is kept when it is
/// tagged again (platform, other annotations).
#[test]
fn retagging_keeps_the_fields_of_the_entry_that_describes_the_content() {
    let digest = "sha256:9d9c2f804e0faa0c56d3c59d5f018052bfa61d356fe35edc93871861f413222c";
    let bytes = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": digest, "size": 192,
             "platform": {"architecture": "arm64", "os": "linux"},
             "annotations": {"com.example.note": "kept"}},
        ],
    }))
    .unwrap();
    let index = IndexJson::parse(&bytes).unwrap();
    let plain = Descriptor::new(OCI_MANIFEST.into(), 192, digest.parse::<Digest>().unwrap());
    let mut tagged = index.clone();
    tagged.set_tag(&plain, "arm");
    let resolved = tagged.resolve_tag("arm").unwrap();
    assert_eq!(
        resolved.platform().as_ref().unwrap().os().to_string(),
        "linux"
    );
    assert_eq!(
        resolved.annotations().as_ref().unwrap()["com.example.note"],
        "kept"
    );
    assert_eq!(tagged.tags().len(), 1);
}
