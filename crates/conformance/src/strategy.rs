//! The mount-strategy contract, one rule per function. Each takes a fresh [`Case`] and panics
//! with a message naming the strategy and what it did wrong.

use std::any::Any;
use std::sync::Arc;

use bytes::Bytes;

use super::{Counting, random_blob, random_bytes, read_all};
use ferry_core::Descriptor;
use ferry_core::PreparedUpload;
use ferry_core::engine::{CopyOptions, copy_graph};
use ferry_core::error::Error;
use ferry_core::mount::{MountChain, MountOutcome, MountPlan, MountRequest, MountStrategy};
use ferry_core::report::Action;
use ferry_core::store::{ReadStore, WriteStore, bytes_stream};

/// A strategy between a source it can be tested from and a destination.
pub struct Case {
    /// The strategy under test.
    pub strategy: Arc<dyn MountStrategy>,
    /// The source; the rules push test blobs into it.
    pub source: Arc<dyn WriteStore>,
    /// The destination.
    pub destination: Arc<dyn WriteStore>,
    keep: Vec<Box<dyn Any + Send + Sync>>,
}

impl Case {
    /// `strategy` from `source` to `destination`.
    pub fn new(
        strategy: Arc<dyn MountStrategy>,
        source: Arc<dyn WriteStore>,
        destination: Arc<dyn WriteStore>,
    ) -> Self {
        Self {
            strategy,
            source,
            destination,
            keep: Vec::new(),
        }
    }

    /// Keeps `guard` (registries, a temporary directory, an IPFS node) alive as long as the
    /// case.
    pub fn keeping(mut self, guard: impl Any + Send + Sync) -> Self {
        self.keep.push(Box::new(guard));
        self
    }
}

/// What a rule saw the strategy do with a blob the source holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// It mounted, and the destination serves the exact bytes.
    Mounted,
    /// It found the blob present.
    AlreadyPresent,
    /// It did not apply, and the destination is unchanged.
    NotApplicable,
    /// It declined, and the destination is unchanged.
    Declined,
}

async fn exact_or_absent(dst: &dyn WriteStore, desc: &Descriptor, data: &Bytes, what: &str) {
    if dst.exists(desc).await.unwrap() {
        assert_eq!(
            read_all(dst, desc).await,
            *data,
            "{what}: the destination holds different bytes"
        );
    }
}

/// Mounts a fresh blob the source holds from `source` to `destination`, checks that the
/// outcome is honest, and says what it was.
async fn honest_outcome(
    strategy: &dyn MountStrategy,
    source: &dyn WriteStore,
    destination: &dyn WriteStore,
) -> Seen {
    let (desc, data) = random_blob(100_000);
    source
        .push(&desc, bytes_stream(data.clone()))
        .await
        .unwrap();
    let request = MountRequest::new(&desc, source, destination);
    let outcome = strategy
        .mount(&request)
        .await
        .unwrap_or_else(|e| panic!("{strategy}: mount of a blob the source holds failed: {e}"));
    match outcome {
        MountOutcome::Mounted { .. } | MountOutcome::AlreadyPresent => {
            assert!(
                destination.exists(&desc).await.unwrap(),
                "{strategy}: said mounted, blob absent"
            );
            exact_or_absent(
                destination,
                &desc,
                &data,
                &format!("{strategy}: after Mounted"),
            )
            .await;
            if matches!(outcome, MountOutcome::Mounted { .. }) {
                Seen::Mounted
            } else {
                Seen::AlreadyPresent
            }
        }
        MountOutcome::NotApplicable { .. } => {
            assert!(
                !destination.exists(&desc).await.unwrap(),
                "{strategy}: NotApplicable but the destination changed"
            );
            Seen::NotApplicable
        }
        MountOutcome::Declined { upload, .. } => {
            if let Some(u) = upload {
                u.cancel().await.ok();
            }
            assert!(
                !destination.exists(&desc).await.unwrap(),
                "{strategy}: Declined but the destination changed"
            );
            Seen::Declined
        }
        other => panic!("{strategy}: an outcome this kit does not know: {other:?}"),
    }
}

/// After `Mounted` the destination serves the exact bytes; after `NotApplicable` or
/// `Declined` it does not hold the blob; and the outcome is the one the setup declares.
pub async fn the_outcome_is_honest_and_as_declared(case: &Case, expect: Seen) {
    let seen = honest_outcome(
        case.strategy.as_ref(),
        case.source.as_ref(),
        case.destination.as_ref(),
    )
    .await;
    assert_eq!(
        seen, expect,
        "{}: the outcome for a blob the source holds",
        case.strategy
    );
}

