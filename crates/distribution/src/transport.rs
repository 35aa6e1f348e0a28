//! HTTP on hyper: connection reuse, HTTP/1.1 and HTTP/2 by ALPN, TLS by rustls, per-request
//! timeouts, bounded retries with backoff, and a redacted debug event for every exchange.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry_core::{BoxError, ByteStream, Error, Result};
use ferry_http::{Body, HttpClient, HttpClientBuilder, ProxyPolicy, ResponseBody, TlsPolicy};
use futures::{Future as _, StreamExt};
use http::header::{CONTENT_LENGTH, HeaderValue, RETRY_AFTER, USER_AGENT};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use url::Url;

use crate::error::error_chain;
use ferry_http::transport_error;

/// How long network operations may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a connection, TLS included.
    pub connect: Duration,
    /// From sending a request without a streamed body to receiving its response headers.
    pub response: Duration,
    /// Longest wait for the next chunk of a streamed body, either way.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(30),
            response: Duration::from_secs(120),
            idle: Duration::from_secs(300),
        }
    }
}

pub use ferry_core::RetryPolicy;

/// Whether an answer `status` is worth another try: `408`, `429`, `500`, `502`, `503`, `504`.
pub fn retry_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// A try of a request that did not succeed: an answer worth another try (with the server's
/// `Retry-After`), or a failure.
enum Unanswered {
    Answer(Response<ResponseBody>, Option<Duration>),
    Failed(Error),
}

impl ferry_core::Retryable for Unanswered {
    fn is_transient(&self) -> bool {
        match self {
            Unanswered::Answer(..) => true,
            Unanswered::Failed(e) => e.is_temporary(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Unanswered::Answer(_, after) => *after,
            Unanswered::Failed(_) => None,
        }
    }
}

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unanswered::Answer(resp, _) => write!(f, "answered {}", resp.status()),
            Unanswered::Failed(e) => e.fmt(f),
        }
    }
}

/// A request body: in memory (repeatable) or streamed (sent once).
pub(crate) enum Payload {
    /// No body.
    Empty,
    /// Bytes in memory.
    Bytes(Bytes),
    /// A stream of known length.
    Stream(ByteStream, u64),
}

impl Payload {
    fn try_clone(&self) -> Option<Payload> {
        match self {
            Payload::Empty => Some(Payload::Empty),
            Payload::Bytes(b) => Some(Payload::Bytes(b.clone())),
            Payload::Stream(..) => None,
        }
    }

    fn into_body(self, idle: Duration, failure: &StreamFailure) -> (Body, Option<u64>) {
        match self {
            Payload::Empty => (Body::empty(), None),
            Payload::Bytes(b) => {
                let len = b.len() as u64;
                (Body::from_bytes(b), Some(len))
            }
            Payload::Stream(s, len) => {
                let failure = failure.clone();
                let s = idle_timeout(s, idle, move || Error::Store {
                    store: "stream".into(),
                    message: format!("the blob being sent gave no data for {}", shown(idle)),
                    temporary: true,
                    source: None,
                })
                .map(move |item| match item {
                    Ok(b) => Ok(b),
                    Err(e) => {
                        let text = e.to_string();
                        failure.set(e);
                        Err(BoxError::from(text))
                    }
                });
                (Body::from_stream(s), Some(len))
            }
        }
    }
}

/// Where a streamed request body's own error is kept, so the caller sees it (a digest
/// mismatch) rather than the connection error hyper reports for an aborted body.
#[derive(Clone, Default)]
pub(crate) struct StreamFailure(Arc<Mutex<Option<Error>>>);

