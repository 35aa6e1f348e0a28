//! The copy engine: walks a content graph and brings every node to the destination, children
//! strictly before parents, asking the mount chain before streaming any blob.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt, Shared};
use oci_spec::image::{Descriptor, Digest};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::locations::{BlobLocations, InMemoryLocations};
use crate::model::{
    self, Manifest, PlatformFilter, is_foreign_layer, is_index, is_manifest, media_type_str,
};
use crate::mount::{ChainOutcome, ChainPlan, Meter, MountChain, MountRequest};
use crate::report::{Action, CopyEvent, CopyReport, CopyWarning, NodeReport, PlanTotals};
use crate::store::{ReadStore, WriteStore};
use crate::transfers::{BlobTransfers, Claim};
use crate::verify::{read_to_bytes, verify_bytes};

/// Tries of one step of a copy (resolving the source, one node's fetch and push, the tag)
/// when it fails in a way that may pass: a temporary error, or content that arrived short or
/// altered. The registry client retries single requests itself; this starts a whole transfer
/// over when its stream broke on the way or its answer was mislabelled.
const STEP_TRIES: u32 = 4;

/// The pause before the second try of a step; it grows by as much before each further try.
const STEP_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Whether a failed step is worth another try: a temporary error, or bytes that did not
/// match their descriptor (a transfer cut or spoiled on the way; a source that really is
/// corrupt fails again, with the same error).
fn worth_retrying(error: &Error) -> bool {
    error.is_temporary()
        || matches!(
            error,
            Error::DigestMismatch { .. } | Error::SizeMismatch { .. }
        )
}

