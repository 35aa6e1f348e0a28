//! An OCI image of ferry for linux/amd64, written by ferry into an OCI image layout, without
//! a container engine: one gzip layer holding the binary (`/usr/local/bin/ferry`), the CA
//! certificates (`/etc/ssl/certs/ca-certificates.crt`), a non-root user `ferry` (65532) with
//! its home, and `/tmp`; a config running `ferry` as that user; a manifest annotated with the
//! version, source and revision. The layout is written with ferry's own
//! [`ferry_fs_store::OciLayout`], so `ferry cp oci:DIR:VERSION REGISTRY/ferry:VERSION`
//! publishes it.
//!
//! The layer is reproducible: entries in a fixed order, every time stamp the image's
//! creation time, owners numeric.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use ferry_core::{Descriptor, WriteStore};
use ferry_fs_store::OciLayout;
use serde_json::json;

/// The user the image runs as: the uid and gid distroless images use for `nonroot`.
pub const UID: u64 = 65532;
/// Where the binary is in the image.
pub const BINARY_PATH: &str = "usr/local/bin/ferry";
/// Where the CA certificates are in the image (where Debian keeps them, which
/// `rustls-native-certs` and most TLS stacks look for first).
pub const CA_PATH: &str = "etc/ssl/certs/ca-certificates.crt";

const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// What goes into the image.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// The ferry binary (a linux/amd64 build; the release one for publishing).
    pub binary: PathBuf,
    /// A PEM bundle of CA certificates.
    pub ca_certificates: PathBuf,
    /// The version (`org.opencontainers.image.version`), also the tag in the layout.
    pub version: String,
    /// Where the source is (`org.opencontainers.image.source`).
    pub source: String,
    /// The source revision (`org.opencontainers.image.revision`), a commit id.
    pub revision: String,
    /// When the image was made (`org.opencontainers.image.created`, and every time stamp).
    pub created: SystemTime,
}

/// What [`build`] wrote.
#[derive(Debug, Clone)]
pub struct Built {
    /// The manifest, tagged `version` in the layout.
    pub manifest: Descriptor,
    /// The layer.
    pub layer: Descriptor,
}

/// Writes the image `spec` describes into the OCI layout at `out` (created if missing; an
/// image already there under the same tag is replaced).
pub async fn build(spec: &ImageSpec, out: &Path) -> Result<Built> {
    let binary = std::fs::read(&spec.binary)
        .with_context(|| format!("reading the ferry binary `{}`", spec.binary.display()))?;
    if !binary.starts_with(b"\x7fELF") {
        bail!(
            "`{}` is not an ELF executable; give a linux build of ferry",
            spec.binary.display()
        );
    }
    let ca = std::fs::read(&spec.ca_certificates).with_context(|| {
        format!(
            "reading the CA certificates `{}` (Debian: apt-get install ca-certificates)",
            spec.ca_certificates.display()
        )
    })?;
    let mtime = spec
        .created
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let tar = layer_tar(&binary, &ca, mtime)?;
    let diff_id = ferry_core::sha256(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    gz.write_all(&tar)?;
    let layer_bytes = Bytes::from(gz.finish()?);
    drop(tar);

    let created = humantime::format_rfc3339_seconds(spec.created).to_string();
    let labels = json!({
        "org.opencontainers.image.title": "ferry",
        "org.opencontainers.image.version": spec.version,
        "org.opencontainers.image.source": spec.source,
        "org.opencontainers.image.revision": spec.revision,
        "org.opencontainers.image.created": created,
    });
    let config = json!({
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": format!("{UID}:{UID}"),
            "Env": [
                "PATH=/usr/local/bin:/usr/bin:/bin",
                format!("SSL_CERT_FILE=/{CA_PATH}"),
                "HOME=/home/ferry",
                "XDG_CACHE_HOME=/home/ferry/.cache",
            ],
            "Entrypoint": ["ferry"],
            "WorkingDir": "/home/ferry",
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [{"created": created, "created_by": "ferry-image"}],
    });
    let config_bytes = Bytes::from(serde_json::to_vec(&config)?);
    let store = OciLayout::open_or_create(out)
        .with_context(|| format!("opening the layout `{}`", out.display()))?;
    let layer = put(&store, LAYER_GZIP, layer_bytes).await?;
    let config = put(&store, CONFIG, config_bytes).await?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": config,
        "layers": [layer],
        "annotations": labels,
    });
    let manifest = put(
        &store,
        MANIFEST,
        Bytes::from(serde_json::to_vec(&manifest)?),
    )
    .await?;
    store
        .tag(&manifest, &spec.version)
        .await
        .with_context(|| format!("tagging `{}` in `{}`", spec.version, out.display()))?;
    Ok(Built { manifest, layer })
}

async fn put(store: &OciLayout, media_type: &str, bytes: Bytes) -> Result<Descriptor> {
    let descriptor = Descriptor::new(
        media_type.into(),
        bytes.len() as u64,
        ferry_core::sha256(&bytes),
    );
    store
        .push(&descriptor, ferry_core::bytes_stream(bytes))
        .await?;
    Ok(descriptor)
}

/// The layer: directories, the user's files, the certificates and the binary.
fn layer_tar(binary: &[u8], ca: &[u8], mtime: u64) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let dir = |tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, owner: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_uid(owner);
        h.set_gid(owner);
        h.set_mtime(mtime);
        h.set_size(0);
        tar.append_data(&mut h, path, std::io::empty())
    };
    let file = |tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        h.set_size(data.len() as u64);
        tar.append_data(&mut h, path, data)
    };
    for d in [
        "etc/",
        "etc/ssl/",
        "etc/ssl/certs/",
        "home/",
        "usr/",
        "usr/local/",
        "usr/local/bin/",
    ] {
        dir(&mut tar, d, 0o755, 0)?;
    }
    dir(&mut tar, "home/ferry/", 0o755, UID)?;
    dir(&mut tar, "tmp/", 0o1777, 0)?;
    let passwd = format!(
        "root:x:0:0:root:/root:/sbin/nologin\nferry:x:{UID}:{UID}:ferry:/home/ferry:/sbin/nologin\n"
    );
    file(&mut tar, "etc/passwd", 0o644, passwd.as_bytes())?;
    let group = format!("root:x:0:\nferry:x:{UID}:\n");
    file(&mut tar, "etc/group", 0o644, group.as_bytes())?;
    file(&mut tar, CA_PATH, 0o644, ca)?;
    file(&mut tar, BINARY_PATH, 0o755, binary)?;
    Ok(tar.into_inner()?)
}
