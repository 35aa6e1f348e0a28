//! A counting wrapper (`ferry_conformance::Counting`, a decorator built on
//! `ferry_core::StoreWrapper`) around a real `Repository` and around an `OciLayout`: every
//! strategy still mounts through it, and the wrapper sees every call that reaches the store
//! (the registries' access logs and the files on disk show nothing else happened).

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use ferry_conformance::Counting;
use ferry_core::{
    Action, CopyOptions, CopyReport, MemoryStore, MountChain, ReadStore, WriteStore, copy,
};
use ferry_distribution::CrossRepoMount;
use ferry_fs_store::distribution_storage::{DistributionStorageMount, StorageRoot};
use ferry_fs_store::{OciLayout, SharedStorageMount};
use ferry_ipfs_mount::IpfsMount;
use ferry_test_support::fixtures::{self, Content};
use ferry_test_support::helia::Helia;
use ferry_test_support::{Image, ImageBuilder, Registry, tempdir};

use crate::admin_link::{SharedStorage, client, push_image, repo};

fn options(chain: MountChain) -> CopyOptions {
    CopyOptions::default().with_chain(chain)
}

fn blob_count(image: &Image) -> usize {
    image.all().iter().filter(|b| !b.is_manifest()).count()
}

fn mounted_by(report: &CopyReport, strategy: &str) -> usize {
    report
        .nodes
        .iter()
        .filter(|n| {
            n.action == Action::Mounted && n.strategy.as_ref().map(|s| s.as_str()) == Some(strategy)
        })
        .count()
}

