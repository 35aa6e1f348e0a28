//! The copy engine: order, sharing, concurrency, limits, verification, platforms, dry runs,
//! referrers, and how it uses the mount chain.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use ferry_conformance::random_bytes;
use ferry_core::model::{OCI_INDEX, OCI_MANIFEST};
use ferry_core::{
    Action, AttemptOutcome, ByteStream, CopyEvent, CopyOptions, Descriptor, Error, MemoryStore,
    MountChain, MountMethod, MountOutcome, MountRequest, MountStrategy, PlatformFilter,
    PreparedUpload, ReadStore, StoreInfo, WriteStore, copy, copy_graph,
};
use serde_json::json;

use crate::fixtures::*;

fn opts() -> CopyOptions {
    CopyOptions::default()
}

#[tokio::test]
async fn copies_an_image_children_first_and_tags_it() {
    let src = Arc::new(MemoryStore::new("src"));
    let layers = [layer(&src, 1000), layer(&src, 2000)];
    let (manifest, config) = image(&src, &layers);
    src.tag(&manifest, "v1").await.unwrap();
    let dst = Watched::new("dst");
    let report = copy(src.clone(), "v1", dst.clone(), Some("v2"), &opts())
        .await
        .unwrap();

    assert_eq!(report.nodes.len(), 4);
    assert_eq!(report.count(Action::Copied), 4);
    assert_eq!(
        report.nodes.last().unwrap().descriptor.digest(),
        manifest.digest(),
        "root is last"
    );
    let pushed = dst.pushed();
    assert_eq!(pushed.last().unwrap(), &manifest.digest().to_string());
    assert!(pushed.contains(&config.digest().to_string()));
    assert_eq!(
        dst.inner.resolve("v2").await.unwrap().digest(),
        manifest.digest()
    );
    assert_eq!(report.bytes, 1000 + 2000 + config.size() + manifest.size());
}

#[tokio::test]
async fn shared_nodes_are_copied_once_and_manifests_fetched_once() {
    let src = Watched::new("src");
    let shared = layer(&src.inner, 5000);
    let mut children = Vec::new();
    for i in 0..5 {
        let own = layer(&src.inner, 100 + i);
        let (m, _) = image(&src.inner, &[shared.clone(), own]);
        children.push(m);
    }
    let pairs: Vec<(Descriptor, &str)> = children.iter().map(|m| (m.clone(), "amd64")).collect();
    let idx = index(&src.inner, &pairs);
    let dst = Watched::new("dst");
    let report = copy_graph(src.clone(), dst.clone(), idx.clone(), &opts())
        .await
        .unwrap();

    assert_eq!(
        dst.pushed()
            .iter()
            .filter(|d| **d == shared.digest().to_string())
            .count(),
        1
    );
    assert_eq!(src.fetch_count(&shared), 1, "shared layer streamed once");
    assert_eq!(src.fetch_count(&idx), 1, "index fetched once");
    for m in &children {
        assert_eq!(src.fetch_count(m), 1, "each manifest fetched once");
    }
    // 1 index + 5 manifests + 5 configs + 5 own layers + 1 shared layer.
    assert_eq!(report.nodes.len(), 17);
}

#[tokio::test]
async fn an_index_of_50_manifests_sharing_layers_copies_at_concurrency_1() {
    let src = Arc::new(MemoryStore::new("src"));
    let shared: Vec<Descriptor> = (0..3).map(|_| layer(&src, 300)).collect();
    let pairs: Vec<(Descriptor, &str)> = (0..50)
        .map(|i| {
            let own = layer(&src, 10 + i);
            let mut ls = shared.clone();
            ls.push(own);
            (image(&src, &ls).0, "amd64")
        })
        .collect();
    let idx = index(&src, &pairs);
    let dst = Watched::new("dst");
    let options = opts().with_concurrency(1);
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        copy_graph(src, dst.clone(), idx.clone(), &options),
    )
    .await
    .expect("the copy must not deadlock")
    .unwrap();
    assert_eq!(report.nodes.len(), 1 + 50 * 3 + 3);
    assert!(dst.inner.exists(&idx).await.unwrap());
}

#[tokio::test]
async fn subgraphs_already_present_are_skipped() {
    let src = Watched::new("src");
    let l1 = layer(&src.inner, 100);
    let (m1, _) = image(&src.inner, &[l1]);
    let l2 = layer(&src.inner, 100);
    let (m2, _) = image(&src.inner, std::slice::from_ref(&l2));
    let idx = index(&src.inner, &[(m1.clone(), "amd64"), (m2.clone(), "arm64")]);
    let dst = Watched::new("dst");
    // The destination already has m1's whole graph.
    copy_graph(src.clone(), dst.clone(), m1.clone(), &opts())
        .await
        .unwrap();
    let before = src.fetch_count(&m1);
    let report = copy_graph(src.clone(), dst.clone(), idx, &opts())
        .await
        .unwrap();
    assert_eq!(report.node(m1.digest()).unwrap().action, Action::Exists);
    assert_eq!(
        src.fetch_count(&m1),
        before,
        "a present manifest is not fetched again"
    );
    assert_eq!(report.node(l2.digest()).unwrap().action, Action::Copied);
    assert_eq!(
        report.nodes.len(),
        1 + 1 + 3,
        "m1's children are not visited"
    );
}

