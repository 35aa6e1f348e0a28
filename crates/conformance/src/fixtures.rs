//! Stores to try the kits and wrappers on.

use std::sync::Mutex;

use async_trait::async_trait;
use ferry_core::{ByteStream, Descriptor, MemoryStore, ReadStore, Result, WriteStore};

/// A memory store that knows it started empty and offers [`ferry_core::KnownAbsent`], as a
/// registry repository its tag listing showed to be new does: content is known absent until
/// it is written through the store. A forgetful one (`remembers: false`) never learns of what
/// was written, which the conformance rule must catch.
#[derive(Debug)]
pub struct NewStore {
    inner: MemoryStore,
    written: Mutex<std::collections::HashSet<ferry_core::Digest>>,
    remembers: bool,
}

impl NewStore {
    /// An honest new store.
    pub fn new(name: &str) -> Self {
        Self {
            inner: MemoryStore::new(name),
            written: Mutex::default(),
            remembers: true,
        }
    }

    /// A new store that keeps calling everything absent.
    pub fn forgetful(name: &str) -> Self {
        Self {
            remembers: false,
            ..Self::new(name)
        }
    }

    fn wrote(&self, d: &Descriptor) {
        if self.remembers {
            self.written.lock().unwrap().insert(d.digest().clone());
        }
    }
}

impl std::fmt::Display for NewStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "new({})", self.inner)
    }
}

#[async_trait]
impl ferry_core::StoreWrapper for NewStore {
    type Inner = MemoryStore;
    fn inner(&self) -> &MemoryStore {
        &self.inner
    }
    fn capabilities(&self) -> ferry_core::Capabilities<'_> {
        self.inner.capabilities().with_known_absent(self)
    }
}

#[async_trait]
impl ferry_core::WriteStoreWrapper for NewStore {
    async fn push(&self, d: &Descriptor, data: ByteStream) -> Result<()> {
        self.wrote(d);
        self.inner.push(d, data).await
    }
    async fn push_tagged(&self, d: &Descriptor, data: ByteStream, tag: &str) -> Result<()> {
        self.wrote(d);
        self.inner.push_tagged(d, data, tag).await
    }
}

#[async_trait]
impl ferry_core::KnownAbsent for NewStore {
    async fn known_absent(&self, d: &Descriptor) -> bool {
        !self.written.lock().unwrap().contains(d.digest())
    }
}
