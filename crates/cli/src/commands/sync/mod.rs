//! `ferry sync`: many repositories and tags, each blob moved once.

mod args;
pub(crate) mod endpoint;
mod output;
mod service;

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use ferry_core::{
    BlobLocations, BlobTransfers, Catalog, CopyOptions, Error, MemoryStore, PlatformFilter,
    ReadStore, WriteStore,
};
use ferry_fs_store::archive::{ArchiveBundle, ArchiveWriter, DeltaBase, Landing, OneStore};
use ferry_fs_store::{OciDir, OciLayout};
use ferry_metrics::{EntryLabels, Metrics};
use ferry_sync::{
    BackupTemplate, DEFAULT_GRACE, DEFAULT_PRUNE_MAX, FailureKind, Outcome, Stop, SyncEntry,
    SyncOptions, SyncSource, TagFilter, TagPatterns,
};

pub use args::{SYNC_EXAMPLES, SyncArgs};

use crate::app::App;
use crate::archive::{ArchiveFormat, ArchivePath, CatalogLanding, Opened};
use crate::config::{Config, EntryConfig, OneOrMany};
use crate::exit;
use crate::options::{ArchiveArgs, CopyArgs, Format, TagFilterArgs};
use crate::setup::cache::LocationCache;
use crate::setup::clients::{Clients, Purpose, Side};
use crate::signals::RUNNING;
use endpoint::SyncEndpoint;
use output::Printer;

/// Runs `ferry sync`; returns the exit code.
pub async fn run(app: &App, args: SyncArgs) -> Result<u8> {
    let stop = Stop::new();
    if let Err(e) = crate::signals::watch(stop.clone()) {
        eprintln!("error: cannot watch for SIGINT and SIGTERM: {e}");
        return Ok(exit::FAILED);
    }
    let plan = Plan::read(app, &args)?;
    if let Some(every) = args.every.or(plan.every) {
        return service::serve(app, args, plan, every, stop).await;
    }
    let metrics = service::start_metrics(&args, None).await?;
    let mut session = Session::new(&plan, metrics.clone(), false);
    let run = session.run(app, &plan, &stop).await?;
    if let (Some(metrics), Some(path)) = (&metrics, &args.metrics_file) {
        metrics
            .write_textfile(path)
            .map_err(|e| Error::io(format!("writing the metrics file `{}`", path.display()), e))?;
    }
    Ok(run.code)
}

/// A run checked and ready: the files read, the entries checked, the run-wide settings.
/// Nothing is opened yet.
pub(crate) struct Plan {
    /// The command line's arguments with the files' defaults laid in.
    args: SyncArgs,
    config: Config,
    entries: Vec<EntryConfig>,
    endpoints: Vec<(SyncEndpoint, SyncEndpoint)>,
    prepared: Vec<Prepared>,
    sources: BTreeSet<String>,
    destinations: BTreeSet<String>,
    images: u16,
    fail_fast: bool,
    grace: std::time::Duration,
    /// `every` of the files' `[defaults]`.
    every: Option<std::time::Duration>,
    /// What the registry clients are made from (the files' bytes): clients are kept while it
    /// stays the same.
    fingerprint: Vec<u8>,
}

