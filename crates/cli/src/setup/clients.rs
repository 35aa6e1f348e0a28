//! Registry clients: one per way of speaking (plain HTTP, TLS trust and client certificate,
//! proxy, request rate, upload hashing) and identity, each registry of each side always served
//! by the same one, so a registry read and written alike has one connection pool, one token
//! cache and one rate limit.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferry_core::Error;
use ferry_distribution::quota::{DEFAULT_MAX_WAIT, QuotaHook};
use ferry_distribution::{
    ClientOptions, Credential, Credentials, RegistryClient, RetryPolicy, Timeouts,
};
use ferry_http::{NoProxy, Proxy, ProxyPolicy, TlsPolicy};

use crate::config::Config;
use crate::options::RegistryArgs;

/// Which side of a copy a registry is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Read from.
    From,
    /// Written to.
    To,
}

/// How ferry speaks to one registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Mode {
    plain_http: bool,
    insecure: bool,
    /// The CA certificate files trusted besides the system's.
    ca_cert: Vec<PathBuf>,
    verify_uploads: bool,
    retry: RetryPolicy,
    /// A directory of TLS material in place of the `certs.d` lookup.
    cert_dir: Option<PathBuf>,
    /// The registry's own client certificate and key, and the table naming them.
    client_cert: Option<(PathBuf, PathBuf, String)>,
    /// The registry's own proxy and `no_proxy`, and the table naming them.
    proxy: Option<(Option<String>, Option<String>, String)>,
    /// The registry's cap on requests per second (the `f64`'s bits).
    requests_per_second: Option<u64>,
}

/// A client's identity: its mode, and the credential given on the command line for the
/// registry it serves on that side (an index into [`Clients::given`]), if any.
type Key = (Mode, Option<usize>);

/// What the clients serve: settings that differ between commands.
#[derive(Debug, Clone, Copy, Default)]
pub struct Purpose {
    /// Resolve tags with `HEAD` rather than a `GET` whose manifest the copy reuses.
    pub resolve_with_head: bool,
}

/// The registry clients of a command.
pub struct Clients {
    clients: HashMap<Key, RegistryClient>,
    hosts: HashMap<(Side, String), Key>,
}

