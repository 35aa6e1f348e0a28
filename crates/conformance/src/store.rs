//! The store contract, one rule per function. Each takes a fresh [`StoreSubject`] and panics
//! with a message naming the store and what it did wrong.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use oci_spec::image::Descriptor;

use super::{random_blob, random_bytes, read_all};
use ferry_core::error::Error;
use ferry_core::model::OCI_MANIFEST;
use ferry_core::store::{BlobMount, ByteStream, WriteStore, bytes_stream};
use ferry_core::verify::sha256;

/// Publishes content at an address a store with [`ferry_core::FetchFromAddress`] can fetch from
/// (an IPFS node, for `ipfs://` addresses), for the `fetch_from_address` rule.
#[async_trait]
pub trait Publish: Send + Sync {
    /// Publishes `data` and returns its address.
    async fn publish(&self, data: Bytes) -> String;
}

/// What a store rule runs on: the store, and what some rules need besides.
pub struct StoreSubject {
    /// The store under test; each rule gets a fresh one.
    pub store: Arc<dyn WriteStore>,
    /// Another repository of the same registry, for the `registry_repository` and
    /// `prepared_uploads` rules.
    pub sibling: Option<Arc<dyn WriteStore>>,
    /// Publishes content at addresses the store can fetch, for the `fetch_from_address`
    /// rule.
    pub publisher: Option<Arc<dyn Publish>>,
    keep: Vec<Box<dyn Any + Send + Sync>>,
}

impl StoreSubject {
    /// A subject for `store`.
    pub fn new(store: Arc<dyn WriteStore>) -> Self {
        Self {
            store,
            sibling: None,
            publisher: None,
            keep: Vec::new(),
        }
    }

    /// Keeps `guard` (a registry process, a temporary directory) alive as long as the subject.
    pub fn keeping(mut self, guard: impl Any + Send + Sync) -> Self {
        self.keep.push(Box::new(guard));
        self
    }

    /// Another repository of the store's registry.
    pub fn with_sibling(mut self, sibling: Arc<dyn WriteStore>) -> Self {
        self.sibling = Some(sibling);
        self
    }

    /// What publishes content at an address the store can fetch.
    pub fn with_publisher(mut self, publisher: Arc<dyn Publish>) -> Self {
        self.publisher = Some(publisher);
        self
    }

    fn sibling(&self) -> &dyn WriteStore {
        self.sibling.as_deref().unwrap_or_else(|| {
            panic!(
                "{}: this rule needs another repository of the same registry; give it with \
                 `StoreSubject::with_sibling`",
                self.store
            )
        })
    }
}

fn chunked(data: Bytes, chunk: usize) -> ByteStream {
    let parts: Vec<ferry_core::Result<Bytes>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures::stream::iter(parts))
}

/// Pushes `value` as a manifest (after a random config it names, unless it names one) and
/// returns its descriptor and bytes.
pub(crate) async fn push_manifest(
    store: &dyn WriteStore,
    mut value: serde_json::Value,
) -> Descriptor {
    if value.get("config").is_none() {
        let (config, data) = random_blob(64);
        let config = Descriptor::new(
            "application/vnd.oci.image.config.v1+json".into(),
            config.size(),
            config.digest().clone(),
        );
        store.push(&config, bytes_stream(data)).await.unwrap();
        value["config"] = serde_json::to_value(&config).unwrap();
    }
    let (desc, bytes) = manifest(&value);
    store
        .push(&desc, bytes_stream(bytes))
        .await
        .unwrap_or_else(|e| panic!("{store}: push of manifest `{}` failed: {e}", desc.digest()));
    desc
}

/// The descriptor and bytes of `value` as an OCI image manifest.
fn manifest(value: &serde_json::Value) -> (Descriptor, Bytes) {
    let bytes = Bytes::from(serde_json::to_vec(value).unwrap());
    let desc = Descriptor::new(OCI_MANIFEST.into(), bytes.len() as u64, sha256(&bytes));
    (desc, bytes)
}

