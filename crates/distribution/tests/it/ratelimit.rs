//! The adaptive rate limit of a registry, on a clock the tests move: a `Retry-After` holds
//! every request to the host, refusals halve the requests in flight, answers widen them
//! again; and, on a real registry behind a proxy that sheds load, the client's counts.

use std::sync::Arc;
use std::time::Duration;

use ferry_core::{ListTags, ReadStore};
use ferry_distribution::ratelimit::AdaptiveLimit;
use ferry_test_support::fixtures::push;
use ferry_test_support::{Fault, FaultPlan, FaultProxy, ImageBuilder, Registry};
use http::StatusCode;

use crate::support::{client, repo, start_registry};

/// Spawns an acquire that holds its permit until the task is dropped; returns whether it got
/// one so far.
fn waiting_acquire(limit: &Arc<AdaptiveLimit>) -> tokio::task::JoinHandle<()> {
    let limit = limit.clone();
    tokio::spawn(async move {
        let _permit = limit.acquire().await;
        std::future::pending::<()>().await;
    })
}

/// Lets every task that can run, run.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_holds_every_request_to_the_host_until_it_has_passed() {
    let limit = AdaptiveLimit::new();
    let first = limit.acquire().await;
    // One request is answered 429 with `Retry-After: 5`.
    limit.observe(StatusCode::TOO_MANY_REQUESTS, Some(Duration::from_secs(5)));
    drop(first);
    let others: Vec<_> = (0..3).map(|_| waiting_acquire(&limit)).collect();
    settle().await;
    assert_eq!(limit.stats().requests, 1, "nobody passes during the pause");
    tokio::time::advance(Duration::from_millis(4_900)).await;
    settle().await;
    assert_eq!(limit.stats().requests, 1);
    tokio::time::advance(Duration::from_millis(200)).await;
    settle().await;
    // The window halved to one: one request in flight at a time now.
    assert_eq!(limit.stats().limit, Some(1));
    assert_eq!(limit.stats().requests, 2);
    // The one that passed waited out the pause, and that wait is counted; the 429 too.
    let waited = limit.stats().waited;
    assert!(
        waited >= Duration::from_secs(5) && waited <= Duration::from_millis(5_100),
        "{waited:?}"
    );
    assert_eq!(limit.stats().answers.client_error, 1);
    for o in others {
        o.abort();
    }
    // A `Retry-After` beyond a minute is capped at a minute.
    limit.observe(
        StatusCode::TOO_MANY_REQUESTS,
        Some(Duration::from_secs(3600)),
    );
    let later = waiting_acquire(&limit);
    tokio::time::advance(Duration::from_secs(61)).await;
    settle().await;
    assert_eq!(limit.stats().requests, 3);
    later.abort();
}

#[tokio::test(start_paused = true)]
async fn refusals_halve_the_requests_in_flight_and_answers_widen_them_until_the_limit_lifts() {
    let limit = AdaptiveLimit::new();
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(limit.acquire().await);
    }
    assert_eq!(
        limit.stats().limit,
        None,
        "no limit before the first refusal"
    );
    limit.observe(StatusCode::SERVICE_UNAVAILABLE, None);
    assert_eq!(limit.stats().limit, Some(4));
    // A burst of refusals is one signal.
    limit.observe(StatusCode::TOO_MANY_REQUESTS, None);
    assert_eq!(limit.stats().limit, Some(4));
    tokio::time::advance(AdaptiveLimit::COOLDOWN).await;
    limit.observe(StatusCode::TOO_MANY_REQUESTS, None);
    assert_eq!(limit.stats().limit, Some(2));
    assert_eq!(limit.stats().throttled, 3);

    // Eight in flight, two allowed: a new request waits until six have ended.
    let waiter = waiting_acquire(&limit);
    settle().await;
    assert_eq!(limit.stats().requests, 8);
    for _ in 0..6 {
        held.pop();
    }
    settle().await;
    assert_eq!(limit.stats().requests, 8, "two still in flight");
    held.pop();
    settle().await;
    assert_eq!(limit.stats().requests, 9);
    waiter.abort();
    settle().await;

    // Answers widen the window by about one per window's worth, until it lifts.
    limit.observe(StatusCode::OK, None);
    limit.observe(StatusCode::OK, None);
    assert_eq!(limit.stats().limit, Some(2));
    limit.observe(StatusCode::OK, None);
    assert_eq!(limit.stats().limit, Some(3));
    for _ in 0..5000 {
        limit.observe(StatusCode::OK, None);
    }
    assert_eq!(limit.stats().limit, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_through_a_shedding_proxy_reaches_the_hosts_limit_and_requests_still_pass() {
    let registry = start_registry(Registry::builder()).await;
    let image = ImageBuilder::new().layer(100).build();
    for i in 0..10 {
        push(
            &registry.url(),
            "team/app",
            &image,
            Some(&format!("t{i}")),
            None,
        )
        .await
        .unwrap();
    }
    let proxy = tokio::task::spawn_blocking({
        let addr = registry.addr().to_string();
        move || {
            FaultProxy::start(
                &addr,
                FaultPlan::random(9, 0.3).faults([Fault::TooManyRequests { retry_after: 0 }]),
            )
        }
    })
    .await
    .unwrap()
    .unwrap();
    let client = client();
    let store = repo(&client, &proxy.addr(), "team/app");
    let tags = store.list_tags().await.unwrap();
    for tag in &tags {
        store.resolve(tag).await.unwrap();
    }
    let injected = proxy.injected().len() as u64;
    assert!(injected > 0, "{}", proxy.report());
    let stats = client.request_stats();
    let (host, counts) = &stats[0];
    assert_eq!(host, &proxy.addr());
    assert_eq!(counts.throttled, injected);
    assert_eq!(counts.requests, proxy.requests().len() as u64);
    // Every try got an answer: the refusals are its 4xx, the rest 2xx.
    assert_eq!(counts.answers.client_error, injected);
    assert_eq!(counts.answers.success + injected, counts.requests);
    assert_eq!(counts.answers.none, 0);
}
