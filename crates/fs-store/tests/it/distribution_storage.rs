//! DistributionStorageMount between real CNCF distribution 2.8 registries: filesystem roots on
//! one filesystem, S3 roots in one SeaweedFS bucket, and every way the strategy must decline
//! while the copy still succeeds.
//!
//! The registries are driven through `ferry-distribution`'s `Repository` store, the same
//! client the CLI uses.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::support::ClaimingStore;
use ferry_core::{
    Action, CopyOptions, CopyReport, Descriptor, MountChain, MountMethod, MountOutcome,
    MountRequest, MountStrategy, MountStrategyExt, ReadStore, WriteStore, copy,
};
use ferry_distribution::{ClientOptions, Credentials, Reference, RegistryClient, Repository};
use ferry_fs_store::distribution_storage::{DistributionStorageMount, StorageRoot};
use ferry_test_support::fixtures::{self, Content};
use ferry_test_support::{
    Image, ImageBuilder, LoggedRequest, Registry, RegistryBuilder, S3Storage, SeaweedFs, free_port,
    skopeo, tempdir,
};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;

// ---------------------------------------------------------------------------------------------
// Helpers

/// Starts a registry off the async runtime's workers (it polls readiness synchronously).
pub(crate) async fn start_registry(builder: RegistryBuilder) -> Registry {
    tokio::task::spawn_blocking(move || builder.start())
        .await
        .expect("join")
        .expect("docker-registry starts")
}

pub(crate) fn client() -> RegistryClient {
    RegistryClient::new(ClientOptions {
        plain_http: true,
        credentials: Credentials::anonymous(),
        ..Default::default()
    })
    .expect("client")
}

pub(crate) fn repo(client: &RegistryClient, registry: &Registry, name: &str) -> Arc<Repository> {
    client
        .repository(&Reference::parse(&format!("{}/{name}", registry.addr())).expect("reference"))
        .expect("repository")
}

/// Pushes a fresh image (two layers) to `name:v1` of `registry` over HTTP.
async fn push_image(registry: &Registry, name: &str, seed: u64) -> Image {
    let image = ImageBuilder::new()
        .layers(&[5_000, 300_000])
        .seed(seed)
        .build();
    fixtures::push(&registry.url(), name, &image, Some("v1"), None)
        .await
        .expect("push the image to the source registry");
    image
}

pub(crate) fn file_root(path: &Path) -> StorageRoot {
    StorageRoot::parse(
        url::Url::from_file_path(path).unwrap().as_str(),
        None::<(&str, &str)>,
    )
    .expect("file root")
}

fn options(mount: impl MountStrategy + 'static) -> CopyOptions {
    CopyOptions::default().with_chain(MountChain::new().with(mount))
}

/// Copies `team/app:v1` of `src` to `mirror/app:v1` of `dst` with `mount` in the chain.
async fn copy_to_mirror(
    src: &Registry,
    dst: &Registry,
    mount: DistributionStorageMount,
) -> (CopyReport, Arc<Repository>) {
    let client = client();
    let to = repo(&client, dst, "mirror/app");
    let report = copy(
        repo(&client, src, "team/app"),
        "v1",
        to.clone(),
        Some("v1"),
        &options(mount),
    )
    .await
    .unwrap();
    (report, to)
}

fn count(report: &CopyReport, action: Action) -> usize {
    report.nodes.iter().filter(|n| n.action == action).count()
}

/// Requests that upload blob bytes: `POST`, `PATCH` or `PUT` under `/blobs/uploads`.
fn uploads(registry: &Registry) -> Vec<LoggedRequest> {
    registry
        .requests()
        .into_iter()
        .filter(|r| {
            r.path.contains("/blobs/uploads")
                && matches!(r.method.as_str(), "POST" | "PATCH" | "PUT")
        })
        .collect()
}

/// Blob requests of any kind (`HEAD`, `GET`, uploads).
fn blob_requests(registry: &Registry) -> Vec<LoggedRequest> {
    registry
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/blobs/"))
        .collect()
}

fn data_path(root: &Path, descriptor: &Descriptor) -> PathBuf {
    let hex = descriptor.digest().digest();
    root.join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

fn link_path(root: &Path, repository: &str, descriptor: &Descriptor) -> PathBuf {
    root.join("docker/registry/v2/repositories")
        .join(repository)
        .join("_layers/sha256")
        .join(descriptor.digest().digest())
        .join("link")
}

/// The config and layers of an image: the blobs a copy mounts.
fn blobs(image: &Image) -> Vec<&Descriptor> {
    image
        .all()
        .into_iter()
        .filter(|b| !b.is_manifest())
        .map(|b| &b.descriptor)
        .collect()
}

/// Pulls `reference` with skopeo into a fresh OCI layout; skopeo verifies every digest.
async fn skopeo_pulls(reference: String) {
    let out = tempdir();
    let dest = format!("oci:{}:pulled", out.path().join("layout").display());
    tokio::task::spawn_blocking(move || {
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{reference}"),
            &dest,
        ])
        .unwrap_or_else(|e| panic!("skopeo pulls `{reference}`: {e}"));
        drop(out);
    })
    .await
    .unwrap();
}

