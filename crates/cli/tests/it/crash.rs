//! `kill -9` of `ferry cp` at seeded random moments: the destination stays readable, shows
//! no partial blob, never holds a manifest without its children, and a re-run completes
//! reusing what was committed; the blob-location cache shared by the killed processes still
//! opens.

use std::path::Path;
use std::time::{Duration, Instant};

use ferry_cache::PersistentLocations;
use ferry_test_support::fixtures::write_oci_layout;
use ferry_test_support::{Content, Image, ImageBuilder, Registry, skopeo, umoci};

use crate::support::*;

/// Kills into a layout (at least 20).
const LAYOUT_KILLS: u32 = 20;
/// Kills into a registry.
const REGISTRY_KILLS: u32 = 6;
/// Runs at most, killed or not: a run that ended before its kill shrinks the window of
/// the delays by a quarter, so the kills land inside copies however fast they are here.
const MAX_RUNS: u64 = 80;
const SEED: u64 = 0x5EED_C0DE;

fn image() -> Image {
    ImageBuilder::new()
        .layers(&[1_200_000, 900_000, 700_000, 400_000, 60_000])
        .seed(77)
        .build()
}

/// How long an undisturbed copy takes (the fastest of three, each into a new destination
/// that `args_for(i)` names), to spread the kills over it with a margin after.
fn undisturbed(args_for: impl Fn(usize) -> Vec<String>, env: &[(&str, &str)]) -> Duration {
    (0..3)
        .map(|i| {
            let args = args_for(i);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let started = Instant::now();
            let status = spawn_ferry(&args, env).wait().unwrap();
            assert!(status.success(), "undisturbed copy {args:?}");
            started.elapsed()
        })
        .min()
        .expect("three runs")
}

/// Runs ferry and kills it with SIGKILL after `delay` unless it ended first; whether it was
/// killed.
fn run_and_kill(args: &[&str], env: &[(&str, &str)], delay: Duration) -> bool {
    let mut child = spawn_ferry(args, env);
    let deadline = Instant::now() + delay;
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if Instant::now() >= deadline {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return true;
        }
        std::thread::sleep(Duration::from_millis(1).min(deadline - Instant::now()));
    }
}

/// The layout after a kill: no partial blob, `index.json` parses, and when the tag is there
/// umoci and skopeo read the image.
fn check_layout_after_kill(dir: &Path, tag: &str, root: &str) -> Vec<String> {
    let present = blobs_match_their_names(dir);
    if !dir.join("oci-layout").exists() {
        return present;
    }
    let index = index_json(dir);
    assert!(index["manifests"].is_array(), "{index}");
    let listed = umoci(&["ls", "--layout", &dir.display().to_string()]).unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    if tags(dir).iter().any(|t| t == tag) {
        assert!(
            listed.lines().any(|l| l.trim() == tag),
            "umoci ls: {listed}"
        );
        let image = format!("{}:{tag}", dir.display());
        umoci(&["stat", "--image", &image]).unwrap();
        let raw = skopeo(&["inspect", "--raw", &format!("oci:{image}")]).unwrap();
        assert_eq!(ferry_core::sha256(&raw.stdout).to_string(), root);
    }
    present
}

/// `stdout` reports `digest` as copied again (rather than found, or not visited because its
/// manifest was found).
fn reported_copied(stdout: &str, digest: &str) -> bool {
    let short = &digest["sha256:".len().."sha256:".len() + 12];
    stdout
        .lines()
        .any(|l| l.starts_with("Copied ") && l.contains(short))
}

fn check_cache(cache: &Path) {
    let file = cache.join("ferry/locations.redb");
    if file.exists() {
        PersistentLocations::open(&file)
            .unwrap_or_else(|e| panic!("the cache at `{}` no longer opens: {e}", file.display()));
    }
}

#[test]
fn killed_copies_into_a_layout_leave_it_readable_and_a_rerun_reuses_what_was_committed() {
    let image = image();
    let root = image.manifest.digest().to_string();
    let work = tempfile::tempdir().unwrap();
    let src_dir = work.path().join("src");
    write_oci_layout(&src_dir, &[(Some("v1"), &image)]).unwrap();
    let src = format!("oci:{}:v1", src_dir.display());
    let cache = work.path().join("cache");
    let cache_s = cache.display().to_string();
    let env = [("XDG_CACHE_HOME", cache_s.as_str())];

    let span = undisturbed(
        |i| {
            let probe = work.path().join(format!("probe-{i}"));
            vec![
                "cp".into(),
                "--mount".into(),
                "none".into(),
                src.clone(),
                format!("oci:{}:v1", probe.display()),
            ]
        },
        &env,
    );
    let mut window = (span.as_micros() as u64 * 13 / 10).max(1);

    let mut rng = Seeded(SEED);
    let mut killed = 0;
    let mut partial = 0;
    let mut runs = 0;
    while killed < LAYOUT_KILLS && runs < MAX_RUNS {
        let run = runs;
        runs += 1;
        let dst = work.path().join(format!("dst-{run}"));
        let dst_ref = format!("oci:{}:v1", dst.display());
        let delay = Duration::from_micros(rng.below(window));
        let args = ["cp", "--mount", "none", &src, &dst_ref];
        let was_killed = run_and_kill(&args, &env, delay);
        killed += was_killed as u32;
        if !was_killed {
            window = (window * 3 / 4).max(1);
        }
        let context = format!("run {run} (seed {SEED:#x}), killed after {delay:?}");
        let present = check_layout_after_kill(&dst, "v1", &root);
        check_cache(&cache);
        if !present.is_empty() && present.len() < image.all().len() {
            partial += 1;
        }

        let rerun = ferry_with(&args, &env, None);
        assert_eq!(
            rerun.code, 0,
            "{context}: the re-run fails: {}",
            rerun.stderr
        );
        assert!(
            rerun.stdout.contains(&format!("Digest: {root}")),
            "{context}"
        );
        for digest in &present {
            assert!(
                !reported_copied(&rerun.stdout, digest),
                "{context}: `{digest}` was committed before the kill but copied again:\n{}",
                rerun.stdout
            );
        }
        let after = check_layout_after_kill(&dst, "v1", &root);
        assert_eq!(after.len(), image.all().len(), "{context}");
        umoci(&["stat", "--image", &format!("{}:v1", dst.display())]).unwrap();
    }
    eprintln!("{runs} runs over a {span:?} copy: {killed} killed, {partial} left some blobs");
    assert_eq!(killed, LAYOUT_KILLS, "{runs} runs");
    check_cache(&cache);
}

