//! The sync planner and runner over memory stores and catalogs: what is copied, what is
//! compared and how, each blob once, filters, pruning and its guards, failures, stopping.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use ferry_conformance::random_bytes;
use ferry_core::model::OCI_MANIFEST;
use ferry_core::{
    BlobTransfers, ByteStream, Capabilities, Catalog, CopyOptions, Descriptor, Error, ListTags,
    MemoryCatalog, MemoryStore, MountChain, MountOutcome, MountRequest, MountStrategy, ReadStore,
    Result, StoreInfo, WriteStore,
};
use ferry_sync::{
    FilteredBy, Outcome, Shard, Stop, SyncEntry, SyncOptions, SyncReport, SyncSource, TagFilter,
    TagPatterns, fnv1a64, shard_of, sync,
};
use futures::stream::BoxStream;
use serde_json::json;

use crate::fixtures::{CONFIG, LAYER, put_json};

/// An image in `store` whose layers are `layers` (bytes), tagged `tag`.
pub(crate) async fn tagged_image(store: &MemoryStore, tag: &str, layers: &[Bytes]) -> Descriptor {
    let layers: Vec<Descriptor> = layers
        .iter()
        .map(|b| store.insert(LAYER, b.clone()))
        .collect();
    let nonce = crate::fixtures::hex(&random_bytes(8));
    let config = store.insert(
        CONFIG,
        Bytes::from(format!("{{\"tag\":\"{tag}\",\"nonce\":\"{nonce}\"}}")),
    );
    let manifest = put_json(
        store,
        OCI_MANIFEST,
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers}),
    );
    store.tag(&manifest, tag).await.unwrap();
    manifest
}

/// A "server-side mount" between the stores of one memory catalog: what a registry's
/// cross-repository mount does, so the run's shared transfers can be observed in memory.
#[derive(Debug)]
struct CatalogMount {
    catalog: Arc<MemoryCatalog>,
    mounts: AtomicUsize,
}

impl std::fmt::Display for CatalogMount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CatalogMount")
    }
}

#[async_trait]
impl MountStrategy for CatalogMount {
    fn name(&self) -> &str {
        "catalog-mount"
    }

    async fn mount(&self, request: &MountRequest<'_>) -> Result<MountOutcome> {
        let dst = request.destination.info();
        for c in request.candidates {
            if !c.store.same_authority(dst) || c.store.namespace == dst.namespace {
                continue;
            }
            if let Some(from) = self.catalog.get(&c.store.namespace)
                && let Some(bytes) = from.get(request.descriptor.digest())
            {
                request
                    .destination
                    .push(request.descriptor, ferry_core::bytes_stream(bytes))
                    .await?;
                self.mounts.fetch_add(1, Ordering::SeqCst);
                return Ok(MountOutcome::mounted(
                    &c.store,
                    ferry_core::MountMethod::other("catalog copy"),
                ));
            }
        }
        Ok(MountOutcome::not_applicable(
            "no store of the catalog holds it",
        ))
    }
}

/// A source catalog whose stores count fetches and resolves, and can hold fetches of one
/// digest until released.
#[derive(Debug)]
struct Counting {
    inner: Arc<MemoryCatalog>,
    fetches: Arc<Mutex<HashMap<String, usize>>>,
    resolves: Arc<AtomicUsize>,
    gate: Arc<Gate>,
    /// After this many names, the listing fails.
    fail_listing_after: Option<usize>,
}

#[derive(Debug, Default)]
struct Gate {
    held: Mutex<Option<String>>,
    open: tokio::sync::Notify,
    waiting: AtomicUsize,
}

impl Counting {
    fn new(inner: Arc<MemoryCatalog>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            fetches: Arc::default(),
            resolves: Arc::default(),
            gate: Arc::default(),
            fail_listing_after: None,
        })
    }

    fn fetches_of(&self, digest: &str) -> usize {
        *self.fetches.lock().unwrap().get(digest).unwrap_or(&0)
    }
}

