//! The fake registry: protocol basics and each knob.

use ferry_core::model::OCI_MANIFEST;
use ferry_core::sha256;
use ferry_test_support::fixtures::push;
use ferry_test_support::{
    ArtifactBuilder, BlobHost, Content, FakeRegistry, ImageBuilder, MountBehaviour, http,
};

#[tokio::test]
async fn chunked_upload_manifest_referrers_and_tags() {
    let fake = FakeRegistry::start().unwrap();
    let base = fake.url();
    let data = b"0123456789".to_vec();
    let digest = sha256(&data).to_string();

    let post = http(
        "POST",
        &format!("{base}/v2/a/b/blobs/uploads/"),
        &[],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(post.status, 202);
    let location = post.header("location").unwrap().to_string();
    let patch = http(
        "PATCH",
        &location,
        &[("content-range", "0-3")],
        data[..4].to_vec(),
    )
    .await
    .unwrap();
    assert_eq!((patch.status, patch.header("range")), (202, Some("0-3")));
    let put = http(
        "PUT",
        &format!("{location}?digest={digest}"),
        &[],
        data[4..].to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(put.status, 201);
    assert_eq!(put.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(fake.blob("a/b", &digest).unwrap(), data);
    assert_eq!(fake.open_uploads(), 0);

    let image = ImageBuilder::new().layer(100).build();
    push(&base, "a/b", &image, Some("v1"), None).await.unwrap();
    let signature = ArtifactBuilder::signature(image.descriptor(), b"sig").build();
    for blob in signature.all() {
        let media_type = blob.media_type();
        if blob.is_manifest() {
            let answer = http(
                "PUT",
                &format!("{base}/v2/a/b/manifests/{}", blob.digest()),
                &[("content-type", &media_type)],
                blob.bytes.clone(),
            )
            .await
            .unwrap();
            assert_eq!(answer.status, 201);
            assert_eq!(
                answer.header("oci-subject"),
                Some(image.manifest.digest().to_string().as_str())
            );
        } else {
            fake.put_blob("a/b", blob.bytes.clone());
        }
    }

    let got = http("GET", &format!("{base}/v2/a/b/manifests/v1"), &[], vec![])
        .await
        .unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), Some(OCI_MANIFEST));
    assert_eq!(got.body, image.manifest.bytes);

    let referrers = http(
        "GET",
        &format!("{base}/v2/a/b/referrers/{}", image.manifest.digest()),
        &[],
        vec![],
    )
    .await
    .unwrap();
    let index = referrers.json().unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(
        index["manifests"][0]["digest"],
        signature.manifest.digest().to_string()
    );
    assert_eq!(
        index["manifests"][0]["artifactType"],
        signature.artifact_type
    );

    let tags = http("GET", &format!("{base}/v2/a/b/tags/list"), &[], vec![])
        .await
        .unwrap();
    assert_eq!(tags.json().unwrap()["tags"], serde_json::json!(["v1"]));
    assert_eq!(fake.count("PUT", "/manifests/"), 3);

    fake.referrers_api(false);
    let off = http(
        "GET",
        &format!("{base}/v2/a/b/referrers/{}", image.manifest.digest()),
        &[],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(off.status, 404);
}

async fn mount(base: &str, digest: &str, from: &str) -> ferry_test_support::HttpResponse {
    http(
        "POST",
        &format!("{base}/v2/dst/blobs/uploads/?mount={digest}&from={from}"),
        &[],
        vec![],
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn mount_behaviours() {
    let fake = FakeRegistry::start().unwrap();
    let base = fake.url();
    let blob = fake.put_blob("src", &b"layer"[..]);
    let digest = blob.digest().to_string();

    let missing = mount(&base, &digest, "elsewhere").await;
    assert_eq!(missing.status, 202, "unknown source: a session opens");
    assert_eq!(fake.open_uploads(), 1);
    let mounted = mount(&base, &digest, "src").await;
    assert_eq!(mounted.status, 201);
    assert_eq!(
        mounted.header("docker-content-digest"),
        Some(digest.as_str())
    );
    assert!(fake.has_blob("dst", &digest));

    fake.set_mount_behaviour(MountBehaviour::Always202);
    assert_eq!(mount(&base, &digest, "src").await.status, 202);
    for status in [400, 401, 403, 404] {
        fake.set_mount_behaviour(MountBehaviour::Status(status));
        let answer = mount(&base, &digest, "src").await;
        assert_eq!(answer.status, status);
        assert!(answer.text().contains("errors"));
    }
    let recorded = fake.requests();
    assert_eq!(recorded.len(), 7);
    assert_eq!(recorded[1].query_param("from").as_deref(), Some("src"));
    fake.reset_counts();
    assert_eq!(fake.count("POST", "/blobs/uploads/"), 0);

    let builder_set = FakeRegistry::builder()
        .mount_behaviour(MountBehaviour::Status(403))
        .start()
        .unwrap();
    builder_set.put_blob("src", &b"layer"[..]);
    assert_eq!(mount(&builder_set.url(), &digest, "src").await.status, 403);
}

#[tokio::test]
async fn blob_redirects_reach_the_blob_host_without_credentials() {
    let host = BlobHost::start().unwrap();
    let fake = FakeRegistry::builder()
        .require_basic("u", "p")
        .redirect_blobs_to(&host)
        .start()
        .unwrap();
    let digest = fake
        .put_blob("r", &b"redirected bytes"[..])
        .digest()
        .to_string();
    let auth = "Basic dTpw";

    let denied = http(
        "GET",
        &format!("{}/v2/r/blobs/{digest}", fake.url()),
        &[],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(denied.status, 401);
    assert!(
        denied
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );

    let redirect = http(
        "GET",
        &format!("{}/v2/r/blobs/{digest}", fake.url()),
        &[("authorization", auth)],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(redirect.status, 307);
    let location = redirect.header("location").unwrap();
    assert!(location.starts_with(&host.url()), "{location}");
    let fetched = http("GET", location, &[], vec![]).await.unwrap();
    assert_eq!(&fetched.body[..], b"redirected bytes");
    assert!(!host.saw_authorization());
    assert!(fake.requests()[1].has_authorization());

    let head = http(
        "HEAD",
        &format!("{}/v2/r/blobs/{digest}", fake.url()),
        &[("authorization", auth)],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(head.status, 200, "HEAD is answered by the registry itself");
    assert_eq!(head.header("content-length"), Some("16"));

    fake.redirect_blobs_to(None);
    fake.require_basic(None);
    let direct = http(
        "GET",
        &format!("{}/v2/r/blobs/{digest}", fake.url()),
        &[],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(direct.status, 200);
    assert_eq!(host.requests().len(), 1);
}

#[tokio::test]
async fn broken_patch_resumes_from_the_reported_range() {
    let fake = FakeRegistry::builder()
        .break_patch_after(40)
        .chunk_min_length(16)
        .start()
        .unwrap();
    let base = fake.url();
    let data: Vec<u8> = (0..100u8).collect();
    let digest = sha256(&data).to_string();

    let post = http("POST", &format!("{base}/v2/r/blobs/uploads/"), &[], vec![])
        .await
        .unwrap();
    assert_eq!(post.header("oci-chunk-min-length"), Some("16"));
    let location = post.header("location").unwrap().to_string();

    let broken = http(
        "PATCH",
        &location,
        &[("content-range", "0-99")],
        data.clone(),
    )
    .await;
    assert!(broken.is_err(), "the connection must drop: {broken:?}");

    let status = http("GET", &location, &[], vec![]).await.unwrap();
    assert_eq!(status.status, 204);
    assert_eq!(status.header("range"), Some("0-39"));

    let resumed = http(
        "PATCH",
        &location,
        &[("content-range", "40-99")],
        data[40..].to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(
        (resumed.status, resumed.header("range")),
        (202, Some("0-99"))
    );
    let put = http("PUT", &format!("{location}?digest={digest}"), &[], vec![])
        .await
        .unwrap();
    assert_eq!(put.status, 201);
    assert_eq!(fake.blob("r", &digest).unwrap(), data);

    let wrong_offset = http("POST", &format!("{base}/v2/r/blobs/uploads/"), &[], vec![])
        .await
        .unwrap();
    let location = wrong_offset.header("location").unwrap().to_string();
    let answer = http("PATCH", &location, &[("content-range", "5-9")], vec![0; 5])
        .await
        .unwrap();
    assert_eq!(answer.status, 416);
    let cancelled = http("DELETE", &location, &[], vec![]).await.unwrap();
    assert_eq!(cancelled.status, 204);
    assert_eq!(fake.open_uploads(), 0);
}

#[tokio::test]
async fn monolithic_post_checks_the_digest() {
    let fake = FakeRegistry::start().unwrap();
    let digest = sha256(b"whole").to_string();
    let ok = http(
        "POST",
        &format!("{}/v2/r/blobs/uploads/?digest={digest}", fake.url()),
        &[],
        &b"whole"[..],
    )
    .await
    .unwrap();
    assert_eq!(ok.status, 201);
    let bad = http(
        "POST",
        &format!("{}/v2/r/blobs/uploads/?digest={digest}", fake.url()),
        &[],
        &b"other"[..],
    )
    .await
    .unwrap();
    assert_eq!(bad.status, 400);
    let range = http(
        "GET",
        &format!("{}/v2/r/blobs/{digest}", fake.url()),
        &[("range", "bytes=1-3")],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!((range.status, &range.body[..]), (206, &b"hol"[..]));
}
