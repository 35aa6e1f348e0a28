//! IpfsMount as a mount strategy: the conformance suites, outcomes, and destinations that
//! fetch from IPFS themselves.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ferry_conformance::Case;
use ferry_core::{
    ByteStream, Capabilities, Descriptor, FetchFromAddress, MemoryStore, MountMethod, MountOutcome,
    MountRequest, MountStrategy, ReadStore, Result, StoreInfo, WriteStore,
};
use ferry_ipfs_mount::{CidMap, GatewayClient, IpfsMount, RAW_MEDIA_TYPE};

use crate::support::{CountingStore, LyingGateway, assert_same, closed_port, layer, random, read};
use ferry_test_support::helia::Helia;

async fn mount(
    strategy: &IpfsMount,
    desc: &Descriptor,
    src: &dyn ReadStore,
    dst: &dyn WriteStore,
) -> MountOutcome {
    let request = MountRequest::new(desc, src, dst);
    strategy.mount(&request).await.unwrap()
}

/// The strategy contract when IPFS holds every blob the source holds.
mod ipfs_holding_the_blobs {
    use super::*;

    async fn case() -> Case {
        let helia = Arc::new(Helia::start());
        Case::new(
            Arc::new(IpfsMount::new(helia.url()).unwrap()),
            Arc::new(CountingStore::publishing_to("src", helia.clone())),
            Arc::new(MemoryStore::new("dst")),
        )
        .keeping(helia)
    }

    ferry_conformance::strategy_suite!(setup: case, expect: Mounted);
}

/// The strategy contract when IPFS holds nothing: every address is declined.
mod ipfs_holding_nothing {
    use super::*;

    async fn case() -> Case {
        let helia = Helia::start();
        Case::new(
            Arc::new(IpfsMount::new(helia.url()).unwrap()),
            Arc::new(MemoryStore::new("src")),
            Arc::new(MemoryStore::new("dst")),
        )
        .keeping(helia)
    }

    ferry_conformance::strategy_suite!(setup: case, expect: Declined);
}

/// The strategy contract for blobs without any IPFS address: not applicable.
mod ipfs_without_addresses {
    use super::*;

    async fn case() -> Case {
        let helia = Helia::start();
        Case::new(
            Arc::new(IpfsMount::new(helia.url()).unwrap().derive_raw_cids(false)),
            Arc::new(MemoryStore::new("src")),
            Arc::new(MemoryStore::new("dst")),
        )
        .keeping(helia)
    }

    ferry_conformance::strategy_suite!(setup: case, expect: NotApplicable);
}

/// The store contract of a destination that fetches `ipfs://` addresses itself, its
/// `FetchFromAddress` rule included, with a real IPFS node as the publisher.
mod self_fetching_destination {
    use super::*;
    use ferry_conformance::{Publish, StoreSubject};

    struct Node(Helia);

    #[async_trait]
    impl Publish for Node {
        async fn publish(&self, data: bytes::Bytes) -> String {
            format!("ipfs://{}", self.0.add_raw(&data).await)
        }
    }

    async fn subject() -> StoreSubject {
        let helia = Helia::start();
        let store = SelfFetching {
            inner: MemoryStore::new("dst"),
            gateway: GatewayClient::new(helia.url()).unwrap(),
            asked: Mutex::default(),
        };
        StoreSubject::new(Arc::new(store)).with_publisher(Arc::new(Node(helia)))
    }

    ferry_conformance::store_suite!(setup: subject, declares: [fetch_from_address]);
}

#[tokio::test]
async fn names_itself_with_its_gateway() {
    let s = IpfsMount::new("http://127.0.0.1:5001/").unwrap();
    assert_eq!(s.to_string(), "IpfsMount(http://127.0.0.1:5001)");
    assert_eq!(s.name(), "ipfs");
    let chain = ferry_core::MountChain::new().with(s);
    assert_eq!(
        chain.to_string(),
        "MountChain[IpfsMount(http://127.0.0.1:5001)]"
    );
}

