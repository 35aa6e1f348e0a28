//! The floor: a minimal client that streams every blob GET → POST → PUT `?digest=` (into a
//! layout: GET → file, synced) with no verification, no existence checks and no other
//! request, then puts the manifests. What it costs is what the registries and the kernel cost;
//! no real copier can do less work over HTTP. The harness also seeds its source registries with
//! it. `sync_check` is the same for an incremental sync: the listings and `HEAD`s, nothing more;
//! `sync_copy` for a cold one.

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, Result, anyhow, bail};
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Empty, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::generate::{OCI_INDEX, OCI_MANIFEST};

/// Every manifest media type the floor asks for.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

/// A copy endpoint: `oci:DIR:TAG` or `HOST:PORT/REPO:TAG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A registry repository.
    Registry {
        /// `HOST:PORT`.
        host: String,
        /// The repository.
        repo: String,
        /// The tag.
        tag: String,
    },
    /// An OCI image layout.
    Layout {
        /// The directory.
        dir: PathBuf,
        /// The tag.
        tag: String,
    },
}

impl Endpoint {
    /// Parses `oci:DIR:TAG` or `HOST:PORT/REPO:TAG`.
    pub fn parse(s: &str) -> Result<Self> {
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, tag) = rest
                .rsplit_once(':')
                .ok_or_else(|| anyhow!("`{s}`: expected `oci:DIR:TAG`"))?;
            return Ok(Self::Layout {
                dir: dir.into(),
                tag: tag.into(),
            });
        }
        let (host, rest) = s
            .split_once('/')
            .ok_or_else(|| anyhow!("`{s}`: expected `HOST:PORT/REPO:TAG`"))?;
        let (repo, tag) = rest
            .rsplit_once(':')
            .ok_or_else(|| anyhow!("`{s}`: expected `HOST:PORT/REPO:TAG`"))?;
        Ok(Self::Registry {
            host: host.into(),
            repo: repo.into(),
            tag: tag.into(),
        })
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Registry { host, repo, tag } => write!(f, "{host}/{repo}:{tag}"),
            Self::Layout { dir, tag } => write!(f, "oci:{}:{tag}", dir.display()),
        }
    }
}

/// A manifest: its bytes and media type.
#[derive(Debug, Clone)]
struct Manifest {
    digest: String,
    media_type: String,
    bytes: Bytes,
}

/// The graph under a root: blobs (digest, size), manifests children first, root last.
#[derive(Debug, Default)]
struct Graph {
    blobs: Vec<(String, u64)>,
    manifests: Vec<Manifest>,
}

/// The minimal streaming copier.
#[derive(Debug, Clone)]
pub struct Floor {
    client: Client<HttpsConnector<HttpConnector>, Body>,
    concurrency: usize,
    scheme: &'static str,
}

/// How the floor reaches registries over TLS.
#[derive(Debug, Clone)]
pub struct FloorTls {
    /// PEM of the CA to trust.
    pub ca_pem: Vec<u8>,
    /// Offer HTTP/2 as well as HTTP/1.1 by ALPN.
    pub http2: bool,
}

