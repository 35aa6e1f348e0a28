//! The harness's proxies in front of each registry. Over plain HTTP, an HTTP proxy counts
//! requests and body bytes and, in distant mode, waits before forwarding each request so that
//! a round trip costs what it costs against a remote registry. Over TLS, a TCP proxy passes the
//! encrypted bytes through untouched (the registry's own server terminates TLS and negotiates
//! HTTP/2), counts connections and bytes, and delays every byte towards the registry, so that
//! requests, handshakes, new connections and flow-control windows cost round trips as they do
//! against a far registry; the registry's access log counts the requests. Either proxy can cap
//! the bytes each connection carries towards the client per second, as a CDN or a long path
//! caps one stream.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use ferry_test_support::{Registry, TestCa};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::runtime::Handle;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

/// One request that passed through the proxy.
#[derive(Debug)]
pub struct Exchange {
    /// The method.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The answer's status (0 when the registry did not answer).
    pub status: AtomicU64,
    /// Request body bytes forwarded.
    pub request_bytes: AtomicU64,
    /// Response body bytes forwarded.
    pub response_bytes: AtomicU64,
}

impl Exchange {
    /// Whether this request uploads blob bytes (a POST, PATCH or PUT on `/blobs/uploads/`).
    pub fn is_upload(&self) -> bool {
        self.path.contains("/blobs/uploads/")
    }

    /// The digest of a blob GET (`GET /v2/<name>/blobs/<digest>`).
    pub fn blob_get(&self) -> Option<&str> {
        if self.method != "GET" {
            return None;
        }
        let (_, digest) = self.path.rsplit_once("/blobs/")?;
        digest.starts_with("sha256:").then_some(digest)
    }
}

#[derive(Debug, Default)]
struct Log {
    exchanges: Mutex<Vec<Arc<Exchange>>>,
    connections: AtomicU64,
}

/// A counting (and optionally delaying) proxy on 127.0.0.1.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    log: Arc<Log>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// The address clients use: `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Every request since the last [`Proxy::take`], and the connections opened.
    pub fn take(&self) -> Seen {
        Seen {
            exchanges: std::mem::take(&mut *self.log.exchanges.lock().expect("proxy log")),
            connections: self.log.connections.swap(0, Ordering::Relaxed),
            sent: 0,
        }
    }
}

/// What a proxy saw since it was last asked.
#[derive(Debug, Default)]
pub struct Seen {
    /// The requests (plain HTTP only; over TLS the registry's access log counts them).
    pub exchanges: Vec<Arc<Exchange>>,
    /// TCP connections opened to the proxy.
    pub connections: u64,
    /// Bytes the clients sent (over TLS: every TLS record towards the registry).
    pub sent: u64,
}

/// A TCP proxy on 127.0.0.1 that passes bytes through, delaying those towards the upstream.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    stats: Arc<TcpStats>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
struct TcpStats {
    connections: AtomicU64,
    sent: AtomicU64,
}

