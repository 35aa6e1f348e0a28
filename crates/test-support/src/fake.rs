//! An in-memory OCI distribution server, for what a real registry cannot be made to do.
//!
//! This is a fake, kept on purpose: the real CNCF distribution registry ([`crate::Registry`])
//! is what tests should use for ordinary behaviour. The fake exists because a test sometimes
//! needs a registry that answers in a way distribution 2.8 never does, or needs every request
//! with its headers:
//!
//! - answering a cross-repository mount with 202 always, or with 400/401/403/404, as Harbor,
//!   Docker Hub and Quay do ([`MountBehaviour`]);
//! - redirecting blob GETs to another host, to check that credentials are not forwarded there
//!   ([`FakeRegistry::redirect_blobs_to`] with a [`BlobHost`]);
//! - dropping the connection in the middle of a chunked upload, then reporting how much it
//!   kept, to exercise resumption ([`FakeRegistry::break_patch_after`]);
//! - announcing `OCI-Chunk-Min-Length`, and the OCI 1.1 referrers API that distribution 2.8
//!   lacks ([`FakeRegistry::referrers_api`]);
//! - recording every request with all its headers, so a test can check where `Authorization`
//!   was sent ([`FakeRegistry::requests`]);
//! - announcing a quota of pulls in `ratelimit-limit`, `ratelimit-remaining` and
//!   `ratelimit-reset`, and refusing pulls beyond it with 429, as Docker Hub does
//!   ([`FakeRegistryBuilder::pull_quota`]): no Docker Hub can be reached from the tests, and
//!   distribution sends no such headers.
//!
//! It implements `GET /v2/`; manifests GET/HEAD/PUT/DELETE by tag or digest; blobs GET (with
//! `Range`)/HEAD/DELETE; uploads `POST` (plain, `?mount=&from=`, monolithic `?digest=`),
//! `PATCH`, `PUT ?digest=`, `GET` (status) and `DELETE`; the referrers API; tag listing. It
//! serves manifests whatever the `Accept` header says, and checks digests (sha256 only).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use ferry_core::{Descriptor, sha256};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::json;

use crate::error::Result;
use crate::fixtures::Content;
use crate::util::{BackgroundServer, DropConnection, ServerResponse};

/// How the fake answers `POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<repo>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MountBehaviour {
    /// 201 when the `from` repository holds the blob (it is linked), else 202 with an open
    /// upload session, as distribution does.
    #[default]
    Normal,
    /// Always 202 with an open upload session, as registries that never mount do.
    Always202,
    /// Always this status (such as 400, 401, 403 or 404) with an OCI error body.
    Status(u16),
}

/// One request the fake (or a [`BlobHost`]) received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The method, such as `PATCH`.
    pub method: String,
    /// The path, such as `/v2/foo/blobs/uploads/3`.
    pub path: String,
    /// The query string without `?`, empty when there was none.
    pub query: String,
    /// Every request header.
    pub headers: HeaderMap,
    /// When it came, by the fake's clock ([`FakeRegistryBuilder::pull_quota`]'s, else the
    /// system's).
    pub at: std::time::Instant,
}

impl RecordedRequest {
    /// The value of header `name`, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the request carried an `Authorization` header.
    pub fn has_authorization(&self) -> bool {
        self.headers.contains_key(http::header::AUTHORIZATION)
    }

    /// The value of query parameter `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

fn record(req: &Request<Incoming>, at: std::time::Instant) -> RecordedRequest {
    RecordedRequest {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        query: req.uri().query().unwrap_or("").to_string(),
        headers: req.headers().clone(),
        at,
    }
}

/// The clock a fake reads: the system's, or one a test moves.
pub type FakeClock = Arc<dyn Fn() -> std::time::Instant + Send + Sync>;

/// A quota of pulls (manifest `GET`s) per fixed window, which starts at the first pull.
#[derive(Clone)]
struct PullQuota {
    limit: u64,
    window: std::time::Duration,
    started: Option<std::time::Instant>,
    used: u64,
    /// Pulls answered, and those refused with 429.
    pulls: Vec<std::time::Instant>,
    refused: Vec<std::time::Instant>,
}

impl std::fmt::Debug for PullQuota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullQuota")
            .field("limit", &self.limit)
            .field("window", &self.window)
            .field("used", &self.used)
            .finish_non_exhaustive()
    }
}

