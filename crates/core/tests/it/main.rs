//! Integration tests of ferry-core.

mod conformance_kit;
mod engine;
mod fixtures;
mod forward;
mod layer;
mod locations;
mod manifest;
mod memory;
mod redact;
mod sync;
mod verify;
