//! `ferry_core::redact`: no userinfo and no secret query value survive, everything else is
//! kept as written.

use std::borrow::Cow;

use ferry_core::{Error, redact};

#[test]
fn userinfo_and_secret_query_values_are_removed_from_urls() {
    for (given, shown) in [
        (
            "https://bob:hunter2@registry.example:5000/v2/",
            "https://registry.example:5000/v2/",
        ),
        ("http://bob@registry.example", "http://registry.example"),
        // A password holding an unescaped `/` or `@` is removed whole.
        (
            "http://bob:pa/ss@word@127.0.0.1:8333/bucket",
            "http://127.0.0.1:8333/bucket",
        ),
        ("http://u:p@[::1]:5000/x", "http://[::1]:5000/x"),
        (
            "https://s3.example/b/o?X-Amz-Signature=abc&X-Amz-Credential=k%2Fday&partNumber=1&uploadId=u#frag",
            "https://s3.example/b/o?X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED&partNumber=1&uploadId=u#frag",
        ),
        (
            "https://auth.example/token?service=reg&scope=repository%3Aa%3Apull&access%5Ftoken=t",
            "https://auth.example/token?service=reg&scope=repository%3Aa%3Apull&access%5Ftoken=REDACTED",
        ),
        // Not a valid URL, still redacted.
        ("http://bob:hunter2@[bad", "http://[bad"),
        // Without a scheme: `user:password@` before the first `/`.
        (
            "bob:hunter2@registry.example/app:v1",
            "registry.example/app:v1",
        ),
        // What is not a credential is kept.
        (
            "registry.example:5000/app@sha256:0123",
            "registry.example:5000/app@sha256:0123",
        ),
        ("alpine:3.19@sha256:0123", "alpine:3.19@sha256:0123"),
        ("oci:./dir:with:colons/", "oci:./dir:with:colons/"),
        ("file:///srv/registry-a", "file:///srv/registry-a"),
        ("s3://bucket/tenant-b", "s3://bucket/tenant-b"),
    ] {
        assert_eq!(redact::url(given), shown, "{given}");
    }
    assert!(redact::is_secret_name("X-Amz-Security-Token"));
    assert!(redact::is_secret_name("secret_access_key"));
    assert!(!redact::is_secret_name("partNumber"));
}

#[test]
fn every_url_in_free_text_is_redacted() {
    let text = "error sending request for url (http://k:s3cret@127.0.0.1:8333/b/key?x-amz-signature=f00): \
                connection refused; from `https://u:pw@reg.example/v2/` and \"http://a:b@c/d\", \
                plain words: user:pass, no scheme";
    let shown = redact::text(text);
    assert_eq!(
        shown,
        "error sending request for url (http://127.0.0.1:8333/b/key?x-amz-signature=REDACTED): \
         connection refused; from `https://reg.example/v2/` and \"http://c/d\", \
         plain words: user:pass, no scheme"
    );
    // JSON-escaped quotes end a URL too, so the JSON stays valid.
    let json = r#"{"from":"see \"http://u:p@h/x?token=t\" there"}"#;
    let shown = redact::text(json);
    assert_eq!(
        shown,
        r#"{"from":"see \"http://h/x?token=REDACTED\" there"}"#
    );
    serde_json::from_str::<serde_json::Value>(&shown).unwrap();
    // Text without a URL to change is not copied.
    assert!(matches!(
        redact::text("nothing here: a://b, ://c"),
        Cow::Borrowed(_)
    ));
    assert!(matches!(
        redact::text("http://registry.example/v2/"),
        Cow::Borrowed(_)
    ));
}

#[test]
fn invalid_input_never_quotes_credentials() {
    let e = Error::invalid(
        "admin URL",
        "http://user:hunter2@registry-admin",
        "do not put credentials in the URL",
    );
    let shown = e.to_string();
    assert!(
        !shown.contains("hunter2") && !shown.contains("user:"),
        "{shown}"
    );
    assert!(shown.contains("`http://registry-admin`"), "{shown}");
}
