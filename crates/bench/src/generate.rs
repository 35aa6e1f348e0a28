//! Benchmark images written straight to OCI image layouts on disk: random-byte layers wrapped
//! as uncompressed tars, streamed to their files while hashed, so a 1 GiB layer never sits in
//! memory.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use rand::{RngCore as _, SeedableRng as _};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// Media type of an uncompressed OCI layer.
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// Media type of an OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of an OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A blob written to a layout.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Desc {
    /// Media type.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

impl Desc {
    fn json(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

/// What a generated root holds.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The root manifest or index.
    pub root: Desc,
    /// Every distinct non-manifest blob (configs and layers).
    pub blobs: BTreeSet<Desc>,
    /// Every manifest below the root (not the root itself).
    pub manifests: usize,
}

impl Generated {
    /// Total bytes of the non-manifest blobs.
    pub fn blob_bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum()
    }
}

/// An OCI image layout being written.
#[derive(Debug)]
pub struct LayoutWriter {
    dir: PathBuf,
}

impl LayoutWriter {
    /// Creates `dir` with `oci-layout` and `blobs/sha256/`.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir.join("blobs/sha256"))
            .with_context(|| format!("create `{}`", dir.display()))?;
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// Writes `bytes` as a blob of `media_type`.
    pub fn bytes(&self, media_type: &str, bytes: &[u8]) -> Result<Desc> {
        let hex = format!("{:x}", Sha256::digest(bytes));
        let path = self.dir.join("blobs/sha256").join(&hex);
        std::fs::write(&path, bytes).with_context(|| format!("write `{}`", path.display()))?;
        Ok(Desc {
            media_type: media_type.into(),
            digest: format!("sha256:{hex}"),
            size: bytes.len() as u64,
        })
    }

    /// Writes a tar layer holding one file of `size` random bytes from `seed`, streaming.
    pub fn random_layer(&self, seed: u64, size: u64) -> Result<Desc> {
        let tmp = self
            .dir
            .join(format!("blobs/.tmp-{seed}-{}", std::process::id()));
        let file =
            std::fs::File::create(&tmp).with_context(|| format!("create `{}`", tmp.display()))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        let mut emit = |bytes: &[u8]| -> Result<()> {
            hasher.update(bytes);
            out.write_all(bytes)?;
            total += bytes.len() as u64;
            Ok(())
        };
        let mut header = tar::Header::new_ustar();
        header.set_path(format!("layer-{seed}.bin"))?;
        header.set_size(size);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        emit(header.as_bytes())?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut chunk = vec![0u8; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            rng.fill_bytes(&mut chunk[..n]);
            emit(&chunk[..n])?;
            left -= n as u64;
        }
        let padding = (512 - size % 512) % 512;
        emit(&vec![0u8; padding as usize + 1024])?;
        out.flush()?;
        drop(out);
        let hex = format!("{:x}", hasher.finalize());
        let path = self.dir.join("blobs/sha256").join(&hex);
        std::fs::rename(&tmp, &path)?;
        Ok(Desc {
            media_type: OCI_LAYER.into(),
            digest: format!("sha256:{hex}"),
            size: total,
        })
    }

    /// Writes the config and manifest of an image made of `layers`; returns the manifest.
    pub fn image(&self, layers: &[Desc], label: &str) -> Result<(Desc, Desc)> {
        let config = json!({
            "created": "1970-01-01T00:00:00Z",
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"dev.ferry.bench": label}},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.digest.clone()).collect::<Vec<_>>()},
        });
        let config = self.bytes(OCI_CONFIG, &serde_json::to_vec(&config)?)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.json(),
            "layers": layers.iter().map(Desc::json).collect::<Vec<_>>(),
        });
        let manifest = self.bytes(OCI_MANIFEST, &serde_json::to_vec(&manifest)?)?;
        Ok((config, manifest))
    }

    /// Writes `index.json` naming `root` as `tag`.
    pub fn tag(&self, root: &Desc, tag: &str) -> Result<()> {
        let mut d = root.json();
        d["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [d]});
        std::fs::write(self.dir.join("index.json"), serde_json::to_vec(&index)?)?;
        Ok(())
    }
}

/// Writes an image of `layers` random layers of `layer_size` bytes each to a new layout in
/// `dir`, tagged `tag`.
pub fn image(
    dir: &Path,
    tag: &str,
    layers: usize,
    layer_size: u64,
    seed: u64,
) -> Result<Generated> {
    let w = LayoutWriter::create(dir)?;
    let layer_descs = (0..layers)
        .map(|i| {
            w.random_layer(
                seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
                layer_size,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let (config, manifest) = w.image(&layer_descs, &format!("image-{seed}"))?;
    w.tag(&manifest, tag)?;
    let mut blobs: BTreeSet<Desc> = layer_descs.into_iter().collect();
    blobs.insert(config);
    Ok(Generated {
        root: manifest,
        blobs,
        manifests: 0,
    })
}

/// Writes an index of `manifests` images sharing a pool of `pool` random layers of
/// `blob_size` bytes: image `i` holds a window of `⌈2 · pool / manifests⌉` (at least 2)
/// consecutive layers starting at `i * pool / manifests`, so every layer belongs to about two
/// images. Each image
/// has its own config.
pub fn shared_index(
    dir: &Path,
    tag: &str,
    manifests: usize,
    pool: usize,
    blob_size: u64,
    seed: u64,
) -> Result<Generated> {
    let w = LayoutWriter::create(dir)?;
    let layers = (0..pool)
        .map(|i| w.random_layer(seed.wrapping_mul(7_919).wrapping_add(i as u64), blob_size))
        .collect::<Result<Vec<_>>>()?;
    let window = (2 * pool).div_ceil(manifests.max(1)).max(2);
    let mut blobs: BTreeSet<Desc> = layers.iter().cloned().collect();
    let mut entries = Vec::new();
    for i in 0..manifests {
        let start = i * pool / manifests;
        let own: Vec<Desc> = (0..window)
            .map(|j| layers[(start + j) % pool].clone())
            .collect();
        let (config, manifest) = w.image(&own, &format!("index-{seed}-{i}"))?;
        blobs.insert(config);
        let mut d = manifest.json();
        d["platform"] = json!({"architecture": "amd64", "os": "linux", "variant": format!("v{i}")});
        entries.push(d);
    }
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
    let root = w.bytes(OCI_INDEX, &serde_json::to_vec(&index)?)?;
    w.tag(&root, tag)?;
    Ok(Generated {
        root,
        blobs,
        manifests,
    })
}
