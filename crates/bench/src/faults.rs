//! `ferry-bench faults`: the survival table. Many copies of one image from a registry into a
//! fresh repository of another, through the fault proxy of `ferry-test-support` in front of
//! the destination, by ferry and by the copy tools among its peers (crane, regctl, oras), at
//! mixes of faults and with none. Each copy is checked (the destination tag's digest equals
//! the source's); the table gives the copies that came through intact, their wall times, and
//! the bytes the proxy received (what a fault made the tool send again).
//!
//! How the proxy decides (see `ferry_test_support::faults`): each request gets a random draw
//! seeded by the plan's seed, its method, its path (upload session ids left out) and how many
//! such requests came before, so two tools making the same request meet the same dice. The
//! plan's rules are drawn in order: first `503` for 10% of every request (answered without
//! reaching the registry, the request's body read); then, for a `PATCH` or `PUT` under
//! `/blobs/uploads/` that the first rule spared, a reset after half its body with probability
//! `share / 0.9`, so that `share` of the upload requests are reset in all. A reset drawn for
//! a request without a body (crane closes each upload with an empty `PUT`) is not applied:
//! there is nothing to cut.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use clap::Args;
use ferry_test_support::fixtures::push;
use ferry_test_support::{Content, Fault, FaultPlan, FaultProxy, Image, ImageBuilder, Registry};

use crate::peers::{Peers, regctl_home};

mod resume;
use crate::scenario::human;

/// Markers around the faults section of the report file.
const BEGIN: &str = "<!-- ferry-bench faults: begin -->";
const END: &str = "<!-- ferry-bench faults: end -->";

/// The share of requests answered `503` in the faulty mixes.
const UNAVAILABLE: f64 = 0.10;

/// `ferry-bench faults`.
#[derive(Debug, Args)]
pub struct FaultsArgs {
    /// Copies per tool and mix.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub copies: u32,
    /// A small image (4 layers × 256 KiB) for a smoke run.
    #[arg(long)]
    pub quick: bool,
    /// Layers of the image [default: 8, --quick: 4].
    #[arg(long)]
    pub layers: Option<usize>,
    /// Bytes of each layer [default: 16 MiB, --quick: 256 KiB].
    #[arg(long, value_name = "BYTES")]
    pub layer_size: Option<usize>,
    /// Mixes to run (default: all): `healthy`, `resets-25`, `resets-50`. Repeat or separate
    /// with commas.
    #[arg(long = "mix", value_name = "NAME", value_delimiter = ',')]
    pub mixes: Vec<String>,
    /// Tools to run (default: all): `ferry`, `crane`, `regctl`, `oras`.
    #[arg(long = "tool", value_name = "NAME", value_delimiter = ',')]
    pub tools: Vec<String>,
    /// Seed of the fault draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The longest one copy may take; a copy still running then is stopped and counted as
    /// failed.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub timeout: u64,
    /// The report file; its faults section (between markers) is replaced, or appended.
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
    /// The ferry binary [default: next to this one, else built with cargo].
    #[arg(long, env = "FERRY_BIN")]
    pub ferry: Option<PathBuf>,
    /// The directory of the peer tools; one that is absent is skipped with a note
    /// [default: `shared/peers/bin` beside the workspace].
    #[arg(long, value_name = "DIR")]
    pub peers: Option<PathBuf>,
    /// Working directory [default: a temporary directory].
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Instead of the mixes, one cut per copy of one big layer and what it cost each tool in
    /// bytes moved again: a source `GET` cut halfway, and an upload cut 60% of the way
    /// (section "Resumes").
    #[arg(long)]
    pub resumes: bool,
    /// Bytes of the layer of `--resumes` [default: 256 MiB, --quick: 16 MiB].
    #[arg(long, value_name = "BYTES")]
    pub resume_size: Option<usize>,
}

/// A mix of faults at the destination.
#[derive(Debug, Clone, Copy)]
struct Mix {
    name: &'static str,
    /// The share of upload requests reset mid-body.
    resets: f64,
    /// The share of all requests answered `503`.
    unavailable: f64,
}

