//! OCI content built in memory: images with random-byte tar layers, multi-platform indexes,
//! and referrers (a "signature" artifact with a `subject`). Everything is deterministic for a
//! given seed, and comes back as descriptors plus bytes so a test can push it anywhere.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use ferry_core::model::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST, is_manifest,
};
use ferry_core::{Descriptor, Digest, MemoryStore, sha256};
use rand::{RngCore as _, SeedableRng as _};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::util::http;

/// Media type of an uncompressed OCI layer.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// Media type of an OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of the OCI empty descriptor (`{}`), the config of artifacts.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Media type of an uncompressed Docker layer.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Media type of a Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// The artifact type of the signatures [`ArtifactBuilder::signature`] makes.
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.ferry.test.signature.v1";

/// Some content and its descriptor.
#[derive(Debug, Clone)]
pub struct Blob {
    /// Media type, size and sha256 digest of `bytes`.
    pub descriptor: Descriptor,
    /// The content.
    pub bytes: Bytes,
}

impl Blob {
    /// `bytes` described as `media_type`.
    pub fn new(media_type: &str, bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            descriptor: Descriptor::new(media_type.into(), bytes.len() as u64, sha256(&bytes)),
            bytes,
        }
    }

    /// The digest.
    pub fn digest(&self) -> &Digest {
        self.descriptor.digest()
    }

    /// The media type as a string.
    pub fn media_type(&self) -> String {
        self.descriptor.media_type().to_string()
    }

    /// Whether this is a manifest or index (pushed to `/manifests/`, not `/blobs/`).
    pub fn is_manifest(&self) -> bool {
        is_manifest(&self.media_type())
    }
}

/// Content that can be pushed: its blobs and manifests, children strictly before parents,
/// the root last.
pub trait Content {
    /// Every blob and manifest, children first, the root last.
    fn all(&self) -> Vec<&Blob>;

    /// The root manifest or index.
    fn root(&self) -> &Blob;

    /// The descriptor of the root.
    fn descriptor(&self) -> &Descriptor {
        &self.root().descriptor
    }

    /// Inserts everything into `store` and tags the root as `tag` when given.
    fn insert_into(&self, store: &MemoryStore, tag: Option<&str>) {
        for blob in self.all() {
            store.insert(&blob.media_type(), blob.bytes.clone());
        }
        if let Some(tag) = tag {
            let tagging = ferry_core::WriteStore::tag(store, self.descriptor(), tag);
            poll_once(tagging).expect("tag in the memory store");
        }
    }
}

/// Runs a future that completes without waiting (the memory store's methods only take locks).
fn poll_once<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the memory store's `tag` did not complete at once"),
    }
}

/// An image: manifest, config and layers.
#[derive(Debug, Clone)]
pub struct Image {
    /// The image manifest.
    pub manifest: Blob,
    /// The config blob.
    pub config: Blob,
    /// The layers (uncompressed tars), in order.
    pub layers: Vec<Blob>,
}

impl Content for Image {
    fn all(&self) -> Vec<&Blob> {
        config_layers_manifest(&self.config, &self.layers, &self.manifest)
    }

    fn root(&self) -> &Blob {
        &self.manifest
    }
}

/// `location` (an upload `Location`) as an absolute URL on `base`.
fn absolute(base: &str, location: &str) -> String {
    if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location.to_string()
    }
}

/// The blobs of a manifest with a config and layers, children first.
fn config_layers_manifest<'a>(
    config: &'a Blob,
    layers: &'a [Blob],
    manifest: &'a Blob,
) -> Vec<&'a Blob> {
    let mut out = vec![config];
    out.extend(layers);
    out.push(manifest);
    out
}