#[tokio::test]
async fn addresses_are_tried_in_order_until_one_has_the_blob() {
    let helia = Helia::start();
    let data = random(700_000);
    let file_cid = helia.add(&data, 262_144).await;
    // The url names a CID the node lacks, the CID map names the file.
    let missing = ferry_ipfs_mount::cid_for_sha256(&ferry_core::sha256(b"gone")).unwrap();
    let desc = layer(&data, &[format!("ipfs://{missing}")]);
    let mut map = CidMap::new();
    map.insert(desc.digest().clone(), file_cid);
    let strategy = IpfsMount::new(helia.url())
        .unwrap()
        .with_cid_map(map)
        .derive_raw_cids(false);
    let order: Vec<_> = strategy.addresses(&desc).iter().map(|a| a.cid).collect();
    assert_eq!(order, vec![missing, file_cid]);
    let src = MemoryStore::new("src");
    let dst = MemoryStore::new("dst");
    match mount(&strategy, &desc, &src, &dst).await {
        MountOutcome::Mounted { from, method, .. } => {
            assert_eq!(method, MountMethod::FetchedFromAddress);
            assert_eq!(from.to_string(), format!("ipfs://{file_cid}"));
        }
        other => panic!("expected Mounted, got {other:?}"),
    }
    assert_same(&read(&dst, &desc).await, &data);
}

#[tokio::test]
async fn wrong_bytes_from_a_gateway_are_declined_and_not_committed() {
    let data = random(50_000);
    let desc = layer(&data, &[]);
    let liar = LyingGateway::start(RAW_MEDIA_TYPE, random(50_000)).await;
    let strategy = IpfsMount::new(&liar.url).unwrap();
    let dst = MemoryStore::new("dst");
    match mount(&strategy, &desc, &MemoryStore::new("src"), &dst).await {
        MountOutcome::Declined { reason, .. } => {
            assert!(reason.contains("does not match its CID"), "{reason}")
        }
        other => panic!("expected Declined, got {other:?}"),
    }
    assert!(dst.is_empty());
}

#[tokio::test]
async fn a_gateway_that_does_not_answer_in_time_is_declined() {
    let helia = Helia::start();
    let data = random(1000);
    helia.add_raw(&data).await;
    helia.stall(true).await;
    let client = GatewayClient::new(helia.url())
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let strategy = IpfsMount::with_client(client);
    let dst = MemoryStore::new("dst");
    match mount(
        &strategy,
        &layer(&data, &[]),
        &MemoryStore::new("src"),
        &dst,
    )
    .await
    {
        MountOutcome::Declined { reason, .. } => {
            assert!(reason.contains("did not answer"), "{reason}")
        }
        other => panic!("expected Declined, got {other:?}"),
    }
    assert!(dst.is_empty());
    helia.stall(false).await;
}

#[tokio::test]
async fn a_gateway_that_is_down_is_declined() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let strategy = IpfsMount::new(&url).unwrap();
    let data = random(1000);
    match mount(
        &strategy,
        &layer(&data, &[]),
        &MemoryStore::new("src"),
        &MemoryStore::new("dst"),
    )
    .await
    {
        MountOutcome::Declined { reason, .. } => assert!(reason.contains(&url), "{reason}"),
        other => panic!("expected Declined, got {other:?}"),
    }
}

/// A destination that fetches `ipfs://` addresses itself, the way a registry next to an IPFS
/// node would, recording what it was asked.
#[derive(Debug)]
struct SelfFetching {
    inner: MemoryStore,
    gateway: GatewayClient,
    asked: Mutex<Vec<String>>,
}

impl std::fmt::Display for SelfFetching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SelfFetching({})", self.inner)
    }
}

#[async_trait]
impl ReadStore for SelfFetching {
    fn info(&self) -> &StoreInfo {
        self.inner.info()
    }
    async fn exists(&self, d: &Descriptor) -> Result<bool> {
        self.inner.exists(d).await
    }
    async fn fetch(&self, d: &Descriptor) -> Result<ByteStream> {
        self.inner.fetch(d).await
    }
    async fn resolve(&self, r: &str) -> Result<Descriptor> {
        self.inner.resolve(r).await
    }
    async fn referrers(&self, s: &Descriptor) -> Result<Vec<Descriptor>> {
        self.inner.referrers(s).await
    }
    fn capabilities(&self) -> Capabilities<'_> {
        let mut c = Capabilities::default();
        c.fetch_from_address = Some(self);
        c
    }
}

