//! `[[sync]]` entries of a mirror file (the format of ferry.toml).
//!
//! ```toml
//! [defaults]
//! images = 8                      # run-wide: images at once, fail_fast, grace, prune_max
//! every = "15m"                   # run as a service (`--every`)
//!
//! [registries."mirror.example:5000"]
//! plain_http = true
//!
//! [[sync]]
//! source = "registry.example/team/"
//! destination = "mirror.example:5000/team/"
//! tags = ["v.*"]                  # a string or a list: anchored regular expressions
//! exclude_tags = ".*-rc.*"
//! semver = ">=1.0"
//! latest = 3
//! immutable = 'v[0-9]+\.[0-9]+\.[0-9]+'
//! prune = true
//! prune_max = 20
//! platform = "linux/amd64"
//! recursive = true
//! mount = ["cross-repo"]          # or "auto", "none", "cross-repo,shared-storage"
//! mount_from = ["base/images"]
//! backup = "{tag}-bak-{date}"     # tag the old image before a moved tag is overwritten
//! ```

use serde::Deserialize;

/// A string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The strings.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// One `[[sync]]` entry: a source, a destination, and the options of `ferry sync` that may
/// differ between entries. Keys it leaves out take the command line's values.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryConfig {
    /// `SRC`.
    pub source: String,
    /// `DST`.
    pub destination: String,
    /// `--tags`.
    pub tags: Option<OneOrMany>,
    /// `--exclude-tags`.
    pub exclude_tags: Option<OneOrMany>,
    /// `--semver`.
    pub semver: Option<String>,
    /// `--latest`.
    pub latest: Option<usize>,
    /// `--immutable`.
    pub immutable: Option<OneOrMany>,
    /// `--prune`.
    pub prune: Option<bool>,
    /// `--prune-max`.
    pub prune_max: Option<usize>,
    /// `--platform`.
    pub platform: Option<String>,
    /// `-r`, `--recursive`.
    pub recursive: Option<bool>,
    /// `--mount`: a comma-separated string or a list.
    pub mount: Option<OneOrMany>,
    /// `--mount-from`.
    pub mount_from: Option<OneOrMany>,
    /// `--anonymous-mount`.
    pub anonymous_mount: Option<bool>,
    /// `--concurrency`.
    pub concurrency: Option<u16>,
    /// `--manifest-limit`.
    pub manifest_limit: Option<u64>,
    /// `--backup`: the template of backup tags.
    pub backup: Option<String>,
}

impl EntryConfig {
    /// The entry the command line's `SRC DST` make.
    pub fn from_command_line(source: String, destination: String) -> Self {
        Self {
            source,
            destination,
            tags: None,
            exclude_tags: None,
            semver: None,
            latest: None,
            immutable: None,
            prune: None,
            prune_max: None,
            platform: None,
            recursive: None,
            mount: None,
            mount_from: None,
            anonymous_mount: None,
            concurrency: None,
            manifest_limit: None,
            backup: None,
        }
    }
}