impl Plan {
    /// Reads the configuration and the mirror file, and checks every entry.
    fn read(app: &App, cli: &SyncArgs) -> Result<Self> {
        let mut args = cli.clone();
        let cli_mount = args.copy.mount.clone();
        let mut config = crate::setup::config(&app.factories, args.copy.config.as_deref())?;
        let mut fingerprint = Vec::new();
        for path in config.path.iter().chain(&args.file) {
            fingerprint.extend(std::fs::read(path).unwrap_or_default());
            fingerprint.push(0);
        }
        fingerprint.extend(service::docker_config_bytes());
        let file_name = match &args.file {
            Some(path) => {
                if !path.is_file() {
                    bail!(Error::invalid(
                        "mirror file",
                        path.display().to_string(),
                        "there is no such file; check the path given with --file"
                    ));
                }
                config = config.merge(crate::setup::config(&app.factories, Some(path))?);
                Some(path.display().to_string())
            }
            None => None,
        };
        let entries: Vec<EntryConfig> = match (args.src.take(), args.dst.take()) {
            (Some(src), Some(dst)) => vec![EntryConfig::from_command_line(src, dst)],
            _ => {
                if config.sync.is_empty() {
                    bail!(Error::invalid(
                        "sync",
                        file_name.as_deref().unwrap_or("(no SRC DST)"),
                        match &file_name {
                            Some(_) =>
                                "the file has no `[[sync]]` entry; add one with `source` and `destination`",
                            None =>
                                "give SRC and DST, or `--file mirror.toml` with `[[sync]]` entries",
                        }
                    ));
                }
                config.sync.clone()
            }
        };
        config.apply(&mut args.copy, None);
        let d = &config.defaults;
        let images = args.images.or(d.images).unwrap_or(4);
        let fail_fast = args.fail_fast || d.fail_fast.unwrap_or(false);
        let grace = match (args.grace, &d.grace) {
            (Some(g), _) => g,
            (None, Some(text)) => crate::options::parse_duration(text)
                .map_err(|reason| Error::invalid("config key", "defaults.grace", reason))?,
            (None, None) => DEFAULT_GRACE,
        };
        let every = d
            .every
            .as_deref()
            .map(service::parse_every)
            .transpose()
            .map_err(|reason| Error::invalid("config key", "defaults.every", reason))?;
        let prune_max = args.prune_max.or(d.prune_max).unwrap_or(DEFAULT_PRUNE_MAX);

        // Where each entry reads and writes, for the clients.
        let name_entry = |i: usize, e: &EntryConfig| match &file_name {
            Some(f) => format!(
                "{f}: [[sync]] entry {} (`{}` => `{}`)",
                i + 1,
                e.source,
                e.destination
            ),
            None => "ferry sync".into(),
        };
        let mut endpoints = Vec::with_capacity(entries.len());
        let (mut sources, mut destinations) = (BTreeSet::new(), BTreeSet::new());
        for (i, e) in entries.iter().enumerate() {
            let context = || format!("{}: key `source`", name_entry(i, e));
            let src = SyncEndpoint::parse(&e.source).with_context(context)?;
            let context = || format!("{}: key `destination`", name_entry(i, e));
            let dst = SyncEndpoint::parse(&e.destination).with_context(context)?;
            if src.is_many() && !dst.is_many() && !matches!(src, SyncEndpoint::Archive { .. }) {
                return Err(anyhow::Error::new(Error::invalid(
                    "destination",
                    e.destination.clone(),
                    "the source names many repositories, so the destination must too: end it with \
                     `/` (`HOST[:PORT]/PREFIX/`, `HOST[:PORT]/`) or write `oci-dir:PATH/`",
                )))
                .with_context(|| name_entry(i, e));
            }
            sources.extend(src.registry().map(str::to_string));
            destinations.extend(dst.registry().map(str::to_string));
            endpoints.push((src, dst));
        }

        let src_archive = endpoints
            .iter()
            .any(|(s, _)| matches!(s, SyncEndpoint::Archive { .. }));
        let dst_archive = endpoints
            .iter()
            .any(|(_, d)| matches!(d, SyncEndpoint::Archive { .. }));
        crate::archive::check_flags(&args.copy.archive, src_archive, dst_archive)?;
        let stdin_archives = endpoints
            .iter()
            .filter(|(s, _)| {
                matches!(
                    s,
                    SyncEndpoint::Archive {
                        path: ArchivePath::Stdio,
                        ..
                    }
                )
            })
            .count();
        if stdin_archives > 1 || (stdin_archives == 1 && args.copy.registry.password_stdin) {
            bail!(Error::invalid(
                "source",
                "oci-archive:-",
                "standard input can be read once: by one archive source, and not by \
                 `--password-stdin` too"
            ));
        }

        // Every entry is checked before any store is opened (or created).
        let mut prepared = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let dst_host = endpoints[i].1.registry().map(str::to_string);
            let entry = prepare_entry(
                app,
                e,
                dst_host.as_deref(),
                &args,
                cli_mount.as_deref(),
                &config,
                prune_max,
            )
            .with_context(|| name_entry(i, e))?;
            prepared.push(entry);
        }
        Ok(Self {
            args,
            config,
            entries,
            endpoints,
            prepared,
            sources,
            destinations,
            images,
            fail_fast,
            grace,
            every,
            fingerprint,
        })
    }
}

