//! Integration tests of ferry-core.

mod catalog;
mod engine;
mod engine_retry;
mod fixtures;
mod forward;
mod layer;
mod manifest;
mod memory;
mod redact;
mod retry;
mod verify;
