//! The operator configuration file: storage roots of registries, per-registry transport and
//! strategy order, defaults for the flags.
//!
//! ```toml
//! [defaults]
//! concurrency = 16
//!
//! [registries."registry-a.example:5000"]
//! storage = "file:///srv/registry-a"        # the registry's filesystem rootdirectory
//! [registries."registry-b.example:5000"]
//! storage = "s3://bucket/tenant-b"          # the S3 driver's bucket and rootdirectory
//! endpoint = "http://minio.internal:9000"   # else AWS_ENDPOINT_URL
//! mount = ["distribution-storage", "cross-repo"]
//!
//! [[sync]]                                  # entries `ferry sync` runs (see docs/sync.md)
//! source = "registry.example/team/"
//! destination = "registry-a.example:5000/mirror/team/"
//! semver = ">=1.0"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ferry_core::Error;
use ferry_fs_store::distribution_storage::{DistributionStorageMount, StorageRoot};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Defaults for flags the command line does not give.
    #[serde(default)]
    pub defaults: Defaults,
    /// Per registry host (`host:port` as written in references).
    #[serde(default)]
    pub registries: BTreeMap<String, RegistryConfig>,
    /// `ferry sync` entries (`[[sync]]`), run by `ferry sync` without SRC and DST.
    #[serde(default)]
    pub sync: Vec<crate::sync::file::EntryConfig>,
}

/// Defaults for `ferry cp` flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// `--concurrency`.
    pub concurrency: Option<u16>,
    /// `--mount`.
    pub mount: Option<String>,
    /// `--manifest-limit`.
    pub manifest_limit: Option<u64>,
    /// `--plain-http` for every registry.
    pub plain_http: Option<bool>,
    /// `--insecure` for every registry.
    pub insecure: Option<bool>,
    /// `--ca-cert` for every registry: a PEM file of CA certificates to trust.
    pub ca_cert: Option<PathBuf>,
    /// `--ipfs-gateway`.
    pub ipfs_gateway: Option<String>,
    /// `--ipfs-cid-map`.
    pub ipfs_cid_map: Option<PathBuf>,
    /// `--no-cache`.
    pub no_cache: Option<bool>,
    /// `--verify-uploads` for every registry.
    pub verify_uploads: Option<bool>,
    /// `ferry sync --images`.
    pub images: Option<u16>,
    /// `ferry sync --fail-fast`.
    pub fail_fast: Option<bool>,
    /// `ferry sync --grace` (`25s`, `2m`).
    pub grace: Option<String>,
    /// `ferry sync --prune-max`.
    pub prune_max: Option<usize>,
}

/// One registry's table.
#[derive(Debug, Default, Deserialize)]
pub struct RegistryConfig {
    /// Its storage root: `file:///path` or `s3://bucket/prefix`.
    pub storage: Option<String>,
    /// Strategy order when this registry is the destination (overrides `auto`).
    pub mount: Option<Vec<String>>,
    /// Speak plain HTTP to it.
    pub plain_http: Option<bool>,
    /// Accept any TLS certificate from it.
    pub insecure: Option<bool>,
    /// A PEM file of CA certificates to trust for it.
    pub ca_cert: Option<PathBuf>,
    /// Hash blobs pushed to it in ferry too (for a registry that does not check digests).
    pub verify_uploads: Option<bool>,
    /// Everything else: storage options (`trusted`, S3 `endpoint`, `region`, keys, ...),
    /// checked by [`StorageRoot::parse`], which refuses unknown ones by name.
    #[serde(flatten)]
    pub storage_options: BTreeMap<String, toml::Value>,
}

/// The default file: `$XDG_CONFIG_HOME/ferry/ferry.toml`, else `~/.config/ferry/ferry.toml`.
pub fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("ferry").join("ferry.toml"))
}

/// A TOML error as `line L, column C: message`, without the excerpt of the file that the
/// error's own `Display` shows: the line may hold a secret (`secret_access_key = "…`).
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_string(),
    }
}

