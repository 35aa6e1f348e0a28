//! Blob downloads that survive broken connections and capped links.
//!
//! - **Resumed, not restarted.** A blob's body that breaks on the way is asked for again from
//!   the byte reached (`Range: bytes=N-`), and the stream goes on: the consumer, which hashes
//!   what it reads, sees one stream. A registry that answers a range with the whole body
//!   (`200`) is read from there, the bytes already delivered skipped.
//! - **Big blobs in parallel ranges.** A blob at least [`Settings::range_threshold`] bytes is
//!   asked for in ranges of [`Settings::range_size`], [`Settings::ranges`] at once, each on a
//!   connection of its own, and handed on in order: where each connection is capped (a CDN,
//!   a long round trip), the blob comes as fast as the ranges together. Memory stays bounded by
//!   the ranges in flight. The first range asks whether the registry serves ranges at all: a
//!   `200` with the whole body is read as one stream.
//!
//! The digest is checked by whoever commits the bytes (a layout hashes them in order, a
//! registry hashes what it is sent), so ranges change nothing of what is verified.

use std::sync::Arc;

use bytes::Bytes;
use ferry_core::{ByteStream, Error, Result, TransportErrorKind};
use futures::{StreamExt, TryStreamExt};
use http::header::{CONTENT_RANGE, RANGE};
use http::{Method, StatusCode};
use url::Url;

use crate::auth::Scopes;
use crate::client::Settings;
use crate::registry::Registry;
use crate::transport::{Req, body_stream, response_error};

/// What a download needs to ask its registry.
#[derive(Clone)]
pub(crate) struct Download {
    pub registry: Arc<Registry>,
    pub url: Url,
    pub scopes: Scopes,
    /// The store, as errors name it.
    pub store: String,
    /// `blob `sha256:…``, as errors name it.
    pub what: String,
    pub size: u64,
}

impl Download {
    fn settings(&self) -> &Settings {
        &self.registry.settings
    }

    /// The error for an unexpected answer to a request the transport already retried (so not
    /// temporary: a step that retries whole transfers does not try again).
    async fn answered(&self, doing: &str, resp: http::Response<ferry_http::ResponseBody>) -> Error {
        let mut error = response_error(&self.store, &format!("{doing} {}", self.what), resp).await;
        if let Error::Store { temporary, .. } = &mut error {
            *temporary = false;
        }
        error
    }