impl std::fmt::Display for Counting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "counting({})", self.inner)
    }
}

#[async_trait]
impl Catalog for Counting {
    fn info(&self) -> &StoreInfo {
        self.inner.info()
    }

    fn list(&self, prefix: &str) -> BoxStream<'static, Result<String>> {
        let names = self.inner.list(prefix);
        match self.fail_listing_after {
            None => names,
            Some(n) => {
                use futures::StreamExt;
                Box::pin(names.take(n).chain(futures::stream::iter([Err(Error::store(
                    "catalog",
                    "the second page answered 500",
                ))])))
            }
        }
    }

    async fn open_read(&self, name: &str) -> Result<Arc<dyn ReadStore>> {
        let store = self.inner.get(name).expect("listed store");
        Ok(Arc::new(CountedStore {
            inner: store,
            fetches: self.fetches.clone(),
            resolves: self.resolves.clone(),
            gate: self.gate.clone(),
        }))
    }

    async fn open_write(&self, _: &str, _: bool) -> Result<Option<Arc<dyn WriteStore>>> {
        unreachable!("a source")
    }
}

#[derive(Debug)]
struct CountedStore {
    inner: Arc<MemoryStore>,
    fetches: Arc<Mutex<HashMap<String, usize>>>,
    resolves: Arc<AtomicUsize>,
    gate: Arc<Gate>,
}

impl std::fmt::Display for CountedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "counted({})", self.inner)
    }
}

#[async_trait]
impl ReadStore for CountedStore {
    fn info(&self) -> &StoreInfo {
        self.inner.info()
    }
    async fn exists(&self, d: &Descriptor) -> Result<bool> {
        self.inner.exists(d).await
    }
    async fn fetch(&self, d: &Descriptor) -> Result<ByteStream> {
        let digest = d.digest().to_string();
        *self
            .fetches
            .lock()
            .unwrap()
            .entry(digest.clone())
            .or_default() += 1;
        let held = self.gate.held.lock().unwrap().clone();
        if held.as_deref() == Some(digest.as_str()) {
            let opened = self.gate.open.notified();
            self.gate.waiting.fetch_add(1, Ordering::SeqCst);
            opened.await;
        }
        self.inner.fetch(d).await
    }
    async fn resolve(&self, r: &str) -> Result<Descriptor> {
        self.resolves.fetch_add(1, Ordering::SeqCst);
        self.inner.resolve(r).await
    }
    async fn referrers(&self, s: &Descriptor) -> Result<Vec<Descriptor>> {
        self.inner.referrers(s).await
    }
    fn capabilities(&self) -> Capabilities<'_> {
        // Lists names only, as a registry does: every tag is resolved.
        Capabilities::default().with_list_tags(self)
    }
}

#[async_trait]
impl ListTags for CountedStore {
    async fn list_tags(&self) -> Result<Vec<String>> {
        self.inner.list_tags().await
    }
}

fn entry(src: Arc<dyn Catalog>, dst: Arc<dyn Catalog>, chain: MountChain) -> SyncEntry {
    SyncEntry::new(SyncSource::Catalog {
        source: src,
        source_prefix: "team/".into(),
        destination: dst,
        destination_prefix: "mirror/".into(),
    })
    .with_copy(CopyOptions::default().with_chain(chain))
}

fn outcomes(report: &SyncReport, outcome: Outcome) -> Vec<String> {
    let mut v: Vec<String> = report
        .images
        .iter()
        .filter(|i| i.outcome == outcome)
        .map(|i| format!("{}:{}", i.repository, i.tag.as_deref().unwrap_or("")))
        .collect();
    v.sort();
    v
}

