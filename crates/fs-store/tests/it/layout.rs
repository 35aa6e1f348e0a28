//! OciLayout: opening and creating, the files it writes, tags in index.json, resolving,
//! referrers, abandoned pushes, and input that must never reach the filesystem.

use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry_core::model::OCI_MANIFEST;
use ferry_core::{
    ByteStream, Descriptor, Error, ReadStore, StoreInfo, WriteStore, bytes_stream, sha256,
};
use ferry_fs_store::OciLayout;
use serde_json::{Value, json};

use crate::support::{Image, layout, tempdir, tree};

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn opening_a_directory_without_a_layout_says_how_to_create_one() {
    let dir = tempdir();
    let missing = dir.path().join("nothing-here");
    let err = OciLayout::open(&missing).unwrap_err();
    let message = err.to_string();
    assert!(err.is_not_found(), "{err:?}");
    assert!(message.contains(&*missing.to_string_lossy()), "{message}");
    assert!(message.contains("create"), "{message}");
    std::fs::create_dir(&missing).unwrap();
    assert!(OciLayout::open(&missing).unwrap_err().is_not_found());
}

#[test]
fn create_writes_a_spec_layout_and_refuses_to_clobber() {
    let dir = tempdir();
    let path = dir.path().join("new");
    let store = OciLayout::create(&path).unwrap();
    assert_eq!(
        read_json(&path.join("oci-layout")),
        json!({"imageLayoutVersion": "1.0.0"})
    );
    let index = read_json(&path.join("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["manifests"], json!([]));
    assert!(path.join("blobs").is_dir());

    let err = OciLayout::create(&path).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    let other = dir.path().join("not-empty");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("file"), b"x").unwrap();
    assert!(matches!(
        OciLayout::create(&other),
        Err(Error::InvalidInput { .. })
    ));
    assert!(OciLayout::open_or_create(&other).is_err());
    assert_eq!(
        OciLayout::open_or_create(&path).unwrap().path(),
        store.path()
    );
    let fresh = OciLayout::open_or_create(dir.path().join("fresh")).unwrap();
    assert!(fresh.path().join("oci-layout").is_file());
}

#[test]
fn identity_and_display() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempdir();
    let path = dir.path().join("a/../shown");
    std::fs::create_dir(dir.path().join("a")).unwrap();
    let store = OciLayout::create(&path).unwrap();
    let canonical = std::fs::canonicalize(&path).unwrap();
    let dev = std::fs::metadata(&canonical).unwrap().dev();
    assert_eq!(
        store.info(),
        &StoreInfo::new(
            "oci-layout",
            format!("dev:{dev}"),
            canonical.to_string_lossy()
        )
    );
    assert_eq!(store.to_string(), format!("oci:{}", canonical.display()));
}

#[tokio::test]
async fn pushing_does_not_index_tagging_does_and_retagging_moves_the_tag() {
    let dir = tempdir();
    let store = layout(dir.path(), "l");
    let one = Image::build("one");
    let two = Image::build("two");
    for (d, b) in one.contents.iter().chain(&two.contents) {
        store.push(d, bytes_stream(b.clone())).await.unwrap();
    }
    let index_path = store.path().join("index.json");
    assert_eq!(read_json(&index_path)["manifests"], json!([]));
    // A pushed manifest resolves by digest, with the media type read from its JSON.
    let by_digest = store.resolve(one.manifest.digest().as_ref()).await.unwrap();
    assert_eq!(by_digest.media_type().to_string(), OCI_MANIFEST);
    assert_eq!(by_digest.size(), one.manifest.size());
    // A layer is not a manifest.
    let err = store
        .resolve(one.layers[0].digest().as_ref())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");

    store.tag(&one.manifest, "v1").await.unwrap();
    store.tag(&one.manifest, "latest").await.unwrap();
    store.tag(&one.manifest, "latest").await.unwrap();
    let entries = read_json(&index_path)["manifests"].clone();
    assert_eq!(entries.as_array().unwrap().len(), 2, "{entries}");
    assert_eq!(
        entries[0]["annotations"]["org.opencontainers.image.ref.name"],
        "v1"
    );
    assert_eq!(entries[0]["digest"], one.manifest.digest().to_string());

    store.tag(&two.manifest, "latest").await.unwrap();
    assert_eq!(
        store.resolve("latest").await.unwrap().digest(),
        two.manifest.digest()
    );
    assert_eq!(
        store.resolve("v1").await.unwrap().digest(),
        one.manifest.digest()
    );
    let tags: Vec<String> = store
        .tags()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert_eq!(tags, ["v1", "latest"]);
    // The resolved descriptor does not carry the tag annotation along.
    assert!(store.resolve("v1").await.unwrap().annotations().is_none());

    let missing = store.resolve("nope").await.unwrap_err();
    assert!(missing.to_string().contains("`v1`"), "{missing}");
    let untagged = Image::build("untagged");
    let err = store.tag(&untagged.manifest, "x").await.unwrap_err();
    assert!(err.is_not_found(), "tagging a missing manifest: {err:?}");
}

