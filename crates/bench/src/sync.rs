//! `ferry-bench sync`: `ferry sync` side by side with the sync tools among its peers,
//! `ocync sync` and `regsync once`, and with `skopeo sync --all --preserve-digests` (its
//! blob-info cache warm, as on a host that syncs hourly), on real registries behind the
//! harness's counting proxies, on loopback and 10 ms per request. crane, regctl and oras copy
//! one image at a time and have no sync; they are not in these tables.
//!
//! The corpus: 12 repositories × 6 tags; every image has 2 base layers (16 MiB) all images
//! share, 2 layers (8 MiB) the tags of its repository share, and 1 layer (1 MiB) of its own.
//! The scenarios: a cold sync into a fresh registry, a sync where nothing changed, a sync where
//! one tag moved, the cold sync at 10 ms per request, an export into a directory of layouts
//! (`oci-dir:`, skopeo `--dest dir`), and one repository of 1,000 tags for peak memory.
//!
//! The headline of each scenario is the fastest peer's median wall time over ferry's (above 1:
//! ferry is faster). The results go into their own section of the report file, between
//! markers, so the copy scenarios' section is left as it is.

mod report;
mod tools;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use ferry_test_support::fixtures::{layer_blob, push};
use ferry_test_support::{Content, Image, ImageBuilder};

use crate::measure::{self, Usage};
use crate::peers::Peers;
use crate::proxy::{Exchange, ProxiedRegistry};
use crate::runner::Programs;
use crate::scenario::{Network, human};
pub(crate) use report::write_section;
use report::{BEGIN, END, checks, headline, markdown, rows};
pub(crate) use report::{median, write_section as write_marked_section};
use tools::Dest;

/// `ferry-bench sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Small sizes for a smoke run (4 repositories × 3 tags of 1/16 the sizes, 100 tags).
    #[arg(long)]
    pub quick: bool,
    /// Measured runs per tool and scenario (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    pub reps: u16,
    /// Scenarios to run (default: all). Repeat or separate with commas.
    #[arg(long = "scenario", value_name = "NAME", value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// The report file; its sync section (between markers) is replaced, or appended.
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
    /// The ferry binary [default: next to this one, else built with cargo].
    #[arg(long, env = "FERRY_BIN")]
    pub ferry: Option<PathBuf>,
    /// Working directory [default: a temporary directory].
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// The directory of the peer tools (`ocync`, `regsync`); one that is absent is skipped
    /// with a note [default: `shared/peers/bin` beside the workspace].
    #[arg(long, value_name = "DIR")]
    pub peers: Option<PathBuf>,
    /// Only these tools (`ferry`, `ocync`, `regsync`, `skopeo`, `floor`); the others are
    /// left out with a note. Repeat or separate with commas [default: all].
    #[arg(long = "tool", value_name = "NAME", value_delimiter = ',')]
    pub tools: Vec<String>,
    /// List the scenarios and exit.
    #[arg(long)]
    pub list: bool,
}

/// The tools compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Tool {
    Ferry,
    Ocync,
    Regsync,
    Skopeo,
    /// The least a sync can ask (`ferry-bench sync-floor`), for `sync-unchanged` and the
    /// cold scenarios: what the registries cost.
    Floor,
}

impl std::fmt::Display for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tool::Ferry => "ferry sync",
            Tool::Ocync => "ocync sync",
            Tool::Regsync => "regsync once",
            Tool::Skopeo => "skopeo sync",
            Tool::Floor => "floor",
        })
    }
}

/// What a scenario syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Into a fresh registry.
    Cold,
    /// Into a registry already holding everything.
    Unchanged,
    /// Into a registry holding everything but one tag, moved upstream before each run.
    OneTag,
    /// Into a fresh directory (ferry `oci-dir:`, skopeo `--dest dir`).
    OciDir,
    /// One repository of many tags into a fresh registry.
    ManyTags,
}