/// Runs `step` until it succeeds, fails in a way not [`worth_retrying`], or has been tried
/// [`STEP_TRIES`] times.
async fn with_retries<T, F, Fut>(what: &str, mut step: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 1;
    loop {
        match step().await {
            Err(e) if attempt < STEP_TRIES && worth_retrying(&e) => {
                tracing::debug!(what, attempt, error = %e, "step failed, trying again");
                tokio::time::sleep(STEP_RETRY_PAUSE * attempt).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// How many existence checks and mount attempts may run per allowed transfer: they move no
/// blob bytes through the client, and a promotion is nothing but them.
const REQUESTS_PER_TRANSFER: usize = 4;

/// A callback receiving [`CopyEvent`]s.
pub type EventSink = Arc<dyn Fn(&CopyEvent) + Send + Sync>;

/// How a copy runs.
///
/// Built from [`CopyOptions::default`] with the `with_…` methods; it is `#[non_exhaustive]`,
/// so options can be added without breaking callers.
///
/// ```
/// # use ferry_core::{CopyOptions, MountChain};
/// let options = CopyOptions::default()
///     .with_chain(MountChain::new())
///     .with_concurrency(4)
///     .with_referrers(true);
/// assert_eq!(options.concurrency, 4);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct CopyOptions {
    /// The strategies asked before any blob is streamed. Empty: stream everything.
    pub chain: MountChain,
    /// Where blobs were seen; filled by this copy and asked by strategies.
    pub locations: Arc<dyn BlobLocations>,
    /// How many requests or transfers run at once (at least 1).
    pub concurrency: usize,
    /// The largest manifest accepted, in bytes.
    pub manifest_limit: u64,
    /// Copy only this platform's manifest out of an index at the root.
    pub platform: Option<PlatformFilter>,
    /// Report the plan and write nothing.
    pub dry_run: bool,
    /// Also copy the referrers (signatures, SBOMs, attestations) of every manifest copied.
    pub referrers: bool,
    /// Receives progress events.
    pub on_event: Option<EventSink>,
    /// The caller knows the destination lacks the root (a sync whose listing of the
    /// destination's tags does not name the tag): the root's existence is not checked, saving
    /// a request per copy. Were it there after all, the copy walks its children (found
    /// present) and pushes it again, which is harmless.
    pub root_absent: bool,
    /// The blob transfers of a run of many copies (a sync), shared by all of them: a blob
    /// another copy is bringing to the same destination authority is waited for and then
    /// mounted, not streamed again. `None`: this copy alone.
    pub transfers: Option<Arc<BlobTransfers>>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            chain: MountChain::new(),
            locations: Arc::new(InMemoryLocations::new()),
            concurrency: 8,
            manifest_limit: model::DEFAULT_MANIFEST_LIMIT,
            platform: None,
            dry_run: false,
            referrers: false,
            on_event: None,
            root_absent: false,
            transfers: None,
        }
    }
}

impl CopyOptions {
    /// The strategies asked before any blob is streamed.
    pub fn with_chain(mut self, chain: MountChain) -> Self {
        self.chain = chain;
        self
    }

    /// Where blobs were seen, filled by this copy and asked by strategies (an in-memory
    /// record by default; `ferry_cache::PersistentLocations` keeps it
    /// between runs).
    pub fn with_locations(mut self, locations: Arc<dyn BlobLocations>) -> Self {
        self.locations = locations;
        self
    }

    /// How many transfers run at once (at least 1; 8 by default).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// The largest manifest accepted, in bytes (4 MiB by default).
    pub fn with_manifest_limit(mut self, limit: u64) -> Self {
        self.manifest_limit = limit;
        self
    }

    /// Copies only this platform's manifest out of an index at the root.
    pub fn with_platform(mut self, platform: Option<PlatformFilter>) -> Self {
        self.platform = platform;
        self
    }

    /// Reports the plan and writes nothing.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Also copies the referrers (signatures, SBOMs, attestations) of every manifest copied.
    pub fn with_referrers(mut self, referrers: bool) -> Self {
        self.referrers = referrers;
        self
    }

    /// Delivers progress events to `sink` as the copy runs.
    pub fn on_event(mut self, sink: impl Fn(&CopyEvent) + Send + Sync + 'static) -> Self {
        self.on_event = Some(Arc::new(sink));
        self
    }

    /// Tells that the destination lacks the root (see [`CopyOptions::root_absent`]).
    pub fn with_root_absent(mut self, root_absent: bool) -> Self {
        self.root_absent = root_absent;
        self
    }

    /// Shares the blob transfers of a run of many copies (see [`CopyOptions::transfers`]).
    pub fn with_transfers(mut self, transfers: Arc<BlobTransfers>) -> Self {
        self.transfers = Some(transfers);
        self
    }
}

impl std::fmt::Debug for CopyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyOptions")
            .field("chain", &self.chain.to_string())
            .field("concurrency", &self.concurrency)
            .field("manifest_limit", &self.manifest_limit)
            .field("platform", &self.platform)
            .field("dry_run", &self.dry_run)
            .field("referrers", &self.referrers)
            .field("transfers", &self.transfers.is_some())
            .finish_non_exhaustive()
    }
}

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
    let root = with_retries("resolve", || src.resolve(src_reference)).await?;
    copy_root(src, root, dst, dst_tag, options).await
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
    if let Some(filter) = &options.platform {
        root = with_retries("select platform", || {
            select_platform(src.as_ref(), &root, filter, options.manifest_limit)
        })
        .await?;
    }
    let tag = dst_tag.filter(|_| !options.dry_run);
    let (mut report, tagged) = run_graph(src, dst.clone(), root.clone(), options, tag).await?;
    if let Some(tag) = dst_tag {
        if !options.dry_run && !tagged {
            with_retries("tag", || dst.tag(&root, tag)).await?;
        }
        report.tags.push(tag.to_string());
    }
    Ok(report)
}

/// How many levels of indexes [`select_platform`] searches: the root index is the first, an
/// index it lists the second, and so on. Indexes further down are not fetched (the error for
/// a platform that was not found says so).
pub const MAX_INDEX_DEPTH: usize = 8;

