//! `ferry-bench service`: `ferry sync --every` kept running over the sync corpus (12
//! repositories × 6 tags) with nothing changed: resident memory and open file descriptors
//! after the first run and after the last, the CPU time of an idle run, and the requests of
//! each run against the no-change bound of docs/sync.md (2 per repository + 2 per tag + the
//! catalog's pages).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use ferry_test_support::fixtures::push;

use crate::proxy::ProxiedRegistry;
use crate::sync::{Corpus, Sizes};

/// `ferry-bench service`.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Runs to watch.
    #[arg(long, default_value_t = 200)]
    pub cycles: usize,
    /// The interval (`--every`).
    #[arg(long, default_value = "1s")]
    pub every: String,
    /// Small sizes (4 repositories × 3 tags of 1/16 the sizes).
    #[arg(long)]
    pub quick: bool,
    /// The ferry binary [default: next to this one, else built with cargo].
    #[arg(long, env = "FERRY_BIN")]
    pub ferry: Option<PathBuf>,
}

/// What the process held after a run.
#[derive(Debug, Clone, Copy)]
struct Sample {
    rss: u64,
    /// Open descriptors other than sockets: files, pipes, the event loop.
    files: usize,
    /// Sockets: the connections the client pools keep between runs.
    sockets: usize,
    cpu: Duration,
    requests: usize,
}

