//! `ferry` as a user runs it.

mod client_certs;
mod config;
mod crash;
mod faults;
mod ipfs;
mod layouts;
mod load;
mod plans;
mod proxies;
mod quota;
mod registries;
mod security;
mod support;
mod sync;
mod sync_faults;
mod transport;
