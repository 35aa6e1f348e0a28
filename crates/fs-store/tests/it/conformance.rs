//! The store contract of ferry-core, on an OCI layout.

use std::sync::Arc;

use ferry_core::WriteStore;

use crate::support::{layout, tempdir};

#[tokio::test]
async fn oci_layout_keeps_the_store_contract() {
    let dir = tempdir();
    let store: Arc<dyn WriteStore> = layout(dir.path(), "store");
    ferry_core::conformance::store::run_all(store).await;
}

#[tokio::test]
async fn oci_layout_keeps_the_store_contract_when_reopened() {
    let dir = tempdir();
    layout(dir.path(), "store");
    let store: Arc<dyn WriteStore> =
        Arc::new(ferry_fs_store::OciLayout::open(dir.path().join("store")).unwrap());
    ferry_core::conformance::store::run_all(store).await;
}
