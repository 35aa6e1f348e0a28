//! Strategy layers: timeouts, resting after an unreachable outcome, tracing; how they stack
//! and print themselves. Time is moved by the tests (tokio's paused clock, a `ManualClock`),
//! never slept through.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ferry_conformance::random_blob;
use ferry_core::layer::{ManualClock, MountStrategyExt};
use ferry_core::{
    AttemptOutcome, MemoryStore, MountChain, MountOutcome, MountRequest, MountStrategy,
};

/// A strategy that answers what it is told, counting its attempts; `hang` makes it never
/// answer. It stands for a vendor API whose answers the test must choose.
#[derive(Debug, Clone)]
struct Scripted {
    answer: fn() -> MountOutcome,
    hang: bool,
    calls: Arc<AtomicUsize>,
}

impl Scripted {
    fn new(answer: fn() -> MountOutcome) -> Self {
        Self {
            answer,
            hang: false,
            calls: Arc::default(),
        }
    }

    fn hanging() -> Self {
        Self {
            hang: true,
            ..Self::new(|| MountOutcome::declined("unused"))
        }
    }
}

impl std::fmt::Display for Scripted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scripted")
    }
}

#[async_trait]
impl MountStrategy for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }

    async fn mount(&self, _: &MountRequest<'_>) -> ferry_core::Result<MountOutcome> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.hang {
            std::future::pending::<()>().await;
        }
        Ok((self.answer)())
    }

    fn probes_destination(&self, _: &MountRequest<'_>) -> bool {
        true
    }
}

fn unreachable() -> MountOutcome {
    MountOutcome::unreachable("connection refused by http://admin.invalid")
}

struct Stores {
    a: MemoryStore,
    b: MemoryStore,
    c: MemoryStore,
}

