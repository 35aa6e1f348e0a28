//! `ferry-bench everyday`: `ferry ls` on a repository of 10,000 tags against `crane ls`,
//! `regctl tag ls` and `skopeo list-tags`, and `ferry inspect` of a 20-platform index against
//! `crane manifest`, `oras manifest fetch` and `regctl image inspect`, each doing the same
//! work, on docker-registry 2.8 on loopback behind the harness's counting proxy: wall time
//! (median) and requests.
//!
//! The peers (crane, regctl, oras) are looked up in `--peers DIR`, else in
//! `../shared/peers/bin` beside the workspace; one that is missing is left out with a note. The results go into their own section of the report
//! file, between markers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use clap::Args;
use ferry_test_support::fixtures::push;
use ferry_test_support::{Content, ImageBuilder, IndexBuilder};
use futures::StreamExt as _;

use crate::measure;
use crate::proxy::ProxiedRegistry;

const BEGIN: &str = "<!-- ferry-bench everyday: begin -->";
const END: &str = "<!-- ferry-bench everyday: end -->";

/// The platforms of the index, `linux/amd64` first (regctl's default).
const PLATFORMS: [&str; 20] = [
    "linux/amd64",
    "linux/arm64/v8",
    "linux/arm/v7",
    "linux/arm/v6",
    "linux/386",
    "linux/ppc64le",
    "linux/s390x",
    "linux/riscv64",
    "linux/mips64le",
    "linux/loong64",
    "linux/amd64/v3",
    "linux/arm64/v9",
    "linux/mips64",
    "linux/ppc64",
    "linux/arm/v5",
    "freebsd/amd64",
    "freebsd/arm64",
    "windows/amd64",
    "windows/arm64",
    "netbsd/amd64",
];

/// `ferry-bench everyday`.
#[derive(Debug, Args)]
pub struct EverydayArgs {
    /// Small sizes for a smoke run (1,000 tags, 4 platforms).
    #[arg(long)]
    pub quick: bool,
    /// Measured runs per tool and work (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    pub reps: u16,
    /// The report file; its everyday section (between markers) is replaced, or appended.
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
    /// The ferry binary [default: next to this one, else built with cargo].
    #[arg(long, env = "FERRY_BIN")]
    pub ferry: Option<PathBuf>,
    /// The directory holding crane, regctl and oras [default: `../shared/peers/bin` beside
    /// the workspace].
    #[arg(long, value_name = "DIR", env = "FERRY_BENCH_PEERS")]
    pub peers: Option<PathBuf>,
    /// Working directory [default: a temporary directory].
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

/// What is compared: ferry and the peers doing the same work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Work {
    /// Every tag of a repository of many tags.
    Ls,
    /// The index's exact bytes.
    RawIndex,
    /// One platform's config, through the index and its manifest.
    PlatformConfig,
    /// The whole tree: every manifest and config, and the referrers (ferry only).
    Tree,
}

impl Work {
    fn describe(self, tags: usize, platforms: usize) -> String {
        match self {
            Work::Ls => format!("every tag of a repository of {tags} tags"),
            Work::RawIndex => format!("the raw bytes of a {platforms}-platform index"),
            Work::PlatformConfig => {
                format!("the linux/amd64 config out of a {platforms}-platform index")
            }
            Work::Tree => format!(
                "the tree of a {platforms}-platform index: every manifest and config (no peer \
                 prints it in one command)"
            ),
        }
    }
}

/// One tool doing one work.
struct Case {
    work: Work,
    tool: String,
    command: Command,
    /// How many output lines (or JSON tags) prove the work done, when counted.
    check: Check,
}

#[derive(Clone, Copy)]
enum Check {
    Lines(usize),
    SkopeoTags(usize),
    Bytes(usize),
    Nothing,
}

/// What one run cost.
struct Sample {
    wall: Duration,
    cpu: Duration,
    requests: usize,
    by_method: BTreeMap<String, usize>,
}

#[derive(Debug, Clone)]
struct Row {
    work: Work,
    tool: String,
    wall: Duration,
    cpu: Duration,
    requests: usize,
    by_method: BTreeMap<String, usize>,
}

/// The name of the reference row: the bare request by curl, its process start included.
const REFERENCE: &str = "curl, the one GET (reference)";

