//! Entry names and types: what an archive may hold, checked for every entry before anything
//! from the archive is written anywhere.

use ferry_core::{Digest, Error, Result};

use crate::layout::{INDEX_FILE, LAYOUT_FILE, parse_digest};

/// Docker's image list, which `docker load`, skopeo's `docker-archive:` and `crane push` read.
pub const DOCKER_MANIFEST_FILE: &str = "manifest.json";
/// Docker's legacy tag file (`docker save` writes it beside `manifest.json`); ferry ignores it.
pub const REPOSITORIES_FILE: &str = "repositories";

/// What an entry of an OCI archive is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Member {
    /// `oci-layout`.
    Layout,
    /// `index.json`.
    Index,
    /// `manifest.json`.
    DockerManifest,
    /// `repositories`, ignored.
    Repositories,
    /// `blobs/<algorithm>/<hex>`.
    Blob(Digest),
    /// `blobs/` or `blobs/<algorithm>/`: a directory entry, ignored.
    Directory,
}

/// The kind of a tar entry, as far as the rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Directory,
    Symlink,
    HardLink,
    /// A PAX global header or another entry that carries no file (skipped).
    Metadata,
    /// Devices, FIFOs, sparse and contiguous files.
    Special(&'static str),
}

impl Kind {
    pub(crate) fn of(entry_type: tar::EntryType) -> Kind {
        use tar::EntryType as T;
        match entry_type {
            T::Regular => Kind::File,
            T::Directory => Kind::Directory,
            T::Symlink => Kind::Symlink,
            T::Link => Kind::HardLink,
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => Kind::Metadata,
            T::Char => Kind::Special("a character device"),
            T::Block => Kind::Special("a block device"),
            T::Fifo => Kind::Special("a FIFO"),
            T::GNUSparse => Kind::Special("a sparse file"),
            T::Continuous => Kind::Special("a contiguous file"),
            _ => Kind::Special("an entry of an unknown type"),
        }
    }
}

/// The refusal of an entry: exit 2 in the CLI, the entry named.
pub(crate) fn unsafe_entry(name: &str, reason: impl Into<String>) -> Error {
    Error::invalid(
        "archive entry",
        name.escape_debug().to_string(),
        format!("{}; nothing from the archive was written", reason.into()),
    )
}

/// `raw`, cleaned: `./` steps and empty components dropped. Refuses absolute names, `..`
/// anywhere, NUL and backslashes, so a name can never point outside the archive's root.
pub(crate) fn normalize(raw: &str) -> Result<String> {
    if raw.contains('\0') || raw.contains('\\') {
        return Err(unsafe_entry(raw, "a name with NUL or `\\`"));
    }
    if raw.starts_with('/') {
        return Err(unsafe_entry(raw, "an absolute path"));
    }
    let mut parts = Vec::new();
    for component in raw.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err(unsafe_entry(raw, "a path with `..`")),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Ok(String::new());
    }
    Ok(parts.join("/"))
}

/// What the entry `raw` of type `kind` is in an OCI archive; refuses every name but
/// `oci-layout`, `index.json`, `manifest.json`, `repositories`, `blobs/<algorithm>/<hex>` and
/// their directories, and every type but regular files and those directories. `None`: an
/// entry that carries no file (a PAX global header).
pub(crate) fn classify(raw: &str, kind: Kind) -> Result<Option<Member>> {
    match kind {
        Kind::Metadata => return Ok(None),
        Kind::Symlink => return Err(unsafe_entry(raw, "a symbolic link")),
        Kind::HardLink => return Err(unsafe_entry(raw, "a hard link")),
        Kind::Special(what) => return Err(unsafe_entry(raw, what)),
        Kind::File | Kind::Directory => {}
    }
    let name = normalize(raw)?;
    if kind == Kind::Directory {
        let is_blob_dir = name == "blobs"
            || name
                .strip_prefix("blobs/")
                .is_some_and(|alg| matches!(alg, "sha256" | "sha512"));
        if name.is_empty() || is_blob_dir {
            return Ok(Some(Member::Directory));
        }
        return Err(unsafe_entry(
            raw,
            "a directory other than `blobs/` and `blobs/<algorithm>/`",
        ));
    }
    Ok(Some(match name.as_str() {
        LAYOUT_FILE => Member::Layout,
        INDEX_FILE => Member::Index,
        DOCKER_MANIFEST_FILE => Member::DockerManifest,
        REPOSITORIES_FILE => Member::Repositories,
        _ => Member::Blob(blob_digest(raw, &name)?),
    }))
}

