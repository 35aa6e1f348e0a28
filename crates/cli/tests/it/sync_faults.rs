//! `ferry sync` under pressure and at scale: registries shedding load with 429 and 503,
//! SIGTERM in the middle, shards in separate processes, and an air gap through a directory of
//! layouts and back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ferry_sync::shard_of;
use ferry_test_support::{Content, Fault, FaultPlan, FaultProxy, Registry, skopeo};

use crate::sync::{Corpus, remote_digest, remote_tags, sync, uploads};

#[test]
fn registries_shedding_a_fifth_of_their_requests_with_429_and_503_are_synced_completely() {
    let src = Registry::start().unwrap();
    let dst = Registry::start().unwrap();
    let corpus = Corpus::new(&["a", "b", "c", "d"], &["v1", "v2"], 31, 16 * 1024);
    corpus.push_to(&src, "team/");
    let shed = [
        Fault::TooManyRequests { retry_after: 0 },
        Fault::Status(503),
    ];
    let src_proxy = FaultProxy::start(src.addr(), FaultPlan::random(5, 0.2).faults(shed)).unwrap();
    let dst_proxy = FaultProxy::start(dst.addr(), FaultPlan::random(6, 0.2).faults(shed)).unwrap();
    let run = sync(&[
        "--plain-http",
        "--format",
        "json",
        &format!("{}/team/", src_proxy.addr()),
        &format!("{}/mirror/", dst_proxy.addr()),
    ]);
    assert_eq!(
        run.code,
        0,
        "{}\n{}\n{}\n{}",
        run.stderr,
        run.stdout,
        src_proxy.report(),
        dst_proxy.report()
    );
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["totals"]["synced"], 8);
    for proxy in [&src_proxy, &dst_proxy] {
        let shed = proxy.injected().len() as u64;
        assert!(shed > 0, "{}", proxy.report());
        let seen = report["registries"][proxy.addr()]["throttled"]
            .as_u64()
            .unwrap();
        assert_eq!(seen, shed, "every refusal reached the rate limit");
    }
    for i in &corpus.images {
        assert_eq!(
            remote_digest(dst.addr(), &format!("mirror/{}:{}", i.repo, i.tag)),
            i.image.manifest.digest().to_string()
        );
    }
}

/// A `ferry sync` whose stdout lines arrive on a channel as they are printed.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    errors: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(args: &[&str], cache: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .arg("sync")
            .args(args)
            .env("XDG_CACHE_HOME", cache)
            .env("DOCKER_CONFIG", "/nonexistent/ferry-test-docker-config")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let forward = |stream: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let lines = forward(Box::new(child.stdout.take().unwrap()));
        let errors = forward(Box::new(child.stderr.take().unwrap()));
        Self {
            child,
            lines,
            errors,
            seen: Vec::new(),
        }
    }

    /// Reads stderr until a line contains `text` (or the deadline passes): a signal is only
    /// sent again once ferry said it handled the first (signals of one kind sent together
    /// arrive as one).
    fn wait_for_stderr(&self, text: &str, deadline: Duration) -> bool {
        let end = Instant::now() + deadline;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.errors.recv_timeout(left) {
                Ok(line) if line.contains(text) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }

    /// Waits (bounded) until `proxy` has begun to serve the own layer of an image whose
    /// `Synced` line is not printed yet: with blobs trickling out, that image stays in flight
    /// a good while. Returns its `REPO:TAG`.
    fn wait_for_an_image_in_flight(
        &mut self,
        proxy: &FaultProxy,
        since: usize,
        corpus: &Corpus,
        deadline: Duration,
    ) -> String {
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            let started: Vec<String> = proxy.requests()[since..]
                .iter()
                .filter(|r| r.method == "GET")
                .map(|r| r.path.clone())
                .collect();
            for i in &corpus.images {
                let name = format!("{}:{}", i.repo, i.tag);
                let own = i.image.layers[2].digest().to_string();
                let done = self
                    .seen
                    .iter()
                    .any(|l| l.starts_with("Synced ") && l.contains(&format!("/{name} ")));
                if !done && started.iter().any(|p| p.contains(&own)) {
                    return name;
                }
            }
            match self.lines.recv_timeout(Duration::from_millis(10)) {
                Ok(line) => self.seen.push(line),
                Err(_) => continue,
            }
        }
        panic!("no image got in flight: {:#?}", self.seen);
    }

    /// Sends SIGTERM with kill(1).
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits (bounded) for the exit; returns the code and every line printed.
    fn finish(mut self, deadline: Duration) -> (i32, Vec<String>) {
        let end = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
                    self.seen.push(line);
                }
                return (status.code().unwrap_or(-1), self.seen);
            }
            if Instant::now() >= end {
                let _ = self.child.kill();
                panic!(
                    "ferry did not exit in time; output so far: {:#?}",
                    self.seen
                );
            }
            match self.lines.recv_timeout(Duration::from_millis(20)) {
                Ok(line) => self.seen.push(line),
                Err(_) => continue,
            }
        }
    }
}

