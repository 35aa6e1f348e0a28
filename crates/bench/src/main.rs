//! `ferry-bench`: runs ferry, its peers (crane, regctl, oras, skopeo), the `oci-client` crate
//! and a minimal streaming client on the same copies between real registries on loopback and
//! OCI layouts, and writes `BENCHMARKS.md`.

mod archive;
mod everyday;
mod faults;
mod floor;
mod generate;
mod measure;
mod peers;
mod proxied;
mod proxy;
mod report;
mod runner;
mod scenario;
mod service;
mod sync;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

use crate::floor::{Endpoint, Floor, FloorTls};
use crate::runner::{Programs, Runner};
use crate::scenario::{Sizes, Tool};

/// Benchmarks ferry against crane, regctl, oras, skopeo, oci-client and a minimal streaming
/// client.
#[derive(Debug, Parser)]
#[command(name = "ferry-bench", max_term_width = 100)]
struct Cli {
    /// Small sizes for a smoke run.
    #[arg(long)]
    quick: bool,
    /// Runs per tool of the long scenarios (the 1 GiB blob, the scale indexes); the short ones
    /// run twice as many and one more.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    reps: u16,
    /// Scenarios to run (default: all). Repeat or separate with commas.
    #[arg(long = "scenario", value_name = "NAME", value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Also run every registry scenario against distant registries (10 ms per request).
    #[arg(long)]
    distant: bool,
    /// Where to write the report.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// Layers of the standard image [default: 8, --quick: 4].
    #[arg(long)]
    layers: Option<usize>,
    /// Bytes of each layer [default: 16 MiB, --quick: 256 KiB].
    #[arg(long, value_name = "BYTES")]
    layer_size: Option<u64>,
    /// Bytes of the big blob [default: 1 GiB, --quick: 32 MiB].
    #[arg(long, value_name = "BYTES")]
    big_size: Option<u64>,
    /// Bytes of the huge blob [default: 4 GiB, --quick: 96 MiB].
    #[arg(long, value_name = "BYTES")]
    huge_size: Option<u64>,
    /// Bytes of the blob pulled over capped connections [default: 256 MiB, --quick: 80 MiB].
    #[arg(long, value_name = "BYTES")]
    capped_size: Option<u64>,
    /// Blob pools of the scale scenarios [default: 250,500,1000].
    #[arg(long, value_name = "N", value_delimiter = ',')]
    scale_blobs: Vec<usize>,
    /// Images in the scale index [default: 200].
    #[arg(long, value_name = "N")]
    scale_manifests: Option<usize>,
    /// The ferry binary [default: next to this one, else built with cargo].
    #[arg(long, env = "FERRY_BIN")]
    ferry: Option<PathBuf>,
    /// The directory of the peers' binaries (crane, regctl, oras); a missing one is skipped
    /// with a note [default: ../shared/peers/bin beside the workspace].
    #[arg(long, value_name = "DIR")]
    peers: Option<PathBuf>,
    /// Working directory for images, destinations and logs [default: a temporary directory].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
    #[command(subcommand)]
    command: Option<Sub>,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// The floor: stream every blob GET → PUT with no verification (used by the harness).
    #[command(hide = true)]
    Floor {
        /// `oci:DIR:TAG` or `HOST:PORT/REPO:TAG`.
        src: String,
        /// `HOST:PORT/REPO:TAG`.
        dst: String,
        /// Transfers at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Speak HTTPS, trusting the CA certificate in this PEM file.
        #[arg(long, value_name = "FILE")]
        ca_cert: Option<PathBuf>,
        /// Over HTTPS, offer HTTP/2 as well as HTTP/1.1 by ALPN.
        #[arg(long)]
        http2: bool,
    },
    /// The floor of an incremental sync: list and compare every tag, change nothing; with
    /// `--cold`, of a sync into an empty destination (used by the harness).
    #[command(hide = true)]
    SyncFloor {
        /// `HOST:PORT/PREFIX/`: every repository under PREFIX.
        src: String,
        /// `HOST:PORT/PREFIX/`.
        dst: String,
        /// Requests at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// The repositories under PREFIX, as the tools are given them (default: the catalog's).
        #[arg(long, value_delimiter = ',')]
        repos: Vec<String>,
        /// Copy everything into the destination, known to be empty.
        #[arg(long)]
        cold: bool,
    },
    /// `ferry sync` side by side with `skopeo sync`: see `ferry-bench sync --help`.
    Sync(sync::SyncArgs),
    /// `ferry sync --every` over many idle runs: memory, descriptors, CPU and requests per run.
    Service(service::ServiceArgs),
    /// Registry → registry through a forward proxy (squid), ferry beside skopeo, crane,
    /// regctl and oras: see `ferry-bench proxied --help`.
    Proxied(proxied::ProxiedArgs),
    /// `ferry ls` and `ferry inspect` side by side with crane, regctl, oras and skopeo: see
    /// `ferry-bench everyday --help`.
    Everyday(everyday::EverydayArgs),
    /// The sync corpus through OCI archives, ferry beside skopeo and regctl: see
    /// `ferry-bench archive --help`.
    Archive(archive::ArchiveArgs),
    /// Copies through a failing destination, by ferry, crane, regctl and oras: see
    /// `ferry-bench faults --help`.
    Faults(faults::FaultsArgs),
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() >= 4 && args[1] == measure::HELPER_ARG {
        // Before anything else is allocated: see `measure::helper`.
        std::process::exit(measure::helper(Path::new(&args[2]), &args[3], &args[4..]));
    }
    let cli = Cli::parse();
    if let Some(Sub::Sync(args)) = cli.command {
        return sync::main(args);
    }
    if let Some(Sub::Service(args)) = cli.command {
        return service::main(args);
    }
    if let Some(Sub::Proxied(args)) = cli.command {
        return proxied::main(args);
    }
    if let Some(Sub::Everyday(args)) = cli.command {
        return everyday::main(args);
    }
    if let Some(Sub::Archive(args)) = cli.command {
        return archive::main(args);
    }
    if let Some(Sub::Faults(args)) = cli.command {
        return faults::main(args);
    }
    if let Some(Sub::SyncFloor {
        src,
        dst,
        concurrency,
        repos,
        cold,
    }) = &cli.command
    {
        let split = |s: &str| -> Result<(String, String)> {
            let (host, prefix) = s
                .split_once('/')
                .with_context(|| format!("`{s}`: expected `HOST:PORT/PREFIX/`"))?;
            Ok((host.to_string(), prefix.to_string()))
        };
        let ((sh, sp), (dh, dp)) = (split(src)?, split(dst)?);
        let rt = tokio::runtime::Runtime::new()?;
        let floor = Floor::new(*concurrency, None)?;
        if *cold {
            let done = rt.block_on(floor.sync_copy(&sh, &sp, &dh, &dp, repos))?;
            println!(
                "{} images, {} blobs uploaded, {} mounted, {} requests",
                done.images, done.uploads, done.mounts, done.requests
            );
            return Ok(());
        }
        let found = rt.block_on(floor.sync_check(&sh, &sp, &dh, &dp, repos))?;
        println!(
            "{} unchanged, {} changed, {} requests",
            found.unchanged,
            found.changed.len(),
            found.requests
        );
        if !found.changed.is_empty() {
            bail!("changed: {}", found.changed.join(", "));
        }
        return Ok(());
    }
    if let Some(Sub::Floor {
        src,
        dst,
        concurrency,
        ca_cert,
        http2,
    }) = &cli.command
    {
        let tls = match ca_cert {
            Some(f) => Some(FloorTls {
                ca_pem: std::fs::read(f).with_context(|| format!("read `{}`", f.display()))?,
                http2: *http2,
            }),
            None => None,
        };
        let rt = tokio::runtime::Runtime::new()?;
        let floor = Floor::new(*concurrency, tls.as_ref())?;
        return rt.block_on(floor.copy(&Endpoint::parse(src)?, &Endpoint::parse(dst)?));
    }
    let mut sizes = if cli.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    if let Some(n) = cli.layers {
        sizes.layers = n;
    }
    if let Some(n) = cli.layer_size {
        sizes.layer_size = n;
    }
    if let Some(n) = cli.big_size {
        sizes.big_size = n;
    }
    if let Some(n) = cli.huge_size {
        sizes.huge_size = n;
    }
    if let Some(n) = cli.capped_size {
        sizes.capped_size = n;
    }
    if !cli.scale_blobs.is_empty() {
        sizes.scale_pools = cli.scale_blobs.clone();
    }
    if let Some(n) = cli.scale_manifests {
        sizes.scale_manifests = n;
    }
    let all = scenario::all(&sizes, cli.distant);
    if cli.list {
        for s in &all {
            println!("{:<28} {}", s.name, s.describe(&sizes));
        }
        return Ok(());
    }
    let chosen: Vec<_> = if cli.scenarios.is_empty() {
        all.clone()
    } else {
        let mut chosen = Vec::new();
        for name in &cli.scenarios {
            match all.iter().find(|s| &s.name == name) {
                Some(s) => chosen.push(s.clone()),
                None => bail!(
                    "no scenario `{name}`; `ferry-bench --list` names them: {}",
                    all.iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
        chosen
    };
    let programs = programs(cli.ferry.clone(), cli.peers.clone())?;
    let _temp;
    let work = match &cli.work_dir {
        Some(dir) => dir.clone(),
        None => {
            _temp = tempfile::Builder::new().prefix("ferry-bench-").tempdir()?;
            _temp.path().to_path_buf()
        }
    };
    let meta = report::Meta {
        command: command_line(),
        machine: machine(&work),
        versions: versions(&programs),
        reps: usize::from(cli.reps),
    };
    for line in meta.machine.iter().chain(&meta.versions) {
        println!("{line}");
    }
    let mut runner = Runner::new(&work, programs, sizes, usize::from(cli.reps))?;
    let mut results = Vec::new();
    for s in &chosen {
        let runs = runner.run(s)?;
        print!("{}{}", report::RESULTS_HEADER, report::rows(&runs));
        for c in report::checks(&runs) {
            let met = match c.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "not measured",
            };
            println!("  target {}: {} → {met}", c.target, c.measured);
        }
        results.push(runs);
        // Written after every scenario, so an interrupted run leaves what it measured.
        report::write(&cli.out, &report::markdown(&results, &meta))
            .with_context(|| format!("write `{}`", cli.out.display()))?;
    }
    println!("\nwrote {}", cli.out.display());
    Ok(())
}

/// The working directory `explicit` names, else a new temporary one (kept alive by the
/// returned guard), with its `logs/`; and the lines describing the machine and the programs.
fn workspace(
    explicit: Option<&Path>,
    prefix: &str,
    programs: &Programs,
) -> Result<(Option<tempfile::TempDir>, PathBuf, PathBuf, Vec<String>)> {
    let (guard, work) = match explicit {
        Some(dir) => (None, dir.to_path_buf()),
        None => {
            let temp = tempfile::Builder::new().prefix(prefix).tempdir()?;
            let path = temp.path().to_path_buf();
            (Some(temp), path)
        }
    };
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs)?;
    let meta: Vec<String> = machine(&work)
        .into_iter()
        .chain(versions(programs))
        .collect();
    Ok((guard, work, logs, meta))
}

/// The command line, as the report quotes it.
fn command_line() -> String {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    args.insert(0, "cargo run --release -p ferry-bench --".into());
    args.join(" ")
}

/// Finds the programs; builds ferry or oci-client-copy with cargo when they are missing. A
/// peer missing from `peers` is noted and left out.
fn programs(ferry: Option<PathBuf>, peers: Option<PathBuf>) -> Result<Programs> {
    let bench = std::env::current_exe()?;
    let dir = bench.parent().map(Path::to_path_buf).unwrap_or_default();
    let ferry = match ferry {
        Some(f) => f,
        None => sibling_or_build(&dir, "ferry", &["-p", "ferry-cli", "--bin", "ferry"])?,
    };
    let oci_client = sibling_or_build(
        &dir,
        "oci-client-copy",
        &["-p", "ferry-bench", "--bin", "oci-client-copy"],
    )?;
    let skopeo = which("skopeo")
        .context("`skopeo` is not on PATH; install it with `apt-get install -y skopeo` (Debian)")?;
    if !Path::new(ferry_test_support::registry::REGISTRY_BINARY).exists() {
        bail!("`docker-registry` is missing; install it with `apt-get install -y docker-registry`");
    }
    let finder = crate::peers::Peers::new(peers);
    let peers = Tool::PEERS
        .into_iter()
        .filter_map(|tool| Some((tool, finder.find(tool.peer_binary()?)?)))
        .collect();
    let peers_dir = finder.dir().to_path_buf();
    Ok(Programs {
        ferry,
        skopeo,
        oci_client,
        bench,
        peers,
        peers_dir,
    })
}

fn sibling_or_build(dir: &Path, name: &str, cargo_args: &[&str]) -> Result<PathBuf> {
    let path = dir.join(name);
    if path.exists() {
        return Ok(path);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .args(cargo_args)
        .current_dir(&workspace);
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    eprintln!("building {name}: {command:?}");
    let status = command
        .status()
        .with_context(|| format!("run {command:?}"))?;
    if !status.success() || !path.exists() {
        bail!(
            "`{}` is missing and {command:?} did not build it; build it and pass its path",
            path.display()
        );
    }
    Ok(path)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

fn first_line(program: &Path, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|| "unknown".into())
}

fn versions(p: &Programs) -> Vec<String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let commit = Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(&workspace)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let peer = |tool: Tool, args: &[&str]| match p.peers.get(&tool) {
        Some(path) => format!("{tool}: `{}`", first_line(path, args)),
        None => format!("{tool}: not found in `{}`", p.peers_dir.display()),
    };
    vec![
        format!(
            "ferry: `{}` (`{}`), workspace at `{commit}`",
            first_line(&p.ferry, &["--version"]),
            p.ferry.display()
        ),
        peer(Tool::Crane, &["version"]),
        peer(Tool::Regctl, &["version"]),
        peer(Tool::Oras, &["version"]),
        format!("skopeo: `{}`", first_line(&p.skopeo, &["--version"])),
        format!(
            "docker-registry: `{}`",
            first_line(
                Path::new(ferry_test_support::registry::REGISTRY_BINARY),
                &["--version"]
            )
        ),
        format!(
            "oci-client crate: `{}`",
            first_line(&p.oci_client, &["--version"])
        ),
    ]
}

fn machine(work: &Path) -> Vec<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches(" kB").parse::<u64>().ok())
        .map(|kib| format!("{:.1} GiB", kib as f64 / f64::from(1 << 20)))
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let fs = Command::new("df")
        .args(["--output=fstype", &work.to_string_lossy()])
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .nth(1)
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    vec![
        format!("CPU: {model}, {cores} cores (`nproc`)"),
        format!(
            "load average when the run started: {load} (the machine is shared; figures are medians of alternating runs)"
        ),
        format!("memory: {mem}"),
        format!("kernel: Linux {kernel}"),
        format!("working directory filesystem: {fs}"),
    ]
}
