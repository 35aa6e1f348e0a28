//! `Reference::parse`, a hand-written parser of docker/distribution's reference grammar, against
//! the regex-based parser of `oci_spec` it replaced: on edge cases, on every combination of
//! interesting registries, repositories, tags and digests, and on seeded random strings, both
//! accept and refuse the same inputs, agree on registry, repository, tag and digest, and refuse
//! with the same message.

use ferry_distribution::Reference;

const HEX64: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// An IPv6 host in brackets at the start of `input`: the address and what follows `]`.
fn ipv6_host(input: &str) -> Option<(&str, &str)> {
    input.strip_prefix('[')?.split_once(']')
}

/// What the two parsers must agree on for `input`; returns whether it was accepted.
///
/// A host that is an IPv6 address in brackets is docker/distribution's grammar since 2.8.2,
/// which `oci_spec`'s regex predates: such an input must parse as the same input with a name
/// in place of the address does, when the address is valid and a port or the path follows.
fn agree(input: &str) -> bool {
    if let Some((address, after)) = ipv6_host(input) {
        let ours = Reference::parse(input);
        let port_then_path = match after.strip_prefix(':') {
            Some(rest) => rest
                .split_once('/')
                .is_some_and(|(p, _)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
            None => after.starts_with('/'),
        };
        let stand_in = format!("v6.example{after}");
        let valid = address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
            && address.parse::<std::net::Ipv6Addr>().is_ok()
            && port_then_path;
        if valid && agree(&stand_in) {
            let r = ours.unwrap_or_else(|e| panic!("`{input}` refused: {e}"));
            let s = Reference::parse(&stand_in).unwrap();
            let port = after.split('/').next().unwrap_or_default();
            assert_eq!(
                r.registry(),
                format!("[{address}]{port}"),
                "`{input}` registry"
            );
            assert_eq!(
                (r.repository(), r.tag(), r.digest()),
                (s.repository(), s.tag(), s.digest()),
                "`{input}`"
            );
            return true;
        }
        assert!(ours.is_err(), "`{input}` accepted: {ours:?}");
        return false;
    }
    let ours = Reference::parse(input);
    let theirs = Reference::parse_with_oci_spec(input);
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "`{input}` parses to different references"),
        (Err(a), Err(b)) => {
            // Outside ASCII the regex's `\w` (Unicode word characters) is approximated, which
            // can only move a refusal from "bad format" to "bad tag": both still refuse.
            if input.is_ascii() {
                assert_eq!(
                    a.to_string(),
                    b.to_string(),
                    "`{input}` refused differently"
                );
            }
        }
        _ => panic!("`{input}`: hand-written parser gave {ours:?}, oci-spec's gave {theirs:?}"),
    }
    // What ferry accepts, oci-spec's own parser accepts with the same parts.
    if let Ok(r) = &ours {
        let o = oci_spec::distribution::Reference::try_from(input)
            .unwrap_or_else(|e| panic!("`{input}` accepted by ferry, refused by oci-spec: {e}"));
        assert_eq!(o.registry(), r.registry(), "`{input}` registry");
        assert_eq!(o.repository(), r.repository(), "`{input}` repository");
        assert_eq!(o.tag(), r.tag(), "`{input}` tag");
        assert_eq!(
            o.digest(),
            r.digest().map(|d| d.to_string()).as_deref(),
            "`{input}` digest"
        );
    }
    ours.is_ok()
}

