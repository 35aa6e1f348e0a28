//! `ferry`: copy OCI content between registries and image layouts, mounting instead of copying.

mod args;
mod config;
mod cp;
mod endpoint;
mod output;
mod stores;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use tracing_subscriber::EnvFilter;

use args::{Cli, Command};

/// Exit codes, as `ferry cp --help` documents them.
mod exit {
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NOT_FOUND: u8 = 3;
    pub const AUTH: u8 = 4;
    pub const INTEGRITY: u8 = 5;
}

fn init_logging(cli: &Cli) {
    let default = match (cli.debug, cli.verbose) {
        (true, _) | (_, 2) => {
            "ferry=debug,ferry_core=debug,ferry_distribution=debug,ferry_fs_store=debug,ferry_ipfs_mount=debug"
        }
        (_, 0) => "warn",
        (_, 1) => "info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| RedactingStderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// stderr for log lines, each passed through [`ferry_core::redact::text`]: every field of
/// every event is free of URL credentials, whichever crate logged it. The formatter writes an
/// event in one `write_all`, so no URL is split between two writes.
struct RedactingStderr;

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr()
            .lock()
            .write_all(ferry_core::redact::text(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<ferry_core::Error>() {
            return match e {
                ferry_core::Error::NotFound { .. } => exit::NOT_FOUND,
                ferry_core::Error::InvalidInput { .. }
                | ferry_core::Error::UnsupportedDigest { .. }
                | ferry_core::Error::NotSupported { .. }
                | ferry_core::Error::TooLarge { .. } => exit::USAGE,
                ferry_core::Error::Unauthenticated { .. }
                | ferry_core::Error::PermissionDenied { .. } => exit::AUTH,
                ferry_core::Error::DigestMismatch { .. }
                | ferry_core::Error::SizeMismatch { .. } => exit::INTEGRITY,
                _ => exit::FAILED,
            };
        }
    }
    exit::FAILED
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "ferry", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Cp(args) => {
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
            match runtime.block_on(cp::run(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {}", ferry_core::redact::text(&format!("{e:#}")));
                    ExitCode::from(exit_code(&e))
                }
            }
        }
    }
}
