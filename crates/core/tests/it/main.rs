//! Integration tests of ferry-core.

mod engine;
mod fixtures;
mod locations;
mod memory;
mod verify;
