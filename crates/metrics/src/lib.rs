//! ferry-metrics: what a `ferry sync` that runs on a schedule tells Prometheus.
//!
//! [`Metrics`] holds the metric families (built with the `prometheus-client` crate) and is
//! fed by the sync: [`Metrics::observe`] takes the run's [`SyncEvent`]s, [`Metrics::run_started`]
//! and [`Metrics::run_finished`] frame each run, and [`Metrics::set_registries`] gives it a
//! way to read the registry clients' request counts when it is scraped. [`serve`] answers
//! `/metrics`, `/healthz` and `/readyz` over HTTP (hyper); [`Metrics::write_textfile`] writes
//! the same metrics for node_exporter's textfile collector. Every name, type and label is
//! listed in `docs/sync.md`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `ferry_build_info` | gauge (1) | `version` |
//! | `ferry_sync_images_total` | counter | `source`, `destination`, `outcome` |
//! | `ferry_sync_blobs_total` | counter | `source`, `destination`, `how` (`streamed`, `mounted`, `present`) |
//! | `ferry_sync_bytes_total` | counter | `source`, `destination`, `how` (`streamed`, `mounted`) |
//! | `ferry_sync_retries_total` | counter | `source`, `destination` |
//! | `ferry_registry_requests_total` | counter | `registry`, `class` (`1xx` … `5xx`, `none`) |
//! | `ferry_registry_rate_limit_wait_seconds_total` | counter | `registry` |
//! | `ferry_sync_images_in_flight` | gauge | |
//! | `ferry_sync_last_run_start_timestamp_seconds` | gauge | |
//! | `ferry_sync_last_run_end_timestamp_seconds` | gauge | |
//! | `ferry_sync_last_success_timestamp_seconds` | gauge | |
//! | `ferry_sync_last_run_exit_code` | gauge | |
//! | `ferry_sync_run_duration_seconds` | histogram | |
//! | `ferry_sync_config_reload_failures_total` | counter | |
//! | `ferry_sync_config_last_reload_successful` | gauge | |

mod health;
mod registries;
mod serve;
mod textfile;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ferry_sync::{Outcome, SyncEvent, SyncReport};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use health::{Health, Readiness};
pub use registries::{RegistryRequests, RegistrySource};
pub use serve::{OPENMETRICS, TEXT_FORMAT, serve};
pub use textfile::to_text_format;

/// The upper bounds of the run-duration histogram's buckets, in seconds.
pub const RUN_DURATION_BUCKETS: [f64; 12] = [
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
];

/// An entry of the sync, as its metrics are labelled: its source and destination as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct EntryLabels {
    /// The entry's source (`registry.example/team/`).
    pub source: String,
    /// The entry's destination.
    pub destination: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    source: String,
    destination: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HowLabels {
    source: String,
    destination: String,
    how: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The metrics of a sync service; see the [crate documentation](crate).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    images: Family<OutcomeLabels, Counter>,
    blobs: Family<HowLabels, Counter>,
    bytes: Family<HowLabels, Counter>,
    retries: Family<EntryLabels, Counter>,
    in_flight: Gauge,
    last_start: FloatGauge,
    last_end: FloatGauge,
    last_success: FloatGauge,
    last_exit_code: Gauge,
    duration: Histogram,
    config_failures: Counter,
    config_ok: Gauge,
    registries: Arc<registries::Registries>,
    /// Images whose copy started and has not ended: (entry, repository, tag).
    copying: Mutex<HashSet<(usize, String, String)>>,
    health: Health,
}

