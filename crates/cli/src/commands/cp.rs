//! `ferry cp`.

use std::collections::BTreeSet;
use std::io::IsTerminal;

use anyhow::{Context, Result};
use clap::Args;
use ferry_core::{CopyOptions, Error, PlatformFilter, Stop, StopLevel};

use std::sync::Arc;

use crate::app::App;
use crate::archive::{self, ArchivePath};
use crate::endpoint::Endpoint;
use crate::options::{CopyArgs, Format, parse_duration};
use crate::output::{Printer, summary};
use crate::setup::cache::LocationCache;
use crate::setup::clients::{Clients, Purpose, retry_policy};
use crate::setup::stores::{ArchiveSetup, Source, archive_source, open_destination, open_source};

/// The examples and exit codes of `ferry cp --help`.
pub const CP_EXAMPLES: &str = "\
Examples:
  # Copy a tagged image between two layouts; blobs are hardlinked (or reflinked) when both
  # layouts are on one filesystem:
  ferry cp oci:./image:v1 oci:./mirror:v1

  # Promote an image inside one registry: every blob is mounted, none is uploaded:
  ferry cp localhost:5000/app:rc1 localhost:5000/release/app:1.0 --plain-http

  # Pull one platform of a multi-arch image into a layout, with its signatures:
  ferry cp -r --platform linux/arm64 registry.example/app:1.0 oci:./app-arm64:1.0

  # Trust a private CA's certificate for a registry it issued one to:
  ferry cp --ca-cert ./corp-ca.pem registry.corp.example/app:1.0 oci:./app:1.0

  # Through the company proxy, to a registry that asks for a client certificate (a directory
  # with client.cert, client.key and the registry's CA as ca.crt; /etc/containers/certs.d/HOST/
  # is read without the flag):
  HTTPS_PROXY=http://proxy.corp.example:3128 ferry cp --cert-dir ./harbor-certs \\
    harbor.corp.example/app:1.0 oci:./app:1.0

  # Plan a copy with reads only: per node Exists, Would mount ... from ... (strategy),
  # Would try or Would copy, then the blobs and bytes to stream, to mount and present:
  ferry cp --dry-run localhost:5000/team/app:rc1 localhost:5000/prod/app:1.0 --plain-http

  # The same plan as JSON (per node: action, strategy, from, size; totals under `plan`):
  ferry cp --dry-run --format json oci:./image:v1 oci:./mirror:v1

  # One image into an archive `docker load` reads, and one image out of a bundle:
  ferry cp registry.example/team/app:1.4 oci-archive:app.tar
  ferry cp oci-archive:bundle.tar:team/app:1.4 mirror.example:5000/team/app:1.4

References:
  oci:PATH[:TAG|@DIGEST]             an OCI image-layout directory
  HOST[:PORT]/REPO[:TAG][@DIGEST]    a registry repository (docker's rules for short names)
  oci-archive:PATH[:REF][@DIGEST]    an OCI archive (a tar; .tar.gz/.tar.zst compressed; PATH
                                     `-` for stdin or stdout); REF is TAG, REPO:TAG, or REPO
                                     with @DIGEST; the first `:` after PATH starts REF
  docker-archive:PATH[:REF]          a `docker save` tar, as a source

  In oci:PATH:TAG the text after the last `:` of the last path component is the tag and must
  be a valid tag; a `:` whose text is neither a tag nor clearly part of a file name (such as
  oci:dir/l:../../x) is refused. A directory whose name holds `:`: oci:./dir:with:colons:TAG,
  or end the path with `/` for no tag: oci:./dir:with:colons/

Networks:
  HTTPS_PROXY, HTTP_PROXY and ALL_PROXY name a proxy (upper case before lower case, as Go
  programs read them), NO_PROXY the hosts reached directly; the loopback is never proxied.
  A registry's CA certificates and client certificate are read from its directory HOST[:PORT]
  under $XDG_CONFIG_HOME/containers/certs.d, /etc/containers/certs.d or /etc/docker/certs.d
  (FERRY_CERTS_D replaces these roots), unless --cert-dir names one directory for all. A
  registry announcing a quota (ratelimit-remaining) is paced to stay under it, and waited for
  at 0 up to --max-wait. ferry.toml sets proxy, no_proxy, client_cert, client_key, ca_cert and
  requests_per_second per registry.

Warnings:
  A blob whose source copy fails verification but that a strategy takes from another verified
  place (a layout or repository the blob-location cache knows) is copied, and a line
  `warning: the source's copy of DIGEST at LOCATION is corrupt (...)` goes to stderr (and
  `warnings` of the node in the JSON report); the exit code stays 0.

Exit codes:
  0  the whole graph is at the destination and tagged
  1  the copy failed (I/O, registry or network error; a registry's quota gone for longer
     than --max-wait)
  2  bad usage or invalid input (reference, tag, digest, platform, config)
  3  something named does not exist (layout, tag, digest, platform)
  4  authentication or permission refused (by the registry, its proxy, or its check of the
     client certificate)
  5  content failed verification (size or digest mismatch); nothing corrupt was committed";

/// `ferry cp`.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// Source: `oci:PATH[:TAG|@DIGEST]`, `HOST[:PORT]/REPO[:TAG][@DIGEST]`,
    /// `oci-archive:PATH[:REF][@DIGEST]` or `docker-archive:PATH[:REF]`.
    pub src: String,
    /// Destination: `oci:PATH[:TAG]`, `HOST[:PORT]/REPO[:TAG]` or `oci-archive:PATH[:REF]`;
    /// the source's tag when none is given.
    pub dst: String,
    /// After SIGINT or SIGTERM, how long transfers in flight may take to finish before the
    /// copy stops and cancels its open upload sessions (`10s`, `500ms`, `0`) [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub grace: Option<std::time::Duration>,
    /// How to copy.
    #[command(flatten)]
    pub copy: CopyArgs,
}

