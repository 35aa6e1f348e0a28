//! The sync runner: lists repositories and tags, compares, copies, prunes.
//!
//! Three kinds of work overlap, each bounded: listing repositories (a plan per repository:
//! its source tags, filtered, and its destination tags), comparing tags (a resolve of the
//! source tag and, when the destination has it, of the destination tag), and copying the
//! images that changed. Pruning runs last, once every image is done.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, FuturesUnordered, StreamExt};
use oci_spec::image::{Descriptor, Digest};

use super::filter::{FilteredBy, referrers_tag_subject};
use super::report::{FailureKind, ImageReport, Outcome, SyncEvent, SyncReport, Totals};
use super::stop::StopLevel;
use super::{SyncEntry, SyncOptions, SyncSource};
use crate::engine::{EventSink, copy_graph, copy_root, select_platform};
use crate::error::{Error, Result};
use crate::memory::MemoryStore;
use crate::model::OCI_MANIFEST;
use crate::report::{Action, CopyEvent, CopyReport};
use crate::store::{ReadStore, WriteStore};

/// Runs `entries` as one sync and reports every image. Never fails as a whole: what failed is
/// in the report ([`SyncReport::complete`] says whether everything is at the destination).
pub async fn sync(entries: Vec<SyncEntry>, options: SyncOptions) -> SyncReport {
    let started = Instant::now();
    let shared = Arc::new(Shared { entries, options });
    let mut run = Run::new(shared.clone());
    run.run().await;
    run.prune().await;
    let interrupted = run.interrupted();
    let mut totals = run.totals;
    totals.transfers = shared.options.transfers.stats();
    SyncReport {
        images: run.images,
        totals,
        interrupted,
        dry_run: shared.options.dry_run,
        prune_skipped: run.prune_skipped,
        duration: started.elapsed(),
    }
}

/// What the futures of a run read.
struct Shared {
    entries: Vec<SyncEntry>,
    options: SyncOptions,
}

/// A repository to plan, or a catalog that could not be listed to the end.
enum RepoRef {
    Repo {
        entry: usize,
        name: String,
    },
    ListingFailed {
        entry: usize,
        what: String,
        error: Error,
    },
}

/// Whether the destination has the tag, as far as its listing told.
#[derive(Clone)]
enum DstTag {
    Absent,
    /// Listed, with its descriptor when the listing gave it.
    Present(Option<Box<Descriptor>>),
    /// The destination cannot list its tags: resolve to know.
    Unknown,
}

/// One tag to compare and maybe copy.
#[derive(Clone)]
struct Job {
    entry: usize,
    repository: String,
    tag: String,
    source: Arc<dyn ReadStore>,
    destination: Arc<dyn WriteStore>,
    source_display: String,
    destination_display: String,
    /// The source tag's descriptor when the source listing gave it.
    src_known: Option<Descriptor>,
    dst_tag: DstTag,
    immutable: bool,
}

/// Destination tags of one repository that pruning would delete.
struct PruneSet {
    entry: usize,
    repository: String,
    destination: Arc<dyn WriteStore>,
    source_display: String,
    destination_display: String,
    tags: Vec<(String, Option<Digest>)>,
}

/// The plan of one repository.
#[derive(Default)]
struct Plan {
    reports: Vec<ImageReport>,
    jobs: Vec<Job>,
    prune: Option<PruneSet>,
    /// The entry whose listing failed, so it must not prune.
    incomplete: Option<usize>,
    /// A repository was listed.
    listed: bool,
}

/// What a comparison found.
enum Step {
    Done(Box<ImageReport>),
    Copy(Box<Pending>),
}

/// An image to copy.
struct Pending {
    job: Job,
    root: Descriptor,
    previous: Option<Digest>,
    /// Unchanged, but its referrers are to be brought over.
    referrers_only: bool,
    started: Instant,
}

type PlanStream = futures::stream::Fuse<BoxStream<'static, Plan>>;

