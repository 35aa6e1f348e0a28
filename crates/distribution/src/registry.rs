//! One registry host: its base URL, its authentication state, and the request plumbing that
//! adds credentials only for the registry's own origin.

use std::sync::Arc;

use ferry_core::{Error, Result};
use ferry_http::ResponseBody;
use http::header::{AUTHORIZATION, LOCATION};
use http::{Method, Response, StatusCode};
use url::Url;

use crate::auth::{HostAuth, Scopes};
use crate::client::Settings;
use crate::repository::Repository;
use crate::transport::{Req, Transport, redact_url};
use oci_spec::distribution::ErrorCode;

/// How many times a stopped copy's upload session is asked to go (see
/// [`Registry::cancel_open_uploads`]).
const CANCEL_CONFIRMATIONS: u32 = 7;

/// How long cancelling waits for the answers to requests that may open sessions.
const SETTLE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// How many redirects a blob download follows.
const MAX_REDIRECTS: usize = 5;

/// One registry host, shared by all its [`Repository`]s: one connection pool (the client's),
/// one token cache.
pub struct Registry {
    name: String,
    base: Url,
    /// For a loopback registry reached by HTTPS: its plain-HTTP URL and whether it is in use.
    fallback: Option<Fallback>,
    pub(crate) auth: HostAuth,
    pub(crate) transport: Arc<Transport>,
    pub(crate) settings: Arc<Settings>,
    /// The upload sessions opened through this registry and not yet committed or cancelled.
    pub(crate) uploads: OpenUploads,
    /// Set once the registry showed that it serves no referrers API (a `404` that is not one
    /// of its own errors, a `405` or `501`): its referrers are read from the tag schema only.
    pub(crate) no_referrers_api: std::sync::atomic::AtomicBool,
}

/// Upload sessions a registry opened for ferry that are neither committed nor cancelled: a
/// session whose upload was stopped (its future dropped) stays here until
/// [`RegistryClient::cancel_open_uploads`](crate::RegistryClient::cancel_open_uploads)
/// cancels it, so a stopped copy leaves nothing behind at the registry.
#[derive(Debug, Default)]
pub(crate) struct OpenUploads {
    next: std::sync::atomic::AtomicU64,
    open: std::sync::Mutex<std::collections::HashMap<u64, (String, Url)>>,
    /// Requests that may open a session whose answer has not come yet.
    opening: tokio::sync::watch::Sender<usize>,
}

/// A request that may open a session is under way; dropping it says it is over.
pub(crate) struct Opening(tokio::sync::watch::Sender<usize>);

impl Drop for Opening {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl OpenUploads {
    /// Notes a request that may open a session until the returned guard is dropped.
    pub(crate) fn opening(&self) -> Opening {
        self.opening.send_modify(|n| *n += 1);
        Opening(self.opening.clone())
    }

    /// Returns once no request that may open a session is under way, or after `patience`.
    pub(crate) async fn settled(&self, patience: std::time::Duration) {
        let mut rx = self.opening.subscribe();
        let _ = tokio::time::timeout(patience, rx.wait_for(|n| *n == 0)).await;
    }

    /// Records the session at `location` of `repository`; returns its key.
    pub(crate) fn open(&self, repository: &str, location: &Url) -> u64 {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.open
            .lock()
            .expect("uploads lock")
            .insert(id, (repository.to_string(), location.clone()));
        id
    }

    /// The session `id` moved to `location` (a registry answers each chunk with the next URL).
    pub(crate) fn moved(&self, id: u64, location: &Url) {
        if let Some(entry) = self.open.lock().expect("uploads lock").get_mut(&id) {
            entry.1 = location.clone();
        }
    }

    /// The session `id` was committed or cancelled.
    pub(crate) fn closed(&self, id: u64) {
        self.open.lock().expect("uploads lock").remove(&id);
    }

