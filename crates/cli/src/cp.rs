//! `ferry cp`.

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use ferry_cache::PersistentLocations;
use ferry_core::{
    BlobLocations, CopyOptions, InMemoryLocations, MountChain, MountStrategyExt, PlatformFilter,
};
use ferry_distribution::CrossRepoMount;
use ferry_fs_store::SharedStorageMount;
use ferry_ipfs_mount::{CidMap, IpfsMount};

use crate::args::{CopyArgs, CpArgs, Format};
use crate::config::Config;
use crate::endpoint::Endpoint;
use crate::output::{Printer, summary};
use crate::stores::{Clients, open_destination, open_source};

/// How long a strategy that could not reach its storage or endpoint is left alone.
const REST_AFTER_UNREACHABLE: std::time::Duration = std::time::Duration::from_secs(30);

/// Names `--mount` accepts.
const STRATEGIES: &[&str] = &[
    "cross-repo",
    "distribution-storage",
    "shared-storage",
    "ipfs",
];

fn registry_host(ep: &Endpoint) -> Option<String> {
    match ep {
        Endpoint::Registry { reference, .. } => Some(reference.registry().to_string()),
        Endpoint::Layout { .. } => None,
    }
}

/// Runs `ferry cp`.
pub async fn run(args: CpArgs) -> Result<()> {
    let CpArgs {
        src: src_text,
        dst: dst_text,
        copy: mut args,
    } = args;
    let src_ep = Endpoint::parse(&src_text).context("invalid source")?;
    let dst_ep = Endpoint::parse(&dst_text).context("invalid destination")?;
    let platform = args
        .platform
        .as_deref()
        .map(|p| p.parse::<PlatformFilter>())
        .transpose()?;
    let from_host = registry_host(&src_ep);
    let to_host = registry_host(&dst_ep);
    let config = Config::load(args.config.as_deref())?;
    config.apply(&mut args, from_host.as_deref(), to_host.as_deref());
    let clients = Clients::new(&args.registry, from_host.as_deref(), to_host.as_deref())?;
    let src = open_source(&src_ep, &clients).await?;
    let dst = open_destination(&dst_ep, &dst_text, &src, &args, &clients)?;

    let chain = build_chain(&args, &config)?;
    tracing::info!(chain = %chain, "mount chain");
    let cache_path = || args.cache.clone().or_else(ferry_cache::default_cache_path);
    let cache: Option<Arc<PersistentLocations>> = if args.no_cache || args.dry_run {
        None
    } else {
        match cache_path().map(PersistentLocations::open) {
            Some(Ok(c)) => Some(Arc::new(c)),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "blob-location cache unavailable; going on without it");
                None
            }
            None => None,
        }
    };
    let locations: Arc<dyn BlobLocations> = match &cache {
        Some(c) => c.clone(),
        // A dry run reads what the cache knows (where a blob could be mounted from) and
        // writes nothing back.
        None if args.dry_run && !args.no_cache => {
            match cache_path().map(PersistentLocations::read_only) {
                Some(Ok(known)) => Arc::new(known),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "blob-location cache unreadable; planning without it");
                    Arc::new(InMemoryLocations::new())
                }
                None => Arc::new(InMemoryLocations::new()),
            }
        }
        None => Arc::new(InMemoryLocations::new()),
    };

    let text = args.format == Format::Text;
    let progress = text && !args.quiet && std::io::stderr().is_terminal();
    let printer = Printer::new(text, progress);
    let sink = printer.clone();
    let options = CopyOptions::default()
        .with_chain(chain)
        .with_locations(locations)
        .with_concurrency(args.concurrency.unwrap_or(8) as usize)
        .with_manifest_limit(
            args.manifest_limit
                .unwrap_or(ferry_core::model::DEFAULT_MANIFEST_LIMIT),
        )
        .with_platform(platform)
        .with_dry_run(args.dry_run)
        .with_referrers(args.recursive)
        .on_event(move |e| sink.event(e));
    let result = ferry_core::copy(
        src.store,
        &src.reference,
        dst.store,
        dst.tag.as_deref(),
        &options,
    )
    .await;
    printer.finish();
    if let Some(c) = cache
        && let Err(e) = c.flush()
    {
        tracing::warn!(error = %e, "could not write the blob-location cache");
    }
    let report = result?;
    let shown = match args.format {
        Format::Text => summary(&report, &src_ep.display(), &dst.display),
        Format::Json => serde_json::to_string_pretty(&report).context("serializing the report")?,
    };
    // Strategies keep credentials out of what they report; this is the last line of defence.
    println!("{}", ferry_core::redact::text(&shown));
    Ok(())
}