/// Builds an [`Image`] whose layers are random bytes of given sizes, each wrapped as a valid
/// uncompressed tar holding one file.
#[derive(Debug, Clone)]
pub struct ImageBuilder {
    shared: Vec<Blob>,
    layer_sizes: Vec<usize>,
    seed: u64,
    os: String,
    architecture: String,
    variant: Option<String>,
    annotations: BTreeMap<String, String>,
    docker: bool,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageBuilder {
    /// An image for `linux/amd64` without layers, seed 0, OCI media types.
    pub fn new() -> Self {
        Self {
            shared: Vec::new(),
            layer_sizes: Vec::new(),
            seed: 0,
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
            annotations: BTreeMap::new(),
            docker: false,
        }
    }

    /// Adds a layer holding one file of `size` random bytes.
    pub fn layer(mut self, size: usize) -> Self {
        self.layer_sizes.push(size);
        self
    }

    /// Adds a layer made elsewhere (see [`layer_blob`]), before the generated ones: images
    /// given the same blob share that layer, as images built on one base do.
    pub fn shared_layer(mut self, blob: Blob) -> Self {
        self.shared.push(blob);
        self
    }

    /// Adds layers of these sizes.
    pub fn layers(mut self, sizes: &[usize]) -> Self {
        self.layer_sizes.extend_from_slice(sizes);
        self
    }

    /// Seeds the random bytes: builders with equal settings and seeds make identical images;
    /// different seeds make different layers and configs.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the platform from `os/arch[/variant]`, such as `linux/arm64/v8`.
    pub fn platform(mut self, platform: &str) -> Self {
        let mut parts = platform.split('/');
        self.os = parts.next().unwrap_or("linux").to_string();
        self.architecture = parts.next().unwrap_or("amd64").to_string();
        self.variant = parts.next().map(str::to_string);
        self
    }

    /// Adds a manifest annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    /// Uses Docker v2 schema 2 media types instead of OCI ones.
    pub fn docker(mut self, docker: bool) -> Self {
        self.docker = docker;
        self
    }

    /// Builds the layers, config and manifest.
    pub fn build(&self) -> Image {
        let layer_type = if self.docker { DOCKER_LAYER } else { OCI_LAYER };
        let mut layers: Vec<Blob> = self.shared.clone();
        layers.extend(self.layer_sizes.iter().enumerate().map(|(i, size)| {
            let seed = self.seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
            Blob::new(
                layer_type,
                tar_layer(&format!("layer-{i}.bin"), &random_bytes(seed, *size)),
            )
        }));
        let mut config = json!({
            "created": "1970-01-01T00:00:00Z",
            "architecture": self.architecture,
            "os": self.os,
            "config": {
                "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
                "Labels": {"dev.ferry.fixture.seed": self.seed.to_string()},
            },
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l.digest().to_string()).collect::<Vec<_>>(),
            },
            "history": (0..layers.len()).map(|i| json!({
                "created": "1970-01-01T00:00:00Z",
                "created_by": format!("ferry fixture layer {i}"),
            })).collect::<Vec<_>>(),
        });
        if let Some(variant) = &self.variant {
            config["variant"] = json!(variant);
        }
        let config = Blob::new(
            if self.docker {
                DOCKER_CONFIG
            } else {
                OCI_CONFIG
            },
            serde_json::to_vec(&config).expect("config JSON"),
        );
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": if self.docker { DOCKER_MANIFEST } else { OCI_MANIFEST },
            "config": descriptor_json(&config.descriptor),
            "layers": layers.iter().map(|l| descriptor_json(&l.descriptor)).collect::<Vec<_>>(),
        });
        if !self.annotations.is_empty() {
            manifest["annotations"] = json!(self.annotations);
        }
        let manifest = Blob::new(
            if self.docker {
                DOCKER_MANIFEST
            } else {
                OCI_MANIFEST
            },
            serde_json::to_vec(&manifest).expect("manifest JSON"),
        );
        Image {
            manifest,
            config,
            layers,
        }
    }

    fn platform_json(&self) -> Value {
        let mut p = json!({"architecture": self.architecture, "os": self.os});
        if let Some(v) = &self.variant {
            p["variant"] = json!(v);
        }
        p
    }
}

