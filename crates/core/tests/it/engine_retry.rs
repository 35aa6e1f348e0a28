//! The engine's retries by the copy's retry policy, and a copy stopped by its `Stop`: on
//! in-memory stores wrapped to break in chosen ways (no real server can be made to break a
//! transfer on the n-th try of a given blob), on tokio's paused clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use ferry_core::{
    Action, ByteStream, CopyEvent, CopyOptions, Descriptor, Error, MemoryStore, ReadStore,
    RetryPolicy, Stop, TransportErrorKind, WriteStore, copy,
};
use futures::StreamExt;

use crate::fixtures::*;

/// How a wrapped source breaks each blob's fetch.
#[derive(Debug, Clone, Copy)]
enum Breakage {
    /// The first `n` fetches of a blob break halfway with a reset.
    Resets(usize),
    /// Every fetch of a blob sends other bytes of the right size.
    Corrupt,
}

#[derive(Debug)]
struct Breaking {
    inner: Arc<MemoryStore>,
    breakage: Breakage,
    fetches: Mutex<HashMap<String, usize>>,
}

impl std::fmt::Display for Breaking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "breaking({})", self.inner)
    }
}

impl Breaking {
    fn new(inner: Arc<MemoryStore>, breakage: Breakage) -> Arc<Self> {
        Arc::new(Self {
            inner,
            breakage,
            fetches: Mutex::default(),
        })
    }

    fn fetches(&self, d: &Descriptor) -> usize {
        *self
            .fetches
            .lock()
            .unwrap()
            .get(&d.digest().to_string())
            .unwrap_or(&0)
    }
}

