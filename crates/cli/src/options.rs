//! The option groups commands share: output format, how a copy runs, how registries are
//! reached.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use ferry_sync::TagFilter;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// One line per node, then a summary.
    #[default]
    Text,
    /// One JSON document with every node.
    Json,
}

/// How a copy runs: the options `ferry cp` and `ferry sync` share.
#[derive(Debug, Args, Clone, Default)]
pub struct CopyArgs {
    /// How many transfers run at once (per image in `ferry sync`) [default: 8].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: Option<u16>,
    /// Copy only this platform out of an index: `os/arch[/variant]`. Indexes listed by the
    /// index are searched too (up to 8 levels); when none matches, the platforms found are
    /// listed.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Mount strategies to try, in order: `auto`, `none`, or a comma-separated list of
    /// strategy names [default: auto]. The names are listed by `--help`.
    #[arg(long, value_name = "LIST")]
    pub mount: Option<String>,
    /// A setting of a mount strategy, `NAME.KEY=VALUE` (repeatable; a list's items
    /// separated by commas), over its `[mount.NAME]` table in the configuration file. The
    /// settings are listed by `--help`.
    #[arg(long, value_name = "NAME.KEY=VALUE")]
    pub mount_opt: Vec<String>,
    /// Plan with reads only and write nothing. `cp`: per node Exists, Would mount ... from
    /// ... (strategy), Would try or Would copy, then totals. `sync`: the images it would copy.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Largest manifest accepted, in bytes [default: 4194304].
    #[arg(long, value_name = "BYTES")]
    pub manifest_limit: Option<u64>,
    /// Link blobs from the source layout without re-hashing them (only for storage you trust).
    #[arg(long)]
    pub trust_source_storage: bool,
    /// Do not read or write the blob-location cache.
    #[arg(long)]
    pub no_cache: bool,
    /// The blob-location cache file [default: $XDG_CACHE_HOME/ferry/locations.redb].
    #[arg(long, value_name = "FILE", env = "FERRY_CACHE")]
    pub cache: Option<PathBuf>,
    /// No progress bars, even on a terminal.
    #[arg(long, short)]
    pub quiet: bool,
    /// Also copy the referrers (signatures, SBOMs, attestations) of everything copied, through
    /// the referrers API or the tag-schema fallback.
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// Another repository of the destination registry to mount blobs from (repeatable); tried
    /// after the source repository and the repositories the blob-location cache knows.
    #[arg(long, value_name = "REPO")]
    pub mount_from: Vec<String>,
    /// Also try a mount without `from`, last: registries that find a blob in any repository the
    /// identity may read mount it from there (the OCI distribution spec allows it).
    #[arg(long)]
    pub anonymous_mount: bool,
    /// An IPFS trustless gateway (`http://127.0.0.1:8080`): blobs with an IPFS address (an
    /// `ipfs://` url, a CID map entry, or the raw CID of their digest) are fetched from IPFS,
    /// every block verified, instead of from the source. Adds `ipfs` to the `auto` chain.
    #[arg(long, value_name = "URL", env = "FERRY_IPFS_GATEWAY")]
    pub ipfs_gateway: Option<String>,
    /// A JSON file mapping blob digests to IPFS CIDs (`{"sha256:…": "bafy…"}`).
    #[arg(long, value_name = "FILE")]
    pub ipfs_cid_map: Option<PathBuf>,
    /// Operator configuration: storage roots of registries, per-registry settings, defaults
    /// [default: $XDG_CONFIG_HOME/ferry/ferry.toml when it exists].
    #[arg(long, value_name = "FILE", env = "FERRY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Registry transport and credentials.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// OCI archives: compression, receipts, deltas.
    #[command(flatten)]
    pub archive: ArchiveArgs,
}

/// How `oci-archive:` endpoints are written and read.
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "Archive options")]
pub struct ArchiveArgs {
    /// Compress an archive written as a whole: `gzip`, `zstd` or `none` [default: by the
    /// file's extension, `.tar.gz`/`.tgz` gzip, `.tar.zst` zstd, else none]. Reading finds
    /// the compression by the archive's first bytes.
    #[arg(long, value_name = "gzip|zstd|none")]
    pub archive_compression: Option<String>,
    /// After importing an archive, write a receipt to FILE: every manifest and blob the
    /// destination now holds from it, per repository, and the images. Give it to the next
    /// export's `--delta-from`.
    #[arg(long, value_name = "FILE")]
    pub receipt: Option<PathBuf>,
    /// Write a delta archive: leave out every blob and manifest FILE (a receipt, or the
    /// previous archive) says the destination holds, and unchanged tags. The import checks
    /// they are there before it writes anything.
    #[arg(long, value_name = "FILE")]
    pub delta_from: Option<PathBuf>,
}

/// Parses a `--platform` value, `os/arch[/variant]`.
pub fn platform(text: Option<&str>) -> ferry_core::Result<Option<ferry_core::PlatformFilter>> {
    text.map(str::parse).transpose()
}

