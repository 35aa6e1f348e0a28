//! Stores, images and a lying gateway for the tests.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use ferry_core::model::OCI_MANIFEST;
use ferry_core::verify::read_to_bytes;
use ferry_core::{
    ByteStream, Descriptor, Digest, MemoryStore, ReadStore, Result, StoreInfo, WriteStore,
    bytes_stream,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use ferry_test_support::helia::Helia;

/// Media type of the test layers.
pub const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// Media type of the test configs.
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// `len` bytes that differ from run to run and between calls.
pub fn random(len: usize) -> Bytes {
    ferry_conformance::random_bytes(len)
}

/// Asserts that two contents are the same without printing megabytes when they differ.
#[track_caller]
pub fn assert_same(actual: &[u8], expected: &[u8]) {
    assert!(
        actual == expected,
        "content differs: got {} bytes ({}), expected {} bytes ({})",
        actual.len(),
        ferry_core::sha256(actual),
        expected.len(),
        ferry_core::sha256(expected)
    );
}

/// A store that records every blob fetched from it, and can publish what is pushed into it to
/// an IPFS node as raw blocks (for the strategy conformance kit).
#[derive(Debug)]
pub struct CountingStore {
    pub inner: MemoryStore,
    fetched: Mutex<Vec<Digest>>,
    publish_to: Option<Arc<Helia>>,
}

impl CountingStore {
    pub fn new(name: &str) -> Self {
        Self {
            inner: MemoryStore::new(name),
            fetched: Mutex::default(),
            publish_to: None,
        }
    }

    /// Every blob pushed is also added to `helia` as a single raw block.
    pub fn publishing_to(name: &str, helia: Arc<Helia>) -> Self {
        Self {
            publish_to: Some(helia),
            ..Self::new(name)
        }
    }

    /// The digests fetched so far, in order.
    pub fn fetched(&self) -> Vec<Digest> {
        self.fetched.lock().unwrap().clone()
    }
}

impl std::fmt::Display for CountingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Counting({})", self.inner)
    }
}

#[async_trait]
impl ReadStore for CountingStore {
    fn info(&self) -> &StoreInfo {
        self.inner.info()
    }

    async fn exists(&self, descriptor: &Descriptor) -> Result<bool> {
        self.inner.exists(descriptor).await
    }

    async fn fetch(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        self.fetched
            .lock()
            .unwrap()
            .push(descriptor.digest().clone());
        self.inner.fetch(descriptor).await
    }

    async fn resolve(&self, reference: &str) -> Result<Descriptor> {
        self.inner.resolve(reference).await
    }

    async fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>> {
        self.inner.referrers(subject).await
    }
}

#[async_trait]
impl WriteStore for CountingStore {
    async fn push(&self, descriptor: &Descriptor, data: ByteStream) -> Result<()> {
        let bytes = read_to_bytes(data, "blob", u64::MAX).await?;
        self.inner
            .push(descriptor, bytes_stream(bytes.clone()))
            .await?;
        if let Some(helia) = &self.publish_to {
            helia.add_raw(&bytes).await;
        }
        Ok(())
    }

    async fn tag(&self, descriptor: &Descriptor, tag: &str) -> Result<()> {
        self.inner.tag(descriptor, tag).await
    }
}

/// The descriptor of a layer holding `data`, with `urls`.
pub fn layer(data: &[u8], urls: &[String]) -> Descriptor {
    let mut d = Descriptor::new(LAYER.into(), data.len() as u64, ferry_core::sha256(data));
    if !urls.is_empty() {
        d.set_urls(Some(urls.to_vec()));
    }
    d
}

/// Stores an image manifest with `config` and `layers` in `store` (config and manifest
/// inserted, layers only referenced) and tags it `tag`.
pub async fn image(
    store: &MemoryStore,
    config: &Descriptor,
    layers: &[Descriptor],
    tag: &str,
) -> Descriptor {
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": layers,
    });
    let manifest = store.insert(OCI_MANIFEST, serde_json::to_vec(&manifest).unwrap());
    store.tag(&manifest, tag).await.unwrap();
    manifest
}

/// Reads the whole blob `descriptor` names from `store`.
pub async fn read(store: &dyn ReadStore, descriptor: &Descriptor) -> Bytes {
    read_to_bytes(
        store.fetch(descriptor).await.unwrap(),
        "test blob",
        u64::MAX,
    )
    .await
    .unwrap()
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A gateway that answers every request with the same body and content type.
///
/// A fake on purpose: no real IPFS node can be made to send bytes that do not match the CID
/// asked for, and this is what the client's verification must withstand.
pub struct LyingGateway {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl LyingGateway {
    pub async fn start(content_type: &'static str, body: Bytes) -> Self {
        Self::serve(content_type, body, 0).await
    }

    /// Announces `missing` more bytes than it sends, then holds the connection open: a
    /// gateway that stops in the middle of a body.
    pub async fn stalling(content_type: &'static str, body: Bytes, missing: usize) -> Self {
        Self::serve(content_type, body, missing).await
    }

    async fn serve(content_type: &'static str, body: Bytes, missing: usize) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let body = body.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len() + missing
                    );
                    conn.write_all(head.as_bytes()).await.ok();
                    conn.write_all(&body).await.ok();
                    if missing > 0 {
                        // Hold the connection until the client gives up.
                        let mut rest = Vec::new();
                        conn.read_to_end(&mut rest).await.ok();
                    }
                    conn.shutdown().await.ok();
                });
            }
        });
        Self { url, task }
    }
}

impl Drop for LyingGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A gateway that answers `503` to its first `failures` requests, then serves `body` as a raw
/// block, counting every request.
///
/// A fake on purpose: no real IPFS node can be made to shed load on cue.
pub struct FlakyGateway {
    pub url: String,
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FlakyGateway {
    pub async fn start(failures: usize, body: Bytes) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let body = body.clone();
                let n = counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    if n < failures {
                        let head = "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                        conn.write_all(head.as_bytes()).await.ok();
                    } else {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            ferry_ipfs_mount::RAW_MEDIA_TYPE,
                            body.len()
                        );
                        conn.write_all(head.as_bytes()).await.ok();
                        conn.write_all(&body).await.ok();
                    }
                    conn.shutdown().await.ok();
                });
            }
        });
        Self {
            url,
            requests,
            task,
        }
    }
}

impl Drop for FlakyGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}
