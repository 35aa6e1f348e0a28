//! `ferry` as a user runs it.

mod client_certs;
mod config;
mod crash;
mod everyday;
mod faults;
mod image;
mod ipfs;
mod layouts;
mod load;
mod login;
mod plans;
mod proxies;
mod quota;
mod ranges;
mod registries;
mod retries;
mod schemas;
mod security;
mod service;
mod soak;
mod support;
mod sync;
mod sync_faults;
mod transport;
