//! Strategies registered by name: what an application (the `ferry` CLI) needs to offer a
//! strategy in its `--mount` lists, its help, its dry runs and its configuration file without
//! a line of its own per strategy.
//!
//! Each strategy crate offers a [`StrategyFactory`]: its name, what it reads from
//! configuration ([`Setting`]s of its own, keys of a registry's table), and `build`. A
//! [`StrategyFactories`] list composes a [`MountChain`] from a list of names (`auto`, `none`,
//! `cross-repo,shared-storage`), giving each factory its [`StrategyConfig`].
//!
//! ```
//! # use std::sync::Arc;
//! # use ferry_core::{MountChain, MountStrategy, Result};
//! # use ferry_core::mount::{Setting, StrategyConfig, StrategyFactory, StrategyFactories};
//! #[derive(Debug)]
//! struct Nothing;
//!
//! impl StrategyFactory for Nothing {
//!     fn name(&self) -> &'static str { "nothing" }
//!     fn summary(&self) -> &'static str { "never mounts (an example)" }
//!     fn settings(&self) -> &'static [Setting] {
//!         const SETTINGS: &[Setting] = &[Setting::new("why", "what to say when not mounting")];
//!         SETTINGS
//!     }
//!     fn build(&self, _config: &StrategyConfig) -> Result<Arc<dyn MountStrategy>> {
//!         # unimplemented!()
//!     }
//! }
//!
//! let factories = StrategyFactories::new().with(Nothing);
//! assert_eq!(factories.names(), vec!["nothing"]);
//! let chain = factories.chain("none", |_| StrategyConfig::default())?;
//! assert!(chain.is_empty());
//! # Ok::<(), ferry_core::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{MountChain, MountStrategy};
use crate::error::{Error, Result};

/// One setting a factory reads from its [`StrategyConfig::settings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Setting {
    /// The key (`gateway`, `mount_from`): `[mount.NAME] KEY = …` in a configuration file,
    /// `--mount-opt NAME.KEY=VALUE` on the command line.
    pub key: &'static str,
    /// What it means, one line for the help.
    pub help: &'static str,
    /// Whether the strategy cannot be built without it.
    pub required: bool,
}

impl Setting {
    /// An optional setting.
    pub const fn new(key: &'static str, help: &'static str) -> Self {
        Self {
            key,
            help,
            required: false,
        }
    }

    /// A setting the strategy cannot be built without.
    pub const fn required(key: &'static str, help: &'static str) -> Self {
        Self {
            key,
            help,
            required: true,
        }
    }
}

/// What a factory is given to build its strategy.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct StrategyConfig {
    /// The strategy's own settings ([`StrategyFactory::settings`]), from the command line
    /// and the configuration file; values are strings, booleans, numbers or lists of them.
    pub settings: Map<String, Value>,
    /// Per registry (`host:port`): the keys of its table that this factory declared
    /// ([`StrategyFactory::registry_keys`]).
    pub registries: BTreeMap<String, Map<String, Value>>,
    /// Whether a strategy after this one in the chain can bring a blob into a registry.
    pub later_reaches_registries: bool,
    /// Whether the chain serves a run of many images compared by digest first (a sync),
    /// where the destination holds most blobs of what it is asked to copy less often than a
    /// single copy's destination does.
    pub many_images: bool,
}

impl StrategyConfig {
    /// The string setting `key`; an error naming the strategy and the key when it has
    /// another type.
    pub fn string(&self, strategy: &str, key: &str) -> Result<Option<String>> {
        match self.settings.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(bad_setting(strategy, key, other, "a string")),
        }
    }

    /// The boolean setting `key` (`true`, `false`, or the strings `"true"`, `"false"`), false
    /// when absent.
    pub fn flag(&self, strategy: &str, key: &str) -> Result<bool> {
        match self.settings.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s == "true" => Ok(true),
            Some(Value::String(s)) if s == "false" => Ok(false),
            Some(other) => Err(bad_setting(strategy, key, other, "`true` or `false`")),
        }
    }

    /// The list setting `key`: a list of strings, or one string (comma-separated items).
    pub fn list(&self, strategy: &str, key: &str) -> Result<Vec<String>> {
        match self.settings.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(bad_setting(strategy, key, other, "a list of strings")),
                })
                .collect(),
            Some(other) => Err(bad_setting(strategy, key, other, "a list of strings")),
        }
    }
}

fn bad_setting(strategy: &str, key: &str, value: &Value, wanted: &str) -> Error {
    Error::invalid(
        "strategy setting",
        format!("{strategy}.{key}"),
        format!("it is `{value}`; give {wanted}"),
    )
}

