//! What `ferry sync` reads from and writes to.

use std::path::PathBuf;

use ferry_core::Error;
use ferry_distribution::Reference;

type Result<T> = std::result::Result<T, Error>;

/// A sync source or destination as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncEndpoint {
    /// `HOST[:PORT]/REPO`: one repository.
    Repository {
        /// The registry, as the reference parser names it (`docker.io`, `localhost:5000`).
        registry: String,
        /// The repository (`team/app`).
        repository: String,
    },
    /// `HOST[:PORT]/PREFIX/` or `HOST[:PORT]/`: the repositories under a prefix.
    Registry {
        /// The registry.
        registry: String,
        /// Empty, or ending in `/`.
        prefix: String,
    },
    /// `oci:PATH`: one layout.
    Layout {
        /// The layout.
        path: PathBuf,
    },
    /// `oci-dir:PATH/`: a directory of layouts.
    Dir {
        /// The directory.
        path: PathBuf,
    },
    /// `oci-archive:PATH` (or `-`), or `docker-archive:PATH` as a source: a bundle of
    /// repositories in one tar.
    Archive {
        /// Which format.
        format: crate::archive::ArchiveFormat,
        /// The file, or `-` for stdin or stdout.
        path: crate::archive::ArchivePath,
    },
}

fn invalid(value: &str, reason: impl Into<String>) -> Error {
    Error::invalid("sync endpoint", value, reason)
}

/// Whether `s` has the shape of a registry host (`localhost`, a dotted name, or a port).
fn looks_like_host(s: &str) -> bool {
    s == "localhost" || s.contains('.') || s.contains(':')
}

impl SyncEndpoint {
    /// Parses a sync endpoint.
    pub fn parse(text: &str) -> Result<Self> {
        if text.is_empty() {
            return Err(invalid(
                text,
                "empty; write `HOST/REPO`, `HOST/PREFIX/`, `oci:PATH`, `oci-dir:PATH/` or \
                 `oci-archive:PATH`",
            ));
        }
        if let Some(path) = text.strip_prefix("oci-dir:") {
            if path.is_empty() {
                return Err(invalid(text, "names no directory; write `oci-dir:PATH/`"));
            }
            return Ok(SyncEndpoint::Dir {
                path: PathBuf::from(path),
            });
        }
        if let Some(parsed) = crate::archive::parse(text) {
            let (format, path, reference) = parsed?;
            if reference != crate::archive::ArchiveRef::default() {
                return Err(invalid(
                    text,
                    "`ferry sync` takes every image of an archive; write the archive alone \
                     and choose tags with `--tags` (or use `ferry cp` for one image)",
                ));
            }
            return Ok(SyncEndpoint::Archive { format, path });
        }
        if text.starts_with("oci:") {
            return match crate::endpoint::Endpoint::parse(text)? {
                crate::endpoint::Endpoint::Layout {
                    path,
                    reference: None,
                } => Ok(SyncEndpoint::Layout { path }),
                crate::endpoint::Endpoint::Layout { .. } => Err(invalid(
                    text,
                    "`ferry sync` takes every tag of a layout; write `oci:PATH` and choose tags \
                     with `--tags`",
                )),
                crate::endpoint::Endpoint::Registry { .. }
                | crate::endpoint::Endpoint::Archive { .. } => {
                    Err(invalid(text, "write `oci:PATH` for a layout"))
                }
            };
        }
        if text.contains("://") {
            return Err(invalid(
                text,
                "ferry does not take URLs; write `HOST[:PORT]/REPO` or `HOST[:PORT]/PREFIX/`",
            ));
        }
        if let Some(stem) = text.strip_suffix('/') {
            let (host, prefix) = stem.split_once('/').unwrap_or((stem, ""));
            if !looks_like_host(host) {
                return Err(invalid(
                    text,
                    format!(
                        "a prefix needs its registry: write `HOST[:PORT]/{}` (`{host}` is not a \
                         host name; `localhost`, a dotted name or a port makes one)",
                        if prefix.is_empty() {
                            format!("{host}/")
                        } else {
                            format!("{host}/{prefix}/")
                        }
                    ),
                ));
            }
            let registry = Reference::parse(&format!("{host}/x"))?
                .registry()
                .to_string();
            if !prefix.is_empty() {
                ferry_distribution::reference::validate_repository(prefix)?;
            }
            let prefix = if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            };
            return Ok(SyncEndpoint::Registry { registry, prefix });
        }
        let reference = Reference::parse(text)?;
        let last = text.rsplit('/').next().unwrap_or(text);
        if last.contains(':') || last.contains('@') {
            return Err(invalid(
                text,
                "`ferry sync` takes every tag of a repository; drop the tag or digest and choose \
                 tags with `--tags` (or use `ferry cp` for one image)",
            ));
        }
        Ok(SyncEndpoint::Repository {
            registry: reference.registry().to_string(),
            repository: reference.repository().to_string(),
        })
    }

    /// Whether it names many repositories (a prefix, a directory).
    pub fn is_many(&self) -> bool {
        matches!(
            self,
            SyncEndpoint::Registry { .. } | SyncEndpoint::Dir { .. } | SyncEndpoint::Archive { .. }
        )
    }

    /// The registry host, when it is on a registry.
    pub fn registry(&self) -> Option<&str> {
        match self {
            SyncEndpoint::Repository { registry, .. } | SyncEndpoint::Registry { registry, .. } => {
                Some(registry)
            }
            _ => None,
        }
    }
}
