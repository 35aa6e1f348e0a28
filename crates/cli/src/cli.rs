//! The command line: global options and the commands.

use clap::{Args, FromArgMatches as _, Parser, Subcommand};
use std::ffi::OsString;

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
    /// The options every command takes.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// More log output on stderr (-v: info, -vv: debug, -vvv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log every request and mount attempt (same as -vv).
    #[arg(long, global = true)]
    pub debug: bool,
}

/// What parsing changes in the derived command: `ferry inspect` takes `--config-file`, since
/// its `--config` prints an image's config.
pub(crate) fn adjust(command: clap::Command) -> clap::Command {
    if command.find_subcommand("inspect").is_none() {
        return command;
    }
    command.mut_subcommand("inspect", |c| {
        c.mut_arg("config_file", |a| a.long("config-file"))
    })
}

/// `args` parsed with a command holding only the subcommand `args[1]` names, when it names
/// one and parses: a command line's parse without building every other command's arguments
/// (a third of an everyday command's start). `None` for anything else (help, a version, a
/// global option first, an error, `completions`): the whole command parses it again and says
/// what is wrong.
pub(crate) fn parse_one(args: &[OsString]) -> Option<Cli> {
    let mut root = one_command(args.get(1)?.to_str()?)?;
    let matches = root.try_get_matches_from_mut(args.iter().cloned()).ok()?;
    Cli::from_arg_matches(&matches).ok()
}

/// The root command (its global options) with the one subcommand `name`, for parsing.
fn one_command(name: &str) -> Option<clap::Command> {
    let sub = |name: &'static str| clap::Command::new(name);
    let sub = match name {
        "cp" => CpArgs::augment_args(sub("cp")),
        "sync" => SyncArgs::augment_args(sub("sync")),
        "ls" => LsArgs::augment_args(sub("ls")),
        "inspect" => InspectArgs::augment_args(sub("inspect")),
        "digest" => DigestArgs::augment_args(sub("digest")),
        "tag" => TagArgs::augment_args(sub("tag")),
        "rm" => RmArgs::augment_args(sub("rm")),
        "login" => LoginArgs::augment_args(sub("login")),
        "logout" => LogoutArgs::augment_args(sub("logout")),
        _ => return None,
    };
    let root = clap::Command::new("ferry")
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true)
        .subcommand_required(true)
        .subcommand(sub);
    Some(adjust(Global::augment_args(root)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    /// An argument as parsing sees it.
    fn shape(a: &clap::Arg) -> String {
        format!(
            "{} {:?} {:?} {:?} {} {:?} {:?}",
            a.get_id(),
            a.get_long(),
            a.get_short(),
            a.get_num_args(),
            a.is_global_set(),
            a.get_env(),
            a.get_default_values()
        )
    }

    fn shapes(c: &clap::Command) -> Vec<String> {
        let mut v: Vec<String> = c.get_arguments().map(shape).collect();
        v.sort();
        v
    }

    #[test]
    fn every_command_parses_alone_with_the_arguments_of_the_whole_tree() {
        let whole = adjust(Cli::command());
        let mut seen = 0;
        for sub in whole.get_subcommands() {
            let name = sub.get_name();
            if name == "completions" {
                assert!(
                    one_command(name).is_none(),
                    "completions takes the whole tree"
                );
                continue;
            }
            let alone =
                one_command(name).unwrap_or_else(|| panic!("`{name}` has no one-command parse"));
            let alone_sub = alone.find_subcommand(name).expect("the subcommand");
            assert_eq!(
                shapes(alone_sub),
                shapes(sub),
                "`{name}`'s arguments differ"
            );
            assert_eq!(shapes(&alone), shapes(&whole), "the global options differ");
            seen += 1;
        }
        assert_eq!(seen, 9);
    }

    fn os(line: &str) -> Vec<OsString> {
        line.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn a_line_parses_to_the_same_command_alone_and_in_the_whole_tree() {
        for line in [
            "ferry inspect --raw --plain-http localhost:5000/a/b:1",
            "ferry inspect --config --config-file f.toml --platform linux/arm64 -v r/a:1",
            "ferry cp -q --mount cross-repo,none --to-plain-http a/b:1 c/d:2",
            "ferry sync --images 8 --file m.toml --debug",
            "ferry ls --semver >=1 --latest 3 --format json r/a",
            "ferry digest --platform linux/amd64 r/a:1",
            "ferry tag r/a:1 2 3",
            "ferry rm --manifest --yes r/a:1",
            "ferry login -u me --password-stdin r.example",
            "ferry logout r.example",
        ] {
            let alone =
                parse_one(&os(line)).unwrap_or_else(|| panic!("`{line}` did not parse alone"));
            let whole = Cli::from_arg_matches(
                &adjust(Cli::command())
                    .try_get_matches_from(os(line))
                    .unwrap_or_else(|e| panic!("`{line}`: {e}")),
            )
            .expect("the whole tree's parse");
            assert_eq!(format!("{alone:?}"), format!("{whole:?}"), "`{line}`");
        }
    }

    #[test]
    fn help_versions_errors_and_global_options_first_are_left_to_the_whole_tree() {
        for line in [
            "ferry inspect --help",
            "ferry inspect -h",
            "ferry cp --version",
            "ferry inspect --no-such-flag r/a:1",
            "ferry -v inspect r/a:1",
            "ferry completions bash",
            "ferry --version",
            "ferry inspct r/a:1",
        ] {
            assert!(parse_one(&os(line)).is_none(), "`{line}` parsed alone");
        }
    }
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
