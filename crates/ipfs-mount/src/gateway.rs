//! A client of the IPFS HTTP Trustless Gateway: raw blocks and CAR streams, every block
//! verified against its CID before any of its bytes can be committed.

use std::fmt;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cid::Cid;
use ferry_core::RetryPolicy;
use ferry_core::{ByteStream, Error, Result};
use ferry_http::{Body, HttpClient, HttpClientBuilder, ResponseBody, TlsPolicy};
use futures::{Stream, StreamExt};
use http_body_util::{BodyDataStream, BodyExt};
use url::Url;

use crate::address::{DAG_PB_CODEC, RAW_CODEC};
use crate::block::BlockHasher;
use crate::car;
use crate::error::IpfsError;

/// Media type of a raw block response.
pub const RAW_MEDIA_TYPE: &str = "application/vnd.ipld.raw";
/// Media type of a CAR response.
pub const CAR_MEDIA_TYPE: &str = "application/vnd.ipld.car";

/// How long a request may wait for the response headers, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a response body may pause between two chunks, by default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How many bytes of blocks a CAR may send before they are needed, by default: a gateway
/// that sends blocks breadth-first makes the client hold the inner nodes of the DAG.
pub const DEFAULT_BUFFER_LIMIT: usize = 64 * 1024 * 1024;

/// Bytes of a response body, or the gateway's failure.
pub(crate) type Chunks = Pin<Box<dyn Stream<Item = Result<Bytes, IpfsError>> + Send>>;

/// A client of one IPFS trustless gateway (`GET /ipfs/{cid}` with `application/vnd.ipld.raw`
/// or `application/vnd.ipld.car`). The gateway is never trusted: every block is checked
/// against its CID, and a stream this client returns fails instead of ending when the bytes do
/// not match, so a destination that commits on end of stream commits only verified content.
#[derive(Clone)]
pub struct GatewayClient {
    base: Url,
    client: HttpClient,
    timeout: Duration,
    idle_timeout: Duration,
    buffer_limit: usize,
    retry: RetryPolicy,
}

/// A try of a gateway request that did not succeed.
enum Unanswered {
    Answer(http::Response<ResponseBody>),
    Failed(IpfsError, bool),
}

impl ferry_core::Retryable for Unanswered {
    fn is_transient(&self) -> bool {
        match self {
            Unanswered::Answer(_) => true,
            Unanswered::Failed(_, transient) => *transient,
        }
    }
}

impl fmt::Display for Unanswered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unanswered::Answer(r) => write!(f, "answered {}", r.status()),
            Unanswered::Failed(e, _) => e.fmt(f),
        }
    }
}

impl fmt::Debug for GatewayClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayClient")
            .field("url", &self.base.as_str())
            .field("timeout", &self.timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("buffer_limit", &self.buffer_limit)
            .field("retry", &self.retry)
            .finish()
    }
}

impl fmt::Display for GatewayClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl GatewayClient {
    /// How the gateway's requests are retried by default: three retries within 10 s of
    /// waiting (a gateway that stays down is given up on quickly, and the blob comes from the
    /// source).
    pub fn default_retry() -> RetryPolicy {
        RetryPolicy::default()
            .with_max_retries(3)
            .with_max_wait(Duration::from_secs(10))
    }

