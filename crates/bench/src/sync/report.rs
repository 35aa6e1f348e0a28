//! The sync section of the report: each tool's medians, the headline (the fastest peer's wall
//! over ferry's) and the targets.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};

use super::{ScenarioResult, Target, Tool, ToolRuns};
use crate::scenario::human;

/// Markers around the sync section of the report file.
pub(super) const BEGIN: &str = "<!-- ferry-bench sync: begin -->";
pub(super) const END: &str = "<!-- ferry-bench sync: end -->";

/// Medians of one tool's runs.
#[derive(Debug, Clone)]
struct Summary {
    wall: Duration,
    cpu: Duration,
    rss: u64,
    requests: usize,
    uploaded: u64,
    disk: Option<u64>,
    blob_files: Option<u64>,
    by_method: BTreeMap<String, usize>,
    registries_cpu: Duration,
    harness_cpu: Duration,
}

pub(crate) fn median<T: Copy + Ord>(mut v: Vec<T>) -> T {
    v.sort();
    v[v.len() / 2]
}

fn summarize(runs: &ToolRuns) -> Option<Summary> {
    let s = &runs.samples;
    if s.is_empty() {
        return None;
    }
    let mid = {
        let mut order: Vec<usize> = (0..s.len()).collect();
        order.sort_by_key(|&i| s[i].usage.wall);
        order[order.len() / 2]
    };
    Some(Summary {
        wall: median(s.iter().map(|x| x.usage.wall).collect()),
        cpu: median(s.iter().map(|x| x.usage.cpu).collect()),
        rss: s.iter().map(|x| x.usage.max_rss).max().unwrap_or(0),
        requests: median(s.iter().map(|x| x.requests).collect()),
        uploaded: median(s.iter().map(|x| x.uploaded).collect()),
        disk: s.iter().filter_map(|x| x.disk).max(),
        blob_files: s.iter().filter_map(|x| x.blob_files).max(),
        by_method: s[mid].by_method.clone(),
        registries_cpu: median(s.iter().map(|x| x.registries_cpu).collect()),
        harness_cpu: median(s.iter().map(|x| x.harness_cpu).collect()),
    })
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

/// The fastest of `peers` that ran, by median wall time.
fn fastest(r: &ScenarioResult, peers: &[Tool]) -> Option<(Tool, Summary)> {
    peers
        .iter()
        .filter_map(|t| Some((*t, r.runs.get(t).and_then(summarize)?)))
        .min_by_key(|(_, s)| s.wall)
}

/// "fastest peer ÷ ferry": the fastest peer's median wall over ferry's, and who it was.
pub(super) fn headline(r: &ScenarioResult) -> String {
    let ferry = r.runs.get(&Tool::Ferry).and_then(summarize);
    match (fastest(r, &Tool::PEERS), ferry) {
        (Some((peer, p)), Some(f)) => format!(
            "fastest peer ÷ ferry: {:.2}× ({peer} {:.3} s / ferry sync {:.3} s)",
            ratio(p.wall, f.wall),
            p.wall.as_secs_f64(),
            f.wall.as_secs_f64()
        ),
        (None, _) => "fastest peer ÷ ferry: no peer ran".into(),
        (_, None) => "fastest peer ÷ ferry: ferry failed".into(),
    }
}

/// Each target: (target, what was measured, met).
pub(super) fn checks(r: &ScenarioResult) -> Vec<(String, String, Option<bool>)> {
    let ferry = r.runs.get(&Tool::Ferry).and_then(summarize);
    let skopeo = r.runs.get(&Tool::Skopeo).and_then(summarize);
    let peer = fastest(r, &Tool::PEERS);
    // The sync peer with the fewest requests.
    let fewest = Tool::SYNC_PEERS
        .iter()
        .filter_map(|t| Some((*t, r.runs.get(t).and_then(summarize)?)))
        .min_by_key(|(_, s)| s.requests);
    r.scenario
        .targets
        .iter()
        .map(|t| {
            let (measured, met) = match (t, &ferry, &skopeo) {
                (Target::PeerWall(x), Some(f), _) => match &peer {
                    Some((tool, p)) => {
                        let q = ratio(p.wall, f.wall);
                        let mut measured = format!("{q:.2}× ({tool})");
                        if q < *x {
                            // What the target needs, beside what ferry's runs cannot go below
                            // on this machine: their CPU, the registries' and the harness's
                            // proxies' over the cores.
                            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                            let floor = (f.cpu + f.registries_cpu + f.harness_cpu).as_secs_f64()
                                / cores as f64;
                            let _ = write!(
                                measured,
                                "; {x}× needs ferry at {:.2} s, and the floor of its runs is \
                                 {floor:.2} s (CPU of ferry {:.2} s, of the registries {:.2} s \
                                 and of the harness's proxies {:.2} s, ÷ {cores} cores)",
                                p.wall.as_secs_f64() / x,
                                f.cpu.as_secs_f64(),
                                f.registries_cpu.as_secs_f64(),
                                f.harness_cpu.as_secs_f64(),
                            );
                            if let Some(m) = r.runs.get(&Tool::Floor).and_then(summarize) {
                                let _ = write!(
                                    measured,
                                    "; the harness's minimal client took {:.2} s with {} \
                                     requests",
                                    m.wall.as_secs_f64(),
                                    m.requests
                                );
                            }
                        }
                        (measured, Some(q >= *x))
                    }
                    None => ("no peer ran".into(), None),
                },
                (Target::PeerRequests, Some(f), _) => match &fewest {
                    Some((tool, p)) => (
                        format!("{} vs {} ({tool})", f.requests, p.requests),
                        Some(f.requests <= p.requests),
                    ),
                    None => ("neither ocync nor regsync ran".into(), None),
                },
                (Target::WallRatio(x), Some(f), Some(s)) => {
                    let q = ratio(s.wall, f.wall);
                    (format!("{q:.1}×"), Some(q >= *x))
                }
                (Target::RequestShare(x), Some(f), Some(s)) => {
                    let q = f.requests as f64 / s.requests.max(1) as f64;
                    (
                        format!("{} vs {} ({:.0}%)", f.requests, s.requests, q * 100.0),
                        Some(q <= *x),
                    )
                }
                (Target::UploadsUnique | Target::OnlyNewBlobs, Some(f), _) => {
                    let want = r.expected_uploads.unwrap_or(0);
                    (
                        format!("{} B uploaded, {} B expected", f.uploaded, want),
                        Some(f.uploaded == want),
                    )
                }
                (Target::UnchangedBound, Some(f), _) => {
                    // One catalog page per 1,000 repositories.
                    let bound = 2 * r.repos + 2 * r.tags + r.repos.div_ceil(1000);
                    (
                        format!("{} requests, bound {bound}", f.requests),
                        Some(f.requests <= bound),
                    )
                }
                (Target::DiskUnique, Some(f), _) => {
                    let files = f.blob_files.unwrap_or(0);
                    let disk = f.disk.unwrap_or(0);
                    (
                        format!(
                            "blob files {files} B for {} B unique; `du` {} (filesystem blocks and \
                             each layout's index files included){}",
                            r.corpus_bytes,
                            human(disk),
                            skopeo
                                .as_ref()
                                .and_then(|s| s.disk)
                                .map(|d| format!("; skopeo `--dest dir`: `du` {}", human(d)))
                                .unwrap_or_default()
                        ),
                        Some(files == r.corpus_bytes),
                    )
                }
                (Target::MaxRss(max), Some(f), _) => (
                    format!("{:.1} MiB", f.rss as f64 / f64::from(1 << 20)),
                    Some(f.rss <= *max),
                ),
                _ => ("a tool failed".into(), None),
            };
            (t.to_string(), measured, met)
        })
        .collect()
}

/// The table rows of one scenario.
pub(super) fn rows(r: &ScenarioResult) -> String {
    let mut out = String::new();
    for (tool, runs) in &r.runs {
        if let Some(why) = &runs.skipped {
            let _ = writeln!(
                out,
                "| {} | {tool} | skipped: {} | | | | | | | |",
                r.scenario.name,
                why.replace('|', "/")
            );
            continue;
        }
        let Some(s) = summarize(runs) else {
            let _ = writeln!(
                out,
                "| {} | {tool} | failed: {} | | | | | | | |",
                r.scenario.name,
                runs.error
                    .as_deref()
                    .or(runs.left_out.last().map(String::as_str))
                    .unwrap_or("no run")
                    .replace('|', "/")
            );
            continue;
        };
        let methods: Vec<String> = s
            .by_method
            .iter()
            .map(|(m, n)| format!("{m} {n}"))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {tool} | {:.3} s | {:.3} s | {:.2} s | {:.1} MiB | {} | {} | {} | {} |",
            r.scenario.name,
            s.wall.as_secs_f64(),
            s.cpu.as_secs_f64(),
            s.registries_cpu.as_secs_f64(),
            s.rss as f64 / f64::from(1 << 20),
            s.requests,
            methods.join(", "),
            s.uploaded,
            s.disk.map(human).unwrap_or_else(|| "—".into()),
        );
    }
    out
}