impl Floor {
    /// A client running `concurrency` blob transfers at once, over plain HTTP, or over TLS
    /// trusting the CA of `tls`, with hyper's and rustls' defaults: an independent minimal
    /// client, not ferry's transport. Over TLS it offers HTTP/1.1 only unless told otherwise:
    /// distribution's HTTP/2 server costs the same copy 30% more wall time and 70% more CPU.
    pub fn new(concurrency: usize, tls: Option<&FloorTls>) -> Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        if let Some(t) = tls {
            use rustls::pki_types::pem::PemObject as _;
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&t.ca_pem) {
                roots.add(cert.context("the CA file holds no certificate")?)?;
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1();
        let connector = if tls.is_some_and(|t| t.http2) {
            builder.enable_http2().wrap_connector(http)
        } else {
            builder.wrap_connector(http)
        };
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            client,
            concurrency,
            scheme: if tls.is_some() { "https" } else { "http" },
        })
    }

    /// The digest the registry gives for `host/repo:tag` (a `HEAD` of the manifest).
    pub async fn head_digest(&self, host: &str, repo: &str, tag: &str) -> Result<String> {
        let url = format!("{}://{host}/v2/{repo}/manifests/{tag}", self.scheme);
        let req = Request::builder()
            .method(Method::HEAD)
            .uri(&url)
            .header("accept", MANIFEST_ACCEPT)
            .body(empty())?;
        let resp = self.client.request(req).await?;
        Ok(resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string())
    }

    /// Copies the graph tagged at `src` to `dst`.
    pub async fn copy(&self, src: &Endpoint, dst: &Endpoint) -> Result<()> {
        let (dst_host, dst_repo, dst_tag) = match dst {
            Endpoint::Registry { host, repo, tag } => (host, repo, tag),
            Endpoint::Layout { dir, tag } => return self.copy_to_layout(src, dir, tag).await,
        };
        let graph = self.graph(src).await?;
        let this = Arc::new(self.clone());
        futures::stream::iter(graph.blobs.iter().cloned())
            .map(|(digest, size)| {
                let this = this.clone();
                let src = src.clone();
                let (host, repo) = (dst_host.clone(), dst_repo.clone());
                async move { this.blob(&src, &host, &repo, &digest, size).await }
            })
            .buffer_unordered(self.concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        // The children of an index at once, then the root by its tag.
        let (root, children) = graph.manifests.split_last().context("no manifest")?;
        futures::stream::iter(children)
            .map(|m| self.put_manifest(dst_host, dst_repo, &m.digest, m))
            .buffer_unordered(self.concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        self.put_manifest(dst_host, dst_repo, dst_tag, root).await
    }

    async fn put_manifest(
        &self,
        host: &str,
        repo: &str,
        reference: &str,
        m: &Manifest,
    ) -> Result<()> {
        let url = format!("{}://{host}/v2/{repo}/manifests/{reference}", self.scheme);
        let req = Request::builder()
            .method(Method::PUT)
            .uri(&url)
            .header("content-type", &m.media_type)
            .body(full(m.bytes.clone()))?;
        let resp = self.client.request(req).await?;
        expect(resp.status(), StatusCode::CREATED, "PUT", &url)
    }

    /// Copies the graph tagged at `src` into a new OCI layout at `dir`, the least such a copy
    /// does: from a registry, each blob streamed into a file of its own (not hashed), each file
    /// synced before it is renamed into place, the blob directory synced, then `index.json`
    /// written and synced; from a layout, [`link_layout`].
    async fn copy_to_layout(&self, src: &Endpoint, dir: &Path, tag: &str) -> Result<()> {
        let graph = self.graph(src).await?;
        let (src_host, src_repo) = match src {
            Endpoint::Registry { host, repo, .. } => (host, repo),
            Endpoint::Layout { dir: src_dir, .. } => {
                return link_layout(src_dir, dir, tag, &graph).await;
            }
        };
        let blobs = dir.join("blobs/sha256");
        let tmp = dir.join("tmp");
        tokio::fs::create_dir_all(&blobs).await?;
        tokio::fs::create_dir_all(&tmp).await?;
        tokio::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).await?;
        futures::stream::iter(graph.blobs.iter().cloned())
            .map(|(digest, _)| {
                let (blobs, tmp) = (blobs.clone(), tmp.clone());
                async move {
                    let url = format!("{}://{src_host}/v2/{src_repo}/blobs/{digest}", self.scheme);
                    let resp = self.get(&url, None).await?;
                    expect(resp.status(), StatusCode::OK, "GET", &url)?;
                    let hex = digest.trim_start_matches("sha256:").to_string();
                    let part = tmp.join(&hex);
                    let mut file = tokio::fs::File::create(&part).await?;
                    let mut body = resp.into_body();
                    while let Some(frame) = body.frame().await {
                        if let Ok(data) = frame?.into_data() {
                            tokio::io::AsyncWriteExt::write_all(&mut file, &data).await?;
                        }
                    }
                    file.sync_all().await?;
                    tokio::fs::rename(&part, blobs.join(&hex)).await?;
                    Ok::<_, anyhow::Error>(())
                }
            })
            .buffer_unordered(self.concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        for m in &graph.manifests {
            let hex = m.digest.trim_start_matches("sha256:");
            let part = tmp.join(hex);
            tokio::fs::write(&part, &m.bytes).await?;
            tokio::fs::File::open(&part).await?.sync_all().await?;
            tokio::fs::rename(&part, blobs.join(hex)).await?;
        }
        finish_layout(dir, &graph, tag).await?;
        tokio::fs::remove_dir(&tmp).await?;
        Ok(())
    }

    /// Streams one blob from `src` into `repo` on `host`: POST, then PUT with the body.
    async fn blob(
        &self,
        src: &Endpoint,
        host: &str,
        repo: &str,
        digest: &str,
        size: u64,
    ) -> Result<()> {
        let body: Body = match src {
            Endpoint::Registry {
                host: src_host,
                repo: src_repo,
                ..
            } => {
                let url = format!("{}://{src_host}/v2/{src_repo}/blobs/{digest}", self.scheme);
                let resp = self.get(&url, None).await?;
                expect(resp.status(), StatusCode::OK, "GET", &url)?;
                resp.into_body()
                    .map_err(|e| Box::new(e) as BoxError)
                    .boxed()
            }
            Endpoint::Layout { dir, .. } => {
                let hex = digest.trim_start_matches("sha256:");
                let path = dir.join("blobs/sha256").join(hex);
                let file = tokio::fs::File::open(&path)
                    .await
                    .with_context(|| format!("open `{}`", path.display()))?;
                let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 << 10)
                    .map_ok(Frame::data)
                    .map_err(|e| Box::new(e) as BoxError);
                BoxBody::new(StreamBody::new(stream))
            }
        };
        let url = format!("{}://{host}/v2/{repo}/blobs/uploads/", self.scheme);
        let req = Request::builder()
            .method(Method::POST)
            .uri(&url)
            .header("content-length", "0")
            .body(empty())?;
        let resp = self.client.request(req).await?;
        expect(resp.status(), StatusCode::ACCEPTED, "POST", &url)?;
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| anyhow!("POST `{url}` answered without `Location`"))?
            .to_string();
        let location = if location.starts_with('/') {
            format!("{}://{host}{location}", self.scheme)
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let put_url = format!("{location}{sep}digest={digest}");
        let req = Request::builder()
            .method(Method::PUT)
            .uri(&put_url)
            .header("content-type", "application/octet-stream")
            .header("content-length", size)
            .body(body)?;
        let resp = self.client.request(req).await?;
        expect(resp.status(), StatusCode::CREATED, "PUT", &put_url)
    }

    async fn get(
        &self,
        url: &str,
        accept: Option<&str>,
    ) -> Result<http::Response<hyper::body::Incoming>> {
        let mut req = Request::builder().method(Method::GET).uri(url);
        if let Some(accept) = accept {
            req = req.header("accept", accept);
        }
        Ok(self.client.request(req.body(empty())?).await?)
    }

    /// Reads a manifest by tag or digest.
    async fn manifest(&self, src: &Endpoint, reference: &str) -> Result<Manifest> {
        match src {
            Endpoint::Registry { host, repo, .. } => {
                let url = format!("{}://{host}/v2/{repo}/manifests/{reference}", self.scheme);
                let resp = self.get(&url, Some(MANIFEST_ACCEPT)).await?;
                expect(resp.status(), StatusCode::OK, "GET", &url)?;
                let media_type = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(OCI_MANIFEST)
                    .to_string();
                let digest = resp
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(reference)
                    .to_string();
                let bytes = resp.into_body().collect().await?.to_bytes();
                Ok(Manifest {
                    digest,
                    media_type,
                    bytes,
                })
            }
            Endpoint::Layout { dir, .. } => {
                let (digest, media_type) = if reference.starts_with("sha256:") {
                    (reference.to_string(), None)
                } else {
                    let index: Value =
                        serde_json::from_slice(&tokio::fs::read(dir.join("index.json")).await?)?;
                    let entry = index["manifests"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|m| {
                            m["annotations"]["org.opencontainers.image.ref.name"].as_str()
                                == Some(reference)
                        })
                        .ok_or_else(|| anyhow!("tag `{reference}` not in `{}`", dir.display()))?;
                    (
                        entry["digest"].as_str().unwrap_or_default().to_string(),
                        entry["mediaType"].as_str().map(str::to_string),
                    )
                };
                let path = dir
                    .join("blobs/sha256")
                    .join(digest.trim_start_matches("sha256:"));
                let bytes = Bytes::from(tokio::fs::read(&path).await?);
                let media_type = media_type.unwrap_or_else(|| media_type_of(&bytes));
                Ok(Manifest {
                    digest,
                    media_type,
                    bytes,
                })
            }
        }
    }

    /// Walks the graph tagged at `src`.
    async fn graph(&self, src: &Endpoint) -> Result<Graph> {
        let tag = match src {
            Endpoint::Registry { tag, .. } | Endpoint::Layout { tag, .. } => tag.clone(),
        };
        let root = self.manifest(src, &tag).await?;
        let mut graph = Graph::default();
        let mut seen = BTreeSet::new();
        let value: Value = serde_json::from_slice(&root.bytes)?;
        if let Some(children) = value["manifests"].as_array() {
            // Every child at once (up to the concurrency), in the index's order.
            let fetched: Vec<Manifest> = futures::stream::iter(children)
                .map(|child| self.manifest(src, child["digest"].as_str().unwrap_or_default()))
                .buffered(self.concurrency)
                .try_collect()
                .await?;
            for m in fetched {
                let v: Value = serde_json::from_slice(&m.bytes)?;
                add_blobs(&v, &mut graph, &mut seen);
                graph.manifests.push(m);
            }
        } else {
            add_blobs(&value, &mut graph, &mut seen);
        }
        graph.manifests.push(root);
        Ok(graph)
    }
}

