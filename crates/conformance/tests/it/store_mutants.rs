//! Each rule of the store contract fails for a store broken on purpose to break it, with the
//! rule's own message; the same store without its flaw passes the whole suite, so the rule
//! fails for the flaw and not for the harness.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use ferry_conformance::{StoreSubject, store};
use ferry_core::{
    ByteStream, Capabilities, DeleteTag, Descriptor, Digest, Error, ListTags, MemoryStore, Peek,
    ReadStore, Result, StoreWrapper, WriteStore, WriteStoreWrapper, bytes_stream,
    verify::read_to_bytes,
};

/// What a [`Broken`] store does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    /// Nothing: the honest store.
    None,
    /// Serves a blob it does not hold as empty, as a store reading a 404's body would.
    FetchesMissingAsEmpty,
    /// Serves every blob with its first byte changed.
    GarblesReads,
    /// Refuses to push content it holds already.
    RefusesSecondPush,
    /// Refuses a push while another push of the same blob is under way.
    RefusesConcurrentPushes,
    /// Leaves a tag where it is when asked to point it elsewhere.
    KeepsTags,
    /// Pushes and tags in one step without verifying the bytes, as an override of
    /// `push_tagged` that forgot what `push` checks.
    PushTaggedUnverified,
    /// Finds no referrers.
    ForgetsReferrers,
    /// Lists the first two tags only, as a listing that stops after one page.
    ListsOnePageOfTags,
    /// Deletes every tag of the manifest a tag names, as a registry deleting by digest.
    DeletesEveryTagOfTheManifest,
    /// Peeks a manifest as a Docker manifest whatever its media type.
    PeeksAnotherType,
}

/// A memory store with one [`Flaw`], offering `list_tags`, `delete_tag` and `peek`.
#[derive(Debug)]
struct Broken {
    inner: MemoryStore,
    flaw: Flaw,
    pushing: Mutex<HashSet<Digest>>,
}

fn broken(flaw: Flaw) -> StoreSubject {
    StoreSubject::new(Arc::new(Broken {
        inner: MemoryStore::new("broken"),
        flaw,
        pushing: Mutex::default(),
    }))
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Broken({:?})", self.flaw)
    }
}

#[async_trait]
impl StoreWrapper for Broken {
    type Inner = MemoryStore;

    fn inner(&self) -> &MemoryStore {
        &self.inner
    }

    async fn fetch(&self, descriptor: &Descriptor) -> Result<ByteStream> {
        match (self.flaw, self.inner.get(descriptor.digest())) {
            (Flaw::FetchesMissingAsEmpty, None) => Ok(bytes_stream(Bytes::new())),
            (Flaw::GarblesReads, Some(bytes)) if !bytes.is_empty() => {
                let mut garbled = bytes.to_vec();
                garbled[0] ^= 1;
                Ok(bytes_stream(Bytes::from(garbled)))
            }
            _ => self.inner.fetch(descriptor).await,
        }
    }

    async fn referrers(&self, subject: &Descriptor) -> Result<Vec<Descriptor>> {
        if self.flaw == Flaw::ForgetsReferrers {
            return Ok(Vec::new());
        }
        self.inner.referrers(subject).await
    }

    fn capabilities(&self) -> Capabilities<'_> {
        Capabilities::default()
            .with_list_tags(self)
            .with_delete_tag(self)
            .with_peek(self)
    }
}

#[async_trait]
impl WriteStoreWrapper for Broken {
    async fn push(&self, descriptor: &Descriptor, data: ByteStream) -> Result<()> {
        let digest = descriptor.digest();
        match self.flaw {
            Flaw::RefusesSecondPush if self.inner.get(digest).is_some() => {
                return Err(Error::store("broken", "the blob exists already"));
            }
            Flaw::RefusesConcurrentPushes => {
                if !self.pushing.lock().unwrap().insert(digest.clone()) {
                    return Err(Error::store(
                        "broken",
                        "another push of the blob is under way",
                    ));
                }
                // Let the other push start while this one is under way.
                tokio::task::yield_now().await;
                let pushed = self.inner.push(descriptor, data).await;
                self.pushing.lock().unwrap().remove(digest);
                return pushed;
            }
            _ => {}
        }
        self.inner.push(descriptor, data).await
    }

    async fn tag(&self, descriptor: &Descriptor, tag: &str) -> Result<()> {
        if self.flaw == Flaw::KeepsTags && self.inner.resolve(tag).await.is_ok() {
            return Ok(());
        }
        self.inner.tag(descriptor, tag).await
    }

