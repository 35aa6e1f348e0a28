//! docker's credential-helper protocol: `docker-credential-<name> get|store|erase`, one action
//! as the argument, the server URL (or a JSON document for `store`) on stdin, errors on stdout.

use std::path::{Path, PathBuf};
use std::process::Output;

use ferry_core::{Error, Result};
use serde::Deserialize;

use super::Credential;

/// What helpers print when they hold nothing for a server (`credentials.NotFound`).
const NOT_FOUND: &str = "credentials not found";

/// The server URL a helper stores `key`'s credentials under: Docker Hub's legacy URL for
/// `docker.io`, the host (and port) for any other registry, as docker does.
pub(crate) fn server_url(key: &str) -> String {
    if key == "docker.io" {
        "https://index.docker.io/v1/".to_string()
    } else {
        key.to_string()
    }
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// The program `docker-credential-<helper>`: in `helper_dir` when it is there, else on `PATH`.
fn program(helper: &str, helper_dir: Option<&Path>) -> (String, PathBuf) {
    let name = format!("docker-credential-{helper}");
    let executable = helper_dir
        .map(|d| d.join(&name))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(&name));
    (name, executable)
}

/// Runs `helper action` with `input` on stdin.
async fn run(
    helper: &str,
    action: &str,
    input: &[u8],
    helper_dir: Option<&Path>,
) -> Result<Output> {
    use tokio::io::AsyncWriteExt;
    let (name, executable) = program(helper, helper_dir);
    tracing::debug!(program = %name, action, "running credential helper");
    let mut child = tokio::process::Command::new(&executable)
        .arg(action)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            Error::io(
                format!(
                    "running credential helper `{name}` (named in docker's config.json); \
                     install it or remove it from the configuration"
                ),
                e,
            )
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .await
            .map_err(|e| Error::io(format!("writing to `{name}`"), e))?;
    }
    child
        .wait_with_output()
        .await
        .map_err(|e| Error::io(format!("running `{name}`"), e))
}

/// What a helper said when it failed: its stdout (where the protocol puts errors) and
/// stderr, on one line.
fn said(out: &Output) -> String {
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(300)
        .collect()
}

fn not_found(out: &Output) -> bool {
    said(out).to_ascii_lowercase().contains(NOT_FOUND)
}

/// `get`: the credential the helper holds for `key`, `None` when it holds none.
pub(crate) async fn get(
    helper: &str,
    key: &str,
    helper_dir: Option<&Path>,
) -> Result<Option<Credential>> {
    let server = server_url(key);
    let out = run(helper, "get", server.as_bytes(), helper_dir).await?;
    let name = program(helper, None).0;
    if !out.status.success() {
        if not_found(&out) {
            return Ok(None);
        }
        return Err(Error::store(
            name,
            format!(
                "`get` for `{server}` failed ({}): {}",
                out.status,
                said(&out)
            ),
        ));
    }
    let answer: HelperAnswer = serde_json::from_slice(&out.stdout).map_err(|e| {
        Error::store(
            &name,
            format!("`get` for `{server}` gave no valid JSON: {e}"),
        )
    })?;
    if answer.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if answer.username == "<token>" {
        Credential::IdentityToken(answer.secret)
    } else {
        Credential::Basic {
            username: answer.username,
            password: answer.secret,
        }
    }))
}

/// `store`: gives the helper `username` and `secret` for `key`.
pub(crate) async fn store(
    helper: &str,
    key: &str,
    username: &str,
    secret: &str,
    helper_dir: Option<&Path>,
) -> Result<()> {
    #[derive(serde::Serialize)]
    struct StoreRequest<'a> {
        #[serde(rename = "ServerURL")]
        server_url: &'a str,
        #[serde(rename = "Username")]
        username: &'a str,
        #[serde(rename = "Secret")]
        secret: &'a str,
    }
    let server = server_url(key);
    let request = StoreRequest {
        server_url: &server,
        username,
        secret,
    };
    // Docker's order of keys, a line as its json.Encoder writes it.
    let mut input = serde_json::to_vec(&request).expect("JSON");
    input.push(b'\n');
    let out = run(helper, "store", &input, helper_dir).await?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::store(
        program(helper, None).0,
        format!(
            "`store` for `{server}` failed ({}): {}; nothing was stored",
            out.status,
            said(&out)
        ),
    ))
}

/// `erase`: removes what the helper holds for `key`. Returns whether it held something.
pub(crate) async fn erase(helper: &str, key: &str, helper_dir: Option<&Path>) -> Result<bool> {
    let server = server_url(key);
    let out = run(helper, "erase", server.as_bytes(), helper_dir).await?;
    if out.status.success() {
        return Ok(true);
    }
    if not_found(&out) {
        return Ok(false);
    }
    Err(Error::store(
        program(helper, None).0,
        format!(
            "`erase` for `{server}` failed ({}): {}",
            out.status,
            said(&out)
        ),
    ))
}