impl PullQuota {
    /// Counts a request at `now`: whether it is a pull refused, and the headers to answer
    /// with either way.
    fn count(&mut self, pull: bool, now: std::time::Instant) -> (bool, Vec<(String, String)>) {
        if self.started.is_some_and(|s| now >= s + self.window) {
            self.started = None;
            self.used = 0;
        }
        let mut refused = false;
        if pull {
            self.started.get_or_insert(now);
            if self.used >= self.limit {
                refused = true;
                self.refused.push(now);
            } else {
                self.used += 1;
                self.pulls.push(now);
            }
        }
        let w = self.window.as_secs();
        let reset = match self.started {
            Some(s) => (s + self.window).saturating_duration_since(now),
            None => self.window,
        };
        let headers = vec![
            ("ratelimit-limit".into(), format!("{};w={w}", self.limit)),
            (
                "ratelimit-remaining".into(),
                format!("{};w={w}", self.limit - self.used),
            ),
            // Rounded up: the window is not over before.
            (
                "ratelimit-reset".into(),
                reset.as_secs_f64().ceil().to_string(),
            ),
        ];
        (refused, headers)
    }
}

fn count_in(requests: &[RecordedRequest], method: &str, path_contains: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path.contains(path_contains))
        .count()
}

#[derive(Debug, Clone, Default)]
struct Knobs {
    mount: MountBehaviour,
    redirect: Option<(String, Arc<BlobHostState>)>,
    break_patch_after: Option<u64>,
    basic: Option<(String, String)>,
    chunk_min_length: Option<u64>,
    referrers_api: bool,
    tags_page_limit: Option<usize>,
    quota: Option<PullQuota>,
    clock: Option<FakeClockHolder>,
}

#[derive(Clone)]
struct FakeClockHolder(FakeClock);

impl std::fmt::Debug for FakeClockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeClock")
    }
}

/// Builds a [`FakeRegistry`] with its knobs set from the start.
#[derive(Debug, Clone)]
pub struct FakeRegistryBuilder {
    knobs: Knobs,
}

impl Default for FakeRegistryBuilder {
    fn default() -> Self {
        Self {
            knobs: Knobs {
                referrers_api: true,
                ..Knobs::default()
            },
        }
    }
}

impl FakeRegistryBuilder {
    /// How mounts are answered (default [`MountBehaviour::Normal`]).
    pub fn mount_behaviour(mut self, behaviour: MountBehaviour) -> Self {
        self.knobs.mount = behaviour;
        self
    }

    /// Blob GETs answer 307 to `host`, which then serves the bytes.
    pub fn redirect_blobs_to(mut self, host: &BlobHost) -> Self {
        self.knobs.redirect = Some((host.url(), host.state.clone()));
        self
    }

    /// Drops the connection once, after `n_bytes` of a PATCH body were received.
    pub fn break_patch_after(mut self, n_bytes: u64) -> Self {
        self.knobs.break_patch_after = Some(n_bytes);
        self
    }

    /// Requires HTTP basic auth with `user` and `password` on every request.
    pub fn require_basic(mut self, user: &str, password: &str) -> Self {
        self.knobs.basic = Some((user.into(), password.into()));
        self
    }

    /// Announces `OCI-Chunk-Min-Length: n` when an upload session opens.
    pub fn chunk_min_length(mut self, n: u64) -> Self {
        self.knobs.chunk_min_length = Some(n);
        self
    }

    /// Whether the referrers API is served (default yes); without it, it answers 404.
    pub fn referrers_api(mut self, enabled: bool) -> Self {
        self.knobs.referrers_api = enabled;
        self
    }

    /// Answers at most `n` tags per `tags/list` page, whatever `n` the client asks, with a
    /// `Link: <…>; rel="next"` to the rest, as Docker Hub, GHCR and distribution 3 page.
    pub fn tags_page_limit(mut self, n: usize) -> Self {
        self.knobs.tags_page_limit = Some(n.max(1));
        self
    }

    /// Announces a quota of `limit` pulls (manifest `GET`s) per `window` on every answer
    /// (`ratelimit-limit: L;w=W`, `ratelimit-remaining`, `ratelimit-reset` in seconds, as
    /// Docker Hub and the IETF draft name them), and answers pulls beyond it with 429 until
    /// the window is over. The window starts at the first pull.
    pub fn pull_quota(mut self, limit: u64, window: std::time::Duration) -> Self {
        self.knobs.quota = Some(PullQuota {
            limit,
            window,
            started: None,
            used: 0,
            pulls: Vec::new(),
            refused: Vec::new(),
        });
        self
    }

    /// Reads the time from `now` (a clock the test moves) instead of the system's.
    pub fn clock(mut self, now: FakeClock) -> Self {
        self.knobs.clock = Some(FakeClockHolder(now));
        self
    }

    /// Starts serving on a free port of 127.0.0.1.
    pub fn start(self) -> Result<FakeRegistry> {
        let state = Arc::new(FakeState {
            inner: Mutex::new(Inner {
                knobs: self.knobs,
                ..Inner::default()
            }),
        });
        let handler_state = state.clone();
        let server = BackgroundServer::start("fake-registry", move |req| {
            let state = handler_state.clone();
            async move { state.handle(req).await }
        })?;
        tracing::debug!(addr = %server.addr(), "fake registry started");
        Ok(FakeRegistry { server, state })
    }
}

