//! `ferry` as a user runs it.

mod config;
mod crash;
mod everyday;
mod faults;
mod ipfs;
mod layouts;
mod load;
mod login;
mod plans;
mod ranges;
mod registries;
mod retries;
mod schemas;
mod security;
mod soak;
mod support;
mod sync;
mod sync_faults;
mod transport;
