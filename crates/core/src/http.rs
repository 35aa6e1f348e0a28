//! One HTTP client builder and one TLS root policy for every crate of ferry that speaks HTTP:
//! the registry client, the IPFS gateway client, operators' admin endpoints.
//!
//! - [`TlsPolicy`]: which servers are trusted. The system's roots (`SSL_CERT_FILE` and
//!   `SSL_CERT_DIR` honoured), else the bundled Mozilla roots, plus the CA certificates given
//!   ([`TlsPolicy::with_ca_file`]); or any certificate ([`TlsPolicy::insecure`], for test
//!   setups). The TLS configuration names its crypto provider (`ring`) itself: nothing here
//!   installs a process-wide rustls provider; that is left to binaries.
//! - [`HttpClientBuilder`]: a hyper client with connection reuse, HTTP/1.1 and HTTP/2 by ALPN,
//!   TCP_NODELAY, a connect timeout, and the knobs of bulk transfers (HTTP/2 flow-control
//!   windows, socket buffers under TLS).
//! - [`transport_error`]: a failed request as one [`Error::Transport`] sentence naming the host
//!   and the cause (`cannot connect to 127.0.0.1:5409: connection refused`), the chain kept as
//!   its source.
//!
//! Behind the `http-client` feature, so a user of layouts alone compiles none of it.
//!
//! ```no_run
//! # fn demo() -> ferry_core::Result<()> {
//! use ferry_core::http::{HttpClientBuilder, TlsPolicy};
//! let tls = TlsPolicy::new().with_ca_file("/etc/ferry/registry-ca.pem".as_ref())?;
//! let client = HttpClientBuilder::new().tls(tls).build::<String>()?;
//! # let _ = client; Ok(()) }
//! ```

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, BufStream};
use tokio::net::TcpStream;

use crate::error::{BoxError, Error, Result, TransportErrorKind};

/// The client [`HttpClientBuilder::build`] makes: HTTP and HTTPS.
pub type HttpsClient<B> = Client<HttpsConnector<Connector>, B>;
/// The client [`HttpClientBuilder::build_http`] makes: plain HTTP only.
pub type HttpClient<B> = Client<HttpConnector, B>;

/// The crypto provider of every TLS configuration made here.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Which TLS servers a client trusts.
#[derive(Clone, Default)]
pub struct TlsPolicy {
    insecure: bool,
    no_system_roots: bool,
    extra: Vec<CertificateDer<'static>>,
    /// Where the extra certificates came from, for `Debug`.
    sources: Vec<String>,
}

impl std::fmt::Debug for TlsPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPolicy")
            .field("insecure", &self.insecure)
            .field("system_roots", &!self.no_system_roots)
            .field("extra", &self.sources)
            .finish()
    }
}

impl TlsPolicy {
    /// The system's roots (`SSL_CERT_FILE` and `SSL_CERT_DIR` honoured), or the bundled Mozilla
    /// roots where the system has none.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accept any certificate (self-signed test servers). The handshake's signatures are still
    /// checked, so the connection is at least to the key presented. Never in production.
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// Whether any certificate is accepted.
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// Also trust the CA certificates in the PEM file `path` (one or more certificates).
    pub fn with_ca_file(self, path: &Path) -> Result<Self> {
        let pem = std::fs::read(path).map_err(|e| {
            Error::io(
                format!("cannot read the CA certificate file `{}`", path.display()),
                e,
            )
        })?;
        self.with_ca_pem(&pem, &path.display().to_string())
    }

