//! Pacing by a registry's own quota, and a cap on its request rate.
//!
//! Docker Hub and other registries announce a quota of pulls on their answers:
//!
//! ```text
//! ratelimit-limit: 100;w=21600       100 pulls per window of 21600 s
//! ratelimit-remaining: 76;w=21600    76 left in this window
//! ratelimit-reset: 1200              (some registries) the window ends in 1200 s
//! ```
//!
//! Docker Hub counts manifest `GET`s only (a `HEAD` and a blob are free), so those are the
//! requests paced here ("pulls"); every answer that carries the headers, `HEAD`s included,
//! updates what is known. Per host:
//!
//! - until the host first answers, one pull at a time goes, so that a burst cannot exceed a
//!   quota not yet known; a host whose answers announce none is not held back after that;
//! - while more pulls are left than are in flight and waiting, nothing is held back;
//! - as the pulls left near the pulls in flight and waiting, they are spread over what is
//!   left of the window (until `ratelimit-reset`, else over the window `w`), one every
//!   window ÷ pulls left, so the quota is not spent in one burst; when that spacing would be
//!   longer than the longest wait allowed, the pulls left are used as they come instead;
//! - with none left, every pull waits for the window to end (`ratelimit-reset`, else the
//!   whole window `w`, as a rolling window frees its first pull no sooner), announced once
//!   ([`QuotaWait`], to [`Pacing::on_wait`] and as an `info` event); a wait beyond
//!   [`Pacing::max_wait`] fails at once with [`Error::QuotaExhausted`].
//!
//! Separately, [`Pacing::requests_per_second`]
//! spaces every request to a host evenly (regsync's `reqPerSec`), bursts excluded.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_core::{Error, Result};
use http::{HeaderMap, Method};
use url::Url;

use crate::clock::{Clock, SystemClock};
use crate::reference::{DOCKER_HUB, DOCKER_HUB_API_HOST};

/// How long a pull may wait for a registry's quota by default.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(600);

/// A registry's quota as one answer announced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Pulls per window (`ratelimit-limit`).
    pub limit: u64,
    /// Pulls left (`ratelimit-remaining`).
    pub remaining: u64,
    /// The window's length (`w=`), when given.
    pub window: Option<Duration>,
    /// When the window ends, from the answer (`ratelimit-reset`, seconds), when given.
    pub reset: Option<Duration>,
}

/// The number before `;` of a `ratelimit-*` value, and its `w=` parameter.
fn number_and_window(value: &str) -> Option<(u64, Option<Duration>)> {
    let first = value.split(',').next()?;
    let mut parts = first.split(';');
    let n = parts.next()?.trim().parse().ok()?;
    let window = parts
        .filter_map(|p| p.trim().strip_prefix("w="))
        .find_map(|w| w.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Some((n, window))
}

impl Quota {
    /// The quota `headers` announce, if they carry `ratelimit-remaining`.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (remaining, w1) = number_and_window(get("ratelimit-remaining")?)?;
        let (limit, w2) = get("ratelimit-limit")
            .and_then(number_and_window)
            .unwrap_or((remaining, None));
        let reset = get("ratelimit-reset")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Some(Self {
            limit: limit.max(remaining),
            remaining,
            window: w2.or(w1),
            reset,
        })
    }
}

/// A wait for a registry's quota, as it is announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaWait {
    /// The registry host (`docker.io`, `registry.example:5000`).
    pub host: String,
    /// The quota (`ratelimit-limit`).
    pub limit: u64,
    /// Pulls left (0).
    pub remaining: u64,
    /// How long the pulls wait.
    pub wait: Duration,
}

impl fmt::Display for QuotaWait {
    /// `docker.io: 0 of 100 pulls left; waiting 5 h 12 min`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} of {} pulls left; waiting {}",
            self.host,
            self.remaining,
            self.limit,
            ferry_core::error::human(self.wait)
        )
    }
}

/// What is told of a wait for a registry's quota.
#[derive(Clone)]
pub struct QuotaHook(Arc<dyn Fn(&QuotaWait) + Send + Sync>);

impl QuotaHook {
    /// A hook calling `f`.
    pub fn new(f: impl Fn(&QuotaWait) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }
}

impl fmt::Debug for QuotaHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QuotaHook")
    }
}

