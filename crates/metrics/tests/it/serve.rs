//! The HTTP endpoints, asked by an HTTP client: `/metrics` in either format, `/healthz`,
//! `/readyz` before and after a run, and what else a client might ask.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ferry_metrics::{Metrics, OPENMETRICS, TEXT_FORMAT, serve};
use ferry_test_support::http;
use ferry_test_support::prometheus::scrape;

#[tokio::test]
async fn the_endpoints_answer_as_prometheus_and_kubernetes_expect() {
    let metrics = Arc::new(Metrics::new("9.9.9", Some(Duration::from_secs(30))));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(serve(listener, metrics.clone()));

    let alive = http("GET", &format!("{base}/healthz"), &[], Vec::new())
        .await
        .unwrap();
    assert_eq!((alive.status, alive.text().as_str()), (200, "ok\n"));
    let ready = http("GET", &format!("{base}/readyz"), &[], Vec::new())
        .await
        .unwrap();
    assert_eq!(ready.status, 503);
    assert!(
        ready.text().contains("no run has finished yet"),
        "{}",
        ready.text()
    );

    metrics.run_started(SystemTime::now());
    metrics.run_finished(
        SystemTime::now(),
        Instant::now(),
        Duration::from_secs(3),
        0,
        None,
    );
    let ready = http("GET", &format!("{base}/readyz"), &[], Vec::new())
        .await
        .unwrap();
    assert_eq!(ready.status, 200, "{}", ready.text());

    // Prometheus asks for OpenMetrics and gets it.
    let answer = http(
        "GET",
        &format!("{base}/metrics"),
        &[(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )],
        Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(answer.header("content-type"), Some(OPENMETRICS));
    assert!(answer.text().ends_with("# EOF\n"));
    let parsed = scrape(&format!("{base}/metrics")).await.unwrap();
    assert_eq!(
        parsed.value("ferry_sync_run_duration_seconds", &[]),
        Some(1.0)
    );
    // Anything else gets the text format 0.0.4, counters typed under their samples' names.
    let plain = http("GET", &format!("{base}/metrics"), &[], Vec::new())
        .await
        .unwrap();
    assert_eq!(plain.header("content-type"), Some(TEXT_FORMAT));
    let text = plain.text();
    assert!(
        text.contains("# TYPE ferry_sync_config_reload_failures_total counter"),
        "{text}"
    );
    assert!(!text.contains("# EOF"), "{text}");

    let missing = http("GET", &format!("{base}/nope"), &[], Vec::new())
        .await
        .unwrap();
    assert_eq!(missing.status, 404);
    let post = http("POST", &format!("{base}/metrics"), &[], Vec::new())
        .await
        .unwrap();
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    server.abort();
}
