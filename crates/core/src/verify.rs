//! Digest computation and the stream adapter that verifies size and digest.
//!
//! sha2 selects the CPU's SHA extensions (SHA-NI on x86-64, the ARMv8 crypto extensions)
//! at run time, so verifying costs little next to the I/O it rides on.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use oci_spec::image::{Descriptor, Digest, DigestAlgorithm};
use sha2::Digest as _;

use crate::error::{Error, Result};
use crate::store::ByteStream;

/// An incremental hasher for one of the digest algorithms ferry verifies.
#[derive(Clone)]
pub enum Hasher {
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-512.
    Sha512(sha2::Sha512),
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Hasher::Sha256(_) => "Hasher(sha256)",
            Hasher::Sha512(_) => "Hasher(sha512)",
        })
    }
}

impl Hasher {
    /// A hasher for the algorithm of `digest`, or [`Error::UnsupportedDigest`].
    pub fn for_digest(digest: &Digest) -> Result<Self> {
        Self::new(digest.algorithm()).ok_or_else(|| Error::UnsupportedDigest {
            algorithm: digest.algorithm().to_string(),
            digest: digest.clone(),
        })
    }

    /// A hasher for `algorithm`, if ferry supports it.
    pub fn new(algorithm: &DigestAlgorithm) -> Option<Self> {
        match algorithm {
            DigestAlgorithm::Sha256 => Some(Hasher::Sha256(sha2::Sha256::new())),
            DigestAlgorithm::Sha512 => Some(Hasher::Sha512(sha2::Sha512::new())),
            _ => None,
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        let (alg, hex) = match self {
            Hasher::Sha256(h) => ("sha256", hex::encode(h.finalize())),
            Hasher::Sha512(h) => ("sha512", hex::encode(h.finalize())),
        };
        Digest::try_from(format!("{alg}:{hex}")).expect("hex digest is valid")
    }
}

/// The sha256 digest of `data`.
pub fn sha256(data: &[u8]) -> Digest {
    let mut h = Hasher::Sha256(sha2::Sha256::new());
    h.update(data);
    h.finish()
}

/// Checks that `data` matches the size and digest of `descriptor`.
pub fn verify_bytes(descriptor: &Descriptor, data: &[u8]) -> Result<()> {
    let digest = descriptor.digest();
    if data.len() as u64 != descriptor.size() {
        return Err(Error::SizeMismatch {
            digest: digest.clone(),
            expected: descriptor.size(),
            actual: data.len() as u64,
            truncated: data.len() as u64 > descriptor.size(),
        });
    }
    let mut h = Hasher::for_digest(digest)?;
    h.update(data);
    let actual = h.finish();
    if &actual != digest {
        return Err(Error::DigestMismatch {
            expected: digest.clone(),
            actual: Some(actual),
        });
    }
    Ok(())
}

/// Wraps a byte stream so that it yields exactly the content `descriptor` names, or an error.
///
/// Bytes pass through unchanged while they are counted and hashed. More bytes than the
/// descriptor's size fail at once. The chunk that completes the content is held back until the
/// digest is checked, so a consumer that commits on end of stream (a file rename, a registry
/// `PUT` with `Content-Length`) never sees the complete content unless it matches. A stream that
/// ends early yields [`Error::SizeMismatch`].
pub fn verify_stream(descriptor: &Descriptor, inner: ByteStream) -> Result<ByteStream> {
    let hasher = Hasher::for_digest(descriptor.digest())?;
    Ok(Box::pin(VerifyingStream::new(
        descriptor,
        inner,
        Some(hasher),
    )))
}

/// Wraps a byte stream so that it yields exactly the descriptor's size, or an error, without
/// hashing: for a destination that hashes what it commits itself and refuses a mismatch (an
/// OCI registry must answer `DIGEST_INVALID` to a `PUT ?digest=` whose content does not match),
/// so the bytes are hashed once, not twice. More bytes than the size fail at once; a stream
/// that ends early yields [`Error::SizeMismatch`] before its end reaches the consumer.
pub fn check_size_stream(descriptor: &Descriptor, inner: ByteStream) -> ByteStream {
    Box::pin(VerifyingStream::new(descriptor, inner, None))
}

struct VerifyingStream {
    inner: ByteStream,
    /// `None` when only the size is checked.
    hasher: Option<Hasher>,
    digest: Digest,
    expected: u64,
    seen: u64,
    /// Every byte was yielded (and verified); the inner stream must now end.
    complete: bool,
    done: bool,
}

impl VerifyingStream {
    fn new(descriptor: &Descriptor, inner: ByteStream, hasher: Option<Hasher>) -> Self {
        Self {
            inner,
            hasher,
            digest: descriptor.digest().clone(),
            expected: descriptor.size(),
            seen: 0,
            complete: false,
            done: false,
        }
    }

    fn fail(&mut self, e: Error) -> Poll<Option<Result<Bytes>>> {
        self.done = true;
        Poll::Ready(Some(Err(e)))
    }

    /// Marks the content complete, checking the digest when hashing.
    fn complete(&mut self) -> Result<()> {
        self.complete = true;
        if let Some(hasher) = self.hasher.take() {
            let actual = hasher.finish();
            if actual != self.digest {
                return Err(Error::DigestMismatch {
                    expected: self.digest.clone(),
                    actual: Some(actual),
                });
            }
        }
        Ok(())
    }
}

impl Stream for VerifyingStream {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.complete {
            return match self.inner.as_mut().poll_next(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => {
                    self.done = true;
                    Poll::Ready(None)
                }
                Poll::Ready(Some(Err(e))) => self.fail(e),
                Poll::Ready(Some(Ok(chunk))) if chunk.is_empty() => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Poll::Ready(Some(Ok(chunk))) => {
                    let e = Error::SizeMismatch {
                        digest: self.digest.clone(),
                        expected: self.expected,
                        actual: self.seen + chunk.len() as u64,
                        truncated: true,
                    };
                    self.fail(e)
                }
            };
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Err(e))) => self.fail(e),
            Poll::Ready(None) => {
                if self.seen == self.expected {
                    // Only reachable for empty content.
                    if let Err(e) = self.complete() {
                        return self.fail(e);
                    }
                    self.done = true;
                    return Poll::Ready(None);
                }
                let e = Error::SizeMismatch {
                    digest: self.digest.clone(),
                    expected: self.expected,
                    actual: self.seen,
                    truncated: false,
                };
                self.fail(e)
            }
            Poll::Ready(Some(Ok(chunk))) => {
                let seen = self.seen + chunk.len() as u64;
                if seen > self.expected {
                    let e = Error::SizeMismatch {
                        digest: self.digest.clone(),
                        expected: self.expected,
                        actual: seen,
                        truncated: true,
                    };
                    return self.fail(e);
                }
                self.seen = seen;
                if let Some(hasher) = self.hasher.as_mut() {
                    hasher.update(&chunk);
                }
                if seen == self.expected
                    && let Err(e) = self.complete()
                {
                    return self.fail(e);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
        }
    }
}

/// Reads a whole stream into memory, refusing more than `limit` bytes.
pub async fn read_to_bytes(mut stream: ByteStream, what: &str, limit: u64) -> Result<Bytes> {
    use futures::StreamExt;
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(Error::TooLarge {
                what: what.to_string(),
                size: (buf.len() + chunk.len()) as u64,
                limit,
            });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
