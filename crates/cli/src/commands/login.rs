//! `ferry login`: credentials checked against a registry, then kept where ferry (and docker,
//! podman, skopeo, crane, oras) read them.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Read};

use anyhow::{Context, Result, bail};
use clap::Args;
use ferry_core::Error;
use ferry_distribution::{CredentialLocation, Credentials, LoginCheck, Reference};
use serde_json::json;

use crate::app::App;
use crate::options::{CommonArgs, Format};
use crate::output::{print_json, print_lines};
use crate::setup::clients::{Clients, Purpose, Side};

/// What docker prints when a password is given on the command line.
pub const PASSWORD_WARNING: &str =
    "WARNING! Using --password via the CLI is insecure. Use --password-stdin.";

/// The examples and exit codes of `ferry login --help`.
pub const LOGIN_EXAMPLES: &str = "\
Examples:
  # In CI: the password (or token) from stdin, checked against the registry, then stored:
  echo \"$REGISTRY_TOKEN\" | ferry login registry.example -u ci --password-stdin

  # On a terminal: asks for the user name and the password (not echoed):
  ferry login registry.example

  # A registry on this machine in plain HTTP:
  ferry login localhost:5000 --plain-http -u admin --password-stdin < password.txt

The credentials are checked first: `GET /v2/` answered with them (HTTP Basic, or a token
asked of the registry's token service); nothing is stored when the registry refuses them.
They are then stored where the first auth file sends them: the credential helper it names for
the registry (`credHelpers`, else `credsStore`: `docker-credential-NAME store`), else its
`auths`. The auth files, read in this order by every ferry command:
  $REGISTRY_AUTH_FILE
  $DOCKER_CONFIG/config.json (default ~/.docker/config.json)
  $XDG_RUNTIME_DIR/containers/auth.json, $XDG_CONFIG_HOME/containers/auth.json
The file is written anew beside the old one and renamed over it, mode 0600, every other key
kept as it was.

A password is not taken as an argument (other users of the machine see the command line):
use --password-stdin, or spell out `--password PASSWORD` and get docker's warning.

Exit codes:
  0  checked and stored
  1  storing failed (the file, the credential helper), or the registry could not be reached
  2  bad usage (a password as an argument, no terminal to ask on)
  4  the registry (or its token service) refused the credentials; nothing was stored";

/// `ferry login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry: `HOST[:PORT]` (`docker.io` for Docker Hub).
    pub registry: String,
    /// Refused: a password is not given as an argument.
    #[arg(hide = true)]
    pub stray_password: Option<String>,
    /// The user name (asked on a terminal when not given).
    #[arg(short = 'u', long, value_name = "USER")]
    pub username: Option<String>,
    /// The password, on the command line where other users of the machine can see it;
    /// prefer `--password-stdin`.
    #[arg(long, value_name = "PASSWORD", conflicts_with = "short_password")]
    pub password: Option<String>,
    /// Refused: spell out `--password`, or use `--password-stdin`.
    #[arg(short = 'p', hide = true, value_name = "PASSWORD")]
    pub short_password: Option<String>,
    /// Output, configuration and registry options (`--password-stdin` reads the password).
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The registry `text` names (`localhost:5000`, `docker.io`), as references name it.
pub(crate) fn registry_name(text: &str) -> Result<String> {
    let host = text
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .trim_end_matches("/v1")
        .trim_end_matches("/v2");
    let invalid = || {
        Error::invalid(
            "registry",
            text,
            "write `HOST[:PORT]` (`registry.example`, `localhost:5000`, `docker.io`)",
        )
    };
    if host.is_empty() || host.contains('/') || host.contains('@') {
        return Err(invalid().into());
    }
    let reference = Reference::parse(&format!("{host}/x")).map_err(|_| invalid())?;
    Ok(reference.registry().to_string())
}

/// Runs `ferry login`; returns the exit code.
pub async fn run(app: &App, args: LoginArgs) -> Result<u8> {
    let registry_args = &args.common.registry;
    if args.password.is_some() || args.short_password.is_some() {
        eprintln!("{PASSWORD_WARNING}");
    }
    let refused = |how: &str| {
        Error::invalid(
            "flag",
            how,
            "a password is not taken as an argument, where other users of the machine see it: \
             pipe it with `--password-stdin` (or spell out `--password PASSWORD`)",
        )
    };
    if args.stray_password.is_some() {
        bail!(refused("PASSWORD (an argument)"));
    }
    if args.short_password.is_some() {
        bail!(refused("-p"));
    }
    if args.password.is_some() && registry_args.password_stdin {
        bail!(Error::invalid(
            "flag",
            "--password",
            "`--password` and `--password-stdin` are mutually exclusive"
        ));
    }
    let registry = registry_name(&args.registry)?;
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let username = match &args.username {
        Some(u) => u.clone(),
        None if registry_args.password_stdin => bail!(Error::invalid(
            "flag",
            "--password-stdin",
            "give the user name with `-u USER`"
        )),
        None if terminal => prompt("Username: ", false)?,
        None => bail!(Error::invalid(
            "flag",
            "--username",
            "give the user name with `-u USER` (stdin is not a terminal to ask it on)"
        )),
    };
    let password = match &args.password {
        Some(p) => p.clone(),
        None if registry_args.password_stdin => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the password from stdin")?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            text.strip_suffix('\r').unwrap_or(text).to_string()
        }
        None if terminal => prompt("Password: ", true)?,
        None => bail!(Error::invalid(
            "flag",
            "--password-stdin",
            "give the password with `--password-stdin` (stdin is not a terminal to ask it on)"
        )),
    };
    if username.is_empty() || password.is_empty() {
        bail!(Error::invalid(
            "credentials",
            &registry,
            "the user name and the password must not be empty"
        ));
    }

    // The clients of the command, with these credentials given for the registry.
    let config = crate::setup::config(&app.factories, args.common.config.as_deref())?;
    let mut given = registry_args.clone();
    config.apply_registry(&mut given);
    given.from_username = Some(username.clone());
    given.from_password = Some(password.clone());
    given.password_stdin = false;
    let hosts = BTreeSet::from([registry.clone()]);
    let clients = Clients::new(
        &given,
        &config,
        &hosts,
        &BTreeSet::new(),
        Purpose::default(),
    )?;
    let check = clients
        .client(Side::From, &registry)
        .registry(&registry)?
        .check_login()
        .await?;
    let checked = match check {
        LoginCheck::Basic => "basic",
        LoginCheck::Token => "token",
        _ => {
            eprintln!(
                "warning: {registry} asked for no credentials, so they were stored without a \
                 check"
            );
            "not-asked"
        }
    };
    let stored = Credentials::from_docker_config()
        .store(&registry, &username, &password)
        .await?;
    if let CredentialLocation::File(path) = &stored {
        eprintln!(
            "warning: the credentials are stored unencrypted in `{}`; a credential helper \
             (`credsStore` in that file) keeps them in the system's keychain",
            path.display()
        );
    }
    match args.common.format {
        Format::Text => print_lines(&[format!(
            "Logged in to {registry} as {username} (checked: {checked}; stored in {stored})"
        )]),
        Format::Json => print_json(&json!({
            "registry": registry,
            "username": username,
            "checked": checked,
            "storedIn": location_json(&stored),
        }))?,
    }
    Ok(0)
}

pub(crate) fn location_json(location: &CredentialLocation) -> serde_json::Value {
    match location {
        CredentialLocation::Helper(name) => {
            json!({"kind": "helper", "helper": format!("docker-credential-{name}")})
        }
        CredentialLocation::File(path) => {
            json!({"kind": "file", "path": path.display().to_string()})
        }
        _ => json!({"kind": "other", "location": location.to_string()}),
    }
}

/// Asks `question` on the terminal; `secret` answers are not echoed.
fn prompt(question: &str, secret: bool) -> Result<String> {
    let term = console::Term::stderr();
    term.write_str(question)
        .context("writing to the terminal")?;
    let answer = if secret {
        term.read_secure_line()
    } else {
        term.read_line()
    };
    let answer = answer.context("reading from the terminal")?;
    Ok(if secret {
        answer
    } else {
        answer.trim().to_string()
    })
}