    /// A client of the gateway at `url` (`http://127.0.0.1:8080`, `https://ipfs.example`),
    /// under which `/ipfs/{cid}` is served.
    pub fn new(url: &str) -> Result<Self> {
        let base = Url::parse(url).map_err(|e| {
            Error::invalid(
                "IPFS gateway URL",
                url,
                format!("{e}; give one such as `http://127.0.0.1:8080`"),
            )
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(Error::invalid(
                "IPFS gateway URL",
                url,
                "expected an `http://` or `https://` URL of a trustless gateway",
            ));
        }
        if !base.username().is_empty() || base.password().is_some() {
            // `Error::invalid` quotes the URL without them.
            return Err(Error::invalid(
                "IPFS gateway URL",
                url,
                "credentials in the URL are not supported; give the gateway's URL without them",
            ));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(Error::invalid(
                "IPFS gateway URL",
                url,
                "give the gateway's base URL without query or fragment",
            ));
        }
        // ferry's HTTP client, TLS root policy (the system's roots, loaded on the first
        // handshake) and proxy policy (the environment's).
        let client = HttpClientBuilder::new()
            .tls(TlsPolicy::new())
            .connect_timeout(Some(DEFAULT_TIMEOUT))
            .build()
            .map_err(|e| {
                Error::store(
                    "ipfs",
                    format!(
                        "setting up the HTTP client for `{}`: {e}",
                        ferry_core::redact::url(url)
                    ),
                )
            })?;
        Ok(Self {
            base,
            client,
            timeout: DEFAULT_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            buffer_limit: DEFAULT_BUFFER_LIMIT,
            retry: Self::default_retry(),
        })
    }

    /// Sets how long a request may wait for the response headers.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how long a response body may pause between two chunks.
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets how failed requests are retried ([`GatewayClient::default_retry`] by default): a `408`, `429` or
    /// `5xx`, a timeout, a broken or refused connection.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets how many bytes of blocks a CAR may send before they are needed.
    pub fn with_buffer_limit(mut self, bytes: usize) -> Self {
        self.buffer_limit = bytes;
        self
    }

    /// The gateway's base URL.
    pub fn url(&self) -> &Url {
        &self.base
    }

    pub(crate) fn name(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    pub(crate) fn buffer_limit(&self) -> usize {
        self.buffer_limit
    }

    /// The content of `cid` as a verified stream: a single block for a raw CID, the
    /// reassembled UnixFS file for a dag-pb CID.
    pub async fn fetch_file(&self, cid: &Cid) -> Result<ByteStream> {
        match cid.codec() {
            RAW_CODEC => self.fetch_raw(cid).await,
            DAG_PB_CODEC => self.fetch_car_file(cid).await,
            codec => Err(IpfsError::UnsupportedCodec {
                cid: cid.to_string(),
                codec,
            }
            .into()),
        }
    }

    /// The block `cid` names, fetched as `application/vnd.ipld.raw`. The stream yields the
    /// block's bytes as they arrive but holds back the last chunk until the whole block hashes
    /// to the CID; on a mismatch it ends with an error instead.
    pub async fn fetch_raw(&self, cid: &Cid) -> Result<ByteStream> {
        let body = self.get(cid, "raw", RAW_MEDIA_TYPE).await?;
        let hasher = BlockHasher::for_cid(cid)?;
        Ok(verified_block_stream(
            body,
            hasher,
            *cid,
            self.name().to_string(),
        ))
    }

    /// The UnixFS file `cid` names, fetched as one CAR (`dag-scope=all`) and reassembled:
    /// each block is checked against its CID as it arrives, and the file's bytes are yielded
    /// in order (raw leaves and dag-pb nodes). Blocks that arrive before they are needed are
    /// held up to the buffer limit; a block needed twice that is gone is fetched again raw.
    pub async fn fetch_car_file(&self, cid: &Cid) -> Result<ByteStream> {
        let body = self.get(cid, "car", CAR_ACCEPT).await?;
        Ok(car::file_stream(self.clone(), *cid, body).await?)
    }

    /// Whether the gateway says it has the block `cid` names, asked with a `HEAD` (reads
    /// only; nothing is fetched or verified): `Some(true)` for a success, `Some(false)` for
    /// `404`/`410`, `None` when the gateway cannot tell (another status, no answer in time, a
    /// connection error). For a UnixFS file's root, a yes says the root block is there, not
    /// that every block of the file is.
    pub async fn has(&self, cid: &Cid) -> Option<bool> {
        let url = format!("{}/ipfs/{cid}?format=raw", self.name());
        let request = http::Request::head(&url)
            .header(http::header::ACCEPT, RAW_MEDIA_TYPE)
            .header(http::header::USER_AGENT, USER_AGENT)
            .body(Body::empty())
            .ok()?;
        let started = Instant::now();
        let response = tokio::time::timeout(self.timeout, self.client.send(request))
            .await
            .ok()?
            .ok()?;
        let status = response.status();
        tracing::debug!(
            method = "HEAD",
            url = %ferry_core::redact::url(&url),
            status = status.as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "ipfs gateway request"
        );
        if status.is_success() {
            Some(true)
        } else if status == http::StatusCode::NOT_FOUND || status == http::StatusCode::GONE {
            Some(false)
        } else {
            None
        }
    }

    /// Reads one verified block whole, refusing more than the buffer limit.
    pub(crate) async fn block(&self, cid: &Cid) -> Result<Bytes> {
        let stream = self.fetch_raw(cid).await?;
        ferry_core::verify::read_to_bytes(
            stream,
            &format!("block `{cid}`"),
            self.buffer_limit as u64,
        )
        .await
    }

    async fn get(&self, cid: &Cid, format: &str, accept: &str) -> Result<Chunks, IpfsError> {
        let url = format!(
            "{}/ipfs/{cid}?format={format}{}",
            self.name(),
            if format == "car" {
                "&dag-scope=all"
            } else {
                ""
            }
        );
        let gateway = self.name().to_string();
        let cid_text = cid.to_string();
        let http_err = |source: ferry_core::BoxError| IpfsError::Http {
            gateway: gateway.clone(),
            cid: cid_text.clone(),
            source,
        };
        let started = Instant::now();
        let tried = ferry_core::retry::retry(
            &self.retry,
            &format!("GET {}", ferry_core::redact::url(&url)),
            |_| async {
                let request = http::Request::get(&url)
                    .header(http::header::ACCEPT, accept)
                    .header(http::header::USER_AGENT, USER_AGENT)
                    .body(Body::empty())
                    .map_err(|e| Unanswered::Failed(http_err(Box::new(e)), false))?;
                let response = tokio::time::timeout(self.timeout, self.client.send(request))
                    .await
                    .map_err(|_| {
                        let timeout = IpfsError::Timeout {
                            gateway: gateway.clone(),
                            cid: cid_text.clone(),
                            seconds: self.timeout.as_secs_f64(),
                        };
                        Unanswered::Failed(timeout, true)
                    })?
                    .map_err(|e| {
                        let transient = ferry_http::classify(e.as_ref()).is_temporary();
                        Unanswered::Failed(http_err(e), transient)
                    })?;
                match response.status().as_u16() {
                    408 | 429 | 500 | 502 | 503 | 504 => Err(Unanswered::Answer(response)),
                    _ => Ok(response),
                }
            },
            |_| {},
        )
        .await;
        let response = match tried {
            Ok(r) | Err(Unanswered::Answer(r)) => r,
            Err(Unanswered::Failed(e, _)) => return Err(e),
        };
        let status = response.status();
        tracing::debug!(
            method = "GET",
            url = %ferry_core::redact::url(&url),
            accept,
            status = status.as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "ipfs gateway request"
        );
        if status == http::StatusCode::NOT_FOUND || status == http::StatusCode::GONE {
            return Err(IpfsError::NotOnGateway {
                gateway,
                cid: cid_text,
            });
        }
        if !status.is_success() {
            let body = tokio::time::timeout(self.idle_timeout, response.into_body().collect())
                .await
                .ok()
                .and_then(|r| r.ok())
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&body[..body.len().min(512)])
                .trim()
                .to_string();
            return Err(IpfsError::Status {
                gateway,
                cid: cid_text,
                status: status.as_u16(),
                body: if text.is_empty() {
                    "(no body)".into()
                } else {
                    format!("`{text}`")
                },
            });
        }
        if format == "car" {
            let content_type = response
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !content_type.starts_with(CAR_MEDIA_TYPE) {
                return Err(IpfsError::Car {
                    gateway,
                    cid: cid_text,
                    reason: format!(
                        "the answer is `{content_type}`, not `{CAR_MEDIA_TYPE}`; is `{}` a trustless gateway?",
                        self.name()
                    ),
                });
            }
        }
        Ok(body_chunks(
            response.into_body(),
            self.idle_timeout,
            gateway,
            cid_text,
        ))
    }
}

/// What the client asks for CARs: the spec's preferred depth-first order without duplicates.
/// Gateways that ignore it (Helia sends breadth-first) are handled too.
const CAR_ACCEPT: &str = "application/vnd.ipld.car; version=1; order=dfs; dups=n";

const USER_AGENT: &str = concat!("ferry/", env!("CARGO_PKG_VERSION"));

/// A response body as chunks, failing when it pauses longer than `idle`.
fn body_chunks(body: ResponseBody, idle: Duration, gateway: String, cid: String) -> Chunks {
    let state = Some(BodyDataStream::new(body));
    Box::pin(futures::stream::unfold(state, move |state| {
        let gateway = gateway.clone();
        let cid = cid.clone();
        async move {
            let mut body = state?;
            match tokio::time::timeout(idle, body.next()).await {
                Err(_) => Some((
                    Err(IpfsError::Timeout {
                        gateway,
                        cid,
                        seconds: idle.as_secs_f64(),
                    }),
                    None,
                )),
                Ok(None) => None,
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(body))),
                Ok(Some(Err(e))) => Some((
                    Err(IpfsError::Http {
                        gateway,
                        cid,
                        source: e,
                    }),
                    None,
                )),
            }
        }
    }))
}

