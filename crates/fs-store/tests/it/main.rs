//! Integration tests of ferry-fs-store: the store and strategy contracts, path safety,
//! concurrent tagging from several processes, reflink on a real XFS loop mount, copies through
//! the engine, and interoperability with skopeo and umoci.

mod archive;
mod catalog;
mod concurrency;
mod conformance;
mod copy;
mod dir;
#[cfg(feature = "s3")]
mod distribution_storage;
mod features;
mod index_json;
mod interop;
mod layout;
mod shared;
mod support;