pub(crate) fn image() -> serde_json::Value {
    serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []})
}

/// `exists` of a missing blob is `Ok(false)`; `fetch` of it is `NotFound`.
pub async fn missing_blob_is_absent_and_not_found(subject: &StoreSubject) {
    let store = subject.store.as_ref();
    let (desc, _) = random_blob(10);
    assert!(
        !store.exists(&desc).await.unwrap(),
        "{store}: missing blob reported present"
    );
    let r = store.fetch(&desc).await;
    assert!(
        matches!(r, Err(Error::NotFound { .. })),
        "{store}: fetch of a missing blob must be NotFound, got {:?}",
        r.map(|_| ())
    );
}

/// Push, exists, fetch: the bytes come back exactly, whatever the chunking.
pub async fn push_round_trips_the_exact_bytes(subject: &StoreSubject) {
    let store = subject.store.as_ref();
    for (len, chunk) in [(0usize, 1usize), (1, 1), (1000, 7), (300_000, 65_536)] {
        let (desc, data) = random_blob(len);
        assert!(
            !store.exists(&desc).await.unwrap(),
            "{store}: fresh blob reported present"
        );
        store
            .push(&desc, chunked(data.clone(), chunk))
            .await
            .unwrap_or_else(|e| panic!("{store}: push of {len} bytes failed: {e}"));
        assert!(
            store.exists(&desc).await.unwrap(),
            "{store}: pushed blob not present"
        );
        assert_eq!(
            read_all(store, &desc).await,
            data,
            "{store}: bytes changed in a round trip"
        );
    }
}

/// A push whose bytes do not match the descriptor fails and commits nothing.
pub async fn mismatched_push_commits_nothing(subject: &StoreSubject) {
    let store = subject.store.as_ref();
    let (desc, data) = random_blob(4096);
    // Wrong content, right size.
    let err = store.push(&desc, bytes_stream(random_bytes(4096))).await;
    assert!(
        matches!(err, Err(Error::DigestMismatch { .. })),
        "{store}: push of wrong bytes must fail with DigestMismatch, got {err:?}"
    );
    assert!(
        !store.exists(&desc).await.unwrap(),
        "{store}: wrong bytes were committed"
    );
    // Too short.
    let err = store.push(&desc, bytes_stream(data.slice(..4000))).await;
    assert!(
        matches!(err, Err(Error::SizeMismatch { .. })),
        "{store}: push of too few bytes must fail with SizeMismatch, got {err:?}"
    );
    assert!(
        !store.exists(&desc).await.unwrap(),
        "{store}: truncated bytes were committed"
    );
    // Too long.
    let mut long = data.to_vec();
    long.extend_from_slice(b"extra");
    let err = store.push(&desc, bytes_stream(Bytes::from(long))).await;
    assert!(
        matches!(err, Err(Error::SizeMismatch { .. })),
        "{store}: push of too many bytes must fail with SizeMismatch, got {err:?}"
    );
    assert!(
        !store.exists(&desc).await.unwrap(),
        "{store}: overlong bytes were committed"
    );
    // A failing source stream.
    let failing: ByteStream = Box::pin(futures::stream::iter(vec![
        Ok(data.slice(..100)),
        Err(Error::store("test", "source broke")),
    ]));
    assert!(
        store.push(&desc, failing).await.is_err(),
        "{store}: a broken stream must fail the push"
    );
    assert!(
        !store.exists(&desc).await.unwrap(),
        "{store}: a broken stream left content"
    );
    // And the right bytes still go in afterwards.
    store.push(&desc, bytes_stream(data.clone())).await.unwrap();
    assert_eq!(read_all(store, &desc).await, data);
}

/// Pushing content twice succeeds and keeps it.
pub async fn pushing_twice_keeps_the_blob(subject: &StoreSubject) {
    let store = subject.store.as_ref();
    let (desc, data) = random_blob(2048);
    store.push(&desc, bytes_stream(data.clone())).await.unwrap();
    store
        .push(&desc, bytes_stream(data.clone()))
        .await
        .unwrap_or_else(|e| panic!("{store}: second push of the same blob failed: {e}"));
    assert_eq!(read_all(store, &desc).await, data);
}

