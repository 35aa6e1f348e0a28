//! Integration tests of ferry-core.

mod catalog;
mod engine;
mod fixtures;
mod forward;
mod layer;
mod manifest;
mod memory;
mod redact;
mod verify;
