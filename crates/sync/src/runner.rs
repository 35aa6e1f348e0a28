//! The sync runner: lists repositories and tags, compares, copies, prunes.
//!
//! Three kinds of work overlap, each bounded: listing repositories (a plan per repository:
//! its source tags, filtered, and its destination tags), comparing tags (a resolve of the
//! source tag and, when the destination has it, of the destination tag), and copying the
//! images that changed. Pruning runs last, once every image is done.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, FuturesUnordered, StreamExt};
use oci_spec::image::{Descriptor, Digest};

use super::filter::{FilteredBy, referrers_tag_subject};
use super::report::{FailureKind, ImageReport, Outcome, SyncEvent, SyncReport, Totals};
use super::{SyncEntry, SyncOptions, SyncSource};
use ferry_core::StopLevel;

mod image;
mod plan;
mod prune;

use ferry_core::engine::{copy_graph, copy_root, select_platform};
use ferry_core::error::{Error, Result};
use ferry_core::memory::MemoryStore;
use ferry_core::report::EventSink;
use ferry_core::report::{Action, CopyEvent, CopyReport};
use ferry_core::store::{ReadStore, StoreInfo, WriteStore};
use image::{check, copy_image, interrupted_report};
use plan::{plan, repositories};

/// Runs `entries` as one sync and reports every image. Never fails as a whole: what failed is
/// in the report ([`SyncReport::complete`] says whether everything is at the destination).
pub async fn sync(entries: Vec<SyncEntry>, options: SyncOptions) -> SyncReport {
    let started = Instant::now();
    let shared = Arc::new(Shared {
        entries,
        options,
        started_at: SystemTime::now(),
    });
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
    /// When the run started: the `{date}` and `{time}` of its backups.
    started_at: SystemTime,
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
    source_info: StoreInfo,
    destination_info: StoreInfo,
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
    source_info: StoreInfo,
    destination_info: StoreInfo,
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
    /// What the destination tag named before.
    previous: Option<Descriptor>,
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
            Outcome::BackedUp => t.backed_up += 1,
        }
        t.bytes += report.bytes;
        t.mounted_bytes += report.mounted_bytes;
        t.copied += report.copied;
        t.mounted += report.mounted;
        t.existed += report.existed;
        t.retries += report.retries;
        if report.outcome == Outcome::Failed {
            // The report names the failure (the CLI prints it once); the log says it at info.
            tracing::info!(
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
        let mut copies: FuturesUnordered<BoxFuture<'static, Vec<ImageReport>>> =
            FuturesUnordered::new();
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
                Some(reports) = copies.next(), if !copies.is_empty() => {
                    for report in reports {
                        self.record(report);
                    }
                }
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

    fn start_copy(&self, pending: Pending) -> BoxFuture<'static, Vec<ImageReport>> {
        self.emit(SyncEvent::Copying {
            entry: pending.job.entry,
            repository: pending.job.repository.clone(),
            tag: pending.job.tag.clone(),
        });
        let shared = self.shared.clone();
        let stop = shared.options.stop.clone();
        let interrupted = pending.job.clone();
        let started = pending.started;
        async move {
            abortable(stop, copy_image(shared, pending), move || {
                vec![interrupted_report(&interrupted, started)]
            })
            .await
        }
        .boxed()
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

/// Who the source and the destination of an entry are, for a failure of the entry as a whole:
/// its stores, or its catalogs under their prefixes.
fn entry_stores(entry: &SyncEntry) -> (StoreInfo, StoreInfo) {
    match &entry.source {
        SyncSource::Store {
            source,
            destination,
            ..
        } => (source.info().clone(), destination.info().clone()),
        SyncSource::Catalog {
            source,
            source_prefix,
            destination,
            destination_prefix,
        } => (
            source.store_info(source_prefix.trim_end_matches('/')),
            destination.store_info(destination_prefix.trim_end_matches('/')),
        ),
    }
}