/// Two concurrent pushes of one blob both succeed and leave it intact.
pub async fn concurrent_pushes_of_one_blob_both_succeed(subject: &StoreSubject) {
    let store = subject.store.as_ref();
    let (desc, data) = random_blob(1 << 20);
    let a = store.push(&desc, chunked(data.clone(), 4096));
    let b = store.push(&desc, chunked(data.clone(), 8192));
    let (ra, rb) = futures::join!(a, b);
    ra.unwrap_or_else(|e| panic!("{store}: first of two concurrent pushes failed: {e}"));
    rb.unwrap_or_else(|e| panic!("{store}: second of two concurrent pushes failed: {e}"));
    assert_eq!(
        read_all(store, &desc).await,
        data,
        "{store}: concurrent pushes corrupted the blob"
    );
}

/// A pushed manifest can be tagged and resolved by tag and by digest; retagging moves the
/// tag; a missing tag is `NotFound`.
pub async fn tags_resolve_by_tag_and_digest_and_move(subject: &StoreSubject) {
    let store = subject.store.as_ref();
    let desc = push_manifest(store, image()).await;
    store
        .tag(&desc, "conformance")
        .await
        .unwrap_or_else(|e| panic!("{store}: tag failed: {e}"));
    let by_tag = store.resolve("conformance").await.unwrap();
    assert_eq!(
        by_tag.digest(),
        desc.digest(),
        "{store}: tag resolves to another digest"
    );
    assert_eq!(by_tag.size(), desc.size());
    let by_digest = store.resolve(desc.digest().as_ref()).await.unwrap();
    assert_eq!(by_digest.digest(), desc.digest());
    // Retagging moves the tag.
    let desc2 = push_manifest(store, image()).await;
    store.tag(&desc2, "conformance").await.unwrap();
    assert_eq!(
        store.resolve("conformance").await.unwrap().digest(),
        desc2.digest(),
        "{store}: retag did not move the tag"
    );
    let missing = store.resolve("no-such-tag").await;
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "{store}: resolving a missing tag must be NotFound, got {missing:?}"
    );
}

/// `push_tagged` stores a manifest and points a tag at it in one call (moving the tag when
/// it exists); with bytes that do not match, it fails, commits nothing, and leaves the tag
/// where it was.
pub async fn push_tagged_stores_and_tags_in_one_call(subject: &StoreSubject) {
    let store = subject.store.as_ref();
    let (config, data) = random_blob(64);
    store.push(&config, bytes_stream(data)).await.unwrap();
    let mut value = image();
    value["config"] = serde_json::to_value(&config).unwrap();
    let (desc, bytes) = manifest(&value);
    store
        .push_tagged(&desc, bytes_stream(bytes), "one-call")
        .await
        .unwrap_or_else(|e| panic!("{store}: push_tagged failed: {e}"));
    assert!(store.exists(&desc).await.unwrap(), "{store}: no manifest");
    assert_eq!(
        store.resolve("one-call").await.unwrap().digest(),
        desc.digest(),
        "{store}: push_tagged did not point the tag at the manifest"
    );

    // A second manifest moves the tag.
    let mut value2 = image();
    value2["config"] = serde_json::to_value(&config).unwrap();
    value2["annotations"] = serde_json::json!({"conformance": "second"});
    let (desc2, bytes2) = manifest(&value2);
    store
        .push_tagged(&desc2, bytes_stream(bytes2.clone()), "one-call")
        .await
        .unwrap();
    assert_eq!(
        store.resolve("one-call").await.unwrap().digest(),
        desc2.digest(),
        "{store}: push_tagged did not move the tag"
    );

    // Bytes that are not the descriptor's: an error, no manifest, the tag unmoved.
    let mut value3 = image();
    value3["config"] = serde_json::to_value(&config).unwrap();
    value3["annotations"] = serde_json::json!({"conformance": "third"});
    let (desc3, _) = manifest(&value3);
    let mut wrong = bytes2.to_vec();
    wrong.resize(desc3.size() as usize, b' ');
    let result = store
        .push_tagged(&desc3, bytes_stream(Bytes::from(wrong)), "one-call")
        .await;
    assert!(
        result.is_err(),
        "{store}: push_tagged of bytes that do not match succeeded"
    );
    assert!(
        !store.exists(&desc3).await.unwrap(),
        "{store}: push_tagged committed bytes that do not match"
    );
    assert_eq!(
        store.resolve("one-call").await.unwrap().digest(),
        desc2.digest(),
        "{store}: a failed push_tagged moved the tag"
    );
}

