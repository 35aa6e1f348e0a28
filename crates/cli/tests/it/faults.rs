//! `ferry cp` through a fault-injecting proxy in front of the real registry: seeded random
//! faults must not change a single digest, permanent faults must fail after bounded retries
//! with the registry's answer in the message, and never leave a manifest without its children.

use std::time::Instant;

use ferry_test_support::fixtures::push;
use ferry_test_support::{
    Content, Fault, FaultPlan, FaultProxy, Index, IndexBuilder, Registry, http, skopeo,
};

use crate::support::*;

/// Seeds of the random-fault runs; a failing run prints its seed and faults, and is replayed
/// by putting that seed here.
const SEEDS: &[u64] = &[1, 2, 3];
/// Share of requests spoiled in the random runs.
const FAULT_RATE: f64 = 0.15;

/// Fast retries for the permanent-fault cases, so each gives up in about a second: five
/// tries of a request and of a step, waits from 10 ms, within 300 ms a step.
const FAST_RETRIES: &[(&str, &str)] = &[
    ("FERRY_RETRY_TRIES", "5"),
    ("FERRY_RETRY_BASE_DELAY_MS", "10"),
    ("FERRY_RETRY_MAX_DELAY_MS", "300"),
];

fn index() -> Index {
    IndexBuilder::new()
        .platforms(&["linux/amd64", "linux/arm64"], &[150_000, 600_000], 41)
        .build()
}

fn source_registry(content: &dyn Content) -> Registry {
    let reg = Registry::start().unwrap();
    rt().block_on(push(&reg.url(), "src/app", content, Some("v1"), None))
        .unwrap();
    reg
}

/// `skopeo copy --all` out of the registry (no proxy) into a layout: every blob is read and
/// its digest checked; returns the digest of the copied root.
fn skopeo_reads_all(reg: &Registry, repo_tag: &str, scratch: &std::path::Path) -> String {
    let out = scratch.join(format!("skopeo-{}", repo_tag.replace(['/', ':'], "-")));
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-oci-accept-uncompressed-layers",
        "--src-tls-verify=false",
        &format!("docker://{}/{repo_tag}", reg.addr()),
        &format!("oci:{}:t", out.display()),
    ])
    .unwrap();
    let raw = skopeo(&["inspect", "--raw", &format!("oci:{}:t", out.display())]).unwrap();
    ferry_core::sha256(&raw.stdout).to_string()
}

#[test]
fn random_faults_on_a_share_of_requests_leave_every_digest_identical() {
    let content = index();
    let root = content.index.digest().to_string();
    let reg = source_registry(&content);
    let scratch = tempfile::tempdir().unwrap();
    for &seed in SEEDS {
        let proxy = FaultProxy::start(reg.addr(), FaultPlan::random(seed, FAULT_RATE)).unwrap();
        let p = proxy.addr();
        let layout = scratch.path().join(format!("out-{seed}"));
        let steps = [
            // registry to registry, every blob streamed
            vec![
                "--mount".to_string(),
                "none".into(),
                format!("{p}/src/app:v1"),
                format!("{p}/copy{seed}/app:v1"),
            ],
            // registry to layout
            vec![
                format!("{p}/src/app:v1"),
                format!("oci:{}:v1", layout.display()),
            ],
            // layout to registry
            vec![
                format!("oci:{}:v1", layout.display()),
                format!("{p}/back{seed}/app:v1"),
            ],
        ];
        for step in &steps {
            let mut args = vec!["cp", "--plain-http"];
            args.extend(step.iter().map(String::as_str));
            let run = ferry(&args);
            assert_eq!(
                run.code,
                0,
                "ferry {args:?} failed under faults:\n{}\n{}",
                run.stderr,
                proxy.report()
            );
            assert!(
                run.stdout.contains(&format!("Digest: {root}")),
                "{}",
                run.stdout
            );
        }
        assert!(
            proxy.injected().len() >= 3,
            "the run saw faults: {}",
            proxy.report()
        );
        for repo in [format!("copy{seed}/app:v1"), format!("back{seed}/app:v1")] {
            assert_eq!(
                skopeo_reads_all(&reg, &repo, scratch.path()),
                root,
                "{repo}"
            );
        }
        let raw = skopeo(&["inspect", "--raw", &format!("oci:{}:v1", layout.display())]).unwrap();
        assert_eq!(ferry_core::sha256(&raw.stdout).to_string(), root);
        eprintln!("{}", proxy.report());
    }
}