struct Run {
    shared: Arc<Shared>,
    images: Vec<ImageReport>,
    totals: Totals,
    prune_sets: Vec<PruneSet>,
    incomplete: HashSet<usize>,
    prune_skipped: Vec<String>,
    failed_fast: bool,
}

impl Run {
    fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            images: Vec::new(),
            totals: Totals::default(),
            prune_sets: Vec::new(),
            incomplete: HashSet::new(),
            prune_skipped: Vec::new(),
            failed_fast: false,
        }
    }

    fn options(&self) -> &SyncOptions {
        &self.shared.options
    }

    fn interrupted(&self) -> bool {
        self.failed_fast || self.options().stop.level() != StopLevel::Run
    }

    fn emit(&self, event: SyncEvent) {
        if let Some(sink) = &self.options().on_event {
            sink(&event);
        }
    }

    fn record(&mut self, report: ImageReport) {
        let t = &mut self.totals;
        match report.outcome {
            Outcome::Synced => t.synced += 1,
            Outcome::Unchanged => t.unchanged += 1,
            Outcome::Filtered => t.filtered += 1,
            Outcome::Failed => t.failed += 1,
            Outcome::Interrupted => t.interrupted += 1,
            Outcome::Pruned => t.pruned += 1,
            Outcome::Planned => t.planned += 1,
        }
        t.bytes += report.bytes;
        t.copied += report.copied;
        t.mounted += report.mounted;
        t.existed += report.existed;
        if report.outcome == Outcome::Failed {
            tracing::warn!(
                source = %report.source_ref(),
                reason = report.reason.as_deref().unwrap_or(""),
                "image failed"
            );
            if self.options().fail_fast && !self.failed_fast {
                self.failed_fast = true;
                self.options().stop.drain();
            }
        }
        self.emit(SyncEvent::Image(Arc::new(report.clone())));
        self.images.push(report);
    }

    fn absorb(&mut self, plan: Plan, queue: &mut VecDeque<Job>) {
        if plan.listed {
            self.totals.repositories += 1;
        }
        if let Some(entry) = plan.incomplete {
            self.incomplete.insert(entry);
        }
        for report in plan.reports {
            self.record(report);
        }
        if !plan.jobs.is_empty() {
            self.totals.selected += plan.jobs.len();
            self.emit(SyncEvent::Planned {
                repository: plan.jobs[0].repository.clone(),
                images: plan.jobs.len(),
            });
        }
        queue.extend(plan.jobs);
        if let Some(p) = plan.prune {
            self.prune_sets.push(p);
        }
    }

    /// Lists, compares and copies until everything is done or the sync is stopped.
    async fn run(&mut self) {
        let options = self.options().clone();
        let images = options.images.max(1);
        let checks_max = options.checks.max(1);
        let backlog = checks_max * 4;
        let shared = self.shared.clone();
        let mut plans: PlanStream = repositories(shared.clone())
            .map(move |r| plan(shared.clone(), r))
            .buffer_unordered(options.listings.max(1))
            .boxed()
            .fuse();
        let mut plans_done = false;
        let mut queue: VecDeque<Job> = VecDeque::new();
        let mut copy_queue: VecDeque<Pending> = VecDeque::new();
        let mut checks: FuturesUnordered<BoxFuture<'static, Step>> = FuturesUnordered::new();
        let mut copies: FuturesUnordered<BoxFuture<'static, ImageReport>> = FuturesUnordered::new();
        let mut grace_end: Option<tokio::time::Instant> = None;
        loop {
            let level = options.stop.level();
            if level == StopLevel::Drain && grace_end.is_none() {
                grace_end = Some(tokio::time::Instant::now() + options.grace);
                tracing::info!(
                    in_flight = copies.len(),
                    grace_ms = options.grace.as_millis() as u64,
                    "stopping: no new image starts; the images in flight may finish"
                );
            }
            let running = level == StopLevel::Run;
            if running {
                while copies.len() < images {
                    let Some(pending) = copy_queue.pop_front() else {
                        break;
                    };
                    copies.push(self.start_copy(pending));
                }
                while checks.len() < checks_max && copy_queue.len() < images * 2 {
                    let Some(job) = queue.pop_front() else { break };
                    checks.push(self.start_check(job));
                }
            }
            let idle = checks.is_empty() && copies.is_empty();
            let nothing_left = plans_done && queue.is_empty() && copy_queue.is_empty();
            if idle && (!running || nothing_left) {
                break;
            }
            let want_plans = running && !plans_done && queue.len() < backlog;
            tokio::select! {
                biased;
                Some(report) = copies.next(), if !copies.is_empty() => self.record(report),
                Some(step) = checks.next(), if !checks.is_empty() => match step {
                    Step::Done(report) => self.record(*report),
                    Step::Copy(pending) => copy_queue.push_back(*pending),
                },
                plan = plans.next(), if want_plans => match plan {
                    Some(plan) => self.absorb(plan, &mut queue),
                    None => plans_done = true,
                },
                _ = options.stop.reached(StopLevel::Drain), if running => {}
                _ = sleep_until(grace_end), if level == StopLevel::Drain => {
                    tracing::warn!("the grace period is over: stopping the images in flight");
                    options.stop.abort();
                }
            }
        }
        let not_started = queue.len() + copy_queue.len();
        if not_started > 0 || !plans_done {
            tracing::info!(
                not_started,
                listing_done = plans_done,
                "sync stopped before every image started"
            );
        }
        self.totals.not_started = not_started;
    }

    fn start_check(&self, job: Job) -> BoxFuture<'static, Step> {
        let shared = self.shared.clone();
        let stop = shared.options.stop.clone();
        let interrupted = job.clone();
        async move {
            let started = Instant::now();
            abortable(stop, check(shared, job, started), move || {
                Step::Done(Box::new(interrupted_report(&interrupted, started)))
            })
            .await
        }
        .boxed()
    }

    fn start_copy(&self, pending: Pending) -> BoxFuture<'static, ImageReport> {
        let shared = self.shared.clone();
        let stop = shared.options.stop.clone();
        let interrupted = pending.job.clone();
        let started = pending.started;
        async move {
            abortable(stop, copy_image(shared, pending), move || {
                interrupted_report(&interrupted, started)
            })
            .await
        }
        .boxed()
    }

    /// Deletes the destination tags the filtered sources no longer have, entry by entry,
    /// unless the run was stopped, an entry's source listing was incomplete, or an entry has
    /// more than its `prune_max`.
    async fn prune(&mut self) {
        let sets = std::mem::take(&mut self.prune_sets);
        if sets.is_empty() {
            return;
        }
        if self.interrupted() {
            self.prune_skipped
                .push("the sync was stopped before it was done; nothing was pruned".into());
            return;
        }
        let mut by_entry: HashMap<usize, Vec<PruneSet>> = HashMap::new();
        for set in sets {
            by_entry.entry(set.entry).or_default().push(set);
        }
        let mut entries: Vec<usize> = by_entry.keys().copied().collect();
        entries.sort_unstable();
        for entry in entries {
            let sets = by_entry.remove(&entry).expect("listed key");
            if self.incomplete.contains(&entry) {
                self.prune_skipped.push(format!(
                    "entry {}: the source listing was incomplete, so nothing was pruned",
                    entry + 1
                ));
                continue;
            }
            self.prune_entry(entry, sets).await;
        }
    }

    async fn prune_entry(&mut self, entry: usize, sets: Vec<PruneSet>) {
        let max = self.shared.entries[entry].prune_max;
        let dry_run = self.options().dry_run;
        // A referrers tag whose subject is still at the destination is never deleted.
        let mut doomed: Vec<(&PruneSet, String, Option<Digest>)> = Vec::new();
        for set in &sets {
            for (tag, digest) in &set.tags {
                if let Some(subject) = referrers_tag_subject(tag) {
                    let probe = Descriptor::new(OCI_MANIFEST.into(), 0, subject);
                    match set.destination.exists(&probe).await {
                        Ok(false) => {}
                        Ok(true) => continue,
                        Err(e) => {
                            tracing::warn!(tag, error = %e, "cannot tell whether a referrers tag's subject is there; keeping the tag");
                            continue;
                        }
                    }
                }
                doomed.push((set, tag.clone(), digest.clone()));
            }
        }
        if doomed.len() > max {
            let names: Vec<String> = doomed
                .iter()
                .take(5)
                .map(|(s, t, _)| format!("{}:{t}", strip_scheme(&s.destination_display)))
                .collect();
            let more = if doomed.len() > names.len() {
                format!(", and {} more", doomed.len() - names.len())
            } else {
                String::new()
            };
            let report = ImageReport {
                entry,
                repository: String::new(),
                tag: None,
                source: String::new(),
                destination: String::new(),
                outcome: Outcome::Failed,
                digest: None,
                previous: None,
                mounted: 0,
                copied: 0,
                existed: 0,
                bytes: 0,
                filtered_by: None,
                reason: Some(format!(
                    "prune: {} destination tags are gone from the source ({}{more}), more than \
                     the {max} --prune-max allows; nothing was pruned (raise --prune-max if \
                     this is intended)",
                    doomed.len(),
                    names.join(", ")
                )),
                failure: Some(FailureKind::PruneGuard),
                duration: Default::default(),
            };
            self.record(report);
            return;
        }
        for (set, tag, digest) in doomed {
            if self.options().stop.level() != StopLevel::Run {
                self.prune_skipped
                    .push("the sync was stopped while pruning; the rest was not pruned".into());
                return;
            }
            let started = Instant::now();
            let mut report = ImageReport {
                entry,
                repository: set.repository.clone(),
                tag: Some(tag.clone()),
                source: set.source_display.clone(),
                destination: set.destination_display.clone(),
                outcome: Outcome::Pruned,
                digest,
                previous: None,
                mounted: 0,
                copied: 0,
                existed: 0,
                bytes: 0,
                filtered_by: None,
                reason: None,
                failure: None,
                duration: Default::default(),
            };
            if dry_run {
                report.reason = Some("dry run: not deleted".into());
            } else {
                let result = match set.destination.capabilities().delete_tag {
                    Some(deleter) => deleter.delete_tag(&tag).await,
                    None => Err(Error::NotSupported {
                        store: set.destination.to_string(),
                        operation: "deleting tags".into(),
                    }),
                };
                match result {
                    Ok(()) => {}
                    // Gone already: what pruning wanted.
                    Err(e) if e.is_not_found() => {}
                    Err(e) => {
                        report.outcome = Outcome::Failed;
                        report.failure = Some(FailureKind::of(&e));
                        report.reason = Some(format!("prune: {e}"));
                    }
                }
            }
            report.duration = started.elapsed();
            self.record(report);
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Runs `work` unless the sync is stopped at once first, in which case the work is dropped
/// (the copy engine tags last, so no tag names missing content) and `interrupted` answers.
async fn abortable<T>(
    stop: super::Stop,
    work: impl Future<Output = T>,
    interrupted: impl FnOnce() -> T,
) -> T {
    tokio::select! {
        biased;
        done = work => done,
        _ = stop.reached(StopLevel::Abort) => interrupted(),
    }
}

fn strip_scheme(display: &str) -> &str {
    display.split_once("] ").map_or(display, |(_, s)| s)
}

/// `[scheme] location`, as copy reports name stores.
fn display_store(store: &dyn ReadStore) -> String {
    format!("[{}] {store}", store.info().scheme)
}

/// The repositories of every entry, as the sources list them, sharded.
fn repositories(shared: Arc<Shared>) -> BoxStream<'static, RepoRef> {
    let shard = shared.options.shard;
    let per_entry: Vec<BoxStream<'static, RepoRef>> = shared
        .entries
        .iter()
        .enumerate()
        .map(|(entry, e)| -> BoxStream<'static, RepoRef> {
            match &e.source {
                SyncSource::Store { name, .. } => Box::pin(stream::iter([RepoRef::Repo {
                    entry,
                    name: name.clone(),
                }])),
                SyncSource::Catalog {
                    source,
                    source_prefix,
                    ..
                } => {
                    let what = format!("the repositories of {source} under `{source_prefix}`");
                    Box::pin(source.list(source_prefix).map(move |item| match item {
                        Ok(name) => RepoRef::Repo { entry, name },
                        Err(error) => RepoRef::ListingFailed {
                            entry,
                            what: what.clone(),
                            error,
                        },
                    }))
                }
            }
        })
        .collect();
    Box::pin(stream::iter(per_entry).flatten().filter(move |r| {
        let keep = match (r, &shard) {
            (RepoRef::Repo { name, .. }, Some(shard)) => shard.contains(name),
            _ => true,
        };
        futures::future::ready(keep)
    }))
}

