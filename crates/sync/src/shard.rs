//! Splitting one sync across processes that share nothing: `--shard K/N`.
//!
//! Repository `path` belongs to shard `fnv1a64(path) mod N`, where `fnv1a64` is the 64-bit
//! FNV-1a hash (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`) of the UTF-8 bytes
//! of the source repository path as the source names it, without host and without leading or
//! trailing `/` (`library/alpine`, `team/app`; for a directory of layouts, the layout's path
//! relative to the directory). Any tool can compute it; in Python:
//!
//! ```text
//! def shard(path, n):
//!     h = 0xcbf29ce484222325
//!     for b in path.encode():
//!         h = ((h ^ b) * 0x100000001b3) % 2**64
//!     return h % n
//! ```
//!
//! Shards are numbered from 0, as Kubernetes numbers the pods of an Indexed Job
//! (`JOB_COMPLETION_INDEX`). Every repository falls in exactly one shard, with all its tags,
//! so N processes with shards `0/N` … `N-1/N` together sync exactly the whole set, none of it
//! twice, without talking to each other.

use std::fmt;
use std::str::FromStr;

use ferry_core::error::{Error, Result};

/// One shard of N: this process syncs the repositories whose path hashes to `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Shard {
    /// This shard, from 0 to `count - 1`.
    pub index: u64,
    /// How many shards.
    pub count: u64,
}

/// 64-bit FNV-1a of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The shard of `count` that repository `path` falls in.
pub fn shard_of(path: &str, count: u64) -> u64 {
    fnv1a64(path.trim_matches('/').as_bytes()) % count.max(1)
}

impl Shard {
    /// Shard `index` of `count`.
    pub fn new(index: u64, count: u64) -> Result<Self> {
        if count == 0 || index >= count {
            return Err(Error::invalid(
                "shard",
                format!("{index}/{count}"),
                "write `K/N` with N at least 1 and K from 0 to N-1 (Kubernetes' \
                 JOB_COMPLETION_INDEX counts from 0)",
            ));
        }
        Ok(Self { index, count })
    }

    /// Whether repository `path` is in this shard.
    pub fn contains(&self, path: &str) -> bool {
        shard_of(path, self.count) == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "shard",
                s,
                "write `K/N`: shard K (from 0) of N, such as `0/4`",
            )
        };
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let k: u64 = k.trim().parse().map_err(|_| bad())?;
        let n: u64 = n.trim().parse().map_err(|_| bad())?;
        Shard::new(k, n)
    }
}
