//! [`CrossRepoMount`]: the OCI cross-repository blob mount
//! (`POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<repo>`).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::mount::Setting;
use ferry_core::{
    BlobMount, Digest, MountMethod, MountOutcome, MountPlan, MountRequest, MountStrategy,
    RegistryRepository, Result, StoreInfo, StrategyConfig, StrategyFactory,
};
use http::StatusCode;

use crate::auth::Scopes;
use crate::repository::Repository;
use crate::upload::UploadSession;

/// The mount strategy of OCI registries: asks the destination registry to link a blob from
/// another repository it serves, so no byte moves.
///
/// It applies to a destination that offers [`RegistryRepository`] among its
/// [`capabilities`](ferry_core::ReadStore::capabilities), as a [`Repository`] does, and any
/// wrapper around one that forwards its capabilities.
///
/// Candidates, in order, deduplicated, never the destination itself: the source repository
/// when it is on the destination's registry, the repositories of the same registry where the
/// blob-location cache saw the blob, then the repositories named with
/// [`CrossRepoMount::with_mount_from`]. A `201` is a mount. A `202` (the registry opened a
/// plain upload instead) on the last candidate is handed back as the prepared upload the
/// fallback copy streams into, so a failed mount costs no extra request; on an earlier
/// candidate the session is cancelled. `400`, `401`, `403`, `404` and any other refusal
/// mean "not mounted", never a failed copy.
///
/// The strategy needs no `HEAD` before mounting: a mount answers `201` for a blob the
/// destination already holds, so [`MountStrategy::probes_destination`] is true whenever it
/// will try.
///
/// With [`CrossRepoMount::with_destination_probe`], a blob no other repository is known to
/// hold is asked for with the destination itself as `from`: the registry answers `201` when
/// the repository holds it (reported as already present) and otherwise opens the upload
/// session the fallback copy streams into, so a new blob costs a `POST` and a `PUT` instead
/// of a `HEAD`, a `POST` and a `PUT`.
#[derive(Debug, Clone, Default)]
pub struct CrossRepoMount {
    mount_from: Vec<String>,
    anonymous: bool,
    probe: bool,
}

impl CrossRepoMount {
    /// The strategy with no extra repositories.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also tries these repositories (of the destination's registry), after the source and
    /// the cache's candidates.
    pub fn with_mount_from<I, S>(mut self, repositories: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.mount_from
            .extend(repositories.into_iter().map(Into::into));
        self
    }

    /// Also tries a mount without `from` last (registries that find the blob in any
    /// repository the identity may read, as the distribution spec allows).
    pub fn with_anonymous_mount(mut self, enabled: bool) -> Self {
        self.anonymous = enabled;
        self
    }

    /// Also asks the destination repository itself (as `from`) when no other candidate is
    /// known: `201` means the repository holds the blob, `202` opens the session the
    /// fallback copy streams into, in place of the engine's `HEAD`. Use it when no later
    /// strategy of the chain can bring a blob to a registry (such a strategy's mount would
    /// leave the session to be cancelled, one request more). A registry that refuses such a
    /// mount is asked with a `HEAD`.
    pub fn with_destination_probe(mut self, enabled: bool) -> Self {
        self.probe = enabled;
        self
    }

    fn destination<'a>(request: &'a MountRequest<'_>) -> Option<&'a dyn RegistryRepository> {
        request.destination.capabilities().registry_repository
    }

    /// The repositories to mount from, in order.
    fn candidates(&self, request: &MountRequest<'_>, dst: &dyn RegistryRepository) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |name: &str| {
            if name != dst.repository() && !name.is_empty() && !out.iter().any(|n| n == name) {
                out.push(name.to_string());
            }
        };
        let on_registry =
            |s: &StoreInfo| s.scheme == StoreInfo::REGISTRY && s.authority == dst.registry();
        let src = request.source.info();
        if on_registry(src) {
            add(&src.namespace);
        }
        for c in request.candidates {
            if on_registry(&c.store) {
                add(&c.store.namespace);
            }
        }
        for m in &self.mount_from {
            add(m);
        }
        out
    }
}

impl fmt::Display for CrossRepoMount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CrossRepoMount")?;
        if !self.mount_from.is_empty() {
            write!(f, "(from: {})", self.mount_from.join(", "))?;
        }
        if self.probe {
            f.write_str("+probe")?;
        }
        Ok(())
    }
}

#[async_trait]
impl MountStrategy for CrossRepoMount {
    fn name(&self) -> &str {
        "cross-repo"
    }