/// What runs share: the registry clients (kept while the files are unchanged), the
/// blob-location cache, the metrics.
pub(crate) struct Session {
    clients: Option<(Vec<u8>, Arc<Clients>)>,
    cache: LocationCache,
    metrics: Option<Arc<Metrics>>,
    /// A service: signals stop it between runs too.
    service: bool,
}

/// What a run ended with.
pub(crate) struct RunOutcome {
    pub report: ferry_sync::SyncReport,
    /// The exit code of a one-shot `ferry sync` that ended so.
    pub code: u8,
}

impl Session {
    pub(crate) fn new(plan: &Plan, metrics: Option<Arc<Metrics>>, service: bool) -> Self {
        Self {
            clients: None,
            cache: LocationCache::open(&plan.args.copy),
            metrics,
            service,
        }
    }

    /// The clients for `plan`: those of the runs before while the files are unchanged.
    fn clients(&mut self, plan: &Plan) -> Result<Arc<Clients>> {
        if let Some((fingerprint, clients)) = &self.clients
            && *fingerprint == plan.fingerprint
        {
            return Ok(clients.clone());
        }
        // A tag is compared by HEAD (`Peek`), never by GET; a tag the destination lacks is
        // resolved by the GET whose manifest the copy then reuses.
        let clients = Arc::new(Clients::new(
            &plan.args.copy.registry,
            &plan.config,
            &plan.sources,
            &plan.destinations,
            Purpose {
                resolve_with_head: false,
            },
        )?);
        if let Some(metrics) = &self.metrics {
            metrics.set_registries(service::registry_source(clients.clone()));
        }
        self.clients = Some((plan.fingerprint.clone(), clients.clone()));
        Ok(clients)
    }

