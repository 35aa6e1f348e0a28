//! Catalogs: sets of stores named by paths, as a sync enumerates them.
//!
//! A registry is a catalog of repositories (`team/app`), a directory of OCI layouts is a
//! catalog of layouts (`PATH/team/app`). A sync lists a catalog under a prefix and opens each
//! store it names, on the source side to read and on the destination side to write, so the
//! same sync runs between any two kinds of catalog.

use std::collections::BTreeMap;
use std::fmt::{Debug, Display};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::error::{Error, Result};
use crate::memory::MemoryStore;
use crate::store::{ReadStore, StoreInfo, WriteStore};

/// A set of stores named by `/`-separated paths: the repositories of a registry, the layouts
/// of a directory.
#[async_trait]
pub trait Catalog: Display + Debug + Send + Sync + 'static {
    /// Who the catalog is: its scheme (`registry`, `oci-dir`, ...), its authority, and its
    /// base (empty for a registry, the directory for layouts).
    fn info(&self) -> &StoreInfo;

    /// The names of the stores whose names start with `prefix` (empty, or ending in `/`), in
    /// the order the catalog lists them, page after page as they come: a caller can start
    /// working on the first names while later pages are still being fetched. An `Err` item
    /// ends the stream and means the listing is incomplete.
    fn list(&self, prefix: &str) -> BoxStream<'static, Result<String>>;

    /// Who the store named `name` is, without opening it (for a report of a store that could
    /// not be opened): by default the catalog's scheme and authority, and its base joined with
    /// `name`.
    fn store_info(&self, name: &str) -> StoreInfo {
        let info = self.info();
        let namespace = match (info.namespace.is_empty(), name.is_empty()) {
            (true, _) => name.to_string(),
            (false, true) => info.namespace.clone(),
            (false, false) => format!("{}/{name}", info.namespace.trim_end_matches('/')),
        };
        StoreInfo::new(info.scheme.clone(), info.authority.clone(), namespace)
    }

    /// The store named `name`, to read from.
    async fn open_read(&self, name: &str) -> Result<Arc<dyn ReadStore>>;

    /// The store named `name`, to write to. When it does not exist yet it is created if
    /// `create`, else `None` is returned (a dry run creates nothing). Catalogs whose stores
    /// exist implicitly (a registry's repositories) always return one.
    async fn open_write(&self, name: &str, create: bool) -> Result<Option<Arc<dyn WriteStore>>>;
}

/// A [`Catalog`] of [`MemoryStore`]s, for tests, examples and staging. Its stores share one
/// authority, as the repositories of one registry do.
#[derive(Debug)]
pub struct MemoryCatalog {
    info: StoreInfo,
    stores: Mutex<BTreeMap<String, Arc<MemoryStore>>>,
}

impl MemoryCatalog {
    /// An empty catalog named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = name.into();
        Self {
            info: StoreInfo::new(
                "memory-catalog",
                format!("catalog-{}-{id}", std::process::id()),
                name,
            ),
            stores: Mutex::new(BTreeMap::new()),
        }
    }

    /// The store named `name`, created empty when missing.
    pub fn store(&self, name: &str) -> Arc<MemoryStore> {
        self.stores
            .lock()
            .expect("catalog lock")
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(MemoryStore::with_authority(&self.info.authority, name)))
            .clone()
    }

    /// The store named `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<Arc<MemoryStore>> {
        self.stores.lock().expect("catalog lock").get(name).cloned()
    }

    /// Every name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.stores
            .lock()
            .expect("catalog lock")
            .keys()
            .cloned()
            .collect()
    }
}

impl Display for MemoryCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "memory-catalog:{}", self.info.namespace)
    }
}

#[async_trait]
impl Catalog for MemoryCatalog {
    fn info(&self) -> &StoreInfo {
        &self.info
    }

    fn list(&self, prefix: &str) -> BoxStream<'static, Result<String>> {
        let names: Vec<Result<String>> = self
            .names()
            .into_iter()
            .filter(|n| n.starts_with(prefix))
            .map(Ok)
            .collect();
        Box::pin(futures::stream::iter(names))
    }

    /// The [`MemoryStore`] `name` is or would be: of the catalog's authority, named `name`.
    fn store_info(&self, name: &str) -> StoreInfo {
        MemoryStore::with_authority(&self.info.authority, name)
            .info()
            .clone()
    }

    async fn open_read(&self, name: &str) -> Result<Arc<dyn ReadStore>> {
        match self.get(name) {
            Some(s) => Ok(s),
            None => Err(Error::not_found(format!("store `{name}` in {self}"))),
        }
    }

    async fn open_write(&self, name: &str, create: bool) -> Result<Option<Arc<dyn WriteStore>>> {
        if create {
            return Ok(Some(self.store(name)));
        }
        Ok(self.get(name).map(|s| s as Arc<dyn WriteStore>))
    }
}