#[tokio::test]
async fn a_blob_whose_bytes_do_not_match_fails_the_copy_and_nothing_is_tagged() {
    let src = Arc::new(MemoryStore::new("src"));
    let good = layer(&src, 100);
    let bad = Descriptor::new(
        LAYER.into(),
        64,
        ferry_core::sha256(b"what the manifest promised"),
    );
    src.insert_unverified(&bad, random_bytes(64));
    let (m, _) = image(&src, &[good, bad.clone()]);
    src.tag(&m, "v1").await.unwrap();
    let dst = Arc::new(MemoryStore::new("dst"));
    let err = copy(src, "v1", dst.clone(), Some("v1"), &opts())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(
        err.to_string().contains(&bad.digest().to_string()),
        "the error names the digest: {err}"
    );
    assert!(
        !dst.exists(&bad).await.unwrap(),
        "the corrupt blob is not committed"
    );
    assert!(!dst.exists(&m).await.unwrap(), "the parent is not pushed");
    assert!(dst.resolve("v1").await.is_err(), "nothing is tagged");
}

#[tokio::test]
async fn manifests_over_the_limit_are_refused_before_fetching() {
    let src = Watched::new("src");
    let l = layer(&src.inner, 10);
    let (m, _) = image(&src.inner, &[l]);
    let dst = Arc::new(MemoryStore::new("dst"));
    let options = opts().with_manifest_limit(100);
    let err = copy_graph(src.clone(), dst, m.clone(), &options)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { limit: 100, .. }), "{err}");
    assert_eq!(src.fetch_count(&m), 0);
}

#[tokio::test]
async fn malformed_manifests_are_clean_errors() {
    let src = Arc::new(MemoryStore::new("src"));
    let m = src.insert(OCI_MANIFEST, Bytes::from_static(b"{not json"));
    let err = copy_graph(src.clone(), Arc::new(MemoryStore::new("d")), m, &opts())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidManifest { .. }), "{err}");
    let idx = src.insert(OCI_INDEX, Bytes::from_static(b"{\"schemaVersion\":2}"));
    let err = copy_graph(src, Arc::new(MemoryStore::new("d")), idx, &opts())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("without `manifests`"), "{err}");
}

#[tokio::test]
async fn an_index_that_lists_itself_fails_cleanly() {
    // An index cannot honestly contain its own digest: whatever bytes a source serves for
    // it, verification refuses them before they are parsed, so the walk cannot loop. The
    // engine also tracks the path it walks and reports a cycle should one ever get through.
    let src = Arc::new(MemoryStore::new("src"));
    let template = |d: &Descriptor| {
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [d]}))
            .unwrap()
    };
    let placeholder = Descriptor::new(OCI_INDEX.into(), 0, ferry_core::sha256(b""));
    let first = template(&placeholder);
    let claimed = Descriptor::new(
        OCI_INDEX.into(),
        first.len() as u64 + 2,
        ferry_core::sha256(&first),
    );
    let body = template(&claimed);
    let this = Descriptor::new(
        OCI_INDEX.into(),
        body.len() as u64,
        claimed.digest().clone(),
    );
    src.insert_unverified(&this, body);
    let dst = Arc::new(MemoryStore::new("d"));
    let result = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        copy_graph(src, dst.clone(), this.clone(), &opts()),
    )
    .await
    .expect("no hang");
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            Error::DigestMismatch { .. } | Error::SizeMismatch { .. } | Error::Cycle { .. }
        ),
        "{err}"
    );
    assert!(dst.is_empty());
}

#[tokio::test]
async fn platform_selection_copies_one_manifest_and_tags_it() {
    let src = Arc::new(MemoryStore::new("src"));
    let (amd, _) = image(&src, &[layer(&src, 10)]);
    let (arm, _) = image(&src, &[layer(&src, 20)]);
    let idx = index(&src, &[(amd.clone(), "amd64"), (arm.clone(), "arm64")]);
    src.tag(&idx, "multi").await.unwrap();
    let dst = Arc::new(MemoryStore::new("dst"));
    let options = opts().with_platform(Some("linux/arm64".parse().unwrap()));
    let report = copy(src.clone(), "multi", dst.clone(), Some("arm"), &options)
        .await
        .unwrap();
    assert_eq!(report.root.digest(), arm.digest());
    assert!(dst.exists(&arm).await.unwrap());
    assert!(!dst.exists(&amd).await.unwrap());
    assert!(!dst.exists(&idx).await.unwrap());
    assert_eq!(dst.resolve("arm").await.unwrap().digest(), arm.digest());

    // Without a platform the whole index goes.
    let dst2 = Arc::new(MemoryStore::new("dst2"));
    copy(src.clone(), "multi", dst2.clone(), Some("multi"), &opts())
        .await
        .unwrap();
    assert!(dst2.exists(&amd).await.unwrap() && dst2.exists(&arm).await.unwrap());

    let options = opts().with_platform(Some("linux/s390x".parse().unwrap()));
    let err = copy(src, "multi", dst2, None, &options).await.unwrap_err();
    assert!(
        err.to_string().contains("linux/amd64, linux/arm64"),
        "{err}"
    );
    assert!("linux".parse::<PlatformFilter>().is_err());
}