const MIXES: [Mix; 3] = [
    Mix {
        name: "healthy",
        resets: 0.0,
        unavailable: 0.0,
    },
    Mix {
        name: "resets-25",
        resets: 0.25,
        unavailable: UNAVAILABLE,
    },
    Mix {
        name: "resets-50",
        resets: 0.50,
        unavailable: UNAVAILABLE,
    },
];

impl Mix {
    fn label(&self) -> String {
        if self.resets == 0.0 && self.unavailable == 0.0 {
            "no faults".into()
        } else {
            format!(
                "{:.0}% of uploads reset mid-body + {:.0}% of requests 503",
                self.resets * 100.0,
                self.unavailable * 100.0
            )
        }
    }

    /// The proxy's plan: the `503` rule first, then the resets, each reset's probability
    /// raised by the share the first rule took, so the shares are those of the label.
    fn plan(&self, seed: u64) -> FaultPlan {
        let mut plan = FaultPlan::random(seed, 0.0);
        if self.unavailable > 0.0 {
            plan = plan.sometimes("*", "", self.unavailable, Fault::Status(503));
        }
        if self.resets > 0.0 {
            let p = (self.resets / (1.0 - self.unavailable)).min(1.0);
            for method in ["PATCH", "PUT"] {
                plan = plan.sometimes(method, "/blobs/uploads/", p, Fault::ResetMidUpload);
            }
        }
        plan
    }
}

/// The tools compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Tool {
    Ferry,
    Crane,
    Regctl,
    Oras,
}

impl Tool {
    const ALL: [Tool; 4] = [Tool::Ferry, Tool::Crane, Tool::Regctl, Tool::Oras];

    fn name(self) -> &'static str {
        match self {
            Tool::Ferry => "ferry",
            Tool::Crane => "crane",
            Tool::Regctl => "regctl",
            Tool::Oras => "oras",
        }
    }

    fn command_line(self) -> &'static str {
        match self {
            Tool::Ferry => "ferry cp --plain-http --format json SRC DST",
            Tool::Crane => "crane copy --insecure SRC DST",
            Tool::Regctl => "regctl image copy SRC DST",
            Tool::Oras => "oras cp --from-plain-http --to-plain-http SRC DST",
        }
    }
}

/// One copy.
#[derive(Debug, Clone)]
struct Attempt {
    /// Finished, with the destination tag's digest equal to the source's.
    intact: bool,
    /// Why not, when not.
    failure: Option<String>,
    wall: Duration,
    /// Request body bytes the proxy received, every method.
    received: u64,
    /// Requests through the proxy.
    requests: usize,
    /// Requests reset mid-upload.
    resets: usize,
    /// Requests answered `503`.
    unavailable: usize,
    /// Upload requests that carried bytes: `PATCH`es, and `PUT`s on a session without one.
    uploads: usize,
    /// The retries ferry's report counts (ferry only).
    retries: Option<u64>,
}

/// The copies of one tool at one mix.
struct Row {
    tool: Tool,
    mix: Mix,
    copies: Vec<Attempt>,
}