fn stores() -> Stores {
    Stores {
        a: MemoryStore::new("a"),
        b: MemoryStore::new("b"),
        c: MemoryStore::new("c"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_timeout_declines_a_hanging_attempt_as_unreachable_at_its_limit() {
    let s = stores();
    let (desc, _) = random_blob(10);
    let strategy = Scripted::hanging().with_timeout(Duration::from_secs(30));
    assert_eq!(strategy.to_string(), "Timeout(30s, Scripted)");
    assert_eq!(strategy.name(), "scripted");
    let request = MountRequest::new(&desc, &s.a, &s.b);
    assert!(strategy.probes_destination(&request), "forwarded");
    let started = tokio::time::Instant::now();
    let outcome = strategy.mount(&request).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    assert!(outcome.is_unreachable(), "{outcome:?}");
    assert_eq!(outcome.reason(), Some("Scripted did not answer within 30s"));

    // An attempt that answers in time passes unchanged.
    let fast = Scripted::new(|| MountOutcome::declined("refused"))
        .with_timeout(Duration::from_millis(250));
    assert_eq!(fast.to_string(), "Timeout(250ms, Scripted)");
    let outcome = fast.mount(&request).await.unwrap();
    assert_eq!(outcome.reason(), Some("refused"));
    assert!(!outcome.is_unreachable());
}

#[tokio::test]
async fn resting_leaves_an_unreachable_strategy_alone_for_that_pair_of_stores_until_the_clock_moves_on()
 {
    let s = stores();
    let (desc, _) = random_blob(10);
    let clock = ManualClock::new();
    let scripted = Scripted::new(unreachable);
    let calls = scripted.calls.clone();
    let strategy = scripted
        .resting_after_failure(Duration::from_secs(30))
        .with_clock(clock.clone());
    assert_eq!(strategy.to_string(), "Resting(30s, Scripted)");
    let a_to_b = MountRequest::new(&desc, &s.a, &s.b);

    // The first attempt meets the failure and starts a rest.
    assert!(strategy.probes_destination(&a_to_b));
    let first = strategy.mount(&a_to_b).await.unwrap();
    assert!(first.is_unreachable(), "{first:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // While it lasts, attempts between the same stores are declined without asking, and the
    // engine is told to check the destination itself.
    clock.advance(Duration::from_secs(10));
    let rested = strategy.mount(&a_to_b).await.unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the strategy was not asked"
    );
    assert_eq!(rested.kind(), AttemptOutcome::Declined);
    assert!(!rested.is_unreachable(), "a rest does not extend itself");
    assert_eq!(
        rested.reason(),
        Some("not asked again for 20s: connection refused by http://admin.invalid (10s ago)")
    );
    assert!(!strategy.probes_destination(&a_to_b));

    // A clone shares the rest; another pair of stores is still tried.
    let clone = strategy.clone();
    clone.mount(&a_to_b).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let a_to_c = MountRequest::new(&desc, &s.a, &s.c);
    assert!(strategy.mount(&a_to_c).await.unwrap().is_unreachable());
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // Once the rest is over, the strategy is asked again.
    clock.advance(Duration::from_secs(20));
    assert!(strategy.probes_destination(&a_to_b));
    assert!(strategy.mount(&a_to_b).await.unwrap().is_unreachable());
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn resting_ignores_refusals_that_are_not_unreachable() {
    let s = stores();
    let (desc, _) = random_blob(10);
    let scripted = Scripted::new(|| MountOutcome::declined("401: check the token"));
    let calls = scripted.calls.clone();
    let strategy = scripted.resting_after_failure(Duration::from_secs(30));
    let request = MountRequest::new(&desc, &s.a, &s.b);
    for _ in 0..3 {
        assert_eq!(
            strategy.mount(&request).await.unwrap().reason(),
            Some("401: check the token")
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_inside_a_rest_waits_once_then_the_copy_goes_on_at_once() {
    let s = stores();
    let (desc, data) = random_blob(100);
    s.a.insert_unverified(&desc, data);
    let scripted = Scripted::hanging();
    let calls = scripted.calls.clone();
    let strategy = scripted
        .with_timeout(Duration::from_secs(30))
        .resting_after_failure(Duration::from_secs(60))
        .traced();
    assert_eq!(
        strategy.to_string(),
        "Traced(Resting(1m, Timeout(30s, Scripted)))"
    );
    let chain = MountChain::new().with(strategy);
    assert_eq!(
        chain.to_string(),
        "MountChain[Traced(Resting(1m, Timeout(30s, Scripted)))]"
    );
    let request = MountRequest::new(&desc, &s.a, &s.b);
    let started = tokio::time::Instant::now();
    let (_, attempts) = chain.mount(&request).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    assert_eq!(attempts[0].strategy, "scripted");
    assert_eq!(attempts[0].outcome, AttemptOutcome::Declined);
    let (_, attempts) = chain.mount(&request).await.unwrap();
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(30),
        "the second attempt did not wait"
    );
    assert!(
        attempts[0].detail.starts_with("not asked again"),
        "{attempts:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// A `tracing` subscriber that records span names and the `outcome` of events, enough to see
/// what `Traced` emits.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<String>>,
    spans: AtomicUsize,
}

impl tracing::Subscriber for Recorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        self.seen
            .lock()
            .unwrap()
            .push(format!("span {}", span.metadata().name()));
        tracing::span::Id::from_u64(self.spans.fetch_add(1, Ordering::SeqCst) as u64 + 1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Outcome(Option<String>);
        impl tracing::field::Visit for Outcome {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "outcome" {
                    self.0 = Some(format!("{value:?}"));
                }
            }
        }
        let mut outcome = Outcome(None);
        event.record(&mut outcome);
        if let Some(o) = outcome.0 {
            self.seen.lock().unwrap().push(format!("event outcome={o}"));
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn traced_wraps_every_attempt_in_a_span_and_reports_its_outcome() {
    let recorder = Arc::new(Recorder::default());
    let s = stores();
    let (desc, _) = random_blob(10);
    let strategy = Scripted::new(|| MountOutcome::not_applicable("not mine")).traced();
    assert_eq!(strategy.to_string(), "Traced(Scripted)");
    let outcome = tracing::subscriber::with_default(recorder.clone(), || {
        let request = MountRequest::new(&desc, &s.a, &s.b);
        futures::executor::block_on(strategy.mount(&request))
    })
    .unwrap();
    assert_eq!(
        outcome.reason(),
        Some("not mine"),
        "the outcome is unchanged"
    );
    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(seen, ["span mount", "event outcome=not-applicable"]);
}

#[tokio::test]
async fn a_shared_strategy_can_be_layered() {
    let s = stores();
    let (desc, _) = random_blob(10);
    let shared: Arc<dyn MountStrategy> = Arc::new(Scripted::new(unreachable));
    let strategy = shared.clone().resting_after_failure(Duration::from_secs(5));
    assert_eq!(strategy.to_string(), "Resting(5s, Scripted)");
    let request = MountRequest::new(&desc, &s.a, &s.b);
    assert!(strategy.mount(&request).await.unwrap().is_unreachable());
    assert!(!strategy.probes_destination(&request));
    assert!(
        shared.probes_destination(&request),
        "the shared one is not resting"
    );
}
