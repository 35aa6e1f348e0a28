//! `ferry`: copy OCI content between registries and image layouts, mounting instead of copying.

mod args;
mod config;
mod cp;
mod endpoint;
mod output;
mod stores;
mod sync;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use tracing_subscriber::EnvFilter;

use args::{Cli, Command};

/// Exit codes, as `ferry cp --help` and `ferry sync --help` document them.
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

/// The message of `err`: one sentence. The chain of contexts down to the first ferry error,
/// whose message is whole (a transport error names the host and the cause); with `verbose`
/// the causes below it follow, once each.
fn message(err: &anyhow::Error, verbose: bool) -> String {
    let mut out = String::new();
    let mut causes = Vec::new();
    let mut whole = false;
    for cause in err.chain() {
        let text = cause.to_string();
        if whole {
            if verbose && !out.contains(&text) && !causes.contains(&text) {
                causes.push(text);
            }
            continue;
        }
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        whole = cause.downcast_ref::<ferry_core::Error>().is_some();
    }
    for c in causes {
        out.push_str("\n  caused by: ");
        out.push_str(&c);
    }
    out
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

fn main() -> ExitCode {
    tune_malloc();
    // The process-wide rustls provider is the application's choice: ferry's libraries hand
    // theirs to their clients and install none. `ring` is what they use, and what the clients
    // that take rustls' default (the object-storage client of the S3 storage strategy) get.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    init_logging(&cli);
    let verbose = cli.verbose > 0 || cli.debug;
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "ferry", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Cp(args) => {
            let Some(runtime) = runtime() else {
                return ExitCode::from(exit::FAILED);
            };
            match runtime.block_on(cp::run(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {}", ferry_core::redact::text(&message(&e, verbose)));
                    ExitCode::from(exit_code(&e))
                }
            }
        }
        Command::Sync(args) => {
            let Some(runtime) = runtime() else {
                return ExitCode::from(exit::FAILED);
            };
            runtime.block_on(async {
                let stop = ferry_sync::Stop::new();
                if let Err(e) = watch_signals(stop.clone()) {
                    eprintln!("error: cannot watch for SIGINT and SIGTERM: {e}");
                    return ExitCode::from(exit::FAILED);
                }
                match sync::run(*args, verbose, stop).await {
                    Ok(code) => ExitCode::from(code),
                    Err(e) => {
                        eprintln!("error: {}", ferry_core::redact::text(&message(&e, verbose)));
                        ExitCode::from(exit_code(&e))
                    }
                }
            })
        }
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            None
        }
    }
}

/// SIGINT and SIGTERM stop a sync: the first gently, a second at once.
fn watch_signals(stop: ferry_sync::Stop) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                Some(()) = interrupt.recv() => "SIGINT",
                Some(()) = terminate.recv() => "SIGTERM",
                else => return,
            };
            if !sync::RUNNING.load(std::sync::atomic::Ordering::SeqCst)
                || stop.level() == ferry_sync::StopLevel::Abort
            {
                // Nothing is being copied (or a stop at once was asked already): end now.
                eprintln!("ferry: {name}: exiting");
                std::process::exit(i32::from(exit::FAILED));
            }
            match stop.escalate() {
                ferry_sync::StopLevel::Drain => eprintln!(
                    "ferry: {name}: stopping; no new image starts, the images in flight may \
                     finish within the grace period (send it again to stop at once)"
                ),
                _ => eprintln!("ferry: {name} again: stopping the images in flight at once"),
            }
        }
    });
    Ok(())
}