/// Runs `ferry-bench faults`.
pub fn main(args: FaultsArgs) -> Result<()> {
    let mixes: Vec<Mix> = if args.mixes.is_empty() {
        MIXES.to_vec()
    } else {
        args.mixes
            .iter()
            .map(|name| {
                MIXES
                    .iter()
                    .find(|m| m.name == name)
                    .copied()
                    .with_context(|| {
                        format!("no mix `{name}`; the mixes are healthy, resets-25, resets-50")
                    })
            })
            .collect::<Result<_>>()?
    };
    let chosen: Vec<Tool> = if args.tools.is_empty() {
        Tool::ALL.to_vec()
    } else {
        args.tools
            .iter()
            .map(|name| {
                Tool::ALL
                    .iter()
                    .find(|t| t.name() == name)
                    .copied()
                    .with_context(|| {
                        format!("no tool `{name}`; the tools are ferry, crane, regctl, oras")
                    })
            })
            .collect::<Result<_>>()?
    };
    let programs = crate::programs(args.ferry.clone(), args.peers.clone())?;
    let peers = Peers::new(args.peers.clone());
    let mut binaries: BTreeMap<Tool, PathBuf> = BTreeMap::new();
    let mut notes = Vec::new();
    for tool in chosen {
        let found = match tool {
            Tool::Ferry => Some(programs.ferry.clone()),
            _ => peers.find(tool.name()),
        };
        match found {
            Some(path) => {
                binaries.insert(tool, path);
            }
            None => notes.push(format!(
                "{} skipped: not found in `{}`",
                tool.name(),
                peers.dir().display()
            )),
        }
    }
    let _temp;
    let work = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => {
            _temp = tempfile::Builder::new()
                .prefix("ferry-bench-faults-")
                .tempdir()?;
            _temp.path().to_path_buf()
        }
    };
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs)?;
    let (layers, layer_size) = if args.resumes {
        let quick = if args.quick { 16 << 20 } else { 256 << 20 };
        (1, args.resume_size.unwrap_or(quick))
    } else {
        image_shape(&args)
    };
    let image = ImageBuilder::new()
        .layers(&vec![layer_size; layers])
        .seed(7_000)
        .build();
    let image_bytes: u64 = image.all().iter().map(|b| b.bytes.len() as u64).sum();
    let mut meta: Vec<String> = crate::machine(&work);
    meta.push(format!(
        "ferry: `{}` (`{}`)",
        crate::first_line(&programs.ferry, &["--version"]),
        programs.ferry.display()
    ));
    for (tool, path) in &binaries {
        if *tool != Tool::Ferry {
            meta.push(Peers::version_line(tool.name(), path));
        }
    }
    for line in meta.iter().chain(&notes) {
        println!("{line}");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let source = Registry::builder()
        .env("REGISTRY_LOG_LEVEL", "warn")
        .start()
        .context("start the source registry")?;
    rt.block_on(push(&source.url(), "bench/image", &image, Some("v1"), None))
        .context("push the image to the source")?;
    let bench = Bench {
        rt,
        source,
        image,
        logs,
        work: work.clone(),
        timeout: Duration::from_secs(args.timeout),
    };
    if args.resumes {
        return resume::main(&bench, &binaries, &args, &meta, &notes);
    }
    println!(
        "\n{} copies of {} ({layers} layers × {}) per tool and mix",
        args.copies,
        human(image_bytes),
        human(layer_size as u64)
    );
    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    for mix in &mixes {
        println!("\n== {}: {}", mix.name, mix.label());
        for (&tool, binary) in &binaries {
            let row = bench.row(tool, binary, *mix, args.copies, args.seed)?;
            println!("{}", row_text(&row, image_bytes));
            rows.push(row);
            write_report(
                &args.out,
                &markdown(&rows, &meta, &notes, &args, image_bytes, started.elapsed()),
            )?;
        }
    }
    println!(
        "\nwrote the faults section of {} ({:.0} s in all)",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

struct Bench {
    rt: tokio::runtime::Runtime,
    source: Registry,
    image: Image,
    logs: PathBuf,
    work: PathBuf,
    timeout: Duration,
}

impl Bench {
    /// `copies` copies by `tool` into a fresh destination registry behind a proxy with
    /// `mix`'s faults.
    fn row(&self, tool: Tool, binary: &Path, mix: Mix, copies: u32, seed: u64) -> Result<Row> {
        let destination = Registry::builder()
            .env("REGISTRY_LOG_LEVEL", "warn")
            .start()
            .context("start the destination registry")?;
        let proxy = FaultProxy::start(destination.addr(), mix.plan(seed))
            .context("start the fault proxy")?;
        let mut out = Vec::new();
        let mut seen = 0usize;
        for i in 0..copies {
            let repo = format!("copy-{i:04}");
            let home = self
                .work
                .join("homes")
                .join(format!("{}-{repo}", tool.name()));
            std::fs::create_dir_all(&home)?;
            let received_before = received(&proxy);
            let label = format!("{}-{}-{repo}", mix.name, tool.name());
            let command = self.command(
                tool,
                binary,
                &home,
                self.source.addr(),
                &proxy.addr(),
                &repo,
            )?;
            let started = Instant::now();
            let run = run(command, &self.logs, &label, self.timeout);
            let wall = started.elapsed();
            let requests = proxy.requests();
            let mine = &requests[seen..];
            seen = requests.len();
            let check = run.and_then(|stdout| {
                self.check(&destination, &repo)?;
                Ok(stdout)
            });
            let (intact, failure, retries) = match check {
                Ok(stdout) => (true, None, ferry_retries(tool, &stdout)),
                Err(e) => (false, Some(format!("{e:#}")), None),
            };
            let copy = Attempt {
                intact,
                failure,
                wall,
                received: received(&proxy) - received_before,
                requests: mine.len(),
                resets: mine
                    .iter()
                    .filter(|r| r.fault == Some(Fault::ResetMidUpload))
                    .count(),
                unavailable: mine
                    .iter()
                    .filter(|r| r.fault == Some(Fault::Status(503)))
                    .count(),
                uploads: carrying_uploads(mine),
                retries,
            };
            if let Some(why) = &copy.failure {
                println!("  {} {repo}: FAILED: {why}", tool.name());
            }
            out.push(copy);
            // The copy's repository (and the uploads cut short in it) is not needed again;
            // the blobs stay in the registry's shared store, so disk use stays one image.
            let _ = std::fs::remove_dir_all(
                destination
                    .root()
                    .join("docker/registry/v2/repositories")
                    .join(&repo),
            );
            let _ = std::fs::remove_dir_all(&home);
        }
        Ok(Row {
            tool,
            mix,
            copies: out,
        })
    }

    fn command(
        &self,
        tool: Tool,
        binary: &Path,
        home: &Path,
        source: &str,
        destination: &str,
        repo: &str,
    ) -> Result<Command> {
        let src = format!("{source}/bench/image:v1");
        let dst = format!("{destination}/{repo}:v1");
        let mut c = Command::new(binary);
        // A HOME of its own: no settings or credentials of this machine's user.
        c.env("HOME", home);
        match tool {
            Tool::Ferry => {
                c.args(["cp", "--plain-http", "--format", "json", &src, &dst]);
                // Default retry settings, and a cache of its own: no place learnt by an
                // earlier copy to mount from.
                c.env("XDG_CACHE_HOME", home.join("cache"));
                for name in [
                    "FERRY_RETRY_TRIES",
                    "FERRY_RETRY_BASE_DELAY_MS",
                    "FERRY_RETRY_MAX_DELAY_MS",
                ] {
                    c.env_remove(name);
                }
            }
            Tool::Crane => {
                c.args(["copy", "--insecure", &src, &dst]);
            }
            Tool::Regctl => {
                regctl_home(home, &[source.to_string(), destination.into()])?;
                c.args(["image", "copy", &src, &dst]);
            }
            Tool::Oras => {
                c.args(["cp", "--from-plain-http", "--to-plain-http", &src, &dst]);
            }
        }
        Ok(c)
    }

    /// The destination tag's digest, asked of the registry itself (not through the faults),
    /// equals the source's.
    fn check(&self, destination: &Registry, repo: &str) -> Result<()> {
        let url = format!("{}/v2/{repo}/manifests/v1", destination.url());
        let answer = self.rt.block_on(ferry_test_support::http(
            "HEAD",
            &url,
            &[("accept", crate::floor::MANIFEST_ACCEPT)],
            Bytes::new(),
        ))?;
        let want = self.image.manifest.digest().to_string();
        let found = answer.header("docker-content-digest").unwrap_or_default();
        if answer.status != 200 {
            bail!("the destination answers {} for `{repo}:v1`", answer.status);
        }
        if found != want {
            bail!("`{repo}:v1` is `{found}`, not `{want}`");
        }
        Ok(())
    }
}

/// Request body bytes the proxy received so far, every method that carries one.
fn received(proxy: &FaultProxy) -> u64 {
    ["POST", "PUT", "PATCH"]
        .iter()
        .map(|m| proxy.bytes_received(m))
        .sum()
}

/// Upload requests that carry bytes: each `PATCH`, and each `PUT` on an upload session that
/// had no `PATCH` (a `PUT` after `PATCH`es closes the session, empty).
fn carrying_uploads(requests: &[ferry_test_support::ProxiedRequest]) -> usize {
    let session = |path: &str| -> Option<String> {
        let (_, rest) = path.split_once("/blobs/uploads/")?;
        let id = rest.split('?').next().unwrap_or(rest);
        (!id.is_empty()).then(|| id.to_string())
    };
    let patched: std::collections::BTreeSet<String> = requests
        .iter()
        .filter(|r| r.method == "PATCH")
        .filter_map(|r| session(&r.path))
        .collect();
    requests
        .iter()
        .filter(|r| match r.method.as_str() {
            "PATCH" => session(&r.path).is_some(),
            "PUT" => session(&r.path).is_some_and(|s| !patched.contains(&s)),
            _ => false,
        })
        .count()
}

/// The `retries` of ferry's JSON report.
fn ferry_retries(tool: Tool, stdout: &str) -> Option<u64> {
    if tool != Tool::Ferry {
        return None;
    }
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).ok()?;
    report["retries"].as_u64()
}

/// Runs `command`, its stdout and stderr into files of `logs` named after `label`; stops it
/// after `timeout`. Its stdout when it succeeds; otherwise the tail of its stderr.
fn run(mut command: Command, logs: &Path, label: &str, timeout: Duration) -> Result<String> {
    let out_path = logs.join(format!("{label}.out"));
    let err_path = logs.join(format!("{label}.err"));
    command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path)?)
        .stderr(std::fs::File::create(&err_path)?);
    let mut child = command
        .spawn()
        .with_context(|| format!("start {command:?}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            // This process's own child: stopped by its id.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let tail = || {
        let err = std::fs::read_to_string(&err_path).unwrap_or_default();
        let lines: Vec<&str> = err.lines().rev().take(3).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    };
    match status {
        Some(s) if s.success() => Ok(std::fs::read_to_string(&out_path).unwrap_or_default()),
        Some(s) => bail!("{label} failed ({s}): {}", tail()),
        None => bail!("{label} still running after {timeout:?}: {}", tail()),
    }
}

