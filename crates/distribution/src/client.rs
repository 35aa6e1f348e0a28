//! The registry client: options, one shared connection pool, one [`Registry`] per host.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ferry_core::{Error, Result};
use ferry_http::{ProxyPolicy, TlsPolicy};
use url::Url;

use crate::auth::{Clock, Credentials, HostAuth, SystemClock};
use crate::reference::{Reference, api_host};
use crate::registry::Registry;
use crate::repository::Repository;
use crate::transport::{RetryPolicy, Timeouts, Transport};

/// Blobs up to this size are streamed in one `PUT`, reading and sending at once; larger ones
/// go in chunks (`PATCH`), which a broken connection resumes from the registry's offset. A
/// streamed upload that breaks is started over by the copy engine, so chunking pays only for
/// layers so large that starting over costs more than the round trip per chunk.
///
/// The round trip is not small: distribution 2.8 closes, syncs and records the hash state of
/// the upload at the end of every `PATCH`, about 18 ms per chunk here, so a 4 GiB blob took
/// 21.3 s in 16 MiB chunks and 17.5 s as one `PUT` (BENCHMARKS.md, `huge-blob`). Above 8 GiB
/// a restart costs more than that.
pub const DEFAULT_CHUNK_THRESHOLD: u64 = 8 * 1024 * 1024 * 1024;
/// The size of each chunk of a chunked upload (raised to the registry's
/// `OCI-Chunk-Min-Length`).
pub const DEFAULT_CHUNK_SIZE: u64 = 16 * 1024 * 1024;

/// How a [`RegistryClient`] talks to registries.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Speak plain HTTP instead of HTTPS to every registry.
    pub plain_http: bool,
    /// Which TLS certificates are trusted: the system's roots by default, plus CA certificates
    /// given ([`TlsPolicy::with_ca_file`]), or any ([`TlsPolicy::insecure`], for self-signed
    /// test registries; never in production); and the client certificate presented, from each
    /// host's `certs.d` directory by default ([`ferry_http::certs`]).
    pub tls: TlsPolicy,
    /// Which requests go through a proxy: `None` reads `HTTPS_PROXY`, `HTTP_PROXY`,
    /// `ALL_PROXY` and `NO_PROXY` ([`ferry_http::proxy`]).
    pub proxy: Option<ProxyPolicy>,
    /// The longest a pull waits for a registry's quota to come back (see [`crate::quota`]);
    /// beyond it the pull fails with [`ferry_core::Error::QuotaExhausted`].
    pub max_wait: std::time::Duration,
    /// At most this many requests per second to each host (`None`: no cap).
    pub requests_per_second: Option<f64>,
    /// Told once of each wait for a registry's quota.
    pub on_quota_wait: Option<crate::quota::QuotaHook>,
    /// Where credentials come from; docker's configuration by default.
    pub credentials: Credentials,
    /// The `User-Agent` of every request.
    pub user_agent: String,
    /// Network timeouts.
    pub timeouts: Timeouts,
    /// Retries of requests that can be repeated.
    pub retry: RetryPolicy,
    /// Blobs larger than this are uploaded in chunks (`PATCH`), which can resume.
    pub chunk_threshold: u64,
    /// Chunk size of chunked uploads.
    pub chunk_size: u64,
    /// Resolve tags with `HEAD` (cheaper on registries that count `GET`s, such as Docker Hub)
    /// instead of a `GET` whose manifest bytes are kept for the copy that follows (one request
    /// fewer per copy).
    pub resolve_with_head: bool,
    /// The clock token lifetimes are measured by (the system's; tests move their own).
    pub clock: Arc<dyn Clock>,
    /// Blobs at least this large are downloaded in ranges, several at once (each connection
    /// of a capped link then adds its share); [`DEFAULT_RANGE_THRESHOLD`] by default,
    /// `u64::MAX` for never.
    pub range_threshold: u64,
    /// The size of each range of a parallel download ([`DEFAULT_RANGE_SIZE`]).
    pub range_size: u64,
    /// Ranges of one blob in flight at once ([`DEFAULT_RANGES`]); memory holds at most this
    /// many ranges of a blob.
    pub ranges: usize,
    /// A first range that comes at least this fast (bytes per second) shows one connection is
    /// not the limit, and the rest of the blob comes as one stream
    /// ([`DEFAULT_ONE_STREAM_RATE`]; `u64::MAX` for ranges always).
    pub one_stream_rate: u64,
    /// Hash every blob pushed, in ferry, as well as in the registry. A registry must refuse a
    /// blob whose content does not match the digest of its `PUT ?digest=` (`DIGEST_INVALID`),
    /// which ferry reports as [`ferry_core::Error::DigestMismatch`] like its own check; so by
    /// default ferry only counts the bytes it sends and leaves the hashing to the registry,
    /// which does it anyway. Turn this on for a registry that does not check digests.
    pub verify_uploads: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            plain_http: false,
            tls: TlsPolicy::new(),
            proxy: None,
            max_wait: crate::quota::DEFAULT_MAX_WAIT,
            requests_per_second: None,
            on_quota_wait: None,
            credentials: Credentials::default(),
            user_agent: format!("ferry/{}", env!("CARGO_PKG_VERSION")),
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
            chunk_threshold: DEFAULT_CHUNK_THRESHOLD,
            chunk_size: DEFAULT_CHUNK_SIZE,
            resolve_with_head: false,
            verify_uploads: false,
            range_threshold: DEFAULT_RANGE_THRESHOLD,
            range_size: DEFAULT_RANGE_SIZE,
            ranges: DEFAULT_RANGES,
            one_stream_rate: DEFAULT_ONE_STREAM_RATE,
            clock: Arc::new(SystemClock),
        }
    }
}