impl Tool {
    /// The peers whose fastest run is the headline's yardstick.
    const PEERS: [Tool; 3] = [Tool::Ocync, Tool::Regsync, Tool::Skopeo];
    /// The sync tools whose requests ferry's are held to.
    const SYNC_PEERS: [Tool; 2] = [Tool::Ocync, Tool::Regsync];
}

/// A goal of ferry's.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// The fastest peer's median wall / ferry's ≥ this.
    PeerWall(f64),
    /// ferry's requests ≤ the fewest of ocync's and regsync's.
    PeerRequests,
    /// skopeo's median wall / ferry's ≥ this.
    WallRatio(f64),
    /// ferry's requests ≤ this share of skopeo's.
    RequestShare(f64),
    /// ferry uploads exactly the corpus's unique blob bytes.
    UploadsUnique,
    /// ferry's requests ≤ 2 per repository + 2 per tag + the catalog's pages.
    UnchangedBound,
    /// ferry uploads exactly the moved tag's new blobs.
    OnlyNewBlobs,
    /// The export's disk use is the corpus's unique bytes.
    DiskUnique,
    /// ferry's peak RSS ≤ this.
    MaxRss(u64),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::PeerWall(r) => write!(f, "wall fastest peer/ferry ≥ {r}×"),
            Target::PeerRequests => {
                f.write_str("ferry requests ≤ the fewest of ocync's and regsync's")
            }
            Target::WallRatio(r) => write!(f, "wall skopeo/ferry ≥ {r}×"),
            Target::RequestShare(s) => write!(f, "ferry requests ≤ {:.0}% of skopeo's", s * 100.0),
            Target::UploadsUnique => f.write_str("bytes uploaded = the corpus's unique bytes"),
            Target::UnchangedBound => {
                f.write_str("requests ≤ 2 per repository + 2 per tag (+ catalog pages)")
            }
            Target::OnlyNewBlobs => f.write_str("only the moved tag's new blobs uploaded"),
            Target::DiskUnique => {
                f.write_str("disk used = the corpus's unique bytes (each blob once on disk)")
            }
            Target::MaxRss(b) => write!(f, "ferry peak RSS ≤ {} MiB", b >> 20),
        }
    }
}

#[derive(Debug, Clone)]
struct Scenario {
    name: &'static str,
    kind: Kind,
    distant: bool,
    targets: Vec<Target>,
}

fn scenarios() -> Vec<Scenario> {
    use Target::*;
    let s = |name, kind, distant, targets: &[Target]| Scenario {
        name,
        kind,
        distant,
        targets: targets.to_vec(),
    };
    vec![
        s(
            "sync-cold",
            Kind::Cold,
            false,
            &[
                PeerWall(1.0),
                WallRatio(3.0),
                UploadsUnique,
                RequestShare(0.4),
            ],
        ),
        s(
            "sync-unchanged",
            Kind::Unchanged,
            false,
            &[PeerWall(1.5), PeerRequests, WallRatio(10.0), UnchangedBound],
        ),
        s(
            "sync-one-tag",
            Kind::OneTag,
            false,
            &[PeerWall(1.0), OnlyNewBlobs],
        ),
        s(
            "sync-cold-distant",
            Kind::Cold,
            true,
            &[PeerWall(2.5), WallRatio(4.0), UploadsUnique],
        ),
        s(
            "sync-oci-dir",
            Kind::OciDir,
            false,
            &[PeerWall(1.0), DiskUnique],
        ),
        s(
            "sync-1000-tags",
            Kind::ManyTags,
            false,
            &[PeerWall(1.0), MaxRss(64 << 20)],
        ),
    ]
}

/// Sizes of the corpus.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    repos: usize,
    tags: usize,
    base_layer: usize,
    repo_layer: usize,
    pub(crate) own_layer: usize,
    many_tags: usize,
}

impl Sizes {
    pub(crate) fn full() -> Self {
        Self {
            repos: 12,
            tags: 6,
            base_layer: 8 << 20,
            repo_layer: 4 << 20,
            own_layer: 1 << 20,
            many_tags: 1000,
        }
    }

