//! The in-memory store keeps the store contract, one test per rule, as it is, behind `Arc`
//! and `Box`, and behind a wrapper built on `StoreWrapper`.

use std::sync::Arc;

use ferry_conformance::{Counting, StoreSubject};
use ferry_core::{MemoryStore, WriteStore};

mod memory_store {
    use super::*;

    async fn subject() -> StoreSubject {
        StoreSubject::new(Arc::new(MemoryStore::new("conformance")))
    }

    ferry_conformance::store_suite!(setup: subject, declares: [list_tags, delete_tag]);
}

mod boxed_memory_store {
    use super::*;

    async fn subject() -> StoreSubject {
        let boxed: Box<dyn WriteStore> = Box::new(MemoryStore::new("conformance"));
        StoreSubject::new(Arc::new(boxed))
    }

    ferry_conformance::store_suite!(setup: subject, declares: [list_tags, delete_tag]);
}

mod wrapped_memory_store {
    use super::*;

    async fn subject() -> StoreSubject {
        StoreSubject::new(Counting::new(Arc::new(MemoryStore::new("conformance"))))
    }

    ferry_conformance::store_suite!(setup: subject, declares: [list_tags, delete_tag]);
}

/// A store offering `KnownAbsent`, bare and behind a wrapper that must keep offering it.
mod new_store {
    use super::*;
    use ferry_conformance::fixtures::NewStore;

    async fn subject() -> StoreSubject {
        StoreSubject::new(Arc::new(NewStore::new("conformance")))
    }

    ferry_conformance::store_suite!(setup: subject, declares: [list_tags, delete_tag, known_absent]);
}

mod wrapped_new_store {
    use super::*;
    use ferry_conformance::fixtures::NewStore;

    async fn subject() -> StoreSubject {
        StoreSubject::new(Counting::new(Arc::new(NewStore::new("conformance"))))
    }

    ferry_conformance::store_suite!(setup: subject, declares: [list_tags, delete_tag, known_absent]);
}

#[tokio::test]
async fn memory_store_lists_its_tags_through_its_capabilities() {
    use ferry_conformance::random_blob;
    use ferry_core::{ReadStore, bytes_stream};
    let store = MemoryStore::new("tags");
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
