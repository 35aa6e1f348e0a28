//! `ferry-bench faults --resumes`: what one cut costs. One image of one big layer is copied
//! registry → registry, once per tool and case, with one fault put where the layer's bytes
//! pass, and the fault proxy counts the bytes it moved:
//!
//! - **a source `GET` cut halfway**: the proxy stands in front of the source and closes the
//!   connection of the first `GET` of the layer after half of what it answers (the whole
//!   layer, or a tool's first range of it); what the tools fetched beyond the image's bytes is
//!   what the cut made them fetch again. Closed, not reset: a reset drops what the client's
//!   kernel held unread, which no client could keep, and the proxy would count it as fetched
//!   again (3.3 MiB of a 16 MiB layer in one run);
//! - **an upload cut 60% of the way**: the proxy stands in front of the destination and
//!   resets, before it reaches the registry, the request carrying the layer's bytes at 60% of
//!   it: ferry's one `PUT` (cut at half its body, as `Fault::ResetMidUpload` cuts), or, sent
//!   in 16 MiB chunks (`FERRY_CHUNK_THRESHOLD`), the `PATCH` holding the 60% mark. The peers'
//!   upload requests cannot be picked out by the one rule, so the row is ferry's.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result};
use ferry_test_support::{Content as _, Fault, FaultPlan, FaultProxy, Registry};

use super::{Bench, FaultsArgs, Tool, run};
use crate::scenario::human;

const BEGIN: &str = "<!-- ferry-bench faults-resumes: begin -->";
const END: &str = "<!-- ferry-bench faults-resumes: end -->";

/// The chunk of ferry's chunked uploads (its default `chunk_size`).
const CHUNK: usize = 16 << 20;

/// One copy with one cut.
struct Cut {
    case: &'static str,
    tool: String,
    intact: Result<(), String>,
    wall: f64,
    /// Bytes the proxy moved for the case (sent for downloads, received for uploads).
    moved: u64,
    /// Faults the proxy applied.
    injected: usize,
}