/// The artifact type the referrers rule uses.
const ARTIFACT_TYPE: &str = "application/vnd.ferry.conformance.test";

/// `referrers` lists the manifests whose `subject` is the given manifest, with their artifact
/// type, and nothing for a manifest nothing refers to.
pub async fn referrers_list_the_manifests_naming_a_subject(subject: &StoreSubject) {
    let store = subject.store.as_ref();
    let target = push_manifest(store, image()).await;
    let lonely = push_manifest(store, image()).await;
    let empty = Bytes::from_static(b"{}");
    let empty_config = Descriptor::new(
        "application/vnd.oci.empty.v1+json".into(),
        2,
        sha256(&empty),
    );
    store
        .push(&empty_config, bytes_stream(empty))
        .await
        .unwrap();
    let mut referrers = Vec::new();
    for n in 0..2 {
        let mut value = image();
        value["config"] = serde_json::to_value(&empty_config).unwrap();
        value["artifactType"] = ARTIFACT_TYPE.into();
        value["subject"] = serde_json::to_value(&target).unwrap();
        value["annotations"] = serde_json::json!({"conformance": n.to_string()});
        referrers.push(push_manifest(store, value).await);
    }
    let listed = store
        .referrers(&target)
        .await
        .unwrap_or_else(|e| panic!("{store}: referrers failed: {e}"));
    let mut digests: Vec<String> = listed.iter().map(|d| d.digest().to_string()).collect();
    digests.sort();
    let mut expected: Vec<String> = referrers.iter().map(|d| d.digest().to_string()).collect();
    expected.sort();
    assert_eq!(digests, expected, "{store}: referrers of the subject");
    for d in &listed {
        assert_eq!(
            d.artifact_type().as_ref().map(|t| t.to_string()).as_deref(),
            Some(ARTIFACT_TYPE),
            "{store}: a referrer lost its artifact type"
        );
    }
    let none = store.referrers(&lonely).await.unwrap();
    assert!(
        none.is_empty(),
        "{store}: referrers of a manifest nothing names: {none:?}"
    );
}

/// The store offers exactly the capabilities it declares (of `list_tags`, `delete_tag`,
/// `peek`, `fetch_from_address`, `registry_repository`, `local_blobs`); `prepared_uploads`
/// needs `registry_repository`.
pub fn capabilities_are_the_declared_ones(subject: &StoreSubject, declared: &[&str]) {
    let store = subject.store.as_ref();
    let c = store.capabilities();
    let offered = [
        ("list_tags", c.list_tags.is_some()),
        ("delete_tag", c.delete_tag.is_some()),
        ("peek", c.peek.is_some()),
        ("fetch_from_address", c.fetch_from_address.is_some()),
        ("registry_repository", c.registry_repository.is_some()),
        ("local_blobs", c.local_blobs.is_some()),
        ("known_absent", c.known_absent.is_some()),
    ];
    for (name, is_offered) in offered {
        assert_eq!(
            is_offered,
            declared.contains(&name),
            "{store}: `{name}` is {} but {} declared",
            if is_offered { "offered" } else { "not offered" },
            if declared.contains(&name) {
                "is"
            } else {
                "is not"
            }
        );
    }
    for name in declared {
        assert!(
            offered.iter().any(|(n, _)| n == name) || *name == "prepared_uploads",
            "{store}: `{name}` is not an ability the store suite knows"
        );
    }
    if declared.contains(&"prepared_uploads") {
        assert!(
            declared.contains(&"registry_repository"),
            "{store}: `prepared_uploads` are opened through `registry_repository`"
        );
    }
}

