//! Listings and deletions a sync relies on, on the real registry: the catalog page by page
//! (streamed, under a prefix), tags page by page, and deleting one tag on a registry that
//! deletes only by digest without taking another tag's content with it.

use std::sync::Arc;

use ferry_core::{Catalog, DeleteTag, Error, ListTags, ReadStore};

use ferry_test_support::fixtures::push;
use ferry_test_support::{Content, FakeRegistry, ImageBuilder, IndexBuilder, Registry};
use futures::StreamExt;

use crate::support::{client, repo, start_registry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_is_streamed_page_by_page_under_a_prefix() {
    let registry =
        start_registry(Registry::builder().env("REGISTRY_CATALOG_MAXENTRIES", "2")).await;
    let image = ImageBuilder::new().layer(100).build();
    for name in ["a/1", "a/2", "a/3", "a/4", "a/5", "b/1"] {
        push(&registry.url(), name, &image, Some("v1"), None)
            .await
            .unwrap();
    }
    let catalog = client().catalog(registry.addr()).unwrap();
    registry.clear_log();
    // The first name comes before the later pages are asked for.
    let first: Vec<String> = catalog
        .list("a/")
        .take(1)
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(first, ["a/1"]);
    let asked = registry.count("GET", "/v2/_catalog");
    // The page size ferry asks is refused (400 PAGINATION_NUMBER_INVALID), then the
    // registry's own page of two.
    assert_eq!(asked, 2, "{:#?}", registry.requests());

    let all: Vec<String> = catalog.list("a/").map(|r| r.unwrap()).collect().await;
    assert_eq!(all, ["a/1", "a/2", "a/3", "a/4", "a/5"]);
    let everything: Vec<String> = catalog.list("").map(|r| r.unwrap()).collect().await;
    assert_eq!(everything.len(), 6);
    let store = catalog.open_read("a/3").await.unwrap();
    assert_eq!(
        store.resolve("v1").await.unwrap().digest(),
        image.descriptor().digest()
    );
    assert!(catalog.open_read("Not/Valid").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_are_listed_over_every_page() {
    let fake = FakeRegistry::builder().tags_page_limit(3).start().unwrap();
    let image = ImageBuilder::new().layer(10).build();
    for i in 0..8 {
        fake.put_content("team/app", &image, Some(&format!("t{i}")));
    }
    let store = repo(&client(), &fake.addr(), "team/app");
    let mut tags = store.list_tags().await.unwrap();
    tags.sort();
    assert_eq!(tags.len(), 8);
    assert_eq!(fake.count("GET", "/tags/list"), 3);
}

async fn tags_of(store: &Arc<ferry_distribution::Repository>) -> Vec<String> {
    let mut tags = store.list_tags().await.unwrap();
    tags.sort();
    tags
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_is_deleted_alone_where_the_registry_deletes_by_digest_and_never_with_another_tags_content()
 {
    let registry = start_registry(Registry::builder()).await;
    let a = ImageBuilder::new().layer(100).seed(1).build();
    let b = ImageBuilder::new().layer(100).seed(2).build();
    let index = IndexBuilder::new()
        .platforms(&["linux/amd64", "linux/arm64"], &[100], 3)
        .build();
    let url = registry.url();
    push(&url, "team/app", &a, Some("x"), None).await.unwrap();
    push(&url, "team/app", &a, Some("alias-of-x"), None)
        .await
        .unwrap();
    push(&url, "team/app", &b, Some("y"), None).await.unwrap();
    push(&url, "team/app", &index, Some("multi"), None)
        .await
        .unwrap();
    push(&url, "team/app", &index.images[0], Some("amd64"), None)
        .await
        .unwrap();
    let store = repo(&client(), registry.addr(), "team/app");
    assert!(store.capabilities().delete_tag.is_some());

    // `y` names a manifest no other tag needs: it goes, by digest.
    store.delete_tag("y").await.unwrap();
    assert_eq!(tags_of(&store).await, ["alias-of-x", "amd64", "multi", "x"]);
    assert!(store.resolve("y").await.unwrap_err().is_not_found());

    // `x` shares its manifest with `alias-of-x`: refused, both stay.
    let refused = store.delete_tag("x").await.unwrap_err();
    assert!(matches!(refused, Error::NotSupported { .. }), "{refused}");
    assert!(refused.to_string().contains("`alias-of-x`"), "{refused}");
    // `amd64` is a manifest of the index `multi`: refused.
    let refused = store.delete_tag("amd64").await.unwrap_err();
    assert!(refused.to_string().contains("`multi`"), "{refused}");
    assert_eq!(tags_of(&store).await, ["alias-of-x", "amd64", "multi", "x"]);
    assert_eq!(
        store.resolve("x").await.unwrap().digest(),
        a.descriptor().digest()
    );

    // A tag that is not there.
    assert!(store.delete_tag("nope").await.unwrap_err().is_not_found());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_refuses_deletes_says_how_to_allow_them() {
    let registry = start_registry(Registry::builder().delete(false)).await;
    let a = ImageBuilder::new().layer(100).build();
    push(&registry.url(), "team/app", &a, Some("x"), None)
        .await
        .unwrap();
    let store = repo(&client(), registry.addr(), "team/app");
    let error = store.delete_tag("x").await.unwrap_err();
    assert!(matches!(error, Error::NotSupported { .. }), "{error}");
    assert!(
        error.to_string().contains("storage.delete.enabled"),
        "{error}"
    );
    assert_eq!(tags_of(&store).await, ["x"]);
}