/// With the source and the destination behind a wrapper that forwards every call and every
/// capability ([`Counting`]), the strategy gives the same outcome, and a mount goes through
/// the destination's wrapper.
pub async fn it_works_through_store_wrappers(case: &Case, expect: Seen) {
    let source = Counting::new(case.source.clone());
    let destination = Counting::new(case.destination.clone());
    let seen = honest_outcome(
        case.strategy.as_ref(),
        source.as_ref(),
        destination.as_ref(),
    )
    .await;
    assert_eq!(
        seen, expect,
        "{}: the outcome through store wrappers differs from the one declared",
        case.strategy
    );
    if seen == Seen::Mounted {
        assert!(
            !destination.all_calls().is_empty(),
            "{}: mounted without asking the destination's wrapper anything",
            case.strategy
        );
    }
}

/// A blob the source does not hold gives an outcome other than `Mounted`, or `NotFound`;
/// never a panic, never content at the destination.
pub async fn a_blob_the_source_lacks_is_never_mounted(case: &Case) {
    let (desc, _) = random_blob(512);
    let request = MountRequest::new(&desc, case.source.as_ref(), case.destination.as_ref());
    match case.strategy.mount(&request).await {
        Ok(MountOutcome::Mounted { .. }) => {
            panic!("{}: mounted a blob that exists nowhere", case.strategy)
        }
        Ok(MountOutcome::Declined {
            upload: Some(u), ..
        }) => {
            u.cancel().await.ok();
        }
        Ok(_) | Err(Error::NotFound { .. }) => {}
        Err(e) => panic!(
            "{}: a missing source blob must be an outcome or NotFound, got {e}",
            case.strategy
        ),
    }
    assert!(
        !case.destination.exists(&desc).await.unwrap(),
        "{}: content appeared for a missing blob",
        case.strategy
    );
}

/// [`MountStrategy::plan`] writes nothing: through a wrapper that counts every call, the
/// destination is asked no write (no push, tag, cross-repository mount or fetch from an
/// address) and does not hold the blob afterwards; and a plan for a blob the strategy then
/// does mount (or find present) is not "not applicable".
pub async fn a_plan_writes_nothing(case: &Case, expect: Seen) {
    let (desc, data) = random_blob(30_000);
    case.source
        .push(&desc, bytes_stream(data.clone()))
        .await
        .unwrap();
    let destination = Counting::new(case.destination.clone());
    let request = MountRequest::new(&desc, case.source.as_ref(), destination.as_ref());
    let plan = case.strategy.plan(&request).await.unwrap_or_else(|e| {
        panic!(
            "{}: plan of a blob the source holds failed: {e}",
            case.strategy
        )
    });
    for write in [
        "push",
        "tag",
        "push_tagged",
        "mount_blob",
        "fetch_from_address",
    ] {
        assert_eq!(
            destination.calls(write),
            0,
            "{}: its plan called `{write}` on the destination",
            case.strategy
        );
    }
    assert!(
        !case.destination.exists(&desc).await.unwrap(),
        "{}: the destination holds the blob after a plan",
        case.strategy
    );
    if matches!(expect, Seen::Mounted | Seen::AlreadyPresent) {
        assert!(
            !matches!(plan, MountPlan::NotApplicable { .. }),
            "{}: planned {plan:?} for a blob it mounts",
            case.strategy
        );
    }
}

/// Dropping a mount future part-way leaves the destination without the blob or with
/// exactly its bytes, never a partial blob.
pub async fn a_dropped_attempt_leaves_no_partial_blob(case: &Case) {
    let (desc, data) = random_blob(4 << 20);
    case.source
        .push(&desc, bytes_stream(data.clone()))
        .await
        .unwrap();
    for polls in [1usize, 3, 10] {
        let request = MountRequest::new(&desc, case.source.as_ref(), case.destination.as_ref());
        let mut fut = case.strategy.mount(&request);
        for _ in 0..polls {
            if futures::poll!(fut.as_mut()).is_ready() {
                break;
            }
            tokio::task::yield_now().await;
        }
        drop(fut);
        exact_or_absent(
            case.destination.as_ref(),
            &desc,
            &data,
            &format!("{}: after a dropped mount", case.strategy),
        )
        .await;
    }
}

