//! `ferry` as a user runs it.

mod faults;
mod ipfs;
mod layouts;
mod registries;
mod support;
