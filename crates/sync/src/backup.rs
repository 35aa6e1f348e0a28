//! Backups of destination tags before a sync overwrites or prunes them.
//!
//! A [`BackupTemplate`] such as `{tag}-bak-{date}` names the tag that keeps a destination
//! tag's current manifest when the source tag moved (before the new image is tagged) or when
//! pruning deletes it (before the delete). The old image then still has a tag, so a registry's
//! garbage collection does not take it. Placeholders:
//!
//! | placeholder | becomes |
//! |---|---|
//! | `{tag}` | the tag being overwritten or pruned |
//! | `{digest12}` | the first 12 hex digits of the manifest it named |
//! | `{date}` | the run's start date, UTC, `YYYYMMDD` |
//! | `{time}` | the run's start time, UTC, `HHMMSS` |
//!
//! Tags a template can make are never pruned as extra destination tags
//! ([`BackupTemplate::matches`]).

use std::time::SystemTime;

use oci_spec::image::Digest;
use regex::Regex;

use ferry_core::error::{Error, Result};

/// The longest tag OCI allows.
const MAX_TAG: usize = 128;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Tag,
    Digest12,
    Date,
    Time,
}

/// How backup tags are named; see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct BackupTemplate {
    source: String,
    pieces: Vec<Piece>,
    /// Matches every tag the template can make.
    pattern: Regex,
}

impl BackupTemplate {
    /// Parses `template`. It must name at least one placeholder (else every backup would
    /// overwrite the one before), and its literal text may hold only what a tag may
    /// (`A-Z a-z 0-9 _ . -`).
    pub fn parse(template: &str) -> Result<Self> {
        let bad = |reason: String| Error::invalid("backup template", template, reason);
        let mut pieces = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let end = rest.find('}').ok_or_else(|| {
                        bad("a `{` is not closed; placeholders are {tag}, {digest12}, {date}, {time}"
                            .into())
                    })?;
                    let piece = match &rest[1..end] {
                        "tag" => Piece::Tag,
                        "digest12" => Piece::Digest12,
                        "date" => Piece::Date,
                        "time" => Piece::Time,
                        other => {
                            return Err(bad(format!(
                                "no placeholder `{{{other}}}`; placeholders are {{tag}}, \
                                 {{digest12}}, {{date}}, {{time}}"
                            )));
                        }
                    };
                    pieces.push(piece);
                    rest = &rest[end + 1..];
                }
                found => {
                    let end = found.unwrap_or(rest.len());
                    let text = &rest[..end];
                    if let Some(c) = text
                        .chars()
                        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
                    {
                        return Err(bad(format!(
                            "`{c}` cannot be in a tag; a backup is a tag of the destination \
                             repository (letters, digits, `_`, `.`, `-`)"
                        )));
                    }
                    pieces.push(Piece::Text(text.to_string()));
                    rest = &rest[end..];
                }
            }
        }
        if !pieces.iter().any(|p| !matches!(p, Piece::Text(_))) {
            return Err(bad(
                "it names no placeholder, so every backup would overwrite the one before; use \
                 {tag}, {digest12}, {date} or {time}, such as `{tag}-bak-{date}`"
                    .into(),
            ));
        }
        if pieces == [Piece::Tag] {
            return Err(bad(
                "a backup named `{tag}` alone is the tag itself; add text or another \
                 placeholder, such as `{tag}-bak-{date}`"
                    .into(),
            ));
        }
        if let Some(Piece::Text(t)) = pieces.first()
            && t.starts_with(['.', '-'])
        {
            return Err(bad("a tag cannot start with `.` or `-`".into()));
        }
        let mut regex = String::from("^");
        for p in &pieces {
            regex.push_str(&match p {
                Piece::Text(t) => regex::escape(t),
                Piece::Tag => "[A-Za-z0-9_][A-Za-z0-9_.-]*".into(),
                Piece::Digest12 => "[0-9a-f]{12}".into(),
                Piece::Date => "[0-9]{8}".into(),
                Piece::Time => "[0-9]{6}".into(),
            });
        }
        regex.push('$');
        let pattern = Regex::new(&regex).map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            source: template.to_string(),
            pieces,
            pattern,
        })
    }

    /// The template as given.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The backup tag of `tag`, which names `digest`, for a run started `at`. Fails when the
    /// name would be longer than a tag may be (128 characters).
    pub fn render(&self, tag: &str, digest: &Digest, at: SystemTime) -> Result<String> {
        // `2024-03-09T07:05:01Z`
        let stamp = humantime::format_rfc3339_seconds(at).to_string();
        let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Tag => out.push_str(tag),
                Piece::Digest12 => out.extend(digest.digest().chars().take(12)),
                Piece::Date => out.push_str(&digits(&stamp[..10])),
                Piece::Time => out.push_str(&digits(&stamp[11..19])),
            }
        }
        if out.len() > MAX_TAG {
            return Err(Error::invalid(
                "backup tag",
                out.clone(),
                format!(
                    "the template `{}` makes a tag of {} characters for `{tag}`, more than the \
                     {MAX_TAG} a tag may have; shorten the template",
                    self.source,
                    out.len()
                ),
            ));
        }
        Ok(out)
    }

    /// Whether `tag` is a name this template can make: such a tag is a backup, never pruned
    /// as an extra destination tag.
    pub fn matches(&self, tag: &str) -> bool {
        self.pattern.is_match(tag)
    }
}

impl std::fmt::Display for BackupTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}