/// Runs the cases for every tool found.
pub(super) fn main(
    bench: &Bench,
    binaries: &BTreeMap<Tool, PathBuf>,
    args: &FaultsArgs,
    meta: &[String],
    notes: &[String],
) -> Result<()> {
    let layer = &bench.image.layers[0];
    let layer_size = layer.bytes.len();
    let hex = layer.descriptor.digest().digest().to_string();
    let image_bytes: u64 = bench.image.all().iter().map(|b| b.bytes.len() as u64).sum();
    println!(
        "\none copy per tool and case of {} (one layer of {})",
        human(image_bytes),
        human(layer_size as u64)
    );
    let started = Instant::now();
    let mut cuts = Vec::new();
    for (&tool, binary) in binaries {
        // The source behind the proxy, the first `GET` of the layer cut halfway.
        let plan = FaultPlan::none().nth("GET", &hex, 1, Fault::TruncatedBody);
        let cut = bench.cut("download", tool, binary, &[], plan, true)?;
        println!("{}", line(&cut, image_bytes));
        cuts.push(cut);
    }
    if let Some(ferry) = binaries.get(&Tool::Ferry) {
        // One `PUT`: the layer's `PUT` (its URL names the digest) cut at half its body.
        let plan = FaultPlan::none().nth("PUT", &hex, 1, Fault::ResetMidUpload);
        let cut = bench.cut("upload", Tool::Ferry, ferry, &[], plan, false)?;
        println!("{}", line(&cut, image_bytes));
        cuts.push(cut);
        // Chunks of 16 MiB for the layer (the config stays one `PUT`): the `PATCH` holding
        // the 60% mark is cut at half its body.
        let nth = (layer_size * 6 / 10) / CHUNK + 1;
        let threshold = (layer_size - 1).to_string();
        let plan = FaultPlan::none().nth("PATCH", "/blobs/uploads/", nth, Fault::ResetMidUpload);
        let mut cut = bench.cut(
            "upload",
            Tool::Ferry,
            ferry,
            &[("FERRY_CHUNK_THRESHOLD", &threshold)],
            plan,
            false,
        )?;
        cut.tool = "ferry, chunked".into();
        println!("{}", line(&cut, image_bytes));
        cuts.push(cut);
    }
    let md = markdown(&cuts, meta, notes, image_bytes, layer_size, started);
    crate::sync::write_marked_section(&args.out, BEGIN, END, &md)?;
    println!(
        "\nwrote the resumes section of {} ({:.0} s in all)",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

impl Bench {
    /// One copy by `tool` with `plan` on a proxy in front of the source (`at_source`) or of
    /// the destination.
    fn cut(
        &self,
        case: &'static str,
        tool: Tool,
        binary: &std::path::Path,
        env: &[(&str, &str)],
        plan: FaultPlan,
        at_source: bool,
    ) -> Result<Cut> {
        let destination = Registry::builder()
            .env("REGISTRY_LOG_LEVEL", "warn")
            .start()
            .context("start the destination registry")?;
        let upstream = if at_source {
            self.source.addr()
        } else {
            destination.addr()
        };
        let proxy = FaultProxy::start(upstream, plan).context("start the fault proxy")?;
        let (src, dst) = if at_source {
            (proxy.addr(), destination.addr().to_string())
        } else {
            (self.source.addr().to_string(), proxy.addr())
        };
        let label = format!("resume-{case}-{}-{}", tool.name(), env.len());
        let home = self.work.join("homes").join(&label);
        std::fs::create_dir_all(&home)?;
        let repo = "resumed";
        let mut command = self.command(tool, binary, &home, &src, &dst, repo)?;
        command.envs(env.iter().copied());
        let started = Instant::now();
        let ran = run(command, &self.logs, &label, self.timeout);
        let wall = started.elapsed().as_secs_f64();
        let intact = ran
            .and_then(|_| self.check(&destination, repo))
            .map_err(|e| format!("{e:#}"));
        let moved = if at_source {
            proxy.bytes_sent("GET")
        } else {
            super::received(&proxy)
        };
        let _ = std::fs::remove_dir_all(&home);
        Ok(Cut {
            case,
            tool: tool.name().to_string(),
            intact,
            wall,
            moved,
            injected: proxy.injected().len(),
        })
    }
}

/// Bytes moved beyond the image's, as text (none when the copy moved less: a tool that
/// skipped a blob the destination had).
fn again(cut: &Cut, image_bytes: u64) -> String {
    let extra = cut.moved.saturating_sub(image_bytes);
    format!(
        "{} ({:.1}% of the image)",
        human(extra),
        extra as f64 * 100.0 / image_bytes as f64
    )
}

fn line(cut: &Cut, image_bytes: u64) -> String {
    format!(
        "  {:<8} {:<16} {:<7} wall {:>6.2} s  moved {:>10}  again {}  faults {}",
        cut.case,
        cut.tool,
        if cut.intact.is_ok() {
            "intact"
        } else {
            "FAILED"
        },
        cut.wall,
        human(cut.moved),
        again(cut, image_bytes),
        cut.injected
    ) + &cut
        .intact
        .as_ref()
        .err()
        .map(|e| format!("\n    {e}"))
        .unwrap_or_default()
}

fn markdown(
    cuts: &[Cut],
    meta: &[String],
    notes: &[String],
    image_bytes: u64,
    layer_size: usize,
    started: Instant,
) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## Resumes: what one cut costs\n\n\
         Written by `{}` in {:.0} s. One image of {} (one layer of {}) copied registry → \
         registry (docker-registry 2.8 on loopback), once per tool and case, through the fault \
         proxy of `ferry-test-support` with one fault where the layer's bytes pass. \
         **download**: the proxy in front of the source closes the connection of the first \
         `GET` of the layer after half of its answer (the whole layer, or ferry's first range \
         of 4 MiB; closed rather than reset, so that the bytes sent are the bytes the tool \
         got). \
         **upload**: the proxy in front of the destination resets the layer's `PUT` after \
         half its body, before any of it reaches the registry; `ferry, chunked` sends the \
         layer in 16 MiB chunks (`FERRY_CHUNK_THRESHOLD` just below its size) and the `PATCH` \
         holding the 60% mark is cut halfway. Moved: bytes the proxy sent (download) or \
         received (upload); again: that beyond the image's bytes. The peers' upload requests \
         cannot be picked out by one rule (crane `PATCH`es the whole layer, regctl in chunks, \
         oras `PUT`s), so the upload rows are ferry's. On distribution 2.8 a request that \
         brought part of its body ends the upload session (asked where it stands, the \
         registry answers that the upload is unknown), so the upload cases cut before the \
         registry, as a proxy that buffers bodies drops a connection.\n",
        crate::command_line(),
        started.elapsed().as_secs_f64(),
        human(image_bytes),
        human(layer_size as u64)
    );
    for line in meta.iter().chain(notes) {
        let _ = writeln!(md, "- {line}");
    }
    let _ = writeln!(
        md,
        "\n| case | tool | intact | wall | moved | again | faults applied |\n|---|---|---|---|---|---|---|"
    );
    for cut in cuts {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.2} s | {} | {} | {} |",
            cut.case,
            cut.tool,
            match &cut.intact {
                Ok(()) => "yes".to_string(),
                Err(e) => {
                    let e = e.replace('|', "/").replace('\n', " ");
                    format!("no: {}", e.chars().take(240).collect::<String>())
                }
            },
            cut.wall,
            human(cut.moved),
            again(cut, image_bytes),
            cut.injected
        );
    }
    let _ = writeln!(
        md,
        "\nTargets: a cut download fetches at most 1 MiB again; a cut \
         chunked upload sends at most one chunk (16 MiB) again.\n"
    );
    for cut in cuts {
        let extra = cut.moved.saturating_sub(image_bytes);
        let bound = match (cut.case, cut.tool.as_str()) {
            ("download", "ferry") => Some(1u64 << 20),
            ("upload", "ferry, chunked") => Some(CHUNK as u64 + CHUNK as u64 / 2),
            _ => None,
        };
        if let Some(bound) = bound {
            let met = cut.intact.is_ok() && cut.injected == 1 && extra <= bound;
            let _ = writeln!(
                md,
                "- {} {}: {} again (bound {}{}) → {}",
                cut.case,
                cut.tool,
                human(extra),
                human(bound),
                if cut.case == "upload" {
                    ", the cut half chunk included"
                } else {
                    ""
                },
                if met { "met" } else { "**missed**" }
            );
        }
    }
    md
}