    /// `GET` of the blob, from `start` (`Range: bytes=start-`, or the range `start..=end`).
    async fn get(
        &self,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<http::Response<ferry_http::ResponseBody>> {
        let mut req = Req::new(Method::GET, self.url.clone()).bulk();
        if let Some((start, end)) = range {
            let value = match end {
                Some(end) => format!("bytes={start}-{end}"),
                None => format!("bytes={start}-"),
            };
            req = req.header(RANGE, &value);
        }
        self.registry.send_following(req, &self.scopes).await
    }

    /// The blob as one stream (or as ranges, when big), resumed where it breaks.
    pub(crate) async fn stream(self) -> Result<ByteStream> {
        let s = self.settings();
        if self.size >= s.range_threshold && s.ranges > 1 && self.size > s.range_size {
            return self.ranged().await;
        }
        let resp = self.get(None).await?;
        if resp.status() != StatusCode::OK {
            return Err(self.answered("GET", resp).await);
        }
        Ok(self.resuming(resp, 0))
    }

    /// The body of `resp` (which starts at byte `offset` of the blob), asked for again from
    /// the byte reached each time it breaks in a way that may pass, as often as the client's
    /// retry policy retries.
    fn resuming(self, resp: http::Response<ferry_http::ResponseBody>, offset: u64) -> ByteStream {
        let idle = self.registry.transport.idle_timeout();
        let body = body_stream(resp, self.what.clone(), idle);
        let state = Resuming {
            download: self,
            body: Some(body),
            offset,
            resumes: 0,
            skip: 0,
        };
        Box::pin(futures::stream::unfold(state, |mut state| async move {
            loop {
                let body = state.body.as_mut()?;
                match body.next().await {
                    None => return None,
                    Some(Ok(mut chunk)) => {
                        if state.skip > 0 {
                            let dropped = (state.skip as usize).min(chunk.len());
                            chunk = chunk.slice(dropped..);
                            state.skip -= dropped as u64;
                            if chunk.is_empty() {
                                continue;
                            }
                        }
                        state.offset += chunk.len() as u64;
                        return Some((Ok(chunk), state));
                    }
                    Some(Err(e)) => match state.resume(e).await {
                        Ok(()) => continue,
                        Err(e) => {
                            state.body = None;
                            return Some((Err(e), state));
                        }
                    },
                }
            }
        }))
    }

    /// The blob in ranges, several at once, in order; or, when the first range shows that one
    /// connection is not what limits the transfer, the rest as one stream.
    async fn ranged(self) -> Result<ByteStream> {
        let size = self.size;
        let range = self.settings().range_size.max(1);
        let ranges = self.settings().ranges.max(1);
        let first_end = range.min(size) - 1;
        let started = std::time::Instant::now();
        let first = self.get(Some((0, Some(first_end)))).await?;
        match first.status() {
            StatusCode::PARTIAL_CONTENT => {}
            StatusCode::OK => {
                tracing::debug!(what = %self.what, "the registry answered a range with the whole blob; reading it as one stream");
                return Ok(self.resuming(first, 0));
            }
            _ => return Err(self.answered("GET", first).await),
        }
        check_content_range(&self, &first, 0, first_end)?;
        let head = self.clone().collect_range(first, 0, first_end).await?;
        let rate = (first_end + 1) as f64 / started.elapsed().as_secs_f64().max(1e-6);
        if rate >= self.settings().one_stream_rate as f64 {
            // A connection this fast is not the limit (a registry on the same host or
            // network): more connections would only add requests.
            tracing::debug!(what = %self.what, rate, "the first range came fast; the rest as one stream");
            let rest = self.get(Some((first_end + 1, Some(size - 1)))).await?;
            if rest.status() != StatusCode::PARTIAL_CONTENT {
                return Err(self.answered("GET", rest).await);
            }
            check_content_range(&self, &rest, first_end + 1, size - 1)?;
            let rest = self.resuming(rest, first_end + 1);
            return Ok(Box::pin(
                futures::stream::iter(head.into_iter().map(Ok)).chain(rest),
            ));
        }
        tracing::debug!(what = %self.what, size, range, ranges, rate, "downloading in parallel ranges");
        // The other ranges, `ranges` at once; each is read whole and handed on in order as the
        // chunks it came in (never copied), so at most `ranges` ranges are held.
        let starts: Vec<u64> = (1..size.div_ceil(range)).map(|i| i * range).collect();
        let this = self.clone();
        let rest = futures::stream::iter(starts)
            .map(move |start| {
                let this = this.clone();
                async move {
                    let end = (start + range).min(size) - 1;
                    this.fetch_range(start, end).await
                }
            })
            .buffered(ranges);
        Ok(Box::pin(
            futures::stream::iter(head.into_iter().map(Ok)).chain(
                rest.map_ok(|chunks| futures::stream::iter(chunks.into_iter().map(Ok)))
                    .try_flatten(),
            ),
        ))
    }

    /// The bytes `start..=end`, whole, asked for again (from the byte reached) when they
    /// break.
    async fn fetch_range(&self, start: u64, end: u64) -> Result<Vec<Bytes>> {
        let resp = self.get(Some((start, Some(end)))).await?;
        if resp.status() != StatusCode::PARTIAL_CONTENT {
            // The registry served the first range but not this one: say so rather than read
            // the whole blob for every range.
            return Err(Error::Store {
                store: self.store.clone(),
                message: format!(
                    "GET {} bytes {start}-{end}: answered {} where an earlier range was served",
                    self.what,
                    resp.status()
                ),
                temporary: resp.status().is_server_error(),
                source: None,
            });
        }
        check_content_range(self, &resp, start, end)?;
        self.clone().collect_range(resp, start, end).await
    }

    /// The body of `resp`, the bytes `start..=end`, read whole (resumed where it breaks).
    async fn collect_range(
        self,
        resp: http::Response<ferry_http::ResponseBody>,
        start: u64,
        end: u64,
    ) -> Result<Vec<Bytes>> {
        let (store, what) = (self.store.clone(), self.what.clone());
        let mut part = self;
        part.size = end + 1;
        let chunks: Vec<Bytes> = part.resuming(resp, start).try_collect().await?;
        let len: u64 = chunks.iter().map(|b| b.len() as u64).sum();
        if len != end - start + 1 {
            return Err(Error::Store {
                store,
                message: format!("GET {what} bytes {start}-{end}: {len} bytes came"),
                temporary: true,
                source: None,
            });
        }
        Ok(chunks)
    }
}

/// Refuses a `206` whose `Content-Range` is not the range asked for.
fn check_content_range(
    download: &Download,
    resp: &http::Response<ferry_http::ResponseBody>,
    start: u64,
    end: u64,
) -> Result<()> {
    let said = resp
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let expected = format!("bytes {start}-{end}/");
    if said.starts_with(&expected) {
        return Ok(());
    }
    Err(Error::Store {
        store: download.store.clone(),
        message: format!(
            "GET {} bytes {start}-{end}: the registry answered `Content-Range: {said}`",
            download.what
        ),
        temporary: false,
        source: None,
    })
}

/// The state of a resumed stream.
struct Resuming {
    download: Download,
    body: Option<ByteStream>,
    /// The byte of the blob the next chunk starts at.
    offset: u64,
    resumes: u32,
    /// Bytes still to drop from the body: a registry answered a range with the whole blob.
    skip: u64,
}

impl Resuming {
    /// After the body broke with `error`: asks for the rest, or returns the error.
    async fn resume(&mut self, error: Error) -> Result<()> {
        let d = &self.download;
        let broke = matches!(&error, Error::Transport { kind, .. } if *kind != TransportErrorKind::Certificate)
            && error.is_temporary();
        let budget = d.registry.transport.retry.max_retries;
        if !broke || self.resumes >= budget || self.offset >= d.size {
            return Err(error);
        }
        self.resumes += 1;
        tracing::debug!(
            what = %d.what,
            offset = self.offset,
            resume = self.resumes,
            error = %error,
            "the blob's body broke; asking for the rest"
        );
        let end = (d.size < u64::MAX).then(|| d.size - 1);
        let resp = match d.get(Some((self.offset, end))).await {
            Ok(r) => r,
            Err(e) => return Err(e),
        };
        let idle = d.registry.transport.idle_timeout();
        match resp.status() {
            StatusCode::PARTIAL_CONTENT => {
                check_content_range(d, &resp, self.offset, d.size - 1)?;
                self.body = Some(body_stream(resp, d.what.clone(), idle));
            }
            StatusCode::OK => {
                // The whole blob again: skip what was delivered.
                self.skip = self.offset;
                self.body = Some(body_stream(resp, d.what.clone(), idle));
            }
            _ => return Err(d.answered("GET (resumed)", resp).await),
        }
        Ok(())
    }
}
