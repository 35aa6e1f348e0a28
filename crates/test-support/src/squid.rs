//! A real forward proxy: Debian's `squid` on loopback, with its own configuration.
//!
//! - Its `hosts_file` maps the test names ([`TEST_HOSTS`]: `registry.test`, `other.test`, …)
//!   to 127.0.0.1, so a client that reaches a loopback server by such a name goes through the
//!   proxy (clients never proxy the loopback itself) and the proxy, not the client, resolves
//!   the name.
//! - Any other name is refused with `403` at once (no DNS is asked), as are the names given to
//!   [`SquidBuilder::deny`].
//! - [`SquidBuilder::user`] turns on Basic authentication (`basic_ncsa_auth` over an htpasswd
//!   file made with `htpasswd`): requests without the credentials get `407`.
//! - `CONNECT` is allowed to any port; nothing is cached.
//! - [`SquidBuilder::tls`] makes it an `https://` proxy (TLS between the client and squid).
//! - Its access log is read back as [`ProxyLogEntry`]s: one per request it forwarded, one per
//!   `CONNECT` tunnel (written when the tunnel closes), so a test proves what went through it.
//!
//! Each instance has its own service name, so the shared-memory segments of one that was
//! killed never stop another from starting.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::util::{POLL_INTERVAL, free_port, run, tail, tempdir};

/// The squid binary the tests run (Debian package `squid`).
pub const SQUID_BINARY: &str = "/usr/sbin/squid";

/// The names the proxy resolves to 127.0.0.1.
pub const TEST_HOSTS: &[&str] = &["registry.test", "other.test", "denied.test"];

/// How long [`SquidBuilder::start`] waits for squid to accept connections.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

/// The proxy variables clients read; a test or benchmark clears them for the programs it runs,
/// then sets those it means.
pub const PROXY_VARS: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

static NEXT: AtomicU64 = AtomicU64::new(1);

/// One line of the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyLogEntry {
    /// Squid's result code, such as `TCP_MISS`, `TCP_TUNNEL` or `TCP_DENIED`.
    pub result: String,
    /// The status answered to the client (`200`, `407`, …).
    pub status: u16,
    /// The method, such as `GET` or `CONNECT`.
    pub method: String,
    /// The absolute URL of a forwarded request, or `host:port` of a `CONNECT`.
    pub target: String,
    /// The authenticated user, if any.
    pub user: Option<String>,
}

impl ProxyLogEntry {
    /// Whether this is a `CONNECT` tunnel the proxy opened.
    pub fn is_tunnel(&self) -> bool {
        self.method == "CONNECT" && self.status == 200
    }
}

/// Builds a [`Squid`].
#[derive(Debug, Clone, Default)]
pub struct SquidBuilder {
    users: Vec<(String, String)>,
    denied: Vec<String>,
    tls: Option<crate::tls::Issued>,
}