/// Every tag of the mirror names a complete image: its manifest and every blob are there.
fn every_tag_complete(reg: &Registry, corpus: &Corpus, prefix: &str) -> usize {
    let mut tagged = 0;
    for i in &corpus.images {
        let repo = format!("{prefix}{}", i.repo);
        if !remote_tags(reg, &repo).contains(&i.tag) {
            continue;
        }
        tagged += 1;
        assert_eq!(
            remote_digest(reg.addr(), &format!("{repo}:{}", i.tag)),
            i.image.manifest.digest().to_string()
        );
        crate::faults::no_manifest_without_children(reg, &repo, &i.image);
        // skopeo reads every blob back.
        let out = tempfile::tempdir().unwrap();
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            "--preserve-digests",
            "--dest-oci-accept-uncompressed-layers",
            &format!("docker://{}/{repo}:{}", reg.addr(), i.tag),
            &format!("oci:{}:t", out.path().display()),
        ])
        .unwrap();
    }
    tagged
}

#[test]
fn sigterm_mid_sync_lets_images_in_flight_finish_a_second_stops_at_once_and_a_rerun_completes() {
    let src = Registry::start().unwrap();
    let dst = Registry::start().unwrap();
    let repos = ["a", "b", "c", "d", "e", "f"];
    let corpus = Corpus::new(&repos, &["v1", "v2"], 41, 256 * 1024);
    corpus.push_to(&src, "team/");
    // Blobs trickle out of the source, so images stay in flight a while.
    let slow = FaultProxy::start(
        src.addr(),
        FaultPlan::none().always(
            "GET",
            "/blobs/",
            Fault::SlowBody {
                chunk: 16 * 1024,
                pause: Duration::from_millis(15),
            },
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let from = format!("{}/team/", slow.addr());

    // One SIGTERM after the first image is done: no new image starts, those in flight finish.
    let to = format!("{}/gentle/", dst.addr());
    let mark = slow.requests().len();
    let mut run = Running::start(&["--plain-http", "--images", "2", &from, &to], cache.path());
    let in_flight = run.wait_for_an_image_in_flight(&slow, mark, &corpus, Duration::from_secs(120));
    run.terminate();
    let (code, out) = run.finish(Duration::from_secs(120));
    assert!(
        out.iter()
            .any(|l| l.starts_with("Synced ") && l.contains(&format!("/{in_flight} "))),
        "{in_flight} was in flight and had its grace period: {out:#?}"
    );
    assert_eq!(code, 1, "{out:#?}");
    assert!(
        out.iter().any(|l| l.starts_with("Stopped before the end")),
        "{out:#?}"
    );
    assert!(
        !out.iter().any(|l| l.starts_with("Interrupted ")),
        "{out:#?}"
    );
    let synced = out.iter().filter(|l| l.starts_with("Synced ")).count();
    assert!(synced < 12, "the stop started no new image: {out:#?}");
    assert_eq!(every_tag_complete(&dst, &corpus, "gentle/"), synced);
    let gentle_tagged = synced;

    // Two SIGTERMs: the images in flight stop at once, their tags untouched.
    let to = format!("{}/abrupt/", dst.addr());
    let mark = slow.requests().len();
    let mut run = Running::start(&["--plain-http", "--images", "2", &from, &to], cache.path());
    let in_flight = run.wait_for_an_image_in_flight(&slow, mark, &corpus, Duration::from_secs(120));
    run.terminate();
    assert!(run.wait_for_stderr("SIGTERM: stopping", Duration::from_secs(30)));
    run.terminate();
    // Well within the 25 s grace the first signal gave.
    let (code, out) = run.finish(Duration::from_secs(20));
    assert_eq!(code, 1, "{out:#?}");
    assert!(
        out.iter()
            .any(|l| l.starts_with("Interrupted ") && l.contains(&format!("/{in_flight} "))),
        "{in_flight} was in flight: {out:#?}"
    );
    let synced = out.iter().filter(|l| l.starts_with("Synced ")).count();
    let interrupted = out.iter().filter(|l| l.starts_with("Interrupted ")).count();
    // Every tag names a complete image; an image stopped as its tagged manifest was being
    // sent may have landed (the registry finished the request), none else.
    let tagged = every_tag_complete(&dst, &corpus, "abrupt/");
    assert!(
        synced <= tagged && tagged <= synced + interrupted,
        "{tagged} tagged, {synced} synced, {interrupted} interrupted: {out:#?}"
    );

    // Re-runs complete what was left, leaving what was done.
    for (prefix, done) in [("gentle/", gentle_tagged), ("abrupt/", tagged)] {
        let rerun = sync(&[
            "--plain-http",
            &format!("{}/team/", src.addr()),
            &format!("{}/{prefix}", dst.addr()),
        ]);
        assert_eq!(rerun.code, 0, "{}\n{}", rerun.stdout, rerun.stderr);
        let unchanged = rerun
            .stdout
            .lines()
            .filter(|l| l.starts_with("Unchanged "))
            .count();
        assert_eq!(unchanged, done, "{}", rerun.stdout);
        assert_eq!(every_tag_complete(&dst, &corpus, prefix), 12);
    }
}

#[test]
fn shard_processes_together_sync_every_repository_exactly_once() {
    let src = Registry::start().unwrap();
    let dst = Registry::start().unwrap();
    let repos: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    let names: Vec<&str> = repos.iter().map(String::as_str).collect();
    let corpus = Corpus::new(&names, &["v1"], 51, 2048);
    corpus.push_to(&src, "team/");
    let from = format!("{}/team/", src.addr());
    let to = format!("{}/mirror/", dst.addr());
    const N: u64 = 3;
    let cache = tempfile::tempdir().unwrap();
    let children: Vec<(u64, Child)> = (0..N)
        .map(|k| {
            let child = Command::new(env!("CARGO_BIN_EXE_ferry"))
                .args([
                    "sync",
                    "--plain-http",
                    "--shard",
                    &format!("{k}/{N}"),
                    &from,
                    &to,
                ])
                .env("XDG_CACHE_HOME", cache.path().join(k.to_string()))
                .env("DOCKER_CONFIG", "/nonexistent/ferry-test-docker-config")
                .env_remove("RUST_LOG")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (k, child)
        })
        .collect();
    let mut synced_by: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (k, child) in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "shard {k}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in stdout.lines().filter(|l| l.starts_with("Synced ")) {
            let repo = line
                .split_whitespace()
                .nth(1)
                .unwrap()
                .split('/')
                .nth(2)
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_string();
            assert_eq!(
                shard_of(&format!("team/{repo}"), N),
                k,
                "{repo} synced by the wrong shard"
            );
            synced_by.entry(repo).or_default().push(k);
        }
    }
    let all: BTreeSet<String> = repos.iter().cloned().collect();
    assert_eq!(synced_by.keys().cloned().collect::<BTreeSet<_>>(), all);
    assert!(synced_by.values().all(|s| s.len() == 1), "{synced_by:?}");
    let used: BTreeSet<u64> = synced_by.values().flatten().copied().collect();
    assert!(
        used.len() > 1,
        "the hash spreads ten repositories over the shards"
    );
    for i in &corpus.images {
        assert_eq!(
            remote_digest(dst.addr(), &format!("mirror/{}:{}", i.repo, i.tag)),
            i.image.manifest.digest().to_string()
        );
    }
}

