//! Whole copies through ferry's engine with IpfsMount in the chain.

use std::sync::Arc;

use ferry_core::{
    Action, AttemptOutcome, CopyOptions, CopyReport, MemoryStore, MountChain, MountMethod,
    MountOutcome, MountRequest, MountStrategy, ReadStore, WriteStore, copy,
};
use ferry_ipfs_mount::IpfsMount;

use crate::support::{CONFIG, CountingStore, assert_same, closed_port, image, layer, random, read};
use ferry_test_support::helia::Helia;

async fn run(src: Arc<CountingStore>, dst: Arc<MemoryStore>, strategy: IpfsMount) -> CopyReport {
    run_chain(src, dst, MountChain::new().with(strategy)).await
}

async fn run_chain(
    src: Arc<CountingStore>,
    dst: Arc<MemoryStore>,
    chain: MountChain,
) -> CopyReport {
    let options = CopyOptions::default().with_chain(chain);
    let src: Arc<dyn ReadStore> = src;
    let dst: Arc<dyn WriteStore> = dst;
    copy(src, "v1", dst, Some("v1"), &options)
        .await
        .unwrap_or_else(|e| panic!("copy failed: {e}"))
}

/// A strategy placed before IpfsMount that, like a link on shared storage, needs the source to
/// hold the blob and declines when it does not.
#[derive(Debug)]
struct LinkFromSource;

impl std::fmt::Display for LinkFromSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkFromSource")
    }
}

#[async_trait::async_trait]
impl MountStrategy for LinkFromSource {
    fn name(&self) -> &str {
        "link"
    }

    async fn mount(&self, request: &MountRequest<'_>) -> ferry_core::Result<MountOutcome> {
        if request.source.exists(request.descriptor).await? {
            Ok(MountOutcome::not_applicable("test strategy: never links"))
        } else {
            Ok(MountOutcome::declined("the source does not hold the blob"))
        }
    }
}

#[tokio::test]
async fn a_layer_only_in_ipfs_is_mounted_from_its_ipfs_url() {
    let helia = Helia::start();
    // A nerdctl-style image: the layer lives in IPFS only, the manifest names it by url.
    let layer_data = random(3 * 262_144 + 1000);
    let cid = helia.add(&layer_data, 262_144).await;
    let layer_desc = layer(&layer_data, &[format!("ipfs://{cid}")]);
    let src = Arc::new(CountingStore::new("src"));
    let config = src.inner.insert(CONFIG, random(200));
    let manifest = image(&src.inner, &config, std::slice::from_ref(&layer_desc), "v1").await;
    assert!(!src.inner.exists(&layer_desc).await.unwrap());

    let dst = Arc::new(MemoryStore::new("dst"));
    let chain = MountChain::new()
        .with(LinkFromSource)
        .with(IpfsMount::new(helia.url()).unwrap());
    let report = run_chain(src.clone(), dst.clone(), chain).await;

    let node = report
        .node(layer_desc.digest())
        .expect("layer in the report");
    assert_eq!(node.action, Action::Mounted);
    let attempts: Vec<_> = node
        .attempts
        .iter()
        .map(|a| (a.strategy.as_str(), a.outcome.as_str()))
        .collect();
    assert_eq!(attempts, vec![("link", "declined"), ("ipfs", "mounted")]);
    assert_eq!(node.strategy.as_ref().map(|s| s.as_str()), Some("ipfs"));
    assert_eq!(
        node.from.as_ref().map(ToString::to_string).as_deref(),
        Some(format!("ipfs://{cid}").as_str())
    );
    assert_eq!(node.method, Some(MountMethod::FetchedFromAddress));
    assert_eq!(
        node.bytes,
        layer_data.len() as u64,
        "the bytes fetched from the gateway passed through the client and are counted"
    );
    assert_eq!(node.attempts[1].bytes, layer_data.len() as u64);
    assert_same(&read(dst.as_ref(), &layer_desc).await, &layer_data);
    // The config is not in IPFS: declined there, copied from the source.
    let config_node = report.node(config.digest()).unwrap();
    assert_eq!(config_node.action, Action::Copied);
    let ipfs_attempt = config_node.attempts.iter().find(|a| a.strategy == "ipfs");
    assert_eq!(
        ipfs_attempt.map(|a| a.outcome),
        Some(AttemptOutcome::Declined)
    );
    assert!(!src.fetched().contains(layer_desc.digest()));
    assert_eq!(dst.resolve("v1").await.unwrap().digest(), manifest.digest());
    assert_eq!(
        report.chain,
        format!("MountChain[LinkFromSource, IpfsMount({})]", helia.url())
    );
}

