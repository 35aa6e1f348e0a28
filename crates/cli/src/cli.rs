//! The command line: global options and the commands.

use clap::{Parser, Subcommand};

use crate::commands::cp::{CP_EXAMPLES, CpArgs};
use crate::commands::sync::{SYNC_EXAMPLES, SyncArgs};

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
    /// Print shell completions for SHELL to stdout.
    #[command(after_help = "Example: ferry completions bash > /etc/bash_completion.d/ferry")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}
