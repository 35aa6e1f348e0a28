//! [`BlobTransfers`]: the blob transfers of a run that makes many copies (a sync), shared by
//! all of them, so a blob is brought to a destination once and every other copy that needs it
//! there waits for that transfer and then mounts it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use oci_spec::image::Digest;
use tokio::sync::watch;

use crate::store::StoreInfo;

/// Which transfer: the destination's scheme and authority (a registry's `host:port`, a
/// filesystem), and the digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    scheme: String,
    authority: String,
    digest: Digest,
}

#[derive(Debug)]
enum Slot {
    /// A copy is bringing the blob over; waiters hold a receiver whose sender goes away when
    /// it ends.
    InFlight(watch::Receiver<()>),
    /// The blob is at this store.
    Landed(StoreInfo),
}

/// The table of blob transfers of one run, keyed by destination authority and digest.
///
/// Put one `Arc<BlobTransfers>` into the [`crate::CopyOptions::transfers`] of every copy of a
/// run. The first copy that needs a blob at a destination authority (a registry, a
/// filesystem) leads: it mounts or streams the blob as usual. A copy that needs the same blob
/// there meanwhile waits for the leader, then mounts it from the store the leader brought it
/// to (the run's [`crate::BlobLocations`] names it, so a cross-repository mount or a link on
/// shared storage applies), and finds it present without a request when it is the same
/// store. When the leader fails, a waiter leads in its place.
#[derive(Debug, Default)]
pub struct BlobTransfers {
    slots: Mutex<HashMap<Key, Slot>>,
    led: AtomicU64,
    waited: AtomicU64,
}

/// What a copy that needs a blob is to do.
pub(crate) enum Claim {
    /// Bring the blob over and report where it landed.
    Lead(Lead),
    /// The blob is already at this store (this run brought it there).
    Landed(StoreInfo),
    /// Another copy is bringing it over: wait, then claim again.
    Wait(Wait),
}

/// The leader's handle: [`Lead::landed`] records where the blob is; dropping it without
/// that (the transfer failed) frees the slot for a waiter to lead.
pub(crate) struct Lead {
    table: Arc<BlobTransfers>,
    key: Key,
    landed: bool,
    _sender: watch::Sender<()>,
}

/// A waiter's handle.
pub(crate) struct Wait(watch::Receiver<()>);

impl Wait {
    /// Returns when the transfer waited for ends, however it ends.
    pub(crate) async fn done(mut self) {
        // The sender is dropped when the leader ends; nothing is ever sent.
        while self.0.changed().await.is_ok() {}
    }
}

impl Lead {
    /// Records that the blob is now at `store`.
    pub(crate) fn landed(mut self, store: &StoreInfo) {
        self.table
            .slots
            .lock()
            .expect("transfers lock")
            .insert(self.key.clone(), Slot::Landed(store.clone()));
        self.landed = true;
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        if !self.landed {
            self.table
                .slots
                .lock()
                .expect("transfers lock")
                .remove(&self.key);
        }
        // The sender drops after this, waking the waiters, which find the slot updated.
    }
}

/// How the copies of a run shared their blob transfers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TransferStats {
    /// Blobs a copy brought to a destination authority first (mounted, found or streamed).
    pub led: u64,
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
            waited: self.waited.load(Ordering::Relaxed),
        }
    }

    /// Claims the transfer of `digest` to the authority of `destination`.
    pub(crate) fn claim(self: &Arc<Self>, destination: &StoreInfo, digest: &Digest) -> Claim {
        let key = Key {
            scheme: destination.scheme.clone(),
            authority: destination.authority.clone(),
            digest: digest.clone(),
        };
        let mut slots = self.slots.lock().expect("transfers lock");
        match slots.get(&key) {
            Some(Slot::Landed(store)) => Claim::Landed(store.clone()),
            Some(Slot::InFlight(receiver)) => {
                self.waited.fetch_add(1, Ordering::Relaxed);
                Claim::Wait(Wait(receiver.clone()))
            }
            None => {
                let (sender, receiver) = watch::channel(());
                slots.insert(key.clone(), Slot::InFlight(receiver));
                self.led.fetch_add(1, Ordering::Relaxed);
                Claim::Lead(Lead {
                    table: self.clone(),
                    key,
                    landed: false,
                    _sender: sender,
                })
            }
        }
    }
}