/// An in-memory OCI distribution server with knobs; see the [module documentation](self)
/// for why it exists. Stops on drop.
pub struct FakeRegistry {
    server: BackgroundServer,
    state: Arc<FakeState>,
}

impl std::fmt::Debug for FakeRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeRegistry")
            .field("addr", &self.server.addr())
            .finish_non_exhaustive()
    }
}

impl FakeRegistry {
    /// A fake with default knobs (normal mounts, referrers API on, no auth).
    pub fn start() -> Result<Self> {
        FakeRegistryBuilder::default().start()
    }

    /// A builder to set knobs from the start.
    pub fn builder() -> FakeRegistryBuilder {
        FakeRegistryBuilder::default()
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.server.addr().to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.state.inner.lock().expect("lock"))
    }

    /// Changes how mounts are answered.
    pub fn set_mount_behaviour(&self, behaviour: MountBehaviour) {
        self.with(|i| i.knobs.mount = behaviour);
    }

    /// Blob GETs answer 307 to `host` (`Some`), or serve the bytes themselves (`None`).
    pub fn redirect_blobs_to(&self, host: Option<&BlobHost>) {
        let redirect = host.map(|h| (h.url(), h.state.clone()));
        self.with(|i| i.knobs.redirect = redirect);
    }

    /// Drops the connection once, after `n_bytes` of a PATCH body (`None`: never).
    pub fn break_patch_after(&self, n_bytes: Option<u64>) {
        self.with(|i| i.knobs.break_patch_after = n_bytes);
    }

    /// Requires basic auth with these credentials (`None`: no auth).
    pub fn require_basic(&self, credentials: Option<(&str, &str)>) {
        let basic = credentials.map(|(u, p)| (u.to_string(), p.to_string()));
        self.with(|i| i.knobs.basic = basic);
    }

    /// Announces `OCI-Chunk-Min-Length` (`None`: not announced).
    pub fn chunk_min_length(&self, n: Option<u64>) {
        self.with(|i| i.knobs.chunk_min_length = n);
    }

    /// Serves the referrers API or answers 404 to it.
    pub fn referrers_api(&self, enabled: bool) {
        self.with(|i| i.knobs.referrers_api = enabled);
    }

    /// Every request received since start or [`FakeRegistry::reset_counts`], oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.with(|i| i.requests.clone())
    }

    /// How many requests had `method` and a path containing `path_contains`.
    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        self.with(|i| count_in(&i.requests, method, path_contains))
    }

    /// The times of the pulls answered under the quota, and of those refused with 429
    /// ([`FakeRegistryBuilder::pull_quota`]).
    pub fn pulls(&self) -> (Vec<std::time::Instant>, Vec<std::time::Instant>) {
        self.with(|i| {
            i.knobs
                .quota
                .as_ref()
                .map(|q| (q.pulls.clone(), q.refused.clone()))
                .unwrap_or_default()
        })
    }

    /// Counts `n` pulls of another client against the quota now (by the fake's clock), as if
    /// others on the same address had pulled.
    pub fn spend_pulls(&self, n: u64) {
        self.with(|i| {
            let now = i
                .knobs
                .clock
                .clone()
                .map_or_else(std::time::Instant::now, |c| (c.0)());
            if let Some(q) = i.knobs.quota.as_mut() {
                q.count(false, now);
                q.started.get_or_insert(now);
                q.used = (q.used + n).min(q.limit);
            }
        })
    }

    /// Forgets the requests received so far.
    pub fn reset_counts(&self) {
        self.with(|i| i.requests.clear());
    }

    /// Stores `bytes` as a blob of `repo` and returns its descriptor
    /// (media type `application/octet-stream`).
    pub fn put_blob(&self, repo: &str, bytes: impl Into<Bytes>) -> Descriptor {
        let bytes = bytes.into();
        let descriptor = Descriptor::new(
            "application/octet-stream".into(),
            bytes.len() as u64,
            sha256(&bytes),
        );
        let digest = descriptor.digest().to_string();
        self.with(|i| i.repo(repo).blobs.insert(digest, bytes));
        descriptor
    }

    /// Stores manifest `bytes` of `media_type` in `repo`, tagged `tag` when given; returns its
    /// descriptor.
    pub fn put_manifest(
        &self,
        repo: &str,
        tag: Option<&str>,
        bytes: impl Into<Bytes>,
        media_type: &str,
    ) -> Descriptor {
        let bytes = bytes.into();
        let descriptor = Descriptor::new(media_type.into(), bytes.len() as u64, sha256(&bytes));
        let digest = descriptor.digest().to_string();
        self.with(|i| {
            let repo = i.repo(repo);
            repo.manifests
                .insert(digest.clone(), (media_type.to_string(), bytes));
            if let Some(tag) = tag {
                repo.tags.insert(tag.to_string(), digest);
            }
        });
        descriptor
    }

    /// Stores every blob and manifest of `content` (a fixture) in `repo`, tagging the root
    /// `tag` when given.
    pub fn put_content(&self, repo: &str, content: &dyn Content, tag: Option<&str>) {
        for blob in content.all() {
            if blob.is_manifest() {
                let root = blob.digest() == content.root().digest();
                self.put_manifest(
                    repo,
                    if root { tag } else { None },
                    blob.bytes.clone(),
                    &blob.media_type(),
                );
            } else {
                self.put_blob(repo, blob.bytes.clone());
            }
        }
    }

    /// The bytes of blob `digest` in `repo`.
    pub fn blob(&self, repo: &str, digest: &str) -> Option<Bytes> {
        self.with(|i| i.repos.get(repo).and_then(|r| r.blobs.get(digest).cloned()))
    }

    /// Whether `repo` holds blob `digest`.
    pub fn has_blob(&self, repo: &str, digest: &str) -> bool {
        self.blob(repo, digest).is_some()
    }

    /// The media type and bytes of the manifest `reference` (tag or digest) in `repo`.
    pub fn manifest(&self, repo: &str, reference: &str) -> Option<(String, Bytes)> {
        self.with(|i| i.repos.get(repo).and_then(|r| r.manifest(reference)))
    }

    /// The tags of `repo`, sorted.
    pub fn tags(&self, repo: &str) -> Vec<String> {
        self.with(|i| {
            i.repos
                .get(repo)
                .map(|r| r.tags.keys().cloned().collect())
                .unwrap_or_default()
        })
    }

    /// How many upload sessions are open (neither completed nor cancelled).
    pub fn open_uploads(&self) -> usize {
        self.with(|i| i.uploads.len())
    }
}