impl Clients {
    /// Clients for the registries read (`sources`) and written (`destinations`), with the
    /// flags (both sides, `--from-*`, `--to-*`) and the configuration's registry tables.
    /// Credentials given on the command line go to the one registry of their side; a side of
    /// several registries takes them from docker's configuration.
    pub fn new(
        args: &RegistryArgs,
        config: &Config,
        sources: &BTreeSet<String>,
        destinations: &BTreeSet<String>,
        purpose: Purpose,
    ) -> Result<Self> {
        let (from_pw, to_pw) = passwords(args)?;
        let mut given: Vec<Credential> = Vec::new();
        let mut given_for: HashMap<(Side, String), usize> = HashMap::new();
        for (side, flag, user, password, hosts) in [
            (Side::From, "--from", &args.from_username, from_pw, sources),
            (Side::To, "--to", &args.to_username, to_pw, destinations),
        ] {
            match (user, password) {
                (Some(username), Some(password)) => {
                    let host = match hosts.len() {
                        0 => {
                            tracing::warn!(
                                "{flag}-username is ignored: that side is not a registry"
                            );
                            continue;
                        }
                        1 => hosts.iter().next().expect("one host").clone(),
                        _ => bail!(Error::invalid(
                            "flag",
                            format!("{flag}-username"),
                            format!(
                                "that side has several registries ({}); give their credentials \
                                 in docker's config.json (`ferry login`)",
                                hosts.iter().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        )),
                    };
                    let credential = Credential::Basic {
                        username: username.clone(),
                        password,
                    };
                    let index = match given.iter().position(|c| c == &credential) {
                        Some(i) => i,
                        None => {
                            given.push(credential);
                            given.len() - 1
                        }
                    };
                    given_for.insert((side, host), index);
                }
                (Some(_), None) => bail!(Error::invalid(
                    "flag",
                    format!("{flag}-username"),
                    format!(
                        "needs a password: `{flag}-password`, FERRY_{}_PASSWORD or `--password-stdin`",
                        &flag[2..].to_uppercase()
                    ),
                )),
                (None, Some(_)) => bail!(Error::invalid(
                    "flag",
                    format!("{flag}-password"),
                    format!("needs `{flag}-username`")
                )),
                (None, None) => {}
            }
        }
        let docker = Credentials::from_docker_config();
        let mut hosts = HashMap::new();
        let mut clients = HashMap::new();
        let sides = sources
            .iter()
            .map(|h| (Side::From, h))
            .chain(destinations.iter().map(|h| (Side::To, h)));
        for (side, host) in sides {
            let mode = mode(args, config, side, host)?;
            let credential = given_for.get(&(side, host.clone())).copied();
            let key: Key = (mode.clone(), credential);
            hosts.insert((side, host.clone()), key.clone());
            if clients.contains_key(&key) {
                check_host_tls(&mode, host)?;
                continue;
            }
            let mut tls = TlsPolicy::new().insecure(mode.insecure);
            for f in &mode.ca_cert {
                tls = tls.with_ca_file(f)?;
            }
            if let Some(dir) = &mode.cert_dir {
                if !dir.is_dir() {
                    bail!(Error::invalid(
                        "certificate directory",
                        dir.display().to_string(),
                        "there is no such directory; give one holding `*.crt`, `client.cert` and \
                         `client.key`"
                    ));
                }
                tls = tls.with_cert_dir(dir);
            }
            if let Some((cert, key, table)) = &mode.client_cert {
                tls = tls
                    .with_client_cert(cert, key)
                    .with_context(|| format!("in {table}"))?;
            }
            let proxy = proxy_policy(&mode)?;
            let mut credentials = docker.clone();
            if let Some(i) = credential {
                credentials = credentials.with(host.clone(), given[i].clone());
            }
            let client = RegistryClient::new(ClientOptions {
                plain_http: mode.plain_http,
                tls,
                verify_uploads: mode.verify_uploads,
                timeouts: timeouts(args),
                credentials,
                retry: mode.retry,
                resolve_with_head: purpose.resolve_with_head,
                range_threshold: args
                    .range_threshold
                    .unwrap_or(ferry_distribution::DEFAULT_RANGE_THRESHOLD),
                range_size: args
                    .range_size
                    .unwrap_or(ferry_distribution::DEFAULT_RANGE_SIZE),
                ranges: args.ranges.unwrap_or(ferry_distribution::DEFAULT_RANGES),
                one_stream_rate: args
                    .one_stream_rate
                    .unwrap_or(ferry_distribution::DEFAULT_ONE_STREAM_RATE),
                chunk_threshold: args
                    .chunk_threshold
                    .unwrap_or(ferry_distribution::DEFAULT_CHUNK_THRESHOLD),
                chunk_size: args
                    .chunk_size
                    .unwrap_or(ferry_distribution::DEFAULT_CHUNK_SIZE),
                proxy: Some(proxy),
                max_wait: max_wait(args, config)?,
                requests_per_second: mode.requests_per_second.map(f64::from_bits),
                on_quota_wait: Some(QuotaHook::new(|wait| eprintln!("{wait}"))),
                ..Default::default()
            })?;
            clients.insert(key, client);
            check_host_tls(&mode, host)?;
        }
        Ok(Self { clients, hosts })
    }

    /// The clients of a command that speaks to one registry, `host` (none when it works on a
    /// layout), reading it or, with `writes`, changing it. The credentials of either side's
    /// flags apply to it: the side whose `--from-*` or `--to-*` credentials are given, else
    /// the side of what the command does. Returns the clients and the side `host` is on.
    pub fn for_one(
        args: &RegistryArgs,
        config: &Config,
        host: Option<&str>,
        writes: bool,
        purpose: Purpose,
    ) -> Result<(Self, Side)> {
        let from = args.from_username.is_some() || args.from_password.is_some();
        let to = args.to_username.is_some() || args.to_password.is_some();
        let side = match (from, to) {
            (true, false) => Side::From,
            (false, true) => Side::To,
            _ if writes => Side::To,
            _ => Side::From,
        };
        let hosts: BTreeSet<String> = host.map(str::to_string).into_iter().collect();
        let none = BTreeSet::new();
        let (sources, destinations) = match side {
            Side::From => (&hosts, &none),
            Side::To => (&none, &hosts),
        };
        Ok((
            Self::new(args, config, sources, destinations, purpose)?,
            side,
        ))
    }

    /// The client that speaks to `host` on `side`.
    pub fn client(&self, side: Side, host: &str) -> &RegistryClient {
        let key = self
            .hosts
            .get(&(side, host.to_string()))
            .expect("every registry of the command has a client");
        &self.clients[key]
    }

    /// Every client.
    pub fn all(&self) -> impl Iterator<Item = &RegistryClient> {
        self.clients.values()
    }
}

/// How `host` is spoken to on `side`: the flags for both sides and for that side, and the
/// registry's table.
fn mode(args: &RegistryArgs, config: &Config, side: Side, host: &str) -> Result<Mode> {
    let table = config.registry(host);
    let (from, to) = (side == Side::From, side == Side::To);
    let name = format!("[registries.\"{host}\"]");
    let client_cert = match table.map(|t| (&t.client_cert, &t.client_key)) {
        Some((Some(cert), Some(key))) => Some((cert.clone(), key.clone(), name.clone())),
        Some((Some(_), None)) => bail!(Error::invalid(
            "config key",
            format!("registries.\"{host}\".client_cert"),
            "needs `client_key`, the certificate's private key"
        )),
        Some((None, Some(_))) => bail!(Error::invalid(
            "config key",
            format!("registries.\"{host}\".client_key"),
            "needs `client_cert`, the certificate of the key"
        )),
        _ => None,
    };
    let proxy = table
        .filter(|t| t.proxy.is_some() || t.no_proxy.is_some())
        .map(|t| (t.proxy.clone(), t.no_proxy.clone(), name));
    let requests_per_second = match table.and_then(|t| t.requests_per_second) {
        Some(r) if !(r.is_finite() && r > 0.0) => bail!(Error::invalid(
            "config key",
            format!("registries.\"{host}\".requests_per_second"),
            "give a number of requests per second above 0, such as `5` or `0.5`"
        )),
        r => r.map(f64::to_bits),
    };
    Ok(Mode {
        plain_http: args.plain_http
            || table.and_then(|t| t.plain_http).unwrap_or(false)
            || (from && args.from_plain_http)
            || (to && args.to_plain_http),
        insecure: args.insecure
            || table.and_then(|t| t.insecure).unwrap_or(false)
            || (from && args.from_insecure)
            || (to && args.to_insecure),
        ca_cert: args
            .ca_cert
            .iter()
            .chain(config.defaults.ca_cert.as_ref())
            .chain(table.and_then(|t| t.ca_cert.as_ref()))
            .chain(args.from_ca_cert.iter().filter(|_| from))
            .chain(args.to_ca_cert.iter().filter(|_| to))
            .cloned()
            .collect(),
        verify_uploads: args.verify_uploads
            || (to && table.and_then(|t| t.verify_uploads).unwrap_or(false)),
        retry: retry_policy(args, config, Some(host))?,
        cert_dir: args
            .from_cert_dir
            .as_ref()
            .filter(|_| from)
            .or(args.to_cert_dir.as_ref().filter(|_| to))
            .or(args.cert_dir.as_ref())
            .cloned(),
        client_cert,
        proxy,
        requests_per_second,
    })
}

/// The environment's proxies, with the registry table's own `proxy` and `no_proxy` over them.
fn proxy_policy(mode: &Mode) -> Result<ProxyPolicy> {
    let mut policy = ProxyPolicy::from_env()?;
    if let Some((proxy, no_proxy, table)) = &mode.proxy {
        if let Some(url) = proxy {
            policy = policy.with_proxy(Proxy::parse(url, &format!("`proxy` in {table}"))?);
        }
        if let Some(list) = no_proxy {
            policy = policy.with_no_proxy(NoProxy::parse(list));
        }
    }
    Ok(policy)
}

/// Reads the `certs.d` material of registry `host` now (unless a directory or a certificate
/// given replaces it), so a bad certificate or key there is refused before anything
/// connects.
fn check_host_tls(mode: &Mode, host: &str) -> Result<()> {
    if mode.plain_http || mode.cert_dir.is_some() {
        return Ok(());
    }
    let api = ferry_distribution::reference::api_host(host).to_ascii_lowercase();
    let (name, port) = match api.rsplit_once(':') {
        Some((name, port)) if !port.contains(']') => match port.parse::<u16>() {
            Ok(p) => (name.to_string(), p),
            Err(_) => (api.clone(), 443),
        },
        _ => (api.clone(), 443),
    };
    TlsPolicy::new().check_host(&name, port, port == 443)?;
    Ok(())
}

/// `--max-wait`, else `max_wait` of the configuration's defaults, else 10 minutes.
fn max_wait(args: &RegistryArgs, config: &Config) -> Result<Duration> {
    match (args.max_wait, &config.defaults.max_wait) {
        (Some(d), _) => Ok(d),
        (None, Some(text)) => Ok(crate::options::parse_duration(text)
            .map_err(|reason| Error::invalid("config key", "defaults.max_wait", reason))?),
        (None, None) => Ok(DEFAULT_MAX_WAIT),
    }
}

/// The passwords of each side: given, from the environment, or read from stdin for the side
/// whose user name came without one (`--password-stdin`).
pub fn passwords(args: &RegistryArgs) -> Result<(Option<String>, Option<String>)> {
    let (mut from_pw, mut to_pw) = (args.from_password.clone(), args.to_password.clone());
    if args.password_stdin {
        let from_wants = args.from_username.is_some() && from_pw.is_none();
        let to_wants = args.to_username.is_some() && to_pw.is_none();
        let mut pw = String::new();
        std::io::stdin()
            .read_to_string(&mut pw)
            .context("reading the password from stdin")?;
        let pw = pw.trim_end_matches(['\n', '\r']).to_string();
        match (from_wants, to_wants) {
            (true, false) => from_pw = Some(pw),
            (false, true) => to_pw = Some(pw),
            (false, false) => bail!(Error::invalid(
                "flag",
                "--password-stdin",
                "give `--from-username` or `--to-username` (without a password) so ferry knows whose password it is",
            )),
            (true, true) => bail!(Error::invalid(
                "flag",
                "--password-stdin",
                "both sides lack a password; pass one of them with `--from-password`/`--to-password` or FERRY_*_PASSWORD",
            )),
        }
    }
    Ok((from_pw, to_pw))
}

/// The retry policy of `host`'s requests (or, without a host, of the copy engine's steps):
/// the default, the file's `[defaults]`, the registry's table, then `--retries` and
/// `--retry-max-wait` (and the hidden `--retry-*` flags the tests use).
pub fn retry_policy(
    args: &RegistryArgs,
    config: &Config,
    host: Option<&str>,
) -> Result<RetryPolicy> {
    let mut policy = RetryPolicy::default();
    let table = host.and_then(|h| config.registry(h));
    let layers = [
        (
            "defaults",
            config.defaults.retries,
            config.defaults.retry_max_wait.as_ref(),
        ),
        (
            "the registry's table",
            table.and_then(|t| t.retries),
            table.and_then(|t| t.retry_max_wait.as_ref()),
        ),
    ];
    for (place, retries, max_wait) in layers {
        if let Some(n) = retries {
            policy = policy.with_max_retries(n);
        }
        if let Some(text) = max_wait {
            let wait = crate::options::parse_duration(text).map_err(|reason| {
                Error::invalid("config key", format!("retry_max_wait in {place}"), reason)
            })?;
            policy = policy.with_max_wait(wait);
        }
    }
    if let Some(n) = args.retry_tries {
        policy = policy.with_max_retries(n.saturating_sub(1));
    }
    if let Some(n) = args.retries {
        policy = policy.with_max_retries(n);
    }
    if let Some(ms) = args.retry_base_delay_ms {
        policy = policy.with_base_delay(Duration::from_millis(ms));
    }
    if let Some(ms) = args.retry_max_delay_ms {
        policy = policy.with_max_wait(Duration::from_millis(ms));
    }
    if let Some(wait) = args.retry_max_wait {
        policy = policy.with_max_wait(wait);
    }
    Ok(policy)
}

/// The network timeouts, with the hidden `--*-timeout-ms` flags (`FERRY_*_TIMEOUT_MS`) applied.
pub fn timeouts(args: &RegistryArgs) -> Timeouts {
    let mut t = Timeouts::default();
    if let Some(ms) = args.idle_timeout_ms {
        t.idle = Duration::from_millis(ms.max(1));
    }
    if let Some(ms) = args.response_timeout_ms {
        t.response = Duration::from_millis(ms.max(1));
    }
    t
}
