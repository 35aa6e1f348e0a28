//! Conformance kits: the contracts every store and every mount strategy must keep, as plain
//! async functions that panic with a message naming the broken rule. Every store's and
//! strategy's tests, in every crate, run them (enable the `conformance` feature in
//! `dev-dependencies`).
//!
//! ```text
//! #[tokio::test]
//! async fn my_store_keeps_the_store_contract() {
//!     let store: Arc<dyn WriteStore> = Arc::new(MyStore::open(...));
//!     ferry_core::conformance::store::run_all(store).await;
//! }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use oci_spec::image::Descriptor;

use crate::verify::sha256;

mod counting;
pub use counting::Counting;

/// Media type used for the kits' test blobs.
pub const TEST_BLOB_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

/// `len` pseudo-random bytes, different on every call.
pub fn random_bytes(len: usize) -> Bytes {
    static SEED: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = SEED.fetch_add(0x2545_F491_4F6C_DD1D, Ordering::Relaxed)
        ^ nanos
        ^ std::process::id() as u64;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// A blob of `len` random bytes and its descriptor.
pub fn random_blob(len: usize) -> (Descriptor, Bytes) {
    let data = random_bytes(len);
    let desc = Descriptor::new(TEST_BLOB_TYPE.into(), len as u64, sha256(&data));
    (desc, data)
}

/// The store contract.
pub mod store {
    use std::sync::Arc;

    use bytes::Bytes;
    use futures::StreamExt;
    use oci_spec::image::Descriptor;

    use super::random_blob;
    use crate::error::Error;
    use crate::store::{ByteStream, WriteStore, bytes_stream};
    use crate::verify::sha256;

    async fn read_all(store: &dyn WriteStore, desc: &Descriptor) -> Bytes {
        let mut s = store
            .fetch(desc)
            .await
            .unwrap_or_else(|e| panic!("{store}: fetch of pushed `{}` failed: {e}", desc.digest()));
        let mut out = Vec::new();
        while let Some(c) = s.next().await {
            out.extend_from_slice(
                &c.unwrap_or_else(|e| panic!("{store}: fetch stream failed: {e}")),
            );
        }
        Bytes::from(out)
    }

    fn chunked(data: Bytes, chunk: usize) -> ByteStream {
        let parts: Vec<crate::Result<Bytes>> = data
            .chunks(chunk.max(1))
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Box::pin(futures::stream::iter(parts))
    }

    /// Push, exists, fetch: the bytes come back exactly, whatever the chunking.
    pub async fn round_trip(store: &dyn WriteStore) {
        for (len, chunk) in [(0usize, 1usize), (1, 1), (1000, 7), (300_000, 65_536)] {
            let (desc, data) = random_blob(len);
            assert!(
                !store.exists(&desc).await.unwrap(),
                "{store}: fresh blob reported present"
            );
            store
                .push(&desc, chunked(data.clone(), chunk))
                .await
                .unwrap_or_else(|e| panic!("{store}: push of {len} bytes failed: {e}"));
            assert!(
                store.exists(&desc).await.unwrap(),
                "{store}: pushed blob not present"
            );
            assert_eq!(
                read_all(store, &desc).await,
                data,
                "{store}: bytes changed in a round trip"
            );
        }
    }

    /// A push whose bytes do not match the descriptor fails and commits nothing.
    pub async fn mismatched_push_commits_nothing(store: &dyn WriteStore) {
        let (desc, data) = random_blob(4096);
        // Wrong content, right size.
        let wrong = super::random_bytes(4096);
        let err = store.push(&desc, bytes_stream(wrong)).await;
        assert!(
            matches!(err, Err(Error::DigestMismatch { .. })),
            "{store}: push of wrong bytes must fail with DigestMismatch, got {err:?}"
        );
        assert!(
            !store.exists(&desc).await.unwrap(),
            "{store}: wrong bytes were committed"
        );
        // Too short.
        let err = store.push(&desc, bytes_stream(data.slice(..4000))).await;
        assert!(
            matches!(err, Err(Error::SizeMismatch { .. })),
            "{store}: push of too few bytes must fail with SizeMismatch, got {err:?}"
        );
        assert!(
            !store.exists(&desc).await.unwrap(),
            "{store}: truncated bytes were committed"
        );
        // Too long.
        let mut long = data.to_vec();
        long.extend_from_slice(b"extra");
        let err = store.push(&desc, bytes_stream(Bytes::from(long))).await;
        assert!(
            matches!(err, Err(Error::SizeMismatch { .. })),
            "{store}: push of too many bytes must fail with SizeMismatch, got {err:?}"
        );
        assert!(
            !store.exists(&desc).await.unwrap(),
            "{store}: overlong bytes were committed"
        );
        // A failing source stream.
        let failing: ByteStream = Box::pin(futures::stream::iter(vec![
            Ok(data.slice(..100)),
            Err(Error::store("test", "source broke")),
        ]));
        assert!(
            store.push(&desc, failing).await.is_err(),
            "{store}: a broken stream must fail the push"
        );
        assert!(
            !store.exists(&desc).await.unwrap(),
            "{store}: a broken stream left content"
        );
        // And the right bytes still go in afterwards.
        store.push(&desc, bytes_stream(data.clone())).await.unwrap();
        assert_eq!(read_all(store, &desc).await, data);
    }

    /// Pushing content twice succeeds and keeps it.
    pub async fn idempotent_push(store: &dyn WriteStore) {
        let (desc, data) = random_blob(2048);
        store.push(&desc, bytes_stream(data.clone())).await.unwrap();
        store
            .push(&desc, bytes_stream(data.clone()))
            .await
            .unwrap_or_else(|e| panic!("{store}: second push of the same blob failed: {e}"));
        assert_eq!(read_all(store, &desc).await, data);
    }

    /// Two concurrent pushes of one blob both succeed and leave it intact.
    pub async fn concurrent_push(store: Arc<dyn WriteStore>) {
        let (desc, data) = random_blob(1 << 20);
        let a = store.push(&desc, chunked(data.clone(), 4096));
        let b = store.push(&desc, chunked(data.clone(), 8192));
        let (ra, rb) = futures::join!(a, b);
        ra.unwrap_or_else(|e| panic!("{store}: first of two concurrent pushes failed: {e}"));
        rb.unwrap_or_else(|e| panic!("{store}: second of two concurrent pushes failed: {e}"));
        assert_eq!(
            read_all(store.as_ref(), &desc).await,
            data,
            "{store}: concurrent pushes corrupted the blob"
        );
    }

    /// A pushed manifest can be tagged and resolved by tag and by digest.
    pub async fn tag_and_resolve(store: &dyn WriteStore) {
        let (config, config_data) = random_blob(64);
        let config = Descriptor::new(
            "application/vnd.oci.image.config.v1+json".into(),
            config.size(),
            config.digest().clone(),
        );
        store
            .push(&config, bytes_stream(config_data))
            .await
            .unwrap();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": crate::model::OCI_MANIFEST,
            "config": config,
            "layers": [],
        });
        let bytes = Bytes::from(serde_json::to_vec(&manifest).unwrap());
        let desc = Descriptor::new(
            crate::model::OCI_MANIFEST.into(),
            bytes.len() as u64,
            sha256(&bytes),
        );
        store.push(&desc, bytes_stream(bytes)).await.unwrap();
        store
            .tag(&desc, "conformance")
            .await
            .unwrap_or_else(|e| panic!("{store}: tag failed: {e}"));
        let by_tag = store.resolve("conformance").await.unwrap();
        assert_eq!(
            by_tag.digest(),
            desc.digest(),
            "{store}: tag resolves to another digest"
        );
        assert_eq!(by_tag.size(), desc.size());
        let by_digest = store.resolve(desc.digest().as_ref()).await.unwrap();
        assert_eq!(by_digest.digest(), desc.digest());
        // Retagging moves the tag.
        let (other_cfg, other_data) = random_blob(32);
        store
            .push(&other_cfg, bytes_stream(other_data))
            .await
            .unwrap();
        let manifest2 = serde_json::json!({
            "schemaVersion": 2, "mediaType": crate::model::OCI_MANIFEST,
            "config": other_cfg, "layers": [],
        });
        let bytes2 = Bytes::from(serde_json::to_vec(&manifest2).unwrap());
        let desc2 = Descriptor::new(
            crate::model::OCI_MANIFEST.into(),
            bytes2.len() as u64,
            sha256(&bytes2),
        );
        store.push(&desc2, bytes_stream(bytes2)).await.unwrap();
        store.tag(&desc2, "conformance").await.unwrap();
        assert_eq!(
            store.resolve("conformance").await.unwrap().digest(),
            desc2.digest(),
            "{store}: retag did not move the tag"
        );
        let missing = store.resolve("no-such-tag").await;
        assert!(
            matches!(missing, Err(Error::NotFound { .. })),
            "{store}: resolving a missing tag must be NotFound, got {missing:?}"
        );
    }

    /// `exists` of a missing blob is `Ok(false)`; `fetch` of it is `NotFound`.
    pub async fn missing_blob(store: &dyn WriteStore) {
        let (desc, _) = random_blob(10);
        assert!(
            !store.exists(&desc).await.unwrap(),
            "{store}: missing blob reported present"
        );
        let r = store.fetch(&desc).await;
        assert!(
            matches!(r, Err(Error::NotFound { .. })),
            "{store}: fetch of a missing blob must be NotFound, got {:?}",
            r.map(|_| ())
        );
    }

    /// Runs the whole store contract.
    pub async fn run_all(store: Arc<dyn WriteStore>) {
        missing_blob(store.as_ref()).await;
        round_trip(store.as_ref()).await;
        mismatched_push_commits_nothing(store.as_ref()).await;
        idempotent_push(store.as_ref()).await;
        concurrent_push(store.clone()).await;
        tag_and_resolve(store.as_ref()).await;
    }
}