impl Metrics {
    /// The metrics of a service of `ferry` `version` running every `every` (`None`: once).
    pub fn new(version: &str, every: Option<Duration>) -> Self {
        let mut registry = Registry::default();
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: version.to_string(),
            })
            .set(1);
        registry.register("ferry_build_info", "The version of ferry running", build);

        let images = Family::default();
        registry.register(
            "ferry_sync_images",
            "Images (tags) a sync finished, by outcome: synced, unchanged, failed, interrupted, \
             pruned, backed-up, filtered, planned",
            Family::clone(&images),
        );
        let blobs = Family::default();
        registry.register(
            "ferry_sync_blobs",
            "Blobs and manifests of the images synced, by how they reached the destination: \
             streamed through ferry, mounted by a strategy, or present already",
            Family::clone(&blobs),
        );
        let bytes = Family::default();
        registry.register(
            "ferry_sync_bytes",
            "Bytes of the images synced, by how they reached the destination: streamed through \
             ferry or mounted by a strategy",
            Family::clone(&bytes),
        );
        let retries = Family::default();
        registry.register(
            "ferry_sync_retries",
            "Steps of image copies tried again (transfers cut, 503s)",
            Family::clone(&retries),
        );
        let in_flight = Gauge::default();
        registry.register(
            "ferry_sync_images_in_flight",
            "Images being copied now",
            in_flight.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = FloatGauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let last_start = gauge(
            &mut registry,
            "ferry_sync_last_run_start_timestamp_seconds",
            "When the last run started (Unix time)",
        );
        let last_end = gauge(
            &mut registry,
            "ferry_sync_last_run_end_timestamp_seconds",
            "When the last run ended (Unix time)",
        );
        let last_success = gauge(
            &mut registry,
            "ferry_sync_last_success_timestamp_seconds",
            "When the last run that left every selected image at the destination ended (Unix time)",
        );
        let last_exit_code = Gauge::default();
        registry.register(
            "ferry_sync_last_run_exit_code",
            "The exit code the last run would have had as a one-shot `ferry sync` (0: complete)",
            last_exit_code.clone(),
        );
        let duration = Histogram::new(RUN_DURATION_BUCKETS);
        registry.register(
            "ferry_sync_run_duration_seconds",
            "How long runs took",
            duration.clone(),
        );
        let config_failures = Counter::default();
        registry.register(
            "ferry_sync_config_reload_failures",
            "Readings of the mirror file that were refused (the last good one stayed in use)",
            config_failures.clone(),
        );
        let config_ok = Gauge::default();
        config_ok.set(1);
        registry.register(
            "ferry_sync_config_last_reload_successful",
            "Whether the last reading of the mirror file was good (1) or refused (0)",
            config_ok.clone(),
        );
        let registries = Arc::new(registries::Registries::default());
        registry.register_collector(Box::new(registries.clone()));
        Self {
            registry,
            images,
            blobs,
            bytes,
            retries,
            in_flight,
            last_start,
            last_end,
            last_success,
            last_exit_code,
            duration,
            config_failures,
            config_ok,
            registries,
            copying: Mutex::new(HashSet::new()),
            health: Health::new(every),
        }
    }

    /// The health of the service (`/healthz`, `/readyz`).
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Counts one event of a run; `entries` labels the run's entries, by index.
    pub fn observe(&self, entries: &[EntryLabels], event: &SyncEvent) {
        match event {
            SyncEvent::Copying {
                entry,
                repository,
                tag,
            } => {
                let mut copying = self.copying.lock().expect("copying lock");
                copying.insert((*entry, repository.clone(), tag.clone()));
                self.in_flight.set(copying.len() as i64);
            }
            SyncEvent::Image(image) => {
                let Some(labels) = entries.get(image.entry) else {
                    return;
                };
                if image.outcome != Outcome::BackedUp
                    && let Some(tag) = &image.tag
                {
                    let mut copying = self.copying.lock().expect("copying lock");
                    copying.remove(&(image.entry, image.repository.clone(), tag.clone()));
                    self.in_flight.set(copying.len() as i64);
                }
                let outcome = OutcomeLabels {
                    source: labels.source.clone(),
                    destination: labels.destination.clone(),
                    outcome: outcome_label(image.outcome),
                };
                self.images.get_or_create(&outcome).inc();
                let how = |how| HowLabels {
                    source: labels.source.clone(),
                    destination: labels.destination.clone(),
                    how,
                };
                for (h, n) in [
                    ("streamed", image.copied),
                    ("mounted", image.mounted),
                    ("present", image.existed),
                ] {
                    if n > 0 {
                        self.blobs.get_or_create(&how(h)).inc_by(n as u64);
                    }
                }
                for (h, n) in [("streamed", image.bytes), ("mounted", image.mounted_bytes)] {
                    if n > 0 {
                        self.bytes.get_or_create(&how(h)).inc_by(n);
                    }
                }
                if image.retries > 0 {
                    self.retries
                        .get_or_create(labels)
                        .inc_by(u64::from(image.retries));
                }
            }
            _ => {}
        }
    }

    /// Marks the start of a run, at `at`.
    pub fn run_started(&self, at: SystemTime) {
        self.last_start.set(unix_seconds(at));
    }

    /// Marks the end of a run at `at` (`now`: the same moment on the monotonic clock, for
    /// readiness): its duration, its exit code, whether it succeeded. `failed_wholly` says why
    /// the run counts as failed as a whole (see [`failed_wholly`]), if it does.
    pub fn run_finished(
        &self,
        at: SystemTime,
        now: Instant,
        duration: Duration,
        exit_code: u8,
        failed_wholly: Option<String>,
    ) {
        self.last_end.set(unix_seconds(at));
        if exit_code == 0 {
            self.last_success.set(unix_seconds(at));
        }
        self.last_exit_code.set(i64::from(exit_code));
        self.duration.observe(duration.as_secs_f64());
        let mut copying = self.copying.lock().expect("copying lock");
        copying.clear();
        self.in_flight.set(0);
        self.health.run_finished(now, failed_wholly);
    }

    /// Records a reading of the mirror file: good, or refused (the last good one stays).
    pub fn config_read(&self, good: bool) {
        if good {
            self.config_ok.set(1);
        } else {
            self.config_ok.set(0);
            self.config_failures.inc();
        }
    }

    /// Where the per-registry counters come from from now on: `source` is asked at every
    /// scrape. The counts of the source it replaces are kept, as they were when replaced, so
    /// the counters never go down.
    pub fn set_registries(&self, source: RegistrySource) {
        self.registries.replace(source);
    }

    /// The metrics in the OpenMetrics text format (what `/metrics` serves to Prometheus).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// The metrics in the Prometheus text format 0.0.4, as node_exporter's textfile
    /// collector reads them (counters typed under their `_total` names).
    pub fn text_format(&self) -> String {
        to_text_format(&self.encode())
    }

    /// Writes [`Metrics::text_format`] to `path` atomically: to a file beside it, then
    /// renamed over it, so node_exporter never reads half a file.
    pub fn write_textfile(&self, path: &Path) -> std::io::Result<()> {
        textfile::write_atomically(path, &self.text_format())
    }
}

/// Why `report`'s run failed as a whole, if it did: images failed and none reached the
/// destination or was found there.
pub fn failed_wholly(report: &SyncReport) -> Option<String> {
    let t = &report.totals;
    let good = t.synced + t.unchanged + t.pruned + t.backed_up + t.planned;
    (t.failed > 0 && good == 0)
        .then(|| format!("every image of the last run failed ({} failures)", t.failed))
}

/// The `outcome` label of an outcome (its JSON name).
fn outcome_label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Synced => "synced",
        Outcome::Unchanged => "unchanged",
        Outcome::Filtered => "filtered",
        Outcome::Failed => "failed",
        Outcome::Interrupted => "interrupted",
        Outcome::Pruned => "pruned",
        Outcome::Planned => "planned",
        Outcome::BackedUp => "backed-up",
        _ => "other",
    }
}

fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
