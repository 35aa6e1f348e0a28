//! A registry's quota of pulls, as `ferry cp` and `ferry sync` meet it: a wait for the window
//! announced on stderr, a quota gone for longer than `--max-wait` failing the images not done,
//! and unchanged tags compared by `HEAD`, which no quota counts.
//!
//! The registry is the in-process fake (`FakeRegistry::pull_quota`): no Docker Hub can be
//! reached from the tests, and distribution sends no quota headers. It counts manifest `GET`s
//! per window, as Docker Hub does, on the system's clock: the waits here are real, and short.

use std::time::Duration;

use ferry_test_support::{FakeRegistry, ImageBuilder};

use crate::support::*;

fn fake(limit: u64, window: Duration, tags: usize) -> FakeRegistry {
    let registry = FakeRegistry::builder()
        .pull_quota(limit, window)
        .start()
        .unwrap();
    for i in 0..tags {
        let image = ImageBuilder::new()
            .layers(&[700])
            .seed(500 + i as u64)
            .build();
        registry.put_content("team/app", &image, Some(&format!("t{i}")));
    }
    registry
}

#[test]
fn a_quota_found_empty_is_waited_for_and_the_wait_announced_once() {
    let registry = fake(3, Duration::from_secs(2), 1);
    // Others on the same address used the quota just now.
    registry.spend_pulls(3);
    let out = tempfile::tempdir().unwrap();
    let run = ferry(&[
        "cp",
        "--plain-http",
        "--max-wait",
        "30s",
        &format!("{}/team/app:t0", registry.addr()),
        &format!("oci:{}:t0", out.path().display()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let announced: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("pulls left"))
        .collect();
    assert_eq!(
        announced,
        vec![format!(
            "{}: 0 of 3 pulls left; waiting 2 s",
            registry.addr()
        )],
        "{}",
        run.stderr
    );
    let (pulls, refused) = registry.pulls();
    assert_eq!(pulls.len(), 1);
    // The quota is learned from the first answer: here the copy's own first pull, which the
    // registry refused; everything after it waited.
    assert!(refused.len() <= 1, "{refused:?}");
    assert!(refused.iter().all(|r| *r < pulls[0]));
    assert!(pulls[0] - registry.requests()[0].at >= Duration::from_secs(1));
}

#[test]
fn a_quota_gone_beyond_max_wait_fails_the_images_not_done_and_unchanged_tags_cost_no_pull() {
    let registry = fake(3, Duration::from_secs(3600), 6);
    let out = tempfile::tempdir().unwrap();
    let src = format!("{}/team/app", registry.addr());
    let dst = format!("oci:{}", out.path().join("app").display());
    let run = ferry(&[
        "sync",
        "--plain-http",
        "--max-wait",
        "30s",
        "--format",
        "json",
        &src,
        &dst,
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let images = report["images"].as_array().unwrap();
    let synced = images.iter().filter(|i| i["outcome"] == "synced").count();
    let failed: Vec<&serde_json::Value> =
        images.iter().filter(|i| i["outcome"] == "failed").collect();
    let requests: Vec<String> = registry
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!((synced, failed.len()), (3, 3), "{requests:#?}");
    for f in &failed {
        assert_eq!(f["failure"], "rate-limited", "{f}");
        assert_eq!(
            f["reason"].as_str().unwrap(),
            format!(
                "{}: 0 of 3 pulls left, and the quota comes back in 1 h, beyond the longest \
                 wait allowed (30 s)",
                registry.addr()
            ),
            "{f}"
        );
    }
    let (pulls, refused) = registry.pulls();
    assert_eq!(
        (pulls.len(), refused.len()),
        (3, 0),
        "ferry stopped before the registry refused"
    );

    // Run again with a quota back: the three synced tags are compared by HEAD, and only the
    // three missing are pulled.
    let registry2 = fake(100, Duration::from_secs(3600), 6);
    let src2 = format!("{}/team/app", registry2.addr());
    let run = ferry(&["sync", "--plain-http", "--format", "json", &src2, &dst]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let unchanged = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["outcome"] == "unchanged")
        .count();
    assert_eq!(unchanged, 3, "{}", run.stdout);
    assert_eq!(
        registry2.pulls().0.len(),
        3,
        "an unchanged tag costs no pull"
    );
}
