//! The TCP connection under TLS, with socket buffers of its own.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use ferry_core::BoxError;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, BufStream};
use tokio::net::TcpStream;

/// The TCP connector under TLS: [`HttpConnector`] with buffered socket I/O.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    pub(crate) http: HttpConnector,
    pub(crate) buffer: usize,
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
pub(crate) struct BufferedIo {
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
