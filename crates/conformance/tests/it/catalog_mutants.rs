//! Each rule of the catalog contract fails for a catalog broken on purpose to break it, with
//! the rule's own message; the same catalog without its flaw passes the whole suite, paging
//! included.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ferry_conformance::{CatalogSubject, catalog};
use ferry_core::{
    Catalog, Error, MemoryCatalog, MemoryStore, ReadStore, Result, StoreInfo, WriteStore,
};
use futures::stream::BoxStream;

/// How many names a [`Flawed`] catalog lists a page.
const PAGE: usize = 2;

/// What a [`Flawed`] catalog does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    /// Nothing: an honest catalog.
    None,
    /// Lists names with the prefix taken off.
    StripsThePrefix,
    /// Lists every name twice.
    ListsTwice,
    /// Opens a new, empty store in place of one that exists when asked to create it.
    RecreatesOnCreate,
    /// Opens one store for every name.
    OneStore,
    /// Creates a store that is missing whether asked to or not.
    IgnoresCreate,
    /// Names its stores in `store_info` as the trait's default does: under its own scheme,
    /// below its own name, which are not the scheme and name of the stores it opens.
    DefaultStoreInfo,
    /// Starts each page after the first with the last name of the page before (a `last`
    /// taken as inclusive).
    RepeatsPageBoundaries,
    /// Lists the first page only.
    FirstPageOnly,
}

/// A catalog of memory stores that lists [`PAGE`] names a page, with one [`Flaw`].
#[derive(Debug)]
struct Flawed {
    info: StoreInfo,
    stores: Mutex<BTreeMap<String, Arc<MemoryStore>>>,
    flaw: Flaw,
}

fn flawed(flaw: Flaw) -> CatalogSubject {
    CatalogSubject::new(Arc::new(Flawed {
        info: StoreInfo::new("flawed", "flawed.test", "catalog"),
        stores: Mutex::default(),
        flaw,
    }))
    .with_page_size(PAGE)
}

impl Flawed {
    fn get(&self, name: &str) -> Option<Arc<MemoryStore>> {
        self.stores.lock().unwrap().get(name).cloned()
    }

    fn create(&self, name: &str) -> Arc<MemoryStore> {
        let store = match self.flaw {
            Flaw::OneStore => self.stores.lock().unwrap().values().next().cloned(),
            _ => None,
        };
        let store =
            store.unwrap_or_else(|| Arc::new(MemoryStore::with_authority("flawed.test", name)));
        self.stores
            .lock()
            .unwrap()
            .insert(name.to_string(), store.clone());
        store
    }

    /// The names as the pages give them.
    fn paged(&self) -> Vec<String> {
        let names: Vec<String> = self.stores.lock().unwrap().keys().cloned().collect();
        let mut listed = Vec::new();
        for (i, page) in names.chunks(PAGE).enumerate() {
            match self.flaw {
                Flaw::FirstPageOnly if i > 0 => break,
                Flaw::RepeatsPageBoundaries if i > 0 => listed.push(names[i * PAGE - 1].clone()),
                _ => {}
            }
            listed.extend(page.iter().cloned());
        }
        listed
    }
}

impl std::fmt::Display for Flawed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Flawed({:?})", self.flaw)
    }
}

#[async_trait]
impl Catalog for Flawed {
    fn info(&self) -> &StoreInfo {
        &self.info
    }

    fn list(&self, prefix: &str) -> BoxStream<'static, Result<String>> {
        let mut listed = Vec::new();
        for name in self.paged() {
            let Some(rest) = name.strip_prefix(prefix) else {
                continue;
            };
            match self.flaw {
                Flaw::StripsThePrefix => listed.push(Ok(rest.to_string())),
                Flaw::ListsTwice => listed.extend([Ok(name.clone()), Ok(name)]),
                _ => listed.push(Ok(name)),
            }
        }
        Box::pin(futures::stream::iter(listed))
    }

    fn store_info(&self, name: &str) -> StoreInfo {
        match self.flaw {
            Flaw::DefaultStoreInfo => {
                StoreInfo::new("flawed", "flawed.test", format!("catalog/{name}"))
            }
            _ => StoreInfo::new("memory", "flawed.test", name),
        }
    }

    async fn open_read(&self, name: &str) -> Result<Arc<dyn ReadStore>> {
        match self.get(name) {
            Some(store) => Ok(store),
            None => Err(Error::not_found(format!("store `{name}` in {self}"))),
        }
    }

    async fn open_write(&self, name: &str, create: bool) -> Result<Option<Arc<dyn WriteStore>>> {
        let create = create || self.flaw == Flaw::IgnoresCreate;
        Ok(match self.get(name) {
            Some(_) if create && self.flaw == Flaw::RecreatesOnCreate => Some(self.create(name)),
            Some(store) => Some(store),
            None if create => Some(self.create(name)),
            None => None,
        })
    }
}

