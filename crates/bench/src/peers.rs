//! The peer tools measured beside ferry (ocync, regsync, crane, regctl, oras): static builds in
//! a directory of their own (`--peers`, by default `shared/peers/bin` beside the workspace).
//! A peer that is absent is left out of the tables with a visible note, so a machine without
//! them still runs the rest.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

/// Where the peers are unless `--peers` says otherwise: `../shared/peers/bin` beside the
/// workspace.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peers/bin")
}

/// The directory of peer binaries.
#[derive(Debug, Clone)]
pub struct Peers {
    dir: PathBuf,
}

impl Peers {
    /// The peers in `dir`, or in [`default_dir`].
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self {
            dir: dir.unwrap_or_else(default_dir),
        }
    }

    /// The directory looked in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The binary `name`, or `None` with a note on stderr naming what is missing and where it
    /// was looked for.
    pub fn find(&self, name: &str) -> Option<PathBuf> {
        let path = self.dir.join(name);
        if path.is_file() {
            Some(path)
        } else {
            eprintln!(
                "note: `{name}` is not in `{}` (pass --peers DIR): its column is skipped",
                self.dir.display()
            );
            None
        }
    }

    /// `name: version` for the report, from the binary's own `version` output.
    pub fn version_line(name: &str, path: &Path) -> String {
        // The first line names the version for each of them (`VCSTag: v0.11.5`,
        // `Version: 1.3.3`, `ocync 0.5.2`).
        let version = crate::first_line(path, &["version"])
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        format!("{name}: `{version}` (`{}`)", path.display())
    }
}

/// Writes regctl's settings into `home` (`$HOME/.regctl/config.json`): plain HTTP to every
/// host of `hosts` (`127.0.0.1:PORT`). regsync reads its own file; regctl needs this.
pub fn regctl_home(home: &Path, hosts: &[String]) -> Result<()> {
    let dir = home.join(".regctl");
    std::fs::create_dir_all(&dir).with_context(|| format!("create `{}`", dir.display()))?;
    let hosts: serde_json::Map<String, serde_json::Value> = hosts
        .iter()
        .map(|h| (h.clone(), serde_json::json!({"tls": "disabled"})))
        .collect();
    let file = dir.join("config.json");
    std::fs::write(&file, serde_json::json!({ "hosts": hosts }).to_string())
        .with_context(|| format!("write `{}`", file.display()))
}