/// One permanent fault and what must come of it.
struct Case {
    method: &'static str,
    path: &'static str,
    fault: Fault,
    /// `None`: the copy succeeds; `Some(words)`: it fails, its message holding each word.
    fails_with: Option<&'static [&'static str]>,
}

fn cases() -> Vec<Case> {
    let get_blob = |fault, fails_with| Case {
        method: "GET",
        path: "/blobs/sha256:",
        fault,
        fails_with,
    };
    vec![
        get_blob(Fault::Status(500), Some(&["GET blob", "500"])),
        get_blob(Fault::Status(502), Some(&["GET blob", "502"])),
        get_blob(
            Fault::Status(503),
            Some(&["GET blob", "503", "UNAVAILABLE"]),
        ),
        get_blob(
            Fault::TooManyRequests { retry_after: 1 },
            Some(&["GET blob", "429"]),
        ),
        get_blob(
            Fault::ResetMidBody,
            Some(&["broke while reading blob `sha256:", "reset"]),
        ),
        get_blob(
            Fault::TruncatedBody,
            Some(&["broke while reading blob `sha256:"]),
        ),
        get_blob(
            Fault::WrongContentLength,
            Some(&["bytes", "descriptor says"]),
        ),
        get_blob(
            Fault::SlowBody {
                chunk: 64 * 1024,
                pause: std::time::Duration::from_millis(2),
            },
            None,
        ),
        Case {
            method: "GET",
            path: "/manifests/sha256:",
            fault: Fault::WrongDigest,
            fails_with: Some(&["GET manifest", "answered `Docker-Content-Digest: sha256:"]),
        },
        // The retry finds the blob that the registry did commit under the right digest.
        Case {
            method: "PUT",
            path: "/blobs/uploads/",
            fault: Fault::WrongDigest,
            fails_with: None,
        },
        Case {
            method: "POST",
            path: "/blobs/uploads/",
            fault: Fault::Status(503),
            fails_with: Some(&["start blob upload", "503"]),
        },
        Case {
            method: "PUT",
            path: "/manifests/",
            fault: Fault::Status(502),
            fails_with: Some(&["PUT manifest", "502"]),
        },
        // Only the tag: every child lands, the root does not.
        Case {
            method: "PUT",
            path: "/manifests/v1",
            fault: Fault::Status(503),
            fails_with: Some(&["PUT manifest `v1`", "503"]),
        },
    ]
}

/// Every manifest of `content` that `repo` holds has all its children there too.
pub(crate) fn no_manifest_without_children(reg: &Registry, repo: &str, content: &dyn Content) {
    rt().block_on(async {
        let head = |kind: &'static str, digest: String| {
            let url = format!("{}/v2/{repo}/{kind}/{digest}", reg.url());
            async move {
                let accept = ferry_core::model::MANIFEST_MEDIA_TYPES.join(", ");
                http("HEAD", &url, &[("accept", accept.as_str())], Vec::new())
                    .await
                    .unwrap()
                    .status
            }
        };
        for blob in content.all().into_iter().filter(|b| b.is_manifest()) {
            if head("manifests", blob.digest().to_string()).await != 200 {
                continue;
            }
            let doc: serde_json::Value = serde_json::from_slice(&blob.bytes).unwrap();
            let mut children = Vec::new();
            if let Some(c) = doc.get("config") {
                children.push(("blobs", c["digest"].as_str().unwrap().to_string()));
            }
            for l in doc["layers"].as_array().into_iter().flatten() {
                children.push(("blobs", l["digest"].as_str().unwrap().to_string()));
            }
            for m in doc["manifests"].as_array().into_iter().flatten() {
                children.push(("manifests", m["digest"].as_str().unwrap().to_string()));
            }
            for (kind, digest) in children {
                assert_eq!(
                    head(kind, digest.clone()).await,
                    200,
                    "`{repo}` holds manifest `{}` but not its child `{digest}`",
                    blob.digest()
                );
            }
        }
    });
}

