//! The retry policy and its loop, on tokio's paused clock: every wait the policy chose is seen
//! as virtual time, so the tests assert the waits themselves without sleeping.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_core::retry::{RetryPolicy, Retryable, retry};
use ferry_core::{Error, TransportErrorKind};
use tokio::time::Instant;

/// A failure that says whether it may pass and how long the server asked to wait.
#[derive(Debug)]
struct Failure {
    transient: bool,
    after: Option<Duration>,
}

impl Retryable for Failure {
    fn is_transient(&self) -> bool {
        self.transient
    }
    fn retry_after(&self) -> Option<Duration> {
        self.after
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "failure (transient: {})", self.transient)
    }
}

fn reset() -> Error {
    Error::Transport {
        host: "registry.test".into(),
        kind: TransportErrorKind::Reset,
        message: "the connection broke".into(),
        source: None,
    }
}

#[test]
fn ceilings_double_from_the_base_up_to_the_cap_and_full_jitter_stays_below_them() {
    let p = RetryPolicy::default()
        .with_base_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2));
    let ceilings: Vec<u64> = (1..=7).map(|n| p.ceiling(n).as_millis() as u64).collect();
    assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000]);
    for n in 1..=7 {
        assert_eq!(p.delay(n, 0.0, None), Duration::ZERO);
        assert_eq!(p.delay(n, 0.5, None), p.ceiling(n) / 2);
        assert!(p.delay(n, 0.999, None) < p.ceiling(n));
    }
    // A server's Retry-After longer than the draw is what is waited.
    assert_eq!(
        p.delay(1, 0.5, Some(Duration::from_secs(7))),
        Duration::from_secs(7)
    );
    // A shorter one does not shorten the draw.
    assert_eq!(
        p.delay(5, 0.5, Some(Duration::from_millis(1))),
        Duration::from_millis(800)
    );
}

#[test]
fn the_policy_gives_up_after_its_retries_or_beyond_its_waits() {
    let p = RetryPolicy::default()
        .with_max_retries(3)
        .with_max_wait(Duration::from_secs(10));
    assert!(p.next(0, Duration::ZERO, 0.5, None).is_some());
    assert!(p.next(2, Duration::ZERO, 0.5, None).is_some());
    assert_eq!(
        p.next(3, Duration::ZERO, 0.5, None),
        None,
        "three retries made"
    );
    assert_eq!(
        p.next(0, Duration::from_secs(9), 0.0, Some(Duration::from_secs(2))),
        None,
        "a wait that would make the waits add up past the budget is not made"
    );
    assert_eq!(
        RetryPolicy::never().next(0, Duration::ZERO, 0.5, None),
        None
    );
}

#[test]
fn the_default_survives_a_transfer_that_breaks_more_than_half_the_time() {
    // A blob upload broken by a reset one time in two, and by a 503 one time in ten: each try
    // fails with a chance of 0.55. The default's tries all failing: about one blob in a
    // billion.
    let p = RetryPolicy::default();
    let tries = p.max_retries + 1;
    let all_fail = 0.55f64.powi(tries as i32);
    assert!(
        all_fail < 1e-7,
        "{tries} tries all fail with p = {all_fail}"
    );
    // And their waits fit in the budget: half the sum of every ceiling (full jitter's mean).
    let waits: Duration = (1..=p.max_retries).map(|n| p.ceiling(n)).sum();
    assert!(
        waits / 2 <= p.max_wait,
        "the expected waits ({waits:?} / 2) fit in {:?}",
        p.max_wait
    );
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_with_waits_under_their_ceilings() {
    let policy = RetryPolicy::default()
        .with_max_retries(5)
        .with_base_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(1));
    let tries = Arc::new(Mutex::new(Vec::new()));
    let seen = tries.clone();
    let waits = Mutex::new(Vec::new());
    let started = Instant::now();
    let out = retry(
        &policy,
        "a step",
        |n| {
            seen.lock().unwrap().push((n, started.elapsed()));
            async move {
                if n < 4 {
                    Err(Failure {
                        transient: true,
                        after: None,
                    })
                } else {
                    Ok(n)
                }
            }
        },
        |event| waits.lock().unwrap().push((event.retry, event.delay)),
    )
    .await;
    assert!(matches!(out, Ok(4)));
    let tries = tries.lock().unwrap().clone();
    assert_eq!(tries.iter().map(|t| t.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
    let waits = waits.lock().unwrap().clone();
    assert_eq!(waits.len(), 3);
    for (i, (retry, delay)) in waits.iter().enumerate() {
        assert_eq!(*retry as usize, i + 1);
        assert!(*delay < policy.ceiling(*retry), "{delay:?}");
        // The clock moved by the wait between two tries (to tokio's timer resolution, 1 ms).
        let moved = tries[i + 1].1 - tries[i].1;
        assert!(
            moved >= *delay && moved <= *delay + Duration::from_millis(1),
            "{moved:?} for a wait of {delay:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_failure_that_cannot_pass_is_not_retried() {
    let calls = Mutex::new(0);
    let out: Result<(), Failure> = retry(
        &RetryPolicy::default(),
        "a step",
        |_| {
            *calls.lock().unwrap() += 1;
            async {
                Err(Failure {
                    transient: false,
                    after: None,
                })
            }
        },
        |_| panic!("no retry"),
    )
    .await;
    assert!(out.is_err());
    assert_eq!(*calls.lock().unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_servers_retry_after_is_waited_and_the_waiting_budget_ends_the_step() {
    let policy = RetryPolicy::default().with_max_wait(Duration::from_secs(30));
    let started = Instant::now();
    let calls = Mutex::new(Vec::new());
    let out: Result<(), Failure> = retry(
        &policy,
        "a step",
        |_| {
            calls.lock().unwrap().push(started.elapsed());
            async {
                Err(Failure {
                    transient: true,
                    after: Some(Duration::from_secs(12)),
                })
            }
        },
        |_| {},
    )
    .await;
    assert!(out.is_err());
    let calls = calls.lock().unwrap().clone();
    // 0 s, 12 s, 24 s; a fourth try would make the waits add up to 36 s, past the 30 s.
    assert_eq!(
        calls,
        [
            Duration::ZERO,
            Duration::from_secs(12),
            Duration::from_secs(24)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn ferrys_errors_say_themselves_whether_to_retry() {
    let policy = RetryPolicy::default().with_max_retries(2);
    let calls = Mutex::new(0);
    let out: ferry_core::Result<()> = retry(
        &policy,
        "a transfer",
        |_| {
            *calls.lock().unwrap() += 1;
            async { Err(reset()) }
        },
        |_| {},
    )
    .await;
    assert!(out.is_err());
    assert_eq!(*calls.lock().unwrap(), 3, "a reset is retried, twice here");

    *calls.lock().unwrap() = 0;
    let out: ferry_core::Result<()> = retry(
        &policy,
        "a lookup",
        |_| {
            *calls.lock().unwrap() += 1;
            async { Err(Error::not_found("tag `v1`")) }
        },
        |_| {},
    )
    .await;
    assert!(out.is_err());
    assert_eq!(*calls.lock().unwrap(), 1, "not found is not retried");
}
