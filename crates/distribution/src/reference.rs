//! Image references: `HOST[:PORT]/REPO[:TAG][@DIGEST]`, with docker's rules for short names.

use std::fmt;
use std::str::FromStr;

use ferry_core::model::TAG_RULE;
pub use ferry_core::model::{MAX_TAG_LENGTH, validate_tag};
use ferry_core::{Digest, Error, Result};
use oci_spec::distribution::ParseError;

/// The registry name docker gives short names (`alpine`, `library/alpine`).
pub const DOCKER_HUB: &str = "docker.io";
/// The host that serves Docker Hub's registry API.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// The tag a reference without tag or digest means.
pub const DEFAULT_TAG: &str = "latest";
/// The longest repository name registries accept.
pub const MAX_REPOSITORY_LENGTH: usize = 255;

/// A reference to content in a registry: `HOST[:PORT]/REPO[:TAG][@DIGEST]`.
///
/// Short names follow docker's rules: `alpine` is `docker.io/library/alpine:latest`, a first
/// path component is a host only when it holds a `.` or a `:` or is `localhost`
/// (`localhost:5000/x`, `ghcr.io/o/r`), and a reference without tag or digest means `latest`.
/// The host may be an IPv6 address in brackets (`[::1]:5000/team/app:v1`, `[fd00::1]/x`).
///
/// ```
/// use ferry_distribution::Reference;
/// let r: Reference = "alpine".parse().unwrap();
/// assert_eq!(r.to_string(), "docker.io/library/alpine:latest");
/// assert_eq!(r.api_host(), "registry-1.docker.io");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses `HOST[:PORT]/REPO[:TAG][@DIGEST]` with docker's rules for short names.
    pub fn parse(input: &str) -> Result<Self> {
        let invalid = |reason: String| Error::invalid("reference", input, reason);
        if input.trim() != input || input.is_empty() {
            return Err(invalid(
                "a reference looks like `registry.example.com/repo:tag` or `alpine`, without spaces"
                    .into(),
            ));
        }
        let parts = split_reference(input).map_err(|r| invalid(explain(input, r)))?;
        Reference::from_parts(
            input,
            parts.registry,
            parts.repository,
            parts.tag,
            parts.digest,
        )
    }

    /// Parses `input` with `oci_spec`'s regex-based reference parser, then checks it as
    /// [`Reference::parse`] does.
    ///
    /// [`Reference::parse`] implements the same grammar by hand, because compiling that regex
    /// costs most of a short command's CPU time. This is the reference implementation the
    /// differential tests and the `reference` fuzz target compare it with; nothing else should
    /// call it.
    #[doc(hidden)]
    pub fn parse_with_oci_spec(input: &str) -> Result<Self> {
        let invalid = |reason: String| Error::invalid("reference", input, reason);
        if input.trim() != input || input.is_empty() {
            return Err(invalid(
                "a reference looks like `registry.example.com/repo:tag` or `alpine`, without spaces"
                    .into(),
            ));
        }
        let parsed = oci_spec::distribution::Reference::try_from(input)
            .map_err(|e| invalid(explain(input, Refusal::from(e))))?;
        Reference::from_parts(
            input,
            parsed.registry().to_string(),
            parsed.repository().to_string(),
            parsed.tag(),
            parsed.digest(),
        )
    }

    /// The reference `input` parsed into, once the grammar accepted it: checks the digest with
    /// [`Digest`]'s rules, and the repository and tag with the distribution spec's.
    fn from_parts(
        input: &str,
        registry: String,
        repository: String,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> Result<Self> {
        let digest = digest
            .map(|d| {
                Digest::from_str(d).map_err(|e| {
                    Error::invalid(
                        "reference",
                        input,
                        format!("its digest `{d}` is invalid: {e}"),
                    )
                })
            })
            .transpose()?;
        validate_repository(&repository)?;
        if let Some(tag) = tag {
            validate_tag(tag)?;
        }
        Ok(Reference {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// A reference built from its parts, each validated.
    pub fn new(
        registry: impl Into<String>,
        repository: impl Into<String>,
        tag: Option<&str>,
        digest: Option<Digest>,
    ) -> Result<Self> {
        let registry = registry.into();
        let repository = repository.into();
        if registry.is_empty() || registry.contains('/') {
            return Err(Error::invalid(
                "registry",
                registry,
                "name a registry host such as `localhost:5000` or `ghcr.io`",
            ));
        }
        validate_repository(&repository)?;
        if let Some(t) = tag {
            validate_tag(t)?;
        }
        Ok(Reference {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The registry as named: `docker.io`, `localhost:5000`, `ghcr.io`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host (and port) that serves the registry API: `registry-1.docker.io` for Docker
    /// Hub, the registry itself otherwise.
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }

    /// The repository: `library/alpine`, `team/app`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any (`latest` when neither tag nor digest was given).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to resolve in the repository: the digest when there is one, else the tag.
    pub fn target(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// This reference with another repository on the same registry, without tag or digest.
    pub fn with_repository(&self, repository: &str) -> Result<Self> {
        Reference::new(self.registry.clone(), repository, None, None)
    }
}

/// The host serving the registry API for a registry name (`docker.io` →
/// `registry-1.docker.io`).
pub fn api_host(registry: &str) -> &str {
    match registry {
        DOCKER_HUB | "index.docker.io" => DOCKER_HUB_API_HOST,
        other => other,
    }
}

/// The parts of a reference the grammar accepted, before [`Reference::from_parts`] checks them.
#[derive(Debug)]
struct Parts<'a> {
    registry: String,
    repository: String,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

/// Why the reference grammar refused an input: the cases `oci_spec`'s parser tells apart, so that
/// both parsers explain a refusal in the same words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Format,
    NameEmpty,
    NameTooLong,
    Uppercase,
    TagFormat,
    DigestFormat,
    DigestLength,
    DigestUnsupported,
}

impl From<ParseError> for Refusal {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::ReferenceInvalidFormat => Refusal::Format,
            ParseError::NameEmpty => Refusal::NameEmpty,
            ParseError::NameTooLong => Refusal::NameTooLong,
            ParseError::NameContainsUppercase => Refusal::Uppercase,
            ParseError::TagInvalidFormat => Refusal::TagFormat,
            ParseError::DigestInvalidFormat => Refusal::DigestFormat,
            ParseError::DigestInvalidLength => Refusal::DigestLength,
            ParseError::DigestUnsupported => Refusal::DigestUnsupported,
        }
    }
}

/// Splits `input` by docker/distribution's reference grammar, the one `oci_spec` (0.10) checks
/// with a regex:
///
/// ```text
/// reference  := name [ ":" tag ] [ "@" digest ]
/// name       := [ domain "/" ] component ( "/" component )*
/// domain     := ( label ( "." label )* | "[" IPv6address "]" ) [ ":" [0-9]+ ]
/// label      := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
/// component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
/// tag        := [\w][\w.-]{0,127}
/// digest     := algorithm ":" [0-9a-fA-F]{32,}
/// algorithm  := [A-Za-z][A-Za-z0-9]* ( [-_+.] [A-Za-z][A-Za-z0-9]* )*
/// ```
///
/// The first component is the registry when it holds a `.` or a `:` or is `localhost` (whether or
/// not it is a valid domain: `a_b.c/x` is registry `a_b.c`), else the registry is `docker.io`;
/// `index.docker.io` is `docker.io`, whose one-component names get `library/`. The repository is
/// at most 255 characters, and a digest of `sha256`, `sha384` or `sha512` has the length of its
/// algorithm; other algorithms are refused. A reference without tag or digest gets `latest`.
///
/// Only the grammar: the repository's case, the tag's ASCII-ness and the digest's hex case are
/// left to [`Reference::from_parts`], as they were with `oci_spec`'s parser.
fn split_reference(input: &str) -> std::result::Result<Parts<'_>, Refusal> {
    let (rest, digest) = match input.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (input, None),
    };
    if digest.is_some_and(|d| !digest_grammar(d)) {
        return Err(Refusal::Format);
    }
    // A `:` in the name only ever ends a domain, before a port and a `/`, and a tag holds neither
    // `:` nor `/`: the tag is whatever follows a last `:` that comes after the last `/`.
    let (name, tag) = match rest.rfind(':') {
        Some(colon) if !rest[colon..].contains('/') => (&rest[..colon], Some(&rest[colon + 1..])),
        _ => (rest, None),
    };
    if tag.is_some_and(|t| !tag_grammar(t)) || !name_grammar(name) {
        return Err(Refusal::Format);
    }

    let (mut registry, mut repository) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest.to_string())
        }
        _ => (DOCKER_HUB, name.to_string()),
    };
    if registry == "index.docker.io" {
        registry = DOCKER_HUB;
    }
    if registry == DOCKER_HUB && !repository.contains('/') {
        repository.insert_str(0, "library/");
    }
    if repository.len() > MAX_REPOSITORY_LENGTH {
        return Err(Refusal::NameTooLong);
    }
    if let Some(digest) = digest {
        let (algorithm, hex) = digest.split_once(':').ok_or(Refusal::DigestFormat)?;
        let expected = match algorithm {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            _ => return Err(Refusal::DigestUnsupported),
        };
        if hex.len() != expected {
            return Err(Refusal::DigestLength);
        }
    }
    Ok(Parts {
        registry: registry.to_string(),
        repository,
        tag: if tag.is_none() && digest.is_none() {
            Some(DEFAULT_TAG)
        } else {
            tag
        },
        digest,
    })
}

