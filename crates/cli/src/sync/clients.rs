//! Registry clients of a sync: one per way of speaking (plain HTTP, TLS checks, upload
//! hashing), each registry always served by the same one, so it has one connection pool, one
//! token cache and one rate limit.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{Result, bail};
use ferry_core::Error;
use ferry_distribution::{ClientOptions, Credential, Credentials, RegistryClient};

use crate::args::RegistryArgs;
use crate::config::Config;
use crate::stores::{passwords, retry_policy, timeouts};

/// How ferry speaks to one registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Mode {
    plain_http: bool,
    insecure: bool,
    /// The CA certificate files trusted besides the system's.
    ca_cert: Vec<std::path::PathBuf>,
    verify_uploads: bool,
}

/// The clients of a sync.
pub struct SyncClients {
    clients: HashMap<Mode, RegistryClient>,
    hosts: HashMap<String, Mode>,
}

impl SyncClients {
    /// Clients for the registries read (`sources`) and written (`destinations`), with the
    /// flags (both sides, `--from-*`, `--to-*`) and the configuration's registry tables.
    /// Credentials given on the command line go to the one source (or destination)
    /// registry; with several, docker's configuration must provide them.
    pub fn new(
        args: &RegistryArgs,
        config: &Config,
        sources: &BTreeSet<String>,
        destinations: &BTreeSet<String>,
    ) -> Result<Self> {
        let (from_pw, to_pw) = passwords(args)?;
        let mut credentials = Credentials::from_docker_config();
        let mut given: BTreeMap<String, Credential> = BTreeMap::new();
        for (side, user, password, hosts) in [
            ("--from", &args.from_username, from_pw, sources),
            ("--to", &args.to_username, to_pw, destinations),
        ] {
            match (user, password) {
                (Some(username), Some(password)) => {
                    let host = match hosts.len() {
                        0 => {
                            tracing::warn!(
                                "{side}-username is ignored: that side is not a registry"
                            );
                            continue;
                        }
                        1 => hosts.iter().next().expect("one host").clone(),
                        _ => bail!(Error::invalid(
                            "flag",
                            format!("{side}-username"),
                            format!(
                                "that side has several registries ({}); give their credentials \
                                 in docker's config.json (`docker login`)",
                                hosts.iter().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        )),
                    };
                    let credential = Credential::Basic {
                        username: username.clone(),
                        password,
                    };
                    if let Some(other) = given.get(&host)
                        && other != &credential
                    {
                        bail!(Error::invalid(
                            "flag",
                            format!("{side}-username"),
                            format!(
                                "registry `{host}` is both read and written with different \
                                 credentials; give one identity for it"
                            ),
                        ));
                    }
                    given.insert(host, credential);
                }
                (Some(_), None) => bail!(Error::invalid(
                    "flag",
                    format!("{side}-username"),
                    format!(
                        "needs a password: `{side}-password`, FERRY_{}_PASSWORD or `--password-stdin`",
                        &side[2..].to_uppercase()
                    ),
                )),
                (None, Some(_)) => bail!(Error::invalid(
                    "flag",
                    format!("{side}-password"),
                    format!("needs `{side}-username`")
                )),
                (None, None) => {}
            }
        }
        for (host, credential) in given {
            credentials = credentials.with(host, credential);
        }
        let mut hosts = HashMap::new();
        let mut clients = HashMap::new();
        for host in sources.iter().chain(destinations) {
            let table = config.registry(host);
            let read = sources.contains(host);
            let written = destinations.contains(host);
            let mode = Mode {
                plain_http: args.plain_http
                    || table.and_then(|t| t.plain_http).unwrap_or(false)
                    || (read && args.from_plain_http)
                    || (written && args.to_plain_http),
                insecure: args.insecure
                    || table.and_then(|t| t.insecure).unwrap_or(false)
                    || (read && args.from_insecure)
                    || (written && args.to_insecure),
                ca_cert: args
                    .ca_cert
                    .iter()
                    .chain(table.and_then(|t| t.ca_cert.as_ref()))
                    .chain(args.from_ca_cert.iter().filter(|_| read))
                    .chain(args.to_ca_cert.iter().filter(|_| written))
                    .cloned()
                    .collect(),
                verify_uploads: args.verify_uploads
                    || table.and_then(|t| t.verify_uploads).unwrap_or(false),
            };
            hosts.insert(host.clone(), mode.clone());
            if let std::collections::hash_map::Entry::Vacant(slot) = clients.entry(mode.clone()) {
                let mut tls = ferry_http::TlsPolicy::new().insecure(mode.insecure);
                for f in &mode.ca_cert {
                    tls = tls.with_ca_file(f)?;
                }
                slot.insert(RegistryClient::new(ClientOptions {
                    plain_http: mode.plain_http,
                    tls,
                    verify_uploads: mode.verify_uploads,
                    timeouts: timeouts(args),
                    credentials: credentials.clone(),
                    retry: retry_policy(args),
                    // A tag is compared by HEAD (`Peek`), never by GET; a tag the
                    // destination lacks is resolved by the GET whose manifest the copy
                    // then reuses.
                    resolve_with_head: false,
                    ..Default::default()
                })?);
            }
        }
        Ok(Self { clients, hosts })
    }

    /// The client that speaks to `host`.
    pub fn client(&self, host: &str) -> &RegistryClient {
        let mode = self
            .hosts
            .get(host)
            .expect("every host of the sync has a client");
        &self.clients[mode]
    }

    /// Every client.
    pub fn all(&self) -> impl Iterator<Item = &RegistryClient> {
        self.clients.values()
    }
}
