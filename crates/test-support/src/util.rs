//! Small helpers: free ports, readiness polling, external tools, a tiny HTTP client, and the
//! background thread that runs the in-process servers.

use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::error::{Error, Result};

/// How often readiness checks are repeated while waiting.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// `text` percent-encoded as S3 and URL query values want it: every byte but unreserved
/// characters (`A-Z a-z 0-9 - . _ ~`) as `%XX`.
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, release it).
///
/// Another process may take it before it is used: callers that start a server on it retry on
/// a bind failure.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    listener.local_addr().expect("local address").port()
}

/// Calls `check` every [`POLL_INTERVAL`] until it returns `true` or `timeout` has passed.
/// Returns whether it succeeded.
pub fn wait_for(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Async [`wait_for`]: awaits `check` every [`POLL_INTERVAL`] until it returns `true` or
/// `timeout` has passed. Returns whether it succeeded.
pub async fn wait_for_async<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A temporary directory (removed on drop), with a clear panic message when it cannot be made.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ferry-test-")
        .tempdir()
        .expect("create a temporary directory (is the temp dir writable?)")
}

/// Runs `program` with `args` and returns its output, or an [`Error::Command`] quoting its
/// stderr when it exits unsuccessfully.
pub fn run(program: &str, args: &[&str]) -> Result<Output> {
    let command_line = format!("{program} {}", args.join(" "));
    tracing::debug!(command = %command_line, "running");
    let output = Command::new(program)
        .args(args)
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .map_err(|e| {
            Error::io(
                format!("run `{command_line}` (is `{program}` installed?)"),
                e,
            )
        })?;
    if !output.status.success() {
        return Err(Error::Command {
            command: command_line,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(output)
}

/// Runs `skopeo --insecure-policy <args>` (no signature policy file is needed).
///
/// Plain-HTTP registries need `--src-tls-verify=false` / `--dest-tls-verify=false` in `args`.
pub fn skopeo(args: &[&str]) -> Result<Output> {
    let mut all = vec!["--insecure-policy"];
    all.extend_from_slice(args);
    run("skopeo", &all)
}

/// Runs `umoci <args>`.
pub fn umoci(args: &[&str]) -> Result<Output> {
    run("umoci", args)
}

/// The answer to [`http()`].
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl HttpResponse {
    /// The value of header `name` as a string, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::Setup(format!(
                "response body is not JSON ({e}): `{}`",
                self.text()
            ))
        })
    }
}

/// How long [`http()`] waits for a whole exchange before failing.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends one plain-HTTP/1.1 request on a fresh connection and reads the whole answer.
///
/// `url` is absolute (`http://127.0.0.1:PORT/v2/`). Redirects are not followed. Meant for
/// tests talking to the servers of this crate; no TLS. Fails after [`HTTP_TIMEOUT`].
pub async fn http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<HttpResponse> {
    let body = body.into();
    match tokio::time::timeout(HTTP_TIMEOUT, exchange(method, url, headers, body)).await {
        Ok(answer) => answer,
        Err(_) => Err(Error::Http {
            method: method.to_string(),
            url: url.to_string(),
            reason: format!("no complete answer within {HTTP_TIMEOUT:?}"),
        }),
    }
}

async fn exchange(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<HttpResponse> {
    let fail = |reason: String| Error::Http {
        method: method.to_string(),
        url: url.to_string(),
        reason,
    };
    let parsed = url::Url::parse(url).map_err(|e| fail(format!("not a URL: {e}")))?;
    let host = parsed.host_str().ok_or_else(|| fail("no host".into()))?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| fail(format!("connect: {e}")))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| fail(format!("handshake: {e}")))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let method_value =
        Method::from_bytes(method.as_bytes()).map_err(|e| fail(format!("method: {e}")))?;
    let mut path = parsed.path().to_string();
    if let Some(q) = parsed.query() {
        path.push('?');
        path.push_str(q);
    }
    let mut builder = Request::builder()
        .method(method_value)
        .uri(path)
        .header("host", format!("{host}:{port}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(Full::new(body))
        .map_err(|e| fail(format!("build request: {e}")))?;
    tracing::debug!(%method, %url, "test HTTP request");
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| fail(format!("send: {e}")))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| fail(format!("read body: {e}")))?
        .to_bytes();
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// Sends `GET <path>` to `addr` over a blocking socket and returns the status code.
/// Used for readiness polls, where no async runtime may be running.
pub(crate) fn blocking_status(addr: &str, path: &str) -> std::io::Result<u16> {
    blocking_request(addr, "GET", path, &[], &[]).map(|(status, _)| status)
}

/// Sends one HTTP/1.1 request with `headers` over a blocking socket (`Connection: close`) and
/// returns the status code and the raw body (not de-chunked).
pub(crate) fn blocking_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(answer.len());
    let head = String::from_utf8_lossy(&answer[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "no HTTP status line in `{}`",
                    head.lines().next().unwrap_or("")
                ),
            )
        })?;
    Ok((status, answer[split..].to_vec()))
}

/// What a server handler returns to drop the connection without an answer.
#[derive(Debug)]
pub(crate) struct DropConnection(pub(crate) String);

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connection dropped on purpose: {}", self.0)
    }
}

impl std::error::Error for DropConnection {}

/// The answer type of the in-process servers.
pub(crate) type ServerResponse = std::result::Result<Response<Full<Bytes>>, DropConnection>;

/// An in-process HTTP/1.1 server running on its own thread and Tokio runtime, so it keeps
/// serving while a test blocks (in `skopeo`, in a blocking poll, or on a current-thread
/// runtime). Stops when dropped.
pub(crate) struct BackgroundServer {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackgroundServer {
    /// Binds 127.0.0.1 on a free port and serves every request with `handler`.
    pub(crate) fn start<H, Fut>(name: &str, handler: H) -> Result<Self>
    where
        H: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ServerResponse> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| Error::io(format!("bind {name} to 127.0.0.1:0"), e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io(format!("set {name}'s socket non-blocking"), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io(format!("read {name}'s address"), e))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io(format!("build {name}'s runtime"), e))?;
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let handler = std::sync::Arc::new(handler);
        let thread_name = name.to_string();
        let thread = std::thread::Builder::new()
            .name(thread_name.clone())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(server = %thread_name, error = %e, "cannot listen");
                            return;
                        }
                    };
                    loop {
                        tokio::select! {
                            _ = &mut rx => break,
                            accepted = listener.accept() => {
                                let Ok((stream, _)) = accepted else { continue };
                                let handler = handler.clone();
                                tokio::spawn(async move {
                                    let service = hyper::service::service_fn(move |req| {
                                        let handler = handler.clone();
                                        async move { let answer: ServerResponse = handler(req).await; answer }
                                    });
                                    let _ = hyper::server::conn::http1::Builder::new()
                                        .serve_connection(TokioIo::new(stream), service)
                                        .await;
                                });
                            }
                        }
                    }
                });
            })
            .map_err(|e| Error::io(format!("spawn {name}'s thread"), e))?;
        Ok(Self {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The last 20 lines of the file at `path` (empty when unreadable), for failure messages.
pub(crate) fn tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Lower-case hexadecimal of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