    /// Opens the stores of `plan`, syncs, prints the lines and the summary.
    pub(crate) async fn run(&mut self, app: &App, plan: &Plan, stop: &Stop) -> Result<RunOutcome> {
        let args = &plan.args;
        let dry_run = args.copy.dry_run;
        let clients = self.clients(plan)?;
        let dst_archive = plan
            .endpoints
            .iter()
            .any(|(_, d)| matches!(d, SyncEndpoint::Archive { .. }));
        let manifest_limit = args
            .copy
            .manifest_limit
            .unwrap_or(ferry_core::model::DEFAULT_MANIFEST_LIMIT);
        let mut archives = Archives {
            args: &args.copy.archive,
            manifest_limit,
            base: if dst_archive {
                crate::archive::delta_base(&args.copy.archive, manifest_limit).await?
            } else {
                None
            },
            writers: Vec::new(),
            read: Vec::new(),
            locations: self.cache.locations(),
            dry_run,
        };
        let mut sync_entries = Vec::with_capacity(plan.entries.len());
        for (i, ((e, (src, dst)), prepared)) in plan
            .entries
            .iter()
            .zip(plan.endpoints.iter().cloned())
            .zip(plan.prepared.iter().cloned())
            .enumerate()
        {
            let source = open_endpoints(i, src, dst, &clients, dry_run, &mut archives)
                .await
                .with_context(|| match &args.file {
                    Some(f) => format!(
                        "{}: [[sync]] entry {} (`{}` => `{}`)",
                        f.display(),
                        i + 1,
                        e.source,
                        e.destination
                    ),
                    None => "ferry sync".into(),
                })?;
            let entry = prepared.into_entry(source);
            tracing::info!(
                entry = i + 1,
                source = %e.source,
                destination = %e.destination,
                filter = %entry.filter.describe(),
                chain = %entry.copy.chain,
                "sync entry"
            );
            sync_entries.push(entry);
        }

        let text = args.copy.format == Format::Text;
        let progress = text && !args.copy.quiet && !self.service && std::io::stderr().is_terminal();
        let printer = Arc::new(Printer::new(text, app.verbose, progress));
        let sink = printer.clone();
        let metrics = self.metrics.clone();
        let labels: Vec<EntryLabels> = plan
            .entries
            .iter()
            .map(|e| EntryLabels {
                source: e.source.clone(),
                destination: e.destination.clone(),
            })
            .collect();
        let images = usize::from(plan.images);
        let options = SyncOptions::default()
            .with_images(images)
            .with_checks((images * 4).max(16))
            .with_listings(images.clamp(2, 8))
            .with_fail_fast(plan.fail_fast)
            .with_dry_run(dry_run)
            .with_shard(args.shard)
            .with_grace(plan.grace)
            .with_stop(stop.clone())
            .with_locations(self.cache.locations())
            .with_transfers(Arc::new(BlobTransfers::new()))
            .on_event(move |e| {
                sink.event(e);
                if let Some(m) = &metrics {
                    m.observe(&labels, e);
                }
            });
        if !self.service {
            RUNNING.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let report = ferry_sync::sync(sync_entries, options).await;
        if !self.service {
            RUNNING.store(false, std::sync::atomic::Ordering::SeqCst);
        }
        printer.finish();
        self.cache.flush();
        archives.finish(&report, args.copy.recursive).await?;
        match args.copy.format {
            Format::Text => crate::output::result_line(&output::summary(&report)),
            Format::Json => {
                let mut registries = BTreeMap::new();
                for client in clients.all() {
                    for (host, stats) in client.request_stats() {
                        registries.insert(
                            host,
                            serde_json::to_value(stats).context("serializing request counts")?,
                        );
                    }
                }
                let document = output::json(&report, &registries);
                if self.service {
                    // One line per run.
                    let value: serde_json::Value =
                        serde_json::from_str(&document).context("the JSON report")?;
                    println!("{value}");
                } else {
                    crate::output::result_line(&document);
                }
            }
        }
        let code = exit_code(&report);
        Ok(RunOutcome { report, code })
    }
}

/// 0 when everything is at the destination; 4 when a registry refused the credentials; 5
/// when content failed verification (and nothing else failed); 1 for any other failure or a
/// stopped sync.
fn exit_code(report: &ferry_sync::SyncReport) -> u8 {
    if report.complete() {
        return 0;
    }
    let refused = report.failures().any(|f| {
        matches!(
            f.failure,
            Some(FailureKind::Unauthenticated | FailureKind::PermissionDenied)
        )
    });
    let integrity = !report.interrupted
        && report.failures().next().is_some()
        && report
            .failures()
            .all(|f| f.failure == Some(FailureKind::Integrity));
    if refused {
        exit::AUTH
    } else if integrity {
        exit::INTEGRITY
    } else {
        exit::FAILED
    }
}

/// The patterns of `key`, each checked.
fn patterns(key: &str, values: &[String]) -> Result<TagPatterns> {
    let mut out = TagPatterns::new();
    for v in values {
        out.push(v).with_context(|| format!("key `{key}`"))?;
    }
    Ok(out)
}

fn strings(entry: &Option<OneOrMany>, cli: &[String]) -> Vec<String> {
    match entry {
        Some(v) => v.clone().into_vec(),
        None => cli.to_vec(),
    }
}

/// An entry checked, its stores not opened yet.
#[derive(Clone)]
struct Prepared {
    filter: TagFilter,
    immutable: TagPatterns,
    copy: CopyOptions,
    prune: bool,
    prune_max: usize,
    backup: Option<BackupTemplate>,
}

impl Prepared {
    fn into_entry(self, source: SyncSource) -> SyncEntry {
        let mut entry = SyncEntry::new(source)
            .with_filter(self.filter)
            .with_immutable(self.immutable)
            .with_copy(self.copy);
        entry.prune = self.prune;
        entry.prune_max = self.prune_max;
        entry.backup = self.backup;
        entry
    }
}

/// One entry's filters and copy options: its keys, else the command line's.
fn prepare_entry(
    app: &App,
    e: &EntryConfig,
    dst_host: Option<&str>,
    args: &SyncArgs,
    cli_mount: Option<&str>,
    config: &Config,
    prune_max: usize,
) -> Result<Prepared> {
    let cli = &args.filter;
    let filter = TagFilterArgs {
        tags: strings(&e.tags, &cli.tags),
        exclude_tags: strings(&e.exclude_tags, &cli.exclude_tags),
        semver: e.semver.clone().or(cli.semver.clone()),
        latest: e.latest.or(cli.latest),
    }
    .to_filter(|key| format!("key `{key}`"))?;
    let immutable = patterns("immutable", &strings(&e.immutable, &args.immutable))?;

    // The copy options: the command line's, with the entry's keys laid over them.
    let mut copy: CopyArgs = args.copy.clone();
    copy.mount = match &e.mount {
        Some(m) => Some(m.clone().into_vec().join(",")),
        None => cli_mount.map(str::to_string).or_else(|| {
            dst_host
                .and_then(|h| config.registry(h))
                .and_then(|r| r.mount.as_ref())
                .map(|list| list.join(","))
                .or_else(|| config.defaults.mount.clone())
        }),
    };
    if let Some(list) = &e.mount_from {
        copy.mount_from = list.clone().into_vec();
    }
    copy.anonymous_mount |= e.anonymous_mount.unwrap_or(false);
    copy.recursive |= e.recursive.unwrap_or(false);
    let platform = e
        .platform
        .as_ref()
        .or(copy.platform.as_ref())
        .map(|p| p.parse::<PlatformFilter>())
        .transpose()
        .context("key `platform`")?;
    let chain =
        crate::setup::chain::build(&app.factories, &copy, config, true).context("key `mount`")?;
    let options = CopyOptions::default()
        .with_chain(chain)
        .with_concurrency(usize::from(e.concurrency.or(copy.concurrency).unwrap_or(8)))
        .with_manifest_limit(
            e.manifest_limit
                .or(copy.manifest_limit)
                .unwrap_or(ferry_core::model::DEFAULT_MANIFEST_LIMIT),
        )
        .with_platform(platform)
        .with_referrers(copy.recursive)
        .with_retry(crate::setup::clients::retry_policy(
            &copy.registry,
            config,
            None,
        )?);
    let backup = e
        .backup
        .as_ref()
        .or(args.backup.as_ref())
        .map(|t| BackupTemplate::parse(t))
        .transpose()
        .context("key `backup`")?;
    Ok(Prepared {
        filter,
        immutable,
        copy: options,
        prune: e.prune.unwrap_or(args.prune),
        prune_max: e.prune_max.unwrap_or(prune_max),
        backup,
    })
}

/// The last component of a layout's path: the repository a layout is synced as into a
/// registry prefix or a directory of layouts.
fn layout_name(path: &Path) -> Result<String> {
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    match canonical.file_name().and_then(|n| n.to_str()) {
        Some(n) => Ok(n.to_string()),
        None => bail!(Error::invalid(
            "source",
            path.display().to_string(),
            "the layout's directory has no usable name to sync it as a repository"
        )),
    }
}

async fn open_layout_for_writing(path: &Path, dry_run: bool) -> Result<Arc<dyn WriteStore>> {
    if dry_run && !path.join("oci-layout").exists() {
        return Ok(Arc::new(MemoryStore::new(path.display().to_string())));
    }
    Ok(Arc::new(OciLayout::open_or_create(path)?))
}

async fn open_dir_for_writing(path: &Path, dry_run: bool) -> Result<Option<OciDir>> {
    if dry_run && !path.exists() {
        return Ok(None);
    }
    Ok(Some(OciDir::open_or_create(path)?))
}

/// The archives of a run: the writers (one per archive, shared by the entries that write
/// into it), finished once the sync is complete; the archives read, for the receipt.
struct Archives<'a> {
    args: &'a ArchiveArgs,
    manifest_limit: u64,
    base: Option<DeltaBase>,
    writers: Vec<(ArchivePath, ArchiveWriter)>,
    /// Per entry that reads an archive: the entry, the bundle, where it went.
    read: Vec<(usize, ArchiveBundle, String)>,
    locations: Arc<dyn BlobLocations>,
    dry_run: bool,
}

