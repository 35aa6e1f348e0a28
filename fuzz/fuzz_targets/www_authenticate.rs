//! `parse_challenges` on arbitrary `WWW-Authenticate` values: it never panics or loops, what it
//! returns is normalized (lowercase schemes and names), and challenges printed in the RFC 9110
//! form (quoted values) parse back to the same challenges.
#![no_main]

use ferry_distribution::auth::challenge::{Challenge, parse_challenges};
use libfuzzer_sys::fuzz_target;

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// `challenges` as a header value: `scheme name="value", name="value", scheme ...`.
fn print(challenges: &[Challenge]) -> String {
    let mut out = Vec::new();
    for c in challenges {
        let params: Vec<String> = c
            .params
            .iter()
            .map(|(k, v)| {
                let v = v.replace('\\', "\\\\").replace('"', "\\\"");
                format!("{k}=\"{v}\"")
            })
            .collect();
        if params.is_empty() {
            out.push(c.scheme.clone());
        } else {
            out.push(format!("{} {}", c.scheme, params.join(", ")));
        }
    }
    out.join(", ")
}

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    let challenges = parse_challenges(header);
    assert!(
        challenges.len() <= header.len(),
        "more challenges than characters"
    );
    for c in &challenges {
        assert!(!c.scheme.is_empty(), "`{header}`: empty scheme");
        assert_eq!(c.scheme, c.scheme.to_ascii_lowercase());
        for (name, _) in &c.params {
            assert_eq!(*name, name.to_ascii_lowercase());
        }
        let _ = (c.realm(), c.service(), c.scopes(), c.error());
    }

    // Printing and parsing again gives the same challenges, for those whose parts can be
    // printed unambiguously: token schemes and names (RFC 9110's tchar), no token68.
    let printable = challenges.iter().all(|c| {
        c.scheme.chars().all(is_tchar)
            && c.params
                .iter()
                .all(|(k, _)| !k.is_empty() && k.chars().all(is_tchar))
    });
    if printable {
        let printed = print(&challenges);
        let again = parse_challenges(&printed);
        assert_eq!(
            again, challenges,
            "`{header}` printed as `{printed}` parses differently"
        );
    }
});
