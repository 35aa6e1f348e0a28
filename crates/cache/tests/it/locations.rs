//! The blob-location cache on disk.

use ferry_cache::PersistentLocations;
use ferry_core::{BlobLocations, StoreInfo};

fn digest(i: usize) -> ferry_core::Digest {
    ferry_core::sha256(format!("blob {i}").as_bytes())
}

#[test]
fn locations_survive_the_process_and_keep_the_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry/locations.redb");
    let a = StoreInfo::new("registry", "r:5000", "a");
    let b = StoreInfo::new("registry", "r:5000", "b");
    {
        let cache = PersistentLocations::open(&path).unwrap();
        cache.record(&digest(1), &a);
        cache.record(&digest(1), &b);
        cache.record(&digest(2), &a);
    }
    let cache = PersistentLocations::open(&path).unwrap();
    let locs = cache.locations(&digest(1));
    assert_eq!(
        locs.iter()
            .map(|l| l.store.namespace.as_str())
            .collect::<Vec<_>>(),
        ["b", "a"]
    );
    cache.forget(&digest(1), &b);
    cache.flush().unwrap();
    drop(cache);
    let cache = PersistentLocations::open(&path).unwrap();
    assert_eq!(cache.locations(&digest(1)).len(), 1);
    assert!(cache.locations(&digest(3)).is_empty());
}

/// A cache file written by the older redb format that earlier ferry versions used is
/// replaced, not an error: it held hints only.
#[test]
fn a_cache_in_an_older_format_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locations.redb");
    {
        let db = redb2::Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(redb2::TableDefinition::<&str, &[u8]>::new(
            "blob_locations_v1",
        ))
        .unwrap()
        .insert("sha256:00", b"[]".as_slice())
        .unwrap();
        tx.commit().unwrap();
    }
    assert!(matches!(
        redb::Database::create(&path),
        Err(redb::DatabaseError::UpgradeRequired(_))
    ));
    let a = StoreInfo::new("registry", "r:5000", "a");
    {
        let cache = PersistentLocations::open(&path).expect("an old cache is not an error");
        assert!(cache.locations(&digest(1)).is_empty());
        cache.record(&digest(1), &a);
        cache.flush().expect("the old file is replaced");
    }
    let cache = PersistentLocations::open(&path).unwrap();
    assert_eq!(cache.locations(&digest(1))[0].store, a);
}

/// Another process that is creating the cache leaves an empty file for a moment: a copy that
/// starts then reads nothing from it, is not refused, and writes what it learned.
#[test]
fn an_empty_cache_file_is_one_being_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locations.redb");
    std::fs::write(&path, b"").unwrap();
    let cache = PersistentLocations::open(&path).expect("an empty file is a cache being created");
    let store = StoreInfo::new("registry", "r", "t");
    cache.record(&digest(1), &store);
    cache.flush().expect("flush into the empty file");
    drop(cache);
    let cache = PersistentLocations::open(&path).unwrap();
    assert_eq!(cache.locations(&digest(1)).len(), 1);
}

#[test]
fn two_users_of_one_cache_at_once_both_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locations.redb");
    let handles: Vec<_> = (0..2)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                // Each opens and writes repeatedly while the other does the same.
                for round in 0..10 {
                    let cache = PersistentLocations::open(&path).expect("open while shared");
                    let store = StoreInfo::new("registry", "r", format!("t{t}"));
                    for i in 0..20 {
                        cache.record(&digest(round * 20 + i), &store);
                    }
                    cache.flush().expect("flush while shared");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let cache = PersistentLocations::open(&path).unwrap();
    for i in 0..200 {
        assert_eq!(
            cache.locations(&digest(i)).len(),
            2,
            "both writers' records of blob {i} kept"
        );
    }
}
