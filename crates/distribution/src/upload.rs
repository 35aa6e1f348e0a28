//! Blob upload sessions: one monolithic `PUT` for blobs up to the chunk threshold, chunked
//! `PATCH`es that resume from the registry's `Range` for larger ones. Every byte sent is
//! counted ([`ferry_core::check_size_stream`]) and the registry, which must hash what it
//! commits, refuses content that does not match the digest (`DIGEST_INVALID`, reported as
//! [`Error::DigestMismatch`]); with [`crate::ClientOptions::verify_uploads`] the bytes also pass
//! through [`ferry_core::verify_stream`], which holds back the last chunk until the digest
//! checks. Either way mismatched content is never committed; a failed session is cancelled.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use ferry_core::{
    ByteStream, Descriptor, Error, PreparedUpload, Result, check_size_stream, verify_stream,
};
use futures::StreamExt;
use http::header::{CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use http::{HeaderMap, Method, StatusCode};
use url::Url;

use crate::auth::Scopes;
use crate::error::{has_error_code, status_error};
use crate::registry::{Registry, Retry};
use crate::repository::{DigestSet, Repository, header_digest};
use crate::transport::{Payload, Req, read_error_body, redact_url, response_error};
use oci_spec::distribution::ErrorCode;

/// How many times one chunk is resumed after a broken `PATCH`.
const MAX_RESUMES: usize = 3;

/// An open upload session of one repository.
pub(crate) struct UploadSession {
    registry: Arc<Registry>,
    /// The repository's record of what was written (or tried) through its handle.
    written: DigestSet,
    repository: String,
    store: String,
    location: Url,
    min_chunk: u64,
    /// Its key among the registry's open uploads.
    open: u64,
}

impl std::fmt::Debug for UploadSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadSession")
            .field("store", &self.store)
            .field("location", &redact_url(&self.location))
            .finish()
    }
}

