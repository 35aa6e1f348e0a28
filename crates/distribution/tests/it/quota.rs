//! Pacing by a registry's announced quota (`ratelimit-limit`, `ratelimit-remaining`), and the
//! request-rate cap, on a clock the test owns.
//!
//! The registry is the in-process fake ([`FakeRegistry::pull_quota`]): no Docker Hub can be
//! reached from the tests, and distribution sends no quota headers. The fake counts pulls
//! (manifest `GET`s) per fixed window, answers a pull beyond the quota with 429, and reads the
//! same clock as the client; the clock jumps to the end of each wait the client sleeps, so
//! hours of waiting take no time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_core::{CopyOptions, Error, MemoryStore, copy};
use ferry_distribution::quota::{QuotaHook, QuotaWait};
use ferry_distribution::{ClientOptions, Clock, Credentials, RegistryClient};
use ferry_http::ProxyPolicy;
use ferry_test_support::{FakeRegistry, ImageBuilder};

use crate::support::repo;

/// A clock whose sleeps end at once, the time moved to where they would have ended.
#[derive(Debug)]
struct JumpClock {
    now: Mutex<Instant>,
    slept: Mutex<Vec<Duration>>,
}

impl JumpClock {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            now: Mutex::new(Instant::now()),
            slept: Mutex::new(Vec::new()),
        })
    }
}

impl Clock for JumpClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap()
    }

    fn sleep(
        &self,
        duration: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
        {
            let mut now = self.now.lock().unwrap();
            *now += duration;
            self.slept.lock().unwrap().push(duration);
        }
        Box::pin(tokio::task::yield_now())
    }
}

struct Setup {
    registry: FakeRegistry,
    clock: Arc<JumpClock>,
    announced: Arc<Mutex<Vec<QuotaWait>>>,
    client: RegistryClient,
    tags: Vec<String>,
}

async fn setup(limit: u64, window: Duration, images: usize, options: ClientOptions) -> Setup {
    let clock = JumpClock::new();
    let fake_clock = clock.clone();
    let registry = tokio::task::spawn_blocking(move || {
        FakeRegistry::builder()
            .pull_quota(limit, window)
            .clock(Arc::new(move || fake_clock.now()))
            .start()
            .unwrap()
    })
    .await
    .unwrap();
    let mut tags = Vec::new();
    for i in 0..images {
        let image = ImageBuilder::new()
            .layers(&[512])
            .seed(900 + i as u64)
            .build();
        let tag = format!("t{i}");
        registry.put_content("team/app", &image, Some(&tag));
        tags.push(tag);
    }
    let announced: Arc<Mutex<Vec<QuotaWait>>> = Arc::default();
    let seen = announced.clone();
    let client = RegistryClient::new(ClientOptions {
        plain_http: true,
        credentials: Credentials::anonymous(),
        proxy: Some(ProxyPolicy::none()),
        clock: clock.clone(),
        on_quota_wait: Some(QuotaHook::new(move |w| {
            seen.lock().unwrap().push(w.clone())
        })),
        ..options
    })
    .unwrap();
    Setup {
        registry,
        clock,
        announced,
        client,
        tags,
    }
}

/// Copies every tag, four at a time; returns each copy's result.
async fn copy_all(s: &Setup) -> Vec<ferry_core::Result<()>> {
    copy_some_at_once(s, 4).await
}

