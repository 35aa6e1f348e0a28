//! The kinds of endpoint `ferry cp` accepts: OCI layouts, OCI and Docker archives, and
//! registry references.

use std::path::PathBuf;

use ferry_core::Error;
use ferry_core::model::{TAG_RULE, validate_tag};
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
    /// `oci-archive:PATH[:REF][@DIGEST]` or `docker-archive:PATH[:REF]`.
    Archive {
        /// Which format.
        format: crate::archive::ArchiveFormat,
        /// The file, or `-`.
        path: crate::archive::ArchivePath,
        /// The image inside it.
        reference: crate::archive::ArchiveRef,
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
        if let Some(parsed) = crate::archive::parse(s) {
            let (format, path, reference) = parsed?;
            return Ok(Endpoint::Archive {
                format,
                path,
                reference,
            });
        }
        if let Some((scheme, _)) = s.split_once("://") {
            bail!(
                s,
                "ferry does not take `{scheme}://` URLs; \
                 write `HOST[:PORT]/REPO[:TAG]` for a registry or `oci:PATH[:TAG]` for a layout"
            );
        }
        if s.split_once('/')
            .is_some_and(|(host, _)| host.contains('@'))
        {
            bail!(
                s,
                "credentials do not go in a reference (it is shown here without them); give \
                 them with `--from-username`/`--to-username` and a password option, or log in \
                 with `docker login`"
            );
        }
        if let Some((prefix, _)) = s.split_once(':')
            && matches!(
                prefix,
                "docker" | "dir" | "containers-storage" | "docker-daemon"
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

    /// The registry it is on, if any.
    pub fn registry(&self) -> Option<&str> {
        match self {
            Endpoint::Registry { reference, .. } => Some(reference.registry()),
            Endpoint::Layout { .. } | Endpoint::Archive { .. } => None,
        }
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
            Endpoint::Archive {
                format,
                path,
                reference,
            } => {
                let mut s = format!("[{}] {}", format.prefix(), path.shown());
                if let Some(r) = &reference.repository {
                    s.push_str(&format!(":{r}"));
                }
                if let Some(t) = &reference.tag {
                    s.push_str(&format!(":{t}"));
                }
                if let Some(d) = &reference.digest {
                    s.push_str(&format!("@{d}"));
                }
                s
            }
            Endpoint::Registry { text, .. } => format!("[registry] {text}"),
        }
    }
}

