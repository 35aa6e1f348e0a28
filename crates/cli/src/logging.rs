//! Log lines on stderr, every one redacted.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The crates whose events `-vv` shows.
const CRATES: &[&str] = &[
    "ferry",
    "ferry_cli",
    "ferry_core",
    "ferry_sync",
    "ferry_http",
    "ferry_cache",
    "ferry_distribution",
    "ferry_fs_store",
    "ferry_ipfs_mount",
];

/// Logs at `warn`, or `info` (`-v`), `debug` of ferry's crates (`-vv`, `--debug`), `trace`
/// (`-vvv`); `RUST_LOG` overrides. A program that embeds ferry's CLI ([`crate::Ferry`]) adds
/// its own crate with `extra`.
pub fn init(verbose: u8, debug: bool, extra: &[String]) {
    let default = match (debug, verbose) {
        (true, _) | (_, 2) => CRATES
            .iter()
            .map(|c| c.to_string())
            .chain(extra.iter().cloned())
            .map(|c| format!("{c}=debug"))
            .collect::<Vec<_>>()
            .join(","),
        (_, 0) => "warn".into(),
        (_, 1) => "info".into(),
        _ => "trace".into(),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| RedactingStderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
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