impl Archives<'_> {
    /// The archive written at `path` (opened on first use) for images from `src`.
    fn writer(&mut self, path: &ArchivePath, src: &SyncEndpoint) -> Result<ArchiveWriter> {
        if let Some((_, w)) = self.writers.iter().find(|(p, _)| p == path) {
            return Ok(w.clone());
        }
        let name_base = match src {
            SyncEndpoint::Registry { registry, prefix } => format!("{registry}/{prefix}"),
            SyncEndpoint::Repository { registry, .. } => format!("{registry}/"),
            _ => String::new(),
        };
        let writer = crate::archive::writer(
            path,
            self.args,
            name_base,
            self.base.clone(),
            self.dry_run,
            self.manifest_limit,
        )?;
        self.writers.push((path.clone(), writer.clone()));
        Ok(writer)
    }

    /// Reads the archive `src` names: a file now; a stream's blobs landing where `landing`
    /// says. Checks what a delta expects at the destination, with `expected_at` opening the
    /// destination store of a repository of the bundle.
    async fn read<F, Fut>(
        &mut self,
        entry: usize,
        src: &SyncEndpoint,
        landing: impl FnOnce(String) -> Option<Box<dyn Landing>>,
        expected_at: F,
        destination: String,
    ) -> Result<ArchiveBundle>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<Option<Arc<dyn ReadStore>>>>,
    {
        let SyncEndpoint::Archive { format, path } = src else {
            unreachable!("an archive source")
        };
        let opened = crate::archive::open_read(*format, path, self.manifest_limit).await?;
        let landing = match &opened {
            Opened::Stream { what, .. } if !self.dry_run => landing(what.clone()),
            _ => None,
        };
        let bundle = crate::archive::bundle(
            opened,
            landing.as_deref(),
            self.locations.clone(),
            self.manifest_limit,
        )
        .await?;
        crate::archive::check_expected(&bundle, expected_at, self.locations.as_ref()).await?;
        self.read.push((entry, bundle.clone(), destination));
        Ok(bundle)
    }

    /// Finishes every archive written when the sync is complete (else each is dropped, and
    /// nothing is left under its name), and writes the receipt of the archives read.
    async fn finish(self, report: &ferry_sync::SyncReport, referrers: bool) -> Result<()> {
        for (path, writer) in &self.writers {
            if report.complete() {
                crate::archive::finish(writer).await?;
            } else if !self.dry_run {
                crate::output::eprintln_flush(&format!(
                    "No archive written to `{}`: not every image was copied",
                    path.shown()
                ));
            }
        }
        if self.dry_run || self.args.receipt.is_none() {
            return Ok(());
        }
        let mut receipt_of: Option<(ArchiveBundle, String, Vec<_>)> = None;
        for (entry, bundle, destination) in &self.read {
            let images: Vec<(String, String, ferry_core::Digest)> = report
                .images
                .iter()
                .filter(|i| i.entry == *entry)
                .filter(|i| matches!(i.outcome, Outcome::Synced | Outcome::Unchanged))
                .filter_map(|i| Some((i.repository.clone(), i.tag.clone()?, i.digest.clone()?)))
                .collect();
            match &mut receipt_of {
                None => receipt_of = Some((bundle.clone(), destination.clone(), images)),
                Some((_, _, all)) => all.extend(images),
            }
        }
        if let Some((bundle, destination, images)) = receipt_of {
            crate::archive::write_receipt(self.args, &bundle, &images, &destination, referrers)
                .await?;
        }
        Ok(())
    }
}