async fn mount_one(
    strategy: &DistributionStorageMount,
    descriptor: &Descriptor,
    src: &dyn ReadStore,
    dst: &dyn WriteStore,
) -> MountOutcome {
    strategy
        .mount(&MountRequest::new(descriptor, src, dst))
        .await
        .expect("a mount attempt reports an outcome, not an error")
}

fn reason(outcome: &MountOutcome) -> &str {
    match outcome {
        MountOutcome::NotApplicable { reason, .. } | MountOutcome::Declined { reason, .. } => {
            reason
        }
        other => panic!("expected a refusal with a reason, got {other:?}"),
    }
}

/// Asserts that a copy streamed every blob (the strategy did not mount) and the destination
/// serves the image; returns the strategy's attempts' details.
async fn assert_streamed(report: &CopyReport, image: &Image, dst: &Repository) -> Vec<String> {
    assert_eq!(count(report, Action::Mounted), 0, "{report:#?}");
    assert_eq!(
        count(report, Action::Copied),
        image.all().len(),
        "{report:#?}"
    );
    assert_eq!(
        dst.resolve("v1").await.unwrap().digest(),
        image.descriptor().digest()
    );
    for b in blobs(image) {
        assert!(dst.exists(b).await.unwrap(), "{} missing", b.digest());
    }
    report
        .nodes
        .iter()
        .flat_map(|n| n.attempts.iter())
        .map(|a| format!("{}: {}", a.outcome, a.detail))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// SeaweedFS

/// The one identity SeaweedFS accepts in these tests.
const S3_ACCESS_KEY: &str = "ferry-test-key";
const S3_SECRET_KEY: &str = "ferry-test-secret";

/// SeaweedFS on loopback that checks credentials (one identity) and has `buckets` ready.
pub(crate) async fn seaweed(buckets: &[&str]) -> SeaweedFs {
    let builder = buckets.iter().fold(
        SeaweedFs::builder().credentials(S3_ACCESS_KEY, S3_SECRET_KEY),
        |builder, bucket| builder.bucket(*bucket),
    );
    tokio::task::spawn_blocking(move || builder.start())
        .await
        .expect("join")
        .expect("SeaweedFS starts")
}

/// `StorageRoot` options for `endpoint` with the test identity.
pub(crate) fn s3_options(endpoint: &str) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("endpoint", endpoint.to_string()),
        ("region", "us-east-1".to_string()),
        ("access_key_id", S3_ACCESS_KEY.to_string()),
        ("secret_access_key", S3_SECRET_KEY.to_string()),
        ("allow_http", "true".to_string()),
        ("max_retries", "1".to_string()),
        ("retry_timeout", "5s".to_string()),
    ])
}

pub(crate) fn s3_root(seaweed: &SeaweedFs, bucket: &str, prefix: &str) -> StorageRoot {
    StorageRoot::s3(bucket, prefix, s3_options(&seaweed.s3_url())).unwrap()
}

/// A registry whose S3 driver keeps its data in `bucket` under `/prefix`.
pub(crate) fn s3_registry(seaweed: &SeaweedFs, bucket: &str, prefix: &str) -> RegistryBuilder {
    Registry::builder().s3(S3Storage::new(
        seaweed.s3_url(),
        bucket,
        seaweed.access_key(),
        seaweed.secret_key(),
    )
    .root_directory(format!("/{prefix}")))
}

