//! The catalog contract, one rule per function. Each takes a fresh [`CatalogSubject`] whose
//! catalog holds no store yet, and panics with a message naming the catalog and what it did
//! wrong.
//!
//! The rules write stores the way a sync does: each opened with
//! [`Catalog::open_write`] and `create`, with a manifest (and the config it names) tagged
//! [`TAG`], so that a registry, which lists a repository only once something is pushed to it,
//! lists them too; and a parent (`team/app`) before the stores below it (`team/app/sub`), in
//! the order a listing gives them.

use std::any::Any;
use std::sync::Arc;

use futures::StreamExt;
use oci_spec::image::Descriptor;

use crate::store::{image, push_manifest};
use ferry_core::catalog::Catalog;
use ferry_core::error::Error;
use ferry_core::store::{ReadStore, WriteStore};

/// The tag the rules give the manifest they write into each store.
pub const TAG: &str = "conformance";

/// What a catalog rule runs on: a catalog that holds no store yet, and what some rules need
/// besides.
pub struct CatalogSubject {
    /// The catalog under test; each rule gets a fresh, empty one.
    pub catalog: Arc<dyn Catalog>,
    /// How many names the catalog lists per page at most, for the `pages` rule.
    pub page_size: Option<usize>,
    keep: Vec<Box<dyn Any + Send + Sync>>,
}

impl CatalogSubject {
    /// A subject for `catalog`, which must hold no store yet.
    pub fn new(catalog: Arc<dyn Catalog>) -> Self {
        Self {
            catalog,
            page_size: None,
            keep: Vec::new(),
        }
    }

    /// Keeps `guard` (a registry process, a temporary directory) alive as long as the subject.
    pub fn keeping(mut self, guard: impl Any + Send + Sync) -> Self {
        self.keep.push(Box::new(guard));
        self
    }

    /// The catalog lists at most `n` names per page (a registry configured so, or asked so),
    /// for the `pages` rule, which writes more stores than fit in two pages.
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = Some(n.max(1));
        self
    }
}

/// Every name `catalog` lists under `prefix`, sorted (duplicates kept).
async fn listed(catalog: &dyn Catalog, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = catalog
        .list(prefix)
        .map(|item| {
            item.unwrap_or_else(|e| panic!("{catalog}: the listing under `{prefix}` failed: {e}"))
        })
        .collect()
        .await;
    names.sort();
    names
}

/// Panics unless `catalog` lists no store: the rules count on starting from an empty one.
async fn assert_empty(catalog: &dyn Catalog) {
    let names = listed(catalog, "").await;
    assert!(
        names.is_empty(),
        "{catalog}: the subject must be a catalog holding no store yet, but it lists {names:?}"
    );
}

/// Opens `name` with `open_write(name, true)`, which must give a store.
async fn created(catalog: &dyn Catalog, name: &str) -> Arc<dyn WriteStore> {
    catalog
        .open_write(name, true)
        .await
        .unwrap_or_else(|e| panic!("{catalog}: open_write(`{name}`, create: true) failed: {e}"))
        .unwrap_or_else(|| panic!("{catalog}: open_write(`{name}`, create: true) gave no store"))
}

/// Creates the store `name` and writes a manifest tagged [`TAG`] into it; returns the store
/// and the manifest.
async fn write_store(catalog: &dyn Catalog, name: &str) -> (Arc<dyn WriteStore>, Descriptor) {
    let store = created(catalog, name).await;
    let manifest = push_manifest(store.as_ref(), image()).await;
    store
        .tag(&manifest, TAG)
        .await
        .unwrap_or_else(|e| panic!("{catalog}: tagging in `{name}` failed: {e}"));
    (store, manifest)
}

/// Opens `name`, which exists, with `open_write(name, false)`, which must give it.
async fn existing(catalog: &dyn Catalog, name: &str) -> Arc<dyn WriteStore> {
    catalog
        .open_write(name, false)
        .await
        .unwrap_or_else(|e| panic!("{catalog}: open_write(`{name}`, create: false) failed: {e}"))
        .unwrap_or_else(|| {
            panic!("{catalog}: open_write(`{name}`, create: false) gave no store, but it exists")
        })
}

/// Opens `name` with `open_read`, which must succeed.
async fn opened(catalog: &dyn Catalog, name: &str) -> Arc<dyn ReadStore> {
    catalog
        .open_read(name)
        .await
        .unwrap_or_else(|e| panic!("{catalog}: open_read(`{name}`) failed: {e}"))
}