impl StreamFailure {
    fn set(&self, e: Error) {
        let mut slot = self.0.lock().expect("failure lock");
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    /// The body's error, if it failed.
    pub(crate) fn take(&self) -> Option<Error> {
        self.0.lock().expect("failure lock").take()
    }
}

/// `300 s`, `1.5 s`, `300 ms`.
fn shown(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{} ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// `s`, failing with `on_stall` once no chunk came for `idle`.
///
/// One timer per stream, not one per chunk: a chunk only marks the stream alive, and when the
/// timer fires on a stream marked alive it is set again. A stall is therefore reported between
/// `idle` and twice `idle` after the last chunk.
fn idle_timeout(
    s: ByteStream,
    idle: Duration,
    on_stall: impl Fn() -> Error + Send + Unpin + 'static,
) -> ByteStream {
    Box::pin(IdleTimeout {
        inner: Some(s),
        timer: Box::pin(tokio::time::sleep(idle)),
        alive: false,
        idle,
        on_stall,
    })
}

struct IdleTimeout<F> {
    inner: Option<ByteStream>,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    alive: bool,
    idle: Duration,
    on_stall: F,
}

impl<F: Fn() -> Error + Unpin> futures::Stream for IdleTimeout<F> {
    type Item = Result<Bytes>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(item) = inner.as_mut().poll_next(cx) {
            this.alive = true;
            if item.is_none() {
                this.inner = None;
            }
            return Poll::Ready(item);
        }
        while this.timer.as_mut().poll(cx).is_ready() {
            if !this.alive {
                this.inner = None;
                return Poll::Ready(Some(Err((this.on_stall)())));
            }
            this.alive = false;
            let next = tokio::time::Instant::now() + this.idle;
            this.timer.as_mut().reset(next);
        }
        Poll::Pending
    }
}

/// One HTTP request.
pub(crate) struct Req {
    /// The method.
    pub method: Method,
    /// The URL.
    pub url: Url,
    /// Headers, `Authorization` included when the caller adds it.
    pub headers: HeaderMap,
    /// The body.
    pub body: Payload,
    /// Whether it carries a blob's bytes either way (over HTTPS it goes on a connection of
    /// its own, in HTTP/1.1).
    pub bulk: bool,
}

impl Req {
    /// A request without body.
    pub fn new(method: Method, url: Url) -> Self {
        Req {
            method,
            url,
            headers: HeaderMap::new(),
            body: Payload::Empty,
            bulk: false,
        }
    }

    /// Marks the request as carrying a blob's bytes (its answer, or its body).
    pub fn bulk(mut self) -> Self {
        self.bulk = true;
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: http::header::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Payload) -> Self {
        self.body = body;
        self
    }

    /// A copy of a request whose body can be sent again.
    pub fn try_clone(&self) -> Option<Req> {
        Some(Req {
            method: self.method.clone(),
            url: self.url.clone(),
            headers: self.headers.clone(),
            body: self.body.try_clone()?,
            bulk: self.bulk,
        })
    }
}

/// The HTTP client shared by every registry of a [`crate::RegistryClient`], with its timeouts,
/// retries and rate limits.
pub(crate) struct Transport {
    client: HttpClient,
    user_agent: HeaderValue,
    timeouts: Timeouts,
    pub(crate) retry: RetryPolicy,
    /// One adaptive rate limit per host, asked before every try of every request.
    pub(crate) limits: crate::ratelimit::Limits,
    /// One pacing per host, by its quota and the request-rate cap.
    pub(crate) paces: crate::quota::Paces,
    pacing: crate::quota::Pacing,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("timeouts", &self.timeouts)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A transport trusting the servers `tls` names, through the proxies `proxy` names (the
    /// environment's when `None`), paced by `pacing`.
    pub fn new(
        tls: TlsPolicy,
        proxy: Option<ProxyPolicy>,
        user_agent: &str,
        timeouts: Timeouts,
        retry: RetryPolicy,
        pacing: crate::quota::Pacing,
    ) -> Result<Self> {
        let mut builder = HttpClientBuilder::new()
            .tls(tls)
            .connect_timeout(Some(timeouts.connect));
        if let Some(proxy) = proxy {
            builder = builder.proxy(proxy);
        }
        let user_agent = HeaderValue::from_str(user_agent)
            .map_err(|_| Error::invalid("user agent", user_agent, "use visible ASCII only"))?;
        Ok(Self {
            client: builder.build()?,
            user_agent,
            timeouts,
            retry,
            limits: Default::default(),
            paces: Default::default(),
            pacing,
        })
    }

    /// The idle timeout for streamed bodies.
    pub fn idle_timeout(&self) -> Duration {
        self.timeouts.idle
    }

    /// Sends `req` once. A failure reads as one sentence naming the host
    /// ([`ferry_core::Error::Transport`]).
    pub async fn send_once(&self, req: Req) -> Result<Response<ResponseBody>> {
        let failure = StreamFailure::default();
        let streamed = matches!(req.body, Payload::Stream(..));
        let method = req.method.clone();
        let shown = redact_url(&req.url);
        let req_url = req.url.clone();
        let pace = self.paces.of(&req.url);
        let paced = pace
            .acquire(crate::quota::is_pull(&method, &req.url), &self.pacing)
            .await?;
        let limit = self.limits.of(&req.url);
        let permit = limit.acquire().await;
        let host = host_of(&req.url);
        let started = Instant::now();
        let result = self.send_raw(req, &failure).await;
        match &result {
            Ok(resp) => {
                paced.answered(&pace, resp.headers(), self.pacing.clock.as_ref());
                limit.observe(resp.status(), retry_after(resp.headers()));
            }
            Err(_) => {
                drop(paced);
                limit.observe_no_answer();
            }
        }
        drop(permit);
        let ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(mut resp) => {
                tracing::debug!(%method, url = %shown, status = resp.status().as_u16(), ms, "http");
                resp.extensions_mut().insert(Origin(host));
                Ok(resp)
            }
            Err(e) => {
                tracing::debug!(%method, url = %shown, error = %error_chain(e.as_ref()), ms, "http failed");
                if streamed && let Some(body_error) = failure.take() {
                    return Err(body_error);
                }
                let path = message_url(&req_url);
                let path = path.split_once(&host).map_or(path.as_str(), |(_, p)| p);
                Err(transport_error(
                    &host,
                    &format!("sending {method} {path}"),
                    e,
                ))
            }
        }
    }

