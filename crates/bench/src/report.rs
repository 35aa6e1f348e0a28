//! Medians, ratios, target checks and the Markdown report.

use std::fmt::Write as _;
use std::time::Duration;

use crate::runner::{ScenarioRuns, ToolRuns};
use crate::scenario::{Target, Tool, human};

/// Medians of one tool's runs (peak RSS and fetches: the largest).
#[derive(Debug, Clone)]
pub struct Summary {
    /// Median wall time.
    pub wall: Duration,
    /// Median CPU time.
    pub cpu: Duration,
    /// Largest peak RSS.
    pub rss: u64,
    /// Median requests through the proxies.
    pub requests: usize,
    /// Median requests in the access logs.
    pub log_requests: usize,
    /// Median uploaded bytes.
    pub uploaded: u64,
    /// Largest number of GETs of one blob.
    pub max_fetches: usize,
    /// Median requests at the destination registry.
    pub dst_requests: usize,
    /// Median TCP connections to the registries.
    pub connections: u64,
    /// The HTTP versions the registries saw, in any run.
    pub protocols: Vec<String>,
}

fn median<T: Copy + Ord>(mut values: Vec<T>) -> T {
    values.sort();
    values[values.len() / 2]
}

/// The summary of `runs`, when at least one run succeeded.
pub fn summarize(runs: &ToolRuns) -> Option<Summary> {
    let s = &runs.samples;
    if s.is_empty() {
        return None;
    }
    Some(Summary {
        wall: median(s.iter().map(|x| x.usage.wall).collect()),
        cpu: median(s.iter().map(|x| x.usage.cpu).collect()),
        rss: s.iter().map(|x| x.usage.max_rss).max().unwrap_or(0),
        requests: median(s.iter().map(|x| x.requests).collect()),
        log_requests: median(s.iter().map(|x| x.log_requests).collect()),
        uploaded: median(s.iter().map(|x| x.uploaded).collect()),
        max_fetches: s.iter().map(|x| x.max_fetches).max().unwrap_or(0),
        dst_requests: median(s.iter().map(|x| x.dst_requests).collect()),
        connections: median(s.iter().map(|x| x.connections).collect()),
        protocols: {
            let mut p: Vec<String> = s.iter().flat_map(|x| x.protocols.clone()).collect();
            p.sort();
            p.dedup();
            p
        },
    })
}

fn summary_of(sr: &ScenarioRuns, tool: Tool) -> Option<Summary> {
    sr.runs.iter().find(|r| r.tool == tool).and_then(summarize)
}

/// The peer with the least median wall time in `sr`, and its summary.
pub fn fastest_peer(sr: &ScenarioRuns) -> Option<(Tool, Summary)> {
    sr.runs
        .iter()
        .filter(|r| r.tool.is_peer())
        .filter_map(|r| summarize(r).map(|s| (r.tool, s)))
        .min_by_key(|(_, s)| s.wall)
}

/// Per repetition, the fastest peer's wall ÷ ferry's in that repetition (the repetitions in
/// which ferry and at least one peer ran).
fn ratios_per_run(sr: &ScenarioRuns) -> Vec<(usize, f64)> {
    let Some(ferry) = sr.runs.iter().find(|r| r.tool == Tool::Ferry) else {
        return Vec::new();
    };
    ferry
        .samples
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let best = sr
                .runs
                .iter()
                .filter(|r| r.tool.is_peer())
                .filter_map(|r| r.samples.get(i))
                .map(|s| s.usage.wall)
                .min()?;
            Some((i + 1, ratio(best, f.usage.wall)))
        })
        .collect()
}