/// [`ferry_core::ListTags`] lists every tag, each once.
pub async fn list_tags_lists_every_tag(subject: &StoreSubject) {
    let store = subject.store.as_ref();
    let one = push_manifest(store, image()).await;
    let two = push_manifest(store, image()).await;
    for (d, tag) in [(&one, "a-1"), (&one, "b-2"), (&two, "c-3")] {
        store.tag(d, tag).await.unwrap();
    }
    let lister = store
        .capabilities()
        .list_tags
        .unwrap_or_else(|| panic!("{store}: `list_tags` declared but not offered"));
    let mut tags = lister
        .list_tags()
        .await
        .unwrap_or_else(|e| panic!("{store}: list_tags failed: {e}"));
    tags.sort();
    assert_eq!(tags, ["a-1", "b-2", "c-3"], "{store}: tags listed");
}

/// [`ferry_core::DeleteTag`] removes a tag and nothing else: a tag of its own manifest goes; a tag
/// sharing its manifest with another is removed alone or refused (a registry that deletes by
/// digest only cannot remove it alone), never taking the other tag or the manifest with it;
/// removing a missing tag is `NotFound`.
pub async fn delete_tag_removes_only_that_tag(subject: &StoreSubject) {
    let store = subject.store.as_ref();
    let kept = push_manifest(store, image()).await;
    let dropped = push_manifest(store, image()).await;
    store.tag(&kept, "keep").await.unwrap();
    store.tag(&dropped, "drop").await.unwrap();
    let deleter = store
        .capabilities()
        .delete_tag
        .unwrap_or_else(|| panic!("{store}: `delete_tag` declared but not offered"));
    deleter
        .delete_tag("drop")
        .await
        .unwrap_or_else(|e| panic!("{store}: delete_tag failed: {e}"));
    assert!(
        matches!(store.resolve("drop").await, Err(Error::NotFound { .. })),
        "{store}: a deleted tag still resolves"
    );
    kept_unharmed(store, &kept, "deleting a tag").await;

    // A second tag of the kept manifest: removed alone, or refused.
    store.tag(&kept, "shared").await.unwrap();
    match deleter.delete_tag("shared").await {
        Ok(()) => assert!(
            matches!(store.resolve("shared").await, Err(Error::NotFound { .. })),
            "{store}: a deleted tag still resolves"
        ),
        Err(e) => assert!(
            !e.is_not_found(),
            "{store}: an existing tag is not found: {e}"
        ),
    }
    kept_unharmed(store, &kept, "deleting a tag that shares its manifest").await;

    let missing = deleter.delete_tag("never-there").await;
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "{store}: deleting a missing tag must be NotFound, got {missing:?}"
    );
}

/// Tag `keep` still names `kept`, which the store still holds, after `what`.
async fn kept_unharmed(store: &dyn WriteStore, kept: &Descriptor, what: &str) {
    let keep = store.resolve("keep").await;
    assert_eq!(
        keep.as_ref().ok().map(|d| d.digest()),
        Some(kept.digest()),
        "{store}: {what} removed another tag (`keep` resolves to {keep:?})"
    );
    assert!(
        store.exists(kept).await.unwrap(),
        "{store}: {what} removed content another tag names"
    );
}