/// A failure of a repository as a whole (or of a catalog listing).
fn repository_failure(
    entry: usize,
    repository: &str,
    source: String,
    destination: String,
    error: &Error,
) -> ImageReport {
    ImageReport {
        entry,
        repository: repository.to_string(),
        tag: None,
        source,
        destination,
        outcome: Outcome::Failed,
        digest: None,
        previous: None,
        mounted: 0,
        copied: 0,
        existed: 0,
        bytes: 0,
        filtered_by: None,
        reason: Some(error.to_string()),
        failure: Some(FailureKind::of(error)),
        duration: Default::default(),
    }
}

/// Lists one repository's tags on both sides and plans its images.
async fn plan(shared: Arc<Shared>, r: RepoRef) -> Plan {
    match r {
        RepoRef::ListingFailed { entry, what, error } => {
            let error = Error::Store {
                store: what.clone(),
                message: format!(
                    "listing {what} failed, so the sync covers only what was listed: {error}"
                ),
                temporary: false,
                source: Some(Box::new(error)),
            };
            Plan {
                reports: vec![repository_failure(
                    entry,
                    "",
                    String::new(),
                    String::new(),
                    &error,
                )],
                incomplete: Some(entry),
                ..Plan::default()
            }
        }
        RepoRef::Repo { entry, name } => {
            let e = &shared.entries[entry];
            let dry_run = shared.options.dry_run;
            let (source, destination, destination_display) = match &e.source {
                SyncSource::Store {
                    source,
                    destination,
                    ..
                } => (
                    source.clone(),
                    destination.clone(),
                    display_store(destination.as_ref()),
                ),
                SyncSource::Catalog {
                    source,
                    source_prefix,
                    destination,
                    destination_prefix,
                } => {
                    let rest = name.strip_prefix(source_prefix.as_str()).unwrap_or(&name);
                    let target = format!("{destination_prefix}{rest}");
                    let shown = format!("[{}] {destination}/{target}", destination.info().scheme);
                    let opened = async {
                        let src = source.open_read(&name).await?;
                        let dst = destination.open_write(&target, !dry_run).await?;
                        Ok::<_, Error>((src, dst))
                    }
                    .await;
                    match opened {
                        Ok((src, Some(dst))) => {
                            let shown = display_store(dst.as_ref());
                            (src, dst, shown)
                        }
                        Ok((src, None)) => {
                            // A dry run into a store that does not exist yet: it holds nothing.
                            let empty: Arc<dyn WriteStore> = Arc::new(MemoryStore::new(target));
                            (src, empty, shown)
                        }
                        Err(error) => {
                            return Plan {
                                reports: vec![repository_failure(
                                    entry,
                                    &name,
                                    format!("[{}] {source}/{name}", source.info().scheme),
                                    shown,
                                    &error,
                                )],
                                listed: true,
                                ..Plan::default()
                            };
                        }
                    }
                }
            };
            let source_display = display_store(source.as_ref());
            match plan_repository(
                &shared,
                entry,
                &name,
                source.clone(),
                destination.clone(),
                &source_display,
                &destination_display,
            )
            .await
            {
                Ok(plan) => plan,
                Err(error) => Plan {
                    reports: vec![repository_failure(
                        entry,
                        &name,
                        source_display,
                        destination_display,
                        &error,
                    )],
                    listed: true,
                    ..Plan::default()
                },
            }
        }
    }
}