#[tokio::test]
async fn entries_and_fields_other_tools_wrote_survive_a_retag() {
    let dir = tempdir();
    let store = layout(dir.path(), "l");
    let one = Image::build("foreign");
    let two = Image::build("foreign-2");
    one.push(store.as_ref(), "mine").await;
    for (d, b) in &two.contents {
        store.push(d, bytes_stream(b.clone())).await.unwrap();
    }
    let index_path = store.path().join("index.json");
    let mut index = read_json(&index_path);
    index["annotations"] = json!({"com.example.owner": "umoci"});
    index["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": OCI_MANIFEST,
        "digest": two.manifest.digest().to_string(),
        "size": two.manifest.size(),
        "platform": {"architecture": "arm64", "os": "linux"},
    }));
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();

    store.tag(&one.manifest, "other").await.unwrap();
    let index = read_json(&index_path);
    assert_eq!(index["annotations"]["com.example.owner"], "umoci");
    let entries = index["manifests"].as_array().unwrap();
    let foreign = entries
        .iter()
        .find(|e| e["digest"] == two.manifest.digest().to_string())
        .expect("the untagged entry is kept");
    assert_eq!(foreign["platform"]["architecture"], "arm64");

    // Tagging the untagged manifest annotates its existing entry instead of adding one.
    store.tag(&two.manifest, "arm").await.unwrap();
    let entries = read_json(&index_path)["manifests"].clone();
    let of_two: Vec<&Value> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["digest"] == two.manifest.digest().to_string())
        .collect();
    assert_eq!(of_two.len(), 1, "{entries}");
    assert_eq!(of_two[0]["platform"]["architecture"], "arm64");
    assert_eq!(
        of_two[0]["annotations"]["org.opencontainers.image.ref.name"],
        "arm"
    );
}