/// [`ferry_core::Peek`] names what [`ferry_core::ReadStore::resolve`] names, by tag and by digest, and a
/// missing tag is `NotFound`.
pub async fn peek_names_what_resolve_names(subject: &StoreSubject) {
    let store = subject.store.as_ref();
    let desc = push_manifest(store, image()).await;
    store.tag(&desc, "peeked").await.unwrap();
    let peek = store
        .capabilities()
        .peek
        .unwrap_or_else(|| panic!("{store}: `peek` declared but not offered"));
    for reference in ["peeked", desc.digest().as_ref()] {
        let peeked = peek
            .peek(reference)
            .await
            .unwrap_or_else(|e| panic!("{store}: peek of `{reference}` failed: {e}"));
        let resolved = store.resolve(reference).await.unwrap();
        assert_eq!(
            (peeked.digest(), peeked.size(), peeked.media_type()),
            (resolved.digest(), resolved.size(), resolved.media_type()),
            "{store}: peek and resolve of `{reference}` differ"
        );
    }
    let missing = peek.peek("never-there").await;
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "{store}: peek of a missing tag must be NotFound, got {missing:?}"
    );
}

/// [`ferry_core::FetchFromAddress`] accepts the publisher's addresses, commits the content at one
/// when it matches the descriptor, and commits nothing when the address holds other bytes.
pub async fn fetch_from_address_commits_only_matching_content(subject: &StoreSubject) {
    let store = subject.store.as_ref();
    let publisher = subject.publisher.as_ref().unwrap_or_else(|| {
        panic!("{store}: this rule needs a publisher; give it with `StoreSubject::with_publisher`")
    });
    let fetcher = store
        .capabilities()
        .fetch_from_address
        .unwrap_or_else(|| panic!("{store}: `fetch_from_address` declared but not offered"));
    let (desc, data) = random_blob(70_000);
    let address = publisher.publish(data.clone()).await;
    assert!(
        fetcher.accepts(&address),
        "{store}: does not accept `{address}`"
    );
    let fetched = fetcher
        .fetch_from_address(&desc, &address)
        .await
        .unwrap_or_else(|e| panic!("{store}: fetch from `{address}` failed: {e}"));
    assert!(fetched, "{store}: could not fetch `{address}`");
    assert_eq!(read_all(store, &desc).await, data, "{store}: fetched bytes");

    // An address holding other content of the same size.
    let (other, _) = random_blob(70_000);
    let elsewhere = publisher.publish(random_bytes(70_000)).await;
    let result = fetcher.fetch_from_address(&other, &elsewhere).await;
    assert!(
        !matches!(result, Ok(true)),
        "{store}: reported committing content that is not the descriptor's"
    );
    assert!(
        !store.exists(&other).await.unwrap(),
        "{store}: committed content that does not match its digest"
    );
}

/// [`ferry_core::RegistryRepository`] names the store's registry and repository, mounts a blob
/// from another repository of the registry, and never mounts a blob no repository holds. Run
/// for stores that declare `registry_repository`: a store of no registry has nothing to
/// mount from.
pub async fn registry_repository_mounts_from_a_sibling(subject: &StoreSubject) {
    let store = subject.store.as_ref();
    let sibling = subject.sibling();
    let capabilities = store.capabilities();
    let repository = capabilities
        .registry_repository
        .unwrap_or_else(|| panic!("{store}: `registry_repository` declared but not offered"));
    let info = store.info();
    assert_eq!(repository.registry(), info.authority, "{store}: registry");
    assert_eq!(
        repository.repository(),
        info.namespace,
        "{store}: repository"
    );
    assert_eq!(
        sibling.info().authority,
        info.authority,
        "{store}: the sibling must be on the same registry"
    );
    let from = sibling.info().namespace.clone();
    let (desc, data) = random_blob(5000);
    sibling
        .push(&desc, bytes_stream(data.clone()))
        .await
        .unwrap();
    let answer = repository
        .mount_blob(desc.digest(), Some(&from), std::slice::from_ref(&from))
        .await
        .unwrap_or_else(|e| panic!("{store}: mount from `{from}` failed: {e}"));
    assert!(
        matches!(answer, BlobMount::Mounted),
        "{store}: a blob `{from}` holds was not mounted: {answer:?}"
    );
    assert_eq!(read_all(store, &desc).await, data, "{store}: mounted bytes");

    let (missing, _) = random_blob(100);
    match repository
        .mount_blob(missing.digest(), Some(&from), std::slice::from_ref(&from))
        .await
        .unwrap_or_else(|e| panic!("{store}: mount of an unknown blob failed: {e}"))
    {
        BlobMount::Mounted => panic!("{store}: mounted a blob no repository holds"),
        BlobMount::Upload(upload) => upload.cancel().await.unwrap(),
        _ => {}
    }
    assert!(
        !store.exists(&missing).await.unwrap(),
        "{store}: a blob no repository holds appeared"
    );
}

