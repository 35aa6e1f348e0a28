//! SharedStorageMount: the strategy contract, hardlinks on the test machine's filesystem,
//! reflinks on a real XFS loop mount, and refusal of corrupt source files.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use ferry_conformance::random_blob;
use ferry_core::{
    Descriptor, MemoryStore, MountMethod, MountOutcome, MountRequest, MountStrategy, ReadStore,
    WriteStore, bytes_stream,
};
use ferry_fs_store::{OciLayout, SharedStorageMount};

use crate::support::{ClaimingStore, layout, read_all, tempdir, tree};

async fn mount(
    strategy: &SharedStorageMount,
    src: &OciLayout,
    dst: &dyn WriteStore,
    desc: &Descriptor,
) -> MountOutcome {
    let request = MountRequest::new(desc, src, dst);
    strategy.mount(&request).await.expect("mount attempt")
}

fn inode(path: &Path) -> (u64, u64) {
    let m = std::fs::metadata(path).expect("blob file");
    (m.dev(), m.ino())
}

#[tokio::test]
async fn hardlinks_between_layouts_on_one_filesystem() {
    // The strategy contract: `conformance::shared_storage`.
    let dir = tempdir();
    let src = layout(dir.path(), "src");
    let dst = layout(dir.path(), "dst");

    let (desc, data) = random_blob(200_000);
    src.push(&desc, bytes_stream(data.clone())).await.unwrap();
    match mount(&SharedStorageMount::new(), &src, dst.as_ref(), &desc).await {
        MountOutcome::Mounted { method, from, .. } => {
            assert_eq!(
                method,
                MountMethod::Hardlink,
                "the temporary filesystem has no reflink"
            );
            assert_eq!(from.to_string(), src.path().to_string_lossy());
        }
        other => panic!("expected a hardlink, got {other:?}"),
    }
    let (s, d) = (
        src.blob_path(desc.digest()).unwrap(),
        dst.blob_path(desc.digest()).unwrap(),
    );
    assert_eq!(inode(&s), inode(&d), "a hardlink shares the source's inode");
    assert_eq!(read_all(dst.as_ref(), &desc).await, data);
    // A second attempt finds it present.
    assert!(matches!(
        mount(&SharedStorageMount::new(), &src, dst.as_ref(), &desc).await,
        MountOutcome::AlreadyPresent
    ));
}

#[tokio::test]
async fn trusting_strategy_names_itself() {
    // The strategy contract: `conformance::shared_storage_trusting`.
    let strategy = SharedStorageMount::trusting();
    assert_eq!(strategy.to_string(), "SharedStorageMount(trusted)");
    assert_eq!(SharedStorageMount::new().to_string(), "SharedStorageMount");
    assert_eq!(strategy.name(), "shared-storage");
}

/// Writes `bytes` as the blob file of `desc` in `layout`, bypassing verification.
fn plant(layout: &OciLayout, desc: &Descriptor, bytes: &[u8]) -> PathBuf {
    let path = layout.blob_path(desc.digest()).unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test]
