//! Picking one platform's manifest out of an index, and fetching manifests.

use futures::future::{BoxFuture, FutureExt};
use oci_spec::image::{Descriptor, Digest};

use crate::error::{Error, Result};
use crate::model::{Manifest, PlatformFilter, is_index, media_type_str};
use crate::store::ReadStore;
use crate::verify::{read_to_bytes, verify_bytes};

/// How many levels of indexes [`select_platform`] searches: the root index is the first, an
/// index it lists the second, and so on. Indexes further down are not fetched (the error for
/// a platform that was not found says so).
pub const MAX_INDEX_DEPTH: usize = 8;

/// Picks the manifest for `filter` out of the index `root`; any other root is returned as is.
///
/// The index's entries are searched in order, descending into the indexes it lists (an index
/// of indexes) up to [`MAX_INDEX_DEPTH`] levels, each index fetched once: the first image
/// manifest whose platform matches is picked. A listed index whose entry names another
/// platform is not searched; one whose entry names this platform is picked when nothing in it
/// matches more closely. When nothing matches, the error lists every platform found.
pub async fn select_platform(
    src: &dyn ReadStore,
    root: &Descriptor,
    filter: &PlatformFilter,
    limit: u64,
) -> Result<Descriptor> {
    if !is_index(&media_type_str(root)) {
        return Ok(root.clone());
    }
    let mut search = PlatformSearch {
        src,
        filter,
        limit,
        platforms: Vec::new(),
        searched: std::collections::HashSet::from([root.digest().clone()]),
        too_deep: 0,
    };
    if let Some(found) = search.index(root, 1).await? {
        return Ok(found);
    }
    let below = match search.searched.len() - 1 {
        0 => None,
        1 => Some("the index below it".to_string()),
        n => Some(format!("the {n} indexes below it")),
    };
    let mut hint = match (search.platforms.is_empty(), below) {
        (true, None) => "no entry of the index names a platform".to_string(),
        (true, Some(below)) => format!("no entry of the index or of {below} names a platform"),
        (false, None) => format!("the index has: {}", search.platforms.join(", ")),
        (false, Some(below)) => format!(
            "the index and {below} have: {}",
            search.platforms.join(", ")
        ),
    };
    match search.too_deep {
        0 => {}
        1 => hint.push_str(&format!(
            "; an index nested deeper than {MAX_INDEX_DEPTH} levels was not searched"
        )),
        n => hint.push_str(&format!(
            "; {n} indexes nested deeper than {MAX_INDEX_DEPTH} levels were not searched"
        )),
    }
    Err(Error::NotFound {
        what: format!("platform `{filter}` in index `{}`", root.digest()),
        hint: Some(hint),
    })
}

/// The state of one [`select_platform`] search.
struct PlatformSearch<'a> {
    src: &'a dyn ReadStore,
    filter: &'a PlatformFilter,
    limit: u64,
    /// Every platform named so far, in the order found, once each.
    platforms: Vec<String>,
    /// The indexes fetched (or being fetched), so none is searched twice.
    searched: std::collections::HashSet<Digest>,
    /// Listed indexes left unsearched for being too deep.
    too_deep: usize,
}

impl PlatformSearch<'_> {
    /// Searches the index `descriptor`, at `depth` (the root is 1).
    fn index<'s>(
        &'s mut self,
        descriptor: &'s Descriptor,
        depth: usize,
    ) -> BoxFuture<'s, Result<Option<Descriptor>>> {
        async move {
            let index = fetch_manifest(self.src, descriptor, self.limit).await?;
            for entry in &index.manifests {
                let platform = entry.platform().as_ref();
                if let Some(p) = platform {
                    let shown = platform_string(p);
                    if !self.platforms.contains(&shown) {
                        self.platforms.push(shown);
                    }
                }
                let matches = platform.is_some_and(|p| self.filter.matches(p));
                if !is_index(&media_type_str(entry)) {
                    if matches {
                        return Ok(Some(entry.clone()));
                    }
                    continue;
                }
                if platform.is_some() && !matches {
                    continue;
                }
                if depth >= MAX_INDEX_DEPTH {
                    self.too_deep += 1;
                } else if self.searched.insert(entry.digest().clone())
                    && let Some(found) = self.index(entry, depth + 1).await?
                {
                    return Ok(Some(found));
                }
                if matches {
                    return Ok(Some(entry.clone()));
                }
            }
            Ok(None)
        }
        .boxed()
    }
}

/// `os/arch[/variant]`.
fn platform_string(p: &oci_spec::image::Platform) -> String {
    let mut s = format!("{}/{}", p.os(), p.architecture());
    if let Some(v) = p.variant() {
        s.push('/');
        s.push_str(v);
    }
    s
}

/// Fetches, verifies and parses the manifest `descriptor` names, refusing more than `limit`.
pub async fn fetch_manifest(
    src: &dyn ReadStore,
    descriptor: &Descriptor,
    limit: u64,
) -> Result<Manifest> {
    let what = format!("manifest `{}`", descriptor.digest());
    if descriptor.size() > limit {
        return Err(Error::TooLarge {
            what,
            size: descriptor.size(),
            limit,
        });
    }
    let stream = src.fetch(descriptor).await?;
    let bytes = read_to_bytes(stream, &what, limit).await?;
    verify_bytes(descriptor, &bytes)?;
    Manifest::parse(descriptor, bytes)
}
