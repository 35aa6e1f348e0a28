//! `AdminLinkMount` between two real `docker-registry` instances that share one storage
//! directory, with the admin server of `admin_server` in front of that storage.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_conformance::{Case, Seen, strategy};
use ferry_core::layer::ManualClock;
use ferry_core::{
    Action, BlobLocations, CopyOptions, CopyReport, Descriptor, InMemoryLocations, MemoryStore,
    MountChain, MountMethod, MountOutcome, MountRequest, MountStrategy, ReadStore, WriteStore,
    copy,
};
use ferry_distribution::{
    ClientOptions, Credentials, CrossRepoMount, Reference, RegistryClient, Repository,
};
use ferry_examples::admin_link::{AdminLinkMount, REST_AFTER_NO_ANSWER};
use ferry_fs_store::SharedStorageMount;
use ferry_test_support::fixtures::{self, Content};
use ferry_test_support::{
    Image, ImageBuilder, LoggedRequest, Registry, TempDir, free_port, tempdir,
};

use crate::admin_server::AdminServer;

/// Two registries on one storage directory.
pub struct SharedStorage {
    pub a: Registry,
    pub b: Registry,
    pub root: PathBuf,
    _dir: TempDir,
}

impl SharedStorage {
    pub async fn start() -> SharedStorage {
        let dir = tempdir();
        let root = dir.path().join("storage");
        let start = |root: PathBuf| async move {
            tokio::task::spawn_blocking(move || Registry::builder().root(root).start())
                .await
                .expect("join")
                .expect("docker-registry starts")
        };
        let a = start(root.clone()).await;
        let b = start(root.clone()).await;
        SharedStorage {
            a,
            b,
            root,
            _dir: dir,
        }
    }

    /// An admin server managing both registries.
    pub async fn admin(&self, token: Option<&str>) -> AdminServer {
        AdminServer::start(
            &[(self.a.addr(), &self.root), (self.b.addr(), &self.root)],
            token,
        )
        .await
    }

    /// `AdminLinkMount` for `admin_url`, managing both registries.
    pub fn mount(&self, admin_url: &str) -> AdminLinkMount {
        AdminLinkMount::new(admin_url)
            .unwrap()
            .managing([self.a.addr(), self.b.addr()])
    }
}

pub fn client() -> RegistryClient {
    RegistryClient::new(ClientOptions {
        plain_http: true,
        credentials: Credentials::anonymous(),
        ..Default::default()
    })
    .expect("client")
}

pub fn repo(client: &RegistryClient, registry: &Registry, name: &str) -> Arc<Repository> {
    client
        .repository(&Reference::parse(&format!("{}/{name}", registry.addr())).expect("reference"))
        .expect("repository")
}

/// Pushes a fresh image (config and two layers) to `name:v1`.
pub async fn push_image(registry: &Registry, name: &str, seed: u64) -> Image {
    let image = ImageBuilder::new()
        .layers(&[5_000, 300_000])
        .seed(seed)
        .build();
    fixtures::push(&registry.url(), name, &image, Some("v1"), None)
        .await
        .expect("push the image");
    image
}

/// The chain an operator registers: the built-in strategies around their own.
fn chain(admin: impl MountStrategy + 'static) -> MountChain {
    MountChain::new()
        .with(CrossRepoMount::new())
        .with(admin)
        .with(SharedStorageMount::new())
}

fn blobs(image: &Image) -> Vec<&Descriptor> {
    image
        .all()
        .into_iter()
        .filter(|b| !b.is_manifest())
        .map(|b| &b.descriptor)
        .collect()
}

/// Requests that upload blob bytes.
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

fn mounted(report: &CopyReport) -> impl Iterator<Item = &ferry_core::NodeReport> {
    report.nodes.iter().filter(|n| n.action == Action::Mounted)
}

async fn mount_one(
    strategy: &dyn MountStrategy,
    descriptor: &Descriptor,
    source: &dyn ReadStore,
    destination: &dyn WriteStore,
) -> MountOutcome {
    strategy
        .mount(&MountRequest::new(descriptor, source, destination))
        .await
        .expect("an attempt reports an outcome, never an error")
}

