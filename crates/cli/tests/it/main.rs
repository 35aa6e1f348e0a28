//! `ferry` as a user runs it.

mod config;
mod crash;
mod faults;
mod image;
mod ipfs;
mod layouts;
mod load;
mod plans;
mod ranges;
mod registries;
mod retries;
mod security;
mod service;
mod soak;
mod support;
mod sync;
mod sync_faults;
mod transport;