#[async_trait]
impl ferry_core::StoreWrapper for Breaking {
    type Inner = MemoryStore;
    fn inner(&self) -> &MemoryStore {
        &self.inner
    }
    async fn fetch(&self, d: &Descriptor) -> ferry_core::Result<ByteStream> {
        let n = {
            let mut f = self.fetches.lock().unwrap();
            let n = f.entry(d.digest().to_string()).or_default();
            *n += 1;
            *n
        };
        let stream = ReadStore::fetch(self.inner.as_ref(), d).await?;
        if d.media_type().to_string() != LAYER {
            return Ok(stream);
        }
        match self.breakage {
            Breakage::Resets(k) if n <= k => {
                let half = (d.size() / 2) as usize;
                let mut bytes = Vec::new();
                let mut s = stream;
                while let Some(c) = s.next().await {
                    bytes.extend_from_slice(&c?);
                }
                bytes.truncate(half);
                let broken = futures::stream::iter(vec![
                    Ok(Bytes::from(bytes)),
                    Err(Error::Transport {
                        host: "source".into(),
                        kind: TransportErrorKind::Reset,
                        message: "the connection to the source broke".into(),
                        source: None,
                    }),
                ]);
                Ok(Box::pin(broken))
            }
            Breakage::Corrupt => Ok(ferry_core::bytes_stream(Bytes::from(vec![
                0u8;
                d.size() as usize
            ]))),
            Breakage::Resets(_) => Ok(stream),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn transfers_cut_on_the_way_are_retried_counted_and_announced() {
    let src = Arc::new(MemoryStore::new("src"));
    let l = layer(&src, 50_000);
    let (manifest, _) = image(&src, std::slice::from_ref(&l));
    src.tag(&manifest, "v1").await.unwrap();
    let source = Breaking::new(src, Breakage::Resets(5));
    let dst = Arc::new(MemoryStore::new("dst"));
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let options = CopyOptions::default()
        .with_retry(RetryPolicy::default().with_max_retries(8))
        .on_event(move |e| {
            if let CopyEvent::Retrying {
                descriptor, retry, ..
            } = e
            {
                sink.lock()
                    .unwrap()
                    .push((descriptor.as_ref().map(|d| d.digest().clone()), *retry));
            }
        });
    let report = copy(source.clone(), "v1", dst.clone(), Some("v1"), &options)
        .await
        .unwrap();
    assert_eq!(
        source.fetches(&l),
        6,
        "five broken transfers, then one whole"
    );
    let node = report.node(l.digest()).unwrap();
    assert_eq!(node.action, Action::Copied);
    assert_eq!(node.retries, 5);
    assert_eq!(report.retries, 5);
    let events = events.lock().unwrap().clone();
    assert_eq!(
        events,
        (1..=5)
            .map(|n| (Some(l.digest().clone()), n))
            .collect::<Vec<_>>()
    );
    assert!(dst.exists(&l).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_transfer_that_keeps_breaking_is_given_up_after_the_policys_retries() {
    let src = Arc::new(MemoryStore::new("src"));
    let l = layer(&src, 10_000);
    let (manifest, _) = image(&src, std::slice::from_ref(&l));
    src.tag(&manifest, "v1").await.unwrap();
    let source = Breaking::new(src, Breakage::Resets(usize::MAX));
    let dst = Arc::new(MemoryStore::new("dst"));
    let options = CopyOptions::default().with_retry(RetryPolicy::default().with_max_retries(3));
    let err = copy(source.clone(), "v1", dst.clone(), Some("v1"), &options)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("broke"), "{err}");
    assert_eq!(source.fetches(&l), 4, "the first try and three retries");
    assert!(!dst.exists(&l).await.unwrap(), "nothing partial committed");
    assert!(dst.resolve("v1").await.is_err(), "no tag");
}

#[tokio::test(start_paused = true)]
async fn a_source_whose_bytes_are_wrong_twice_is_not_tried_a_third_time() {
    let src = Arc::new(MemoryStore::new("src"));
    let l = layer(&src, 10_000);
    let (manifest, _) = image(&src, std::slice::from_ref(&l));
    src.tag(&manifest, "v1").await.unwrap();
    let source = Breaking::new(src, Breakage::Corrupt);
    let dst = Arc::new(MemoryStore::new("dst"));
    let err = copy(
        source.clone(),
        "v1",
        dst.clone(),
        Some("v1"),
        &CopyOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert_eq!(
        source.fetches(&l),
        2,
        "a mismatch is tried once more (the transfer may have spoiled it); the same mismatch \
         again means the source is wrong"
    );
    assert!(!dst.exists(&l).await.unwrap());
}

/// A source that holds every blob fetch until released, to stop a copy mid-transfer.
#[derive(Debug)]
struct Held {
    inner: Arc<MemoryStore>,
    gate: Arc<tokio::sync::Semaphore>,
    started: Arc<tokio::sync::Notify>,
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "held({})", self.inner)
    }
}

#[async_trait]
impl ferry_core::StoreWrapper for Held {
    type Inner = MemoryStore;
    fn inner(&self) -> &MemoryStore {
        &self.inner
    }
    async fn fetch(&self, d: &Descriptor) -> ferry_core::Result<ByteStream> {
        if d.media_type().to_string() == LAYER {
            self.started.notify_one();
            let _open = self.gate.acquire().await.expect("gate");
        }
        ReadStore::fetch(self.inner.as_ref(), d).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_copy_starts_no_blob_pushes_no_manifest_and_writes_no_tag() {
    let src = Arc::new(MemoryStore::new("src"));
    let layers = [layer(&src, 1000), layer(&src, 2000), layer(&src, 3000)];
    let (manifest, _) = image(&src, &layers);
    src.tag(&manifest, "v1").await.unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let started = Arc::new(tokio::sync::Notify::new());
    let source = Arc::new(Held {
        inner: src,
        gate: gate.clone(),
        started: started.clone(),
    });
    let dst = Arc::new(MemoryStore::new("dst"));
    let stop = Stop::new();
    // One transfer at a time: when the first layer is in flight the others wait to start.
    let options = CopyOptions::default()
        .with_concurrency(1)
        .with_stop(stop.clone());
    let copying = tokio::spawn({
        let dst = dst.clone();
        async move { copy(source, "v1", dst, Some("v1"), &options).await }
    });
    started.notified().await;
    stop.drain();
    gate.add_permits(10);
    let err = copying.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Cancelled(_)), "{err}");
    let held = futures::future::join_all(layers.iter().map(|l| dst.exists(l))).await;
    let held = held.into_iter().filter(|h| *h.as_ref().unwrap()).count();
    assert!(
        held <= 1,
        "only the transfer in flight may land, {held} did"
    );
    assert!(!dst.exists(&manifest).await.unwrap(), "no manifest pushed");
    assert!(dst.resolve("v1").await.is_err(), "no tag written");
}
