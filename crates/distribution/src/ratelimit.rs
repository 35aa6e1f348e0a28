//! Adaptive rate limits, one per registry (per `host:port` a client speaks to).
//!
//! Registries shed load with `429 Too Many Requests` (Docker Hub, ECR, GHCR, Quay) or
//! `503 Service Unavailable`, often with `Retry-After`. Retrying only the refused request
//! leaves every other request of a busy client running into the same wall, so every request
//! to a host passes through that host's [`AdaptiveLimit`]:
//!
//! - until the host first refuses, nothing is held back;
//! - a refusal halves the requests allowed in flight (at most once per
//!   [`AdaptiveLimit::COOLDOWN`], as one burst of refusals is one signal), down to one;
//! - a `Retry-After` holds every request to the host until it has passed (at most a
//!   minute), not only the one retried;
//! - every answer that is not a refusal widens the window again, by one request per
//!   window's worth of answers (additive increase), until it is wide enough to lift the limit.
//!
//! The transport asks the limit before each try of each request and reports each answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use serde::Serialize;
use tokio::sync::Notify;
use tokio::time::Instant;
use url::Url;

/// What a client's requests to one host cost and met.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RequestStats {
    /// Requests sent (each try counted).
    pub requests: u64,
    /// Answers `429` or `503`.
    pub throttled: u64,
    /// The requests allowed in flight now; `None` when unlimited.
    pub limit: Option<usize>,
    /// The tries by what they got: answers by status class, or none.
    pub answers: Answers,
    /// How long requests waited for the limit, in all: for a place in its window, or for a
    /// `Retry-After` to pass (JSON: seconds).
    #[serde(rename = "waited_seconds", serialize_with = "seconds")]
    pub waited: Duration,
}

/// Tries by what they got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Answers {
    /// `1xx`.
    #[serde(rename = "1xx")]
    pub informational: u64,
    /// `2xx`.
    #[serde(rename = "2xx")]
    pub success: u64,
    /// `3xx`.
    #[serde(rename = "3xx")]
    pub redirection: u64,
    /// `4xx`.
    #[serde(rename = "4xx")]
    pub client_error: u64,
    /// `5xx`.
    #[serde(rename = "5xx")]
    pub server_error: u64,
    /// No answer: the connection failed, broke or timed out.
    pub none: u64,
}

impl Answers {
    /// Each class with its name (`2xx`, …, `none`), in that order.
    pub fn by_class(&self) -> [(&'static str, u64); 6] {
        [
            ("1xx", self.informational),
            ("2xx", self.success),
            ("3xx", self.redirection),
            ("4xx", self.client_error),
            ("5xx", self.server_error),
            ("none", self.none),
        ]
    }
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e6)
}

#[derive(Debug)]
struct State {
    /// Requests allowed in flight, when limited.
    window: f64,
    limited: bool,
    in_flight: usize,
    paused_until: Option<Instant>,
    last_decrease: Option<Instant>,
}

/// The adaptive limit of one host; see the [module documentation](self).
#[derive(Debug)]
pub struct AdaptiveLimit {
    state: Mutex<State>,
    freed: Notify,
    requests: AtomicU64,
    throttled: AtomicU64,
    /// Answers by class (`1xx` … `5xx`), then tries without an answer.
    answers: [AtomicU64; 6],
    /// Nanoseconds requests waited in [`AdaptiveLimit::acquire`].
    waited: AtomicU64,
}

/// A request's place in the window; dropping it frees the place.
#[derive(Debug)]
pub struct Permit {
    limit: Arc<AdaptiveLimit>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        {
            let mut s = self.limit.state.lock().expect("limit lock");
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        self.limit.freed.notify_waiters();
    }
}

impl Default for AdaptiveLimit {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                window: f64::from(Self::UNLIMITED_AT as u32),
                limited: false,
                in_flight: 0,
                paused_until: None,
                last_decrease: None,
            }),
            freed: Notify::new(),
            requests: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            answers: Default::default(),
            waited: AtomicU64::new(0),
        }
    }
}

impl AdaptiveLimit {
    /// Refusals closer together than this are one signal: the window halves once.
    pub const COOLDOWN: Duration = Duration::from_secs(1);
    /// A window this wide lifts the limit.
    pub const UNLIMITED_AT: usize = 64;
    /// The longest `Retry-After` honoured.
    pub const MAX_PAUSE: Duration = Duration::from_secs(60);

