//! ferry-cache: the blob-location cache kept on disk between runs, in an embedded database (redb).
//!
//! The database is opened only for short moments (one read at start, one merge at
//! [`PersistentLocations::flush`]), so any number of ferry processes can share one cache file:
//! readers share it, a writer holds it alone for the merge, an open that finds it held is
//! retried for a bounded time, and a cache that
//! stays busy or unreadable is skipped with a warning, never failing a copy. redb commits are
//! atomic, so a killed process never leaves a corrupt cache.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use oci_spec::image::Digest;
use redb::{Builder, Database, ReadOnlyDatabase, ReadableDatabase, ReadableTable, TableDefinition};

use ferry_core::StoreInfo;
use ferry_core::locations::{BlobLocations, Location, unix_now, upsert_location};
use ferry_core::{Error, Result};

const TABLE: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("blob_locations_v1");

/// How long the load at start waits for another process to release the database: a copy
/// that cannot read the cache soon goes on without it.
const READ_PATIENCE: Duration = Duration::from_secs(5);

/// How long the merge at the end waits: what the copy learned is worth a longer wait, as
/// many processes finishing together take turns.
const WRITE_PATIENCE: Duration = Duration::from_secs(30);

/// Entries older than this are dropped when the cache is written.
pub const MAX_AGE: Duration = Duration::from_secs(90 * 24 * 3600);

/// A blob-location cache persisted in a redb file.
#[derive(Debug)]
pub struct PersistentLocations {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    known: HashMap<Digest, Vec<Location>>,
    dirty: HashMap<Digest, Vec<Location>>,
    forgotten: Vec<(Digest, StoreInfo)>,
}

/// The default cache file: `$XDG_CACHE_HOME/ferry/locations.redb`, else
/// `~/.cache/ferry/locations.redb`.
pub fn default_cache_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("ferry").join("locations.redb"))
}

/// Memory redb may use for its page cache: the table is read once and written once.
const PAGE_CACHE: usize = 4 << 20;

/// Opens `path` for writing (creating it), waiting up to `patience` for other processes.
///
/// A file in a format this redb cannot read (an older cache) is replaced: it only held hints
/// that the next copies learn again.
fn open(path: &Path, patience: Duration) -> Result<Database> {
    let mut replaced = false;
    retry(path, patience, || {
        match Builder::new().set_cache_size(PAGE_CACHE).create(path) {
            Err(redb::DatabaseError::UpgradeRequired(version)) if !replaced => {
                replaced = true;
                tracing::info!(
                    cache = %path.display(),
                    version,
                    "replacing a blob-location cache written in an older format"
                );
                std::fs::remove_file(path).map_err(redb::DatabaseError::from)?;
                Builder::new().set_cache_size(PAGE_CACHE).create(path)
            }
            other => other,
        }
    })
}