/// The honest catalog passes every rule, so the mutants below fail for their flaw alone.
mod honest {
    use super::*;

    async fn subject() -> CatalogSubject {
        flawed(Flaw::None)
    }

    ferry_conformance::catalog_suite!(setup: subject, declares: [pages]);
}

#[tokio::test]
#[should_panic(expected = "the stores listed under `team/`")]
async fn a_catalog_stripping_the_prefix_fails_the_listing_rule() {
    catalog::listing_names_each_written_store_once(&flawed(Flaw::StripsThePrefix)).await;
}

#[tokio::test]
#[should_panic(expected = "the stores listed under ``")]
async fn a_catalog_listing_twice_fails_the_listing_rule() {
    catalog::listing_names_each_written_store_once(&flawed(Flaw::ListsTwice)).await;
}

#[tokio::test]
#[should_panic(expected = "open_write(`team/app`, create: true) opens when it exists lost the tag")]
async fn a_catalog_recreating_stores_fails_the_open_rule() {
    catalog::a_written_store_opens_with_its_content(&flawed(Flaw::RecreatesOnCreate)).await;
}

#[tokio::test]
#[should_panic(expected = "open_read(`team/app`) opens serves another store's manifest")]
async fn a_catalog_of_one_store_fails_the_open_rule() {
    catalog::a_written_store_opens_with_its_content(&flawed(Flaw::OneStore)).await;
}

#[tokio::test]
#[should_panic(expected = "of a missing store gave one")]
async fn a_catalog_creating_without_being_asked_fails_the_missing_store_rule() {
    catalog::opening_a_missing_store_creates_nothing(&flawed(Flaw::IgnoresCreate), false).await;
}

#[tokio::test]
#[should_panic(expected = "without creating it created a store")]
async fn a_catalog_of_implicit_stores_creating_on_open_fails_the_missing_store_rule() {
    catalog::opening_a_missing_store_creates_nothing(&flawed(Flaw::IgnoresCreate), true).await;
}

#[tokio::test]
#[should_panic(expected = "declares `implicit_stores`, but")]
async fn a_catalog_declaring_implicit_stores_it_lacks_fails_the_missing_store_rule() {
    catalog::opening_a_missing_store_creates_nothing(&flawed(Flaw::None), true).await;
}

#[tokio::test]
#[should_panic(expected = "store_info(`team/app`) before the store existed names another store")]
async fn a_catalog_naming_its_stores_by_the_default_fails_the_store_info_rule() {
    catalog::store_info_names_the_store_opened(&flawed(Flaw::DefaultStoreInfo)).await;
}

#[tokio::test]
#[should_panic(expected = "must be refused with InvalidInput")]
async fn a_catalog_declaring_confined_names_it_does_not_refuse_fails_the_escape_rule() {
    // A memory catalog has nothing to escape from, and takes any name.
    let subject = CatalogSubject::new(Arc::new(MemoryCatalog::new("memory")));
    catalog::names_that_escape_the_catalog_are_refused(&subject).await;
}

#[tokio::test]
#[should_panic(expected = "the stores listed over pages of 2")]
async fn a_catalog_repeating_page_boundaries_fails_the_paging_rule() {
    catalog::every_page_is_listed_each_name_once(&flawed(Flaw::RepeatsPageBoundaries)).await;
}

#[tokio::test]
#[should_panic(expected = "the stores listed over pages of 2")]
async fn a_catalog_listing_one_page_fails_the_paging_rule() {
    catalog::every_page_is_listed_each_name_once(&flawed(Flaw::FirstPageOnly)).await;
}