/// `store`, opened `how`, serves `manifest` under [`TAG`].
async fn assert_serves(
    catalog: &dyn Catalog,
    store: &dyn ReadStore,
    manifest: &Descriptor,
    how: &str,
) {
    let tagged = store
        .resolve(TAG)
        .await
        .unwrap_or_else(|e| panic!("{catalog}: the store {how} lost the tag written into it: {e}"));
    assert_eq!(
        tagged.digest(),
        manifest.digest(),
        "{catalog}: the store {how} serves another store's manifest"
    );
    assert!(
        store.exists(manifest).await.unwrap_or(false),
        "{catalog}: the store {how} lost the manifest written into it"
    );
}

/// The names the listing rule writes, sorted: nested, sharing a first component, and one
/// whose first component starts like another's (`teamwork` and `team`).
const NAMES: [&str; 5] = [
    "other",
    "team/app",
    "team/app/sub",
    "team/tool",
    "teamwork/app",
];

/// [`Catalog::list`] names each store written into the catalog exactly once, by its full
/// name, and under a prefix exactly the stores whose names start with it: `team/` takes
/// `team/app` and `team/app/sub` but not `teamwork/app`, `team/app/` takes `team/app/sub`
/// but not `team/app` itself, and a prefix no store has lists nothing.
pub async fn listing_names_each_written_store_once(subject: &CatalogSubject) {
    let catalog = subject.catalog.as_ref();
    assert_empty(catalog).await;
    for name in NAMES {
        write_store(catalog, name).await;
    }
    let expected: [(&str, &[&str]); 5] = [
        ("", &NAMES),
        ("team/", &["team/app", "team/app/sub", "team/tool"]),
        ("team/app/", &["team/app/sub"]),
        ("teamwork/", &["teamwork/app"]),
        ("nothing/", &[]),
    ];
    for (prefix, names) in expected {
        assert_eq!(
            listed(catalog, prefix).await,
            names,
            "{catalog}: the stores listed under `{prefix}`"
        );
    }
}

/// A store written through `open_write(name, true)` opens with what was written into it:
/// with [`Catalog::open_read`], with `open_write(name, false)`, and with
/// `open_write(name, true)` again, which opens the store that exists rather than a new,
/// empty one. Another name is another store.
pub async fn a_written_store_opens_with_its_content(subject: &CatalogSubject) {
    let catalog = subject.catalog.as_ref();
    let (_, app) = write_store(catalog, "team/app").await;
    let (_, other) = write_store(catalog, "team/other").await;
    let openings: [(Arc<dyn ReadStore>, &Descriptor, &str); 4] = [
        (
            opened(catalog, "team/app").await,
            &app,
            "open_read(`team/app`) opens",
        ),
        (
            existing(catalog, "team/app").await,
            &app,
            "open_write(`team/app`, create: false) opens",
        ),
        (
            created(catalog, "team/app").await,
            &app,
            "open_write(`team/app`, create: true) opens when it exists",
        ),
        (
            opened(catalog, "team/other").await,
            &other,
            "open_read(`team/other`) opens",
        ),
    ];
    for (store, manifest, how) in openings {
        assert_serves(catalog, store.as_ref(), manifest, how).await;
    }
}

/// Opening a store that does not exist without creating it creates nothing: no store is
/// listed afterwards. `open_write(name, false)` gives `None` (a dry run writes nothing) and
/// `open_read(name)` is `NotFound`, except in a catalog whose stores exist implicitly (a
/// registry's repositories, declared `implicit_stores`): there both give a store, which holds
/// nothing. A catalog that declares `implicit_stores` must not give `None`.
pub async fn opening_a_missing_store_creates_nothing(subject: &CatalogSubject, implicit: bool) {
    let catalog = subject.catalog.as_ref();
    let name = "missing/app";
    assert_empty(catalog).await;
    let write = catalog.open_write(name, false).await.unwrap_or_else(|e| {
        panic!("{catalog}: open_write(`{name}`, create: false) of a missing store failed: {e}")
    });
    match write {
        Some(store) => {
            assert!(
                implicit,
                "{catalog}: open_write(`{name}`, create: false) of a missing store gave one; \
                 it gives None (a dry run creates nothing) unless the catalog declares \
                 `implicit_stores`"
            );
            assert_holds_nothing(catalog, store.as_ref(), "open_write(create: false)").await;
        }
        None => assert!(
            !implicit,
            "{catalog}: declares `implicit_stores`, but open_write(`{name}`, create: false) \
             gave None"
        ),
    }
    match catalog.open_read(name).await {
        Err(e) if e.is_not_found() => {}
        Ok(store) if implicit => {
            assert_holds_nothing(catalog, store.as_ref(), "open_read").await;
        }
        Ok(_) => panic!(
            "{catalog}: open_read(`{name}`) of a missing store opened one; it is NotFound \
             unless the catalog declares `implicit_stores`"
        ),
        Err(e) => {
            panic!("{catalog}: open_read(`{name}`) of a missing store must be NotFound, got {e}")
        }
    }
    let names = listed(catalog, "").await;
    assert!(
        names.is_empty(),
        "{catalog}: opening `{name}` without creating it created a store: it lists {names:?}"
    );
}