/// Opens `path` for reading; `None` when there is no cache yet (no file, or an empty one that
/// another process has just created and not yet written) or it needs a writer's repair (a
/// process was killed while writing it; the next write repairs it).
fn open_read_only(path: &Path, patience: Duration) -> Result<Option<ReadOnlyDatabase>> {
    if !path.exists() {
        return Ok(None);
    }
    match retry(path, patience, || {
        Builder::new()
            .set_cache_size(PAGE_CACHE)
            .open_read_only(path)
    }) {
        Ok(db) => Ok(Some(db)),
        Err(_) if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) => {
            tracing::debug!(cache = %path.display(), "blob-location cache being created; not read");
            Ok(None)
        }
        Err(e) => {
            let source =
                std::error::Error::source(&e).and_then(|s| s.downcast_ref::<redb::DatabaseError>());
            if matches!(
                source,
                Some(redb::DatabaseError::RepairAborted | redb::DatabaseError::UpgradeRequired(_))
            ) {
                tracing::debug!(error = %e, "blob-location cache not readable until rewritten");
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

/// Calls `open` until it does not fail with [`redb::DatabaseError::DatabaseAlreadyOpen`], for
/// up to `patience`.
fn retry<T>(
    path: &Path,
    patience: Duration,
    mut open: impl FnMut() -> std::result::Result<T, redb::DatabaseError>,
) -> Result<T> {
    let started = Instant::now();
    loop {
        match open() {
            Ok(db) => return Ok(db),
            Err(redb::DatabaseError::DatabaseAlreadyOpen) if started.elapsed() < patience => {
                std::thread::sleep(Duration::from_millis(5 + fastrand_ms()));
            }
            Err(e) => {
                return Err(Error::Store {
                    store: format!("blob-location cache `{}`", path.display()),
                    message: format!("cannot open: {e}; remove the file (it only holds hints)"),
                    temporary: matches!(e, redb::DatabaseError::DatabaseAlreadyOpen),
                    source: Some(Box::new(e)),
                });
            }
        }
    }
}

fn fastrand_ms() -> u64 {
    // Jitter from the clock: enough to keep two waiting processes apart.
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        % 20) as u64
}

/// Every location the cache file at `path` holds; none when it does not exist.
fn load(path: &Path) -> Result<HashMap<Digest, Vec<Location>>> {
    let mut known = HashMap::new();

    if let Some(db) = open_read_only(path, READ_PATIENCE)? {
        let tx = db.begin_read().map_err(|e| cache_err(path, "read", e))?;
        match tx.open_table(TABLE) {
            Ok(table) => {
                for row in table.iter().map_err(|e| cache_err(path, "read", e))? {
                    let (k, v) = row.map_err(|e| cache_err(path, "read", e))?;
                    if let (Ok(d), Ok(list)) = (
                        Digest::try_from(k.value()),
                        serde_json::from_slice::<Vec<Location>>(v.value()),
                    ) {
                        known.insert(d, list);
                    }
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(cache_err(path, "read", e)),
        }
    }
    Ok(known)
}

fn cache_err(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::store(
        format!("blob-location cache `{}`", path.display()),
        format!("{what}: {e}"),
    )
}

impl PersistentLocations {
    /// What the cache at `path` knows, read without writing anything (no directory or file
    /// is created, nothing is written back): for a dry run, which may ask the cache but must
    /// leave it as it is. A missing file is an empty record.
    pub fn read_only(path: impl AsRef<Path>) -> Result<ferry_core::InMemoryLocations> {
        let path = path.as_ref();
        let snapshot = ferry_core::InMemoryLocations::new();
        for (digest, list) in load(path)? {
            snapshot.replace(digest, list);
        }
        Ok(snapshot)
    }

    /// Opens (creating if needed) the cache at `path` and loads what it knows.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::io(format!("creating cache directory `{}`", dir.display()), e)
            })?;
        }
        let known = load(&path)?;
        Ok(Self {
            path,
            state: Mutex::new(State {
                known,
                ..State::default()
            }),
        })
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Merges what this process learned into the file, keeping what other processes wrote
    /// meanwhile. Call it when a copy ends; it is also called on drop.
    pub fn flush(&self) -> Result<()> {
        let (dirty, forgotten) = {
            let mut st = self.state.lock().expect("cache lock");
            (
                std::mem::take(&mut st.dirty),
                std::mem::take(&mut st.forgotten),
            )
        };
        if dirty.is_empty() && forgotten.is_empty() {
            return Ok(());
        }
        let db = open(&self.path, WRITE_PATIENCE)?;
        let tx = db
            .begin_write()
            .map_err(|e| cache_err(&self.path, "write", e))?;
        {
            let mut table = tx
                .open_table(TABLE)
                .map_err(|e| cache_err(&self.path, "write", e))?;
            let now = unix_now();
            let mut merged: HashMap<String, Vec<Location>> = HashMap::new();
            for (digest, mine) in dirty {
                let key = digest.to_string();
                let mut list =
                    stored(&table, &key).map_err(|e| cache_err(&self.path, "read", e))?;
                for loc in mine.iter().rev() {
                    list.retain(|l| l.store != loc.store);
                    list.insert(0, loc.clone());
                }
                list.retain(|l| now.saturating_sub(l.seen) < MAX_AGE.as_secs());
                list.truncate(ferry_core::locations::MAX_LOCATIONS_PER_DIGEST);
                merged.insert(key, list);
            }
            for (digest, store) in forgotten {
                let key = digest.to_string();
                let list = match merged.get_mut(&key) {
                    Some(l) => l,
                    None => {
                        let l =
                            stored(&table, &key).map_err(|e| cache_err(&self.path, "read", e))?;
                        merged.entry(key).or_insert(l)
                    }
                };
                list.retain(|l| l.store != store);
            }
            for (key, list) in merged {
                if list.is_empty() {
                    table
                        .remove(key.as_str())
                        .map_err(|e| cache_err(&self.path, "write", e))?;
                } else {
                    let bytes = serde_json::to_vec(&list).expect("locations serialize");
                    table
                        .insert(key.as_str(), bytes.as_slice())
                        .map_err(|e| cache_err(&self.path, "write", e))?;
                }
            }
        }
        tx.commit()
            .map_err(|e| cache_err(&self.path, "commit", e))?;
        Ok(())
    }
}

/// The locations the table holds for `key`; none when it holds nothing readable.
fn stored(
    table: &redb::Table<'_, &str, &[u8]>,
    key: &str,
) -> std::result::Result<Vec<Location>, redb::StorageError> {
    Ok(table
        .get(key)?
        .and_then(|v| serde_json::from_slice(v.value()).ok())
        .unwrap_or_default())
}

impl BlobLocations for PersistentLocations {
    fn record(&self, digest: &Digest, store: &StoreInfo) {
        let mut st = self.state.lock().expect("cache lock");
        upsert_location(st.known.entry(digest.clone()).or_default(), store);
        upsert_location(st.dirty.entry(digest.clone()).or_default(), store);
    }

    fn locations(&self, digest: &Digest) -> Vec<Location> {
        self.state
            .lock()
            .expect("cache lock")
            .known
            .get(digest)
            .cloned()
            .unwrap_or_default()
    }

    fn forget(&self, digest: &Digest, store: &StoreInfo) {
        let mut st = self.state.lock().expect("cache lock");
        if let Some(list) = st.known.get_mut(digest) {
            list.retain(|l| &l.store != store);
        }
        if let Some(list) = st.dirty.get_mut(digest) {
            list.retain(|l| &l.store != store);
        }
        st.forgotten.push((digest.clone(), store.clone()));
    }
}

impl Drop for PersistentLocations {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!(error = %e, "could not write the blob-location cache");
        }
    }
}