/// One target of one scenario, checked.
#[derive(Debug, Clone)]
pub struct Check {
    /// The scenario's name.
    pub scenario: String,
    /// The target.
    pub target: String,
    /// What was measured.
    pub measured: String,
    /// Whether ferry met it (`None`: not measurable, a tool failed).
    pub met: Option<bool>,
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

/// Checks ferry's targets in `sr`.
pub fn checks(sr: &ScenarioRuns) -> Vec<Check> {
    let ferry = summary_of(sr, Tool::Ferry);
    let skopeo = summary_of(sr, Tool::Skopeo);
    let floor = summary_of(sr, Tool::Floor);
    let peer = fastest_peer(sr);
    sr.scenario
        .targets
        .iter()
        .map(|target| {
            let (measured, met) = match (*target, ferry.clone(), skopeo.clone(), floor.clone()) {
                (Target::PeerWallRatio(min), Some(f), _, _) if peer.is_some() => {
                    let (tool, p) = peer.clone().expect("a peer");
                    let r = ratio(p.wall, f.wall);
                    (format!("{r:.2}× ({tool})"), Some(r >= min))
                }
                (Target::PeerWallRatioEveryRun(min), Some(_), _, _) if peer.is_some() => {
                    let per_run = ratios_per_run(sr);
                    let worst = per_run.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1));
                    match worst {
                        Some((rep, r)) => {
                            let all: Vec<String> =
                                per_run.iter().map(|(_, r)| format!("{r:.2}")).collect();
                            (
                                format!(
                                    "lowest {r:.2}× (repetition {rep}; all: {})",
                                    all.join(", ")
                                ),
                                Some(r >= min),
                            )
                        }
                        None => ("not measured (no repetition with a peer)".into(), None),
                    }
                }
                (Target::SkopeoWallRatio(min), Some(f), Some(s), _) => {
                    let r = ratio(s.wall, f.wall);
                    (format!("{r:.2}×"), Some(r >= min))
                }
                (Target::CpuRatio(min), Some(f), Some(s), _) => {
                    let r = ratio(s.cpu, f.cpu);
                    (format!("{r:.2}×"), Some(r >= min))
                }
                (Target::WithinFloor(p), Some(f), _, Some(fl)) => {
                    let over = ratio(f.wall, fl.wall) - 1.0;
                    (format!("{:+.1}%", over * 100.0), Some(over <= p))
                }
                (Target::RequestsAtMostBlobsPlus(n), Some(f), _, _) => {
                    let limit = sr.content.blobs.len() + n;
                    (
                        format!("{} (limit {limit})", f.requests),
                        Some(f.requests <= limit),
                    )
                }
                (Target::MaxRss(limit), Some(f), _, _) => (
                    format!("{:.1} MiB", f.rss as f64 / f64::from(1 << 20)),
                    Some(f.rss <= limit),
                ),
                (Target::FetchedOnce, Some(f), _, _) => (
                    format!("at most {} GET per blob", f.max_fetches),
                    Some(f.max_fetches <= 1),
                ),
                (Target::DestinationRequestsAtMost(limit), Some(f), _, _) => (
                    format!("{} (limit {limit})", f.dst_requests),
                    Some(f.dst_requests <= limit),
                ),
                _ => ("not measured (a tool failed)".into(), None),
            };
            Check {
                scenario: sr.scenario.name.clone(),
                target: target.to_string(),
                measured,
                met,
            }
        })
        .collect()
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.3} s")
    } else {
        format!("{s:.2} s")
    }
}

/// `https h2, 50 ms`: how the registries were reached and which HTTP versions the tool spoke.
fn transport(sr: &ScenarioRuns, s: &Summary) -> String {
    if !sr.scenario.kind.uses_registry() {
        return "none (layouts)".into();
    }
    let network = sr.scenario.network;
    let versions: Vec<&str> = s
        .protocols
        .iter()
        .map(|p| match p.as_str() {
            "HTTP/2.0" => "h2",
            "HTTP/1.1" => "h1.1",
            other => other,
        })
        .collect();
    let mut out = if network.tls { "https" } else { "http" }.to_string();
    if !versions.is_empty() {
        out.push(' ');
        out.push_str(&versions.join("+"));
    }
    if network.delay_ms > 0 {
        out.push_str(&format!(", {} ms", network.delay_ms));
    }
    out
}

/// The result rows of one scenario (Markdown table rows, no header).
pub fn rows(sr: &ScenarioRuns) -> String {
    let ferry = summary_of(sr, Tool::Ferry);
    let mut out = String::new();
    for runs in &sr.runs {
        let name = &sr.scenario.name;
        match summarize(runs) {
            Some(s) => {
                let vs = |a: Duration, f: Option<Duration>| match f {
                    Some(f) => format!("{:.2}×", ratio(a, f)),
                    None => "–".into(),
                };
                let log = if s.log_requests == s.requests {
                    format!("{}", s.requests)
                } else {
                    format!("{} (log {})", s.requests, s.log_requests)
                };
                let _ = writeln!(
                    out,
                    "| {name} | {} | {} | {} | {} | {:.1} MiB | {log} | {} | {} | {} | {} | {} |",
                    transport(sr, &s),
                    runs.tool,
                    secs(s.wall),
                    secs(s.cpu),
                    s.rss as f64 / f64::from(1 << 20),
                    s.dst_requests,
                    s.connections,
                    human(s.uploaded),
                    vs(s.wall, ferry.as_ref().map(|f| f.wall)),
                    vs(s.cpu, ferry.as_ref().map(|f| f.cpu)),
                );
            }
            None => {
                let (what, why) = match (&runs.skipped, &runs.error) {
                    (Some(why), _) => ("skipped", why.as_str()),
                    (None, Some(why)) => ("failed", why.as_str()),
                    (None, None) => ("failed", "no run"),
                };
                let why = why.replace('|', "/").replace('\n', " ");
                let why: String = why.chars().take(240).collect();
                let _ = writeln!(
                    out,
                    "| {name} | {} | {} | {what}: {why} | | | | | | | | |",
                    sr.scenario.network, runs.tool
                );
            }
        }
    }
    out
}