/// A multi-platform index, its images, and the indexes it lists (an index of indexes).
#[derive(Debug, Clone)]
pub struct Index {
    /// The index.
    pub index: Blob,
    /// The images it lists, in order.
    pub images: Vec<Image>,
    /// The indexes it lists, in order.
    pub indexes: Vec<Index>,
}

impl Content for Index {
    fn all(&self) -> Vec<&Blob> {
        let mut out: Vec<&Blob> = self.indexes.iter().flat_map(|i| i.all()).collect();
        out.extend(self.images.iter().flat_map(|i| i.all()));
        out.push(&self.index);
        out
    }

    fn root(&self) -> &Blob {
        &self.index
    }
}

/// One entry of an index being built.
#[derive(Debug, Clone)]
enum Entry {
    Image(ImageBuilder),
    /// A child index, with the platform its entry names, if any.
    Index(IndexBuilder, Option<String>),
}

/// Builds an [`Index`] of images, each with its platform in the index, and of indexes.
#[derive(Debug, Clone, Default)]
pub struct IndexBuilder {
    entries: Vec<Entry>,
    docker: bool,
}

impl IndexBuilder {
    /// An empty index (OCI media type).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an image.
    pub fn image(mut self, image: ImageBuilder) -> Self {
        self.entries.push(Entry::Image(image));
        self
    }

    /// Adds a child index (an index of indexes, as some multi-image releases are), its entry
    /// naming `platform` (`os/arch[/variant]`) when given.
    pub fn index(mut self, child: IndexBuilder, platform: Option<&str>) -> Self {
        self.entries
            .push(Entry::Index(child, platform.map(str::to_string)));
        self
    }

    /// Adds one image per platform (`os/arch[/variant]`), each with layers of `layer_sizes`,
    /// seeded differently so no two share a layer.
    pub fn platforms(mut self, platforms: &[&str], layer_sizes: &[usize], seed: u64) -> Self {
        for (i, platform) in platforms.iter().enumerate() {
            self.entries.push(Entry::Image(
                ImageBuilder::new()
                    .platform(platform)
                    .layers(layer_sizes)
                    .seed(seed.wrapping_mul(7_919).wrapping_add(i as u64 + 1))
                    .docker(self.docker),
            ));
        }
        self
    }

    /// Uses a Docker manifest list and Docker images (call before adding images).
    pub fn docker(mut self, docker: bool) -> Self {
        self.docker = docker;
        self
    }

    /// Builds the images, the child indexes and the index.
    pub fn build(&self) -> Index {
        let media_type = if self.docker {
            DOCKER_MANIFEST_LIST
        } else {
            OCI_INDEX
        };
        let (mut images, mut indexes, mut manifests) = (Vec::new(), Vec::new(), Vec::new());
        for entry in &self.entries {
            match entry {
                Entry::Image(builder) => {
                    let image = builder.build();
                    let mut d = descriptor_json(&image.manifest.descriptor);
                    d["platform"] = builder.platform_json();
                    manifests.push(d);
                    images.push(image);
                }
                Entry::Index(builder, platform) => {
                    let index = builder.build();
                    let mut d = descriptor_json(&index.index.descriptor);
                    if let Some(platform) = platform {
                        d["platform"] = ImageBuilder::new().platform(platform).platform_json();
                    }
                    manifests.push(d);
                    indexes.push(index);
                }
            }
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": manifests,
        });
        Index {
            index: Blob::new(media_type, serde_json::to_vec(&index).expect("index JSON")),
            images,
            indexes,
        }
    }
}

/// An artifact manifest (an OCI image manifest with `artifactType`) that refers to a
/// `subject`, as signatures and SBOMs do.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The manifest.
    pub manifest: Blob,
    /// Its config: the OCI empty descriptor `{}`.
    pub config: Blob,
    /// Its payload blobs.
    pub layers: Vec<Blob>,
    /// The artifact type.
    pub artifact_type: String,
}

impl Content for Artifact {
    fn all(&self) -> Vec<&Blob> {
        config_layers_manifest(&self.config, &self.layers, &self.manifest)
    }

