//! `ferry cp`.

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use ferry_core::{
    BlobLocations, CopyOptions, InMemoryLocations, MountChain, PersistentLocations, PlatformFilter,
    ReadStore, WriteStore,
};
use ferry_fs_store::{OciLayout, SharedStorageMount};

use crate::args::{CpArgs, Format};
use crate::endpoint::Endpoint;
use crate::output::{Printer, summary};

/// Names `--mount` accepts.
const STRATEGIES: &[&str] = &["shared-storage"];

/// Runs `ferry cp`; returns the report already printed.
pub async fn run(args: CpArgs) -> Result<()> {
    let src_ep = Endpoint::parse(&args.src).with_context(|| "invalid source".to_string())?;
    let dst_ep = Endpoint::parse(&args.dst).with_context(|| "invalid destination".to_string())?;
    let platform = args
        .platform
        .as_deref()
        .map(|p| p.parse::<PlatformFilter>())
        .transpose()?;

    let (src, src_ref): (Arc<dyn ReadStore>, String) = match &src_ep {
        Endpoint::Layout { path, reference } => {
            let layout = OciLayout::open(path)?;
            let reference = match reference {
                Some(r) => r.clone(),
                None => only_tag(&layout).await?,
            };
            (Arc::new(layout), reference)
        }
        Endpoint::Registry(r) => bail!(registry_unsupported(r)),
    };
    let (dst, dst_tag): (Arc<dyn WriteStore>, Option<String>) = match &dst_ep {
        Endpoint::Layout { path, reference } => {
            let tag = match reference {
                Some(r) if r.contains(':') => bail!(ferry_core::Error::invalid(
                    "destination",
                    args.dst.clone(),
                    "a layout destination needs a tag, not a digest: write `oci:PATH:TAG`"
                )),
                Some(r) => Some(r.clone()),
                None if !src_ref.contains(':') => Some(src_ref.clone()),
                None => bail!(ferry_core::Error::invalid(
                    "destination",
                    args.dst.clone(),
                    "the source is named by digest, so name a tag for the layout: `oci:PATH:TAG`"
                )),
            };
            if let Some(t) = &tag {
                ferry_fs_store::layout::validate_tag(t)?;
            }
            let store: Arc<dyn WriteStore> = if args.dry_run && !path.join("oci-layout").exists() {
                // A dry run must not create the layout; an empty store holds nothing, as the
                // layout to be created would.
                Arc::new(ferry_core::MemoryStore::new(path.display().to_string()))
            } else {
                Arc::new(OciLayout::open_or_create(path)?)
            };
            (store, tag)
        }
        Endpoint::Registry(r) => bail!(registry_unsupported(r)),
    };

    let chain = build_chain(&args.mount, args.trust_source_storage)?;
    tracing::info!(chain = %chain, "mount chain");
    let cache: Option<Arc<PersistentLocations>> = if args.no_cache || args.dry_run {
        None
    } else {
        let path = args
            .cache
            .clone()
            .or_else(ferry_core::locations::default_cache_path);
        match path.map(PersistentLocations::open) {
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
        None => Arc::new(InMemoryLocations::new()),
    };

    let text = args.format == Format::Text;
    let progress = text && !args.quiet && std::io::stderr().is_terminal();
    let printer = Printer::new(text, progress);
    let sink = printer.clone();
    let options = CopyOptions {
        chain,
        locations,
        concurrency: args.concurrency as usize,
        manifest_limit: args.manifest_limit,
        platform,
        dry_run: args.dry_run,
        referrers: false,
        on_event: Some(Arc::new(move |e| sink.event(e))),
    };
    let result = ferry_core::copy(src, &src_ref, dst, dst_tag.as_deref(), &options).await;
    printer.finish();
    if let Some(c) = cache
        && let Err(e) = c.flush()
    {
        tracing::warn!(error = %e, "could not write the blob-location cache");
    }
    let report = result?;
    match args.format {
        Format::Text => {
            let dst_display = match (&dst_ep, &dst_tag) {
                (Endpoint::Layout { path, .. }, Some(t)) => {
                    format!("[oci-layout] {}:{t}", path.display())
                }
                _ => dst_ep.display(),
            };
            println!("{}", summary(&report, &src_ep.display(), &dst_display));
        }
        Format::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).context("serializing the report")?
            );
        }
    }
    Ok(())
}

fn registry_unsupported(r: &str) -> anyhow::Error {
    anyhow!(ferry_core::Error::NotSupported {
        store: format!("`{r}`"),
        operation: "registry references in this build; use `oci:PATH[:TAG]`".into(),
    })
}

/// The single tag of a layout, for a source named without one.
async fn only_tag(layout: &OciLayout) -> Result<String> {
    let tags = layout.tags().await?;
    match tags.as_slice() {
        [(tag, _)] => Ok(tag.clone()),
        [] => Err(anyhow!(ferry_core::Error::NotFound {
            what: format!("a tagged image in `{}`", layout.path().display()),
            hint: Some("the layout holds no tag; name a digest with `oci:PATH@DIGEST`".into()),
        })),
        many => {
            let names: Vec<&str> = many.iter().map(|(t, _)| t.as_str()).collect();
            Err(ferry_core::Error::invalid(
                "source",
                format!("oci:{}", layout.path().display()),
                format!(
                    "the layout has several tags ({}); name one with `oci:PATH:TAG`",
                    names.join(", ")
                ),
            )
            .into())
        }
    }
}

/// Builds the chain `--mount` names.
pub fn build_chain(list: &str, trust_source_storage: bool) -> Result<MountChain> {
    let shared = || SharedStorageMount::new().with_trusted(trust_source_storage);
    let mut chain = MountChain::new();
    match list.trim() {
        "none" => return Ok(chain),
        "auto" => return Ok(chain.with(shared())),
        _ => {}
    }
    for name in list.split(',').map(str::trim) {
        chain = match name {
            "shared-storage" | "hardlink" | "reflink" => chain.with(shared()),
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
