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