/// `store`, a missing store opened `how` in an `implicit_stores` catalog, holds no tag.
async fn assert_holds_nothing(catalog: &dyn Catalog, store: &dyn ReadStore, how: &str) {
    let tag = store.resolve(TAG).await;
    assert!(
        matches!(tag, Err(Error::NotFound { .. })),
        "{catalog}: a missing store opened with {how} must hold nothing, but resolving `{TAG}` \
         gave {tag:?}"
    );
}

/// [`Catalog::store_info`] names the store the catalog opens under that name (scheme,
/// authority, namespace), so that a report of a store that could not be opened, or of a dry
/// run into a store that does not exist yet, names the store a real run writes: before the
/// store exists it names the store `open_write(name, true)` then creates, and afterwards the
/// store `open_read` and `open_write` open.
pub async fn store_info_names_the_store_opened(subject: &CatalogSubject) {
    let catalog = subject.catalog.as_ref();
    for name in ["team/app", "team/app/sub"] {
        let before = catalog.store_info(name);
        let (written, _) = write_store(catalog, name).await;
        assert_eq!(
            &before,
            written.info(),
            "{catalog}: store_info(`{name}`) before the store existed names another store \
             than open_write(`{name}`, create: true) created"
        );
        let named = catalog.store_info(name);
        let read = opened(catalog, name).await;
        assert_eq!(
            &named,
            read.info(),
            "{catalog}: store_info(`{name}`) names another store than open_read opens"
        );
        let write = existing(catalog, name).await;
        assert_eq!(
            &named,
            write.info(),
            "{catalog}: store_info(`{name}`) names another store than open_write opens"
        );
    }
}

/// Names that reach outside a catalog, or name the catalog itself rather than a store in it.
pub const ESCAPING_NAMES: [&str; 5] = ["", "..", "../outside", "team/../../outside", "/absolute"];

/// A catalog whose names map onto something a name could escape (a directory's paths; a
/// registry's URL paths), declared `confined_names`, refuses the [`ESCAPING_NAMES`] with
/// [`Error::InvalidInput`], to read and to write, and creates nothing. A catalog of in-memory
/// stores has nothing to escape from and does not run it.
pub async fn names_that_escape_the_catalog_are_refused(subject: &CatalogSubject) {
    let catalog = subject.catalog.as_ref();
    assert_empty(catalog).await;
    for name in ESCAPING_NAMES {
        let write = catalog.open_write(name, true).await;
        assert!(
            matches!(write, Err(Error::InvalidInput { .. })),
            "{catalog}: open_write(`{name}`, create: true) must be refused with InvalidInput, \
             got {:?}",
            write.map(|s| s.map(|s| s.info().clone()))
        );
        let read = catalog.open_read(name).await;
        assert!(
            matches!(read, Err(Error::InvalidInput { .. })),
            "{catalog}: open_read(`{name}`) must be refused with InvalidInput, got {:?}",
            read.map(|s| s.info().clone())
        );
    }
    let names = listed(catalog, "").await;
    assert!(
        names.is_empty(),
        "{catalog}: refused names created a store: it lists {names:?}"
    );
}

/// A catalog that lists page by page (declared `pages`, with the subject's page size) lists
/// every store once when there are more than two pages of them, also under a prefix whose
/// stores are spread over several pages among stores outside it, whatever the names'
/// punctuation (`paged-x` and `pagedx` sort around `paged/` differently by byte and by path).
pub async fn every_page_is_listed_each_name_once(subject: &CatalogSubject) {
    let catalog = subject.catalog.as_ref();
    let page = subject.page_size.unwrap_or_else(|| {
        panic!(
            "{catalog}: `pages` is declared; give the page size with \
             `CatalogSubject::with_page_size`"
        )
    });
    assert_empty(catalog).await;
    let mut inside: Vec<String> = (0..2 * page + 1)
        .map(|i| format!("paged/r{i:03}"))
        .collect();
    inside.push("paged/r000/deeper".into());
    let outside = ["a/first", "paged-x/r", "pagedx/r", "z/last"];
    for name in inside.iter().map(String::as_str).chain(outside) {
        write_store(catalog, name).await;
    }
    inside.sort();
    let mut all: Vec<String> = inside
        .iter()
        .cloned()
        .chain(outside.map(String::from))
        .collect();
    all.sort();
    assert_eq!(
        listed(catalog, "").await,
        all,
        "{catalog}: the stores listed over pages of {page}"
    );
    assert_eq!(
        listed(catalog, "paged/").await,
        inside,
        "{catalog}: the stores listed under `paged/` over pages of {page}"
    );
}
