//! The conformance kits catch what they promise to catch: each fake here breaks one rule on
//! purpose (no real store or strategy would ship so), and that rule's check fails, naming it.

use std::sync::Arc;

use async_trait::async_trait;
use ferry_conformance::{Case, StoreSubject, store, strategy};
use ferry_core::verify::read_to_bytes;
use ferry_core::{
    ByteStream, Descriptor, MemoryStore, MountMethod, MountOutcome, MountRequest, MountStrategy,
    PreparedUpload, Result, StoreWrapper, WriteStoreWrapper,
};

/// A store that commits whatever it is given, unverified.
#[derive(Debug)]
pub(crate) struct Careless(pub(crate) MemoryStore);

impl std::fmt::Display for Careless {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Careless")
    }
}

impl StoreWrapper for Careless {
    type Inner = MemoryStore;
    fn inner(&self) -> &MemoryStore {
        &self.0
    }
}

#[async_trait]
impl WriteStoreWrapper for Careless {
    async fn push(&self, descriptor: &Descriptor, data: ByteStream) -> Result<()> {
        let bytes = read_to_bytes(data, "blob", u64::MAX).await?;
        self.0.insert_unverified(descriptor, bytes);
        Ok(())
    }
}

#[tokio::test]
#[should_panic(expected = "push of wrong bytes must fail with DigestMismatch")]
async fn a_store_that_commits_wrong_bytes_fails_the_mismatch_rule() {
    let subject = StoreSubject::new(Arc::new(Careless(MemoryStore::new("careless"))));
    store::mismatched_push_commits_nothing(&subject).await;
}

#[test]
#[should_panic(expected = "`peek` is not offered but is declared")]
fn a_store_declaring_an_ability_it_lacks_fails_the_declaration_rule() {
    let subject = StoreSubject::new(Arc::new(MemoryStore::new("memory")));
    store::capabilities_are_the_declared_ones(&subject, &["list_tags", "delete_tag", "peek"]);
}

/// A strategy scripted to break one rule.
#[derive(Debug)]
enum Liar {
    /// Says it probes the destination, then declines a blob the destination holds.
    ProbesButDeclines,
    /// Mounts (copying through the process) only when the destination's name says `memory:`,
    /// as a strategy that downcasts to a concrete store would.
    OnlyConcreteStores,
    /// Declines with an upload that commits whatever it is given.
    CarelessUpload,
}

impl std::fmt::Display for Liar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// An upload that reports success for whatever bytes it is given.
#[derive(Debug)]
struct CarelessUpload;

#[async_trait]
impl PreparedUpload for CarelessUpload {
    async fn upload(self: Box<Self>, _: &Descriptor, data: ByteStream) -> Result<()> {
        read_to_bytes(data, "blob", u64::MAX).await.map(|_| ())
    }
    async fn cancel(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl MountStrategy for Liar {
    fn name(&self) -> &str {
        "liar"
    }

    async fn mount(&self, request: &MountRequest<'_>) -> Result<MountOutcome> {
        match self {
            Liar::ProbesButDeclines => Ok(MountOutcome::declined("no")),
            Liar::OnlyConcreteStores => {
                if !request.destination.to_string().starts_with("memory:") {
                    return Ok(MountOutcome::not_applicable("not a store I know"));
                }
                let data = request.source.fetch(request.descriptor).await?;
                request.destination.push(request.descriptor, data).await?;
                Ok(MountOutcome::mounted(
                    request.source.info(),
                    MountMethod::other("copy"),
                ))
            }
            Liar::CarelessUpload => Ok(MountOutcome::declined_with_upload(
                "202",
                Box::new(CarelessUpload),
            )),
        }
    }

    fn probes_destination(&self, _: &MountRequest<'_>) -> bool {
        matches!(self, Liar::ProbesButDeclines)
    }
}

fn case(liar: Liar) -> Case {
    Case::new(
        Arc::new(liar),
        Arc::new(MemoryStore::new("src")),
        Arc::new(MemoryStore::new("dst")),
    )
}

#[tokio::test]
#[should_panic(expected = "says it probes the destination")]
async fn a_strategy_that_probes_but_declines_a_present_blob_fails_the_probe_rule() {
    strategy::probes_destination_is_honest(&case(Liar::ProbesButDeclines), true).await;
}

#[tokio::test]
#[should_panic(expected = "probes_destination for a blob the source holds")]
async fn a_strategy_that_probes_without_declaring_it_fails_the_probe_rule() {
    strategy::probes_destination_is_honest(&case(Liar::ProbesButDeclines), false).await;
}

#[tokio::test]
#[should_panic(expected = "the outcome through store wrappers differs")]
async fn a_strategy_that_knows_only_concrete_stores_fails_the_wrapper_rule() {
    let case = case(Liar::OnlyConcreteStores);
    // Without wrappers it mounts...
    strategy::the_outcome_is_honest_and_as_declared(&case, ferry_conformance::Seen::Mounted).await;
    // ...behind one it does not.
    strategy::it_works_through_store_wrappers(&case, ferry_conformance::Seen::Mounted).await;
}

#[tokio::test]
#[should_panic(expected = "a prepared upload accepted bytes that do not match")]
async fn a_prepared_upload_that_commits_anything_fails_the_upload_rule() {
    strategy::a_prepared_upload_commits_only_matching_content(&case(Liar::CarelessUpload)).await;
}

#[tokio::test]
#[should_panic(expected = "`known_absent` says")]
async fn a_store_that_calls_written_content_absent_fails_the_known_absent_rule() {
    let subject = StoreSubject::new(Arc::new(ferry_conformance::fixtures::NewStore::forgetful(
        "forgetful",
    )));
    store::known_absent_never_names_held_content(&subject).await;
}

#[test]
#[should_panic(expected = "`known_absent` is offered but is not declared")]
fn a_store_offering_known_absent_must_declare_it() {
    let subject = StoreSubject::new(Arc::new(ferry_conformance::fixtures::NewStore::new("new")));
    store::capabilities_are_the_declared_ones(&subject, &["list_tags", "delete_tag"]);
}