async fn corrupt_source_file_is_not_linked_unless_trusted() {
    let dir = tempdir();
    let src = layout(dir.path(), "src");
    let dst = layout(dir.path(), "dst");
    let (desc, _) = random_blob(10_000);
    let wrong = ferry_conformance::random_bytes(10_000);
    plant(&src, &desc, &wrong);
    let before: Vec<String> = tree(dst.path())
        .into_iter()
        .filter(|p| !p.starts_with(".ferry"))
        .collect();

    match mount(&SharedStorageMount::new(), &src, dst.as_ref(), &desc).await {
        MountOutcome::Declined { reason, .. } => {
            assert!(reason.contains("does not match"), "{reason}");
            assert!(reason.contains(&desc.digest().to_string()), "{reason}");
        }
        other => panic!("a corrupt source must be declined, got {other:?}"),
    }
    assert!(!dst.exists(&desc).await.unwrap());
    let after: Vec<String> = tree(dst.path())
        .into_iter()
        .filter(|p| !p.starts_with(".ferry"))
        .collect();
    assert_eq!(before, after, "the destination changed");

    // Trusted, the file is linked as it is: the caller asked not to read it.
    match mount(&SharedStorageMount::trusting(), &src, dst.as_ref(), &desc).await {
        MountOutcome::Mounted { method, .. } => assert_eq!(method, MountMethod::Hardlink),
        other => panic!("trusting() links without reading, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(dst.blob_path(desc.digest()).unwrap()).unwrap(),
        wrong
    );
}

/// Large files are hashed through memory maps, window by window: a change anywhere in them,
/// the last partial window included, is found; an intact one is linked.
#[tokio::test]
async fn large_source_files_are_verified_in_every_window() {
    let dir = tempdir();
    let src = layout(dir.path(), "src");
    let dst = layout(dir.path(), "dst");
    // Five windows of 2 MiB and a partial sixth.
    let size = 10 * 1024 * 1024 + 123;
    let (desc, data) = random_blob(size);
    for at in [0, 3 * 1024 * 1024 + 7, size - 1] {
        let mut wrong = data.to_vec();
        wrong[at] ^= 0x40;
        plant(&src, &desc, &wrong);
        match mount(&SharedStorageMount::new(), &src, dst.as_ref(), &desc).await {
            MountOutcome::Declined { reason, .. } => {
                assert!(reason.contains("does not match"), "byte {at}: {reason}");
            }
            other => panic!("byte {at} changed, yet {other:?}"),
        }
        assert!(!dst.exists(&desc).await.unwrap(), "byte {at}: linked");
    }
    plant(&src, &desc, &data);
    let strategy = SharedStorageMount::new();
    assert!(matches!(
        mount(&strategy, &src, dst.as_ref(), &desc).await,
        MountOutcome::Mounted { .. }
    ));
    assert_eq!(read_all(dst.as_ref(), &desc).await, data);

    // The same strategy, having found no reflink on this filesystem, goes on hardlinking.
    let (small, small_data) = random_blob(3_000);
    src.push(&small, bytes_stream(small_data.clone()))
        .await
        .unwrap();
    match mount(&strategy, &src, dst.as_ref(), &small).await {
        MountOutcome::Mounted { method, .. } => assert_eq!(method, MountMethod::Hardlink),
        other => panic!("expected a hardlink, got {other:?}"),
    }
    assert_eq!(
        inode(&src.blob_path(small.digest()).unwrap()),
        inode(&dst.blob_path(small.digest()).unwrap())
    );
}

/// Files verified at the same time are hashed together, several per core: each is still judged
/// on its own bytes, whatever the others hold and however their sizes differ.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn files_verified_together_are_each_judged_on_their_own_bytes() {
    let dir = tempdir();
    let src = layout(dir.path(), "src");
    let dst = layout(dir.path(), "dst");
    let sizes = [
        1,
        63,
        4_096,
        70_000,
        1 << 20,
        (1 << 20) + 65,
        3 << 20,
        (5 << 20) + 7,
        2_000_000,
        6 << 20,
        150_000,
        9_999,
    ];
    let corrupt = [2, 5, 9];
    let mut blobs = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let (desc, data) = random_blob(size);
        let mut on_disk = data.to_vec();
        if corrupt.contains(&i) {
            let at = size * 2 / 3;
            on_disk[at] ^= 0x01;
        }
        plant(&src, &desc, &on_disk);
        blobs.push((desc, data));
    }
    let strategy = SharedStorageMount::new();
    let outcomes = futures::future::join_all(
        blobs
            .iter()
            .map(|(desc, _)| mount(&strategy, &src, dst.as_ref(), desc)),
    )
    .await;
    for (i, ((desc, data), outcome)) in blobs.iter().zip(outcomes).enumerate() {
        if corrupt.contains(&i) {
            assert!(
                matches!(&outcome, MountOutcome::Declined { reason, .. } if reason.contains("does not match")),
                "blob {i} ({} bytes) is corrupt, yet {outcome:?}",
                sizes[i]
            );
            assert!(!dst.exists(desc).await.unwrap(), "blob {i} linked");
        } else {
            assert!(
                matches!(outcome, MountOutcome::Mounted { .. }),
                "blob {i} ({} bytes) is intact, yet {outcome:?}",
                sizes[i]
            );
            assert_eq!(&read_all(dst.as_ref(), desc).await, data, "blob {i}");
        }
    }
}

