//! A fault-injecting HTTP proxy between a client and a real registry.
//!
//! [`FaultProxy`] listens on 127.0.0.1 and forwards every request to an upstream registry
//! (normally a [`crate::Registry`]), keeping the `Host` header so the registry builds upload
//! `Location`s that point back at the proxy (absolute `Location`s naming the upstream are
//! rewritten too). A [`FaultPlan`] says which answers it spoils:
//!
//! - at random: each request is faulted with a probability, the fault drawn from a list;
//!   the draw comes from a [`StdRng`] seeded with the plan's seed and the request's method,
//!   path (upload session ids left out) and how many such requests came before, so a run is
//!   replayed by giving the same seed;
//! - always: every request whose method and path match a [`Rule`] gets that rule's fault
//!   (a permanent fault).
//!
//! Every request is recorded with the fault it got ([`FaultProxy::requests`]), and
//! [`FaultProxy::report`] prints the seed and the faults injected, for a failing test's
//! message.
//!
//! A fault that does not fit the upstream's answer (a body fault on an answer without body,
//! a wrong digest on an answer without `Docker-Content-Digest`) becomes a `502` sent after
//! the upstream did the work, as a load balancer that lost the answer would send.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST, LOCATION, RETRY_AFTER};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::Digest as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::{Error, Result};

/// One way of spoiling an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Answer this status (500, 502, 503, ...) without forwarding the request.
    Status(u16),
    /// Answer `429 Too Many Requests` with `Retry-After: <secs>` without forwarding.
    TooManyRequests {
        /// The `Retry-After` value in seconds.
        retry_after: u64,
    },
    /// Forward; send the headers and part of the body, then reset the connection (RST).
    ResetMidBody,
    /// Do not forward; read half the request's body (an upload's `PUT` or `PATCH`), then reset
    /// the connection (RST), as a load balancer that drops a connection mid-upload does. On a
    /// request without a body it is not applied.
    ResetMidUpload,
    /// Forward half the request's body (an upload's `PUT` or `PATCH`) to the upstream, then end
    /// that connection, so the upstream sees its client go after receiving half; once it has
    /// answered, reset the client's connection (RST): a link that breaks mid-upload, past the
    /// proxies. On a request without a body it is not applied.
    ResetMidUploadForwarded,
    /// Forward; send the headers (with the full `Content-Length`) and part of the body, then
    /// close the connection (FIN).
    TruncatedBody,
    /// Forward; send the body in small pieces with a pause before each.
    SlowBody {
        /// Bytes per piece.
        chunk: usize,
        /// Pause before each piece.
        pause: Duration,
    },
    /// Forward; announce a `Content-Length` smaller than the body and send only that many
    /// bytes, so the answer is well framed but short.
    WrongContentLength,
    /// Forward; replace `Docker-Content-Digest` with the digest of other bytes.
    WrongDigest,
    /// Answer this status with a JSON-looking body of this many bytes, without forwarding
    /// (an error or token body far larger than any real one).
    HugeBody {
        /// The status.
        status: u16,
        /// The body's size.
        bytes: usize,
    },
}

impl Fault {
    /// Every kind of fault once, with small parameters: the default random mix.
    pub fn all() -> Vec<Fault> {
        vec![
            Fault::Status(500),
            Fault::Status(502),
            Fault::Status(503),
            Fault::TooManyRequests { retry_after: 1 },
            Fault::ResetMidBody,
            Fault::TruncatedBody,
            Fault::SlowBody {
                chunk: 16 * 1024,
                pause: Duration::from_millis(5),
            },
            Fault::WrongContentLength,
            Fault::WrongDigest,
        ]
    }

    /// Whether the request is answered without reaching the upstream.
    fn before_forwarding(&self) -> bool {
        matches!(
            self,
            Fault::Status(_)
                | Fault::TooManyRequests { .. }
                | Fault::HugeBody { .. }
                | Fault::ResetMidUpload
                | Fault::ResetMidUploadForwarded
        )
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Status(s) => write!(f, "{s}"),
            Fault::TooManyRequests { retry_after } => write!(f, "429 Retry-After: {retry_after}"),
            Fault::ResetMidBody => f.write_str("reset mid-body"),
            Fault::ResetMidUpload => f.write_str("reset mid-upload"),
            Fault::ResetMidUploadForwarded => {
                f.write_str("reset mid-upload, half forwarded to the upstream")
            }
            Fault::TruncatedBody => f.write_str("truncated body"),
            Fault::SlowBody { chunk, pause } => {
                write!(f, "slow body ({chunk} B every {} ms)", pause.as_millis())
            }
            Fault::WrongContentLength => f.write_str("short Content-Length"),
            Fault::WrongDigest => f.write_str("wrong Docker-Content-Digest"),
            Fault::HugeBody { status, bytes } => write!(f, "{status} with a {bytes}-byte body"),
        }
    }
}