/// Every tag of `store`, with descriptors when the listing gives them.
async fn list_tags(store: &dyn ReadStore) -> Result<Vec<(String, Option<Descriptor>)>> {
    let Some(lister) = store.capabilities().list_tags else {
        return Err(Error::NotSupported {
            store: store.to_string(),
            operation: "listing tags".into(),
        });
    };
    if let Some(resolved) = lister.list_tags_resolved().await? {
        return Ok(resolved.into_iter().map(|(t, d)| (t, Some(d))).collect());
    }
    Ok(lister
        .list_tags()
        .await?
        .into_iter()
        .map(|t| (t, None))
        .collect())
}

async fn plan_repository(
    shared: &Shared,
    entry: usize,
    repository: &str,
    source: Arc<dyn ReadStore>,
    destination: Arc<dyn WriteStore>,
    source_display: &str,
    destination_display: &str,
) -> Result<Plan> {
    let e = &shared.entries[entry];
    let started = Instant::now();
    let (src_tags, dst_tags) =
        futures::join!(list_tags(source.as_ref()), list_tags(destination.as_ref()));
    let src_tags = src_tags.map_err(|e| listing_error("the source's tags", e))?;
    let dst_tags: Option<HashMap<String, Option<Descriptor>>> = match dst_tags {
        Ok(tags) => Some(tags.into_iter().collect()),
        // A repository or layout not created yet.
        Err(e) if e.is_not_found() => Some(HashMap::new()),
        Err(Error::NotSupported { .. }) => None,
        Err(e) => return Err(listing_error("the destination's tags", e)),
    };
    let mut plan = Plan {
        listed: true,
        ..Plan::default()
    };
    let filtered = |tag: &str, why: FilteredBy| ImageReport {
        entry,
        repository: repository.to_string(),
        tag: Some(tag.to_string()),
        source: source_display.to_string(),
        destination: destination_display.to_string(),
        outcome: Outcome::Filtered,
        digest: None,
        previous: None,
        mounted: 0,
        copied: 0,
        existed: 0,
        bytes: 0,
        filtered_by: Some(why),
        reason: None,
        failure: None,
        duration: started.elapsed(),
    };
    let mut known: HashMap<String, Descriptor> = HashMap::new();
    let mut names: Vec<String> = Vec::with_capacity(src_tags.len());
    for (tag, descriptor) in src_tags {
        if referrers_tag_subject(&tag).is_some() {
            plan.reports.push(filtered(&tag, FilteredBy::Referrers));
            continue;
        }
        if let Some(d) = descriptor {
            known.insert(tag.clone(), d);
        }
        names.push(tag);
    }
    let selection = e.filter.select(&names);
    for (tag, why) in &selection.filtered {
        plan.reports.push(filtered(tag, *why));
    }
    let kept: HashSet<&String> = selection.kept.iter().collect();
    if e.prune {
        match &dst_tags {
            Some(tags) => {
                let mut doomed: Vec<(String, Option<Digest>)> = tags
                    .iter()
                    .filter(|(t, _)| e.filter.manages(t) && !kept.contains(t))
                    .map(|(t, d)| (t.clone(), d.as_ref().map(|d| d.digest().clone())))
                    .collect();
                doomed.sort_by(|a, b| a.0.cmp(&b.0));
                if !doomed.is_empty() {
                    plan.prune = Some(PruneSet {
                        entry,
                        repository: repository.to_string(),
                        destination: destination.clone(),
                        source_display: source_display.to_string(),
                        destination_display: destination_display.to_string(),
                        tags: doomed,
                    });
                }
            }
            None => {
                let error = Error::NotSupported {
                    store: destination.to_string(),
                    operation: "listing tags, which pruning needs".into(),
                };
                plan.reports.push(repository_failure(
                    entry,
                    repository,
                    source_display.to_string(),
                    destination_display.to_string(),
                    &error,
                ));
            }
        }
    }
    for tag in selection.kept {
        let dst_tag = match &dst_tags {
            Some(tags) => match tags.get(&tag) {
                Some(d) => DstTag::Present(d.clone().map(Box::new)),
                None => DstTag::Absent,
            },
            None => DstTag::Unknown,
        };
        plan.jobs.push(Job {
            entry,
            repository: repository.to_string(),
            immutable: e.immutable.matches(&tag),
            src_known: known.remove(&tag),
            tag,
            source: source.clone(),
            destination: destination.clone(),
            source_display: source_display.to_string(),
            destination_display: destination_display.to_string(),
            dst_tag,
        });
    }
    tracing::debug!(
        repository,
        selected = plan.jobs.len(),
        filtered = plan.reports.len(),
        ms = started.elapsed().as_millis() as u64,
        "repository planned"
    );
    Ok(plan)
}