#[derive(Debug, Default)]
struct Repo {
    blobs: HashMap<String, Bytes>,
    manifests: HashMap<String, (String, Bytes)>,
    tags: BTreeMap<String, String>,
}

impl Repo {
    fn manifest(&self, reference: &str) -> Option<(String, Bytes)> {
        let digest = if reference.contains(':') {
            reference
        } else {
            self.tags.get(reference)?.as_str()
        };
        self.manifests.get(digest).cloned()
    }
}

#[derive(Debug)]
struct Upload {
    repo: String,
    data: Vec<u8>,
}

#[derive(Debug, Default)]
struct Inner {
    knobs: Knobs,
    repos: HashMap<String, Repo>,
    uploads: HashMap<String, Upload>,
    next_upload: u64,
    requests: Vec<RecordedRequest>,
}

impl Inner {
    fn repo(&mut self, name: &str) -> &mut Repo {
        self.repos.entry(name.to_string()).or_default()
    }

    fn open_upload(&mut self, repo: &str) -> String {
        self.next_upload += 1;
        let id = format!("upload-{}", self.next_upload);
        self.uploads.insert(
            id.clone(),
            Upload {
                repo: repo.to_string(),
                data: Vec::new(),
            },
        );
        id
    }
}

struct FakeState {
    inner: Mutex<Inner>,
}

/// The parts of a `/v2/...` path.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Base,
    Manifest(String, String),
    Blob(String, String),
    Uploads(String),
    Upload(String, String),
    Referrers(String, String),
    Tags(String),
    Unknown,
}