/// Picks the manifest for `filter` out of the index `root`; any other root is returned as is.
///
/// The index's entries are searched in order, descending into the indexes it lists (an index
/// of indexes) up to [`MAX_INDEX_DEPTH`] levels, each index fetched once: the first image
/// manifest whose platform matches is picked. A listed index whose entry names another
/// platform is not searched; one whose entry names this platform is picked when nothing in it
/// matches more closely. When nothing matches, the error lists every platform found.
pub async fn select_platform(
    src: &dyn ReadStore,
    root: &Descriptor,
    filter: &PlatformFilter,
    limit: u64,
) -> Result<Descriptor> {
    if !is_index(&media_type_str(root)) {
        return Ok(root.clone());
    }
    let mut search = PlatformSearch {
        src,
        filter,
        limit,
        platforms: Vec::new(),
        searched: std::collections::HashSet::from([root.digest().clone()]),
        too_deep: 0,
    };
    if let Some(found) = search.index(root, 1).await? {
        return Ok(found);
    }
    let below = match search.searched.len() - 1 {
        0 => None,
        1 => Some("the index below it".to_string()),
        n => Some(format!("the {n} indexes below it")),
    };
    let mut hint = match (search.platforms.is_empty(), below) {
        (true, None) => "no entry of the index names a platform".to_string(),
        (true, Some(below)) => format!("no entry of the index or of {below} names a platform"),
        (false, None) => format!("the index has: {}", search.platforms.join(", ")),
        (false, Some(below)) => format!(
            "the index and {below} have: {}",
            search.platforms.join(", ")
        ),
    };
    match search.too_deep {
        0 => {}
        1 => hint.push_str(&format!(
            "; an index nested deeper than {MAX_INDEX_DEPTH} levels was not searched"
        )),
        n => hint.push_str(&format!(
            "; {n} indexes nested deeper than {MAX_INDEX_DEPTH} levels were not searched"
        )),
    }
    Err(Error::NotFound {
        what: format!("platform `{filter}` in index `{}`", root.digest()),
        hint: Some(hint),
    })
}

/// The state of one [`select_platform`] search.
struct PlatformSearch<'a> {
    src: &'a dyn ReadStore,
    filter: &'a PlatformFilter,
    limit: u64,
    /// Every platform named so far, in the order found, once each.
    platforms: Vec<String>,
    /// The indexes fetched (or being fetched), so none is searched twice.
    searched: std::collections::HashSet<Digest>,
    /// Listed indexes left unsearched for being too deep.
    too_deep: usize,
}

impl PlatformSearch<'_> {
    /// Searches the index `descriptor`, at `depth` (the root is 1).
    fn index<'s>(
        &'s mut self,
        descriptor: &'s Descriptor,
        depth: usize,
    ) -> BoxFuture<'s, Result<Option<Descriptor>>> {
        async move {
            let index = fetch_manifest(self.src, descriptor, self.limit).await?;
            for entry in &index.manifests {
                let platform = entry.platform().as_ref();
                if let Some(p) = platform {
                    let shown = platform_string(p);
                    if !self.platforms.contains(&shown) {
                        self.platforms.push(shown);
                    }
                }
                let matches = platform.is_some_and(|p| self.filter.matches(p));
                if !is_index(&media_type_str(entry)) {
                    if matches {
                        return Ok(Some(entry.clone()));
                    }
                    continue;
                }
                if platform.is_some() && !matches {
                    continue;
                }
                if depth >= MAX_INDEX_DEPTH {
                    self.too_deep += 1;
                } else if self.searched.insert(entry.digest().clone())
                    && let Some(found) = self.index(entry, depth + 1).await?
                {
                    return Ok(Some(found));
                }
                if matches {
                    return Ok(Some(entry.clone()));
                }
            }
            Ok(None)
        }
        .boxed()
    }
}

/// `os/arch[/variant]`.
fn platform_string(p: &oci_spec::image::Platform) -> String {
    let mut s = format!("{}/{}", p.os(), p.architecture());
    if let Some(v) = p.variant() {
        s.push('/');
        s.push_str(v);
    }
    s
}

/// Fetches, verifies and parses the manifest `descriptor` names, refusing more than `limit`.
pub async fn fetch_manifest(
    src: &dyn ReadStore,
    descriptor: &Descriptor,
    limit: u64,
) -> Result<Manifest> {
    let what = format!("manifest `{}`", descriptor.digest());
    if descriptor.size() > limit {
        return Err(Error::TooLarge {
            what,
            size: descriptor.size(),
            limit,
        });
    }
    let stream = src.fetch(descriptor).await?;
    let bytes = read_to_bytes(stream, &what, limit).await?;
    verify_bytes(descriptor, &bytes)?;
    Manifest::parse(descriptor, bytes)
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
}

