//! A real CNCF distribution 2.8 registry (`/usr/bin/docker-registry`) on loopback.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::util::{POLL_INTERVAL, blocking_status, free_port, tail, tempdir};

/// The registry binary the tests run (Debian package `docker-registry`).
pub const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";

/// How long [`RegistryBuilder::start`] waits for `GET /v2/` to answer.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

/// Query marker of the requests this crate sends itself (readiness and log syncs); they are
/// left out of [`Registry::requests`].
const OWN_MARKER: &str = "_ferry_test_support";

/// The `auth: token` settings of a registry. [`RegistryBuilder::token_auth`] fills them from a
/// `TokenIssuer`.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    /// URL of the token endpoint, announced in the `WWW-Authenticate: Bearer realm=` challenge.
    pub realm: String,
    /// The service name (the token's audience).
    pub service: String,
    /// The issuer name the registry trusts (the token's `iss`).
    pub issuer: String,
    /// PEM file of the certificates whose keys (or chain roots) sign tokens.
    pub root_cert_bundle: PathBuf,
}

/// Options of the S3 storage driver (`storage: s3`), for S3-compatible stores such as
/// SeaweedFS on loopback.
#[derive(Debug, Clone)]
pub struct S3Storage {
    /// Region, such as `us-east-1`.
    pub region: String,
    /// Endpoint URL, such as `http://127.0.0.1:8333`.
    pub region_endpoint: String,
    /// Bucket name.
    pub bucket: String,
    /// Prefix inside the bucket under which the registry keeps its data, such as `/registry`.
    pub root_directory: String,
    /// Access key.
    pub access_key: String,
    /// Secret key.
    pub secret_key: String,
    /// Whether to use HTTPS (`secure`).
    pub secure: bool,
    /// Whether to sign with AWS signature version 4 (`v4auth`).
    pub v4auth: bool,
}

impl S3Storage {
    /// Settings for an endpoint on plain HTTP with signature v4 and region `us-east-1`.
    pub fn new(
        region_endpoint: impl Into<String>,
        bucket: impl Into<String>,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Self {
        Self {
            region: "us-east-1".into(),
            region_endpoint: region_endpoint.into(),
            bucket: bucket.into(),
            root_directory: "/".into(),
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            secure: false,
            v4auth: true,
        }
    }

    /// Sets the prefix inside the bucket.
    pub fn root_directory(mut self, root: impl Into<String>) -> Self {
        self.root_directory = root.into();
        self
    }
}

/// Builds a [`Registry`]: storage, auth, extra environment.
#[derive(Debug, Clone)]
pub struct RegistryBuilder {
    root: Option<PathBuf>,
    create_root: bool,
    users: Vec<(String, String)>,
    token: Option<TokenAuth>,
    s3: Option<S3Storage>,
    redirect: bool,
    delete: bool,
    http_secret: String,
    env: Vec<(String, String)>,
    tls: bool,
    /// The certificate served with TLS; self-signed when `None`.
    certificate: Option<crate::tls::Issued>,
    /// PEM files of the CAs whose client certificates are required (`http.tls.clientcas`).
    client_cas: Vec<PathBuf>,
    /// Listen on `[::1]` instead of 127.0.0.1.
    ipv6: bool,
}

impl Default for RegistryBuilder {
    fn default() -> Self {
        Self::new()
    }
}

static NEXT_SECRET: AtomicU64 = AtomicU64::new(1);

impl RegistryBuilder {
    /// Filesystem storage in the registry's own temporary directory, no auth, deletes enabled.
    pub fn new() -> Self {
        Self {
            root: None,
            create_root: true,
            users: Vec::new(),
            token: None,
            s3: None,
            redirect: false,
            delete: true,
            http_secret: format!(
                "ferry-test-secret-{}-{}",
                std::process::id(),
                NEXT_SECRET.fetch_add(1, Ordering::Relaxed)
            ),
            env: Vec::new(),
            tls: false,
            certificate: None,
            client_cas: Vec::new(),
            ipv6: false,
        }
    }