/// How requests are paced; see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct Pacing {
    /// The longest a pull waits for a registry's quota ([`DEFAULT_MAX_WAIT`]).
    pub max_wait: Duration,
    /// At most this many requests per second to each host (`None`: no cap).
    pub requests_per_second: Option<f64>,
    /// Told once of each wait for a quota.
    pub on_wait: Option<QuotaHook>,
    /// The clock waits are measured and slept on.
    pub clock: Arc<dyn Clock>,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            max_wait: DEFAULT_MAX_WAIT,
            requests_per_second: None,
            on_wait: None,
            clock: Arc::new(SystemClock),
        }
    }
}

/// What is known of one host's quota.
#[derive(Debug, Clone, Copy)]
struct Seen {
    limit: u64,
    remaining: u64,
    window: Option<Duration>,
    reset_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    /// Whether the host answered once: until then one pull at a time goes, so that the
    /// first answer tells the quota before a burst can exceed it.
    known: bool,
    quota: Option<Seen>,
    /// The numbers of the pulls sent and not yet answered.
    flying: std::collections::BTreeSet<u64>,
    /// Pulls waiting for their turn.
    waiting: u64,
    /// The next pull's turn, while they are spread.
    next_pull: Option<Instant>,
    /// The next request's turn under the request-rate cap.
    next_request: Option<Instant>,
    /// When the pulls waiting for an empty quota go again.
    resume_at: Option<Instant>,
    /// The number of the next request sent, and of the newest whose answer was learned from.
    next_ticket: u64,
    learned_ticket: u64,
}

impl State {
    fn take_ticket(&mut self) -> u64 {
        self.next_ticket += 1;
        self.next_ticket
    }

    /// A pull goes: its number, counted in flight.
    fn fly(&mut self) -> u64 {
        let ticket = self.take_ticket();
        self.flying.insert(ticket);
        ticket
    }
}

/// One host's pacing.
#[derive(Debug)]
pub struct HostPace {
    host: String,
    state: Mutex<State>,
    /// Woken when a pull ends or an answer comes.
    changed: tokio::sync::Notify,
}

/// A request's place in its host's pacing; dropping it ends the request.
#[derive(Debug)]
pub struct PacePermit {
    /// Set for a pull, which is counted in flight until dropped.
    pace: Option<Arc<HostPace>>,
    /// The request's number, in the order requests were let go.
    ticket: u64,
}

impl PacePermit {
    /// The request's number, in the order requests were let go: an answer to an older
    /// request than the one last learned from tells of an older state of the quota.
    pub fn ticket(&self) -> u64 {
        self.ticket
    }

    /// Learns the quota the request's answer announced (`headers`) and ends the request, in
    /// one step: a pull's place in flight is freed as the pulls left are updated, so no other
    /// pull counts it twice or not at all.
    pub fn answered(mut self, pace: &HostPace, headers: &HeaderMap, clock: &dyn Clock) {
        let pull = self.pace.take().is_some();
        pace.learn(headers, self.ticket, pull, clock);
    }
}

impl Drop for PacePermit {
    fn drop(&mut self) {
        if let Some(pace) = &self.pace {
            {
                let mut s = pace.state.lock().expect("pace lock");
                s.flying.remove(&self.ticket);
            }
            pace.changed.notify_waiters();
        }
    }
}

/// What a request does next.
enum Step {
    /// Go, with this number.
    Go(u64),
    Sleep(Duration, bool),
    /// Wait for the first answer.
    Learn,
}

/// Whether `method` on `url` is a pull as Docker Hub counts them: a manifest `GET`.
pub fn is_pull(method: &Method, url: &Url) -> bool {
    method == Method::GET && url.path().contains("/manifests/")
}

