//! `ferry cp` and `ferry sync` through a real forward proxy: squid on loopback, whose hosts
//! file maps `registry.test` to 127.0.0.1 (the loopback itself is never proxied, so the tests
//! name the registries by a name only the proxy resolves). Plain HTTP goes in absolute form,
//! HTTPS through `CONNECT`, with and without Basic authentication; squid's access log proves
//! each request went through it, or, for `NO_PROXY`, did not. And the proxy's failures, one
//! sentence each naming the proxy and the variable it came from.

use ferry_test_support::fixtures::write_oci_layout;
use ferry_test_support::{
    ImageBuilder, ProxyLogEntry, Registry, Squid, SquidBuilder, TestCa, free_port,
};

use crate::support::*;

/// Squid, started (it must be installed).
fn squid(builder: SquidBuilder) -> Squid {
    assert!(
        Squid::available(),
        "squid is needed for the proxy tests: `apt-get install squid` (scripts/test does)"
    );
    builder.start().unwrap()
}

/// A layout at `dir` with one image tagged `v1`; returns its `oci:` reference and digest.
fn layout(dir: &std::path::Path, seed: u64) -> (String, String) {
    let image = ImageBuilder::new()
        .layers(&[3000, 70_000])
        .seed(seed)
        .build();
    write_oci_layout(dir, &[(Some("v1"), &image)]).unwrap();
    (
        format!("oci:{}:v1", dir.display()),
        image.manifest.digest().to_string(),
    )
}

