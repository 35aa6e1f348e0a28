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
//! use std::time::Duration;
//! use ferry_core::{copy, CopyOptions, MountChain, MountStrategyExt};
//! let chain = MountChain::new().with(strategy.with_timeout(Duration::from_secs(30)));
//! let options = CopyOptions::default().with_chain(chain).with_concurrency(4);
//! let report = copy(src, "v1", dst, Some("v1"), &options).await?;
//! for node in &report.nodes {
//!     println!("{} {} {:?}", node.action.verb(), node.descriptor.digest(), node.method);
//! }
//! # Ok(()) }
//! ```
//!
//! - **Stores** ([`ReadStore`], [`WriteStore`]) say who they are ([`StoreInfo`]) and what
//!   else they can do ([`Capabilities`]: a [`RegistryRepository`] to mount into, [`LocalBlobs`]
//!   files to link, [`FetchFromAddress`], [`ListTags`], [`DeleteTag`], [`Peek`]). Strategies
//!   use these,
//!   never a store's concrete type, so `Arc<T>`, `Box<T>` and any decorator built on
//!   [`StoreWrapper`] work wherever the store does.
//! - **Strategies** answer with a [`MountOutcome`] ("could not" is an outcome, never an error)
//!   and compose with [`layer`]s: [`MountStrategyExt::with_timeout`],
//!   [`MountStrategyExt::resting_after_failure`], [`MountStrategyExt::traced`].
//! - **The engine** ([`copy`], [`copy_graph`]) returns a [`CopyReport`] with one
//!   [`NodeReport`] per node (action, strategy, [`MountMethod`], bytes through the client,
//!   every [`MountAttempt`]) and streams [`CopyEvent`]s for progress.
//!
//! # The crates around it
//!
//! ferry-core holds the model and the contracts only, and depends on no HTTP or TLS stack
//! and no database. Around it: `ferry-sync` (many copies planned and run as one),
//! `ferry-http` (the one HTTP client builder and its TLS and proxy policy),
//! `ferry-conformance` (the behaviour suites every store and strategy runs), `ferry-cache`
//! (the blob-location cache kept on disk), and the stores and strategies:
//! `ferry-distribution`, `ferry-fs-store`, `ferry-ipfs-mount`.

pub mod catalog;
pub mod engine;
pub mod error;
pub mod forward;
pub mod inspect;
pub mod layer;
pub mod locations;
pub mod memory;
pub mod model;
pub mod mount;
pub mod redact;
pub mod report;
pub mod retry;
pub mod stop;
pub mod store;
pub mod transfers;
pub mod verify;

pub use catalog::{Catalog, MemoryCatalog};
pub use engine::{CopyOptions, copy, copy_graph, copy_root, fetch_manifest, select_platform};
pub use error::{BoxError, Error, Result, TransportErrorKind};
pub use forward::{StoreWrapper, WriteStoreWrapper};
pub use layer::MountStrategyExt;
pub use locations::{BlobLocations, InMemoryLocations, Location};
pub use memory::MemoryStore;
pub use model::{Descriptor, Digest, Manifest, MediaType, PlatformFilter};
pub use mount::{
    ChainOutcome, ChainPlan, CorruptLocation, MountChain, MountOutcome, MountPlan, MountRequest,
    MountStrategy, StrategyConfig, StrategyFactories, StrategyFactory,
};
pub use report::{
    Action, AttemptOutcome, CopyEvent, CopyReport, CopyWarning, EventSink, MountAttempt,
    MountMethod, NodeReason, NodeReport, PlanTotals, StrategyName,
};
pub use retry::{RetryPolicy, Retryable};
pub use stop::{Stop, StopLevel};
pub use store::{
    BlobMount, ByteStream, Capabilities, DeleteManifest, DeleteTag, FetchFromAddress, KnownAbsent,
    ListTags, LocalBlobs, Peek, PreparedUpload, ReadStore, RegistryRepository, StoreInfo,
    WriteStore, bytes_stream,
};
pub use transfers::{BlobTransfers, TransferStats};
pub use verify::{Hasher, check_size_stream, sha256, verify_bytes, verify_stream};
