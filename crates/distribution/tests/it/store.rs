//! The store contract and the strategy contract on the real registry, one test per rule.

use std::sync::Arc;

use ferry_conformance::{Case, StoreSubject};
use ferry_core::{ReadStore, WriteStore};
use ferry_distribution::{ClientOptions, Credentials, CrossRepoMount, RegistryClient};
use ferry_test_support::Registry;

use crate::support::{client, repo, start_registry};

/// A client whose blob pushes above 1000 bytes go up in 64 KiB `PATCH`es.
fn chunking_client() -> RegistryClient {
    RegistryClient::new(ClientOptions {
        plain_http: true,
        credentials: Credentials::anonymous(),
        chunk_threshold: 1000,
        chunk_size: 64 * 1024,
        ..Default::default()
    })
    .unwrap()
}

/// The store contract, one test per rule, on a repository of a fresh registry.
mod repository {
    use super::*;

    async fn subject() -> StoreSubject {
        let registry = start_registry(Registry::builder()).await;
        let client = client();
        StoreSubject::new(repo(&client, registry.addr(), "conformance/store"))
            .with_sibling(repo(&client, registry.addr(), "conformance/sibling"))
            .keeping(registry)
    }

    ferry_conformance::store_suite!(
        setup: subject,
        declares: [list_tags, delete_tag, peek, registry_repository, prepared_uploads, known_absent]
    );
}

/// The same with chunked uploads.
mod repository_chunked {
    use super::*;

    async fn subject() -> StoreSubject {
        let registry = start_registry(Registry::builder()).await;
        let client = chunking_client();
        StoreSubject::new(repo(&client, registry.addr(), "conformance/chunked"))
            .with_sibling(repo(&client, registry.addr(), "conformance/sibling"))
            .keeping(registry)
    }

    ferry_conformance::store_suite!(
        setup: subject,
        declares: [list_tags, delete_tag, peek, registry_repository, prepared_uploads, known_absent]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_uploads_go_up_in_patches() {
    let registry = start_registry(Registry::builder()).await;
    let subject = StoreSubject::new(repo(
        &chunking_client(),
        registry.addr(),
        "conformance/chunked",
    ));
    ferry_conformance::store::push_round_trips_the_exact_bytes(&subject).await;
    // The 300 000-byte blob went up in 64 KiB PATCHes.
    assert!(
        registry.count("PATCH", "/v2/conformance/chunked/blobs/uploads/") >= 5,
        "no chunked upload was made: {:?}",
        registry.requests()
    );
}

/// The strategy contract of the cross-repository mount, between two repositories of one
/// registry: it probes the destination (a mount answers 201 for a blob the repository has)
/// and leaves the 202 session of a refused mount as a prepared upload.
mod cross_repo_mount {
    use super::*;

    async fn case() -> Case {
        let registry = start_registry(Registry::builder()).await;
        let client = client();
        Case::new(
            Arc::new(CrossRepoMount::new()),
            repo(&client, registry.addr(), "team/src"),
            repo(&client, registry.addr(), "team/dst"),
        )
        .keeping(registry)
    }

    ferry_conformance::strategy_suite!(
        setup: case,
        expect: Mounted,
        declares: [probes_destination, prepares_uploads]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_names_itself() {
    let registry = start_registry(Registry::builder()).await;
    let r = repo(&client(), registry.addr(), "team/app");
    assert_eq!(r.to_string(), format!("{}/team/app", registry.addr()));
    let info = r.info();
    assert_eq!(info.scheme, "registry");
    assert_eq!(info.authority, registry.addr());
    assert_eq!(info.namespace, "team/app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_offers_itself_as_a_registry_repository() {
    use ferry_conformance::random_blob;
    use ferry_core::{BlobMount, bytes_stream};
    let registry = start_registry(Registry::builder()).await;
    let client = client();
    let src = repo(&client, registry.addr(), "team/src");
    let dst = repo(&client, registry.addr(), "team/dst");
    let capabilities = dst.capabilities();
    let handle = capabilities
        .registry_repository
        .expect("a repository offers RegistryRepository");
    assert_eq!(handle.registry(), dst.info().authority);
    assert_eq!(handle.repository(), "team/dst");
    assert!(capabilities.list_tags.is_some());
    assert!(capabilities.local_blobs.is_none(), "{capabilities:?}");

    let (desc, data) = random_blob(1000);
    src.push(&desc, bytes_stream(data)).await.unwrap();
    registry.clear_log();
    let answer = handle
        .mount_blob(desc.digest(), Some("team/src"), &["team/src".to_string()])
        .await
        .unwrap();
    assert!(matches!(answer, BlobMount::Mounted), "{answer:?}");
    assert!(dst.exists(&desc).await.unwrap());
    let posts = registry
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect::<Vec<_>>();
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert_eq!(posts[0].query_param("from").as_deref(), Some("team/src"));

    // A blob no repository holds: the registry opens an upload instead, which is cancelled.
    let (missing, _) = random_blob(10);
    match handle
        .mount_blob(
            missing.digest(),
            Some("team/src"),
            &["team/src".to_string()],
        )
        .await
        .unwrap()
    {
        BlobMount::Upload(upload) => upload.cancel().await.unwrap(),
        other => panic!("expected an upload session, got {other:?}"),
    }
    assert!(!dst.exists(&missing).await.unwrap());
}