impl SquidBuilder {
    /// Requires Basic authentication, and accepts `user` with `password`.
    pub fn user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.push((user.into(), password.into()));
        self
    }

    /// Refuses requests and `CONNECT`s to `host` with `403` (it must be one of
    /// [`TEST_HOSTS`]).
    pub fn deny(mut self, host: impl Into<String>) -> Self {
        self.denied.push(host.into());
        self
    }

    /// Speaks TLS to its clients (an `https://` proxy), with `certificate` (issued for
    /// `127.0.0.1`).
    pub fn tls(mut self, certificate: crate::tls::Issued) -> Self {
        self.tls = Some(certificate);
        self
    }

    /// Starts squid on a free port of 127.0.0.1 and waits until it accepts connections.
    pub fn start(self) -> Result<Squid> {
        if !Squid::available() {
            return Err(Error::Setup(format!(
                "`{SQUID_BINARY}` is missing; install it with `apt-get install -y squid`"
            )));
        }
        let dir = tempdir();
        // Started as root, squid runs as the `proxy` user, which must write its logs here and
        // read its files.
        set_mode(dir.path(), 0o777)?;
        let hosts = dir.path().join("hosts");
        let mut content = String::from("127.0.0.1 localhost\n");
        for h in TEST_HOSTS {
            let _ = writeln!(content, "127.0.0.1 {h}");
        }
        write_readable(&hosts, &content)?;
        let htpasswd = dir.path().join("htpasswd");
        for (i, (user, password)) in self.users.iter().enumerate() {
            let path = htpasswd.display().to_string();
            let create = if i == 0 { "-bc" } else { "-b" };
            run("htpasswd", &[create, &path, user, password])?;
        }
        if !self.users.is_empty() {
            set_mode(&htpasswd, 0o644)?;
        }
        if let Some(issued) = &self.tls {
            write_readable(&dir.path().join("proxy.crt"), &issued.cert_pem)?;
            write_readable(&dir.path().join("proxy.key"), &issued.key_pem)?;
        }
        let mut last = None;
        for _ in 0..5 {
            let port = free_port();
            let name = format!(
                "ferry{}x{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            match self.try_start(dir.path(), port, &name) {
                Ok(child) => {
                    return Ok(Squid {
                        child,
                        port,
                        tls: self.tls.is_some(),
                        name,
                        access_log: dir.path().join("access.log"),
                        _dir: dir,
                    });
                }
                Err((e, retry)) => {
                    if !retry {
                        return Err(e);
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Setup("squid did not start".into())))
    }

    fn config(&self, dir: &Path, port: u16) -> String {
        let d = dir.display();
        let mut c = String::new();
        if self.tls.is_some() {
            let _ = writeln!(
                c,
                "https_port 127.0.0.1:{port} tls-cert={d}/proxy.crt tls-key={d}/proxy.key"
            );
        } else {
            let _ = writeln!(c, "http_port 127.0.0.1:{port}");
        }
        let _ = writeln!(c, "pid_filename {d}/squid.pid");
        let _ = writeln!(c, "cache_log {d}/cache.log");
        let _ = writeln!(
            c,
            "logformat ferry %ts.%03tu %>a %Ss/%>Hs %rm %ru user=%un peer=%<a:%<p"
        );
        let _ = writeln!(c, "access_log stdio:{d}/access.log ferry");
        let _ = writeln!(c, "coredump_dir {d}");
        let _ = writeln!(c, "netdb_filename none");
        let _ = writeln!(c, "pinger_enable off");
        let _ = writeln!(c, "cache deny all");
        let _ = writeln!(c, "hosts_file {d}/hosts");
        let _ = writeln!(c, "dns_nameservers 127.0.0.1");
        let _ = writeln!(c, "dns_timeout 2 seconds");
        let _ = writeln!(c, "shutdown_lifetime 0 seconds");
        let _ = writeln!(c, "forwarded_for delete");
        let _ = writeln!(
            c,
            "acl test_hosts dstdomain localhost {}",
            TEST_HOSTS.join(" ")
        );
        let _ = writeln!(c, "http_access deny !test_hosts");
        if !self.denied.is_empty() {
            let _ = writeln!(c, "acl denied dstdomain {}", self.denied.join(" "));
            let _ = writeln!(c, "http_access deny denied");
        }
        if self.users.is_empty() {
            let _ = writeln!(c, "http_access allow localhost");
        } else {
            let _ = writeln!(
                c,
                "auth_param basic program /usr/lib/squid/basic_ncsa_auth {d}/htpasswd"
            );
            let _ = writeln!(c, "auth_param basic realm ferry-test");
            let _ = writeln!(c, "acl authed proxy_auth REQUIRED");
            let _ = writeln!(c, "http_access allow localhost authed");
        }
        let _ = writeln!(c, "http_access deny all");
        c
    }

    fn try_start(
        &self,
        dir: &Path,
        port: u16,
        name: &str,
    ) -> std::result::Result<Child, (Error, bool)> {
        let conf = dir.join("squid.conf");
        write_readable(&conf, &self.config(dir, port)).map_err(|e| (e, false))?;
        let cache_log = dir.join("cache.log");
        let _ = std::fs::remove_file(&cache_log);
        let mut child = Command::new(SQUID_BINARY)
            .args(["-N", "-n", name, "-f"])
            .arg(&conf)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| (Error::io(format!("start `{SQUID_BINARY}`"), e), false))?;
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            let log = std::fs::read_to_string(&cache_log).unwrap_or_default();
            // `Accepting HTTP Socket connections`, or `HTTPS` with TLS.
            if log.contains("Accepting HTTP") {
                return Ok(child);
            }
            if let Ok(Some(status)) = child.try_wait() {
                remove_shm(name);
                let retry = log.contains("Cannot open HTTP Port") || log.contains("in use");
                return Err((
                    Error::Startup {
                        program: SQUID_BINARY.into(),
                        reason: format!("it exited with {status} (config `{}`)", conf.display()),
                        log: tail(&cache_log),
                    },
                    retry,
                ));
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                remove_shm(name);
                return Err((
                    Error::Startup {
                        program: SQUID_BINARY.into(),
                        reason: format!(
                            "it did not accept connections within {STARTUP_DEADLINE:?}"
                        ),
                        log: tail(&cache_log),
                    },
                    false,
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

/// A squid forward proxy on loopback; stopped (and its shared memory removed) when dropped.
#[derive(Debug)]
pub struct Squid {
    child: Child,
    port: u16,
    tls: bool,
    name: String,
    access_log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Squid {
    /// A builder: no authentication, every test name allowed.
    pub fn builder() -> SquidBuilder {
        SquidBuilder::default()
    }

    /// Whether squid is installed.
    pub fn available() -> bool {
        Path::new(SQUID_BINARY).exists()
    }

    /// The process id of squid (it runs as one process, `-N`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` (`https://` with TLS).
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.port)
    }

    /// `http://USER:PASSWORD@127.0.0.1:PORT` (`https://` with TLS).
    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!(
            "{}://{user}:{password}@127.0.0.1:{}",
            self.scheme(),
            self.port
        )
    }

    fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    /// Every line of the access log so far (a `CONNECT` is logged when its tunnel closes).
    pub fn log(&self) -> Vec<ProxyLogEntry> {
        let text = std::fs::read_to_string(&self.access_log).unwrap_or_default();
        text.lines().filter_map(parse_line).collect()
    }

    /// The lines of the access log whose target names `host` (`registry.test:5000`).
    pub fn log_for(&self, host: &str) -> Vec<ProxyLogEntry> {
        self.log()
            .into_iter()
            .filter(|e| e.target == host || e.target.contains(&format!("://{host}/")))
            .collect()
    }
}

impl Squid {
    /// The lines for `host` once there are at least `count` (squid writes a line when its
    /// transaction ends, a moment after the client has its answer, and a tunnel's when it
    /// closes); what there is after 10 s otherwise.
    pub fn await_log_for(&self, host: &str, count: usize) -> Vec<ProxyLogEntry> {
        let mut lines = Vec::new();
        crate::util::wait_for(Duration::from_secs(10), || {
            lines = self.log_for(host);
            lines.len() >= count
        });
        lines
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        remove_shm(&self.name);
    }
}

/// `1796610176.675 127.0.0.1 TCP_MISS/200 GET http://registry.test:18080/x user=- peer=…`.
fn parse_line(line: &str) -> Option<ProxyLogEntry> {
    let mut fields = line.split_whitespace();
    let _time = fields.next()?;
    let _client = fields.next()?;
    let (result, status) = fields.next()?.split_once('/')?;
    let method = fields.next()?.to_string();
    let target = fields.next()?.to_string();
    let user = fields
        .next()
        .and_then(|u| u.strip_prefix("user="))
        .filter(|u| *u != "-")
        .map(str::to_string);
    Some(ProxyLogEntry {
        result: result.to_string(),
        status: status.parse().ok()?,
        method,
        target,
        user,
    })
}

/// Removes the shared-memory segments of service `name`, which a killed squid leaves.
fn remove_shm(name: &str) {
    let Ok(entries) = std::fs::read_dir("/dev/shm") else {
        return;
    };
    let prefix = format!("{name}-");
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("chmod `{}`", path.display()), e))
}

fn write_readable(path: &Path, content: &str) -> Result<()> {
    std::fs::write(path, content)
        .map_err(|e| Error::io(format!("write `{}`", path.display()), e))?;
    set_mode(path, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_log_lines() {
        let e = parse_line(
            "1796610176.779 127.0.0.1 TCP_TUNNEL/200 CONNECT registry.test:18443 user=alice peer=127.0.0.1:18443",
        )
        .unwrap();
        assert!(e.is_tunnel());
        assert_eq!(e.target, "registry.test:18443");
        assert_eq!(e.user.as_deref(), Some("alice"));
        let e = parse_line(
            "1796610176.791 127.0.0.1 TCP_DENIED/407 GET http://registry.test:18080/blob.txt user=- peer=-:-",
        )
        .unwrap();
        assert_eq!((e.status, e.user), (407, None));
        assert_eq!(e.result, "TCP_DENIED");
    }
}