/// Three repositories of two tags; every image shares `base`, the tags of a repository
/// share a layer of their own.
async fn corpus(base: &Bytes) -> Arc<MemoryCatalog> {
    let src = Arc::new(MemoryCatalog::new("src"));
    for repo in ["a", "b", "c"] {
        let store = src.store(&format!("team/{repo}"));
        let shared = random_bytes(3000);
        for tag in ["v1.0.0", "v1.1.0"] {
            let own = random_bytes(500);
            tagged_image(&store, tag, &[base.clone(), shared.clone(), own]).await;
        }
    }
    // Outside the prefix: never listed.
    tagged_image(&src.store("other/x"), "v1", std::slice::from_ref(base)).await;
    src
}

#[tokio::test]
async fn a_catalog_is_mirrored_each_blob_read_once_and_a_rerun_changes_nothing() {
    let base = random_bytes(20_000);
    let memory = corpus(&base).await;
    let src = Counting::new(memory.clone());
    let dst = Arc::new(MemoryCatalog::new("dst"));
    let mount = Arc::new(CatalogMount {
        catalog: dst.clone(),
        mounts: AtomicUsize::new(0),
    });
    let mut chain = MountChain::new();
    chain.push(mount.clone());
    let options = SyncOptions::default().with_images(6);
    let report = sync(
        vec![entry(src.clone(), dst.clone(), chain.clone())],
        options.clone(),
    )
    .await;
    assert!(report.complete(), "{report:#?}");
    assert_eq!(
        outcomes(&report, Outcome::Synced),
        [
            "team/a:v1.0.0",
            "team/a:v1.1.0",
            "team/b:v1.0.0",
            "team/b:v1.1.0",
            "team/c:v1.0.0",
            "team/c:v1.1.0"
        ]
    );
    assert_eq!(report.totals.repositories, 3);
    assert_eq!(dst.names(), ["mirror/a", "mirror/b", "mirror/c"]);
    // The base layer, needed by six images in three repositories, was read once; the other
    // two repositories got it by the mount.
    let base_digest = ferry_core::sha256(&base).to_string();
    assert_eq!(src.fetches_of(&base_digest), 1, "{:?}", src.fetches);
    assert!(mount.mounts.load(Ordering::SeqCst) >= 2);
    assert!(report.totals.transfers.waited + report.totals.mounted as u64 >= 2);
    for (_, count) in src.fetches.lock().unwrap().iter() {
        assert_eq!(*count, 1, "every node is read from the source once");
    }
    for repo in ["a", "b", "c"] {
        let mirrored = dst.get(&format!("mirror/{repo}")).unwrap();
        let source = memory.get(&format!("team/{repo}")).unwrap();
        for tag in ["v1.0.0", "v1.1.0"] {
            assert_eq!(
                mirrored.resolve(tag).await.unwrap().digest(),
                source.resolve(tag).await.unwrap().digest()
            );
        }
    }

    // Nothing changed: every tag compared, nothing fetched.
    let fetched_before: usize = src.fetches.lock().unwrap().values().sum();
    let report = sync(vec![entry(src.clone(), dst.clone(), chain)], options).await;
    assert!(report.complete());
    assert_eq!(outcomes(&report, Outcome::Unchanged).len(), 6);
    assert_eq!(report.totals.bytes, 0);
    let fetched_after: usize = src.fetches.lock().unwrap().values().sum();
    assert_eq!(fetched_before, fetched_after);
}