#[tokio::test]
async fn source_file_of_the_wrong_size_is_declined_even_when_trusted() {
    let dir = tempdir();
    let src = layout(dir.path(), "src");
    let dst = layout(dir.path(), "dst");
    let (desc, data) = random_blob(5_000);
    plant(&src, &desc, &data[..4_000]);
    let outcome = mount(&SharedStorageMount::trusting(), &src, dst.as_ref(), &desc).await;
    assert!(
        matches!(&outcome, MountOutcome::Declined { reason, .. } if reason.contains("4000 bytes")),
        "{outcome:?}"
    );
    assert!(!dst.exists(&desc).await.unwrap());
}

#[tokio::test]
async fn other_stores_are_not_applicable() {
    let dir = tempdir();
    let src = layout(dir.path(), "src");
    let (desc, data) = random_blob(100);
    src.push(&desc, bytes_stream(data)).await.unwrap();
    let memory = MemoryStore::new("dst");
    let outcome = mount(&SharedStorageMount::new(), &src, &memory, &desc).await;
    assert!(
        matches!(outcome, MountOutcome::NotApplicable { .. }),
        "{outcome:?}"
    );
    assert!(memory.is_empty());
}

/// An XFS filesystem with reflink support, in a loop-mounted image file, unmounted on drop.
pub(crate) struct XfsMount {
    _dir: tempfile::TempDir,
    pub(crate) mountpoint: PathBuf,
}

impl XfsMount {
    pub(crate) fn new() -> Self {
        let dir = tempdir();
        let image = dir.path().join("xfs.img");
        let mountpoint = dir.path().join("mnt");
        std::fs::create_dir(&mountpoint).unwrap();
        std::fs::File::create(&image)
            .unwrap()
            .set_len(512 << 20)
            .unwrap();
        let mkfs = std::process::Command::new("mkfs.xfs")
            .args(["-q", "-m", "reflink=1"])
            .arg(&image)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run `mkfs.xfs` ({e}); install it: `apt-get install -y xfsprogs`")
            });
        assert!(
            mkfs.status.success(),
            "mkfs.xfs failed: {}",
            String::from_utf8_lossy(&mkfs.stderr)
        );
        let mount = std::process::Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mountpoint)
            .output()
            .expect("run mount");
        if !mount.status.success() {
            let uid = std::process::Command::new("id")
                .arg("-u")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            panic!(
                "cannot loop-mount an XFS image at `{}` (running as uid {uid}): {}; the reflink \
                 tests need root and a free loop device",
                mountpoint.display(),
                String::from_utf8_lossy(&mount.stderr).trim()
            );
        }
        Self {
            _dir: dir,
            mountpoint,
        }
    }
}

impl Drop for XfsMount {
    fn drop(&mut self) {
        let ok = std::process::Command::new("umount")
            .arg(&self.mountpoint)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.mountpoint)
                .status();
        }
    }
}

#[tokio::test]
async fn reflinks_on_xfs() {
    // The strategy contract: `conformance::shared_storage_on_xfs`.
    let xfs = XfsMount::new();
    let src = layout(&xfs.mountpoint, "src");
    let dst = layout(&xfs.mountpoint, "dst");

    let (desc, data) = random_blob(3 << 20);
    src.push(&desc, bytes_stream(data.clone())).await.unwrap();
    match mount(&SharedStorageMount::new(), &src, dst.as_ref(), &desc).await {
        MountOutcome::Mounted { method, .. } => assert_eq!(method, MountMethod::Reflink),
        other => panic!("expected a reflink on XFS, got {other:?}"),
    }
    let (s, d) = (
        src.blob_path(desc.digest()).unwrap(),
        dst.blob_path(desc.digest()).unwrap(),
    );
    assert_ne!(inode(&s), inode(&d), "a reflink is a file of its own");
    assert_eq!(std::fs::read(&d).unwrap(), data);
    assert_eq!(read_all(dst.as_ref(), &desc).await, data);

    // A corrupt source is declined here too, and no clone is left behind.
    let (bad, _) = random_blob(70_000);
    plant(&src, &bad, &ferry_conformance::random_bytes(70_000));
    let outcome = mount(&SharedStorageMount::new(), &src, dst.as_ref(), &bad).await;
    assert!(
        matches!(outcome, MountOutcome::Declined { .. }),
        "{outcome:?}"
    );
    assert!(!dst.exists(&bad).await.unwrap());
    let leftovers = tree(&dst.path().join(".ferry/tmp"));
    assert!(leftovers.is_empty(), "temporary clones left: {leftovers:?}");
}