fn route(path: &str) -> Route {
    let Some(rest) = path.strip_prefix("/v2/") else {
        return if path == "/v2" {
            Route::Base
        } else {
            Route::Unknown
        };
    };
    if rest.is_empty() {
        return Route::Base;
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Route::Tags(name.into());
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or(rest.strip_suffix("/blobs/uploads"))
    {
        return Route::Uploads(name.into());
    }
    for (marker, make) in [
        (
            "/blobs/uploads/",
            Route::Upload as fn(String, String) -> Route,
        ),
        ("/manifests/", Route::Manifest),
        ("/referrers/", Route::Referrers),
        ("/blobs/", Route::Blob),
    ] {
        if let Some(at) = rest.rfind(marker) {
            let name = &rest[..at];
            let tail = &rest[at + marker.len()..];
            if !name.is_empty() && !tail.is_empty() && !tail.contains('/') {
                return make(name.into(), tail.into());
            }
        }
    }
    Route::Unknown
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl Answer {
    fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn body(mut self, content_type: &str, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self.header("content-type", content_type)
    }

    fn error(status: u16, code: &str, message: &str) -> Self {
        let body = json!({"errors": [{"code": code, "message": message}]}).to_string();
        Self::new(status).body("application/json", body)
    }

    fn into_response(self, head: bool) -> ServerResponse {
        let mut builder = Response::builder()
            .status(StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
            .header("docker-distribution-api-version", "registry/2.0");
        let has_length = self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length"));
        for (name, value) in &self.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if !has_length {
            builder = builder.header("content-length", self.body.len().to_string());
        }
        let body = if head { Bytes::new() } else { self.body };
        builder
            .body(Full::new(body))
            .map_err(|e| DropConnection(format!("cannot build a response: {e}")))
    }
}

fn digest_of(data: &[u8]) -> String {
    sha256(data).to_string()
}

fn upload_answer(status: u16, host: &str, name: &str, id: &str, len: usize) -> Answer {
    let end = len.saturating_sub(1);
    Answer::new(status)
        .header(
            "location",
            format!("http://{host}/v2/{name}/blobs/uploads/{id}"),
        )
        .header("docker-upload-uuid", id)
        .header("range", format!("0-{end}"))
}

fn blob_created(host: &str, name: &str, digest: &str) -> Answer {
    Answer::new(201)
        .header(
            "location",
            format!("http://{host}/v2/{name}/blobs/{digest}"),
        )
        .header("docker-content-digest", digest)
}

impl FakeState {
    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> ServerResponse {
        let now = {
            let inner = self.inner.lock().expect("lock");
            inner.knobs.clock.clone()
        }
        .map_or_else(std::time::Instant::now, |c| (c.0)());
        let recorded = record(&req, now);
        let method = req.method().clone();
        let head = method == Method::HEAD;
        let host = recorded
            .header("host")
            .map(str::to_string)
            .unwrap_or_else(|| "127.0.0.1".into());
        tracing::debug!(%method, path = %recorded.path, query = %recorded.query, "fake registry request");
        let (basic, break_after) = {
            let mut inner = self.inner.lock().expect("lock");
            inner.requests.push(recorded.clone());
            (inner.knobs.basic.clone(), inner.knobs.break_patch_after)
        };
        if let Some((user, password)) = basic {
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            );
            if recorded.header("authorization") != Some(expected.as_str()) {
                return Answer::error(401, "UNAUTHORIZED", "authentication required")
                    .header("www-authenticate", "Basic realm=\"fake-registry\"")
                    .into_response(head);
            }
        }
        let route = route(&recorded.path);
        // A PATCH that is to be broken is read frame by frame, so the connection can be
        // dropped after exactly `n` bytes.
        if let (Route::Upload(_, id), true, Some(n)) =
            (&route, method == Method::PATCH, break_after)
        {
            return self.broken_patch(req, &host, id, n).await;
        }
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return Err(DropConnection(format!("request body: {e}"))),
        };
        let mut inner = self.inner.lock().expect("lock");
        let pull = method == Method::GET && matches!(route, Route::Manifest(..));
        let counted = inner.knobs.quota.as_mut().map(|q| q.count(pull, now));
        let mut answer = match counted {
            Some((true, _)) => Answer::error(
                429,
                "TOOMANYREQUESTS",
                "You have reached your pull rate limit.",
            ),
            _ => inner.answer(&method, route, &recorded, &host, body),
        };
        if let Some((_, headers)) = counted {
            answer.headers.extend(headers);
        }
        answer.into_response(head)
    }

    async fn broken_patch(
        &self,
        req: Request<Incoming>,
        host: &str,
        id: &str,
        n: u64,
    ) -> ServerResponse {
        let mut body = req.into_body();
        let mut received: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| DropConnection(format!("request body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                received.extend_from_slice(&data);
            }
            if received.len() as u64 >= n {
                let mut inner = self.inner.lock().expect("lock");
                inner.knobs.break_patch_after = None;
                if let Some(upload) = inner.uploads.get_mut(id) {
                    upload.data.extend_from_slice(&received[..n as usize]);
                }
                tracing::debug!(
                    upload = id,
                    kept = n,
                    "fake registry drops the PATCH connection"
                );
                return Err(DropConnection(format!(
                    "PATCH of `{id}` broken after {n} bytes"
                )));
            }
        }
        // The body was shorter than `n`: an ordinary PATCH, the break stays armed.
        let mut inner = self.inner.lock().expect("lock");
        let Some(upload) = inner.uploads.get_mut(id) else {
            return Answer::error(404, "BLOB_UPLOAD_UNKNOWN", "no such upload")
                .into_response(false);
        };
        upload.data.extend_from_slice(&received);
        let (repo, len) = (upload.repo.clone(), upload.data.len());
        upload_answer(202, host, &repo, id, len).into_response(false)
    }
}

impl Inner {
    fn answer(
        &mut self,
        method: &Method,
        route: Route,
        req: &RecordedRequest,
        host: &str,
        body: Bytes,
    ) -> Answer {
        match (method.as_str(), route) {
            ("GET" | "HEAD", Route::Base) => Answer::new(200).body("application/json", "{}"),
            ("GET" | "HEAD", Route::Manifest(name, reference)) => {
                match self.repos.get(&name).and_then(|r| r.manifest(&reference)) {
                    Some((media_type, bytes)) => Answer::new(200)
                        .header("docker-content-digest", digest_of(&bytes))
                        .body(&media_type, bytes),
                    None => Answer::error(
                        404,
                        "MANIFEST_UNKNOWN",
                        &format!("manifest `{reference}` unknown"),
                    ),
                }
            }
            ("PUT", Route::Manifest(name, reference)) => {
                self.put_manifest(&name, &reference, req, host, body)
            }
            ("DELETE", Route::Manifest(name, reference)) => {
                let repo = self.repo(&name);
                if repo.manifests.remove(&reference).is_some() {
                    repo.tags.retain(|_, d| d != &reference);
                    Answer::new(202)
                } else {
                    Answer::error(404, "MANIFEST_UNKNOWN", "manifest unknown")
                }
            }
            ("GET" | "HEAD", Route::Blob(name, digest)) => {
                self.get_blob(method, &name, &digest, req)
            }
            ("DELETE", Route::Blob(name, digest)) => match self.repo(&name).blobs.remove(&digest) {
                Some(_) => Answer::new(202),
                None => Answer::error(404, "BLOB_UNKNOWN", "blob unknown"),
            },
            ("POST", Route::Uploads(name)) => self.start_upload(&name, req, host, body),
            ("PATCH", Route::Upload(_, id)) => {
                let Some(upload) = self.uploads.get_mut(&id) else {
                    return Answer::error(404, "BLOB_UPLOAD_UNKNOWN", "no such upload");
                };
                if let Some(range) = req.header("content-range") {
                    let start = range
                        .split('-')
                        .next()
                        .and_then(|s| s.trim().parse::<usize>().ok());
                    if start != Some(upload.data.len()) {
                        let end = upload.data.len().saturating_sub(1);
                        return Answer::error(
                            416,
                            "BLOB_UPLOAD_INVALID",
                            "Content-Range does not start at the upload's offset",
                        )
                        .header("range", format!("0-{end}"));
                    }
                }
                upload.data.extend_from_slice(&body);
                let (repo, len) = (upload.repo.clone(), upload.data.len());
                upload_answer(202, host, &repo, &id, len)
            }
            ("PUT", Route::Upload(_, id)) => {
                let Some(digest) = req.query_param("digest") else {
                    return Answer::error(400, "DIGEST_INVALID", "PUT needs `?digest=`");
                };
                let Some(mut upload) = self.uploads.remove(&id) else {
                    return Answer::error(404, "BLOB_UPLOAD_UNKNOWN", "no such upload");
                };
                upload.data.extend_from_slice(&body);
                if digest_of(&upload.data) != digest {
                    return Answer::error(
                        400,
                        "DIGEST_INVALID",
                        "content does not match the digest",
                    );
                }
                self.repo(&upload.repo)
                    .blobs
                    .insert(digest.clone(), upload.data.into());
                blob_created(host, &upload.repo, &digest)
            }
            ("GET", Route::Upload(_, id)) => match self.uploads.get(&id) {
                Some(upload) => upload_answer(204, host, &upload.repo, &id, upload.data.len()),
                None => Answer::error(404, "BLOB_UPLOAD_UNKNOWN", "no such upload"),
            },
            ("DELETE", Route::Upload(_, id)) => match self.uploads.remove(&id) {
                Some(_) => Answer::new(204),
                None => Answer::error(404, "BLOB_UPLOAD_UNKNOWN", "no such upload"),
            },
            ("GET", Route::Referrers(name, digest)) => self.referrers(&name, &digest, req),
            ("GET", Route::Tags(name)) => match self.repos.get(&name) {
                Some(repo) => {
                    let mut tags: Vec<&String> = repo.tags.keys().collect();
                    if let Some(last) = req.query_param("last") {
                        tags.retain(|t| t.as_str() > last.as_str());
                    }
                    let asked: Option<usize> = req.query_param("n").and_then(|n| n.parse().ok());
                    let page = match (asked, self.knobs.tags_page_limit) {
                        (Some(n), Some(limit)) => Some(n.min(limit)),
                        (a, l) => a.or(l),
                    };
                    let mut answer = Answer::new(200);
                    if let Some(n) = page
                        && tags.len() > n
                    {
                        tags.truncate(n);
                        if let Some(last) = tags.last() {
                            let last: String =
                                url::form_urlencoded::byte_serialize(last.as_bytes()).collect();
                            answer = answer.header(
                                "link",
                                format!("</v2/{name}/tags/list?last={last}&n={n}>; rel=\"next\""),
                            );
                        }
                    }
                    answer.body(
                        "application/json",
                        json!({"name": name, "tags": tags}).to_string(),
                    )
                }
                None => Answer::error(404, "NAME_UNKNOWN", "repository unknown"),
            },
            _ => Answer::error(404, "UNSUPPORTED", "the fake registry does not serve this"),
        }
    }

    fn put_manifest(
        &mut self,
        name: &str,
        reference: &str,
        req: &RecordedRequest,
        host: &str,
        body: Bytes,
    ) -> Answer {
        let digest = digest_of(&body);
        if reference.contains(':') && reference != digest {
            return Answer::error(
                400,
                "DIGEST_INVALID",
                "the manifest does not match the digest in the URL",
            );
        }
        let media_type = req
            .header("content-type")
            .map(str::to_string)
            .or_else(|| {
                serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["mediaType"].as_str().map(str::to_string))
            })
            .unwrap_or_else(|| ferry_core::model::OCI_MANIFEST.to_string());
        let subject = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["subject"]["digest"].as_str().map(str::to_string));
        let referrers_api = self.knobs.referrers_api;
        let repo = self.repo(name);
        repo.manifests.insert(digest.clone(), (media_type, body));
        if !reference.contains(':') {
            repo.tags.insert(reference.to_string(), digest.clone());
        }
        let mut answer = Answer::new(201)
            .header(
                "location",
                format!("http://{host}/v2/{name}/manifests/{digest}"),
            )
            .header("docker-content-digest", digest);
        if let (true, Some(subject)) = (referrers_api, subject) {
            answer = answer.header("oci-subject", subject);
        }
        answer
    }

    fn get_blob(
        &mut self,
        method: &Method,
        name: &str,
        digest: &str,
        req: &RecordedRequest,
    ) -> Answer {
        let Some(bytes) = self
            .repos
            .get(name)
            .and_then(|r| r.blobs.get(digest).cloned())
        else {
            return Answer::error(404, "BLOB_UNKNOWN", &format!("blob `{digest}` unknown"));
        };
        if method == Method::GET
            && let Some((url, host)) = &self.knobs.redirect
        {
            host.blobs
                .lock()
                .expect("lock")
                .insert(digest.to_string(), bytes);
            return Answer::new(307)
                .header("location", format!("{url}/blobs/{digest}?signature=fake"));
        }
        let answer = Answer::new(200).header("docker-content-digest", digest);
        if method == Method::GET
            && let Some(range) = req.header("range").and_then(|r| r.strip_prefix("bytes="))
        {
            let (start, end) = range.split_once('-').unwrap_or((range, ""));
            let start: usize = start.parse().unwrap_or(0);
            let end: usize = end
                .parse()
                .map(|e: usize| e + 1)
                .unwrap_or(bytes.len())
                .min(bytes.len());
            if start >= end {
                return Answer::error(416, "RANGE_INVALID", "range not satisfiable");
            }
            return Answer::new(206)
                .header("docker-content-digest", digest)
                .header(
                    "content-range",
                    format!("bytes {start}-{}/{}", end - 1, bytes.len()),
                )
                .body("application/octet-stream", bytes.slice(start..end));
        }
        if method == Method::HEAD {
            return answer
                .header("content-length", bytes.len().to_string())
                .header("content-type", "application/octet-stream");
        }
        answer.body("application/octet-stream", bytes)
    }

    fn start_upload(
        &mut self,
        name: &str,
        req: &RecordedRequest,
        host: &str,
        body: Bytes,
    ) -> Answer {
        if let Some(digest) = req.query_param("mount") {
            match self.knobs.mount {
                MountBehaviour::Status(status) => {
                    let code = match status {
                        401 => "UNAUTHORIZED",
                        403 => "DENIED",
                        404 => "BLOB_UNKNOWN",
                        _ => "UNSUPPORTED",
                    };
                    return Answer::error(
                        status,
                        code,
                        "the fake registry is set to refuse mounts",
                    );
                }
                MountBehaviour::Always202 => {}
                MountBehaviour::Normal => {
                    let from = req.query_param("from");
                    let found = match &from {
                        Some(from) => self
                            .repos
                            .get(from)
                            .and_then(|r| r.blobs.get(&digest).cloned()),
                        None => self
                            .repos
                            .values()
                            .find_map(|r| r.blobs.get(&digest).cloned()),
                    };
                    if let Some(bytes) = found {
                        self.repo(name).blobs.insert(digest.clone(), bytes);
                        return blob_created(host, name, &digest);
                    }
                }
            }
        } else if let Some(digest) = req.query_param("digest") {
            if digest_of(&body) != digest {
                return Answer::error(400, "DIGEST_INVALID", "content does not match the digest");
            }
            self.repo(name).blobs.insert(digest.clone(), body);
            return blob_created(host, name, &digest);
        }
        let id = self.open_upload(name);
        let mut answer = upload_answer(202, host, name, &id, 0);
        if let Some(n) = self.knobs.chunk_min_length {
            answer = answer.header("oci-chunk-min-length", n.to_string());
        }
        answer
    }

    fn referrers(&self, name: &str, digest: &str, req: &RecordedRequest) -> Answer {
        if !self.knobs.referrers_api {
            return Answer::error(404, "UNSUPPORTED", "the referrers API is turned off");
        }
        let filter = req.query_param("artifactType");
        let mut manifests = Vec::new();
        if let Some(repo) = self.repos.get(name) {
            let mut entries: Vec<(&String, &(String, Bytes))> = repo.manifests.iter().collect();
            entries.sort_by_key(|(d, _)| d.as_str());
            for (manifest_digest, (media_type, bytes)) in entries {
                let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
                    continue;
                };
                if value["subject"]["digest"].as_str() != Some(digest) {
                    continue;
                }
                let artifact_type = value["artifactType"]
                    .as_str()
                    .or(value["config"]["mediaType"].as_str())
                    .unwrap_or("")
                    .to_string();
                if filter.as_ref().is_some_and(|f| f != &artifact_type) {
                    continue;
                }
                let mut d = json!({
                    "mediaType": media_type,
                    "digest": manifest_digest,
                    "size": bytes.len(),
                    "artifactType": artifact_type,
                });
                if let Some(annotations) = value.get("annotations") {
                    d["annotations"] = annotations.clone();
                }
                manifests.push(d);
            }
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": ferry_core::model::OCI_INDEX,
            "manifests": manifests,
        });
        let mut answer = Answer::new(200).body(ferry_core::model::OCI_INDEX, index.to_string());
        if filter.is_some() {
            answer = answer.header("oci-filters-applied", "artifactType");
        }
        answer
    }
}