/// The mount-strategy contract.
pub mod strategy {
    use std::sync::Arc;

    use futures::StreamExt;

    use super::random_blob;
    use crate::error::Error;
    use crate::mount::{MountOutcome, MountRequest, MountStrategy};
    use crate::store::{WriteStore, bytes_stream};

    /// A strategy between a source it can be tested from and a destination.
    pub struct Case {
        /// The strategy under test.
        pub strategy: Arc<dyn MountStrategy>,
        /// The source; the kit pushes test blobs into it.
        pub source: Arc<dyn WriteStore>,
        /// The destination.
        pub destination: Arc<dyn WriteStore>,
    }

    /// What the kit saw the strategy do with a blob the source holds.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Seen {
        /// It mounted, and the destination serves the exact bytes.
        Mounted,
        /// It found the blob present.
        AlreadyPresent,
        /// It did not apply, and the destination is unchanged.
        NotApplicable,
        /// It declined, and the destination is unchanged.
        Declined,
    }

    async fn check_unchanged_or_exact(
        case: &Case,
        desc: &crate::Descriptor,
        data: &bytes::Bytes,
        what: &str,
    ) {
        let dst = case.destination.as_ref();
        if dst.exists(desc).await.unwrap() {
            let mut s = dst.fetch(desc).await.unwrap();
            let mut out = Vec::new();
            while let Some(c) = s.next().await {
                out.extend_from_slice(&c.unwrap());
            }
            assert_eq!(
                &out[..],
                &data[..],
                "{}: {what}: the destination holds different bytes",
                case.strategy
            );
        }
    }

    /// After `Mounted` the destination serves the exact bytes; after `NotApplicable` or
    /// `Declined` it does not hold the blob.
    pub async fn mount_outcome_is_honest(case: &Case, size: usize) -> Seen {
        let (desc, data) = random_blob(size);
        case.source
            .push(&desc, bytes_stream(data.clone()))
            .await
            .unwrap();
        let request = MountRequest::new(&desc, case.source.as_ref(), case.destination.as_ref());
        let outcome = case.strategy.mount(&request).await.unwrap_or_else(|e| {
            panic!(
                "{}: mount of a blob the source holds failed: {e}",
                case.strategy
            )
        });
        let dst = case.destination.as_ref();
        match outcome {
            MountOutcome::Mounted { .. } | MountOutcome::AlreadyPresent => {
                assert!(
                    dst.exists(&desc).await.unwrap(),
                    "{}: said mounted, blob absent",
                    case.strategy
                );
                check_unchanged_or_exact(case, &desc, &data, "after Mounted").await;
                if matches!(outcome, MountOutcome::Mounted { .. }) {
                    Seen::Mounted
                } else {
                    Seen::AlreadyPresent
                }
            }
            MountOutcome::NotApplicable { .. } => {
                assert!(
                    !dst.exists(&desc).await.unwrap(),
                    "{}: NotApplicable but the destination changed",
                    case.strategy
                );
                Seen::NotApplicable
            }
            MountOutcome::Declined { upload, .. } => {
                if let Some(u) = upload {
                    u.cancel().await.ok();
                }
                assert!(
                    !dst.exists(&desc).await.unwrap(),
                    "{}: Declined but the destination changed",
                    case.strategy
                );
                Seen::Declined
            }
        }
    }

    /// A blob the source does not hold gives an outcome other than `Mounted`, or `NotFound`;
    /// never a panic, never content at the destination.
    pub async fn missing_source_blob(case: &Case) {
        let (desc, _) = random_blob(512);
        let request = MountRequest::new(&desc, case.source.as_ref(), case.destination.as_ref());
        match case.strategy.mount(&request).await {
            Ok(MountOutcome::Mounted { .. }) => {
                panic!("{}: mounted a blob that exists nowhere", case.strategy)
            }
            Ok(MountOutcome::Declined {
                upload: Some(u), ..
            }) => {
                u.cancel().await.ok();
            }
            Ok(_) | Err(Error::NotFound { .. }) => {}
            Err(e) => panic!(
                "{}: a missing source blob must be an outcome or NotFound, got {e}",
                case.strategy
            ),
        }
        assert!(
            !case.destination.exists(&desc).await.unwrap(),
            "{}: content appeared for a missing blob",
            case.strategy
        );
    }

    /// Dropping a mount future part-way leaves the destination without the blob or with
    /// exactly its bytes, never a partial blob.
    pub async fn dropped_future_leaves_no_partial_blob(case: &Case, size: usize) {
        let (desc, data) = random_blob(size);
        case.source
            .push(&desc, bytes_stream(data.clone()))
            .await
            .unwrap();
        for polls in [1usize, 3, 10] {
            let request = MountRequest::new(&desc, case.source.as_ref(), case.destination.as_ref());
            let mut fut = case.strategy.mount(&request);
            for _ in 0..polls {
                if futures::poll!(fut.as_mut()).is_ready() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            drop(fut);
            check_unchanged_or_exact(case, &desc, &data, "after a dropped mount").await;
        }
    }

    /// Runs the whole strategy contract; returns what the strategy did with a blob the source
    /// holds, so the caller can assert the outcome it expects for its setup.
    pub async fn run_all(case: &Case) -> Seen {
        missing_source_blob(case).await;
        dropped_future_leaves_no_partial_blob(case, 4 << 20).await;
        mount_outcome_is_honest(case, 100_000).await
    }
}