impl HostPace {
    /// The pacing of `host` (as messages name it).
    pub fn new(host: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            host: host.into(),
            state: Mutex::new(State::default()),
            changed: tokio::sync::Notify::new(),
        })
    }

    /// Waits for the request's turn: under the request-rate cap, and for a pull under the
    /// quota. Fails at once when the quota is used up for longer than `pacing` waits.
    pub async fn acquire(self: &Arc<Self>, pull: bool, pacing: &Pacing) -> Result<PacePermit> {
        if let Some(rps) = pacing.requests_per_second.filter(|r| *r > 0.0) {
            let gap = Duration::from_secs_f64(1.0 / rps);
            let wait = {
                let mut s = self.state.lock().expect("pace lock");
                let now = pacing.clock.now();
                let slot = s.next_request.filter(|t| *t > now).unwrap_or(now);
                s.next_request = Some(slot + gap);
                slot - now
            };
            if !wait.is_zero() {
                pacing.clock.sleep(wait).await;
            }
        }
        if !pull {
            return Ok(PacePermit {
                pace: None,
                ticket: self.ticket(),
            });
        }
        let mut turn_taken = false;
        loop {
            // Registered before the state is read, so a change in between is not missed.
            let changed = self.changed.notified();
            match self.step(pacing, turn_taken)? {
                Step::Learn => changed.await,
                Step::Go(ticket) => {
                    return Ok(PacePermit {
                        pace: Some(self.clone()),
                        ticket,
                    });
                }
                Step::Sleep(d, spread) => {
                    pacing.clock.sleep(d).await;
                    let mut s = self.state.lock().expect("pace lock");
                    s.waiting = s.waiting.saturating_sub(1);
                    // A pull whose turn came goes, unless the quota ran out meanwhile.
                    turn_taken |= spread;
                }
            }
        }
    }

    fn ticket(&self) -> u64 {
        self.state.lock().expect("pace lock").take_ticket()
    }

    /// The next step of a pull; `turn_taken`: it waited for its turn among spread pulls.
    fn step(&self, pacing: &Pacing, turn_taken: bool) -> Result<Step> {
        let mut s = self.state.lock().expect("pace lock");
        let now = pacing.clock.now();
        let window_over = s.resume_at.is_some_and(|at| at <= now)
            || s.quota.and_then(|q| q.reset_at).is_some_and(|at| at <= now);
        if window_over {
            // The window is over: its quota is whole again until an answer says otherwise.
            s.resume_at = None;
            if let Some(q) = s.quota.as_mut() {
                q.remaining = q.limit;
                q.reset_at = None;
            }
        }
        let Some(q) = s.quota else {
            if !s.known && !s.flying.is_empty() {
                return Ok(Step::Learn);
            }
            return Ok(Step::Go(s.fly()));
        };
        let window_left = |q: &Seen| {
            q.reset_at
                .map(|at| at.saturating_duration_since(now))
                .or(q.window)
                .unwrap_or(Duration::from_secs(60))
        };
        // The pulls sent after the request whose answer told the pulls left are not counted
        // in them yet; those sent before it may be, or not. None left even so: the quota is
        // used up. None left if they are not: wait for their answers to tell.
        let uncounted = s.flying.range(s.learned_ticket + 1..).count() as u64;
        let in_flight = s.flying.len() as u64;
        let available = q.remaining.saturating_sub(in_flight);
        if available == 0 && q.remaining > uncounted && s.resume_at.is_none() {
            return Ok(Step::Learn);
        }
        if available == 0 {
            let until = match s.resume_at {
                Some(at) => at,
                None => {
                    // To the whole second: the window is over then, and the wait reads as
                    // the registry said it (`ratelimit-reset` is in seconds).
                    let wait = Duration::from_secs(window_left(&q).as_secs_f64().ceil() as u64);
                    if wait > pacing.max_wait {
                        return Err(Error::QuotaExhausted {
                            host: self.host.clone(),
                            limit: q.limit,
                            wait,
                            max_wait: pacing.max_wait,
                        });
                    }
                    let announced = QuotaWait {
                        host: self.host.clone(),
                        limit: q.limit,
                        remaining: available,
                        wait,
                    };
                    tracing::info!(host = %self.host, wait_ms = wait.as_millis() as u64, "{announced}");
                    if let Some(hook) = &pacing.on_wait {
                        (hook.0)(&announced);
                    }
                    s.resume_at = Some(now + wait);
                    now + wait
                }
            };
            s.waiting += 1;
            return Ok(Step::Sleep(until.saturating_duration_since(now), false));
        }
        if !turn_taken && available <= in_flight + s.waiting + 1 {
            let gap = window_left(&q) / u32::try_from(available).unwrap_or(u32::MAX);
            if gap <= pacing.max_wait {
                let slot = s.next_pull.filter(|t| *t > now).unwrap_or(now);
                s.next_pull = Some(slot + gap);
                if slot > now {
                    s.waiting += 1;
                    return Ok(Step::Sleep(slot - now, true));
                }
            }
        }
        Ok(Step::Go(s.fly()))
    }

    /// Learns the quota an answer announced, `headers`, to the request numbered `ticket`
    /// ([`PacePermit::ticket`]). An answer to a request older than the one last learned from
    /// can only lower the pulls left (answers overtake each other).
    pub fn observe(&self, headers: &HeaderMap, ticket: u64, clock: &dyn Clock) {
        self.learn(headers, ticket, false, clock);
    }

    /// [`HostPace::observe`], also freeing a pull's place in flight when `pull`.
    fn learn(&self, headers: &HeaderMap, ticket: u64, pull: bool, clock: &dyn Clock) {
        let quota = Quota::from_headers(headers);
        {
            let mut s = self.state.lock().expect("pace lock");
            if pull {
                s.flying.remove(&ticket);
            }
            s.known = true;
            let stale = ticket < s.learned_ticket;
            s.learned_ticket = s.learned_ticket.max(ticket);
            if let Some(q) = quota
                && !(stale && s.quota.is_some_and(|known| known.remaining <= q.remaining))
            {
                if q.remaining > 0 {
                    s.resume_at = None;
                }
                s.quota = Some(Seen {
                    limit: q.limit,
                    remaining: q.remaining,
                    window: q.window,
                    reset_at: q.reset.map(|r| clock.now() + r),
                });
            }
        }
        self.changed.notify_waiters();
    }

    /// The quota last announced: (pulls left, quota), if any.
    pub fn quota(&self) -> Option<(u64, u64)> {
        let s = self.state.lock().expect("pace lock");
        s.quota.map(|q| (q.remaining, q.limit))
    }
}

