//! Tests of the conformance kits: each rule passes for a store, strategy or catalog that keeps
//! it and fails for a mutant that breaks it.

mod ability_mutants;
mod catalog_mutants;
mod every_rule;
mod kit;
mod store_mutants;
mod strategy_mutants;
