//! The copy engine: walks a content graph and brings every node to the destination, children
//! strictly before parents, asking the mount chain before streaming any blob.

mod node;
mod options;
mod platform;
mod retry;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::future::{BoxFuture, Shared};
use oci_spec::image::{Descriptor, Digest};
use tokio::sync::Semaphore;

pub use options::CopyOptions;
pub use platform::{MAX_INDEX_DEPTH, fetch_manifest, select_platform};

use crate::error::{Error, Result};
use crate::report::{CopyEvent, CopyReport, NodeReport, PlanTotals};
use crate::store::{ReadStore, WriteStore};
use retry::with_retries;

/// How many existence checks and mount attempts may run per allowed transfer: they move no
/// blob bytes through the client, and a promotion is nothing but them.
const REQUESTS_PER_TRANSFER: usize = 4;

/// Copies what `src_reference` names in `src` to `dst`, and tags it `dst_tag` there.
///
/// With [`CopyOptions::platform`] set and an index at `src_reference`, only the matching
/// platform's manifest is copied, and it is what gets tagged.
pub async fn copy(
    src: Arc<dyn ReadStore>,
    src_reference: &str,
    dst: Arc<dyn WriteStore>,
    dst_tag: Option<&str>,
    options: &CopyOptions,
) -> Result<CopyReport> {
    let retried = std::sync::atomic::AtomicU32::new(0);
    let root = with_retries(
        &options.retry,
        "resolve",
        || src.resolve(src_reference),
        announce(options, None, &retried),
    )
    .await?;
    let mut report = copy_root(src, root, dst, dst_tag, options).await?;
    report.retries += retried.into_inner();
    Ok(report)
}

/// Copies what `root`, a descriptor already resolved in `src` (by a tag listing and a `HEAD`,
/// say), names to `dst`, and tags it `dst_tag` there; [`copy`] without the resolve.
///
/// With [`CopyOptions::platform`] set and an index at `root`, only the matching platform's
/// manifest is copied, and it is what gets tagged.
pub async fn copy_root(
    src: Arc<dyn ReadStore>,
    mut root: Descriptor,
    dst: Arc<dyn WriteStore>,
    dst_tag: Option<&str>,
    options: &CopyOptions,
) -> Result<CopyReport> {
    let retried = std::sync::atomic::AtomicU32::new(0);
    if let Some(filter) = &options.platform {
        root = with_retries(
            &options.retry,
            "select platform",
            || select_platform(src.as_ref(), &root, filter, options.manifest_limit),
            announce(options, None, &retried),
        )
        .await?;
    }
    let tag = dst_tag.filter(|_| !options.dry_run);
    let (mut report, tagged) = run_graph(src, dst.clone(), root.clone(), options, tag).await?;
    if let Some(tag) = dst_tag {
        if !options.dry_run && !tagged {
            if options.stop.level() != crate::StopLevel::Run {
                return Err(Error::Cancelled(
                    "stopped before the tag was written".into(),
                ));
            }
            with_retries(
                &options.retry,
                "tag",
                || dst.tag(&root, tag),
                announce(options, None, &retried),
            )
            .await?;
        }
        report.tags.push(tag.to_string());
    }
    report.retries += retried.into_inner();
    Ok(report)
}

/// What a step's retries tell: a [`CopyEvent::Retrying`] for each, counted in `count`.
fn announce<'a>(
    options: &'a CopyOptions,
    descriptor: Option<&'a Descriptor>,
    count: &'a std::sync::atomic::AtomicU32,
) -> impl FnMut(u32, &Error) + 'a {
    move |retry, error| {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(sink) = &options.on_event {
            sink(&CopyEvent::Retrying {
                descriptor: descriptor.cloned(),
                retry,
                error: error.to_string(),
            });
        }
    }
}

/// Copies the graph below `root` from `src` to `dst`, children before parents, the root last.
pub async fn copy_graph(
    src: Arc<dyn ReadStore>,
    dst: Arc<dyn WriteStore>,
    root: Descriptor,
    options: &CopyOptions,
) -> Result<CopyReport> {
    Ok(run_graph(src, dst, root, options, None).await?.0)
}