impl UploadSession {
    /// The session a `202 Accepted` of [`Registry::post_opening`] opened: `opened` is its
    /// key among the registry's open uploads and its location.
    pub(crate) fn opened(
        repo: &Repository,
        headers: &HeaderMap,
        opened: Option<(u64, Url)>,
    ) -> Result<Self> {
        let Some((open, location)) = opened else {
            return Err(Error::store(
                repo.store_name(),
                "the registry opened an upload session without a `Location`",
            ));
        };
        let min_chunk = headers
            .get("oci-chunk-min-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        Ok(Self {
            registry: repo.registry().clone(),
            written: repo.written(),
            repository: repo.name().to_string(),
            store: repo.store_name().to_string(),
            location,
            min_chunk,
            open,
        })
    }

    fn scopes(&self) -> Scopes {
        Scopes::push(&self.repository)
    }

    /// Streams `data` into the session and commits it as `descriptor`; cancels the session on
    /// any failure.
    pub(crate) async fn upload(mut self, descriptor: &Descriptor, data: ByteStream) -> Result<()> {
        let checked = if self.registry.settings.verify_uploads {
            verify_stream(descriptor, data)
        } else {
            Ok(check_size_stream(descriptor, data))
        };
        let verified = match checked {
            Ok(v) => v,
            Err(e) => {
                self.cancel_quietly().await;
                self.registry.uploads.closed(self.open);
                return Err(e);
            }
        };
        // Once bytes are sent the registry may hold the blob, whatever the answer says.
        self.written.note(descriptor.digest());
        let result = if descriptor.size() <= self.registry.settings.chunk_threshold {
            self.put_whole(descriptor, verified).await
        } else {
            self.put_chunked(descriptor, verified).await
        };
        if result.is_err() {
            self.cancel_quietly().await;
        }
        self.registry.uploads.closed(self.open);
        result
    }

    fn commit_url(&self, descriptor: &Descriptor) -> Url {
        let mut url = self.location.clone();
        url.query_pairs_mut()
            .append_pair("digest", descriptor.digest().as_ref());
        url
    }

    async fn check_committed(
        &self,
        descriptor: &Descriptor,
        resp: http::Response<ferry_http::ResponseBody>,
    ) -> Result<()> {
        let status = resp.status();
        if !status.is_success() {
            let body = read_error_body(resp).await;
            if status == StatusCode::BAD_REQUEST && has_error_code(&body, ErrorCode::DigestInvalid)
            {
                // The registry hashed the bytes and they are not the blob's.
                return Err(Error::DigestMismatch {
                    expected: descriptor.digest().clone(),
                    actual: None,
                });
            }
            return Err(status_error(
                &self.store,
                &format!("commit blob `{}`", descriptor.digest()),
                status,
                &body,
            ));
        }
        if let Some(d) = header_digest(resp.headers())
            && &d != descriptor.digest()
        {
            // Bytes altered on the way, or an answer mislabelled by a proxy: uploading
            // again may pass.
            return Err(Error::Store {
                store: self.store.clone(),
                message: format!(
                    "the registry answered that it committed `{d}` for blob `{}`",
                    descriptor.digest()
                ),
                temporary: true,
                source: None,
            });
        }
        Ok(())
    }

    async fn put_whole(&self, descriptor: &Descriptor, data: ByteStream) -> Result<()> {
        // The connection owns the body once sent: when this upload is dropped (a stopped
        // copy), the body ends short, so the request is cut and the registry is done with the
        // session before it is cancelled, rather than streaming on until the process exits.
        let (data, handle) = futures::stream::abortable(data);
        let _cut_on_drop = CutOnDrop(handle);
        let req = Req::new(Method::PUT, self.commit_url(descriptor))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(Payload::Stream(Box::pin(data), descriptor.size()));
        let resp = self.registry.send(req, &self.scopes(), Retry::No).await?;
        self.check_committed(descriptor, resp).await
    }

    /// Sends the blob in chunks (`PATCH`), the next chunk read from the source while the one
    /// before is sent, so the upload is never paced by read-then-send turns; at most two
    /// chunks are held (one being sent, one read ahead), whatever the blob's size.
    async fn put_chunked(&mut self, descriptor: &Descriptor, data: ByteStream) -> Result<()> {
        let chunk_size = self.registry.settings.chunk_size.max(self.min_chunk).max(1) as usize;
        let (mut chunks, give_back) = read_ahead(data, chunk_size);
        let mut offset = 0u64;
        while let Some(chunk) = chunks.recv().await {
            let chunk = chunk?;
            self.patch(&chunk, &mut offset).await?;
            // Sent: its buffer serves a later chunk (when nothing else holds it still).
            if let Ok(buf) = chunk.try_into_mut() {
                let _ = give_back.send(buf);
            }
        }
        let req = Req::new(Method::PUT, self.commit_url(descriptor));
        let resp = self.registry.send(req, &self.scopes(), Retry::No).await?;
        self.check_committed(descriptor, resp).await
    }

    /// Sends `chunk` at `offset`, resuming from the registry's `Range` when a `PATCH` breaks.
    async fn patch(&mut self, chunk: &Bytes, offset: &mut u64) -> Result<()> {
        let start = *offset;
        let end = start + chunk.len() as u64;
        let mut from = start;
        for attempt in 0..=MAX_RESUMES {
            let part = chunk.slice((from - start) as usize..);
            let req = Req::new(Method::PATCH, self.location.clone())
                .bulk()
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_RANGE, &format!("{from}-{}", end - 1))
                .body(Payload::Bytes(part));
            let sent = self.registry.send(req, &self.scopes(), Retry::No).await;
            let server_offset = match sent {
                Ok(resp) if resp.status() == StatusCode::ACCEPTED => {
                    self.follow_location(resp.headers())?;
                    range_end(resp.headers()).unwrap_or(end)
                }
                Ok(resp)
                    if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE
                        || resp.status().is_server_error() =>
                {
                    tracing::debug!(
                        status = resp.status().as_u16(),
                        attempt,
                        "chunk refused, asking the session's offset"
                    );
                    drop(resp);
                    self.offset_after_cut().await?
                }
                Ok(resp) => {
                    return Err(response_error(&self.store, "upload chunk", resp).await);
                }
                Err(e) if e.is_temporary() => {
                    tracing::debug!(error = %e, attempt, "chunk broke, asking the session's offset");
                    self.offset_after_cut().await?
                }
                Err(e) => return Err(e),
            };
            if server_offset == end {
                *offset = end;
                return Ok(());
            }
            if server_offset < start || server_offset > end {
                return Err(Error::store(
                    &self.store,
                    format!(
                        "the upload session is at byte {server_offset}, outside the chunk {start}-{end} being sent; starting over may help"
                    ),
                ));
            }
            from = server_offset;
        }
        Err(Error::Store {
            store: self.store.clone(),
            message: format!("the chunk at byte {start} failed {} times", MAX_RESUMES + 1),
            temporary: true,
            source: None,
        })
    }

    /// The session's offset after a chunk failed. A session the registry no longer serves is
    /// a temporary failure of the blob, which then starts over in a new session: distribution
    /// 2.x ends a session whose last request brought part of its body ("upload resumed at
    /// wrong offset"), so a cut chunk resumes only where nothing of it arrived.
    async fn offset_after_cut(&mut self) -> Result<u64> {
        match self.offset().await {
            Err(e) if !e.is_temporary() => Err(Error::Store {
                store: self.store.clone(),
                message: format!(
                    "the registry ended the upload session after a chunk was cut ({e}); the \
                     blob starts over"
                ),
                temporary: true,
                source: Some(Box::new(e)),
            }),
            other => other,
        }
    }

    /// `GET` of the session: how many bytes the registry holds.
    async fn offset(&mut self) -> Result<u64> {
        let req = Req::new(Method::GET, self.location.clone());
        let resp = self.registry.send(req, &self.scopes(), Retry::Yes).await?;
        if !resp.status().is_success() {
            return Err(response_error(&self.store, "upload status", resp).await);
        }
        self.follow_location(resp.headers())?;
        Ok(range_end(resp.headers()).unwrap_or(0))
    }

    fn follow_location(&mut self, headers: &HeaderMap) -> Result<()> {
        if let Some(l) = headers.get(LOCATION).and_then(|v| v.to_str().ok()) {
            self.location = self.registry.upload_location(&self.location, l)?;
            self.registry.uploads.moved(self.open, &self.location);
        }
        Ok(())
    }

    /// Cancels the session (`DELETE`).
    pub(crate) async fn cancel(self) -> Result<()> {
        self.registry.uploads.closed(self.open);
        let req = Req::new(Method::DELETE, self.location.clone());
        let resp = self.registry.send(req, &self.scopes(), Retry::Yes).await?;
        tracing::debug!(store = %self.store, status = resp.status().as_u16(), "upload session cancelled");
        Ok(())
    }

    async fn cancel_quietly(&self) {
        let req = Req::new(Method::DELETE, self.location.clone());
        if let Err(e) = self.registry.send(req, &self.scopes(), Retry::No).await {
            tracing::debug!(store = %self.store, error = %e, "cancelling the upload session failed");
        }
    }
}