const HEADER: &str = "| scenario | tool | wall (median) | CPU (median) | registries' CPU (median) | peak RSS | requests | by method | bytes uploaded | disk |\n|---|---|---|---|---|---|---|---|---|---|\n";

pub(super) fn markdown(
    results: &[ScenarioResult],
    meta: &[String],
    quick: bool,
    took: Duration,
) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## Sync: `ferry sync`, `ocync sync`, `regsync once` and `skopeo sync`\n"
    );
    let _ = writeln!(
        md,
        "Written by `{}` in {:.0} s. Each tool syncs \
         the same corpus from a source registry (docker-registry 2.8 behind the harness's \
         counting proxy) into `mirror/`: `ferry sync --plain-http -q --file mirror.toml` (one \
         `[[sync]]` entry per repository, `SRC/team/REPO` to `DST/mirror/REPO`; into layouts, \
         `ferry sync --plain-http -q SRC/team/ oci-dir:DIR/`, the catalog listed); \
         `ocync sync -c ocync.yaml` (one mapping per repository, `http://` URLs with a static \
         token, `tags: {{glob: \"*\"}}`, `artifacts: {{enabled: false}}`; its transfer cache \
         deleted before each cold run and kept for the incremental ones, as an hourly mirror \
         keeps it); `regsync once -c regsync.yml` (one `type: repository` entry per \
         repository, `tls: disabled`, `parallel: {}` as ferry's default images in flight, its \
         own `HOME`); `skopeo sync --all --preserve-digests --src yaml --dest docker` with every \
         repository listed (skopeo has no catalog mode). skopeo's blob-info cache and ferry's \
         location cache are warm from an unmeasured sync of their own. The destination is \
         checked after every run: each tag's digest equals the source's. Requests are every \
         request through the proxies of both registries; bytes uploaded are request bodies to \
         `/blobs/uploads/`. The `floor` rows are the harness's minimal client given the same \
         repositories, 64 requests in flight, no retry, hash or check: with nothing changed, \
         the tag lists and a `HEAD` of each tag on both sides; cold, the tag lists, every \
         manifest, each blob uploaded once into the first repository that needs it and \
         mounted into the others, then the manifests. crane, regctl and oras have no sync and \
         are not here.\n",
        crate::command_line(),
        took.as_secs_f64(),
        super::tools::REGSYNC_PARALLEL,
    );
    if quick {
        let _ = writeln!(
            md,
            "A `--quick` run: 4 repositories × 3 tags of 1/16 the sizes and 100 tags instead \
             of 1,000, to check the harness, not to compare tools.\n"
        );
    }
    for line in meta {
        let _ = writeln!(md, "- {line}");
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "The headline: the fastest peer's median wall time over ferry's (above 1: ferry is \
         faster).\n\n\
         | scenario | fastest peer | its wall | ferry's wall | fastest peer ÷ ferry | target | met |\n\
         |---|---|---|---|---|---|---|"
    );
    for r in results {
        md.push_str(&headline_row(r));
    }
    let _ = writeln!(md);
    for r in results {
        let _ = writeln!(
            md,
            "### {}\n\n{}; unique blob bytes {} ({} with manifests).\n",
            r.scenario.name, r.description, r.corpus_blobs, r.corpus_bytes
        );
        md.push_str(HEADER);
        md.push_str(&rows(r));
        let _ = writeln!(md, "\n**{}**\n", headline(r));
        for (tool, runs) in &r.runs {
            if let (Some(first), false) = (runs.left_out.first(), runs.samples.is_empty()) {
                let _ = writeln!(
                    md,
                    "- {tool}: {} of {} runs failed twice and were left out; the first: {}",
                    runs.left_out.len(),
                    runs.left_out.len() + runs.samples.len(),
                    first.replace('|', "/")
                );
            }
        }
        for (target, measured, met) in checks(r) {
            let met = match met {
                Some(true) => "met",
                Some(false) => "**missed**",
                None => "not measured",
            };
            let _ = writeln!(md, "- {target}: {measured} — {met}");
        }
        let _ = writeln!(md);
    }
    md
}