    fn probes_destination(&self, request: &MountRequest<'_>) -> bool {
        Self::destination(request).is_some_and(|dst| {
            self.probe || self.anonymous || !self.candidates(request, dst).is_empty()
        })
    }

    /// Reads only. The source repository, when on the destination's registry, holds the
    /// blob (the copy read it from the manifest there), so a mount from it is expected; so is
    /// one from a repository of that registry where the blob-location cache saw the blob. A
    /// repository named with [`CrossRepoMount::with_mount_from`] or an anonymous mount, with
    /// no such candidate, would be tried (only a `POST` tells); a probe of the destination
    /// itself is the engine's existence check, already made.
    async fn plan(&self, request: &MountRequest<'_>) -> Result<MountPlan> {
        let Some(dst) = Self::destination(request) else {
            return Ok(MountPlan::not_applicable(
                "the destination is not a registry repository",
            ));
        };
        let on_registry =
            |s: &StoreInfo| s.scheme == StoreInfo::REGISTRY && s.authority == dst.registry();
        let src = request.source.info();
        if on_registry(src) && src.namespace != dst.repository() {
            return Ok(MountPlan::would_mount(
                src.clone(),
                MountMethod::CrossRepository,
            ));
        }
        if let Some(cached) = request
            .candidates
            .iter()
            .find(|c| on_registry(&c.store) && c.store.namespace != dst.repository())
        {
            return Ok(MountPlan::would_mount(
                cached.store.clone(),
                MountMethod::CrossRepository,
            ));
        }
        let candidates = self.candidates(request, dst);
        if !candidates.is_empty() {
            return Ok(MountPlan::would_try(format!(
                "would ask `{}` to mount it from {}",
                dst.registry(),
                candidates
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if self.anonymous {
            return Ok(MountPlan::would_try(format!(
                "would ask `{}` to mount it from any repository",
                dst.registry()
            )));
        }
        Ok(MountPlan::not_applicable(format!(
            "no repository of `{}` is known to hold the blob",
            dst.registry()
        )))
    }

    async fn mount(&self, request: &MountRequest<'_>) -> Result<MountOutcome> {
        let Some(dst) = Self::destination(request) else {
            return Ok(MountOutcome::not_applicable(
                "the destination is not a registry repository",
            ));
        };
        let candidates = self.candidates(request, dst);
        if candidates.is_empty() && !self.anonymous {
            if self.probe {
                return self.probe_destination(request, dst).await;
            }
            return Ok(MountOutcome::not_applicable(format!(
                "no repository of `{}` is known to hold the blob",
                dst.registry()
            )));
        }
        let digest = request.descriptor.digest();
        let mut attempts: Vec<Option<&str>> = candidates.iter().map(|c| Some(c.as_str())).collect();
        if self.anonymous {
            attempts.push(None);
        }
        let mut reasons = Vec::new();
        let count = attempts.len();
        for (i, from) in attempts.into_iter().enumerate() {
            let last = i + 1 == count;
            let shown = from.unwrap_or("(any repository)");
            // One token for the destination and every repository mounted from, where the
            // token server grants it.
            let answer = dst.mount_blob(digest, from, &candidates).await;
            tracing::debug!(
                destination = %request.destination,
                from = shown,
                %digest,
                outcome = match &answer {
                    Ok(BlobMount::Mounted) => "mounted",
                    Ok(BlobMount::Upload(_)) => "upload session",
                    Ok(BlobMount::Refused(_)) => "refused",
                    Ok(_) => "other",
                    Err(_) => "error",
                },
                "cross-repo mount attempt"
            );
            match answer {
                Ok(BlobMount::Mounted) => {
                    let place = StoreInfo::new(
                        StoreInfo::REGISTRY,
                        dst.registry(),
                        from.unwrap_or_default(),
                    );
                    return Ok(MountOutcome::mounted(place, MountMethod::CrossRepository));
                }
                Ok(BlobMount::Upload(session)) => {
                    let reason = format!("`{shown}`: the registry opened an upload instead");
                    if last {
                        reasons.push(reason);
                        return Ok(MountOutcome::declined_with_upload(
                            reasons.join("; "),
                            session,
                        ));
                    }
                    if let Err(e) = session.cancel().await {
                        tracing::debug!(error = %e, "cancelling an unused upload session failed");
                    }
                    reasons.push(reason);
                }
                Ok(BlobMount::Refused(why)) => reasons.push(format!("`{shown}`: {why}")),
                Ok(other) => reasons.push(format!("`{shown}`: {other:?}")),
                // A mount that fails (refused token, broken connection) is not a failed copy:
                // the blob is streamed instead, and a real problem shows there.
                Err(e) => reasons.push(format!("`{shown}`: {e}")),
            }
        }
        Ok(MountOutcome::declined(reasons.join("; ")))
    }
}

impl CrossRepoMount {
    /// A mount from the destination itself: present (`201`), or the upload session to stream
    /// into (`202`); a registry that refuses it is asked with a `HEAD`.
    async fn probe_destination(
        &self,
        request: &MountRequest<'_>,
        dst: &dyn RegistryRepository,
    ) -> Result<MountOutcome> {
        let digest = request.descriptor.digest();
        let answer = dst.mount_blob(digest, Some(dst.repository()), &[]).await;
        tracing::debug!(destination = %request.destination, %digest, "probe by a mount from the destination itself");
        match answer {
            Ok(BlobMount::Mounted) => Ok(MountOutcome::AlreadyPresent),
            Ok(BlobMount::Upload(session)) => Ok(MountOutcome::declined_with_upload(
                format!(
                    "no repository of `{}` is known to hold the blob, and `{}` does not",
                    dst.registry(),
                    dst.repository()
                ),
                session,
            )),
            Ok(refusal) => {
                if request.destination.exists(request.descriptor).await? {
                    return Ok(MountOutcome::AlreadyPresent);
                }
                let why = match refusal {
                    BlobMount::Refused(why) => why,
                    other => format!("{other:?}"),
                };
                Ok(MountOutcome::declined(format!(
                    "no repository of `{}` is known to hold the blob (a probe of `{}` was \
                     refused: {why})",
                    dst.registry(),
                    dst.repository()
                )))
            }
            // Not a failed copy: the blob is streamed, and a real problem shows there.
            Err(e) => {
                if request.destination.exists(request.descriptor).await? {
                    return Ok(MountOutcome::AlreadyPresent);
                }
                Ok(MountOutcome::declined(format!(
                    "probing `{}` failed: {e}",
                    dst.repository()
                )))
            }
        }
    }
}

/// `POST /v2/<dst>/blobs/uploads/?mount=<digest>[&from=<repo>]`.
pub(crate) async fn mount_blob(
    dst: &Repository,
    digest: &Digest,
    from: Option<&str>,
    scopes: &Scopes,
) -> Result<BlobMount> {
    let mut url = dst.url("blobs/uploads/");
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("mount", digest.as_ref());
        if let Some(f) = from {
            q.append_pair("from", f);
        }
    }
    let (resp, opened) = dst
        .registry()
        .post_opening(url, dst.name(), scopes.clone())
        .await?;
    match resp.status() {
        StatusCode::CREATED => {
            dst.written().note(digest);
            Ok(BlobMount::Mounted)
        }
        StatusCode::ACCEPTED => Ok(BlobMount::Upload(Box::new(UploadSession::opened(
            dst,
            resp.headers(),
            opened,
        )?))),
        status => {
            let body = crate::transport::read_error_body(resp).await;
            let detail = crate::error::registry_errors(&body);
            Ok(BlobMount::Refused(if detail.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status} ({detail})")
            }))
        }
    }
}

/// [`CrossRepoMount`] by name (`cross-repo`), for applications that compose chains from
/// names ([`ferry_core::StrategyFactories`]).
///
/// Settings: `mount_from` (repositories to try after the source and the cached ones) and
/// `anonymous` (also try a mount without `from`). In a chain serving many images
/// ([`StrategyConfig::many_images`]) with no later strategy that reaches registries, it
/// probes the destination itself ([`CrossRepoMount::with_destination_probe`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct CrossRepoFactory;

impl CrossRepoFactory {
    /// The name it is registered by.
    pub const NAME: &'static str = "cross-repo";
}

impl StrategyFactory for CrossRepoFactory {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn summary(&self) -> &'static str {
        "the OCI cross-repository mount, inside the destination registry"
    }

    fn plan_label(&self) -> &'static str {
        "a repository of the destination registry: the source's, or one the blob-location \
         cache saw the blob in"
    }

    fn settings(&self) -> &'static [Setting] {
        const SETTINGS: &[Setting] = &[
            Setting::new(
                "mount_from",
                "other repositories of the destination registry to mount from",
            ),
            Setting::new("anonymous", "also try a mount without `from`, last"),
        ];
        SETTINGS
    }

    fn build(&self, config: &StrategyConfig) -> Result<Arc<dyn MountStrategy>> {
        let mount = CrossRepoMount::new()
            .with_mount_from(config.list(Self::NAME, "mount_from")?)
            .with_anonymous_mount(config.flag(Self::NAME, "anonymous")?)
            .with_destination_probe(config.many_images && !config.later_reaches_registries);
        Ok(Arc::new(mount))
    }
}
