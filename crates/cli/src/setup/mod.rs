//! The one way commands build what they run with: registry clients, the blob-location cache,
//! mount chains, and the stores a `ferry cp` reference names.

pub mod cache;
pub mod chain;
pub mod clients;
pub mod stores;

use std::path::Path;

use anyhow::{Context, Result};
use ferry_core::StrategyFactories;

use crate::config::Config;
use crate::options::CommonArgs;
use clients::{Clients, Purpose, Side};

/// The configuration file (`explicit`, else the default one if it exists), checked by every
/// strategy `factories` offers.
pub fn config(factories: &StrategyFactories, explicit: Option<&Path>) -> Result<Config> {
    let config = Config::load(explicit, factories)?;
    chain::check(factories, &config).with_context(|| match &config.path {
        Some(path) => format!("in config file `{}`", path.display()),
        None => "in the configuration".to_string(),
    })?;
    Ok(config)
}

/// The clients of a command that speaks to at most one registry, `host` (see
/// [`Clients::for_one`]), with the configuration file's registry settings under the flags.
pub fn clients_for_one(
    factories: &StrategyFactories,
    common: &CommonArgs,
    host: Option<&str>,
    writes: bool,
    purpose: Purpose,
) -> Result<(Clients, Side)> {
    let config = config(factories, common.config.as_deref())?;
    let mut registry = common.registry.clone();
    config.apply_registry(&mut registry);
    Clients::for_one(&registry, &config, host, writes, purpose)
}

/// Opens what `ep` names for a command that speaks to its one registry, if any (see
/// [`clients_for_one`] and [`stores::open_target`]).
pub async fn open_one(
    factories: &StrategyFactories,
    common: &CommonArgs,
    ep: &crate::endpoint::Endpoint,
    writes: bool,
    purpose: Purpose,
) -> Result<stores::Target> {
    let (clients, side) = clients_for_one(factories, common, ep.registry(), writes, purpose)?;
    stores::open_target(ep, &clients, side).await
}

/// Opens what `ep` names to be read, for a command that speaks to its one registry, if any
/// (see [`stores::open_reader`]): archives too.
pub async fn open_one_reader(
    factories: &StrategyFactories,
    common: &CommonArgs,
    ep: &crate::endpoint::Endpoint,
    purpose: Purpose,
) -> Result<stores::Reader> {
    let (clients, side) = clients_for_one(factories, common, ep.registry(), false, purpose)?;
    stores::open_reader(ep, &clients, side).await
}
