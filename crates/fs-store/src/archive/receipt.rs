//! Receipts and delta records: what a destination holds from the bundles imported into it, so
//! that the next export leaves that content out.
//!
//! An import writes a [`Receipt`] (`--receipt FILE`): per repository of the bundle, every
//! manifest and blob the destination now holds from it, and the images (repository, tag,
//! digest). An export given a receipt (or the previous archive itself, whose receipt it works
//! out) leaves out every blob and manifest the receipt lists, and records in the archive a
//! [`DeltaRecord`]: which of them the new content needs, in which repository of the
//! destination each is, and the base receipt whole, so that the import after it writes a
//! receipt of everything again.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use ferry_core::{Descriptor, Digest, Error, Result};
use serde::{Deserialize, Serialize};

use crate::layout::parse_digest;

/// The version of the receipt format ferry writes.
pub const RECEIPT_VERSION: u32 = 1;
/// The media type of a [`DeltaRecord`] blob.
pub const DELTA_MEDIA_TYPE: &str = "application/vnd.dev.ferry.archive.delta.v1+json";

/// What a destination holds from the bundles imported into it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// The format version, [`RECEIPT_VERSION`].
    pub ferry_receipt: u32,
    /// The archives imported, oldest first.
    #[serde(default)]
    pub archives: Vec<String>,
    /// Where they were imported.
    #[serde(default)]
    pub destination: String,
    /// The images, by repository and tag.
    #[serde(default)]
    pub images: Vec<ReceiptImage>,
    /// Per repository of the bundle, the content the destination holds.
    #[serde(default)]
    pub repositories: BTreeMap<String, ReceiptRepository>,
}

/// One image of a [`Receipt`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptImage {
    /// The repository inside the bundle.
    pub repository: String,
    /// The tag.
    pub tag: String,
    /// The image's manifest or index as the destination holds it.
    pub descriptor: Descriptor,
}

/// The content of one repository in a [`Receipt`]: digests and sizes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReceiptRepository {
    /// Manifests and indexes.
    #[serde(default)]
    pub manifests: BTreeMap<String, u64>,
    /// Configs, layers and other blobs.
    #[serde(default)]
    pub blobs: BTreeMap<String, u64>,
}

impl Receipt {
    /// An empty receipt for imports into `destination`.
    pub fn new(destination: impl Into<String>) -> Self {
        Self {
            ferry_receipt: RECEIPT_VERSION,
            destination: destination.into(),
            ..Self::default()
        }
    }

    /// Parses a receipt, checking its version and every digest.
    pub fn parse(bytes: &[u8], what: &str) -> Result<Self> {
        let bad = |reason: String| Error::invalid("receipt", what, reason);
        let receipt: Receipt = serde_json::from_slice(bytes).map_err(|e| {
            bad(format!(
                "not a receipt ferry wrote (`--receipt` of an import): {e}"
            ))
        })?;
        if receipt.ferry_receipt != RECEIPT_VERSION {
            return Err(bad(format!(
                "receipt version {} is not the version {RECEIPT_VERSION} this ferry reads",
                receipt.ferry_receipt
            )));
        }
        for repo in receipt.repositories.values() {
            for d in repo.manifests.keys().chain(repo.blobs.keys()) {
                parse_digest(d).map_err(|e| bad(format!("it lists `{d}`: {e}")))?;
            }
        }
        Ok(receipt)
    }

    /// Reads the receipt file `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = fs_err::read(path).map_err(|e| Error::io("reading the receipt", e))?;
        Self::parse(&bytes, &path.display().to_string())
    }

    /// Writes the receipt to `path`, whole or not at all (written aside, then renamed).
    pub fn write(&self, path: &Path) -> Result<()> {
        let io = |e| Error::io(format!("writing the receipt `{}`", path.display()), e);
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".receipt-")
            .tempfile_in(dir)
            .map_err(io)?;
        let mut bytes = serde_json::to_vec_pretty(self).expect("receipt JSON");
        bytes.push(b'\n');
        tmp.write_all(&bytes).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }

    /// Records that the destination holds `manifests` and `blobs` in `repository`.
    pub fn add_content(
        &mut self,
        repository: &str,
        manifests: impl IntoIterator<Item = (Digest, u64)>,
        blobs: impl IntoIterator<Item = (Digest, u64)>,
    ) {
        let repo = self.repositories.entry(repository.to_string()).or_default();
        repo.manifests
            .extend(manifests.into_iter().map(|(d, s)| (d.to_string(), s)));
        repo.blobs
            .extend(blobs.into_iter().map(|(d, s)| (d.to_string(), s)));
    }

    /// Records the image `repository:tag`, replacing what the tag named before.
    pub fn add_image(&mut self, repository: &str, tag: &str, descriptor: Descriptor) {
        self.images
            .retain(|i| !(i.repository == repository && i.tag == tag));
        self.images.push(ReceiptImage {
            repository: repository.to_string(),
            tag: tag.to_string(),
            descriptor,
        });
    }

    /// Lays `newer` over this receipt: its images replace those of the same tag, its content
    /// adds to each repository's, its archives follow.
    pub fn merge(&mut self, newer: &Receipt) {
        for image in &newer.images {
            self.add_image(&image.repository, &image.tag, image.descriptor.clone());
        }
        for (name, repo) in &newer.repositories {
            let mine = self.repositories.entry(name.clone()).or_default();
            mine.manifests
                .extend(repo.manifests.iter().map(|(d, s)| (d.clone(), *s)));
            mine.blobs
                .extend(repo.blobs.iter().map(|(d, s)| (d.clone(), *s)));
        }
        self.archives.extend(newer.archives.iter().cloned());
        if !newer.destination.is_empty() {
            self.destination = newer.destination.clone();
        }
    }

    /// Where each digest the receipt lists is: the first repository (by name) that holds it,
    /// and its size.
    pub(crate) fn holders(&self) -> HashMap<Digest, (String, u64)> {
        let mut out = HashMap::new();
        for (name, repo) in self.repositories.iter().rev() {
            for (d, size) in repo.manifests.iter().chain(repo.blobs.iter()) {
                if let Ok(d) = parse_digest(d) {
                    out.insert(d, (name.clone(), *size));
                }
            }
        }
        out
    }
}

/// What a delta archive records of its base: the blobs and manifests it left out that its
/// content needs, where each is at the destination, and the base receipt whole.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeltaRecord {
    /// [`DELTA_MEDIA_TYPE`].
    pub media_type: String,
    /// The receipt or previous archive the delta was made against, as named on export.
    pub base: String,
    /// What the archive's content needs that it does not carry: expected at the destination.
    pub expected: Vec<Expected>,
    /// The base receipt.
    pub receipt: Receipt,
}

/// A blob or manifest a delta archive expects at the destination.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Expected {
    /// The repository of the bundle that holds it at the destination.
    pub repository: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its media type, when it is a manifest (a registry is asked for manifests and blobs
    /// apart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

impl DeltaRecord {
    /// Parses a delta record blob.
    pub fn parse(bytes: &[u8], what: &str) -> Result<Self> {
        let record: DeltaRecord = serde_json::from_slice(bytes).map_err(|e| Error::Damaged {
            what: what.to_string(),
            reason: format!("its delta record is not one ferry wrote: {e}"),
        })?;
        if record.media_type != DELTA_MEDIA_TYPE {
            return Err(Error::Damaged {
                what: what.to_string(),
                reason: format!(
                    "its delta record has the media type `{}`, not `{DELTA_MEDIA_TYPE}`",
                    record.media_type
                ),
            });
        }
        Ok(record)
    }
}
