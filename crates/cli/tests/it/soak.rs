//! A soak of `ferry sync` under faults and kills: a corpus of 12 repositories × 6 tags syncs
//! between real registries through fault proxies (a quarter of uploads reset halfway through
//! their body, 10% of the destination's answers `503` and 5% `429`, 10% of the source's
//! bodies cut short, listings included), and the process is killed with SIGKILL at seeded
//! random moments, 20 times, each time started again, with `--prune` on. After every kill, no
//! destination tag names a missing manifest or blob, and no tag the source has was pruned;
//! at the end the mirror converges, every tag equal to the source's, and the bytes uploaded
//! stay within the bound the test states.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_test_support::{Content, Fault, FaultPlan, FaultProxy, Image, ImageBuilder, Registry};
use ferry_test_support::{fixtures::push, http};

use crate::support::*;
use crate::sync::{Corpus, remote_tags};

/// The seed of the schedule of kills and of both proxies' faults; a failing run prints it.
const SEED: u64 = 2718;
/// How many times the sync is killed before the run that must complete.
const KILLS: usize = 20;

const REPOS: &[&str] = &[
    "r01", "r02", "r03", "r04", "r05", "r06", "r07", "r08", "r09", "r10", "r11", "r12",
];
const TAGS: &[&str] = &["1.0", "1.1", "1.2", "2.0", "2.1", "3.0"];

/// Quick retries, so the many faults do not wait for real back-offs.
const QUICK: &[(&str, &str)] = &[("FERRY_RETRY_BASE_DELAY_MS", "5")];

fn manifest_types() -> &'static str {
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json"
}

/// Every tag of `repo` at `reg` (asked directly, not through a proxy) names a manifest whose
/// config and layers the registry holds; returns the tags.
fn tags_name_complete_images(reg: &Registry, repo: &str) -> Vec<String> {
    let tags = remote_tags(reg, repo);
    for tag in &tags {
        let manifest = rt()
            .block_on(http(
                "GET",
                &format!("{}/v2/{repo}/manifests/{tag}", reg.url()),
                &[("accept", manifest_types())],
                Vec::new(),
            ))
            .unwrap();
        assert_eq!(manifest.status, 200, "{repo}:{tag} names no manifest");
        let m = manifest.json().unwrap();
        let mut blobs = vec![m["config"]["digest"].as_str().unwrap().to_string()];
        for l in m["layers"].as_array().unwrap() {
            blobs.push(l["digest"].as_str().unwrap().to_string());
        }
        for blob in blobs {
            let head = rt()
                .block_on(http(
                    "HEAD",
                    &format!("{}/v2/{repo}/blobs/{blob}", reg.url()),
                    &[],
                    Vec::new(),
                ))
                .unwrap();
            assert_eq!(
                head.status, 200,
                "{repo}:{tag} names the missing blob {blob}"
            );
        }
    }
    tags
}

