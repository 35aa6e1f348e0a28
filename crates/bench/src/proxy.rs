//! The harness's HTTP proxy in front of each registry: it counts requests and body bytes and,
//! in distant mode, waits before forwarding each request so that a round trip costs what it
//! costs against a remote registry.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use ferry_test_support::Registry;
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

    /// Every request since the last [`Proxy::take`].
    pub fn take(&self) -> Vec<Arc<Exchange>> {
        std::mem::take(&mut *self.log.exchanges.lock().expect("proxy log"))
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
    pub proxy: Proxy,
    /// The registry itself.
    pub registry: Registry,
}

impl ProxiedRegistry {
    /// Starts a registry behind a new proxy that waits `delay` before forwarding each request.
    pub fn start(rt: &Handle, delay: Duration) -> Result<Self> {
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let registry = Registry::builder()
            .env("REGISTRY_HTTP_HOST", format!("http://{addr}"))
            .env("REGISTRY_LOG_LEVEL", "warn")
            .start()
            .context("start docker-registry")?;
        let upstream = registry.addr().to_string();
        let log = Arc::new(Log::default());
        let task = rt.spawn(serve(listener, upstream, delay, log.clone()));
        Ok(Self {
            proxy: Proxy { addr, log, task },
            registry,
        })
    }

    /// `127.0.0.1:PORT` of the proxy.
    pub fn addr(&self) -> String {
        self.proxy.addr()
    }
}

async fn serve(listener: TcpListener, upstream: String, delay: Duration, log: Arc<Log>) {
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new()).build_http();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (client, upstream, log) = (client.clone(), upstream.clone(), log.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                forward(req, client.clone(), upstream.clone(), delay, log.clone())
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
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
