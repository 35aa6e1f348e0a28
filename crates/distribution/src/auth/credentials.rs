//! Credentials: given explicitly, or read from docker's `config.json` (`auths`, `credsStore`,
//! `credHelpers`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ferry_core::{Error, Result};
use serde::Deserialize;

/// A secret for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or personal access token), sent as HTTP Basic to the
    /// registry and to the token realm it names.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// An OAuth2 refresh token (docker's `identitytoken`), exchanged at the token realm with
    /// `grant_type=refresh_token`.
    IdentityToken(String),
    /// A bearer token used as is (`--registry-token`).
    BearerToken(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
            Credential::BearerToken(_) => f.write_str("BearerToken(<redacted>)"),
        }
    }
}

/// Where a client finds credentials. Explicit credentials win over docker's configuration.
#[derive(Debug, Clone)]
pub struct Credentials {
    explicit: HashMap<String, Credential>,
    docker_config: DockerConfigSource,
    helper_dir: Option<PathBuf>,
}

#[derive(Debug, Clone)]
enum DockerConfigSource {
    Off,
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, read when first needed.
    Default,
    Dir(PathBuf),
}

impl Default for Credentials {
    fn default() -> Self {
        Self::from_docker_config()
    }
}

impl Credentials {
    /// Docker's configuration: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn from_docker_config() -> Self {
        Self {
            explicit: HashMap::new(),
            docker_config: DockerConfigSource::Default,
            helper_dir: None,
        }
    }

    /// No credentials at all: every request is anonymous.
    pub fn anonymous() -> Self {
        Self {
            explicit: HashMap::new(),
            docker_config: DockerConfigSource::Off,
            helper_dir: None,
        }
    }

    /// Docker's configuration from `dir/config.json`.
    pub fn from_docker_config_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            explicit: HashMap::new(),
            docker_config: DockerConfigSource::Dir(dir.into()),
            helper_dir: None,
        }
    }

    /// Adds `credential` for `registry` (`localhost:5000`, `docker.io`); it overrides docker's
    /// configuration for that registry.
    pub fn with(mut self, registry: impl Into<String>, credential: Credential) -> Self {
        self.explicit
            .insert(normalize_key(&registry.into()), credential);
        self
    }

    /// Looks for `docker-credential-<name>` helpers in `dir` before `PATH`.
    pub fn with_helper_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.helper_dir = Some(dir.into());
        self
    }

    /// The credential for `registry`, if any. Runs a docker credential helper when the
    /// configuration names one.
    pub async fn lookup(&self, registry: &str) -> Result<Option<Credential>> {
        let key = normalize_key(registry);
        if let Some(c) = self.explicit.get(&key) {
            return Ok(Some(c.clone()));
        }
        let path = match &self.docker_config {
            DockerConfigSource::Off => return Ok(None),
            DockerConfigSource::Dir(d) => d.join("config.json"),
            DockerConfigSource::Default => match default_config_path() {
                Some(p) => p,
                None => return Ok(None),
            },
        };
        let text = match tokio::fs::read(&path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("reading `{}`", path.display()), e)),
        };
        let config: DockerConfig = serde_json::from_slice(&text).map_err(|e| {
            Error::invalid(
                "docker config",
                path.display().to_string(),
                format!("not valid JSON ({e}); fix or remove the file"),
            )
        })?;
        config.lookup(&key, &path, self.helper_dir.as_deref()).await
    }
}

fn default_config_path() -> Option<PathBuf> {
    config_path(std::env::var_os("DOCKER_CONFIG"), std::env::var_os("HOME"))
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
fn config_path(
    docker_config: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    if let Some(dir) = docker_config.filter(|d| !d.is_empty()) {
        return Some(Path::new(&dir).join("config.json"));
    }
    let home = home.filter(|h| !h.is_empty())?;
    Some(Path::new(&home).join(".docker").join("config.json"))
}

/// The key docker's configuration uses for a registry: the host and port, Docker Hub under
/// `docker.io`; scheme and path of `https://index.docker.io/v1/` style keys removed.
pub(crate) fn normalize_key(s: &str) -> String {
    let s = s.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        _ => host,
    }
}

#[derive(Deserialize, Default)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

impl DockerConfig {
    async fn lookup(
        &self,
        key: &str,
        path: &Path,
        helper_dir: Option<&Path>,
    ) -> Result<Option<Credential>> {
        if let Some((_, helper)) = self
            .cred_helpers
            .iter()
            .find(|(k, _)| normalize_key(k) == key)
        {
            return run_helper(helper, key, helper_dir).await;
        }
        let entry = self
            .auths
            .iter()
            .find(|(k, _)| normalize_key(k) == key)
            .map(|(_, v)| v);
        if let Some(entry) = entry
            && let Some(c) = entry.credential(key, path)?
        {
            return Ok(Some(c));
        }
        if let Some(store) = self.creds_store.as_deref().filter(|s| !s.is_empty()) {
            return run_helper(store, key, helper_dir).await;
        }
        Ok(None)
    }
}