impl TcpProxy {
    /// The connections and bytes since the last [`TcpProxy::take`].
    pub fn take(&self) -> Seen {
        Seen {
            exchanges: Vec::new(),
            connections: self.stats.connections.swap(0, Ordering::Relaxed),
            sent: self.stats.sent.swap(0, Ordering::Relaxed),
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The proxy in front of a registry.
#[derive(Debug)]
pub enum Front {
    /// Plain HTTP: every request seen.
    Http(Proxy),
    /// TLS passed through.
    Tcp(TcpProxy),
}

impl Front {
    /// The address clients use: `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        match self {
            Front::Http(p) => p.addr(),
            Front::Tcp(p) => p.addr.to_string(),
        }
    }

    /// What was seen since the last call.
    pub fn take(&self) -> Seen {
        match self {
            Front::Http(p) => p.take(),
            Front::Tcp(p) => p.take(),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A registry behind its proxy; the registry announces the proxy's URL in `Location` headers
/// (`http.host`), so clients never bypass the proxy.
#[derive(Debug)]
pub struct ProxiedRegistry {
    /// The proxy clients talk to.
    pub proxy: Front,
    /// The registry itself.
    pub registry: Registry,
}

impl ProxiedRegistry {
    /// Starts a registry behind a new proxy: plain HTTP, or (with `ca`) HTTPS with a certificate
    /// `ca` issued; `delay` per request (plain) or per round trip (TLS).
    pub fn start(rt: &Handle, delay: Duration, ca: Option<&TestCa>) -> Result<Self> {
        Self::start_capped(rt, delay, None, ca)
    }

    /// [`ProxiedRegistry::start`], each connection carrying at most `cap` bytes per second
    /// towards the client.
    pub fn start_capped(
        rt: &Handle,
        delay: Duration,
        cap: Option<u64>,
        ca: Option<&TestCa>,
    ) -> Result<Self> {
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let scheme = if ca.is_some() { "https" } else { "http" };
        let mut builder = Registry::builder()
            .env("REGISTRY_HTTP_HOST", format!("{scheme}://{addr}"))
            .env("REGISTRY_LOG_LEVEL", "warn");
        if let Some(ca) = ca {
            builder = builder.tls_issued_by(ca)?;
        }
        let registry = builder.start().context("start docker-registry")?;
        let upstream = registry.addr().to_string();
        let proxy = if ca.is_some() {
            let stats = Arc::new(TcpStats::default());
            let task = rt.spawn(serve_tcp(listener, upstream, delay, cap, stats.clone()));
            Front::Tcp(TcpProxy { addr, stats, task })
        } else {
            let log = Arc::new(Log::default());
            let task = rt.spawn(serve(listener, upstream, delay, cap, log.clone()));
            Front::Http(Proxy { addr, log, task })
        };
        Ok(Self { proxy, registry })
    }

    /// `127.0.0.1:PORT` of the proxy.
    pub fn addr(&self) -> String {
        self.proxy.addr()
    }
}

/// Passes connections to `upstream` through, each byte towards it `delay` late; the first
/// bytes of a connection one more `delay` late, as its TCP handshake would have cost; each
/// connection's bytes towards the client at most `cap` per second.
async fn serve_tcp(
    listener: TcpListener,
    upstream: String,
    delay: Duration,
    cap: Option<u64>,
    stats: Arc<TcpStats>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        stats.connections.fetch_add(1, Ordering::Relaxed);
        let (upstream, stats) = (upstream.clone(), stats.clone());
        tokio::spawn(async move {
            let opened = tokio::time::Instant::now();
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            let up = relay(
                client_read,
                server_write,
                delay,
                opened + delay,
                None,
                Some(stats),
            );
            let down = relay(server_read, client_write, Duration::ZERO, opened, cap, None);
            let _ = tokio::join!(up, down);
        });
    }
}

/// Copies `from` to `to`, each chunk `delay` after it was read and none before `not_before`,
/// at most `cap` bytes per second, counting the bytes in `stats.sent`.
async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    not_before: tokio::time::Instant,
    cap: Option<u64>,
    stats: Option<Arc<TcpStats>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Chunks in flight: at most this many reads of 256 KiB (64 MiB), more than any window.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(tokio::time::Instant, Bytes)>(256);
    let reader = async move {
        loop {
            let mut buf = bytes::BytesMut::with_capacity(256 << 10);
            match from.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Some(s) = &stats {
                        s.sent.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    let due = (tokio::time::Instant::now() + delay).max(not_before);
                    if tx.send((due, buf.freeze())).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        let mut pace = Pace::new(cap);
        while let Some((due, chunk)) = rx.recv().await {
            if due > tokio::time::Instant::now() {
                tokio::time::sleep_until(due).await;
            }
            for piece in chunk.chunks(PACE_STEP) {
                if let Some(at) = pace.due() {
                    tokio::time::sleep_until(at).await;
                }
                if to.write_all(piece).await.is_err() {
                    return;
                }
                pace.sent(piece.len());
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

async fn serve(
    listener: TcpListener,
    upstream: String,
    delay: Duration,
    cap: Option<u64>,
    log: Arc<Log>,
) {
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new()).build_http();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        log.connections.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let (client, upstream, log) = (client.clone(), upstream.clone(), log.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                forward(req, client.clone(), upstream.clone(), delay, log.clone())
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(Capped::new(stream, cap)), service)
                .await;
        });
    }
}

async fn forward(
    req: Request<Incoming>,
    client: Client<HttpConnector, Body>,
    upstream: String,
    delay: Duration,
    log: Arc<Log>,
) -> std::result::Result<Response<Body>, std::convert::Infallible> {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (mut parts, body) = req.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let exchange = Arc::new(Exchange {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        status: AtomicU64::new(0),
        request_bytes: AtomicU64::new(0),
        response_bytes: AtomicU64::new(0),
    });
    log.exchanges
        .lock()
        .expect("proxy log")
        .push(exchange.clone());
    parts.uri = match format!("http://{upstream}{path_and_query}").parse() {
        Ok(uri) => uri,
        Err(_) => return Ok(status_only(StatusCode::BAD_REQUEST)),
    };
    let counted = exchange.clone();
    let body = body
        .map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                counted
                    .request_bytes
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            frame
        })
        .map_err(|e| Box::new(e) as BoxError)
        .boxed();
    let answer = match client.request(Request::from_parts(parts, body)).await {
        Ok(answer) => answer,
        Err(_) => return Ok(status_only(StatusCode::BAD_GATEWAY)),
    };
    exchange
        .status
        .store(u64::from(answer.status().as_u16()), Ordering::Relaxed);
    let (parts, body) = answer.into_parts();
    let counted = exchange;
    let body = body
        .map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                counted
                    .response_bytes
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            frame
        })
        .map_err(|e| Box::new(e) as BoxError)
        .boxed();
    Ok(Response::from_parts(parts, body))
}