impl Config {
    /// Reads `explicit` (which must exist), else the default file if there is one.
    pub fn load(explicit: Option<&Path>) -> Result<Self> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => match default_path() {
                Some(p) if p.exists() => p,
                _ => return Ok(Self::default()),
            },
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow::Error::new(Error::NotFound {
                    what: format!("config file `{}`", path.display()),
                    hint: Some("check the path given with --config".into()),
                })
            } else {
                anyhow::Error::new(Error::io(
                    format!("reading config file `{}`", path.display()),
                    e,
                ))
            }
        })?;
        let config: Config = toml::from_str(&text).map_err(|e| {
            Error::invalid(
                "config file",
                path.display().to_string(),
                toml_error(&text, &e),
            )
        })?;
        config
            .check()
            .with_context(|| format!("in config file `{}`", path.display()))?;
        tracing::info!(path = %path.display(), registries = config.registries.len(), "config loaded");
        Ok(config)
    }

    /// `other` laid over `self`: its defaults where it sets them, its registry tables in
    /// place of those of the same host, and its sync entries (else `self`'s).
    pub fn merge(mut self, other: Config) -> Config {
        let (a, b) = (&mut self.defaults, other.defaults);
        macro_rules! over {
            ($($field:ident),*) => { $( if b.$field.is_some() { a.$field = b.$field; } )* };
        }
        over!(
            concurrency,
            mount,
            manifest_limit,
            plain_http,
            insecure,
            ipfs_gateway,
            ipfs_cid_map,
            no_cache,
            verify_uploads,
            images,
            fail_fast,
            grace,
            prune_max
        );
        self.registries.extend(other.registries);
        if !other.sync.is_empty() {
            self.sync = other.sync;
        }
        self
    }

    fn check(&self) -> Result<()> {
        for (host, reg) in &self.registries {
            if reg.storage.is_none()
                && let Some(key) = reg.storage_options.keys().next()
            {
                return Err(Error::invalid(
                    "config key",
                    format!("registries.\"{host}\".{key}"),
                    "unknown key (storage options need a `storage` URL)",
                )
                .into());
            }
        }
        Ok(())
    }

    /// Fills what the command line left open from the file: defaults, and the transport
    /// settings of the registries on each side.
    pub fn apply(
        &self,
        args: &mut crate::args::CopyArgs,
        from_host: Option<&str>,
        to_host: Option<&str>,
    ) {
        let d = &self.defaults;
        args.concurrency = args.concurrency.or(d.concurrency);
        args.mount = args.mount.take().or_else(|| {
            // The destination registry's own order, else the default list.
            to_host
                .and_then(|h| self.registry(h))
                .and_then(|r| r.mount.as_ref())
                .map(|list| list.join(","))
                .or_else(|| d.mount.clone())
        });
        args.manifest_limit = args.manifest_limit.or(d.manifest_limit);
        args.ipfs_gateway = args.ipfs_gateway.take().or_else(|| d.ipfs_gateway.clone());
        args.ipfs_cid_map = args.ipfs_cid_map.take().or_else(|| d.ipfs_cid_map.clone());
        args.no_cache |= d.no_cache.unwrap_or(false);
        let r = &mut args.registry;
        r.plain_http |= d.plain_http.unwrap_or(false);
        r.insecure |= d.insecure.unwrap_or(false);
        r.ca_cert.extend(d.ca_cert.clone());
        r.verify_uploads |= d.verify_uploads.unwrap_or(false);
        if let Some(reg) = from_host.and_then(|h| self.registry(h)) {
            r.from_plain_http |= reg.plain_http.unwrap_or(false);
            r.from_insecure |= reg.insecure.unwrap_or(false);
            r.from_ca_cert.extend(reg.ca_cert.clone());
        }
        if let Some(reg) = to_host.and_then(|h| self.registry(h)) {
            r.to_plain_http |= reg.plain_http.unwrap_or(false);
            r.to_insecure |= reg.insecure.unwrap_or(false);
            r.to_ca_cert.extend(reg.ca_cert.clone());
            r.verify_uploads |= reg.verify_uploads.unwrap_or(false);
        }
    }

    /// The table of registry `host`, if any.
    pub fn registry(&self, host: &str) -> Option<&RegistryConfig> {
        self.registries.get(host)
    }

    /// A `DistributionStorageMount` over every registry with a storage root, if any.
    pub fn distribution_storage(&self) -> Result<Option<DistributionStorageMount>> {
        let mut mount = DistributionStorageMount::new();
        let mut any = false;
        for (host, reg) in &self.registries {
            let Some(url) = &reg.storage else { continue };
            let options: Vec<(String, String)> = reg
                .storage_options
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect();
            let root = StorageRoot::parse(url, options)
                .with_context(|| format!("in config: the storage of registry `{host}`"))?;
            mount.add_registry(host.clone(), root);
            any = true;
        }
        Ok(any.then_some(mount))
    }
}
