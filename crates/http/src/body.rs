//! Request and response bodies of an [`HttpClient`](crate::HttpClient).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use ferry_core::BoxError;
use futures::{Stream, TryStreamExt};
use http_body::{Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};

/// The body of a request: nothing, bytes in memory, or a stream sent as it comes.
pub struct Body {
    inner: UnsyncBoxBody<Bytes, BoxError>,
}

impl Body {
    /// No body.
    pub fn empty() -> Self {
        Self {
            inner: Empty::new().map_err(|e| match e {}).boxed_unsync(),
        }
    }

    /// The bytes `data`.
    pub fn from_bytes(data: impl Into<Bytes>) -> Self {
        Self {
            inner: Full::new(data.into())
                .map_err(|e| match e {})
                .boxed_unsync(),
        }
    }

    /// The chunks of `stream`, sent as they come; an error aborts the request.
    pub fn from_stream<S>(stream: S) -> Self
    where
        S: Stream<Item = Result<Bytes, BoxError>> + Send + 'static,
    {
        Self {
            inner: StreamBody::new(stream.map_ok(Frame::data)).boxed_unsync(),
        }
    }
}

impl Default for Body {
    fn default() -> Self {
        Self::empty()
    }
}

impl From<Bytes> for Body {
    fn from(data: Bytes) -> Self {
        Self::from_bytes(data)
    }
}

impl From<String> for Body {
    fn from(data: String) -> Self {
        Self::from_bytes(data)
    }
}

impl From<Vec<u8>> for Body {
    fn from(data: Vec<u8>) -> Self {
        Self::from_bytes(data)
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("size_hint", &http_body::Body::size_hint(&self.inner))
            .finish()
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The body of a response, read frame by frame ([`http_body_util::BodyExt`] works on it).
#[derive(Debug)]
pub struct ResponseBody {
    inner: hyper::body::Incoming,
}

impl ResponseBody {
    pub(crate) fn new(inner: hyper::body::Incoming) -> Self {
        Self { inner }
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map_err(BoxError::from)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