    pub(crate) fn quick() -> Self {
        Self {
            repos: 4,
            tags: 3,
            base_layer: 512 << 10,
            repo_layer: 256 << 10,
            own_layer: 64 << 10,
            many_tags: 100,
        }
    }
}

/// Images to sync.
pub(crate) struct Corpus {
    /// (repository, tag, image).
    pub(crate) images: Vec<(String, String, Image)>,
}

impl Corpus {
    /// Every image has the two base layers, its repository's two layers, one of its own.
    pub(crate) fn shared(sizes: &Sizes) -> Self {
        let base = [
            layer_blob(1, sizes.base_layer),
            layer_blob(2, sizes.base_layer),
        ];
        let mut images = Vec::new();
        for r in 0..sizes.repos {
            let repo_layers = [
                layer_blob(100 + 2 * r as u64, sizes.repo_layer),
                layer_blob(101 + 2 * r as u64, sizes.repo_layer),
            ];
            for t in 0..sizes.tags {
                let mut b = ImageBuilder::new();
                for l in base.iter().chain(&repo_layers) {
                    b = b.shared_layer(l.clone());
                }
                let image = b
                    .layer(sizes.own_layer)
                    .seed(10_000 + (r * 100 + t) as u64)
                    .build();
                images.push((format!("r{r:02}"), format!("1.{t}.0"), image));
            }
        }
        Self { images }
    }

    /// One repository of `tags` small images sharing one base layer.
    fn many_tags(tags: usize) -> Self {
        let base = layer_blob(7, 64 << 10);
        let images = (0..tags)
            .map(|t| {
                let image = ImageBuilder::new()
                    .shared_layer(base.clone())
                    .layer(256)
                    .seed(50_000 + t as u64)
                    .build();
                ("many".to_string(), format!("t{t:04}"), image)
            })
            .collect();
        Self { images }
    }

    pub(crate) fn repos(&self) -> BTreeSet<&str> {
        self.images.iter().map(|(r, _, _)| r.as_str()).collect()
    }

    /// Distinct blobs (configs and layers) and their sizes.
    fn blobs(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (_, _, image) in &self.images {
            for b in image.all() {
                if !b.is_manifest() {
                    out.insert(b.digest().to_string(), b.bytes.len() as u64);
                }
            }
        }
        out
    }

    /// Distinct blob bytes, manifests left out.
    fn unique_blob_bytes(&self) -> u64 {
        self.blobs().values().sum()
    }

    /// Distinct content bytes, manifests included.
    pub(crate) fn unique_bytes(&self) -> u64 {
        let mut seen = BTreeMap::new();
        for (_, _, image) in &self.images {
            for b in image.all() {
                seen.insert(b.digest().to_string(), b.bytes.len() as u64);
            }
        }
        seen.values().sum()
    }
}

/// What one run cost.
#[derive(Debug, Clone)]
struct Sample {
    usage: Usage,
    requests: usize,
    by_method: BTreeMap<String, usize>,
    uploaded: u64,
    disk: Option<u64>,
    /// Bytes of the distinct files under the layouts' `blobs/` (each inode once).
    blob_files: Option<u64>,
    /// CPU (user + system) the source and destination registries used during the run.
    registries_cpu: Duration,
    /// CPU this harness used during the run: its counting (and, far away, delaying) proxies
    /// in front of both registries.
    harness_cpu: Duration,
}

#[derive(Debug, Clone, Default)]
struct ToolRuns {
    samples: Vec<Sample>,
    /// Why its priming run failed twice: the tool is not measured.
    error: Option<String>,
    /// Runs that failed twice in a row and were left out, with why (the other runs count).
    left_out: Vec<String>,
    /// Why the tool did not run in this scenario (absent, or unable to do the work).
    skipped: Option<String>,
}

struct ScenarioResult {
    scenario: Scenario,
    description: String,
    corpus_blobs: u64,
    corpus_bytes: u64,
    repos: usize,
    tags: usize,
    expected_uploads: Option<u64>,
    runs: BTreeMap<Tool, ToolRuns>,
}

