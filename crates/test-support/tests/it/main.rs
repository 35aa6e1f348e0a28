//! Integration tests of ferry-test-support: its servers behave as the other crates' tests
//! rely on.

mod fake;
mod fixtures;
mod registry;
mod token;
