//! Stores that wrap other stores: a forwarding base for decorators, and the store traits for
//! `Arc<T>` and `Box<T>`.
//!
//! A wrapper (a counter, a rate limiter, a cache, a logger) implements [`StoreWrapper`] (and
//! [`WriteStoreWrapper`] for the write side) by naming its inner store and overriding only the
//! calls it changes; every other call, [`ReadStore::capabilities`] included, is forwarded, so
//! the strategies that need a capability of the inner store (a registry repository to mount
//! into, blob files to link) work through the wrapper. It is then a [`ReadStore`] (and a
//! [`WriteStore`]) by the blanket implementations here:
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use async_trait::async_trait;
//! use ferry_core::{Descriptor, MemoryStore, ReadStore, Result, StoreWrapper, WriteStoreWrapper};
//!
//! /// Counts existence checks.
//! #[derive(Debug)]
//! struct CountingExists<S> {
//!     inner: S,
//!     checks: AtomicUsize,
//! }
//!
//! impl<S: std::fmt::Display> std::fmt::Display for CountingExists<S> {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
//!         write!(f, "CountingExists({})", self.inner)
//!     }
//! }
//!
//! #[async_trait]
//! impl<S: ferry_core::WriteStore> StoreWrapper for CountingExists<S> {
//!     type Inner = S;
//!     fn inner(&self) -> &S {
//!         &self.inner
//!     }
//!     async fn exists(&self, descriptor: &Descriptor) -> Result<bool> {
//!         self.checks.fetch_add(1, Ordering::Relaxed);
//!         self.inner().exists(descriptor).await
//!     }
//! }
//!
//! impl<S: ferry_core::WriteStore> WriteStoreWrapper for CountingExists<S> {}
//!
//! # async fn demo() -> Result<()> {
//! let store = CountingExists { inner: MemoryStore::new("inner"), checks: AtomicUsize::new(0) };
//! let blob = store.inner.insert("application/octet-stream", &b"hello"[..]);
//! assert!(ReadStore::exists(&store, &blob).await?);
//! assert_eq!(store.checks.load(Ordering::Relaxed), 1);
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! [`StoreWrapper`] names its methods as [`ReadStore`] does, and `Arc<T>` and `Box<T>` are
//! wrappers too. Where both traits are in scope, reach the inner store through
//! [`StoreWrapper::inner`] (`self.inner().exists(…)`, as above) and call a wrapper's own
//! methods through the trait (`ReadStore::exists(&store, …)`); import [`StoreWrapper`] only
//! where a wrapper is implemented.

use std::fmt::{Debug, Display};
use std::sync::Arc;

use async_trait::async_trait;
use oci_spec::image::Descriptor;

use crate::error::Result;
use crate::store::{ByteStream, Capabilities, ReadStore, StoreInfo, WriteStore};

/// The read side of a store that wraps another one. Every method forwards to
/// [`StoreWrapper::inner`] unless overridden; the type is then a [`ReadStore`].
///
/// Forwarding [`StoreWrapper::capabilities`] hands out the inner store's abilities, whose calls
/// then bypass the wrapper. A wrapper that must see those calls too (a rate limiter counting
/// mount requests) overrides it and offers its own implementations of the capability traits,
/// forwarding to the inner store's.
#[async_trait]
pub trait StoreWrapper: Display + Debug + Send + Sync + 'static {
    /// The wrapped store.
    type Inner: ReadStore + ?Sized;

    /// The wrapped store.
    fn inner(&self) -> &Self::Inner;

    /// See [`ReadStore::info`].
    fn info(&self) -> &StoreInfo {
        self.inner().info()
    }

    /// See [`ReadStore::exists`].
    async fn exists(&self, descriptor: &Descriptor) -> Result<bool> {
        self.inner().exists(descriptor).await
    }

    /// See [`ReadStore::fetch`].
    async fn fetch(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        self.inner().fetch(descriptor).await
    }

    /// See [`ReadStore::resolve`].
    async fn resolve(&self, reference: &str) -> Result<Descriptor> {
        self.inner().resolve(reference).await
    }

    /// See [`ReadStore::referrers`].
    async fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>> {
        self.inner().referrers(subject).await
    }

    /// See [`ReadStore::capabilities`].
    fn capabilities(&self) -> Capabilities<'_> {
        self.inner().capabilities()
    }
}

/// The write side of a store that wraps a [`WriteStore`]. Every method forwards to
/// [`StoreWrapper::inner`] unless overridden; the type is then a [`WriteStore`].
#[async_trait]
pub trait WriteStoreWrapper: StoreWrapper<Inner: WriteStore> {
    /// See [`WriteStore::push`].
    async fn push(&self, descriptor: &Descriptor, data: ByteStream) -> Result<()> {
        self.inner().push(descriptor, data).await
    }

    /// See [`WriteStore::tag`].
    async fn tag(&self, descriptor: &Descriptor, tag: &str) -> Result<()> {
        self.inner().tag(descriptor, tag).await
    }

    /// See [`WriteStore::push_tagged`]. Forwarded as one call, so an inner store that pushes
    /// and tags in one step still does.
    async fn push_tagged(
        &self,
        descriptor: &Descriptor,
        data: ByteStream,
        tag: &str,
    ) -> Result<()> {
        self.inner().push_tagged(descriptor, data, tag).await
    }
}

#[async_trait]
impl<W: StoreWrapper> ReadStore for W {
    fn info(&self) -> &StoreInfo {
        StoreWrapper::info(self)
    }

    async fn exists(&self, descriptor: &Descriptor) -> Result<bool> {
        StoreWrapper::exists(self, descriptor).await
    }

    async fn fetch(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        StoreWrapper::fetch(self, descriptor).await
    }

    async fn resolve(&self, reference: &str) -> Result<Descriptor> {
        StoreWrapper::resolve(self, reference).await
    }

    async fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>> {
        StoreWrapper::referrers(self, subject).await
    }

    fn capabilities(&self) -> Capabilities<'_> {
        StoreWrapper::capabilities(self)
    }
}

#[async_trait]
impl<W: WriteStoreWrapper> WriteStore for W {
    async fn push(&self, descriptor: &Descriptor, data: ByteStream) -> Result<()> {
        WriteStoreWrapper::push(self, descriptor, data).await
    }

    async fn tag(&self, descriptor: &Descriptor, tag: &str) -> Result<()> {
        WriteStoreWrapper::tag(self, descriptor, tag).await
    }

    async fn push_tagged(
        &self,
        descriptor: &Descriptor,
        data: ByteStream,
        tag: &str,
    ) -> Result<()> {
        WriteStoreWrapper::push_tagged(self, descriptor, data, tag).await
    }
}

/// A shared store is the store: `Arc<OciLayout>`, `Arc<dyn WriteStore>` and
/// `Arc<dyn ReadStore>` are stores themselves.
impl<T: ReadStore + ?Sized> StoreWrapper for Arc<T> {
    type Inner = T;

    fn inner(&self) -> &T {
        self
    }
}

impl<T: WriteStore + ?Sized> WriteStoreWrapper for Arc<T> {}

/// A boxed store is the store: `Box<dyn WriteStore>` is a store itself.
impl<T: ReadStore + ?Sized> StoreWrapper for Box<T> {
    type Inner = T;

    fn inner(&self) -> &T {
        self
    }
}

impl<T: WriteStore + ?Sized> WriteStoreWrapper for Box<T> {}