    /// Listens on the IPv6 loopback `[::1]` instead of 127.0.0.1 (its address is then
    /// `[::1]:PORT`). See [`Registry::ipv6_available`].
    pub fn ipv6(mut self, enabled: bool) -> Self {
        self.ipv6 = enabled;
        self
    }

    fn host(&self) -> &'static str {
        if self.ipv6 { "[::1]" } else { "127.0.0.1" }
    }

    /// Serves HTTPS (HTTP/1.1 and HTTP/2 by ALPN) with a self-signed certificate for
    /// `127.0.0.1` and `localhost`, so clients must trust it explicitly or skip verification.
    /// The access-log helpers read the log as written: requests whose answers the client did
    /// not wait for may be missing (over TLS the registry is not asked for a marker request).
    pub fn tls(mut self, enabled: bool) -> Self {
        self.tls = enabled;
        self
    }

    /// Serves HTTPS with a certificate for `127.0.0.1` and `localhost` issued by `ca`, which
    /// clients are told to trust (`--ca-cert`).
    pub fn tls_issued_by(mut self, ca: &crate::tls::TestCa) -> Result<Self> {
        self.certificate = Some(ca.issue(&["127.0.0.1", "localhost"])?);
        self.tls = true;
        Ok(self)
    }

    /// Serves HTTPS with a certificate for `names` (host names or addresses, such as
    /// `registry.test` reached through a proxy) issued by `ca`.
    pub fn tls_issued_for(mut self, ca: &crate::tls::TestCa, names: &[&str]) -> Result<Self> {
        self.certificate = Some(ca.issue(names)?);
        self.tls = true;
        Ok(self)
    }

    /// Requires a client certificate issued by a CA of the PEM file `ca_file`
    /// (`http.tls.clientcas`; repeatable). Only with TLS.
    pub fn client_ca(mut self, ca_file: impl Into<PathBuf>) -> Self {
        self.client_cas.push(ca_file.into());
        self
    }

    /// Serves HTTPS with `certificate` as it is: for example one made with `openssl req -x509`,
    /// self-signed and marked as a CA, as users make for a registry of their own.
    pub fn tls_certificate(mut self, certificate: crate::tls::Issued) -> Self {
        self.certificate = Some(certificate);
        self.tls = true;
        self
    }

