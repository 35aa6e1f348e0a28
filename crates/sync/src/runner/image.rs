//! One image: comparing its source and destination tags, then copying it.

use super::*;

pub(super) fn image_report(job: &Job, outcome: Outcome, started: Instant) -> ImageReport {
    let mut report = ImageReport::new(
        job.entry,
        job.repository.clone(),
        Some(job.tag.clone()),
        job.source_info.clone(),
        job.destination_info.clone(),
        outcome,
    );
    report.duration = started.elapsed();
    report
}

pub(super) fn failed_report(job: &Job, error: &Error, started: Instant) -> ImageReport {
    let mut report = image_report(job, Outcome::Failed, started);
    report.reason = Some(error.to_string());
    report.failure = Some(FailureKind::of(error));
    report
}

pub(super) fn interrupted_report(job: &Job, started: Instant) -> ImageReport {
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
pub(super) async fn check(shared: Arc<Shared>, mut job: Job, started: Instant) -> Step {
    let e = &shared.entries[job.entry];
    if job.immutable && matches!(job.dst_tag, DstTag::Unknown) {
        // An immutable tag of a destination that was not listed: whether the destination has
        // it is all that needs asking.
        job.dst_tag = match peek_or_resolve(job.destination.as_ref(), &job.tag, true).await {
            Ok(d) => DstTag::Present(Some(Box::new(d))),
            Err(error) if error.is_not_found() => DstTag::Absent,
            Err(error) => return Step::Done(Box::new(failed_report(&job, &error, started))),
        };
    }
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
        Ok(d) => d,
        Err(error) => return Step::Done(Box::new(failed_report(&job, &error, started))),
    };
    let unchanged = previous.as_ref().map(|d| d.digest()) == Some(root.digest());
    if shared.options.dry_run || (unchanged && !e.copy.referrers) {
        let outcome = if unchanged {
            Outcome::Unchanged
        } else {
            Outcome::Planned
        };
        let mut report = image_report(&job, outcome, started);
        report.digest = Some(root.digest().clone());
        report.previous = previous.map(|d| d.digest().clone());
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

/// What `reference` names in `store`: peeked at ([`ferry_core::Peek`], a registry's `HEAD`) when
/// `peek` and the store can, else resolved.
pub(super) async fn peek_or_resolve(
    store: &dyn ReadStore,
    reference: &str,
    peek: bool,
) -> Result<Descriptor> {
    match store.capabilities().peek {
        Some(p) if peek => p.peek(reference).await,
        _ => store.resolve(reference).await,
    }
}

/// Copies one image (or, for an unchanged one with referrers on, the referrers the
/// destination lacks). With a backup template, a destination tag about to be overwritten is
/// backed up first (a `BackedUp` report before the image's); when the backup fails, the tag
/// is left as it was.
pub(super) async fn copy_image(shared: Arc<Shared>, pending: Pending) -> Vec<ImageReport> {
    let Pending {
        job,
        root,
        previous,
        referrers_only,
        started,
    } = pending;
    let e = &shared.entries[job.entry];
    let mut reports = Vec::new();
    if let (Some(template), Some(old), false) = (&e.backup, &previous, referrers_only) {
        match back_up(&shared, &job, template, old).await {
            Ok(report) => reports.push(report),
            Err(error) => {
                let mut report = failed_report(&job, &error, started);
                report.reason = Some(format!(
                    "backing up the destination tag before overwriting it: {error}; the tag \
                     was left as it was"
                ));
                report.digest = Some(root.digest().clone());
                report.previous = Some(old.digest().clone());
                reports.push(report);
                return reports;
            }
        }
    }
    let previous = previous.map(|d| d.digest().clone());
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
                report.mounted_bytes += c
                    .nodes
                    .iter()
                    .filter(|n| n.action == Action::Mounted)
                    .map(|n| n.descriptor.size())
                    .sum::<u64>();
                report.mounted += c.count(Action::Mounted);
                report.copied += c.count(Action::Copied);
                report.existed += c.count(Action::Exists);
                report.bytes += c.bytes;
                report.retries += c.retries;
                report.warnings.extend(c.warnings().cloned());
            }
            report
        }
        Err(error) => failed_report(&job, &error, started),
    };
    report.digest = Some(root.digest().clone());
    report.previous = previous;
    report.duration = started.elapsed();
    reports.push(report);
    reports
}

/// Tags `old` (what `job`'s destination tag names now) with the backup name `template` gives
/// it, and reports that.
pub(super) async fn back_up(
    shared: &Shared,
    job: &Job,
    template: &crate::BackupTemplate,
    old: &Descriptor,
) -> Result<ImageReport> {
    let started = Instant::now();
    let name = template.render(&job.tag, old.digest(), shared.started_at)?;
    job.destination.tag(old, &name).await?;
    tracing::info!(
        destination = %job.destination_info,
        tag = %job.tag,
        backup = %name,
        digest = %old.digest(),
        "backed up"
    );
    let mut report = image_report(job, Outcome::BackedUp, started);
    report.digest = Some(old.digest().clone());
    report.backup = Some(name);
    Ok(report)
}

/// For an unchanged image: copies the source's referrers of `root` that the destination
/// does not list. Returns the copies and whether there was any.
pub(super) async fn copy_missing_referrers(
    job: &Job,
    root: &Descriptor,
    options: &ferry_core::engine::CopyOptions,
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
