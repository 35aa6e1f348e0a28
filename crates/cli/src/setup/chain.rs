//! Mount chains from the registered strategy factories, the flags and the configuration
//! file, and the help text that names them.

use anyhow::Result;
use ferry_core::{Error, MountChain, StrategyConfig, StrategyFactories, StrategyFactory};
use ferry_distribution::CrossRepoFactory;
use ferry_fs_store::SharedStorageFactory;
use serde_json::{Map, Value};

use crate::config::Config;
use crate::options::CopyArgs;

/// The chain `--mount` (or the configuration's `mount` for the destination registry, or
/// `auto`) names, each strategy with its settings: `[mount.NAME]` of the file, then the
/// flags that set them, then `--mount-opt NAME.KEY=VALUE`. `many_images`: the chain serves a
/// sync.
pub fn build(
    factories: &StrategyFactories,
    args: &CopyArgs,
    config: &Config,
    many_images: bool,
) -> Result<MountChain> {
    let options = mount_options(factories, &args.mount_opt)?;
    let list = args.mount.as_deref().unwrap_or("auto");
    let chain = factories.chain(list, |factory| {
        strategy_config(factory, args, config, &options, many_images)
    })?;
    Ok(chain)
}

/// The flags that set a strategy's setting: (strategy, key, value).
fn flag_settings(args: &CopyArgs) -> Vec<(&'static str, &'static str, Value)> {
    let mut out = Vec::new();
    if !args.mount_from.is_empty() {
        let list = args.mount_from.iter().cloned().map(Value::String).collect();
        out.push((CrossRepoFactory::NAME, "mount_from", Value::Array(list)));
    }
    if args.anonymous_mount {
        out.push((CrossRepoFactory::NAME, "anonymous", Value::Bool(true)));
    }
    if args.trust_source_storage {
        out.push((SharedStorageFactory::NAME, "trusted", Value::Bool(true)));
    }
    if let Some(url) = &args.ipfs_gateway {
        out.push((
            ferry_ipfs_mount::NAME,
            "gateway",
            Value::String(url.clone()),
        ));
    }
    if let Some(path) = &args.ipfs_cid_map {
        let path = path.display().to_string();
        out.push((ferry_ipfs_mount::NAME, "cid_map", Value::String(path)));
    }
    out
}

/// `--mount-opt NAME.KEY=VALUE` values, checked against what the factories declare.
fn mount_options(
    factories: &StrategyFactories,
    given: &[String],
) -> Result<Vec<(&'static str, String, Value)>> {
    let mut out = Vec::new();
    for text in given {
        let invalid =
            |reason: String| Error::invalid("flag", format!("--mount-opt {text}"), reason);
        let Some((path, value)) = text.split_once('=') else {
            return Err(invalid("write `NAME.KEY=VALUE`".into()).into());
        };
        let Some((name, key)) = path.split_once('.') else {
            return Err(invalid("write `NAME.KEY=VALUE`, NAME a strategy".into()).into());
        };
        let Some(factory) = factories.get(name.trim()) else {
            return Err(invalid(format!(
                "no mount strategy is named `{name}`; known: {}",
                factories.names().join(", ")
            ))
            .into());
        };
        let key = key.trim();
        if !factory.settings().iter().any(|s| s.key == key) {
            let keys: Vec<&str> = factory.settings().iter().map(|s| s.key).collect();
            return Err(invalid(format!(
                "`{}` has no setting `{key}`; its settings: {}",
                factory.name(),
                if keys.is_empty() {
                    "none".to_string()
                } else {
                    keys.join(", ")
                }
            ))
            .into());
        }
        out.push((
            factory.name(),
            key.to_string(),
            Value::String(value.to_string()),
        ));
    }
    Ok(out)
}

/// What `factory` is given.
fn strategy_config(
    factory: &dyn StrategyFactory,
    args: &CopyArgs,
    config: &Config,
    options: &[(&'static str, String, Value)],
    many_images: bool,
) -> StrategyConfig {
    let name = factory.name();
    let mut c = StrategyConfig::default();
    c.many_images = many_images;
    if let Some(table) = config.mount.get(name) {
        for (k, v) in table {
            c.settings.insert(k.clone(), toml_to_json(v));
        }
    }
    if name == ferry_ipfs_mount::NAME {
        // The keys `[defaults]` held before strategies had tables of their own.
        let d = &config.defaults;
        if let Some(url) = &d.ipfs_gateway {
            c.settings
                .entry("gateway")
                .or_insert(Value::String(url.clone()));
        }
        if let Some(path) = &d.ipfs_cid_map {
            let path = Value::String(path.display().to_string());
            c.settings.entry("cid_map").or_insert(path);
        }
    }
    for (strategy, key, value) in flag_settings(args) {
        if strategy == name {
            c.settings.insert(key.to_string(), value);
        }
    }
    for (strategy, key, value) in options {
        if *strategy == name {
            c.settings.insert(key.clone(), value.clone());
        }
    }
    let keys = factory.registry_keys();
    if !keys.is_empty() {
        for (host, table) in &config.registries {
            let mut mine = Map::new();
            for (k, v) in &table.strategy_keys {
                if keys.contains(&"*") || keys.contains(&k.as_str()) {
                    mine.insert(k.clone(), toml_to_json(v));
                }
            }
            if !mine.is_empty() {
                c.registries.insert(host.clone(), mine);
            }
        }
    }
    c
}

fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => Value::from(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

/// Checks the strategy settings of the configuration file with every factory, so a bad file
/// is refused when it is read.
pub fn check(factories: &StrategyFactories, config: &Config) -> Result<()> {
    let args = CopyArgs::default();
    for factory in factories.iter() {
        factory.check(&strategy_config(factory, &args, config, &[], false))?;
    }
    Ok(())
}

/// The help of `--mount`: the names `auto` tries, in order, each with what it does.
pub fn mount_help(factories: &StrategyFactories) -> String {
    let mut text = String::from(
        "Mount strategies to try, in order: `auto` (the strategies below whose settings are \
         given, in this order), `none`, or a comma-separated list of names [default: auto].\n",
    );
    for f in factories.iter() {
        let aliases = match f.aliases() {
            [] => String::new(),
            a => format!(" (also {})", a.join(", ")),
        };
        text.push_str(&format!("\n  {}{aliases}: {}", f.name(), f.summary()));
    }
    text
}

/// The help of `--mount-opt`: every strategy's settings.
pub fn mount_opt_help(factories: &StrategyFactories) -> String {
    let mut text = String::from(
        "A setting of a mount strategy, `NAME.KEY=VALUE` (repeatable; a list's items separated \
         by commas), over its `[mount.NAME]` table in the configuration file.\n",
    );
    for f in factories.iter() {
        for s in f.settings() {
            let required = if s.required { " (required)" } else { "" };
            text.push_str(&format!("\n  {}.{}: {}{required}", f.name(), s.key, s.help));
        }
    }
    text
}

/// The help of `--dry-run`: the lines a plan prints, a mount named for each strategy.
pub fn dry_run_help(factories: &StrategyFactories) -> String {
    let mut text = String::from(
        "Plan with reads only and write nothing. `cp` prints per node `Exists`, `Would copy`, \
         `Would try ... (NAME: what)` or `Would mount DIGEST TYPE from WHERE (NAME)`, then \
         totals; `sync` prints the images it would copy (`Planned`). WHERE, by strategy:\n",
    );
    for f in factories.iter() {
        text.push_str(&format!("\n  ({}) {}", f.name(), f.plan_label()));
    }
    text
}