fn reason(outcome: &MountOutcome) -> String {
    match outcome {
        MountOutcome::NotApplicable { reason, .. } | MountOutcome::Declined { reason, .. } => {
            format!("{}: {reason}", outcome.kind())
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn link_file(root: &Path, repository: &str, descriptor: &Descriptor) -> PathBuf {
    root.join("docker/registry/v2/repositories")
        .join(repository)
        .join("_layers/sha256")
        .join(descriptor.digest().digest())
        .join("link")
}

/// The strategy contract, one test per rule, between a repository of registry A and one of
/// registry B on one storage, with the admin server in front of it.
mod conformance {
    use super::*;

    /// The registries, the storage and the admin server live as long as the case.
    async fn registries() -> (SharedStorage, AdminServer) {
        let storage = SharedStorage::start().await;
        let admin = storage.admin(None).await;
        (storage, admin)
    }

    fn case_with(
        storage: SharedStorage,
        admin: AdminServer,
        strategy: Arc<dyn MountStrategy>,
    ) -> Case {
        let client = client();
        let source = repo(&client, &storage.a, "kit/source");
        let destination = repo(&client, &storage.b, "kit/destination");
        Case::new(strategy, source, destination).keeping((storage, admin))
    }

    mod plain {
        use super::*;

        async fn case() -> Case {
            let (storage, admin) = registries().await;
            let strategy = Arc::new(storage.mount(&admin.url()));
            case_with(storage, admin, strategy)
        }

        ferry_conformance::strategy_suite!(setup: case, expect: Mounted, declares: [probes_destination]);
    }

    /// As an operator registers it, in a timeout and a resting layer, and traced: every
    /// layer of ferry-core keeps the contract of the strategy it wraps.
    mod layered {
        use super::*;
        use ferry_core::MountStrategyExt;

        async fn case() -> Case {
            let (storage, admin) = registries().await;
            let strategy = Arc::new(storage.mount(&admin.url()).layered().traced());
            case_with(storage, admin, strategy)
        }

        ferry_conformance::strategy_suite!(setup: case, expect: Mounted, declares: [probes_destination]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_answers_404_for_a_missing_blob_and_201_for_a_link() {
    let storage = SharedStorage::start().await;
    let admin = storage.admin(None).await;
    let client = client();
    let case = Case::new(
        Arc::new(storage.mount(&admin.url())),
        repo(&client, &storage.a, "kit/source"),
        repo(&client, &storage.b, "kit/destination"),
    );
    strategy::a_blob_the_source_lacks_is_never_mounted(&case).await;
    strategy::the_outcome_is_honest_and_as_declared(&case, Seen::Mounted).await;
    let statuses: Vec<u16> = admin.requests().iter().map(|r| r.status).collect();
    assert!(
        statuses.contains(&404),
        "a missing blob was asked: {statuses:?}"
    );
    assert!(statuses.contains(&201), "a blob was linked: {statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_mounts_every_blob_by_admin_link_without_uploads() {
    let storage = SharedStorage::start().await;
    let admin = storage.admin(None).await;
    let image = push_image(&storage.a, "team/app", 1).await;
    let chain = chain(storage.mount(&admin.url()));
    assert_eq!(
        chain.to_string(),
        format!(
            "MountChain[CrossRepoMount, AdminLinkMount({}), SharedStorageMount]",
            admin.url()
        )
    );
    let client = client();
    let dst = repo(&client, &storage.b, "mirror/app");
    storage.b.clear_log();
    let options = CopyOptions::default().with_chain(chain);

    let report = copy(
        repo(&client, &storage.a, "team/app"),
        "v1",
        dst.clone(),
        Some("v1"),
        &options,
    )
    .await
    .unwrap();

    let blobs = blobs(&image);
    assert_eq!(mounted(&report).count(), blobs.len(), "{report:#?}");
    for node in mounted(&report) {
        assert_eq!(
            node.strategy.as_ref().map(|s| s.as_str()),
            Some("admin-link")
        );
        assert_eq!(
            node.from.as_ref().map(ToString::to_string).as_deref(),
            Some(format!("{}/team/app", storage.a.addr()).as_str())
        );
        assert_eq!(node.bytes, 0, "a mounted blob streams no byte");
        // Cross-repo did not apply (another registry); admin-link mounted.
        let tried: Vec<&str> = node.attempts.iter().map(|a| a.outcome.as_str()).collect();
        assert_eq!(tried, ["not-applicable", "mounted"], "{:#?}", node.attempts);
    }
    let uploads = uploads(&storage.b);
    assert!(uploads.is_empty(), "blob uploads reached b: {uploads:#?}");
    for blob in &blobs {
        assert_eq!(
            std::fs::read_to_string(link_file(&storage.root, "mirror/app", blob)).unwrap(),
            blob.digest().to_string()
        );
    }
    assert_eq!(
        dst.resolve("v1").await.unwrap().digest(),
        image.descriptor().digest()
    );
    let linked: Vec<_> = admin
        .requests()
        .into_iter()
        .filter(|r| r.status == 201)
        .collect();
    assert_eq!(linked.len(), blobs.len());
    // The request names the blob, its size and both repositories.
    let layer = &image.layers[1].descriptor;
    let asked = linked
        .iter()
        .find(|r| r.body["digest"] == layer.digest().to_string())
        .expect("the layer was linked");
    assert_eq!(
        asked.body,
        serde_json::json!({
            "digest": layer.digest().to_string(),
            "size": layer.size(),
            "source": {"registry": storage.a.addr(), "repository": "team/app"},
            "target": {"registry": storage.b.addr(), "repository": "mirror/app"},
        })
    );

    // A second copy: the admin API answers 409 for every blob, which the engine reports as
    // present without a HEAD of its own.
    storage.b.clear_log();
    let again = copy(
        repo(&client, &storage.a, "team/app"),
        "v1",
        dst.clone(),
        Some("v1"),
        &options,
    )
    .await
    .unwrap();
    for node in again
        .nodes
        .iter()
        .filter(|n| !n.descriptor.media_type().to_string().contains("manifest"))
    {
        assert_eq!(node.action, Action::Exists, "{node:#?}");
        assert_eq!(
            node.strategy.as_ref().map(|s| s.as_str()),
            Some("admin-link")
        );
    }
    let blob_heads = storage.b.count("HEAD", "/blobs/");
    assert_eq!(
        blob_heads, 0,
        "the engine asked b for blobs the admin API vouched for"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounts_from_where_the_blob_location_cache_saw_the_blob() {
    let storage = SharedStorage::start().await;
    let admin = storage.admin(None).await;
    let image = push_image(&storage.a, "team/app", 2).await;
    let client = client();
    let locations: Arc<dyn BlobLocations> = Arc::new(InMemoryLocations::new());

    // A first copy into memory streams from a, and the cache learns where the blobs live.
    let memory = Arc::new(MemoryStore::new("memory"));
    copy(
        repo(&client, &storage.a, "team/app"),
        "v1",
        memory.clone(),
        Some("v1"),
        &CopyOptions::default().with_locations(locations.clone()),
    )
    .await
    .unwrap();

    // From memory to b: the source is no registry, but the cache names a's repository.
    storage.b.clear_log();
    let report = copy(
        memory,
        "v1",
        repo(&client, &storage.b, "mirror/app"),
        Some("v1"),
        &CopyOptions::default()
            .with_chain(chain(storage.mount(&admin.url())))
            .with_locations(locations),
    )
    .await
    .unwrap();
    assert_eq!(mounted(&report).count(), blobs(&image).len(), "{report:#?}");
    for node in mounted(&report) {
        assert_eq!(
            node.from.as_ref().map(ToString::to_string).as_deref(),
            Some(format!("{}/team/app", storage.a.addr()).as_str())
        );
    }
    assert!(uploads(&storage.b).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_streams_when_the_admin_api_does_not_answer() {
    let storage = SharedStorage::start().await;
    let image = push_image(&storage.a, "team/app", 3).await;
    let client = client();
    let dst = repo(&client, &storage.b, "mirror/app");
    // Nothing listens on this port: every admin request is refused.
    let down = format!("http://127.0.0.1:{}", free_port());

    let report = copy(
        repo(&client, &storage.a, "team/app"),
        "v1",
        dst.clone(),
        Some("v1"),
        &CopyOptions::default().with_chain(chain(storage.mount(&down).layered())),
    )
    .await
    .expect("the copy succeeds by streaming");

    assert_eq!(mounted(&report).count(), 0, "{report:#?}");
    assert_eq!(
        report.count(Action::Copied),
        image.all().len(),
        "{report:#?}"
    );
    let details: Vec<String> = report
        .nodes
        .iter()
        .flat_map(|n| n.attempts.iter())
        .filter(|a| a.strategy == "admin-link")
        .map(|a| format!("{}: {}", a.outcome, a.detail))
        .collect();
    assert!(!details.is_empty(), "{report:#?}");
    for d in &details {
        assert!(d.starts_with("declined: "), "{d}");
        assert!(d.contains(&down), "the reason names the endpoint: {d}");
    }
    assert_eq!(
        dst.resolve("v1").await.unwrap().digest(),
        image.descriptor().digest()
    );
    for blob in blobs(&image) {
        assert!(dst.exists(blob).await.unwrap());
    }

    // Right after, the same strategy in a resting layer leaves the silent endpoint alone
    // instead of waiting for it once per blob, until its clock moves past the rest.
    let clock = ManualClock::new();
    let strategy = storage.mount(&down).layered().with_clock(clock.clone());
    let layer = &image.layers[0].descriptor;
    let src = repo(&client, &storage.a, "team/app");
    let other = repo(&client, &storage.b, "mirror/other");
    let request = MountRequest::new(layer, src.as_ref(), other.as_ref());
    assert!(strategy.probes_destination(&request));
    let first = reason(&mount_one(&strategy, layer, src.as_ref(), other.as_ref()).await);
    assert!(first.contains("did not answer"), "{first}");
    assert!(
        !strategy.probes_destination(&request),
        "a resting strategy lets the engine check the destination itself"
    );
    let second = reason(&mount_one(&strategy, layer, src.as_ref(), other.as_ref()).await);
    assert!(
        second.starts_with("declined: ") && second.contains("not asked again"),
        "{second}"
    );
    assert!(
        second.contains(&down),
        "the rest names the endpoint: {second}"
    );
    clock.advance(REST_AFTER_NO_ANSWER);
    assert!(strategy.probes_destination(&request));
    let third = reason(&mount_one(&strategy, layer, src.as_ref(), other.as_ref()).await);
    assert!(third.contains("did not answer"), "asked again: {third}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_outcomes_and_leave_the_destination_unchanged() {
    let storage = SharedStorage::start().await;
    let admin = storage.admin(Some("s3cret-admin-token")).await;
    let image = push_image(&storage.a, "team/app", 4).await;
    let client = client();
    let src = repo(&client, &storage.a, "team/app");
    let dst = repo(&client, &storage.b, "mirror/app");
    let layer = &image.layers[0].descriptor;

    // No token, then a wrong one: declined with a hint, never an error.
    for strategy in [
        storage.mount(&admin.url()),
        storage.mount(&admin.url()).with_token("wrong").unwrap(),
    ] {
        let r = reason(&mount_one(&strategy, layer, src.as_ref(), dst.as_ref()).await);
        assert!(r.starts_with("declined: ") && r.contains("401"), "{r}");
        assert!(r.contains("with_token"), "{r}");
        assert!(
            !format!("{strategy:?}").contains("wrong"),
            "Debug shows no token"
        );
    }
    let strategy = storage
        .mount(&admin.url())
        .with_token("s3cret-admin-token")
        .unwrap();
    assert!(!format!("{strategy:?}{strategy}").contains("s3cret"));

    // A descriptor whose size does not match the stored blob.
    let mut wrong_size = layer.clone();
    wrong_size.set_size(layer.size() + 1);
    let r = reason(&mount_one(&strategy, &wrong_size, src.as_ref(), dst.as_ref()).await);
    assert!(r.starts_with("declined: ") && r.contains("422"), "{r}");
    assert!(!dst.exists(layer).await.unwrap(), "a refusal changed b");

    // A registry the endpoint does not manage, and a destination that is no registry.
    let elsewhere = AdminLinkMount::new(&admin.url())
        .unwrap()
        .managing(["registry.example:5000"]);
    let r = reason(&mount_one(&elsewhere, layer, src.as_ref(), dst.as_ref()).await);
    assert!(r.starts_with("not-applicable: "), "{r}");
    let memory = MemoryStore::new("memory");
    let r = reason(&mount_one(&strategy, layer, src.as_ref(), &memory).await);
    assert!(r.starts_with("not-applicable: "), "{r}");
    assert!(!strategy.probes_destination(&MountRequest::new(layer, src.as_ref(), &memory)));

    // And with the right token, it links.
    let outcome = mount_one(&strategy, layer, src.as_ref(), dst.as_ref()).await;
    assert!(
        matches!(&outcome, MountOutcome::Mounted { method, .. } if *method == MountMethod::other("admin link")),
        "{outcome:?}"
    );
    assert!(dst.exists(layer).await.unwrap());
}

#[test]
fn unusable_admin_urls_are_refused_with_a_reason() {
    for (url, shown, says) in [
        ("registry-admin:9000", "registry-admin:9000", "http"),
        ("ftp://registry-admin", "ftp://registry-admin", "http"),
        // The URL is named, never with its credentials.
        (
            "http://user:hunter2@registry-admin",
            "http://registry-admin",
            "with_token",
        ),
        (
            "http://user:hunter2@[registry-admin",
            "http://[registry-admin",
            "http",
        ),
        (
            "http://registry-admin/?x=1",
            "http://registry-admin/?x=1",
            "query",
        ),
        (
            "http://registry-admin/?token=hunter2",
            "http://registry-admin/?token=REDACTED",
            "query",
        ),
    ] {
        let e = AdminLinkMount::new(url).unwrap_err().to_string();
        assert!(
            e.contains(&format!("`{shown}`")) && e.contains(says),
            "{url}: {e}"
        );
        assert!(
            !e.contains("hunter2") && !e.contains("user:"),
            "{url}: the credentials leaked: {e}"
        );
    }
    let e = AdminLinkMount::new("http://registry-admin:9000")
        .unwrap()
        .with_token("line\nbreak-secret")
        .unwrap_err()
        .to_string();
    assert!(e.contains("visible ASCII") && !e.contains("secret"), "{e}");
    let m = AdminLinkMount::new("http://registry-admin:9000/").unwrap();
    assert_eq!(m.to_string(), "AdminLinkMount(http://registry-admin:9000)");
    assert_eq!(m.name(), "admin-link");
}