fn listing_error(what: &str, error: Error) -> Error {
    match error {
        Error::Store {
            store,
            message,
            temporary,
            source,
        } => Error::Store {
            store,
            message: format!("listing {what}: {message}"),
            temporary,
            source,
        },
        other => other,
    }
}

fn image_report(job: &Job, outcome: Outcome, started: Instant) -> ImageReport {
    ImageReport {
        entry: job.entry,
        repository: job.repository.clone(),
        tag: Some(job.tag.clone()),
        source: job.source_display.clone(),
        destination: job.destination_display.clone(),
        outcome,
        digest: None,
        previous: None,
        mounted: 0,
        copied: 0,
        existed: 0,
        bytes: 0,
        filtered_by: None,
        reason: None,
        failure: None,
        duration: started.elapsed(),
    }
}

fn failed_report(job: &Job, error: &Error, started: Instant) -> ImageReport {
    let mut report = image_report(job, Outcome::Failed, started);
    report.reason = Some(error.to_string());
    report.failure = Some(FailureKind::of(error));
    report
}

fn interrupted_report(job: &Job, started: Instant) -> ImageReport {
    let mut report = image_report(job, Outcome::Interrupted, started);
    report.reason = Some(
        "stopped by a signal before it finished; the destination tag names what it named \
         before, or the whole image if the tag was being written"
            .into(),
    );
    report
}