#[tokio::test]
async fn layouts_on_different_filesystems_are_not_applicable() {
    let xfs = XfsMount::new();
    let dir = tempdir();
    let src = layout(dir.path(), "src");
    let dst = layout(&xfs.mountpoint, "dst");
    let (desc, data) = random_blob(1000);
    src.push(&desc, bytes_stream(Bytes::clone(&data)))
        .await
        .unwrap();
    let outcome = mount(&SharedStorageMount::new(), &src, dst.as_ref(), &desc).await;
    assert!(
        matches!(&outcome, MountOutcome::NotApplicable { reason, .. } if reason.contains("different filesystems")),
        "{outcome:?}"
    );
    assert!(!dst.exists(&desc).await.unwrap());
}

#[tokio::test]
async fn candidates_on_the_same_filesystem_are_linked_from_when_verifying() {
    use ferry_core::Location;
    let dir = tempdir();
    let seen_before = layout(dir.path(), "earlier-copy");
    let empty = layout(dir.path(), "stale");
    let dst = layout(dir.path(), "dst");
    let (desc, data) = random_blob(50_000);
    seen_before
        .push(&desc, bytes_stream(data.clone()))
        .await
        .unwrap();
    // The source is not a layout at all (think of a registry).
    let source = MemoryStore::new("registry");
    source.insert_unverified(&desc, data.clone());
    let candidates = [
        Location::now(empty.info().clone()),
        Location::now(seen_before.info().clone()),
    ];
    let request = MountRequest::new(&desc, &source, dst.as_ref()).with_candidates(&candidates);
    // Trusting, candidates are not used: their files would be linked unread.
    let outcome = SharedStorageMount::trusting()
        .mount(&request)
        .await
        .unwrap();
    assert!(
        matches!(outcome, MountOutcome::NotApplicable { .. }),
        "{outcome:?}"
    );
    match SharedStorageMount::new().mount(&request).await.unwrap() {
        MountOutcome::Mounted { method, from, .. } => {
            assert_eq!(method, MountMethod::Hardlink);
            assert_eq!(from.to_string(), seen_before.path().to_string_lossy());
        }
        other => panic!("expected a link from the candidate, got {other:?}"),
    }
    assert_eq!(read_all(dst.as_ref(), &desc).await, data);

    // A candidate that lacks the blob is declined, leaving the destination as it was.
    let (other, _) = random_blob(100);
    let request = MountRequest::new(&other, &source, dst.as_ref()).with_candidates(&candidates);
    let outcome = SharedStorageMount::new().mount(&request).await.unwrap();
    assert!(
        matches!(outcome, MountOutcome::Declined { .. }),
        "{outcome:?}"
    );
    assert!(!dst.exists(&other).await.unwrap());
}

#[tokio::test]
async fn a_destination_that_only_claims_to_be_a_layout_is_not_written() {
    let dir = tempdir();
    let src = layout(dir.path(), "src");
    let victim = layout(dir.path(), "victim");
    // A store that reports the `oci-layout` scheme of a real layout's path, but is not one.
    let impostor = ClaimingStore::new(victim.info().clone());
    let (desc, data) = random_blob(1000);
    src.push(&desc, bytes_stream(data)).await.unwrap();
    let outcome = mount(&SharedStorageMount::new(), &src, &impostor, &desc).await;
    assert!(
        matches!(outcome, MountOutcome::NotApplicable { .. }),
        "{outcome:?}"
    );
    assert!(!victim.exists(&desc).await.unwrap());
}
