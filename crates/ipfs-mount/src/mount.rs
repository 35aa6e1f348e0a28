//! `IpfsMount`: the strategy that brings a blob to the destination from IPFS.

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ferry_core::mount::Setting;
use ferry_core::{
    ByteStream, Descriptor, Error, MountMethod, MountOutcome, MountPlan, MountRequest,
    MountStrategy, Result, StrategyConfig, StrategyFactory,
};
use futures::StreamExt;

use crate::address::{CidMap, IpfsAddress, addresses_of};
use crate::gateway::GatewayClient;

/// The name of the strategy, as the output shows it.
pub const NAME: &str = "ipfs";

/// Brings a blob that has an IPFS address to the destination from IPFS instead of from the
/// source: through a trustless gateway, every block checked against its CID and the whole
/// blob against its OCI size and digest before the destination commits it.
///
/// Addresses, tried in order: the descriptor's `ipfs://CID` urls, the CID map's entry, the
/// raw CIDv1 derived from the digest (unless [`IpfsMount::derive_raw_cids`] turned it off).
/// A destination whose [`ferry_core::Capabilities::fetch_from_address`] accepts `ipfs://`
/// is handed the address and fetches it itself, so no byte passes through the client.
///
/// Outcomes: `Mounted` with `from` = `ipfs://CID`, by [`MountMethod::FetchedFromAddress`]
/// through the gateway (the bytes are counted in the copy's report and progress) or
/// [`MountMethod::FetchedByDestination`]; `NotApplicable` when the blob has no
/// address; `Declined` with the reasons when the gateway lacks the content, does not answer
/// in time, or sends bytes that do not match: the engine then tries the next strategy or
/// the source.
#[derive(Debug, Clone)]
pub struct IpfsMount {
    gateway: GatewayClient,
    cid_map: Arc<CidMap>,
    derive_raw_cids: bool,
}

impl IpfsMount {
    /// A strategy fetching through the trustless gateway at `gateway_url`.
    pub fn new(gateway_url: &str) -> Result<Self> {
        Ok(Self::with_client(GatewayClient::new(gateway_url)?))
    }

    /// A strategy fetching through `gateway`, configured by the caller (timeouts, limits).
    pub fn with_client(gateway: GatewayClient) -> Self {
        Self {
            gateway,
            cid_map: Arc::new(CidMap::new()),
            derive_raw_cids: true,
        }
    }

    /// Adds the addresses of a CID map (`--ipfs-cid-map FILE`).
    pub fn with_cid_map(mut self, map: CidMap) -> Self {
        self.cid_map = Arc::new(map);
        self
    }

    /// Whether to also try the raw CIDv1 derived from each blob's digest (on by default).
    /// It finds blobs stored as a single raw block at the cost of one request per blob that
    /// has no other address.
    pub fn derive_raw_cids(mut self, derive: bool) -> Self {
        self.derive_raw_cids = derive;
        self
    }

    /// The gateway client.
    pub fn gateway(&self) -> &GatewayClient {
        &self.gateway
    }

    /// Every address of `descriptor` this strategy would try, in order.
    pub fn addresses(&self, descriptor: &Descriptor) -> Vec<IpfsAddress> {
        let mut out = addresses_of(descriptor, &self.cid_map);
        if self.derive_raw_cids
            && let Some(derived) = IpfsAddress::derived(descriptor.digest())
            && !out.iter().any(|a| a.cid == derived.cid)
        {
            out.push(derived);
        }
        out
    }

    /// Streams `address` from the gateway into the destination. `Ok(Err(reason))` when the
    /// gateway could not deliver matching content; `Err` when the destination failed.
    ///
    /// The bytes pass through this process: they are counted as the request's
    /// ([`MountRequest::count_bytes`]), so the copy's report and progress show them.
    async fn fetch_into(
        &self,
        request: &MountRequest<'_>,
        address: &IpfsAddress,
    ) -> Result<std::result::Result<(), String>> {
        let descriptor = request.descriptor;
        let stream = match self.gateway.fetch_file(&address.cid).await {
            Ok(stream) => stream,
            Err(e) => return Ok(Err(format!("{address}: {e}"))),
        };
        let (stream, gateway_failure) = watch(request.count_bytes(stream));
        match request.destination.push(descriptor, stream).await {
            Ok(()) => Ok(Ok(())),
            Err(e) => {
                if let Some(failure) = gateway_failure.lock().expect("failure lock").take() {
                    return Ok(Err(format!("{address}: {failure}")));
                }
                match e {
                    Error::DigestMismatch { .. } | Error::SizeMismatch { .. } => Ok(Err(format!(
                        "{address} holds other content than `{}`: {e}",
                        descriptor.digest()
                    ))),
                    other => Err(other),
                }
            }
        }
    }
}

/// Wraps a gateway stream so that its own failure can be told apart from the destination's.
fn watch(stream: ByteStream) -> (ByteStream, Arc<Mutex<Option<String>>>) {
    let failure: Arc<Mutex<Option<String>>> = Arc::default();
    let slot = failure.clone();
    let stream = stream.map(move |item| {
        if let Err(e) = &item {
            *slot.lock().expect("failure lock") = Some(e.to_string());
        }
        item
    });
    (Box::pin(stream), failure)
}

impl fmt::Display for IpfsMount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IpfsMount({})", self.gateway.name())
    }
}