/// A destination catalog's store of `name`, to check what a delta expects there.
async fn catalog_store(
    catalog: Arc<dyn Catalog>,
    name: String,
) -> Result<Option<Arc<dyn ReadStore>>> {
    Ok(catalog
        .open_write(&name, false)
        .await?
        .map(|s| s as Arc<dyn ReadStore>))
}

/// Maps a source and destination onto stores and catalogs.
async fn open_endpoints(
    entry: usize,
    src: SyncEndpoint,
    dst: SyncEndpoint,
    clients: &Clients,
    dry_run: bool,
    archives: &mut Archives<'_>,
) -> Result<SyncSource> {
    if matches!(
        dst,
        SyncEndpoint::Archive {
            format: ArchiveFormat::Docker,
            ..
        }
    ) {
        bail!(Error::invalid(
            "destination",
            "docker-archive:",
            "ferry writes OCI archives, which `docker load` reads too: write `oci-archive:PATH`"
        ));
    }
    // Many repositories into many.
    if src.is_many() && dst.is_many() {
        let (destination, destination_prefix): (Arc<dyn Catalog>, String) = match &dst {
            SyncEndpoint::Registry { registry, prefix } => (
                clients.client(Side::To, registry).catalog(registry)?,
                prefix.clone(),
            ),
            SyncEndpoint::Dir { path } => match open_dir_for_writing(path, dry_run).await? {
                Some(dir) => (Arc::new(dir), String::new()),
                None => (
                    Arc::new(ferry_core::MemoryCatalog::new(path.display().to_string())),
                    String::new(),
                ),
            },
            SyncEndpoint::Archive { path, .. } => {
                (Arc::new(archives.writer(path, &src)?), String::new())
            }
            _ => unreachable!("checked by the caller: many into many"),
        };
        let (source, source_prefix): (Arc<dyn Catalog>, String) = match &src {
            SyncEndpoint::Registry { registry, prefix } => (
                clients.client(Side::From, registry).catalog(registry)?,
                prefix.clone(),
            ),
            SyncEndpoint::Dir { path } => (Arc::new(OciDir::open(path)?), String::new()),
            SyncEndpoint::Archive { .. } => {
                let (catalog, prefix) = (destination.clone(), destination_prefix.clone());
                let landing = move |what: String| -> Option<Box<dyn Landing>> {
                    Some(Box::new(CatalogLanding::new(catalog, prefix, what)))
                };
                let (catalog, prefix) = (destination.clone(), destination_prefix.clone());
                let expected_at =
                    move |repo: String| catalog_store(catalog.clone(), format!("{prefix}{repo}"));
                let shown = destination.store_info(destination_prefix.trim_end_matches('/'));
                let bundle = archives
                    .read(entry, &src, landing, expected_at, shown.to_string())
                    .await?;
                (Arc::new(bundle), String::new())
            }
            _ => unreachable!("checked: many"),
        };
        return Ok(SyncSource::Catalog {
            source,
            source_prefix,
            destination,
            destination_prefix,
        });
    }
    // One repository (or layout, or an archive of one) into one; a stream lands in the
    // destination, which is opened first.
    let destination_of = |name: &str, archives: &mut Archives<'_>| {
        let name = name.to_string();
        let dst = dst.clone();
        let src = src.clone();
        let writer = match &dst {
            SyncEndpoint::Archive { path, .. } => Some(archives.writer(path, &src)),
            _ => None,
        };
        async move {
            let store: Arc<dyn WriteStore> = match &dst {
                SyncEndpoint::Repository {
                    registry,
                    repository,
                } => clients
                    .client(Side::To, registry)
                    .registry(registry)?
                    .repository(repository)?,
                SyncEndpoint::Registry { registry, prefix } => clients
                    .client(Side::To, registry)
                    .registry(registry)?
                    .repository(&format!("{prefix}{name}"))?,
                SyncEndpoint::Layout { path } => open_layout_for_writing(path, dry_run).await?,
                SyncEndpoint::Dir { path } => match open_dir_for_writing(path, dry_run).await? {
                    Some(dir) => match dir.open_write(&name, !dry_run).await? {
                        Some(store) => store,
                        None => Arc::new(MemoryStore::new(name.clone())),
                    },
                    None => Arc::new(MemoryStore::new(name.clone())),
                },
                SyncEndpoint::Archive { .. } => {
                    writer.expect("an archive writer")?.repository(&name)?
                }
            };
            Ok::<_, anyhow::Error>(store)
        }
    };
    let (name, source, destination): (String, Arc<dyn ReadStore>, Arc<dyn WriteStore>) = match &src
    {
        SyncEndpoint::Repository {
            registry,
            repository,
        } => (
            repository.clone(),
            clients
                .client(Side::From, registry)
                .registry(registry)?
                .repository(repository)?,
            destination_of(repository, archives).await?,
        ),
        SyncEndpoint::Layout { path } => {
            let name = layout_name(path)?;
            let destination = destination_of(&name, archives).await?;
            (name, Arc::new(OciLayout::open(path)?), destination)
        }
        SyncEndpoint::Archive { path, .. } => {
            // The archive's one repository, into one store.
            let destination = destination_of(&path.stem(), archives).await?;
            let landing_store = destination.clone();
            let landing = move |_what: String| -> Option<Box<dyn Landing>> {
                Some(Box::new(OneStore(landing_store)))
            };
            let checked = destination.clone();
            let expected_at = move |_repo: String| {
                let store: Arc<dyn ReadStore> = checked.clone();
                async move { Ok(Some(store)) }
            };
            let shown = destination.to_string();
            let bundle = archives
                .read(entry, &src, landing, expected_at, shown)
                .await?;
            let repositories = bundle.repositories();
            let [name] = repositories.as_slice() else {
                bail!(Error::invalid(
                    "destination",
                    destination.to_string(),
                    format!(
                        "the archive holds {} repositories ({}), so the destination must \
                             hold many too: end it with `/` (`HOST[:PORT]/PREFIX/`) or write \
                             `oci-dir:PATH/`",
                        repositories.len(),
                        repositories.join(", ")
                    )
                ));
            };
            (name.clone(), bundle.repository(name), destination)
        }
        _ => unreachable!("one"),
    };
    Ok(SyncSource::Store {
        name,
        source,
        destination,
    })
}
