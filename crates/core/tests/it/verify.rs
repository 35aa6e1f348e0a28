//! The verifying stream adapter.

use bytes::Bytes;
use ferry_core::{ByteStream, Descriptor, Error, check_size_stream, verify_stream};
use futures::StreamExt;

fn chunks(parts: &[&'static [u8]]) -> ByteStream {
    let v: Vec<ferry_core::Result<Bytes>> =
        parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
    Box::pin(futures::stream::iter(v))
}

async fn drain(mut s: ByteStream) -> (Vec<u8>, Option<Error>) {
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        match c {
            Ok(b) => out.extend_from_slice(&b),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

fn desc(data: &[u8]) -> Descriptor {
    Descriptor::new(
        "application/octet-stream".into(),
        data.len() as u64,
        ferry_core::sha256(data),
    )
}

#[tokio::test]
async fn passes_matching_content_through() {
    let (out, err) =
        drain(verify_stream(&desc(b"hello world"), chunks(&[b"hello", b" ", b"world"])).unwrap())
            .await;
    assert!(err.is_none());
    assert_eq!(out, b"hello world");
}

#[tokio::test]
async fn holds_back_the_last_chunk_of_wrong_content() {
    let (out, err) =
        drain(verify_stream(&desc(b"hello world"), chunks(&[b"hello", b" ", b"WORLD"])).unwrap())
            .await;
    assert!(matches!(err, Some(Error::DigestMismatch { .. })));
    assert_eq!(out, b"hello ", "the completing chunk is never yielded");
}

#[tokio::test]
async fn too_long_and_too_short_content_fail() {
    let (_, err) = drain(verify_stream(&desc(b"abc"), chunks(&[b"abcd"])).unwrap()).await;
    assert!(matches!(
        err,
        Some(Error::SizeMismatch {
            truncated: true,
            ..
        })
    ));
    let (_, err) = drain(verify_stream(&desc(b"abc"), chunks(&[b"abc", b"d"])).unwrap()).await;
    assert!(matches!(err, Some(Error::SizeMismatch { .. })));
    let (_, err) = drain(verify_stream(&desc(b"abc"), chunks(&[b"ab"])).unwrap()).await;
    assert!(matches!(
        err,
        Some(Error::SizeMismatch {
            truncated: false,
            ..
        })
    ));
}

#[tokio::test]
async fn sha512_is_verified_and_unknown_algorithms_refused() {
    use sha2::Digest as _;
    let data = b"sha512 content";
    let hex: String = sha2::Sha512::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let d = Descriptor::new(
        "application/octet-stream".into(),
        data.len() as u64,
        ferry_core::Digest::try_from(format!("sha512:{hex}")).unwrap(),
    );
    let (out, err) = drain(verify_stream(&d, chunks(&[b"sha512 ", b"content"])).unwrap()).await;
    assert!(err.is_none());
    assert_eq!(out, data);
    let odd = Descriptor::new(
        "application/octet-stream".into(),
        1,
        ferry_core::Digest::try_from(
            "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
        )
        .unwrap(),
    );
    assert!(matches!(
        verify_stream(&odd, chunks(&[b"x"])),
        Err(Error::UnsupportedDigest { .. })
    ));
}

#[tokio::test]
async fn empty_content_verifies() {
    let (out, err) = drain(verify_stream(&desc(b""), chunks(&[])).unwrap()).await;
    assert!(err.is_none() && out.is_empty());
}

/// The size-only check leaves the hashing to a destination that does it itself: content of
/// the right size passes whatever it is, any other size fails before the stream ends.
#[tokio::test]
async fn the_size_check_counts_without_hashing() {
    let d = desc(b"hello world");
    let (out, err) = drain(check_size_stream(&d, chunks(&[b"hello", b" ", b"WORLD"]))).await;
    assert!(err.is_none(), "not hashed: {err:?}");
    assert_eq!(out, b"hello WORLD");
    let (out, err) = drain(check_size_stream(&d, chunks(&[b"hello", b" wor"]))).await;
    assert!(
        matches!(
            err,
            Some(Error::SizeMismatch {
                actual: 9,
                truncated: false,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(out, b"hello wor");
    let (out, err) = drain(check_size_stream(&d, chunks(&[b"hello world", b"!"]))).await;
    assert!(
        matches!(
            err,
            Some(Error::SizeMismatch {
                actual: 12,
                truncated: true,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(out, b"hello world");
    let (_, err) = drain(check_size_stream(&d, chunks(&[b"hello worlds"]))).await;
    assert!(matches!(err, Some(Error::SizeMismatch { .. })), "{err:?}");
}