/// An index entry for `descriptor`, naming `platform` (`os/arch[/variant]`) when given.
fn entry(descriptor: &Descriptor, platform: Option<&str>) -> serde_json::Value {
    let mut v = serde_json::to_value(descriptor).unwrap();
    if let Some(p) = platform {
        let parts: Vec<&str> = p.split('/').collect();
        v["platform"] = json!({"os": parts[0], "architecture": parts[1]});
        if let Some(variant) = parts.get(2) {
            v["platform"]["variant"] = json!(variant);
        }
    }
    v
}

fn index_of(store: &MemoryStore, entries: Vec<serde_json::Value>) -> Descriptor {
    put_json(
        store,
        OCI_INDEX,
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}),
    )
}

async fn select(src: &MemoryStore, root: &Descriptor, platform: &str) -> Result<Descriptor, Error> {
    ferry_core::engine::select_platform(
        src,
        root,
        &platform.parse().unwrap(),
        ferry_core::model::DEFAULT_MANIFEST_LIMIT,
    )
    .await
}

#[tokio::test]
async fn platform_selection_descends_into_indexes_of_indexes_up_to_a_depth() {
    use ferry_core::engine::MAX_INDEX_DEPTH;
    let src = Arc::new(MemoryStore::new("src"));
    let (amd, _) = image(&src, &[layer(&src, 10)]);
    let (arm, _) = image(&src, &[layer(&src, 11)]);
    let (v7, _) = image(&src, &[layer(&src, 12)]);
    let (s390x, _) = image(&src, &[layer(&src, 13)]);
    // A child index whose entry names another platform is not searched; one listed twice is
    // searched once; an index whose entry names the platform is picked when nothing inside
    // matches.
    let amd_index = index_of(&src, vec![entry(&amd, Some("linux/amd64"))]);
    let hidden = index_of(&src, vec![entry(&v7, Some("linux/arm/v7"))]);
    let inner = index_of(&src, vec![entry(&arm, Some("linux/arm64"))]);
    let middle = index_of(&src, vec![entry(&inner, None)]);
    let unlabelled_s390x = index_of(&src, vec![entry(&s390x, None)]);
    let root = index_of(
        &src,
        vec![
            entry(&amd_index, None),
            entry(&amd_index, None),
            entry(&hidden, Some("linux/ppc64le")),
            entry(&middle, None),
            entry(&unlabelled_s390x, Some("linux/s390x")),
        ],
    );
    src.tag(&root, "nested").await.unwrap();
    let picked = |d: Result<Descriptor, Error>| d.unwrap().digest().clone();
    assert_eq!(
        picked(select(&src, &root, "linux/amd64").await),
        *amd.digest()
    );
    assert_eq!(
        picked(select(&src, &root, "linux/arm64").await),
        *arm.digest()
    );
    assert_eq!(
        picked(select(&src, &root, "linux/s390x").await),
        *unlabelled_s390x.digest()
    );
    let err = select(&src, &root, "linux/arm/v7").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(
        err.to_string().contains(
            "the index and the 3 indexes below it have: linux/amd64, linux/ppc64le, \
             linux/arm64, linux/s390x"
        ),
        "{err}"
    );

    // Through copy: the picked manifest is copied alone and tagged.
    let dst = Arc::new(MemoryStore::new("dst"));
    let options = opts().with_platform(Some("linux/arm64".parse().unwrap()));
    let report = copy(src.clone(), "nested", dst.clone(), Some("arm"), &options)
        .await
        .unwrap();
    assert_eq!(report.root.digest(), arm.digest());
    assert_eq!(dst.resolve("arm").await.unwrap().digest(), arm.digest());
    for other in [&root, &middle, &inner, &amd] {
        assert!(!dst.exists(other).await.unwrap());
    }

    // A manifest at the deepest searched level is found; one a level further is not, and the
    // error says why.
    let mut deep = index_of(&src, vec![entry(&v7, Some("linux/arm/v7"))]);
    for _ in 1..MAX_INDEX_DEPTH {
        deep = index_of(&src, vec![entry(&deep, None)]);
    }
    assert_eq!(
        picked(select(&src, &deep, "linux/arm/v7").await),
        *v7.digest()
    );
    let deeper = index_of(&src, vec![entry(&deep, None)]);
    let err = select(&src, &deeper, "linux/arm/v7").await.unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains(&format!(
            "no entry of the index or of the {} indexes below it names a platform; an index \
             nested deeper than {MAX_INDEX_DEPTH} levels was not searched",
            MAX_INDEX_DEPTH - 1
        )),
        "{shown}"
    );
}

#[tokio::test]
async fn a_dry_run_writes_nothing_and_reports_the_plan() {
    let src = Arc::new(MemoryStore::new("src"));
    let (m, _) = image(&src, &[layer(&src, 10), layer(&src, 20)]);
    src.tag(&m, "v1").await.unwrap();
    let dst = Arc::new(MemoryStore::new("dst"));
    let options = opts().with_dry_run(true);
    let report = copy(src, "v1", dst.clone(), Some("v1"), &options)
        .await
        .unwrap();
    assert!(report.dry_run);
    assert_eq!(report.count(Action::WouldCopy), 4);
    let plan = report.plan.expect("a dry run reports its totals");
    assert_eq!(
        (plan.copy_blobs, plan.copy_bytes),
        (3, 30 + config_size(&report))
    );
    assert_eq!(
        (plan.mount_blobs, plan.try_blobs, plan.present_blobs),
        (0, 0, 0)
    );
    assert_eq!((plan.copy_manifests, plan.present_manifests), (1, 0));
    assert!(dst.is_empty());
    assert!(dst.resolve("v1").await.is_err());
}

