//! ferry's connector: TCP to the server, or to its proxy (TLS to an `https://` proxy), a
//! `CONNECT` tunnel for HTTPS through the proxy, then TLS with the host's own configuration
//! (its `certs.d` CAs and client certificate).
//!
//! Plain-HTTP requests through a proxy are not tunnelled: the connection is marked as proxied,
//! so the client writes absolute-form requests (`GET http://host/path`), as proxies expect and
//! as `CONNECT` to ports other than 443 is commonly denied.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use ferry_core::BoxError;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::ConnectFailure;
use crate::io::{Conn, Stream};
use crate::proxy::{Proxy, ProxyPolicy, ProxyScheme};
use crate::tls::{ClientCert, HostConfig, TlsPolicy, client_cert_alert};

/// The TLS configurations of a client, one per host, made on first use and shared by the
/// client's connectors.
#[derive(Debug)]
pub(crate) struct HostTls {
    policy: TlsPolicy,
    hosts: Mutex<HashMap<(String, u16), Arc<HostEntry>>>,
}

/// One host's configurations, offering HTTP/2 and not (sharing one cache of sessions to
/// resume), and its client certificate.
#[derive(Debug)]
struct HostEntry {
    h2: Arc<rustls::ClientConfig>,
    h1: Arc<rustls::ClientConfig>,
    client: Arc<ClientCert>,
}

impl HostTls {
    pub(crate) fn new(policy: TlsPolicy) -> Self {
        Self {
            policy,
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// The configuration of `host` on `port` (its `certs.d` read once).
    fn get(&self, host: &str, port: u16) -> Result<Arc<HostEntry>, BoxError> {
        let key = (host.to_ascii_lowercase(), port);
        if let Some(c) = self.hosts.lock().expect("hosts lock").get(&key) {
            return Ok(c.clone());
        }
        let HostConfig { config, client } = self.policy.host_config(&key.0, port, port == 443)?;
        let with_alpn = |protocols: &[&[u8]]| {
            let mut c = config.clone();
            c.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
            Arc::new(c)
        };
        let config = Arc::new(HostEntry {
            h2: with_alpn(&[b"h2", b"http/1.1"]),
            h1: with_alpn(&[b"http/1.1"]),
            client,
        });
        Ok(self
            .hosts
            .lock()
            .expect("hosts lock")
            .entry(key)
            .or_insert(config)
            .clone())
    }

    /// The client certificate state of `host` on `port`, if a connection was made to it.
    pub(crate) fn client_cert(&self, host: &str, port: u16) -> Option<Arc<ClientCert>> {
        self.hosts
            .lock()
            .expect("hosts lock")
            .get(&(host.to_ascii_lowercase(), port))
            .map(|c| c.client.clone())
    }
}

/// Makes connections for a client: direct or through the policy's proxy, with TLS for
/// `https://`.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    pub(crate) http: HttpConnector,
    pub(crate) proxy: Arc<ProxyPolicy>,
    pub(crate) tls: Arc<HostTls>,
    /// Whether HTTP/2 is offered by ALPN.
    pub(crate) h2: bool,
    /// Socket buffers under TLS (0: none).
    pub(crate) buffer: usize,
    pub(crate) timeout: Option<Duration>,
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let timeout = this.timeout;
            let connecting = this.connect(uri);
            match timeout {
                Some(limit) => match tokio::time::timeout(limit, connecting).await {
                    Ok(r) => r,
                    Err(_) => Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no connection within {} s", limit.as_secs()),
                    )
                    .into()),
                },
                None => connecting.await,
            }
        })
    }
}

