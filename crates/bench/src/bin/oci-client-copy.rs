//! `oci-client-copy [--ca-cert FILE] SRC DST`: copies an image or index between two registries
//! with the `oci-client` crate, over plain HTTP, or over HTTPS trusting the CA in `FILE` (given
//! to the client by its configuration, `extra_root_certificates`), streaming each blob from `Client::pull_blob_stream` into
//! `Client::push_blob_stream` (monolithic PUT), 8 at a time, then pushing the manifests raw.
//! The benchmark's second peer: the best Rust alternative to ferry.

use std::collections::BTreeSet;

use anyhow::{Context as _, Result, anyhow, bail};
use futures::{StreamExt as _, TryStreamExt as _};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::Value;

const ACCEPT: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// How many blobs stream at once.
const CONCURRENCY: usize = 8;

/// The version of the oci-client crate this program was built with, from the lock file.
fn oci_client_version() -> &'static str {
    let lock = include_str!("../../../../Cargo.lock");
    lock.split("[[package]]")
        .find(|p| p.contains("name = \"oci-client\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
        .map(|v| v.trim_matches('"'))
        .unwrap_or("unknown")
}

struct Manifest {
    digest: String,
    media_type: String,
    bytes: bytes::Bytes,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag] if flag == "--version" => {
            println!("oci-client {}", oci_client_version());
            Ok(())
        }
        [src, dst] => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(copy(src, dst, None))
        }
        [flag, ca, src, dst] if flag == "--ca-cert" => {
            let pem = std::fs::read(ca).with_context(|| format!("read `{ca}`"))?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(copy(src, dst, Some(pem)))
        }
        _ => bail!("usage: oci-client-copy [--ca-cert FILE] HOST:PORT/REPO:TAG HOST:PORT/REPO:TAG"),
    }
}

async fn copy(src: &str, dst: &str, ca_pem: Option<Vec<u8>>) -> Result<()> {
    // reqwest is built without a default TLS crypto provider: the program installs one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let src: Reference = src.parse().with_context(|| format!("parse `{src}`"))?;
    let dst: Reference = dst.parse().with_context(|| format!("parse `{dst}`"))?;
    let (protocol, extra_root_certificates) = match ca_pem {
        Some(data) => (
            ClientProtocol::Https,
            vec![Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            }],
        ),
        None => (ClientProtocol::Http, Vec::new()),
    };
    let client = Client::new(ClientConfig {
        protocol,
        extra_root_certificates,
        use_monolithic_push: true,
        platform_resolver: None,
        ..Default::default()
    });
    let (root_bytes, root_digest) = client
        .pull_manifest_raw(&src, &RegistryAuth::Anonymous, ACCEPT)
        .await
        .with_context(|| format!("pull the manifest of `{src}`"))?;
    let root: Value = serde_json::from_slice(&root_bytes)?;
    let mut manifests = Vec::new();
    let mut blobs: Vec<(String, u64)> = Vec::new();
    let mut seen = BTreeSet::new();
    if let Some(children) = root["manifests"].as_array() {
        for child in children {
            let digest = child["digest"]
                .as_str()
                .ok_or_else(|| anyhow!("child without digest"))?;
            let r = Reference::with_digest(
                src.registry().to_string(),
                src.repository().to_string(),
                digest.to_string(),
            );
            let (bytes, _) = client
                .pull_manifest_raw(&r, &RegistryAuth::Anonymous, ACCEPT)
                .await?;
            let value: Value = serde_json::from_slice(&bytes)?;
            add_blobs(&value, &mut blobs, &mut seen);
            manifests.push(Manifest {
                digest: digest.to_string(),
                media_type: media_type(&value, child),
                bytes,
            });
        }
    } else {
        add_blobs(&root, &mut blobs, &mut seen);
    }
    futures::stream::iter(blobs)
        .map(|(digest, size)| {
            let (client, src, dst) = (&client, &src, &dst);
            async move {
                let stream = client
                    .pull_blob_stream(src, digest.as_str())
                    .await
                    .with_context(|| format!("pull `{digest}`"))?;
                let stream = stream.map_err(OciDistributionError::from);
                client
                    .push_blob_stream(dst, stream, &digest, Some(size))
                    .await
                    .with_context(|| format!("push `{digest}`"))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    for m in &manifests {
        let r = Reference::with_digest(
            dst.registry().to_string(),
            dst.repository().to_string(),
            m.digest.clone(),
        );
        client
            .push_manifest_raw(&r, m.bytes.clone(), m.media_type.parse()?)
            .await
            .with_context(|| format!("push manifest `{}`", m.digest))?;
    }
    let root_type = media_type(&root, &Value::Null);
    client
        .push_manifest_raw(&dst, root_bytes, root_type.parse()?)
        .await
        .with_context(|| format!("push manifest `{root_digest}` as `{dst}`"))?;
    Ok(())
}

fn media_type(manifest: &Value, descriptor: &Value) -> String {
    manifest["mediaType"]
        .as_str()
        .or(descriptor["mediaType"].as_str())
        .unwrap_or(if manifest.get("manifests").is_some() {
            ACCEPT[1]
        } else {
            ACCEPT[0]
        })
        .to_string()
}

fn add_blobs(manifest: &Value, blobs: &mut Vec<(String, u64)>, seen: &mut BTreeSet<String>) {
    let config = std::iter::once(&manifest["config"]);
    let layers = manifest["layers"].as_array().into_iter().flatten();
    for d in config.chain(layers) {
        if let (Some(digest), Some(size)) = (d["digest"].as_str(), d["size"].as_u64())
            && seen.insert(digest.to_string())
        {
            blobs.push((digest.to_string(), size));
        }
    }
}
