//! `ferry sync` as a service on real registries: runs every interval, a moved tag mirrored in
//! the next run with its backup holding the old digest, the metrics scraped and parsed, the
//! health endpoints, the mirror file read again (a bad one keeping the last good), SIGTERM
//! draining the image in flight and ending with 0; `--metrics-file` of a one-shot run;
//! pruning with backups.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_test_support::fixtures::push;
use ferry_test_support::prometheus::{
    NodeExporter, Scrape, node_exporter_program, parse_text_format, scrape,
};
use ferry_test_support::{
    Fault, FaultPlan, FaultProxy, ImageBuilder, Registry, free_port, http, wait_for,
};

use crate::support::*;
use crate::sync::{remote_digest, remote_tags};

/// A `ferry sync` service running in the background, its output collected line by line.
struct Service {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    metrics: String,
    _home: tempfile::TempDir,
}

impl Service {
    fn start(args: &[&str]) -> Self {
        let home = tempfile::tempdir().unwrap();
        let port = free_port();
        let metrics = format!("127.0.0.1:{port}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .arg("sync")
            .args(["--metrics-addr", &metrics])
            .args(args)
            .env("XDG_CACHE_HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("no-config"))
            .env("DOCKER_CONFIG", home.path().join("no-docker-config"))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let collect = |pipe: Box<dyn std::io::Read + Send>| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    sink.lock().unwrap().push(line);
                }
            });
            lines
        };
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        Self {
            child,
            stdout,
            stderr,
            metrics: format!("http://{metrics}"),
            _home: home,
        }
    }

    fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    fn output(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.stdout().join("\n"),
            self.stderr()
        )
    }

    /// The summary lines printed so far: one per finished run.
    fn runs(&self) -> Vec<String> {
        self.stdout()
            .into_iter()
            .filter(|l| l.starts_with("Sync: "))
            .collect()
    }

    /// Waits until `n` runs have finished.
    fn wait_runs(&self, n: usize) {
        assert!(
            wait_for(Duration::from_secs(60), || self.runs().len() >= n),
            "{n} runs did not finish:\n{}",
            self.output()
        );
    }

    fn scrape(&self) -> Scrape {
        self.try_scrape().unwrap()
    }

    /// A scrape, or the reason there is none (the server is not up yet).
    fn try_scrape(&self) -> ferry_test_support::Result<Scrape> {
        rt().block_on(scrape(&format!("{}/metrics", self.metrics)))
    }

    fn get(&self, path: &str) -> (u16, String) {
        let answer = rt()
            .block_on(http(
                "GET",
                &format!("{}{path}", self.metrics),
                &[],
                Vec::new(),
            ))
            .unwrap();
        (answer.status, answer.text())
    }

    /// Sends SIGTERM; returns the exit code.
    fn terminate(&mut self) -> i32 {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let mut code = None;
        assert!(
            wait_for(Duration::from_secs(60), || {
                code = self.child.try_wait().unwrap().and_then(|s| s.code());
                code.is_some()
            }),
            "the service did not end after SIGTERM:\n{}",
            self.output()
        );
        // The readers see the end of the pipes.
        wait_for(Duration::from_secs(5), || {
            self.stderr().contains("ferry: stopped")
        });
        code.unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn push_image(reg: &Registry, repo: &str, tag: &str, seed: u64) -> String {
    let image = ImageBuilder::new().layer(2048).seed(seed).build();
    rt().block_on(push(&reg.url(), repo, &image, Some(tag), None))
        .unwrap();
    image.manifest.digest().to_string()
}

#[test]
fn a_service_mirrors_a_moved_tag_in_the_next_run_keeps_a_backup_and_ends_with_0_on_sigterm() {
    let src = Registry::start().unwrap();
    let dst = Registry::start().unwrap();
    let old = push_image(&src, "team/app", "v1", 1);
    push_image(&src, "team/app", "v2", 2);
    let from = format!("{}/team/app", src.addr());
    let to = format!("{}/mirror/app", dst.addr());
    let mut service = Service::start(&[
        "--every",
        "1s",
        "--plain-http",
        "--backup",
        "{tag}-bak-{digest12}",
        &from,
        &to,
    ]);
    service.wait_runs(1);
    assert!(
        service.runs()[0].contains("2 synced"),
        "{}",
        service.output()
    );
    assert_eq!(remote_digest(dst.addr(), "mirror/app:v1"), old);
    // A second run, with nothing changed: nothing copied, no backup.
    service.wait_runs(2);
    assert!(
        service.runs()[1].contains("0 synced, 2 unchanged"),
        "{}",
        service.output()
    );

    // The tag moves upstream: the next run mirrors it, after tagging the old image.
    let new = push_image(&src, "team/app", "v1", 3);
    let before = service.runs().len();
    assert!(
        wait_for(Duration::from_secs(60), || service
            .runs()
            .iter()
            .skip(before)
            .any(|l| l.contains("1 synced"))),
        "{}",
        service.output()
    );
    let backup = format!("v1-bak-{}", &old["sha256:".len()..][..12]);
    assert_eq!(remote_digest(dst.addr(), "mirror/app:v1"), new);
    assert_eq!(
        remote_digest(dst.addr(), &format!("mirror/app:{backup}")),
        old
    );
    let stdout = service.stdout().join("\n");
    let line = format!("Backed up {}/mirror/app:v1 (", dst.addr());
    assert!(
        stdout.contains(&line) && stdout.contains(&format!(":{backup}")),
        "{stdout}"
    );

    // The metrics, scraped and parsed.
    let m = service.scrape();
    let entry = [("source", from.as_str()), ("destination", to.as_str())];
    let count = |outcome: &str| {
        let mut labels = entry.to_vec();
        labels.push(("outcome", outcome));
        m.value("ferry_sync_images", &labels).unwrap_or(0.0)
    };
    assert_eq!(count("synced"), 3.0, "{m:?}");
    assert!(count("unchanged") >= 3.0, "{m:?}");
    assert_eq!(count("backed-up"), 1.0, "{m:?}");
    assert_eq!(count("failed"), 0.0, "{m:?}");
    let mut streamed = entry.to_vec();
    streamed.push(("how", "streamed"));
    assert!(m.value("ferry_sync_bytes", &streamed).unwrap() > 3.0 * 2048.0);
    let ok = m
        .value(
            "ferry_registry_requests",
            &[("registry", src.addr()), ("class", "2xx")],
        )
        .unwrap();
    assert!(ok >= 6.0, "{m:?}");
    assert!(
        m.value("ferry_registry_requests", &[("registry", dst.addr())])
            .unwrap()
            > 0.0
    );
    assert_eq!(
        m.value(
            "ferry_registry_rate_limit_wait_seconds",
            &[("registry", src.addr())]
        ),
        Some(0.0)
    );
    assert!(m.value("ferry_sync_run_duration_seconds", &[]).unwrap() >= 3.0);
    assert_eq!(m.value("ferry_sync_last_run_exit_code", &[]), Some(0.0));
    assert!(
        m.value("ferry_sync_last_success_timestamp_seconds", &[])
            .unwrap()
            > 1.7e9
    );
    assert_eq!(
        m.kind("ferry_sync_images_in_flight").as_deref(),
        Some("gauge")
    );
    assert_eq!(service.get("/healthz"), (200, "ok\n".into()));
    // Ready: a run finished within two intervals (asked until then: a run may be slow on a
    // busy machine).
    assert!(
        wait_for(Duration::from_secs(30), || service.get("/readyz").0 == 200),
        "{:?}",
        service.get("/readyz")
    );

    // SIGTERM: the service ends, and that is not a failure.
    assert_eq!(service.terminate(), 0, "{}", service.output());
    assert!(service.stderr().contains("SIGTERM"), "{}", service.stderr());
}

#[test]
fn sigterm_lets_the_image_in_flight_finish_then_the_service_ends_with_0() {
    let src = Registry::start().unwrap();
    let dst = Registry::start().unwrap();
    let image = ImageBuilder::new().layer(256 * 1024).seed(7).build();
    rt().block_on(push(&src.url(), "team/big", &image, Some("v1"), None))
        .unwrap();
    // The source sends blobs slowly: the copy is in flight for a second or more.
    let slow = FaultPlan::none().always(
        "GET",
        "/blobs/sha256:",
        Fault::SlowBody {
            chunk: 16 * 1024,
            pause: Duration::from_millis(80),
        },
    );
    let proxy = FaultProxy::start(src.addr(), slow).unwrap();
    let from = format!("{}/team/big", proxy.addr());
    let to = format!("{}/mirror/big", dst.addr());
    let mut service = Service::start(&["--every", "1h", "--plain-http", &from, &to]);
    assert!(
        wait_for(Duration::from_secs(30), || service.try_scrape().is_ok_and(
            |m| m.value("ferry_sync_images_in_flight", &[]) == Some(1.0)
        )),
        "the image never showed in flight:\n{}",
        service.output()
    );
    assert_eq!(service.terminate(), 0, "{}", service.output());
    // Drained, not cut: the image is whole at the destination, and the run said so.
    assert_eq!(
        remote_digest(dst.addr(), "mirror/big:v1"),
        image.manifest.digest().to_string()
    );
    assert!(
        service.runs()[0].contains("1 synced"),
        "{}",
        service.output()
    );
}

#[test]
fn the_mirror_file_is_read_before_each_run_and_a_bad_one_keeps_the_last_good() {
    let src = Registry::start().unwrap();
    let dst = Registry::start().unwrap();
    push_image(&src, "team/one", "v1", 11);
    push_image(&src, "team/two", "v1", 12);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mirror.toml");
    let entry = |repo: &str| {
        format!(
            "[[sync]]\nsource = \"{}/team/{repo}\"\ndestination = \"{}/mirror/{repo}\"\n",
            src.addr(),
            dst.addr()
        )
    };
    let head = format!(
        "[defaults]\nevery = \"1s\"\n[registries.\"{}\"]\nplain_http = true\n[registries.\"{}\"]\nplain_http = true\n",
        src.addr(),
        dst.addr()
    );
    std::fs::write(&file, format!("{head}{}", entry("one"))).unwrap();
    let service = Service::start(&["--file", file.to_str().unwrap()]);
    service.wait_runs(1);
    assert_eq!(remote_tags(&dst, "mirror/one"), ["v1"]);
    assert!(remote_tags(&dst, "mirror/two").is_empty());

    // A bad file: an error line and a metric; the runs go on with the last good file.
    std::fs::write(
        &file,
        format!("{head}{}[[sync]]\nsource = 3\n", entry("one")),
    )
    .unwrap();
    assert!(
        wait_for(Duration::from_secs(30), || service
            .stderr()
            .contains("running with the last good reading")),
        "{}",
        service.output()
    );
    let runs = service.runs().len();
    service.wait_runs(runs + 1);
    let m = service.scrape();
    assert!(
        m.value("ferry_sync_config_reload_failures", &[]).unwrap() >= 1.0,
        "{m:?}"
    );
    assert_eq!(
        m.value("ferry_sync_config_last_reload_successful", &[]),
        Some(0.0)
    );
    assert!(
        service.stderr().contains(&file.display().to_string()),
        "{}",
        service.stderr()
    );

    // A good edit takes effect in the next run.
    std::fs::write(&file, format!("{head}{}{}", entry("one"), entry("two"))).unwrap();
    assert!(
        wait_for(Duration::from_secs(30), || remote_tags(&dst, "mirror/two")
            == ["v1"]),
        "{}",
        service.output()
    );
    assert!(
        wait_for(Duration::from_secs(30), || service
            .scrape()
            .value("ferry_sync_config_last_reload_successful", &[])
            == Some(1.0)),
        "{}",
        service.output()
    );
}

#[test]
fn a_one_shot_run_writes_its_metrics_for_node_exporter() {
    let src = Registry::start().unwrap();
    let dst = Registry::start().unwrap();
    push_image(&src, "team/app", "v1", 21);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ferry.prom");
    let from = format!("{}/team/app", src.addr());
    let to = format!("{}/mirror/app", dst.addr());
    let run = ferry(&[
        "sync",
        "--plain-http",
        "--metrics-file",
        file.to_str().unwrap(),
        &from,
        &to,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = std::fs::read_to_string(&file).unwrap();
    let parsed = parse_text_format(&text).unwrap();
    assert_eq!(
        parsed.kind("ferry_sync_images_total").as_deref(),
        Some("counter")
    );
    assert_eq!(
        parsed.value(
            "ferry_sync_images_total",
            &[("outcome", "synced"), ("source", &from)]
        ),
        Some(1.0)
    );
    assert_eq!(
        parsed.value("ferry_sync_last_run_exit_code", &[]),
        Some(0.0)
    );
    assert!(
        parsed
            .value("ferry_registry_requests_total", &[("registry", dst.addr())])
            .unwrap()
            > 0.0
    );

    // As node_exporter's textfile collector reads it.
    match node_exporter_program() {
        Some(program) => rt().block_on(async {
            let exporter = NodeExporter::start(program, dir.path()).await.unwrap();
            let exported = exporter.scrape().await.unwrap();
            assert_eq!(exported.value("node_textfile_scrape_error", &[]), Some(0.0));
            assert_eq!(
                exported.kind("ferry_sync_images_total").as_deref(),
                Some("counter")
            );
            assert_eq!(
                exported.value("ferry_sync_images_total", &[("outcome", "synced")]),
                Some(1.0)
            );
        }),
        None => eprintln!(
            "note: node_exporter is not installed (Debian prometheus-node-exporter); the file was parsed only"
        ),
    }

    // A directory that does not exist is refused before anything runs.
    let bad = ferry(&[
        "sync",
        "--plain-http",
        "--metrics-file",
        "/nonexistent/dir/ferry.prom",
        &from,
        &to,
    ]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("does not exist"), "{}", bad.stderr);
}

#[test]
fn backups_are_never_pruned_and_pruning_a_tag_backs_it_up_first() {
    let src = Registry::builder().delete(true).start().unwrap();
    let dst = Registry::builder().delete(true).start().unwrap();
    let old = push_image(&src, "team/app", "v1", 31);
    let v2 = push_image(&src, "team/app", "v2", 32);
    let from = format!("{}/team/app", src.addr());
    let to = format!("{}/mirror/app", dst.addr());
    let sync = |extra: &[&str]| {
        let mut args = vec!["sync", "--plain-http"];
        args.extend_from_slice(extra);
        args.push(&from);
        args.push(&to);
        ferry(&args)
    };
    assert_eq!(sync(&[]).code, 0);
    push_image(&src, "team/app", "v1", 33);
    let template = ["--prune", "--backup", "{tag}-old-{digest12}"];
    let moved = sync(&template);
    assert_eq!(moved.code, 0, "{}{}", moved.stdout, moved.stderr);
    let backup = format!("v1-old-{}", &old["sha256:".len()..][..12]);
    assert_eq!(
        remote_tags(&dst, "mirror/app"),
        ["v1", backup.as_str(), "v2"]
    );

    // The backup is a tag the source does not have, but not one that left it: kept.
    let again = sync(&template);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert!(!again.stdout.contains("Pruned"), "{}", again.stdout);
    assert_eq!(
        remote_digest(dst.addr(), &format!("mirror/app:{backup}")),
        old
    );

    // A tag gone upstream is backed up before it is pruned. This registry deletes by digest
    // only, which would take the backup too: the delete is refused, nothing is lost.
    let deleted = rt()
        .block_on(http(
            "DELETE",
            &format!("{}/v2/team/app/manifests/{v2}", src.url()),
            &[],
            Vec::new(),
        ))
        .unwrap();
    assert_eq!(deleted.status, 202);
    let pruned = sync(&template);
    assert_eq!(pruned.code, 1, "{}{}", pruned.stdout, pruned.stderr);
    let v2_backup = format!("v2-old-{}", &v2["sha256:".len()..][..12]);
    assert!(
        pruned.stdout.contains(&format!("Backed up {to}:v2 (")),
        "{}",
        pruned.stdout
    );
    assert!(
        pruned.stdout.contains(&format!("`{v2_backup}`")),
        "{}",
        pruned.stdout
    );
    assert_eq!(
        remote_digest(dst.addr(), &format!("mirror/app:{v2_backup}")),
        v2
    );
    assert_eq!(remote_digest(dst.addr(), "mirror/app:v2"), v2);

    // Without the template the backup of v1 would be an extra tag like any other.
    let plain = sync(&["--prune"]);
    assert!(
        plain.stdout.contains(&format!("Pruned {to}:{backup}")),
        "{}",
        plain.stdout
    );
}