/// The size of the config blob of a one-image report.
fn config_size(report: &ferry_core::CopyReport) -> u64 {
    report
        .nodes
        .iter()
        .find(|n| n.descriptor.media_type().to_string() == CONFIG)
        .unwrap()
        .descriptor
        .size()
}

/// A strategy that implements only `mount` (it writes through an API it cannot ask without
/// writing): its plan is the trait's default, "would try", and the dry run says so for every
/// blob the destination lacks, never calling `mount`.
#[tokio::test]
async fn a_dry_run_says_would_try_for_a_strategy_that_cannot_tell() {
    let src = Arc::new(MemoryStore::new("src"));
    let present = layer(&src, 10);
    let (m, _) = image(&src, &[present.clone(), layer(&src, 20)]);
    src.tag(&m, "v1").await.unwrap();
    let dst = Arc::new(MemoryStore::new("dst"));
    let bytes = ferry_conformance::read_all(src.as_ref(), &present).await;
    dst.push(&present, ferry_core::bytes_stream(bytes))
        .await
        .unwrap();
    let teleport = Arc::new(Teleport::default());
    let options = opts()
        .with_chain(MountChain::new().with(teleport.clone()))
        .with_dry_run(true);
    let report = copy(src, "v1", dst.clone(), Some("v1"), &options)
        .await
        .unwrap();
    assert_eq!(
        teleport.calls.load(Ordering::SeqCst),
        0,
        "a plan never mounts"
    );
    assert_eq!(report.count(Action::WouldTry), 2, "{:#?}", report.nodes);
    assert_eq!(report.count(Action::Exists), 1);
    assert_eq!(report.count(Action::WouldCopy), 1, "the manifest");
    let tried = report
        .nodes
        .iter()
        .find(|n| n.action == Action::WouldTry)
        .unwrap();
    assert_eq!(
        tried.strategy.as_ref().map(|s| s.as_str()),
        Some("teleport")
    );
    assert_eq!(
        tried.reason.as_ref().map(ToString::to_string).as_deref(),
        Some("cannot tell without trying")
    );
    let plan = report.plan.unwrap();
    assert_eq!(
        (plan.try_blobs, plan.try_bytes),
        (2, 20 + config_size(&report))
    );
    assert_eq!((plan.copy_blobs, plan.present_blobs), (0, 1));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["plan"]["try_blobs"], 2);
    assert!(
        json["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["action"] == "would-try")
    );
}

#[tokio::test]
async fn foreign_layers_are_skipped() {
    let src = Arc::new(MemoryStore::new("src"));
    let foreign = Descriptor::new(
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip".into(),
        1234,
        ferry_core::sha256(b"not here"),
    );
    let (m, _) = image(&src, &[layer(&src, 10), foreign.clone()]);
    let dst = Watched::new("dst");
    let report = copy_graph(src, dst.clone(), m.clone(), &opts())
        .await
        .unwrap();
    assert_eq!(
        report.node(foreign.digest()).unwrap().action,
        Action::Skipped
    );
    assert!(dst.inner.exists(&m).await.unwrap());
}

#[tokio::test]
async fn referrers_are_copied_with_the_extended_copy() {
    let src = Arc::new(MemoryStore::new("src"));
    let (m, _) = image(&src, &[layer(&src, 10)]);
    let empty = src.insert(
        "application/vnd.oci.empty.v1+json",
        Bytes::from_static(b"{}"),
    );
    let sig_layer = src.insert(
        "application/vnd.dev.cosign.simplesigning.v1+json",
        random_bytes(50),
    );
    let sig = put_json(
        &src,
        OCI_MANIFEST,
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.signature",
               "config": empty, "layers": [sig_layer], "subject": m}),
    );
    // A referrer of the referrer.
    let sbom_sig = put_json(
        &src,
        OCI_MANIFEST,
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.signature",
               "config": empty, "layers": [], "subject": sig}),
    );
    src.tag(&m, "v1").await.unwrap();

    let dst = Arc::new(MemoryStore::new("dst"));
    copy(src.clone(), "v1", dst.clone(), Some("v1"), &opts())
        .await
        .unwrap();
    assert!(
        !dst.exists(&sig).await.unwrap(),
        "no referrers without the extended copy"
    );

    let dst = Watched::new("dst");
    let options = opts().with_referrers(true);
    copy(src, "v1", dst.clone(), Some("v1"), &options)
        .await
        .unwrap();
    assert!(dst.inner.exists(&sig).await.unwrap());
    assert!(dst.inner.exists(&sbom_sig).await.unwrap());
    let order = dst.pushed();
    let pos = |d: &Descriptor| {
        order
            .iter()
            .position(|x| *x == d.digest().to_string())
            .unwrap()
    };
    assert!(
        pos(&m) < pos(&sig) && pos(&sig) < pos(&sbom_sig),
        "subjects before referrers"
    );
}

