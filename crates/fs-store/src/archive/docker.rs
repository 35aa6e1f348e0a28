//! `docker-archive:`: a `docker save` tar (Docker's `manifest.json`, with configs and layers
//! under any names: `blobs/sha256/<hex>`, `<hex>.tar`, `<id>/layer.tar` links) read as a
//! bundle of images.
//!
//! Each image gets an OCI manifest made from its `manifest.json` item: the config and the
//! layers as the archive holds them (compressed or not; nothing is recompressed), each
//! layer's media type from its first bytes. Such a manifest cannot be the one the image had
//! in a registry, so its digest is new, as with skopeo's and crane's readers.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use ferry_core::model::OCI_MANIFEST;
use ferry_core::{Digest, Error, Result, sha256};
use serde_json::{Value, json};

use super::bundle::{ArchiveBundle, Source, archive_info, read_at};
use super::compression::Compression;
use super::file::{
    RawMember, ReadOptions, damaged, dedup_members, open_uncompressed, scan_members,
};
use super::index::{BundleEntry, DockerItem, parse_docker_manifest, split_reference};
use super::names::{DOCKER_MANIFEST_FILE, Kind, docker_name, link_target};

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// How many links a name may go through.
const MAX_LINKS: usize = 8;

/// Opens the Docker archive at `path` (an uncompressed tar). Blocking.
pub fn open_docker(path: &Path, options: &ReadOptions) -> Result<ArchiveBundle> {
    let what = format!("docker-archive:{}", path.display());
    let file = open_uncompressed(
        path,
        &what,
        "decompress it first (`docker-archive:` is read by offset)",
    )?;
    let members = scan_members(&file, &what, &|raw, kind| docker_name(raw, kind))?;
    let members = dedup_members(&file, members)?;
    let table: HashMap<&str, &RawMember> = members.iter().map(|m| (m.name.as_str(), m)).collect();
    let Some(list) = table.get(DOCKER_MANIFEST_FILE) else {
        return Err(Error::invalid(
            "archive",
            what,
            "it has no Docker `manifest.json`; read an OCI archive as `oci-archive:PATH`",
        ));
    };
    let list = resolve(&table, list, &what)?;
    let items = parse_docker_manifest(&small(&file, list, options, &what)?, &what)?;
    let mut entries = Vec::new();
    let mut blobs: HashMap<Digest, Source> = HashMap::new();
    for item in items {
        let (manifest, parts) = image(&file, &table, &item, options, &what)?;
        for (digest, member) in parts {
            blobs.insert(
                digest,
                Source::Member {
                    offset: member.offset,
                    size: member.size,
                },
            );
        }
        let descriptor = ferry_core::Descriptor::new(
            OCI_MANIFEST.into(),
            manifest.len() as u64,
            sha256(&manifest),
        );
        blobs.insert(descriptor.digest().clone(), Source::Held(manifest));
        let names = item.repo_tags.clone().unwrap_or_default();
        if names.is_empty() {
            entries.push(BundleEntry {
                repository: options.default_repository.clone(),
                tag: None,
                descriptor: descriptor.clone(),
            });
        }
        for name in names {
            let (repository, tag) = split_reference(&name);
            entries.push(BundleEntry {
                repository,
                tag: Some(tag.unwrap_or_else(|| "latest".into())),
                descriptor: descriptor.clone(),
            });
        }
    }
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut info = archive_info(Some(&canonical), &what);
    info.scheme = "docker-archive".into();
    Ok(ArchiveBundle::new(
        info,
        entries,
        blobs,
        Some(Arc::new(file)),
        None,
        options.manifest_limit,
    ))
}

/// The member `name` leads to through links.
fn resolve<'a>(
    table: &HashMap<&str, &'a RawMember>,
    member: &'a RawMember,
    what: &str,
) -> Result<&'a RawMember> {
    let mut current = member;
    for _ in 0..MAX_LINKS {
        if current.kind == Kind::File {
            return Ok(current);
        }
        let target = link_target(
            &current.name,
            current.link.as_deref().unwrap_or_default(),
            current.kind,
        )?;
        current = table.get(target.as_str()).copied().ok_or_else(|| {
            damaged(
                what,
                format!(
                    "`{}` links to `{target}`, which it does not hold",
                    current.name
                ),
            )
        })?;
    }
    Err(damaged(
        what,
        format!("`{}` goes through more than {MAX_LINKS} links", member.name),
    ))
}