/// The headline table's row of one scenario.
fn headline_row(r: &ScenarioResult) -> String {
    let ferry = r.runs.get(&Tool::Ferry).and_then(summarize);
    let target = r.scenario.targets.iter().find_map(|t| match t {
        Target::PeerWall(x) => Some(*x),
        _ => None,
    });
    let wall = |s: &Summary| format!("{:.3} s", s.wall.as_secs_f64());
    let (peer, peer_wall, q) = match (fastest(r, &Tool::PEERS), &ferry) {
        (Some((tool, p)), Some(f)) => (tool.to_string(), wall(&p), Some(ratio(p.wall, f.wall))),
        (Some((tool, p)), None) => (tool.to_string(), wall(&p), None),
        (None, _) => ("none ran".into(), "—".into(), None),
    };
    let met = match (q, target) {
        (Some(q), Some(x)) if q >= x => "met",
        (Some(_), Some(_)) => "**missed**",
        _ => "not measured",
    };
    format!(
        "| {} | {peer} | {peer_wall} | {} | {} | {} | {met} |\n",
        r.scenario.name,
        ferry.as_ref().map(wall).unwrap_or_else(|| "failed".into()),
        q.map(|q| format!("{q:.2}×")).unwrap_or_else(|| "—".into()),
        target
            .map(|x| format!("≥ {x}×"))
            .unwrap_or_else(|| "—".into()),
    )
}

/// Replaces the section of `path` between the markers `begin` and `end`, or appends it.
pub(crate) fn write_section(path: &Path, begin: &str, end: &str, section: &str) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{begin}\n{section}{end}\n");
    let new = match (old.find(begin), old.find(end)) {
        (Some(b), Some(e)) if e > b => {
            format!(
                "{}{block}{}",
                &old[..b],
                old[e + end.len()..].trim_start_matches('\n')
            )
        }
        _ if old.is_empty() => block,
        _ => format!("{}\n{block}", old.trim_end_matches('\n').to_string() + "\n"),
    };
    std::fs::write(path, new).with_context(|| format!("write `{}`", path.display()))
}
