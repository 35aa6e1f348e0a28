//! ferry-distribution: the OCI distribution registry client of ferry.
//!
//! - [`Reference`]: `HOST[:PORT]/REPO[:TAG][@DIGEST]` with docker's rules for short names.
//! - [`RegistryClient`]: HTTP on hyper (HTTP/1.1 and HTTP/2, TLS by rustls, connection reuse,
//!   retries with backoff, an adaptive rate limit per registry that every request passes,
//!   see [`ratelimit`], pacing by the registry's announced quota and a request-rate cap, see
//!   [`quota`], proxies and client certificates by [`ferry_http`]), authentication (anonymous, Basic, bearer tokens from the
//!   `WWW-Authenticate` challenge, OAuth2 refresh tokens, docker's `config.json` and credential
//!   helpers) and one [`Registry`] per host sharing a token cache.
//! - [`Repository`]: one repository as a ferry store ([`ferry_core::ReadStore`] and
//!   [`ferry_core::WriteStore`]): manifests kept byte-exact, blobs streamed both ways,
//!   monolithic and resumable chunked uploads, tags, referrers with the tag-schema fallback.
//! - [`RegistryCatalog`]: a registry's repositories (`/v2/_catalog`, every page) as a
//!   [`ferry_core::Catalog`] a sync lists; tags are listed page by page too, and deleted
//!   ([`ferry_core::DeleteTag`]) by the OCI 1.1 tag delete, or by digest on registries that
//!   only do that, when no other tag needs the manifest.
//! - [`CrossRepoMount`]: the mount strategy using the OCI cross-repository blob mount, which
//!   never fails a copy because a registry refused a mount.
//!
//! ```no_run
//! # async fn demo() -> ferry_core::Result<()> {
//! use ferry_core::{copy, CopyOptions, MountChain};
//! use ferry_distribution::{ClientOptions, CrossRepoMount, Reference, RegistryClient};
//!
//! let client = RegistryClient::new(ClientOptions::default())?;
//! let src = client.repository(&Reference::parse("localhost:5000/team/app:v1")?)?;
//! let dst = client.repository(&Reference::parse("localhost:5000/prod/app")?)?;
//! let options = CopyOptions::default().with_chain(MountChain::new().with(CrossRepoMount::new()));
//! copy(src, "v1", dst, Some("v1"), &options).await?;
//! # Ok(()) }
//! ```

pub mod auth;
mod catalog;
mod client;
mod clock;
mod delete;
mod download;
mod error;
mod listing;
mod login;
pub mod mount;
pub mod quota;
pub mod ratelimit;
pub mod reference;
pub mod referrers;
mod registry;
mod repository;
pub mod transport;
mod upload;

pub use auth::{Clock, Credential, CredentialLocation, Credentials, SystemClock};
pub use catalog::RegistryCatalog;
pub use client::{
    ClientOptions, DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_THRESHOLD, DEFAULT_ONE_STREAM_RATE,
    DEFAULT_RANGE_SIZE, DEFAULT_RANGE_THRESHOLD, DEFAULT_RANGES, RegistryClient,
};
pub use login::LoginCheck;
pub use mount::{CrossRepoFactory, CrossRepoMount};
pub use reference::Reference;
pub use registry::Registry;
pub use repository::Repository;
pub use transport::{RetryPolicy, Timeouts};
