//! ferry-core: the model, store traits, mount strategies and copy engine of ferry.
//!
//! ferry copies OCI content graphs (manifests, indexes, configs, layers, referrers) between
//! stores. Before a blob's bytes are streamed, the engine asks a [`MountChain`] of
//! [`MountStrategy`]s whether the destination can obtain it some cheaper way: an OCI
//! cross-repository mount, a link on shared storage, an IPFS address, or a vendor's own API.
//!
//! ```no_run
//! # async fn demo(src: std::sync::Arc<dyn ferry_core::ReadStore>,
//! #               dst: std::sync::Arc<dyn ferry_core::WriteStore>,
//! #               strategy: impl ferry_core::MountStrategy + 'static) -> ferry_core::Result<()> {
//! use ferry_core::{copy, CopyOptions, MountChain};
//! let options = CopyOptions { chain: MountChain::new().with(strategy), ..Default::default() };
//! let report = copy(src, "v1", dst, Some("v1"), &options).await?;
//! for node in &report.nodes {
//!     println!("{} {}", node.action.verb(), node.descriptor.digest());
//! }
//! # Ok(()) }
//! ```

pub mod catalog;
pub mod engine;
pub mod error;
#[cfg(feature = "http-client")]
pub mod http;
pub mod locations;
pub mod memory;
pub mod model;
pub mod mount;
pub mod redact;
pub mod report;
pub mod store;
pub mod sync;
pub mod transfers;
pub mod verify;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use catalog::{Catalog, MemoryCatalog};
pub use engine::{
    CopyOptions, EventSink, copy, copy_graph, copy_root, fetch_manifest, select_platform,
};
pub use error::{BoxError, Error, Result, TransportErrorKind};
pub use locations::{BlobLocations, InMemoryLocations, Location, PersistentLocations};
pub use memory::MemoryStore;
pub use model::{Descriptor, Digest, Manifest, MediaType, PlatformFilter};
pub use mount::{
    ChainOutcome, MountAttempt, MountChain, MountOutcome, MountRequest, MountStrategy,
    PreparedUpload,
};
pub use report::{Action, CopyEvent, CopyReport, NodeReport};
pub use store::{
    ByteStream, Capabilities, DeleteTag, FetchFromAddress, KnownAbsent, ListTags, Peek, ReadStore,
    StoreInfo, WriteStore, bytes_stream,
};
pub use transfers::{BlobTransfers, TransferStats};
pub use verify::{Hasher, check_size_stream, sha256, verify_bytes, verify_stream};
