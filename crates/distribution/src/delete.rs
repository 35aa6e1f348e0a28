//! Deleting a tag of a repository: [`ferry_core::DeleteTag`] for [`Repository`].
//!
//! OCI distribution 1.1 deletes a tag with `DELETE /v2/<name>/manifests/<tag>`. Registries
//! that predate it (CNCF distribution 2.x answers `400 DIGEST_INVALID`) delete only by
//! digest, which removes the manifest and every tag naming it. ferry then deletes by digest
//! only when no other tag of the repository names that manifest or an index holding it, and
//! otherwise refuses, naming the tag that would go too: deleting one tag never removes
//! content another tag still names.

use async_trait::async_trait;
use ferry_core::model::is_index;
use ferry_core::{DeleteManifest, DeleteTag, Digest, Error, Manifest, Peek, Result};
use http::{Method, StatusCode};

use crate::auth::Scopes;
use crate::error::{has_error_code, registry_errors, status_error};
use crate::registry::Retry;
use crate::repository::Repository;
use crate::transport::{Req, read_error_body};
use oci_spec::distribution::ErrorCode;

#[async_trait]
impl DeleteManifest for Repository {
    /// `DELETE` by digest: the registry removes the manifest and every tag naming it.
    async fn delete_manifest(&self, digest: &Digest) -> Result<()> {
        self.delete_digest(digest, "manifest").await
    }
}

#[async_trait]
impl DeleteTag for Repository {
    async fn delete_tag(&self, tag: &str) -> Result<()> {
        crate::reference::validate_tag(tag)?;
        let what = format!("DELETE tag `{tag}`");
        let req = Req::new(Method::DELETE, self.url(&format!("manifests/{tag}")));
        let resp = self
            .send(req, &Scopes::delete(self.name()), Retry::Yes)
            .await?;
        let status = resp.status();
        if status.is_success() {
            tracing::debug!(repository = %self, tag, "tag deleted");
            return Ok(());
        }
        let body = read_error_body(resp).await;
        match status {
            // With credentials, a refusal after asking for the delete action means they lack
            // it (a token server grants only what the policy allows): say so, not "log in".
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(self.refused_delete(&what, status, &body).await);
            }
            StatusCode::NOT_FOUND if has_error_code(&body, ErrorCode::ManifestUnknown) => {
                return Err(Error::not_found(format!(
                    "tag `{tag}` in `{}`",
                    self.store_name()
                )));
            }
            // 400 (distribution 2.x: DIGEST_INVALID), 405, a 404 without a code: the
            // registry deletes by digest only.
            StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_FOUND => {}
            _ => return Err(status_error(self.store_name(), &what, status, &body)),
        }
        tracing::debug!(
            repository = %self,
            tag,
            status = status.as_u16(),
            "the registry does not delete tags; deleting by digest where no other tag needs it"
        );
        self.delete_by_digest(tag).await
    }
}

impl Repository {
    async fn delete_by_digest(&self, tag: &str) -> Result<()> {
        let target = Peek::peek(self, tag).await.map_err(|e| match e {
            Error::NotFound { .. } => {
                Error::not_found(format!("tag `{tag}` in `{}`", self.store_name()))
            }
            other => other,
        })?;
        let digest = target.digest();
        let refuse = |reason: String| Error::NotSupported {
            store: self.store_name().to_string(),
            operation: format!(
                "deleting tag `{tag}` alone: the registry deletes only by digest, which would \
                 also remove {reason}; nothing was deleted"
            ),
        };
        for other in self.tags().await? {
            if other == tag {
                continue;
            }
            let named = match Peek::peek(self, &other).await {
                Ok(d) => d,
                // Deleted meanwhile.
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            if named.digest() == digest {
                return Err(refuse(format!(
                    "tag `{other}` (it names the same manifest `{digest}`)"
                )));
            }
            if is_index(named.media_type().as_ref()) {
                let (descriptor, bytes) = self.get_manifest(named.digest().as_ref()).await?;
                let index = Manifest::parse(&descriptor, bytes)?;
                if index.manifests.iter().any(|m| m.digest() == digest) {
                    return Err(refuse(format!(
                        "a manifest of tag `{other}` (its index `{}` lists `{digest}`)",
                        named.digest()
                    )));
                }
            }
        }
        self.delete_digest(digest, &format!("tag `{tag}`")).await
    }

    /// `DELETE /v2/<name>/manifests/<digest>`, for `purpose` (`tag `v1``, `manifest`): the
    /// registry removes the manifest and every tag naming it.
    async fn delete_digest(&self, digest: &Digest, purpose: &str) -> Result<()> {
        let what = format!("DELETE manifest `{digest}` ({purpose})");
        let req = Req::new(Method::DELETE, self.url(&format!("manifests/{digest}")));
        let resp = self
            .send(req, &Scopes::delete(self.name()), Retry::Yes)
            .await?;
        let status = resp.status();
        if status.is_success() {
            tracing::debug!(repository = %self, %digest, purpose, "manifest deleted");
            return Ok(());
        }
        let body = read_error_body(resp).await;
        if status == StatusCode::METHOD_NOT_ALLOWED || has_error_code(&body, ErrorCode::Unsupported)
        {
            return Err(Error::NotSupported {
                store: self.store_name().to_string(),
                operation: format!(
                    "deleting {purpose}: the registry refuses deletes (CNCF distribution: \
                     set `storage.delete.enabled: true`)"
                ),
            });
        }
        if status == StatusCode::NOT_FOUND {
            return Err(Error::not_found(format!(
                "manifest `{digest}` in `{}`",
                self.store_name()
            )));
        }
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(self.refused_delete(&what, status, &body).await);
        }
        Err(status_error(self.store_name(), &what, status, &body))
    }

    /// The error for a delete the registry refused with 401 or 403: with credentials, they
    /// lack the delete right, which is named.
    async fn refused_delete(&self, what: &str, status: StatusCode, body: &[u8]) -> Error {
        if !self.registry().auth.has_credential().await {
            return status_error(self.store_name(), what, status, body);
        }
        let said = registry_errors(body);
        let said = if said.is_empty() {
            String::new()
        } else {
            format!(" ({said})")
        };
        Error::PermissionDenied {
            store: self.store_name().to_string(),
            message: format!(
                "{what}: the registry answered {}{said} to the credentials given, which may not \
                 delete in `{}`; deleting needs the registry's delete right for them (token \
                 scope `repository:{}:delete`)",
                status.as_u16(),
                self.name(),
                self.name()
            ),
        }
    }
}
