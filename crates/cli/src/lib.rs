//! ferry-cli: the `ferry` command, as a library a registry operator builds their own `ferry`
//! from, with their own mount strategy registered in one line:
//!
//! ```no_run
//! # #[derive(Debug)] struct AdminLinkFactory;
//! # impl ferry_core::StrategyFactory for AdminLinkFactory {
//! #     fn name(&self) -> &'static str { "admin-link" }
//! #     fn summary(&self) -> &'static str { "" }
//! #     fn build(&self, _: &ferry_core::StrategyConfig)
//! #         -> ferry_core::Result<std::sync::Arc<dyn ferry_core::MountStrategy>> { unimplemented!() }
//! # }
//! fn main() -> std::process::ExitCode {
//!     ferry_cli::Ferry::default().with_strategy(AdminLinkFactory).main()
//! }
//! ```
//!
//! The strategy's name is then taken by `--mount`, listed by `--help` with its settings, set
//! by `--mount-opt NAME.KEY=VALUE` and the `[mount.NAME]` table of `ferry.toml`, and named in
//! dry runs and reports.

mod app;
mod archive;
mod cli;
mod commands;
mod config;
mod endpoint;
mod exit;
mod logging;
mod options;
mod output;
mod setup;
mod signals;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use ferry_core::{StrategyFactories, StrategyFactory};
use ferry_distribution::CrossRepoFactory;
use ferry_fs_store::{DistributionStorageFactory, SharedStorageFactory};
use ferry_ipfs_mount::IpfsFactory;

use app::App;
use cli::{Cli, Command, Global};

/// The `ferry` command with the mount strategies it offers.
#[derive(Debug, Clone)]
pub struct Ferry {
    factories: StrategyFactories,
    log_targets: Vec<String>,
}

/// ferry's own strategies, in the order `auto` tries them: `cross-repo`,
/// `distribution-storage`, `shared-storage`, `ipfs`.
impl Default for Ferry {
    fn default() -> Self {
        Self::new()
            .with_strategy(CrossRepoFactory)
            .with_strategy(DistributionStorageFactory)
            .with_strategy(SharedStorageFactory)
            .with_strategy(IpfsFactory)
    }
}

impl Ferry {
    /// The command with no mount strategy.
    pub fn new() -> Self {
        Self {
            factories: StrategyFactories::new(),
            log_targets: Vec::new(),
        }
    }

    /// Offers `factory`'s strategy (last in `auto`; in place of one of the same name).
    pub fn with_strategy(mut self, factory: impl StrategyFactory) -> Self {
        self.factories = self.factories.with(factory);
        self
    }

    /// Also shows the events of the crate `target` (`my_strategy`) at `-vv`.
    pub fn with_log_target(mut self, target: impl Into<String>) -> Self {
        self.log_targets.push(target.into());
        self
    }

    /// The strategies offered.
    pub fn factories(&self) -> &StrategyFactories {
        &self.factories
    }

    /// The clap command, with the help of `--mount`, `--mount-opt` and `--dry-run` made from
    /// the strategies offered.
    pub fn command(&self) -> clap::Command {
        let mount = setup::chain::mount_help(&self.factories);
        let mount_opt = setup::chain::mount_opt_help(&self.factories);
        let dry_run = setup::chain::dry_run_help(&self.factories);
        let names = self.factories.names().join(", ");
        let short = format!("Mount strategies to try, in order: auto, none, or of: {names}");
        let copy_args = |c: clap::Command| {
            c.mut_arg("mount", |a| a.help(short.clone()).long_help(mount.clone()))
                .mut_arg("mount_opt", |a| a.long_help(mount_opt.clone()))
                .mut_arg("dry_run", |a| a.long_help(dry_run.clone()))
        };
        cli::adjust(
            Cli::command()
                .mut_subcommand("cp", copy_args)
                .mut_subcommand("sync", copy_args),
        )
    }

    /// Runs `ferry` with the process's arguments; returns its exit code.
    pub fn main(self) -> ExitCode {
        self.run(std::env::args_os())
    }

    /// Runs `ferry` with `args` (the first is the program's name).
    pub fn run<I, T>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        tune_malloc();
        // The process-wide rustls provider is the application's choice: ferry's libraries
        // hand theirs to their clients and install none. `ring` is what they use, and what the
        // clients that take rustls' default (the object-storage client of the S3 storage
        // strategy) get.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let cli = match cli::parse_one(&args) {
            Some(cli) => cli,
            None => {
                let mut command = self.command();
                let matches = command
                    .try_get_matches_from_mut(args)
                    .unwrap_or_else(|e| e.exit());
                match Cli::from_arg_matches(&matches) {
                    Ok(cli) => cli,
                    Err(e) => e.format(&mut command).exit(),
                }
            }
        };
        let Global { verbose, debug } = cli.global;
        logging::init(verbose, debug, &self.log_targets);
        let app = App {
            factories: self.factories.clone(),
            verbose: verbose > 0 || debug,
        };
        match cli.command {
            Command::Completions { shell } => {
                let mut command = self.command();
                clap_complete::generate(shell, &mut command, "ferry", &mut std::io::stdout());
                ExitCode::SUCCESS
            }
            Command::Cp(args) => run_async(&app, |app| commands::cp::run(app, *args)),
            Command::Sync(args) => run_async(&app, |app| commands::sync::run(app, *args)),
            Command::Ls(args) => run_async(&app, |app| commands::ls::run(app, *args)),
            Command::Inspect(args) => run_async(&app, |app| commands::inspect::run(app, *args)),
            Command::Digest(args) => run_async(&app, |app| commands::digest::run(app, *args)),
            Command::Tag(args) => run_async(&app, |app| commands::tag::run(app, *args)),
            Command::Rm(args) => run_async(&app, |app| commands::rm::run(app, *args)),
            Command::Login(args) => run_async(&app, |app| commands::login::run(app, *args)),
            Command::Logout(args) => run_async(&app, |app| commands::logout::run(app, *args)),
        }
    }
}

/// Runs a command on a multi-threaded runtime; its error is printed as one sentence.
fn run_async<'a, F, Fut>(app: &'a App, command: F) -> ExitCode
where
    F: FnOnce(&'a App) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u8>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    match runtime.block_on(command(app)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!(
                "error: {}",
                ferry_core::redact::text(&exit::message(&e, app.verbose))
            );
            ExitCode::from(exit::code(&e))
        }
    }
}

/// Keeps glibc's allocator from handing the memory of ferry's transfer buffers back to the
/// kernel between chunks.
///
/// A blob moves in chunks of a few hundred KiB (256 KiB layout reads, hyper's read buffers),
/// a few per transfer and up to eight transfers at once. glibc serves allocations above its
/// dynamic mmap threshold (128 KiB at first) with fresh mappings, and gives the free top of a
/// thread's heap back to the kernel once it exceeds twice that: so chunk after chunk was mapped
/// or re-faulted, zeroed and unmapped again. With the thresholds set to 4 MiB and 64 MiB,
/// a 128 MiB layout → registry copy takes about 3,800 page faults instead of 8,600 and 11% less
/// CPU, registry → registry 4% and registry → layout 5% less (BENCHMARKS.md). Freed memory stays
/// with the process up to the trim threshold; a user's own `GLIBC_TUNABLES` malloc settings are
/// left as they are.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_malloc() {
    if std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc.")) {
        return;
    }
    // SAFETY: `mallopt` only sets allocator parameters; it is called before any other thread
    // exists, and a value it refuses is left at glibc's default (it then returns 0).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

/// Other allocators manage their memory their own way.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}
