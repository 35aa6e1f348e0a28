//! `ferry sync` arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use ferry_sync::Shard;

use crate::options::{CopyArgs, TagFilterArgs, parse_duration};

pub const SYNC_EXAMPLES: &str = "\
Examples:
  # Mirror every tag of one repository:
  ferry sync registry.example/team/app mirror.example:5000/team/app

  # Mirror every repository under a prefix (the registry's catalog, all pages), keeping only
  # the three newest 1.x releases, deleting mirrored tags that are gone upstream:
  ferry sync --semver '^1' --latest 3 --prune registry.example/team/ mirror.example:5000/team/

  # Export a whole registry to a directory of OCI layouts for an air gap (each blob stored
  # once on disk), then import it on the other side (each blob uploaded once):
  ferry sync registry.example/ oci-dir:/media/usb/export/
  ferry sync oci-dir:/media/usb/export/ airgapped.example:5000/

  # The same through one archive, or through a pipe over ssh with no file at all; the import
  # writes a receipt, and the next export leaves out what it lists:
  ferry sync registry.example/team/ oci-archive:team.tar
  ferry sync oci-archive:team.tar airgapped.example:5000/team/ --receipt team.json
  ferry sync registry.example/team/ oci-archive:delta.tar --delta-from team.json
  ferry sync registry.example/team/ oci-archive:- | ssh airgap 'ferry sync oci-archive:- airgapped.example:5000/team/'

  # Run the entries of a mirror file, one shard of four (a Kubernetes Indexed Job):
  ferry sync --file mirror.toml --shard \"$JOB_COMPLETION_INDEX/4\"

  # What would change, as JSON:
  ferry sync --dry-run --format json registry.example/team/ oci-dir:./mirror/

  # Keep a mirror as a service: every 15 minutes, metrics for Prometheus on port 9090, the
  # image a tag named before it moved kept as TAG-bak-DATE:
  ferry sync --file mirror.toml --every 15m --metrics-addr 0.0.0.0:9090 --backup '{tag}-bak-{date}'

Sources and destinations:
  HOST[:PORT]/REPO       every tag of one repository
  HOST[:PORT]/PREFIX/    every repository under PREFIX (the registry's catalog), each into the
                         same relative path under a destination ending in /
  HOST[:PORT]/           every repository of the registry
  oci:PATH               every tag of one OCI layout
  oci-dir:PATH/          a directory of OCI layouts, one per repository (PATH/REPO)
  oci-archive:PATH       an OCI archive of many repositories (PATH `-`: stdin or stdout;
                         .tar.gz/.tar.zst compressed); an archive of one repository also
                         syncs into one repository
  docker-archive:PATH    a `docker save` tar, as a source

A tag is compared by digest (HEAD of the source tag, and of the destination tag when the
destination lists it); an unchanged tag costs nothing more. Every blob is read from the source
once per run and streamed into each destination registry or filesystem once; every other
repository gets it by a mount or a link.

Signals: SIGINT or SIGTERM starts no new image and gives the images in flight --grace to
finish, then writes the partial report (exit 1); a second signal stops at once. No tag ever
names content that is not there. With --every, a signal ends the service the same way, and
its exit code is 0: a stopped service is not a failure (each run's outcome is in its summary
line and in the metrics).

Proxies, certificates (certs.d, --cert-dir) and registries' quotas (--max-wait) work as for
`ferry cp` (see `ferry cp --help`).

Exit codes:
  0  every selected image is at the destination (and every prune was done)
  1  some images failed, or the sync was stopped; each failure is named with its reason
     (a registry's quota gone for longer than --max-wait fails the images not done)
  2  bad usage, or a bad mirror file (the error names the entry and the key); an archive
     entry that is unsafe (named)
  3  a delta archive's base is not at the destination (the blobs and the receipt named)
  4  a registry refused the credentials (the destination's, usually), a proxy asked for them,
     or a registry asked for a client certificate or refused it
  5  content failed verification (a truncated archive, a blob that fails its digest);
     nothing corrupt was tagged";

/// `ferry sync`.
#[derive(Debug, Args, Clone)]
pub struct SyncArgs {
    /// Source: `HOST[:PORT]/REPO`, `HOST[:PORT]/PREFIX/`, `HOST[:PORT]/`, `oci:PATH`,
    /// `oci-dir:PATH/`, `oci-archive:PATH` or `docker-archive:PATH`. Without SRC and DST, the `[[sync]]` entries of `--file` (or of the
    /// configuration file) run.
    #[arg(requires = "dst")]
    pub src: Option<String>,
    /// Destination: a repository or layout for one source repository, or
    /// `HOST[:PORT]/PREFIX/`, `oci-dir:PATH/` or `oci-archive:PATH` for many.
    pub dst: Option<String>,
    /// Run the `[[sync]]` entries of this file (the format of ferry.toml, which may hold the
    /// entries itself); its other tables are laid over the configuration file's.
    #[arg(long, short = 'f', value_name = "FILE", conflicts_with_all = ["src", "dst"])]
    pub file: Option<PathBuf>,

    /// Which tags (shared with `ferry ls`).
    #[command(flatten)]
    pub filter: TagFilterArgs,
    /// Tags matching this regular expression (anchored, repeatable) that the destination has
    /// are taken as unchanged without asking the source.
    #[arg(long, value_name = "REGEX")]
    pub immutable: Vec<String>,
    /// Delete destination tags the filters manage that the filtered source no longer has
    /// (never a referrers tag whose subject is still there; never after an incomplete
    /// listing or a stopped sync).
    #[arg(long)]
    pub prune: bool,
    /// Prune nothing when more than N tags would go [default: 10].
    #[arg(long, value_name = "N")]
    pub prune_max: Option<usize>,
    /// Images copied at once [default: 8].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub images: Option<u16>,
    /// Stop starting images after the first failure (default: keep going).
    #[arg(long)]
    pub fail_fast: bool,
    /// Sync only the repositories of shard K of N (from 0), by a stable hash of the source
    /// repository path, so N processes split the work without talking to each other.
    #[arg(long, value_name = "K/N", env = "FERRY_SHARD")]
    pub shard: Option<Shard>,
    /// After SIGINT or SIGTERM, how long images in flight may take to finish (`25s`, `2m`,
    /// `500ms`, `0`) [default: 25s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub grace: Option<Duration>,
    /// Before a destination tag whose source tag moved is overwritten (or pruned), tag its
    /// manifest with this name: `{tag}`, `{digest12}`, `{date}` (UTC `YYYYMMDD`), `{time}`
    /// (`HHMMSS`), such as `{tag}-bak-{date}`. Backup tags are never pruned.
    #[arg(long, value_name = "TEMPLATE")]
    pub backup: Option<String>,
    /// Run as a service: sync now, then again every DURATION (`5m`, `1h`), reading the mirror
    /// file again before each run; SIGTERM ends it (exit 0) after the images in flight.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub every: Option<Duration>,
    /// Serve metrics at `http://HOST:PORT/metrics` (Prometheus), and `/healthz`, `/readyz`.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Write the metrics to FILE at the end of each run, in node_exporter's textfile format
    /// (name it `*.prom` in the collector's directory), replacing it whole.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    /// How to copy (shared with `ferry cp`).
    #[command(flatten)]
    pub copy: CopyArgs,
}