/// A fault for requests with this method whose path contains `path_contains`: every one
/// (a permanent fault), or a share of them drawn with the plan's seed.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The method, or any method when `None`.
    pub method: Option<Method>,
    /// A piece of the path (`/blobs/`, `/manifests/v1`).
    pub path_contains: String,
    /// The fault.
    pub fault: Fault,
    /// The share of matching requests that get it (1: all).
    pub probability: f64,
    /// Only the first this many matching requests get it (`None`: no limit).
    pub first: Option<usize>,
    /// The first this many matching requests are spared.
    pub skip: usize,
}

/// Which requests the proxy spoils, and how.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    seed: u64,
    probability: f64,
    faults: Vec<Fault>,
    rules: Vec<Rule>,
    ignore_ranges: bool,
}

impl FaultPlan {
    /// No fault: a plain proxy.
    pub fn none() -> Self {
        Self {
            seed: 0,
            probability: 0.0,
            faults: Fault::all(),
            rules: Vec::new(),
            ignore_ranges: false,
        }
    }

    /// Faults on a share `probability` (0 to 1) of requests, drawn from [`Fault::all`] with
    /// `seed`.
    pub fn random(seed: u64, probability: f64) -> Self {
        Self {
            seed,
            probability: probability.clamp(0.0, 1.0),
            ..Self::none()
        }
    }

    /// Draws random faults from `faults` instead of [`Fault::all`].
    pub fn faults(mut self, faults: impl IntoIterator<Item = Fault>) -> Self {
        self.faults = faults.into_iter().collect();
        self
    }

    /// Spoils every request with `method` (`GET`, ...; any method for `*`) whose path
    /// contains `path_contains` with `fault`, before any random draw.
    pub fn always(self, method: &str, path_contains: &str, fault: Fault) -> Self {
        self.sometimes(method, path_contains, 1.0, fault)
    }

    /// Spoils a share `probability` of the requests with `method` (any method for `*`) whose
    /// path contains `path_contains` with `fault`, drawn with the plan's seed before the
    /// random draw (a request the rule spares may still get a random fault).
    pub fn sometimes(
        mut self,
        method: &str,
        path_contains: &str,
        probability: f64,
        fault: Fault,
    ) -> Self {
        self.rules.push(Rule {
            method: (method != "*").then(|| {
                Method::from_bytes(method.as_bytes()).expect("an HTTP method such as `GET`")
            }),
            path_contains: path_contains.to_string(),
            fault,
            probability: probability.clamp(0.0, 1.0),
            first: None,
            skip: 0,
        });
        self
    }

    /// Spoils the first `count` requests with `method` (any for `*`) whose path contains
    /// `path_contains` with `fault`, and no later one.
    pub fn first(mut self, method: &str, path_contains: &str, count: usize, fault: Fault) -> Self {
        self = self.always(method, path_contains, fault);
        if let Some(rule) = self.rules.last_mut() {
            rule.first = Some(count);
        }
        self
    }

    /// Spoils the `n`th request (from 1) with `method` (any for `*`) whose path contains
    /// `path_contains` with `fault`, and no other: an upload cut partway, not at its start.
    pub fn nth(mut self, method: &str, path_contains: &str, n: usize, fault: Fault) -> Self {
        self = self.first(method, path_contains, n.max(1), fault);
        if let Some(rule) = self.rules.last_mut() {
            rule.skip = n.max(1) - 1;
        }
        self
    }

