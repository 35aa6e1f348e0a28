//! [`BlobTransfers`]: the blob transfers of a run that makes many copies (a sync), shared by
//! all of them, so a blob is brought to a destination once and every other copy that needs it
//! there waits for that transfer and then mounts it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use oci_spec::image::Digest;
use tokio::sync::watch;

use crate::store::StoreInfo;

/// Which blob at which destination authority: the destination's scheme and authority (a
/// registry's `host:port`, a filesystem), and the digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    scheme: String,
    authority: String,
    digest: Digest,
}

/// What the run knows of one blob on one authority.
#[derive(Debug, Default)]
struct Slot {
    /// The stores of the authority this run brought the blob to (or found it in).
    landed: Vec<StoreInfo>,
    /// The first transfer to the authority, before the blob landed anywhere on it: every other
    /// copy waits for it, so the blob is streamed once.
    first: Option<watch::Receiver<()>>,
    /// Once it landed somewhere, the transfer to each further store (a mount, as a rule): the
    /// other copies into that same store wait for it.
    into: HashMap<String, watch::Receiver<()>>,
}

/// The table of blob transfers of one run, keyed by destination authority and digest.
///
/// Put one `Arc<BlobTransfers>` into the [`crate::CopyOptions::transfers`] of every copy of a
/// run. The first copy that needs a blob at a destination authority (a registry, a
/// filesystem) leads: it mounts or streams the blob as usual, and every other copy that needs
/// the blob on that authority meanwhile waits for it. Once the blob landed in one store, a
/// copy into another store of the authority brings it over with the mount chain (the run's
/// [`crate::BlobLocations`] names where it landed, so a cross-repository mount or a link on
/// shared storage applies), other copies into that same store waiting for it; a copy into a
/// store the blob already landed in finds it there without a request. When a transfer fails,
/// a waiter takes over.
#[derive(Debug, Default)]
pub struct BlobTransfers {
    slots: Mutex<HashMap<Key, Slot>>,
    led: AtomicU64,
    followed: AtomicU64,
    waited: AtomicU64,
}

/// What a copy that needs a blob is to do.
pub(crate) enum Claim {
    /// Bring the blob over and report where it landed.
    Lead(Lead),
    /// The blob is already at this store (this run brought it there).
    Present,
    /// Another copy is bringing it over: wait, then claim again.
    Wait(Wait),
}

/// The handle of the copy bringing a blob over: [`Lead::landed`] records it; dropping it
/// without that (the transfer failed) frees the way for a waiter.
pub(crate) struct Lead {
    table: Arc<BlobTransfers>,
    key: Key,
    /// `None` for the first transfer to the authority, else the store's namespace.
    into: Option<String>,
    landed: bool,
    _sender: watch::Sender<()>,
}

/// A waiter's handle.
pub(crate) struct Wait(watch::Receiver<()>);

impl Wait {
    /// Returns when the transfer waited for ends, however it ends.
    pub(crate) async fn done(mut self) {
        // The sender is dropped when the transfer ends; nothing is ever sent.
        while self.0.changed().await.is_ok() {}
    }
}

impl Lead {
    /// Records that the blob is now at `store`.
    pub(crate) fn landed(mut self, store: &StoreInfo) {
        let mut slots = self.table.slots.lock().expect("transfers lock");
        let slot = slots.entry(self.key.clone()).or_default();
        if !slot.landed.contains(store) {
            slot.landed.push(store.clone());
        }
        self.landed = true;
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        let mut slots = self.table.slots.lock().expect("transfers lock");
        if let Some(slot) = slots.get_mut(&self.key) {
            match &self.into {
                None => slot.first = None,
                Some(ns) => {
                    slot.into.remove(ns);
                }
            }
        }
        // The sender drops after this, waking the waiters, which find the slot updated.
    }
}

/// How the copies of a run shared their blob transfers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TransferStats {
    /// Blobs brought to a destination authority for the first time in the run (streamed,
    /// mounted from elsewhere, or found there).
    pub led: u64,
    /// Blobs brought to a further store of an authority where the run had landed them
    /// already (by a mount or a link, as a rule).
    pub followed: u64,
    /// Times a copy waited for another copy's transfer of the same blob instead of starting
    /// its own.
    pub waited: u64,
}

impl BlobTransfers {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// How the table was used so far.
    pub fn stats(&self) -> TransferStats {
        TransferStats {
            led: self.led.load(Ordering::Relaxed),
            followed: self.followed.load(Ordering::Relaxed),
            waited: self.waited.load(Ordering::Relaxed),
        }
    }

    /// Claims the transfer of `digest` to `destination`.
    pub(crate) fn claim(self: &Arc<Self>, destination: &StoreInfo, digest: &Digest) -> Claim {
        let key = Key {
            scheme: destination.scheme.clone(),
            authority: destination.authority.clone(),
            digest: digest.clone(),
        };
        let mut slots = self.slots.lock().expect("transfers lock");
        let slot = slots.entry(key.clone()).or_default();
        if slot.landed.contains(destination) {
            return Claim::Present;
        }
        let waiting = if slot.landed.is_empty() {
            slot.first.as_ref()
        } else {
            slot.into.get(&destination.namespace)
        };
        if let Some(receiver) = waiting {
            self.waited.fetch_add(1, Ordering::Relaxed);
            return Claim::Wait(Wait(receiver.clone()));
        }
        let (sender, receiver) = watch::channel(());
        let into = if slot.landed.is_empty() {
            slot.first = Some(receiver);
            self.led.fetch_add(1, Ordering::Relaxed);
            None
        } else {
            slot.into.insert(destination.namespace.clone(), receiver);
            self.followed.fetch_add(1, Ordering::Relaxed);
            Some(destination.namespace.clone())
        };
        Claim::Lead(Lead {
            table: self.clone(),
            key,
            into,
            landed: false,
            _sender: sender,
        })
    }
}