/// Copies the graph; with `root_tag`, the root manifest is pushed tagged in one step. Returns
/// the report and whether the tag was set.
async fn run_graph(
    src: Arc<dyn ReadStore>,
    dst: Arc<dyn WriteStore>,
    root: Descriptor,
    options: &CopyOptions,
    root_tag: Option<&str>,
) -> Result<(CopyReport, bool)> {
    let started = Instant::now();
    let engine = Arc::new(Engine {
        src,
        dst,
        options: options.clone(),
        permits: Semaphore::new(options.concurrency.max(1)),
        requests: Semaphore::new(options.concurrency.max(1) * REQUESTS_PER_TRANSFER),
        nodes: Mutex::new(HashMap::new()),
        report: Mutex::new(Vec::new()),
        copied_manifests: Mutex::new(Vec::new()),
        failure: Mutex::new(None),
        root_tag: root_tag.map(|t| (root.digest().clone(), t.to_string())),
        root_tagged: std::sync::atomic::AtomicBool::new(false),
        step_retries: std::sync::atomic::AtomicU32::new(0),
        retries: Mutex::new(HashMap::new()),
    });
    tracing::info!(
        source = %engine.src,
        destination = %engine.dst,
        root = %root.digest(),
        chain = %options.chain,
        dry_run = options.dry_run,
        "copy starts"
    );
    let outcome = engine.clone().node(root.clone(), Vec::new()).await;
    let outcome = match outcome {
        Ok(()) if options.referrers => engine.clone().copy_referrers().await,
        other => other,
    };
    // The node futures hold the engine and the engine holds them; a node a failed parent
    // abandoned may also lead a run-wide transfer other copies wait for. Drop them all now
    // (outside the lock), so their transfers end (a layout's writer thread sees its stream
    // close) and the engine is freed.
    let in_flight = std::mem::take(&mut *engine.nodes.lock().expect("nodes lock"));
    drop(in_flight);
    if outcome.is_err() {
        let err = engine.failure.lock().expect("failure lock").take();
        return Err(err.unwrap_or_else(|| Error::Cancelled("copy failed".into())));
    }
    let nodes = std::mem::take(&mut *engine.report.lock().expect("report lock"));
    let report = CopyReport {
        source: engine.src.info().clone(),
        destination: engine.dst.info().clone(),
        root,
        tags: Vec::new(),
        chain: options.chain.to_string(),
        dry_run: options.dry_run,
        plan: options.dry_run.then(|| PlanTotals::of(&nodes)),
        bytes: nodes.iter().map(|n| n.bytes).sum(),
        retries: nodes.iter().map(|n| n.retries).sum::<u32>()
            + engine
                .step_retries
                .load(std::sync::atomic::Ordering::Relaxed),
        nodes,
        duration: started.elapsed(),
    };
    tracing::info!(
        nodes = report.nodes.len(),
        bytes = report.bytes,
        ms = report.duration.as_millis() as u64,
        "copy done"
    );
    let tagged = engine.root_tagged.load(std::sync::atomic::Ordering::SeqCst);
    Ok((report, tagged))
}

/// A node failed; the error is in [`Engine::failure`].
#[derive(Debug, Clone, Copy)]
struct Failed;

type NodeFuture = Shared<BoxFuture<'static, Result<(), Failed>>>;

struct Engine {
    src: Arc<dyn ReadStore>,
    dst: Arc<dyn WriteStore>,
    options: CopyOptions,
    /// Transfers of bytes at once ([`CopyOptions::concurrency`]).
    permits: Semaphore,
    /// Existence checks and mount attempts at once: requests that carry no blob bytes through
    /// the client, so more of them run than transfers.
    requests: Semaphore,
    nodes: Mutex<HashMap<Digest, NodeFuture>>,
    report: Mutex<Vec<NodeReport>>,
    copied_manifests: Mutex<Vec<Descriptor>>,
    failure: Mutex<Option<Error>>,
    /// The root's digest and the tag to push it under, if any.
    root_tag: Option<(Digest, String)>,
    /// Whether the root was pushed tagged.
    root_tagged: std::sync::atomic::AtomicBool,
    /// Retries of steps that are not one node's (referrers listings).
    step_retries: std::sync::atomic::AtomicU32,
    /// Retries of each node's steps.
    retries: Mutex<HashMap<Digest, u32>>,
}
