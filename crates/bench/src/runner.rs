//! Runs the scenarios: sets up sources once, gives every run a fresh destination, alternates
//! the tools, and collects what each run cost.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::floor::{Endpoint, Floor, FloorTls};
use crate::generate::{self, Generated};
use crate::measure::{self, Usage};
use crate::proxy::{Exchange, ProxiedRegistry};
use crate::scenario::{Kind, Network, Scenario, Sizes, Tool};

/// Where skopeo keeps its blob-info cache when run as root.
const SKOPEO_SYSTEM_CACHE: &str = "/var/lib/containers/cache";

/// The programs under measurement.
#[derive(Debug, Clone)]
pub struct Programs {
    /// `ferry`.
    pub ferry: PathBuf,
    /// `skopeo`.
    pub skopeo: PathBuf,
    /// `oci-client-copy`.
    pub oci_client: PathBuf,
    /// This harness (for `ferry-bench floor`).
    pub bench: PathBuf,
    /// The peers found (crane, regctl, oras), by tool.
    pub peers: BTreeMap<Tool, PathBuf>,
    /// Where the peers were looked for.
    pub peers_dir: PathBuf,
}

/// What one run cost and what the registries saw.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Time, CPU and memory.
    pub usage: Usage,
    /// Requests through the proxies.
    pub requests: usize,
    /// Requests in the registries' access logs.
    pub log_requests: usize,
    /// Request body bytes sent to upload endpoints.
    pub uploaded: u64,
    /// The most GETs of any one blob.
    pub max_fetches: usize,
    /// Requests the destination registry saw (the source's too in a promotion).
    pub dst_requests: usize,
    /// TCP connections opened to the registries.
    pub connections: u64,
    /// The HTTP versions the registries saw (`HTTP/1.1`, `HTTP/2.0`).
    pub protocols: Vec<String>,
}

/// The runs of one tool in one scenario.
#[derive(Debug, Clone)]
pub struct ToolRuns {
    /// The tool.
    pub tool: Tool,
    /// One sample per repetition.
    pub samples: Vec<Sample>,
    /// Why a run failed, when one did (the tool's later runs are skipped).
    pub error: Option<String>,
    /// Why the tool did not run at all (its binary is missing, or it cannot do the work).
    pub skipped: Option<String>,
}

/// Everything measured in one scenario.
#[derive(Debug, Clone)]
pub struct ScenarioRuns {
    /// The scenario.
    pub scenario: Scenario,
    /// What was copied.
    pub description: String,
    /// The content.
    pub content: Generated,
    /// Per tool.
    pub runs: Vec<ToolRuns>,
}

/// The harness's certificate authority: every TLS registry serves a certificate it issued,
/// and every tool is told to trust it.
struct Trust {
    ca: ferry_test_support::TestCa,
    /// The CA certificate (`--ca-cert` of ferry, oci-client and the floor).
    ca_file: PathBuf,
    /// A directory holding it as `ca.crt` (skopeo's `--src-cert-dir`/`--dest-cert-dir`).
    cert_dir: PathBuf,
}

/// The harness's state across scenarios.
pub struct Runner {
    rt: tokio::runtime::Runtime,
    work: PathBuf,
    logs: PathBuf,
    programs: Programs,
    sizes: Sizes,
    reps: usize,
    seeds: HashMap<String, (PathBuf, Generated)>,
    serial: u64,
    trust: Trust,
}

/// A destination prepared for one run, kept alive until the run is measured.
enum Destination {
    Repository(Endpoint),
    Registry(Box<ProxiedRegistry>, Endpoint),
    Layout(Endpoint),
}

impl Destination {
    fn endpoint(&self) -> &Endpoint {
        match self {
            Self::Repository(e) | Self::Registry(_, e) | Self::Layout(e) => e,
        }
    }
}

/// The source of a scenario.
enum Source {
    Registry(Box<ProxiedRegistry>, Endpoint),
    Layout(Endpoint),
}

impl Source {
    fn endpoint(&self) -> &Endpoint {
        match self {
            Self::Registry(_, e) | Self::Layout(e) => e,
        }
    }
}

const TAG: &str = "v1";