#[tokio::test]
async fn two_images_needing_one_blob_at_once_wait_for_one_transfer() {
    let base = random_bytes(50_000);
    let memory = Arc::new(MemoryCatalog::new("src"));
    for repo in ["a", "b", "c", "d"] {
        tagged_image(
            &memory.store(&format!("team/{repo}")),
            "v1",
            std::slice::from_ref(&base),
        )
        .await;
    }
    let src = Counting::new(memory);
    let base_digest = ferry_core::sha256(&base).to_string();
    // The first fetch of the base layer is held until every image is waiting on it.
    *src.gate.held.lock().unwrap() = Some(base_digest.clone());
    let dst = Arc::new(MemoryCatalog::new("dst"));
    let mount = Arc::new(CatalogMount {
        catalog: dst.clone(),
        mounts: AtomicUsize::new(0),
    });
    let mut chain = MountChain::new();
    chain.push(mount.clone());
    let transfers = Arc::new(BlobTransfers::new());
    let options = SyncOptions::default()
        .with_images(4)
        .with_transfers(transfers.clone());
    let run = tokio::spawn(sync(vec![entry(src.clone(), dst.clone(), chain)], options));
    // Wait (bounded) until the leader holds the fetch and three images wait for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while (src.gate.waiting.load(Ordering::SeqCst) < 1 || transfers.stats().waited < 3)
        && std::time::Instant::now() < deadline
    {
        tokio::task::yield_now().await;
    }
    assert_eq!(transfers.stats().waited, 3, "three followers wait");
    *src.gate.held.lock().unwrap() = None;
    src.gate.open.notify_waiters();
    let report = run.await.unwrap();
    assert!(report.complete(), "{report:#?}");
    assert_eq!(src.fetches_of(&base_digest), 1);
    assert_eq!(mount.mounts.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn filters_select_tags_and_name_why_others_were_left() {
    let src = Arc::new(MemoryCatalog::new("src"));
    let store = src.store("team/app");
    for tag in [
        "v1.0.0",
        "v1.2.0",
        "v1.10.0",
        "v2.0.0",
        "v2.1.0-rc.1",
        "latest",
        "nightly",
        "1.3.0",
    ] {
        tagged_image(&store, tag, &[random_bytes(100)]).await;
    }
    let subject = store.resolve("v1.0.0").await.unwrap();
    let referrers_tag = format!("sha256-{}", subject.digest().digest());
    store.tag(&subject, &referrers_tag).await.unwrap();
    let dst = Arc::new(MemoryCatalog::new("dst"));
    let filter = TagFilter::new()
        .tags(r"v?[0-9.]+.*")
        .unwrap()
        .exclude(r".*-rc.*")
        .unwrap()
        .semver(">=1.2")
        .unwrap()
        .latest(3);
    let report = sync(
        vec![entry(src, dst.clone(), MountChain::new()).with_filter(filter)],
        SyncOptions::default(),
    )
    .await;
    assert!(report.complete(), "{report:#?}");
    assert_eq!(
        outcomes(&report, Outcome::Synced),
        ["team/app:1.3.0", "team/app:v1.10.0", "team/app:v2.0.0"]
    );
    let why: HashMap<String, FilteredBy> = report
        .images
        .iter()
        .filter_map(|i| Some((i.tag.clone()?, i.filtered_by?)))
        .collect();
    assert_eq!(why["latest"], FilteredBy::Tags);
    assert_eq!(why["nightly"], FilteredBy::Tags);
    assert_eq!(why["v2.1.0-rc.1"], FilteredBy::ExcludeTags);
    assert_eq!(why["v1.0.0"], FilteredBy::Semver);
    assert_eq!(why["v1.2.0"], FilteredBy::Latest);
    assert_eq!(why[&referrers_tag], FilteredBy::Referrers);
    assert!(TagFilter::new().tags("(").is_err());
    assert!(TagFilter::new().semver("not a range").is_err());
}

#[tokio::test]
async fn immutable_tags_present_at_the_destination_are_not_resolved() {
    let memory = Arc::new(MemoryCatalog::new("src"));
    let store = memory.store("team/app");
    for tag in ["1.0.0", "1.1.0", "latest"] {
        tagged_image(&store, tag, &[random_bytes(100)]).await;
    }
    let src = Counting::new(memory);
    let dst = Arc::new(MemoryCatalog::new("dst"));
    let immutable = TagPatterns::new().with(r"[0-9]+\.[0-9]+\.[0-9]+").unwrap();
    let first = sync(
        vec![entry(src.clone(), dst.clone(), MountChain::new()).with_immutable(immutable.clone())],
        SyncOptions::default(),
    )
    .await;
    assert_eq!(first.totals.synced, 3);
    src.resolves.store(0, Ordering::SeqCst);
    let again = sync(
        vec![entry(src.clone(), dst, MountChain::new()).with_immutable(immutable)],
        SyncOptions::default(),
    )
    .await;
    assert_eq!(again.totals.unchanged, 3);
    // Only `latest` was asked about.
    assert_eq!(src.resolves.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_moved_tag_copies_only_its_new_content() {
    let base = random_bytes(10_000);
    let memory = Arc::new(MemoryCatalog::new("src"));
    let store = memory.store("team/app");
    tagged_image(&store, "v1", std::slice::from_ref(&base)).await;
    tagged_image(&store, "v2", std::slice::from_ref(&base)).await;
    let dst = Arc::new(MemoryCatalog::new("dst"));
    let report = sync(
        vec![entry(memory.clone(), dst.clone(), MountChain::new())],
        SyncOptions::default(),
    )
    .await;
    assert_eq!(report.totals.synced, 2);
    let new_layer = random_bytes(777);
    let moved = tagged_image(&store, "v2", &[base.clone(), new_layer]).await;
    let report = sync(
        vec![entry(memory.clone(), dst.clone(), MountChain::new())],
        SyncOptions::default(),
    )
    .await;
    assert_eq!(outcomes(&report, Outcome::Unchanged), ["team/app:v1"]);
    let synced: Vec<_> = report
        .images
        .iter()
        .filter(|i| i.outcome == Outcome::Synced)
        .collect();
    assert_eq!(synced.len(), 1);
    let image = synced[0];
    assert_eq!(image.digest.as_ref(), Some(moved.digest()));
    assert!(image.previous.is_some() && image.previous != image.digest);
    // The new layer, the new config and the manifest; the base was there.
    assert_eq!(image.copied, 3, "{image:#?}");
    assert_eq!(image.existed, 1);
    assert_eq!(
        dst.get("mirror/app")
            .unwrap()
            .resolve("v2")
            .await
            .unwrap()
            .digest(),
        moved.digest()
    );
}

#[tokio::test]
async fn a_broken_image_fails_alone_and_fail_fast_stops_the_rest() {
    let memory = Arc::new(MemoryCatalog::new("src"));
    let store = memory.store("team/app");
    for tag in ["a", "b", "c", "d"] {
        tagged_image(&store, tag, &[random_bytes(100)]).await;
    }
    // `broken` names a layer the source does not have.
    let missing = Descriptor::new(LAYER.into(), 5, ferry_core::sha256(b"gone!"));
    let config = store.insert(CONFIG, Bytes::from_static(b"{}"));
    let broken = put_json(
        &store,
        OCI_MANIFEST,
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [missing]}),
    );
    store.tag(&broken, "broken").await.unwrap();
    let dst = Arc::new(MemoryCatalog::new("dst"));
    let report = sync(
        vec![entry(memory.clone(), dst.clone(), MountChain::new())],
        SyncOptions::default(),
    )
    .await;
    assert!(!report.complete());
    assert_eq!(report.totals.synced, 4);
    let failed: Vec<_> = report.failures().collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].tag.as_deref(), Some("broken"));
    assert!(
        failed[0]
            .reason
            .as_deref()
            .unwrap()
            .contains(&missing.digest().to_string()),
        "{:?}",
        failed[0].reason
    );
    // The failed image left no tag behind.
    assert!(
        dst.get("mirror/app")
            .unwrap()
            .resolve("broken")
            .await
            .is_err()
    );

    let dst = Arc::new(MemoryCatalog::new("dst2"));
    let report = sync(
        vec![entry(memory, dst, MountChain::new())],
        SyncOptions::default()
            .with_images(1)
            .with_checks(1)
            .with_fail_fast(true),
    )
    .await;
    assert!(report.interrupted);
    // `broken` sorts between `b` and `c`: the images after it never started.
    assert_eq!(report.totals.failed, 1);
    assert!(report.totals.synced < 4, "{report:#?}");
    assert!(report.totals.not_started > 0);
}

