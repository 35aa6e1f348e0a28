//! What `ferry cp` prints: one line per node and a summary, a JSON report, progress bars.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use ferry_core::model::short_digest;
use ferry_core::{
    Action, CopyEvent, CopyReport, CopyWarning, MountMethod, NodeReport, PlanTotals, StoreInfo,
};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The text line of one node, as DESIGN.md shows it; `here` is the destination, whose own
/// repositories are named by their path alone.
pub fn node_line(node: &NodeReport, here: &StoreInfo) -> String {
    let d = &node.descriptor;
    let mut line = format!(
        "{:<7} {} {}",
        node.action.verb(),
        short_digest(d.digest()),
        d.media_type()
    );
    if matches!(node.action, Action::Mounted | Action::WouldMount) {
        if let Some(from) = &node.from {
            line.push_str(&format!(" from {}", from.shown_from(here)));
        }
        // How the storage made the copy, where the strategy can do it more than one way; a
        // cross-repository mount or an address says it already.
        match &node.method {
            None
            | Some(
                MountMethod::CrossRepository
                | MountMethod::FetchedFromAddress
                | MountMethod::FetchedByDestination,
            ) => {}
            Some(method) => line.push_str(&format!(" via {method}")),
        }
        if let Some(strategy) = &node.strategy {
            line.push_str(&format!(" ({strategy})"));
        }
    }
    match (&node.action, &node.strategy, &node.reason) {
        (Action::WouldTry, Some(strategy), Some(reason)) => {
            line.push_str(&format!(" ({strategy}: {reason})"));
        }
        (Action::WouldTry, Some(strategy), None) => line.push_str(&format!(" ({strategy})")),
        (_, _, Some(reason)) => line.push_str(&format!(" ({reason})")),
        _ => {}
    }
    line
}

/// The warning line of `warning` (for stderr).
pub fn warning_line(warning: &CopyWarning) -> String {
    format!("warning: {warning}")
}

/// The summary lines.
pub fn summary(report: &CopyReport, src: &str, dst: &str) -> String {
    let verb = if report.dry_run { "Planned" } else { "Copied" };
    let mut text = format!("{verb} {src} => {dst}\nDigest: {}", report.root.digest());
    if let Some(plan) = &report.plan {
        text.push('\n');
        text.push_str(&plan_line(plan));
    }
    text
}

/// The totals line of a dry run.
pub fn plan_line(t: &PlanTotals) -> String {
    let mut line = format!(
        "Plan: {} to stream ({}), {} to mount, {} present",
        blobs(t.copy_blobs),
        bytes(t.copy_bytes),
        blobs(t.mount_blobs),
        blobs(t.present_blobs),
    );
    if t.try_blobs > 0 {
        line.push_str(&format!(
            ", {} to try ({} streamed if not mounted)",
            blobs(t.try_blobs),
            bytes(t.try_bytes)
        ));
    }
    line.push_str(&format!(
        "; {} to push ({}), {} present",
        manifests(t.copy_manifests),
        bytes(t.copy_manifest_bytes),
        manifests(t.present_manifests)
    ));
    line
}

fn blobs(n: usize) -> String {
    format!("{n} blob{}", if n == 1 { "" } else { "s" })
}

fn manifests(n: usize) -> String {
    format!("{n} manifest{}", if n == 1 { "" } else { "s" })
}

/// `1 byte`, `612 bytes`.
pub(crate) fn bytes(n: u64) -> String {
    format!("{n} byte{}", if n == 1 { "" } else { "s" })
}

/// Prints `value` on stdout as one JSON document, redacted as every result is.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    println!("{}", ferry_core::redact::text(&text));
    Ok(())
}

/// Prints `lines` on stdout, redacted as every result is.
pub fn print_lines(lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    println!("{}", ferry_core::redact::text(&lines.join("\n")));
}

/// Prints node lines as nodes finish, with progress bars on a terminal.
pub struct Printer {
    text: bool,
    bars: Option<Bars>,
    destination: StoreInfo,
}

struct Bars {
    multi: MultiProgress,
    active: Mutex<HashMap<String, ProgressBar>>,
}

impl Printer {
    /// `text`: print node lines; `progress`: draw bars on stderr; `destination`: where the
    /// copy goes.
    pub fn new(text: bool, progress: bool, destination: StoreInfo) -> Arc<Self> {
        let bars = progress.then(|| Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            active: Mutex::new(HashMap::new()),
        });
        Arc::new(Self {
            text,
            bars,
            destination,
        })
    }

    /// Handles one engine event.
    pub fn event(&self, event: &CopyEvent) {
        match event {
            CopyEvent::Copying(d) => {
                if let Some(b) = &self.bars {
                    let mut active = b.active.lock().expect("bars");
                    // A node whose first transfer failed (a blob a strategy began to fetch)
                    // starts its bar over.
                    if let Some(bar) = active.get(&d.digest().to_string()) {
                        bar.set_position(0);
                        return;
                    }
                    let bar = b.multi.add(ProgressBar::new(d.size()));
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                        )
                        .expect("template")
                        .progress_chars("=> "),
                    );
                    bar.set_prefix(format!("Copying {}", short_digest(d.digest())));
                    active.insert(d.digest().to_string(), bar);
                }
            }
            CopyEvent::Bytes {
                descriptor, done, ..
            } => {
                if let Some(b) = &self.bars
                    && let Some(bar) = b
                        .active
                        .lock()
                        .expect("bars")
                        .get(&descriptor.digest().to_string())
                {
                    bar.set_position(*done);
                }
            }
            CopyEvent::Done(node) => {
                if let Some(b) = &self.bars
                    && let Some(bar) = b
                        .active
                        .lock()
                        .expect("bars")
                        .remove(&node.descriptor.digest().to_string())
                {
                    bar.finish_and_clear();
                    b.multi.remove(&bar);
                }
                if self.text {
                    let line = node_line(node, &self.destination);
                    match &self.bars {
                        Some(b) => b.multi.suspend(|| println_flush(&line)),
                        None => println_flush(&line),
                    }
                }
                // Warnings go to stderr in every format (the JSON report carries them too).
                for warning in &node.warnings {
                    let line = warning_line(warning);
                    match &self.bars {
                        Some(b) => b.multi.suspend(|| eprintln_flush(&line)),
                        None => eprintln_flush(&line),
                    }
                }
            }
            _ => {}
        }
    }

    /// Clears any bar left.
    pub fn finish(&self) {
        if let Some(b) = &self.bars {
            for (_, bar) in b.active.lock().expect("bars").drain() {
                bar.finish_and_clear();
            }
            let _ = b.multi.clear();
        }
    }
}

/// Writes `line` to stderr, redacted, and flushes.
pub(crate) fn eprintln_flush(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}", ferry_core::redact::text(line));
    let _ = err.flush();
}

fn println_flush(line: &str) {
    result_line(&ferry_core::redact::text(line));
}

/// Set once standard output carries an archive: results go to stderr instead.
static STDOUT_IS_DATA: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Standard output carries data (an archive written to `-`) from now on: every result line
/// goes to stderr.
pub(crate) fn stdout_carries_data() {
    STDOUT_IS_DATA.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Writes a result line to stdout (stderr while stdout carries an archive) and flushes.
pub(crate) fn result_line(line: &str) {
    if STDOUT_IS_DATA.load(std::sync::atomic::Ordering::SeqCst) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
        let _ = err.flush();
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