/// The least a copy between two layouts on one filesystem does: a hard link per blob, nothing
/// hashed, the blob directory synced, then `index.json` written and synced.
async fn link_layout(src: &Path, dir: &Path, tag: &str, graph: &Graph) -> Result<()> {
    let blobs = dir.join("blobs/sha256");
    tokio::fs::create_dir_all(&blobs).await?;
    tokio::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).await?;
    let digests = graph
        .blobs
        .iter()
        .map(|(d, _)| d.as_str())
        .chain(graph.manifests.iter().map(|m| m.digest.as_str()));
    for digest in digests {
        let hex = digest.trim_start_matches("sha256:");
        tokio::fs::hard_link(src.join("blobs/sha256").join(hex), blobs.join(hex)).await?;
    }
    finish_layout(dir, graph, tag).await
}

/// Syncs the layout's blob directory, then writes `index.json` naming the graph's root by
/// `tag`: written beside it, synced, renamed into place.
async fn finish_layout(dir: &Path, graph: &Graph, tag: &str) -> Result<()> {
    tokio::fs::File::open(dir.join("blobs/sha256"))
        .await?
        .sync_all()
        .await?;
    let root = graph.manifests.last().context("no manifest")?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": root.media_type,
            "digest": root.digest,
            "size": root.bytes.len(),
            "annotations": { "org.opencontainers.image.ref.name": tag },
        }],
    });
    let part = dir.join("index.json.tmp");
    tokio::fs::write(&part, serde_json::to_vec(&index)?).await?;
    tokio::fs::File::open(&part).await?.sync_all().await?;
    tokio::fs::rename(&part, dir.join("index.json")).await?;
    Ok(())
}

