//! The client builder and the client.

use std::time::Duration;

use ferry_core::{BoxError, Result};
use http::Request;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::{Body, ResponseBody};
use crate::io::Connector;
use crate::tls::TlsPolicy;

/// A response of an [`HttpClient`].
pub type Response = http::Response<ResponseBody>;

/// The socket buffers under TLS by default: a TLS record holds at most 16 KiB, and rustls reads
/// and writes one record per call, so unbuffered a 128 MiB transfer costs about 8,000 system
/// calls each way; with 64 KiB buffers about 2,000 (larger buffers measured no better and
/// delay the first bytes).
pub const DEFAULT_IO_BUFFER: usize = 64 * 1024;

/// Builds the [`HttpClient`]s of ferry's crates.
#[derive(Debug, Clone)]
pub struct HttpClientBuilder {
    tls: TlsPolicy,
    connect_timeout: Option<Duration>,
    pool_idle_timeout: Duration,
    http2: bool,
    io_buffer: usize,
    h2_windows: Option<(u32, u32)>,
}

impl Default for HttpClientBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClientBuilder {
    /// HTTP/1.1 and HTTP/2 (by ALPN), the system's roots, a 30 s connect timeout, idle
    /// connections kept for 60 s.
    pub fn new() -> Self {
        Self {
            tls: TlsPolicy::new(),
            connect_timeout: Some(Duration::from_secs(30)),
            pool_idle_timeout: Duration::from_secs(60),
            http2: true,
            io_buffer: DEFAULT_IO_BUFFER,
            h2_windows: None,
        }
    }

    /// Which servers to trust.
    pub fn tls(mut self, policy: TlsPolicy) -> Self {
        self.tls = policy;
        self
    }

    /// The longest wait for a connection, TLS included (`None`: no limit).
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long an idle connection is kept for reuse.
    pub fn pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool_idle_timeout = timeout;
        self
    }

    /// Whether HTTP/2 is offered by ALPN (default: yes). Without it every connection speaks
    /// HTTP/1.1, and concurrent requests use concurrent connections.
    pub fn http2(mut self, enabled: bool) -> Self {
        self.http2 = enabled;
        self
    }

    /// Socket read and write buffers of this many bytes under TLS (0: none), so one system
    /// call moves many TLS records ([`DEFAULT_IO_BUFFER`] by default).
    pub fn io_buffer(mut self, bytes: usize) -> Self {
        self.io_buffer = bytes;
        self
    }

    /// The HTTP/2 flow-control windows granted to servers, per stream and per connection: how
    /// much of one response, and of all responses on a connection, a server may send before
    /// the client answers (hyper's defaults otherwise).
    pub fn http2_windows(mut self, stream: u32, connection: u32) -> Self {
        self.h2_windows = Some((stream, connection.max(stream)));
        self
    }

    fn client_builder(&self) -> hyper_util::client::legacy::Builder {
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(self.pool_idle_timeout)
            .timer(TokioTimer::new());
        if let Some((stream, connection)) = self.h2_windows {
            builder
                .http2_initial_stream_window_size(stream)
                .http2_initial_connection_window_size(connection);
        }
        builder
    }

    fn http_connector(&self) -> HttpConnector {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(self.connect_timeout);
        http
    }

    /// The client. Plain-HTTP requests go through a connector without TLS; the root
    /// certificates of the policy are loaded on the first TLS handshake, so a client that
    /// never speaks TLS never pays for them.
    pub fn build(&self) -> Result<HttpClient> {
        let config = self.tls.client_config()?;
        Ok(HttpClient {
            plain: self.client_builder().build(self.http_connector()),
            tls: self.build_on(config.clone(), self.http2),
            bulk: self.build_on(config, false),
        })
    }

    fn build_on(
        &self,
        config: rustls::ClientConfig,
        http2: bool,
    ) -> Client<HttpsConnector<Connector>, Body> {
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1();
        let connector = Connector {
            http: self.http_connector(),
            buffer: self.io_buffer,
        };
        let https = if http2 {
            builder.enable_http2().wrap_connector(connector)
        } else {
            builder.wrap_connector(connector)
        };
        self.client_builder().build(https)
    }
}

/// An HTTP client: HTTPS and plain HTTP, connections reused. Cheap to clone; clones share
/// their connections.
///
/// Requests that carry a blob's bytes either way go through [`HttpClient::send_bulk`]: over
/// HTTPS each on a connection of its own, in HTTP/1.1. Why: over HTTP/2 every blob on a
/// connection shares one flow-control window, which a server sizes (distribution's, in Go,
/// grants 1 MiB per connection for uploads), so far away a connection's uploads go at window ÷
/// round trip; and on loopback distribution's HTTP/2 server took 30% more wall time and 70%
/// more CPU than HTTP/1.1 to move the same 128 MiB. HTTP/1.1 gives each transfer a connection
/// of its own, bounded by TCP only; HTTP/2 keeps the many small requests (existence checks,
/// mounts, manifests) on one connection and one handshake. Both share one TLS configuration,
/// and so one cache of TLS sessions to resume.
#[derive(Clone)]
pub struct HttpClient {
    plain: Client<HttpConnector, Body>,
    tls: Client<HttpsConnector<Connector>, Body>,
    bulk: Client<HttpsConnector<Connector>, Body>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Sends `request` and returns the answer's head; its body is read from the response. A
    /// failure is the chain of the HTTP stack's errors: [`crate::transport_error`] makes one
    /// sentence of it.
    pub async fn send(&self, request: Request<Body>) -> std::result::Result<Response, BoxError> {
        self.send_on(request, false).await
    }

    /// Sends a request that carries a blob's bytes, either way: over HTTPS on an HTTP/1.1
    /// connection of its own (see [`HttpClient`]).
    pub async fn send_bulk(
        &self,
        request: Request<Body>,
    ) -> std::result::Result<Response, BoxError> {
        self.send_on(request, true).await
    }

    async fn send_on(
        &self,
        request: Request<Body>,
        bulk: bool,
    ) -> std::result::Result<Response, BoxError> {
        let response = if request.uri().scheme_str() == Some("https") {
            if bulk {
                self.bulk.request(request).await?
            } else {
                self.tls.request(request).await?
            }
        } else {
            self.plain.request(request).await?
        };
        Ok(response.map(ResponseBody::new))
    }
}
