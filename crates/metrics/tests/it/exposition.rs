//! The metrics of real sync runs (over memory stores), read back by an OpenMetrics parser and
//! by node_exporter's textfile collector; readiness on a clock the test moves.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use ferry_core::model::OCI_MANIFEST;
use ferry_core::{Descriptor, MemoryStore, WriteStore};
use ferry_metrics::{EntryLabels, Health, Metrics, Readiness, RegistryRequests, failed_wholly};
use ferry_sync::{SyncEntry, SyncOptions, SyncSource, sync};
use ferry_test_support::prometheus::{NodeExporter, node_exporter_program, parse_openmetrics};

const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

async fn image(store: &MemoryStore, tag: &str, layer: &[u8]) -> Descriptor {
    let layer = store.insert(LAYER, Bytes::copy_from_slice(layer));
    let config = store.insert(CONFIG, Bytes::from(format!("{{\"tag\":\"{tag}\"}}")));
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]
    });
    let d = store.insert(
        OCI_MANIFEST,
        Bytes::from(serde_json::to_vec(&manifest).unwrap()),
    );
    store.tag(&d, tag).await.unwrap();
    d
}

/// Runs one sync of `src` into `dst` with its events counted by `metrics`.
async fn run(metrics: &Arc<Metrics>, src: &Arc<MemoryStore>, dst: &Arc<MemoryStore>) {
    let labels = vec![EntryLabels {
        source: "src/app".into(),
        destination: "dst/app".into(),
    }];
    let entry = SyncEntry::new(SyncSource::Store {
        name: "app".into(),
        source: src.clone(),
        destination: dst.clone(),
    });
    let sink = metrics.clone();
    let started = Instant::now();
    metrics.run_started(SystemTime::now());
    let report = sync(
        vec![entry],
        SyncOptions::default().on_event(move |e| sink.observe(&labels, e)),
    )
    .await;
    let code = if report.complete() { 0 } else { 1 };
    metrics.run_finished(
        SystemTime::now(),
        Instant::now(),
        started.elapsed(),
        code,
        failed_wholly(&report),
    );
}

#[tokio::test]
async fn every_metric_of_two_runs_parses_as_openmetrics_with_the_counts_of_the_runs() {
    let metrics = Arc::new(Metrics::new("9.9.9", Some(Duration::from_secs(60))));
    let src = Arc::new(MemoryStore::new("src"));
    let dst = Arc::new(MemoryStore::new("dst"));
    image(&src, "v1", &[1; 100]).await;
    image(&src, "v2", &[2; 300]).await;
    metrics.set_registries(Box::new(|| {
        vec![(
            "registry.example:443".into(),
            RegistryRequests {
                by_class: [("2xx".to_string(), 7), ("4xx".to_string(), 2)].into(),
                waited: Duration::from_millis(1500),
            },
        )]
    }));
    run(&metrics, &src, &dst).await;
    run(&metrics, &src, &dst).await;
    // The clients are replaced (the file changed): their counts stay in the counters.
    metrics.set_registries(Box::new(|| {
        vec![(
            "registry.example:443".into(),
            RegistryRequests {
                by_class: [("2xx".to_string(), 1)].into(),
                waited: Duration::ZERO,
            },
        )]
    }));
    metrics.config_read(false);

    let scrape = parse_openmetrics(&metrics.encode()).unwrap();
    let entry = [("source", "src/app"), ("destination", "dst/app")];
    let with = |extra: (&'static str, &'static str)| {
        let mut l = entry.to_vec();
        l.push(extra);
        l
    };
    assert_eq!(scrape.kind("ferry_sync_images").as_deref(), Some("counter"));
    assert_eq!(
        scrape.value("ferry_sync_images", &with(("outcome", "synced"))),
        Some(2.0)
    );
    assert_eq!(
        scrape.value("ferry_sync_images", &with(("outcome", "unchanged"))),
        Some(2.0)
    );
    assert_eq!(
        scrape.value("ferry_sync_images", &with(("outcome", "failed"))),
        None
    );
    // Two images of a manifest, a config and a layer each, streamed.
    assert_eq!(
        scrape.value("ferry_sync_blobs", &with(("how", "streamed"))),
        Some(6.0)
    );
    let streamed = scrape
        .value("ferry_sync_bytes", &with(("how", "streamed")))
        .unwrap();
    assert!(streamed > 400.0, "{streamed}");
    assert_eq!(
        scrape.value(
            "ferry_registry_requests",
            &[("registry", "registry.example:443"), ("class", "2xx")]
        ),
        Some(8.0)
    );
    assert_eq!(
        scrape.value("ferry_registry_requests", &[("class", "4xx")]),
        Some(2.0)
    );
    assert_eq!(
        scrape
            .kind("ferry_registry_rate_limit_wait_seconds")
            .as_deref(),
        Some("counter")
    );
    assert_eq!(
        scrape.value("ferry_registry_rate_limit_wait_seconds", &[]),
        Some(1.5)
    );
    assert_eq!(
        scrape.kind("ferry_sync_run_duration_seconds").as_deref(),
        Some("histogram")
    );
    assert_eq!(
        scrape.value("ferry_sync_run_duration_seconds", &[]),
        Some(2.0)
    );
    assert_eq!(scrape.value("ferry_sync_images_in_flight", &[]), Some(0.0));
    assert_eq!(
        scrape.value("ferry_sync_last_run_exit_code", &[]),
        Some(0.0)
    );
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for gauge in [
        "ferry_sync_last_run_start_timestamp_seconds",
        "ferry_sync_last_run_end_timestamp_seconds",
        "ferry_sync_last_success_timestamp_seconds",
    ] {
        let at = scrape.value(gauge, &[]).unwrap();
        assert!((now - at).abs() < 60.0, "{gauge} {at}");
    }
    assert_eq!(
        scrape.value("ferry_sync_config_reload_failures", &[]),
        Some(1.0)
    );
    assert_eq!(
        scrape.value("ferry_sync_config_last_reload_successful", &[]),
        Some(0.0)
    );
    assert_eq!(
        scrape.value("ferry_build_info", &[("version", "9.9.9")]),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_failed_run_sets_its_exit_code_and_leaves_the_last_success_where_it_was() {
    let metrics = Arc::new(Metrics::new("9.9.9", None));
    let src = Arc::new(MemoryStore::new("src"));
    let dst = Arc::new(MemoryStore::new("dst"));
    image(&src, "v1", &[1; 10]).await;
    run(&metrics, &src, &dst).await;
    let first = parse_openmetrics(&metrics.encode()).unwrap();
    let success = first
        .value("ferry_sync_last_success_timestamp_seconds", &[])
        .unwrap();

    // A tag whose manifest names a layer the source does not have: that image fails.
    let missing = Descriptor::new(LAYER.into(), 5, ferry_core::sha256(b"gone!"));
    let config = src.insert(CONFIG, Bytes::from_static(b"{}"));
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [missing]
    });
    let d = src.insert(
        OCI_MANIFEST,
        Bytes::from(serde_json::to_vec(&manifest).unwrap()),
    );
    src.tag(&d, "broken").await.unwrap();
    run(&metrics, &src, &dst).await;
    let second = parse_openmetrics(&metrics.encode()).unwrap();
    let entry = [
        ("source", "src/app"),
        ("destination", "dst/app"),
        ("outcome", "failed"),
    ];
    assert_eq!(second.value("ferry_sync_images", &entry), Some(1.0));
    assert_eq!(
        second.value("ferry_sync_last_run_exit_code", &[]),
        Some(1.0)
    );
    assert_eq!(
        second.value("ferry_sync_last_success_timestamp_seconds", &[]),
        Some(success)
    );
    // One image still unchanged: the run did not fail as a whole, so it is still ready.
    assert!(matches!(
        metrics.health().readiness(Instant::now()),
        Readiness::Ready(_)
    ));
}

