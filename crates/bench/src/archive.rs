//! `ferry-bench archive`: the round trip of the sync corpus (12 repositories × 6 tags) through
//! OCI archives — exported from one registry, imported into a fresh one — by ferry through a
//! file and through a pipe, by skopeo with one `oci-archive:` per image (its only way), and by
//! regctl with `image export`/`import` per image; ferry's direct `sync` beside them; and
//! ferry's delta after one tag moved upstream.
//!
//! Figures: archive bytes against the corpus's unique bytes, wall and CPU of each round trip,
//! peak RSS, the peak extra disk an import uses (each tool's `TMPDIR` sampled while it runs:
//! skopeo extracts each archive there first), and the delta's bytes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use clap::Args;
use ferry_test_support::ImageBuilder;
use ferry_test_support::fixtures::push;

use crate::measure::{self, Usage};
use crate::proxy::ProxiedRegistry;
use crate::scenario::human;
use crate::sync::{Corpus, Sizes, disk_usage, write_marked_section as write_marked};

const BEGIN: &str = "<!-- ferry-bench archive: begin -->";
const END: &str = "<!-- ferry-bench archive: end -->";

/// `ferry-bench archive`.
#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// Small sizes for a smoke run (4 repositories × 3 tags of 1/16 the sizes).
    #[arg(long)]
    pub quick: bool,
    /// Measured round trips per tool (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    pub reps: u16,
    /// The report file; its archive section (between markers) is replaced, or appended.
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
    /// The ferry binary [default: next to this one, else built with cargo].
    #[arg(long, env = "FERRY_BIN")]
    pub ferry: Option<PathBuf>,
    /// The directory of the peer binaries (regctl) [default: `../shared/peers/bin` beside
    /// the repository, else `PATH`].
    #[arg(long, env = "FERRY_PEERS")]
    pub peers: Option<PathBuf>,
    /// Working directory [default: a temporary directory].
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

/// The ways compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Way {
    FerryFile,
    FerryPipe,
    FerryDirect,
    Skopeo,
    Regctl,
}

impl std::fmt::Display for Way {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Way::FerryFile => "ferry, file",
            Way::FerryPipe => "ferry, pipe",
            Way::FerryDirect => "ferry sync (direct, no archive)",
            Way::Skopeo => "skopeo, one oci-archive per image",
            Way::Regctl => "regctl, export/import per image",
        })
    }
}

/// One round trip.
#[derive(Debug, Clone, Copy, Default)]
struct Trip {
    /// Export and import together (one process tree for a pipe).
    wall: Duration,
    cpu: Duration,
    rss: u64,
    /// Bytes of the archives written (0 for a pipe and the direct sync).
    archive: u64,
    /// The most bytes the import's `TMPDIR` held at once.
    extra_disk: u64,
    /// Bytes uploaded to the destination.
    uploaded: u64,
}

struct Bench {
    rt: tokio::runtime::Runtime,
    work: PathBuf,
    logs: PathBuf,
    bench: PathBuf,
    ferry: PathBuf,
    skopeo: PathBuf,
    regctl: Option<PathBuf>,
}

