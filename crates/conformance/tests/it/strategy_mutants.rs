//! Each rule of the strategy contract fails for a strategy broken on purpose to break it, with
//! the rule's own message; the same strategy without its flaw passes the whole suite.

use std::sync::Arc;

use async_trait::async_trait;
use ferry_conformance::{Case, Seen, strategy};
use ferry_core::{
    ByteStream, Descriptor, Error, MemoryStore, MountMethod, MountOutcome, MountPlan, MountRequest,
    MountStrategy, PreparedUpload, Result, WriteStore, bytes_stream, verify::read_to_bytes,
};

use crate::kit::Careless;

/// What a [`Copier`] does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    /// Nothing: an honest strategy.
    None,
    /// Says it mounted a blob it did not write.
    MountedButAbsent,
    /// Writes the blob, then says it declined.
    DeclinesAfterWriting,
    /// Plans by mounting.
    PlansByMounting,
    /// Says it mounted a blob the source does not hold.
    MountsWhatItCannotFind,
    /// Fails with an error other than `NotFound` for a blob the source does not hold.
    FailsOnAMissingBlob,
    /// Writes half the blob in place, then the rest, as a link strategy that wrote into the
    /// blob's file instead of staging and renaming would.
    WritesInPlace,
    /// Prepares uploads that cannot be cancelled.
    UncancellableUploads,
}

/// A strategy that copies a blob through the process from the source to the destination it
/// was built for, and declines a blob the source lacks with an upload into that destination.
#[derive(Debug)]
struct Copier {
    flaw: Flaw,
    destination: Arc<dyn WriteStore>,
}

impl std::fmt::Display for Copier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Copier({:?})", self.flaw)
    }
}

/// A case of a [`Copier`] with `flaw` between memory stores.
fn case(flaw: Flaw) -> Case {
    into(flaw, Arc::new(MemoryStore::new("dst")))
}

/// A case of a [`Copier`] with `flaw` into `destination`.
fn into(flaw: Flaw, destination: Arc<dyn WriteStore>) -> Case {
    Case::new(
        Arc::new(Copier {
            flaw,
            destination: destination.clone(),
        }),
        Arc::new(MemoryStore::new("src")),
        destination,
    )
}

#[async_trait]
impl MountStrategy for Copier {
    fn name(&self) -> &str {
        "copier"
    }

    async fn mount(&self, request: &MountRequest<'_>) -> Result<MountOutcome> {
        let desc = request.descriptor;
        let data = match request.source.fetch(desc).await {
            Ok(data) => read_to_bytes(data, "blob", u64::MAX).await?,
            Err(e) if e.is_not_found() => {
                return match self.flaw {
                    Flaw::MountsWhatItCannotFind => Ok(mounted(request)),
                    Flaw::FailsOnAMissingBlob => Err(Error::store("copier", "the source broke")),
                    _ => Ok(MountOutcome::declined_with_upload(
                        "the source lacks it",
                        Box::new(Upload {
                            into: self.destination.clone(),
                            cancellable: self.flaw != Flaw::UncancellableUploads,
                        }),
                    )),
                };
            }
            Err(e) => return Err(e),
        };
        match self.flaw {
            Flaw::MountedButAbsent => return Ok(mounted(request)),
            Flaw::WritesInPlace => {
                let half = data.slice(..data.len() / 2);
                request.destination.push(desc, bytes_stream(half)).await?;
                tokio::task::yield_now().await;
            }
            _ => {}
        }
        request.destination.push(desc, bytes_stream(data)).await?;
        if self.flaw == Flaw::DeclinesAfterWriting {
            return Ok(MountOutcome::declined("changed its mind"));
        }
        Ok(mounted(request))
    }

    async fn plan(&self, request: &MountRequest<'_>) -> Result<MountPlan> {
        if self.flaw == Flaw::PlansByMounting {
            self.mount(request).await?;
        }
        Ok(MountPlan::would_try("copies whatever the source holds"))
    }
}