#[test]
fn ready_only_while_a_run_finished_within_two_intervals_and_did_not_fail_wholly() {
    let health = Health::new(Some(Duration::from_secs(60)));
    let t0 = Instant::now();
    assert_eq!(
        health.readiness(t0),
        Readiness::NotReady("no run has finished yet".into())
    );
    health.run_finished(t0, None);
    assert!(matches!(
        health.readiness(t0 + Duration::from_secs(119)),
        Readiness::Ready(_)
    ));
    assert!(matches!(
        health.readiness(t0 + Duration::from_secs(120)),
        Readiness::Ready(_)
    ));
    match health.readiness(t0 + Duration::from_secs(121)) {
        Readiness::NotReady(why) => assert!(why.contains("more than two intervals"), "{why}"),
        other => panic!("{other:?}"),
    }
    health.run_finished(
        t0 + Duration::from_secs(180),
        Some("every image failed".into()),
    );
    assert_eq!(
        health.readiness(t0 + Duration::from_secs(181)),
        Readiness::NotReady("every image failed".into())
    );
    health.run_finished(t0 + Duration::from_secs(240), None);
    assert!(matches!(
        health.readiness(t0 + Duration::from_secs(241)),
        Readiness::Ready(_)
    ));
    // A longer interval read from the mirror file moves the deadline.
    health.set_every(Some(Duration::from_secs(600)));
    assert!(matches!(
        health.readiness(t0 + Duration::from_secs(1000)),
        Readiness::Ready(_)
    ));
}

#[tokio::test]
async fn node_exporter_reads_the_textfile_with_counters_as_counters() {
    let program = node_exporter_program().expect(
        "node_exporter is needed: `apt-get install prometheus-node-exporter` (scripts/test does)",
    );
    let metrics = Arc::new(Metrics::new("9.9.9", None));
    let src = Arc::new(MemoryStore::new("src"));
    let dst = Arc::new(MemoryStore::new("dst"));
    image(&src, "v1", &[1; 10]).await;
    run(&metrics, &src, &dst).await;
    metrics.set_registries(Box::new(|| {
        vec![(
            "r.example:5000".into(),
            RegistryRequests {
                by_class: [("2xx".to_string(), 3)].into(),
                waited: Duration::from_millis(250),
            },
        )]
    }));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.prom");
    metrics.write_textfile(&path).unwrap();
    // Only the file itself: the one written aside was renamed over it.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["ferry.prom"]);

    let exporter = NodeExporter::start(program, dir.path()).await.unwrap();
    let exported = exporter.scrape().await.unwrap();
    assert_eq!(
        exported.value("node_textfile_scrape_error", &[]),
        Some(0.0),
        "{}",
        exported.text
    );
    for (family, kind) in [
        ("ferry_sync_images_total", "counter"),
        ("ferry_sync_blobs_total", "counter"),
        ("ferry_registry_requests_total", "counter"),
        ("ferry_registry_rate_limit_wait_seconds_total", "counter"),
        ("ferry_sync_last_run_end_timestamp_seconds", "gauge"),
        ("ferry_sync_run_duration_seconds", "histogram"),
    ] {
        assert_eq!(
            exported.kind(family).as_deref(),
            Some(kind),
            "{family}:\n{}",
            exported.text
        );
    }
    assert_eq!(
        exported.value("ferry_sync_images_total", &[("outcome", "synced")]),
        Some(1.0)
    );
    assert_eq!(
        exported.value(
            "ferry_registry_rate_limit_wait_seconds_total",
            &[("registry", "r.example:5000")]
        ),
        Some(0.25)
    );
}
