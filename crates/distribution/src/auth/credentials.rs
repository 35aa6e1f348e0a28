//! Credentials: given explicitly, or read from the auth files (docker's `config.json`, the
//! containers `auth.json`: `auths`, `credsStore`, `credHelpers`), and stored there by a login.

mod file;
mod helper;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ferry_core::{Error, Result};

use file::{AuthFile, edit_auths};

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

/// Where a client finds credentials. Explicit credentials win over the auth files.
///
/// The auth files, in the order they are read (the first that knows the registry wins):
///
/// 1. `$REGISTRY_AUTH_FILE` (podman's, skopeo's and buildah's override);
/// 2. docker's `config.json` in `$DOCKER_CONFIG`, else `~/.docker/config.json`;
/// 3. the containers `auth.json`: `$XDG_RUNTIME_DIR/containers/auth.json`, then
///    `$XDG_CONFIG_HOME/containers/auth.json` (default `~/.config/containers/auth.json`).
///
/// In each, a `credHelpers` entry for the registry wins, then its `auths` entry, then
/// `credsStore`; a helper is run as `docker-credential-<name> get`. [`Credentials::store`]
/// writes to the first file ([`Credentials::login_file`]), so what it stores is what is read
/// next.
#[derive(Debug, Clone)]
pub struct Credentials {
    explicit: HashMap<String, Credential>,
    files: AuthFiles,
    helper_dir: Option<PathBuf>,
}

#[derive(Debug, Clone)]
enum AuthFiles {
    Off,
    /// The files the environment names, looked up when first needed.
    Default,
    Files(Vec<PathBuf>),
}

impl Default for Credentials {
    fn default() -> Self {
        Self::from_docker_config()
    }
}

/// Where a credential was stored, or erased from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialLocation {
    /// A credential helper, `docker-credential-<name>`.
    Helper(String),
    /// The `auths` of an auth file.
    File(PathBuf),
}

impl std::fmt::Display for CredentialLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialLocation::Helper(name) => {
                write!(f, "credential helper `docker-credential-{name}`")
            }
            CredentialLocation::File(path) => write!(f, "`{}`", path.display()),
        }
    }
}

impl Credentials {
    /// The auth files the environment names (see [`Credentials`]).
    pub fn from_docker_config() -> Self {
        Self {
            explicit: HashMap::new(),
            files: AuthFiles::Default,
            helper_dir: None,
        }
    }

    /// No credentials at all: every request is anonymous.
    pub fn anonymous() -> Self {
        Self {
            explicit: HashMap::new(),
            files: AuthFiles::Off,
            helper_dir: None,
        }
    }

    /// Docker's configuration from `dir/config.json` alone.
    pub fn from_docker_config_dir(dir: impl Into<PathBuf>) -> Self {
        Self::from_auth_files(vec![dir.into().join("config.json")])
    }

