//! The per-registry counters, read from the registry clients at each scrape.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

/// What the requests to one registry host met so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegistryRequests {
    /// Tries by what they got: `1xx` … `5xx`, or `none` (no answer).
    pub by_class: BTreeMap<String, u64>,
    /// How long requests waited for the host's rate limit (its window, a `Retry-After`).
    pub waited: Duration,
}

impl RegistryRequests {
    fn add(&mut self, other: &RegistryRequests) {
        for (class, n) in &other.by_class {
            *self.by_class.entry(class.clone()).or_default() += n;
        }
        self.waited += other.waited;
    }
}

/// Reads the request counts of the registry clients in use, per `host:port`.
pub type RegistrySource = Box<dyn Fn() -> Vec<(String, RegistryRequests)> + Send + Sync>;

/// The clients' counts: those of clients replaced, and a way to read those in use.
#[derive(Default)]
pub(crate) struct Registries {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    retired: BTreeMap<String, RegistryRequests>,
    live: Option<RegistrySource>,
}

impl std::fmt::Debug for Registries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registries").finish_non_exhaustive()
    }
}

impl Registries {
    pub(crate) fn replace(&self, source: RegistrySource) {
        let mut state = self.state.lock().expect("registries lock");
        if let Some(old) = state.live.take() {
            for (host, counts) in old() {
                state.retired.entry(host).or_default().add(&counts);
            }
        }
        state.live = Some(source);
    }

    fn totals(&self) -> BTreeMap<String, RegistryRequests> {
        let state = self.state.lock().expect("registries lock");
        let mut out = state.retired.clone();
        if let Some(live) = &state.live {
            for (host, counts) in live() {
                out.entry(host).or_default().add(&counts);
            }
        }
        out
    }
}

impl Collector for Registries {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let totals = self.totals();
        // As a family of no metric is left out (no registry asked yet).
        if totals.is_empty() {
            return Ok(());
        }
        let mut requests = encoder.encode_descriptor(
            "ferry_registry_requests",
            "Requests to a registry (each try), by what they got: an answer's status class, or \
             none",
            None,
            MetricType::Counter,
        )?;
        for (host, counts) in &totals {
            for (class, n) in &counts.by_class {
                let labels = [("registry", host.as_str()), ("class", class.as_str())];
                ConstCounter::new(*n).encode(requests.encode_family(&labels)?)?;
            }
        }
        let mut waited = encoder.encode_descriptor(
            "ferry_registry_rate_limit_wait_seconds",
            "Seconds requests to a registry waited for its rate limit (a place in the window \
             it allows, or a Retry-After to pass)",
            None,
            MetricType::Counter,
        )?;
        for (host, counts) in &totals {
            let labels = [("registry", host.as_str())];
            ConstCounter::new(counts.waited.as_secs_f64())
                .encode(waited.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
