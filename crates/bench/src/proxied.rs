//! `ferry-bench proxied`: registry → registry through a forward proxy, as in most company
//! networks. Squid on loopback (its hosts file maps `registry.test` to 127.0.0.1, so every
//! tool, Go's honouring the proxy only for a name that is not the loopback, reaches the
//! registries through it), plain HTTP in absolute form and HTTPS through `CONNECT`. ferry
//! beside skopeo, crane, regctl and oras (the peers' directory: `--peers`), and ferry direct
//! (to 127.0.0.1, no proxy) for what the proxy costs. Each run copies the image (8 × 16 MiB)
//! into a fresh destination registry; the report gives wall time, CPU time and the requests
//! squid logged (a `CONNECT` tunnel is one line, however many requests it carried).
//!
//! The results go into their own section of the report file, between markers.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use ferry_test_support::fixtures::write_oci_layout;
use ferry_test_support::{ImageBuilder, Registry, Squid, TestCa};

use crate::measure::{self, Usage};
use crate::runner::Programs;
use crate::scenario::human;
use crate::sync::{median, write_marked_section};

const BEGIN: &str = "<!-- ferry-bench proxied: begin -->";
const END: &str = "<!-- ferry-bench proxied: end -->";

/// `ferry-bench proxied`.
#[derive(Debug, Args)]
pub struct ProxiedArgs {
    /// Small sizes for a smoke run (4 × 1 MiB).
    #[arg(long)]
    pub quick: bool,
    /// Measured runs per tool and mode (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    pub reps: u16,
    /// The report file; its proxied section (between markers) is replaced, or appended.
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
    /// The ferry binary [default: next to this one, else built with cargo].
    #[arg(long, env = "FERRY_BIN")]
    pub ferry: Option<PathBuf>,
    /// The directory of the peers' binaries (crane, regctl, oras); a missing one is left out
    /// with a note [default: ../shared/peers/bin beside the workspace].
    #[arg(long, env = "FERRY_PEERS")]
    pub peers: Option<PathBuf>,
    /// Working directory [default: a temporary directory].
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Ferry,
    FerryDirect,
    Skopeo,
    Crane,
    Regctl,
    Oras,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Ferry => "ferry",
            Tool::FerryDirect => "ferry direct (no proxy)",
            Tool::Skopeo => "skopeo",
            Tool::Crane => "crane",
            Tool::Regctl => "regctl",
            Tool::Oras => "oras",
        }
    }

    fn is_peer(self) -> bool {
        !matches!(self, Tool::Ferry | Tool::FerryDirect)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Https,
}

/// One run.
#[derive(Debug, Clone, Copy)]
struct Sample {
    usage: Usage,
    proxy_lines: usize,
    /// CPU time squid spent on the run.
    proxy_cpu: Duration,
    /// CPU time both registries spent on the run.
    registries_cpu: Duration,
}

impl Sample {
    /// What this run's wall time cannot go below on `cores` cores: squid is one thread, so
    /// it needs its CPU time of wall time; and the CPU time of the tool, squid and both
    /// registries together needs that ÷ `cores`.
    fn floor(&self, cores: u32) -> Duration {
        let all = self.usage.cpu + self.proxy_cpu + self.registries_cpu;
        self.proxy_cpu.max(all / cores.max(1))
    }
}

struct Bench {
    programs: Programs,
    peers: Vec<(Tool, PathBuf)>,
    squid: Squid,
    ca: TestCa,
    ca_file: PathBuf,
    cert_dir: PathBuf,
    logs: PathBuf,
    work: PathBuf,
    serial: u64,
    /// Peer runs that failed twice and were left out.
    failures: Vec<String>,
}

