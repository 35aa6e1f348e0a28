//! The two kinds of endpoint `ferry cp` accepts: OCI layouts and registry references.

use std::path::PathBuf;

use ferry_core::Error;
use ferry_distribution::Reference;

type Result<T> = std::result::Result<T, Error>;

/// Returns an invalid-reference error for `$value` with a formatted reason.
macro_rules! bail {
    ($value:expr, $($fmt:tt)*) => {
        return Err(Error::invalid("reference", $value, format!($($fmt)*)))
    };
}

/// Where a copy reads from or writes to, as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `oci:PATH[:TAG|@DIGEST]`.
    Layout {
        /// The layout directory.
        path: PathBuf,
        /// A tag or digest inside it.
        reference: Option<String>,
    },
    /// `HOST[:PORT]/REPO[:TAG][@DIGEST]`.
    Registry {
        /// As written: whether it names a tag matters, an unnamed one is the source's.
        text: String,
        /// As parsed by ferry-distribution.
        reference: Reference,
    },
}

impl Endpoint {
    /// Parses `oci:PATH[:TAG|@DIGEST]` or a registry reference.
    pub fn parse(s: &str) -> Result<Self> {
        if s.is_empty() {
            bail!(
                s,
                "empty; use `oci:PATH[:TAG]` for a layout or `HOST/REPO[:TAG]` for a registry"
            );
        }
        if s.contains('\0') {
            bail!(s.escape_default().to_string(), "contains a NUL byte");
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            return parse_layout(s, rest);
        }
        if let Some((scheme, _)) = s.split_once("://") {
            bail!(
                s,
                "ferry does not take `{scheme}://` URLs; \
                 write `HOST[:PORT]/REPO[:TAG]` for a registry or `oci:PATH[:TAG]` for a layout"
            );
        }
        if let Some((prefix, _)) = s.split_once(':')
            && matches!(
                prefix,
                "docker"
                    | "oci-archive"
                    | "docker-archive"
                    | "dir"
                    | "containers-storage"
                    | "docker-daemon"
            )
        {
            bail!(
                s,
                "`{prefix}:` is a skopeo transport ferry does not have; \
                     write `HOST[:PORT]/REPO[:TAG]` for a registry or `oci:PATH[:TAG]` for a layout"
            );
        }
        Ok(Endpoint::Registry {
            text: s.to_string(),
            reference: Reference::parse(s)?,
        })
    }

    /// How the summary line names the endpoint: `[oci-layout] PATH:TAG`.
    pub fn display(&self) -> String {
        match self {
            Endpoint::Layout { path, reference } => {
                let mut s = format!("[oci-layout] {}", path.display());
                match reference.as_deref() {
                    Some(r) if r.contains(':') => s.push_str(&format!("@{r}")),
                    Some(r) => s.push_str(&format!(":{r}")),
                    None => {}
                }
                s
            }
            Endpoint::Registry { text, .. } => format!("[registry] {text}"),
        }
    }
}

fn parse_layout(whole: &str, rest: &str) -> Result<Endpoint> {
    if rest.is_empty() {
        bail!(
            whole,
            "names no directory; write `oci:PATH[:TAG]`, for example `oci:./image:v1`"
        );
    }
    // `@DIGEST` wins; otherwise a `:TAG` after the last path separator.
    let (path, reference) = if let Some((p, d)) = rest.rsplit_once('@') {
        if !d.contains(':') {
            bail!(
                whole,
                "`@{d}` is not a digest; write `oci:PATH@sha256:<64 hex>`"
            );
        }
        (p, Some(d.to_string()))
    } else {
        let last_sep = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        match rest[last_sep..].rfind(':') {
            Some(i) => {
                let i = last_sep + i;
                let tag = &rest[i + 1..];
                if tag.is_empty() {
                    bail!(
                        whole,
                        "ends with `:` but names no tag; write `oci:PATH:TAG` or `oci:PATH`"
                    );
                }
                (&rest[..i], Some(tag.to_string()))
            }
            None => (rest, None),
        }
    };
    if path.is_empty() {
        bail!(whole, "names no directory; write `oci:PATH[:TAG]`");
    }
    Ok(Endpoint::Layout {
        path: PathBuf::from(path),
        reference,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(path: &str, r: Option<&str>) -> Endpoint {
        Endpoint::Layout {
            path: PathBuf::from(path),
            reference: r.map(String::from),
        }
    }

    #[test]
    fn parses_layouts() {
        assert_eq!(
            Endpoint::parse("oci:/tmp/x").unwrap(),
            layout("/tmp/x", None)
        );
        assert_eq!(
            Endpoint::parse("oci:/tmp/x:v1").unwrap(),
            layout("/tmp/x", Some("v1"))
        );
        assert_eq!(
            Endpoint::parse("oci:./a:b/c:latest").unwrap(),
            layout("./a:b/c", Some("latest"))
        );
        let d = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        assert_eq!(
            Endpoint::parse(&format!("oci:x@{d}")).unwrap(),
            layout("x", Some(d))
        );
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "",
            "oci:",
            "oci::v1",
            "oci:x:",
            "docker://alpine",
            "https://x/y",
            "docker:alpine",
            "oci:x@nope",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad} must be refused");
        }
    }
}