/// Runs `ferry-bench archive`.
pub fn main(args: ArchiveArgs) -> Result<()> {
    let programs = crate::programs(args.ferry.clone(), None)?;
    let regctl = crate::peers::Peers::new(args.peers.clone()).find("regctl");
    let (_temp, work, logs, mut meta) =
        crate::workspace(args.work_dir.as_deref(), "ferry-bench-archive-", &programs)?;
    meta.extend(
        regctl
            .iter()
            .map(|r| crate::peers::Peers::version_line("regctl", r)),
    );
    for line in &meta {
        println!("{line}");
    }
    let sizes = if args.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    let bench = Bench {
        rt: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?,
        work,
        logs,
        bench: programs.bench.clone(),
        ferry: programs.ferry.clone(),
        skopeo: programs.skopeo.clone(),
        regctl,
    };
    let started = Instant::now();
    let mut corpus = Corpus::shared(&sizes);
    let src = ProxiedRegistry::start(bench.rt.handle(), Duration::ZERO, None)?;
    eprintln!("pushing {} images to the source", corpus.images.len());
    bench.rt.block_on(async {
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
    let mut ways = vec![
        Way::FerryFile,
        Way::FerryPipe,
        Way::FerryDirect,
        Way::Skopeo,
    ];
    if bench.regctl.is_some() {
        ways.push(Way::Regctl);
    }
    let mut trips: BTreeMap<Way, Vec<Trip>> = BTreeMap::new();
    let mut errors: BTreeMap<Way, String> = BTreeMap::new();
    for rep in 0..usize::from(args.reps) {
        for i in 0..ways.len() {
            let way = ways[(i + rep) % ways.len()];
            if errors.contains_key(&way) {
                continue;
            }
            match bench.trip(way, &src, &corpus, rep) {
                Ok(t) => {
                    println!(
                        "  rep {} {:<36} wall {:>8.3} s  cpu {:>8.3} s  rss {:>6.1} MiB  archive {:>12} B  extra disk {:>11} B  uploaded {:>11} B",
                        rep + 1,
                        way.to_string(),
                        t.wall.as_secs_f64(),
                        t.cpu.as_secs_f64(),
                        t.rss as f64 / f64::from(1 << 20),
                        t.archive,
                        t.extra_disk,
                        t.uploaded
                    );
                    trips.entry(way).or_default().push(t);
                }
                Err(e) => {
                    println!("  rep {} {way}: FAILED: {e:#}", rep + 1);
                    errors.insert(way, format!("{e:#}"));
                }
            }
        }
    }
    let delta = bench.delta(&src, &mut corpus, sizes.own_layer)?;
    println!(
        "  delta after one moved tag: {} B archive, {} B of new blobs",
        delta.0, delta.1
    );
    let section = markdown(
        &trips,
        &errors,
        &corpus,
        delta,
        &meta,
        args.quick,
        started.elapsed(),
    );
    print!("{section}");
    write_marked(&args.out, BEGIN, END, &section)?;
    println!("\nwrote the archive section of {}", args.out.display());
    Ok(())
}

impl Bench {
    fn fresh(&self) -> Result<ProxiedRegistry> {
        ProxiedRegistry::start(self.rt.handle(), Duration::ZERO, None)
    }

    fn dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.work.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Runs `script` with bash under the measuring helper, its `TMPDIR` sampled.
    fn measured(&self, script: &str, tmp: &Path, label: &str) -> Result<(Usage, u64)> {
        let mut command = Command::new("bash");
        command
            .args(["-c", &format!("set -eo pipefail; {script}")])
            .env("TMPDIR", tmp)
            .env("HOME", self.work.join("home"));
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, stop, tmp) = (peak.clone(), stop.clone(), tmp.to_path_buf());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = disk_usage(&tmp) {
                        peak.fetch_max(n, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        measure::settle();
        let usage = measure::run(&self.bench, command, &self.logs, label);
        stop.store(true, Ordering::Relaxed);
        let _ = sampler.join();
        let base = disk_usage(tmp).unwrap_or(0);
        Ok((usage?, peak.load(Ordering::Relaxed).saturating_sub(base)))
    }

    /// One round trip of `way` into a fresh registry, checked.
    fn trip(&self, way: Way, src: &ProxiedRegistry, corpus: &Corpus, rep: usize) -> Result<Trip> {
        let dst = self.fresh()?;
        let dir = self.dir(&format!("trip-{}", rep))?;
        let tmp = self.dir("tmp")?;
        let (f, from, to) = (
            self.ferry.display().to_string(),
            format!("{}/team/", src.addr()),
            format!("{}/team/", dst.addr()),
        );
        let label = format!(
            "{}-{}",
            way.to_string().replace([' ', ',', '/'], "-"),
            rep + 1
        );
        let ferry = |args: &str| format!("{f} sync --plain-http -q --no-cache {args}");
        let (export, import) = match way {
            Way::FerryFile => {
                let file = dir.join("bundle.tar");
                (
                    Some(ferry(&format!("{from} oci-archive:{}", file.display()))),
                    ferry(&format!("oci-archive:{} {to}", file.display())),
                )
            }
            Way::FerryPipe => (
                None,
                format!(
                    "{} | {}",
                    ferry(&format!("{from} oci-archive:-")),
                    ferry(&format!("oci-archive:- {to}"))
                ),
            ),
            Way::FerryDirect => (None, ferry(&format!("{from} {to}"))),
            Way::Skopeo => {
                let s = self.skopeo.display();
                let (mut out, mut back) = (String::new(), String::new());
                for (repo, tag, _) in &corpus.images {
                    let file = dir.join(format!("{repo}-{tag}.tar"));
                    let _ = write!(
                        out,
                        "{s} --insecure-policy --tmpdir \"$TMPDIR\" copy -q --preserve-digests \
                         --src-tls-verify=false docker://{}/team/{repo}:{tag} \
                         oci-archive:{}:{tag}; ",
                        src.addr(),
                        file.display()
                    );
                    let _ = write!(
                        back,
                        "{s} --insecure-policy --tmpdir \"$TMPDIR\" copy -q --preserve-digests \
                         --dest-tls-verify=false oci-archive:{}:{tag} \
                         docker://{}/team/{repo}:{tag}; ",
                        file.display(),
                        dst.addr()
                    );
                }
                (Some(out), back)
            }
            Way::Regctl => {
                let r = self
                    .regctl
                    .as_ref()
                    .context("no regctl")?
                    .display()
                    .to_string();
                let home = self.work.join("home/.regctl");
                std::fs::create_dir_all(&home)?;
                let hosts: serde_json::Map<String, serde_json::Value> = [src.addr(), dst.addr()]
                    .into_iter()
                    .map(|a| (a, serde_json::json!({"tls": "disabled"})))
                    .collect();
                std::fs::write(
                    home.join("config.json"),
                    serde_json::json!({ "hosts": hosts }).to_string(),
                )?;
                let (mut out, mut back) = (String::new(), String::new());
                for (repo, tag, _) in &corpus.images {
                    let file = dir.join(format!("{repo}-{tag}.tar"));
                    let _ = write!(
                        out,
                        "{r} image export {}/team/{repo}:{tag} {}; ",
                        src.addr(),
                        file.display()
                    );
                    let _ = write!(
                        back,
                        "{r} image import {}/team/{repo}:{tag} {}; ",
                        dst.addr(),
                        file.display()
                    );
                }
                (Some(out), back)
            }
        };
        let mut trip = Trip::default();
        if let Some(script) = export {
            let (usage, _) = self.measured(&script, &tmp, &format!("{label}-export"))?;
            add(&mut trip, usage);
            trip.archive = file_bytes(&dir)?;
        }
        dst.proxy.take();
        let (usage, extra) = self.measured(&import, &tmp, &format!("{label}-import"))?;
        add(&mut trip, usage);
        trip.extra_disk = extra;
        trip.uploaded = dst
            .proxy
            .take()
            .exchanges
            .iter()
            .filter(|e| e.is_upload())
            .map(|e| e.request_bytes.load(Ordering::Relaxed))
            .sum();
        self.check(&dst, corpus)
            .with_context(|| format!("{way} left a wrong destination"))?;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(trip)
    }

    /// Every image of the corpus at `dst` under `team/`, with its digest.
    fn check(&self, dst: &ProxiedRegistry, corpus: &Corpus) -> Result<()> {
        for (repo, tag, image) in &corpus.images {
            let url = format!("http://{}/v2/team/{repo}/manifests/{tag}", dst.addr());
            let answer = self.rt.block_on(ferry_test_support::http(
                "HEAD",
                &url,
                &[("accept", crate::floor::MANIFEST_ACCEPT)],
                Bytes::new(),
            ))?;
            let found = answer.header("docker-content-digest").unwrap_or_default();
            if found != image.manifest.digest().to_string() {
                bail!(
                    "`{repo}:{tag}` is `{found}`, not `{}`",
                    image.manifest.digest()
                );
            }
        }
        Ok(())
    }

    /// ferry's delta after the first tag moved: (the delta archive's bytes, the bytes of the
    /// moved image's new manifest, config and layer).
    fn delta(&self, src: &ProxiedRegistry, corpus: &mut Corpus, own: usize) -> Result<(u64, u64)> {
        let dst = self.fresh()?;
        let dir = self.dir("delta")?;
        let f = self.ferry.display();
        let (full, receipt, delta) = (
            dir.join("full.tar"),
            dir.join("receipt.json"),
            dir.join("delta.tar"),
        );
        let from = format!("{}/team/", src.addr());
        let to = format!("{}/team/", dst.addr());
        let run = |script: String, label: &str| -> Result<()> {
            self.measured(&script, &dir, label).map(|_| ())
        };
        run(
            format!(
                "{f} sync --plain-http -q --no-cache {from} oci-archive:{}",
                full.display()
            ),
            "delta-full-export",
        )?;
        run(
            format!(
                "{f} sync --plain-http -q --no-cache oci-archive:{} {to} --receipt {}",
                full.display(),
                receipt.display()
            ),
            "delta-full-import",
        )?;
        let (repo, tag, old) = corpus.images[0].clone();
        let mut b = ImageBuilder::new();
        for l in &old.layers[..old.layers.len() - 1] {
            b = b.shared_layer(l.clone());
        }
        let moved = b.layer(own).seed(990_000).build();
        self.rt
            .block_on(push(
                &src.registry.url(),
                &format!("team/{repo}"),
                &moved,
                Some(&tag),
                None,
            ))
            .context("move a tag")?;
        let new = moved.manifest.bytes.len()
            + moved.config.bytes.len()
            + moved.layers.last().map_or(0, |l| l.bytes.len());
        corpus.images[0].2 = moved;
        run(
            format!(
                "{f} sync --plain-http -q --no-cache {from} oci-archive:{} --delta-from {}",
                delta.display(),
                receipt.display()
            ),
            "delta-export",
        )?;
        run(
            format!(
                "{f} sync --plain-http -q --no-cache oci-archive:{} {to} --receipt {}",
                delta.display(),
                receipt.display()
            ),
            "delta-import",
        )?;
        self.check(&dst, corpus)?;
        Ok((std::fs::metadata(&delta)?.len(), new as u64))
    }
}

/// The bytes of the files in `dir` (the archives a run wrote).
fn file_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let meta = entry?.metadata()?;
        if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

fn add(trip: &mut Trip, usage: Usage) {
    trip.wall += usage.wall;
    trip.cpu += usage.cpu;
    trip.rss = trip.rss.max(usage.max_rss);
}

/// Medians of a way's trips (peak RSS and extra disk: the largest).
fn summary(trips: &[Trip]) -> Trip {
    Trip {
        wall: crate::sync::median(trips.iter().map(|t| t.wall).collect()),
        cpu: crate::sync::median(trips.iter().map(|t| t.cpu).collect()),
        rss: trips.iter().map(|t| t.rss).max().unwrap_or(0),
        archive: crate::sync::median(trips.iter().map(|t| t.archive).collect()),
        extra_disk: trips.iter().map(|t| t.extra_disk).max().unwrap_or(0),
        uploaded: crate::sync::median(trips.iter().map(|t| t.uploaded).collect()),
    }
}

fn markdown(
    trips: &BTreeMap<Way, Vec<Trip>>,
    errors: &BTreeMap<Way, String>,
    corpus: &Corpus,
    delta: (u64, u64),
    meta: &[String],
    quick: bool,
    took: Duration,
) -> String {
    let mut md = String::new();
    let unique = corpus.unique_bytes();
    let _ = writeln!(md, "## Air gaps: a bundle through OCI archives\n");
    let _ = writeln!(
        md,
        "Written by `{}` in {:.0} s. The sync corpus ({} repositories × {} tags, {} unique \
         bytes with manifests) is exported from a registry and imported into a fresh one: \
         ferry as `ferry sync SRC/team/ oci-archive:b.tar` then `ferry sync oci-archive:b.tar \
         DST/team/`, and through a pipe (`… oci-archive:- | ferry sync oci-archive:- …`); \
         skopeo with one `oci-archive:` per image (`copy --preserve-digests`); regctl with \
         `image export`/`import` per image. Wall and CPU are the export's and the import's \
         together (one process tree for a pipe); extra disk is the most the import's `TMPDIR` \
         held at once (skopeo, given `--tmpdir`, extracts each archive there first).\n",
        crate::command_line(),
        took.as_secs_f64(),
        corpus.repos().len(),
        corpus.images.len() / corpus.repos().len().max(1),
        unique
    );
    if quick {
        let _ = writeln!(
            md,
            "A `--quick` run (4 repositories × 3 tags of 1/16 the sizes): it checks the \
             harness, it does not compare tools.\n"
        );
    }
    for line in meta {
        let _ = writeln!(md, "- {line}");
    }
    let _ = writeln!(
        md,
        "\n| round trip | wall (median) | CPU (median) | peak RSS | archive bytes | vs unique | extra disk on import | bytes uploaded |\n|---|---|---|---|---|---|---|---|"
    );
    for (way, runs) in trips {
        let s = summary(runs);
        let archive = if s.archive > 0 {
            (
                s.archive.to_string(),
                format!("{:+.2}%", (s.archive as f64 / unique as f64 - 1.0) * 100.0),
            )
        } else {
            ("—".into(), "—".into())
        };
        let _ = writeln!(
            md,
            "| {way} | {:.3} s | {:.3} s | {:.1} MiB | {} | {} | {} | {} |",
            s.wall.as_secs_f64(),
            s.cpu.as_secs_f64(),
            s.rss as f64 / f64::from(1 << 20),
            archive.0,
            archive.1,
            human(s.extra_disk),
            s.uploaded
        );
    }
    for (way, e) in errors {
        let _ = writeln!(
            md,
            "| {way} | failed: {} | | | | | | |",
            e.replace('|', "/")
        );
    }
    let get = |w: Way| trips.get(&w).map(|t| summary(t));
    let _ = writeln!(md);
    if let Some(file) = get(Way::FerryFile) {
        let limit = unique + unique / 100;
        let _ = writeln!(
            md,
            "- archive bytes ≤ unique + 1%: {} B for {} B — {}",
            file.archive,
            unique,
            if file.archive <= limit {
                "met"
            } else {
                "**missed**"
            }
        );
        let best = [Way::Skopeo, Way::Regctl]
            .into_iter()
            .filter_map(|w| get(w).map(|s| (w, s.wall)))
            .min_by_key(|(_, w)| *w);
        if let Some((peer, wall)) = best {
            let q = wall.as_secs_f64() / file.wall.as_secs_f64().max(1e-9);
            let _ = writeln!(
                md,
                "- round trip ≥ 3× faster than the best peer ({peer}): {q:.1}× — {}",
                if q >= 3.0 { "met" } else { "**missed**" }
            );
        }
    }
    if let (Some(pipe), Some(direct)) = (get(Way::FerryPipe), get(Way::FerryDirect)) {
        let q = pipe.wall.as_secs_f64() / direct.wall.as_secs_f64().max(1e-9);
        let _ = writeln!(
            md,
            "- pipe round trip within 1.5× of a direct `ferry sync`: {q:.2}× — {}",
            if q <= 1.5 { "met" } else { "**missed**" }
        );
    }
    let rss = [Way::FerryFile, Way::FerryPipe]
        .into_iter()
        .filter_map(get)
        .map(|s| s.rss)
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        md,
        "- ferry's peak RSS ≤ 64 MiB: {:.1} MiB — {}",
        rss as f64 / f64::from(1 << 20),
        if rss <= 64 << 20 { "met" } else { "**missed**" }
    );
    let _ = writeln!(
        md,
        "- delta after one moved tag: {} B archive for {} B of new manifest, config and layer \
         (the rest is tar headers, index files and the delta record)\n",
        delta.0, delta.1
    );
    md
}
