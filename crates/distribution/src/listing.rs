//! Paged listings: a repository's tags (`/v2/<name>/tags/list`) and a registry's catalog
//! (`/v2/_catalog`), page after page by `Link: <…>; rel="next"`.

use bytes::Bytes;
use ferry_core::{Error, Result};
use http::{Method, StatusCode};
use url::Url;

use crate::auth::Scopes;
use crate::error::{has_error_code, has_registry_code, status_error};
use crate::registry::{Registry, Retry};
use crate::repository::next_link;
use crate::transport::{Req, read_body, read_error_body};
use oci_spec::distribution::ErrorCode;

/// Entries asked per page (`n`). A registry may answer fewer per page, and distribution
/// refuses an `n` above its limit, which is then left out.
pub(crate) const PAGE_SIZE: usize = 1000;

/// Pages followed at most; a longer listing is an error, never a silent cut.
pub(crate) const MAX_PAGES: usize = 10_000;

/// The most bytes of one page.
const PAGE_LIMIT: usize = 64 * 1024 * 1024;

/// One page of a listing.
pub(crate) struct Page {
    /// The body (JSON).
    pub body: Bytes,
    /// The next page, if any.
    pub next: Option<Url>,
}

/// `GET`s one page at `url`, the whole page asked again by the client's retry policy when its
/// body breaks on the way (a listing cut short must not cut a sync short). When the registry
/// refuses the page size (distribution answers `400 PAGINATION_NUMBER_INVALID` for an `n`
/// above its configured maximum), asks again without `n`, so the registry's own page size
/// applies.
pub(crate) async fn page(
    registry: &Registry,
    url: Url,
    scopes: &Scopes,
    store: &str,
    what: &str,
) -> Result<Page> {
    let policy = registry.transport.retry;
    crate::transport::retrying_broken(&policy, what, || {
        page_once(registry, url.clone(), scopes, store, what)
    })
    .await
}

async fn page_once(
    registry: &Registry,
    url: Url,
    scopes: &Scopes,
    store: &str,
    what: &str,
) -> Result<Page> {
    let mut url = url;
    loop {
        let resp = registry
            .send(Req::new(Method::GET, url.clone()), scopes, Retry::Yes)
            .await?;
        let status = resp.status();
        if status == StatusCode::OK {
            let next = match next_link(resp.headers()) {
                None => None,
                Some(link) => {
                    let next = url.join(&link).map_err(|e| {
                        Error::store(
                            store,
                            format!("{what}: the next page `{link}` is not a URL ({e})"),
                        )
                    })?;
                    if !registry.same_origin(&next) {
                        return Err(Error::store(
                            store,
                            format!(
                                "{what}: the registry named a next page on another host \
                                 (`{}`); refusing to follow it, so the listing is incomplete",
                                crate::transport::redact_url(&next)
                            ),
                        ));
                    }
                    Some(next)
                }
            };
            let body = read_body(resp, PAGE_LIMIT).await?;
            return Ok(Page { body, next });
        }
        let body = read_error_body(resp).await;
        let sized = url.query_pairs().any(|(k, _)| k == "n");
        if status == StatusCode::BAD_REQUEST
            && sized
            && has_registry_code(&body, "PAGINATION_NUMBER_INVALID")
        {
            tracing::debug!(
                what,
                "the registry refused the page size; asking with its own"
            );
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| k != "n")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if kept.is_empty() {
                url.set_query(None);
            } else {
                url.query_pairs_mut().clear().extend_pairs(kept);
            }
            continue;
        }
        if status == StatusCode::NOT_FOUND && has_error_code(&body, ErrorCode::NameUnknown) {
            // A repository name typed wrong: say so, once.
            return Err(Error::NotFound {
                what: format!("repository `{store}`"),
                hint: Some(
                    "the registry does not know it (NAME_UNKNOWN); check the repository name"
                        .into(),
                ),
            });
        }
        return Err(status_error(store, what, status, &body));
    }
}

/// The error for a listing longer than [`MAX_PAGES`].
pub(crate) fn too_many_pages(store: &str, what: &str) -> Error {
    Error::store(
        store,
        format!("{what}: more than {MAX_PAGES} pages; the listing is incomplete"),
    )
}