/// `[ domain "/" ] component ( "/" component )*`: a domain is always the first component, so
/// the name is either all components or a domain, a `/` and components.
fn name_grammar(name: &str) -> bool {
    let components = |path: &str| path.split('/').all(valid_component);
    components(name)
        || name
            .split_once('/')
            .is_some_and(|(domain, path)| domain_grammar(domain) && components(path))
}

/// `label ( "." label )* [ ":" [0-9]+ ]`, labels of ASCII letters, digits and inner `-`; or
/// `"[" IPv6address "]" [ ":" [0-9]+ ]`, as docker/distribution's grammar has it since 2.8.2
/// (`oci_spec`'s regex predates it).
fn domain_grammar(domain: &str) -> bool {
    let port_grammar = |p: &str| !p.is_empty() && p.bytes().all(|x| x.is_ascii_digit());
    if let Some(rest) = domain.strip_prefix('[') {
        let Some((address, after)) = rest.split_once(']') else {
            return false;
        };
        return address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
            && address.parse::<std::net::Ipv6Addr>().is_ok()
            && (after.is_empty() || after.strip_prefix(':').is_some_and(port_grammar));
    }
    let (host, port) = match domain.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let label = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
    };
    host.split('.').all(label)
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|x| x.is_ascii_digit()))
}