    /// Also trust the CA certificates in `pem`; `source` names them in errors.
    pub fn with_ca_pem(mut self, pem: &[u8], source: &str) -> Result<Self> {
        let invalid = |reason: String| Error::invalid("CA certificate file", source, reason);
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| invalid(format!("it is not PEM ({e})")))?;
            // The same check the root store makes when the client is built, here, so a bad
            // file is refused where it is named.
            RootCertStore::empty()
                .add(cert.clone())
                .map_err(|e| invalid(format!("a certificate in it cannot be used ({e})")))?;
            self.extra.push(cert);
            found += 1;
        }
        if found == 0 {
            return Err(invalid(
                "it holds no `-----BEGIN CERTIFICATE-----` block; give the CA certificate in PEM"
                    .into(),
            ));
        }
        self.sources.push(source.to_string());
        Ok(self)
    }

    /// Trust only the certificates given with [`TlsPolicy::with_ca_file`], not the system's.
    pub fn without_system_roots(mut self) -> Self {
        self.no_system_roots = true;
        self
    }

    /// The root store: the system's roots (else the bundled ones) and the extra CAs.
    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        if !self.no_system_roots {
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                tracing::debug!(error = %e, "skipping a system root certificate source");
            }
            let (added, _) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                tracing::debug!("no system root certificates, using the bundled roots");
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
        }
        for cert in &self.extra {
            // Checked in `with_ca_pem`.
            let _ = roots.add(cert.clone());
        }
        roots
    }

    /// The rustls configuration of this policy, with the `ring` provider and no ALPN (the
    /// builder sets it). Root certificates are loaded on the first handshake that needs them
    /// (the system's take tens of milliseconds), so a client that never speaks TLS never
    /// pays for them.
    pub fn client_config(&self) -> Result<rustls::ClientConfig> {
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::store("tls", format!("TLS setup failed: {e}")))?
            .dangerous();
        let verifier: Arc<dyn ServerCertVerifier> = Arc::new(LazyRootsVerifier {
            policy: self.clone(),
            provider,
            verifier: OnceLock::new(),
        });
        let mut config = builder
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.alpn_protocols.clear();
        Ok(config)
    }
}

/// The verifier of a [`TlsPolicy`]: webpki's, over roots loaded on first use; with
/// [`TlsPolicy::insecure`], any server certificate (the handshake's signatures are still
/// checked).
#[derive(Debug)]
struct LazyRootsVerifier {
    policy: TlsPolicy,
    provider: Arc<CryptoProvider>,
    verifier: OnceLock<std::result::Result<Arc<WebPkiServerVerifier>, String>>,
}

impl LazyRootsVerifier {
    fn verifier(&self) -> std::result::Result<&Arc<WebPkiServerVerifier>, rustls::Error> {
        self.verifier
            .get_or_init(|| {
                WebPkiServerVerifier::builder_with_provider(
                    Arc::new(self.policy.roots()),
                    self.provider.clone(),
                )
                .build()
                .map_err(|e| format!("no usable root certificates ({e})"))
            })
            .as_ref()
            .map_err(|e| rustls::Error::General(e.clone()))
    }
}

impl ServerCertVerifier for LazyRootsVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if self.policy.insecure {
            return Ok(ServerCertVerified::assertion());
        }
        let verified = self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match verified {
            Err(e)
                if self
                    .policy
                    .extra
                    .iter()
                    .any(|c| c.as_ref() == end_entity.as_ref()) =>
            {
                // The server presents a certificate the user gave as a CA (`--ca-cert`): a
                // self-signed registry certificate. webpki refuses it as an end entity when it
                // is marked as a CA, as `openssl req -x509` makes it; like docker and skopeo,
                // take it as it is, for the names it lists.
                let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                tracing::debug!(
                    server = ?server_name,
                    refused_as = %e,
                    "the server presents a certificate trusted by file itself; taken as it is"
                );
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The socket buffers under TLS by default: a TLS record holds at most 16 KiB, and rustls reads
/// and writes one record per call, so unbuffered a 128 MiB transfer costs about 8,000 system
/// calls each way; with 64 KiB buffers about 2,000 (larger buffers measured no better and
/// delay the first bytes).
pub const DEFAULT_IO_BUFFER: usize = 64 * 1024;

/// Builds the hyper clients of ferry's crates.
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

    /// A client for plain HTTP only: no TLS configuration, no root certificates loaded.
    pub fn build_http<B>(&self) -> HttpClient<B>
    where
        B: hyper::body::Body + Send + 'static + Unpin,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        self.client_builder().build(self.http_connector())
    }

    /// A client for HTTPS and plain HTTP. The root certificates of the policy are loaded on the
    /// first TLS handshake.
    pub fn build<B>(&self) -> Result<HttpsClient<B>>
    where
        B: hyper::body::Body + Send + 'static + Unpin,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        Ok(self.build_on(self.tls.client_config()?, self.http2))
    }

    /// Two clients sharing one TLS configuration, and so one cache of TLS sessions to resume:
    /// the first as [`HttpClientBuilder::build`] makes it, the second speaking HTTP/1.1 only,
    /// for bulk transfers.
    ///
    /// Why two: over HTTP/2 every blob on a connection shares one flow-control window, which a
    /// server sizes (distribution's, in Go, grants 1 MiB per connection for uploads), so far
    /// away a connection's uploads go at window ÷ round trip; and on loopback distribution's
    /// HTTP/2 server took 30% more wall time and 70% more CPU than HTTP/1.1 to move the same
    /// 128 MiB. HTTP/1.1 gives each transfer a connection of its own, bounded by TCP only;
    /// HTTP/2 keeps the many small requests (existence checks, mounts, manifests) on one
    /// connection and one handshake.
    pub fn build_split<B>(&self) -> Result<(HttpsClient<B>, HttpsClient<B>)>
    where
        B: hyper::body::Body + Send + 'static + Unpin,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let config = self.tls.client_config()?;
        Ok((
            self.build_on(config.clone(), self.http2),
            self.build_on(config, false),
        ))
    }

    fn build_on<B>(&self, config: rustls::ClientConfig, http2: bool) -> HttpsClient<B>
    where
        B: hyper::body::Body + Send + 'static + Unpin,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
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

