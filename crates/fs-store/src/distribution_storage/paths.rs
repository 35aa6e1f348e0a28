//! Where the CNCF distribution storage layout keeps blob data and repository links.
//!
//! Relative to a registry's storage root (its `rootdirectory`):
//!
//! ```text
//! docker/registry/v2/blobs/<algorithm>/<first 2 hex>/<hex>/data
//! docker/registry/v2/repositories/<repository>/_layers/<algorithm>/<hex>/link
//! ```
//!
//! A link file holds the digest string (`sha256:<hex>`) without a trailing newline, as
//! distribution's `blobStore.link` writes it.

use ferry_core::Digest;
use object_store::path::Path;

/// The directory under a storage root that holds every registry file.
pub(crate) const V2: [&str; 3] = ["docker", "registry", "v2"];

/// `<root>/docker/registry/v2/...` with `parts` appended, one path segment each.
fn under(root: &Path, parts: &[&str]) -> Path {
    let mut path = root.clone();
    for part in V2.iter().chain(parts) {
        path = path.join(*part);
    }
    path
}

/// The path of a blob's content: `<root>/docker/registry/v2/blobs/<alg>/<xx>/<hex>/data`.
pub(crate) fn blob_data(root: &Path, digest: &Digest) -> Path {
    let algorithm = digest.algorithm().to_string();
    let hex = digest.digest();
    let prefix = &hex[..hex.len().min(2)];
    under(root, &["blobs", &algorithm, prefix, hex, "data"])
}

/// The path of a repository's layer link:
/// `<root>/docker/registry/v2/repositories/<repo>/_layers/<alg>/<hex>/link`.
///
/// `repository` must have passed [`check_repository`].
pub(crate) fn layer_link(root: &Path, repository: &str, digest: &Digest) -> Path {
    let algorithm = digest.algorithm().to_string();
    let mut parts: Vec<&str> = vec!["repositories"];
    parts.extend(repository.split('/'));
    parts.extend(["_layers", &algorithm, digest.digest(), "link"]);
    under(root, &parts)
}

/// The content of a link file naming `digest`.
pub(crate) fn link_content(digest: &Digest) -> String {
    digest.to_string()
}

/// Checks `repository` against distribution's repository-name grammar
/// (`[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*` components joined by `/`), so that no name
/// can reach outside `repositories/` (`..`, empty or absolute components) or into a
/// registry's private directories (`_layers`, `_manifests`, `_uploads`).
pub(crate) fn check_repository(repository: &str) -> std::result::Result<(), String> {
    if repository.is_empty() || repository.len() > 255 {
        return Err(format!(
            "repository name `{repository}` is empty or longer than 255 characters"
        ));
    }
    for component in repository.split('/') {
        let bytes = component.as_bytes();
        let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let valid = !bytes.is_empty()
            && alnum(&bytes[0])
            && alnum(&bytes[bytes.len() - 1])
            && bytes
                .iter()
                .all(|b| alnum(b) || matches!(b, b'.' | b'_' | b'-'))
            && !component.contains("..")
            && !component.contains("___")
            && !component.contains("._")
            && !component.contains("_.");
        if !valid {
            return Err(format!(
                "repository name `{repository}` has a component `{component}` that distribution \
                 does not accept (lowercase letters and digits, separated by `.`, `_`, `__` or `-`)"
            ));
        }
    }
    Ok(())
}