/// Runs the everyday comparison.
pub fn main(args: EverydayArgs) -> Result<()> {
    let programs = crate::programs(args.ferry.clone(), args.peers.clone())?;
    let (_temp, work, logs, mut meta) =
        crate::workspace(args.work_dir.as_deref(), "ferry-bench-everyday-", &programs)?;
    let (tag_count, platform_count) = if args.quick { (1000, 4) } else { (10_000, 20) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let reg = ProxiedRegistry::start(rt.handle(), Duration::ZERO, None)?;
    let started = Instant::now();
    let index_bytes = rt.block_on(populate(&reg, tag_count, platform_count))?;
    println!(
        "registry ready: {tag_count} tags, a {platform_count}-platform index ({:.0} s)",
        started.elapsed().as_secs_f64()
    );
    reg.proxy.take();

    let host = reg.addr();
    let home = work.join("home");
    std::fs::create_dir_all(home.join(".regctl"))?;
    std::fs::write(
        home.join(".regctl/config.json"),
        serde_json::json!({"hosts": {&host: {"tls": "disabled"}}}).to_string(),
    )?;
    let peers = args.peers.as_deref();
    let mut cases = Vec::new();
    let many = format!("{host}/many");
    let multi = format!("{host}/multi:v1");
    let ferry = |work: Work, tool: &str, args: &[&str], check: Check| {
        let mut command = Command::new(&programs.ferry);
        command
            .args(args)
            .env("DOCKER_CONFIG", home.join("no-docker-config"))
            .env("HOME", &home);
        Case {
            work,
            tool: tool.to_string(),
            command,
            check,
        }
    };
    cases.push(ferry(
        Work::Ls,
        "ferry ls",
        &["ls", "--plain-http", &many],
        Check::Lines(tag_count),
    ));
    cases.push(ferry(
        Work::RawIndex,
        "ferry inspect --raw",
        &["inspect", "--raw", "--plain-http", &multi],
        Check::Bytes(index_bytes),
    ));
    cases.push(ferry(
        Work::PlatformConfig,
        "ferry inspect --config --platform",
        &[
            "inspect",
            "--config",
            "--platform",
            "linux/amd64",
            "--plain-http",
            &multi,
        ],
        Check::Nothing,
    ));
    cases.push(ferry(
        Work::Tree,
        "ferry inspect",
        &["inspect", "--plain-http", &multi],
        Check::Nothing,
    ));
    cases.push(ferry(
        Work::Tree,
        "ferry inspect --no-referrers",
        &["inspect", "--no-referrers", "--plain-http", &multi],
        Check::Nothing,
    ));
    // For reference, the one GET by curl, its answer thrown away: how long the registry
    // takes to answer, with a process start.
    let curl = |work: Work, path: &str, accept: &str| {
        let mut command = Command::new("curl");
        command.args([
            "-sf",
            "-o",
            "/dev/null",
            "-H",
            &format!("Accept: {accept}"),
            &format!("http://{host}/v2/{path}"),
        ]);
        Case {
            work,
            tool: REFERENCE.to_string(),
            command,
            check: Check::Nothing,
        }
    };
    cases.push(curl(Work::Ls, "many/tags/list", "application/json"));
    cases.push(curl(
        Work::RawIndex,
        "multi/manifests/v1",
        "application/vnd.oci.image.index.v1+json",
    ));
    let skopeo_many = format!("docker://{many}");
    let peer_cases: [(&str, Work, &str, Vec<&str>, Check); 6] = [
        (
            "crane",
            Work::Ls,
            "crane ls",
            vec!["ls", "--insecure", &many],
            Check::Lines(tag_count),
        ),
        (
            "regctl",
            Work::Ls,
            "regctl tag ls",
            vec!["tag", "ls", &many],
            Check::Lines(tag_count),
        ),
        (
            "skopeo",
            Work::Ls,
            "skopeo list-tags",
            vec!["list-tags", "--tls-verify=false", &skopeo_many],
            Check::SkopeoTags(tag_count),
        ),
        (
            "crane",
            Work::RawIndex,
            "crane manifest",
            vec!["manifest", "--insecure", &multi],
            Check::Bytes(index_bytes),
        ),
        (
            "oras",
            Work::RawIndex,
            "oras manifest fetch",
            vec!["manifest", "fetch", "--plain-http", &multi],
            Check::Bytes(index_bytes),
        ),
        (
            "regctl",
            Work::PlatformConfig,
            "regctl image inspect --platform",
            vec!["image", "inspect", "--platform", "linux/amd64", &multi],
            Check::Nothing,
        ),
    ];
    for (program, work, tool, args, check) in peer_cases {
        let path = if program == "skopeo" {
            Some(programs.skopeo.clone())
        } else {
            crate::peers::Peers::new(peers.map(Path::to_path_buf)).find(program)
        };
        let Some(path) = path else {
            eprintln!("note: `{program}` is not found; `{tool}` is left out");
            continue;
        };
        if !meta.iter().any(|m| m.starts_with(&format!("{program}:"))) {
            let version = match program {
                "crane" => crate::first_line(&path, &["version"]),
                "regctl" => crate::first_line(&path, &["version", "--format", "{{.VCSTag}}"]),
                "oras" => crate::first_line(&path, &["version"]),
                _ => String::new(),
            };
            if !version.is_empty() {
                meta.push(format!("{program}: `{version}`"));
            }
        }
        let mut command = Command::new(path);
        command
            .args(&args)
            .env("HOME", &home)
            .env("DOCKER_CONFIG", home.join("no-docker-config"));
        cases.push(Case {
            work,
            tool: tool.to_string(),
            command,
            check,
        });
    }
    for line in &meta {
        println!("{line}");
    }

    let mut samples: BTreeMap<usize, Vec<Sample>> = BTreeMap::new();
    for rep in 0..usize::from(args.reps) {
        for (i, case) in cases.iter().enumerate() {
            let label = format!("{}-{rep}", case.tool.replace(' ', "_"));
            reg.proxy.take();
            let usage = measure::run(&programs.bench, clone(&case.command), &logs, &label)?;
            let seen = reg.proxy.take();
            check(case, &logs.join(format!("{label}.out")))?;
            let mut by_method = BTreeMap::new();
            for e in &seen.exchanges {
                *by_method.entry(e.method.clone()).or_insert(0) += 1;
            }
            samples.entry(i).or_default().push(Sample {
                wall: usage.wall,
                cpu: usage.cpu,
                requests: seen.exchanges.len(),
                by_method,
            });
        }
    }
    let rows: Vec<Row> = cases
        .iter()
        .enumerate()
        .map(|(i, case)| {
            let s = &samples[&i];
            Row {
                work: case.work,
                tool: case.tool.clone(),
                wall: crate::sync::median(s.iter().map(|x| x.wall).collect()),
                cpu: crate::sync::median(s.iter().map(|x| x.cpu).collect()),
                requests: crate::sync::median(s.iter().map(|x| x.requests).collect()),
                by_method: s[0].by_method.clone(),
            }
        })
        .collect();
    let section = markdown(
        &rows,
        &meta,
        tag_count,
        platform_count,
        args.reps,
        args.quick,
    );
    print!("{section}");
    crate::sync::write_marked_section(&args.out, BEGIN, END, &section)?;
    println!(
        "\nwrote the everyday section of {} ({:.0} s in all)",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A copy of `command` (program, arguments, environment).
fn clone(command: &Command) -> Command {
    let mut c = Command::new(command.get_program());
    c.args(command.get_args());
    for (k, v) in command.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

/// Checks that a run did the work: the tags it listed, the bytes it printed.
fn check(case: &Case, out: &Path) -> Result<()> {
    let text = std::fs::read(out).with_context(|| format!("read `{}`", out.display()))?;
    let (want, got) = match case.check {
        Check::Nothing => return Ok(()),
        Check::Lines(n) => (
            n,
            text.split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count(),
        ),
        Check::Bytes(n) => (n, text.len()),
        Check::SkopeoTags(n) => {
            let v: serde_json::Value = serde_json::from_slice(&text)?;
            (n, v["Tags"].as_array().map_or(0, Vec::len))
        }
    };
    if want != got {
        bail!("{} printed {got} where {want} were expected", case.tool);
    }
    Ok(())
}

/// Pushes one small image under `tags` tags (repository `many`) and an index of `platforms`
/// images (`multi:v1`); returns the index's size.
async fn populate(reg: &ProxiedRegistry, tags: usize, platforms: usize) -> Result<usize> {
    let url = reg.registry.url();
    let image = ImageBuilder::new().layer(4096).seed(1).build();
    push(&url, "many", &image, None, None).await?;
    let manifest = image.manifest.bytes.clone();
    let media_type = image.manifest.media_type();
    let names: Vec<String> = (0..tags)
        .map(|i| format!("1.{}.{}", i / 100, i % 100))
        .collect();
    let mut puts = futures::stream::iter(names)
        .map(|tag| {
            let (url, manifest, media_type) = (url.clone(), manifest.clone(), media_type.clone());
            async move {
                let answer = ferry_test_support::http(
                    "PUT",
                    &format!("{url}/v2/many/manifests/{tag}"),
                    &[("content-type", media_type.as_str())],
                    Bytes::clone(&manifest),
                )
                .await?;
                if answer.status != 201 {
                    bail!("PUT many:{tag} answered {}", answer.status);
                }
                Ok(())
            }
        })
        .buffer_unordered(16);
    while let Some(result) = puts.next().await {
        result?;
    }
    let index = IndexBuilder::new()
        .platforms(&PLATFORMS[..platforms], &[4096], 7)
        .build();
    push(&url, "multi", &index, Some("v1"), None).await?;
    Ok(index.root().bytes.len())
}

fn markdown(
    rows: &[Row],
    meta: &[String],
    tags: usize,
    platforms: usize,
    reps: u16,
    quick: bool,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Everyday commands (ferry-bench everyday)\n");
    let _ = writeln!(
        out,
        "docker-registry 2.8 on loopback in plain HTTP behind the harness's counting proxy; \
         median wall time of {reps} runs each{}; requests as the proxy saw them. Each peer \
         does the same work as the ferry row above it.\n",
        if quick { " (--quick sizes)" } else { "" }
    );
    for m in meta {
        let _ = writeln!(out, "- {m}");
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| work | tool | wall | CPU | requests | by method | vs ferry |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let mut works: Vec<Work> = rows.iter().map(|r| r.work).collect();
    works.sort();
    works.dedup();
    let mut targets = Vec::new();
    for work in works {
        let of: Vec<&Row> = rows.iter().filter(|r| r.work == work).collect();
        let ferry = of[0];
        for r in &of {
            let methods: Vec<String> = r
                .by_method
                .iter()
                .map(|(m, n)| format!("{n} {m}"))
                .collect();
            let versus = if r.tool == ferry.tool {
                String::new()
            } else {
                format!(
                    "{:.2}× wall",
                    r.wall.as_secs_f64() / ferry.wall.as_secs_f64().max(1e-9)
                )
            };
            let _ = writeln!(
                out,
                "| {} | {} | {:.3} s | {:.3} s | {} | {} | {versus} |",
                work.describe(tags, platforms),
                r.tool,
                r.wall.as_secs_f64(),
                r.cpu.as_secs_f64(),
                r.requests,
                methods.join(", ")
            );
        }
        let peers: Vec<&&Row> = of
            .iter()
            .filter(|r| !r.tool.starts_with("ferry") && r.tool != REFERENCE)
            .collect();
        if let Some(best) = peers.iter().min_by_key(|r| r.wall) {
            let ratio = best.wall.as_secs_f64() / ferry.wall.as_secs_f64().max(1e-9);
            let fewest = peers.iter().map(|r| r.requests).min().unwrap_or(0);
            let met = ratio >= 1.5 && ferry.requests <= fewest;
            let verdict = if met { "met" } else { "MISSED" };
            targets.push(format!(
                "- {}: best peer `{}` {:.3} s / ferry {:.3} s = {ratio:.2}× (target ≥ 1.5×); \
                 requests ferry {} vs fewest of a peer {fewest} (target: no more) → {verdict}",
                work.describe(tags, platforms),
                best.tool,
                best.wall.as_secs_f64(),
                ferry.wall.as_secs_f64(),
                ferry.requests,
            ));
        }
    }
    let _ = writeln!(out, "\nTargets:\n");
    for t in targets {
        let _ = writeln!(out, "{t}");
    }
    out
}