impl Engine {
    /// The memoized copy of one node: every parent that shares it awaits the same future.
    fn node(self: Arc<Self>, descriptor: Descriptor, path: Vec<Digest>) -> NodeFuture {
        let digest = descriptor.digest().clone();
        let mut nodes = self.nodes.lock().expect("nodes lock");
        if let Some(f) = nodes.get(&digest) {
            return f.clone();
        }
        let this = self.clone();
        let fut = async move {
            match this.copy_node(&descriptor, path).await {
                Ok(()) => Ok(()),
                Err(e) => {
                    let mut slot = this.failure.lock().expect("failure lock");
                    if slot.is_none() {
                        *slot = Some(e);
                    }
                    Err(Failed)
                }
            }
        }
        .boxed()
        .shared();
        nodes.insert(digest, fut.clone());
        fut
    }

    fn emit(&self, event: CopyEvent) {
        if let Some(sink) = &self.options.on_event {
            sink(&event);
        }
    }

    fn finish(&self, node: NodeReport) {
        tracing::debug!(
            digest = %node.descriptor.digest(),
            action = node.action.verb(),
            strategy = node.strategy.as_deref().unwrap_or(""),
            bytes = node.bytes,
            "node done"
        );
        self.emit(CopyEvent::Done(node.clone()));
        self.report.lock().expect("report lock").push(node);
    }

    fn simple(descriptor: &Descriptor, action: Action, started: Instant) -> NodeReport {
        NodeReport {
            descriptor: descriptor.clone(),
            action,
            strategy: None,
            from: None,
            method: None,
            reason: None,
            bytes: 0,
            duration: started.elapsed(),
            attempts: Vec::new(),
            warnings: Vec::new(),
        }
    }

    async fn copy_node(self: &Arc<Self>, descriptor: &Descriptor, path: Vec<Digest>) -> Result<()> {
        let media_type = media_type_str(descriptor);
        if is_foreign_layer(&media_type) {
            let mut node = Self::simple(descriptor, Action::Skipped, Instant::now());
            node.reason = Some("foreign (non-distributable) layer".into());
            self.finish(node);
            return Ok(());
        }
        if is_manifest(&media_type) {
            self.copy_manifest(descriptor, path).await
        } else {
            self.copy_blob(descriptor).await
        }
    }

    async fn copy_manifest(
        self: &Arc<Self>,
        descriptor: &Descriptor,
        mut path: Vec<Digest>,
    ) -> Result<()> {
        let started = Instant::now();
        let manifest = {
            let _permit = self.permits.acquire().await.expect("semaphore open");
            let known_absent = self.options.root_absent
                && self
                    .root_tag
                    .as_ref()
                    .is_some_and(|(root, _)| root == descriptor.digest());
            if !known_absent && with_retries("exists", || self.dst_holds(descriptor)).await? {
                self.finish(Self::simple(descriptor, Action::Exists, started));
                return Ok(());
            }
            with_retries("fetch manifest", || {
                fetch_manifest(self.src.as_ref(), descriptor, self.options.manifest_limit)
            })
            .await?
        };
        let src_info = self.src.info().clone();
        self.options
            .locations
            .record(descriptor.digest(), &src_info);
        let children = manifest.successors();
        let blob_digests: Vec<Digest> = children
            .iter()
            .filter(|d| !is_manifest(&media_type_str(d)))
            .map(|d| d.digest().clone())
            .collect();
        self.options.locations.record_all(&blob_digests, &src_info);

        path.push(descriptor.digest().clone());
        let mut waits = Vec::with_capacity(children.len());
        for child in children {
            if let Some(pos) = path.iter().position(|d| d == child.digest()) {
                let chain: Vec<String> = path[pos..]
                    .iter()
                    .map(|d| format!("`{}`", model::short_digest(d)))
                    .collect();
                return Err(Error::Cycle {
                    digest: child.digest().clone(),
                    path: chain.join(" -> "),
                });
            }
            waits.push(self.clone().node(child, path.clone()));
        }
        // Children strictly before the parent: every child must be at the destination.
        if futures::future::try_join_all(waits).await.is_err() {
            return Err(Error::Cancelled(format!(
                "a child of `{}` failed",
                descriptor.digest()
            )));
        }

        if self.options.dry_run {
            self.finish(Self::simple(descriptor, Action::WouldCopy, started));
            return Ok(());
        }
        {
            let _permit = self.permits.acquire().await.expect("semaphore open");
            self.emit(CopyEvent::Copying(descriptor.clone()));
            let size = manifest.bytes.len() as u64;
            let bytes = || crate::store::bytes_stream(manifest.bytes.clone());
            match &self.root_tag {
                Some((root, tag)) if root == descriptor.digest() => {
                    with_retries("push root", || {
                        self.dst.push_tagged(descriptor, bytes(), tag)
                    })
                    .await?;
                    self.root_tagged
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                }
                _ => {
                    with_retries("push manifest", || self.dst.push(descriptor, bytes())).await?;
                }
            }
            self.emit(CopyEvent::Bytes {
                descriptor: descriptor.clone(),
                done: size,
                total: size,
            });
        }
        self.copied_manifests
            .lock()
            .expect("manifests lock")
            .push(descriptor.clone());
        let mut node = Self::simple(descriptor, Action::Copied, started);
        node.bytes = descriptor.size();
        self.finish(node);
        Ok(())
    }

