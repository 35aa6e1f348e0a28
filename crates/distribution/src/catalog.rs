//! [`RegistryCatalog`]: the repositories of a registry as a [`ferry_core::Catalog`].

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::{Catalog, Error, ReadStore, Result, StoreInfo, WriteStore};
use futures::stream::BoxStream;
use url::Url;

use crate::auth::Scopes;
use crate::listing::{self, MAX_PAGES, PAGE_SIZE};
use crate::registry::Registry;

/// The repositories of one registry, listed with `GET /v2/_catalog` page after page (the
/// first repositories come while later pages are still being fetched) and opened as
/// [`crate::Repository`] stores. A registry creates a repository on its first push, so
/// [`Catalog::open_write`] always returns one.
///
/// Registries that do not serve their catalog to the identity used (Docker Hub, most public
/// registries) answer `401`, `403` or `404`, which the listing reports; name their
/// repositories one by one instead.
#[derive(Debug, Clone)]
pub struct RegistryCatalog {
    registry: Arc<Registry>,
    info: StoreInfo,
    page_size: usize,
}

impl RegistryCatalog {
    /// The catalog of `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        let info = StoreInfo::new(StoreInfo::REGISTRY, registry.name(), "");
        Self {
            registry,
            info,
            page_size: PAGE_SIZE,
        }
    }

    /// Asks for `n` repositories per page (default 1,000; the registry may answer fewer).
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = n.max(1);
        self
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }
}

impl std::fmt::Display for RegistryCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.registry.name())
    }
}

/// Where a listing is.
struct Listing {
    registry: Arc<Registry>,
    prefix: String,
    next: Option<Url>,
    names: VecDeque<String>,
    pages: usize,
}

impl Listing {
    async fn next_name(&mut self) -> Option<Result<String>> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            repositories: Option<Vec<String>>,
        }
        loop {
            if let Some(name) = self.names.pop_front() {
                return Some(Ok(name));
            }
            let url = self.next.take()?;
            let store = self.registry.name().to_string();
            if self.pages == MAX_PAGES {
                return Some(Err(listing::too_many_pages(&store, "list repositories")));
            }
            self.pages += 1;
            let page = match listing::page(
                &self.registry,
                url,
                &Scopes::catalog(),
                &store,
                "list repositories (`/v2/_catalog`)",
            )
            .await
            {
                Ok(p) => p,
                Err(e) => return Some(Err(catalog_error(&store, e))),
            };
            let parsed: Page = match serde_json::from_slice(&page.body) {
                Ok(p) => p,
                Err(e) => {
                    return Some(Err(Error::store(
                        &store,
                        format!("the repository list is not JSON: {e}"),
                    )));
                }
            };
            let names = parsed.repositories.unwrap_or_default();
            tracing::debug!(registry = %store, page = self.pages, repositories = names.len(), "catalog page");
            self.names.extend(
                names
                    .into_iter()
                    .filter(|n| n.starts_with(self.prefix.as_str())),
            );
            self.next = page.next;
        }
    }
}

/// A refused catalog, with what to do instead.
fn catalog_error(store: &str, error: Error) -> Error {
    match error {
        Error::NotFound { what, .. } => Error::NotFound {
            what,
            hint: Some(format!(
                "`{store}` does not serve its catalog; name its repositories one by one \
                 (HOST/REPO), or list them as entries of a mirror file"
            )),
        },
        other => other,
    }
}

#[async_trait]
impl Catalog for RegistryCatalog {
    fn info(&self) -> &StoreInfo {
        &self.info
    }

    fn list(&self, prefix: &str) -> BoxStream<'static, Result<String>> {
        let first = self
            .registry
            .url(&format!("v2/_catalog?n={}", self.page_size));
        let listing = Listing {
            registry: self.registry.clone(),
            prefix: prefix.to_string(),
            next: Some(first),
            names: VecDeque::new(),
            pages: 0,
        };
        Box::pin(futures::stream::unfold(Some(listing), |state| async move {
            let mut listing = state?;
            match listing.next_name().await? {
                Ok(name) => Some((Ok(name), Some(listing))),
                // An error ends the listing.
                Err(e) => Some((Err(e), None)),
            }
        }))
    }

    async fn open_read(&self, name: &str) -> Result<Arc<dyn ReadStore>> {
        Ok(self.registry.repository(name)?)
    }

    async fn open_write(&self, name: &str, _create: bool) -> Result<Option<Arc<dyn WriteStore>>> {
        Ok(Some(self.registry.repository(name)?))
    }
}
