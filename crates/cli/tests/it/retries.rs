//! Retries that hold, and `ferry cp` stopped by a signal, through the fault proxy in front of
//! the real registry: uploads reset halfway through their body and `503`s must not stop a
//! copy, a message never shows an upload URL's state, and SIGTERM leaves no upload session
//! and no tag behind.

use std::time::{Duration, Instant};

use ferry_test_support::fixtures::push;
use ferry_test_support::{Content, Fault, FaultPlan, FaultProxy, ImageBuilder, Registry, http};

use crate::support::*;

/// Quick retries so a test's many broken uploads do not wait for real back-offs: waits up
/// to 10 ms doubling (capped by the policy at 2 s), within 60 s a step.
const QUICK: &[(&str, &str)] = &[("FERRY_RETRY_BASE_DELAY_MS", "5")];

/// Uploads (`PUT` and `PATCH` of a session) reset halfway through their body with
/// `reset_share`, and 10% of every request answered `503`.
fn upload_faults(seed: u64, reset_share: f64) -> FaultPlan {
    FaultPlan::random(seed, 0.10)
        .faults([Fault::Status(503)])
        .sometimes("PUT", "/blobs/uploads/", reset_share, Fault::ResetMidUpload)
        .sometimes(
            "PATCH",
            "/blobs/uploads/",
            reset_share,
            Fault::ResetMidUpload,
        )
}

/// The upload sessions the registry holds open: `_uploads/<id>` directories with the session's
/// data or start time. (A session cancelled with `DELETE` loses both; distribution 2.8 leaves
/// its empty `hashstates/` behind, whoever cancels it, until its upload purge.)
fn upload_session_dirs(reg: &Registry) -> Vec<String> {
    let repos = reg.root().join("docker/registry/v2/repositories");
    let mut out = Vec::new();
    let mut stack = vec![repos];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.file_name().is_some_and(|n| n == "_uploads") {
                for session in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                    let session = session.path();
                    if session.join("data").exists() || session.join("startedat").exists() {
                        out.push(session.display().to_string());
                    }
                }
            } else if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out
}

#[test]
fn copies_survive_half_their_uploads_reset_midway_and_a_tenth_answered_503() {
    let content = ImageBuilder::new()
        .layers(&[300_000, 200_000, 100_000, 50_000, 20_000])
        .seed(7)
        .build();
    let reg = Registry::start().unwrap();
    rt().block_on(push(&reg.url(), "src/app", &content, Some("v1"), None))
        .unwrap();
    for (seed, share) in [(11u64, 0.25), (12, 0.5), (13, 0.5)] {
        let proxy = FaultProxy::start(reg.addr(), upload_faults(seed, share)).unwrap();
        let p = proxy.addr();
        let dst = format!("survive{seed}/app");
        let run = ferry_with(
            &[
                "cp",
                "--plain-http",
                "--no-cache",
                "--format",
                "json",
                "--mount",
                "none",
                &format!("{p}/src/app:v1"),
                &format!("{p}/{dst}:v1"),
            ],
            QUICK,
            None,
        );
        let resets = proxy
            .injected()
            .iter()
            .filter(|r| r.fault == Some(Fault::ResetMidUpload))
            .count();
        assert_eq!(
            run.code,
            0,
            "seed {seed}, {}% resets: {}\n{}",
            share * 100.0,
            run.stderr,
            proxy.report()
        );
        assert!(
            resets > 0,
            "the plan reset some uploads: {}",
            proxy.report()
        );
        let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert!(
            report["retries"].as_u64().unwrap() >= resets as u64,
            "each reset upload was retried and counted: {}",
            report["retries"]
        );
        // The registry's own view, not through the proxy: the same manifest, every blob.
        let manifest = rt()
            .block_on(http(
                "GET",
                &format!("{}/v2/{dst}/manifests/v1", reg.url()),
                &[("accept", content.root().media_type().as_str())],
                Vec::new(),
            ))
            .unwrap();
        assert_eq!(
            ferry_core::sha256(&manifest.body).to_string(),
            content.descriptor().digest().to_string()
        );
        for blob in content.all().iter().filter(|b| !b.is_manifest()) {
            let got = rt()
                .block_on(http(
                    "GET",
                    &format!("{}/v2/{dst}/blobs/{}", reg.url(), blob.descriptor.digest()),
                    &[],
                    Vec::new(),
                ))
                .unwrap();
            assert_eq!(
                ferry_core::sha256(&got.body).to_string(),
                blob.descriptor.digest().to_string()
            );
        }
    }
}