async fn prune_fixture() -> (Arc<MemoryCatalog>, Arc<MemoryCatalog>, String) {
    let src = Arc::new(MemoryCatalog::new("src"));
    let dst = Arc::new(MemoryCatalog::new("dst"));
    for tag in ["v1", "v2"] {
        tagged_image(&src.store("team/app"), tag, &[random_bytes(100)]).await;
    }
    let mirror = dst.store("mirror/app");
    for tag in ["v1", "v2", "old1", "old2", "keep-me"] {
        tagged_image(&mirror, tag, &[random_bytes(100)]).await;
    }
    // A referrers tag whose subject is there, and one whose subject is gone.
    let subject = mirror.resolve("v1").await.unwrap();
    let live = format!("sha256-{}", subject.digest().digest());
    mirror.tag(&subject, &live).await.unwrap();
    let dead = format!("sha256-{}", "0".repeat(64));
    mirror.tag(&subject, &dead).await.unwrap();
    (src, dst, live)
}

#[tokio::test]
async fn prune_deletes_managed_tags_the_source_lost_but_keeps_live_referrers_tags() {
    let (src, dst, live) = prune_fixture().await;
    let filter = TagFilter::new().exclude("keep-.*").unwrap();
    let report = sync(
        vec![
            entry(src, dst.clone(), MountChain::new())
                .with_filter(filter)
                .with_prune(10),
        ],
        SyncOptions::default(),
    )
    .await;
    assert!(report.complete(), "{report:#?}");
    let dead = format!("sha256-{}", "0".repeat(64));
    assert_eq!(
        outcomes(&report, Outcome::Pruned),
        [
            "team/app:old1".to_string(),
            "team/app:old2".to_string(),
            format!("team/app:{dead}")
        ]
    );
    let mut left = dst.get("mirror/app").unwrap().list_tags().await.unwrap();
    left.retain(|t| !t.starts_with("sha256-"));
    assert_eq!(left, ["keep-me", "v1", "v2"]);
    assert!(
        dst.get("mirror/app").unwrap().resolve(&live).await.is_ok(),
        "the referrers tag of a live subject is kept"
    );
}