#[derive(Debug, Default)]
struct BlobHostState {
    blobs: Mutex<HashMap<String, Bytes>>,
    requests: Mutex<Vec<RecordedRequest>>,
}

/// A second tiny server, the target of [`FakeRegistry::redirect_blobs_to`]: it serves
/// `GET /blobs/<digest>` with the bytes the registry redirected for, and records each
/// request so a test can check that no `Authorization` header reached it. Stops on drop.
pub struct BlobHost {
    server: BackgroundServer,
    state: Arc<BlobHostState>,
}

impl std::fmt::Debug for BlobHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobHost")
            .field("addr", &self.server.addr())
            .finish_non_exhaustive()
    }
}

impl BlobHost {
    /// Starts serving on a free port of 127.0.0.1.
    pub fn start() -> Result<Self> {
        let state = Arc::new(BlobHostState::default());
        let handler_state = state.clone();
        let server = BackgroundServer::start("blob-host", move |req| {
            let state = handler_state.clone();
            async move {
                let recorded = record(&req, std::time::Instant::now());
                tracing::debug!(path = %recorded.path, "blob host request");
                state.requests.lock().expect("lock").push(recorded.clone());
                let digest = recorded.path.strip_prefix("/blobs/").unwrap_or("");
                let bytes = state.blobs.lock().expect("lock").get(digest).cloned();
                let head = req.method() == Method::HEAD;
                match bytes {
                    Some(bytes) => Answer::new(200).body("application/octet-stream", bytes),
                    None => Answer::error(404, "BLOB_UNKNOWN", "not on this host"),
                }
                .into_response(head)
            }
        })?;
        Ok(Self { server, state })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Every request received, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().expect("lock").clone()
    }

    /// Whether any request carried an `Authorization` header.
    pub fn saw_authorization(&self) -> bool {
        self.requests()
            .iter()
            .any(RecordedRequest::has_authorization)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_split_names_with_slashes() {
        assert_eq!(route("/v2/"), Route::Base);
        assert_eq!(
            route("/v2/a/b/manifests/v1"),
            Route::Manifest("a/b".into(), "v1".into())
        );
        assert_eq!(
            route("/v2/a/blobs/sha256:ab"),
            Route::Blob("a".into(), "sha256:ab".into())
        );
        assert_eq!(
            route("/v2/a/b/blobs/uploads/"),
            Route::Uploads("a/b".into())
        );
        assert_eq!(
            route("/v2/a/blobs/uploads/u-1"),
            Route::Upload("a".into(), "u-1".into())
        );
        assert_eq!(
            route("/v2/a/referrers/sha256:ab"),
            Route::Referrers("a".into(), "sha256:ab".into())
        );
        assert_eq!(
            route("/v2/x/manifests/tags/list"),
            Route::Tags("x/manifests".into())
        );
        assert_eq!(route("/v3/"), Route::Unknown);
    }
}