    /// A limit that holds nothing back yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Waits for a place in the window (and for any `Retry-After` pause to pass).
    pub async fn acquire(self: &Arc<Self>) -> Permit {
        let mut held_since: Option<Instant> = None;
        loop {
            // Registered before the check, so a place freed in between is not missed.
            let freed = self.freed.notified();
            let pause = {
                let mut s = self.state.lock().expect("limit lock");
                let now = Instant::now();
                match s.paused_until {
                    Some(until) if until > now => Some(until),
                    _ => {
                        s.paused_until = None;
                        if !s.limited || (s.in_flight as f64) < s.window.floor().max(1.0) {
                            s.in_flight += 1;
                            self.requests.fetch_add(1, Ordering::Relaxed);
                            if let Some(since) = held_since {
                                let waited = now.duration_since(since).as_nanos();
                                self.waited.fetch_add(
                                    u64::try_from(waited).unwrap_or(u64::MAX),
                                    Ordering::Relaxed,
                                );
                            }
                            return Permit {
                                limit: self.clone(),
                            };
                        }
                        None
                    }
                }
            };
            held_since.get_or_insert_with(Instant::now);
            match pause {
                Some(until) => tokio::time::sleep_until(until).await,
                None => freed.await,
            }
        }
    }

    /// Learns from an answer: a `429` or `503` narrows the window (and, with `retry_after`,
    /// pauses every request); anything else widens it.
    pub fn observe(&self, status: StatusCode, retry_after: Option<Duration>) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.answers[class].fetch_add(1, Ordering::Relaxed);
        let mut s = self.state.lock().expect("limit lock");
        let now = Instant::now();
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            let recent = s
                .last_decrease
                .is_some_and(|at| now.duration_since(at) < Self::COOLDOWN);
            if !recent {
                let base = if s.limited {
                    s.window
                } else {
                    // Those in flight were too many: start from them.
                    s.in_flight.max(1) as f64
                };
                s.window = (base / 2.0).max(1.0);
                s.limited = true;
                s.last_decrease = Some(now);
                tracing::info!(
                    status = status.as_u16(),
                    window = s.window as u64,
                    "the registry is shedding load; fewer requests in flight"
                );
            }
            if let Some(wait) = retry_after {
                let until = now + wait.min(Self::MAX_PAUSE);
                if s.paused_until.is_none_or(|p| p < until) {
                    s.paused_until = Some(until);
                    tracing::info!(
                        ms = wait.min(Self::MAX_PAUSE).as_millis() as u64,
                        "Retry-After: every request to the registry waits"
                    );
                }
            }
        } else if s.limited {
            s.window += 1.0 / s.window.max(1.0);
            if s.window >= Self::UNLIMITED_AT as f64 {
                s.limited = false;
            }
        }
    }

    /// Learns that a try got no answer (the connection failed, broke or timed out).
    pub fn observe_no_answer(&self) {
        self.answers[5].fetch_add(1, Ordering::Relaxed);
    }

    /// What went through so far.
    pub fn stats(&self) -> RequestStats {
        let s = self.state.lock().expect("limit lock");
        let n = |i: usize| self.answers[i].load(Ordering::Relaxed);
        RequestStats {
            requests: self.requests.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            limit: s.limited.then(|| s.window.floor().max(1.0) as usize),
            answers: Answers {
                informational: n(0),
                success: n(1),
                redirection: n(2),
                client_error: n(3),
                server_error: n(4),
                none: n(5),
            },
            waited: Duration::from_nanos(self.waited.load(Ordering::Relaxed)),
        }
    }
}

/// The limits of a transport, one per `host:port`.
#[derive(Debug, Default)]
pub(crate) struct Limits(Mutex<HashMap<String, Arc<AdaptiveLimit>>>);

impl Limits {
    /// The limit of `url`'s host and port.
    pub(crate) fn of(&self, url: &Url) -> Arc<AdaptiveLimit> {
        let key = authority(url);
        self.0
            .lock()
            .expect("limits lock")
            .entry(key)
            .or_default()
            .clone()
    }

    /// Every host's figures.
    pub(crate) fn stats(&self) -> Vec<(String, RequestStats)> {
        let mut out: Vec<(String, RequestStats)> = self
            .0
            .lock()
            .expect("limits lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.stats()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// `host:port` of a URL (the port always written).
fn authority(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}