#[tokio::test]
async fn events_report_every_node_and_the_bytes() {
    let src = Arc::new(MemoryStore::new("src"));
    let (m, _) = image(&src, &[layer(&src, 100_000)]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let options = opts().on_event(move |e: &CopyEvent| {
        let tag = match e {
            CopyEvent::Copying(_) => "copying".to_string(),
            CopyEvent::Bytes { done, total, .. } => format!("bytes {done}/{total}"),
            CopyEvent::Done(n) => n.action.verb().to_lowercase(),
            other => panic!("an event the test does not know: {other:?}"),
        };
        sink.lock().unwrap().push(tag);
    });
    copy_graph(src, Arc::new(MemoryStore::new("d")), m, &options)
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.iter().filter(|s| *s == "copied").count(), 3);
    assert_eq!(seen.iter().filter(|s| *s == "copying").count(), 3);
    assert!(seen.contains(&"bytes 100000/100000".to_string()));
}

/// A strategy that "mounts" by copying inside the process: it stands for any strategy that
/// brings the blob without the engine streaming it.
#[derive(Debug, Default)]
struct Teleport {
    calls: AtomicUsize,
}
impl std::fmt::Display for Teleport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Teleport")
    }
}
#[async_trait]
impl MountStrategy for Teleport {
    fn name(&self) -> &str {
        "teleport"
    }
    async fn mount(&self, r: &MountRequest<'_>) -> ferry_core::Result<MountOutcome> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let data = r.source.fetch(r.descriptor).await?;
        r.destination.push(r.descriptor, data).await?;
        Ok(MountOutcome::mounted(
            r.source.info(),
            MountMethod::other("teleport"),
        ))
    }
}

/// A strategy that always declines but leaves a prepared upload into the copy's destination,
/// as a registry does when it answers a mount with 202 and an open upload session. Like a
/// registry strategy, it knows its destinations by what they are ([`StoreInfo`]), not by
/// their type: it is given the stores it may prepare uploads into, and declines without one
/// for any other destination.
#[derive(Debug, Default)]
struct Prepares {
    destinations: Vec<Arc<dyn WriteStore>>,
    used: Arc<AtomicUsize>,
    cancelled: Arc<AtomicUsize>,
}
impl Prepares {
    /// Prepares uploads into `destination` when a copy goes there.
    fn into_store(destination: Arc<dyn WriteStore>) -> Self {
        Self {
            destinations: vec![destination],
            ..Self::default()
        }
    }
}
#[derive(Debug)]
struct Prepared {
    dst: Arc<dyn WriteStore>,
    used: Arc<AtomicUsize>,
    cancelled: Arc<AtomicUsize>,
}
impl std::fmt::Display for Prepares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Prepares")
    }
}
#[async_trait]
impl PreparedUpload for Prepared {
    async fn upload(self: Box<Self>, d: &Descriptor, data: ByteStream) -> ferry_core::Result<()> {
        self.used.fetch_add(1, Ordering::SeqCst);
        self.dst.push(d, data).await
    }
    async fn cancel(self: Box<Self>) -> ferry_core::Result<()> {
        self.cancelled.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}
#[async_trait]
impl MountStrategy for Prepares {
    fn name(&self) -> &str {
        "prepares"
    }
    async fn mount(&self, r: &MountRequest<'_>) -> ferry_core::Result<MountOutcome> {
        let destination = r.destination.info();
        let upload = self
            .destinations
            .iter()
            .find(|d| d.info() == destination)
            .map(|dst| {
                Box::new(Prepared {
                    dst: dst.clone(),
                    used: self.used.clone(),
                    cancelled: self.cancelled.clone(),
                }) as Box<dyn PreparedUpload>
            });
        Ok(match upload {
            Some(upload) => MountOutcome::declined_with_upload("202", upload),
            None => MountOutcome::declined("202"),
        })
    }
}

#[tokio::test(flavor = "current_thread")]
async fn mounted_blobs_are_reported_with_strategy_and_origin() {
    let src = Watched::new("src");
    let (m, _) = image(
        &src.inner,
        &[layer(&src.inner, 100), layer(&src.inner, 200)],
    );
    let dst = Arc::new(MemoryStore::new("dst"));
    let teleport = Arc::new(Teleport::default());
    let mut chain = MountChain::new();
    chain.push(teleport.clone());
    let options = opts().with_chain(chain);
    let report = copy_graph(src.clone(), dst.clone(), m.clone(), &options)
        .await
        .unwrap();
    assert_eq!(
        report.count(Action::Mounted),
        3,
        "config and layers mounted"
    );
    assert_eq!(report.count(Action::Copied), 1, "the manifest is copied");
    let node = report
        .nodes
        .iter()
        .find(|n| n.action == Action::Mounted)
        .unwrap();
    assert_eq!(node.strategy.as_ref().map(|s| s.as_str()), Some("teleport"));
    assert_eq!(
        node.from.as_ref().map(ToString::to_string).as_deref(),
        Some("src")
    );
    assert_eq!(node.method, Some(MountMethod::other("teleport")));
    assert_eq!(node.attempts[0].outcome, AttemptOutcome::Mounted);
    assert_eq!(
        node.bytes, 0,
        "a mounted blob streams nothing through the engine"
    );
    assert_eq!(report.chain, "MountChain[Teleport]");
    let json = serde_json::to_value(node).unwrap();
    assert_eq!(json["method"], "teleport");
    assert_eq!(json["attempts"][0]["outcome"], "mounted");
}

/// A strategy that brings the blob through this process from somewhere else (here: the
/// source, standing for an IPFS gateway), passing the bytes through the request's accounting.
#[derive(Debug, Default)]
struct Relay;
impl std::fmt::Display for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Relay")
    }
}
#[async_trait]
impl MountStrategy for Relay {
    fn name(&self) -> &str {
        "relay"
    }
    async fn mount(&self, r: &MountRequest<'_>) -> ferry_core::Result<MountOutcome> {
        let data = r.count_bytes(r.source.fetch(r.descriptor).await?);
        r.destination.push(r.descriptor, data).await?;
        Ok(MountOutcome::mounted(
            StoreInfo::new("memory", "", "elsewhere"),
            MountMethod::FetchedFromAddress,
        ))
    }
}