fn mounted(request: &MountRequest<'_>) -> MountOutcome {
    MountOutcome::mounted(request.source.info(), MountMethod::other("copy"))
}

/// An upload into the destination the strategy was built for.
#[derive(Debug)]
struct Upload {
    into: Arc<dyn WriteStore>,
    cancellable: bool,
}

#[async_trait]
impl PreparedUpload for Upload {
    async fn upload(self: Box<Self>, descriptor: &Descriptor, data: ByteStream) -> Result<()> {
        self.into.push(descriptor, data).await
    }

    async fn cancel(self: Box<Self>) -> Result<()> {
        if self.cancellable {
            Ok(())
        } else {
            Err(Error::store("copier", "the upload could not be cancelled"))
        }
    }
}

/// The honest strategy passes every rule, so the mutants below fail for their flaw alone.
mod honest {
    use super::*;

    async fn setup() -> Case {
        case(Flaw::None)
    }

    ferry_conformance::strategy_suite!(setup: setup, expect: Mounted, declares: [prepares_uploads]);
}

#[tokio::test]
#[should_panic(expected = "said mounted, blob absent")]
async fn a_strategy_claiming_a_mount_it_did_not_make_fails_the_outcome_rule() {
    strategy::the_outcome_is_honest_and_as_declared(&case(Flaw::MountedButAbsent), Seen::Mounted)
        .await;
}

#[tokio::test]
#[should_panic(expected = "Declined but the destination changed")]
async fn a_strategy_declining_after_writing_fails_the_outcome_rule() {
    strategy::the_outcome_is_honest_and_as_declared(
        &case(Flaw::DeclinesAfterWriting),
        Seen::Declined,
    )
    .await;
}

#[tokio::test]
#[should_panic(expected = "the outcome for a blob the source holds")]
async fn a_strategy_declared_with_another_outcome_fails_the_outcome_rule() {
    strategy::the_outcome_is_honest_and_as_declared(&case(Flaw::None), Seen::NotApplicable).await;
}

#[tokio::test]
#[should_panic(expected = "its plan called `push` on the destination")]
async fn a_strategy_planning_by_mounting_fails_the_plan_rule() {
    strategy::a_plan_writes_nothing(&case(Flaw::PlansByMounting), Seen::Mounted).await;
}

#[tokio::test]
#[should_panic(expected = "mounted a blob that exists nowhere")]
async fn a_strategy_mounting_what_the_source_lacks_fails_the_missing_blob_rule() {
    strategy::a_blob_the_source_lacks_is_never_mounted(&case(Flaw::MountsWhatItCannotFind)).await;
}

#[tokio::test]
#[should_panic(expected = "a missing source blob must be an outcome or NotFound")]
async fn a_strategy_failing_on_a_missing_blob_fails_the_missing_blob_rule() {
    strategy::a_blob_the_source_lacks_is_never_mounted(&case(Flaw::FailsOnAMissingBlob)).await;
}

/// A destination that commits what it is given lets a dropped in-place write show.
fn careless() -> Arc<dyn WriteStore> {
    Arc::new(Careless(MemoryStore::new("careless")))
}

#[tokio::test]
async fn an_honest_copy_into_a_careless_destination_keeps_the_dropped_attempt_rule() {
    strategy::a_dropped_attempt_leaves_no_partial_blob(&into(Flaw::None, careless())).await;
}

#[tokio::test]
#[should_panic(expected = "after a dropped mount: the destination holds different bytes")]
async fn a_strategy_writing_in_place_fails_the_dropped_attempt_rule() {
    strategy::a_dropped_attempt_leaves_no_partial_blob(&into(Flaw::WritesInPlace, careless()))
        .await;
}

#[tokio::test]
#[should_panic(expected = "cancelling a prepared upload failed")]
async fn an_uncancellable_upload_fails_the_cancel_rule() {
    strategy::cancelling_a_prepared_upload_leaves_nothing(&case(Flaw::UncancellableUploads)).await;
}
