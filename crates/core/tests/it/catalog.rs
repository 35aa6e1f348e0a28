//! The in-memory catalog keeps the catalog contract, one test per rule.

use std::sync::Arc;

use ferry_conformance::CatalogSubject;
use ferry_core::MemoryCatalog;

mod memory_catalog {
    use super::*;

    async fn subject() -> CatalogSubject {
        CatalogSubject::new(Arc::new(MemoryCatalog::new("conformance")))
    }

    ferry_conformance::catalog_suite!(setup: subject);
}