/// A mount strategy offered by name: what `--mount NAME` builds.
pub trait StrategyFactory: Debug + Send + Sync + 'static {
    /// The name lists and reports use (`cross-repo`): the strategy's
    /// [`MountStrategy::name`].
    fn name(&self) -> &'static str;

    /// Other names a list may use for it (`hardlink` for `shared-storage`).
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }

    /// What it does, one line for the help (`OCI cross-repository mount inside one
    /// registry`).
    fn summary(&self) -> &'static str;

    /// Where a dry run expects it to take blobs from, for the help of `--dry-run` (`another
    /// repository of the destination registry`).
    fn plan_label(&self) -> &'static str {
        self.summary()
    }

    /// The settings it reads from [`StrategyConfig::settings`].
    fn settings(&self) -> &'static [Setting] {
        &[]
    }

    /// The keys of a registry's table it reads (`storage`), given to it in
    /// [`StrategyConfig::registries`]. `"*"` takes every key the application does not know
    /// itself (the factory then refuses the ones it does not know either).
    fn registry_keys(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether `auto` includes it under `config`; by default when it has every required
    /// setting.
    fn in_auto(&self, config: &StrategyConfig) -> bool {
        self.settings()
            .iter()
            .filter(|s| s.required)
            .all(|s| config.settings.contains_key(s.key))
    }

    /// Whether its strategy can bring a blob into a registry repository.
    fn reaches_registries(&self) -> bool {
        true
    }

    /// Checks `config` without building anything, so an application can refuse a bad
    /// configuration file when it loads it, whether or not this strategy runs. By default
    /// nothing is checked.
    fn check(&self, _config: &StrategyConfig) -> Result<()> {
        Ok(())
    }

    /// The strategy, configured. A setting it needs and lacks, or cannot use, is
    /// [`Error::InvalidInput`] naming the strategy and the key.
    fn build(&self, config: &StrategyConfig) -> Result<Arc<dyn MountStrategy>>;
}

/// The factories an application offers, in the order `auto` tries them.
#[derive(Debug, Clone, Default)]
pub struct StrategyFactories {
    factories: Vec<Arc<dyn StrategyFactory>>,
}

impl StrategyFactories {
    /// No factory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `factory` last (of `auto` too). A factory of the same name replaces the earlier
    /// one, in its place.
    pub fn with(mut self, factory: impl StrategyFactory) -> Self {
        self.push(Arc::new(factory));
        self
    }

    /// Adds a shared factory last; a factory of the same name replaces the earlier one.
    pub fn push(&mut self, factory: Arc<dyn StrategyFactory>) {
        match self
            .factories
            .iter()
            .position(|f| f.name() == factory.name())
        {
            Some(i) => self.factories[i] = factory,
            None => self.factories.push(factory),
        }
    }

    /// The factories, in order.
    pub fn iter(&self) -> impl Iterator<Item = &dyn StrategyFactory> {
        self.factories.iter().map(|f| f.as_ref())
    }

    /// Their names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.factories.iter().map(|f| f.name()).collect()
    }

    /// The factory `name` (or alias) names.
    pub fn get(&self, name: &str) -> Option<&dyn StrategyFactory> {
        self.iter()
            .find(|f| f.name() == name || f.aliases().contains(&name))
    }

    /// The factories a list names, in its order: `auto` (every factory whose
    /// [`StrategyFactory::in_auto`] says yes), `none`, or names and aliases separated by
    /// commas. An unknown name is [`Error::InvalidInput`] listing the known ones.
    pub fn select(
        &self,
        list: &str,
        config: impl Fn(&dyn StrategyFactory) -> StrategyConfig,
    ) -> Result<Vec<&dyn StrategyFactory>> {
        match list.trim() {
            "none" => Ok(Vec::new()),
            "auto" | "" => Ok(self.iter().filter(|f| f.in_auto(&config(*f))).collect()),
            list => {
                let mut out: Vec<&dyn StrategyFactory> = Vec::new();
                for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let Some(f) = self.get(name) else {
                        return Err(Error::invalid(
                            "mount strategy",
                            name,
                            format!(
                                "known strategies: {}; or `auto`, `none`",
                                self.names().join(", ")
                            ),
                        ));
                    };
                    if !out.iter().any(|o| o.name() == f.name()) {
                        out.push(f);
                    }
                }
                Ok(out)
            }
        }
    }

    /// The chain `list` names (see [`StrategyFactories::select`]), each strategy built with
    /// the configuration `config` gives its factory, with
    /// [`StrategyConfig::later_reaches_registries`] filled in. A required setting that is
    /// missing is [`Error::MissingSetting`].
    pub fn chain(
        &self,
        list: &str,
        config: impl Fn(&dyn StrategyFactory) -> StrategyConfig,
    ) -> Result<MountChain> {
        let selected = self.select(list, &config)?;
        let mut chain = MountChain::new();
        for (i, factory) in selected.iter().enumerate() {
            let mut c = config(*factory);
            c.later_reaches_registries = selected[i + 1..].iter().any(|f| f.reaches_registries());
            if let Some(missing) = factory
                .settings()
                .iter()
                .find(|s| s.required && !c.settings.contains_key(s.key))
            {
                return Err(Error::MissingSetting {
                    strategy: factory.name().to_string(),
                    key: missing.key.to_string(),
                    help: missing.help.to_string(),
                });
            }
            chain.push(factory.build(&c)?);
        }
        Ok(chain)
    }
}
