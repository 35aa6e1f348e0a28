//! `ferry` as a user runs it.

mod config;
mod crash;
mod faults;
mod ipfs;
mod layouts;
mod load;
mod plans;
mod proxies;
mod registries;
mod security;
mod support;
mod sync;
mod sync_faults;
mod transport;
