//! What `ferry sync` prints: one line per image as it finishes, a summary, a progress bar on a
//! terminal, or one JSON document.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use ferry_core::CopyEvent;
use ferry_sync::{FailureKind, FilteredBy, ImageReport, Outcome, SyncEvent, SyncReport};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The line of one image.
pub fn image_line(image: &ImageReport) -> String {
    let verb = image.outcome.verb();
    match image.outcome {
        Outcome::Synced => format!(
            "{verb} {} => {} ({} mounted, {} copied, {} bytes)",
            image.source_ref(),
            image.destination_ref(),
            image.mounted,
            image.copied,
            image.bytes
        ),
        Outcome::Filtered => {
            let by = image.filtered_by.map(option).unwrap_or("a filter");
            format!("{verb} {} ({by})", image.source_ref())
        }
        Outcome::BackedUp => {
            let digest = image
                .digest
                .as_ref()
                .map(|d| format!(" ({})", d.digest().get(..12).unwrap_or(d.digest())))
                .unwrap_or_default();
            format!(
                "{verb} {}{digest} as {}:{}",
                image.destination_ref(),
                image.destination,
                image.backup.as_deref().unwrap_or("?")
            )
        }
        Outcome::Pruned => {
            let mut line = format!("{verb} {}", image.destination_ref());
            if let Some(reason) = &image.reason {
                line.push_str(&format!(" ({reason})"));
            }
            line
        }
        Outcome::Failed | Outcome::Interrupted => {
            let mut reason = image
                .reason
                .as_deref()
                .unwrap_or("unknown reason")
                .to_string();
            if image.failure == Some(FailureKind::PruneGuard) {
                reason.push_str(" (raise --prune-max if this is intended)");
            }
            if image.tag.is_none() && image.repository.is_empty() {
                format!("{verb}: {reason}")
            } else {
                format!(
                    "{verb} {} => {}: {reason}",
                    image.source_ref(),
                    image.destination_ref()
                )
            }
        }
        // Unchanged, Planned, and (`Outcome` is non-exhaustive) any outcome added later.
        _ => {
            let mut line = format!(
                "{verb} {} => {}",
                image.source_ref(),
                image.destination_ref()
            );
            if let Some(reason) = &image.reason {
                line.push_str(&format!(" ({reason})"));
            }
            line
        }
    }
}

/// The option that filtered a tag, as the output names it.
fn option(by: FilteredBy) -> &'static str {
    match by {
        FilteredBy::Tags => "--tags",
        FilteredBy::ExcludeTags => "--exclude-tags",
        FilteredBy::Semver => "--semver",
        FilteredBy::Latest => "--latest",
        _ => by.label(),
    }
}

/// The summary lines.
pub fn summary(report: &SyncReport) -> String {
    let t = &report.totals;
    let mut counts = vec![
        format!("{} synced", t.synced),
        format!("{} unchanged", t.unchanged),
    ];
    if t.planned > 0 {
        counts.push(format!("{} to sync", t.planned));
    }
    if t.failed > 0 {
        counts.push(format!("{} failed", t.failed));
    }
    if t.interrupted > 0 {
        counts.push(format!("{} interrupted", t.interrupted));
    }
    if t.pruned > 0 {
        counts.push(format!("{} pruned", t.pruned));
    }
    if t.backed_up > 0 {
        counts.push(format!("{} backed up", t.backed_up));
    }
    if t.filtered > 0 {
        counts.push(format!("{} filtered", t.filtered));
    }
    let verb = if report.dry_run { "Dry run" } else { "Sync" };
    let mut out = format!(
        "{verb}: {} of {} images in {} repositories; {} blobs mounted, {} copied, {} existed; {} bytes streamed in {:.1} s",
        counts.join(", "),
        t.selected,
        t.repositories,
        t.mounted,
        t.copied,
        t.existed,
        t.bytes,
        report.duration.as_secs_f64()
    );
    if report.interrupted {
        out.push_str(&format!(
            "\nStopped before the end: {} selected images did not start; run the sync again to finish",
            t.not_started
        ));
    }
    for note in &report.prune_skipped {
        out.push_str(&format!("\nNot pruned: {note}"));
    }
    let failures: Vec<&ImageReport> = report.failures().collect();
    if !failures.is_empty() {
        out.push_str(&format!("\nFailures ({}):", failures.len()));
        for f in failures {
            out.push_str(&format!("\n  {}", image_line(f)));
        }
    }
    out
}

/// The JSON document: the report, plus the requests each registry answered.
pub fn json(report: &SyncReport, registries: &BTreeMap<String, serde_json::Value>) -> String {
    let mut value = serde_json::to_value(report).expect("report JSON");
    value["registries"] = serde_json::to_value(registries).expect("JSON");
    serde_json::to_string_pretty(&value).expect("JSON")
}

/// Prints image lines as images finish, and draws a progress bar on a terminal.
pub struct Printer {
    text: bool,
    verbose: bool,
    bar: Option<ProgressBar>,
    known: AtomicUsize,
    done: AtomicUsize,
    bytes: AtomicU64,
    lines: Mutex<()>,
}

impl Printer {
    /// `text`: print lines; `verbose`: `Filtered` lines too; `progress`: a bar on stderr.
    pub fn new(text: bool, verbose: bool, progress: bool) -> Self {
        let bar = progress.then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{bar:30}] {pos}/{len} images, {msg} {elapsed}",
                )
                .expect("template")
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            bar
        });
        Self {
            text,
            verbose,
            bar,
            known: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            bytes: AtomicU64::new(0),
            lines: Mutex::new(()),
        }
    }

    /// Handles one sync event.
    pub fn event(&self, event: &SyncEvent) {
        match event {
            SyncEvent::Planned { images, .. } => {
                let known = self.known.fetch_add(*images, Ordering::Relaxed) + images;
                if let Some(bar) = &self.bar {
                    bar.set_length(known as u64);
                }
            }
            SyncEvent::Copy(copy) => {
                let CopyEvent::Done(node) = copy.as_ref() else {
                    return;
                };
                if let Some(bar) = &self.bar {
                    let bytes = self.bytes.fetch_add(node.bytes, Ordering::Relaxed) + node.bytes;
                    bar.set_message(format!("{} streamed", indicatif::HumanBytes(bytes)));
                }
                // A corrupt copy passed over for a verified one: on stderr in every format.
                for warning in &node.warnings {
                    let line = crate::output::warning_line(warning);
                    let _guard = self.lines.lock().expect("lines lock");
                    match &self.bar {
                        Some(bar) => bar.suspend(|| crate::output::eprintln_flush(&line)),
                        None => crate::output::eprintln_flush(&line),
                    }
                }
            }
            SyncEvent::Image(image) => {
                if !matches!(image.outcome, Outcome::Filtered | Outcome::BackedUp)
                    && image.tag.is_some()
                {
                    let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
                    if let Some(bar) = &self.bar {
                        bar.set_position(done as u64);
                    }
                }
                let show = self.text && (image.outcome != Outcome::Filtered || self.verbose);
                if show {
                    let line = image_line(image);
                    let _guard = self.lines.lock().expect("lines lock");
                    match &self.bar {
                        Some(bar) => bar.suspend(|| println_flush(&line)),
                        None => println_flush(&line),
                    }
                }
            }
            _ => {}
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn println_flush(line: &str) {
    crate::output::result_line(line);
}
