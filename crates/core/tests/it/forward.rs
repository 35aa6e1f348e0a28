//! Stores behind `Arc`, `Box` and wrappers built on `StoreWrapper` are stores: every call is
//! forwarded, capabilities included, and a wrapper sees what it wraps.

use std::sync::Arc;

use ferry_conformance::{Counting, random_blob};
use ferry_core::{MemoryStore, ReadStore, StoreInfo, WriteStore, bytes_stream, copy};

use crate::fixtures::{image, layer};

/// Pushes a blob, tags a manifest and lists tags through `store`, checking each answer.
async fn exercise(store: &dyn WriteStore, inner: &MemoryStore) {
    let (desc, data) = random_blob(300);
    assert!(!store.exists(&desc).await.unwrap());
    store.push(&desc, bytes_stream(data.clone())).await.unwrap();
    assert!(store.exists(&desc).await.unwrap());
    assert_eq!(
        inner.get(desc.digest()).unwrap(),
        data,
        "the push reached the inner store"
    );
    let (manifest, _) = image(inner, std::slice::from_ref(&desc));
    store.tag(&manifest, "forwarded").await.unwrap();
    assert_eq!(
        store.resolve("forwarded").await.unwrap().digest(),
        manifest.digest()
    );
    assert!(store.referrers(&manifest).await.unwrap().is_empty());
    let lister = store
        .capabilities()
        .list_tags
        .expect("the inner store's ListTags is forwarded");
    assert_eq!(lister.list_tags().await.unwrap(), ["forwarded"]);
}

#[tokio::test]
async fn arc_and_box_forward_every_call_and_the_capabilities() {
    let inner = Arc::new(MemoryStore::new("inner"));
    let info: StoreInfo = inner.info().clone();

    let shared: Arc<MemoryStore> = inner.clone();
    assert_eq!(ReadStore::info(&shared), &info);
    assert_eq!(shared.to_string(), inner.to_string());
    exercise(&shared, &inner).await;

    let boxed: Box<dyn WriteStore> = Box::new(inner.clone());
    assert_eq!(boxed.info(), &info);
    exercise(&boxed, &inner).await;

    // `Arc<dyn WriteStore>` inside an `Arc`, and a `Box` of an `Arc`: still the same store.
    let nested: Arc<Arc<dyn WriteStore>> = Arc::new(inner.clone() as Arc<dyn WriteStore>);
    assert_eq!(nested.info(), &info);
    exercise(&nested, &inner).await;
}

#[tokio::test]
async fn a_wrapper_built_on_store_wrapper_sees_every_call_and_forwards_capabilities() {
    let inner = Arc::new(MemoryStore::new("inner"));
    let wrapper = Counting::new(inner.clone());
    assert_eq!(wrapper.to_string(), format!("Counting({inner})"));
    assert_eq!(wrapper.info(), inner.info());
    exercise(wrapper.as_ref(), &inner).await;
    assert_eq!(wrapper.calls("exists"), 2);
    assert_eq!(wrapper.calls("push"), 1);
    assert_eq!(wrapper.calls("tag"), 1);
    assert_eq!(wrapper.calls("resolve"), 1);
    assert_eq!(wrapper.calls("referrers"), 1);
    assert_eq!(wrapper.calls("capabilities"), 1);
    // The capability it offered was its own, forwarding to the inner store's.
    assert_eq!(wrapper.calls("list_tags"), 1);
    // The wrapper offers what the memory store offers (it deletes tags), and nothing more.
    let capabilities = wrapper.capabilities();
    assert!(capabilities.delete_tag.is_some());
    assert!(capabilities.peek.is_none() && capabilities.local_blobs.is_none());
    assert!(
        capabilities.registry_repository.is_none() && capabilities.fetch_from_address.is_none()
    );
}

#[tokio::test]
async fn a_counting_wrapper_offers_known_absent_and_counts_it() {
    let wrapper = Counting::new(Arc::new(ferry_conformance::fixtures::NewStore::new("new")));
    let known = wrapper
        .capabilities()
        .known_absent
        .expect("the inner store's KnownAbsent is offered through the wrapper");
    let (desc, data) = random_blob(10);
    assert!(known.known_absent(&desc).await);
    wrapper.push(&desc, bytes_stream(data)).await.unwrap();
    assert!(!known.known_absent(&desc).await);
    assert_eq!(wrapper.calls("known_absent"), 2);
}

#[tokio::test]
async fn the_engine_copies_between_wrapped_stores_and_each_wrapper_sees_its_side() {
    let src = Arc::new(MemoryStore::new("src"));
    let layers = [layer(&src, 100), layer(&src, 2000)];
    let (manifest, _) = image(&src, &layers);
    src.tag(&manifest, "v1").await.unwrap();
    let dst = Arc::new(MemoryStore::new("dst"));
    let (src_w, dst_w) = (Counting::new(src.clone()), Counting::new(dst.clone()));
    let report = copy(
        // A boxed store shared as a store: `Arc<Box<dyn ReadStore>>`.
        Arc::new(Box::new(src_w.clone()) as Box<dyn ReadStore>),
        "v1",
        dst_w.clone(),
        Some("v1"),
        &ferry_core::CopyOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.nodes.len(), 4);
    assert_eq!(dst.resolve("v1").await.unwrap().digest(), manifest.digest());
    // Source: one resolve, one fetch per node; destination: an existence check per node, a
    // push per blob, and the root pushed and tagged in one call.
    assert_eq!(src_w.calls("resolve"), 1);
    assert_eq!(src_w.calls("fetch"), 4);
    assert_eq!(dst_w.calls("exists"), 4);
    assert_eq!(dst_w.calls("push"), 3);
    assert_eq!(dst_w.calls("push_tagged"), 1);
    assert_eq!(dst_w.calls("tag"), 0);
}
