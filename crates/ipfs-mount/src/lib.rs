//! ferry-ipfs-mount: the IPFS-address mount strategy of ferry.
//!
//! This crate will hold IPFS addresses for OCI blobs (`ipfs://CID` urls, raw CIDv1 derived
//! from sha256 digests, CID maps), a verifying client for the IPFS HTTP trustless gateway, and
//! `IpfsMount`, the strategy that brings a blob to the destination from IPFS instead of from
//! the source.