#[tokio::test]
async fn prune_refuses_beyond_its_maximum_and_after_an_incomplete_listing() {
    let (src, dst, _) = prune_fixture().await;
    let report = sync(
        vec![entry(src.clone(), dst.clone(), MountChain::new()).with_prune(2)],
        SyncOptions::default(),
    )
    .await;
    assert!(!report.complete());
    let failure = report.failures().next().unwrap();
    assert!(
        failure
            .reason
            .as_deref()
            .unwrap()
            .contains("more than the 2 that pruning may delete"),
        "{failure:#?}"
    );
    assert_eq!(report.totals.pruned, 0);
    assert_eq!(
        dst.get("mirror/app")
            .unwrap()
            .list_tags()
            .await
            .unwrap()
            .len(),
        7
    );

    // A catalog listing that broke after its first name: nothing is pruned anywhere.
    tagged_image(&src.store("team/zzz"), "v1", &[random_bytes(10)]).await;
    let mut counting = Counting::new(src);
    Arc::get_mut(&mut counting).unwrap().fail_listing_after = Some(1);
    let report = sync(
        vec![entry(counting, dst.clone(), MountChain::new()).with_prune(10)],
        SyncOptions::default(),
    )
    .await;
    assert!(!report.complete());
    assert_eq!(report.totals.pruned, 0);
    assert!(!report.prune_skipped.is_empty());
    assert_eq!(
        dst.get("mirror/app")
            .unwrap()
            .list_tags()
            .await
            .unwrap()
            .len(),
        7
    );
}