#[tokio::test]
async fn referrers_are_found_by_subject() {
    let dir = tempdir();
    let store = layout(dir.path(), "l");
    let image = Image::build("subject");
    image.push(store.as_ref(), "v1").await;
    let empty = Bytes::from_static(b"{}");
    let empty_desc = Descriptor::new(
        "application/vnd.oci.empty.v1+json".into(),
        2,
        sha256(&empty),
    );
    store.push(&empty_desc, bytes_stream(empty)).await.unwrap();
    let referrer = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom",
        "config": empty_desc,
        "layers": [empty_desc],
        "subject": image.manifest,
    });
    let bytes = Bytes::from(serde_json::to_vec(&referrer).unwrap());
    let desc = Descriptor::new(OCI_MANIFEST.into(), bytes.len() as u64, sha256(&bytes));
    store.push(&desc, bytes_stream(bytes)).await.unwrap();

    let found = store.referrers(&image.manifest).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].digest(), desc.digest());
    assert_eq!(found[0].size(), desc.size());
    assert_eq!(
        found[0].artifact_type().as_ref().map(|t| t.to_string()),
        Some("application/vnd.example.sbom".to_string())
    );
    assert!(store.referrers(&desc).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_abandoned_push_leaves_no_blob_and_no_temporary_file() {
    let dir = tempdir();
    let store = layout(dir.path(), "l");
    let data = ferry_conformance::random_bytes(3 << 20);
    let desc = Descriptor::new(
        "application/octet-stream".into(),
        data.len() as u64,
        sha256(&data),
    );
    // A source that sends a first chunk and then stalls forever.
    let first = data.slice(..1 << 20);
    let stalled: ByteStream = Box::pin(
        futures::stream::iter([Ok(first)])
            .chain(futures::stream::pending::<ferry_core::Result<Bytes>>()),
    );
    let push = store.push(&desc, stalled);
    let outcome = tokio::time::timeout(Duration::from_millis(200), push).await;
    assert!(
        outcome.is_err(),
        "the push cannot finish on a stalled source"
    );
    assert!(!store.exists(&desc).await.unwrap());
    // The writer thread removes its temporary file once it sees the push gone.
    let tmp = store.path().join(".ferry/tmp");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !tree(&tmp).is_empty() {
        assert!(
            Instant::now() < deadline,
            "temporary files left behind: {:?}",
            tree(&tmp)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!store.exists(&desc).await.unwrap());
    store.push(&desc, bytes_stream(data)).await.unwrap();
    assert!(store.exists(&desc).await.unwrap());
}

use futures::StreamExt as _;

#[tokio::test]
async fn tags_and_digests_that_could_escape_the_layout_are_refused() {
    let dir = tempdir();
    let store = layout(dir.path(), "l");
    let image = Image::build("escape");
    image.push(store.as_ref(), "ok").await;
    let before_layout = tree(store.path());
    let before_parent = tree(dir.path());

    let long = "a".repeat(129);
    for tag in [
        "../x", "a/b", "x\0y", "", ".hidden", "-dash", "..", "/abs", "a:b", "tab\t", &long,
    ] {
        let err = store.tag(&image.manifest, tag).await.unwrap_err();
        match &err {
            Error::InvalidInput { kind, reason, .. } => {
                assert_eq!(*kind, "tag");
                assert!(reason.contains("128"), "{reason}");
            }
            other => panic!("tag {tag:?} must be refused as invalid input, got {other:?}"),
        }
    }
    assert!(store.tag(&image.manifest, &"a".repeat(128)).await.is_ok());
    for reference in [
        "sha256:../../etc",
        "sha256:/etc/passwd",
        "sha256:abc",
        &format!("sha256:{}", "A".repeat(64)),
        &format!("sha256:{}\0", "a".repeat(63)),
        &format!("md5:{}", "a".repeat(32)),
        &format!("sha512:{}", "a".repeat(64)),
        "../x",
        "a/b",
        "x\0y",
    ] {
        let err = store.resolve(reference).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidInput { .. } | Error::UnsupportedDigest { .. }
            ),
            "{reference:?} must be refused, got {err:?}"
        );
    }
    // A well-formed sha512 digest is accepted, and simply not there.
    let sha512 = format!("sha512:{}", "a".repeat(128));
    assert!(store.resolve(&sha512).await.unwrap_err().is_not_found());

    let mut after_layout = tree(store.path());
    after_layout.retain(|p| !p.starts_with(".ferry"));
    let mut before = before_layout.clone();
    before.retain(|p| !p.starts_with(".ferry"));
    assert_eq!(before, after_layout, "the layout changed");
    assert_eq!(
        before_parent.len(),
        tree(dir.path()).len(),
        "files appeared next to the layout"
    );
    let tags: Vec<String> = store
        .tags()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert_eq!(tags, ["ok".to_string(), "a".repeat(128)]);
}

