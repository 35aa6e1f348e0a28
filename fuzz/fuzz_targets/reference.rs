//! `Reference::parse` on arbitrary strings: it never panics, what it accepts obeys the
//! repository and tag rules, and a parsed reference prints as a string that parses back to the
//! same reference (the CLI and logs print references that users paste back in).
#![no_main]

use ferry_distribution::Reference;
use ferry_distribution::reference::{validate_repository, validate_tag};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(reference) = Reference::parse(input) else {
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