#[tokio::test]
async fn shards_split_repositories_by_a_stable_hash_and_cover_them_once() {
    // The FNV-1a test vectors.
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    assert_eq!(shard_of("/team/app/", 7), shard_of("team/app", 7));
    assert!("3/3".parse::<Shard>().is_err());
    assert!("1/0".parse::<Shard>().is_err());
    assert_eq!("2/5".parse::<Shard>().unwrap(), Shard::new(2, 5).unwrap());

    let src = Arc::new(MemoryCatalog::new("src"));
    for i in 0..12 {
        tagged_image(&src.store(&format!("team/r{i}")), "v1", &[random_bytes(50)]).await;
    }
    let dst = Arc::new(MemoryCatalog::new("dst"));
    let mut seen = Vec::new();
    for k in 0..3 {
        let report = sync(
            vec![entry(src.clone(), dst.clone(), MountChain::new())],
            SyncOptions::default().with_shard(Some(Shard::new(k, 3).unwrap())),
        )
        .await;
        for image in &report.images {
            assert_eq!(shard_of(&image.repository, 3), k);
            seen.push(image.repository.clone());
        }
    }
    seen.sort();
    let all: Vec<String> = (0..12).map(|i| format!("team/r{i}")).collect();
    let mut all = all;
    all.sort();
    assert_eq!(seen, all, "every repository exactly once");
}

#[tokio::test(start_paused = true)]
async fn a_stop_starts_no_new_image_and_the_grace_period_ends_the_ones_in_flight() {
    let memory = Arc::new(MemoryCatalog::new("src"));
    let held = random_bytes(1000);
    tagged_image(&memory.store("team/a"), "v1", std::slice::from_ref(&held)).await;
    for repo in ["b", "c", "d"] {
        tagged_image(
            &memory.store(&format!("team/{repo}")),
            "v1",
            &[random_bytes(10)],
        )
        .await;
    }
    let src = Counting::new(memory);
    *src.gate.held.lock().unwrap() = Some(ferry_core::sha256(&held).to_string());
    let dst = Arc::new(MemoryCatalog::new("dst"));
    let stop = Stop::new();
    let options = SyncOptions::default()
        .with_images(1)
        .with_checks(1)
        .with_listings(1)
        .with_grace(Duration::from_secs(25))
        .with_stop(stop.clone());
    let run = tokio::spawn(sync(
        vec![entry(src.clone(), dst.clone(), MountChain::new())],
        options,
    ));
    while src.gate.waiting.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    // `team/a:v1` is in flight, held on its layer.
    stop.drain();
    tokio::time::sleep(Duration::from_secs(24)).await;
    assert!(
        !run.is_finished(),
        "the image in flight has its grace period"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = run.await.unwrap();
    assert!(report.interrupted);
    assert_eq!(outcomes(&report, Outcome::Interrupted), ["team/a:v1"]);
    assert_eq!(report.totals.synced, 0, "no image started after the stop");
    assert!(
        dst.get("mirror/a").unwrap().resolve("v1").await.is_err(),
        "no tag"
    );

    // A second request stops at once.
    let stop = Stop::new();
    let src = Counting::new(Arc::new(MemoryCatalog::new("src2")));
    let store = src.inner.store("team/a");
    tagged_image(&store, "v1", std::slice::from_ref(&held)).await;
    *src.gate.held.lock().unwrap() = Some(ferry_core::sha256(&held).to_string());
    let run = tokio::spawn(sync(
        vec![entry(
            src.clone(),
            Arc::new(MemoryCatalog::new("dst2")),
            MountChain::new(),
        )],
        SyncOptions::default().with_stop(stop.clone()),
    ));
    while src.gate.waiting.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    assert_eq!(stop.escalate(), ferry_sync::StopLevel::Drain);
    assert_eq!(stop.escalate(), ferry_sync::StopLevel::Abort);
    let report = run.await.unwrap();
    assert_eq!(report.totals.interrupted, 1);
}
