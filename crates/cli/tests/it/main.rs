//! `ferry` as a user runs it.

mod archive_interop;
mod archive_safety;
mod archives;
mod config;
mod crash;
mod faults;
mod ipfs;
mod layouts;
mod load;
mod plans;
mod ranges;
mod readme_air_gaps;
mod registries;
mod retries;
mod security;
mod soak;
mod support;
mod sync;
mod sync_faults;
mod transport;