    fn root(&self) -> &Blob {
        &self.manifest
    }
}

/// Builds an [`Artifact`] referring to a subject.
#[derive(Debug, Clone)]
pub struct ArtifactBuilder {
    subject: Descriptor,
    artifact_type: String,
    layers: Vec<Blob>,
    annotations: BTreeMap<String, String>,
}

impl ArtifactBuilder {
    /// An artifact of `artifact_type` about `subject`, without payload.
    pub fn new(subject: &Descriptor, artifact_type: &str) -> Self {
        Self {
            subject: subject.clone(),
            artifact_type: artifact_type.into(),
            layers: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }

    /// A "signature" of `subject`: artifact type [`SIGNATURE_ARTIFACT_TYPE`] with `payload`
    /// as its one blob.
    pub fn signature(subject: &Descriptor, payload: &[u8]) -> Self {
        Self::new(subject, SIGNATURE_ARTIFACT_TYPE).blob(
            "application/vnd.ferry.test.signature.payload.v1+json",
            payload.to_vec(),
        )
    }

    /// Adds a payload blob.
    pub fn blob(mut self, media_type: &str, bytes: impl Into<Bytes>) -> Self {
        self.layers.push(Blob::new(media_type, bytes));
        self
    }

    /// Adds a manifest annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    /// Builds the config, payload and manifest.
    pub fn build(&self) -> Artifact {
        let config = Blob::new(OCI_EMPTY, &b"{}"[..]);
        let subject = json!({
            "mediaType": self.subject.media_type().to_string(),
            "digest": self.subject.digest().to_string(),
            "size": self.subject.size(),
        });
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": self.artifact_type,
            "config": descriptor_json(&config.descriptor),
            "layers": self.layers.iter().map(|l| descriptor_json(&l.descriptor)).collect::<Vec<_>>(),
            "subject": subject,
        });
        if !self.annotations.is_empty() {
            manifest["annotations"] = json!(self.annotations);
        }
        let mut manifest = Blob::new(OCI_MANIFEST, serde_json::to_vec(&manifest).expect("JSON"));
        manifest
            .descriptor
            .set_artifact_type(Some(self.artifact_type.as_str().into()));
        Artifact {
            manifest,
            config,
            layers: self.layers.clone(),
            artifact_type: self.artifact_type.clone(),
        }
    }
}

/// The JSON of a descriptor (`mediaType`, `digest`, `size`, and any optional fields set).
pub fn descriptor_json(descriptor: &Descriptor) -> Value {
    serde_json::to_value(descriptor).expect("descriptor JSON")
}

/// `size` bytes from a generator seeded with `seed`.
pub fn random_bytes(seed: u64, size: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = vec![0u8; size];
    rng.fill_bytes(&mut out);
    out
}

/// An uncompressed OCI tar layer holding one file of `size` bytes from `seed`: give the same
/// blob to several [`ImageBuilder::shared_layer`]s to make images that share it.
pub fn layer_blob(seed: u64, size: usize) -> Blob {
    Blob::new(
        OCI_LAYER,
        tar_layer(&format!("shared-{seed}.bin"), &random_bytes(seed, size)),
    )
}

/// An uncompressed tar archive holding one regular file `name` with `content`
/// (mode 0644, owner 0:0, mtime 0).
pub fn tar_layer(name: &str, content: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::with_capacity(content.len() + 2048));
    let mut header = tar::Header::new_ustar();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, name, content)
        .expect("write a tar entry to memory");
    builder.into_inner().expect("finish the tar archive")
}

