//! Other tools' binaries for interop tests: the peers in `../shared/peers/bin` (crane,
//! regctl, oras) and a Docker daemon of its own. Each is optional: a test that finds one
//! absent skips that part with a note on stderr, so CI, which lacks them, passes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::util::wait_for;

/// The peer binary `name` (`crane`, `regctl`, `oras`), from `$FERRY_PEERS` or the shared
/// `peers/bin` beside the repository; `None`, with a note on stderr, when it is absent.
pub fn peer(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("FERRY_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peers/bin"));
    let path = dir.join(name);
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "note: `{name}` is not in {}; skipping what needs it (set FERRY_PEERS to its directory)",
            dir.display()
        );
        None
    }
}

/// Runs `program` with `args` (and `env`), failing with its stderr when it fails.
pub fn run_peer(program: &Path, args: &[&str], env: &[(&str, &Path)]) -> Result<Output> {
    let mut command = Command::new(program);
    command.args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    let line = format!("{} {}", program.display(), args.join(" "));
    let output = command
        .output()
        .map_err(|e| Error::io(format!("run `{line}`"), e))?;
    if !output.status.success() {
        return Err(Error::Command {
            command: line,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(output)
}

/// A Docker daemon of the test's own (`dockerd` as root, the `vfs` storage driver, no
/// network set-up), on a socket in its temporary directory; stopped when dropped.
pub struct DockerDaemon {
    dir: tempfile::TempDir,
    child: Child,
}

impl DockerDaemon {
    /// Starts one and waits until it answers; `None`, with a note on stderr saying why, when
    /// `dockerd` is absent, the process is not root, or the daemon does not come up.
    pub fn start() -> Option<Self> {
        let skip = |why: String| {
            eprintln!("note: no Docker daemon ({why}); skipping what needs `docker load`");
            None
        };
        if !Path::new("/usr/sbin/dockerd").exists() && which("dockerd").is_none() {
            return skip("`dockerd` is not installed".into());
        }
        if which("docker").is_none() {
            return skip("the `docker` client is not installed".into());
        }
        // Only root may run dockerd; `id -u` says who we are without unsafe code.
        let uid = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return skip("not running as root".into());
        }
        let dir = tempfile::Builder::new()
            .prefix("ferry-dockerd-")
            .tempdir()
            .ok()?;
        let log = std::fs::File::create(dir.path().join("dockerd.log")).ok()?;
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(dir.path().join("root"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("dockerd.pid"))
            .arg("-H")
            .arg(format!(
                "unix://{}",
                dir.path().join("docker.sock").display()
            ))
            .args([
                "--storage-driver",
                "vfs",
                "--iptables=false",
                "--bridge=none",
                "--ip-masq=false",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => return skip(format!("`dockerd` did not start: {e}")),
        };
        let daemon = Self { dir, child };
        if !wait_for(Duration::from_secs(60), || {
            daemon.docker(&["version"]).is_ok()
        }) {
            let log =
                std::fs::read_to_string(daemon.dir.path().join("dockerd.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            return skip(format!(
                "it did not answer within 60 s: {}",
                tail.join(" | ")
            ));
        }
        Some(daemon)
    }

    /// The daemon's address, for `docker -H`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    /// Runs `docker <args>` against this daemon.
    pub fn docker(&self, args: &[&str]) -> Result<Output> {
        let host = self.host();
        let mut all = vec!["-H", host.as_str()];
        all.extend_from_slice(args);
        crate::util::run("docker", &all)
    }
}

impl Drop for DockerDaemon {
    fn drop(&mut self) {
        // SIGTERM lets dockerd stop the containerd it started.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = wait_for(Duration::from_secs(20), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}