    async fn send_raw(
        &self,
        req: Req,
        failure: &StreamFailure,
    ) -> Result<Response<ResponseBody>, BoxError> {
        let streamed = matches!(req.body, Payload::Stream(..));
        let bulk = req.bulk || streamed;
        let (body, len) = req.body.into_body(self.timeouts.idle, failure);
        let mut builder = Request::builder().method(req.method).uri(req.url.as_str());
        let headers = builder.headers_mut().expect("request builder");
        *headers = req.headers;
        headers
            .entry(USER_AGENT)
            .or_insert_with(|| self.user_agent.clone());
        if let Some(len) = len {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
        }
        let request = builder.body(body)?;
        let fut = async {
            if bulk {
                self.client.send_bulk(request).await
            } else {
                self.client.send(request).await
            }
        };
        if streamed {
            // The response comes once the whole body is sent; the body has its idle timeout.
            Ok(fut.await?)
        } else {
            match tokio::time::timeout(self.timeouts.response, fut).await {
                Ok(r) => Ok(r?),
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no response within {} s", self.timeouts.response.as_secs()),
                )
                .into()),
            }
        }
    }

    /// Sends `req`, retrying `408`, `429`, `5xx` and connection failures by the client's
    /// [`RetryPolicy`] when its body can be sent again (honouring `Retry-After`). A streamed
    /// body is sent once. When the policy gives up on an answer, that answer is returned.
    pub async fn send(&self, req: Req) -> Result<Response<ResponseBody>> {
        if matches!(req.body, Payload::Stream(..)) {
            return self.send_once(req).await;
        }
        let what = format!("{} {}", req.method, message_url(&req.url));
        // In a mutex so the future is `Send` whatever the request's body type.
        let req = std::sync::Mutex::new(req);
        let tried = ferry_core::retry::retry(
            &self.retry,
            &what,
            |_| {
                let copy = req
                    .lock()
                    .expect("request lock")
                    .try_clone()
                    .expect("body is repeatable");
                async move {
                    match self.send_once(copy).await {
                        Ok(resp) if retry_status(resp.status()) => {
                            let after = retry_after(resp.headers());
                            Err(Unanswered::Answer(resp, after))
                        }
                        Ok(resp) => Ok(resp),
                        Err(e) => Err(Unanswered::Failed(e)),
                    }
                }
            },
            |_| {},
        )
        .await;
        match tried {
            Ok(resp) | Err(Unanswered::Answer(resp, _)) => Ok(resp),
            Err(Unanswered::Failed(e)) => Err(e),
        }
    }
}

/// Runs `exchange` (a request whose answer is read whole: a manifest, a listing page) by
/// `policy`, asking again only when the connection broke on the way (a body cut short, a
/// reset): what a request can be retried for otherwise, the transport already retried.
pub(crate) async fn retrying_broken<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut exchange: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    /// A failed exchange, judged: worth another try when the connection broke.
    struct Broken(Error);
    impl ferry_core::Retryable for Broken {
        fn is_transient(&self) -> bool {
            matches!(&self.0, Error::Transport { kind, .. } if kind.is_temporary())
        }
    }
    impl std::fmt::Display for Broken {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.0.fmt(f)
        }
    }
    ferry_core::retry::retry(
        policy,
        what,
        |_| {
            let once = exchange();
            async { once.await.map_err(Broken) }
        },
        |_| {},
    )
    .await
    .map_err(|b| b.0)
}