#[test]
fn a_sync_killed_twenty_times_under_faults_converges_and_never_tags_missing_content() {
    let src = Registry::start().unwrap();
    let dst = Registry::builder().delete(true).start().unwrap();
    let corpus = Corpus::new(REPOS, TAGS, SEED, 24 * 1024);
    corpus.push_to(&src, "ns/");
    // Tags of the destination that the source lacks: `--prune` deletes them once a listing is
    // whole.
    let stale: Image = ImageBuilder::new().layer(4096).seed(SEED + 1).build();
    for repo in ["r01", "r07"] {
        rt().block_on(push(
            &dst.url(),
            &format!("ns/{repo}"),
            &stale,
            Some("0.9-gone"),
            None,
        ))
        .unwrap();
    }

    let src_plan = FaultPlan::random(SEED, 0.10).faults([Fault::TruncatedBody]);
    let dst_plan = FaultPlan::random(SEED + 2, 0.15)
        .faults([
            Fault::Status(503),
            Fault::Status(503),
            Fault::TooManyRequests { retry_after: 0 },
        ])
        .sometimes("PUT", "/blobs/uploads/", 0.25, Fault::ResetMidUpload)
        .sometimes("PATCH", "/blobs/uploads/", 0.25, Fault::ResetMidUpload);
    let src_proxy = FaultProxy::start(src.addr(), src_plan).unwrap();
    let dst_proxy = FaultProxy::start(dst.addr(), dst_plan).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let cache_home = cache.path().display().to_string();
    let args = [
        "sync",
        "--plain-http",
        "--prune",
        "--prune-max",
        "100",
        &format!("{}/ns/", src_proxy.addr()),
        &format!("{}/ns/", dst_proxy.addr()),
    ];
    let mut env: Vec<(&str, &str)> = QUICK.to_vec();
    env.push(("XDG_CACHE_HOME", &cache_home));

    let source_tags: BTreeSet<(String, String)> = corpus
        .images
        .iter()
        .map(|i| (i.repo.clone(), i.tag.clone()))
        .collect();
    let mut mirrored: BTreeSet<(String, String)> = BTreeSet::new();
    let mut schedule = Seeded(SEED);
    let mut runs = Vec::new();
    let mut kills = 0;
    // What each source tag names: the corpus, then the tags moved between runs.
    let mut expected: std::collections::BTreeMap<(String, String), String> = corpus
        .images
        .iter()
        .map(|i| {
            let key = (i.repo.clone(), i.tag.clone());
            (key, i.image.manifest.digest().to_string())
        })
        .collect();
    let mut moved = 0u64;
    // The window the kills are drawn in (ms after 50), narrowed to the runs' own length.
    let mut span = 1400u64;
    while kills < KILLS {
        assert!(
            runs.len() < 3 * KILLS,
            "seed {SEED}: runs keep ending before their kill\n{}",
            runs.join("\n")
        );
        let run = runs.len() + 1;
        // Upstream moves on: between runs, one to three tags name new images, so the kills
        // keep landing on work in flight.
        if run > 1 {
            for _ in 0..=schedule.below(3) {
                let repo = REPOS[schedule.below(REPOS.len() as u64) as usize];
                let tag = TAGS[schedule.below(TAGS.len() as u64) as usize];
                moved += 1;
                let image = ImageBuilder::new()
                    .shared_layer(corpus.base.clone())
                    .layer(24 * 1024)
                    .seed(SEED * 1_000_000 + moved)
                    .build();
                rt().block_on(push(
                    &src.url(),
                    &format!("ns/{repo}"),
                    &image,
                    Some(tag),
                    None,
                ))
                .unwrap();
                expected.insert(
                    (repo.to_string(), tag.to_string()),
                    image.manifest.digest().to_string(),
                );
            }
        }
        // The kill lands within how long a run that ended by itself last took, so that it
        // falls on work in flight however fast the runs become.
        let after = Duration::from_millis(50 + schedule.below(span));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.args(args)
            .env("DOCKER_CONFIG", "/nonexistent/ferry-test-docker-config")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(cache.path().join("stderr")).unwrap());
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let started = Instant::now();
        let ended = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if started.elapsed() >= after {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if ended.is_some() {
            span = (started.elapsed().as_millis() as u64)
                .saturating_sub(50)
                .max(100);
        }
        let what = match ended {
            Some(status) if status.success() => "ended (exit 0)".to_string(),
            Some(status) => {
                let stderr = std::fs::read_to_string(cache.path().join("stderr")).unwrap();
                let said = stderr
                    .lines()
                    .rfind(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .to_string();
                format!("ended ({status}: {said})")
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
                "killed".to_string()
            }
        };
        runs.push(format!(
            "run {run}: {what} after {} ms",
            started.elapsed().as_millis()
        ));
        for repo in REPOS {
            let tags = tags_name_complete_images(&dst, &format!("ns/{repo}"));
            for tag in tags {
                if source_tags.contains(&(repo.to_string(), tag.clone())) {
                    mirrored.insert((repo.to_string(), tag));
                }
            }
        }
        for (repo, tag) in &mirrored {
            assert!(
                remote_tags(&dst, &format!("ns/{repo}")).contains(tag),
                "seed {SEED}, after run {run}: ns/{repo}:{tag} was mirrored, the source \
                 still has it, and it is gone\n{}",
                runs.join("\n")
            );
        }
    }

    // The run that must complete, under the same faults.
    let last = ferry_with(&args, &env, None);
    assert_eq!(
        last.code,
        0,
        "seed {SEED}: {}\n{}\n{}\n{}\n{}",
        last.stderr,
        last.stdout
            .lines()
            .filter(|l| !l.starts_with("Unchanged") && !l.starts_with("Synced"))
            .collect::<Vec<_>>()
            .join("\n"),
        runs.join("\n"),
        src_proxy.report(),
        dst_proxy.report()
    );
    for ((repo, tag), digest) in &expected {
        let repo = format!("ns/{repo}");
        let tags = tags_name_complete_images(&dst, &repo);
        assert!(tags.contains(tag), "{repo}:{tag} missing");
        let manifest = rt()
            .block_on(http(
                "GET",
                &format!("{}/v2/{repo}/manifests/{tag}", dst.url()),
                &[("accept", manifest_types())],
                Vec::new(),
            ))
            .unwrap();
        assert_eq!(
            &ferry_core::sha256(&manifest.body).to_string(),
            digest,
            "{repo}:{tag} equals the source's"
        );
    }
    for repo in ["r01", "r07"] {
        assert!(
            !remote_tags(&dst, &format!("ns/{repo}")).contains(&"0.9-gone".to_string()),
            "the stale tag of ns/{repo} was pruned once a listing was whole"
        );
    }

    // The bytes uploaded: every unique blob once into the registry (a mount brings it to the
    // other repositories), plus what the resets cut (a quarter of the uploads, each cut
    // halfway: an eighth of the sends, resent) and what each kill cut (at most every transfer
    // in flight: 4 images × 8 transfers of the largest blob). Stated as at most three times the
    // unique bytes plus the kills' share.
    let unique: u64 = corpus
        .images
        .iter()
        .flat_map(|i| i.image.all())
        .filter(|b| !b.is_manifest())
        .map(|b| (b.digest().to_string(), b.descriptor.size()))
        .collect::<std::collections::BTreeMap<_, _>>()
        .values()
        .sum::<u64>()
        // Each moved tag's image: its own layer and config.
        + moved * (24 * 1024 + 1024);
    let largest = corpus
        .images
        .iter()
        .flat_map(|i| i.image.all())
        .map(|b| b.descriptor.size())
        .max()
        .unwrap();
    let uploaded = dst_proxy.bytes_received("PUT") + dst_proxy.bytes_received("PATCH");
    let bound = 3 * unique + KILLS as u64 * 32 * largest;
    eprintln!(
        "soak seed {SEED}: {KILLS} runs killed, {moved} tags moved upstream, then one complete \
         run; {uploaded} bytes uploaded for {unique} unique ({:.2}×; bound {bound}); {} requests at the destination, {} faulted\n{}",
        uploaded as f64 / unique as f64,
        dst_proxy.requests().len(),
        dst_proxy.injected().len(),
        runs.join("\n")
    );
    assert!(
        uploaded <= bound,
        "{uploaded} bytes uploaded, over the bound {bound}"
    );
}