#[tokio::test]
async fn layout_offers_its_blob_files_as_local_blobs() {
    let dir = tempdir();
    let store = layout(dir.path(), "blobs");
    let capabilities = store.capabilities();
    let blobs = capabilities
        .local_blobs
        .expect("a layout offers LocalBlobs");
    assert!(capabilities.registry_repository.is_none());
    assert_eq!(blobs.filesystem(), store.info().authority);
    let (desc, data) = ferry_conformance::random_blob(5000);
    store
        .push(&desc, ferry_core::bytes_stream(data.clone()))
        .await
        .unwrap();
    let file = blobs.blob_file(desc.digest()).unwrap();
    assert_eq!(file, store.blob_path(desc.digest()).unwrap());
    assert_eq!(std::fs::read(&file).unwrap(), data);
    // The staging directory is inside the layout, on its filesystem.
    assert!(blobs.staging_dir().starts_with(store.path()));
}

/// Blobs of 1 MiB and more are hashed once written (several at once, in lanes) rather than as
/// they stream: content that does not match is still refused, named, and never committed,
/// whichever of the blobs pushed together it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_blobs_pushed_together_are_each_judged_on_their_own_bytes() {
    let dir = tempdir();
    let store = std::sync::Arc::new(OciLayout::create(dir.path().join("l")).unwrap());
    let sizes = [1 << 20, (1 << 20) + 1, 3 << 20, (2 << 20) + 63, 5 << 20];
    let mut pushes = Vec::new();
    for (i, size) in sizes.into_iter().enumerate() {
        let data = ferry_conformance::random_bytes(size);
        let desc = Descriptor::new(
            "application/vnd.oci.image.layer.v1.tar".into(),
            size as u64,
            sha256(&data),
        );
        // The third blob arrives with one byte changed in its middle.
        let sent = if i == 2 {
            let mut bad = data.to_vec();
            bad[size / 2] ^= 1;
            Bytes::from(bad)
        } else {
            data
        };
        let store = store.clone();
        pushes.push(tokio::spawn(async move {
            let chunks: Vec<ferry_core::Result<Bytes>> = sent
                .chunks(100_000)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            let stream: ByteStream = Box::pin(futures::stream::iter(chunks));
            (desc.clone(), store.push(&desc, stream).await)
        }));
    }
    for (i, push) in pushes.into_iter().enumerate() {
        let (desc, result) = push.await.unwrap();
        if i == 2 {
            match result {
                Err(Error::DigestMismatch { expected, actual }) => {
                    assert_eq!(&expected, desc.digest());
                    assert!(actual.is_some_and(|a| &a != desc.digest()));
                }
                other => panic!("a corrupt 3 MiB blob was not refused: {other:?}"),
            }
            assert!(
                !store.exists(&desc).await.unwrap(),
                "the corrupt blob was committed"
            );
        } else {
            result.unwrap();
            let mut read = store.fetch(&desc).await.unwrap();
            let mut hasher = ferry_core::Hasher::for_digest(desc.digest()).unwrap();
            while let Some(chunk) = futures::StreamExt::next(&mut read).await {
                hasher.update(&chunk.unwrap());
            }
            assert_eq!(&hasher.finish(), desc.digest());
        }
    }
    // A large push cut short or run long fails on its size, and leaves no file behind.
    let data = ferry_conformance::random_bytes(2 << 20);
    let desc = Descriptor::new(
        "application/vnd.oci.image.layer.v1.tar".into(),
        data.len() as u64,
        sha256(&data),
    );
    let err = store
        .push(&desc, bytes_stream(data.slice(..data.len() - 1)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err:?}");
    let mut long = data.to_vec();
    long.push(0);
    let err = store
        .push(&desc, bytes_stream(Bytes::from(long)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err:?}");
    assert!(!store.exists(&desc).await.unwrap());
    let leftovers: Vec<String> = tree(&dir.path().join("l/.ferry"))
        .into_iter()
        .filter(|p| p.contains("blob-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}