/// Opens an upload session by mounting a blob the sibling lacks.
async fn prepared_upload(
    subject: &StoreSubject,
    desc: &Descriptor,
) -> Box<dyn ferry_core::PreparedUpload> {
    let store = subject.store.as_ref();
    let from = subject.sibling().info().namespace.clone();
    let repository = store
        .capabilities()
        .registry_repository
        .unwrap_or_else(|| panic!("{store}: `registry_repository` declared but not offered"));
    match repository
        .mount_blob(desc.digest(), Some(&from), std::slice::from_ref(&from))
        .await
        .unwrap()
    {
        BlobMount::Upload(upload) => upload,
        other => panic!(
            "{store}: `prepared_uploads` declared, but a mount of an unknown blob gave {other:?}"
        ),
    }
}

/// A prepared upload commits only content that matches the descriptor: wrong bytes fail and
/// leave nothing; the right bytes, in another session, are committed exactly.
///
/// Run for stores that declare `prepared_uploads` (a registry repository answering a mount of
/// an unknown blob with an upload session); a store that opens no session (a layout, a
/// memory store) cannot fail it.
pub async fn prepared_upload_commits_only_matching_content(subject: &StoreSubject) {
    let store = subject.store.as_ref();
    let (desc, data) = random_blob(20_000);
    let upload = prepared_upload(subject, &desc).await;
    let wrong = upload
        .upload(&desc, bytes_stream(random_bytes(20_000)))
        .await;
    assert!(
        wrong.is_err(),
        "{store}: a prepared upload accepted bytes that do not match"
    );
    assert!(
        !store.exists(&desc).await.unwrap(),
        "{store}: a prepared upload committed bytes that do not match"
    );
    let upload = prepared_upload(subject, &desc).await;
    upload
        .upload(&desc, chunked(data.clone(), 4096))
        .await
        .unwrap_or_else(|e| panic!("{store}: a prepared upload of the right bytes failed: {e}"));
    assert_eq!(
        read_all(store, &desc).await,
        data,
        "{store}: uploaded bytes"
    );
}

/// Cancelling a prepared upload succeeds and leaves nothing behind. Run, as the rule above,
/// for stores that declare `prepared_uploads`.
pub async fn cancelling_a_prepared_upload_leaves_nothing(subject: &StoreSubject) {
    let store = subject.store.as_ref();
    let (desc, _) = random_blob(1000);
    let upload = prepared_upload(subject, &desc).await;
    upload
        .cancel()
        .await
        .unwrap_or_else(|e| panic!("{store}: cancelling a prepared upload failed: {e}"));
    assert!(
        !store.exists(&desc).await.unwrap(),
        "{store}: a cancelled upload left the blob"
    );
}

