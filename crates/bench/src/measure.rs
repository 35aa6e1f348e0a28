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

/// Writes every dirty page back (`sync`) before a measured run, so the kernel's writeback of
/// what the previous run wrote (skopeo copies 128 MiB into a layout where ferry links it) does
/// not take CPU and disk from the next one.
#[allow(unsafe_code)]
pub fn settle() {
    // SAFETY: sync(2) takes no arguments, touches no memory of this process and cannot fail.
    unsafe { libc::sync() };
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

/// The argument that makes `ferry-bench` act as the measuring parent:
/// `ferry-bench __measure OUT PROGRAM ARGS...`.
pub const HELPER_ARG: &str = "__measure";

/// The helper side: spawns `program` with `args` (stdio inherited), reaps it with `wait4`,
/// writes `wall_ns cpu_ns max_rss_bytes status` to `out`, and returns the exit code to pass on.
///
/// Why a helper: `ru_maxrss` counts the memory of the process that spawned the child up to its
/// `exec` (with `vfork`/`posix_spawn` the parent's whole address space), so a child of the
/// harness would report at least the harness's own RSS. This helper is spawned before it
/// allocates anything, so the baseline it adds is its own few MiB at start.
pub fn helper(out: &Path, program: &str, args: &[String]) -> i32 {
    let start = Instant::now();
    let child = match Command::new(program).args(args).spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("start `{program}`: {e}");
            return 127;
        }
    };
    let reaped = match wait4(child.id()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wait for `{program}`: {e}");
            return 127;
        }
    };
    let wall = start.elapsed();
    let line = format!(
        "{} {} {} {}\n",
        wall.as_nanos(),
        reaped.cpu.as_nanos(),
        reaped.max_rss,
        reaped.status
    );
    if let Err(e) = std::fs::write(out, line) {
        eprintln!("write `{}`: {e}", out.display());
        return 127;
    }
    if libc::WIFEXITED(reaped.status) {
        libc::WEXITSTATUS(reaped.status)
    } else {
        128 + libc::WTERMSIG(reaped.status)
    }
}

/// Runs `command` to completion under the measuring helper (`bench __measure`), its stdout and
/// stderr going to files in `logs` named after `label`; fails with the tail of its stderr
/// when it exits unsuccessfully.
pub fn run(bench: &Path, command: Command, logs: &Path, label: &str) -> Result<Usage> {
    let out_path = logs.join(format!("{label}.out"));
    let err_path = logs.join(format!("{label}.err"));
    let usage_path = logs.join(format!("{label}.usage"));
    let stdout = std::fs::File::create(&out_path)?;
    let stderr = std::fs::File::create(&err_path)?;
    let mut helper = Command::new(bench);
    helper
        .arg(HELPER_ARG)
        .arg(&usage_path)
        .arg(command.get_program())
        .args(command.get_args());
    for (k, v) in command.get_envs() {
        match v {
            Some(v) => helper.env(k, v),
            None => helper.env_remove(k),
        };
    }
    helper.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    let status = helper
        .status()
        .with_context(|| format!("start {command:?}"))?;
    let text = std::fs::read_to_string(&usage_path).unwrap_or_default();
    let fields: Vec<u128> = text
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    if !status.success() || fields.len() != 4 {
        let err = std::fs::read_to_string(&err_path).unwrap_or_default();
        let tail: Vec<&str> = err.lines().rev().take(8).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{label} failed ({status}): {}", tail.join(" | "));
    }
    Ok(Usage {
        wall: Duration::from_nanos(fields[0] as u64),
        cpu: Duration::from_nanos(fields[1] as u64),
        max_rss: fields[2] as u64,
    })
}

/// CPU time (user + system, every thread) processes `pids` have used together, from
/// `/proc/PID/stat`, in clock ticks (10 ms); a process that cannot be read counts zero.
pub fn processes_cpu(pids: &[u32]) -> Duration {
    pids.iter().map(|&pid| process_cpu(pid)).sum()
}

fn process_cpu(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // The fields after the command name (which may hold spaces) in parentheses.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    // SAFETY: sysconf reads a constant of the system and touches no memory of this process.
    #[allow(unsafe_code)]
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}
