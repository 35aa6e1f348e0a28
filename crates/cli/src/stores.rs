//! Opening the stores an endpoint names.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferry_core::{Error, ReadStore, WriteStore};
use ferry_distribution::{
    ClientOptions, Credential, Credentials, RegistryClient, RetryPolicy, Timeouts,
};
use ferry_fs_store::OciLayout;
use ferry_http::TlsPolicy;

use crate::args::{CopyArgs, RegistryArgs};
use crate::endpoint::Endpoint;

/// The source store and what to resolve in it.
pub struct Source {
    pub store: Arc<dyn ReadStore>,
    pub reference: String,
    /// Whether `reference` is a tag (so a destination without one takes it).
    pub is_tag: bool,
}

/// The destination store and the tag to set.
pub struct Destination {
    pub store: Arc<dyn WriteStore>,
    pub tag: Option<String>,
    /// How the summary line names it.
    pub display: String,
}

/// Which side of the copy.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Side {
    From,
    To,
}

/// Registry clients for both sides, built from the flags.
pub struct Clients {
    from: RegistryClient,
    to: RegistryClient,
}

impl Clients {
    /// `from_host`/`to_host`: the registries of each side, if they are registries.
    pub fn new(
        args: &RegistryArgs,
        from_host: Option<&str>,
        to_host: Option<&str>,
    ) -> Result<Self> {
        let (from_pw, to_pw) = passwords(args)?;
        // What each side trusts: `--insecure`, or the CA files given for both and for it.
        let trust = |insecure: bool, own: &[PathBuf]| -> Result<(bool, Vec<PathBuf>, TlsPolicy)> {
            let files: Vec<PathBuf> = args.ca_cert.iter().chain(own).cloned().collect();
            let mut policy = TlsPolicy::new().insecure(insecure);
            for f in &files {
                policy = policy.with_ca_file(f)?;
            }
            Ok((insecure, files, policy))
        };
        let from_trust = trust(args.insecure || args.from_insecure, &args.from_ca_cert)?;
        let to_trust = trust(args.insecure || args.to_insecure, &args.to_ca_cert)?;
        let side = |plain: bool, tls: TlsPolicy| ClientOptions {
            plain_http: plain,
            tls,
            credentials: Credentials::from_docker_config(),
            retry: retry_policy(args),
            timeouts: timeouts(args),
            verify_uploads: args.verify_uploads,
            ..Default::default()
        };
        let mut from_opts = side(
            args.plain_http || args.from_plain_http,
            from_trust.2.clone(),
        );
        let mut to_opts = side(args.plain_http || args.to_plain_http, to_trust.2.clone());
        // Credentials given on the command line, per side: (registry, credential).
        let (mut from_cred, mut to_cred): (Option<(&str, Credential)>, _) = (None, None);
        for (slot, user, pw, flag, host) in [
            (
                &mut from_cred,
                args.from_username.clone(),
                from_pw,
                "--from",
                from_host,
            ),
            (
                &mut to_cred,
                args.to_username.clone(),
                to_pw,
                "--to",
                to_host,
            ),
        ] {
            match (user, pw) {
                (Some(username), Some(password)) => {
                    let Some(host) = host else {
                        tracing::warn!("{flag}-username is ignored: that side is not a registry");
                        continue;
                    };
                    *slot = Some((host, Credential::Basic { username, password }));
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
        // Both sides speak alike and no registry gets two different credentials: one client,
        // so a copy inside one registry shares one connection pool and one token cache.
        let same_transport = from_opts.plain_http == to_opts.plain_http
            && (from_trust.0, &from_trust.1) == (to_trust.0, &to_trust.1);
        let conflict =
            matches!((&from_cred, &to_cred), (Some((a, x)), Some((b, y))) if a == b && x != y);
        if same_transport && !conflict {
            let mut credentials = Credentials::from_docker_config();
            for (host, credential) in from_cred.into_iter().chain(to_cred) {
                credentials = credentials.with(host, credential);
            }
            let client = RegistryClient::new(ClientOptions {
                credentials,
                ..from_opts
            })?;
            return Ok(Self {
                from: client.clone(),
                to: client,
            });
        }
        for (opts, cred) in [(&mut from_opts, from_cred), (&mut to_opts, to_cred)] {
            if let Some((host, credential)) = cred {
                opts.credentials =
                    std::mem::replace(&mut opts.credentials, Credentials::anonymous())
                        .with(host, credential);
            }
        }
        Ok(Self {
            from: RegistryClient::new(from_opts)?,
            to: RegistryClient::new(to_opts)?,
        })
    }

    fn client(&self, side: Side) -> &RegistryClient {
        match side {
            Side::From => &self.from,
            Side::To => &self.to,
        }
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

/// The retry policy, with the hidden `--retry-*` flags (`FERRY_RETRY_*`) applied.
pub fn retry_policy(args: &RegistryArgs) -> RetryPolicy {
    let mut policy = RetryPolicy::default();
    if let Some(n) = args.retry_tries {
        policy.max_tries = n;
    }
    if let Some(ms) = args.retry_base_delay_ms {
        policy.base_delay = Duration::from_millis(ms);
    }
    if let Some(ms) = args.retry_max_delay_ms {
        policy.max_total_delay = Duration::from_millis(ms);
    }
    policy
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

/// Whether the user wrote a tag or digest in a registry reference (the parser fills in
/// `latest` otherwise).
fn names_tag_or_digest(reference: &str) -> bool {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    last.contains(':') || last.contains('@')
}

pub async fn open_source(ep: &Endpoint, clients: &Clients) -> Result<Source> {
    match ep {
        Endpoint::Layout { path, reference } => {
            let layout = OciLayout::open(path)?;
            let reference = match reference {
                Some(r) => r.clone(),
                None => only_tag(&layout).await?,
            };
            let is_tag = !reference.contains(':');
            Ok(Source {
                store: Arc::new(layout),
                reference,
                is_tag,
            })
        }
        Endpoint::Registry { reference, .. } => {
            let repo = clients.client(Side::From).repository(reference)?;
            Ok(Source {
                store: repo,
                reference: reference.target(),
                is_tag: reference.digest().is_none(),
            })
        }
    }
}

pub fn open_destination(
    ep: &Endpoint,
    dst_text: &str,
    src: &Source,
    args: &CopyArgs,
    clients: &Clients,
) -> Result<Destination> {
    let inherited = src.is_tag.then(|| src.reference.clone());
    match ep {
        Endpoint::Layout { path, reference } => {
            let tag = match reference {
                Some(r) if r.contains(':') => bail!(Error::invalid(
                    "destination",
                    dst_text.to_string(),
                    "a layout destination needs a tag, not a digest: write `oci:PATH:TAG`"
                )),
                Some(r) => r.clone(),
                None => inherited.ok_or_else(|| {
                    Error::invalid(
                        "destination",
                        dst_text.to_string(),
                        "the source is named by digest, so name a tag for the layout: `oci:PATH:TAG`",
                    )
                })?,
            };
            ferry_fs_store::validate_tag(&tag)?;
            let store: Arc<dyn WriteStore> = if args.dry_run && !path.join("oci-layout").exists() {
                // A dry run must not create the layout; the planned layout holds nothing, as
                // the layout to be created would, and names the filesystem it would be on.
                Arc::new(ferry_fs_store::PlannedLayout::new(path)?)
            } else {
                Arc::new(OciLayout::open_or_create(path)?)
            };
            Ok(Destination {
                store,
                display: format!("[oci-layout] {}:{tag}", path.display()),
                tag: Some(tag),
            })
        }
        Endpoint::Registry { text, reference } => {
            let repo = clients.client(Side::To).repository(reference)?;
            let tag = if names_tag_or_digest(text) {
                reference.tag().map(str::to_string)
            } else {
                inherited.or_else(|| reference.tag().map(str::to_string))
            };
            let display = match &tag {
                Some(t) => format!(
                    "[registry] {}/{}:{t}",
                    reference.registry(),
                    reference.repository()
                ),
                None => format!(
                    "[registry] {}/{}",
                    reference.registry(),
                    reference.repository()
                ),
            };
            Ok(Destination {
                store: repo,
                tag,
                display,
            })
        }
    }
}

/// The single tag of a layout, for a source named without one.
async fn only_tag(layout: &OciLayout) -> Result<String> {
    let tags = layout.tags().await?;
    match tags.as_slice() {
        [(tag, _)] => Ok(tag.clone()),
        [] => Err(Error::NotFound {
            what: format!("a tagged image in `{}`", layout.path().display()),
            hint: Some("the layout holds no tag; name a digest with `oci:PATH@DIGEST`".into()),
        }
        .into()),
        many => {
            let names: Vec<&str> = many.iter().map(|(t, _)| t.as_str()).collect();
            Err(Error::invalid(
                "source",
                format!("oci:{}", layout.path().display()),
                format!(
                    "the layout has several tags ({}); name one with `oci:PATH:TAG`",
                    names.join(", ")
                ),
            )
            .into())
        }
    }
}