/// [`ferry_core::KnownAbsent`] never calls content the store holds absent. It is asked first
/// while the store is empty (as a copy into a new destination asks), then after each way
/// content arrives: a push, a manifest pushed and tagged in one call, and, for a registry
/// repository with a sibling, a mount from the sibling. The engine skips its existence check
/// on a "known absent", so a wrong one would push content again or, worse, report it missing.
pub async fn known_absent_never_names_held_content(subject: &StoreSubject) {
    let store = subject.store.as_ref();
    let capabilities = store.capabilities();
    let known = capabilities
        .known_absent
        .unwrap_or_else(|| panic!("{store}: `known_absent` declared but not offered"));
    let (blob, data) = random_blob(2000);
    let (config, config_data) = random_blob(64);
    let mut value = image();
    value["config"] = serde_json::to_value(&config).unwrap();
    let (manifest_desc, manifest_bytes) = manifest(&value);
    let (never, _) = random_blob(100);
    for desc in [&blob, &config, &manifest_desc, &never] {
        // Either answer is right for content not written yet.
        let _ = known.known_absent(desc).await;
    }

    store.push(&blob, bytes_stream(data)).await.unwrap();
    store
        .push(&config, bytes_stream(config_data))
        .await
        .unwrap();
    store
        .push_tagged(&manifest_desc, bytes_stream(manifest_bytes), "known")
        .await
        .unwrap_or_else(|e| panic!("{store}: push_tagged failed: {e}"));
    let mut held = vec![blob, config, manifest_desc];

    if let (Some(repository), Some(sibling)) =
        (capabilities.registry_repository, subject.sibling.as_deref())
    {
        let from = sibling.info().namespace.clone();
        let (mounted, data) = random_blob(3000);
        sibling.push(&mounted, bytes_stream(data)).await.unwrap();
        let _ = known.known_absent(&mounted).await;
        match repository
            .mount_blob(mounted.digest(), Some(&from), std::slice::from_ref(&from))
            .await
            .unwrap_or_else(|e| panic!("{store}: mount from `{from}` failed: {e}"))
        {
            BlobMount::Mounted => held.push(mounted),
            BlobMount::Upload(upload) => upload.cancel().await.unwrap(),
            _ => {}
        }
    }

    for desc in &held {
        assert!(
            store.exists(desc).await.unwrap(),
            "{store}: `{}` was written but is not there",
            desc.digest()
        );
        assert!(
            !known.known_absent(desc).await,
            "{store}: `known_absent` says `{}` is absent, but the store holds it",
            desc.digest()
        );
    }
    if known.known_absent(&never).await {
        assert!(
            !store.exists(&never).await.unwrap(),
            "{store}: `known_absent` is true for content the store holds"
        );
    }
}

/// [`ferry_core::LocalBlobs`]: a committed blob's file holds exactly its bytes, the staging
/// directory is on the blob files' filesystem, and a verified file linked into place from it
/// is a committed blob the store serves.
pub async fn local_blob_files_hold_exactly_the_committed_bytes(subject: &StoreSubject) {
    use std::os::unix::fs::MetadataExt;
    let store = subject.store.as_ref();
    let capabilities = store.capabilities();
    let blobs = capabilities
        .local_blobs
        .unwrap_or_else(|| panic!("{store}: `local_blobs` declared but not offered"));
    assert!(!blobs.filesystem().is_empty(), "{store}: no filesystem");
    let (desc, data) = random_blob(30_000);
    store.push(&desc, bytes_stream(data.clone())).await.unwrap();
    let file = blobs.blob_file(desc.digest()).unwrap();
    assert_eq!(
        std::fs::read(&file).unwrap_or_else(|e| panic!("{store}: `{}`: {e}", file.display())),
        data,
        "{store}: the blob file holds other bytes"
    );

    // Commit a blob the way a linking strategy does.
    let staging = blobs.staging_dir();
    std::fs::create_dir_all(&staging).unwrap();
    assert_eq!(
        std::fs::metadata(&staging).unwrap().dev(),
        std::fs::metadata(&file).unwrap().dev(),
        "{store}: the staging directory is on another filesystem than the blob files"
    );
    let (linked, bytes) = random_blob(12_345);
    let prepared = staging.join(format!("conformance-{}", linked.digest().digest()));
    std::fs::write(&prepared, &bytes).unwrap();
    let target = blobs.blob_file(linked.digest()).unwrap();
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::hard_link(&prepared, &target).unwrap();
    std::fs::remove_file(&prepared).unwrap();
    assert!(
        store.exists(&linked).await.unwrap(),
        "{store}: a blob linked into its file is not present"
    );
    assert_eq!(
        read_all(store, &linked).await,
        bytes,
        "{store}: a linked blob"
    );
}
