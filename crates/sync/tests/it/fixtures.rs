//! Graphs built in code.

use bytes::Bytes;
use ferry_core::{Descriptor, MemoryStore};

pub const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// Puts a JSON manifest into `store` and returns its descriptor.
pub fn put_json(store: &MemoryStore, media_type: &str, value: serde_json::Value) -> Descriptor {
    store.insert(media_type, Bytes::from(serde_json::to_vec(&value).unwrap()))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