struct RawState {
    body: Chunks,
    hasher: Option<BlockHasher>,
    held: Option<Bytes>,
    cid: Cid,
    gateway: String,
}

/// Passes a raw block's bytes through, holding back the newest chunk until the block is
/// verified, so nothing downstream sees the complete content unless it matches the CID.
fn verified_block_stream(
    body: Chunks,
    hasher: BlockHasher,
    cid: Cid,
    gateway: String,
) -> ByteStream {
    let state = RawState {
        body,
        hasher: Some(hasher),
        held: None,
        cid,
        gateway,
    };
    Box::pin(futures::stream::try_unfold(state, |mut st| async move {
        loop {
            let Some(hasher) = st.hasher.as_mut() else {
                // Verified: release the held chunk, then end.
                return Ok(st.held.take().map(|chunk| (chunk, st)));
            };
            match st.body.next().await {
                Some(Ok(chunk)) if chunk.is_empty() => {}
                Some(Ok(chunk)) => {
                    hasher.update(&chunk);
                    if let Some(previous) = st.held.replace(chunk) {
                        return Ok(Some((previous, st)));
                    }
                }
                Some(Err(e)) => return Err(Error::from(e)),
                None => {
                    let hasher = st.hasher.take().expect("checked above");
                    if !hasher.matches(&st.cid) {
                        return Err(IpfsError::BlockMismatch {
                            gateway: st.gateway.clone(),
                            cid: st.cid.to_string(),
                        }
                        .into());
                    }
                }
            }
        }
    }))
}