#[tokio::test(flavor = "current_thread")]
async fn bytes_a_strategy_moves_through_the_client_are_counted_and_shown() {
    let src = Arc::new(MemoryStore::new("src"));
    let l = layer(&src, 300_000);
    let (m, config) = image(&src, std::slice::from_ref(&l));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let watched = l.digest().clone();
    let options =
        opts()
            .with_chain(MountChain::new().with(Relay))
            .on_event(move |e: &CopyEvent| {
                let kind = match e {
                    CopyEvent::Copying(d) if d.digest() == &watched => "copying",
                    CopyEvent::Bytes { descriptor, .. } if descriptor.digest() == &watched => {
                        "bytes"
                    }
                    _ => return,
                };
                sink.lock().unwrap().push(kind);
            });
    let report = copy_graph(
        src.clone(),
        Arc::new(MemoryStore::new("dst")),
        m.clone(),
        &options,
    )
    .await
    .unwrap();
    let node = report.node(l.digest()).unwrap();
    assert_eq!(node.action, Action::Mounted);
    assert_eq!(node.method, Some(MountMethod::FetchedFromAddress));
    assert_eq!(node.bytes, 300_000, "the relayed bytes are the node's");
    assert_eq!(node.attempts[0].bytes, 300_000);
    assert_eq!(
        report.bytes,
        300_000 + config.size() + m.size(),
        "the report counts every byte that passed through the client"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.first(), Some(&"copying"), "{seen:?}");
    assert!(seen.contains(&"bytes"), "progress was reported: {seen:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_prepared_upload_receives_the_fallback_copy() {
    let src = Arc::new(MemoryStore::new("src"));
    let l = layer(&src, 1000);
    let (m, config) = image(&src, std::slice::from_ref(&l));
    let dst = Arc::new(MemoryStore::new("dst"));
    let prepares = Arc::new(Prepares::into_store(dst.clone()));
    let mut chain = MountChain::new();
    chain.push(prepares.clone());
    let options = opts().with_chain(chain);
    let report = copy_graph(src.clone(), dst.clone(), m.clone(), &options)
        .await
        .unwrap();
    assert_eq!(
        prepares.used.load(Ordering::SeqCst),
        2,
        "config and layer went into the prepared uploads"
    );
    assert_eq!(prepares.cancelled.load(Ordering::SeqCst), 0);
    // The copy's destination holds the exact blobs the prepared uploads received.
    for blob in [&l, &config] {
        let held = dst.get(blob.digest());
        assert!(
            held.is_some() && held == src.get(blob.digest()),
            "the destination holds `{}`: {:?} bytes",
            blob.digest(),
            held.map(|b| b.len())
        );
    }
    assert!(dst.exists(&m).await.unwrap());
    let node = report.node(l.digest()).unwrap();
    assert_eq!(node.action, Action::Copied);
    assert_eq!(node.attempts[0].outcome, AttemptOutcome::Declined);
}

#[tokio::test(flavor = "current_thread")]
async fn a_later_mount_cancels_an_earlier_prepared_upload() {
    let src = Arc::new(MemoryStore::new("src"));
    let l = layer(&src, 10);
    let dst = Arc::new(MemoryStore::new("dst"));
    let prepares = Arc::new(Prepares::into_store(dst.clone()));
    let mut chain = MountChain::new();
    chain.push(prepares.clone());
    chain.push(Arc::new(Teleport::default()));
    let options = opts().with_chain(chain);
    let report = copy_graph(src, dst, l.clone(), &options).await.unwrap();
    assert_eq!(report.node(l.digest()).unwrap().action, Action::Mounted);
    assert_eq!(prepares.cancelled.load(Ordering::SeqCst), 1);
    assert_eq!(prepares.used.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_empty_chain_streams_everything() {
    let src = Arc::new(MemoryStore::new("src"));
    let (m, _) = image(&src, &[layer(&src, 10)]);
    let report = copy_graph(src, Arc::new(MemoryStore::new("dst")), m, &opts())
        .await
        .unwrap();
    assert!(
        report
            .nodes
            .iter()
            .all(|n| n.action == Action::Copied && n.attempts.is_empty())
    );
}

#[tokio::test]
async fn locations_are_recorded_for_source_children_and_destination() {
    let src = Arc::new(MemoryStore::new("src"));
    let l = layer(&src, 10);
    let (m, _) = image(&src, std::slice::from_ref(&l));
    let dst = Arc::new(MemoryStore::new("dst"));
    let options = opts();
    copy_graph(src.clone(), dst.clone(), m, &options)
        .await
        .unwrap();
    let locs = options.locations.locations(l.digest());
    assert_eq!(locs.len(), 2);
    assert_eq!(&locs[0].store, dst.info(), "most recent first");
    assert_eq!(&locs[1].store, src.info());
}

#[tokio::test]
async fn docker_manifest_lists_are_walked() {
    let src = Arc::new(MemoryStore::new("src"));
    let cfg = src.insert(
        "application/vnd.docker.container.image.v1+json",
        Bytes::from_static(b"{}"),
    );
    let l = src.insert(
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        random_bytes(30),
    );
    let m = put_json(
        &src,
        ferry_core::model::DOCKER_MANIFEST,
        json!({"schemaVersion": 2, "mediaType": ferry_core::model::DOCKER_MANIFEST, "config": cfg, "layers": [l]}),
    );
    let mut entry = serde_json::to_value(&m).unwrap();
    entry["platform"] = json!({"os": "linux", "architecture": "amd64"});
    let list = put_json(
        &src,
        ferry_core::model::DOCKER_MANIFEST_LIST,
        json!({"schemaVersion": 2, "mediaType": ferry_core::model::DOCKER_MANIFEST_LIST, "manifests": [entry]}),
    );
    let dst = Arc::new(MemoryStore::new("dst"));
    let report = copy_graph(src, dst.clone(), list.clone(), &opts())
        .await
        .unwrap();
    assert_eq!(report.nodes.len(), 4);
    assert!(dst.exists(&l).await.unwrap() && dst.exists(&list).await.unwrap());
}

#[test]
fn chain_display_names_the_chain() {
    let chain = MountChain::new()
        .with(Teleport::default())
        .with(Prepares::default());
    assert_eq!(chain.to_string(), "MountChain[Teleport, Prepares]");
    let _ = (
        OCI_INDEX,
        Descriptor::new(LAYER.into(), 0, ferry_core::sha256(b"")),
    );
}

/// A destination that pushes and tags in one step, counting how it was asked.
#[derive(Debug)]
struct OneStepTagging {
    inner: MemoryStore,
    tagged_pushes: AtomicUsize,
    tags: AtomicUsize,
}
impl std::fmt::Display for OneStepTagging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("one-step")
    }
}
#[async_trait]
impl ReadStore for OneStepTagging {
    fn info(&self) -> &ferry_core::StoreInfo {
        self.inner.info()
    }
    async fn exists(&self, d: &Descriptor) -> ferry_core::Result<bool> {
        self.inner.exists(d).await
    }
    async fn fetch(&self, d: &Descriptor) -> ferry_core::Result<ByteStream> {
        self.inner.fetch(d).await
    }
    async fn resolve(&self, r: &str) -> ferry_core::Result<Descriptor> {
        self.inner.resolve(r).await
    }
    async fn referrers(&self, s: &Descriptor) -> ferry_core::Result<Vec<Descriptor>> {
        self.inner.referrers(s).await
    }
}
#[async_trait]
impl WriteStore for OneStepTagging {
    async fn push(&self, d: &Descriptor, data: ByteStream) -> ferry_core::Result<()> {
        self.inner.push(d, data).await
    }
    async fn tag(&self, d: &Descriptor, t: &str) -> ferry_core::Result<()> {
        self.tags.fetch_add(1, Ordering::SeqCst);
        self.inner.tag(d, t).await
    }
    async fn push_tagged(
        &self,
        d: &Descriptor,
        data: ByteStream,
        t: &str,
    ) -> ferry_core::Result<()> {
        self.tagged_pushes.fetch_add(1, Ordering::SeqCst);
        self.inner.push(d, data).await?;
        self.inner.tag(d, t).await
    }
}

#[tokio::test]
async fn the_root_is_pushed_and_tagged_in_one_step_when_the_store_can() {
    let src = Arc::new(MemoryStore::new("src"));
    let (m, _) = image(&src, &[layer(&src, 10)]);
    src.tag(&m, "v1").await.unwrap();
    let dst = Arc::new(OneStepTagging {
        inner: MemoryStore::new("dst"),
        tagged_pushes: AtomicUsize::new(0),
        tags: AtomicUsize::new(0),
    });
    copy(src.clone(), "v1", dst.clone(), Some("v1"), &opts())
        .await
        .unwrap();
    assert_eq!(dst.tagged_pushes.load(Ordering::SeqCst), 1);
    assert_eq!(dst.tags.load(Ordering::SeqCst), 0, "no separate tag step");
    assert_eq!(dst.inner.resolve("v1").await.unwrap().digest(), m.digest());
    // When the root is already there, it is only tagged.
    copy(src, "v1", dst.clone(), Some("v2"), &opts())
        .await
        .unwrap();
    assert_eq!(dst.tagged_pushes.load(Ordering::SeqCst), 1);
    assert_eq!(dst.tags.load(Ordering::SeqCst), 1);
    assert_eq!(dst.inner.resolve("v2").await.unwrap().digest(), m.digest());
}

#[tokio::test]
async fn a_root_known_absent_is_not_looked_for_and_one_present_after_all_is_pushed_again() {
    let src = Arc::new(MemoryStore::new("src"));
    let layers = [layer(&src, 100), layer(&src, 200)];
    let (manifest, _) = image(&src, &layers);
    src.tag(&manifest, "v1").await.unwrap();
    let dst = Watched::new("dst");
    let options = opts().with_root_absent(true);
    copy(src.clone(), "v1", dst.clone(), Some("v1"), &options)
        .await
        .unwrap();
    // Three blobs checked, the root not.
    assert_eq!(*dst.exists_calls.lock().unwrap(), 3);
    // Present after all (tagged otherwise): its children are found, it is tagged.
    *dst.exists_calls.lock().unwrap() = 0;
    let report = copy(src.clone(), "v1", dst.clone(), Some("v2"), &options)
        .await
        .unwrap();
    assert_eq!(report.count(Action::Exists), 3);
    assert_eq!(
        dst.inner.resolve("v2").await.unwrap().digest(),
        manifest.digest()
    );
}

/// A source whose fetch of one blob waits until the test opens its gate: the blob stays in
/// flight while the rest of its copy fails.
#[derive(Debug)]
struct Gated {
    inner: Arc<MemoryStore>,
    held: ferry_core::Digest,
    gate: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Display for Gated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "gated({})", self.inner)
    }
}

