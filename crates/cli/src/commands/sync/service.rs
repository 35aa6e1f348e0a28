//! `ferry sync --every`: a sync that runs itself, on a schedule, reading its files again
//! before each run; its metrics and health over HTTP (`--metrics-addr`) or in a file for
//! node_exporter (`--metrics-file`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Result, bail};
use ferry_core::Error;
use ferry_metrics::{Metrics, RegistryRequests, RegistrySource};
use ferry_sync::{Schedule, Stop, StopLevel};

use super::{Plan, Session, SyncArgs};
use crate::app::App;
use crate::exit;
use crate::setup::clients::Clients;
use crate::signals::RUNNING;

/// The shortest interval: a run every second is already a busy registry's worth of `HEAD`s.
const MIN_EVERY: Duration = Duration::from_secs(1);

/// `--every` or `every = "…"`, checked.
pub(super) fn parse_every(text: &str) -> Result<Duration, String> {
    let every = crate::options::parse_duration(text)?;
    check_every(every)?;
    Ok(every)
}

fn check_every(every: Duration) -> Result<(), String> {
    if every < MIN_EVERY {
        return Err(format!(
            "`{}` is shorter than the shortest interval, 1s",
            humantime::format_duration(every)
        ));
    }
    Ok(())
}

/// The bytes of docker's `config.json` (the registry credentials), so that new clients are
/// made when it changes.
pub(super) fn docker_config_bytes() -> Vec<u8> {
    let path = match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => std::path::PathBuf::from(dir).join("config.json"),
        None => match std::env::var_os("HOME") {
            Some(home) => std::path::PathBuf::from(home).join(".docker/config.json"),
            None => return Vec::new(),
        },
    };
    std::fs::read(path).unwrap_or_default()
}

/// Reads the per-registry counts of `clients` at each scrape.
pub(super) fn registry_source(clients: Arc<Clients>) -> RegistrySource {
    Box::new(move || {
        let mut out = Vec::new();
        for client in clients.all() {
            for (host, stats) in client.request_stats() {
                out.push((
                    host,
                    RegistryRequests {
                        by_class: stats
                            .answers
                            .by_class()
                            .into_iter()
                            .filter(|(_, n)| *n > 0)
                            .map(|(class, n)| (class.to_string(), n))
                            .collect(),
                        waited: stats.waited,
                    },
                ));
            }
        }
        out
    })
}

/// The metrics, when `--metrics-addr` or `--metrics-file` asks for them; served at once on
/// `--metrics-addr`.
pub(super) async fn start_metrics(
    args: &SyncArgs,
    every: Option<Duration>,
) -> Result<Option<Arc<Metrics>>> {
    if args.metrics_addr.is_none() && args.metrics_file.is_none() {
        return Ok(None);
    }
    if let Some(path) = &args.metrics_file {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if !dir.is_dir() {
            bail!(Error::invalid(
                "flag",
                format!("--metrics-file {}", path.display()),
                format!(
                    "its directory `{}` does not exist; create it, or name a file in the \
                     textfile collector's directory",
                    dir.display()
                ),
            ));
        }
    }
    let metrics = Arc::new(Metrics::new(env!("CARGO_PKG_VERSION"), every));
    if let Some(addr) = args.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            Error::invalid(
                "flag",
                format!("--metrics-addr {addr}"),
                format!("cannot listen there ({e}); choose another address or port"),
            )
        })?;
        let bound = listener.local_addr().map_or(addr, |a| a);
        tracing::info!(%bound, "serving metrics");
        eprintln!("ferry: metrics at http://{bound}/metrics (health: /healthz, /readyz)");
        tokio::spawn(ferry_metrics::serve(listener, metrics.clone()));
    }
    Ok(Some(metrics))
}

/// Runs the sync of `plan` now and then every `every` (or the interval the files set later),
/// until SIGINT or SIGTERM; returns 0, the exit code of a service that was stopped.
pub(super) async fn serve(
    app: &App,
    mut args: SyncArgs,
    mut plan: Plan,
    every: Duration,
    stop: Stop,
) -> Result<u8> {
    check_every(every).map_err(|reason| Error::invalid("flag", "--every", reason))?;
    // A password on stdin can be read once: the runs to come reuse it.
    if args.copy.registry.password_stdin {
        let (from, to) = crate::setup::clients::passwords(&args.copy.registry)?;
        let r = &mut args.copy.registry;
        (r.from_password, r.to_password, r.password_stdin) = (from, to, false);
        plan.args.copy.registry = args.copy.registry.clone();
    }
    let metrics = start_metrics(&args, Some(every))
        .await?
        .unwrap_or_else(|| Arc::new(Metrics::new(env!("CARGO_PKG_VERSION"), Some(every))));
    let mut schedule = Schedule::new(every);
    let mut session = Session::new(&plan, Some(metrics.clone()), true);
    // From now on a signal stops the service (after the images in flight), whenever it comes.
    RUNNING.store(true, std::sync::atomic::Ordering::SeqCst);
    eprintln!(
        "ferry: syncing every {} (next runs start an interval apart, plus up to {} s); \
         SIGTERM ends the service",
        humantime::format_duration(every),
        schedule.max_jitter.as_secs_f64().ceil()
    );
    for run in 1u64.. {
        let started = tokio::time::Instant::now();
        let (at, clock) = (SystemTime::now(), Instant::now());
        metrics.run_started(at);
        tracing::info!(run, "run starts");
        let (code, failed) = match session.run(app, &plan, &stop).await {
            Ok(outcome) => (outcome.code, ferry_metrics::failed_wholly(&outcome.report)),
            Err(e) => {
                let message =
                    ferry_core::redact::text(&exit::message(&e, app.verbose)).into_owned();
                eprintln!("error: run {run}: {message}");
                (exit::code(&e), Some(message))
            }
        };
        metrics.run_finished(
            SystemTime::now(),
            Instant::now(),
            clock.elapsed(),
            code,
            failed,
        );
        if let Some(path) = &args.metrics_file
            && let Err(e) = metrics.write_textfile(path)
        {
            eprintln!("error: writing the metrics file `{}`: {e}", path.display());
        }
        if stop.level() != StopLevel::Run || !schedule.wait_next(started, &stop).await {
            break;
        }
        // The files again: an edit takes effect now; a bad one leaves the last good one.
        match Plan::read(app, &args) {
            Ok(next) => {
                metrics.config_read(true);
                let every = args.every.or(next.every).unwrap_or(schedule.every);
                if every != schedule.every {
                    eprintln!(
                        "ferry: syncing every {} from now on",
                        humantime::format_duration(every)
                    );
                    schedule = Schedule::new(every);
                    metrics.health().set_every(Some(every));
                }
                plan = next;
            }
            Err(e) => {
                metrics.config_read(false);
                eprintln!(
                    "error: reading the files again: {}; running with the last good reading",
                    ferry_core::redact::text(&exit::message(&e, app.verbose))
                );
            }
        }
    }
    eprintln!("ferry: stopped");
    Ok(0)
}