/// The pacing of a transport, one per `host:port`.
#[derive(Debug, Default)]
pub(crate) struct Paces(Mutex<HashMap<String, Arc<HostPace>>>);

impl Paces {
    /// The pacing of `url`'s host and port.
    pub(crate) fn of(&self, url: &Url) -> Arc<HostPace> {
        let host = url.host_str().unwrap_or("");
        let key = format!("{host}:{}", url.port_or_known_default().unwrap_or(0));
        self.0
            .lock()
            .expect("paces lock")
            .entry(key)
            .or_insert_with(|| {
                let shown = match (host, url.port()) {
                    (DOCKER_HUB_API_HOST, None) => DOCKER_HUB.to_string(),
                    (h, Some(p)) => format!("{h}:{p}"),
                    (h, None) => h.to_string(),
                };
                HostPace::new(shown)
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn parses_docker_hub_and_draft_headers() {
        let q = Quota::from_headers(&headers(&[
            ("ratelimit-limit", "100;w=21600"),
            ("ratelimit-remaining", "76;w=21600"),
        ]))
        .unwrap();
        assert_eq!(
            q,
            Quota {
                limit: 100,
                remaining: 76,
                window: Some(Duration::from_secs(21600)),
                reset: None
            }
        );
        let q = Quota::from_headers(&headers(&[
            ("ratelimit-limit", "10, 10;w=60"),
            ("ratelimit-remaining", "0"),
            ("ratelimit-reset", "42"),
        ]))
        .unwrap();
        assert_eq!((q.limit, q.remaining), (10, 0));
        assert_eq!(q.reset, Some(Duration::from_secs(42)));
        assert!(Quota::from_headers(&headers(&[("ratelimit-limit", "100;w=1")])).is_none());
        assert!(Quota::from_headers(&headers(&[("ratelimit-remaining", "many")])).is_none());
    }

    #[test]
    fn announces_as_the_issue_of_a_wait_reads() {
        let w = QuotaWait {
            host: "docker.io".into(),
            limit: 100,
            remaining: 0,
            wait: Duration::from_secs(5 * 3600 + 12 * 60),
        };
        assert_eq!(
            w.to_string(),
            "docker.io: 0 of 100 pulls left; waiting 5 h 12 min"
        );
    }

    #[test]
    fn pulls_are_manifest_gets() {
        let u = |p: &str| Url::parse(&format!("https://r.example{p}")).unwrap();
        assert!(is_pull(&Method::GET, &u("/v2/a/b/manifests/v1")));
        assert!(!is_pull(&Method::HEAD, &u("/v2/a/b/manifests/v1")));
        assert!(!is_pull(&Method::GET, &u("/v2/a/b/blobs/sha256:0")));
    }
}