/// A strategy that never finishes a mount of `stuck` (noting when that attempt starts and when
/// it is dropped) and fails every other blob a moment later.
#[derive(Debug)]
struct StuckAndFailing {
    stuck: ferry_core::Digest,
    started: Arc<std::sync::atomic::AtomicBool>,
    dropped: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Display for StuckAndFailing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StuckAndFailing")
    }
}

struct SetOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl ferry_core::StoreWrapper for Gated {
    type Inner = MemoryStore;
    fn inner(&self) -> &MemoryStore {
        &self.inner
    }
    async fn fetch(&self, d: &Descriptor) -> ferry_core::Result<ByteStream> {
        if d.digest() == &self.held {
            let _open = self.gate.acquire().await.expect("gate");
        }
        self.inner().fetch(d).await
    }
}

/// A copy that fails while another of its blobs is in flight releases that blob's run-wide
/// transfer when it ends, so a later copy sharing the blob brings it instead of waiting for
/// a transfer nobody will finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_copy_releases_the_transfers_it_led() {
    let src = Arc::new(MemoryStore::new("src"));
    let shared = layer(&src, 5000);
    let (missing, _) = ferry_conformance::random_blob(100);
    let (broken, _) = image(&src, &[shared.clone(), missing]);
    let (good, _) = image(&src, std::slice::from_ref(&shared));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let gated = Arc::new(Gated {
        inner: src.clone(),
        held: shared.digest().clone(),
        gate: gate.clone(),
    });
    let dst = Arc::new(MemoryStore::new("dst"));
    let transfers = Arc::new(ferry_core::BlobTransfers::new());
    let options = opts().with_transfers(transfers);

    // The broken image fails on its missing layer while its copy of the shared layer waits
    // at the gate.
    let err = copy_graph(gated.clone(), dst.clone(), broken, &options)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");

    // The good image, in the same run, brings the shared layer itself.
    gate.add_permits(1);
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        copy_graph(gated, dst.clone(), good, &options),
    )
    .await
    .expect("the copy waited for a transfer the failed copy abandoned")
    .unwrap();
    assert_eq!(report.node(shared.digest()).unwrap().action, Action::Copied);
    assert!(dst.exists(&shared).await.unwrap());
}