    async fn push_tagged(
        &self,
        descriptor: &Descriptor,
        data: ByteStream,
        tag: &str,
    ) -> Result<()> {
        if self.flaw == Flaw::PushTaggedUnverified {
            let bytes = read_to_bytes(data, "manifest", u64::MAX).await?;
            self.inner.insert_unverified(descriptor, bytes);
            return self.inner.tag(descriptor, tag).await;
        }
        self.inner.push_tagged(descriptor, data, tag).await
    }
}

#[async_trait]
impl ListTags for Broken {
    async fn list_tags(&self) -> Result<Vec<String>> {
        let mut tags = self.inner.list_tags().await?;
        if self.flaw == Flaw::ListsOnePageOfTags {
            tags.truncate(2);
        }
        Ok(tags)
    }
}

#[async_trait]
impl DeleteTag for Broken {
    async fn delete_tag(&self, tag: &str) -> Result<()> {
        if self.flaw == Flaw::DeletesEveryTagOfTheManifest {
            let named = self.inner.resolve(tag).await?;
            let tags = self.inner.list_tags_resolved().await?.unwrap_or_default();
            for (other, desc) in tags {
                if desc.digest() == named.digest() {
                    self.inner.delete_tag(&other).await?;
                }
            }
            return Ok(());
        }
        self.inner.delete_tag(tag).await
    }
}

#[async_trait]
impl Peek for Broken {
    async fn peek(&self, reference: &str) -> Result<Descriptor> {
        let resolved = self.inner.resolve(reference).await?;
        if self.flaw == Flaw::PeeksAnotherType {
            return Ok(Descriptor::new(
                "application/vnd.docker.distribution.manifest.v2+json".into(),
                resolved.size(),
                resolved.digest().clone(),
            ));
        }
        Ok(resolved)
    }
}

/// The honest store passes every rule, so the mutants below fail for their flaw alone.
mod honest {
    use super::*;

    async fn subject() -> StoreSubject {
        broken(Flaw::None)
    }

    ferry_conformance::store_suite!(setup: subject, declares: [list_tags, delete_tag, peek]);
}

#[tokio::test]
#[should_panic(expected = "fetch of a missing blob must be NotFound")]
async fn a_store_serving_missing_blobs_as_empty_fails_the_missing_blob_rule() {
    store::missing_blob_is_absent_and_not_found(&broken(Flaw::FetchesMissingAsEmpty)).await;
}

#[tokio::test]
#[should_panic(expected = "bytes changed in a round trip")]
async fn a_store_garbling_reads_fails_the_round_trip_rule() {
    store::push_round_trips_the_exact_bytes(&broken(Flaw::GarblesReads)).await;
}

#[tokio::test]
#[should_panic(expected = "second push of the same blob failed")]
async fn a_store_refusing_a_second_push_fails_the_push_twice_rule() {
    store::pushing_twice_keeps_the_blob(&broken(Flaw::RefusesSecondPush)).await;
}

#[tokio::test]
#[should_panic(expected = "of two concurrent pushes failed")]
async fn a_store_refusing_concurrent_pushes_fails_the_concurrency_rule() {
    store::concurrent_pushes_of_one_blob_both_succeed(&broken(Flaw::RefusesConcurrentPushes)).await;
}

#[tokio::test]
#[should_panic(expected = "retag did not move the tag")]
async fn a_store_keeping_tags_in_place_fails_the_tag_rule() {
    store::tags_resolve_by_tag_and_digest_and_move(&broken(Flaw::KeepsTags)).await;
}

#[tokio::test]
#[should_panic(expected = "push_tagged of bytes that do not match succeeded")]
async fn a_store_tagging_unverified_bytes_fails_the_push_tagged_rule() {
    store::push_tagged_stores_and_tags_in_one_call(&broken(Flaw::PushTaggedUnverified)).await;
}

#[tokio::test]
#[should_panic(expected = "referrers of the subject")]
async fn a_store_forgetting_referrers_fails_the_referrers_rule() {
    store::referrers_list_the_manifests_naming_a_subject(&broken(Flaw::ForgetsReferrers)).await;
}

#[tokio::test]
#[should_panic(expected = "tags listed")]
async fn a_store_listing_one_page_of_tags_fails_the_list_tags_rule() {
    store::list_tags_lists_every_tag(&broken(Flaw::ListsOnePageOfTags)).await;
}

#[tokio::test]
#[should_panic(expected = "deleting a tag that shares its manifest removed another tag")]
async fn a_store_deleting_every_tag_of_a_manifest_fails_the_delete_tag_rule() {
    store::delete_tag_removes_only_that_tag(&broken(Flaw::DeletesEveryTagOfTheManifest)).await;
}

#[tokio::test]
#[should_panic(expected = "peek and resolve of `peeked` differ")]
async fn a_store_peeking_another_media_type_fails_the_peek_rule() {
    store::peek_names_what_resolve_names(&broken(Flaw::PeeksAnotherType)).await;
}
