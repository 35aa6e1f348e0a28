//! `Reference::parse` on arbitrary strings: it never panics, it accepts and refuses what
//! `oci_spec`'s regex-based parser (`Reference::parse_with_oci_spec`) does (but for IPv6 hosts
//! in brackets, which that parser predates), with the same parts
//! and, for ASCII input, the same message, what it accepts obeys the repository and tag rules,
//! and a parsed reference prints as a string that parses back to the same reference (the CLI and
//! logs print references that users paste back in).
#![no_main]

use ferry_distribution::Reference;
use ferry_distribution::reference::{validate_repository, validate_tag};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Reference::parse(input);
    let oracle = Reference::parse_with_oci_spec(input);
    // A host that is an IPv6 address in brackets is docker/distribution's grammar since
    // 2.8.2, which `oci_spec`'s regex predates: only the invariants below are checked for it.
    let ipv6 = input.starts_with('[');
    match (&parsed, &oracle) {
        _ if ipv6 => {}
        (Ok(a), Ok(b)) => assert_eq!(a, b, "`{input}` parses to different references"),
        // Outside ASCII the hand-written parser approximates the regex's Unicode `\w`, which can
        // only turn a "bad format" refusal into a "bad tag" one.
        (Err(a), Err(b)) if input.is_ascii() => {
            assert_eq!(
                a.to_string(),
                b.to_string(),
                "`{input}` refused differently"
            )
        }
        (Err(_), Err(_)) => {}
        _ => panic!("`{input}`: the hand-written parser gave {parsed:?}, oci-spec's {oracle:?}"),
    }
    let Ok(reference) = parsed else {
        return;
    };
    assert!(
        !reference.registry().is_empty(),
        "`{input}`: empty registry"
    );
    assert!(
        !reference.registry().contains('/'),
        "`{input}`: registry `{}` holds a `/`",
        reference.registry()
    );
    validate_repository(reference.repository())
        .unwrap_or_else(|e| panic!("`{input}` parsed with a bad repository: {e}"));
    if let Some(tag) = reference.tag() {
        validate_tag(tag).unwrap_or_else(|e| panic!("`{input}` parsed with a bad tag: {e}"));
    }
    assert!(
        reference.tag().is_some() || reference.digest().is_some(),
        "`{input}`: neither tag nor digest"
    );
    let _ = reference.api_host();
    let _ = reference.target();

    let printed = reference.to_string();
    let again = Reference::parse(&printed)
        .unwrap_or_else(|e| panic!("`{input}` prints as `{printed}`, which does not parse: {e}"));
    assert_eq!(
        again, reference,
        "`{input}` prints as `{printed}`, which parses to another reference"
    );
    assert_eq!(again.to_string(), printed);

    // Rebuilding it from its parts gives the same reference.
    let rebuilt = Reference::new(
        reference.registry(),
        reference.repository(),
        reference.tag(),
        reference.digest().cloned(),
    )
    .unwrap_or_else(|e| panic!("the parts of `{input}` are refused by `Reference::new`: {e}"));
    assert_eq!(rebuilt, reference);
});