    async fn copy_blob(self: &Arc<Self>, descriptor: &Descriptor) -> Result<()> {
        let lead = match &self.options.transfers {
            Some(transfers) if !self.options.dry_run => {
                match self.claim_transfer(transfers, descriptor).await {
                    Some(lead) => Some(lead),
                    None => return Ok(()),
                }
            }
            _ => None,
        };
        with_retries("copy blob", || self.copy_blob_once(descriptor)).await?;
        if let Some(lead) = lead {
            lead.landed(self.dst.info());
        }
        Ok(())
    }

    /// Claims the run-wide transfer of the blob to the destination, waiting (without holding
    /// a permit) while another copy brings it to this authority or this store. `None` when
    /// this run already brought it to this very store (reported as present, without a
    /// request).
    async fn claim_transfer(
        self: &Arc<Self>,
        transfers: &Arc<BlobTransfers>,
        descriptor: &Descriptor,
    ) -> Option<crate::transfers::Lead> {
        let started = Instant::now();
        loop {
            match transfers.claim(self.dst.info(), descriptor.digest()) {
                Claim::Lead(lead) => return Some(lead),
                Claim::Present => {
                    let mut node = Self::simple(descriptor, Action::Exists, started);
                    node.reason = Some("brought here earlier in this run".into());
                    self.finish(node);
                    return None;
                }
                Claim::Wait(wait) => {
                    tracing::debug!(
                        digest = %descriptor.digest(),
                        destination = %self.dst,
                        "waiting for another copy's transfer of the blob"
                    );
                    wait.done().await;
                }
            }
        }
    }

    /// The copy's own existence check of a node at the destination: none when the destination
    /// knows it lacks it ([`crate::KnownAbsent`]), else [`ReadStore::exists`].
    async fn dst_holds(&self, descriptor: &Descriptor) -> Result<bool> {
        if let Some(known) = self.dst.capabilities().known_absent
            && known.known_absent(descriptor).await
        {
            return Ok(false);
        }
        self.dst.exists(descriptor).await
    }

