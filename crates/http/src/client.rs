//! The client builder and the client.

use std::time::Duration;

use std::sync::Arc;

use ferry_core::{BoxError, Result};
use http::Request;
use http::header::PROXY_AUTHORIZATION;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::{Body, ResponseBody};
use crate::connect::{Connector, HostTls};
use crate::error::ConnectFailure;
use crate::proxy::ProxyPolicy;
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
    /// `None`: the environment's, read when the client is built.
    proxy: Option<ProxyPolicy>,
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
    /// HTTP/1.1 and HTTP/2 (by ALPN), the system's roots and each host's `certs.d`
    /// material, the environment's proxies, a 30 s connect timeout, idle connections kept for
    /// 60 s.
    pub fn new() -> Self {
        Self {
            tls: TlsPolicy::new(),
            proxy: None,
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

    /// Which requests go through which proxy (by default the environment's:
    /// [`ProxyPolicy::from_env`], read by [`HttpClientBuilder::build`]).
    pub fn proxy(mut self, policy: ProxyPolicy) -> Self {
        self.proxy = Some(policy);
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

    /// The client. The root certificates of the policy are loaded on the first TLS
    /// handshake, and each host's `certs.d` material when it is first connected to, so a
    /// client that never speaks TLS never pays for them. Fails when the environment names a
    /// proxy that cannot be used.
    pub fn build(&self) -> Result<HttpClient> {
        let proxy = Arc::new(match &self.proxy {
            Some(p) => p.clone(),
            None => ProxyPolicy::from_env()?,
        });
        if !proxy.is_direct() {
            tracing::debug!(policy = ?proxy, "proxies");
        }
        let tls = Arc::new(HostTls::new(self.tls.clone()));
        let connector = |h2: bool| Connector {
            http: self.http_connector(),
            proxy: proxy.clone(),
            tls: tls.clone(),
            h2,
            buffer: self.io_buffer,
            timeout: self.connect_timeout,
        };
        Ok(HttpClient {
            main: self.client_builder().build(connector(self.http2)),
            bulk: self.client_builder().build(connector(false)),
            proxy,
            tls,
        })
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
///
/// Requests go through the proxy the [`ProxyPolicy`] names for them: `https://` ones through
/// a `CONNECT` tunnel, plain `http://` ones in absolute form, with the proxy's credentials.
#[derive(Clone)]
pub struct HttpClient {
    main: Client<Connector, Body>,
    bulk: Client<Connector, Body>,
    proxy: Arc<ProxyPolicy>,
    tls: Arc<HostTls>,
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

    /// The proxy policy requests follow.
    pub fn proxy_policy(&self) -> &ProxyPolicy {
        &self.proxy
    }

    async fn send_on(
        &self,
        mut request: Request<Body>,
        bulk: bool,
    ) -> std::result::Result<Response, BoxError> {
        let https = request.uri().scheme_str() == Some("https");
        let host = request.uri().host().unwrap_or_default().to_string();
        let port = request
            .uri()
            .port_u16()
            .unwrap_or(if https { 443 } else { 80 });
        // Plain HTTP through a proxy: the request itself goes to the proxy, with its
        // credentials (a tunnel carries them in its `CONNECT`).
        let forwarded = if https {
            None
        } else {
            self.proxy.proxy_for_uri(request.uri()).cloned()
        };
        if let Some(auth) = forwarded.as_ref().and_then(|p| p.authorization()) {
            request
                .headers_mut()
                .insert(PROXY_AUTHORIZATION, auth.clone());
        }
        let target = if port == if https { 443 } else { 80 } {
            host.clone()
        } else {
            format!("{host}:{port}")
        };
        let client = if https && bulk {
            &self.bulk
        } else {
            &self.main
        };
        match client.request(request).await {
            Ok(response) => {
                if let Some(proxy) = &forwarded
                    && response.status() == http::StatusCode::PROXY_AUTHENTICATION_REQUIRED
                {
                    return Err(Box::new(ConnectFailure::proxy_auth(proxy, &target)));
                }
                if https && let Some(client) = self.tls.client_cert(&host, port) {
                    client.clear();
                }
                Ok(response.map(ResponseBody::new))
            }
            Err(e) => {
                // A TLS 1.3 server refuses a client certificate (or its absence) after the
                // client's side of the handshake is over: its alert breaks the first read.
                // When the host closes the connection before its alert is read (a write into
                // a closed connection resets it, and the alert is lost with the reset), a host
                // that asked for a certificate when none was given is taken to refuse for that.
                if https
                    && let Some(client) = self.tls.client_cert(&host, port)
                    && client.asked()
                    && let Some(alert) = client.alert().or_else(|| {
                        (client.presented().is_none() && !e.is_connect())
                            .then_some(rustls::AlertDescription::CertificateRequired)
                    })
                {
                    return Err(Box::new(ConnectFailure::client_cert(
                        &target,
                        alert,
                        client.presented(),
                        Some(e.into()),
                    )));
                }
                Err(e.into())
            }
        }
    }
}
