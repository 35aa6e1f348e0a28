//! The in-memory store keeps the store contract.

use std::sync::Arc;

#[tokio::test]
async fn memory_store_keeps_the_store_contract() {
    ferry_core::conformance::store::run_all(Arc::new(ferry_core::MemoryStore::new("conformance")))
        .await;
}

#[tokio::test]
async fn memory_store_lists_its_tags_through_its_capabilities() {
    use ferry_core::{ReadStore, WriteStore, bytes_stream, conformance::random_blob};
    let store = ferry_core::MemoryStore::new("tags");
    let (desc, data) = random_blob(10);
    store.push(&desc, bytes_stream(data)).await.unwrap();
    store.tag(&desc, "v2").await.unwrap();
    store.tag(&desc, "v1").await.unwrap();
    let lister = store
        .capabilities()
        .list_tags
        .expect("the memory store offers ListTags");
    assert_eq!(lister.list_tags().await.unwrap(), ["v1", "v2"]);
}