/// Builds the chain `--mount` names.
pub fn build_chain(args: &CopyArgs, config: &Config) -> Result<MountChain> {
    build_chain_probing(args, config, false)
}

/// Builds the chain `--mount` names; with `probe`, the cross-repository mount also probes
/// the destination repository itself (one request in place of a `HEAD` and a `POST` for a new
/// blob) where no later strategy of the chain could bring a blob to a registry.
pub fn build_chain_probing(args: &CopyArgs, config: &Config, probe: bool) -> Result<MountChain> {
    let shared = || SharedStorageMount::new().with_trusted(args.trust_source_storage);
    // A storage root that could not be reached is left alone for a while, so the blobs of a
    // copy do not each wait for the same timeout.
    let storage = config
        .distribution_storage()?
        .map(|s| s.resting_after_failure(REST_AFTER_UNREACHABLE));
    let list = args.mount.as_deref().unwrap_or("auto").trim();
    // Strategies after `cross-repo` that can bring a blob to a registry: with one of them,
    // the probe's upload session would have to be cancelled when it mounts.
    let later_registry_strategy = match list {
        "auto" => storage.is_some() || args.ipfs_gateway.is_some(),
        _ => {
            let names: Vec<&str> = list.split(',').map(str::trim).collect();
            let after = names
                .iter()
                .position(|n| *n == "cross-repo")
                .map_or(&names[..0], |i| &names[i + 1..]);
            after
                .iter()
                .any(|n| matches!(*n, "distribution-storage" | "ipfs"))
        }
    };
    let probe = probe && !later_registry_strategy;
    let cross = || {
        CrossRepoMount::new()
            .with_mount_from(args.mount_from.iter().cloned())
            .with_anonymous_mount(args.anonymous_mount)
            .with_destination_probe(probe)
    };
    let ipfs = || -> Result<IpfsMount> {
        let Some(url) = &args.ipfs_gateway else {
            bail!(ferry_core::Error::invalid(
                "mount strategy",
                "ipfs",
                "needs a gateway: add `--ipfs-gateway URL`"
            ));
        };
        let mut mount = IpfsMount::new(url)?;
        if let Some(path) = &args.ipfs_cid_map {
            mount = mount.with_cid_map(CidMap::load(path)?);
        }
        Ok(mount)
    };
    let mut chain = MountChain::new();
    match list {
        "none" => return Ok(chain),
        "auto" => {
            chain = chain.with(cross());
            if let Some(s) = storage {
                chain = chain.with(s);
            }
            chain = chain.with(shared());
            if args.ipfs_gateway.is_some() {
                chain = chain.with(ipfs()?);
            }
            return Ok(chain);
        }
        _ => {}
    }
    for name in list.split(',').map(str::trim) {
        chain = match name {
            "cross-repo" => chain.with(cross()),
            "distribution-storage" => match &storage {
                Some(s) => chain.with(s.clone()),
                None => bail!(ferry_core::Error::invalid(
                    "mount strategy",
                    name,
                    "needs storage roots: add `storage = \"file:///…\"` or `\"s3://…\"` tables to the config file"
                )),
            },
            "shared-storage" | "hardlink" | "reflink" => chain.with(shared()),
            "ipfs" => chain.with(ipfs()?),
            other => bail!(ferry_core::Error::invalid(
                "mount strategy",
                other,
                format!(
                    "known strategies: {}; or `auto`, `none`",
                    STRATEGIES.join(", ")
                )
            )),
        };
    }
    Ok(chain)
}
