//! The content model: descriptors, media types and digests from `oci-spec`, and how to find a
//! node's children.

use bytes::Bytes;
pub use oci_spec::image::{Descriptor, Digest, DigestAlgorithm, MediaType, Platform};
use serde::Deserialize;

use crate::error::{Error, Result};

/// Media type of an OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of a Docker v2 schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Media type of a Docker v2 manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Media type of the (withdrawn) OCI artifact manifest, still found in some registries.
pub const OCI_ARTIFACT_MANIFEST: &str = "application/vnd.oci.artifact.manifest.v1+json";

/// Every manifest media type ferry walks, for `Accept` headers.
pub const MANIFEST_MEDIA_TYPES: &[&str] = &[
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_ARTIFACT_MANIFEST,
];

/// The default limit on the size of one manifest: 4 MiB, as registries enforce.
pub const DEFAULT_MANIFEST_LIMIT: u64 = 4 * 1024 * 1024;

/// Whether `media_type` is an index (OCI index or Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// Whether `media_type` is a manifest of any kind ferry walks (image manifest or index).
pub fn is_manifest(media_type: &str) -> bool {
    MANIFEST_MEDIA_TYPES.contains(&media_type)
}

/// Whether `media_type` is a foreign (non-distributable) layer that must not be copied.
pub fn is_foreign_layer(media_type: &str) -> bool {
    media_type.contains(".foreign.") || media_type.contains("nondistributable")
}

/// The longest tag the distribution spec allows.
pub const MAX_TAG_LENGTH: usize = 128;

/// What a tag may be, for error messages.
pub const TAG_RULE: &str = "a tag is 1 to 128 characters of letters, digits, `_`, `.` and `-`, \
                            not starting with `.` or `-`";

/// Checks a tag against the distribution spec, `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`, which OCI
/// layouts (`org.opencontainers.image.ref.name`) follow as well.
pub fn validate_tag(tag: &str) -> Result<()> {
    let b = tag.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= MAX_TAG_LENGTH
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "tag",
            tag.escape_debug().to_string(),
            TAG_RULE,
        ))
    }
}

/// The first 12 hex characters of a digest, as the output shows it.
pub fn short_digest(digest: &Digest) -> &str {
    let hex = digest.digest();
    &hex[..hex.len().min(12)]
}

/// The media type of a descriptor as a string.
pub fn media_type_str(descriptor: &Descriptor) -> String {
    descriptor.media_type().to_string()
}

/// A manifest or index as ferry needs it: exact bytes plus the descriptors it points to.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The descriptor of the manifest itself.
    pub descriptor: Descriptor,
    /// The bytes exactly as fetched; re-serializing would change the digest.
    pub bytes: Bytes,
    /// `config` of an image manifest.
    pub config: Option<Descriptor>,
    /// `layers` of an image manifest (`blobs` of an artifact manifest).
    pub layers: Vec<Descriptor>,
    /// `manifests` of an index.
    pub manifests: Vec<Descriptor>,
    /// `subject`, the manifest this one refers to.
    pub subject: Option<Descriptor>,
    /// `artifactType`, or the config media type for artifacts packed as images.
    pub artifact_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    blobs: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    subject: Option<Descriptor>,
}

impl Manifest {
    /// Parses manifest `bytes` fetched for `descriptor`. The bytes must already be verified.
    pub fn parse(descriptor: &Descriptor, bytes: Bytes) -> Result<Self> {
        let digest = descriptor.digest();
        let invalid = |reason: String| Error::InvalidManifest {
            digest: digest.clone(),
            reason,
        };
        // serde reads a struct from a JSON array too, field by position; a manifest is an
        // object (found by the `manifest_successors` fuzz target).
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(invalid(
                "not a manifest JSON document: it is not a JSON object".into(),
            ));
        }
        let raw: RawManifest = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(format!("not a manifest JSON document: {e}")))?;
        let declared = media_type_str(descriptor);
        if let Some(inner) = &raw.media_type
            && inner != &declared
            && is_manifest(&declared)
        {
            return Err(invalid(format!(
                "its mediaType `{inner}` differs from the descriptor's `{declared}`"
            )));
        }
        if raw.schema_version == Some(1) {
            return Err(invalid(
                "Docker schema 1 manifests are not supported; convert the image to schema 2 or OCI"
                    .into(),
            ));
        }
        let is_idx = is_index(&declared);
        if is_idx && raw.manifests.is_none() {
            return Err(invalid("an index without `manifests`".into()));
        }
        if !is_idx && declared != OCI_ARTIFACT_MANIFEST && raw.config.is_none() {
            return Err(invalid("an image manifest without `config`".into()));
        }
        let artifact_type = raw
            .artifact_type
            .or_else(|| raw.config.as_ref().map(|c| c.media_type().to_string()));
        Ok(Manifest {
            descriptor: descriptor.clone(),
            bytes,
            config: raw.config,
            layers: raw.layers.or(raw.blobs).unwrap_or_default(),
            manifests: raw.manifests.unwrap_or_default(),
            subject: raw.subject,
            artifact_type,
        })
    }

    /// The children every copy must bring along, subject first, then manifests, config, layers.
    pub fn successors(&self) -> Vec<Descriptor> {
        let mut out = Vec::with_capacity(self.manifests.len() + self.layers.len() + 2);
        out.extend(self.subject.iter().cloned());
        out.extend(self.manifests.iter().cloned());
        out.extend(self.config.iter().cloned());
        out.extend(self.layers.iter().cloned());
        out
    }
}

/// A platform filter parsed from `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformFilter {
    /// Operating system, such as `linux`.
    pub os: String,
    /// Architecture, such as `amd64`.
    pub architecture: String,
    /// Variant, such as `v8`.
    pub variant: Option<String>,
}

impl std::str::FromStr for PlatformFilter {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || {
            Error::invalid(
                "platform",
                s,
                "expected `os/arch` or `os/arch/variant`, as in `linux/arm64/v8`",
            )
        };
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        Ok(PlatformFilter {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }
}

impl std::fmt::Display for PlatformFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl PlatformFilter {
    /// Whether `platform` matches. A filter without variant matches every variant.
    pub fn matches(&self, platform: &Platform) -> bool {
        platform.os().to_string() == self.os
            && platform.architecture().to_string() == self.architecture
            && match &self.variant {
                None => true,
                Some(v) => platform.variant().as_deref() == Some(v.as_str()),
            }
    }
}