/// Which tags `ferry sync` mirrors and `ferry ls` lists.
#[derive(Debug, Args, Clone, Default)]
pub struct TagFilterArgs {
    /// Keep only tags matching this regular expression, anchored (repeatable: any matches).
    #[arg(long, value_name = "REGEX")]
    pub tags: Vec<String>,
    /// Leave out tags matching this regular expression, anchored (repeatable).
    #[arg(long, value_name = "REGEX")]
    pub exclude_tags: Vec<String>,
    /// Keep only tags that are semantic versions (a `v` prefix allowed) in this range, such
    /// as `>=1.2, <2` or `^3.18`.
    #[arg(long, value_name = "RANGE")]
    pub semver: Option<String>,
    /// Keep only the newest N semantic versions of what the other filters kept.
    #[arg(long, value_name = "N")]
    pub latest: Option<usize>,
}

impl TagFilterArgs {
    /// Whether any filter is given.
    pub fn is_given(&self) -> bool {
        !self.tags.is_empty()
            || !self.exclude_tags.is_empty()
            || self.semver.is_some()
            || self.latest.is_some()
    }

    /// The filter; an invalid pattern or range is named by `name(key)` (`key \`tags\``,
    /// `--tags`).
    pub fn to_filter(&self, name: impl Fn(&str) -> String) -> anyhow::Result<TagFilter> {
        use anyhow::Context as _;
        let mut filter = TagFilter::new();
        for t in &self.tags {
            filter = filter.tags(t).with_context(|| name("tags"))?;
        }
        for t in &self.exclude_tags {
            filter = filter.exclude(t).with_context(|| name("exclude_tags"))?;
        }
        if let Some(range) = &self.semver {
            filter = filter.semver(range).with_context(|| name("semver"))?;
        }
        if let Some(n) = self.latest {
            filter = filter.latest(n);
        }
        Ok(filter)
    }
}