/// The header of the results table.
pub const RESULTS_HEADER: &str = "| scenario | transport | tool | wall (median) | CPU user+sys (median) | peak RSS (max) | requests | at destination | connections | uploaded | wall ÷ ferry | CPU ÷ ferry |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";

/// What the report says about where and how it ran.
#[derive(Debug, Clone)]
pub struct Meta {
    /// The command line.
    pub command: String,
    /// Lines about the machine.
    pub machine: Vec<String>,
    /// Lines about the tools' versions.
    pub versions: Vec<String>,
    /// Repetitions per tool.
    pub reps: usize,
}

const BEGIN: &str = "<!-- ferry-bench: begin -->";
const END: &str = "<!-- ferry-bench: end -->";

/// Writes `report` into `path`: between the markers when the file has them, so what is written
/// around them by hand (what each change bought, the analysis of a run, the sync section) stays;
/// else as the whole file.
pub fn write(path: &std::path::Path, report: &str) -> std::io::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{BEGIN}\n{report}{END}\n");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if e > b => {
            let rest = old[e + END.len()..].trim_start_matches('\n');
            let gap = if rest.is_empty() { "" } else { "\n" };
            format!("{}{block}{gap}{rest}", &old[..b])
        }
        _ => block,
    };
    std::fs::write(path, new)
}

/// The headline table: per scenario, ferry's median wall beside the fastest peer's and the
/// floor's.
pub fn headline(results: &[ScenarioRuns]) -> String {
    let mut o = String::from(
        "| scenario | transport | ferry | fastest peer | **fastest peer ÷ ferry** | floor | ferry ÷ floor |\n|---|---|---:|---|---:|---:|---:|\n",
    );
    for sr in results {
        let Some(f) = summary_of(sr, Tool::Ferry) else {
            continue;
        };
        let (peer, ratio_text) = match fastest_peer(sr) {
            Some((tool, p)) => (
                format!("{tool} {}", secs(p.wall)),
                format!("**{:.2}×**", ratio(p.wall, f.wall)),
            ),
            None => ("–".into(), "–".into()),
        };
        let (floor, over) = match summary_of(sr, Tool::Floor) {
            Some(fl) => (secs(fl.wall), format!("{:.2}", ratio(f.wall, fl.wall))),
            None => ("–".into(), "–".into()),
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {peer} | {ratio_text} | {floor} | {over} |",
            sr.scenario.name,
            transport(sr, &f),
            secs(f.wall)
        );
    }
    o
}

