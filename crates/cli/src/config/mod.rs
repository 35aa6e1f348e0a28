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
//! [registries."harbor.corp.example"]
//! proxy = "http://user:pass@proxy.corp.example:3128"   # over HTTPS_PROXY / HTTP_PROXY
//! no_proxy = ".internal.example"                       # over NO_PROXY
//! client_cert = "/etc/ferry/harbor/client.cert"        # over its certs.d directory
//! client_key = "/etc/ferry/harbor/client.key"
//! requests_per_second = 5
//!
//! [mount.ipfs]                              # a mount strategy's settings (`--mount-opt`)
//! gateway = "http://127.0.0.1:8080"
//!
//! [[sync]]                                  # entries `ferry sync` runs (see docs/sync.md)
//! source = "registry.example/team/"
//! destination = "registry-a.example:5000/mirror/team/"
//! semver = ">=1.0"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod entry;

use anyhow::{Context, Result};
use ferry_core::{Error, StrategyFactories};
use serde::Deserialize;

pub use entry::{EntryConfig, OneOrMany};

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
    /// Settings of mount strategies, by strategy name (`[mount.ipfs]`).
    #[serde(default)]
    pub mount: BTreeMap<String, toml::Table>,
    /// `ferry sync` entries (`[[sync]]`), run by `ferry sync` without SRC and DST.
    #[serde(default)]
    pub sync: Vec<EntryConfig>,
    /// The file it was read from (the last one merged).
    #[serde(skip)]
    pub path: Option<PathBuf>,
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
    /// `ferry sync --every` (`15m`, `1h`): run as a service.
    pub every: Option<String>,
    /// `--retries` for every registry and transfer.
    pub retries: Option<u32>,
    /// `--retry-max-wait` (`60s`, `5m`) for every registry and transfer.
    pub retry_max_wait: Option<String>,
    /// `--max-wait` (`10m`, `1h`).
    pub max_wait: Option<String>,
}

/// One registry's table.
#[derive(Debug, Default, Deserialize)]
pub struct RegistryConfig {
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
    /// Retries of its requests (`--retries` for this registry).
    pub retries: Option<u32>,
    /// The most time one of its requests may take, retries included (`60s`).
    pub retry_max_wait: Option<String>,
    /// The proxy it is reached through (`http://[USER:PASSWORD@]HOST:PORT`), over
    /// `HTTPS_PROXY`, `HTTP_PROXY` and `ALL_PROXY`.
    pub proxy: Option<String>,
    /// Hosts reached directly by its client (`NO_PROXY`'s syntax; `*` for all), over
    /// `NO_PROXY`.
    pub no_proxy: Option<String>,
    /// The client certificate (PEM) presented to it, over its `certs.d` directory and
    /// `--cert-dir`.
    pub client_cert: Option<PathBuf>,
    /// The key (PEM: PKCS#8, PKCS#1 or SEC1) of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// At most this many requests per second to it.
    pub requests_per_second: Option<f64>,
    /// Everything else: keys of mount strategies (a storage root's `storage`, `trusted`, S3
    /// `endpoint`, …), given to the strategies that declare them and checked by them.
    #[serde(flatten)]
    pub strategy_keys: BTreeMap<String, toml::Value>,
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
    /// Reads `explicit` (which must exist), else the default file if there is one, and checks
    /// it against the strategies `factories` offers.
    pub fn load(explicit: Option<&Path>, factories: &StrategyFactories) -> Result<Self> {
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
        let mut config: Config = toml::from_str(&text).map_err(|e| {
            Error::invalid(
                "config file",
                path.display().to_string(),
                toml_error(&text, &e),
            )
        })?;

        config
            .check(factories)
            .with_context(|| format!("in config file `{}`", path.display()))?;
        config.path = Some(path.clone());
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
            prune_max,
            retries,
            retry_max_wait,
            every,
            max_wait
        );
        self.registries.extend(other.registries);
        for (name, table) in other.mount {
            self.mount.entry(name).or_default().extend(table);
        }
        if !other.sync.is_empty() {
            self.sync = other.sync;
        }
        if other.path.is_some() {
            self.path = other.path;
        }
        self
    }

    /// Refuses keys of registry tables and `[mount.NAME]` tables no strategy reads, so a bad
    /// file is refused when it is read.
    pub fn check(&self, factories: &StrategyFactories) -> Result<()> {
        for (name, table) in &self.mount {
            let Some(factory) = factories.get(name) else {
                return Err(Error::invalid(
                    "config table",
                    format!("mount.{name}"),
                    format!(
                        "no mount strategy has that name; known: {}",
                        factories.names().join(", ")
                    ),
                )
                .into());
            };
            for key in table.keys() {
                if !factory.settings().iter().any(|s| s.key == key) {
                    let keys: Vec<&str> = factory.settings().iter().map(|s| s.key).collect();
                    return Err(Error::invalid(
                        "config key",
                        format!("mount.{name}.{key}"),
                        format!(
                            "`{}` has no such setting; its settings: {}",
                            factory.name(),
                            if keys.is_empty() {
                                "none".into()
                            } else {
                                keys.join(", ")
                            }
                        ),
                    )
                    .into());
                }
            }
        }
        let takes_any = factories.iter().any(|f| f.registry_keys().contains(&"*"));
        for (host, reg) in &self.registries {
            for key in reg.strategy_keys.keys() {
                let declared = factories
                    .iter()
                    .any(|f| f.registry_keys().contains(&key.as_str()));
                if !declared && !takes_any {
                    return Err(Error::invalid(
                        "config key",
                        format!("registries.\"{host}\".{key}"),
                        "unknown key",
                    )
                    .into());
                }
            }
        }
        Ok(())
    }

    /// Fills what the command line left open from the file's defaults; the mount list from
    /// the destination registry's table (`to_host`), else the default one. (The registries'
    /// transport settings are read where the clients are built.)
    pub fn apply(&self, args: &mut crate::options::CopyArgs, to_host: Option<&str>) {
        let d = &self.defaults;
        args.concurrency = args.concurrency.or(d.concurrency);
        args.mount = args.mount.take().or_else(|| {
            to_host
                .and_then(|h| self.registry(h))
                .and_then(|r| r.mount.as_ref())
                .map(|list| list.join(","))
                .or_else(|| d.mount.clone())
        });
        args.manifest_limit = args.manifest_limit.or(d.manifest_limit);
        args.no_cache |= d.no_cache.unwrap_or(false);
        self.apply_registry(&mut args.registry);
    }

    /// Lays the file's `[defaults]` for reaching registries under the flags.
    pub fn apply_registry(&self, r: &mut crate::options::RegistryArgs) {
        let d = &self.defaults;
        r.plain_http |= d.plain_http.unwrap_or(false);
        r.insecure |= d.insecure.unwrap_or(false);
        r.verify_uploads |= d.verify_uploads.unwrap_or(false);
    }

    /// The table of registry `host`, if any.
    pub fn registry(&self, host: &str) -> Option<&RegistryConfig> {
        self.registries.get(host)
    }
}