    /// One try of [`Engine::copy_blob`]: the existence check and the mount chain under a
    /// request permit, the fallback stream under a transfer permit.
    async fn copy_blob_once(self: &Arc<Self>, descriptor: &Descriptor) -> Result<()> {
        let request_permit = self.requests.acquire().await.expect("semaphore open");
        let started = Instant::now();
        let digest = descriptor.digest();
        let candidates = self.options.locations.locations(digest);
        let meter = Meter::new(descriptor, self.options.on_event.clone());
        let request = MountRequest::new(descriptor, self.src.as_ref(), self.dst.as_ref())
            .with_candidates(&candidates)
            .with_meter(&meter);
        let chain = &self.options.chain;
        if (self.options.dry_run || !chain.probes_destination(&request))
            && self.dst_holds(descriptor).await?
        {
            self.options.locations.record(digest, self.dst.info());
            self.finish(Self::simple(descriptor, Action::Exists, started));
            return Ok(());
        }
        if self.options.dry_run {
            // Reads only: each strategy says what it would do without writing.
            let mut node = Self::simple(descriptor, Action::WouldCopy, started);
            match chain.plan(&request).await {
                ChainPlan::WouldMount {
                    strategy,
                    from,
                    method,
                } => {
                    node.action = Action::WouldMount;
                    node.strategy = Some(strategy);
                    node.from = Some(from);
                    node.method = Some(method);
                }
                ChainPlan::AlreadyPresent { strategy } => {
                    node.action = Action::Exists;
                    node.strategy = Some(strategy);
                }
                ChainPlan::WouldTry { strategy, reason } => {
                    node.action = Action::WouldTry;
                    node.strategy = Some(strategy);
                    node.reason = Some(reason);
                }
                _ => {}
            }
            node.duration = started.elapsed();
            self.finish(node);
            return Ok(());
        }
        let (outcome, attempts) = chain.mount(&request).await?;
        let mut node = Self::simple(descriptor, Action::Copied, started);
        node.attempts = attempts;
        match outcome {
            ChainOutcome::Mounted {
                strategy,
                from,
                method,
                corrupt,
            } => {
                // The report carries the warning (`ferry cp` prints it); the log says it at
                // `info`, so a program printing warnings is not told twice.
                for c in corrupt {
                    tracing::info!(
                        %digest,
                        location = %crate::redact::text(&c.location),
                        reason = %crate::redact::text(&c.reason),
                        from = %crate::redact::text(&from),
                        "a copy of the blob failed verification; it was taken from elsewhere"
                    );
                    node.warnings.push(CopyWarning::CorruptCopy {
                        digest: digest.to_string(),
                        location: c.location,
                        is_source: c.is_source,
                        reason: c.reason,
                        healed_from: from.clone(),
                    });
                }
                node.action = Action::Mounted;
                node.strategy = Some(strategy);
                node.from = Some(from);
                node.method = Some(method);
            }
            ChainOutcome::AlreadyPresent { strategy } => {
                node.action = Action::Exists;
                node.strategy = Some(strategy);
            }
            ChainOutcome::Fallback { upload } => {
                drop(request_permit);
                let _permit = self.permits.acquire().await.expect("semaphore open");
                let stream = request.count_bytes(self.src.fetch(descriptor).await?);
                match upload {
                    Some(prepared) => prepared.upload(descriptor, stream).await?,
                    None => self.dst.push(descriptor, stream).await?,
                }
                // The destination verified size and digest before committing.
                self.options.locations.record(digest, self.src.info());
            }
        }
        node.bytes = meter.bytes();
        self.options.locations.record(digest, self.dst.info());
        node.duration = started.elapsed();
        self.finish(node);
        Ok(())
    }

    /// Copies the referrers of every manifest copied, and theirs, until none is left.
    async fn copy_referrers(self: Arc<Self>) -> Result<(), Failed> {
        let mut visited = std::collections::HashSet::new();
        loop {
            let pending: Vec<Descriptor> =
                std::mem::take(&mut *self.copied_manifests.lock().expect("manifests lock"));
            let pending: Vec<Descriptor> = pending
                .into_iter()
                .filter(|d| visited.insert(d.digest().clone()))
                .collect();
            if pending.is_empty() {
                return Ok(());
            }
            for subject in pending {
                let referrers =
                    match with_retries("referrers", || self.src.referrers(&subject)).await {
                        Ok(r) => r,
                        Err(e) => {
                            *self.failure.lock().expect("failure lock") = Some(e);
                            return Err(Failed);
                        }
                    };
                tracing::debug!(subject = %subject.digest(), count = referrers.len(), "referrers");
                let waits: Vec<_> = referrers
                    .into_iter()
                    .map(|r| self.clone().node(r, Vec::new()))
                    .collect();
                futures::future::try_join_all(waits).await?;
            }
        }
    }
}