    /// These auth files, read in order; the first is where [`Credentials::store`] writes.
    pub fn from_auth_files(files: Vec<PathBuf>) -> Self {
        Self {
            explicit: HashMap::new(),
            files: AuthFiles::Files(files),
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

    /// The auth files read, in order.
    pub fn auth_files(&self) -> Vec<PathBuf> {
        match &self.files {
            AuthFiles::Off => Vec::new(),
            AuthFiles::Default => auth_files_in(&|name| std::env::var_os(name)),
            AuthFiles::Files(files) => files.clone(),
        }
    }

    /// The file [`Credentials::store`] writes `auths` to: the first auth file.
    pub fn login_file(&self) -> Option<PathBuf> {
        self.auth_files().into_iter().next()
    }

    /// The credential for `registry`, if any. Runs a docker credential helper when the
    /// configuration names one.
    pub async fn lookup(&self, registry: &str) -> Result<Option<Credential>> {
        let key = normalize_key(registry);
        if let Some(c) = self.explicit.get(&key) {
            return Ok(Some(c.clone()));
        }
        for path in self.auth_files() {
            let Some(file) = AuthFile::read(&path).await? else {
                continue;
            };
            if let Some(helper) = file.cred_helper(&key) {
                return helper::get(helper, &key, self.helper_dir.as_deref()).await;
            }
            if let Some(c) = file.auths_credential(&key, &path)? {
                return Ok(Some(c));
            }
            if let Some(store) = file.creds_store()
                && let Some(c) = helper::get(store, &key, self.helper_dir.as_deref()).await?
            {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// Stores `username` and `password` for `registry` where the login file sends them: the
    /// credential helper it names for the registry (`credHelpers`, else `credsStore`), through
    /// the helper protocol; otherwise its `auths`, in a file written anew beside the old one and renamed
    /// over it (mode 0600, every other key kept as it was). Check them against the registry first ([`crate::Registry::check_login`]).
    pub async fn store(
        &self,
        registry: &str,
        username: &str,
        password: &str,
    ) -> Result<CredentialLocation> {
        let key = normalize_key(registry);
        let path = self.login_file().ok_or_else(|| Error::MissingSetting {
            strategy: "credentials".into(),
            key: "auth file".into(),
            help: "set DOCKER_CONFIG, REGISTRY_AUTH_FILE or HOME so ferry knows where to keep \
                   credentials"
                .into(),
        })?;
        let file = AuthFile::read(&path).await?.unwrap_or_default();
        match file.destination(&key) {
            file::Source::Helper(helper) => {
                helper::store(helper, &key, username, password, self.helper_dir.as_deref()).await?;
                // A password left in `auths` would be read before `credsStore`.
                let path2 = path.clone();
                let key2 = key.clone();
                blocking(move || edit_auths(&path2, |auths| auths.strip_secrets(&key2))).await?;
                Ok(CredentialLocation::Helper(helper.to_string()))
            }
            file::Source::Auths => {
                let (u, p) = (username.to_string(), password.to_string());
                let new_key = helper::server_url(&key);
                let path2 = path.clone();
                blocking(move || edit_auths(&path2, |auths| auths.set(&key, &new_key, &u, &p)))
                    .await?;
                Ok(CredentialLocation::File(path))
            }
        }
    }

    /// Removes every credential for `registry` that [`Credentials::lookup`] could find: from
    /// the credential helpers the auth files name for it, and from the `auths` of each auth
    /// file. Returns where something was removed; empty when nothing was stored.
    pub async fn erase(&self, registry: &str) -> Result<Vec<CredentialLocation>> {
        let key = normalize_key(registry);
        let mut erased = Vec::new();
        for path in self.auth_files() {
            let Some(file) = AuthFile::read(&path).await? else {
                continue;
            };
            for helper in [file.cred_helper(&key), file.creds_store()]
                .into_iter()
                .flatten()
            {
                let location = CredentialLocation::Helper(helper.to_string());
                if !erased.contains(&location)
                    && helper::erase(helper, &key, self.helper_dir.as_deref()).await?
                {
                    erased.push(location);
                }
            }
            let (path2, key2) = (path.clone(), key.clone());
            if blocking(move || edit_auths(&path2, |auths| auths.remove(&key2))).await? {
                erased.push(CredentialLocation::File(path));
            }
        }
        Ok(erased)
    }
}

/// Runs a file edit on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::store("credentials", format!("the file task failed: {e}")))?
}

/// The auth files `env` names, in the order they are read (see [`Credentials`]).
fn auth_files_in(env: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> Vec<PathBuf> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    let home = var("HOME").map(PathBuf::from);
    let mut out = Vec::new();
    if let Some(file) = var("REGISTRY_AUTH_FILE") {
        out.push(PathBuf::from(file));
    }
    match (var("DOCKER_CONFIG"), &home) {
        (Some(dir), _) => out.push(Path::new(&dir).join("config.json")),
        (None, Some(home)) => out.push(home.join(".docker").join("config.json")),
        (None, None) => {}
    }
    if let Some(dir) = var("XDG_RUNTIME_DIR") {
        out.push(Path::new(&dir).join("containers").join("auth.json"));
    }
    match (var("XDG_CONFIG_HOME"), &home) {
        (Some(dir), _) => out.push(Path::new(&dir).join("containers").join("auth.json")),
        (None, Some(home)) => out.push(home.join(".config").join("containers").join("auth.json")),
        (None, None) => {}
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    out
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
    fn auth_files_in_their_order() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        let all = env(&[
            ("REGISTRY_AUTH_FILE", "/r/auth.json"),
            ("DOCKER_CONFIG", "/cfg"),
            ("HOME", "/home/u"),
            ("XDG_RUNTIME_DIR", "/run/user/1"),
            ("XDG_CONFIG_HOME", "/xdg"),
        ]);
        assert_eq!(
            auth_files_in(&all),
            [
                "/r/auth.json",
                "/cfg/config.json",
                "/run/user/1/containers/auth.json",
                "/xdg/containers/auth.json"
            ]
            .map(PathBuf::from)
        );
        let home_only = env(&[("HOME", "/home/u"), ("DOCKER_CONFIG", "")]);
        assert_eq!(
            auth_files_in(&home_only),
            [
                "/home/u/.docker/config.json",
                "/home/u/.config/containers/auth.json"
            ]
            .map(PathBuf::from)
        );
        assert!(auth_files_in(&env(&[])).is_empty());
    }

    #[tokio::test]
    async fn the_first_file_that_knows_a_registry_wins_and_logins_go_to_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (dir.path().join("a.json"), dir.path().join("b.json"));
        std::fs::write(&second, r#"{"auths":{"r.example":{"auth":"b2xkOnB3"}}}"#).unwrap();
        let creds = Credentials::from_auth_files(vec![first.clone(), second.clone()]);
        let old = Some(Credential::Basic {
            username: "old".into(),
            password: "pw".into(),
        });
        assert_eq!(creds.lookup("r.example").await.unwrap(), old);
        assert_eq!(
            creds.store("r.example", "new", "s3cret").await.unwrap(),
            CredentialLocation::File(first.clone())
        );
        assert_eq!(
            creds.lookup("r.example").await.unwrap(),
            Some(Credential::Basic {
                username: "new".into(),
                password: "s3cret".into()
            })
        );
        assert_eq!(
            creds.erase("r.example").await.unwrap(),
            [
                CredentialLocation::File(first),
                CredentialLocation::File(second)
            ]
        );
        assert_eq!(creds.lookup("r.example").await.unwrap(), None);
        assert!(creds.erase("r.example").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_login_keeps_every_other_key_and_writes_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            "{\n  \"psFormat\": \"table {{.ID}}\",\n  \"auths\": {\"z.example\": {\"auth\": \"eDp5\"}, \"https://index.docker.io/v1/\": {\"email\": \"a@b\", \"auth\": \"b2xkOm9sZA==\"}},\n  \"proxies\": {\"default\": {\"httpProxy\": \"http://p:3128\"}}\n}",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let creds = Credentials::from_auth_files(vec![path.clone()]);
        creds.store("docker.io", "hub", "pw").await.unwrap();
        creds.store("localhost:5000", "me", "pw2").await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["psFormat"], "table {{.ID}}");
        assert_eq!(v["proxies"]["default"]["httpProxy"], "http://p:3128");
        assert_eq!(v["auths"]["z.example"]["auth"], "eDp5");
        let hub = &v["auths"]["https://index.docker.io/v1/"];
        assert_eq!(hub["email"], "a@b");
        assert_eq!(hub["auth"], "aHViOnB3");
        assert_eq!(v["auths"]["localhost:5000"]["auth"], "bWU6cHcy");
        // The keys stay in their order.
        let order: Vec<usize> = ["psFormat", "auths", "proxies"]
            .iter()
            .map(|k| text.find(&format!("\"{k}\"")).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left");
    }

    #[test]
    fn keys_normalize() {
        assert_eq!(normalize_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize_key("http://Localhost:5000/"), "localhost:5000");
        assert_eq!(normalize_key("ghcr.io"), "ghcr.io");
    }
}
