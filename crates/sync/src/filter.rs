//! Which tags a sync takes: anchored regular expressions to keep and to exclude, a semver
//! range, the newest N by semver, and which tags are immutable.

use regex::Regex;
use semver::{Version, VersionReq};

use ferry_core::error::{Error, Result};

/// Anchored regular expressions: a tag matches when one of them matches the whole tag.
#[derive(Debug, Clone, Default)]
pub struct TagPatterns {
    patterns: Vec<Regex>,
    sources: Vec<String>,
}

impl TagPatterns {
    /// No pattern: [`TagPatterns::matches`] is false for every tag.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `pattern` (Rust `regex` syntax), anchored at both ends: `v1\..*` matches `v1.2`
    /// but not `xv1.2`.
    pub fn with(mut self, pattern: &str) -> Result<Self> {
        self.push(pattern)?;
        Ok(self)
    }

    /// Adds `pattern`, anchored at both ends.
    pub fn push(&mut self, pattern: &str) -> Result<()> {
        let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
            Error::invalid(
                "tag pattern",
                pattern,
                format!("not a regular expression: {}", one_line(&e.to_string())),
            )
        })?;
        self.patterns.push(regex);
        self.sources.push(pattern.to_string());
        Ok(())
    }

    /// Whether there is no pattern.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether one of the patterns matches the whole of `tag`.
    pub fn matches(&self, tag: &str) -> bool {
        self.patterns.iter().any(|p| p.is_match(tag))
    }

    /// The patterns as given.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses a tag as a semantic version, with an optional leading `v` (`v1.2.3`, `1.2.3-rc.1`).
pub fn parse_semver(tag: &str) -> Option<Version> {
    let text = tag.strip_prefix('v').unwrap_or(tag);
    Version::parse(text).ok()
}

/// Why a tag was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FilteredBy {
    /// No pattern of [`TagFilter::tags`] matched it.
    Tags,
    /// A pattern of [`TagFilter::exclude`] matched it.
    ExcludeTags,
    /// It is not a semantic version, or not in the [`TagFilter::semver`] range.
    Semver,
    /// Newer versions filled the [`TagFilter::latest`] count.
    Latest,
    /// It is a tag of the referrers tag schema (`sha256-<hex>`), copied with the referrers of
    /// its subject (`-r`) rather than as an image.
    Referrers,
}

impl FilteredBy {
    /// The filter, as [`TagFilter`]'s settings name it (`tags`, `exclude`, `semver`,
    /// `latest`), or `referrers tag`.
    pub fn label(&self) -> &'static str {
        match self {
            FilteredBy::Tags => "tags",
            FilteredBy::ExcludeTags => "exclude",
            FilteredBy::Semver => "semver",
            FilteredBy::Latest => "latest",
            FilteredBy::Referrers => "referrers tag",
        }
    }
}

/// The tag filters of a sync entry. The default keeps every tag.
///
/// A tag is kept when it matches one of the `tags` patterns (or there is none), matches no
/// `exclude` pattern, and, with a semver range, parses as a semantic version (`v` prefix
/// allowed) inside the range. With `latest`, only the newest N of the tags kept so far that
/// parse as semantic versions remain (prereleases order before their release, as semver
/// says).
#[derive(Debug, Clone, Default)]
pub struct TagFilter {
    tags: TagPatterns,
    exclude: TagPatterns,
    semver: Option<(VersionReq, String)>,
    latest: Option<usize>,
}

/// The outcome of [`TagFilter::select`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// The tags taken, in the order given.
    pub kept: Vec<String>,
    /// The tags left out and why, in the order given.
    pub filtered: Vec<(String, FilteredBy)>,
}

impl TagFilter {
    /// A filter that keeps every tag.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps tags matching `pattern` (anchored); several patterns keep the tags matching any.
    pub fn tags(mut self, pattern: &str) -> Result<Self> {
        self.tags.push(pattern)?;
        Ok(self)
    }

    /// Leaves out tags matching `pattern` (anchored).
    pub fn exclude(mut self, pattern: &str) -> Result<Self> {
        self.exclude.push(pattern)?;
        Ok(self)
    }

    /// Keeps only tags that are semantic versions in `range` (`>=1.2, <2`, `^3.18`, `*`).
    pub fn semver(mut self, range: &str) -> Result<Self> {
        let req = VersionReq::parse(range).map_err(|e| {
            Error::invalid(
                "semver range",
                range,
                format!("{e}; write a range such as `>=1.2, <2` or `^3.18`"),
            )
        })?;
        self.semver = Some((req, range.to_string()));
        Ok(self)
    }

    /// Keeps only the newest `n` semantic versions of what the other filters kept.
    pub fn latest(mut self, n: usize) -> Self {
        self.latest = Some(n);
        self
    }

    /// Whether the pattern filters (`tags`, `exclude`, `semver`; not `latest`) keep `tag`:
    /// the tags this filter manages, which pruning may delete at the destination.
    pub fn manages(&self, tag: &str) -> bool {
        self.check(tag).is_none()
    }

    fn check(&self, tag: &str) -> Option<FilteredBy> {
        if !self.tags.is_empty() && !self.tags.matches(tag) {
            return Some(FilteredBy::Tags);
        }
        if self.exclude.matches(tag) {
            return Some(FilteredBy::ExcludeTags);
        }
        if let Some((req, _)) = &self.semver {
            match parse_semver(tag) {
                Some(v) if req.matches(&v) => {}
                _ => return Some(FilteredBy::Semver),
            }
        }
        None
    }

    /// Applies every filter to `tags`.
    pub fn select(&self, tags: &[String]) -> Selection {
        let mut out = Selection::default();
        let mut kept: Vec<&String> = Vec::new();
        for tag in tags {
            match self.check(tag) {
                None => kept.push(tag),
                Some(why) => out.filtered.push((tag.clone(), why)),
            }
        }
        let Some(n) = self.latest else {
            out.kept = kept.into_iter().cloned().collect();
            return out;
        };
        let mut versions: Vec<(Version, &String)> = kept
            .iter()
            .filter_map(|t| parse_semver(t).map(|v| (v, *t)))
            .collect();
        versions.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        let newest: std::collections::HashSet<&String> =
            versions.iter().take(n).map(|(_, t)| *t).collect();
        for tag in kept {
            if newest.contains(tag) {
                out.kept.push(tag.clone());
            } else {
                out.filtered.push((tag.clone(), FilteredBy::Latest));
            }
        }
        out
    }

    /// A one-line description, for logs: `tags=[v1.*] exclude=[.*-rc] semver=^1 latest=3`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.tags.is_empty() {
            parts.push(format!("tags={:?}", self.tags.sources()));
        }
        if !self.exclude.is_empty() {
            parts.push(format!("exclude={:?}", self.exclude.sources()));
        }
        if let Some((_, s)) = &self.semver {
            parts.push(format!("semver={s:?}"));
        }
        if let Some(n) = self.latest {
            parts.push(format!("latest={n}"));
        }
        if parts.is_empty() {
            "every tag".into()
        } else {
            parts.join(" ")
        }
    }
}

/// The subject of a referrers tag-schema tag (`sha256-<64 hex>`): the tag of the index of
/// the referrers of the manifest of that digest, on a registry without the referrers API.
/// `None` for any other tag.
pub fn referrers_tag_subject(tag: &str) -> Option<ferry_core::model::Digest> {
    let hex = tag.strip_prefix("sha256-")?;
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    ferry_core::model::Digest::try_from(format!("sha256:{hex}")).ok()
}
