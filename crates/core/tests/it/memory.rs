//! The in-memory store keeps the store contract.

use std::sync::Arc;

#[tokio::test]
async fn memory_store_keeps_the_store_contract() {
    ferry_core::conformance::store::run_all(Arc::new(ferry_core::MemoryStore::new("conformance")))
        .await;
}
