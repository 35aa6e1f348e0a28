//! A registry's repositories keep the catalog contract, one test per rule, on the real
//! registry: listed page by page as the registry pages them itself (at most two a page) and
//! as ferry asks (three a page). A registry's repositories exist implicitly, and its
//! repository names cannot escape it.

use std::sync::Arc;

use ferry_conformance::CatalogSubject;
use ferry_test_support::{Registry, RegistryBuilder};

use crate::support::{client, start_registry};

/// A registry that lists at most two repositories a page, whatever the client asks.
fn paging_by_two() -> RegistryBuilder {
    Registry::builder().env("REGISTRY_CATALOG_MAXENTRIES", "2")
}

mod registry_paging_itself {
    use super::*;

    async fn subject() -> CatalogSubject {
        let registry = start_registry(paging_by_two()).await;
        let catalog = client().catalog(registry.addr()).expect("catalog");
        CatalogSubject::new(catalog)
            .with_page_size(2)
            .keeping(registry)
    }

    ferry_conformance::catalog_suite!(
        setup: subject,
        declares: [implicit_stores, confined_names, pages]
    );
}

mod registry_asked_for_small_pages {
    use super::*;

    async fn subject() -> CatalogSubject {
        let registry = start_registry(Registry::builder()).await;
        let catalog = client().catalog(registry.addr()).expect("catalog");
        let catalog = Arc::new(catalog.as_ref().clone().with_page_size(3));
        CatalogSubject::new(catalog)
            .with_page_size(3)
            .keeping(registry)
    }

    ferry_conformance::catalog_suite!(
        setup: subject,
        declares: [implicit_stores, confined_names, pages]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_paging_rule_reads_the_catalog_page_by_page() {
    let registry = Arc::new(start_registry(paging_by_two()).await);
    let catalog = client().catalog(registry.addr()).expect("catalog");
    let subject = CatalogSubject::new(catalog)
        .with_page_size(2)
        .keeping(registry.clone());
    ferry_conformance::catalog::every_page_is_listed_each_name_once(&subject).await;
    let pages = registry.count("GET", "/v2/_catalog");
    assert!(
        pages >= 10,
        "two listings of ten repositories, two a page, read {pages} pages: {:#?}",
        registry.requests()
    );
}