async fn start(builder: ferry_test_support::RegistryBuilder) -> Registry {
    tokio::task::spawn_blocking(move || builder.start())
        .await
        .expect("join")
        .expect("docker-registry starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_repo_mounts_between_wrapped_repositories() {
    let registry = start(Registry::builder()).await;
    let image = push_image(&registry, "team/src", 1).await;
    let client = client();
    let src = Counting::new(repo(&client, &registry, "team/src"));
    let dst = Counting::new(repo(&client, &registry, "team/dst"));
    registry.clear_log();

    let chain = MountChain::new().with(CrossRepoMount::new());
    let report = copy(src.clone(), "v1", dst.clone(), Some("v1"), &options(chain))
        .await
        .unwrap();

    let blobs = blob_count(&image);
    assert_eq!(mounted_by(&report, "cross-repo"), blobs, "{report:#?}");
    // Every mount the registry was asked for went through the wrapper's capability.
    assert_eq!(dst.calls("mount_blob"), blobs);
    assert_eq!(registry.count("POST", "/v2/team/dst/blobs/uploads/"), blobs);
    // The mounts probed the destination, and the new repository is known to lack the
    // manifest (its `KnownAbsent`, offered through the wrapper, asked the tag listing once):
    // no existence check at all.
    assert_eq!(dst.calls("known_absent"), 1);
    assert_eq!(dst.calls("exists"), 0);
    assert_eq!(registry.count("HEAD", "/v2/team/dst/"), 0);
    assert_eq!(registry.count("GET", "/v2/team/dst/tags/list"), 1);
    assert_eq!(dst.calls("push_tagged"), 1);
    assert_eq!(registry.count("PUT", "/v2/team/dst/manifests/"), 1);
    // No blob was read from the source: its one fetch is the manifest's.
    assert_eq!(src.calls("fetch"), 1);
    assert_eq!(registry.count("GET", "/v2/team/src/blobs/"), 0);
    assert_eq!(registry.count("GET", "/v2/team/dst/blobs/"), 0);
    assert_eq!(registry.count("GET", "/v2/team/dst/manifests/"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_storage_links_between_wrapped_layouts() {
    let dir = tempdir();
    let image = ImageBuilder::new()
        .layers(&[4_000, 200_000])
        .seed(2)
        .build();
    fixtures::write_oci_layout(&dir.path().join("src"), &[(Some("v1"), &image)]).unwrap();
    let src = Counting::new(Arc::new(OciLayout::open(dir.path().join("src")).unwrap()));
    let dst = Counting::new(Arc::new(OciLayout::create(dir.path().join("dst")).unwrap()));

    let chain = MountChain::new().with(SharedStorageMount::new());
    let report = copy(src.clone(), "v1", dst.clone(), Some("v1"), &options(chain))
        .await
        .unwrap();

    let blobs = blob_count(&image);
    assert_eq!(mounted_by(&report, "shared-storage"), blobs, "{report:#?}");
    // The strategy took each source file and each destination path from the wrappers.
    assert_eq!(src.calls("blob_file"), blobs);
    assert_eq!(dst.calls("blob_file"), blobs);
    // No blob byte went through `fetch` or `push`: only the manifest did.
    assert_eq!(src.calls("fetch"), 1);
    assert_eq!(dst.calls("push") + dst.calls("push_tagged"), 1);
    for blob in image.all().iter().filter(|b| !b.is_manifest()) {
        let (s, d) = (
            src.wrapped().blob_path(blob.digest()).unwrap(),
            dst.wrapped().blob_path(blob.digest()).unwrap(),
        );
        assert_eq!(
            std::fs::metadata(&s).unwrap().ino(),
            std::fs::metadata(&d).unwrap().ino(),
            "{} is not linked",
            blob.digest()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_storage_links_between_wrapped_repositories() {
    let dir = tempdir();
    let (root_a, root_b) = (dir.path().join("a"), dir.path().join("b"));
    let a = start(Registry::builder().root(&root_a)).await;
    let b = start(Registry::builder().root(&root_b)).await;
    let image = push_image(&a, "team/app", 3).await;
    let client = client();
    let src = Counting::new(repo(&client, &a, "team/app"));
    let dst = Counting::new(repo(&client, &b, "mirror/app"));
    b.clear_log();

    let mount = DistributionStorageMount::new()
        .with_registry(a.addr(), StorageRoot::filesystem(&root_a).unwrap())
        .with_registry(b.addr(), StorageRoot::filesystem(&root_b).unwrap());
    let report = copy(
        src.clone(),
        "v1",
        dst.clone(),
        Some("v1"),
        &options(MountChain::new().with(mount)),
    )
    .await
    .unwrap();

    let blobs = blob_count(&image);
    assert_eq!(
        mounted_by(&report, "distribution-storage"),
        blobs,
        "{report:#?}"
    );
    // The destination registry confirmed each link through the wrapper; the manifest needed
    // no check (the new repository is known to lack it, through the wrapper), only its push.
    assert_eq!(dst.calls("exists"), blobs);
    assert_eq!(dst.calls("known_absent"), 1);
    assert_eq!(b.count("HEAD", "/v2/mirror/app/"), blobs);
    assert_eq!(b.count("POST", "/blobs/uploads/"), 0);
    assert_eq!(src.calls("fetch"), 1);
    assert_eq!(a.count("GET", "/blobs/"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipfs_fetches_into_a_wrapped_layout() {
    let helia = Helia::start();
    let image = ImageBuilder::new().layers(&[3_000, 90_000]).seed(4).build();
    let src = Arc::new(MemoryStore::new("src"));
    for blob in image.all() {
        src.insert(&blob.media_type(), blob.bytes.clone());
        if !blob.is_manifest() {
            helia.add_raw(&blob.bytes).await;
        }
    }
    src.tag(&image.manifest.descriptor, "v1").await.unwrap();
    let dir = tempdir();
    let dst = Counting::new(Arc::new(OciLayout::create(dir.path().join("dst")).unwrap()));

    let chain = MountChain::new().with(IpfsMount::new(helia.url()).unwrap());
    let report = copy(
        Counting::new(src.clone()),
        "v1",
        dst.clone(),
        Some("v1"),
        &options(chain),
    )
    .await
    .unwrap();

    let blobs = blob_count(&image);
    assert_eq!(mounted_by(&report, "ipfs"), blobs, "{report:#?}");
    // The gateway's bytes went into the destination through the wrapper's `push`, after the
    // strategy asked whether the destination can fetch an address itself (it cannot).
    assert_eq!(dst.calls("push"), blobs);
    assert_eq!(dst.calls("push_tagged"), 1);
    assert!(dst.calls("capabilities") >= blobs);
    assert_eq!(dst.calls("fetch_from_address"), 0);
    for blob in image.all() {
        assert!(dst.wrapped().exists(&blob.descriptor).await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_strategy_links_between_wrapped_repositories() {
    let storage = SharedStorage::start().await;
    let admin = storage.admin(None).await;
    let image = push_image(&storage.a, "team/app", 5).await;
    let client = client();
    let src = Counting::new(repo(&client, &storage.a, "team/app"));
    let dst = Counting::new(repo(&client, &storage.b, "mirror/app"));
    storage.b.clear_log();

    let chain = MountChain::new().with(storage.mount(&admin.url()));
    let report = copy(src.clone(), "v1", dst.clone(), Some("v1"), &options(chain))
        .await
        .unwrap();

    let blobs = blob_count(&image);
    assert_eq!(mounted_by(&report, "admin-link"), blobs, "{report:#?}");
    assert_eq!(src.calls("fetch"), 1);
    assert_eq!(
        dst.calls("exists"),
        storage.b.count("HEAD", "/v2/mirror/app/")
    );
    assert_eq!(storage.b.count("POST", "/blobs/uploads/"), 0);
}
