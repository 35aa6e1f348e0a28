//! Authentication against the real registry: htpasswd basic auth with credentials from a
//! docker config.json, token auth with the test token issuer, refused mounts, wrong
//! credentials.

use std::sync::Arc;

use base64::Engine as _;
use ferry_core::{Action, CopyOptions, Error, MemoryStore, MountChain, ReadStore, copy};
use ferry_distribution::{
    ClientOptions, Clock, Credential, Credentials, CrossRepoMount, RegistryClient,
};
use ferry_test_support::{Content, ImageBuilder, Registry, TokenIssuer, fixtures};

use crate::support::{client_with, count, repo, start_registry};

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn mounting(strategy: CrossRepoMount) -> CopyOptions {
    CopyOptions::default().with_chain(MountChain::new().with(strategy))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_with_credentials_from_a_docker_config() {
    let registry = start_registry(Registry::builder().user("alice", "s3cret")).await;
    let image = ImageBuilder::new().layers(&[100, 2000]).seed(21).build();
    fixtures::push(
        &registry.url(),
        "team/app",
        &image,
        Some("v1"),
        Some(&basic("alice", "s3cret")),
    )
    .await
    .unwrap();
    let config = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    std::fs::write(
        config.path().join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
            registry.addr()
        ),
    )
    .unwrap();
    let client = client_with(Credentials::from_docker_config_dir(config.path()));
    registry.clear_log();

    let report = copy(
        repo(&client, registry.addr(), "team/app"),
        "v1",
        repo(&client, registry.addr(), "prod/app"),
        Some("v1"),
        &mounting(CrossRepoMount::new()),
    )
    .await
    .unwrap();

    assert_eq!(count(&report, Action::Mounted), image.layers.len() + 1);
    // The first request learned the scheme; every later one carried the credentials.
    let unauthorized: Vec<_> = registry
        .requests()
        .into_iter()
        .filter(|r| r.status == 401)
        .collect();
    assert_eq!(unauthorized.len(), 1, "{unauthorized:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_fail_clearly_and_tag_nothing() {
    let registry = start_registry(Registry::builder().user("alice", "s3cret")).await;
    let src = MemoryStore::new("src");
    let image = ImageBuilder::new().layers(&[100]).seed(22).build();
    image.insert_into(&src, Some("v1"));
    let wrong = client_with(Credentials::anonymous().with(
        registry.addr(),
        Credential::Basic {
            username: "alice".into(),
            password: "wrong".into(),
        },
    ));

    let err = copy(
        Arc::new(src),
        "v1",
        repo(&wrong, registry.addr(), "team/app"),
        Some("v1"),
        &mounting(CrossRepoMount::new()),
    )
    .await
    .unwrap_err();

    assert!(matches!(err, Error::Unauthenticated { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(registry.addr()), "{text}");
    assert!(!text.contains("wrong"), "the password leaked into `{text}`");
    let right = client_with(Credentials::anonymous().with(
        registry.addr(),
        Credential::Basic {
            username: "alice".into(),
            password: "s3cret".into(),
        },
    ));
    let tagged = repo(&right, registry.addr(), "team/app")
        .resolve("v1")
        .await;
    assert!(matches!(tagged, Err(Error::NotFound { .. })), "{tagged:?}");
}

fn token_setup() -> TokenIssuer {
    TokenIssuer::builder()
        .user("alice", "pw")
        .user("admin", "root")
        .allow("alice", "team/*", &["pull", "push"])
        .allow("admin", "*", &["*"])
        .start()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_mounts_with_one_token_for_both_repositories() {
    let issuer = token_setup();
    let registry = start_registry(Registry::builder().token_auth(&issuer)).await;
    let image = ImageBuilder::new()
        .layers(&[100, 2000, 30_000])
        .seed(23)
        .build();
    let admin = issuer.token_for(Some("admin"), &["repository:team/src:pull,push"]);
    fixtures::push(
        &registry.url(),
        "team/src",
        &image,
        Some("v1"),
        Some(&format!("Bearer {admin}")),
    )
    .await
    .unwrap();
    let client = client_with(Credentials::anonymous().with(
        registry.addr(),
        Credential::Basic {
            username: "alice".into(),
            password: "pw".into(),
        },
    ));
    issuer.reset_counts();

    let report = copy(
        repo(&client, registry.addr(), "team/src"),
        "v1",
        repo(&client, registry.addr(), "team/dst"),
        Some("v1"),
        &mounting(CrossRepoMount::new()),
    )
    .await
    .unwrap();

    assert_eq!(
        count(&report, Action::Mounted),
        image.layers.len() + 1,
        "{report:#?}"
    );
    let tokens = issuer.requests();
    assert!(
        tokens.iter().any(|t| t.status == 200
            && t.user.as_deref() == Some("alice")
            && t.scopes
                .contains(&"repository:team/dst:pull,push".to_string())
            && t.scopes.contains(&"repository:team/src:pull".to_string())),
        "no single token covered the destination and the mount source: {tokens:#?}"
    );
    // Tokens are cached: not one per blob.
    assert!(tokens.len() <= 3, "{tokens:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_the_token_does_not_allow_falls_back_to_streaming() {
    let issuer = token_setup();
    let registry = start_registry(Registry::builder().token_auth(&issuer)).await;
    let image = ImageBuilder::new().layers(&[100, 5000]).seed(24).build();
    // The blobs are in `secret/app`, which alice may not read.
    let admin = issuer.token_for(Some("admin"), &["repository:secret/app:pull,push"]);
    fixtures::push(
        &registry.url(),
        "secret/app",
        &image,
        Some("v1"),
        Some(&format!("Bearer {admin}")),
    )
    .await
    .unwrap();
    let src = MemoryStore::new("src");
    image.insert_into(&src, Some("v1"));
    let client = client_with(Credentials::anonymous().with(
        registry.addr(),
        Credential::Basic {
            username: "alice".into(),
            password: "pw".into(),
        },
    ));
    let dst = repo(&client, registry.addr(), "team/app");

    let report = copy(
        Arc::new(src),
        "v1",
        dst.clone(),
        Some("v1"),
        &mounting(CrossRepoMount::new().with_mount_from(["secret/app"])),
    )
    .await
    .unwrap();

    assert_eq!(count(&report, Action::Mounted), 0, "{report:#?}");
    assert_eq!(count(&report, Action::Copied), image.layers.len() + 2);
    for node in report
        .nodes
        .iter()
        .filter(|n| n.descriptor.media_type().to_string() != ferry_core::model::OCI_MANIFEST)
    {
        assert_eq!(node.attempts.len(), 1, "{node:#?}");
        assert_eq!(
            node.attempts[0].outcome,
            ferry_core::AttemptOutcome::Declined
        );
    }
    assert_eq!(
        dst.resolve("v1").await.unwrap().digest(),
        image.descriptor().digest()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_tokens_are_exchanged_with_the_refresh_grant() {
    let issuer = token_setup();
    let registry = start_registry(Registry::builder().token_auth(&issuer)).await;
    let answer = ferry_test_support::http(
        "GET",
        &format!(
            "{}?service={}&offline_token=true&scope=repository:team/app:pull",
            issuer.realm(),
            issuer.service()
        ),
        &[("authorization", &basic("alice", "pw"))],
        bytes::Bytes::new(),
    )
    .await
    .unwrap();
    let refresh =
        serde_json::from_slice::<serde_json::Value>(&answer.body).unwrap()["refresh_token"]
            .as_str()
            .expect("a refresh token")
            .to_string();
    let client = client_with(
        Credentials::anonymous().with(registry.addr(), Credential::IdentityToken(refresh)),
    );
    issuer.reset_counts();
    let src = MemoryStore::new("src");
    let image = ImageBuilder::new().layers(&[10]).seed(25).build();
    image.insert_into(&src, Some("v1"));

    copy(
        Arc::new(src),
        "v1",
        repo(&client, registry.addr(), "team/app"),
        Some("v1"),
        &CopyOptions::default(),
    )
    .await
    .unwrap();

    let tokens = issuer.requests();
    assert!(!tokens.is_empty());
    assert!(
        tokens
            .iter()
            .all(|t| t.method == "POST" && t.grant_type.as_deref() == Some("refresh_token")),
        "{tokens:#?}"
    );
}

/// A clock the test moves: the token cache's view of time, nothing else's.
#[derive(Debug)]
struct ManualClock {
    start: std::time::Instant,
    offset: std::sync::Mutex<std::time::Duration>,
}

impl ManualClock {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            start: std::time::Instant::now(),
            offset: std::sync::Mutex::new(std::time::Duration::ZERO),
        })
    }

    fn advance(&self, by: std::time::Duration) {
        *self.offset.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> std::time::Instant {
        self.start + *self.offset.lock().unwrap()
    }
}

/// Tokens are reused while they live and fetched again once `expires_in` has passed (less a
/// safety margin): the token cache reads a clock the test moves, past the token's lifetime
/// (the registry still takes the old token; only ferry's cache judges it expired).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_cache_honours_expiry() {
    // (clock moved by, token requests expected): a 300 s token is dropped 30 s early (a
    // quarter of its life, at most 30 s), so it is kept at 260 s and replaced at 280 s.
    for (moved, expected) in [(260u64, 1usize), (280, 2)] {
        let issuer = TokenIssuer::builder()
            .user("alice", "pw")
            .allow("alice", "team/*", &["pull", "push"])
            .expires_in(300)
            .start()
            .unwrap();
        let registry = start_registry(Registry::builder().token_auth(&issuer)).await;
        let clock = ManualClock::new();
        let client = RegistryClient::new(ClientOptions {
            plain_http: true,
            credentials: Credentials::anonymous().with(
                registry.addr(),
                Credential::Basic {
                    username: "alice".into(),
                    password: "pw".into(),
                },
            ),
            clock: clock.clone(),
            ..Default::default()
        })
        .unwrap();
        let store = repo(&client, registry.addr(), "team/app");
        // Each resolve is a request (existence checks of a new repository are not).
        assert!(store.resolve("absent").await.unwrap_err().is_not_found());
        clock.advance(std::time::Duration::from_secs(moved));
        assert!(store.resolve("absent").await.unwrap_err().is_not_found());
        let granted = issuer.requests().iter().filter(|t| t.status == 200).count();
        assert_eq!(
            granted,
            expected,
            "clock moved {moved} s: {:#?}",
            issuer.requests()
        );
        // An expired token is replaced before it is sent: the registry refuses only the first,
        // credential-less request.
        let refused = registry
            .requests()
            .iter()
            .filter(|r| r.status == 401)
            .count();
        assert_eq!(
            refused,
            1,
            "clock moved {moved} s: {:#?}",
            registry.requests()
        );
    }
}

/// Deleting a tag under token auth asks for the `delete` action: a user whose token the
/// issuer grants only pull and push is refused with an authorization error and the tag stays;
/// a user granted `delete` removes it, with one token covering the lookups and the delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_tag_under_token_auth_asks_for_the_delete_action() {
    use ferry_core::DeleteTag as _;
    let issuer = token_setup();
    let registry = start_registry(Registry::builder().token_auth(&issuer)).await;
    let admin = issuer.token_for(Some("admin"), &["repository:team/app:pull,push"]);
    for (seed, tag) in [(31, "keep"), (32, "gone")] {
        let image = ImageBuilder::new().layers(&[100]).seed(seed).build();
        fixtures::push(
            &registry.url(),
            "team/app",
            &image,
            Some(tag),
            Some(&format!("Bearer {admin}")),
        )
        .await
        .unwrap();
    }
    let as_user = |user: &str, password: &str| {
        client_with(Credentials::anonymous().with(
            registry.addr(),
            Credential::Basic {
                username: user.into(),
                password: password.into(),
            },
        ))
    };

    // alice may pull and push in team/*, not delete.
    let alice = repo(&as_user("alice", "pw"), registry.addr(), "team/app");
    let refused = alice.delete_tag("gone").await.unwrap_err();
    // With credentials, the refusal names the right they lack rather than asking to log in.
    match &refused {
        Error::PermissionDenied { message, .. } => {
            assert!(
                message.contains("may not delete in `team/app`")
                    && message.contains("repository:team/app:delete")
                    && !message.contains("log in"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(alice.resolve("gone").await.is_ok(), "the tag was deleted");
    assert!(
        issuer
            .requests()
            .iter()
            .any(|t| t.asks_for("alice", "delete")),
        "no token was asked for the delete action: {:#?}",
        issuer.requests()
    );

    // admin may delete.
    issuer.reset_counts();
    let admin = repo(&as_user("admin", "root"), registry.addr(), "team/app");
    admin.delete_tag("gone").await.unwrap();
    assert!(admin.resolve("gone").await.unwrap_err().is_not_found());
    assert!(admin.resolve("keep").await.is_ok());
    let tokens = issuer.requests();
    assert!(
        tokens.iter().any(|t| t.status == 200
            && t.user.as_deref() == Some("admin")
            && t.scopes
                .contains(&"repository:team/app:delete,pull".to_string())),
        "{tokens:#?}"
    );
}