/// A `Retry-After` of seconds or an HTTP date, at most a minute away.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match v.parse::<u64>() {
        Ok(s) => Duration::from_secs(s),
        Err(_) => {
            let at = httpdate::parse_http_date(v).ok()?;
            at.duration_since(std::time::SystemTime::now())
                .unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(Duration::from_secs(60)))
}

/// A URL fit for logs: no user info, and the values of query parameters that may carry a
/// secret (tokens, signatures, credentials) replaced by `REDACTED`, as
/// [`ferry_core::redact::url`] shows every URL.
pub fn redact_url(url: &Url) -> String {
    ferry_core::redact::url(url.as_str())
}

/// A URL as a message shows it: without userinfo, and without its query, which on upload
/// URLs is a registry's opaque state (`_state=…`) and on pre-signed URLs a signature: noise
/// at best, a secret at worst (`…/blobs/uploads/4f1c…?…`).
pub fn message_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    let had_query = shown.query().is_some_and(|q| !q.is_empty());
    shown.set_query(None);
    shown.set_fragment(None);
    let mut text = shown.to_string();
    if had_query {
        text.push_str("?…");
    }
    text
}

/// The host a response came from, kept in its extensions for the errors of reading its body.
#[derive(Debug, Clone)]
struct Origin(String);

/// `host[:port]` of `url`, as messages name it.
pub(crate) fn host_of(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    }
}

fn origin(resp: &Response<ResponseBody>) -> String {
    resp.extensions()
        .get::<Origin>()
        .map(|o| o.0.clone())
        .unwrap_or_else(|| "the registry".into())
}

/// Reads a response body, refusing more than `limit` bytes.
pub(crate) async fn read_body(resp: Response<ResponseBody>, limit: usize) -> Result<Bytes> {
    let host = origin(&resp);
    let mut body = resp.into_body();
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| transport_error(&host, "reading an answer", e))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(Error::TooLarge {
                    what: "response body".into(),
                    size: (out.len() + data.len()) as u64,
                    limit: limit as u64,
                });
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

/// Reads at most `limit` bytes of an error body, ignoring failures.
pub(crate) async fn read_error_body(resp: Response<ResponseBody>) -> Bytes {
    read_body(resp, crate::error::ERROR_BODY_LIMIT)
        .await
        .unwrap_or_default()
}

/// The error for `resp`, an unexpected answer to `what` from `store`, quoting the registry's
/// error codes and messages from its body.
pub(crate) async fn response_error(store: &str, what: &str, resp: Response<ResponseBody>) -> Error {
    let status = resp.status();
    let body = read_error_body(resp).await;
    crate::error::status_error(store, what, status, &body)
}

/// A response body as a [`ByteStream`], with an idle timeout; `what` names it in errors
/// (`blob `sha256:…``).
pub(crate) fn body_stream(
    resp: Response<ResponseBody>,
    what: String,
    idle: Duration,
) -> ByteStream {
    let host = origin(&resp);
    let doing = format!("reading {what}");
    let stalled = {
        let (host, doing) = (host.clone(), doing.clone());
        move || Error::Transport {
            host: host.clone(),
            kind: ferry_core::TransportErrorKind::Timeout,
            message: format!("{host} sent no data for {} while {doing}", shown(idle)),
            source: None,
        }
    };
    let s = http_body_util::BodyDataStream::new(resp.into_body())
        .map(move |r| r.map_err(|e| transport_error(&host, &doing, e)));
    idle_timeout(Box::pin(s), idle, stalled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secrets() {
        let u = Url::parse(
            "https://user:pw@s3.example/b/o?X-Amz-Signature=abc&X-Amz-Credential=k&partNumber=1&token=t",
        )
        .unwrap();
        let shown = redact_url(&u);
        assert!(!shown.contains("abc") && !shown.contains("pw") && !shown.contains("user"));
        assert!(shown.contains("partNumber=1"));
        assert!(shown.contains("token=REDACTED"));
    }

    #[test]
    fn statuses_worth_another_try() {
        for retried in [408, 429, 500, 502, 503, 504] {
            assert!(
                retry_status(StatusCode::from_u16(retried).unwrap()),
                "{retried}"
            );
        }
        for refused in [400, 401, 403, 404, 409, 416, 501] {
            assert!(
                !retry_status(StatusCode::from_u16(refused).unwrap()),
                "{refused}"
            );
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        // A date in the past: retry now.
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        // A date ahead: wait until then (to the second), at most a minute.
        let soon = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(20));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&soon).unwrap());
        let wait = retry_after(&h).unwrap();
        assert!(
            wait > Duration::from_secs(18) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        let later =
            httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3600));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(60)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }
}