/// Compares a tag: the source's digest (resolved, by `HEAD` on a registry) with the
/// destination's, which is resolved only when its listing has the tag.
async fn check(shared: Arc<Shared>, job: Job, started: Instant) -> Step {
    let e = &shared.entries[job.entry];
    if job.immutable && matches!(job.dst_tag, DstTag::Present(_)) {
        let mut report = image_report(&job, Outcome::Unchanged, started);
        report.reason = Some("immutable tag, present at the destination".into());
        return Step::Done(Box::new(report));
    }
    // A tag the destination lacks is resolved as the copy needs it (a registry's `GET`,
    // whose manifest the copy then reuses); one to compare is peeked at (`HEAD`).
    let compare = !matches!(job.dst_tag, DstTag::Absent);
    let src = async {
        match &job.src_known {
            Some(d) => Ok(d.clone()),
            None => peek_or_resolve(job.source.as_ref(), &job.tag, compare).await,
        }
    };
    let dst = async {
        match &job.dst_tag {
            DstTag::Absent => Ok(None),
            DstTag::Present(Some(d)) => Ok(Some(Descriptor::clone(d))),
            DstTag::Present(None) | DstTag::Unknown => {
                match peek_or_resolve(job.destination.as_ref(), &job.tag, true).await {
                    Ok(d) => Ok(Some(d)),
                    Err(e) if e.is_not_found() => Ok(None),
                    Err(e) => Err(e),
                }
            }
        }
    };
    let (src, dst) = futures::join!(src, dst);
    let mut root = match src {
        Ok(d) => d,
        Err(error) => return Step::Done(Box::new(failed_report(&job, &error, started))),
    };
    if let Some(filter) = &e.copy.platform {
        root = match select_platform(job.source.as_ref(), &root, filter, e.copy.manifest_limit)
            .await
        {
            Ok(d) => d,
            Err(error) => return Step::Done(Box::new(failed_report(&job, &error, started))),
        };
    }
    let previous = match dst {
        Ok(d) => d.map(|d| d.digest().clone()),
        Err(error) => return Step::Done(Box::new(failed_report(&job, &error, started))),
    };
    let unchanged = previous.as_ref() == Some(root.digest());
    if shared.options.dry_run || (unchanged && !e.copy.referrers) {
        let outcome = if unchanged {
            Outcome::Unchanged
        } else {
            Outcome::Planned
        };
        let mut report = image_report(&job, outcome, started);
        report.digest = Some(root.digest().clone());
        report.previous = previous;
        return Step::Done(Box::new(report));
    }
    Step::Copy(Box::new(Pending {
        job,
        root,
        previous,
        referrers_only: unchanged,
        started,
    }))
}