/// Copies every tag, `at_once` at a time; returns each copy's result.
async fn copy_some_at_once(s: &Setup, at_once: usize) -> Vec<ferry_core::Result<()>> {
    let src = repo(&s.client, &s.registry.addr(), "team/app");
    let dst = Arc::new(MemoryStore::new("dst"));
    let mut results = Vec::new();
    for chunk in s.tags.chunks(at_once) {
        let copies = chunk.iter().map(|tag| {
            let (src, dst) = (src.clone(), dst.clone());
            async move {
                copy(src, tag, dst, Some(tag), &CopyOptions::default())
                    .await
                    .map(|_| ())
            }
        });
        results.extend(futures::future::join_all(copies).await);
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_stay_under_the_quota_spread_over_each_window() {
    let window = Duration::from_secs(60);
    let s = setup(5, window, 12, ClientOptions::default()).await;
    let started = s.clock.now();
    for r in copy_all(&s).await {
        r.unwrap();
    }
    let (pulls, refused) = s.registry.pulls();
    assert_eq!(
        refused,
        Vec::<Instant>::new(),
        "no pull was refused with 429"
    );
    assert_eq!(pulls.len(), 12, "each image was pulled once");

    // 12 pulls at 5 per window take two waits for a new window.
    let elapsed = s.clock.now() - started;
    assert!(elapsed >= 2 * window, "{elapsed:?}");

    // A wait for a new window, if the spread pulls came to one, was for what was left of it.
    for w in s.announced.lock().unwrap().iter() {
        assert_eq!((w.remaining, w.limit), (0, 5));
        assert!(w.wait <= window, "{w:?}");
    }
    // As the quota neared what was in flight and waiting, pulls waited for turns spread over
    // what was left of the window, never longer than a window.
    let slept = s.clock.slept.lock().unwrap().clone();
    assert!(!slept.is_empty());
    assert!(slept.iter().all(|d| *d <= window), "{slept:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_found_empty_is_waited_for_once_announced_then_the_pulls_go() {
    let window = Duration::from_secs(60);
    // Tags are resolved by HEAD, as a sync compares them: the quota is learned without a pull.
    let s = setup(
        5,
        window,
        3,
        ClientOptions {
            resolve_with_head: true,
            ..Default::default()
        },
    )
    .await;
    // Others on the same address used the whole quota just now. (One copy at a time: an
    // answer read after the clock jumped would tell of a window that is over.)
    s.registry.spend_pulls(5);
    for r in copy_some_at_once(&s, 1).await {
        r.unwrap();
    }
    let (pulls, refused) = s.registry.pulls();
    assert_eq!((pulls.len(), refused.len()), (3, 0));
    let announced = s.announced.lock().unwrap().clone();
    assert_eq!(
        announced,
        vec![QuotaWait {
            host: s.registry.addr(),
            limit: 5,
            remaining: 0,
            wait: window,
        }],
        "announced once, with what the registry said was left of its window"
    );
    assert_eq!(
        announced[0].to_string(),
        format!("{}: 0 of 5 pulls left; waiting 1 min", s.registry.addr())
    );
    assert!(s.clock.slept.lock().unwrap().contains(&window));
    assert!(pulls.iter().all(|t| *t >= pulls[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_back_later_than_max_wait_stops_the_pulls_at_once_with_a_clear_error() {
    let s = setup(
        2,
        Duration::from_secs(3600),
        4,
        ClientOptions {
            max_wait: Duration::from_secs(600),
            ..Default::default()
        },
    )
    .await;
    let results = copy_all(&s).await;
    let failed: Vec<&Error> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(failed.len(), 2, "{results:?}");
    for e in failed {
        assert!(matches!(e, Error::QuotaExhausted { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "{}: 0 of 2 pulls left, and the quota comes back in ",
                s.registry.addr()
            )) && text.ends_with("beyond the longest wait allowed (10 min)"),
            "{text}"
        );
        assert!(!e.is_temporary());
    }
    let (pulls, refused) = s.registry.pulls();
    assert_eq!((pulls.len(), refused.len()), (2, 0));
    assert!(s.announced.lock().unwrap().is_empty(), "no wait was begun");
    assert!(
        s.clock
            .slept
            .lock()
            .unwrap()
            .iter()
            .all(|d| *d < Duration::from_secs(600)),
        "nothing waited beyond max_wait"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_second_spaces_every_request_to_the_host() {
    let s = setup(
        1000,
        Duration::from_secs(3600),
        3,
        ClientOptions {
            requests_per_second: Some(4.0),
            ..Default::default()
        },
    )
    .await;
    let started = s.clock.now();
    for r in copy_all(&s).await {
        r.unwrap();
    }
    // Every request waited for its turn: n requests at 4 per second take (n - 1) / 4 s.
    let n = s.registry.requests().len();
    assert!(n >= 9, "{n} requests");
    let elapsed = s.clock.now() - started;
    assert!(
        elapsed >= Duration::from_millis(250) * (n as u32 - 1),
        "{n} requests in {elapsed:?}"
    );
}