#[test]
fn a_layout_whose_creation_was_killed_is_completed_by_the_next_copy() {
    // What `kill -9` between the first files of a new layout and its `oci-layout` marker
    // leaves: `blobs/sha256/` and `index.json`, no marker.
    let image = image();
    let work = tempfile::tempdir().unwrap();
    let src_dir = work.path().join("src");
    write_oci_layout(&src_dir, &[(Some("v1"), &image)]).unwrap();
    let dst = work.path().join("dst");
    std::fs::create_dir_all(dst.join("blobs/sha256")).unwrap();
    std::fs::write(
        dst.join("index.json"),
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
    )
    .unwrap();
    let run = ferry(&[
        "cp",
        &format!("oci:{}:v1", src_dir.display()),
        &format!("oci:{}:v1", dst.display()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    umoci(&["stat", "--image", &format!("{}:v1", dst.display())]).unwrap();
}

#[test]
fn killed_copies_into_a_registry_leave_no_manifest_without_children_and_a_rerun_completes() {
    let image = image();
    let root = image.manifest.digest().to_string();
    let reg = Registry::start().unwrap();
    let work = tempfile::tempdir().unwrap();
    let src_dir = work.path().join("src");
    write_oci_layout(&src_dir, &[(Some("v1"), &image)]).unwrap();
    let src = format!("oci:{}:v1", src_dir.display());
    let cache = work.path().join("cache");
    let cache_s = cache.display().to_string();
    let env = [("XDG_CACHE_HOME", cache_s.as_str())];
    let r = reg.addr();

    let span = undisturbed(
        |i| {
            vec![
                "cp".into(),
                "--plain-http".into(),
                src.clone(),
                format!("{r}/probe{i}/app:v1"),
            ]
        },
        &env,
    );
    let mut window = (span.as_micros() as u64 * 13 / 10).max(1);
    let mut rng = Seeded(SEED ^ 1);
    let mut killed = 0;
    let mut runs = 0;
    while killed < REGISTRY_KILLS && runs < MAX_RUNS {
        let run = runs;
        runs += 1;
        let repo = format!("crash{run}/app");
        let dst = format!("{r}/{repo}:v1");
        let delay = Duration::from_micros(rng.below(window));
        let args = ["cp", "--plain-http", &src, &dst];
        let was_killed = run_and_kill(&args, &env, delay);
        killed += was_killed as u32;
        if !was_killed {
            window = (window * 3 / 4).max(1);
        }
        let context = format!("run {run} (seed {:#x}), killed after {delay:?}", SEED ^ 1);
        crate::faults::no_manifest_without_children(&reg, &repo, &image);
        check_cache(&cache);
        let present: Vec<String> = image
            .layers
            .iter()
            .chain([&image.config])
            .map(|b| b.digest().to_string())
            .filter(|d| blob_in_registry(&reg, &repo, d))
            .collect();

        let mark = reg.mark();
        let rerun = ferry_with(&args, &env, None);
        assert_eq!(
            rerun.code, 0,
            "{context}: the re-run fails: {}",
            rerun.stderr
        );
        assert!(
            rerun.stdout.contains(&format!("Digest: {root}")),
            "{context}"
        );
        let uploaded: Vec<String> = reg
            .requests_since(mark)
            .iter()
            .filter(|q| q.method == "PUT" && q.path.contains("/blobs/uploads/"))
            .filter_map(|q| q.query_param("digest"))
            .collect();
        for d in &present {
            assert!(
                !uploaded.contains(d),
                "{context}: `{d}` was in the registry before the re-run but uploaded again"
            );
        }
        crate::faults::no_manifest_without_children(&reg, &repo, &image);
        let raw = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{dst}"),
        ])
        .unwrap();
        assert_eq!(
            ferry_core::sha256(&raw.stdout).to_string(),
            root,
            "{context}"
        );
    }
    eprintln!("{runs} runs over a {span:?} copy: {killed} killed");
    assert_eq!(killed, REGISTRY_KILLS, "{runs} runs");
    check_cache(&cache);
}

fn blob_in_registry(reg: &Registry, repo: &str, digest: &str) -> bool {
    let url = format!("{}/v2/{repo}/blobs/{digest}", reg.url());
    rt().block_on(ferry_test_support::http("HEAD", &url, &[], Vec::new()))
        .unwrap()
        .status
        == 200
}