/// The whole Markdown report.
pub fn markdown(results: &[ScenarioRuns], meta: &Meta) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Benchmarks\n");
    let _ = writeln!(
        o,
        "ferry against its peers, crane, regctl, oras and skopeo (and, where they stream, the \
         `oci-client` crate and a minimal client, the floor) on the same work. Generated by \
         `ferry-bench`; run it again with:\n"
    );
    let _ = writeln!(o, "```console\n$ {}\n```\n", meta.command);
    let _ = writeln!(o, "## Headline: the fastest peer ÷ ferry\n");
    let _ = writeln!(
        o,
        "Median wall times; above 1× ferry is faster than every peer. The floor is the least a \
         copy over HTTP costs here (below).\n"
    );
    o.push_str(&headline(results));
    let _ = writeln!(o);
    let _ = writeln!(o, "## Targets\n");
    let _ = writeln!(
        o,
        "| scenario | target | measured | met |\n|---|---|---:|:---:|"
    );
    for sr in results {
        for c in checks(sr) {
            let met = match c.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {met} |",
                c.scenario, c.target, c.measured
            );
        }
    }
    let _ = writeln!(o, "\n## Results\n");
    let _ = writeln!(
        o,
        "Median of {} runs per tool ({} for the big blobs and the scale indexes, which take \
         seconds per run; at most 3 for the 4 GiB blob), tools alternating, each run into a \
         fresh destination, each started once the machine's dirty data is written back \
         (`sync`, untimed). `wall ÷ ferry` and `CPU ÷ ferry` are each tool's ratios to \
         ferry.\n",
        meta.reps * 2 + 1,
        meta.reps
    );
    for sr in results {
        let _ = writeln!(
            o,
            "- **{}**: {} ({} blobs, {} in all)",
            sr.scenario.name,
            sr.description,
            sr.content.blobs.len(),
            human(sr.content.blob_bytes())
        );
    }
    let _ = writeln!(o);
    o.push_str(RESULTS_HEADER);
    for sr in results {
        o.push_str(&rows(sr));
    }
    let scale: Vec<&ScenarioRuns> = results
        .iter()
        .filter(|sr| matches!(sr.scenario.kind, crate::scenario::Kind::Scale { .. }))
        .collect();
    if !scale.is_empty() {
        let _ = writeln!(o, "\n### Scale\n");
        let _ = writeln!(
            o,
            "| scenario | blobs (pool + configs) | manifests | ferry wall | ferry per blob | skopeo wall | skopeo per blob | ferry requests at destination | skopeo requests at destination | ferry max GETs of one blob |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for sr in scale {
            let blobs = sr.content.blobs.len();
            let per = |s: Option<Summary>| match s {
                Some(s) => (
                    secs(s.wall),
                    format!("{:.2} ms", s.wall.as_secs_f64() * 1000.0 / blobs as f64),
                ),
                None => ("–".into(), "–".into()),
            };
            let ferry = summary_of(sr, Tool::Ferry);
            let skopeo = summary_of(sr, Tool::Skopeo);
            let (fw, fp) = per(ferry.clone());
            let (sw, sp) = per(skopeo.clone());
            let at_dst = |s: &Option<Summary>| {
                s.as_ref()
                    .map(|s| s.dst_requests.to_string())
                    .unwrap_or("–".into())
            };
            let _ = writeln!(
                o,
                "| {} | {blobs} | {} | {fw} | {fp} | {sw} | {sp} | {} | {} | {} |",
                sr.scenario.name,
                sr.content.manifests + 1,
                at_dst(&ferry),
                at_dst(&skopeo),
                ferry
                    .map(|f| f.max_fetches.to_string())
                    .unwrap_or("–".into())
            );
        }
    }
    let _ = writeln!(o, "\n## Machine\n");
    for line in &meta.machine {
        let _ = writeln!(o, "- {line}");
    }
    let _ = writeln!(o, "\n## Versions\n");
    for line in &meta.versions {
        let _ = writeln!(o, "- {line}");
    }
    o.push_str(METHOD);
    o
}

const METHOD: &str = r#"
## Method

- Registries: CNCF distribution 2.8 (`docker-registry`) on 127.0.0.1, filesystem storage in a
  temporary directory, one per source and a fresh one for every run whose destination is a
  registry. Promotions go to a fresh repository of the source registry.