struct Bench {
    rt: tokio::runtime::Runtime,
    work: PathBuf,
    logs: PathBuf,
    programs: Programs,
    /// `ocync`, when found.
    ocync: Option<PathBuf>,
    /// `regsync`, when found.
    regsync: Option<PathBuf>,
    /// Where the peers were looked for, for the notes.
    peers_dir: String,
    /// The tools asked for (`--tool`); empty: all.
    only: Vec<String>,
    reps: usize,
    sizes: Sizes,
    serial: u64,
}

/// Runs `ferry-bench sync`.
pub fn main(args: SyncArgs) -> Result<()> {
    let all = scenarios();
    if args.list {
        for s in &all {
            let targets: Vec<String> = s.targets.iter().map(|t| t.to_string()).collect();
            println!("{:<20} {}", s.name, targets.join("; "));
        }
        return Ok(());
    }
    let chosen: Vec<Scenario> = if args.scenarios.is_empty() {
        all.clone()
    } else {
        let mut out = Vec::new();
        for name in &args.scenarios {
            match all.iter().find(|s| s.name == name) {
                Some(s) => out.push(s.clone()),
                None => bail!("no sync scenario `{name}`; `ferry-bench sync --list` names them"),
            }
        }
        out
    };
    if let Some(t) = args
        .tools
        .iter()
        .find(|t| !["ferry", "ocync", "regsync", "skopeo", "floor"].contains(&t.as_str()))
    {
        bail!("no sync tool `{t}`; the tools are ferry, ocync, regsync, skopeo and floor");
    }
    let programs = crate::programs(args.ferry.clone(), args.peers.clone())?;
    let (_temp, work, logs, mut meta) =
        crate::workspace(args.work_dir.as_deref(), "ferry-bench-sync-", &programs)?;
    let peers = Peers::new(args.peers.clone());
    let ocync = peers.find("ocync");
    let regsync = peers.find("regsync");
    meta.extend(ocync.as_deref().map(|p| Peers::version_line("ocync", p)));
    meta.extend(
        regsync
            .as_deref()
            .map(|p| Peers::version_line("regsync", p)),
    );
    for line in &meta {
        println!("{line}");
    }
    let mut bench = Bench {
        rt: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?,
        work,
        logs,
        programs,
        ocync,
        regsync,
        peers_dir: peers.dir().display().to_string(),
        only: args.tools.clone(),
        reps: usize::from(args.reps),
        sizes: if args.quick {
            Sizes::quick()
        } else {
            Sizes::full()
        },
        serial: 0,
    };
    let started = Instant::now();
    let mut results = Vec::new();
    for scenario in &chosen {
        let result = bench.run(scenario)?;
        print!("{}", rows(&result));
        println!("  {}", headline(&result));
        for (target, measured, met) in checks(&result) {
            let met = match met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "not measured",
            };
            println!("  target {target}: {measured} → {met}");
        }
        results.push(result);
        write_section(
            &args.out,
            BEGIN,
            END,
            &markdown(&results, &meta, args.quick, started.elapsed()),
        )?;
    }
    println!(
        "\nwrote the sync section of {} ({:.0} s in all)",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

impl Bench {
    fn next(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    fn registry(&self, distant: bool) -> Result<ProxiedRegistry> {
        let delay = if distant {
            Duration::from_millis(Network::DISTANT.delay_ms)
        } else {
            Duration::ZERO
        };
        ProxiedRegistry::start(self.rt.handle(), delay, None)
    }

    fn push_corpus(&self, reg: &ProxiedRegistry, corpus: &Corpus) -> Result<()> {
        let url = reg.registry.url();
        self.rt.block_on(async {
            for (repo, tag, image) in &corpus.images {
                push(&url, &format!("team/{repo}"), image, Some(tag), None)
                    .await
                    .with_context(|| format!("push team/{repo}:{tag}"))?;
            }
            Ok::<_, anyhow::Error>(())
        })?;
        reg.proxy.take();
        Ok(())
    }

    fn run(&mut self, scenario: &Scenario) -> Result<ScenarioResult> {
        let corpus = match scenario.kind {
            Kind::ManyTags => Corpus::many_tags(self.sizes.many_tags),
            _ => Corpus::shared(&self.sizes),
        };
        let description = match scenario.kind {
            Kind::ManyTags => format!(
                "1 repository × {} tags (one shared {} layer each), registry → fresh registry",
                corpus.images.len(),
                human(64 << 10)
            ),
            _ => {
                let s = &self.sizes;
                let what = match scenario.kind {
                    Kind::Cold => "registry → fresh registry",
                    Kind::Unchanged => "registry → registry holding everything (nothing changed)",
                    Kind::OneTag => "registry → registry where one tag moved upstream",
                    Kind::OciDir => {
                        "registry → fresh directory (ferry `oci-dir:`, skopeo `--dest dir`)"
                    }
                    Kind::ManyTags => unreachable!(),
                };
                format!(
                    "{} repositories × {} tags (2 × {} shared by all, 2 × {} per repository, 1 × {} per image), {what}{}",
                    s.repos,
                    s.tags,
                    human(s.base_layer as u64),
                    human(s.repo_layer as u64),
                    human(s.own_layer as u64),
                    if scenario.distant {
                        ", 10 ms per request"
                    } else {
                        ""
                    }
                )
            }
        };
        println!("\n== {}: {description}", scenario.name);
        let src = self.registry(scenario.distant)?;
        eprintln!("pushing {} images to the source", corpus.images.len());
        self.push_corpus(&src, &corpus)?;
        let caches = self.work.join("caches").join(scenario.name);
        let mut tools = vec![Tool::Ferry];
        let mut runs: BTreeMap<Tool, ToolRuns> = BTreeMap::new();
        for (tool, found) in [(Tool::Ocync, &self.ocync), (Tool::Regsync, &self.regsync)] {
            let skipped = if found.is_none() {
                Some(format!("not found in `{}`", self.peers_dir))
            } else if tool == Tool::Ocync && scenario.kind == Kind::OciDir {
                Some("ocync syncs between registries only".to_string())
            } else {
                None
            };
            match skipped {
                Some(why) => {
                    println!("  {tool}: skipped: {why}");
                    runs.insert(
                        tool,
                        ToolRuns {
                            skipped: Some(why),
                            ..ToolRuns::default()
                        },
                    );
                }
                None => tools.push(tool),
            }
        }
        tools.push(Tool::Skopeo);
        if matches!(scenario.kind, Kind::Unchanged | Kind::Cold) {
            tools.push(Tool::Floor);
        }
        if !self.only.is_empty() {
            for tool in std::mem::take(&mut tools) {
                let name = tool.to_string();
                let short = name.split(' ').next().unwrap_or_default();
                if self.only.iter().any(|o| o == short) {
                    tools.push(tool);
                } else {
                    runs.insert(
                        tool,
                        ToolRuns {
                            skipped: Some("not asked for (`--tool`)".into()),
                            ..ToolRuns::default()
                        },
                    );
                }
            }
        }
        for &tool in &tools {
            runs.insert(tool, ToolRuns::default());
        }
        // Warm caches: one unmeasured sync per tool into a registry of its own, as the
        // previous hourly run left them; for the incremental scenarios that registry is
        // the one measured.
        let mut primed: BTreeMap<Tool, ProxiedRegistry> = BTreeMap::new();
        for &tool in &tools {
            if tool == Tool::Floor {
                continue;
            }
            let dst = self.registry(scenario.distant)?;
            let label = format!("{}-{tool}-prime", scenario.name).replace(' ', "-");
            // A tool that fails (ocync's pushes race on loopback now and then) is asked once
            // more: the second run completes what the first left undone.
            let mut primed_ok = Ok(());
            for _ in 0..2 {
                let command =
                    self.command(tool, &src, &Dest::Registry(dst.addr()), &caches, &corpus)?;
                primed_ok =
                    measure::run(&self.programs.bench, command, &self.logs, &label).map(|_| ());
                if primed_ok.is_ok() {
                    break;
                }
            }
            if let Err(e) = primed_ok {
                runs.get_mut(&tool).expect("tool").error = Some(format!("{e:#}"));
            }
            primed.insert(tool, dst);
        }
        let mut expected_uploads = match scenario.kind {
            Kind::Cold | Kind::ManyTags => Some(corpus.unique_blob_bytes()),
            _ => None,
        };
        let mut corpus = corpus;
        for rep in 0..self.reps {
            if scenario.kind == Kind::OneTag {
                // The first repository's first tag moves to an image with a new layer of
                // its own (and a new config).
                let (repo, tag, old) = &corpus.images[0];
                let mut b = ImageBuilder::new();
                for l in &old.layers[..old.layers.len() - 1] {
                    b = b.shared_layer(l.clone());
                }
                let moved = b
                    .layer(self.sizes.own_layer)
                    .seed(900_000 + rep as u64)
                    .build();
                let url = src.registry.url();
                self.rt
                    .block_on(push(&url, &format!("team/{repo}"), &moved, Some(tag), None))
                    .context("move a tag")?;
                src.proxy.take();
                expected_uploads = Some(
                    moved.config.bytes.len() as u64
                        + moved.layers.last().expect("layer").bytes.len() as u64,
                );
                corpus.images[0].2 = moved;
            }
            for i in 0..tools.len() {
                let tool = tools[(i + rep) % tools.len()];
                if runs[&tool].error.is_some() {
                    // Its priming run failed twice: the tool cannot do this work here.
                    continue;
                }
                let mut result = self.one(scenario, &src, tool, rep, &caches, &corpus, &primed);
                if let Err(e) = &result {
                    // Once more, from where the failed run left off (a fresh destination for
                    // the cold scenarios); a second failure leaves this run out.
                    println!("  rep {} {tool}: failed, run again: {e:#}", rep + 1);
                    result = self.one(scenario, &src, tool, rep, &caches, &corpus, &primed);
                }
                let entry = runs.get_mut(&tool).expect("tool");
                match result {
                    Ok(sample) => {
                        println!(
                            "  rep {} {:<12} wall {:>8.3} s  cpu {:>8.3} s  registries {:>7.2} s  rss {:>6.1} MiB  requests {:>6}  uploaded {:>12} B{}",
                            rep + 1,
                            tool.to_string(),
                            sample.usage.wall.as_secs_f64(),
                            sample.usage.cpu.as_secs_f64(),
                            sample.registries_cpu.as_secs_f64(),
                            sample.usage.max_rss as f64 / f64::from(1 << 20),
                            sample.requests,
                            sample.uploaded,
                            sample
                                .disk
                                .map(|d| format!("  disk {d} B"))
                                .unwrap_or_default()
                        );
                        entry.samples.push(sample);
                    }
                    Err(e) => {
                        println!("  rep {} {tool}: FAILED twice, left out: {e:#}", rep + 1);
                        entry.left_out.push(format!("{e:#}"));
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&caches);
        Ok(ScenarioResult {
            scenario: scenario.clone(),
            description,
            corpus_blobs: corpus.unique_blob_bytes(),
            corpus_bytes: corpus.unique_bytes(),
            repos: corpus.repos().len(),
            tags: corpus.images.len(),
            expected_uploads,
            runs,
        })
    }

    /// One measured run.
    #[allow(clippy::too_many_arguments)]
    fn one(
        &mut self,
        scenario: &Scenario,
        src: &ProxiedRegistry,
        tool: Tool,
        rep: usize,
        caches: &Path,
        corpus: &Corpus,
        primed: &BTreeMap<Tool, ProxiedRegistry>,
    ) -> Result<Sample> {
        let n = self.next();
        let fresh;
        let (target, dst): (Dest, Option<&ProxiedRegistry>) = match scenario.kind {
            Kind::Unchanged | Kind::OneTag => {
                // The floor changes nothing: it compares against ferry's destination.
                let dst = &primed[&if tool == Tool::Floor {
                    Tool::Ferry
                } else {
                    tool
                }];
                (Dest::Registry(dst.addr()), Some(dst))
            }
            Kind::OciDir => {
                let dir = self.work.join("destinations").join(format!(
                    "{}-{}-{n}",
                    scenario.name,
                    tool.to_string().replace(' ', "-")
                ));
                (Dest::Dir(dir), None)
            }
            Kind::Cold | Kind::ManyTags => {
                fresh = self.registry(scenario.distant)?;
                (Dest::Registry(fresh.addr()), Some(&fresh))
            }
        };
        if tool == Tool::Ocync && !matches!(scenario.kind, Kind::Unchanged | Kind::OneTag) {
            // A cold run starts without ocync's transfer cache; an incremental one keeps it,
            // as an hourly mirror does.
            let _ = std::fs::remove_dir_all(tools::ocync_cache(caches));
        }
        let mut command = self.command(tool, src, &target, caches, corpus)?;
        if tool == Tool::Floor && scenario.kind == Kind::Cold {
            command.arg("--cold");
        }
        src.proxy.take();
        if let Some(d) = dst {
            d.proxy.take();
        }
        let label = format!(
            "{}-{}-{}",
            scenario.name,
            tool.to_string().replace(' ', "-"),
            rep + 1
        );
        measure::settle();
        let registries: Vec<u32> = std::iter::once(src)
            .chain(dst)
            .map(|r| r.registry.pid())
            .collect();
        let registries_cpu_now = || measure::processes_cpu(&registries);
        let harness_cpu_now = || measure::processes_cpu(&[std::process::id()]);
        let (before, harness_before) = (registries_cpu_now(), harness_cpu_now());
        let usage = measure::run(&self.programs.bench, command, &self.logs, &label)?;
        let registries_cpu = registries_cpu_now().saturating_sub(before);
        let harness_cpu = harness_cpu_now().saturating_sub(harness_before);
        let mut exchanges: Vec<Arc<Exchange>> = src.proxy.take().exchanges;
        if let Some(d) = dst {
            exchanges.extend(d.proxy.take().exchanges);
        }
        let (disk, blob_files) = match &target {
            Dest::Dir(dir) => (Some(disk_usage(dir)?), Some(blob_file_bytes(dir)?)),
            Dest::Registry(_) => (None, None),
        };
        self.check(tool, &target, corpus)
            .with_context(|| format!("{tool} left a wrong destination"))?;
        if let Dest::Dir(dir) = &target {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(d) = dst {
            d.proxy.take();
        }
        let mut by_method = BTreeMap::new();
        for e in &exchanges {
            *by_method.entry(e.method.clone()).or_default() += 1;
        }
        Ok(Sample {
            usage,
            requests: exchanges.len(),
            by_method,
            uploaded: exchanges
                .iter()
                .filter(|e| e.is_upload())
                .map(|e| e.request_bytes.load(std::sync::atomic::Ordering::Relaxed))
                .sum(),
            disk,
            blob_files,
            registries_cpu,
            harness_cpu,
        })
    }
}

/// `du -s -B1`: the bytes the directory takes on disk, hardlinked files counted once.
pub(crate) fn disk_usage(dir: &Path) -> Result<u64> {
    let out = Command::new("du")
        .args(["-s", "-B1"])
        .arg(dir)
        .output()
        .context("run du")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("du said `{text}`"))
}

/// Bytes of the distinct files (each inode once) under any `blobs/` directory below `dir`.
fn blob_file_bytes(dir: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut inodes: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let meta = std::fs::symlink_metadata(entry.path())?;
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() && entry.path().components().any(|c| c.as_os_str() == "blobs")
            {
                inodes.insert((meta.dev(), meta.ino()), meta.len());
            }
        }
    }
    Ok(inodes.values().sum())
}