    /// Every session still open, forgotten here.
    pub(crate) fn take(&self) -> Vec<(String, Url)> {
        self.open
            .lock()
            .expect("uploads lock")
            .drain()
            .map(|(_, v)| v)
            .collect()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("name", &self.name)
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// How a registry on this machine (`localhost`, `127.0.0.0/8`, `::1`) that answers the TLS
/// handshake in plain HTTP is spoken to: as docker and crane do, in plain HTTP from then on.
#[derive(Debug)]
struct Fallback {
    plain: Url,
    /// 0: not known yet, 1: TLS works, 2: plain HTTP.
    state: std::sync::atomic::AtomicU8,
}

const UNKNOWN: u8 = 0;
const TLS: u8 = 1;
const PLAIN: u8 = 2;

/// Whether a request may be sent again when it fails on the way (429, 5xx, a broken
/// connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    Yes,
    No,
}

impl Registry {
    pub(crate) fn new(
        name: String,
        base: Url,
        auth: HostAuth,
        transport: Arc<Transport>,
        settings: Arc<Settings>,
    ) -> Self {
        let fallback = (base.scheme() == "https"
            && base.host_str().is_some_and(ferry_http::is_loopback))
        .then(|| {
            let mut plain = base.clone();
            let _ = plain.set_scheme("http");
            Fallback {
                plain,
                state: std::sync::atomic::AtomicU8::new(UNKNOWN),
            }
        });
        Self {
            name,
            base,
            fallback,
            auth,
            transport,
            settings,
            uploads: OpenUploads::default(),
            no_referrers_api: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Cancels (`DELETE`) every upload session opened through this registry that is neither
    /// committed nor cancelled yet; returns how many are gone.
    ///
    /// A session whose upload was cut mid-body may still be written to by the registry's own
    /// handler of that upload for a moment after the cut, and distribution 2.8 answers such a
    /// session (its size no longer the one its URL states) with `404 BLOB_UPLOAD_INVALID`,
    /// removing it as it does. So each session is asked again, with growing pauses, until the
    /// registry says it does not know it (`BLOB_UPLOAD_UNKNOWN`), a few times at most.
    pub(crate) async fn cancel_open_uploads(&self) -> usize {
        // A session whose opening answer is still on its way is recorded when it comes.
        self.uploads.settled(SETTLE_PATIENCE).await;
        // Every session at once, each asked again over about 3 s: a request the stop cut may
        // still be running at the registry, and what it writes when it ends goes with the
        // next confirmation.
        let cancels = self.uploads.take().into_iter().map(|(repository, location)| async move {
            let shown = crate::transport::message_url(&location);
            let mut pause = std::time::Duration::from_millis(50);
            for attempt in 1..=CANCEL_CONFIRMATIONS {
                let req = Req::new(Method::DELETE, location.clone());
                let resp = match self.send(req, &Scopes::push(&repository), Retry::No).await {
                    Ok(resp) => resp,
                    Err(e) => {
                        tracing::debug!(registry = %self.name, upload = %shown, error = %e, "cancelling an open upload session failed");
                        return 0;
                    }
                };
                let status = resp.status();
                let body = crate::transport::read_error_body(resp).await;
                let unknown = status == StatusCode::NOT_FOUND
                    && crate::error::has_error_code(&body, ErrorCode::BlobUploadUnknown);
                tracing::debug!(registry = %self.name, upload = %shown, status = status.as_u16(), attempt, "cancelling an open upload session");
                if unknown {
                    return 1;
                }
                if !(status.is_success() || status == StatusCode::NOT_FOUND) {
                    return 0;
                }
                if attempt == CANCEL_CONFIRMATIONS {
                    return 1;
                }
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            1
        });
        futures::future::join_all(cancels).await.into_iter().sum()
    }

    /// Sends the `POST` to `url` that may open an upload session of `repository` (a plain
    /// start, or a mount the registry may answer with a session), in a task of its own: a
    /// session it opens is recorded among the open uploads as soon as its answer comes, even
    /// when the copy that asked was stopped meanwhile, so that
    /// [`Registry::cancel_open_uploads`] finds it. Returns the answer and, for a session, its
    /// key and location.
    pub(crate) async fn post_opening(
        self: &Arc<Self>,
        url: Url,
        repository: &str,
        scopes: Scopes,
    ) -> Result<(Response<ResponseBody>, Option<(u64, Url)>)> {
        let registry = self.clone();
        let repository = repository.to_string();
        let opening = self.uploads.opening();
        let task = tokio::spawn(async move {
            let _opening = opening;
            let resp = registry
                .send(Req::new(Method::POST, url.clone()), &scopes, Retry::Yes)
                .await?;
            let location = (resp.status() == StatusCode::ACCEPTED)
                .then(|| resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()))
                .flatten()
                .map(|l| registry.upload_location(&url, l))
                .transpose()?;
            let opened = location.map(|l| (registry.uploads.open(&repository, &l), l));
            Ok::<_, Error>((resp, opened))
        });
        task.await.map_err(|e| {
            Error::store(&self.name, format!("the upload request's task ended: {e}"))
        })?
    }

    /// The registry as named (`localhost:5000`, `docker.io`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The base URL of its API (`https://registry-1.docker.io/`); `http://` for a registry
    /// on this machine that answered the TLS handshake in plain HTTP.
    pub fn base_url(&self) -> &Url {
        match &self.fallback {
            Some(f) if f.state.load(std::sync::atomic::Ordering::Relaxed) == PLAIN => &f.plain,
            _ => &self.base,
        }
    }

    /// Repository `name` of this registry.
    pub fn repository(self: &Arc<Self>, name: &str) -> Result<Arc<Repository>> {
        crate::reference::validate_repository(name)?;
        Ok(Repository::new(self.clone(), name))
    }

    /// `base` + `path` (which starts with `v2/`).
    pub(crate) fn url(&self, path: &str) -> Url {
        self.base_url()
            .join(path)
            .expect("registry paths are valid URLs")
    }

    /// Whether `url` is served by this registry's origin (scheme, host and port).
    pub(crate) fn same_origin(&self, url: &Url) -> bool {
        let base = self.base_url();
        url.scheme() == base.scheme()
            && url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default()
    }

    /// An upload `Location` resolved against `current`, refused when it names another host
    /// or downgrades HTTPS.
    pub(crate) fn upload_location(&self, current: &Url, location: &str) -> Result<Url> {
        let url = current.join(location).map_err(|e| {
            Error::store(
                &self.name,
                format!(
                    "the registry gave an upload location `{location}` that is not a URL ({e})"
                ),
            )
        })?;
        let downgrade = self.base_url().scheme() == "https" && url.scheme() != "https";
        if downgrade || !self.same_origin(&url) {
            return Err(Error::Store {
                store: self.name.clone(),
                message: format!(
                    "the registry gave an upload location `{}` on another host or scheme than `{}`; \
                     refusing to send blob data there (check the registry's public URL setting)",
                    redact_url(&url),
                    self.base_url()
                ),
                temporary: false,
                source: None,
            });
        }
        Ok(url)
    }

    /// Sends `req`, with `Authorization` when its URL is this registry's, answering one 401
    /// challenge by authenticating and sending it again (when the body allows).
    pub(crate) async fn send(
        &self,
        req: Req,
        scopes: &Scopes,
        retry: Retry,
    ) -> Result<Response<ResponseBody>> {
        let mut req = req;
        let ours = self.same_origin(&req.url);
        let auth = if ours {
            self.auth.header(scopes).await?
        } else {
            None
        };
        if let Some(h) = &auth {
            req.headers.insert(AUTHORIZATION, h.clone());
        } else {
            req.headers.remove(AUTHORIZATION);
        }
        let again = if ours { req.try_clone() } else { None };
        let resp = self.send_as(req, retry).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let Some(mut again) = again else {
            return Ok(resp);
        };
        match self
            .auth
            .on_unauthorized(resp.headers(), scopes, auth.as_ref())
            .await?
        {
            Some(h) => {
                drop(resp);
                again.headers.insert(AUTHORIZATION, h);
                self.send_as(again, retry).await
            }
            None => Ok(resp),
        }
    }

    /// One request through the transport, with its retries or without; a loopback registry
    /// that answers the TLS handshake in plain HTTP is asked again in plain HTTP.
    async fn send_as(&self, req: Req, retry: Retry) -> Result<Response<ResponseBody>> {
        use std::sync::atomic::Ordering;
        let probing = self
            .fallback
            .as_ref()
            .filter(|f| f.state.load(Ordering::Relaxed) == UNKNOWN && req.url.scheme() == "https")
            .filter(|_| self.same_origin(&req.url));
        let again = probing.and_then(|_| req.try_clone());
        let result = self.send_via_transport(req, retry).await;
        let (Some(fallback), Some(mut again)) = (probing, again) else {
            return result;
        };
        match result {
            Err(Error::Transport {
                kind: ferry_core::TransportErrorKind::PlainHttp,
                ..
            }) => {
                fallback.state.store(PLAIN, Ordering::Relaxed);
                tracing::info!(
                    registry = %self.name,
                    "the registry answered the TLS handshake in plain HTTP; it is on this machine, so ferry speaks plain HTTP to it"
                );
                let _ = again.url.set_scheme("http");
                self.send_via_transport(again, retry).await
            }
            Ok(resp) => {
                fallback.state.store(TLS, Ordering::Relaxed);
                Ok(resp)
            }
            other => other,
        }
    }

    async fn send_via_transport(&self, req: Req, retry: Retry) -> Result<Response<ResponseBody>> {
        match retry {
            Retry::Yes => self.transport.send(req).await,
            Retry::No => self.transport.send_once(req).await,
        }
    }

    /// Sends a `GET` or `HEAD`, following redirects (to object storage, a CDN). The
    /// registry's credentials go only to the registry's own origin, never to a redirect target
    /// elsewhere.
    pub(crate) async fn send_following(
        &self,
        req: Req,
        scopes: &Scopes,
    ) -> Result<Response<ResponseBody>> {
        let mut req = req;
        for _ in 0..=MAX_REDIRECTS {
            let method = req.method.clone();
            let url = req.url.clone();
            let req_bulk = req.bulk;
            let mut headers = req.headers.clone();
            headers.remove(AUTHORIZATION);
            let resp = self.send(req, scopes, Retry::Yes).await?;
            let status = resp.status();
            let redirect = matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308);
            if !redirect {
                return Ok(resp);
            }
            let Some(location) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) else {
                return Ok(resp);
            };
            let next = url.join(location).map_err(|e| {
                Error::store(
                    &self.name,
                    format!(
                        "redirect to `{}` is not a URL ({e})",
                        ferry_core::redact::url(location)
                    ),
                )
            })?;
            if url.scheme() == "https" && next.scheme() != "https" {
                return Err(Error::store(
                    &self.name,
                    format!("refusing a redirect from HTTPS to `{}`", redact_url(&next)),
                ));
            }
            tracing::debug!(from = %redact_url(&url), to = %redact_url(&next), "following redirect");
            let method = if status == StatusCode::SEE_OTHER && method != Method::HEAD {
                Method::GET
            } else {
                method
            };
            req = Req {
                method,
                url: next,
                headers,
                body: crate::transport::Payload::Empty,
                bulk: req_bulk,
            };
        }
        Err(Error::store(
            &self.name,
            format!("more than {MAX_REDIRECTS} redirects; the registry or its storage loops"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Credentials;
    use crate::transport::RetryPolicy;

    fn registry(base: &str) -> Registry {
        let transport = Arc::new(
            Transport::new(
                ferry_http::TlsPolicy::new(),
                Some(ferry_http::ProxyPolicy::none()),
                "t",
                Default::default(),
                RetryPolicy::default(),
                Default::default(),
            )
            .unwrap(),
        );
        Registry::new(
            "r.example".into(),
            Url::parse(base).unwrap(),
            HostAuth::new(
                "r.example",
                Credentials::anonymous(),
                transport.clone(),
                Arc::new(crate::auth::SystemClock),
            ),
            transport,
            Arc::new(Settings {
                chunk_threshold: 1,
                chunk_size: 1,
                resolve_with_head: false,
                verify_uploads: true,
                range_threshold: u64::MAX,
                range_size: 1,
                ranges: 1,
                one_stream_rate: u64::MAX,
            }),
        )
    }

    #[test]
    fn upload_locations_stay_on_the_registry() {
        let r = registry("https://r.example/");
        let cur = r.url("v2/a/blobs/uploads/");
        assert_eq!(
            r.upload_location(&cur, "/v2/a/blobs/uploads/u1?_state=x")
                .unwrap()
                .as_str(),
            "https://r.example/v2/a/blobs/uploads/u1?_state=x"
        );
        assert!(r.upload_location(&cur, "u2").is_ok());
        assert!(
            r.upload_location(&cur, "https://r.example:443/v2/x")
                .is_ok()
        );
        assert!(
            r.upload_location(&cur, "https://evil.example/v2/x")
                .is_err()
        );
        assert!(r.upload_location(&cur, "http://r.example/v2/x").is_err());
        assert!(
            r.upload_location(&cur, "https://r.example:8443/v2/x")
                .is_err()
        );
    }
}