/// The digest `reference` names, read directly (the loopback is never proxied).
fn digest_at(reference: &str, extra: &[&str]) -> String {
    let out = tempfile::tempdir().unwrap();
    let dst = format!("oci:{}:got", out.path().display());
    let mut args = vec!["cp", reference, &dst];
    args.extend_from_slice(extra);
    let run = ferry(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    index_json(out.path())["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Runs ferry with `args` and `env`, which must fail with exit `code`: its one error line,
/// and the run.
fn fails(args: &[&str], env: &[(&str, &str)], code: i32) -> (String, Run) {
    let run = ferry_with(args, env, None);
    assert_eq!(run.code, code, "{}", run.stderr);
    (error_line(&run).to_string(), run)
}

fn assert_all_passed(lines: &[ProxyLogEntry]) {
    assert!(!lines.is_empty());
    for l in lines {
        assert!(l.status < 400 || l.status == 404, "{l:?}");
    }
}

struct Registries {
    plain: Registry,
    secure: Registry,
    ca_file: String,
    _work: tempfile::TempDir,
}

fn registries() -> Registries {
    let work = tempfile::tempdir().unwrap();
    let ca = TestCa::new().unwrap();
    let ca_file = work.path().join("ca.pem");
    ca.write_cert(&ca_file).unwrap();
    Registries {
        plain: Registry::builder().start().unwrap(),
        secure: Registry::builder()
            .tls_issued_for(&ca, &["registry.test", "127.0.0.1"])
            .unwrap()
            .start()
            .unwrap(),
        ca_file: ca_file.display().to_string(),
        _work: work,
    }
}

/// Copies and syncs through `proxy_url` (plain HTTP and HTTPS); returns the proxy's lines for
/// each registry.
fn cp_and_sync_through(
    r: &Registries,
    proxy: &Squid,
    proxy_url: &str,
    seed: u64,
) -> (Vec<ProxyLogEntry>, Vec<ProxyLogEntry>) {
    let work = tempfile::tempdir().unwrap();
    let (src, digest) = layout(&work.path().join("src"), seed);
    let plain = r.plain.addr_as("registry.test");
    let secure = r.secure.addr_as("registry.test");
    let env = [("HTTP_PROXY", proxy_url), ("https_proxy", proxy_url)];

    // cp over plain HTTP, then over HTTPS.
    let run = ferry_with(
        &["cp", "--plain-http", &src, &format!("{plain}/app:v1")],
        &env,
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = ferry_with(
        &[
            "cp",
            "--ca-cert",
            &r.ca_file,
            &src,
            &format!("{secure}/app:v1"),
        ],
        &env,
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    // sync from the plain registry to the secure one, both through the proxy.
    let run = ferry_with(
        &[
            "sync",
            "--from-plain-http",
            "--to-ca-cert",
            &r.ca_file,
            &format!("{plain}/app"),
            &format!("{secure}/mirror/app"),
        ],
        &env,
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);

    assert_eq!(
        digest_at(&format!("{}/app:v1", r.plain.addr()), &["--plain-http"]),
        digest
    );
    for repo in ["app", "mirror/app"] {
        let at = format!("{}/{repo}:v1", r.secure.addr());
        assert_eq!(digest_at(&at, &["--ca-cert", &r.ca_file]), digest);
    }
    // Every request to the plain registry went through the proxy in absolute form: its pushes
    // and its reads; every connection to the secure one was a tunnel.
    let plain_lines = proxy.await_log_for(&plain, 8);
    let methods: Vec<&str> = plain_lines.iter().map(|l| l.method.as_str()).collect();
    for m in ["POST", "PUT", "GET"] {
        assert!(methods.contains(&m), "{m} missing: {plain_lines:?}");
    }
    assert!(
        plain_lines
            .iter()
            .all(|l| l.target.starts_with(&format!("http://{plain}/v2/")))
    );
    let secure_lines = proxy.await_log_for(&secure, 2);
    assert!(
        secure_lines
            .iter()
            .all(|l| l.method == "CONNECT" && l.target == secure)
    );
    (plain_lines, secure_lines)
}

#[test]
fn cp_and_sync_go_through_the_proxy_in_absolute_form_and_through_connect() {
    let proxy = squid(Squid::builder());
    let r = registries();
    let (plain, secure) = cp_and_sync_through(&r, &proxy, &proxy.url(), 11);
    assert_all_passed(&plain);
    assert_all_passed(&secure);
    assert!(secure.iter().all(|l| l.is_tunnel()), "{secure:?}");
}

#[test]
fn proxy_credentials_from_the_url_are_sent_and_never_shown() {
    let proxy = squid(Squid::builder().user("alice", "s3cr3t-pw"));
    let r = registries();
    let url = proxy.url_with("alice", "s3cr3t-pw");
    let (plain, secure) = cp_and_sync_through(&r, &proxy, &url, 12);
    for l in plain.iter().chain(&secure) {
        assert_eq!(
            (l.user.as_deref(), l.status < 400 || l.status == 404),
            (Some("alice"), true),
            "{l:?}"
        );
    }

    // Not in the logs of every request either.
    let work = tempfile::tempdir().unwrap();
    let (src, _) = layout(&work.path().join("src"), 13);
    let run = ferry_with(
        &[
            "cp",
            "-vv",
            "--ca-cert",
            &r.ca_file,
            &src,
            &format!("{}/other:v1", r.secure.addr_as("registry.test")),
        ],
        &[("HTTPS_PROXY", &url)],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("s3cr3t"), "{}", run.stderr);

    // Without credentials: the proxy's 407, for HTTPS and plain HTTP alike.
    let secure = r.secure.addr_as("registry.test");
    let (line, _) = fails(
        &[
            "cp",
            "--ca-cert",
            &r.ca_file,
            &src,
            &format!("{secure}/x:v1"),
        ],
        &[("HTTPS_PROXY", &proxy.url())],
        4,
    );
    assert_eq!(
        line,
        format!(
            "error: the proxy {} (from HTTPS_PROXY) asks for credentials to connect to {secure} \
             (407 Proxy Authentication Required); give the proxy's user and password in its URL, \
             `USER:PASSWORD@` before its host, in that variable or in `proxy` of the registry's \
             table in ferry.toml",
            proxy.url()
        )
    );
    let plain = r.plain.addr_as("registry.test");
    let (line, run) = fails(
        &["cp", "--plain-http", &src, &format!("{plain}/x:v1")],
        &[("http_proxy", &proxy.url_with("alice", "wrong"))],
        4,
    );
    assert!(
        line.starts_with(&format!(
            "error: the proxy {} (from http_proxy) refused the credentials of its URL for {plain}",
            proxy.url()
        )),
        "{line}"
    );
    assert!(!run.stderr.contains("wrong"), "{}", run.stderr);
}

#[test]
fn an_unreachable_proxy_and_a_refused_connect_read_as_one_sentence() {
    let proxy = squid(Squid::builder().deny("denied.test"));
    let r = registries();
    let work = tempfile::tempdir().unwrap();
    let (src, _) = layout(&work.path().join("src"), 14);
    let denied = r.secure.addr_as("denied.test");
    let (line, run) = fails(
        &[
            "cp",
            "--ca-cert",
            &r.ca_file,
            &src,
            &format!("{denied}/x:v1"),
        ],
        &[("HTTPS_PROXY", &proxy.url())],
        1,
    );
    assert!(
        line.starts_with(&format!(
            "error: the proxy {} (from HTTPS_PROXY) refused to connect to {denied} (403 Forbidden); ",
            proxy.url()
        )),
        "{}",
        run.stderr
    );

    let closed = free_port();
    let secure = r.secure.addr_as("registry.test");
    let (line, run) = fails(
        &[
            "cp",
            "--ca-cert",
            &r.ca_file,
            &src,
            &format!("{secure}/x:v1"),
        ],
        &[(
            "ALL_PROXY",
            &format!("http://bob:hunter2@127.0.0.1:{closed}"),
        )],
        1,
    );
    assert!(
        line.starts_with(&format!(
            "error: cannot reach the proxy http://127.0.0.1:{closed} (from ALL_PROXY) to connect \
             to {secure}: connection refused; "
        )),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);

    // A proxy URL ferry cannot use is refused before anything is sent.
    let (line, _) = fails(
        &["cp", &src, &format!("{secure}/x:v1")],
        &[("HTTPS_PROXY", "socks5://bob:hunter2@127.0.0.1:1080")],
        2,
    );
    assert!(
        line.contains("socks5") && line.contains("HTTPS_PROXY") && !line.contains("hunter2"),
        "{line}"
    );
}

#[test]
fn no_proxy_and_the_loopback_go_direct_and_a_registry_table_overrides_the_environment() {
    let proxy = squid(Squid::builder());
    let r = registries();
    let work = tempfile::tempdir().unwrap();
    let (src, _) = layout(&work.path().join("src"), 15);
    let plain = r.plain.addr_as("registry.test");

    // NO_PROXY names the registry's domain: ferry resolves `registry.test` itself, and cannot.
    let (line, run) = fails(
        &["cp", "--plain-http", &src, &format!("{plain}/app:v1")],
        &[
            ("HTTP_PROXY", &proxy.url()),
            ("NO_PROXY", "example.com,.test"),
        ],
        1,
    );
    assert!(line.contains("the name does not resolve"), "{}", run.stderr);
    // The loopback is never proxied.
    let run = ferry_with(
        &[
            "cp",
            "--plain-http",
            &src,
            &format!("{}/app:v1", r.plain.addr()),
        ],
        &[("HTTP_PROXY", &proxy.url())],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        proxy.log().is_empty(),
        "nothing went through the proxy: {:?}",
        proxy.log()
    );

    // A registry's own proxy in ferry.toml, over an environment's proxy that is down.
    let config = work.path().join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            "[registries.\"{plain}\"]\nplain_http = true\nproxy = \"{}\"\nno_proxy = \"other.test\"\n",
            proxy.url()
        ),
    )
    .unwrap();
    let down = format!("http://127.0.0.1:{}", free_port());
    let run = ferry_with(
        &[
            "cp",
            "--config",
            &config.display().to_string(),
            &src,
            &format!("{plain}/app:v2"),
        ],
        &[("HTTP_PROXY", &down), ("NO_PROXY", "registry.test")],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!proxy.await_log_for(&plain, 1).is_empty());

    // Its proxy's failures name the table it came from.
    std::fs::write(
        &config,
        format!("[registries.\"{plain}\"]\nplain_http = true\nproxy = \"{down}\"\n"),
    )
    .unwrap();
    let (line, run) = fails(
        &[
            "cp",
            "--config",
            &config.display().to_string(),
            &src,
            &format!("{plain}/app:v3"),
        ],
        &[],
        1,
    );
    assert!(
        line.starts_with(&format!(
            "error: cannot reach the proxy {down} (from `proxy` in [registries.\"{plain}\"])"
        )),
        "{}",
        run.stderr
    );
}

/// The S3 client of a registry's storage root follows the same proxy rules: its endpoint,
/// named `other.test`, is reached through the proxy, and the mount is a server-side copy.
#[test]
fn the_s3_client_of_a_storage_root_goes_through_the_proxy_too() {
    let proxy = squid(Squid::builder());
    let seaweed = ferry_test_support::SeaweedFs::start().unwrap();
    seaweed.create_bucket("shared").unwrap();
    let registry = |prefix: &str| {
        Registry::builder()
            .s3(seaweed.storage("shared", prefix).unwrap())
            .start()
            .unwrap()
    };
    let (a, b) = (registry("/tenant-a"), registry("/tenant-b"));
    let work = tempfile::tempdir().unwrap();
    let (src, digest) = layout(&work.path().join("src"), 16);
    let run = ferry(&["cp", "--plain-http", &src, &format!("{}/x:v1", a.addr())]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    let port = seaweed.s3_url().rsplit(':').next().unwrap().to_string();
    let endpoint = format!("other.test:{port}");
    let s3 = |prefix: &str| {
        format!(
            "storage = \"s3://shared/{prefix}\"\nendpoint = \"http://{endpoint}\"\n\
             region = \"us-east-1\"\naccess_key_id = \"any\"\nsecret_access_key = \"any\"\n\
             allow_http = true\n"
        )
    };
    let config = work.path().join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            "[defaults]\nplain_http = true\n[registries.\"{}\"]\n{}[registries.\"{}\"]\n{}",
            a.addr(),
            s3("tenant-a"),
            b.addr(),
            s3("tenant-b")
        ),
    )
    .unwrap();
    // A copy from A to B's repository `to`, every blob mounted by the storage roots.
    let mount_copy = |to: &str| {
        let run = ferry_with(
            &[
                "cp",
                "--config",
                &config.display().to_string(),
                &format!("{}/x:v1", a.addr()),
                &format!("{}/{to}:v1", b.addr()),
            ],
            &[("HTTP_PROXY", &proxy.url())],
            None,
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(
            run.stdout.matches("(distribution-storage)").count(),
            3,
            "{}",
            run.stdout
        );
    };
    mount_copy("y");
    let lines = proxy.await_log_for(&endpoint, 3);
    assert!(lines.len() >= 3, "{lines:?}");
    assert!(
        lines.iter().any(|l| l.method == "PUT"),
        "the server-side copies went through the proxy: {lines:?}"
    );
    assert_all_passed(&lines);
    // The registries themselves are on the loopback: never proxied.
    assert!(proxy.log_for(a.addr()).is_empty() && proxy.log_for(b.addr()).is_empty());
    assert_eq!(
        digest_at(&format!("{}/y:v1", b.addr()), &["--plain-http"]),
        digest
    );

    // An endpoint on the loopback is reached directly, as every client of ferry reaches it
    // (reqwest's own reading of HTTP_PROXY would send it to the proxy).
    let loopback = format!("127.0.0.1:{port}");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace(&endpoint, &loopback)).unwrap();
    mount_copy("z");
    assert!(proxy.log_for(&loopback).is_empty(), "{:?}", proxy.log());
}
