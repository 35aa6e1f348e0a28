//! Copies through the engine between repositories of one registry (mounted) and between two
//! registries (streamed).

use std::sync::Arc;

use ferry_core::{Action, CopyOptions, MountChain, ReadStore, WriteStore, copy};
use ferry_distribution::CrossRepoMount;
use ferry_test_support::{Content, ImageBuilder, Registry, fixtures};

use crate::support::{client, count, repo, start_registry};

fn mounting() -> CopyOptions {
    CopyOptions::default().with_chain(MountChain::new().with(CrossRepoMount::new()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_within_a_registry_mounts_every_blob_with_few_requests() {
    let registry = start_registry(Registry::builder()).await;
    let image = ImageBuilder::new()
        .layers(&[1000, 20_000, 300_000])
        .seed(7)
        .build();
    fixtures::push(&registry.url(), "team/app", &image, Some("v1"), None)
        .await
        .unwrap();
    let client = client();
    let src = repo(&client, registry.addr(), "team/app");
    let dst = repo(&client, registry.addr(), "prod/app");
    registry.clear_log();

    let report = copy(src, "v1", dst.clone(), Some("v1"), &mounting())
        .await
        .unwrap();

    let blobs = image.layers.len() + 1;
    assert_eq!(count(&report, Action::Mounted), blobs, "{report:#?}");
    for node in report.nodes.iter().filter(|n| n.action == Action::Mounted) {
        assert_eq!(
            node.strategy.as_ref().map(|s| s.as_str()),
            Some("cross-repo")
        );
        let from = node.from.as_ref().unwrap();
        assert_eq!(from.store.authority, registry.addr());
        assert_eq!(from.store.namespace, "team/app");
        assert_eq!(node.bytes, 0);
    }
    let requests = registry.requests();
    assert_eq!(
        registry.count("GET", "/blobs/"),
        0,
        "a blob was streamed: {requests:#?}"
    );
    assert_eq!(
        registry.count("HEAD", "/blobs/"),
        0,
        "a blob was probed: {requests:#?}"
    );
    // resolve (GET, kept for the copy) + HEAD of the destination manifest + one mount per
    // blob + PUT by digest + PUT of the tag.
    assert!(
        requests.len() <= blobs + 4,
        "{} requests for {blobs} blobs: {requests:#?}",
        requests.len()
    );
    let tagged = dst.resolve("v1").await.unwrap();
    assert_eq!(tagged.digest(), image.descriptor().digest());
    for layer in &image.layers {
        assert!(dst.exists(&layer.descriptor).await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_between_registries_streams_every_blob() {
    let a = start_registry(Registry::builder()).await;
    let b = start_registry(Registry::builder()).await;
    let image = ImageBuilder::new()
        .layers(&[5000, 100_000])
        .seed(11)
        .build();
    fixtures::push(&a.url(), "team/app", &image, Some("v1"), None)
        .await
        .unwrap();
    let client = client();
    let src = repo(&client, a.addr(), "team/app");
    let dst = repo(&client, b.addr(), "mirror/app");

    let report = copy(src, "v1", dst.clone(), Some("v2"), &mounting())
        .await
        .unwrap();

    assert_eq!(
        count(&report, Action::Copied),
        image.layers.len() + 2,
        "{report:#?}"
    );
    assert_eq!(count(&report, Action::Mounted), 0);
    // The strategy did not apply (another registry): no mount from another repository was
    // asked of b (the uploads into the new repository start as mounts from itself).
    assert!(
        b.requests().iter().all(|r| r.query_param("mount").is_none()
            || r.query_param("from").as_deref() == Some("mirror/app")),
        "a mount was tried across registries: {:#?}",
        b.requests()
    );
    let root = dst.resolve("v2").await.unwrap();
    assert_eq!(root.digest(), image.descriptor().digest());
    assert_eq!(root.media_type(), image.descriptor().media_type());
    for blob in image.all() {
        let mut s = dst.fetch(&blob.descriptor).await.unwrap();
        let mut got = Vec::new();
        use futures::StreamExt;
        while let Some(c) = s.next().await {
            got.extend_from_slice(&c.unwrap());
        }
        assert_eq!(got, blob.bytes.to_vec(), "bytes of {}", blob.digest());
    }

    // A second copy finds everything present and streams nothing.
    let again = copy(
        repo(&client, a.addr(), "team/app") as Arc<dyn ReadStore>,
        "v1",
        dst as Arc<dyn WriteStore>,
        Some("v2"),
        &mounting(),
    )
    .await
    .unwrap();
    assert_eq!(count(&again, Action::Exists), 1, "{again:#?}");
    assert_eq!(again.bytes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_round_trip_through_the_tag_fallback() {
    let registry = start_registry(Registry::builder()).await;
    let image = ImageBuilder::new().layers(&[100]).seed(3).build();
    let signature =
        ferry_test_support::ArtifactBuilder::signature(image.descriptor(), b"sig").build();
    let client = client();
    let src = repo(&client, registry.addr(), "team/signed");
    for blob in image.all().into_iter().chain(signature.all()) {
        src.push(
            &blob.descriptor,
            ferry_core::bytes_stream(blob.bytes.clone()),
        )
        .await
        .unwrap();
    }
    src.tag(image.descriptor(), "v1").await.unwrap();
    // docker-registry 2.8 has no referrers API: the push kept the `sha256-<hex>` index.
    let listed = src.referrers(image.descriptor()).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].digest(), signature.descriptor().digest());
    assert_eq!(
        listed[0].artifact_type().as_ref().map(|t| t.to_string()),
        Some(signature.artifact_type.clone())
    );

    let other = start_registry(Registry::builder()).await;
    let dst = repo(&client, other.addr(), "mirror/signed");
    let options = mounting().with_referrers(true);
    copy(src, "v1", dst.clone(), Some("v1"), &options)
        .await
        .unwrap();
    let copied = dst.referrers(image.descriptor()).await.unwrap();
    assert_eq!(copied.len(), 1);
    assert_eq!(copied[0].digest(), signature.descriptor().digest());
    let tags = dst.tags().await.unwrap();
    assert!(tags.contains(&"v1".to_string()), "{tags:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_of_the_destination_itself_replaces_the_head_before_each_upload() {
    let a = start_registry(Registry::builder()).await;
    let b = start_registry(Registry::builder()).await;
    let image = ImageBuilder::new()
        .layers(&[5000, 100_000])
        .seed(12)
        .build();
    fixtures::push(&a.url(), "team/app", &image, Some("v1"), None)
        .await
        .unwrap();
    let client = client();
    let probing = || {
        CopyOptions::default()
            .with_chain(MountChain::new().with(CrossRepoMount::new().with_destination_probe(true)))
    };
    let src = repo(&client, a.addr(), "team/app");
    let dst = repo(&client, b.addr(), "mirror/app");
    b.clear_log();
    let report = copy(src.clone(), "v1", dst.clone(), Some("v1"), &probing())
        .await
        .unwrap();
    let blobs = image.layers.len() + 1;
    assert_eq!(count(&report, Action::Copied), blobs + 1, "{report:#?}");
    // Each new blob: a mount from the repository itself (202, the session streamed into) and
    // the PUT; no HEAD.
    assert_eq!(b.count("HEAD", "/blobs/"), 0, "{:#?}", b.requests());
    assert_eq!(b.count("POST", "/blobs/uploads/"), blobs);
    assert_eq!(b.count("PATCH", "/blobs/uploads/"), 0);

    // The blobs are there, the manifest is not: the probe finds each blob with one request.
    let other = repo(&client, b.addr(), "mirror/other");
    for blob in image.all().into_iter().filter(|b| !b.is_manifest()) {
        other
            .push(
                &blob.descriptor,
                ferry_core::bytes_stream(blob.bytes.clone()),
            )
            .await
            .unwrap();
    }
    b.clear_log();
    let report = copy(src, "v1", other.clone(), Some("v1"), &probing())
        .await
        .unwrap();
    assert_eq!(count(&report, Action::Exists), blobs, "{report:#?}");
    assert_eq!(b.count("PUT", "/blobs/uploads/"), 0, "{:#?}", b.requests());
    assert_eq!(b.count("HEAD", "/blobs/"), 0);
    assert_eq!(b.count("POST", "/blobs/uploads/"), blobs);
    assert!(other.resolve("v1").await.is_ok());
    assert!(dst.resolve("v1").await.is_ok());
}

/// A destination repository the registry does not know (its tag listing answers `404
/// NAME_UNKNOWN`) holds no blob: it is asked once instead of once per blob. A repository the
/// registry knows is checked blob by blob, so what it holds is not uploaded again; and one
/// that holds blobs but no tag (a copy stopped before its manifest), which the listing shows
/// as new too, is not sent what it holds: each upload there starts as a mount from the
/// repository itself, which answers `201` for a blob it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_destination_repository_is_asked_once_not_once_per_blob() {
    let a = start_registry(Registry::builder()).await;
    let b = start_registry(Registry::builder()).await;
    let first = ImageBuilder::new()
        .layers(&[5000, 6000, 7000])
        .seed(21)
        .build();
    fixtures::push(&a.url(), "team/app", &first, Some("v1"), None)
        .await
        .unwrap();
    let client = client();
    let streaming = CopyOptions::default();

    b.clear_log();
    let report = copy(
        repo(&client, a.addr(), "team/app"),
        "v1",
        repo(&client, b.addr(), "mirror/app"),
        Some("v1"),
        &streaming,
    )
    .await
    .unwrap();
    assert_eq!(count(&report, Action::Copied), first.layers.len() + 2);
    let requests = b.requests();
    assert_eq!(
        b.count("HEAD", "/"),
        0,
        "existence was checked: {requests:#?}"
    );
    assert_eq!(b.count("GET", "/tags/list"), 1, "{requests:#?}");
    // One listing, then an upload (POST, PUT) per blob and the manifest's PUT.
    assert_eq!(
        requests.len(),
        1 + 2 * (first.layers.len() + 1) + 1,
        "{requests:#?}"
    );

    // The repository exists now: a second image sharing a layer finds that layer there.
    let second = ImageBuilder::new().layers(&[5000, 8000]).seed(21).build();
    assert_eq!(second.layers[0].digest(), first.layers[0].digest());
    fixtures::push(&a.url(), "team/app", &second, Some("v2"), None)
        .await
        .unwrap();
    b.clear_log();
    let report = copy(
        repo(&client, a.addr(), "team/app"),
        "v2",
        repo(&client, b.addr(), "mirror/app"),
        Some("v2"),
        &streaming,
    )
    .await
    .unwrap();
    let shared = report
        .nodes
        .iter()
        .find(|n| n.descriptor.digest() == first.layers[0].digest())
        .unwrap();
    assert_eq!(shared.action, Action::Exists, "{report:#?}");
    assert!(b.count("HEAD", "/blobs/") >= 1, "{:#?}", b.requests());

    // A repository holding a blob but no tag is unknown to the registry's listing: the blob
    // it holds is not sent again, and the copy is whole.
    let partial = repo(&client, b.addr(), "partial/app");
    let layer = &first.layers[1];
    partial
        .push(
            &layer.descriptor,
            ferry_core::bytes_stream(layer.bytes.clone()),
        )
        .await
        .unwrap();
    b.clear_log();
    let report = copy(
        repo(&client, a.addr(), "team/app"),
        "v1",
        repo(&client, b.addr(), "partial/app"),
        Some("v1"),
        &streaming,
    )
    .await
    .unwrap();
    assert_eq!(count(&report, Action::Copied), first.layers.len() + 2);
    let sent: Vec<String> = b
        .requests()
        .iter()
        .filter(|q| q.method == "PUT" && q.path.contains("/blobs/uploads/"))
        .filter_map(|q| q.query_param("digest"))
        .collect();
    assert!(
        !sent.contains(&layer.digest().to_string()),
        "the blob the repository held was uploaded again: {sent:?}"
    );
    // Every other blob was sent, each once.
    assert_eq!(sent.len(), first.layers.len(), "{sent:?}");
    let tagged = repo(&client, b.addr(), "partial/app")
        .resolve("v1")
        .await
        .unwrap();
    assert_eq!(tagged.digest(), first.descriptor().digest());
}