impl AuthEntry {
    fn credential(&self, key: &str, path: &Path) -> Result<Option<Credential>> {
        if let Some(t) = self.identitytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::IdentityToken(t.to_string())));
        }
        if let Some(t) = self.registrytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::BearerToken(t.to_string())));
        }
        if let Some(auth) = self.auth.as_deref().filter(|a| !a.is_empty()) {
            let bad = |why: &str| {
                Error::invalid(
                    "docker config",
                    path.display().to_string(),
                    format!("the `auth` of `{key}` {why}; log in again with `docker login {key}`"),
                )
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad("is not base64"))?;
            let text = String::from_utf8(decoded).map_err(|_| bad("is not UTF-8"))?;
            let (u, p) = text
                .split_once(':')
                .ok_or_else(|| bad("is not `user:password`"))?;
            return Ok(Some(Credential::Basic {
                username: u.to_string(),
                password: p.to_string(),
            }));
        }
        if let (Some(u), Some(p)) = (&self.username, &self.password) {
            return Ok(Some(Credential::Basic {
                username: u.clone(),
                password: p.clone(),
            }));
        }
        Ok(None)
    }
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Runs `docker-credential-<helper> get` with the server on stdin.
async fn run_helper(
    helper: &str,
    key: &str,
    helper_dir: Option<&Path>,
) -> Result<Option<Credential>> {
    use tokio::io::AsyncWriteExt;
    let program = format!("docker-credential-{helper}");
    let executable = helper_dir
        .map(|d| d.join(&program))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(&program));
    // Docker Hub's credentials are stored under its legacy URL.
    let server = if key == "docker.io" {
        "https://index.docker.io/v1/".to_string()
    } else {
        key.to_string()
    };
    tracing::debug!(%program, %server, "running credential helper");
    let mut child = tokio::process::Command::new(&executable)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            Error::io(
                format!("running credential helper `{program}` (named in docker's config.json); install it or remove it from the configuration"),
                e,
            )
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .await
            .map_err(|e| Error::io(format!("writing to `{program}`"), e))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| Error::io(format!("running `{program}`"), e))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if text.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(Error::store(
            program,
            format!(
                "`get` for `{server}` failed ({}): {}",
                out.status,
                text.trim().chars().take(300).collect::<String>()
            ),
        ));
    }
    let answer: HelperAnswer = serde_json::from_slice(&out.stdout).map_err(|e| {
        Error::store(
            &program,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, json: &str) {
        std::fs::write(dir.join("config.json"), json).unwrap();
    }

    #[tokio::test]
    async fn reads_auths_in_every_form() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            r#"{"auths":{
                "localhost:5000":{"auth":"dXNlcjpwYTpzcw=="},
                "https://index.docker.io/v1/":{"username":"hub","password":"pw"},
                "id.example":{"auth":"","identitytoken":"refresh"}
            }}"#,
        );
        let creds = Credentials::from_docker_config_dir(dir.path());
        assert_eq!(
            creds.lookup("localhost:5000").await.unwrap(),
            Some(Credential::Basic {
                username: "user".into(),
                password: "pa:ss".into()
            })
        );
        assert_eq!(
            creds.lookup("docker.io").await.unwrap(),
            Some(Credential::Basic {
                username: "hub".into(),
                password: "pw".into()
            })
        );
        assert_eq!(
            creds.lookup("id.example").await.unwrap(),
            Some(Credential::IdentityToken("refresh".into()))
        );
        assert_eq!(creds.lookup("other:1").await.unwrap(), None);
        let explicit = creds.with("localhost:5000", Credential::BearerToken("t".into()));
        assert_eq!(
            explicit.lookup("localhost:5000").await.unwrap(),
            Some(Credential::BearerToken("t".into()))
        );
    }

    #[tokio::test]
    async fn runs_credential_helpers() {
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-ferrytest");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread server\nif [ \"$server\" = \"reg.example:1\" ]; then echo '{\"ServerURL\":\"x\",\"Username\":\"<token>\",\"Secret\":\"idt\"}'; else echo 'credentials not found in native keychain'; exit 1; fi\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        write(
            dir.path(),
            r#"{"credHelpers":{"reg.example:1":"ferrytest"},"credsStore":"ferrytest"}"#,
        );
        let creds = Credentials::from_docker_config_dir(dir.path()).with_helper_dir(dir.path());
        assert_eq!(
            creds.lookup("reg.example:1").await.unwrap(),
            Some(Credential::IdentityToken("idt".into()))
        );
        assert_eq!(creds.lookup("elsewhere").await.unwrap(), None);
    }

    #[test]
    fn docker_config_env_wins_over_home() {
        assert_eq!(
            config_path(Some("/cfg".into()), Some("/home/u".into())),
            Some(PathBuf::from("/cfg/config.json"))
        );
        assert_eq!(
            config_path(Some("".into()), Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.docker/config.json"))
        );
        assert_eq!(config_path(None, None), None);
    }

    #[test]
    fn keys_normalize() {
        assert_eq!(normalize_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize_key("http://Localhost:5000/"), "localhost:5000");
        assert_eq!(normalize_key("ghcr.io"), "ghcr.io");
    }
}
