//! The command line: global options and the commands.

use clap::{Parser, Subcommand};

use crate::commands::cp::{CP_EXAMPLES, CpArgs};
use crate::commands::digest::{DIGEST_EXAMPLES, DigestArgs};
use crate::commands::inspect::{INSPECT_EXAMPLES, InspectArgs};
use crate::commands::login::{LOGIN_EXAMPLES, LoginArgs};
use crate::commands::logout::{LOGOUT_EXAMPLES, LogoutArgs};
use crate::commands::ls::{LS_EXAMPLES, LsArgs};
use crate::commands::rm::{RM_EXAMPLES, RmArgs};
use crate::commands::sync::{SYNC_EXAMPLES, SyncArgs};
use crate::commands::tag::{TAG_EXAMPLES, TagArgs};

/// ferry copies OCI images, indexes and artifacts between registries and OCI image layouts,
/// mounting blobs instead of copying them wherever the destination allows.
#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// More log output on stderr (-v: info, -vv: debug, -vvv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log every request and mount attempt (same as -vv).
    #[arg(long, global = true)]
    pub debug: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy an image, index or artifact (with its whole graph) from SRC to DST.
    #[command(after_long_help = CP_EXAMPLES, after_help = "See `ferry cp --help` for examples and exit codes.")]
    Cp(Box<CpArgs>),
    /// Mirror repositories, prefixes, whole registries and directories of layouts: every tag
    /// compared by digest, each blob moved once.
    #[command(after_long_help = SYNC_EXAMPLES, after_help = "See `ferry sync --help` for examples and exit codes.")]
    Sync(Box<SyncArgs>),
    /// List the tags of a repository or layout (every page), the repositories of a registry
    /// (its catalog, under a prefix), or the layouts of a directory.
    #[command(after_long_help = LS_EXAMPLES, after_help = "See `ferry ls --help` for examples and exit codes.")]
    Ls(Box<LsArgs>),
    /// Show what an image or index holds, as a tree (platforms, configs, layers, referrers,
    /// totals), or its exact manifest or config bytes.
    #[command(after_long_help = INSPECT_EXAMPLES, after_help = "See `ferry inspect --help` for examples and exit codes.")]
    Inspect(Box<InspectArgs>),
    /// Print the digest of the manifest a reference names (a HEAD where the registry answers
    /// with it).
    #[command(after_long_help = DIGEST_EXAMPLES, after_help = "See `ferry digest --help` for examples and exit codes.")]
    Digest(Box<DigestArgs>),
    /// Put the same manifest under new tags in its repository or layout (no blob moves).
    #[command(after_long_help = TAG_EXAMPLES, after_help = "See `ferry tag --help` for examples and exit codes.")]
    Tag(Box<TagArgs>),
    /// Delete a tag, or with `--manifest` a manifest and every tag naming it.
    #[command(after_long_help = RM_EXAMPLES, after_help = "See `ferry rm --help` for examples and exit codes.")]
    Rm(Box<RmArgs>),
    /// Check credentials against a registry, then store them where ferry and docker read them.
    #[command(after_long_help = LOGIN_EXAMPLES, after_help = "See `ferry login --help` for examples and exit codes.")]
    Login(Box<LoginArgs>),
    /// Remove a registry's credentials from everywhere ferry reads them.
    #[command(after_long_help = LOGOUT_EXAMPLES, after_help = "See `ferry logout --help` for examples and exit codes.")]
    Logout(Box<LogoutArgs>),
    /// Print shell completions for SHELL to stdout.
    #[command(after_help = "Example: ferry completions bash > /etc/bash_completion.d/ferry")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}
