//! Mount attempts as the report records them.

use std::borrow::Cow;
use std::fmt::Display;
use std::time::Duration;

use serde::Serialize;

/// The name of a mount strategy, as reports and `--mount` write it (`cross-repo`,
/// `shared-storage`): what [`MountStrategy::name`](crate::MountStrategy::name) says, or a
/// strategy factory's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StrategyName(Cow<'static, str>);

impl StrategyName {
    /// A name known when the program is written, such as a factory's.
    pub const fn from_static(name: &'static str) -> Self {
        Self(Cow::Borrowed(name))
    }

    /// A name made at run time.
    pub fn new(name: impl Into<String>) -> Self {
        Self(Cow::Owned(name.into()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Display for StrategyName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for StrategyName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for StrategyName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl From<&'static str> for StrategyName {
    fn from(name: &'static str) -> Self {
        Self::from_static(name)
    }
}

impl Serialize for StrategyName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// How a strategy brought a blob to the destination, for the report and the output.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MountMethod {
    /// The registry linked the blob from another of its repositories (the OCI
    /// cross-repository mount).
    CrossRepository,
    /// A copy-on-write clone of the blob's file.
    Reflink,
    /// A hardlink to the blob's file.
    Hardlink,
    /// A copy made by the storage service itself (`CopyObject`).
    ServerSideCopy,
    /// The data was in the destination's storage already; only the repository's link to it
    /// was written.
    LinkOnly,
    /// The client fetched the blob from an address (an `ipfs://` URL) rather than from the
    /// source, and pushed it.
    FetchedFromAddress,
    /// The destination fetched the blob from an address by itself
    /// ([`crate::FetchFromAddress`]).
    FetchedByDestination,
    /// Any other way, named by the strategy (a vendor API's link, for instance).
    Other(String),
}

impl MountMethod {
    /// A method of a strategy's own, such as `admin link`.
    pub fn other(name: impl Into<String>) -> Self {
        MountMethod::Other(name.into())
    }

    /// A stable identifier, as the JSON report writes it (`hardlink`, `server-side-copy`).
    pub fn id(&self) -> &str {
        match self {
            MountMethod::CrossRepository => "cross-repository",
            MountMethod::Reflink => "reflink",
            MountMethod::Hardlink => "hardlink",
            MountMethod::ServerSideCopy => "server-side-copy",
            MountMethod::LinkOnly => "link-only",
            MountMethod::FetchedFromAddress => "fetched-from-address",
            MountMethod::FetchedByDestination => "fetched-by-destination",
            MountMethod::Other(name) => name,
        }
    }
}

impl Display for MountMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MountMethod::CrossRepository => "cross-repository mount",
            MountMethod::Reflink => "reflink",
            MountMethod::Hardlink => "hardlink",
            MountMethod::ServerSideCopy => "server-side copy",
            MountMethod::LinkOnly => "link only",
            MountMethod::FetchedFromAddress => "fetched from address",
            MountMethod::FetchedByDestination => "fetched by the destination",
            MountMethod::Other(name) => name,
        })
    }
}

impl Serialize for MountMethod {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

/// What one attempt of a chain gave, as the report records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// The strategy mounted the blob.
    Mounted,
    /// The strategy found the blob at the destination.
    AlreadyPresent,
    /// The strategy did not apply.
    NotApplicable,
    /// The strategy applied but could not mount.
    Declined,
    /// The strategy failed, and the chain with it.
    Error,
}

impl AttemptOutcome {
    /// `mounted`, `already-present`, `not-applicable`, `declined` or `error`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AttemptOutcome::Mounted => "mounted",
            AttemptOutcome::AlreadyPresent => "already-present",
            AttemptOutcome::NotApplicable => "not-applicable",
            AttemptOutcome::Declined => "declined",
            AttemptOutcome::Error => "error",
        }
    }
}

impl Display for AttemptOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One attempt of a chain, for the log and the report.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MountAttempt {
    /// The strategy's name.
    pub strategy: StrategyName,
    /// What the attempt gave.
    pub outcome: AttemptOutcome,
    /// Where from, or why not.
    pub detail: String,
    /// How long the attempt took.
    #[serde(serialize_with = "super::serialize_duration")]
    pub duration: Duration,
    /// Bytes the attempt moved through the client (a blob fetched from an address and
    /// pushed).
    #[serde(skip_serializing_if = "is_zero")]
    pub bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