/// How long transfers in flight may go on after a signal, by default.
const DEFAULT_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// How long cancelling the upload sessions a stopped copy left open may take.
const CANCEL_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

fn registry_host(ep: &Endpoint) -> Option<String> {
    match ep {
        Endpoint::Registry { reference, .. } => Some(reference.registry().to_string()),
        Endpoint::Layout { .. } | Endpoint::Archive { .. } => None,
    }
}

/// Runs `ferry cp`; returns the exit code.
pub async fn run(app: &App, args: CpArgs) -> Result<u8> {
    let CpArgs {
        src: src_text,
        dst: dst_text,
        grace,
        copy: mut args,
    } = args;
    let stop = Stop::new();
    let received = crate::signals::watch_copy(stop.clone(), grace.unwrap_or(DEFAULT_GRACE))
        .context("watching for SIGINT and SIGTERM")?;
    let src_ep = Endpoint::parse(&src_text).context("invalid source")?;
    let dst_ep = Endpoint::parse(&dst_text).context("invalid destination")?;
    let platform = args
        .platform
        .as_deref()
        .map(|p| p.parse::<PlatformFilter>())
        .transpose()?;
    let from_host = registry_host(&src_ep);
    let to_host = registry_host(&dst_ep);
    let config = crate::setup::config(&app.factories, args.config.as_deref())?;
    config.apply(&mut args, to_host.as_deref());
    let clients = Clients::new(
        &args.registry,
        &config,
        &from_host.into_iter().collect::<BTreeSet<_>>(),
        &to_host.into_iter().collect::<BTreeSet<_>>(),
        Purpose::default(),
    )?;
    let manifest_limit = args
        .manifest_limit
        .unwrap_or(ferry_core::model::DEFAULT_MANIFEST_LIMIT);
    let dst_archive = matches!(dst_ep, Endpoint::Archive { .. });
    archive::check_flags(
        &args.archive,
        matches!(src_ep, Endpoint::Archive { .. }),
        dst_archive,
    )?;
    if matches!(
        &src_ep,
        Endpoint::Archive {
            path: ArchivePath::Stdio,
            ..
        }
    ) && args.registry.password_stdin
    {
        anyhow::bail!(ferry_core::Error::invalid(
            "source",
            src_text.clone(),
            "the archive comes on stdin, so `--password-stdin` cannot read a password from it; \
             give the password with `--to-password` or its environment variable"
        ));
    }
    let cache = LocationCache::open(&args);
    let base = if dst_archive {
        archive::delta_base(&args.archive, manifest_limit).await?
    } else {
        None
    };
    let mut writer = None;
    let src = match &src_ep {
        Endpoint::Archive {
            format,
            path,
            reference,
        } => {
            let opened = archive::open_read(*format, path, manifest_limit).await?;
            // A stream's blobs land at the destination as they arrive: it is opened first.
            let landing = match (&opened, args.dry_run) {
                (archive::Opened::Stream { .. }, false) => {
                    let provisional = Source {
                        store: Arc::new(ferry_core::MemoryStore::new(path.stem())),
                        reference: reference.tag.clone().unwrap_or_else(|| "latest".into()),
                        is_tag: true,
                        archive: None,
                    };
                    let d = open_destination(
                        &dst_ep,
                        &dst_text,
                        &provisional,
                        args.dry_run,
                        &clients,
                        ArchiveSetup {
                            args: &args.archive,
                            manifest_limit,
                            base: base.clone(),
                            writer: None,
                        },
                    )?;
                    writer = d.archive;
                    Some(ferry_fs_store::archive::OneStore(d.store))
                }
                _ => None,
            };
            let bundle = archive::bundle(
                opened,
                landing
                    .as_ref()
                    .map(|l| l as &dyn ferry_fs_store::archive::Landing),
                cache.locations(),
                manifest_limit,
            )
            .await?;
            archive_source(bundle, reference)?
        }
        _ => open_source(&src_ep, &clients).await?,
    };
    let dst = open_destination(
        &dst_ep,
        &dst_text,
        &src,
        args.dry_run,
        &clients,
        ArchiveSetup {
            args: &args.archive,
            manifest_limit,
            base,
            writer,
        },
    )?;
    if let Some((bundle, _)) = &src.archive {
        let store: Arc<dyn ferry_core::ReadStore> = dst.store.clone();
        archive::check_expected(
            bundle,
            |_| {
                let store = store.clone();
                async move { Ok(Some(store)) }
            },
            cache.locations().as_ref(),
        )
        .await?;
    }

    let chain = crate::setup::chain::build(&app.factories, &args, &config, false)?;
    tracing::info!(chain = %chain, "mount chain");

    let text = args.format == Format::Text;
    let progress = text && !args.quiet && std::io::stderr().is_terminal();
    let printer = Printer::new(text, progress, dst.store.info().clone());
    let sink = printer.clone();
    let options = CopyOptions::default()
        .with_chain(chain)
        .with_locations(cache.locations())
        .with_concurrency(args.concurrency.unwrap_or(8) as usize)
        .with_manifest_limit(manifest_limit)
        .with_platform(platform)
        .with_dry_run(args.dry_run)
        .with_referrers(args.recursive)
        .with_retry(retry_policy(&args.registry, &config, None)?)
        .with_stop(stop.clone())
        .on_event(move |e| sink.event(e));
    let copy = ferry_core::copy(
        src.store,
        &src.reference,
        dst.store,
        dst.tag.as_deref(),
        &options,
    );
    let result = tokio::select! {
        result = copy => result,
        () = stop.reached(StopLevel::Abort) => Err(Error::Cancelled("stopped".into())),
    };
    printer.finish();
    cache.flush();
    if let (Some(code), Err(_)) = (received.exit_code(), &result) {
        // Stopped by a signal before it was done: what the copy left open at the registries
        // goes. (A copy that finished within the grace is reported as usual.)
        let cancelled = tokio::time::timeout(CANCEL_PATIENCE, async {
            let mut n = 0;
            for client in clients.all() {
                n += client.cancel_open_uploads().await;
            }
            n
        })
        .await
        .unwrap_or(0);
        eprintln!(
            "ferry: stopped: {cancelled} open upload session{} cancelled, no tag written",
            if cancelled == 1 { "" } else { "s" }
        );
        return Ok(code);
    }
    let report = result?;
    if let Some(writer) = &dst.archive {
        archive::finish(writer).await?;
    }
    if let Some((bundle, repository)) = &src.archive
        && !args.dry_run
    {
        let tag = if src.is_tag {
            src.reference.clone()
        } else {
            dst.tag.clone().unwrap_or_else(|| src.reference.clone())
        };
        archive::write_receipt(
            &args.archive,
            bundle,
            &[(repository.clone(), tag, report.root.digest().clone())],
            &dst.display,
            args.recursive,
        )
        .await?;
    }
    let shown = match args.format {
        Format::Text => summary(&report, &src_ep.display(), &dst.display),
        Format::Json => serde_json::to_string_pretty(&report).context("serializing the report")?,
    };
    // Strategies keep credentials out of what they report; this is the last line of defence.
    crate::output::result_line(&ferry_core::redact::text(&shown));
    Ok(0)
}
