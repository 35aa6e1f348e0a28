//! The connections under the client: TCP, with socket buffers of its own under TLS, TLS over
//! it, and TLS over TLS (a tunnel through an `https://` proxy).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, BufStream};
use tokio::net::TcpStream;

use crate::tls::ClientCert;

/// A byte stream to a server or a proxy.
#[derive(Debug)]
pub(crate) enum Stream {
    /// TCP as it is (plain HTTP: hyper buffers itself).
    Tcp(TcpStream),
    /// TCP with read and write buffers of its own: TLS reads and writes one record (at most
    /// 16 KiB) at a time, which unbuffered is one system call per record.
    Buffered(BufStream<TcpStream>),
    /// TLS over a stream.
    Tls(Box<tokio_rustls::client::TlsStream<Stream>>),
}

impl Stream {
    /// `tcp`, with buffers of `buffer` bytes (0: none).
    pub(crate) fn tcp(tcp: TcpStream, buffer: usize) -> Self {
        if buffer == 0 {
            Stream::Tcp(tcp)
        } else {
            Stream::Buffered(BufStream::with_capacity(buffer, buffer, tcp))
        }
    }

    /// The ALPN protocol the TLS layer on top chose, if any.
    pub(crate) fn alpn(&self) -> Option<&[u8]> {
        match self {
            Stream::Tls(tls) => tls.get_ref().1.alpn_protocol(),
            _ => None,
        }
    }
}

macro_rules! each {
    ($self:expr, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Tcp($s) => $e,
            Stream::Buffered($s) => $e,
            Stream::Tls($s) => $e,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Buffered(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// A connection the client sends requests on: a [`Stream`], whether it goes to a proxy that
/// forwards absolute-form requests, and the client certificate of its host, whose TLS alerts
/// it reads as the host's answer to that certificate.
#[derive(Debug)]
pub(crate) struct Conn {
    io: TokioIo<Stream>,
    proxied: bool,
    h2: bool,
    client: Option<Arc<ClientCert>>,
}

impl Conn {
    pub(crate) fn new(stream: Stream, proxied: bool, client: Option<Arc<ClientCert>>) -> Self {
        let h2 = stream.alpn() == Some(b"h2");
        Self {
            io: TokioIo::new(stream),
            proxied,
            h2,
            client,
        }
    }

    /// Records a TLS alert the host sent about the client certificate. A write that fails
    /// because the host closed the connection may have an alert waiting to be read before it:
    /// it is read then, or the failure would hide why the host closed.
    fn seen<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if let (Poll::Ready(Err(e)), Some(client)) = (&result, &self.client) {
            client.note_error(e);
            if client.asked() && client.alert().is_none() {
                let mut scratch = [0u8; 512];
                let mut buf = tokio::io::ReadBuf::new(&mut scratch);
                if let Poll::Ready(Err(e)) = Pin::new(self.io.inner_mut()).poll_read(cx, &mut buf) {
                    client.note_error(&e);
                }
            }
        }
        result
    }
}

impl Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        this.seen(cx, result)
    }
}

impl Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        this.seen(cx, result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.seen(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_flush(cx);
        this.seen(cx, result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        let connected = Connected::new().proxy(self.proxied);
        if self.h2 {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}
