//! Test servers and fixtures for ferry's integration tests.
//!
//! - [`Registry`]: a real CNCF distribution 2.8 registry (`/usr/bin/docker-registry`) on loopback
//!   with its own storage, optional htpasswd or token auth, S3 storage, and a parsed access log.
//! - [`TokenIssuer`]: the token service of the registry's `auth: token` mode, in process.
//! - [`FakeRegistry`]: an in-memory OCI distribution server for what a real registry cannot be
//!   made to do (forced mount answers, redirects, broken uploads), with request recording.
//! - [`FaultProxy`]: a proxy in front of a registry that injects seeded or permanent faults
//!   (resets, 5xx, 429, truncated, slow or mislabelled answers).
//! - [`SeaweedFs`]: S3-compatible storage that several registries can share.
//! - [`Squid`]: a real forward proxy on loopback that resolves the test names
//!   (`registry.test`) itself, with optional Basic authentication and a parsed access log.
//! - [`TestCa`]: a certificate authority whose certificates TLS registries serve;
//!   [`OpensslCa`]: one made with `openssl`, issuing client certificates of every key kind.
//! - [`fixtures`]: OCI images, indexes and referrers built in memory.
//! - [`prometheus`]: a `/metrics` scrape read by an OpenMetrics parser; node_exporter.
//! - [`peers`]: the peer tools (crane, regctl) when present, and a Docker daemon of the
//!   test's own when `dockerd` can run.
//! - [`util`]: free ports, readiness polling, `skopeo`/`umoci` wrappers, a tiny HTTP client.
//!
//! Every server binds 127.0.0.1 on a free port, keeps its files in its own temporary
//! directory and stops when dropped.

pub mod error;
pub mod fake;
pub mod faults;
pub mod fixtures;
pub mod helia;
pub mod peers;
pub mod prometheus;
pub mod registry;
pub mod s3;
pub mod squid;
pub mod tls;
pub mod token;
pub mod util;

pub use error::{Error, Result};
pub use fake::{BlobHost, FakeRegistry, FakeRegistryBuilder, MountBehaviour, RecordedRequest};
pub use faults::{Fault, FaultPlan, FaultProxy, ProxiedRequest, Rule};
pub use fixtures::{
    Artifact, ArtifactBuilder, Blob, Content, Image, ImageBuilder, Index, IndexBuilder,
};
pub use peers::{DockerDaemon, peer, run_peer};
pub use registry::{LoggedRequest, Registry, RegistryBuilder, S3Storage, TokenAuth};
pub use s3::SeaweedFs;
pub use squid::{ProxyLogEntry, Squid, SquidBuilder};
pub use tempfile::TempDir;
pub use tls::{Issued, KeyKind, OpensslCa, TestCa};
pub use token::{Grant, TokenIssuer, TokenIssuerBuilder, TokenRequest};
pub use util::{HttpResponse, free_port, http, skopeo, tempdir, umoci, wait_for, wait_for_async};
