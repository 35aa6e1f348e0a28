//! The complete strategy of `docs/writing-a-mount-strategy.md`: a registry's admin API links
//! a blob between repositories on the storage they share, with ferry-core's layers for the
//! timeout, the rest after a silent API, and tracing.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use ferry_core::layer::MountStrategyExt;
use ferry_core::{MountChain, MountMethod, MountOutcome, MountRequest, MountStrategy, Result};
use ferry_core::{StoreInfo, redact};
use ferry_http::{Body, HttpClient, HttpClientBuilder};
use http::{Request, StatusCode, header};

/// Asks `POST {api}/admin/link` to link a blob from the copy's source repository into the
/// destination repository (see [`crate::admin_link`] for the API).
#[derive(Debug, Clone)]
pub struct LinkApiMount {
    api: String,
    client: HttpClient,
}

impl LinkApiMount {
    /// The strategy for the admin API at `api` (`https://host:port`, or `http://`), trusted
    /// by ferry's TLS root policy (the system's roots).
    pub fn new(api: &str) -> Result<Self> {
        let client = HttpClientBuilder::new().build()?;
        let api = api.trim_end_matches('/').to_string();
        Ok(Self { api, client })
    }

    /// The source and destination when both are registry repositories.
    fn stores<'a>(request: &'a MountRequest<'_>) -> Option<(&'a StoreInfo, &'a StoreInfo)> {
        let (src, dst) = (request.source.info(), request.destination.info());
        let registry = |s: &StoreInfo| s.scheme == StoreInfo::REGISTRY;
        (registry(src) && registry(dst) && src != dst).then_some((src, dst))
    }
}

impl fmt::Display for LinkApiMount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkApiMount({})", redact::url(&self.api))
    }
}

#[async_trait]
impl MountStrategy for LinkApiMount {
    fn name(&self) -> &str {
        "link-api"
    }

    /// A `409` says the destination holds the blob: the engine need not check it first.
    fn probes_destination(&self, request: &MountRequest<'_>) -> bool {
        Self::stores(request).is_some()
    }

    async fn mount(&self, request: &MountRequest<'_>) -> Result<MountOutcome> {
        let Some((src, dst)) = Self::stores(request) else {
            return Ok(MountOutcome::not_applicable("not between two registries"));
        };
        let body = serde_json::json!({
            "digest": request.descriptor.digest().to_string(),
            "size": request.descriptor.size(),
            "source": {"registry": src.authority, "repository": src.namespace},
            "target": {"registry": dst.authority, "repository": dst.namespace},
        });
        let post = Request::post(format!("{}/admin/link", self.api))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()));
        let Ok(post) = post else {
            return Ok(MountOutcome::not_applicable("the API URL is not usable"));
        };
        let answer = self.client.send(post).await;
        let api = redact::url(&self.api);
        tracing::debug!(%api, digest = %request.descriptor.digest(), ok = answer.is_ok(), "link request");
        Ok(match answer.map(|response| response.status()) {
            Err(e) => MountOutcome::unreachable(format!("`{api}` did not answer: {e}")),
            Ok(StatusCode::CREATED) => MountOutcome::mounted(src, MountMethod::other("api link")),
            Ok(StatusCode::CONFLICT) => MountOutcome::AlreadyPresent,
            Ok(status) => MountOutcome::declined(format!("`{api}` answered {status}")),
        })
    }
}

/// The chain to register: attempts limited to 10 s, a silent API left alone for 30 s,
/// every attempt traced; the blobs it cannot link are streamed.
pub fn chain(api: &str) -> Result<MountChain> {
    let strategy = LinkApiMount::new(api)?
        .with_timeout(Duration::from_secs(10))
        .resting_after_failure(Duration::from_secs(30))
        .traced();
    Ok(MountChain::new().with(strategy))
}
