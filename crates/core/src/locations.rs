//! What ferry learned about where each blob lives.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oci_spec::image::Digest;
use serde::{Deserialize, Serialize};

use crate::store::StoreInfo;

/// One place a blob was seen, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// The store that holds the blob.
    pub store: StoreInfo,
    /// When it was last seen there, in seconds since the Unix epoch.
    pub seen: u64,
}

impl Location {
    /// A location seen now.
    pub fn now(store: StoreInfo) -> Self {
        Self {
            store,
            seen: unix_now(),
        }
    }

    /// The place as seen from the store `here` ([`StoreInfo::shown_from`]).
    pub fn shown_from(&self, here: &StoreInfo) -> String {
        self.store.shown_from(here)
    }
}

/// The store, as [`StoreInfo`] shows it.
impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.store.fmt(f)
    }
}

/// The store, seen now.
impl From<StoreInfo> for Location {
    fn from(store: StoreInfo) -> Self {
        Location::now(store)
    }
}

impl From<&StoreInfo> for Location {
    fn from(store: &StoreInfo) -> Self {
        Location::now(store.clone())
    }
}

/// Seconds since the Unix epoch, as [`Location::seen`] counts them.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// A record of where blobs live, filled by every verified read, push and mount, and asked by
/// strategies for candidates. Implementations must be cheap to call: the engine calls them on
/// its hot path. Errors of persistent implementations are logged, never fatal.
pub trait BlobLocations: std::fmt::Debug + Send + Sync {
    /// Records that `digest` is held by `store`, now.
    fn record(&self, digest: &Digest, store: &StoreInfo);

    /// Records many digests held by one store at once.
    fn record_all(&self, digests: &[Digest], store: &StoreInfo) {
        for d in digests {
            self.record(d, store);
        }
    }

    /// The places `digest` was seen, most recent first.
    fn locations(&self, digest: &Digest) -> Vec<Location>;

    /// Forgets that `digest` is at `store` (a mount from there failed because it is gone).
    fn forget(&self, digest: &Digest, store: &StoreInfo);
}

/// How many locations are kept per digest.
pub const MAX_LOCATIONS_PER_DIGEST: usize = 16;

/// [`BlobLocations`] in memory, for one process.
#[derive(Debug, Default)]
pub struct InMemoryLocations {
    map: Mutex<HashMap<Digest, Vec<Location>>>,
}

impl InMemoryLocations {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the locations of `digest`, most recent first (a persistent cache loading what it
    /// kept), at most [`MAX_LOCATIONS_PER_DIGEST`] of them.
    pub fn replace(&self, digest: Digest, mut list: Vec<Location>) {
        list.truncate(MAX_LOCATIONS_PER_DIGEST);
        self.map
            .lock()
            .expect("locations lock")
            .insert(digest, list);
    }
}

/// Inserts `store` as the most recent location in `list`, keeping it short: the rule every
/// [`BlobLocations`] implementation follows.
pub fn upsert_location(list: &mut Vec<Location>, store: &StoreInfo) {
    list.retain(|l| &l.store != store);
    list.insert(0, Location::now(store.clone()));
    list.truncate(MAX_LOCATIONS_PER_DIGEST);
}

impl BlobLocations for InMemoryLocations {
    fn record(&self, digest: &Digest, store: &StoreInfo) {
        let mut map = self.map.lock().expect("locations lock");
        upsert_location(map.entry(digest.clone()).or_default(), store);
    }

    fn locations(&self, digest: &Digest) -> Vec<Location> {
        self.map
            .lock()
            .expect("locations lock")
            .get(digest)
            .cloned()
            .unwrap_or_default()
    }

    fn forget(&self, digest: &Digest, store: &StoreInfo) {
        if let Some(list) = self.map.lock().expect("locations lock").get_mut(digest) {
            list.retain(|l| &l.store != store);
        }
    }
}
