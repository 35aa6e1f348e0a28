//! Integration tests of ferry-sync.

mod fixtures;
mod sync;