// ---------------------------------------------------------------------------------------------
// Filesystem roots

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_roots_mount_every_blob_without_uploads() {
    let dir = tempdir();
    let (root_a, root_b) = (dir.path().join("a"), dir.path().join("b"));
    let a = start_registry(Registry::builder().root(&root_a)).await;
    let b = start_registry(Registry::builder().root(&root_b)).await;
    let image = push_image(&a, "team/app", 1).await;
    let mount = DistributionStorageMount::new()
        .with_registry(a.addr(), file_root(&root_a))
        .with_registry(b.addr(), file_root(&root_b));
    assert_eq!(
        mount.to_string(),
        format!("DistributionStorageMount[{}, {}]", a.addr(), b.addr())
    );
    let client = client();
    let dst = repo(&client, &b, "mirror/app");
    b.clear_log();

    let report = copy(
        repo(&client, &a, "team/app"),
        "v1",
        dst.clone(),
        Some("v1"),
        &options(mount.clone()),
    )
    .await
    .unwrap();

    let blobs = blobs(&image);
    assert_eq!(count(&report, Action::Mounted), blobs.len(), "{report:#?}");
    for node in report.nodes.iter().filter(|n| n.action == Action::Mounted) {
        assert_eq!(
            node.strategy.as_ref().map(|s| s.as_str()),
            Some("distribution-storage")
        );
        assert_eq!(
            node.from.as_ref().map(ToString::to_string).as_deref(),
            Some(format!("{}/team/app", a.addr()).as_str())
        );
        assert_eq!(node.method, Some(MountMethod::Hardlink));
        assert_eq!(node.bytes, 0, "a mounted blob streams no byte");
    }
    let uploads = uploads(&b);
    assert!(uploads.is_empty(), "blob uploads reached b: {uploads:#?}");
    for blob in &blobs {
        let (in_a, in_b) = (data_path(&root_a, blob), data_path(&root_b, blob));
        assert_eq!(
            std::fs::metadata(&in_a).unwrap().ino(),
            std::fs::metadata(&in_b).unwrap().ino(),
            "{} is not a hardlink of a's data",
            in_b.display()
        );
        // The link holds the digest string with no newline, as distribution writes it.
        assert_eq!(
            std::fs::read_to_string(link_path(&root_b, "mirror/app", blob)).unwrap(),
            blob.digest().to_string()
        );
    }
    skopeo_pulls(format!("{}/mirror/app:v1", b.addr())).await;

    // Asked again, the strategy finds every link itself (`AlreadyPresent`, so the engine
    // sends no HEAD of its own) and b sees no blob request at all.
    let src = repo(&client, &a, "team/app");
    b.clear_log();
    for blob in &blobs {
        let request = MountRequest::new(blob, src.as_ref(), dst.as_ref());
        assert!(mount.probes_destination(&request));
        let outcome = mount_one(&mount, blob, src.as_ref(), dst.as_ref()).await;
        assert!(
            matches!(outcome, MountOutcome::AlreadyPresent),
            "{outcome:?}"
        );
    }
    let seen = blob_requests(&b);
    assert!(seen.is_empty(), "b saw blob requests: {seen:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registries_sharing_one_root_only_write_the_link() {
    let dir = tempdir();
    let root = dir.path().join("shared");
    let a = start_registry(Registry::builder().root(&root)).await;
    let b = start_registry(Registry::builder().root(&root)).await;
    let image = push_image(&a, "team/app", 2).await;
    let mount = DistributionStorageMount::new()
        .with_registry(a.addr(), file_root(&root))
        .with_registry(b.addr(), file_root(&root));
    let client = client();
    b.clear_log();

    let report = copy(
        repo(&client, &a, "team/app"),
        "v1",
        repo(&client, &b, "other/app"),
        Some("v1"),
        &options(mount),
    )
    .await
    .unwrap();

    assert_eq!(
        count(&report, Action::Mounted),
        blobs(&image).len(),
        "{report:#?}"
    );
    for node in report.nodes.iter().filter(|n| n.action == Action::Mounted) {
        assert_eq!(
            node.from.as_ref().map(ToString::to_string).as_deref(),
            Some(format!("{}/team/app", a.addr()).as_str())
        );
        assert_eq!(node.method, Some(MountMethod::LinkOnly));
    }
    assert!(uploads(&b).is_empty());
    for blob in blobs(&image) {
        assert!(link_path(&root, "other/app", blob).exists());
    }
    skopeo_pulls(format!("{}/other/app:v1", b.addr())).await;
}

/// distribution's blob descriptor cache keeps only blobs it found, so a blob that was
/// unknown a moment ago is served as soon as it is linked, with the cache on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_descriptor_cache_does_not_hide_a_linked_blob() {
    let dir = tempdir();
    let (root_a, root_b) = (dir.path().join("a"), dir.path().join("b"));
    let a = start_registry(Registry::builder().root(&root_a)).await;
    let b = start_registry(
        Registry::builder()
            .root(&root_b)
            .env("REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR", "inmemory"),
    )
    .await;
    let image = push_image(&a, "team/app", 3).await;
    let client = client();
    let dst = repo(&client, &b, "mirror/app");
    // b answers "unknown" for every blob first, repository-scoped and globally.
    for blob in blobs(&image) {
        assert!(!dst.exists(blob).await.unwrap());
    }
    let mount = DistributionStorageMount::new()
        .with_registry(a.addr(), file_root(&root_a))
        .with_registry(b.addr(), file_root(&root_b));

    let report = copy(
        repo(&client, &a, "team/app"),
        "v1",
        dst,
        Some("v1"),
        &options(mount),
    )
    .await
    .unwrap();

    assert_eq!(
        count(&report, Action::Mounted),
        blobs(&image).len(),
        "{report:#?}"
    );
    assert!(uploads(&b).is_empty());
    skopeo_pulls(format!("{}/mirror/app:v1", b.addr())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_source_data_is_never_linked_unless_trusted() {
    let dir = tempdir();
    let (root_a, root_b) = (dir.path().join("a"), dir.path().join("b"));
    let a = start_registry(Registry::builder().root(&root_a)).await;
    let b = start_registry(Registry::builder().root(&root_b)).await;
    let image = push_image(&a, "team/app", 4).await;
    let layer = &image.layers[1].descriptor;
    // Same size, other bytes, written behind the registry's back.
    let data = data_path(&root_a, layer);
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();
    let client = client();
    let (src, dst) = (
        repo(&client, &a, "team/app"),
        repo(&client, &b, "mirror/app"),
    );

    let verifying = DistributionStorageMount::new()
        .with_registry(a.addr(), file_root(&root_a))
        .with_registry(b.addr(), file_root(&root_b));
    let outcome = mount_one(&verifying, layer, src.as_ref(), dst.as_ref()).await;
    assert!(
        matches!(outcome, MountOutcome::Declined { .. }),
        "{outcome:?}"
    );
    assert!(reason(&outcome).contains("corrupt"), "{outcome:?}");
    assert!(!dst.exists(layer).await.unwrap());
    assert!(!data_path(&root_b, layer).exists());
    assert!(!link_path(&root_b, "mirror/app", layer).exists());

    // A trusted root is not read: the same data is linked as it is.
    let trusting = DistributionStorageMount::new()
        .with_registry(a.addr(), file_root(&root_a).with_trusted(true))
        .with_registry(b.addr(), file_root(&root_b));
    let outcome = mount_one(&trusting, layer, src.as_ref(), dst.as_ref()).await;
    assert!(
        matches!(outcome, MountOutcome::Mounted { .. }),
        "{outcome:?}"
    );
}

/// The source repository's data is corrupt, and the blob-location cache names a repository
/// of another registry with a root whose data verifies: the blob is linked from there, and
/// the outcome names the corrupt source, so the copy can warn about it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_source_data_healed_from_a_cached_repository_is_reported() {
    let dir = tempdir();
    let (root_a, root_b, root_c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    let a = start_registry(Registry::builder().root(&root_a)).await;
    let b = start_registry(Registry::builder().root(&root_b)).await;
    let c = start_registry(Registry::builder().root(&root_c)).await;
    let image = push_image(&a, "team/app", 9).await;
    push_image(&c, "cache/app", 9).await;
    let layer = &image.layers[1].descriptor;
    let data = data_path(&root_a, layer);
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();
    let client = client();
    let (src, dst, good) = (
        repo(&client, &a, "team/app"),
        repo(&client, &b, "mirror/app"),
        repo(&client, &c, "cache/app"),
    );
    let mount = DistributionStorageMount::new()
        .with_registry(a.addr(), file_root(&root_a))
        .with_registry(b.addr(), file_root(&root_b))
        .with_registry(c.addr(), file_root(&root_c));
    let candidates = [ferry_core::Location::now(good.info().clone())];
    let request = MountRequest::new(layer, src.as_ref(), dst.as_ref()).with_candidates(&candidates);
    match mount.mount(&request).await.unwrap() {
        MountOutcome::Mounted { from, corrupt, .. } => {
            assert_eq!(from.to_string(), format!("{}/cache/app", c.addr()));
            assert_eq!(corrupt.len(), 1, "{corrupt:?}");
            assert_eq!(
                corrupt[0].location.to_string(),
                format!("{}/team/app", a.addr())
            );
            assert!(corrupt[0].is_source);
            assert!(corrupt[0].reason.contains("corrupt"), "{corrupt:?}");
        }
        other => panic!("the good copy should be linked: {other:?}"),
    }
    assert!(dst.exists(layer).await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// Misconfiguration: the strategy says why, the copy streams

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_without_a_root_is_not_applicable_and_the_copy_streams() {
    let dir = tempdir();
    let root_a = dir.path().join("a");
    let a = start_registry(Registry::builder().root(&root_a)).await;
    let b = start_registry(Registry::builder()).await;
    let image = push_image(&a, "team/app", 5).await;
    let mount = DistributionStorageMount::new().with_registry(a.addr(), file_root(&root_a));
    let (report, dst) = copy_to_mirror(&a, &b, mount).await;
    let details = assert_streamed(&report, &image, &dst).await;
    assert!(!details.is_empty());
    for d in details {
        assert!(d.starts_with("not-applicable"), "{d}");
        assert!(
            d.contains(&format!("destination registry `{}`", b.addr())),
            "{d}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_root_without_the_data_is_not_applicable_and_the_copy_streams() {
    let dir = tempdir();
    let (root_a, root_b, elsewhere) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("elsewhere"),
    );
    std::fs::create_dir_all(&elsewhere).unwrap();
    let a = start_registry(Registry::builder().root(&root_a)).await;
    let b = start_registry(Registry::builder().root(&root_b)).await;
    let image = push_image(&a, "team/app", 6).await;
    // a's root is configured wrong: the directory exists but holds nothing of a.
    let mount = DistributionStorageMount::new()
        .with_registry(a.addr(), file_root(&elsewhere))
        .with_registry(b.addr(), file_root(&root_b));
    let (report, dst) = copy_to_mirror(&a, &b, mount).await;
    for d in assert_streamed(&report, &image, &dst).await {
        assert!(d.starts_with("not-applicable"), "{d}");
        assert!(d.contains("has no link"), "{d}");
    }
}

/// A root whose parent directory is missing too is an unmounted volume or a wrong path, not
/// a registry that has yet to store something: nothing is created there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_destination_root_declines_and_creates_nothing() {
    let dir = tempdir();
    let (root_a, root_b) = (dir.path().join("a"), dir.path().join("b"));
    let unmounted = dir.path().join("not-mounted");
    let missing = unmounted.join("registry-b");
    let a = start_registry(Registry::builder().root(&root_a)).await;
    let b = start_registry(Registry::builder().root(&root_b)).await;
    let image = push_image(&a, "team/app", 7).await;
    let mount = DistributionStorageMount::new()
        .with_registry(a.addr(), file_root(&root_a))
        .with_registry(b.addr(), file_root(&missing));
    let (report, dst) = copy_to_mirror(&a, &b, mount).await;
    for d in assert_streamed(&report, &image, &dst).await {
        assert!(d.starts_with("declined"), "{d}");
        assert!(d.contains("cannot be reached"), "{d}");
    }
    assert!(!unmounted.exists(), "the strategy created the missing root");
}

/// A root that exists but is not the registry's: the registry does not serve what was linked
/// there, so the strategy takes its link back and declines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_destination_root_is_detected_and_the_link_taken_back() {
    let dir = tempdir();
    let (root_a, root_b, wrong) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("wrong"),
    );
    std::fs::create_dir_all(&wrong).unwrap();
    let a = start_registry(Registry::builder().root(&root_a)).await;
    let b = start_registry(Registry::builder().root(&root_b)).await;
    let image = push_image(&a, "team/app", 8).await;
    let mount = DistributionStorageMount::new()
        .with_registry(a.addr(), file_root(&root_a))
        .with_registry(b.addr(), file_root(&wrong));
    let (report, dst) = copy_to_mirror(&a, &b, mount).await;
    for d in assert_streamed(&report, &image, &dst).await {
        assert!(d.starts_with("declined"), "{d}");
        assert!(d.contains("does not serve it"), "{d}");
    }
    for blob in blobs(&image) {
        assert!(!link_path(&wrong, "mirror/app", blob).exists());
    }

    // A wrong root that does not exist yet (in a directory that does) looks like the storage
    // of a registry that has never stored anything: it is created, the registry does not
    // serve what was linked there, and the reason says the root was created.
    let fresh = dir.path().join("wrong-and-new");
    let mount = DistributionStorageMount::new()
        .with_registry(a.addr(), file_root(&root_a))
        .with_registry(b.addr(), file_root(&fresh));
    let client = client();
    let dst = repo(&client, &b, "mirror/fresh");
    let report = copy(
        repo(&client, &a, "team/app"),
        "v1",
        dst.clone(),
        Some("v1"),
        &options(mount).with_concurrency(1),
    )
    .await
    .unwrap();
    let details = assert_streamed(&report, &image, &dst).await;
    assert!(
        details[0].contains("did not exist and was created"),
        "{details:#?}"
    );
    for d in details {
        assert!(d.contains("does not serve it"), "{d}");
    }
    for blob in blobs(&image) {
        assert!(!link_path(&fresh, "mirror/fresh", blob).exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roots_on_different_filesystems_are_not_applicable() {
    let dir = tempdir();
    let shm = tempfile::Builder::new()
        .prefix("ferry-test-")
        .tempdir_in("/dev/shm")
        .expect("a directory on /dev/shm (tmpfs)");
    let (root_a, root_b) = (dir.path().join("a"), shm.path().join("b"));
    std::fs::create_dir_all(&root_a).unwrap();
    std::fs::create_dir_all(&root_b).unwrap();
    assert_ne!(
        std::fs::metadata(&root_a).unwrap().dev(),
        std::fs::metadata(&root_b).unwrap().dev(),
        "the test needs two filesystems"
    );
    let a = start_registry(Registry::builder().root(&root_a)).await;
    let b = start_registry(Registry::builder().root(&root_b)).await;
    let image = push_image(&a, "team/app", 9).await;
    let mount = DistributionStorageMount::new()
        .with_registry(a.addr(), file_root(&root_a))
        .with_registry(b.addr(), file_root(&root_b));
    let (report, dst) = copy_to_mirror(&a, &b, mount).await;
    for d in assert_streamed(&report, &image, &dst).await {
        assert!(d.starts_with("not-applicable"), "{d}");
        assert!(d.contains("different filesystems"), "{d}");
    }
}

// ---------------------------------------------------------------------------------------------
// S3 roots in SeaweedFS

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_roots_in_one_bucket_copy_server_side_without_uploads() {
    let seaweed = seaweed(&["registries"]).await;
    let a = start_registry(s3_registry(&seaweed, "registries", "tenant-a")).await;
    let b = start_registry(s3_registry(&seaweed, "registries", "tenant-b")).await;
    let image = push_image(&a, "team/app", 10).await;
    let root_b = s3_root(&seaweed, "registries", "tenant-b");
    let mount = DistributionStorageMount::new()
        .with_registry(a.addr(), s3_root(&seaweed, "registries", "tenant-a"))
        .with_registry(b.addr(), root_b.clone());
    let client = client();
    let dst = repo(&client, &b, "mirror/app");
    b.clear_log();

    let report = copy(
        repo(&client, &a, "team/app"),
        "v1",
        dst.clone(),
        Some("v1"),
        &options(mount.clone()),
    )
    .await
    .unwrap_or_else(|e| panic!("copy failed: {e}\nweed:\n{}", seaweed.log_tail()));

    assert_eq!(
        count(&report, Action::Mounted),
        blobs(&image).len(),
        "{report:#?}"
    );
    for node in report.nodes.iter().filter(|n| n.action == Action::Mounted) {
        assert_eq!(
            node.from.as_ref().map(ToString::to_string).as_deref(),
            Some(format!("{}/team/app", a.addr()).as_str())
        );
        assert_eq!(node.method, Some(MountMethod::ServerSideCopy));
    }
    let uploads = uploads(&b);
    assert!(uploads.is_empty(), "blob uploads reached b: {uploads:#?}");
    for blob in blobs(&image) {
        let hex = blob.digest().digest();
        let key = format!(
            "tenant-b/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        );
        let meta = root_b.store().head(&ObjectPath::from(key)).await.unwrap();
        assert_eq!(meta.size, blob.size());
    }
    skopeo_pulls(format!("{}/mirror/app:v1", b.addr())).await;
    // The strategy contract on S3 roots: `conformance::distribution_storage_on_s3`.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_misconfiguration_declines_and_the_copy_streams() {
    let seaweed = seaweed(&["registries", "other"]).await;
    let a = start_registry(s3_registry(&seaweed, "registries", "tenant-a")).await;
    let b = start_registry(s3_registry(&seaweed, "registries", "tenant-b")).await;
    let c = start_registry(s3_registry(&seaweed, "other", "tenant-c")).await;
    let client = client();
    let root_a = s3_root(&seaweed, "registries", "tenant-a");

    // Wrong credentials for the destination.
    let mut wrong = s3_options(&seaweed.s3_url());
    wrong.insert("secret_access_key", "not-the-secret".into());
    let image = push_image(&a, "team/app", 11).await;
    let mount = DistributionStorageMount::new()
        .with_registry(a.addr(), root_a.clone())
        .with_registry(
            b.addr(),
            StorageRoot::s3("registries", "tenant-b", wrong).unwrap(),
        );
    let dst = repo(&client, &b, "wrong-credentials/app");
    let report = copy(
        repo(&client, &a, "team/app"),
        "v1",
        dst.clone(),
        Some("v1"),
        &options(mount),
    )
    .await
    .unwrap();
    for d in assert_streamed(&report, &image, &dst).await {
        assert!(d.starts_with("declined"), "{d}");
        assert!(d.contains("s3://registries/tenant-b"), "{d}");
        assert!(
            !d.contains("not-the-secret"),
            "a secret leaked into a reason: {d}"
        );
    }

    // An unreachable endpoint for the source: the attempts that reach it wait for the
    // failure, which is unreachable; once it is known, a resting layer does not ask the
    // strategy again for these registries (mount attempts of one copy run side by side, so a
    // second copy shows it for every blob).
    let closed = s3_options(&format!("http://127.0.0.1:{}", free_port()));
    let mount = DistributionStorageMount::new()
        .with_registry(
            a.addr(),
            StorageRoot::s3("registries", "tenant-a", closed).unwrap(),
        )
        .with_registry(b.addr(), s3_root(&seaweed, "registries", "tenant-b"))
        .resting_after_failure(std::time::Duration::from_secs(30));
    for (round, name) in ["unreachable/app", "unreachable/again"].iter().enumerate() {
        let dst = repo(&client, &b, name);
        let report = copy(
            repo(&client, &a, "team/app"),
            "v1",
            dst.clone(),
            Some("v1"),
            &options(mount.clone()).with_concurrency(1),
        )
        .await
        .unwrap();
        let details = assert_streamed(&report, &image, &dst).await;
        assert_eq!(details.len(), blobs(&image).len(), "{details:#?}");
        for d in &details {
            assert!(d.starts_with("declined"), "{d}");
            assert!(d.contains("s3://registries/tenant-a"), "{d}");
        }
        let skipped = details
            .iter()
            .filter(|d| d.contains("not asked again"))
            .count();
        if round == 0 {
            assert!(
                skipped < details.len(),
                "the first attempt meets the failure: {details:#?}"
            );
        } else {
            assert_eq!(
                skipped,
                details.len(),
                "then the root is left alone: {details:#?}"
            );
        }
    }

    // Roots in two buckets: no server-side copy between them.
    let mount = DistributionStorageMount::new()
        .with_registry(a.addr(), root_a.clone())
        .with_registry(c.addr(), s3_root(&seaweed, "other", "tenant-c"));
    let dst = repo(&client, &c, "mirror/app");
    let report = copy(
        repo(&client, &a, "team/app"),
        "v1",
        dst.clone(),
        Some("v1"),
        &options(mount),
    )
    .await
    .unwrap();
    for d in assert_streamed(&report, &image, &dst).await {
        assert!(d.starts_with("not-applicable"), "{d}");
        assert!(d.contains("different buckets"), "{d}");
    }

    // A filesystem root and an S3 root: nothing to link between them.
    let fs = tempdir();
    let d = start_registry(Registry::builder().root(fs.path().join("d"))).await;
    let mount = DistributionStorageMount::new()
        .with_registry(a.addr(), root_a)
        .with_registry(d.addr(), file_root(&fs.path().join("d")));
    let dst = repo(&client, &d, "mirror/app");
    let report = copy(
        repo(&client, &a, "team/app"),
        "v1",
        dst.clone(),
        Some("v1"),
        &options(mount),
    )
    .await
    .unwrap();
    for d in assert_streamed(&report, &image, &dst).await {
        assert!(d.starts_with("not-applicable"), "{d}");
        assert!(d.contains("different kinds of storage"), "{d}");
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration

#[test]
fn storage_urls_and_options_are_parsed_strictly() {
    let root = StorageRoot::parse("file:///srv/registry-a", [("trusted", "true")]).unwrap();
    assert_eq!(root.url(), "file:///srv/registry-a");
    assert_eq!(root.local_path(), Some(Path::new("/srv/registry-a")));
    assert!(root.is_trusted());
    assert_eq!(root.to_string(), "file:///srv/registry-a (trusted)");
    assert!(
        !StorageRoot::parse("file:///srv/registry-a", None::<(&str, &str)>)
            .unwrap()
            .is_trusted()
    );

    let s3 = StorageRoot::parse(
        "s3://bucket/tenant-b",
        [
            ("endpoint", "http://127.0.0.1:1"),
            ("region", "us-east-1"),
            ("access_key_id", "AKIDEXAMPLE"),
            ("secret_access_key", "very-secret-value"),
            ("allow_http", "true"),
        ],
    )
    .unwrap();
    assert_eq!(s3.url(), "s3://bucket/tenant-b");
    assert_eq!(s3.prefix().as_ref(), "tenant-b");
    assert!(s3.local_path().is_none());
    let shown = format!("{s3} {s3:?}");
    assert!(!shown.contains("very-secret-value"), "{shown}");

    let refused = |url: &str, options: &[(&str, &str)], needle: &str| {
        let e = StorageRoot::parse(url, options.iter().copied())
            .expect_err(url)
            .to_string();
        assert!(e.contains(needle), "`{url}` {options:?}: {e}");
        assert!(!e.contains("very-secret-value"), "{e}");
    };
    refused("/srv/registry", &[], "not a URL");
    refused("http://example.com/x", &[], "unsupported scheme `http`");
    refused("file://host/srv/registry", &[], "three slashes");
    refused("s3:///prefix", &[], "no bucket");
    refused(
        "s3://AKIDEXAMPLE:very-secret-value@bucket/p",
        &[],
        "credentials do not go in the storage URL",
    );
    // The URL parser refuses userinfo in a file URL; the error still quotes it without.
    refused("file://user:very-secret-value@host/srv/a", &[], "not a URL");
    // An endpoint given with credentials is never shown with them.
    let s3 = StorageRoot::parse(
        "s3://bucket/tenant-b",
        [
            (
                "endpoint",
                "http://AKIDEXAMPLE:very-secret-value@127.0.0.1:1/",
            ),
            ("region", "us-east-1"),
            ("allow_http", "true"),
        ],
    )
    .unwrap();
    let shown = format!("{s3} {s3:?} {:?}", s3.backend());
    assert!(
        !shown.contains("very-secret-value") && !shown.contains("AKID"),
        "{shown}"
    );
    assert!(shown.contains("http://127.0.0.1:1"), "{shown}");
    refused("file:///srv/a", &[("region", "x")], "takes no option");
    refused(
        "file:///srv/a",
        &[("trusted", "maybe")],
        "`true` or `false`",
    );
    refused(
        "s3://bucket/p",
        &[("secret_acess_key", "very-secret-value")],
        "unknown S3 storage option",
    );
    refused("s3://bucket/p", &[("bucket", "other")], "part of the URL");
    refused("s3://bucket/p", &[("retry_timeout", "soon")], "duration");
}

/// A memory store that claims to be repository `namespace` of registry `authority`: a fake,
/// because a real registry refuses the repository names this must test (`..`, `_layers`).
fn claiming(authority: &str, namespace: &str) -> ClaimingStore {
    ClaimingStore::new(ferry_core::StoreInfo::new(
        ferry_core::StoreInfo::REGISTRY,
        authority,
        namespace,
    ))
}

#[tokio::test]
async fn only_registry_blobs_with_valid_repository_names_apply() {
    let dir = tempdir();
    let mount = DistributionStorageMount::new()
        .with_registry("Registry-A.example:5000", file_root(&dir.path().join("a")))
        .with_registry("registry-b.example:5000", file_root(&dir.path().join("b")));
    // Authorities are matched without regard to case.
    assert!(mount.root("registry-a.example:5000").is_some());
    let layer = ferry_conformance::random_blob(10).0;
    let manifest = image_manifest();
    let cases: Vec<(ClaimingStore, ClaimingStore, &Descriptor, &str)> = vec![
        (
            claiming("registry-a.example:5000", "../../etc"),
            claiming("registry-b.example:5000", "mirror/app"),
            &layer,
            "repository name `../../etc`",
        ),
        (
            claiming("registry-a.example:5000", "team/app"),
            claiming("registry-b.example:5000", "mirror/_layers"),
            &layer,
            "repository name `mirror/_layers`",
        ),
        (
            claiming("registry-a.example:5000", "team/app"),
            claiming("registry-b.example:5000", "mirror/app"),
            &manifest,
            "manifests are pushed over HTTP",
        ),
        (
            claiming("registry-c.example:5000", "team/app"),
            claiming("registry-b.example:5000", "mirror/app"),
            &layer,
            "source registry `registry-c.example:5000`",
        ),
    ];
    for (src, dst, descriptor, needle) in &cases {
        let request = MountRequest::new(descriptor, src, dst);
        assert!(!mount.probes_destination(&request), "{needle}");
        let outcome = mount_one(&mount, descriptor, src, dst).await;
        assert!(
            matches!(outcome, MountOutcome::NotApplicable { .. }),
            "{outcome:?}"
        );
        assert!(reason(&outcome).contains(needle), "{outcome:?}");
    }
    // A store that is no registry.
    let memory = ferry_core::MemoryStore::new("layout");
    let dst = claiming("registry-b.example:5000", "mirror/app");
    let outcome = mount_one(&mount, &layer, &memory, &dst).await;
    assert!(
        reason(&outcome).contains("is not a registry"),
        "{outcome:?}"
    );
    // Nothing was written anywhere.
    assert!(!dir.path().join("a").exists() && !dir.path().join("b").exists());
}

fn image_manifest() -> Descriptor {
    ImageBuilder::new().build().manifest.descriptor
}

/// The source registry has no configured root (another host's storage), but the blob-location
/// cache saw the blobs in a repository of a registry that shares the destination's storage:
/// they are mounted from there, and the source serves no blob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_seen_in_a_configured_registry_are_mounted_from_there() {
    let dir = tempdir();
    let (root_a, root_b) = (dir.path().join("a"), dir.path().join("b"));
    let a = start_registry(Registry::builder().root(&root_a)).await;
    let b = start_registry(Registry::builder().root(&root_b)).await;
    let remote = start_registry(Registry::builder()).await;
    let image = push_image(&a, "team/app", 12).await;
    fixtures::push(&remote.url(), "upstream/app", &image, Some("v1"), None)
        .await
        .unwrap();
    let locations = ferry_core::InMemoryLocations::new();
    let seen_in_a =
        ferry_core::StoreInfo::new(ferry_core::StoreInfo::REGISTRY, a.addr(), "team/app");
    for blob in blobs(&image) {
        ferry_core::BlobLocations::record(&locations, blob.digest(), &seen_in_a);
    }
    let mount = DistributionStorageMount::new()
        .with_registry(a.addr(), file_root(&root_a))
        .with_registry(b.addr(), file_root(&root_b));
    let client = client();
    let dst = repo(&client, &b, "mirror/app");
    remote.clear_log();
    b.clear_log();

    let report = copy(
        repo(&client, &remote, "upstream/app"),
        "v1",
        dst,
        Some("v1"),
        &options(mount).with_locations(Arc::new(locations)),
    )
    .await
    .unwrap();

    assert_eq!(
        count(&report, Action::Mounted),
        blobs(&image).len(),
        "{report:#?}"
    );
    for node in report.nodes.iter().filter(|n| n.action == Action::Mounted) {
        assert_eq!(
            node.from.as_ref().map(ToString::to_string).as_deref(),
            Some(format!("{}/team/app", a.addr()).as_str())
        );
        assert_eq!(node.method, Some(MountMethod::Hardlink));
    }
    let fetched = blob_requests(&remote);
    assert!(fetched.is_empty(), "the source served blobs: {fetched:#?}");
    assert!(uploads(&b).is_empty());
    skopeo_pulls(format!("{}/mirror/app:v1", b.addr())).await;
}

/// The S3 client is handed its TLS provider: the library works without a process-wide rustls
/// provider and never installs one (that is the application's choice). Nothing else in this
/// test binary installs one either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_roots_need_and_install_no_process_wide_rustls_provider() {
    assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    let seaweed = seaweed(&["plain"]).await;
    let root = s3_root(&seaweed, "plain", "prefix");
    let path = ObjectPath::from("prefix/hello");
    root.store()
        .put(&path, object_store::PutPayload::from_static(b"hello"))
        .await
        .unwrap();
    assert_eq!(root.store().head(&path).await.unwrap().size, 5);
    // An HTTPS endpoint goes through the same client: the handshake fails on the plain
    // server, with an error and no panic for want of a provider.
    let https = s3_options(&seaweed.s3_url().replace("http://", "https://"));
    let secure = StorageRoot::s3("plain", "prefix", https).unwrap();
    assert!(secure.store().head(&path).await.is_err());
    assert!(
        rustls::crypto::CryptoProvider::get_default().is_none(),
        "the library installed a process-wide provider"
    );
}
