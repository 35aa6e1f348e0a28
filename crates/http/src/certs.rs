//! Per-host TLS material: CA certificates and a client certificate, from a `certs.d` tree
//! laid out as containers/image and docker lay it out, from one directory, or from files.
//!
//! A host's directory is `ROOT/HOST[:PORT]/`, named as the host is written (`registry.example`
//! for a registry on the default port, `registry.example:5000`, `[fd00::1]:5000`, `docker.io`
//! for Docker Hub). The roots are searched in order, and the first that has the host's
//! directory wins (they are not merged):
//!
//! 1. `$XDG_CONFIG_HOME/containers/certs.d` (`~/.config/containers/certs.d` when unset),
//! 2. `/etc/containers/certs.d`,
//! 3. `/etc/docker/certs.d`;
//!
//! or, when [`CERTS_D_ENV`] is set (not empty), the `:`-separated roots it lists instead.
//!
//! In the directory, in name order: every `*.crt` is a CA certificate trusted besides the
//! system's roots; every `NAME.cert` is a client certificate whose key is `NAME.key` (PEM:
//! PKCS#8, PKCS#1 or SEC1; RSA, ECDSA or Ed25519). A certificate without its key, or a key
//! without its certificate, is an error, as it is for containers/image. When there are several
//! pairs, the first is presented.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_core::{Error, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// The crypto provider of every TLS configuration made here.
pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// The variable that replaces the `certs.d` roots searched: `:`-separated directories, in
/// order (for tests, and for hosts whose certificates live elsewhere).
pub const CERTS_D_ENV: &str = "FERRY_CERTS_D";

/// The host serving Docker Hub, whose directory is `docker.io`.
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// Where a [`crate::TlsPolicy`] finds a host's CA certificates and client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CertLookup {
    /// The `certs.d` roots of the environment (see the [module documentation](self)).
    #[default]
    Default,
    /// These roots, each holding a directory per host.
    Roots(Vec<PathBuf>),
    /// One directory for every host, without a directory per host (`--cert-dir`).
    Dir(PathBuf),
    /// None.
    Off,
}

impl CertLookup {
    /// The roots [`CertLookup::Default`] searches now: [`CERTS_D_ENV`] if set, else
    /// containers/image's and docker's.
    pub fn default_roots() -> Vec<PathBuf> {
        if let Some(list) = std::env::var_os(CERTS_D_ENV).filter(|v| !v.is_empty()) {
            return std::env::split_paths(&list)
                .filter(|p| !p.as_os_str().is_empty())
                .collect();
        }
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
        config
            .map(|c| c.join("containers").join("certs.d"))
            .into_iter()
            .chain([
                PathBuf::from("/etc/containers/certs.d"),
                PathBuf::from("/etc/docker/certs.d"),
            ])
            .collect()
    }

    /// The directory holding the material of `host` (a name, an IPv4 address or an IPv6
    /// address in brackets) on `port`, if any. On the scheme's default port
    /// (`default_port`), `HOST` and `HOST:PORT` are both looked for, `HOST` first.
    pub fn dir_for(&self, host: &str, port: u16, default_port: bool) -> Option<PathBuf> {
        let roots = match self {
            CertLookup::Off => return None,
            CertLookup::Dir(dir) => return dir.is_dir().then(|| dir.clone()),
            CertLookup::Roots(roots) => roots.clone(),
            CertLookup::Default => Self::default_roots(),
        };
        let mut names = Vec::new();
        if default_port {
            names.push(host.to_string());
            if host == DOCKER_HUB_API_HOST {
                names.push("docker.io".into());
            }
        }
        names.push(format!("{host}:{port}"));
        for root in roots {
            for name in &names {
                let dir = root.join(name);
                match std::fs::metadata(&dir) {
                    Ok(m) if m.is_dir() => return Some(dir),
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                        tracing::debug!(dir = %dir.display(), "no permission to read; skipped");
                    }
                    Err(_) => {}
                }
            }
        }
        None
    }
}

/// A client certificate with its key, checked to belong together.
#[derive(Clone)]
pub struct ClientIdentity {
    pub(crate) key: Arc<CertifiedKey>,
    /// The certificate file, for messages.
    pub(crate) source: String,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("certificate", &self.source)
            .finish_non_exhaustive()
    }
}

impl PartialEq for ClientIdentity {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.key.cert == other.key.cert
    }
}