/// The most times one request (method and path; an upload counted by its digest) went
/// through the proxy with a fault. Upload starts (`POST`) name no blob, so they are counted
/// per blob of the copy instead.
fn most_tries(proxy: &FaultProxy, blobs: usize) -> usize {
    let mut counts = std::collections::HashMap::<String, usize>::new();
    let posts = proxy
        .injected()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    counts.insert("POST".into(), posts.div_ceil(blobs.max(1)));
    for r in proxy.injected().into_iter().filter(|r| r.method != "POST") {
        let key = match r.path.split_once("/blobs/uploads/") {
            Some((repo, rest)) => {
                let digest = rest.split("digest=").nth(1).unwrap_or("");
                format!("{} {repo} upload {digest}", r.method)
            }
            None => format!("{} {}", r.method, r.path),
        };
        *counts.entry(key).or_default() += 1;
    }
    counts.into_values().max().unwrap_or(0)
}

#[test]
fn permanent_faults_fail_after_bounded_retries_naming_the_answer() {
    let content = index();
    let reg = source_registry(&content);
    let blobs = content.all().iter().filter(|b| !b.is_manifest()).count();
    let mut rows = Vec::new();
    for (i, case) in cases().into_iter().enumerate() {
        let plan = FaultPlan::none().always(case.method, case.path, case.fault);
        let proxy = FaultProxy::start(reg.addr(), plan).unwrap();
        let p = proxy.addr();
        let dst = format!("perm{i}/app");
        let started = Instant::now();
        let run = ferry_with(
            &[
                "cp",
                "--plain-http",
                "--mount",
                "none",
                &format!("{p}/src/app:v1"),
                &format!("{p}/{dst}:v1"),
            ],
            FAST_RETRIES,
            None,
        );
        let took = started.elapsed();
        let faulted = proxy.injected().len();
        let first_line = run.stderr.lines().last().unwrap_or("").to_string();
        rows.push(format!(
            "{} {} × {}: exit {}, {} faulted requests, at most {} per request, {:.1} s: {}",
            case.method,
            case.path,
            case.fault,
            run.code,
            faulted,
            most_tries(&proxy, blobs),
            took.as_secs_f64(),
            first_line
        ));
        match case.fails_with {
            None => {
                assert_eq!(run.code, 0, "{}: {}", case.fault, run.stderr);
                assert_eq!(
                    skopeo_reads_all(
                        &reg,
                        &format!("{dst}:v1"),
                        tempfile::tempdir().unwrap().path()
                    ),
                    content.index.digest().to_string()
                );
            }
            Some(words) => {
                assert_ne!(
                    run.code, 0,
                    "{} on {} {} must fail",
                    case.fault, case.method, case.path
                );
                assert!(
                    !run.stderr.contains("_state"),
                    "no upload state in the message: {}",
                    run.stderr
                );
                for w in words {
                    assert!(
                        run.stderr.contains(w),
                        "{} on {} {}: the message names `{w}`:\n{}",
                        case.fault,
                        case.method,
                        case.path,
                        run.stderr
                    );
                }
                // Bounded: the client's tries of one request (5) times the engine's tries of
                // one step (5), both by the retry policy the flags set.
                const TRIES: usize = 5;
                let most = most_tries(&proxy, blobs);
                assert!(
                    most <= TRIES * TRIES,
                    "{} on {} {}: one request was tried {most} times\n{}",
                    case.fault,
                    case.method,
                    case.path,
                    proxy.report()
                );
                let tags = rt().block_on(http(
                    "GET",
                    &format!("{}/v2/{dst}/tags/list", reg.url()),
                    &[],
                    Vec::new(),
                ));
                let text = tags.map(|t| t.text()).unwrap_or_default();
                assert!(
                    !text.contains("\"v1\""),
                    "no tag after a failed copy: {text}"
                );
                no_manifest_without_children(&reg, &dst, &content);
            }
        }
    }
    eprintln!("{}", rows.join("\n"));
}