/// Blobs at least this large are downloaded in parallel ranges by default.
pub const DEFAULT_RANGE_THRESHOLD: u64 = 64 * 1024 * 1024;
/// The size of each range of a parallel download by default: on a link of 20 ms capped at
/// 16 MB/s per connection, 4 ranges of 4 MiB pulled 80 MiB in 1.70 s holding 43 MiB, of 8 MiB
/// in 1.87 s holding 67 MiB (BENCHMARKS.md).
pub const DEFAULT_RANGE_SIZE: u64 = 4 * 1024 * 1024;
/// Ranges of one blob in flight at once by default.
pub const DEFAULT_RANGES: usize = 4;
/// The rate of a first range (bytes per second) from which the rest of a blob comes as one
/// stream, by default: 64 MiB/s. A registry on loopback or the same network sends a range
/// far faster; a connection capped by a CDN or slowed by a long round trip, far slower.
pub const DEFAULT_ONE_STREAM_RATE: u64 = 64 * 1024 * 1024;

/// Settings every registry of a client shares.
#[derive(Debug)]
pub(crate) struct Settings {
    pub chunk_threshold: u64,
    pub chunk_size: u64,
    pub resolve_with_head: bool,
    pub verify_uploads: bool,
    pub range_threshold: u64,
    pub range_size: u64,
    pub ranges: usize,
    pub one_stream_rate: u64,
}

/// A client for OCI distribution registries. Cheap to clone; clones share one connection
/// pool and, per registry host, one token cache.
///
/// ```no_run
/// # async fn demo() -> ferry_core::Result<()> {
/// use ferry_distribution::{ClientOptions, Reference, RegistryClient};
/// let client = RegistryClient::new(ClientOptions { plain_http: true, ..Default::default() })?;
/// let repo = client.repository(&Reference::parse("localhost:5000/team/app:v1")?)?;
/// # let _ = repo; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    transport: Arc<Transport>,
    plain_http: bool,
    credentials: Credentials,
    clock: Arc<dyn Clock>,
    settings: Arc<Settings>,
    registries: Mutex<HashMap<String, Arc<Registry>>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("plain_http", &self.inner.plain_http)
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// A client with `options`.
    pub fn new(options: ClientOptions) -> Result<Self> {
        let transport = Transport::new(
            options.tls,
            options.proxy,
            &options.user_agent,
            options.timeouts,
            options.retry,
            crate::quota::Pacing {
                max_wait: options.max_wait,
                requests_per_second: options.requests_per_second,
                on_wait: options.on_quota_wait,
                clock: options.clock.clone(),
            },
        )?;
        Ok(Self {
            inner: Arc::new(ClientInner {
                transport: Arc::new(transport),
                plain_http: options.plain_http,
                credentials: options.credentials,
                clock: options.clock,
                settings: Arc::new(Settings {
                    chunk_threshold: options.chunk_threshold,
                    chunk_size: options.chunk_size.max(1),
                    resolve_with_head: options.resolve_with_head,
                    verify_uploads: options.verify_uploads,
                    range_threshold: options.range_threshold,
                    range_size: options.range_size.max(1),
                    ranges: options.ranges.max(1),
                    one_stream_rate: options.one_stream_rate,
                }),
                registries: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The registry `name` (`localhost:5000`, `docker.io`), shared by every repository of it.
    pub fn registry(&self, name: &str) -> Result<Arc<Registry>> {
        let mut map = self.inner.registries.lock().expect("registries lock");
        if let Some(r) = map.get(name) {
            return Ok(r.clone());
        }
        let scheme = if self.inner.plain_http {
            "http"
        } else {
            "https"
        };
        let base = Url::parse(&format!("{scheme}://{}/", api_host(name))).map_err(|e| {
            Error::invalid(
                "registry",
                name,
                format!("not a host name with optional port ({e})"),
            )
        })?;
        let auth = HostAuth::new(
            name,
            self.inner.credentials.clone(),
            self.inner.transport.clone(),
            self.inner.clock.clone(),
        );
        let registry = Arc::new(Registry::new(
            name.to_string(),
            base,
            auth,
            self.inner.transport.clone(),
            self.inner.settings.clone(),
        ));
        map.insert(name.to_string(), registry.clone());
        Ok(registry)
    }

    /// The repositories of registry `name`, as a [`ferry_core::Catalog`] a sync lists.
    pub fn catalog(&self, name: &str) -> Result<Arc<crate::RegistryCatalog>> {
        Ok(Arc::new(crate::RegistryCatalog::new(self.registry(name)?)))
    }

    /// Requests sent so far to each host (`host:port`), the answers that shed load (`429`,
    /// `503`), and each host's adaptive limit (see [`crate::ratelimit`]).
    pub fn request_stats(&self) -> Vec<(String, crate::ratelimit::RequestStats)> {
        self.inner.transport.limits.stats()
    }

    /// Cancels (`DELETE`) every upload session this client opened that is neither committed
    /// nor cancelled: what a stopped copy (its future dropped mid-upload) left at the
    /// registries. Returns how many were cancelled.
    pub async fn cancel_open_uploads(&self) -> usize {
        let registries: Vec<Arc<Registry>> = self
            .inner
            .registries
            .lock()
            .expect("registries lock")
            .values()
            .cloned()
            .collect();
        let mut cancelled = 0;
        for registry in registries {
            cancelled += registry.cancel_open_uploads().await;
        }
        cancelled
    }

    /// The repository `reference` names (its tag and digest are not part of the store).
    pub fn repository(&self, reference: &Reference) -> Result<Arc<Repository>> {
        Ok(Repository::new(
            self.registry(reference.registry())?,
            reference.repository(),
        ))
    }
}