/// Ends a request body when dropped (see [`UploadSession::put_whole`]).
struct CutOnDrop(futures::stream::AbortHandle);

impl Drop for CutOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The chunks of `data`, each `chunk_size` bytes (the last one shorter), read by a task of
/// their own while the receiver sends the chunk before. The task starts reading a chunk only
/// once the one before was taken, so at most two chunks are held: one being sent, one read
/// ahead. Dropping the receiver stops the reading.
///
/// A chunk's buffer is given back through the returned sender once it is sent, and filled
/// again: two buffers serve the whole blob, so the pages of a fresh 16 MiB allocation are not
/// faulted in for every chunk. A stream item is split at the chunk's end rather than
/// appended whole, so a buffer never grows past its chunk (a growth would copy it).
fn read_ahead(
    mut data: ByteStream,
    chunk_size: usize,
) -> (
    tokio::sync::mpsc::Receiver<Result<Bytes>>,
    tokio::sync::mpsc::UnboundedSender<BytesMut>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let (give_back, mut returned) = tokio::sync::mpsc::unbounded_channel::<BytesMut>();
    tokio::spawn(async move {
        // What a stream item brought past the end of the chunk before.
        let mut carry: Option<Bytes> = None;
        let mut ended = false;
        loop {
            // Wait until the chunk before was taken (the channel's one place is free).
            let Ok(permit) = tx.reserve().await else {
                return;
            };
            let mut buf = match returned.try_recv() {
                Ok(mut b) => {
                    b.clear();
                    b
                }
                Err(_) => BytesMut::with_capacity(chunk_size.min(64 << 20)),
            };
            if let Some(c) = carry.take() {
                carry = fill(&mut buf, c, chunk_size);
            }
            while buf.len() < chunk_size && !ended {
                match data.next().await {
                    Some(Ok(b)) => carry = fill(&mut buf, b, chunk_size),
                    Some(Err(e)) => {
                        permit.send(Err(e));
                        return;
                    }
                    None => ended = true,
                }
            }
            if buf.is_empty() {
                return;
            }
            permit.send(Ok(buf.freeze()));
            if ended && carry.is_none() {
                return;
            }
        }
    });
    (rx, give_back)
}