/// Bytes on disk under `dir`'s `*/blobs/`, each inode counted once.
fn blob_bytes_on_disk(dir: &Path) -> u64 {
    let mut inodes: HashMap<(u64, u64), u64> = HashMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let meta = std::fs::symlink_metadata(entry.path()).unwrap();
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() && entry.path().components().any(|c| c.as_os_str() == "blobs")
            {
                inodes.insert((meta.dev(), meta.ino()), meta.len());
            }
        }
    }
    inodes.values().sum()
}

#[test]
fn a_registry_exported_to_a_directory_of_layouts_stores_each_blob_once_and_imports_uploading_each_once()
 {
    let src = Registry::start().unwrap();
    let corpus = Corpus::new(&["r0", "r1", "r2"], &["1.0", "2.0"], 61, 32 * 1024);
    corpus.push_to(&src, "team/");
    let work = tempfile::tempdir().unwrap();
    let export = work.path().join("export");

    let out = sync(&[
        "--plain-http",
        &format!("{}/team/", src.addr()),
        &format!("oci-dir:{}/", export.display()),
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    for i in &corpus.images {
        let raw = skopeo(&[
            "inspect",
            "--raw",
            &format!("oci:{}:{}", export.join(&i.repo).display(), i.tag),
        ])
        .unwrap();
        assert_eq!(
            ferry_core::sha256(&raw.stdout).to_string(),
            i.image.manifest.digest().to_string()
        );
    }
    // The base layer is one file linked into every layout.
    let base = corpus.base.digest().digest().to_string();
    let inodes: BTreeSet<u64> = ["r0", "r1", "r2"]
        .iter()
        .map(|r| {
            std::fs::metadata(export.join(r).join("blobs/sha256").join(&base))
                .unwrap()
                .ino()
        })
        .collect();
    assert_eq!(
        inodes.len(),
        1,
        "one inode for the base layer in three layouts"
    );
    // Every blob once on disk: the bytes used are the corpus's unique bytes.
    let unique: u64 = {
        let mut seen = BTreeMap::new();
        for i in &corpus.images {
            for b in i.image.all() {
                seen.insert(b.digest().to_string(), b.bytes.len() as u64);
            }
        }
        seen.values().sum()
    };
    assert_eq!(blob_bytes_on_disk(&export), unique);

    // And back into another registry: each blob uploaded once, mounted everywhere else.
    let dst = Registry::start().unwrap();
    let back = sync(&[
        "--plain-http",
        &format!("oci-dir:{}/", export.display()),
        &format!("{}/imported/", dst.addr()),
    ]);
    assert_eq!(back.code, 0, "{}\n{}", back.stdout, back.stderr);
    let ups = uploads(&dst.requests());
    assert_eq!(
        ups.keys().cloned().collect::<BTreeSet<_>>(),
        corpus.unique_blobs()
    );
    assert!(ups.values().all(|n| *n == 1), "{ups:?}");
    for i in &corpus.images {
        assert_eq!(
            remote_digest(dst.addr(), &format!("imported/{}:{}", i.repo, i.tag)),
            i.image.manifest.digest().to_string()
        );
    }
}