/// Parses what follows `oci:`.
///
/// The rule, for a directory whose name may hold `:` (ferry's tags never hold `:`, `/` or
/// `@`):
///
/// 1. `PATH@DIGEST`: the text after the last `@` is a digest.
/// 2. `PATH/`: a final `/` ends the path; no tag.
/// 3. `PATH:TAG`: when the last path component holds a `:`, the text after its last `:` is
///    the tag and must be a valid tag; anything else there is refused as ambiguous, not read
///    as part of the path.
/// 4. Every `:` left in the path must be inside a file name: followed by more of that name
///    (not by `/`), and with no `..` component after it, so the path never leaves the
///    directory whose name holds the `:` (`oci:dir/l:../../escape` is refused, where it would
///    otherwise name `dir/escape`).
///
/// skopeo's `oci:` transport refuses any `:` in the path; ferry accepts the ones that cannot
/// mean anything else, so `oci:./dir:with:colons:TAG` and `oci:./dir:with:colons/` name the
/// directory `dir:with:colons`.
fn parse_layout(whole: &str, rest: &str) -> Result<Endpoint> {
    if rest.is_empty() {
        bail!(
            whole,
            "names no directory; write `oci:PATH[:TAG]`, for example `oci:./image:v1`"
        );
    }
    let (path, reference) = if let Some((p, d)) = rest.rsplit_once('@') {
        if !d.contains(':') {
            bail!(
                whole,
                "`@{d}` is not a digest; write `oci:PATH@sha256:<64 hex>`"
            );
        }
        (p, Some(d.to_string()))
    } else if rest.ends_with('/') {
        (rest, None)
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
                if validate_tag(tag).is_err() {
                    let as_directory = format!("{rest}/");
                    let hint = if check_colons(whole, &as_directory).is_ok() {
                        format!(
                            "; if `{rest}` is the directory, end it with `/`: `oci:{as_directory}`"
                        )
                    } else {
                        String::new()
                    };
                    bail!(
                        whole,
                        "`{tag}` after the last `:` is not a valid tag ({TAG_RULE}){hint}"
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
    check_colons(whole, path)?;
    Ok(Endpoint::Layout {
        path: PathBuf::from(path),
        reference,
    })
}

/// Refuses a `:` in a layout path that is not clearly inside a file name (rule 4 of
/// [`parse_layout`]): one followed by `/`, `./` or `../` (which read as path steps, not as the
/// rest of a name), or by a path that goes up (`..`) out of the directory whose name holds
/// it. The error names the text after that `:`, which is not a valid tag either.
fn check_colons(whole: &str, path: &str) -> Result<()> {
    for (i, _) in path.match_indices(':') {
        let after = &path[i + 1..];
        let mut components = after.split('/');
        // The rest of this component, up to a later `:` that is checked in its turn.
        let rest_of_name = components.next().unwrap_or_default();
        let not_a_name = matches!(rest_of_name, "" | "." | "..");
        let goes_up = components.any(|c| c == "..");
        if not_a_name || goes_up {
            let named = after.trim_end_matches('/');
            let component = format!("{}:{rest_of_name}", &path[..i]);
            bail!(
                whole,
                "`{named}` after `:` is not a valid tag ({TAG_RULE}), and as part of the path \
                 it would {}: refused as ambiguous; write `oci:PATH:TAG` with a valid tag",
                if goes_up {
                    format!("leave the directory `{component}` it names")
                } else {
                    format!("make `{component}` a directory name")
                }
            );
        }
    }
    Ok(())
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
    fn a_colon_in_the_path_must_be_inside_a_file_name() {
        // The text after the last `:` of the last component is the tag.
        assert_eq!(
            Endpoint::parse("oci:./dir:with:colons:v1").unwrap(),
            layout("./dir:with:colons", Some("v1"))
        );
        assert_eq!(
            Endpoint::parse("oci:./dir:with:colons").unwrap(),
            layout("./dir:with", Some("colons"))
        );
        // A final `/` ends the path.
        assert_eq!(
            Endpoint::parse("oci:./dir:with:colons/").unwrap(),
            layout("./dir:with:colons/", None)
        );
        assert_eq!(Endpoint::parse("oci:x:v1/").unwrap(), layout("x:v1/", None));
        assert_eq!(
            Endpoint::parse("oci:/srv/x:y+z/").unwrap(),
            layout("/srv/x:y+z/", None)
        );
        // A `:` inside an earlier component, followed by more of its name and no `..`.
        assert_eq!(Endpoint::parse("oci:a:b/c").unwrap(), layout("a:b/c", None));
        assert_eq!(
            Endpoint::parse("oci:../up/a:b/./c:t").unwrap(),
            layout("../up/a:b/./c", Some("t"))
        );
        let d = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        assert_eq!(
            Endpoint::parse(&format!("oci:a:b/c@{d}")).unwrap(),
            layout("a:b/c", Some(d))
        );

        let refused = |input: &str, named: &str| {
            let e = Endpoint::parse(input).expect_err(input).to_string();
            assert!(
                e.contains(&format!("`{named}`")) && e.contains("not a valid tag"),
                "{input}: {e}"
            );
        };
        refused("oci:dir/l:../../escape", "../../escape");
        refused("oci:dir/l:../../escape/", "../../escape");
        refused(&format!("oci:dir/l:../x@{d}"), "../x");
        refused("oci:dir:/etc/passwd", "/etc/passwd");
        refused("oci:a:b/../x:v1", "b/../x");
        refused("oci:a:b:c/../x", "b:c/../x");
        refused("oci:x:y+z", "y+z");
        refused("oci:x:..", "..");
        refused("oci:x:.hidden", ".hidden");
        refused("oci:x:-lead", "-lead");
        refused(&format!("oci:x:{}", "t".repeat(129)), &"t".repeat(129));
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