impl Runner {
    /// Repetitions of `scenario`: twice as many and one more for the scenarios that take a
    /// second or less per run, whose margins (a few percent over the floor, 10× over skopeo's
    /// 0.6 s) would otherwise drown in this machine's run-to-run spread of ±15%; the 1 GiB
    /// blob and the scale indexes, which take seconds per run, keep `reps`.
    pub fn reps_of(&self, scenario: &Scenario) -> usize {
        match scenario.kind {
            // A 4 GiB copy takes half a minute per run and tool.
            Kind::BigBlob { size } if size >= 2 << 30 => self.reps.min(3),
            kind if kind.is_long() => self.reps,
            _ => self.reps * 2 + 1,
        }
    }

    /// Why `tool` does not run in `scenario`, when it does not.
    fn skip_reason(&self, scenario: &Scenario, tool: Tool) -> Option<String> {
        if let Some(why) = tool.cannot(scenario.kind) {
            return Some(why.to_string());
        }
        let binary = tool.peer_binary()?;
        (!self.programs.peers.contains_key(&tool)).then(|| {
            format!(
                "`{binary}` is not in `{}` (`--peers DIR`)",
                self.programs.peers_dir.display()
            )
        })
    }

    /// A runner working in `work` (created), `reps` repetitions per tool.
    pub fn new(work: &Path, programs: Programs, sizes: Sizes, reps: usize) -> Result<Self> {
        let logs = work.join("logs");
        std::fs::create_dir_all(&logs)?;
        let cert_dir = work.join("tls");
        std::fs::create_dir_all(&cert_dir)?;
        let ca = ferry_test_support::TestCa::new()?;
        let ca_file = cert_dir.join("ca.crt");
        ca.write_cert(&ca_file)?;
        let trust = Trust {
            ca,
            ca_file,
            cert_dir,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        Ok(Self {
            rt,
            work: work.to_path_buf(),
            logs,
            programs,
            sizes,
            reps,
            seeds: HashMap::new(),
            serial: 0,
            trust,
        })
    }

    /// The floor client for `network` (also what seeds sources and checks destinations).
    fn floor(&self, network: Network) -> Result<Floor> {
        let tls = network
            .tls
            .then(|| -> Result<FloorTls> {
                Ok(FloorTls {
                    ca_pem: std::fs::read(&self.trust.ca_file)?,
                    http2: false,
                })
            })
            .transpose()?;
        Floor::new(8, tls.as_ref())
    }

    fn next(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// The generated layout for `kind`, written on first use.
    fn seed(&mut self, kind: Kind) -> Result<(PathBuf, Generated)> {
        let s = &self.sizes;
        let key = match kind {
            Kind::BigBlob { size } | Kind::BigBlobToLayout { size } => format!("big-{size}"),
            Kind::Scale { pool } => {
                format!("scale-{}-{pool}-{}", s.scale_manifests, s.scale_blob_size)
            }
            _ => format!("image-{}x{}", s.layers, s.layer_size),
        };
        if let Some(seed) = self.seeds.get(&key) {
            return Ok(seed.clone());
        }
        let dir = self.work.join("seeds").join(&key);
        eprintln!("generating {key} in {}", dir.display());
        let generated = match kind {
            Kind::BigBlob { size } | Kind::BigBlobToLayout { size } => {
                generate::image(&dir, TAG, 1, size, 7)?
            }
            Kind::Scale { pool } => generate::shared_index(
                &dir,
                TAG,
                s.scale_manifests,
                pool,
                s.scale_blob_size,
                pool as u64,
            )?,
            _ => generate::image(&dir, TAG, s.layers, s.layer_size, 1)?,
        };
        self.seeds.insert(key, (dir.clone(), generated.clone()));
        Ok((dir, generated))
    }

    fn start_registry(&self, network: Network) -> Result<ProxiedRegistry> {
        ProxiedRegistry::start_capped(
            self.rt.handle(),
            Duration::from_millis(network.delay_ms),
            network.cap,
            network.tls.then_some(&self.trust.ca),
        )
    }

    /// Runs every repetition of `scenario`, printing each run.
    pub fn run(&mut self, scenario: &Scenario) -> Result<ScenarioRuns> {
        let description = scenario.describe(&self.sizes);
        println!("\n== {}: {description}", scenario.name);
        let (seed_dir, content) = self.seed(scenario.kind)?;
        let layout_source = Endpoint::Layout {
            dir: seed_dir.clone(),
            tag: TAG.into(),
        };
        let source = match scenario.kind {
            kind if kind.reads_layout() => Source::Layout(layout_source),
            _ => {
                let registry = self.start_registry(scenario.network)?;
                let endpoint = Endpoint::Registry {
                    host: registry.addr(),
                    repo: "src/app".into(),
                    tag: TAG.into(),
                };
                let floor = self.floor(scenario.network)?;
                self.rt
                    .block_on(floor.copy(&layout_source, &endpoint))
                    .context("push the source image")?;
                registry.proxy.take();
                Source::Registry(Box::new(registry), endpoint)
            }
        };
        let caches = self.work.join("caches").join(&scenario.name);
        let mut runs: BTreeMap<Tool, ToolRuns> = scenario
            .tools
            .iter()
            .map(|&tool| {
                let skipped = self.skip_reason(scenario, tool);
                if let Some(why) = &skipped {
                    println!("  {tool}: skipped: {why}");
                }
                (
                    tool,
                    ToolRuns {
                        tool,
                        samples: Vec::new(),
                        error: None,
                        skipped,
                    },
                )
            })
            .collect();
        if let Kind::Promotion { warm: true } = scenario.kind {
            for &tool in &scenario.tools {
                if runs[&tool].skipped.is_some() {
                    continue;
                }
                let dst = self.destination(scenario, &source, tool, "warm")?;
                let cache = caches.join(tool.to_string());
                let label = format!("{}-{tool}-prime", scenario.name);
                let command = self.command(
                    tool,
                    scenario.network,
                    source.endpoint(),
                    dst.endpoint(),
                    &cache,
                    false,
                )?;
                if let Err(e) = measure::run(&self.programs.bench, command, &self.logs, &label) {
                    runs.get_mut(&tool).expect("tool").error = Some(format!("{e:#}"));
                }
            }
        }
        for rep in 0..self.reps_of(scenario) {
            let n = scenario.tools.len();
            for i in 0..n {
                let tool = scenario.tools[(i + rep) % n];
                if runs[&tool].error.is_some() || runs[&tool].skipped.is_some() {
                    continue;
                }
                let warm = matches!(scenario.kind, Kind::Promotion { warm: true });
                let cache = if warm {
                    caches.join(tool.to_string())
                } else {
                    caches.join(format!("{tool}-{rep}"))
                };
                let cold = matches!(scenario.kind, Kind::Promotion { warm: false });
                settle_disk();
                let result = self.one(scenario, &source, tool, rep, &cache, cold, &content);
                let entry = runs.get_mut(&tool).expect("tool");
                match result {
                    Ok(sample) => {
                        println!(
                            "  rep {} {:<10} wall {:>8.3} s  cpu {:>8.3} s  rss {:>6.1} MiB  requests {:>5} (log {:>5}, at destination {:>5})  uploaded {:>12} B  connections {:>3} {}",
                            rep + 1,
                            tool.to_string(),
                            sample.usage.wall.as_secs_f64(),
                            sample.usage.cpu.as_secs_f64(),
                            sample.usage.max_rss as f64 / f64::from(1 << 20),
                            sample.requests,
                            sample.log_requests,
                            sample.dst_requests,
                            sample.uploaded,
                            sample.connections,
                            sample.protocols.join("+")
                        );
                        entry.samples.push(sample);
                    }
                    Err(e) => {
                        println!("  rep {} {tool}: FAILED: {e:#}", rep + 1);
                        entry.error = Some(format!("{e:#}"));
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&caches);
        Ok(ScenarioRuns {
            scenario: scenario.clone(),
            description,
            content,
            runs: scenario
                .tools
                .iter()
                .map(|t| runs.remove(t).expect("tool"))
                .collect(),
        })
    }

    /// One measured run of `tool` into a fresh destination.
    #[allow(clippy::too_many_arguments)]
    fn one(
        &mut self,
        scenario: &Scenario,
        source: &Source,
        tool: Tool,
        rep: usize,
        cache: &Path,
        cold: bool,
        content: &Generated,
    ) -> Result<Sample> {
        let dst = self.destination(scenario, source, tool, &format!("{}", rep + 1))?;
        let network = scenario.network;
        let command = self.command(
            tool,
            network,
            source.endpoint(),
            dst.endpoint(),
            cache,
            cold,
        )?;
        let src_registry = match source {
            Source::Registry(r, _) => Some(r),
            Source::Layout(_) => None,
        };
        let dst_registry = match &dst {
            Destination::Registry(r, _) => Some(r),
            _ => None,
        };
        let marks: Vec<usize> = src_registry.iter().map(|r| r.registry.mark()).collect();
        for r in src_registry.iter().chain(dst_registry.iter()) {
            r.proxy.take();
        }
        let label = format!("{}-{tool}-{}", scenario.name, rep + 1);
        measure::settle();
        let usage = measure::run(&self.programs.bench, command, &self.logs, &label)?;
        let mut exchanges: Vec<Arc<Exchange>> = Vec::new();
        let mut logged = Vec::new();
        let (mut connections, mut sent) = (0, 0);
        let mut dst_requests = 0;
        for (r, mark) in src_registry.iter().zip(&marks) {
            let seen = r.proxy.take();
            let log = r.registry.requests_since(*mark);
            if dst_registry.is_none() {
                // A promotion: the source is the destination.
                dst_requests += if network.tls {
                    log.len()
                } else {
                    seen.exchanges.len()
                };
            }
            (connections, sent) = (connections + seen.connections, sent + seen.sent);
            exchanges.extend(seen.exchanges);
            logged.extend(log);
        }
        if let Some(r) = dst_registry {
            let seen = r.proxy.take();
            let log = r.registry.requests();
            dst_requests += if network.tls {
                log.len()
            } else {
                seen.exchanges.len()
            };
            (connections, sent) = (connections + seen.connections, sent + seen.sent);
            exchanges.extend(seen.exchanges);
            logged.extend(log);
        }
        self.check_destination(&dst, network, content)
            .with_context(|| format!("{tool} left a wrong destination"))?;
        if let Destination::Layout(Endpoint::Layout { dir, .. }) = &dst {
            let _ = std::fs::remove_dir_all(dir);
        }
        let mut fetches: HashMap<String, usize> = HashMap::new();
        if network.tls {
            // Over TLS the proxy sees no request: the registries' access logs count them.
            for r in &logged {
                if r.method == "GET"
                    && let Some((_, digest)) = r.path.rsplit_once("/blobs/")
                    && digest.starts_with("sha256:")
                {
                    *fetches.entry(digest.to_string()).or_default() += 1;
                }
            }
        } else {
            for e in &exchanges {
                if let Some(d) = e.blob_get() {
                    *fetches.entry(d.to_string()).or_default() += 1;
                }
            }
        }
        let mut protocols: Vec<String> = logged
            .iter()
            .map(|r| r.protocol.clone())
            .filter(|p| !p.is_empty())
            .collect();
        protocols.sort();
        protocols.dedup();
        if !network.tls {
            // Clients speak to the HTTP proxy, which speaks HTTP/1.1 to the registry.
            protocols = vec!["HTTP/1.1".into()];
        }
        Ok(Sample {
            usage,
            requests: if network.tls {
                logged.len()
            } else {
                exchanges.len()
            },
            log_requests: logged.len(),
            uploaded: if network.tls {
                sent
            } else {
                exchanges
                    .iter()
                    .filter(|e| e.is_upload())
                    .map(|e| e.request_bytes.load(std::sync::atomic::Ordering::Relaxed))
                    .sum()
            },
            max_fetches: fetches.values().copied().max().unwrap_or(0),
            dst_requests,
            connections,
            protocols,
        })
    }

    /// A fresh destination for one run.
    fn destination(
        &mut self,
        scenario: &Scenario,
        source: &Source,
        tool: Tool,
        run: &str,
    ) -> Result<Destination> {
        let n = self.next();
        Ok(match scenario.kind {
            Kind::Promotion { .. } => {
                let Source::Registry(registry, _) = source else {
                    bail!("a promotion needs a registry source");
                };
                Destination::Repository(Endpoint::Registry {
                    host: registry.addr(),
                    repo: format!("promoted/{tool}-{run}-{n}"),
                    tag: TAG.into(),
                })
            }
            kind if kind.writes_layout() => Destination::Layout(Endpoint::Layout {
                dir: self
                    .work
                    .join("destinations")
                    .join(format!("{}-{tool}-{run}-{n}", scenario.name)),
                tag: TAG.into(),
            }),
            _ => {
                let registry = self.start_registry(scenario.network.destination())?;
                let endpoint = Endpoint::Registry {
                    host: registry.addr(),
                    repo: "dst/app".into(),
                    tag: TAG.into(),
                };
                Destination::Registry(Box::new(registry), endpoint)
            }
        })
    }

    /// The command line of `tool` copying `src` to `dst` over `network`.
    fn command(
        &self,
        tool: Tool,
        network: Network,
        src: &Endpoint,
        dst: &Endpoint,
        cache: &Path,
        cold: bool,
    ) -> Result<Command> {
        std::fs::create_dir_all(cache)?;
        let p = &self.programs;
        Ok(match tool {
            Tool::Ferry | Tool::FerryVerifying | Tool::FerryTrusting | Tool::FerryChunked => {
                let mut c = Command::new(&p.ferry);
                c.args(["cp", &src.to_string(), &dst.to_string(), "-q"]);
                if network.tls {
                    c.arg("--ca-cert").arg(&self.trust.ca_file);
                } else {
                    c.arg("--plain-http");
                }
                if tool == Tool::FerryVerifying {
                    c.arg("--verify-uploads");
                }
                if tool == Tool::FerryTrusting {
                    c.arg("--trust-source-storage");
                }
                if tool == Tool::FerryChunked {
                    c.env("FERRY_CHUNK_THRESHOLD", "1");
                }
                if cold {
                    c.arg("--no-cache");
                }
                c.env("XDG_CACHE_HOME", cache);
                c
            }
            Tool::Skopeo => {
                let skopeo_ref = |e: &Endpoint| match e {
                    Endpoint::Registry { .. } => format!("docker://{e}"),
                    Endpoint::Layout { .. } => e.to_string(),
                };
                let mut args: Vec<String> = vec![
                    "--insecure-policy".into(),
                    "copy".into(),
                    "-q".into(),
                    "--all".into(),
                    "--preserve-digests".into(),
                    "--dest-oci-accept-uncompressed-layers".into(),
                ];
                if network.tls {
                    let dir = self.trust.cert_dir.display().to_string();
                    for side in ["src", "dest"] {
                        if matches!(
                            if side == "src" { src } else { dst },
                            Endpoint::Registry { .. }
                        ) {
                            args.push(format!("--{side}-cert-dir={dir}"));
                        }
                    }
                } else {
                    args.push("--src-tls-verify=false".into());
                    args.push("--dest-tls-verify=false".into());
                }
                args.push(skopeo_ref(src));
                args.push(skopeo_ref(dst));
                skopeo_with_cache(&p.skopeo, cache, &args)
            }
            Tool::Crane | Tool::Regctl | Tool::Oras => {
                self.peer_command(tool, network, src, dst, cache)?
            }
            Tool::OciClient => {
                let mut c = Command::new(&p.oci_client);
                if network.tls {
                    c.arg("--ca-cert").arg(&self.trust.ca_file);
                }
                c.args([src.to_string(), dst.to_string()]);
                c
            }
            Tool::Floor => {
                let mut c = Command::new(&p.bench);
                c.args(["floor".to_string(), src.to_string(), dst.to_string()]);
                if network.tls {
                    c.arg("--ca-cert").arg(&self.trust.ca_file);
                }
                c
            }
        })
    }

    /// The command line of a Go peer (crane, regctl, oras) copying `src` to `dst`, as its
    /// documentation runs it: over plain HTTP with its plain-HTTP flags, over TLS trusting the
    /// harness's CA through `SSL_CERT_FILE` (Go reads it on Linux), its `HOME` in `cache` so no
    /// configuration or credentials of the machine's are read.
    fn peer_command(
        &self,
        tool: Tool,
        network: Network,
        src: &Endpoint,
        dst: &Endpoint,
        cache: &Path,
    ) -> Result<Command> {
        let binary = self
            .programs
            .peers
            .get(&tool)
            .with_context(|| format!("`{tool}` is missing"))?;
        let mut c = Command::new(binary);
        c.env("HOME", cache);
        for key in ["DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR"] {
            c.env_remove(key);
        }
        if network.tls {
            c.env("SSL_CERT_FILE", &self.trust.ca_file);
        }
        let plain = !network.tls;
        let registry = |e: &Endpoint| matches!(e, Endpoint::Registry { .. });
        match tool {
            Tool::Crane => {
                let (registry_src, registry_dst) = (registry(src), registry(dst));
                match (src, dst) {
                    (Endpoint::Registry { .. }, Endpoint::Layout { dir, .. }) => {
                        c.args(["pull", "--format", "oci", &src.to_string()])
                            .arg(dir);
                    }
                    (Endpoint::Layout { dir, .. }, Endpoint::Registry { .. }) => {
                        c.arg("push").arg(dir).arg(dst.to_string());
                    }
                    _ if registry_src && registry_dst => {
                        c.args(["copy", &src.to_string(), &dst.to_string()]);
                    }
                    _ => bail!("crane copies no layout → layout"),
                }
                if plain {
                    c.arg("--insecure");
                }
            }
            Tool::Regctl => {
                let name = |e: &Endpoint| match e {
                    Endpoint::Registry { .. } => e.to_string(),
                    Endpoint::Layout { dir, tag } => format!("ocidir://{}:{tag}", dir.display()),
                };
                for e in [src, dst] {
                    if let Endpoint::Registry { host, .. } = e {
                        let tls = if plain { "disabled" } else { "enabled" };
                        c.arg("--host").arg(format!("reg={host},tls={tls}"));
                    }
                }
                c.args(["image", "copy", &name(src), &name(dst)]);
            }
            Tool::Oras => {
                let name = |e: &Endpoint| match e {
                    Endpoint::Registry { .. } => e.to_string(),
                    Endpoint::Layout { dir, tag } => format!("{}:{tag}", dir.display()),
                };
                c.arg("cp");
                for (side, e) in [("from", src), ("to", dst)] {
                    if !registry(e) {
                        c.arg(format!("--{side}-oci-layout"));
                    } else if plain {
                        c.arg(format!("--{side}-plain-http"));
                    }
                }
                c.args([name(src), name(dst)]);
            }
            _ => bail!("`{tool}` is not a Go peer"),
        }
        Ok(c)
    }

    /// Checks that the destination holds the source's root under the tag.
    fn check_destination(
        &self,
        dst: &Destination,
        network: Network,
        content: &Generated,
    ) -> Result<()> {
        let found = match dst {
            Destination::Repository(Endpoint::Registry { host, repo, tag })
            | Destination::Registry(_, Endpoint::Registry { host, repo, tag }) => {
                // Through the proxy: its log was already read for this run.
                let floor = self.floor(network)?;
                self.rt.block_on(floor.head_digest(host, repo, tag))?
            }
            Destination::Layout(Endpoint::Layout { dir, tag }) => {
                let index: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(dir.join("index.json"))?)?;
                let entries: Vec<&serde_json::Value> = index["manifests"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .collect();
                // The entry the tag names; crane's `pull --format oci` names none, so its one
                // entry.
                entries
                    .iter()
                    .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag.as_str())
                    .or(match entries.as_slice() {
                        [only] => Some(only),
                        _ => None,
                    })
                    .and_then(|m| m["digest"].as_str())
                    .unwrap_or_default()
                    .to_string()
            }
            _ => bail!("a destination of an unexpected kind"),
        };
        if found != content.root.digest {
            bail!(
                "the destination's `{TAG}` is `{found}`, not the source's `{}`",
                content.root.digest
            );
        }
        Ok(())
    }
}

/// skopeo with its blob-info cache in `cache`. As root skopeo always uses
/// `/var/lib/containers/cache`, so it runs in a private mount namespace where `cache` is
/// bind-mounted there; otherwise `XDG_DATA_HOME` points it at `cache`.
pub(crate) fn skopeo_with_cache(skopeo: &Path, cache: &Path, args: &[String]) -> Command {
    // `/proc/self` belongs to the effective user.
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if root {
        let _ = std::fs::create_dir_all(SKOPEO_SYSTEM_CACHE);
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind \"$0\" {SKOPEO_SYSTEM_CACHE} && exec \"$@\""
            ))
            .arg(cache)
            .arg(skopeo)
            .args(args);
        c
    } else {
        let mut c = Command::new(skopeo);
        c.args(args).env("XDG_DATA_HOME", cache);
        c
    }
}

/// Writes the machine's dirty data back before a measured run (`sync`, untimed), so that no
/// run shares the disk with the writeback of what the seeding or the run before it wrote (a
/// 4 GiB source is pushed just before the first run).
fn settle_disk() {
    if let Err(e) = std::process::Command::new("sync").status() {
        eprintln!("`sync` failed ({e}); runs may share the disk with earlier writes");
    }
}