/// Runs `ferry-bench service`.
pub fn main(args: ServiceArgs) -> Result<()> {
    let programs = crate::programs(args.ferry.clone(), None)?;
    let sizes = if args.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    let corpus = Corpus::shared(&sizes);
    let repos = corpus.repos().len();
    let tags = corpus.images.len();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let src = ProxiedRegistry::start(rt.handle(), Duration::ZERO, None)?;
    let dst = ProxiedRegistry::start(rt.handle(), Duration::ZERO, None)?;
    eprintln!("pushing {tags} images to the source");
    rt.block_on(async {
        for (repo, tag, image) in &corpus.images {
            push(
                &src.registry.url(),
                &format!("team/{repo}"),
                image,
                Some(tag),
                None,
            )
            .await
            .with_context(|| format!("push team/{repo}:{tag}"))?;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    let home = tempfile::tempdir()?;
    let from = format!("{}/team/", src.addr());
    let to = format!("{}/mirror/", dst.addr());
    let ferry = |extra: &[&str]| {
        let mut c = Command::new(&programs.ferry);
        c.args(["sync", "--plain-http", "-q"])
            .args(extra)
            .args([&from, &to])
            .env("XDG_CACHE_HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("no-config"))
            .env("DOCKER_CONFIG", home.path().join("no-docker-config"))
            .env_remove("RUST_LOG");
        c
    };
    eprintln!("priming the destination with a one-shot sync");
    let primed = ferry(&[]).stdout(Stdio::null()).status()?;
    if !primed.success() {
        bail!("the priming sync failed: {primed}");
    }
    src.proxy.take();
    dst.proxy.take();

    let mut child = ferry(&["--every", &args.every])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("start the service")?;
    let pid = child.id();
    let (runs, ended) = mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("Sync: ") && runs.send(line).is_err() {
                break;
            }
        }
    });
    let mut samples = Vec::with_capacity(args.cycles);
    let started = Instant::now();
    for n in 1..=args.cycles {
        let line = ended
            .recv_timeout(Duration::from_secs(120))
            .with_context(|| format!("run {n} did not finish"))?;
        if !line.contains(&format!("0 synced, {tags} unchanged")) {
            bail!("run {n} was not idle: {line}");
        }
        let requests = src.proxy.take().exchanges.len() + dst.proxy.take().exchanges.len();
        let (files, sockets) = fds(pid)?;
        let sample = Sample {
            rss: rss(pid)?,
            files,
            sockets,
            cpu: cpu(pid)?,
            requests,
        };
        if n == 1 || n % 20 == 0 {
            eprintln!(
                "run {n:>4}: rss {:>6.1} MiB, files {:>3}, sockets {:>3}, cpu {:>7.3} s, requests {}",
                sample.rss as f64 / f64::from(1 << 20),
                sample.files,
                sample.sockets,
                sample.cpu.as_secs_f64(),
                sample.requests
            );
        }
        samples.push(sample);
    }
    let wall = started.elapsed();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = child.wait()?;

    let first = samples[0];
    let last = *samples.last().expect("runs");
    let per_run: Vec<f64> = samples
        .windows(2)
        .map(|w| (w[1].cpu - w[0].cpu).as_secs_f64())
        .collect();
    let mut sorted = per_run.clone();
    sorted.sort_by(f64::total_cmp);
    let median_cpu = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    let mean_cpu = per_run.iter().sum::<f64>() / per_run.len().max(1) as f64;
    let mut requests: Vec<usize> = samples.iter().map(|s| s.requests).collect();
    requests.sort_unstable();
    let bound = 2 * repos + 2 * tags + 1;
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    println!(
        "ferry sync --every {} over {repos} repositories × {} tags, nothing changed: {} runs in {:.0} s",
        args.every,
        tags / repos.max(1),
        args.cycles,
        wall.as_secs_f64()
    );
    println!(
        "| figure | after run 1 | after run {} | target |\n|---|---|---|---|",
        args.cycles
    );
    println!(
        "| resident memory | {:.1} MiB | {:.1} MiB ({:+.1} MiB) | ≤ +5 MiB → {} |",
        mib(first.rss),
        mib(last.rss),
        mib(last.rss) - mib(first.rss),
        if last.rss <= first.rss + (5 << 20) {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "| open descriptors other than sockets | {} | {} | the same → {} |",
        first.files,
        last.files,
        if last.files == first.files {
            "met"
        } else {
            "MISSED"
        }
    );
    // Pooled connections stay open between runs (idle for up to 60 s, longer than the
    // interval), so their count follows how many requests a run had in flight at once: a
    // leak would keep growing past what the first half of the runs reached.
    let early = samples
        .iter()
        .take((samples.len() / 2).max(1))
        .map(|s| s.sockets)
        .max()
        .unwrap_or(0);
    let late = samples
        .iter()
        .rev()
        .take(10)
        .map(|s| s.sockets)
        .max()
        .unwrap_or(0);
    println!(
        "| sockets (pooled connections) | {} (most in the first half of the runs: {early}) | {} (most in the last 10: {late}) | no more than the first half held → {} |",
        first.sockets,
        last.sockets,
        if late <= early { "met" } else { "MISSED" }
    );
    println!(
        "| CPU per idle run | | median {:.1} ms, mean {:.1} ms | shown |",
        median_cpu * 1000.0,
        mean_cpu * 1000.0
    );
    println!(
        "| requests per idle run | {} | min {}, median {}, max {} | ≤ {bound} (2 × {repos} + 2 × {tags} + 1 catalog page) → {} |",
        first.requests,
        requests[0],
        requests[requests.len() / 2],
        requests[requests.len() - 1],
        if requests[requests.len() - 1] <= bound {
            "met"
        } else {
            "MISSED"
        }
    );
    println!("service exit after SIGTERM: {status}");
    Ok(())
}

fn proc_file(pid: u32, name: &str) -> Result<String> {
    std::fs::read_to_string(format!("/proc/{pid}/{name}"))
        .with_context(|| format!("read /proc/{pid}/{name}"))
}

/// Resident memory (`VmRSS`), bytes.
fn rss(pid: u32) -> Result<u64> {
    let status = proc_file(pid, "status")?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .context("VmRSS")?;
    Ok(kb * 1024)
}

/// Open descriptors: those that are not sockets, and sockets.
fn fds(pid: u32) -> Result<(usize, usize)> {
    let (mut files, mut sockets) = (0, 0);
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let target = std::fs::read_link(entry?.path()).unwrap_or_default();
        if target.to_string_lossy().starts_with("socket:") {
            sockets += 1;
        } else {
            files += 1;
        }
    }
    Ok((files, sockets))
}

/// User and system CPU time so far.
fn cpu(pid: u32) -> Result<Duration> {
    let stat = proc_file(pid, "stat")?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name and state.
    let ticks: u64 = fields
        .get(11..13)
        .context("stat fields")?
        .iter()
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    #[allow(unsafe_code)]
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_millis(ticks * 1000 / hz))
}