/// Writes an OCI image layout to `dir`: `oci-layout`, every blob of `contents` under
/// `blobs/sha256/`, and `index.json` listing each root, named by
/// `org.opencontainers.image.ref.name` when a tag is given.
pub fn write_oci_layout(dir: &Path, contents: &[(Option<&str>, &dyn Content)]) -> Result<()> {
    let io = |what: &Path, e| Error::io(format!("write `{}`", what.display()), e);
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| io(&blobs, e))?;
    let layout = dir.join("oci-layout");
    std::fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(|e| io(&layout, e))?;
    let mut manifests = Vec::new();
    for (tag, content) in contents {
        for blob in content.all() {
            let path = blobs.join(blob.digest().digest());
            std::fs::write(&path, &blob.bytes).map_err(|e| io(&path, e))?;
        }
        let mut d = descriptor_json(content.descriptor());
        if let Some(tag) = tag {
            d["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        }
        manifests.push(d);
    }
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    let path = dir.join("index.json");
    std::fs::write(&path, serde_json::to_vec(&index).expect("JSON")).map_err(|e| io(&path, e))?;
    Ok(())
}

/// Pushes `content` to repository `repo` of the registry at `base` (`http://host:port`) with
/// plain HTTP: each blob by POST, one PATCH with the bytes, then PUT `?digest=` (skipped when
/// HEAD finds it), each manifest by digest, and the root under `tag` too when given.
/// `authorization` is sent as is (`Basic ...` or `Bearer ...`).
///
/// The bytes travel in a PATCH because distribution 2.8 on SeaweedFS fails a PUT that carries
/// the whole blob right after the POST (`CompleteMultipartUpload`: `NoSuchUpload`).
pub async fn push(
    base: &str,
    repo: &str,
    content: &dyn Content,
    tag: Option<&str>,
    authorization: Option<&str>,
) -> Result<()> {
    let headers: Vec<(&str, &str)> = authorization
        .iter()
        .map(|a| ("authorization", *a))
        .collect();
    let fail = |what: String, answer: &crate::util::HttpResponse| Error::Http {
        method: what,
        url: base.to_string(),
        reason: format!("status {}: {}", answer.status, answer.text()),
    };
    for blob in content.all() {
        let digest = blob.digest().to_string();
        if blob.is_manifest() {
            let mut h = headers.clone();
            let media_type = blob.media_type();
            h.push(("content-type", &media_type));
            let url = format!("{base}/v2/{repo}/manifests/{digest}");
            let answer = http("PUT", &url, &h, blob.bytes.clone()).await?;
            if answer.status != 201 {
                return Err(fail(format!("PUT manifest {digest}"), &answer));
            }
            continue;
        }
        let head = http(
            "HEAD",
            &format!("{base}/v2/{repo}/blobs/{digest}"),
            &headers,
            Bytes::new(),
        )
        .await?;
        if head.status == 200 {
            continue;
        }
        let post = http(
            "POST",
            &format!("{base}/v2/{repo}/blobs/uploads/"),
            &headers,
            Bytes::new(),
        )
        .await?;
        if post.status != 202 {
            return Err(fail(format!("POST upload for {digest}"), &post));
        }
        let location = post
            .header("location")
            .ok_or_else(|| fail("POST upload without Location".into(), &post))?;
        let location = absolute(base, location);
        let mut h = headers.clone();
        h.push(("content-type", "application/octet-stream"));
        let patch = http("PATCH", &location, &h, blob.bytes.clone()).await?;
        if patch.status != 202 {
            return Err(fail(format!("PATCH blob {digest}"), &patch));
        }
        let location = patch.header("location").unwrap_or(&location);
        let location = absolute(base, location);
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = http(
            "PUT",
            &format!("{location}{sep}digest={digest}"),
            &headers,
            Bytes::new(),
        )
        .await?;
        if put.status != 201 {
            return Err(fail(format!("PUT blob {digest}"), &put));
        }
    }
    if let Some(tag) = tag {
        let root = content.root();
        let mut h = headers.clone();
        let media_type = root.media_type();
        h.push(("content-type", &media_type));
        let answer = http(
            "PUT",
            &format!("{base}/v2/{repo}/manifests/{tag}"),
            &h,
            root.bytes.clone(),
        )
        .await?;
        if answer.status != 201 {
            return Err(fail(format!("PUT manifest tag {tag}"), &answer));
        }
    }
    Ok(())
}