#[test]
fn an_upload_that_fails_is_named_without_its_sessions_state() {
    let content = ImageBuilder::new().layers(&[10_000]).seed(8).build();
    let reg = Registry::start().unwrap();
    rt().block_on(push(&reg.url(), "src/app", &content, Some("v1"), None))
        .unwrap();
    let plan = FaultPlan::none().always("PUT", "/blobs/uploads/", Fault::ResetMidUpload);
    let proxy = FaultProxy::start(reg.addr(), plan).unwrap();
    let p = proxy.addr();
    let run = ferry_with(
        &[
            "cp",
            "--plain-http",
            "--no-cache",
            "--mount",
            "none",
            "--retries",
            "2",
            &format!("{p}/src/app:v1"),
            &format!("{p}/dst/app:v1"),
        ],
        QUICK,
        None,
    );
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("/blobs/uploads/") && run.stderr.contains("?…"),
        "the upload is named: {}",
        run.stderr
    );
    for secret in ["_state", "digest="] {
        assert!(
            !run.stderr.contains(secret),
            "no `{secret}` in: {}",
            run.stderr
        );
    }
    // Three tries of a blob (two retries), each reset, and no more: the policy was followed.
    let mut per_blob = std::collections::HashMap::<String, usize>::new();
    for r in proxy.requests().iter().filter(|r| r.method == "PUT") {
        let digest = r.path.split("digest=").nth(1).unwrap_or("").to_string();
        *per_blob.entry(digest).or_default() += 1;
    }
    assert_eq!(
        per_blob.values().max(),
        Some(&3),
        "{per_blob:?}\n{}",
        proxy.report()
    );
}

#[test]
fn a_permanent_fault_is_given_up_within_the_retry_max_wait() {
    let content = ImageBuilder::new().layers(&[20_000]).seed(42).build();
    let reg = Registry::start().unwrap();
    rt().block_on(push(&reg.url(), "src/app", &content, Some("v1"), None))
        .unwrap();
    let plan = FaultPlan::none().always("GET", "/blobs/sha256:", Fault::Status(503));
    let proxy = FaultProxy::start(reg.addr(), plan).unwrap();
    let p = proxy.addr();
    let started = Instant::now();
    let run = ferry(&[
        "cp",
        "--plain-http",
        "--no-cache",
        "--mount",
        "none",
        "--retry-max-wait",
        "2s",
        &format!("{p}/src/app:v1"),
        &format!("{p}/dflt/app:v1"),
    ]);
    let took = started.elapsed();
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("503"), "{}", run.stderr);
    // The request's own retries (2 s at most) inside the blob step's (2 s at most), plus
    // the copy's other requests.
    assert!(took < Duration::from_secs(8), "gave up after {took:?}");
    let gets = proxy.count("GET", "/blobs/sha256:");
    assert!(gets >= 3, "retried: {gets} GETs");
}

#[test]
fn sigterm_mid_copy_cancels_every_upload_session_and_writes_no_tag() {
    let content = ImageBuilder::new()
        .layers(&[2_000_000, 1_500_000])
        .seed(9)
        .build();
    let src = Registry::start().unwrap();
    rt().block_on(push(&src.url(), "src/app", &content, Some("v1"), None))
        .unwrap();
    // The source sends blobs slowly, so their uploads are in flight when the signal comes.
    let slow = FaultPlan::none().always(
        "GET",
        "/blobs/sha256:",
        Fault::SlowBody {
            chunk: 32 * 1024,
            pause: Duration::from_millis(40),
        },
    );
    let proxy = FaultProxy::start(src.addr(), slow).unwrap();
    let dst = Registry::start().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "cp",
            "--plain-http",
            "--no-cache",
            "--grace",
            "0",
            &format!("{}/src/app:v1", proxy.addr()),
            &format!("{}/dst/app:v1", dst.addr()),
        ])
        .env("DOCKER_CONFIG", "/nonexistent/ferry-test-docker-config")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the destination holds open upload sessions (its `_uploads` directories).
    let deadline = Instant::now() + Duration::from_secs(30);
    while upload_session_dirs(&dst).is_empty() {
        assert!(Instant::now() < deadline, "no upload started");
        assert!(child.try_wait().unwrap().is_none(), "ferry ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    assert!(
        stderr.contains("open upload session") && stderr.contains("no tag written"),
        "{stderr}"
    );
    // What the registry still writes of a cut upload goes too (it is asked again until it says
    // it does not know the session); give its handlers a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !upload_session_dirs(&dst).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        upload_session_dirs(&dst),
        Vec::<String>::new(),
        "{stderr}\n{:#?}",
        dst.requests()
    );
    let tags = rt()
        .block_on(http(
            "GET",
            &format!("{}/v2/dst/app/tags/list", dst.url()),
            &[],
            Vec::new(),
        ))
        .map(|r| r.text())
        .unwrap_or_default();
    assert!(!tags.contains("\"v1\""), "no tag: {tags}");
}