#[async_trait]
impl MountStrategy for StuckAndFailing {
    fn name(&self) -> &str {
        "stuck-and-failing"
    }

    async fn mount(&self, request: &MountRequest<'_>) -> ferry_core::Result<MountOutcome> {
        if request.descriptor.digest() == &self.stuck {
            let _guard = SetOnDrop(self.dropped.clone());
            self.started.store(true, Ordering::SeqCst);
            futures::future::pending::<()>().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        Err(Error::invalid("blob", "any", "this strategy fails it"))
    }
}

#[tokio::test]
async fn a_failed_copy_ends_the_transfers_still_in_flight() {
    let src = Arc::new(MemoryStore::new("src"));
    let layers = [layer(&src, 1000), layer(&src, 2000)];
    let (manifest, _) = image(&src, &layers);
    src.tag(&manifest, "v1").await.unwrap();
    let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let options = opts().with_chain(MountChain::new().with(StuckAndFailing {
        stuck: layers[0].digest().clone(),
        started: started.clone(),
        dropped: dropped.clone(),
    }));
    let dst = Arc::new(MemoryStore::new("dst"));
    let result = copy(src, "v1", dst, Some("v1"), &options).await;
    assert!(result.is_err());
    assert!(
        started.load(Ordering::SeqCst),
        "the stuck transfer never started"
    );
    // The stuck attempt belongs to a copy that is over: it must not live on (holding a
    // connection, a file, a writer thread the runtime waits for at exit).
    assert!(
        dropped.load(Ordering::SeqCst),
        "the stuck transfer was left running"
    );
}