/// What `ls`, `inspect`, `digest`, `tag`, `rm`, `login` and `logout` share: the output
/// format, the configuration file, and how registries are reached.
#[derive(Debug, Args, Clone, Default)]
pub struct CommonArgs {
    /// Output format on stdout: `text` (lines) or `json` (one document).
    #[arg(long, value_enum, default_value_t = Format::Text, hide_possible_values = true)]
    pub format: Format,
    /// Operator configuration: per-registry settings (plain HTTP, CA certificates), defaults
    /// [default: $XDG_CONFIG_HOME/ferry/ferry.toml when it exists]. `--config-file` for
    /// `ferry inspect`, whose `--config` prints an image's config.
    #[arg(
        long = "config",
        id = "config_file",
        value_name = "FILE",
        env = "FERRY_CONFIG"
    )]
    pub config: Option<PathBuf>,
    /// Registry transport and credentials (`--from-*` or `--to-*`: the command speaks to one
    /// registry, and either side's flags apply to it).
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// How ferry talks to registries, for both sides or one (`--from-*`, `--to-*`).
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "Registry options")]
pub struct RegistryArgs {
    /// Speak plain HTTP to both registries.
    #[arg(long)]
    pub plain_http: bool,
    /// Speak plain HTTP to the source registry.
    #[arg(long)]
    pub from_plain_http: bool,
    /// Speak plain HTTP to the destination registry.
    #[arg(long)]
    pub to_plain_http: bool,
    /// Accept any TLS certificate from both registries (test setups only).
    #[arg(long)]
    pub insecure: bool,
    /// Accept any TLS certificate from the source registry.
    #[arg(long)]
    pub from_insecure: bool,
    /// Accept any TLS certificate from the destination registry.
    #[arg(long)]
    pub to_insecure: bool,
    /// Trust the CA certificates in this PEM file for both registries, besides the system's
    /// (repeatable); a registry's own self-signed certificate works too, for the names it
    /// lists. `SSL_CERT_FILE` and `SSL_CERT_DIR` replace the system's.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,
    /// Trust the CA certificates in this PEM file for the source registry (repeatable).
    #[arg(long, value_name = "FILE")]
    pub from_ca_cert: Vec<PathBuf>,
    /// Trust the CA certificates in this PEM file for the destination registry (repeatable).
    #[arg(long, value_name = "FILE")]
    pub to_ca_cert: Vec<PathBuf>,
    /// A directory of TLS material for both registries, in containers/image's layout:
    /// `*.crt` CA certificates trusted besides the system's, `client.cert` with `client.key`
    /// the client certificate presented. It replaces the `certs.d` lookup (see the README's
    /// "Registries").
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// A directory of TLS material (`*.crt`, `client.cert`, `client.key`) for the source
    /// registry.
    #[arg(long, value_name = "DIR")]
    pub from_cert_dir: Option<PathBuf>,
    /// A directory of TLS material (`*.crt`, `client.cert`, `client.key`) for the destination
    /// registry.
    #[arg(long, value_name = "DIR")]
    pub to_cert_dir: Option<PathBuf>,
    /// The longest a pull waits for a registry's quota (`ratelimit-remaining: 0`) to come back
    /// (`30s`, `10m`, `2h`); beyond it ferry stops with an error, and a sync marks the images
    /// not done as failed [default: 10m].
    #[arg(long, value_name = "DURATION", env = "FERRY_MAX_WAIT", value_parser = parse_duration)]
    pub max_wait: Option<std::time::Duration>,
    /// Hash blobs pushed to a registry in ferry too. Registries must refuse content that does
    /// not match its digest (`DIGEST_INVALID`, exit 5), so by default ferry only counts the
    /// bytes and leaves the hashing to the registry; use this for one that does not check.
    #[arg(long)]
    pub verify_uploads: bool,
    /// User name for the source registry (else docker's config.json and credential helpers).
    #[arg(long, env = "FERRY_FROM_USERNAME", value_name = "USER")]
    pub from_username: Option<String>,
    /// Password or token for the source registry.
    #[arg(
        long,
        env = "FERRY_FROM_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub from_password: Option<String>,
    /// User name for the destination registry (else docker's config.json and credential helpers).
    #[arg(long, env = "FERRY_TO_USERNAME", value_name = "USER")]
    pub to_username: Option<String>,
    /// Password or token for the destination registry.
    #[arg(
        long,
        env = "FERRY_TO_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub to_password: Option<String>,
    /// Read the password of the side whose user name is given without one from stdin.
    #[arg(long)]
    pub password_stdin: bool,
    /// How many times a failed request or blob transfer is tried again, when the failure may
    /// pass (a connection reset, a timeout, 408, 429, 5xx) [default: 30]. Waits grow from
    /// 100 ms, doubling up to 2 s, each drawn at random below that ceiling; a registry's
    /// `Retry-After` is honoured. Per registry: `retries` in its table of the configuration.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub retries: Option<u32>,
    /// The most time one request or blob transfer may take, retries and waits included,
    /// before it is given up (`60s`, `5m`) [default: 60s]. Per registry: `retry_max_wait`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub retry_max_wait: Option<Duration>,
    /// Tries of a request that can be repeated, the first included.
    #[arg(long, hide = true, env = "FERRY_RETRY_TRIES", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub retry_tries: Option<u32>,
    /// The ceiling of the first retry's wait in milliseconds (doubled on each retry).
    #[arg(
        long,
        hide = true,
        env = "FERRY_RETRY_BASE_DELAY_MS",
        value_name = "MS"
    )]
    pub retry_base_delay_ms: Option<u64>,
    /// The most time one request or transfer may take, retries included, in milliseconds.
    #[arg(long, hide = true, env = "FERRY_RETRY_MAX_DELAY_MS", value_name = "MS")]
    pub retry_max_delay_ms: Option<u64>,
    /// Blobs at least this large are downloaded in parallel ranges [default: 64 MiB].
    #[arg(long, hide = true, env = "FERRY_RANGE_THRESHOLD", value_name = "BYTES")]
    pub range_threshold: Option<u64>,
    /// The size of each range of a parallel download [default: 4 MiB].
    #[arg(long, hide = true, env = "FERRY_RANGE_SIZE", value_name = "BYTES")]
    pub range_size: Option<u64>,
    /// Ranges of one blob in flight at once [default: 4].
    #[arg(long, hide = true, env = "FERRY_RANGES", value_name = "N")]
    pub ranges: Option<usize>,
    /// A first range at least this fast (bytes per second) gets the rest of its blob as one
    /// stream [default: 64 MiB/s].
    #[arg(long, hide = true, env = "FERRY_ONE_STREAM_RATE", value_name = "BYTES")]
    pub one_stream_rate: Option<u64>,
    /// Blobs larger than this are uploaded in chunks, each resumable [default: 8 GiB].
    #[arg(long, hide = true, env = "FERRY_CHUNK_THRESHOLD", value_name = "BYTES")]
    pub chunk_threshold: Option<u64>,
    /// The size of each chunk of a chunked upload [default: 16 MiB].
    #[arg(long, hide = true, env = "FERRY_CHUNK_SIZE", value_name = "BYTES")]
    pub chunk_size: Option<u64>,
    /// The longest wait for the next chunk of a streamed body, in milliseconds.
    #[arg(long, hide = true, env = "FERRY_IDLE_TIMEOUT_MS", value_name = "MS")]
    pub idle_timeout_ms: Option<u64>,
    /// The longest wait for an answer's headers, in milliseconds.
    #[arg(
        long,
        hide = true,
        env = "FERRY_RESPONSE_TIMEOUT_MS",
        value_name = "MS"
    )]
    pub response_timeout_ms: Option<u64>,
}

/// Parses `25s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; write `25s`, `500ms`, `2m` or `1h`"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`; use ms, s, m or h"
            ));
        }
    };
    if !seconds.is_finite() || !(0.0..=7.0 * 24.0 * 3600.0).contains(&seconds) {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}
