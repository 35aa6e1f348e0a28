//! The schedule of a sync service, on tokio's paused clock: runs an interval apart, a long run
//! never overlapped, the jitter within its bound, a stop ending the wait at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferry_sync::{Schedule, Stop};
use tokio::time::Instant;

const EVERY: Duration = Duration::from_secs(60);

#[test]
fn the_next_start_is_an_interval_after_the_last_or_its_end_plus_the_jitter() {
    let s = Schedule::new(EVERY);
    assert_eq!(s.max_jitter, Duration::from_secs(6));
    assert_eq!(
        Schedule::new(Duration::from_secs(3600)).max_jitter,
        Duration::from_secs(30)
    );
    let t0 = Instant::now();
    // A short run: an interval after its start.
    assert_eq!(
        s.next_start(t0, t0 + Duration::from_secs(5), 0.0),
        t0 + EVERY
    );
    assert_eq!(
        s.next_start(t0, t0 + Duration::from_secs(5), 0.5),
        t0 + EVERY + Duration::from_secs(3)
    );
    // A run longer than the interval: right after it, never overlapped, nothing made up.
    assert_eq!(
        s.next_start(t0, t0 + Duration::from_secs(150), 0.0),
        t0 + Duration::from_secs(150)
    );
    // The jitter never exceeds its bound.
    assert_eq!(
        s.next_start(t0, t0, 7.0),
        t0 + EVERY + Duration::from_secs(6)
    );
}

#[tokio::test(start_paused = true)]
async fn runs_start_on_the_schedule_and_a_long_run_is_never_overlapped() {
    let schedule = Schedule::new(EVERY).with_max_jitter(Duration::ZERO);
    let stop = Stop::new();
    let origin = Instant::now();
    let mut starts = Vec::new();
    let running = Arc::new(AtomicUsize::new(0));
    for run in 0..4 {
        let started = Instant::now();
        starts.push(started - origin);
        assert_eq!(
            running.fetch_add(1, Ordering::SeqCst),
            0,
            "two runs at once"
        );
        // The third run takes two and a half intervals.
        let takes = if run == 2 {
            EVERY * 5 / 2
        } else {
            Duration::from_secs(10)
        };
        tokio::time::sleep(takes).await;
        running.fetch_sub(1, Ordering::SeqCst);
        assert!(schedule.wait_next(started, &stop).await);
    }
    let secs: Vec<u64> = starts.iter().map(|d| d.as_secs()).collect();
    assert_eq!(secs, [0, 60, 120, 270]);
}

#[tokio::test(start_paused = true)]
async fn a_stop_ends_the_wait_at_once() {
    let schedule = Schedule::new(EVERY);
    let stop = Stop::new();
    let started = Instant::now();
    let waiting = tokio::spawn({
        let stop = stop.clone();
        async move { schedule.wait_next(started, &stop).await }
    });
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(!waiting.is_finished());
    stop.drain();
    assert!(!waiting.await.unwrap(), "stopped, not due");
    assert!(Instant::now() - started < Duration::from_secs(21));
    // Stopped already: no wait at all.
    assert!(!schedule.wait_next(Instant::now(), &stop).await);
}