#[async_trait]
impl MountStrategy for IpfsMount {
    fn name(&self) -> &str {
        NAME
    }

    /// Reads only: a `HEAD` on the gateway for each address in turn. The first the gateway
    /// says it has is where a mount is expected from; when the gateway cannot tell, the
    /// strategy would try; when it has none, it does not apply. A destination that fetches
    /// from addresses itself would be handed the first address it accepts (only trying tells
    /// whether it can fetch it).
    async fn plan(&self, request: &MountRequest<'_>) -> Result<MountPlan> {
        let descriptor = request.descriptor;
        let addresses = self.addresses(descriptor);
        if addresses.is_empty() {
            return Ok(MountPlan::not_applicable(format!(
                "`{}` has no IPFS address",
                descriptor.digest()
            )));
        }
        if let Some(fetcher) = request.destination.capabilities().fetch_from_address
            && let Some(address) = addresses.iter().find(|a| fetcher.accepts(&a.url()))
        {
            return Ok(MountPlan::would_try(format!(
                "would ask {} to fetch {} itself",
                request.destination,
                address.url()
            )));
        }
        let mut unsure = None;
        for address in &addresses {
            match self.gateway.has(&address.cid).await {
                Some(true) => {
                    return Ok(MountPlan::would_mount(
                        address.place(),
                        MountMethod::FetchedFromAddress,
                    ));
                }
                Some(false) => {}
                None => {
                    unsure.get_or_insert_with(|| address.url());
                }
            }
        }
        Ok(match unsure {
            Some(url) => MountPlan::would_try(format!(
                "would fetch {url} through {}, which cannot tell whether it has it",
                self.gateway
            )),
            None => MountPlan::not_applicable(format!(
                "{} has none of the blob's addresses",
                self.gateway
            )),
        })
    }

    async fn mount(&self, request: &MountRequest<'_>) -> Result<MountOutcome> {
        let descriptor = request.descriptor;
        let digest = descriptor.digest();
        let addresses = self.addresses(descriptor);
        if addresses.is_empty() {
            return Ok(MountOutcome::not_applicable(format!(
                "`{digest}` has no IPFS address (no `ipfs://` url, no CID map entry{})",
                if self.derive_raw_cids {
                    ", and no raw CID derives from its digest"
                } else {
                    ", and deriving raw CIDs is off"
                }
            )));
        }
        let mut reasons = Vec::new();

        if let Some(fetcher) = request.destination.capabilities().fetch_from_address {
            for address in &addresses {
                let url = address.url();
                if !fetcher.accepts(&url) {
                    continue;
                }
                tracing::debug!(%digest, address = %url, destination = %request.destination, "asking the destination to fetch from IPFS itself");
                match fetcher.fetch_from_address(descriptor, &url).await {
                    Ok(true) => {
                        return Ok(MountOutcome::mounted(
                            address.place(),
                            MountMethod::FetchedByDestination,
                        ));
                    }
                    Ok(false) => {
                        reasons.push(format!("{url}: {} could not fetch it", request.destination))
                    }
                    Err(e) => reasons.push(format!("{url}: {} failed: {e}", request.destination)),
                }
            }
        }

        for address in &addresses {
            tracing::debug!(%digest, %address, gateway = %self.gateway, "fetching from IPFS");
            match self.fetch_into(request, address).await? {
                Ok(()) => {
                    tracing::debug!(%digest, %address, "mounted from IPFS");
                    return Ok(MountOutcome::mounted(
                        address.place(),
                        MountMethod::FetchedFromAddress,
                    ));
                }
                Err(reason) => {
                    tracing::debug!(%digest, %address, %reason, "IPFS address declined");
                    reasons.push(reason);
                }
            }
        }
        Ok(MountOutcome::declined(reasons.join("; ")))
    }
}

/// [`IpfsMount`] by name (`ipfs`), for applications that compose chains from names
/// ([`ferry_core::StrategyFactories`]).
///
/// Settings: `gateway` (required: the trustless gateway's URL) and `cid_map` (a JSON file
/// mapping digests to CIDs). `auto` includes it when a gateway is given.
#[derive(Debug, Clone, Copy, Default)]
pub struct IpfsFactory;

impl StrategyFactory for IpfsFactory {
    fn name(&self) -> &'static str {
        NAME
    }

    fn summary(&self) -> &'static str {
        "blobs with an IPFS address fetched from a trustless gateway, every block verified"
    }

    fn plan_label(&self) -> &'static str {
        "an `ipfs://` address the gateway says it has"
    }

    fn settings(&self) -> &'static [Setting] {
        const SETTINGS: &[Setting] = &[
            Setting::required("gateway", "the IPFS trustless gateway's URL"),
            Setting::new("cid_map", "a JSON file mapping blob digests to CIDs"),
        ];
        SETTINGS
    }

    fn build(&self, config: &StrategyConfig) -> Result<Arc<dyn MountStrategy>> {
        let Some(gateway) = config.string(NAME, "gateway")? else {
            return Err(Error::MissingSetting {
                strategy: NAME.into(),
                key: "gateway".into(),
                help: "the IPFS trustless gateway's URL".into(),
            });
        };
        let mut mount = IpfsMount::new(&gateway)?;
        if let Some(path) = config.string(NAME, "cid_map")? {
            mount = mount.with_cid_map(CidMap::load(path)?);
        }
        Ok(Arc::new(mount))
    }
}