/// [`MountStrategy::probes_destination`] tells the truth. A strategy that declares it
/// probes says so for a blob the source holds, and then answers `AlreadyPresent` or
/// `Mounted` for a blob the destination holds, so the engine, which skips its own existence
/// check, never streams a blob the destination has; the engine indeed asks the destination
/// nothing before the attempt. A strategy that does not declare it says it does not probe,
/// and the engine checks the destination itself.
pub async fn probes_destination_is_honest(case: &Case, declared: bool) {
    let strategy = case.strategy.as_ref();
    let (desc, data) = random_blob(20_000);
    case.source
        .push(&desc, bytes_stream(data.clone()))
        .await
        .unwrap();
    case.destination
        .push(&desc, bytes_stream(data.clone()))
        .await
        .unwrap();
    let request = MountRequest::new(&desc, case.source.as_ref(), case.destination.as_ref());
    assert_eq!(
        strategy.probes_destination(&request),
        declared,
        "{strategy}: probes_destination for a blob the source holds"
    );
    if declared {
        let outcome = strategy.mount(&request).await.unwrap();
        assert!(
            matches!(
                outcome,
                MountOutcome::AlreadyPresent | MountOutcome::Mounted { .. }
            ),
            "{strategy}: says it probes the destination, but for a blob the destination \
             holds it answered {outcome:?}"
        );
        assert_eq!(read_all(case.destination.as_ref(), &desc).await, data);
    }

    // The engine, with the strategy alone in its chain.
    let (blob, bytes) = random_blob(10_000);
    case.source
        .push(&blob, bytes_stream(bytes.clone()))
        .await
        .unwrap();
    case.destination
        .push(&blob, bytes_stream(bytes))
        .await
        .unwrap();
    let destination = Counting::new(case.destination.clone());
    let source: Arc<dyn ReadStore> = case.source.clone();
    let options = CopyOptions::default().with_chain(MountChain::new().with(case.strategy.clone()));
    let report = copy_graph(source, destination.clone(), blob.clone(), &options)
        .await
        .unwrap_or_else(|e| panic!("{strategy}: a copy of a blob the destination holds: {e}"));
    let node = report.node(blob.digest()).expect("the blob's node");
    assert!(
        matches!(node.action, Action::Exists | Action::Mounted),
        "{strategy}: a blob the destination holds was {:?}",
        node.action
    );
    assert_eq!(
        node.bytes, 0,
        "{strategy}: a blob the destination holds was streamed"
    );
    assert_eq!(
        destination.calls("exists"),
        usize::from(!declared),
        "{strategy}: the engine's existence checks (it skips them when the strategy probes)"
    );
}

/// Declines a blob the source lacks, with the upload the strategy prepared.
async fn prepared_upload(case: &Case, desc: &Descriptor) -> Box<dyn PreparedUpload> {
    let request = MountRequest::new(desc, case.source.as_ref(), case.destination.as_ref());
    match case.strategy.mount(&request).await.unwrap() {
        MountOutcome::Declined {
            upload: Some(upload),
            ..
        } => upload,
        other => panic!(
            "{}: `prepares_uploads` declared, but a blob the source lacks gave {other:?}",
            case.strategy
        ),
    }
}

/// A prepared upload commits only content that matches the descriptor: wrong bytes fail and
/// leave nothing; the right bytes, in another upload, are committed exactly.
///
/// Run for strategies that declare `prepares_uploads`; a strategy that never leaves an upload
/// open (a link between layouts, an IPFS fetch) cannot fail it.
pub async fn a_prepared_upload_commits_only_matching_content(case: &Case) {
    let dst = case.destination.as_ref();
    let (desc, data) = random_blob(30_000);
    let upload = prepared_upload(case, &desc).await;
    let wrong = upload
        .upload(&desc, bytes_stream(random_bytes(30_000)))
        .await;
    assert!(
        wrong.is_err(),
        "{}: a prepared upload accepted bytes that do not match",
        case.strategy
    );
    assert!(
        !dst.exists(&desc).await.unwrap(),
        "{}: a prepared upload committed bytes that do not match",
        case.strategy
    );
    let upload = prepared_upload(case, &desc).await;
    upload
        .upload(&desc, bytes_stream(data.clone()))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{}: a prepared upload of the right bytes failed: {e}",
                case.strategy
            )
        });
    assert_eq!(read_all(dst, &desc).await, data);
}

/// Cancelling a prepared upload succeeds and leaves nothing behind. Run, as the rule above,
/// for strategies that declare `prepares_uploads`.
pub async fn cancelling_a_prepared_upload_leaves_nothing(case: &Case) {
    let (desc, _) = random_blob(1000);
    let upload = prepared_upload(case, &desc).await;
    upload.cancel().await.unwrap_or_else(|e| {
        panic!(
            "{}: cancelling a prepared upload failed: {e}",
            case.strategy
        )
    });
    assert!(
        !case.destination.exists(&desc).await.unwrap(),
        "{}: a cancelled upload left the blob",
        case.strategy
    );
}
