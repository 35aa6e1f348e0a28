//! Runs a tool as a child process and measures it: wall time, CPU time (user + system) and
//! peak resident set size, from `wait4`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// What one run of a tool cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Wall time from spawn to exit.
    pub wall: Duration,
    /// User + system CPU time of the process (and the children it waited for).
    pub cpu: Duration,
    /// Peak resident set size in bytes.
    pub max_rss: u64,
}

/// The exit status and resource usage of a finished child.
struct Reaped {
    status: i32,
    cpu: Duration,
    max_rss: u64,
}

/// Waits for `pid` with `wait4` and returns its raw status and rusage.
#[allow(unsafe_code)]
fn wait4(pid: u32) -> std::io::Result<Reaped> {
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is a plain C struct for which all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are valid, exclusive pointers to live locals for the
        // duration of the call; `pid` is a child of this process that nothing else reaps.
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if r == pid as libc::pid_t {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    Ok(Reaped {
        status,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        // Linux reports ru_maxrss in KiB.
        max_rss: (usage.ru_maxrss as u64) * 1024,
    })
}

/// Runs `command` to completion, its stdout and stderr going to files in `logs` named after
/// `label`; fails with the tail of its stderr when it exits unsuccessfully.
pub fn run(mut command: Command, logs: &Path, label: &str) -> Result<Usage> {
    let out_path = logs.join(format!("{label}.out"));
    let err_path = logs.join(format!("{label}.err"));
    let stdout = std::fs::File::create(&out_path)?;
    let stderr = std::fs::File::create(&err_path)?;
    command.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    let start = Instant::now();
    let child = command
        .spawn()
        .with_context(|| format!("start {command:?}"))?;
    // The child is reaped here by `wait4`, never by `Child::wait`.
    let reaped = wait4(child.id()).with_context(|| format!("wait for {command:?}"))?;
    let wall = start.elapsed();
    if !(libc::WIFEXITED(reaped.status) && libc::WEXITSTATUS(reaped.status) == 0) {
        let err = std::fs::read_to_string(&err_path).unwrap_or_default();
        let tail: Vec<&str> = err.lines().rev().take(8).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "{label} failed (wait status {}): {}",
            reaped.status,
            tail.join(" | ")
        );
    }
    Ok(Usage {
        wall,
        cpu: reaped.cpu,
        max_rss: reaped.max_rss,
    })
}