#[tokio::test]
async fn single_block_blobs_are_found_by_derived_cids_and_the_source_reads_no_blob() {
    let helia = Helia::start();
    let src = Arc::new(CountingStore::new("src"));
    let config = src.inner.insert(CONFIG, random(300));
    let layers: Vec<_> = [200_000, 1, 262_144]
        .into_iter()
        .map(|n| src.inner.insert(crate::support::LAYER, random(n)))
        .collect();
    // The same blobs are on the IPFS node, added the way `ipfs add --raw-leaves` adds a file
    // of one chunk: as a raw block, whose CID the digest determines.
    for d in std::iter::once(&config).chain(&layers) {
        helia
            .add(&src.inner.get(d.digest()).unwrap(), 262_144)
            .await;
    }
    let manifest = image(&src.inner, &config, &layers, "v1").await;

    let dst = Arc::new(MemoryStore::new("dst"));
    let report = run(
        src.clone(),
        dst.clone(),
        IpfsMount::new(helia.url()).unwrap(),
    )
    .await;

    for d in std::iter::once(&config).chain(&layers) {
        let node = report.node(d.digest()).unwrap();
        assert_eq!(node.action, Action::Mounted, "{}", d.digest());
        let cid = ferry_ipfs_mount::cid_for_sha256(d.digest()).unwrap();
        assert_eq!(
            node.from.as_ref().map(ToString::to_string).as_deref(),
            Some(format!("ipfs://{cid}").as_str())
        );
        assert_same(
            &read(dst.as_ref(), d).await,
            &src.inner.get(d.digest()).unwrap(),
        );
    }
    // The source was read for the manifest only; the blobs came through the gateway, and
    // their bytes are counted with the manifest's.
    assert_eq!(src.fetched(), vec![manifest.digest().clone()]);
    let blob_bytes: u64 = std::iter::once(&config)
        .chain(&layers)
        .map(|d| d.size())
        .sum();
    assert_eq!(report.bytes, manifest.size() + blob_bytes);
}

#[tokio::test]
async fn a_url_naming_other_content_falls_back_to_the_source_and_commits_nothing_wrong() {
    let helia = Helia::start();
    let layer_data = random(2 * 262_144);
    let decoy = helia.add(&random(2 * 262_144), 262_144).await;
    let src = Arc::new(CountingStore::new("src"));
    let config = src.inner.insert(CONFIG, random(100));
    let layer_desc = layer(&layer_data, &[format!("ipfs://{decoy}")]);
    src.inner.insert_unverified(&layer_desc, layer_data.clone());
    image(&src.inner, &config, std::slice::from_ref(&layer_desc), "v1").await;

    let dst = Arc::new(MemoryStore::new("dst"));
    let report = run(
        src.clone(),
        dst.clone(),
        IpfsMount::new(helia.url()).unwrap(),
    )
    .await;

    let node = report.node(layer_desc.digest()).unwrap();
    assert_eq!(node.action, Action::Copied);
    let attempt = &node.attempts[0];
    assert_eq!(
        (attempt.strategy.as_str(), attempt.outcome),
        ("ipfs", AttemptOutcome::Declined)
    );
    // Both the decoy the gateway sent and the source's stream passed through the client.
    assert_eq!(node.bytes, attempt.bytes + layer_desc.size());
    assert!(
        attempt
            .detail
            .contains(&format!("ipfs://{decoy} holds other content")),
        "{}",
        attempt.detail
    );
    assert!(src.fetched().contains(layer_desc.digest()));
    assert_same(&read(dst.as_ref(), &layer_desc).await, &layer_data);
}

#[tokio::test]
async fn with_the_gateway_down_every_blob_comes_from_the_source() {
    let src = Arc::new(CountingStore::new("src"));
    let config = src.inner.insert(CONFIG, random(100));
    let layer_data = random(10_000);
    let cid = ferry_ipfs_mount::cid_for_sha256(&ferry_core::sha256(&layer_data)).unwrap();
    let layer_desc = layer(&layer_data, &[format!("ipfs://{cid}")]);
    src.inner.insert_unverified(&layer_desc, layer_data.clone());
    image(&src.inner, &config, std::slice::from_ref(&layer_desc), "v1").await;

    let url = format!("http://127.0.0.1:{}", closed_port());
    let dst = Arc::new(MemoryStore::new("dst"));
    let report = run(src.clone(), dst.clone(), IpfsMount::new(&url).unwrap()).await;

    for d in [&config, &layer_desc] {
        let node = report.node(d.digest()).unwrap();
        assert_eq!(node.action, Action::Copied);
        assert_eq!(node.attempts[0].outcome, AttemptOutcome::Declined);
        assert!(
            node.attempts[0].detail.contains(&url),
            "{}",
            node.attempts[0].detail
        );
    }
    assert_same(&read(dst.as_ref(), &layer_desc).await, &layer_data);
}
