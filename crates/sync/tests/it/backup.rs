//! Backups of destination tags: the template, a moved tag backed up before it is overwritten,
//! a failed backup leaving the tag alone, pruning with backups, backups never pruned.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use ferry_core::{MemoryStore, ReadStore};
use ferry_sync::{BackupTemplate, Outcome, SyncEntry, SyncOptions, SyncSource, sync};

use crate::sync::tagged_image;

fn digest(hex: char) -> ferry_core::Digest {
    format!("sha256:{}", hex.to_string().repeat(64))
        .parse()
        .unwrap()
}

#[test]
fn a_template_names_backups_and_recognises_them() {
    let t = BackupTemplate::parse("{tag}-bak-{date}{time}-{digest12}").unwrap();
    // 2024-03-09T07:05:01Z
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_967_901);
    let name = t.render("v1.2", &digest('a'), at).unwrap();
    assert_eq!(name, "v1.2-bak-20240309070501-aaaaaaaaaaaa");
    assert!(t.matches(&name));
    assert!(!t.matches("v1.2"));
    assert!(!t.matches("v1.2-bak-2024-aaaaaaaaaaaa"));

    for (bad, says) in [
        ("{tag}", "the tag itself"),
        ("backup", "no placeholder"),
        ("{tag}-{nope}", "no placeholder `{nope}`"),
        ("{tag", "not closed"),
        ("{tag}/old", "`/` cannot be in a tag"),
        ("-{tag}", "cannot start with"),
    ] {
        let e = BackupTemplate::parse(bad).unwrap_err().to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
    // Too long a name is refused when it is made, not cut short.
    let long = "x".repeat(120);
    let e = t.render(&long, &digest('b'), at).unwrap_err().to_string();
    assert!(e.contains("more than the 128"), "{e}");
}

fn store_entry(src: &Arc<MemoryStore>, dst: &Arc<MemoryStore>) -> SyncEntry {
    SyncEntry::new(SyncSource::Store {
        name: "app".into(),
        source: src.clone(),
        destination: dst.clone(),
    })
}

fn layer(n: u8) -> Bytes {
    Bytes::from(vec![n; 64])
}

#[tokio::test]
async fn a_moved_tag_is_backed_up_before_it_is_overwritten() {
    let src = Arc::new(MemoryStore::new("src"));
    let dst = Arc::new(MemoryStore::new("dst"));
    let old = tagged_image(&src, "v1", &[layer(1)]).await;
    let template = BackupTemplate::parse("{tag}-bak-{digest12}").unwrap();
    let report = sync(
        vec![store_entry(&src, &dst).with_backup(template.clone())],
        SyncOptions::default(),
    )
    .await;
    assert!(report.complete());
    // A tag the destination did not have is not backed up.
    assert_eq!(report.totals.backed_up, 0);

    let new = tagged_image(&src, "v1", &[layer(2)]).await;
    let report = sync(
        vec![store_entry(&src, &dst).with_backup(template)],
        SyncOptions::default(),
    )
    .await;
    assert!(report.complete(), "{report:#?}");
    let outcomes: Vec<Outcome> = report.images.iter().map(|i| i.outcome).collect();
    assert_eq!(outcomes, [Outcome::BackedUp, Outcome::Synced]);
    let backup = format!("v1-bak-{}", &old.digest().digest()[..12]);
    assert_eq!(report.images[0].backup.as_deref(), Some(backup.as_str()));
    assert_eq!(report.images[0].digest.as_ref(), Some(old.digest()));
    assert_eq!(report.totals.backed_up, 1);
    assert_eq!(dst.resolve(&backup).await.unwrap().digest(), old.digest());
    assert_eq!(dst.resolve("v1").await.unwrap().digest(), new.digest());

    // Unchanged now: no other backup.
    let report = sync(
        vec![
            store_entry(&src, &dst)
                .with_backup(BackupTemplate::parse("{tag}-bak-{digest12}").unwrap()),
        ],
        SyncOptions::default(),
    )
    .await;
    assert_eq!(report.totals.backed_up, 0);
    assert_eq!(report.totals.unchanged, 1);
}

#[tokio::test]
async fn a_failed_backup_leaves_the_tag_as_it_was() {
    let src = Arc::new(MemoryStore::new("src"));
    let dst = Arc::new(MemoryStore::new("dst"));
    let tag = "t".repeat(120);
    let old = tagged_image(&src, &tag, &[layer(3)]).await;
    let entry =
        || store_entry(&src, &dst).with_backup(BackupTemplate::parse("{tag}-bak-{date}").unwrap());
    assert!(sync(vec![entry()], SyncOptions::default()).await.complete());
    tagged_image(&src, &tag, &[layer(4)]).await;
    // The backup name would be longer than a tag may be: the image fails, the tag stays.
    let report = sync(vec![entry()], SyncOptions::default()).await;
    assert!(!report.complete());
    let failed: Vec<_> = report.failures().collect();
    assert_eq!(failed.len(), 1);
    let reason = failed[0].reason.as_deref().unwrap();
    assert!(
        reason.contains("backing up") && reason.contains("left as it was"),
        "{reason}"
    );
    assert_eq!(dst.resolve(&tag).await.unwrap().digest(), old.digest());
}

#[tokio::test]
async fn pruning_backs_up_first_and_never_prunes_backups() {
    let src = Arc::new(MemoryStore::new("src"));
    let dst = Arc::new(MemoryStore::new("dst"));
    tagged_image(&src, "v1", &[layer(5)]).await;
    let gone = tagged_image(&src, "v2", &[layer(6)]).await;
    let entry = || {
        store_entry(&src, &dst)
            .with_prune(10)
            .with_backup(BackupTemplate::parse("{tag}-old-{date}").unwrap())
    };
    assert!(sync(vec![entry()], SyncOptions::default()).await.complete());
    ferry_core::DeleteTag::delete_tag(src.as_ref(), "v2")
        .await
        .unwrap();

    let report = sync(vec![entry()], SyncOptions::default()).await;
    assert!(report.complete(), "{report:#?}");
    let done: Vec<(Outcome, String)> = report
        .images
        .iter()
        .filter(|i| i.outcome != Outcome::Unchanged)
        .map(|i| (i.outcome, i.tag.clone().unwrap()))
        .collect();
    assert_eq!(
        done,
        [
            (Outcome::BackedUp, "v2".to_string()),
            (Outcome::Pruned, "v2".to_string())
        ]
    );
    let backup = report.images.iter().find_map(|i| i.backup.clone()).unwrap();
    assert!(backup.starts_with("v2-old-"), "{backup}");
    assert_eq!(dst.resolve(&backup).await.unwrap().digest(), gone.digest());
    assert!(dst.resolve("v2").await.unwrap_err().is_not_found());

    // The backup is an extra destination tag the source never had: it stays.
    let report = sync(vec![entry()], SyncOptions::default()).await;
    assert!(report.complete(), "{report:#?}");
    assert_eq!(report.totals.pruned, 0);
    assert!(dst.resolve(&backup).await.is_ok());
    // Without the template it would have gone.
    let report = sync(
        vec![store_entry(&src, &dst).with_prune(10)],
        SyncOptions::default(),
    )
    .await;
    assert_eq!(report.totals.pruned, 1);
    assert!(dst.resolve(&backup).await.unwrap_err().is_not_found());
}