/// The `p`-th percentile (0–1) of `v` by nearest rank.
fn percentile(v: &[Duration], p: f64) -> Option<Duration> {
    if v.is_empty() {
        return None;
    }
    let mut v = v.to_vec();
    v.sort();
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

/// One row's figures.
struct Figures {
    intact: usize,
    attempted: usize,
    median: Option<Duration>,
    p90: Option<Duration>,
    /// Mean bytes received per intact copy.
    received: Option<f64>,
    resets: usize,
    unavailable: usize,
    uploads: usize,
    requests: usize,
    retries: Option<u64>,
}

fn figures(row: &Row) -> Figures {
    let intact: Vec<&Attempt> = row.copies.iter().filter(|c| c.intact).collect();
    let walls: Vec<Duration> = intact.iter().map(|c| c.wall).collect();
    let received = (!intact.is_empty())
        .then(|| intact.iter().map(|c| c.received as f64).sum::<f64>() / intact.len() as f64);
    let retries: Vec<u64> = intact.iter().filter_map(|c| c.retries).collect();
    Figures {
        intact: intact.len(),
        attempted: row.copies.len(),
        median: percentile(&walls, 0.5),
        p90: percentile(&walls, 0.9),
        received,
        resets: row.copies.iter().map(|c| c.resets).sum(),
        unavailable: row.copies.iter().map(|c| c.unavailable).sum(),
        uploads: row.copies.iter().map(|c| c.uploads).sum(),
        requests: row.copies.iter().map(|c| c.requests).sum(),
        retries: (!retries.is_empty()).then(|| retries.iter().sum()),
    }
}

fn secs(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.2} s", d.as_secs_f64()))
        .unwrap_or_else(|| "—".into())
}