fn status_only(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
}

/// The most bytes written at once to a capped connection.
const PACE_STEP: usize = 16 << 10;

/// When the next bytes may be written to keep a connection under its cap.
#[derive(Debug)]
struct Pace {
    /// Bytes per second, `None` for no cap.
    cap: Option<u64>,
    /// When what was written so far is paid for.
    next: tokio::time::Instant,
}

impl Pace {
    fn new(cap: Option<u64>) -> Self {
        Self {
            cap,
            next: tokio::time::Instant::now(),
        }
    }

    /// When the next write may start, if that is later than now.
    fn due(&self) -> Option<tokio::time::Instant> {
        self.cap?;
        (self.next > tokio::time::Instant::now()).then_some(self.next)
    }

    /// Counts `n` bytes written.
    fn sent(&mut self, n: usize) {
        if let Some(cap) = self.cap {
            // A timer that wakes late leaves `next` in the past: that lateness is caught up
            // (a burst of at most 20 ms of the cap), or every late wake-up would lower the
            // rate; a connection idle for longer starts afresh.
            let now = tokio::time::Instant::now();
            let from = if now > self.next + Duration::from_millis(20) {
                now
            } else {
                self.next
            };
            self.next = from + Duration::from_secs_f64(n as f64 / cap as f64);
        }
    }
}

/// A client connection whose writes (the answers towards the client) carry at most `cap`
/// bytes per second.
struct Capped {
    inner: tokio::net::TcpStream,
    pace: Pace,
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl Capped {
    fn new(inner: tokio::net::TcpStream, cap: Option<u64>) -> Self {
        Self {
            inner,
            pace: Pace::new(cap),
            sleep: None,
        }
    }
}

impl tokio::io::AsyncRead for Capped {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Capped {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::future::Future as _;
        loop {
            if let Some(sleep) = self.sleep.as_mut() {
                std::task::ready!(sleep.as_mut().poll(cx));
                self.sleep = None;
            }
            match self.pace.due() {
                Some(at) => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
                None => break,
            }
        }
        let step = buf.len().min(if self.pace.cap.is_some() {
            PACE_STEP
        } else {
            buf.len()
        });
        let written =
            std::task::ready!(std::pin::Pin::new(&mut self.inner).poll_write(cx, &buf[..step]))?;
        self.pace.sent(written);
        std::task::Poll::Ready(Ok(written))
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