#[async_trait]
impl WriteStore for SelfFetching {
    async fn push(&self, d: &Descriptor, data: ByteStream) -> Result<()> {
        self.inner.push(d, data).await
    }
    async fn tag(&self, d: &Descriptor, t: &str) -> Result<()> {
        self.inner.tag(d, t).await
    }
}

#[async_trait]
impl FetchFromAddress for SelfFetching {
    fn accepts(&self, address: &str) -> bool {
        address.starts_with("ipfs://")
    }
    async fn fetch_from_address(&self, d: &Descriptor, address: &str) -> Result<bool> {
        self.asked.lock().unwrap().push(address.to_string());
        let cid = ferry_ipfs_mount::IpfsAddress::parse_url(address)?.cid;
        match self.gateway.fetch_file(&cid).await {
            Ok(stream) => self.inner.push(d, stream).await.map(|()| true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[tokio::test]
async fn a_destination_that_fetches_itself_is_handed_the_address() {
    let helia = Helia::start();
    let data = random(600_000);
    let cid = helia.add(&data, 262_144).await;
    let desc = layer(&data, &[format!("ipfs://{cid}")]);
    let dst = SelfFetching {
        inner: MemoryStore::new("dst"),
        gateway: GatewayClient::new(helia.url()).unwrap(),
        asked: Mutex::default(),
    };
    // The strategy's own gateway is down: only the destination's fetch can succeed.
    let strategy = IpfsMount::new(&format!("http://127.0.0.1:{}", closed_port()))
        .unwrap()
        .derive_raw_cids(false);
    match mount(&strategy, &desc, &MemoryStore::new("src"), &dst).await {
        MountOutcome::Mounted { from, method, .. } => {
            assert_eq!(from.to_string(), format!("ipfs://{cid}"));
            assert_eq!(method, MountMethod::FetchedByDestination);
        }
        other => panic!("expected Mounted, got {other:?}"),
    }
    assert_eq!(*dst.asked.lock().unwrap(), vec![format!("ipfs://{cid}")]);
    assert_same(&read(&dst, &desc).await, &data);

    // When the destination cannot get it, the strategy tries its own gateway.
    let other = random(1000);
    let desc = layer(&other, &[]);
    helia.add_raw(&other).await;
    let dst = SelfFetching {
        inner: MemoryStore::new("dst"),
        gateway: GatewayClient::new(&format!("http://127.0.0.1:{}", closed_port())).unwrap(),
        asked: Mutex::default(),
    };
    let strategy = IpfsMount::new(helia.url()).unwrap();
    let outcome = mount(&strategy, &desc, &MemoryStore::new("src"), &dst).await;
    assert!(
        matches!(outcome, MountOutcome::Mounted { .. }),
        "{outcome:?}"
    );
    assert_eq!(dst.asked.lock().unwrap().len(), 1);
    assert_same(&read(&dst, &desc).await, &other);
}

#[tokio::test]
async fn a_wrapped_destination_that_fetches_itself_is_still_handed_the_address() {
    let helia = Helia::start();
    let data = random(40_000);
    let cid = helia.add_raw(&data).await;
    let desc = layer(&data, &[format!("ipfs://{cid}")]);
    let inner = Arc::new(SelfFetching {
        inner: MemoryStore::new("dst"),
        gateway: GatewayClient::new(helia.url()).unwrap(),
        asked: Mutex::default(),
    });
    let dst = ferry_conformance::Counting::new(inner.clone());
    let strategy = IpfsMount::new(&format!("http://127.0.0.1:{}", closed_port()))
        .unwrap()
        .derive_raw_cids(false);
    let outcome = mount(&strategy, &desc, &MemoryStore::new("src"), dst.as_ref()).await;
    assert!(
        matches!(outcome, MountOutcome::Mounted { .. }),
        "{outcome:?}"
    );
    // The wrapper offered the capability and saw the fetch it was asked for.
    assert_eq!(dst.calls("fetch_from_address"), 1);
    assert_eq!(*inner.asked.lock().unwrap(), vec![format!("ipfs://{cid}")]);
    assert_same(&read(&inner.inner, &desc).await, &data);
}
