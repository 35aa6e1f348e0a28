//! The real registry: startup, access log, basic auth, shared storage.

use base64::Engine as _;
use ferry_core::sha256;
use ferry_test_support::{Registry, http};

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Pushes `data` as a blob to `repo` with POST + PUT `?digest=`; returns the digest.
async fn push_blob(base: &str, repo: &str, data: &[u8], auth: &[(&str, &str)]) -> String {
    let digest = sha256(data).to_string();
    let post = http(
        "POST",
        &format!("{base}/v2/{repo}/blobs/uploads/"),
        auth,
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(post.status, 202, "{}", post.text());
    let location = post.header("location").unwrap().to_string();
    let location = if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let put = http(
        "PUT",
        &format!("{location}{sep}digest={digest}"),
        auth,
        data.to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(put.status, 201, "{}", put.text());
    digest
}

#[tokio::test]
async fn pushed_blob_shows_in_access_log_and_storage() {
    let registry = Registry::start().unwrap();
    assert!(registry.addr().starts_with("127.0.0.1:"));
    let base = registry.url();
    let digest = push_blob(&base, "team/app", b"hello blob", &[]).await;

    let head = http(
        "HEAD",
        &format!("{base}/v2/team/app/blobs/{digest}"),
        &[],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(head.status, 200);

    let requests = registry.requests();
    let methods: Vec<(&str, u16)> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.status))
        .collect();
    assert_eq!(
        methods,
        [("POST", 202), ("PUT", 201), ("HEAD", 200)],
        "{requests:?}"
    );
    assert_eq!(requests[0].path, "/v2/team/app/blobs/uploads/");
    assert_eq!(
        requests[1].query_param("digest").as_deref(),
        Some(digest.as_str())
    );
    assert_eq!(registry.count("HEAD", &digest), 1);
    assert_eq!(
        registry.count("GET", "/v2/"),
        0,
        "own probes are not counted"
    );

    let hex = digest.strip_prefix("sha256:").unwrap();
    let data = registry
        .root()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    assert_eq!(std::fs::read(data).unwrap(), b"hello blob");
}

#[tokio::test]
async fn marks_and_clear_log_split_the_log() {
    let registry = Registry::start().unwrap();
    let base = registry.url();
    http("GET", &format!("{base}/v2/"), &[], vec![])
        .await
        .unwrap();
    let mark = registry.mark();
    http("GET", &format!("{base}/v2/a/tags/list"), &[], vec![])
        .await
        .unwrap();
    let since = registry.requests_since(mark);
    assert_eq!(since.len(), 1, "{since:?}");
    assert_eq!(since[0].path, "/v2/a/tags/list");
    assert_eq!(since[0].status, 404);

    registry.clear_log();
    assert!(registry.requests().is_empty());
    http("GET", &format!("{base}/v2/"), &[], vec![])
        .await
        .unwrap();
    assert_eq!(registry.count("GET", "/v2/"), 1);
}

#[tokio::test]
async fn basic_auth_accepts_the_right_password_only() {
    let registry = Registry::builder().user("alice", "s3cret").start().unwrap();
    let url = format!("{}/v2/", registry.url());

    let anonymous = http("GET", &url, &[], vec![]).await.unwrap();
    assert_eq!(anonymous.status, 401);
    assert!(
        anonymous
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic ")
    );

    let wrong = basic("alice", "wrong");
    let denied = http("GET", &url, &[("authorization", &wrong)], vec![])
        .await
        .unwrap();
    assert_eq!(denied.status, 401);

    let right = basic("alice", "s3cret");
    let ok = http("GET", &url, &[("authorization", &right)], vec![])
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
    push_blob(
        &registry.url(),
        "private/app",
        b"secret layer",
        &[("authorization", &right)],
    )
    .await;

    let statuses: Vec<u16> = registry.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 401, 200, 202, 201]);
}

#[tokio::test]
async fn two_registries_share_one_storage_directory() {
    let shared = ferry_test_support::tempdir();
    let first = Registry::builder().root(shared.path()).start().unwrap();
    let second = Registry::builder().root(shared.path()).start().unwrap();
    assert_ne!(first.addr(), second.addr());
    assert_eq!(first.root(), second.root());

    let digest = push_blob(&first.url(), "shared/app", b"shared bytes", &[]).await;
    let got = http(
        "GET",
        &format!("{}/v2/shared/app/blobs/{digest}", second.url()),
        &[],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(&got.body[..], b"shared bytes");
}

#[test]
fn registry_process_stops_on_drop() {
    let registry = Registry::start().unwrap();
    let proc_dir = std::path::PathBuf::from(format!("/proc/{}", registry.pid()));
    assert!(proc_dir.exists());
    drop(registry);
    assert!(
        !proc_dir.exists(),
        "the registry process was not reaped on drop"
    );
}

#[test]
fn access_log_lines_parse_in_both_formats() {
    use ferry_test_support::LoggedRequest;
    let combined = r#"127.0.0.1 - - [27/Nov/2026:20:58:41 +0000] "POST /v2/foo/blobs/uploads/?mount=sha256:ab&from=bar HTTP/1.1" 201 0 "" "curl/7.88.1""#;
    let r = LoggedRequest::parse(combined).unwrap();
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v2/foo/blobs/uploads/");
    assert_eq!(r.query_param("from").as_deref(), Some("bar"));
    assert_eq!(r.status, 201);
    let json = r#"{"http.request.method":"HEAD","http.request.uri":"/v2/x/blobs/sha256:cd","http.response.status":404,"msg":"response completed"}"#;
    let r = LoggedRequest::parse(json).unwrap();
    assert_eq!(
        (r.method.as_str(), r.path.as_str(), r.status),
        ("HEAD", "/v2/x/blobs/sha256:cd", 404)
    );
    assert!(LoggedRequest::parse(r#"{"msg":"listening on 127.0.0.1:5000"}"#).is_none());
}

#[tokio::test]
async fn two_registries_share_one_seaweedfs_bucket() {
    use ferry_test_support::fixtures::push;
    use ferry_test_support::{Content, ImageBuilder, SeaweedFs};

    let s3 = SeaweedFs::start().unwrap();
    let storage = s3.storage("registry", "/shared").unwrap();
    let first = Registry::builder()
        .s3(storage.clone())
        .http_secret("shared")
        .start()
        .unwrap();
    let second = Registry::builder()
        .s3(storage)
        .http_secret("shared")
        .start()
        .unwrap();

    let image = ImageBuilder::new().layers(&[4096]).seed(11).build();
    push(&first.url(), "s3/app", &image, Some("v1"), None)
        .await
        .unwrap();

    let layer = &image.layers[0];
    let hex = layer.digest().digest();
    let key = format!(
        "shared/docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    );
    assert_eq!(
        s3.object("registry", &key).unwrap().unwrap(),
        layer.bytes.to_vec()
    );

    let got = http(
        "GET",
        &format!("{}/v2/s3/app/blobs/{}", second.url(), layer.digest()),
        &[],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.body, layer.bytes);
    let manifest = http(
        "GET",
        &format!("{}/v2/s3/app/manifests/v1", second.url()),
        &[("accept", image.manifest.media_type().as_str())],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(manifest.body, image.manifest.bytes);
    assert_eq!(image.descriptor().digest(), image.manifest.digest());
}
