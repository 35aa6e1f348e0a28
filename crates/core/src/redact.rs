//! The one place that makes what ferry shows fit to show: no URL's userinfo
//! (`user:password@`), no value of a query parameter that may carry a secret (tokens,
//! signatures, credentials), wherever a URL ends up: an error message, a log field, a report.
//!
//! Every crate of ferry (and a mounter written against `ferry-core`) passes URLs through
//! [`url`] before quoting them, and text it did not build itself, such as a backend's error
//! message that may quote a URL, through [`text`]. [`Error::invalid`](crate::Error::invalid)
//! does it for the value it quotes.
//!
//! The functions work on text, not on a parsed URL: what must be redacted is as often a URL
//! that failed to parse (which an error quotes back) as a valid one, and nothing is gained by
//! normalising it. So `ferry-core` needs no URL parser.
//!
//! ```
//! use ferry_core::redact;
//! assert_eq!(
//!     redact::url("https://bob:hunter2@registry.example/v2/?token=abc&n=1"),
//!     "https://registry.example/v2/?token=REDACTED&n=1"
//! );
//! assert_eq!(
//!     redact::text("error sending request for url (http://k:s@127.0.0.1:8333/b/key)"),
//!     "error sending request for url (http://127.0.0.1:8333/b/key)"
//! );
//! ```

use std::borrow::Cow;

/// What a secret query value is replaced by.
pub const REDACTED: &str = "REDACTED";

/// Parts of a name (lowercase) that mark its value as a secret.
const SECRET_WORDS: &[&str] = &[
    "token",
    "sig",
    "signature",
    "credential",
    "key",
    "auth",
    "password",
    "passwd",
    "secret",
    "code",
    "session",
];

/// Whether a query parameter, header or option named `name` may carry a secret: its name
/// holds `token`, `sig`, `signature`, `credential`, `key`, `auth`, `password`, `passwd`,
/// `secret`, `code` or `session`, in any case.
pub fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| lower.contains(w))
}

/// `url` (a URL, or text meant as one) fit to show: its userinfo removed and the values of
/// query parameters that may carry a secret ([`is_secret_name`]) replaced by [`REDACTED`].
/// Everything else is kept as written, valid URL or not.
///
/// Without a scheme, a `user:password@` before the first `/` is removed too
/// (`bob:pw@registry.example/app` → `registry.example/app`): that is how a registry URL with
/// credentials looks when typed where a reference was expected. Text without `/`, or with a
/// lone `name@` before it, is kept: it may be an image name with a digest
/// (`alpine:3.19@sha256:…`).
pub fn url(url: &str) -> String {
    match scheme_end(url, 0) {
        Some(authority) => redact_span(url, authority),
        None => {
            let head = url.find('/').map_or("", |slash| &url[..slash]);
            let start = match head.rfind('@') {
                Some(at) if head[..at].contains(':') => at + 1,
                _ => 0,
            };
            let rest = &url[start..];
            match rest.find('?') {
                Some(q) => {
                    let mut out = rest[..q].to_string();
                    push_query(&mut out, &rest[q..]);
                    out
                }
                None => rest.to_string(),
            }
        }
    }
}

/// `text` with every URL in it (`scheme://…`, up to white space, a quote, `<`, `>`, `)` or
/// `\`) passed through [`url`]. Text without such a URL is returned as is.
pub fn text(text: &str) -> Cow<'_, str> {
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = text[search..].find("://") {
        let sep = search + found;
        // The scheme: letters, digits, `+`, `-`, `.`, starting with a letter.
        let start = text[..sep]
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            .last()
            .map(|(i, _)| i)
            .unwrap_or(sep);
        let start = text[start..sep]
            .find(|c: char| c.is_ascii_alphabetic())
            .map_or(sep, |i| start + i);
        let end = text[sep + 3..]
            .find(|c: char| c.is_whitespace() || URL_END.contains(&c))
            .map_or(text.len(), |i| sep + 3 + i);
        if start == sep {
            search = sep + 3;
            continue;
        }
        let span = &text[start..end];
        let shown = url(span);
        if shown != span {
            let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
            out.push_str(&text[copied..start]);
            out.push_str(&shown);
            copied = end;
        }
        search = end.max(sep + 3);
    }
    match out {
        Some(mut out) => {
            out.push_str(&text[copied..]);
            Cow::Owned(out)
        }
        None => Cow::Borrowed(text),
    }
}

/// Characters that end a URL inside free text (besides white space).
const URL_END: &[char] = &['"', '\'', '`', '<', '>', ')', '\\'];

/// Where the authority starts when `text` (from `from`) begins with `scheme://`.
fn scheme_end(text: &str, from: usize) -> Option<usize> {
    let rest = &text[from..];
    let sep = rest.find("://")?;
    let scheme = &rest[..sep];
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(from + sep + 3)
}

/// `span` (a URL whose authority starts at `authority`) without userinfo and secret query
/// values. The userinfo is everything up to the last `@` before the query or fragment, so a
/// password holding an unescaped `/` is removed whole (a path holding `@` loses what comes
/// before it: shown too little, never too much).
fn redact_span(span: &str, authority: usize) -> String {
    let mut out = String::with_capacity(span.len());
    out.push_str(&span[..authority]);
    let rest = &span[authority..];
    let before_query = rest.find(['?', '#']).unwrap_or(rest.len());
    let rest = match rest[..before_query].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    match rest.find('?') {
        Some(q) if rest[..q].find('#').is_none() => {
            out.push_str(&rest[..q]);
            push_query(&mut out, &rest[q..]);
        }
        _ => out.push_str(rest),
    }
    out
}

/// Appends `query` (from its `?`, with any fragment) with secret values replaced.
fn push_query(out: &mut String, query: &str) {
    let (query, fragment) = match query.find('#') {
        Some(h) => (&query[..h], &query[h..]),
        None => (query, ""),
    };
    out.push('?');
    for (i, pair) in query[1..].split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((key, _)) if is_secret_name(&percent_decoded(key)) => {
                out.push_str(key);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(pair),
        }
    }
    out.push_str(fragment);
}

/// `text` with `%XX` escapes and `+` decoded, for matching parameter names only.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b'+', ..) => {
                out.push(b' ');
                i += 1;
            }
            (b, ..) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
