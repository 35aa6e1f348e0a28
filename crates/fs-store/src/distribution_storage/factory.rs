//! [`DistributionStorageMount`] by name.

use std::sync::Arc;
use std::time::Duration;

use ferry_core::layer::MountStrategyExt;
use ferry_core::{Error, MountStrategy, Result, StrategyConfig, StrategyFactory};
use serde_json::Value;

use super::{DistributionStorageMount, NAME, StorageRoot};

/// How long the strategy is left alone after storage could not be reached, so the blobs of a
/// copy do not each wait for the same timeout.
pub const REST_AFTER_UNREACHABLE: Duration = Duration::from_secs(30);

/// [`DistributionStorageMount`] by name (`distribution-storage`), for applications that
/// compose chains from names ([`ferry_core::StrategyFactories`]).
///
/// It reads the registries' tables ([`StrategyConfig::registries`]): a registry with a
/// `storage` URL (`file:///srv/registry`, `s3://bucket/prefix`) and that root's options
/// (`trusted`, S3 `endpoint`, `region`, keys; see [`StorageRoot::parse`]). `auto` includes it
/// when some registry has a storage root. The strategy rests for
/// [`REST_AFTER_UNREACHABLE`] after storage could not be reached.
#[derive(Debug, Clone, Copy, Default)]
pub struct DistributionStorageFactory;

impl DistributionStorageFactory {
    /// The mount over the roots `config` gives, or `None` when no registry has one.
    fn mount(config: &StrategyConfig) -> Result<Option<DistributionStorageMount>> {
        let mut mount = DistributionStorageMount::new();
        let mut any = false;
        for (host, table) in &config.registries {
            let url = match table.get("storage") {
                Some(Value::String(url)) => url,
                Some(other) => {
                    return Err(Error::invalid(
                        "registry setting",
                        format!("registries.\"{host}\".storage"),
                        format!("it is `{other}`; give a `file://` or `s3://` URL"),
                    ));
                }
                None => {
                    if let Some(key) = table.keys().next() {
                        return Err(Error::invalid(
                            "registry setting",
                            format!("registries.\"{host}\".{key}"),
                            "unknown key (storage options need a `storage` URL)",
                        ));
                    }
                    continue;
                }
            };
            let options: Vec<(String, String)> = table
                .iter()
                .filter(|(k, _)| k.as_str() != "storage")
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect();
            let root = StorageRoot::parse(url, options).map_err(|e| match e {
                Error::InvalidInput {
                    kind,
                    value,
                    reason,
                } => Error::InvalidInput {
                    kind,
                    value,
                    reason: format!("{reason} (the storage of registry `{host}`)"),
                },
                other => other,
            })?;
            mount.add_registry(host.clone(), root);
            any = true;
        }
        Ok(any.then_some(mount))
    }
}

impl StrategyFactory for DistributionStorageFactory {
    fn name(&self) -> &'static str {
        NAME
    }

    fn summary(&self) -> &'static str {
        "a link at the storage layer between registries sharing a filesystem or S3 backend"
    }

    fn plan_label(&self) -> &'static str {
        "another registry's storage: hardlink, server-side copy, or a link to data already there"
    }

    fn registry_keys(&self) -> &'static [&'static str] {
        &["*"]
    }

    fn in_auto(&self, config: &StrategyConfig) -> bool {
        config
            .registries
            .values()
            .any(|table| table.contains_key("storage"))
    }

    fn check(&self, config: &StrategyConfig) -> Result<()> {
        Self::mount(config).map(|_| ())
    }

    fn build(&self, config: &StrategyConfig) -> Result<Arc<dyn MountStrategy>> {
        match Self::mount(config)? {
            Some(mount) => Ok(Arc::new(
                mount.resting_after_failure(REST_AFTER_UNREACHABLE),
            )),
            None => Err(Error::invalid(
                "mount strategy",
                NAME,
                "no registry has a storage root: give one a `storage` URL (`file:///…` or \
                 `s3://…`) in its table of the configuration file",
            )),
        }
    }
}