    /// Forwards requests without their `Range` header, as a registry or proxy that does not
    /// serve ranges answers: the whole body, `200`.
    pub fn ignore_ranges(mut self) -> Self {
        self.ignore_ranges = true;
        self
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

/// A request that went through the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedRequest {
    /// The method.
    pub method: String,
    /// The path and query.
    pub path: String,
    /// The fault it got, if any (after the fallback to 502 for faults that did not fit).
    pub fault: Option<Fault>,
}

struct State {
    plan: FaultPlan,
    upstream: String,
    own: String,
    client: Client<HttpConnector, Full<Bytes>>,
    seen: Mutex<HashMap<String, u64>>,
    log: Mutex<Vec<ProxiedRequest>>,
    /// Request body bytes received from clients, by method.
    received: Mutex<HashMap<String, u64>>,
    /// Response body bytes sent to clients, by method.
    sent: Arc<Mutex<HashMap<String, u64>>>,
    /// How many requests each rule of the plan (by index) matched.
    rule_hits: Mutex<HashMap<usize, usize>>,
}

/// A fault-injecting proxy in front of a registry; see the [module documentation](self).
/// Stops on drop.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.state.upstream)
            .field("plan", &self.state.plan)
            .finish()
    }
}

impl FaultProxy {
    /// Starts a proxy on a free port of 127.0.0.1 forwarding to `upstream` (`host:port`,
    /// plain HTTP).
    pub fn start(upstream: &str, plan: FaultPlan) -> Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| Error::io("bind the fault proxy to 127.0.0.1:0", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("set the fault proxy's socket non-blocking", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("read the fault proxy's address", e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::io("build the fault proxy's runtime", e))?;
        let state = Arc::new(State {
            plan,
            upstream: upstream.to_string(),
            own: addr.to_string(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            seen: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            received: Mutex::new(HashMap::new()),
            sent: Arc::default(),
            rule_hits: Mutex::new(HashMap::new()),
        });
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let serving = state.clone();
        let thread = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "fault proxy cannot listen");
                            return;
                        }
                    };
                    loop {
                        tokio::select! {
                            _ = &mut rx => break,
                            accepted = listener.accept() => {
                                let Ok((stream, _)) = accepted else { continue };
                                tokio::spawn(serve_connection(serving.clone(), stream));
                            }
                        }
                    }
                });
            })
            .map_err(|e| Error::io("spawn the fault proxy's thread", e))?;
        tracing::debug!(%addr, upstream, "fault proxy started");
        Ok(Self {
            addr,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order, with its fault.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.state.log.lock().expect("log lock").clone()
    }

    /// Request body bytes clients sent with `method` (`PUT`, `PATCH`), forwarded or not:
    /// what an upload cost, retries and cut uploads included.
    pub fn bytes_received(&self, method: &str) -> u64 {
        self.state
            .received
            .lock()
            .expect("received lock")
            .get(method)
            .copied()
            .unwrap_or(0)
    }

    /// Response body bytes sent to clients for requests with `method` (`GET`): what a download
    /// cost, bodies cut short counted by what was sent of them.
    pub fn bytes_sent(&self, method: &str) -> u64 {
        self.state
            .sent
            .lock()
            .expect("sent lock")
            .get(method)
            .copied()
            .unwrap_or(0)
    }

    /// The requests that got a fault.
    pub fn injected(&self) -> Vec<ProxiedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.fault.is_some())
            .collect()
    }

    /// How many requests had `method` and a path containing `path_contains`.
    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path.contains(path_contains))
            .count()
    }

    /// The seed, the request count and every fault injected, one per line.
    pub fn report(&self) -> String {
        let all = self.requests();
        let mut out = format!(
            "fault proxy seed {} (probability {}), {} requests, faults:\n",
            self.state.plan.seed,
            self.state.plan.probability,
            all.len()
        );
        for r in all.iter().filter(|r| r.fault.is_some()) {
            let fault = r.fault.expect("filtered");
            out.push_str(&format!("  {fault}: {} {}\n", r.method, r.path));
        }
        out
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A connection that can be made to end with a reset (`SO_LINGER` 0) instead of a FIN.
struct Resettable {
    inner: tokio::net::TcpStream,
    reset: Arc<AtomicBool>,
}

impl AsyncRead for Resettable {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Resettable {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.reset.load(Ordering::SeqCst) {
            // No FIN: the socket is dropped with a zero linger, which sends RST.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Drop for Resettable {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            let _ = self.inner.set_zero_linger();
        }
    }
}

/// Reads a request to its end before it is refused, as a registry behind a proxy does:
/// answering in the middle of an upload and closing the connection would leave the client
/// seeing either a broken connection or the answer, whichever came first.
async fn drain(state: &State, req: Request<Incoming>) {
    let method = req.method().clone();
    let mut body = req.into_body();
    let mut read = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        read += frame.data_ref().map_or(0, |d| d.len() as u64);
    }
    state.note_received(&method, read);
}