/// `[\w][\w.-]{0,127}`, where `\w` is Unicode's word characters as in the regex (approximated
/// outside ASCII by letters and digits; any non-ASCII tag is refused later by [`validate_tag`]).
fn tag_grammar(tag: &str) -> bool {
    let word = |c: char| c == '_' || c.is_alphanumeric();
    let mut chars = tag.chars();
    chars.next().is_some_and(word)
        && chars.all(|c| word(c) || c == '.' || c == '-')
        && tag.chars().count() <= MAX_TAG_LENGTH
}

/// `algorithm ":" [0-9a-fA-F]{32,}`, with algorithm components of ASCII letters and digits,
/// each starting with a letter, joined by one of `-_+.`.
fn digest_grammar(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let component = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(u8::is_ascii_alphanumeric)
    };
    algorithm.split(['-', '_', '+', '.']).all(component)
        && hex.len() >= 32
        && hex.bytes().all(|x| x.is_ascii_hexdigit())
}

fn explain(input: &str, refusal: Refusal) -> String {
    match refusal {
        Refusal::Uppercase => "repository names are lowercase; write it in lowercase".into(),
        Refusal::Format => {
            let name = input.split(['@']).next().unwrap_or(input);
            let path = name.rsplit_once('/').map_or(name, |(_, r)| r);
            let path = path.split(':').next().unwrap_or(path);
            if name.chars().any(|c| c.is_ascii_uppercase())
                && path.chars().any(|c| c.is_ascii_uppercase())
            {
                "repository names are lowercase; write it in lowercase".into()
            } else {
                "expected `HOST[:PORT]/REPO[:TAG][@DIGEST]`, as in `localhost:5000/team/app:v1` \
                 or `alpine@sha256:<64 hex digits>`; repository components are lowercase letters, \
                 digits and separators `.`, `_`, `__`, `-`; a tag is at most 128 of \
                 `[A-Za-z0-9_.-]` not starting with `.` or `-`"
                    .into()
            }
        }
        Refusal::NameEmpty => "the repository name is empty".into(),
        Refusal::NameTooLong => {
            format!("the repository name is longer than {MAX_REPOSITORY_LENGTH} characters")
        }
        Refusal::TagFormat => TAG_RULE.into(),
        Refusal::DigestFormat => {
            "a digest is `ALGORITHM:HEX`, as in `sha256:<64 hex digits>`".into()
        }
        Refusal::DigestLength => {
            "the digest has the wrong length for its algorithm (sha256 takes 64 hex digits)".into()
        }
        Refusal::DigestUnsupported => "unsupported digest algorithm; use sha256 or sha512".into(),
    }
}

