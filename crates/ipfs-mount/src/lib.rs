//! ferry-ipfs-mount: the IPFS-address mount strategy of ferry.
//!
//! A blob that has an IPFS address can reach the destination from IPFS instead of from the
//! source: from a nearby node when the source is slow or rate-limited, or when the source does
//! not hold it at all (nerdctl stores image layers in IPFS and names them in the manifest).
//!
//! ```no_run
//! # async fn demo(src: std::sync::Arc<dyn ferry_core::ReadStore>,
//! #               dst: std::sync::Arc<dyn ferry_core::WriteStore>) -> ferry_core::Result<()> {
//! use ferry_core::{copy, CopyOptions, MountChain};
//! use ferry_ipfs_mount::{CidMap, IpfsMount};
//!
//! let ipfs = IpfsMount::new("http://127.0.0.1:8080")?
//!     .with_cid_map(CidMap::load("cids.json")?)
//!     .derive_raw_cids(true);
//! let options = CopyOptions::default().with_chain(MountChain::new().with(ipfs));
//! let report = copy(src, "v1", dst, Some("v1"), &options).await?;
//! # Ok(()) }
//! ```
//!
//! # Addresses
//!
//! [`IpfsMount`] tries, in order, every address it knows for a blob
//! ([`IpfsMount::addresses`]):
//!
//! 1. `ipfs://CID` entries of the descriptor's `urls` ([`addresses_of`]). This is how nerdctl
//!    (`nerdctl push ipfs://…`) records where each layer lives. Other urls are ignored, and an
//!    `ipfs://` url with a path is refused: an address names the blob itself.
//! 2. The entry of a CID map ([`CidMap`], `--ipfs-cid-map FILE`): a JSON object from digest to
//!    CID, such as `{"sha256:9f86d0…": "bafybeigdyrzt5…"}`, for content added to IPFS by other
//!    means (`ipfs add --cid-version=1 --raw-leaves layer.tar`).
//! 3. The raw-codec CIDv1 derived from the digest ([`cid_for_sha256`], [`cid_for_digest`]):
//!    codec 0x55 with the sha2-256 multihash of the digest. It names the blob whenever IPFS
//!    holds it as a single raw block (`ipfs block put`, or `ipfs add --raw-leaves` of a file no
//!    larger than one chunk), so small blobs need no address at all. Turn it off with
//!    [`IpfsMount::derive_raw_cids`] to save one request per blob that has no other address.
//!
//! # Verification: the gateway is never trusted
//!
//! [`GatewayClient`] speaks the IPFS HTTP Trustless Gateway protocol: `GET /ipfs/{cid}` with
//! `Accept: application/vnd.ipld.raw` (and `?format=raw`) for a raw CID, and with
//! `application/vnd.ipld.car` (`?format=car&dag-scope=all`) for a UnixFS file in dag-pb.
//!
//! - Every block is hashed and compared with the multihash of its CID before it is used
//!   (sha2-256, sha2-512 and identity are supported). A raw block streams through as it
//!   arrives, but its last chunk is held back until the whole block matches, so a destination
//!   that commits at the end of the stream never sees complete unverified content.
//! - A UnixFS file is walked from its root in file order: a dag-pb node is only accepted under
//!   the CID its parent links to, so the gateway cannot reorder, drop or add data. Blocks that
//!   arrive before their turn (gateways that send the DAG breadth-first) are held up to a limit
//!   ([`GatewayClient::with_buffer_limit`], 64 MiB by default); nothing else is kept in memory.
//! - The file's bytes are pushed into the destination, which checks the OCI size and digest
//!   before committing ([`ferry_core::WriteStore::push`]). Content at an address that is not
//!   the blob (a wrong `ipfs://` url) fails that check: the attempt is declined, nothing is
//!   committed, and the engine copies from the source instead.
//!
//! A 404, a timeout ([`GatewayClient::with_timeout`], [`GatewayClient::with_idle_timeout`]),
//! a gateway that is down or content that does not match all give
//! [`ferry_core::MountOutcome::Declined`] with the reason; only a failure of the destination
//! itself is an error.
//!
//! # Destinations that fetch from IPFS themselves
//!
//! A destination whose [`ferry_core::ReadStore::capabilities`] offers
//! [`ferry_core::FetchFromAddress`], and which `accepts("ipfs://…")`, is handed the address
//! instead: it fetches and verifies the content itself and no byte passes through the client.
//! When it answers `Ok(false)` (or fails), [`IpfsMount`] falls back to fetching through its
//! own gateway.
//!
//! A registry operator whose registry runs next to an IPFS node implements it on the store
//! type that represents the registry:
//!
//! ```no_run
//! use async_trait::async_trait;
//! use ferry_core::{Descriptor, FetchFromAddress, Result};
//!
//! struct MyRegistry { /* a client of the registry's own API */ }
//!
//! #[async_trait]
//! impl FetchFromAddress for MyRegistry {
//!     fn accepts(&self, address: &str) -> bool {
//!         address.starts_with("ipfs://")
//!     }
//!
//!     async fn fetch_from_address(&self, descriptor: &Descriptor, address: &str) -> Result<bool> {
//!         // Ask the registry to pull `address` from its IPFS node and commit it under
//!         // `descriptor` only when size and digest match; `Ok(false)` when it could not.
//!         # let _ = (descriptor, address);
//!         Ok(false)
//!     }
//! }
//! ```
//!
//! and offers it from its `ReadStore::capabilities` (`Capabilities` is non-exhaustive, so
//! start from the default and add what the store offers):
//!
//! ```text
//! fn capabilities(&self) -> Capabilities<'_> {
//!     Capabilities::default().with_fetch_from_address(self)
//! }
//! ```
//!
//! A wrapper around such a store ([`ferry_core::StoreWrapper`]) forwards the capability, so the
//! address is still handed to the destination through it.
//!
//! The registry must verify the content against the descriptor's size and digest before it
//! commits it, as any `push` does.

mod address;
mod block;
mod car;
mod error;
mod gateway;
mod mount;

pub use address::{
    AddressOrigin, CidMap, DAG_PB_CODEC, IDENTITY, IpfsAddress, RAW_CODEC, SHA2_256, SHA2_512,
    addresses_of, cid_for_digest, cid_for_sha256,
};
pub use cid::Cid;
pub use gateway::{
    CAR_MEDIA_TYPE, DEFAULT_BUFFER_LIMIT, DEFAULT_IDLE_TIMEOUT, DEFAULT_TIMEOUT, GatewayClient,
    RAW_MEDIA_TYPE,
};
pub use mount::{IpfsFactory, IpfsMount, NAME};