async fn serve_connection(state: Arc<State>, stream: tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    let reset = Arc::new(AtomicBool::new(false));
    let io = Resettable {
        inner: stream,
        reset: reset.clone(),
    };
    let service = hyper::service::service_fn(move |req| {
        let state = state.clone();
        let reset = reset.clone();
        async move { state.handle(req, reset).await }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// The path with upload session ids replaced by `*` and without query: what makes two
/// requests "the same kind" for the seeded draw.
fn request_kind(method: &Method, path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let mut parts: Vec<&str> = path.split('/').collect();
    if let Some(i) = parts.iter().position(|p| *p == "uploads")
        && i + 1 < parts.len()
        && !parts[i + 1].is_empty()
    {
        parts[i + 1] = "*";
    }
    format!("{method} {}", parts.join("/"))
}

fn seed_for(seed: u64, kind: &str, nth: u64) -> u64 {
    let mut h = sha2::Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(kind.as_bytes());
    h.update(nth.to_le_bytes());
    let out = h.finalize();
    u64::from_le_bytes(out[..8].try_into().expect("8 bytes"))
}

type ProxyBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|e: std::convert::Infallible| match e {})
        .boxed()
}

fn status(code: u16, text: &str) -> Response<ProxyBody> {
    let body =
        format!(r#"{{"errors":[{{"code":"UNAVAILABLE","message":"{text} (fault proxy)"}}]}}"#);
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

impl State {
    fn choose(&self, method: &Method, path: &str) -> Option<Fault> {
        let kind = request_kind(method, path);
        let nth = {
            let mut seen = self.seen.lock().expect("seen lock");
            let n = seen.entry(kind.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let mut rng = StdRng::seed_from_u64(seed_for(self.plan.seed, &kind, nth));
        for (i, rule) in self.plan.rules.iter().enumerate() {
            if rule.method.as_ref().is_none_or(|m| m == method)
                && path.contains(&rule.path_contains)
            {
                if let Some(first) = rule.first {
                    let mut hits = self.rule_hits.lock().expect("hits lock");
                    let n = hits.entry(i).or_insert(0);
                    *n += 1;
                    if *n > first || *n <= rule.skip {
                        continue;
                    }
                }
                if rule.probability >= 1.0 || rng.random_bool(rule.probability) {
                    return Some(rule.fault);
                }
            }
        }
        if self.plan.probability <= 0.0 || self.plan.faults.is_empty() {
            return None;
        }
        if !rng.random_bool(self.plan.probability) {
            return None;
        }
        Some(self.plan.faults[rng.random_range(0..self.plan.faults.len())])
    }

    fn note_sent(&self, method: &Method, bytes: u64) {
        *self
            .sent
            .lock()
            .expect("sent lock")
            .entry(method.to_string())
            .or_default() += bytes;
    }

    fn note_received(&self, method: &Method, bytes: u64) {
        *self
            .received
            .lock()
            .expect("received lock")
            .entry(method.to_string())
            .or_default() += bytes;
    }

    fn record(&self, method: &Method, path: &str, fault: Option<Fault>) {
        if let Some(f) = fault {
            tracing::debug!(%method, path, fault = %f, "fault injected");
        }
        self.log.lock().expect("log lock").push(ProxiedRequest {
            method: method.to_string(),
            path: path.to_string(),
            fault,
        });
    }

    async fn handle(
        &self,
        req: Request<Incoming>,
        reset: Arc<AtomicBool>,
    ) -> std::result::Result<Response<ProxyBody>, std::io::Error> {
        let method = req.method().clone();
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let mut fault = self.choose(&method, &path);
        if fault == Some(Fault::ResetMidUploadForwarded) {
            if let Some(length) = content_length(req.headers()) {
                self.record(&method, &path, fault);
                let (parts, mut body) = req.into_parts();
                let mut half = Vec::new();
                while (half.len() as u64) < length / 2 {
                    match body.frame().await {
                        Some(Ok(frame)) => {
                            if let Some(d) = frame.data_ref() {
                                half.extend_from_slice(d);
                            }
                        }
                        _ => break,
                    }
                }
                self.note_received(&method, half.len() as u64);
                half.truncate((length / 2) as usize);
                if let Err(e) = self.forward_cut(&parts, &path, &half).await {
                    tracing::debug!(error = %e, "fault proxy: the cut upload did not reach the upstream");
                }
                reset.store(true, Ordering::SeqCst);
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "connection reset mid-upload, half forwarded (fault)",
                ));
            }
            fault = None;
        }
        if fault == Some(Fault::ResetMidUpload) {
            let length: u64 = req
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if length > 0 {
                self.record(&method, &path, fault);
                let mut body = req.into_body();
                let mut read = 0u64;
                while read < length / 2 {
                    match body.frame().await {
                        Some(Ok(frame)) => {
                            read += frame.data_ref().map_or(0, |d| d.len() as u64);
                        }
                        _ => break,
                    }
                }
                self.note_received(&method, read);
                reset.store(true, Ordering::SeqCst);
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "connection reset mid-upload (fault)",
                ));
            }
            fault = None;
        }
        Ok(self.answer(req, method, path, fault, reset).await)
    }

    async fn answer(
        &self,
        req: Request<Incoming>,
        method: Method,
        path: String,
        fault: Option<Fault>,
        reset: Arc<AtomicBool>,
    ) -> Response<ProxyBody> {
        match fault {
            Some(f @ Fault::Status(code)) => {
                drain(self, req).await;
                self.record(&method, &path, Some(f));
                return status(code, "injected");
            }
            Some(f @ Fault::TooManyRequests { retry_after }) => {
                drain(self, req).await;
                self.record(&method, &path, Some(f));
                let mut resp = status(429, "too many requests");
                resp.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(retry_after));
                return resp;
            }
            Some(f @ Fault::HugeBody { status, bytes }) => {
                drain(self, req).await;
                self.record(&method, &path, Some(f));
                let mut body = Vec::with_capacity(bytes);
                body.extend_from_slice(br#"{"errors":[{"code":"HUGE","message":""#);
                body.resize(bytes.saturating_sub(4).max(body.len()), b'x');
                body.extend_from_slice(br#""}]}"#);
                let mut resp = Response::new(full(body));
                *resp.status_mut() =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return resp;
            }
            _ => {}
        }
        let upstream = match self.forward(req, &path).await {
            Ok(r) => r,
            Err(e) => {
                self.record(&method, &path, None);
                return status(502, &format!("upstream failed: {e}"));
            }
        };
        let (mut parts, body) = upstream;
        let Some(fault) = fault else {
            self.record(&method, &path, None);
            self.note_sent(&method, body.len() as u64);
            return Response::from_parts(parts, full(body));
        };
        debug_assert!(!fault.before_forwarding());
        let has_body = method != Method::HEAD && body.len() >= 2;
        let fits = match fault {
            Fault::WrongDigest => parts.headers.contains_key("docker-content-digest"),
            _ => has_body,
        };
        if !fits {
            self.record(&method, &path, Some(Fault::Status(502)));
            return status(502, "the answer was lost after the upstream did the work");
        }
        self.record(&method, &path, Some(fault));
        let delivered = match fault {
            Fault::TruncatedBody | Fault::ResetMidBody | Fault::WrongContentLength => {
                body.len() / 2
            }
            _ => body.len(),
        };
        self.note_sent(&method, delivered as u64);
        parts.headers.remove(CONTENT_LENGTH);
        parts.headers.remove(http::header::TRANSFER_ENCODING);
        let len = body.len();
        let (body, announced) = match fault {
            Fault::WrongDigest => {
                let other = sha2::Sha256::digest([&body[..], b"fault"].concat());
                let value = format!("sha256:{}", crate::util::hex(&other));
                parts.headers.insert(
                    "docker-content-digest",
                    HeaderValue::from_str(&value).expect("ASCII"),
                );
                (full(body), len)
            }
            Fault::WrongContentLength => (full(body.slice(..len / 2)), len / 2),
            Fault::TruncatedBody => (
                FaultBody::spawn(
                    body.slice(..len / 2),
                    len / 2,
                    Duration::ZERO,
                    Ending::Close,
                )
                .boxed(),
                len,
            ),
            Fault::ResetMidBody => {
                let cut = body.slice(..len / 2);
                (
                    FaultBody::spawn(cut, len / 2, Duration::ZERO, Ending::Reset(reset)).boxed(),
                    len,
                )
            }
            Fault::SlowBody { chunk, pause } => (
                FaultBody::spawn(body, chunk.max(1), pause, Ending::Complete).boxed(),
                len,
            ),
            Fault::Status(_)
            | Fault::TooManyRequests { .. }
            | Fault::HugeBody { .. }
            | Fault::ResetMidUpload
            | Fault::ResetMidUploadForwarded => {
                unreachable!("answered above")
            }
        };
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(announced));
        Response::from_parts(parts, body)
    }

    /// Sends the head of a request and `part` of its body to the upstream over a connection of
    /// its own, ends the connection there (the `Content-Length` promised more), and reads the
    /// upstream's answer to its end, so the upstream is done with the request when it returns.
    async fn forward_cut(
        &self,
        parts: &http::request::Parts,
        path: &str,
        part: &[u8],
    ) -> std::io::Result<()> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = tokio::net::TcpStream::connect(&self.upstream).await?;
        let mut head = format!("{} {path} HTTP/1.1\r\n", parts.method);
        if !parts.headers.contains_key(HOST) {
            head.push_str(&format!("host: {}\r\n", self.own));
        }
        for (name, value) in &parts.headers {
            if let Ok(v) = value.to_str() {
                head.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        head.push_str("connection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(part).await?;
        stream.shutdown().await?;
        let mut answer = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        Ok(())
    }

    /// Sends the request upstream; returns the answer's head and whole body.
    async fn forward(
        &self,
        req: Request<Incoming>,
        path: &str,
    ) -> std::result::Result<(http::response::Parts, Bytes), String> {
        let (mut parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("reading the request body: {e}"))?
            .to_bytes();
        self.note_received(&parts.method, body.len() as u64);
        if self.plan.ignore_ranges {
            parts.headers.remove(http::header::RANGE);
        }
        parts.uri = format!("http://{}{path}", self.upstream)
            .parse()
            .map_err(|e| format!("upstream URI: {e}"))?;
        if !parts.headers.contains_key(HOST) {
            parts.headers.insert(
                HOST,
                HeaderValue::from_str(&self.own).expect("socket address"),
            );
        }
        let resp = self
            .client
            .request(Request::from_parts(parts, Full::new(body)))
            .await
            .map_err(|e| format!("{e}"))?;
        let (mut parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("reading the upstream body: {e}"))?
            .to_bytes();
        if let Some(loc) = parts.headers.get(LOCATION).and_then(|v| v.to_str().ok())
            && loc.contains(&self.upstream)
        {
            let rewritten = loc.replace(&self.upstream, &self.own);
            if let Ok(v) = HeaderValue::from_str(&rewritten) {
                parts.headers.insert(LOCATION, v);
            }
        }
        Ok((parts, body))
    }
}

/// A request's `Content-Length` when it announces a body.
fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
}

/// How a spoiled body ends.
enum Ending {
    /// Every byte sent.
    Complete,
    /// The body stops short and the connection closes.
    Close,
    /// The body stops short and the connection is reset.
    Reset(Arc<AtomicBool>),
}

/// A response body fed by a task: pieces with pauses, then an end or a failure.
struct FaultBody {
    rx: tokio::sync::mpsc::Receiver<std::result::Result<Bytes, std::io::Error>>,
}

impl FaultBody {
    fn spawn(body: Bytes, chunk: usize, pause: Duration, ending: Ending) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let chunk = chunk.max(1);
            let mut rest = body;
            while !rest.is_empty() {
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                let piece = rest.split_to(chunk.min(rest.len()));
                if tx.send(Ok(piece)).await.is_err() {
                    return;
                }
            }
            if !matches!(ending, Ending::Complete) {
                // Let the client read the head and the first bytes before the cut, so the
                // failure comes mid-body rather than before the answer.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            match ending {
                Ending::Complete => {}
                Ending::Close => {
                    let _ = tx
                        .send(Err(std::io::Error::other("body cut short (fault)")))
                        .await;
                }
                Ending::Reset(flag) => {
                    flag.store(true, Ordering::SeqCst);
                    let _ = tx
                        .send(Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "connection reset (fault)",
                        )))
                        .await;
                }
            }
        });
        Self { rx }
    }
}

impl Body for FaultBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, std::io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|item| item.map(|r| r.map(Frame::data)))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