- Transports, in the `transport` column: `http` is plain HTTP on loopback; `http, 10 ms` the
  same with 10 ms per request; `https` is TLS on loopback; `https, 50 ms` TLS with 50 ms per
  round trip; `none (layouts)` where no registry takes part. The column also names the HTTP
  versions the tool spoke (`h2`, `h1.1`, or both; over TLS from the registry's access log).
- Plain HTTP: every registry sits behind the harness's HTTP proxy (hyper, in process), which
  counts requests and body bytes; `http.host` is the proxy's URL, so upload `Location`s lead
  back through it. `requests` counts what the proxies saw (the registry access logs agree
  unless a `(log N)` is shown); `uploaded` is the request body bytes sent to
  `/blobs/uploads/`. In the distant scenarios the proxy waits 10 ms before forwarding each
  request.
- TLS: the harness makes a certificate authority for the run (rcgen); every registry serves
  HTTPS with a certificate for 127.0.0.1 that this CA issued, and every tool is told to trust
  the CA, none skips verification: ferry with `--ca-cert FILE`, skopeo with
  `--src-cert-dir`/`--dest-cert-dir DIR` (the directory holds the CA as `ca.crt`), oci-client
  through its configuration (`extra_root_certificates`), the floor with `--ca-cert FILE`. The
  registry's own Go server terminates TLS and negotiates HTTP/2 by ALPN with the tools that
  offer it. In front of each registry the harness relays TCP (the bytes stay encrypted): it
  counts connections and the bytes each tool sent, so over TLS `uploaded` is every byte sent
  to the registries (TLS records of every request), and `requests` come from the registries'
  access logs.
- TLS, 50 ms: the relay delays every byte towards the registry by 50 ms, and the first bytes of
  each connection by 50 ms more (what its TCP handshake would cost): every request, TLS
  handshake and new connection costs a round trip, and an HTTP/2 flow-control window bounds a
  connection's throughput to window ÷ 50 ms, as against a far registry.
- `at destination` counts the requests the destination registry saw (in a promotion, the one
  registry's); `connections` the TCP connections the tool opened to the registries.
- Images: random bytes wrapped as uncompressed tar layers (OCI media types), written to an OCI
  layout and pushed once per scenario to its source registry.
- Before every measured run the harness calls `sync`, so the writeback of what the previous
  run wrote does not overlap the next one.
- Each tool runs as a child process of a small measuring helper (`ferry-bench __measure`), which
  takes wall time from spawn to exit and CPU time (user + system) and peak RSS from `wait4`.
  Linux counts the spawning process's memory up to `exec` into `ru_maxrss`, so the helper is
  spawned before it allocates: every peak RSS includes its baseline of about 3 MiB. skopeo runs
  inside `unshare --mount` with its blob-info cache directory bind-mounted from a per-run
  (cold) or per-scenario, primed (warm) directory; the wrapper's few milliseconds count towards
  skopeo.
- ferry: `ferry cp SRC DST -q` with `--plain-http` or `--ca-cert FILE`, its location cache
  under a fresh `XDG_CACHE_HOME` (per scenario when warm), `--no-cache` when the scenario is
  cold. Into a layout ferry hashes every byte it writes; into a registry it counts the bytes
  and the registry, which must, hashes them. `ferry --verify-uploads` is the same command with
  ferry hashing what it pushes as well, shown where a registry is written by streaming.
  `ferry --trust-source-storage` links a source layout's blobs without hashing them: shown
  beside layout → layout, where hashing the source files is most of ferry's time, to measure
  that share in the same run; the target is ferry's, which verifies.
- The peers, run as their documentation runs them, with their defaults (concurrency
  included), each with a fresh `HOME` so no configuration of the machine's is read; over TLS
  they trust the harness's CA through `SSL_CERT_FILE` (Go's way on Linux), none skips
  verification:
  - crane: `crane copy SRC DST` between registries, `crane pull --format oci SRC DIR` into a
    layout, `crane push DIR DST` from one, `--insecure` over plain HTTP; it copies no layout →
    layout, so its row there says skipped.
  - regctl: `regctl image copy SRC DST` (layouts as `ocidir://DIR:TAG`), with `--host
    reg=HOST,tls=disabled` over plain HTTP (`tls=enabled` over TLS).
  - oras: `oras cp SRC DST` with `--from-plain-http`/`--to-plain-http` over plain HTTP and
    `--from-oci-layout`/`--to-oci-layout DIR:TAG` for layouts.
  A peer whose binary is missing from the peers' directory (`--peers DIR`) is skipped with a
  note.
- Capped links (`capped-*`): the source registry is 20 ms per request away and its proxy
  writes at most 16 MB/s into each connection towards the tool (a token bucket in 16 KiB
  steps), as a CDN or a long path caps one stream; the destination (a registry, or a layout)
  is on loopback, uncapped. A tool that pulls a blob through one connection cannot go faster
  than its size ÷ 16 MB/s, printed in the scenario's description.
- skopeo: `skopeo --insecure-policy copy -q --all --preserve-digests
  --dest-oci-accept-uncompressed-layers` with `--src-tls-verify=false --dest-tls-verify=false`
  over plain HTTP, so it neither compresses layers nor rewrites manifests.
- oci-client: `oci-client-copy SRC DST` (part of this harness) walks the graph and streams
  each blob with `Client::pull_blob_stream` into `Client::push_blob_stream` (monolithic PUT),
  8 at a time, then pushes the manifests raw.
- floor: `ferry-bench floor SRC DST`, a minimal hyper client that streams each blob GET → POST →
  PUT `?digest=` with no verification and no other request, 8 at a time, with hyper's and
  rustls' defaults. Over TLS it offers HTTP/1.1 only (distribution's HTTP/2 server costs it
  30% more wall time and 70% more CPU on loopback, and far away bounds a connection's uploads
  to its 1 MiB window); `ferry-bench floor --http2` offers both. On loopback the registry's own
  ingest bounds it. Into a layout it streams each blob GET into a file, synced and renamed into
  place, hashing nothing; between two layouts it makes one hard link per blob, hashing nothing;
  either way `index.json` is written and synced last. It is the cost of the I/O alone: a copy
  that verifies what it writes adds at least the SHA-256 of every byte to it.
- After each run the harness checks that the destination's tag names the source's digest.
"#;