/// What `reference` names in `store`: peeked at ([`crate::Peek`], a registry's `HEAD`) when
/// `peek` and the store can, else resolved.
async fn peek_or_resolve(store: &dyn ReadStore, reference: &str, peek: bool) -> Result<Descriptor> {
    match store.capabilities().peek {
        Some(p) if peek => p.peek(reference).await,
        _ => store.resolve(reference).await,
    }
}

/// Copies one image (or, for an unchanged one with referrers on, the referrers the
/// destination lacks).
async fn copy_image(shared: Arc<Shared>, pending: Pending) -> ImageReport {
    let Pending {
        job,
        root,
        previous,
        referrers_only,
        started,
    } = pending;
    let e = &shared.entries[job.entry];
    let mut options = e.copy.clone();
    options.locations = shared.options.locations.clone();
    options.transfers = Some(shared.options.transfers.clone());
    options.dry_run = false;
    // The platform was selected when the tag was compared: `root` is its manifest.
    options.platform = None;
    // A tag the destination did not have: its manifest is not looked for either.
    options.root_absent = previous.is_none() && matches!(job.dst_tag, DstTag::Absent);
    options.on_event = shared.options.on_event.clone().map(|sink| {
        Arc::new(move |event: &CopyEvent| sink(&SyncEvent::Copy(Box::new(event.clone()))))
            as EventSink
    });
    let result: Result<(Vec<CopyReport>, bool)> = if referrers_only {
        copy_missing_referrers(&job, &root, &options).await
    } else {
        copy_root(
            job.source.clone(),
            root.clone(),
            job.destination.clone(),
            Some(&job.tag),
            &options,
        )
        .await
        .map(|r| (vec![r], true))
    };
    let mut report = match result {
        Ok((copies, changed)) => {
            let outcome = if changed {
                Outcome::Synced
            } else {
                Outcome::Unchanged
            };
            let mut report = image_report(&job, outcome, started);
            for c in &copies {
                report.mounted += c.count(Action::Mounted);
                report.copied += c.count(Action::Copied);
                report.existed += c.count(Action::Exists);
                report.bytes += c.bytes;
            }
            report
        }
        Err(error) => failed_report(&job, &error, started),
    };
    report.digest = Some(root.digest().clone());
    report.previous = previous;
    report.duration = started.elapsed();
    report
}

/// For an unchanged image: copies the source's referrers of `root` that the destination
/// does not list. Returns the copies and whether there was any.
async fn copy_missing_referrers(
    job: &Job,
    root: &Descriptor,
    options: &crate::engine::CopyOptions,
) -> Result<(Vec<CopyReport>, bool)> {
    let (theirs, ours) =
        futures::join!(job.source.referrers(root), job.destination.referrers(root));
    let ours: HashSet<Digest> = ours?.into_iter().map(|d| d.digest().clone()).collect();
    let mut copies = Vec::new();
    for referrer in theirs? {
        if ours.contains(referrer.digest()) {
            continue;
        }
        copies.push(
            copy_graph(
                job.source.clone(),
                job.destination.clone(),
                referrer,
                options,
            )
            .await?,
        );
    }
    let changed = !copies.is_empty();
    Ok((copies, changed))
}