/// Checks a repository name against the distribution spec:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`, at most 255
/// characters.
pub fn validate_repository(name: &str) -> Result<()> {
    let bad = |reason: &str| Error::invalid("repository name", name, reason);
    if name.is_empty() {
        return Err(bad(
            "the repository name is empty; name one, as in `team/app`",
        ));
    }
    if name.len() > MAX_REPOSITORY_LENGTH {
        return Err(bad(&format!(
            "it is {} characters long; registries accept at most {MAX_REPOSITORY_LENGTH}",
            name.len()
        )));
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(bad("repository names are lowercase; write it in lowercase"));
    }
    for component in name.split('/') {
        if !valid_component(component) {
            return Err(bad(&format!(
                "its component `{component}` is not of lowercase letters and digits joined by \
                 `.`, `_`, `__` or dashes"
            )));
        }
    }
    Ok(())
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() {
        return false;
    }
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__` or one or more `-`.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Reference::parse(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    #[test]
    fn short_names_follow_docker_rules() {
        let r = Reference::parse("alpine").unwrap();
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.repository(), "library/alpine");
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.to_string(), "docker.io/library/alpine:latest");

        let r = Reference::parse("team/app:v1").unwrap();
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.repository(), "team/app");

        let r = Reference::parse("localhost:5000/x").unwrap();
        assert_eq!(r.registry(), "localhost:5000");
        assert_eq!(r.api_host(), "localhost:5000");
        assert_eq!(r.repository(), "x");
        assert_eq!(r.target(), "latest");

        let r = Reference::parse("localhost/x/y:t").unwrap();
        assert_eq!(r.registry(), "localhost");
        assert_eq!(r.repository(), "x/y");

        let r = Reference::parse("127.0.0.1:5000/a/b").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
    }

    #[test]
    fn ipv6_hosts_in_brackets() {
        let r = Reference::parse("[::1]:5000/team/app:v1").unwrap();
        assert_eq!(r.registry(), "[::1]:5000");
        assert_eq!(r.repository(), "team/app");
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.to_string(), "[::1]:5000/team/app:v1");
        let r = Reference::parse(&format!("[fd00::1]/x@sha256:{HEX}")).unwrap();
        assert_eq!(r.registry(), "[fd00::1]");
        assert_eq!(r.target(), format!("sha256:{HEX}"));
        assert_eq!(Reference::parse("[::1]/x").unwrap().tag(), Some("latest"));
        for bad in [
            "[::1/x",
            "[]:5000/x",
            "[::g]/x",
            "[fe80::1%eth0]:5000/x",
            "[::1]x/y",
            "[::1]:/x",
            "[::1]:50a/x",
            "[127.0.0.1]/x",
            "[::1]:tag",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn digests_and_tags() {
        let r = Reference::parse(&format!("ghcr.io/o/r@sha256:{HEX}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().to_string(), format!("sha256:{HEX}"));
        assert_eq!(r.target(), format!("sha256:{HEX}"));
        let r = Reference::parse(&format!("ghcr.io/o/r:v1@sha256:{HEX}")).unwrap();
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.target(), format!("sha256:{HEX}"));
    }

    #[test]
    fn bad_references_say_why() {
        for bad in [
            "",
            " alpine",
            "Foo/Bar",
            "localhost:5000/UPPER",
            "a//b",
            "x:-bad",
            "repo@sha256:abc",
        ] {
            let e = Reference::parse(bad).unwrap_err();
            assert!(
                matches!(e, Error::InvalidInput { .. }),
                "`{bad}` gave {e:?}"
            );
        }
        let e = Reference::parse("localhost:5000/UPPER").unwrap_err();
        assert!(e.to_string().contains("lowercase"), "{e}");
    }

    #[test]
    fn repository_rules() {
        for good in ["a", "a/b", "a-b", "a--b", "a__b", "a.b/c_d", "0/1"] {
            validate_repository(good).unwrap();
        }
        for bad in [
            "", "A", "a/", "/a", "a..b", "a___b", "-a", "a-", "a/.b", "a b",
        ] {
            assert!(validate_repository(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_repository(&"a".repeat(256)).is_err());
    }

    #[test]
    fn tag_rules() {
        for good in ["v1", "latest", "_x", "1.0-rc.1", &"a".repeat(128)] {
            validate_tag(good).unwrap();
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", &"a".repeat(129)] {
            assert!(validate_tag(bad).is_err(), "{bad:?} accepted");
        }
    }
}