#[test]
fn edge_cases_agree_with_oci_spec() {
    let long = "a".repeat(300);
    let cases = [
        "alpine",
        "alpine:3.19",
        "library/alpine",
        "docker.io/alpine",
        "docker.io/library/alpine",
        "docker.io/team/app",
        "localhost:5000/a:b:c",
        "a.b:99999999999999999999/x",
        "index.docker.io/alpine",
        "index.docker.io/library/alpine:edge",
        "localhost",
        "localhost/x",
        "localhost:5000",
        "localhost:5000/x",
        "Localhost/x",
        "LOCALHOST:5000/x",
        "test.com:tag",
        "test.com:5000",
        "test.com/repo:tag",
        "test:5000/repo",
        "test:5000/repo:tag",
        "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
        "b.gcr.io/test.example.com/my-app:test.example.com",
        "xn--n3h.com/myimage:xn--n3h.com",
        "foo_bar.com:8080",
        "foo/foo_bar.com:8080",
        "a_b.c/x",
        "foo__bar.com/x",
        "-a.com/x",
        "a-.com/x",
        "a..com/x",
        ".a/x",
        "a./x",
        "A.COM/x",
        "127.0.0.1/x",
        "127.0.0.1:5000/a/b",
        "[::1]/x",
        "[::1]:5000/x",
        "[fe80::1%eth0]:5000/x",
        "host:/x",
        "host:x/y",
        "host:5000:6000/x",
        ":5000/x",
        "a:1/b:2",
        "a:1/b:2/c",
        "a/b:c/d",
        "a:b:c",
        "a:",
        ":a",
        ":justtag",
        "a@",
        "@sha256:0",
        "a//b",
        "/a",
        "a/",
        "a/b/",
        "a..b",
        "a___b",
        "a__b",
        "a---b",
        "a-_b",
        "a._b",
        "a.b.c",
        "Uppercase:tag",
        "Uppercase/lowercase:tag",
        "test:5000/Uppercase/lowercase:tag",
        "lowercase:Uppercase",
        "aa/asdf$$^/aa",
        "a:-x",
        "a:.x",
        "a:_x",
        "a:x.y-z_",
        "a:x/y",
        "a b",
        "a\tb",
        "a\n",
        "\na",
        "a:tag\n",
        "ali\u{e9}ne",
        "alpine:caf\u{e9}",
        "alpine:v\u{2603}",
        "alpine:\u{663}",
        "alpine:\u{b2}",
        "alpine:a\u{301}",
        "\u{1f433}.com/x",
        "xn--7o8h.com/x",
        &long,
        &"a".repeat(247),
        &"a".repeat(248),
        &format!("x/{}", "a".repeat(253)),
        &format!("x/{}", "a".repeat(254)),
        &format!("h.io/{}", "a".repeat(255)),
        &format!("h.io/{}", "a".repeat(256)),
        &format!("a:{}", "t".repeat(128)),
        &format!("a:{}", "t".repeat(129)),
        &format!("a:{}", "\u{e9}".repeat(128)),
        &format!("a:{}", "\u{e9}".repeat(129)),
        &format!("a@sha256:{HEX64}"),
        &format!("a:v1@sha256:{HEX64}"),
        &format!("a@sha256:{}", HEX64.to_uppercase()),
        &format!("a@SHA256:{HEX64}"),
        &format!("a@sha256:{HEX64}0"),
        &format!("a@sha256:{}", &HEX64[..63]),
        &format!("a@sha256:{}", &HEX64[..32]),
        &format!("a@sha256:{}", &HEX64[..31]),
        &format!("a@sha384:{HEX64}{}", &HEX64[..32]),
        &format!("a@sha512:{HEX64}{HEX64}"),
        &format!("a@md5:{}", &HEX64[..32]),
        &format!("a@multihash+base58:{HEX64}"),
        &format!("a@sha-256:{HEX64}"),
        &format!("a@sha256-:{HEX64}"),
        &format!("a@1sha:{HEX64}"),
        &format!("a@:{HEX64}"),
        &format!("a@sha256{HEX64}"),
        &format!("a@sha256:{HEX64}@sha256:{HEX64}"),
        &format!("a@sha256:g{}", &HEX64[1..]),
        &format!("@sha256:{HEX64}"),
        &format!("a:@sha256:{HEX64}"),
        &format!("localhost:5000/a/b:c@sha256:{HEX64}"),
        &format!("localhost:5000@sha256:{HEX64}"),
    ];
    let accepted = cases.iter().filter(|c| agree(c)).count();
    assert!(accepted >= 30, "only {accepted} of the edge cases parsed");
    assert!(cases.len() - accepted >= 30, "too few edge cases refused");
}

#[test]
fn every_combination_of_parts_agrees_with_oci_spec() {
    let registries = [
        "",
        "localhost/",
        "localhost:5000/",
        "Localhost/",
        "ghcr.io/",
        "GHCR.io:443/",
        "index.docker.io/",
        "docker.io/",
        "a_b.c/",
        "a-.b/",
        "127.0.0.1:1/",
        "[::1]:5000/",
        "h:/",
        "h:5x/",
        "team/",
    ];
    let repositories = [
        "x",
        "a/b",
        "a.b/c_d",
        "a__b",
        "a___b",
        "a--b",
        "a-",
        "A",
        "",
        "a//b",
        "a/",
        "\u{e9}",
        &"r".repeat(246),
        &"r".repeat(250),
    ];
    let tags = [
        None,
        Some("v1"),
        Some(""),
        Some("-x"),
        Some("_x"),
        Some("V1.0-rc.1"),
        Some("caf\u{e9}"),
        Some("a:b"),
        Some(&"t".repeat(129)),
    ];
    let digests = [
        None,
        Some(format!("sha256:{HEX64}")),
        Some(format!("sha256:{}", HEX64.to_uppercase())),
        Some(format!("sha256:{}", &HEX64[..40])),
        Some(format!("sha512:{HEX64}{HEX64}")),
        Some(format!("blake3:{HEX64}")),
        Some(format!("sha256:{}z", &HEX64[..63])),
    ];
    let (mut accepted, mut refused) = (0, 0);
    for registry in registries {
        for repository in &repositories {
            for tag in &tags {
                for digest in &digests {
                    let mut input = format!("{registry}{repository}");
                    if let Some(t) = tag {
                        input.push(':');
                        input.push_str(t);
                    }
                    if let Some(d) = digest {
                        input.push('@');
                        input.push_str(d);
                    }
                    if agree(&input) {
                        accepted += 1;
                    } else {
                        refused += 1;
                    }
                }
            }
        }
    }
    assert!(accepted >= 200, "only {accepted} combinations parsed");
    assert!(refused >= 200, "only {refused} combinations refused");
}

#[test]
fn random_strings_agree_with_oci_spec() {
    // Strings over the characters the grammar cares about, so that many are near-misses.
    let alphabet: Vec<char> = "abcxyz019AZ._-/:@_-.:/ \u{e9}\u{2603}".chars().collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // xorshift64*: a fixed seed, so a failure reproduces.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..3000 {
        let len = 1 + (next() % 24) as usize;
        let mut input: String = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        match next() % 4 {
            0 => input.push_str(&format!("@sha256:{HEX64}")),
            1 => input.push_str(":v1"),
            _ => {}
        }
        if agree(&input) {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    assert!(accepted >= 100, "only {accepted} random strings parsed");
    assert!(refused >= 100, "only {refused} random strings refused");
}