fn member<'a>(
    table: &HashMap<&str, &'a RawMember>,
    name: &str,
    what: &str,
) -> Result<&'a RawMember> {
    let cleaned = super::names::normalize(name)?;
    let m = table.get(cleaned.as_str()).ok_or_else(|| {
        damaged(
            what,
            format!("its `manifest.json` names `{name}`, which it does not hold"),
        )
    })?;
    resolve(table, m, what)
}

fn small(
    file: &std::fs::File,
    m: &RawMember,
    options: &ReadOptions,
    what: &str,
) -> Result<Vec<u8>> {
    if m.size > options.manifest_limit {
        return Err(Error::TooLarge {
            what: format!("`{}` of {what}", m.name),
            size: m.size,
            limit: options.manifest_limit,
        });
    }
    read_at(file, m.offset, m.size)
}

/// The OCI manifest of one `manifest.json` item, and the config and layers it names.
fn image<'a>(
    file: &std::fs::File,
    table: &HashMap<&str, &'a RawMember>,
    item: &DockerItem,
    options: &ReadOptions,
    what: &str,
) -> Result<(Bytes, Vec<(Digest, &'a RawMember)>)> {
    let config_member = member(table, &item.config, what)?;
    let config = small(file, config_member, options, what)?;
    let config_digest = sha256(&config);
    let parsed: Value = serde_json::from_slice(&config).map_err(|e| {
        damaged(
            what,
            format!("the config `{}` is not JSON: {e}", item.config),
        )
    })?;
    let diff_ids = parsed
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if diff_ids != item.layers.len() {
        return Err(damaged(
            what,
            format!(
                "the config `{}` lists {diff_ids} layers and `manifest.json` {}",
                item.config,
                item.layers.len()
            ),
        ));
    }
    let mut parts = vec![(config_digest.clone(), config_member)];
    let mut layers = Vec::new();
    for name in &item.layers {
        let m = member(table, name, what)?;
        let digest = match digest_in_name(name) {
            Some(d) => d,
            None => hash_member(file, m)?,
        };
        let head = read_at(file, m.offset, m.size.min(8))?;
        let media_type = match Compression::detect(&head, name)? {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        };
        layers.push(json!({"mediaType": media_type, "digest": digest.to_string(), "size": m.size}));
        parts.push((digest, m));
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": layers,
    });
    Ok((
        Bytes::from(serde_json::to_vec(&manifest).expect("manifest JSON")),
        parts,
    ))
}

/// The digest a member's name gives, for the writers that name content by its digest:
/// `blobs/sha256/<hex>` (Docker 25, containerd), `<hex>.tar` (skopeo), `<hex>.tar.gz`
/// (crane), `sha256:<hex>` (crane's configs). A wrong name fails the copy's verification.
fn digest_in_name(name: &str) -> Option<Digest> {
    let last = name.rsplit('/').next().unwrap_or(name);
    let hex = if name.starts_with("blobs/sha256/") {
        last
    } else if let Some(hex) = last.strip_prefix("sha256:") {
        hex
    } else {
        last.strip_suffix(".tar.gz")
            .or_else(|| last.strip_suffix(".tar.zst"))
            .or_else(|| last.strip_suffix(".tar"))?
    };
    crate::layout::parse_digest(&format!("sha256:{hex}")).ok()
}

/// The sha256 of a member, read once.
fn hash_member(file: &std::fs::File, m: &RawMember) -> Result<Digest> {
    const CHUNK: u64 = 1 << 20;
    let mut hasher = ferry_core::Hasher::new(&oci_spec::image::DigestAlgorithm::Sha256)
        .expect("sha256 is supported");
    let mut done = 0;
    while done < m.size {
        let n = CHUNK.min(m.size - done);
        hasher.update(&read_at(file, m.offset + done, n)?);
        done += n;
    }
    Ok(hasher.finish())
}