    /// Keeps the filesystem storage in `root` instead of the registry's own temporary
    /// directory, so two registries can share one directory or one filesystem. `root` is
    /// created if missing, unless [`Self::create_root`] says not.
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.root = Some(root.into());
        self
    }

    /// Whether the filesystem root is created before the registry starts (default: yes).
    /// `false` leaves it to the registry, which creates it on its first write: the storage
    /// of a freshly deployed registry that has never stored anything.
    pub fn create_root(mut self, create: bool) -> Self {
        self.create_root = create;
        self
    }

    /// Enables htpasswd basic auth and adds `user` with `password` (bcrypt-hashed).
    pub fn user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.push((user.into(), password.into()));
        self
    }

    /// Enables htpasswd basic auth with these users and passwords.
    pub fn htpasswd<U, P>(mut self, users: impl IntoIterator<Item = (U, P)>) -> Self
    where
        U: Into<String>,
        P: Into<String>,
    {
        self.users
            .extend(users.into_iter().map(|(u, p)| (u.into(), p.into())));
        self
    }

    /// Enables token auth with explicit settings.
    pub fn token(mut self, token: TokenAuth) -> Self {
        self.token = Some(token);
        self
    }

    /// Enables token auth trusting `issuer`'s tokens.
    pub fn token_auth(self, issuer: &crate::token::TokenIssuer) -> Self {
        self.token(issuer.registry_auth())
    }

    /// Stores data with the S3 driver instead of the filesystem. `AWS_CA_BUNDLE` is removed
    /// from the registry's environment.
    pub fn s3(mut self, s3: S3Storage) -> Self {
        self.s3 = Some(s3);
        self
    }

    /// Whether blob GETs may redirect to the storage backend (S3 presigned URLs). Off by
    /// default: the registry serves the bytes itself.
    pub fn redirect(mut self, enabled: bool) -> Self {
        self.redirect = enabled;
        self
    }

    /// Whether `DELETE` of manifests and blobs is allowed (default: yes).
    pub fn delete(mut self, enabled: bool) -> Self {
        self.delete = enabled;
        self
    }

    /// Sets `http.secret`, which signs upload state; registries that must accept each other's
    /// upload URLs need the same one. Default: unique per builder.
    pub fn http_secret(mut self, secret: impl Into<String>) -> Self {
        self.http_secret = secret.into();
        self
    }

    /// Adds an environment variable for the registry process (such as `REGISTRY_...`
    /// overrides of the configuration).
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Writes the configuration, starts the registry on a free port of 127.0.0.1 and waits
    /// until `GET /v2/` answers 200 or 401.
    pub fn start(self) -> Result<Registry> {
        if !Path::new(REGISTRY_BINARY).exists() {
            return Err(Error::Setup(format!(
                "`{REGISTRY_BINARY}` is missing; install it with `apt-get install -y docker-registry`"
            )));
        }
        let dir = tempdir();
        let root = match &self.root {
            Some(root) => root.clone(),
            None => dir.path().join("storage"),
        };
        if self.s3.is_none() && self.create_root {
            fs_create_dir_all(&root)?;
        }
        if !self.users.is_empty() {
            let mut content = String::new();
            for (user, password) in &self.users {
                let hash = bcrypt::hash_with_result(password, 4)
                    .map_err(|e| {
                        Error::Setup(format!("bcrypt-hash the password of `{user}`: {e}"))
                    })?
                    .format_for_version(bcrypt::Version::TwoY);
                let _ = writeln!(content, "{user}:{hash}");
            }
            fs_write(&dir.path().join("htpasswd"), content)?;
        }
        match (&self.certificate, self.tls) {
            (Some(issued), true) => {
                fs_write(&dir.path().join("tls.crt"), &issued.cert_pem)?;
                fs_write(&dir.path().join("tls.key"), &issued.key_pem)?;
            }
            (None, true) => write_self_signed(dir.path())?,
            _ => {}
        }
        let mut last_error = None;
        for _ in 0..5 {
            let port = free_port();
            match self.try_start(&dir, &root, port) {
                Ok(child) => {
                    return Ok(Registry {
                        child,
                        addr: format!("{}:{port}", self.host()),
                        root,
                        access_log: dir.path().join("access.log"),
                        error_log: dir.path().join("registry.log"),
                        baseline: Mutex::new(0),
                        syncs: AtomicU64::new(0),
                        tls: self.tls,
                        _dir: dir,
                    });
                }
                Err((error, retry)) => {
                    if !retry {
                        return Err(error);
                    }
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| Error::Setup("registry did not start".into())))
    }

    fn config(&self, dir: &Path, root: &Path, port: u16) -> String {
        let q = |s: &str| serde_json::to_string(s).expect("string to JSON");
        let mut c = String::new();
        let _ = writeln!(c, "version: 0.1");
        let _ = writeln!(c, "log:\n  level: info\n  formatter: json");
        let _ = writeln!(c, "  accesslog:\n    disabled: false");
        let _ = writeln!(c, "storage:");
        match &self.s3 {
            Some(s3) => {
                let _ = writeln!(c, "  s3:");
                let _ = writeln!(c, "    region: {}", q(&s3.region));
                let _ = writeln!(c, "    regionendpoint: {}", q(&s3.region_endpoint));
                let _ = writeln!(c, "    bucket: {}", q(&s3.bucket));
                let _ = writeln!(c, "    rootdirectory: {}", q(&s3.root_directory));
                let _ = writeln!(c, "    accesskey: {}", q(&s3.access_key));
                let _ = writeln!(c, "    secretkey: {}", q(&s3.secret_key));
                let _ = writeln!(c, "    secure: {}", s3.secure);
                let _ = writeln!(c, "    v4auth: {}", s3.v4auth);
            }
            None => {
                let _ = writeln!(c, "  filesystem:");
                let _ = writeln!(c, "    rootdirectory: {}", q(&root.to_string_lossy()));
            }
        }
        let _ = writeln!(c, "  delete:\n    enabled: {}", self.delete);
        let _ = writeln!(c, "  redirect:\n    disable: {}", !self.redirect);
        let _ = writeln!(
            c,
            "  maintenance:\n    uploadpurging:\n      enabled: false"
        );
        let _ = writeln!(c, "http:");
        let _ = writeln!(c, "  addr: {}", q(&format!("{}:{port}", self.host())));
        let _ = writeln!(c, "  secret: {}", q(&self.http_secret));
        if self.tls {
            let _ = writeln!(c, "  tls:");
            let _ = writeln!(
                c,
                "    certificate: {}",
                q(&dir.join("tls.crt").to_string_lossy())
            );
            let _ = writeln!(c, "    key: {}", q(&dir.join("tls.key").to_string_lossy()));
            if !self.client_cas.is_empty() {
                let _ = writeln!(c, "    clientcas:");
                for ca in &self.client_cas {
                    let _ = writeln!(c, "      - {}", q(&ca.to_string_lossy()));
                }
            }
        }
        if let Some(token) = &self.token {
            let _ = writeln!(c, "auth:\n  token:");
            let _ = writeln!(c, "    realm: {}", q(&token.realm));
            let _ = writeln!(c, "    service: {}", q(&token.service));
            let _ = writeln!(c, "    issuer: {}", q(&token.issuer));
            let _ = writeln!(
                c,
                "    rootcertbundle: {}",
                q(&token.root_cert_bundle.to_string_lossy())
            );
        } else if !self.users.is_empty() {
            let _ = writeln!(c, "auth:\n  htpasswd:");
            let _ = writeln!(c, "    realm: \"ferry-test\"");
            let _ = writeln!(
                c,
                "    path: {}",
                q(&dir.join("htpasswd").to_string_lossy())
            );
        }
        c
    }

    /// Starts the process on `port`; on failure says whether another port may help.
    fn try_start(
        &self,
        dir: &tempfile::TempDir,
        root: &Path,
        port: u16,
    ) -> std::result::Result<Child, (Error, bool)> {
        let config_path = dir.path().join("config.yml");
        fs_write(&config_path, self.config(dir.path(), root, port)).map_err(|e| (e, false))?;
        let access_log = dir.path().join("access.log");
        let error_log = dir.path().join("registry.log");
        let open = |path: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| (Error::io(format!("open `{}`", path.display()), e), false))
        };
        let stdout = open(&access_log)?;
        let stderr = open(&error_log)?;
        let mut command = Command::new(REGISTRY_BINARY);
        command
            .arg("serve")
            .arg(&config_path)
            .current_dir(dir.path())
            .env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        for (name, value) in &self.env {
            command.env(name, value);
        }
        tracing::debug!(port, config = %config_path.display(), "starting docker-registry");
        let mut child = command
            .spawn()
            .map_err(|e| (Error::io(format!("start `{REGISTRY_BINARY}`"), e), false))?;
        let addr = format!("{}:{port}", self.host());
        let deadline = Instant::now() + STARTUP_DEADLINE;
        let probe = format!("/v2/?{OWN_MARKER}=ready");
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = tail(&error_log);
                let retry = log.contains("address already in use");
                return Err((
                    Error::Startup {
                        program: REGISTRY_BINARY.into(),
                        reason: format!(
                            "it exited with {status} (config `{}`)",
                            config_path.display()
                        ),
                        log,
                    },
                    retry,
                ));
            }
            match blocking_status(&addr, &probe) {
                Ok(200 | 401) => return Ok(child),
                // Go's TLS server answers a plain-HTTP request with 400: it is listening.
                Ok(400) if self.tls => return Ok(child),
                _ => {}
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err((
                    Error::Startup {
                        program: REGISTRY_BINARY.into(),
                        reason: format!(
                            "`GET http://{addr}/v2/` did not answer 200 or 401 within {STARTUP_DEADLINE:?}"
                        ),
                        log: tail(&error_log),
                    },
                    false,
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

/// One request from the registry's access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// The method, such as `HEAD`.
    pub method: String,
    /// The path, such as `/v2/foo/blobs/sha256:...`.
    pub path: String,
    /// The query string without `?`, empty when there was none.
    pub query: String,
    /// The status code of the answer.
    pub status: u16,
    /// The protocol (`HTTP/1.1`, `HTTP/2.0`), when the log says.
    pub protocol: String,
}

impl LoggedRequest {
    /// The value of query parameter `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// Parses one access-log line: Apache combined format
    /// (`127.0.0.1 - - [date] "GET /v2/ HTTP/1.1" 200 2 "" "agent"`) or a JSON log entry
    /// with `http.request.method`, `http.request.uri` and `http.response.status`.
    pub fn parse(line: &str) -> Option<Self> {
        let line = line.trim();
        if line.starts_with('{') {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            let method = v.get("http.request.method")?.as_str()?.to_string();
            let uri = v.get("http.request.uri")?.as_str()?;
            let status = v.get("http.response.status")?.as_u64()? as u16;
            let (path, query) = split_uri(uri);
            let protocol = v
                .get("http.request.proto")
                .and_then(|p| p.as_str())
                .unwrap_or_default()
                .to_string();
            return Some(Self {
                method,
                path,
                query,
                status,
                protocol,
            });
        }
        let start = line.find("] \"")? + 3;
        let rest = &line[start..];
        let end = rest.find('"')?;
        let mut request = rest[..end].split(' ');
        let method = request.next()?.to_string();
        let uri = request.next()?;
        let protocol = request.next().unwrap_or_default().to_string();
        let status = rest[end + 1..].split_whitespace().next()?.parse().ok()?;
        let (path, query) = split_uri(uri);
        Some(Self {
            method,
            path,
            query,
            status,
            protocol,
        })
    }
}

fn split_uri(uri: &str) -> (String, String) {
    match uri.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (uri.to_string(), String::new()),
    }
}

/// A running CNCF distribution 2.8 registry, killed on drop.
///
/// ```no_run
/// let registry = ferry_test_support::Registry::start()?;
/// println!("{}", registry.url()); // http://127.0.0.1:PORT
/// # Ok::<(), ferry_test_support::Error>(())
/// ```
///
/// Note: docker-registry 2.8 answers 404 to a manifest GET/HEAD of an OCI manifest unless
/// `Accept` names its media type.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    addr: String,
    root: PathBuf,
    access_log: PathBuf,
    error_log: PathBuf,
    baseline: Mutex<usize>,
    syncs: AtomicU64,
    tls: bool,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// A registry with default settings: see [`RegistryBuilder::new`].
    pub fn start() -> Result<Self> {
        RegistryBuilder::new().start()
    }

    /// A builder for custom settings.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::new()
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether this machine has the IPv6 loopback (`::1`) to listen on.
    pub fn ipv6_available() -> bool {
        std::net::TcpListener::bind("[::1]:0").is_ok()
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .expect("the address ends with its port")
    }

    /// `NAME:PORT`: the registry under another name, such as `registry.test` through a
    /// [`crate::Squid`] proxy that resolves it to 127.0.0.1.
    pub fn addr_as(&self, name: &str) -> String {
        format!("{name}:{}", self.port())
    }

    /// `http://127.0.0.1:PORT` (`https://` when it serves TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The process id of the registry.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The filesystem storage root (holding `docker/registry/v2/...`). With S3 storage, the
    /// unused local directory that would have held it.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file the access log is written to (the registry's stdout).
    pub fn access_log_path(&self) -> &Path {
        &self.access_log
    }

    /// The file the registry's own log is written to (its stderr, JSON lines).
    pub fn log_path(&self) -> &Path {
        &self.error_log
    }

    /// Every request in the access log, oldest first, including those before
    /// [`Registry::clear_log`] and this crate's own probes.
    fn all_requests(&self) -> Vec<LoggedRequest> {
        self.sync_log();
        std::fs::read_to_string(&self.access_log)
            .unwrap_or_default()
            .lines()
            .filter_map(LoggedRequest::parse)
            .filter(|r| !r.query.contains(OWN_MARKER))
            .collect()
    }

    /// Makes sure the access log holds every request answered so far: sends a marked
    /// `GET /v2/` and waits (bounded) until it appears in the log. The registry writes a log
    /// line before it flushes the answer, so answered requests are already logged; the marker
    /// covers clients that stopped reading an answer early.
    fn sync_log(&self) {
        if self.tls {
            // The marker request speaks plain HTTP, which a TLS registry refuses unlogged.
            return;
        }
        let n = self.syncs.fetch_add(1, Ordering::Relaxed);
        let marker = format!("{OWN_MARKER}=sync-{n}");
        if blocking_status(&self.addr, &format!("/v2/?{marker}")).is_err() {
            return;
        }
        crate::util::wait_for(Duration::from_secs(5), || {
            std::fs::read_to_string(&self.access_log)
                .map(|log| log.contains(&marker))
                .unwrap_or(false)
        });
    }

    /// The requests logged since start (or since the last [`Registry::clear_log`]), oldest
    /// first. Requests this crate sends itself are left out.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        let all = self.all_requests();
        let from = (*self.baseline.lock().expect("lock")).min(all.len());
        all[from..].to_vec()
    }

    /// A mark for [`Registry::requests_since`]: the number of requests logged so far.
    pub fn mark(&self) -> usize {
        self.all_requests().len()
    }

    /// The requests logged after `mark` was taken.
    pub fn requests_since(&self, mark: usize) -> Vec<LoggedRequest> {
        let all = self.all_requests();
        all[mark.min(all.len())..].to_vec()
    }

    /// Forgets the requests logged so far: [`Registry::requests`] and [`Registry::count`]
    /// start from here.
    pub fn clear_log(&self) {
        let n = self.all_requests().len();
        *self.baseline.lock().expect("lock") = n;
    }

    /// How many requests (since start or [`Registry::clear_log`]) had `method` and a path
    /// containing `path_contains`.
    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path.contains(path_contains))
            .count()
    }

    /// The last lines of the registry's own log, for failure messages.
    pub fn log_tail(&self) -> String {
        tail(&self.error_log)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fs_write(path: &Path, content: impl AsRef<[u8]>) -> Result<()> {
    std::fs::write(path, content).map_err(|e| Error::io(format!("write `{}`", path.display()), e))
}

fn fs_create_dir_all(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path)
        .map_err(|e| Error::io(format!("create directory `{}`", path.display()), e))
}

/// Writes `tls.crt` and `tls.key` into `dir`: a self-signed certificate for `127.0.0.1` and
/// `localhost`.
fn write_self_signed(dir: &Path) -> Result<()> {
    let setup = |what: &str, e: rcgen::Error| Error::Setup(format!("{what}: {e}"));
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .map_err(|e| setup("generate a self-signed certificate", e))?;
    fs_write(&dir.join("tls.crt"), cert.cert.pem())?;
    fs_write(&dir.join("tls.key"), cert.signing_key.serialize_pem())?;
    Ok(())
}