/// Appends to `buf` what of `item` fits in a chunk of `chunk_size`; returns the rest.
fn fill(buf: &mut BytesMut, item: Bytes, chunk_size: usize) -> Option<Bytes> {
    let room = chunk_size - buf.len();
    if item.len() > room {
        buf.extend_from_slice(&item[..room]);
        Some(item.slice(room..))
    } else {
        buf.extend_from_slice(&item);
        None
    }
}

/// The byte count a `Range: 0-<last>` header says the registry holds.
fn range_end(h: &HeaderMap) -> Option<u64> {
    let v = h.get(RANGE)?.to_str().ok()?.trim();
    let v = v.strip_prefix("bytes=").unwrap_or(v);
    let (_, last) = v.split_once('-')?;
    let last: u64 = last.trim().parse().ok()?;
    // distribution answers `0-0` both for an empty session and for one holding one byte;
    // it is read as empty (a resume of that one case is refused and the push fails).
    Some(if last == 0 { 0 } else { last + 1 })
}

#[async_trait]
impl PreparedUpload for UploadSession {
    async fn upload(self: Box<Self>, descriptor: &Descriptor, data: ByteStream) -> Result<()> {
        UploadSession::upload(*self, descriptor, data).await
    }

    async fn cancel(self: Box<Self>) -> Result<()> {
        UploadSession::cancel(*self).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn read_ahead_holds_at_most_the_chunk_being_sent_and_the_next() {
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = pulled.clone();
        let items = (0..10u8).map(move |i| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(Bytes::from(vec![i; 4]))
        });
        let data: ByteStream = Box::pin(futures::stream::iter(items));
        let (mut chunks, _give_back) = read_ahead(data, 4);
        let first = chunks.recv().await.unwrap().unwrap();
        // However long the first chunk takes to send, one more is read, no further.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pulled.load(Ordering::SeqCst), 2);
        assert_eq!(first, Bytes::from(vec![0u8; 4]));
        let mut all = vec![first];
        while let Some(chunk) = chunks.recv().await {
            all.push(chunk.unwrap());
        }
        assert_eq!(all.len(), 10);
        assert!(all.iter().enumerate().all(|(i, c)| c[..] == [i as u8; 4]));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn read_ahead_cuts_items_that_straddle_chunks() {
        let items = vec![
            Ok(Bytes::from_static(b"abcdefg")),
            Ok(Bytes::from_static(b"hi")),
            Ok(Bytes::from_static(b"jklmnopqrstu")),
        ];
        let data: ByteStream = Box::pin(futures::stream::iter(items));
        let (mut chunks, _give_back) = read_ahead(data, 5);
        let mut got = Vec::new();
        while let Some(chunk) = chunks.recv().await {
            got.push(chunk.unwrap());
        }
        assert_eq!(
            got,
            [b"abcde".as_slice(), b"fghij", b"klmno", b"pqrst", b"u"].map(Bytes::from_static)
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn read_ahead_fills_the_buffers_given_back_and_never_grows_one() {
        // Items of 3 bytes into chunks of 8: every chunk but the last ends inside an item.
        let items = (0..12u8).map(|i| Ok(Bytes::from(vec![i; 3])));
        let data: ByteStream = Box::pin(futures::stream::iter(items));
        let (mut chunks, give_back) = read_ahead(data, 8);
        let mut buffers = std::collections::BTreeSet::new();
        let mut all = Vec::new();
        while let Some(chunk) = chunks.recv().await {
            let chunk = chunk.unwrap();
            all.extend_from_slice(&chunk);
            let buf = chunk
                .try_into_mut()
                .expect("the only holder of a sent chunk");
            // Filled to its chunk, never past the capacity it was made with.
            assert!(buf.capacity() <= 8, "a buffer grew to {}", buf.capacity());
            buffers.insert(buf.as_ptr() as usize);
            // The reader has ended once the last chunk is out.
            let _ = give_back.send(buf);
        }
        let want: Vec<u8> = (0..12u8).flat_map(|i| [i; 3]).collect();
        assert_eq!(all, want);
        // 5 chunks, and only the buffer being sent and the one read ahead were ever made.
        assert!(buffers.len() <= 2, "{} buffers for 5 chunks", buffers.len());
    }
}