impl ClientIdentity {
    /// Reads the certificate (chain) `cert` and its private key `key`, both PEM, and checks
    /// that the key is the certificate's, before anything connects.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self> {
        let read = |path: &Path, what: &str| {
            std::fs::read(path)
                .map_err(|e| Error::io(format!("cannot read the {what} `{}`", path.display()), e))
        };
        let cert_pem = read(cert, "client certificate")?;
        let key_pem = read(key, "client key")?;
        Self::from_pem(
            &cert_pem,
            &key_pem,
            &cert.display().to_string(),
            &key.display().to_string(),
        )
    }

    /// The certificate (chain) in `cert_pem` with the key in `key_pem`; the names say where
    /// they came from in errors.
    pub fn from_pem(
        cert_pem: &[u8],
        key_pem: &[u8],
        cert_name: &str,
        key_name: &str,
    ) -> Result<Self> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| {
                Error::invalid(
                    "client certificate",
                    cert_name,
                    format!("it is not PEM ({e})"),
                )
            })?;
        if chain.is_empty() {
            return Err(Error::invalid(
                "client certificate",
                cert_name,
                "it holds no `-----BEGIN CERTIFICATE-----` block",
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
            Error::invalid(
                "client key",
                key_name,
                format!(
                    "it holds no private key in PEM (PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE \
                     KEY` or SEC1 `EC PRIVATE KEY`): {e}"
                ),
            )
        })?;
        let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => Error::invalid(
                "client key",
                key_name,
                format!("it is not the key of the certificate `{cert_name}`; give the key that belongs to it"),
            ),
            other => Error::invalid(
                "client key",
                key_name,
                format!("it cannot sign with the certificate `{cert_name}` ({other}); use an RSA, ECDSA or Ed25519 key"),
            ),
        })?;
        Ok(Self {
            key: Arc::new(certified),
            source: cert_name.to_string(),
        })
    }

    /// The certificate file, as given.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// What a host's directory holds.
#[derive(Debug, Default)]
pub(crate) struct HostMaterial {
    pub(crate) cas: Vec<CertificateDer<'static>>,
    pub(crate) identity: Option<ClientIdentity>,
}

/// Reads `dir` as containers/image reads a `certs.d` host directory.
pub(crate) fn read_dir(dir: &Path) -> Result<HostMaterial> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HostMaterial::default()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            tracing::debug!(dir = %dir.display(), "no permission to read; skipped");
            return Ok(HostMaterial::default());
        }
        Err(e) => return Err(Error::io(format!("cannot read `{}`", dir.display()), e)),
    };
    names.sort();
    let mut material = HostMaterial::default();
    for name in &names {
        let path = dir.join(name);
        if name.ends_with(".crt") {
            match std::fs::read(&path) {
                Ok(pem) => {
                    let before = material.cas.len();
                    material
                        .cas
                        .extend(CertificateDer::pem_slice_iter(&pem).filter_map(|c| c.ok()));
                    if material.cas.len() == before {
                        tracing::warn!(file = %path.display(), "no CA certificate in this file; ignored");
                    }
                }
                Err(e) => {
                    tracing::debug!(file = %path.display(), error = %e, "unreadable; skipped")
                }
            }
        } else if let Some(stem) = name.strip_suffix(".cert") {
            let key = format!("{stem}.key");
            if !names.contains(&key) {
                return Err(Error::invalid(
                    "client certificate",
                    path.display().to_string(),
                    format!(
                        "its key `{key}` is missing beside it (CA certificates take the extension \
                         `.crt`)"
                    ),
                ));
            }
            if material.identity.is_none() {
                material.identity = Some(ClientIdentity::from_files(&path, &dir.join(&key))?);
            } else {
                tracing::debug!(file = %path.display(), "a client certificate came first; this one is not presented");
            }
        } else if let Some(stem) = name.strip_suffix(".key") {
            let cert = format!("{stem}.cert");
            if !names.contains(&cert) {
                return Err(Error::invalid(
                    "client key",
                    path.display().to_string(),
                    format!("its certificate `{cert}` is missing beside it"),
                ));
            }
        }
    }
    Ok(material)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_directory_is_named_as_the_host_is_written_and_the_first_root_wins() {
        let roots = tempfile::tempdir().unwrap();
        let (a, b) = (roots.path().join("a"), roots.path().join("b"));
        for dir in [
            a.join("registry.example:5000"),
            b.join("registry.example:5000"),
            b.join("registry.example"),
            b.join("secure.example:443"),
            b.join("[fd00::1]:5000"),
            b.join("docker.io"),
        ] {
            std::fs::create_dir_all(dir).unwrap();
        }
        let lookup = CertLookup::Roots(vec![a.clone(), b.clone()]);
        assert_eq!(
            lookup.dir_for("registry.example", 5000, false),
            Some(a.join("registry.example:5000"))
        );
        assert_eq!(
            lookup.dir_for("registry.example", 443, true),
            Some(b.join("registry.example"))
        );
        // On the default port, `HOST:443` is found too.
        assert_eq!(
            lookup.dir_for("secure.example", 443, true),
            Some(b.join("secure.example:443"))
        );
        assert_eq!(lookup.dir_for("registry.example", 5001, false), None);
        assert_eq!(
            lookup.dir_for("[fd00::1]", 5000, false),
            Some(b.join("[fd00::1]:5000"))
        );
        assert_eq!(
            lookup.dir_for("registry-1.docker.io", 443, true),
            Some(b.join("docker.io"))
        );
        assert_eq!(CertLookup::Off.dir_for("registry.example", 443, true), None);
        assert_eq!(
            CertLookup::Dir(a.clone()).dir_for("anything.example", 1, false),
            Some(a)
        );
    }
}
