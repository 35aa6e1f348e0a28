//! What every command runs with.

use ferry_core::StrategyFactories;

/// What every command runs with.
#[derive(Debug)]
pub struct App {
    /// The strategies `--mount` names.
    pub factories: StrategyFactories,
    /// `-v` or more: failures show their causes.
    pub verbose: bool,
}
