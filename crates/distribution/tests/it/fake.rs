//! Behaviour a real registry cannot be made to show, against ferry-test-support's in-process
//! `FakeRegistry`: forced mount answers, blob redirects to another host, broken chunked
//! uploads, chunk minimums, the referrers API; request counts with every header recorded.

use std::sync::Arc;

use ferry_core::{
    Action, CopyOptions, MemoryStore, MountChain, ReadStore, WriteStore, bytes_stream, copy,
};
use ferry_distribution::{ClientOptions, Credential, Credentials, CrossRepoMount, RegistryClient};
use ferry_test_support::{
    ArtifactBuilder, BlobHost, Content, FakeRegistry, ImageBuilder, MountBehaviour,
};
use futures::StreamExt;

use crate::support::{client, client_with, count, repo};

fn mounting() -> CopyOptions {
    CopyOptions::default().with_chain(MountChain::new().with(CrossRepoMount::new()))
}

fn fake(builder: ferry_test_support::FakeRegistryBuilder) -> FakeRegistry {
    builder.start().expect("fake registry starts")
}

async fn read_all(store: &dyn ReadStore, desc: &ferry_core::Descriptor) -> Vec<u8> {
    let mut s = store.fetch(desc).await.unwrap();
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_of_an_n_blob_image_takes_at_most_n_plus_4_requests() {
    let registry = fake(FakeRegistry::builder());
    let image = ImageBuilder::new()
        .layers(&[10, 20, 30, 40, 50])
        .seed(31)
        .build();
    registry.put_content("team/app", &image, Some("v1"));
    let client = client();

    let report = copy(
        repo(&client, &registry.addr(), "team/app"),
        "v1",
        repo(&client, &registry.addr(), "prod/app"),
        Some("v1"),
        &mounting(),
    )
    .await
    .unwrap();

    let n = image.layers.len() + 1;
    assert_eq!(count(&report, Action::Mounted), n);
    let requests = registry.requests();
    let shown: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {}?{}", r.method, r.path, r.query))
        .collect();
    assert!(
        requests.len() <= n + 4,
        "{} requests for {n} blobs: {shown:#?}",
        requests.len()
    );
    assert_eq!(registry.count("HEAD", "/blobs/"), 0, "{shown:#?}");
    assert_eq!(registry.tags("prod/app"), vec!["v1".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_202_to_every_mount_streams_into_the_prepared_session() {
    let registry = fake(FakeRegistry::builder().mount_behaviour(MountBehaviour::Always202));
    let image = ImageBuilder::new()
        .layers(&[1000, 2000, 3000])
        .seed(32)
        .build();
    registry.put_content("team/app", &image, Some("v1"));
    let client = client();

    let report = copy(
        repo(&client, &registry.addr(), "team/app"),
        "v1",
        repo(&client, &registry.addr(), "prod/app"),
        Some("v1"),
        &mounting(),
    )
    .await
    .unwrap();

    let n = image.layers.len() + 1;
    assert_eq!(count(&report, Action::Copied), n + 1, "{report:#?}");
    // POST(mount) → GET(source) → PUT into the same session: no second POST.
    assert_eq!(registry.count("POST", "/v2/prod/app/blobs/uploads/"), n);
    assert_eq!(registry.count("GET", "/v2/team/app/blobs/"), n);
    assert_eq!(registry.count("PUT", "/v2/prod/app/blobs/uploads/"), n);
    assert_eq!(registry.count("DELETE", "/blobs/uploads/"), 0);
    assert_eq!(registry.open_uploads(), 0);
    for blob in image.all().into_iter().filter(|b| !b.is_manifest()) {
        assert_eq!(
            registry.blob("prod/app", blob.digest().as_ref()).as_deref(),
            Some(&blob.bytes[..])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_mounts_still_copy() {
    for status in [400u16, 401, 403, 404] {
        let registry =
            fake(FakeRegistry::builder().mount_behaviour(MountBehaviour::Status(status)));
        let image = ImageBuilder::new()
            .layers(&[500])
            .seed(33 + status as u64)
            .build();
        registry.put_content("team/app", &image, Some("v1"));
        let client = client();

        let report = copy(
            repo(&client, &registry.addr(), "team/app"),
            "v1",
            repo(&client, &registry.addr(), "prod/app"),
            Some("v1"),
            &mounting(),
        )
        .await
        .unwrap_or_else(|e| panic!("a mount answered {status} failed the copy: {e}"));

        assert_eq!(count(&report, Action::Mounted), 0);
        assert_eq!(count(&report, Action::Copied), 3, "{status}: {report:#?}");
        let layer = &image.layers[0];
        assert!(
            registry.has_blob("prod/app", layer.digest().as_ref()),
            "{status}"
        );
        let attempt = &report
            .nodes
            .iter()
            .find(|n| n.descriptor.digest() == layer.digest())
            .unwrap()
            .attempts[0];
        assert_eq!(attempt.outcome, ferry_core::AttemptOutcome::Declined);
        assert!(
            attempt.detail.contains(&status.to_string()),
            "{}",
            attempt.detail
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_not_sent_to_a_redirect_target() {
    let host = BlobHost::start().unwrap();
    let registry = fake(
        FakeRegistry::builder()
            .require_basic("alice", "pw")
            .redirect_blobs_to(&host),
    );
    let image = ImageBuilder::new().layers(&[4096]).seed(34).build();
    registry.put_content("team/app", &image, Some("v1"));
    let client = client_with(Credentials::anonymous().with(
        registry.addr(),
        Credential::Basic {
            username: "alice".into(),
            password: "pw".into(),
        },
    ));
    let src = repo(&client, &registry.addr(), "team/app");
    let dst = Arc::new(MemoryStore::new("dst"));

    copy(
        src.clone(),
        "v1",
        dst.clone(),
        Some("v1"),
        &CopyOptions::default(),
    )
    .await
    .unwrap();

    let layer = &image.layers[0];
    assert_eq!(dst.get(layer.digest()).as_deref(), Some(&layer.bytes[..]));
    assert!(
        !host.requests().is_empty(),
        "the blob was not fetched from the redirect target"
    );
    assert!(
        !host.saw_authorization(),
        "credentials reached the redirect target"
    );
    assert!(
        registry
            .requests()
            .iter()
            .filter(|r| r.path.contains("/blobs/"))
            .all(|r| r.has_authorization()),
        "the registry itself did not get the credentials"
    );
}

fn chunked_client(chunk_size: u64) -> RegistryClient {
    RegistryClient::new(ClientOptions {
        plain_http: true,
        credentials: Credentials::anonymous(),
        chunk_threshold: 1024,
        chunk_size,
        ..Default::default()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_chunked_upload_resumes_from_the_registry_offset() {
    let registry = fake(FakeRegistry::builder().break_patch_after(100_000));
    let (desc, data) = ferry_conformance::random_blob(300_000);
    let dst = repo(&chunked_client(128 * 1024), &registry.addr(), "team/app");

    dst.push(&desc, bytes_stream(data.clone())).await.unwrap();

    assert_eq!(
        registry.blob("team/app", desc.digest().as_ref()).as_deref(),
        Some(&data[..])
    );
    // The session was asked for its offset after the break, and the upload went on from there.
    assert!(
        registry.count("GET", "/blobs/uploads/") >= 1,
        "{:#?}",
        registry.requests()
    );
    let resumed = registry
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .any(|r| r.header("content-range") == Some("100000-131071"));
    assert!(
        resumed,
        "no PATCH resumed at byte 100000: {:#?}",
        registry.requests()
    );
    assert_eq!(registry.count("POST", "/blobs/uploads/"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_honour_the_registry_minimum() {
    let registry = fake(FakeRegistry::builder().chunk_min_length(100_000));
    let (desc, data) = ferry_conformance::random_blob(250_000);
    let dst = repo(&chunked_client(10_000), &registry.addr(), "team/app");

    dst.push(&desc, bytes_stream(data.clone())).await.unwrap();

    let patches: Vec<u64> = registry
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.header("content-length").unwrap().parse().unwrap())
        .collect();
    assert_eq!(patches, vec![100_000, 100_000, 50_000]);
    assert_eq!(read_all(dst.as_ref(), &desc).await, data.to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_use_the_api_where_the_registry_has_it() {
    let registry = fake(FakeRegistry::builder().referrers_api(true));
    let image = ImageBuilder::new().layers(&[10]).seed(35).build();
    let sbom = ArtifactBuilder::signature(image.descriptor(), b"payload").build();
    let dst = repo(&client(), &registry.addr(), "team/app");
    for blob in image.all().into_iter().chain(sbom.all()) {
        dst.push(&blob.descriptor, bytes_stream(blob.bytes.clone()))
            .await
            .unwrap();
    }
    // The registry answered `OCI-Subject`: no fallback tag was written.
    assert!(
        registry.tags("team/app").is_empty(),
        "{:?}",
        registry.tags("team/app")
    );
    let listed = dst.referrers(image.descriptor()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].digest(), sbom.descriptor().digest());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_push_is_never_committed_in_a_prepared_session() {
    let registry = fake(FakeRegistry::builder().mount_behaviour(MountBehaviour::Always202));
    let (desc, data) = ferry_conformance::random_blob(5000);
    registry.put_blob("team/src", data.clone());
    let client = client();
    let src = repo(&client, &registry.addr(), "team/src");
    let dst = repo(&client, &registry.addr(), "team/dst");
    let request = ferry_core::MountRequest::new(&desc, src.as_ref(), dst.as_ref());
    let outcome = ferry_core::MountStrategy::mount(&CrossRepoMount::new(), &request)
        .await
        .unwrap();
    let ferry_core::MountOutcome::Declined {
        upload: Some(upload),
        ..
    } = outcome
    else {
        panic!("expected a prepared upload, got {outcome:?}");
    };
    let wrong = ferry_conformance::random_bytes(5000);
    let err = upload.upload(&desc, bytes_stream(wrong)).await.unwrap_err();
    assert!(
        matches!(err, ferry_core::Error::DigestMismatch { .. }),
        "{err:?}"
    );
    assert!(!registry.has_blob("team/dst", desc.digest().as_ref()));
    assert_eq!(registry.open_uploads(), 0, "the session was not cancelled");
}

/// A server that answers every request with `202 Accepted` and an upload `Location` on
/// another host. A fake on purpose: neither the real registry nor `FakeRegistry` can be made
/// to hand out a foreign upload location.
async fn foreign_location_server(
    location: &'static str,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let answer = format!(
        "HTTP/1.1 202 Accepted\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    scripted_server(vec![answer; 8]).await
}

/// A raw HTTP/1.1 server answering its requests, one per connection, with `answers` in order
/// (the last one repeated). A fake on purpose: no real registry can be told to fail on cue.
async fn scripted_server(answers: Vec<String>) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            let answers = answers.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let i = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let answer = &answers[i.min(answers.len() - 1)];
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_location_on_another_host_is_refused() {
    let (addr, seen) =
        foreign_location_server("http://127.0.0.2:9/v2/team/app/blobs/uploads/1").await;
    let dst = repo(&client(), &addr, "team/app");
    let (desc, data) = ferry_conformance::random_blob(100);

    let err = dst.push(&desc, bytes_stream(data)).await.unwrap_err();

    let text = err.to_string();
    assert!(text.contains("127.0.0.2:9"), "{text}");
    assert!(text.contains("another host"), "{text}");
    // Only the POST reached the server; no byte went anywhere.
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_and_failing_answers_are_retried() {
    let body = r#"{"name":"team/app","tags":["v1"]}"#;
    let (addr, seen) = scripted_server(vec![
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    ])
    .await;
    let tags = repo(&client(), &addr, "team/app").tags().await.unwrap();
    assert_eq!(tags, vec!["v1".to_string()]);
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_is_not_retried_and_says_why() {
    let body =
        r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#;
    let (addr, seen) = scripted_server(vec![format!(
        "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )])
    .await;
    let err = repo(&client(), &addr, "team/app").tags().await.unwrap_err();
    assert!(
        matches!(err, ferry_core::Error::PermissionDenied { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("DENIED: requested access"),
        "{err}"
    );
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_probe_of_the_destination_falls_back_to_a_head() {
    use ferry_core::{Action, CopyOptions, MountChain, WriteStore, bytes_stream, copy};
    use ferry_distribution::CrossRepoMount;
    use ferry_test_support::{ImageBuilder, MountBehaviour};
    let registry = FakeRegistry::builder()
        .mount_behaviour(MountBehaviour::Status(403))
        .start()
        .unwrap();
    let image = ImageBuilder::new().layers(&[1000]).seed(3).build();
    registry.put_content("team/app", &image, Some("v1"));
    // The destination holds the layer already, not the config.
    let client = crate::support::client();
    let dst = crate::support::repo(&client, &registry.addr(), "mirror/app");
    dst.push(
        &image.layers[0].descriptor,
        bytes_stream(image.layers[0].bytes.clone()),
    )
    .await
    .unwrap();
    registry.reset_counts();
    let options = CopyOptions::default()
        .with_chain(MountChain::new().with(CrossRepoMount::new().with_destination_probe(true)));
    // A repository of another registry is the source, so no cross-repository candidate.
    let other = FakeRegistry::start().unwrap();
    other.put_content("team/app", &image, Some("v1"));
    let src_other = crate::support::repo(&client, &other.addr(), "team/app");
    let report = copy(src_other, "v1", dst.clone(), Some("v1"), &options)
        .await
        .unwrap();
    let layer = report.node(image.layers[0].digest()).unwrap();
    assert_eq!(layer.action, Action::Exists, "{report:#?}");
    let config = report.node(image.config.digest()).unwrap();
    assert_eq!(config.action, Action::Copied);
    // Two refused probes, a HEAD after each, one upload.
    assert_eq!(registry.count("HEAD", "/blobs/"), 2);
    assert_eq!(registry.count("PUT", "/blobs/uploads/"), 1);
}
