//! Copies between layouts through the engine, with SharedStorageMount in the chain.

use std::os::unix::fs::MetadataExt;

use ferry_core::{Action, CopyOptions, MountChain, ReadStore, copy};
use ferry_fs_store::SharedStorageMount;

use crate::support::{Image, layout, read_all, tempdir};

#[tokio::test]
async fn copy_between_layouts_mounts_every_blob_and_copies_the_manifest() {
    let dir = tempdir();
    let src = layout(dir.path(), "src");
    let dst = layout(dir.path(), "dst");
    let image = Image::build("copy");
    image.push(src.as_ref(), "v1").await;

    let options =
        CopyOptions::default().with_chain(MountChain::new().with(SharedStorageMount::new()));
    let report = copy(src.clone(), "v1", dst.clone(), Some("v1"), &options)
        .await
        .expect("copy");

    for blob in image.blobs() {
        let node = report.node(blob.digest()).expect("blob in the report");
        assert_eq!(node.action, Action::Mounted, "{node:?}");
        assert_eq!(
            node.strategy.as_ref().map(|s| s.as_str()),
            Some("shared-storage")
        );
        assert_eq!(node.method, Some(ferry_core::MountMethod::Hardlink));
        assert_eq!(
            node.from.as_ref().map(ToString::to_string).as_deref(),
            Some(&*src.path().to_string_lossy())
        );
        assert_eq!(node.bytes, 0, "a mounted blob streams no byte");
        let s = std::fs::metadata(src.blob_path(blob.digest()).unwrap()).unwrap();
        let d = std::fs::metadata(dst.blob_path(blob.digest()).unwrap()).unwrap();
        assert_eq!(s.ino(), d.ino());
    }
    let root = report.node(image.manifest.digest()).expect("manifest node");
    assert_eq!(root.action, Action::Copied);
    assert_eq!(report.count(Action::Mounted), 3);

    let resolved = dst.resolve("v1").await.unwrap();
    assert_eq!(resolved.digest(), image.manifest.digest());
    assert_eq!(resolved.size(), image.manifest.size());
    let manifest_bytes = &image.contents.last().unwrap().1;
    assert_eq!(
        &read_all(dst.as_ref(), &image.manifest).await,
        manifest_bytes
    );

    // Copying again finds everything present.
    let again = copy(src.clone(), "v1", dst.clone(), Some("v1"), &options)
        .await
        .unwrap();
    assert_eq!(again.count(Action::Exists), 1, "{:?}", again.nodes);
}

#[tokio::test]
async fn copy_without_a_chain_streams_every_blob() {
    let dir = tempdir();
    let src = layout(dir.path(), "src");
    let dst = layout(dir.path(), "dst");
    let image = Image::build("stream");
    image.push(src.as_ref(), "v1").await;
    let report = copy(
        src.clone(),
        "v1",
        dst.clone(),
        Some("latest"),
        &Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.count(Action::Copied), 4);
    for (desc, data) in &image.contents {
        assert_eq!(&read_all(dst.as_ref(), desc).await, data);
        let s = std::fs::metadata(src.blob_path(desc.digest()).unwrap()).unwrap();
        let d = std::fs::metadata(dst.blob_path(desc.digest()).unwrap()).unwrap();
        assert_ne!(s.ino(), d.ino());
    }
    assert_eq!(
        dst.resolve("latest").await.unwrap().digest(),
        image.manifest.digest()
    );
}

#[tokio::test]
async fn a_second_copy_from_a_registry_links_what_the_first_put_on_disk() {
    use std::sync::Arc;

    use ferry_core::{InMemoryLocations, MemoryStore, WriteStore};

    let dir = tempdir();
    let first = layout(dir.path(), "first");
    let second = layout(dir.path(), "second");
    // A source that is not on disk (it stands for a registry).
    let registry = Arc::new(MemoryStore::new("registry/app"));
    let image = Image::build("cache");
    image.push(registry.as_ref() as &dyn WriteStore, "v1").await;

    let options = CopyOptions::default()
        .with_chain(MountChain::new().with(SharedStorageMount::new()))
        .with_locations(Arc::new(InMemoryLocations::new()));
    let report = copy(registry.clone(), "v1", first.clone(), Some("v1"), &options)
        .await
        .unwrap();
    assert_eq!(report.count(Action::Copied), 4, "nothing to link from yet");

    let report = copy(registry.clone(), "v1", second.clone(), Some("v1"), &options)
        .await
        .unwrap();
    for blob in image.blobs() {
        let node = report.node(blob.digest()).unwrap();
        assert_eq!(node.action, Action::Mounted, "{node:?}");
        assert_eq!(
            node.from.as_ref().map(ToString::to_string).as_deref(),
            Some(&*first.path().to_string_lossy())
        );
        let a = std::fs::metadata(first.blob_path(blob.digest()).unwrap()).unwrap();
        let b = std::fs::metadata(second.blob_path(blob.digest()).unwrap()).unwrap();
        assert_eq!(a.ino(), b.ino());
    }
    assert_eq!(
        second.resolve("v1").await.unwrap().digest(),
        image.manifest.digest()
    );
}
