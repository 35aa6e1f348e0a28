//! The blob-location cache a command runs with.

use std::path::PathBuf;
use std::sync::Arc;

use ferry_cache::PersistentLocations;
use ferry_core::{BlobLocations, InMemoryLocations};

use crate::options::CopyArgs;

/// The blob-location cache of a run: kept on disk (written back by
/// [`LocationCache::flush`]), read only (a dry run reads what it knows and writes nothing),
/// or in memory (`--no-cache`, or no usable file).
pub struct LocationCache {
    persistent: Option<Arc<PersistentLocations>>,
    locations: Arc<dyn BlobLocations>,
}

impl LocationCache {
    /// The cache `--cache`/`--no-cache` name (`$XDG_CACHE_HOME/ferry/locations.redb` by
    /// default); a dry run only reads it. A cache that cannot be opened is left out with a
    /// warning: it only holds hints.
    pub fn open(args: &CopyArgs) -> Self {
        let path =
            || -> Option<PathBuf> { args.cache.clone().or_else(ferry_cache::default_cache_path) };
        let memory = || -> Arc<dyn BlobLocations> { Arc::new(InMemoryLocations::new()) };
        if args.no_cache {
            return Self::memory_only(memory());
        }
        if args.dry_run {
            let locations: Arc<dyn BlobLocations> = match path().map(PersistentLocations::read_only)
            {
                Some(Ok(known)) => Arc::new(known),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "blob-location cache unreadable; planning without it");
                    memory()
                }
                None => memory(),
            };
            return Self::memory_only(locations);
        }
        match path().map(PersistentLocations::open) {
            Some(Ok(cache)) => {
                let cache = Arc::new(cache);
                Self {
                    locations: cache.clone(),
                    persistent: Some(cache),
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "blob-location cache unavailable; going on without it");
                Self::memory_only(memory())
            }
            None => Self::memory_only(memory()),
        }
    }

    fn memory_only(locations: Arc<dyn BlobLocations>) -> Self {
        Self {
            persistent: None,
            locations,
        }
    }

    /// The record copies fill and strategies ask.
    pub fn locations(&self) -> Arc<dyn BlobLocations> {
        self.locations.clone()
    }

    /// Writes what the run learned back to the file, if there is one; a failure is a warning.
    pub fn flush(&self) {
        if let Some(cache) = &self.persistent
            && let Err(e) = cache.flush()
        {
            tracing::warn!(error = %e, "could not write the blob-location cache");
        }
    }
}
