//! The archive writer and readers as a library: an entry whose source fails or lies is cut
//! off and the archive goes on; an archive never finished leaves no file; a file and a
//! stream read back the same bundle, manifests held and blobs landed.

use std::sync::Arc;

use bytes::Bytes;
use ferry_core::model::OCI_MANIFEST;
use ferry_core::{
    ByteStream, CopyOptions, Descriptor, Error, MemoryStore, ReadStore, WriteStore, bytes_stream,
    copy, sha256,
};
use ferry_fs_store::OciLayout;
use ferry_fs_store::archive::{
    ArchiveWriter, OneStore, ReadOptions, StreamOptions, Target, WriterOptions, open_oci,
    read_stream,
};

use crate::support::*;

fn options() -> WriterOptions {
    WriterOptions {
        manifest_limit: ferry_core::model::DEFAULT_MANIFEST_LIMIT,
        ..WriterOptions::default()
    }
}

/// A stream of `data` that fails after its first half.
fn failing(data: &Bytes) -> ByteStream {
    let half = data.slice(..data.len() / 2);
    Box::pin(futures::stream::iter([
        Ok(half),
        Err(Error::store("test source", "the connection broke")),
    ]))
}

/// A source with one image of two 300 kB layers tagged `v1`; returns it, the image's
/// manifest and the layers' bytes.
async fn source() -> (Arc<MemoryStore>, Descriptor, Vec<Bytes>) {
    let store = Arc::new(MemoryStore::new("source"));
    let layers: Vec<Bytes> = (0..2u8)
        .map(|i| tar_layer(&format!("f{i}"), &vec![i; 300_000]))
        .collect();
    let layer_descriptors: Vec<Descriptor> = layers
        .iter()
        .map(|l| store.insert(LAYER_TAR, l.clone()))
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": layer_descriptors.iter().map(|l| l.digest().to_string()).collect::<Vec<_>>()},
    });
    let config = store.insert(CONFIG, serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layer_descriptors,
    });
    let manifest = store.insert(OCI_MANIFEST, serde_json::to_vec(&manifest).unwrap());
    store.tag(&manifest, "v1").await.unwrap();
    (store, manifest, layers)
}

#[tokio::test]
async fn a_failed_or_lying_entry_is_cut_off_and_the_archive_goes_on() {
    let dir = tempdir();
    let path = dir.path().join("a.tar");
    let writer = ArchiveWriter::create(Target::File(path.clone()), options()).unwrap();
    let repo = writer.repository("team/app").unwrap();
    let (src, manifest, layers) = source().await;

    // A layer whose source breaks off, then one that does not match its digest.
    let layer = Descriptor::new(LAYER_TAR.into(), layers[0].len() as u64, sha256(&layers[0]));
    let broken = repo.push(&layer, failing(&layers[0])).await.unwrap_err();
    assert!(
        broken.to_string().contains("the connection broke"),
        "{broken}"
    );
    let lying = Descriptor::new(LAYER_TAR.into(), layers[1].len() as u64, sha256(&layers[0]));
    let refused = repo
        .push(&lying, bytes_stream(layers[1].clone()))
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::DigestMismatch { .. }), "{refused}");
    assert!(!repo.exists(&layer).await.unwrap());

    // The copy then writes every blob once, and the archive reads back whole.
    let report = copy(src, "v1", repo, Some("v1"), &CopyOptions::default())
        .await
        .unwrap();
    assert_eq!(report.nodes.len(), 4);
    let summary = writer.finish().await.unwrap();
    assert_eq!((summary.blobs, summary.images), (4, 1));
    let bundle = open_oci(&path, &ReadOptions::new("x")).unwrap();
    assert_eq!(bundle.repositories(), ["team/app"]);
    let back = Arc::new(OciLayout::create(dir.path().join("back")).unwrap());
    let store = bundle.repository("team/app");
    copy(
        store,
        "v1",
        back.clone(),
        Some("v1"),
        &CopyOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        back.resolve("v1").await.unwrap().digest(),
        manifest.digest()
    );
}

#[tokio::test]
async fn an_archive_never_finished_leaves_no_file() {
    let dir = tempdir();
    let path = dir.path().join("never.tar.zst");
    let (src, _, _) = source().await;
    {
        let writer = ArchiveWriter::create(Target::File(path.clone()), options()).unwrap();
        let repo = writer.repository("app").unwrap();
        copy(src, "v1", repo, Some("v1"), &CopyOptions::default())
            .await
            .unwrap();
        // Dropped without `finish`: the copy failed elsewhere, say.
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn a_stream_lands_blobs_holds_manifests_and_reads_back_like_the_file() {
    let dir = tempdir();
    let path = dir.path().join("b.tar.gz");
    let (src, manifest, _) = source().await;
    let writer = ArchiveWriter::create(
        Target::File(path.clone()),
        WriterOptions {
            compression: ferry_fs_store::archive::Compression::Gzip,
            ..options()
        },
    )
    .unwrap();
    copy(
        src,
        "v1",
        writer.repository("app").unwrap(),
        Some("v1"),
        &CopyOptions::default(),
    )
    .await
    .unwrap();
    writer.finish().await.unwrap();

    let landed = Arc::new(OciLayout::create(dir.path().join("landed")).unwrap());
    let file = std::fs::File::open(&path).unwrap();
    let bundle = read_stream(
        Box::new(file),
        "oci-archive:b.tar.gz",
        Some(&OneStore(landed.clone())),
        &StreamOptions::new("x"),
    )
    .await
    .unwrap();
    // The layers and the config landed; the manifest was held.
    let landed_blobs: Vec<String> = std::fs::read_dir(landed.path().join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(landed_blobs.len(), 3);
    assert!(!landed_blobs.contains(&manifest.digest().digest().to_string()));
    assert!(landed.tags().await.unwrap().is_empty(), "nothing is tagged");
    let store = bundle.repository("app");
    copy(
        store,
        "v1",
        landed.clone(),
        Some("v1"),
        &CopyOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        landed.resolve("v1").await.unwrap().digest(),
        manifest.digest()
    );
}