fn share(part: usize, whole: usize) -> String {
    if whole == 0 {
        "—".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

/// The table row of one tool at one mix.
fn row_text(row: &Row, image_bytes: u64) -> String {
    let f = figures(row);
    let (received, resent) = match f.received {
        Some(r) => (
            human(r as u64),
            format!(
                "{} ({:.0}%)",
                human((r - image_bytes as f64).max(0.0) as u64),
                (r - image_bytes as f64) * 100.0 / image_bytes as f64
            ),
        ),
        None => ("—".into(), "—".into()),
    };
    format!(
        "| {} | {} | {}/{} | {} | {} | {received} | {resent} | {} of {} ({}) | {} of {} ({}) | {} |",
        row.mix.name,
        row.tool.name(),
        f.intact,
        f.attempted,
        secs(f.median),
        secs(f.p90),
        f.resets,
        f.uploads,
        share(f.resets, f.uploads),
        f.unavailable,
        f.requests,
        share(f.unavailable, f.requests),
        match (row.tool, f.retries) {
            (Tool::Ferry, Some(n)) => format!("{n} ({:.1} per copy)", n as f64 / f.intact as f64),
            (Tool::Ferry, None) => "0".into(),
            _ => "not reported".into(),
        }
    )
}

const HEADER: &str = "| mix | tool | intact / attempted | wall, median | wall, p90 | relay received per copy | re-sent per copy | resets of upload requests | 503s of requests | retries reported |\n|---|---|---|---|---|---|---|---|---|---|\n";

fn markdown(
    rows: &[Row],
    meta: &[String],
    notes: &[String],
    args: &FaultsArgs,
    image_bytes: u64,
    took: Duration,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "## Faults: copies that survive a failing destination\n");
    let tools: Vec<String> = Tool::ALL
        .iter()
        .map(|t| format!("`{}`", t.command_line()))
        .collect();
    let _ = writeln!(
        md,
        "Written by `{}` in {:.0} s. Each tool copies one image of {} ({}) from a source \
         registry into a fresh repository of a destination registry (docker-registry 2.8 on \
         loopback, one per tool and mix) through the fault proxy of `ferry-test-support`, \
         {} times, with its default retry settings: {}. After each copy the destination tag's \
         digest, asked of the registry directly, must equal the source's; a copy counts as \
         intact only then. Wall times are those of the intact copies.\n",
        crate::command_line(),
        took.as_secs_f64(),
        human(image_bytes),
        image_description(args),
        args.copies,
        tools.join("; "),
    );
    let _ = writeln!(
        md,
        "The mixes: `healthy`, no faults; `resets-25`, 25% of upload requests reset after half \
         their body and 10% of all requests answered `503`; `resets-50`, the same with 50%. The \
         proxy draws per request, seeded (seed {}) by the request's method, its path without \
         the upload session and how many such requests came before, so the tools meet the \
         same dice for the same request. The `503` rule is drawn first for every request; an \
         upload request (`PATCH` or `PUT` under `/blobs/uploads/` carrying bytes) that it \
         spared is reset with probability share / 0.9, so the shares in all are those named. \
         The table shows the shares met: resets over the upload requests that carried bytes \
         (each `PATCH`, and each `PUT` on a session without one: crane closes each upload with \
         an empty `PUT`, which has nothing to cut), `503`s over all requests to the \
         destination. Relay received: request bodies that reached the proxy, cut uploads \
         included; re-sent: that less the image's bytes. ferry's retries are its JSON \
         report's `retries` (steps its copy engine tried again; requests its registry client \
         retried on its own are not counted there); the other tools report none.\n",
        args.seed
    );
    for line in meta {
        let _ = writeln!(md, "- {line}");
    }
    for note in notes {
        let _ = writeln!(md, "- note: {note}");
    }
    let _ = writeln!(md);
    md.push_str(HEADER);
    for row in rows {
        let _ = writeln!(md, "{}", row_text(row, image_bytes));
    }
    let _ = writeln!(md);
    let failures: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            r.copies
                .iter()
                .filter_map(move |c| c.failure.as_ref().map(|f| (r, f)))
        })
        .map(|(r, f)| format!("{} {}: {}", r.mix.name, r.tool.name(), f.replace('\n', " ")))
        .take(20)
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(md, "Failed copies (the first 20):\n");
        for f in failures {
            let _ = writeln!(md, "- {f}");
        }
        let _ = writeln!(md);
    }
    md
}

/// The image's layers and the bytes of each.
fn image_shape(args: &FaultsArgs) -> (usize, usize) {
    match args.quick {
        true => (
            args.layers.unwrap_or(4),
            args.layer_size.unwrap_or(256 << 10),
        ),
        false => (
            args.layers.unwrap_or(8),
            args.layer_size.unwrap_or(16 << 20),
        ),
    }
}

fn image_description(args: &FaultsArgs) -> String {
    let (layers, size) = image_shape(args);
    format!("{layers} layers × {}", human(size as u64))
}

fn write_report(path: &Path, section: &str) -> Result<()> {
    crate::sync::write_marked_section(path, BEGIN, END, section)
}
