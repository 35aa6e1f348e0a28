//! Integration tests of ferry-ipfs-mount, against a real Helia IPFS node.

mod addresses;
mod client;
mod engine;
mod strategy;
mod support;