impl Connector {
    async fn connect(self, uri: http::Uri) -> Result<Conn, BoxError> {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            other => return Err(format!("unsupported scheme {other:?}").into()),
        };
        let host = uri.host().ok_or("the URL names no host")?.to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let target = if port == if https { 443 } else { 80 } {
            host.clone()
        } else {
            format!("{host}:{port}")
        };
        let proxy = self
            .proxy
            .proxy_for(uri.scheme_str().unwrap_or(""), &host, port)
            .cloned();
        if !https {
            return match proxy {
                None => Ok(Conn::new(Stream::Tcp(self.tcp(&uri).await?), false, None)),
                Some(proxy) => {
                    let stream = self.to_proxy(&proxy, &target).await?;
                    Ok(Conn::new(stream, true, None))
                }
            };
        }
        // The host's TLS material is read before anything connects: a bad key is refused
        // before the network is touched.
        let config = self.tls.get(&host, port)?;
        let stream = match &proxy {
            None => Stream::tcp(self.tcp(&uri).await?, self.buffer),
            Some(proxy) => {
                let mut stream = self.to_proxy(proxy, &target).await?;
                self.tunnel(&mut stream, proxy, &host, port, &target)
                    .await?;
                stream
            }
        };
        let tls = self.handshake(stream, &config, &host, &target).await?;
        Ok(Conn::new(tls, false, Some(config.client.clone())))
    }

    /// TCP to `uri`'s host and port, resolved here.
    async fn tcp(&self, uri: &http::Uri) -> Result<tokio::net::TcpStream, BoxError> {
        let dst: http::Uri = format!(
            "http://{}:{}/",
            uri.host().unwrap_or_default(),
            uri.port_u16()
                .unwrap_or(if uri.scheme_str() == Some("https") {
                    443
                } else {
                    80
                })
        )
        .parse()?;
        let mut http = self.http.clone();
        Ok(tower_service::Service::call(&mut http, dst)
            .await?
            .into_inner())
    }

    /// A stream to `proxy` (TLS for an `https://` proxy), to reach `target`.
    async fn to_proxy(&self, proxy: &Proxy, target: &str) -> Result<Stream, BoxError> {
        let unreachable = |e: BoxError| -> BoxError {
            Box::new(ConnectFailure::proxy_unreachable(proxy, target, e))
        };
        let tcp = self.tcp(&proxy.uri()).await.map_err(unreachable)?;
        match proxy.scheme() {
            ProxyScheme::Http => Ok(Stream::tcp(tcp, 0)),
            ProxyScheme::Https => {
                let name = proxy.host().trim_start_matches('[').trim_end_matches(']');
                // `CONNECT` is HTTP/1.1.
                let config = self
                    .tls
                    .get(proxy.host(), proxy.port())
                    .map_err(unreachable)?
                    .h1
                    .clone();
                let server =
                    ServerName::try_from(name.to_string()).map_err(|e| unreachable(e.into()))?;
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(server, Stream::tcp(tcp, 0))
                    .await
                    .map_err(|e| unreachable(e.into()))?;
                Ok(Stream::Tls(Box::new(tls)))
            }
        }
    }

    /// Opens a `CONNECT` tunnel to `host:port` through `proxy` on `stream`.
    async fn tunnel(
        &self,
        stream: &mut Stream,
        proxy: &Proxy,
        host: &str,
        port: u16,
        target: &str,
    ) -> Result<(), BoxError> {
        let authority = format!("{host}:{port}");
        let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
        if let Some(auth) = proxy.authorization().and_then(|a| a.to_str().ok()) {
            request.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
        }
        request.push_str("\r\n");
        let broken = |what: String, e: Option<BoxError>| -> BoxError {
            Box::new(ConnectFailure::proxy_broken(proxy, target, what, e))
        };
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| broken("it closed the connection".into(), Some(e.into())))?;
        stream
            .flush()
            .await
            .map_err(|e| broken("it closed the connection".into(), Some(e.into())))?;
        // The answer's head, read to its blank line; nothing may follow it before the TLS
        // handshake starts.
        let mut head = Vec::with_capacity(256);
        let mut buf = [0u8; 1024];
        loop {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| broken("the connection broke".into(), Some(e.into())))?;
            if n == 0 {
                return Err(broken(
                    "it closed the connection without answering".into(),
                    None,
                ));
            }
            head.extend_from_slice(&buf[..n]);
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                // A refusal has a body; an open tunnel carries nothing before the handshake.
                if end + 4 != head.len() && head.starts_with(b"HTTP/1.1 2") {
                    return Err(broken(
                        "it sent data before the tunnel was open".into(),
                        None,
                    ));
                }
                head.truncate(end);
                break;
            }
            if head.len() > 16 * 1024 {
                return Err(broken("its answer's head is over 16 KiB".into(), None));
            }
        }
        let text = String::from_utf8_lossy(&head);
        let status_line = text.lines().next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        let code: u16 = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
        let reason = parts.next().unwrap_or_default().trim();
        if !version.starts_with("HTTP/1.") || code == 0 {
            return Err(broken(
                format!(
                    "it answered `CONNECT` with `{}`",
                    status_line.chars().take(80).collect::<String>()
                ),
                None,
            ));
        }
        match code {
            200..=299 => Ok(()),
            407 => Err(Box::new(ConnectFailure::proxy_auth(proxy, target))),
            _ => Err(Box::new(ConnectFailure::proxy_refused(
                proxy,
                target,
                format!("{code} {reason}").trim(),
            ))),
        }
    }

    /// TLS to `host` over `stream`.
    async fn handshake(
        &self,
        stream: Stream,
        host: &HostEntry,
        name: &str,
        target: &str,
    ) -> Result<Stream, BoxError> {
        let config = if self.h2 { &host.h2 } else { &host.h1 };
        let server = ServerName::try_from(
            name.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        )?;
        match tokio_rustls::TlsConnector::from(config.clone())
            .connect(server, stream)
            .await
        {
            Ok(tls) => Ok(Stream::Tls(Box::new(tls))),
            Err(e) => match client_cert_alert(&e) {
                Some(alert) if host.client.asked() => Err(Box::new(ConnectFailure::client_cert(
                    target,
                    alert,
                    host.client.presented(),
                    Some(e.into()),
                ))),
                _ => Err(e.into()),
            },
        }
    }
}
