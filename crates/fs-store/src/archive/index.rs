//! The index files of an archive: `index.json` as ferry writes and reads a bundle of
//! repositories in it, and Docker's `manifest.json`.

use std::collections::BTreeMap;

use ferry_core::model::OCI_INDEX;
use ferry_core::{Descriptor, Digest, Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::layout::REF_NAME;

/// The annotation naming the full reference of an image (`registry.example/team/app:1.4`), as
/// `docker save`, containerd and nerdctl write it.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The annotation naming the repository of an `index.json` entry inside a bundle, relative to
/// the prefix the bundle was exported from (`team/app`).
pub const REPOSITORY_ANNOTATION: &str = "dev.ferry.archive.repository";
/// The `index.json` annotation naming the blob that records a delta archive's base.
pub const DELTA_ANNOTATION: &str = "dev.ferry.archive.delta";

/// One image named by an archive's `index.json` (or Docker's `manifest.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct BundleEntry {
    /// The repository inside the bundle (`team/app`); empty when the archive names none.
    pub repository: String,
    /// The tag; `None` for an entry without a name.
    pub tag: Option<String>,
    /// The image's manifest or index, without the name annotations.
    pub descriptor: Descriptor,
}

impl BundleEntry {
    /// `repository:tag` (or `repository@digest`), as the output names it.
    pub fn reference(&self) -> String {
        let repo = if self.repository.is_empty() {
            "(unnamed)"
        } else {
            &self.repository
        };
        match &self.tag {
            Some(t) => format!("{repo}:{t}"),
            None => format!("{repo}@{}", self.descriptor.digest()),
        }
    }
}

/// `index.json` of an archive, read.
#[derive(Debug, Clone, Default)]
pub(crate) struct ArchiveIndex {
    pub entries: Vec<BundleEntry>,
    /// The blob recording a delta archive's base, when there is one.
    pub delta: Option<Digest>,
}

/// Splits a reference (`host/team/app:1.4`, `team/app:1.4`, `alpine`) into its repository
/// path, without a registry host, and its tag.
pub(crate) fn split_reference(name: &str) -> (String, Option<String>) {
    let name = name.split('@').next().unwrap_or(name);
    let (path, tag) = match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => (&name[..i], Some(name[i + 1..].to_string())),
        _ => (name, None),
    };
    let path = match path.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            rest
        }
        _ => path,
    };
    (path.to_string(), tag)
}

/// Whether `name` is a reference rather than a bare tag.
fn is_reference(name: &str) -> bool {
    name.contains('/') || name.contains(':')
}

impl ArchiveIndex {
    /// Parses `index.json`: ferry's repository annotation first, then containerd's full name,
    /// then the tag (a full reference there, as skopeo may write it, is split).
    pub(crate) fn parse(bytes: &[u8], what: &str) -> Result<Self> {
        let doc: Map<String, Value> =
            serde_json::from_slice(bytes).map_err(|e| Error::Damaged {
                what: what.to_string(),
                reason: format!("its `index.json` is not a JSON object: {e}"),
            })?;
        let mut out = ArchiveIndex::default();
        if let Some(d) = doc
            .get("annotations")
            .and_then(|a| a.get(DELTA_ANNOTATION))
            .and_then(Value::as_str)
        {
            out.delta = Some(crate::layout::parse_digest(d).map_err(|e| Error::Damaged {
                what: what.to_string(),
                reason: format!("its `{DELTA_ANNOTATION}` annotation is not a digest: {e}"),
            })?);
        }
        let entries = match doc.get("manifests") {
            Some(Value::Array(a)) => a.as_slice(),
            None | Some(Value::Null) => &[],
            Some(_) => {
                return Err(Error::Damaged {
                    what: what.to_string(),
                    reason: "`manifests` in its `index.json` is not a list".into(),
                });
            }
        };
        for entry in entries {
            let annotation = |key: &str| {
                entry
                    .get("annotations")
                    .and_then(|a| a.get(key))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            let ref_name = annotation(REF_NAME);
            let (repository, tag) = match (
                annotation(REPOSITORY_ANNOTATION),
                annotation(CONTAINERD_NAME),
            ) {
                (Some(repo), _) => (repo, ref_name),
                (None, Some(full)) => {
                    let (repo, tag) = split_reference(&full);
                    (repo, tag.or(ref_name))
                }
                (None, None) => match ref_name {
                    Some(r) if is_reference(&r) => split_reference(&r),
                    other => (String::new(), other),
                },
            };
            let mut stripped = entry.clone();
            if let Some(a) = stripped
                .get_mut("annotations")
                .and_then(Value::as_object_mut)
            {
                for key in [REF_NAME, CONTAINERD_NAME, REPOSITORY_ANNOTATION] {
                    a.remove(key);
                }
                if a.is_empty()
                    && let Some(obj) = stripped.as_object_mut()
                {
                    obj.remove("annotations");
                }
            }
            let descriptor: Descriptor =
                serde_json::from_value(stripped).map_err(|e| Error::Damaged {
                    what: what.to_string(),
                    reason: format!("an entry of its `index.json` is not a descriptor: {e}"),
                })?;
            out.entries.push(BundleEntry {
                repository,
                tag,
                descriptor,
            });
        }
        Ok(out)
    }
}

/// Writes `index.json` for `entries`: each with its tag as `org.opencontainers.image.ref.name`
/// (what skopeo and oras read), the full name `name_base` + repository + tag as
/// `io.containerd.image.name` (what `docker load`, containerd and nerdctl read), and the
/// repository inside the bundle.
pub(crate) fn write_index(
    entries: &[BundleEntry],
    name_base: &str,
    delta: Option<&Digest>,
) -> Vec<u8> {
    let manifests: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut value = serde_json::to_value(&e.descriptor).expect("descriptor JSON");
            let mut annotations: BTreeMap<String, String> = e
                .descriptor
                .annotations()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect();
            if let Some(tag) = &e.tag {
                annotations.insert(REF_NAME.into(), tag.clone());
                annotations.insert(
                    CONTAINERD_NAME.into(),
                    full_name(name_base, &e.repository, tag),
                );
            }
            if !e.repository.is_empty() {
                annotations.insert(REPOSITORY_ANNOTATION.into(), e.repository.clone());
            }
            if !annotations.is_empty() {
                value["annotations"] = json!(annotations);
            }
            value
        })
        .collect();
    let mut index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    if let Some(d) = delta {
        index["annotations"] = json!({ DELTA_ANNOTATION: d.to_string() });
    }
    serde_json::to_vec(&index).expect("index JSON")
}

/// The full name of `repository:tag` exported from `name_base` (`registry.example/team/`).
pub(crate) fn full_name(name_base: &str, repository: &str, tag: &str) -> String {
    format!("{name_base}{repository}:{tag}")
}

/// One image of Docker's `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DockerItem {
    /// The config's member name.
    pub config: String,
    /// The image's names (`registry.example/team/app:1.4`).
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    /// The layers' member names, base first.
    pub layers: Vec<String>,
}

/// Parses Docker's `manifest.json`.
pub(crate) fn parse_docker_manifest(bytes: &[u8], what: &str) -> Result<Vec<DockerItem>> {
    serde_json::from_slice(bytes).map_err(|e| Error::Damaged {
        what: what.to_string(),
        reason: format!("its `manifest.json` is not Docker's list of images: {e}"),
    })
}
