//! Integration tests of ferry-sync.

mod backup;
mod fixtures;
mod schedule;
mod sync;