pub fn main(args: ProxiedArgs) -> Result<()> {
    if !Squid::available() {
        bail!("squid is missing; install it with `apt-get install -y squid`");
    }
    let programs = crate::programs(args.ferry.clone(), args.peers.clone())?;
    // The peers `programs` found (each missing one noted there).
    let peers: Vec<(Tool, PathBuf)> = [
        (Tool::Crane, crate::scenario::Tool::Crane),
        (Tool::Regctl, crate::scenario::Tool::Regctl),
        (Tool::Oras, crate::scenario::Tool::Oras),
    ]
    .into_iter()
    .filter_map(|(tool, peer)| Some((tool, programs.peers.get(&peer)?.clone())))
    .collect();
    let (_temp, work, logs, mut meta) =
        crate::workspace(args.work_dir.as_deref(), "ferry-bench-proxied-", &programs)?;
    let ca = TestCa::new()?;
    let ca_file = work.join("ca.pem");
    ca.write_cert(&ca_file)?;
    let cert_dir = work.join("certs");
    std::fs::create_dir_all(&cert_dir)?;
    ca.write_cert(&cert_dir.join("ca.crt"))?;
    let (layers, size) = if args.quick {
        (4, 1 << 20)
    } else {
        (8, 16 << 20)
    };
    let image = ImageBuilder::new()
        .layers(&vec![size; layers])
        .seed(2100)
        .build();
    let layout = work.join("image");
    write_oci_layout(&layout, &[(Some("v1"), &image)])?;
    for (tool, path) in &peers {
        meta.push(format!(
            "{}: `{}`",
            tool.name(),
            crate::first_line(path, &["version"])
        ));
    }
    meta.push(format!(
        "squid: `{}`",
        crate::first_line(Path::new(ferry_test_support::squid::SQUID_BINARY), &["-v"])
    ));
    for line in &meta {
        println!("{line}");
    }
    let mut bench = Bench {
        programs,
        peers,
        squid: Squid::builder().start()?,
        ca,
        ca_file,
        cert_dir,
        logs,
        work,
        serial: 0,
        failures: Vec::new(),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let started = Instant::now();
    let what = format!("{layers} × {}", human(size as u64));
    let mut sections = Vec::new();
    for mode in [Mode::Plain, Mode::Https] {
        let results = bench.run(mode, &layout, usize::from(args.reps))?;
        let table = table(mode, &what, &results, cores);
        print!("{table}");
        sections.push(table);
        let mut notes = meta.clone();
        notes.extend(
            bench
                .failures
                .iter()
                .map(|f| format!("left out, failed twice: {f}")),
        );
        let md = markdown(&sections, &notes, args.quick, args.reps, started.elapsed());
        write_marked_section(&args.out, BEGIN, END, &md)?;
    }
    println!("\nwrote the proxied section of {}", args.out.display());
    Ok(())
}

impl Bench {
    fn registry(&self, mode: Mode) -> Result<Registry> {
        let builder = Registry::builder();
        Ok(match mode {
            Mode::Plain => builder.start()?,
            Mode::Https => builder
                .tls_issued_for(&self.ca, &["registry.test", "127.0.0.1"])?
                .start()?,
        })
    }

    /// Every tool `reps` times, alternating, each into a fresh destination.
    fn run(&mut self, mode: Mode, layout: &Path, reps: usize) -> Result<Vec<(Tool, Vec<Sample>)>> {
        let src = self.registry(mode)?;
        // The source is filled directly (the loopback is never proxied).
        let mut push = Command::new(&self.programs.ferry);
        push.args(["cp", "--no-cache"])
            .args(self.tls_args(mode))
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("{}/bench/app:v1", src.addr()));
        let out = push.output().context("run ferry to fill the source")?;
        if !out.status.success() {
            bail!(
                "filling the source failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut tools = vec![Tool::Ferry, Tool::FerryDirect, Tool::Skopeo];
        tools.extend(self.peers.iter().map(|(t, _)| *t));
        let mut results: Vec<(Tool, Vec<Sample>)> =
            tools.iter().map(|t| (*t, Vec::new())).collect();
        // One unmeasured round first, so every tool's first measured run meets warm caches.
        for rep in 0..=reps {
            for (i, tool) in tools.iter().enumerate() {
                // A peer that fails through the proxy is asked once more; a second failure
                // leaves that run out, with a note (ferry's failures end the benchmark).
                let sample = match self.one(mode, *tool, &src) {
                    Err(e) if tool.is_peer() => {
                        eprintln!("note: {} failed ({mode:?}), run again: {e:#}", tool.name());
                        match self.one(mode, *tool, &src) {
                            Ok(sample) => sample,
                            Err(e) => {
                                eprintln!(
                                    "note: {} failed again ({mode:?}), its run left out: {e:#}",
                                    tool.name()
                                );
                                self.failures
                                    .push(format!("{} ({mode:?}): {e:#}", tool.name()));
                                continue;
                            }
                        }
                    }
                    other => other?,
                };
                if rep > 0 {
                    results[i].1.push(sample);
                }
            }
        }
        Ok(results)
    }

    fn tls_args(&self, mode: Mode) -> Vec<String> {
        match mode {
            Mode::Plain => vec!["--plain-http".into()],
            Mode::Https => vec!["--ca-cert".into(), self.ca_file.display().to_string()],
        }
    }

    /// One run of `tool` from `src` into a fresh destination; what it cost and the lines the
    /// proxy logged for it.
    fn one(&mut self, mode: Mode, tool: Tool, src: &Registry) -> Result<Sample> {
        self.serial += 1;
        let dst = self.registry(mode)?;
        let name = |r: &Registry| match tool {
            Tool::FerryDirect => r.addr().to_string(),
            _ => r.addr_as("registry.test"),
        };
        let (from, to) = (
            format!("{}/bench/app:v1", name(src)),
            format!("{}/bench/app:v1", name(&dst)),
        );
        let home = self.work.join(format!("home-{}", self.serial));
        std::fs::create_dir_all(&home)?;
        let mut command = match tool {
            Tool::Ferry | Tool::FerryDirect => {
                let mut c = Command::new(&self.programs.ferry);
                c.args(["cp", "--no-cache", "--quiet"])
                    .args(self.tls_args(mode))
                    .args([&from, &to]);
                c
            }
            Tool::Skopeo => {
                let mut c = Command::new(&self.programs.skopeo);
                c.args(["--insecure-policy", "copy"]);
                match mode {
                    Mode::Plain => c.args(["--src-tls-verify=false", "--dest-tls-verify=false"]),
                    Mode::Https => c
                        .arg("--src-cert-dir")
                        .arg(&self.cert_dir)
                        .arg("--dest-cert-dir")
                        .arg(&self.cert_dir),
                };
                c.args([format!("docker://{from}"), format!("docker://{to}")]);
                c
            }
            Tool::Crane | Tool::Regctl | Tool::Oras => {
                let path = &self
                    .peers
                    .iter()
                    .find(|(t, _)| *t == tool)
                    .expect("a peer")
                    .1;
                let mut c = Command::new(path);
                match (tool, mode) {
                    (Tool::Crane, Mode::Plain) => c.args(["copy", "--insecure", &from, &to]),
                    (Tool::Crane, Mode::Https) => c.args(["copy", &from, &to]),
                    (Tool::Regctl, _) => {
                        let tls = if mode == Mode::Plain {
                            "disabled"
                        } else {
                            "enabled"
                        };
                        let config = format!(
                            "{{\"hosts\": {{\"{}\": {{\"tls\": \"{tls}\"}}, \"{}\": {{\"tls\": \"{tls}\"}}}}}}",
                            name(src),
                            name(&dst)
                        );
                        std::fs::create_dir_all(home.join(".regctl"))?;
                        std::fs::write(home.join(".regctl/config.json"), config)?;
                        c.args(["image", "copy", &from, &to])
                    }
                    (_, Mode::Plain) => {
                        c.args(["cp", "--from-plain-http", "--to-plain-http", &from, &to])
                    }
                    (_, Mode::Https) => c
                        .args(["cp", "--from-ca-file"])
                        .arg(&self.ca_file)
                        .arg("--to-ca-file")
                        .arg(&self.ca_file)
                        .args([&from, &to]),
                };
                c
            }
        };
        command
            .env("HOME", &home)
            .env("XDG_CACHE_HOME", home.join("cache"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("DOCKER_CONFIG", home.join("docker"));
        for var in ferry_test_support::squid::PROXY_VARS {
            command.env_remove(var);
        }
        if tool != Tool::FerryDirect {
            command
                .env("HTTP_PROXY", self.squid.url())
                .env("HTTPS_PROXY", self.squid.url());
        }
        if mode == Mode::Https && matches!(tool, Tool::Crane | Tool::Regctl) {
            // Go's roots: the system's, or this file.
            command.env("SSL_CERT_FILE", &self.ca_file);
        }
        let before = self.squid.log().len();
        measure::settle();
        let label = format!(
            "{}-{}-{:?}",
            self.serial,
            tool.name().split(' ').next().unwrap_or("x"),
            mode
        );
        let (squid, registries) = ([self.squid.pid()], [src.pid(), dst.pid()]);
        let (proxy_before, registries_before) = (
            measure::processes_cpu(&squid),
            measure::processes_cpu(&registries),
        );
        let usage = measure::run(&self.programs.bench, command, &self.logs, &label)?;
        // A tunnel is logged when it closes, a moment after the tool exits.
        let mut lines = self.squid.log().len();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = self.squid.log().len();
            if now == lines || Instant::now() >= deadline {
                break;
            }
            lines = now;
        }
        let proxy_lines = self.squid.log()[before..]
            .iter()
            .filter(|l| l.status != 0)
            .count();
        let stored = dst.requests().iter().any(|r| {
            r.method == "PUT" && r.path == "/v2/bench/app/manifests/v1" && r.status == 201
        });
        if !stored {
            bail!(
                "{} stored no manifest in the destination (mode {mode:?})",
                tool.name()
            );
        }
        if (tool == Tool::FerryDirect) != (proxy_lines == 0) {
            bail!(
                "{}: {proxy_lines} lines in the proxy's log (mode {mode:?})",
                tool.name()
            );
        }
        Ok(Sample {
            usage,
            proxy_lines,
            proxy_cpu: measure::processes_cpu(&squid).saturating_sub(proxy_before),
            registries_cpu: measure::processes_cpu(&registries).saturating_sub(registries_before),
        })
    }
}

fn table(mode: Mode, what: &str, results: &[(Tool, Vec<Sample>)], cores: u32) -> String {
    let title = match mode {
        Mode::Plain => "plain HTTP, requests in absolute form",
        Mode::Https => "HTTPS through CONNECT tunnels",
    };
    let mut md = format!(
        "\n### registry → registry through squid, {what}, {title}\n\n\
         | tool | wall (median) | CPU (median) | squid's CPU | registries' CPU | floor of the run | lines in the proxy's log |\n\
         |---|---|---|---|---|---|---|\n"
    );
    let summary = |s: &[Sample]| {
        (
            median(s.iter().map(|x| x.usage.wall).collect()),
            median(s.iter().map(|x| x.usage.cpu).collect()),
            median(s.iter().map(|x| x.proxy_lines).collect()),
        )
    };
    let floor_of = |s: &[Sample]| median(s.iter().map(|x| x.floor(cores)).collect());
    for (tool, samples) in results.iter().filter(|(_, s)| !s.is_empty()) {
        let (wall, cpu, lines) = summary(samples);
        let _ = writeln!(
            md,
            "| {} | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {lines} |",
            tool.name(),
            wall.as_secs_f64(),
            cpu.as_secs_f64(),
            median(samples.iter().map(|x| x.proxy_cpu).collect()).as_secs_f64(),
            median(samples.iter().map(|x| x.registries_cpu).collect()).as_secs_f64(),
            floor_of(samples).as_secs_f64(),
        );
    }
    let wall_of = |t: Tool| {
        results
            .iter()
            .find(|(x, s)| *x == t && !s.is_empty())
            .map(|(_, s)| summary(s).0.as_secs_f64())
    };
    let best_peer = results
        .iter()
        .filter(|(t, s)| t.is_peer() && !s.is_empty())
        .map(|(t, s)| (t.name(), summary(s).0.as_secs_f64()))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    if let (Some(ferry), Some(direct)) = (wall_of(Tool::Ferry), wall_of(Tool::FerryDirect)) {
        let _ = writeln!(
            md,
            "\nferry through the proxy takes {:.2}× its direct wall time.",
            ferry / direct.max(1e-9)
        );
        let floor = results
            .iter()
            .find(|(x, s)| *x == Tool::Ferry && !s.is_empty())
            .map(|(_, s)| floor_of(s).as_secs_f64())
            .unwrap_or_default();
        let _ = writeln!(
            md,
            "ferry through the proxy: {ferry:.2} s, {:.2}× the floor of its runs ({floor:.2} s).",
            ferry / floor.max(1e-9)
        );
        if let Some((name, best)) = best_peer {
            let ratio = best / ferry.max(1e-9);
            let verdict = if ratio >= 1.2 {
                "met".to_string()
            } else if best / 1.2 < floor {
                format!(
                    "MISSED, and out of reach: 1.2× would need ferry at {:.2} s, below the floor \
                     of its own runs, {floor:.2} s",
                    best / 1.2
                )
            } else {
                "MISSED".to_string()
            };
            let _ = writeln!(
                md,
                "Best peer ({name}) / ferry, wall through the proxy: {ratio:.2}× (target ≥ 1.2×: {verdict})."
            );
        }
    }
    md
}

fn markdown(
    sections: &[String],
    meta: &[String],
    quick: bool,
    reps: u16,
    took: Duration,
) -> String {
    let mut md = String::from("## Through a forward proxy (`ferry-bench proxied`)\n\n");
    let _ = writeln!(
        md,
        "Squid 5 on loopback forwards every request (its hosts file resolves `registry.test`); \
         each run copies one image into a fresh registry. Medians of {reps} runs per tool, \
         alternating, after one unmeasured round{}; {:.0} s in all. A `CONNECT` tunnel is one \
         line of the proxy's log, however many requests it carried. The floor of a run is the \
         least wall time its work allows on this machine's cores: squid is one thread, so at \
         least squid's CPU time, and at least the CPU time of the tool, squid and both \
         registries together ÷ the cores; a peer's failed runs are left out.\n",
        if quick {
            " (`--quick`: small sizes)"
        } else {
            ""
        },
        took.as_secs_f64()
    );
    for line in meta {
        let _ = writeln!(md, "- {line}");
    }
    for s in sections {
        md.push_str(s);
    }
    md.push('\n');
    md
}