/// The digest a `blobs/<algorithm>/<hex>` name stands for.
fn blob_digest(raw: &str, name: &str) -> Result<Digest> {
    let outside = || {
        unsafe_entry(
            raw,
            "a name outside `blobs/<algorithm>/<hex>`, `oci-layout`, `index.json` and \
             `manifest.json`",
        )
    };
    let rest = name.strip_prefix("blobs/").ok_or_else(outside)?;
    let (algorithm, hex) = rest.split_once('/').ok_or_else(outside)?;
    if hex.contains('/') {
        return Err(outside());
    }
    parse_digest(&format!("{algorithm}:{hex}")).map_err(|_| outside())
}

/// The member name of blob `digest`: `blobs/<algorithm>/<hex>`.
pub(crate) fn blob_name(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm(), digest.digest())
}

/// The name a Docker archive's entry is found by: `raw` cleaned, refusing what [`normalize`]
/// refuses and the types no Docker archive holds. Symbolic and hard links are kept, to be
/// resolved inside the archive (never on a filesystem).
pub(crate) fn docker_name(raw: &str, kind: Kind) -> Result<Option<String>> {
    match kind {
        Kind::Metadata | Kind::Directory => Ok(None),
        Kind::Special(what) => Err(unsafe_entry(raw, what)),
        Kind::File | Kind::Symlink | Kind::HardLink => normalize(raw).map(Some),
    }
}

/// Where the link `name` (a member's cleaned name) with target `target` points, inside the
/// archive: relative to the link's directory for a symbolic link, to the root for a hard link.
/// Refuses targets that are absolute or leave the root.
pub(crate) fn link_target(name: &str, target: &str, kind: Kind) -> Result<String> {
    if target.starts_with('/') {
        return Err(unsafe_entry(name, "a link to an absolute path"));
    }
    let joined = match (kind, name.rsplit_once('/')) {
        (Kind::Symlink, Some((dir, _))) => format!("{dir}/{target}"),
        _ => target.to_string(),
    };
    let mut parts: Vec<&str> = Vec::new();
    for component in joined.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(unsafe_entry(name, "a link that leaves the archive"));
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_and_checked() {
        assert_eq!(normalize("./index.json").unwrap(), "index.json");
        assert_eq!(normalize("blobs//sha256/./x").unwrap(), "blobs/sha256/x");
        for bad in ["/etc/passwd", "../x", "blobs/../../x", "a\\b"] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
        let hex = "a".repeat(64);
        assert_eq!(
            classify(&format!("./blobs/sha256/{hex}"), Kind::File).unwrap(),
            Some(Member::Blob(
                parse_digest(&format!("sha256:{hex}")).unwrap()
            ))
        );
        assert_eq!(
            classify("blobs/sha256/", Kind::Directory).unwrap(),
            Some(Member::Directory)
        );
        for bad in [
            "etc/passwd",
            "blobs/sha256/xyz",
            "blobs/md5/aa",
            "x/blobs/sha256/aa",
        ] {
            assert!(classify(bad, Kind::File).is_err(), "{bad}");
        }
        assert!(classify("index.json", Kind::Symlink).is_err());
        assert!(classify("index.json", Kind::HardLink).is_err());
        assert!(classify("dev", Kind::Special("a character device")).is_err());
    }

    #[test]
    fn links_stay_inside() {
        assert_eq!(
            link_target("abc/layer.tar", "../def.tar", Kind::Symlink).unwrap(),
            "def.tar"
        );
        assert_eq!(
            link_target("abc/layer.tar", "def.tar", Kind::HardLink).unwrap(),
            "def.tar"
        );
        assert!(link_target("abc/layer.tar", "../../x", Kind::Symlink).is_err());
        assert!(link_target("x", "/etc/passwd", Kind::Symlink).is_err());
    }
}