/// The TCP connector under TLS: [`HttpConnector`] with buffered socket I/O.
#[derive(Debug, Clone)]
pub struct Connector {
    http: HttpConnector,
    buffer: usize,
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = BufferedIo;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = std::result::Result<BufferedIo, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.http.call(uri);
        let buffer = self.buffer;
        Box::pin(async move {
            let tcp = connecting.await?.into_inner();
            Ok(BufferedIo::new(tcp, buffer))
        })
    }
}

/// A TCP connection with read and write buffers of its own: TLS reads and writes one record
/// (at most 16 KiB) at a time, which unbuffered is one system call per record.
#[derive(Debug)]
pub struct BufferedIo {
    inner: TokioIo<Inner>,
}

#[derive(Debug)]
enum Inner {
    Direct(TcpStream),
    Buffered(BufStream<TcpStream>),
}

impl BufferedIo {
    fn new(tcp: TcpStream, buffer: usize) -> Self {
        let inner = if buffer == 0 {
            Inner::Direct(tcp)
        } else {
            Inner::Buffered(BufStream::with_capacity(buffer, buffer, tcp))
        };
        Self {
            inner: TokioIo::new(inner),
        }
    }
}

impl AsyncRead for Inner {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Inner::Direct(s) => Pin::new(s).poll_read(cx, buf),
            Inner::Buffered(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Inner {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Inner::Direct(s) => Pin::new(s).poll_write(cx, buf),
            Inner::Buffered(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Inner::Direct(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Inner::Buffered(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Inner::Direct(s) => s.is_write_vectored(),
            Inner::Buffered(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Inner::Direct(s) => Pin::new(s).poll_flush(cx),
            Inner::Buffered(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Inner::Direct(s) => Pin::new(s).poll_shutdown(cx),
            Inner::Buffered(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

impl Read for BufferedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl Write for BufferedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl Connection for BufferedIo {
    fn connected(&self) -> Connected {
        match self.inner.inner() {
            Inner::Direct(s) => s.connected(),
            Inner::Buffered(s) => s.get_ref().connected(),
        }
    }
}

/// Whether `host` (a name or an address, without port) is this machine's loopback:
/// `localhost`, `127.0.0.0/8` or `::1`.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What failed, read from an error chain of hyper, hyper-util, rustls and the OS.
pub fn classify(error: &(dyn std::error::Error + 'static)) -> TransportErrorKind {
    let mut kind = TransportErrorKind::Other;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cur {
        // An `io::Error` made with `io::Error::new` holds its error rather than naming it as
        // its source (TLS errors come so, sometimes in two layers).
        let mut held: &(dyn std::error::Error + 'static) = e;
        while let Some(inner) = held.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            held = inner;
        }
        let tls = held.downcast_ref::<rustls::Error>();
        if let Some(tls) = tls {
            return match tls {
                rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::UnsupportedNameType => TransportErrorKind::Certificate,
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
                    TransportErrorKind::PlainHttp
                }
                _ => TransportErrorKind::Tls,
            };
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            let text = io.to_string();
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return TransportErrorKind::Refused,
                io::ErrorKind::TimedOut => return TransportErrorKind::Timeout,
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof => kind = TransportErrorKind::Reset,
                _ if text.contains("failed to lookup address") => {
                    return TransportErrorKind::Dns;
                }
                _ if text.contains("tls handshake eof") => kind = TransportErrorKind::Tls,
                _ => {}
            }
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_timeout() {
                return TransportErrorKind::Timeout;
            }
            if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
                kind = TransportErrorKind::Reset;
            }
        }
        let text = e.to_string();
        if text.starts_with("dns error") {
            return TransportErrorKind::Dns;
        }
        if kind == TransportErrorKind::Other
            && (text.contains("stream error") || text.contains("connection error"))
        {
            kind = TransportErrorKind::Reset;
        }
        cur = e.source();
    }
    kind
}

/// The innermost message of a chain, lower-cased and without the OS error number
/// (`connection refused`), for the end of a sentence.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = error;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let mut text = cur.to_string();
    if let Some(i) = text.find(" (os error") {
        text.truncate(i);
    }
    if let Some(rest) = text.strip_prefix("failed to lookup address information: ") {
        text = rest.to_string();
    }
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// A failed request to `host` as one sentence: `doing` says what was under way (`reading
/// blob `sha256:…``), used when the connection broke after it was made. The chain stays the
/// source.
pub fn transport_error(host: &str, doing: &str, error: impl Into<BoxError>) -> Error {
    let error: BoxError = error.into();
    let kind = classify(error.as_ref());
    let cause = root_cause(error.as_ref());
    let message = match kind {
        TransportErrorKind::Refused => format!("cannot connect to {host}: connection refused"),
        TransportErrorKind::Dns => {
            format!("cannot connect to {host}: the name does not resolve ({cause})")
        }
        TransportErrorKind::Certificate => format!(
            "cannot connect to {host}: its TLS certificate is not trusted ({cause}); trust its CA \
             with `--ca-cert FILE`, or pass `--insecure` if it is a test registry"
        ),
        TransportErrorKind::PlainHttp => format!(
            "`{host}` answered in plain HTTP; pass `--plain-http` (or \
             `--to-plain-http`/`--from-plain-http`) if that is intended"
        ),
        TransportErrorKind::Tls => {
            format!("cannot connect to {host}: the TLS handshake failed ({cause})")
        }
        TransportErrorKind::Timeout => {
            format!("no answer from {host} in time while {doing} ({cause})")
        }
        TransportErrorKind::Reset => {
            format!("the connection to {host} broke while {doing} ({cause})")
        }
        _ => format!("the request to {host} failed while {doing} ({cause})"),
    };
    Error::Transport {
        host: host.to_string(),
        kind,
        message,
        source: Some(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "example.com",
            "10.0.0.1",
            "localhost.example",
            "::2",
            "128.0.0.1",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn refused_reads_as_one_sentence() {
        let io = io::Error::from(io::ErrorKind::ConnectionRefused);
        let e = transport_error("127.0.0.1:5409", "HEAD /v2/", io);
        assert_eq!(
            e.to_string(),
            "cannot connect to 127.0.0.1:5409: connection refused"
        );
        assert!(!e.is_temporary());
    }

    #[test]
    fn a_ca_file_that_is_not_pem_is_refused_by_name() {
        let e = TlsPolicy::new()
            .with_ca_pem(b"hello", "ca.pem")
            .unwrap_err();
        assert!(e.to_string().contains("ca.pem"), "{e}");
        assert!(e.to_string().contains("PEM"), "{e}");
    }
}

#[cfg(test)]
mod classify_tests {
    use super::*;

    #[tokio::test]
    async fn a_plain_http_answer_to_tls_is_named() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
        });
        let client = HttpClientBuilder::new().build::<String>().unwrap();
        let err = client
            .get(format!("https://{addr}/v2/").parse().unwrap())
            .await
            .unwrap_err();
        assert_eq!(classify(&err), TransportErrorKind::PlainHttp);
    }
}