fn add_blobs(manifest: &Value, graph: &mut Graph, seen: &mut BTreeSet<String>) {
    let config = std::iter::once(&manifest["config"]);
    let layers = manifest["layers"].as_array().into_iter().flatten();
    for d in config.chain(layers) {
        if let (Some(digest), Some(size)) = (d["digest"].as_str(), d["size"].as_u64())
            && seen.insert(digest.to_string())
        {
            graph.blobs.push((digest.to_string(), size));
        }
    }
}

fn media_type_of(bytes: &[u8]) -> String {
    let v: Value = serde_json::from_slice(bytes).unwrap_or_default();
    match v["mediaType"].as_str() {
        Some(t) => t.to_string(),
        None if v.get("manifests").is_some() => OCI_INDEX.to_string(),
        None => OCI_MANIFEST.to_string(),
    }
}

fn expect(status: StatusCode, want: StatusCode, method: &str, url: &str) -> Result<()> {
    if status != want {
        bail!("{method} `{url}` answered {status}, expected {want}");
    }
    Ok(())
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// What [`Floor::sync_check`] found.
#[derive(Debug, Default)]
pub struct SyncCheck {
    /// Tags whose digest is the same at both ends.
    pub unchanged: usize,
    /// Tags missing at the destination or naming other content there.
    pub changed: Vec<String>,
    /// Requests sent.
    pub requests: usize,
}

impl Floor {
    /// The least an incremental sync of `src_host/src_prefix/*` into `dst_host/dst_prefix/*`
    /// can ask: the source's catalog (every page; none when `given` names the repositories),
    /// then the source's and the destination's tag list of each repository at once, then a `HEAD` of every tag at both ends at once, up to
    /// the concurrency; no retry, no auth, no cache, nothing written. The same requests as an
    /// unchanged `ferry sync`, with as many in flight as the registries take.
    pub async fn sync_check(
        &self,
        src_host: &str,
        src_prefix: &str,
        dst_host: &str,
        dst_prefix: &str,
        given: &[String],
    ) -> Result<SyncCheck> {
        let requests = AtomicUsize::new(0);
        let listed = self
            .source_tags(src_host, src_prefix, given, &requests)
            .await?;
        // A HEAD of every source tag on both sides.
        let mut heads = Vec::new();
        for (repo, src_tags) in &listed {
            for tag in src_tags {
                heads.push((repo.clone(), tag.clone(), true));
            }
        }
        let compared: Vec<(String, bool)> = futures::stream::iter(heads)
            .map(|(repo, tag, at_dst)| {
                let requests = &requests;
                async move {
                    let (src_repo, dst_repo) =
                        (format!("{src_prefix}{repo}"), format!("{dst_prefix}{repo}"));
                    let src = self.head_digest(src_host, &src_repo, &tag);
                    let same = if at_dst {
                        requests.fetch_add(2, Ordering::Relaxed);
                        let dst = self.head_digest(dst_host, &dst_repo, &tag);
                        let (s, d) = futures::try_join!(src, dst)?;
                        !s.is_empty() && s == d
                    } else {
                        requests.fetch_add(1, Ordering::Relaxed);
                        src.await?;
                        false
                    };
                    Ok::<_, anyhow::Error>((format!("{repo}:{tag}"), same))
                }
            })
            .buffer_unordered(self.concurrency.max(1))
            .try_collect()
            .await?;
        let mut out = SyncCheck {
            requests: requests.load(Ordering::Relaxed),
            ..SyncCheck::default()
        };
        for (name, same) in compared {
            if same {
                out.unchanged += 1;
            } else {
                out.changed.push(name);
            }
        }
        Ok(out)
    }

    /// The repositories under `src_prefix` (the catalog's, every page, unless `given`) and
    /// each one's tags (one page of 1,000), listed at once up to the concurrency.
    async fn source_tags(
        &self,
        src_host: &str,
        src_prefix: &str,
        given: &[String],
        requests: &AtomicUsize,
    ) -> Result<Vec<(String, BTreeSet<String>)>> {
        let json = |url: String| {
            let requests = &requests;
            async move {
                requests.fetch_add(1, Ordering::Relaxed);
                let resp = self.get(&url, None).await?;
                let status = resp.status();
                let next = resp
                    .headers()
                    .get("link")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| l.split_once('<'))
                    .and_then(|(_, rest)| rest.split_once('>'))
                    .map(|(path, _)| path.to_string());
                let body = resp.into_body().collect().await?.to_bytes();
                Ok::<_, anyhow::Error>((status, next, body))
            }
        };
        // The source's catalog, every page, unless the repositories are given.
        let mut repos = given.to_vec();
        let mut url = format!("{}://{src_host}/v2/_catalog?n=1000", self.scheme);
        while given.is_empty() {
            let (status, next, body) = json(url.clone()).await?;
            expect(status, StatusCode::OK, "GET", &url)?;
            let v: Value = serde_json::from_slice(&body)?;
            for r in v["repositories"].as_array().into_iter().flatten() {
                if let Some(rest) = r.as_str().and_then(|r| r.strip_prefix(src_prefix)) {
                    repos.push(rest.to_string());
                }
            }
            match next {
                Some(path) => url = format!("{}://{src_host}{path}", self.scheme),
                None => break,
            }
        }
        // The source's tag list of every repository (one page each: n=1000).
        futures::stream::iter(repos.iter().cloned())
            .map(|r| {
                let json = &json;
                async move {
                    let url = format!(
                        "{}://{src_host}/v2/{src_prefix}{r}/tags/list?n=1000",
                        self.scheme
                    );
                    let (status, _, body) = json(url).await?;
                    if status == StatusCode::NOT_FOUND {
                        return Ok::<_, anyhow::Error>((r, BTreeSet::new()));
                    }
                    let v: Value = serde_json::from_slice(&body)?;
                    let tags = v["tags"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect();
                    Ok((r, tags))
                }
            })
            .buffer_unordered(self.concurrency.max(1))
            .try_collect()
            .await
    }
}

/// What [`Floor::sync_copy`] did.
#[derive(Debug, Default)]
pub struct SyncCopy {
    /// Tags copied.
    pub images: usize,
    /// Blobs uploaded (each once per destination registry).
    pub uploads: usize,
    /// Blobs mounted from the destination repository that got them first.
    pub mounts: usize,
    /// Requests sent.
    pub requests: usize,
}

impl Floor {
    /// The least a cold sync of `src_host/src_prefix/*` into an empty `dst_host/dst_prefix/*`
    /// can ask: the source's tag lists, every manifest, then each blob uploaded once (GET →
    /// POST → PUT) into the first repository that needs it and mounted into the others, then
    /// every manifest, children before roots. Nothing is listed or checked at the destination
    /// (it is known to be empty) and nothing is hashed; up to the concurrency at once.
    pub async fn sync_copy(
        &self,
        src_host: &str,
        src_prefix: &str,
        dst_host: &str,
        dst_prefix: &str,
        given: &[String],
    ) -> Result<SyncCopy> {
        let requests = AtomicUsize::new(0);
        let listed = self
            .source_tags(src_host, src_prefix, given, &requests)
            .await?;
        let tags: Vec<(String, String)> = listed
            .iter()
            .flat_map(|(repo, tags)| tags.iter().map(move |t| (repo.clone(), t.clone())))
            .collect();
        let graphs: Vec<(String, String, Graph)> = futures::stream::iter(tags)
            .map(|(repo, tag)| {
                let requests = &requests;
                async move {
                    let src = Endpoint::Registry {
                        host: src_host.to_string(),
                        repo: format!("{src_prefix}{repo}"),
                        tag: tag.clone(),
                    };
                    let graph = self.graph(&src).await?;
                    requests.fetch_add(graph.manifests.len(), Ordering::Relaxed);
                    Ok::<_, anyhow::Error>((repo, tag, graph))
                }
            })
            .buffer_unordered(self.concurrency.max(1))
            .try_collect()
            .await?;
        // Each blob uploaded into the first repository that needs it, mounted into the rest.
        let mut first: HashMap<String, String> = HashMap::new();
        let mut uploads: Vec<(String, u64, String)> = Vec::new();
        let mut mounts: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (repo, _, graph) in &graphs {
            for (digest, size) in &graph.blobs {
                match first.get(digest) {
                    None => {
                        first.insert(digest.clone(), repo.clone());
                        uploads.push((digest.clone(), *size, repo.clone()));
                    }
                    Some(owner) if owner != repo => {
                        mounts
                            .entry(digest.clone())
                            .or_default()
                            .insert(repo.clone());
                    }
                    Some(_) => {}
                }
            }
        }
        let mut out = SyncCopy {
            images: graphs.len(),
            uploads: uploads.len(),
            mounts: mounts.values().map(BTreeSet::len).sum(),
            ..SyncCopy::default()
        };
        futures::stream::iter(uploads)
            .map(|(digest, size, repo)| {
                let (requests, mounts) = (&requests, &mounts);
                async move {
                    let src = Endpoint::Registry {
                        host: src_host.to_string(),
                        repo: format!("{src_prefix}{repo}"),
                        tag: String::new(),
                    };
                    let from = format!("{dst_prefix}{repo}");
                    self.blob(&src, dst_host, &from, &digest, size).await?;
                    requests.fetch_add(3, Ordering::Relaxed);
                    let into = mounts.get(&digest).into_iter().flatten();
                    futures::future::try_join_all(into.map(|to| {
                        requests.fetch_add(1, Ordering::Relaxed);
                        let (from, digest) = (&from, &digest);
                        async move {
                            let to = format!("{dst_prefix}{to}");
                            self.mount(dst_host, &to, from, digest).await
                        }
                    }))
                    .await?;
                    Ok::<_, anyhow::Error>(())
                }
            })
            .buffer_unordered(self.concurrency.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        futures::stream::iter(&graphs)
            .map(|(repo, tag, graph)| {
                let requests = &requests;
                async move {
                    let dst_repo = format!("{dst_prefix}{repo}");
                    let (root, children) = graph.manifests.split_last().context("no manifest")?;
                    futures::future::try_join_all(
                        children
                            .iter()
                            .map(|m| self.put_manifest(dst_host, &dst_repo, &m.digest, m)),
                    )
                    .await?;
                    self.put_manifest(dst_host, &dst_repo, tag, root).await?;
                    requests.fetch_add(graph.manifests.len(), Ordering::Relaxed);
                    Ok::<_, anyhow::Error>(())
                }
            })
            .buffer_unordered(self.concurrency.max(1))
            .try_collect::<Vec<()>>()
            .await?;
        out.requests = requests.load(Ordering::Relaxed);
        Ok(out)
    }

    /// Mounts `digest` from `from` into `repo` on `host` (`POST ?mount=&from=`, `201`).
    async fn mount(&self, host: &str, repo: &str, from: &str, digest: &str) -> Result<()> {
        let url = format!(
            "{}://{host}/v2/{repo}/blobs/uploads/?mount={digest}&from={from}",
            self.scheme
        );
        let req = Request::builder()
            .method(Method::POST)
            .uri(&url)
            .header("content-length", "0")
            .body(empty())?;
        let resp = self.client.request(req).await?;
        expect(resp.status(), StatusCode::CREATED, "POST", &url)
    }
}
