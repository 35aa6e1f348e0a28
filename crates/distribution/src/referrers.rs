//! Referrers: the OCI referrers API (`GET /v2/<name>/referrers/<digest>`), and the tag
//! schema fallback (an index tagged `<alg>-<hex>`) for registries without it.

use bytes::Bytes;
use ferry_core::model::OCI_INDEX;
use ferry_core::{Descriptor, Error, Manifest, Result};
use http::header::ACCEPT;
use http::{Method, StatusCode};

use crate::auth::Scopes;
use crate::error::registry_errors;
use crate::registry::Retry;
use crate::repository::{Repository, next_link};
use crate::transport::{Req, read_body, read_error_body};

const PAGE_LIMIT: usize = 4 * 1024 * 1024;
const MAX_PAGES: usize = 100;

#[derive(serde::Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// The tag of the fallback index for `subject`: `<alg>-<hex>`, at most 128 characters.
pub fn fallback_tag(subject: &Descriptor) -> String {
    let d = subject.digest();
    let mut tag = format!("{}-{}", d.algorithm(), d.digest());
    tag.truncate(128);
    tag
}

/// The referrers of `subject` in `repo`: through the referrers API, else (and from then on,
/// once the registry showed it has no such API) the tag-schema index.
pub(crate) async fn list(repo: &Repository, subject: &Descriptor) -> Result<Vec<Descriptor>> {
    use std::sync::atomic::Ordering;
    let no_api = &repo.registry().no_referrers_api;
    if no_api.load(Ordering::Relaxed) {
        return fallback(repo, subject).await;
    }
    let mut url = repo.url(&format!("referrers/{}", subject.digest()));
    let mut out = Vec::new();
    for page in 0..MAX_PAGES {
        let req = Req::new(Method::GET, url.clone()).header(ACCEPT, OCI_INDEX);
        let resp = repo
            .send(req, &Scopes::pull(repo.name()), Retry::Yes)
            .await?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND
            | StatusCode::BAD_REQUEST
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::NOT_IMPLEMENTED
                if page == 0 =>
            {
                let status = resp.status();
                // A route the registry does not have, as opposed to an answer of the API
                // (`NAME_UNKNOWN` for a repository it does not know).
                let route_unknown = match status {
                    StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED => true,
                    StatusCode::NOT_FOUND => {
                        registry_errors(&read_error_body(resp).await).is_empty()
                    }
                    _ => false,
                };
                if route_unknown && !no_api.swap(true, Ordering::Relaxed) {
                    tracing::debug!(registry = %repo.registry().name(), status = status.as_u16(), "no referrers API; reading the tag schema from now on");
                }
                return fallback(repo, subject).await;
            }
            _ => {
                return Err(crate::transport::response_error(
                    repo.store_name(),
                    &format!("referrers of `{}`", subject.digest()),
                    resp,
                )
                .await);
            }
        }
        let next = next_link(resp.headers()).and_then(|l| url.join(&l).ok());
        let body = read_body(resp, PAGE_LIMIT).await?;
        let index: Index = serde_json::from_slice(&body).map_err(|e| {
            Error::store(
                repo.store_name(),
                format!(
                    "the referrers of `{}` are not an index: {e}",
                    subject.digest()
                ),
            )
        })?;
        out.extend(index.manifests);
        match next {
            Some(n) if repo.registry().same_origin(&n) => url = n,
            _ => break,
        }
    }
    Ok(out)
}

async fn fallback(repo: &Repository, subject: &Descriptor) -> Result<Vec<Descriptor>> {
    match repo.get_manifest(&fallback_tag(subject)).await {
        Ok((_, bytes)) => Ok(serde_json::from_slice::<Index>(&bytes)
            .map(|i| i.manifests)
            .unwrap_or_default()),
        Err(Error::NotFound { .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Adds `referrer` to the fallback index of `subject` (read, modify, write).
pub(crate) async fn add_to_fallback_index(
    repo: &Repository,
    subject: &Descriptor,
    referrer: &Manifest,
) -> Result<()> {
    let tag = fallback_tag(subject);
    let mut index = match repo.get_manifest(&tag).await {
        Ok((_, bytes)) => serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .filter(|v| v.get("manifests").is_some_and(|m| m.is_array()))
            .unwrap_or_else(empty_index),
        Err(Error::NotFound { .. }) => empty_index(),
        Err(e) => return Err(e),
    };
    let digest = referrer.descriptor.digest().to_string();
    let manifests = index["manifests"].as_array_mut().expect("checked array");
    if manifests
        .iter()
        .any(|m| m.get("digest").and_then(|d| d.as_str()) == Some(digest.as_str()))
    {
        return Ok(());
    }
    let mut entry = serde_json::json!({
        "mediaType": referrer.descriptor.media_type().to_string(),
        "digest": digest,
        "size": referrer.descriptor.size(),
    });
    if let Some(t) = &referrer.artifact_type {
        entry["artifactType"] = serde_json::Value::String(t.clone());
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&referrer.bytes)
        && let Some(a) = v.get("annotations").filter(|a| a.is_object())
    {
        entry["annotations"] = a.clone();
    }
    manifests.push(entry);
    let bytes = Bytes::from(serde_json::to_vec(&index).map_err(|e| {
        Error::store(
            repo.store_name(),
            format!("cannot write the referrers index: {e}"),
        )
    })?);
    tracing::debug!(store = %repo, %tag, referrer = %digest, "updating the referrers tag");
    repo.put_manifest(&tag, OCI_INDEX, bytes).await?;
    Ok(())
}

fn empty_index() -> serde_json::Value {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [],
    })
}
