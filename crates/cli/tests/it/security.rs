//! Hostile or careless input at the command line and from registries: references that try
//! to escape, invalid names and garbage URLs are refused before anything is written or
//! sent; token scopes are the minimum; token and error bodies are bounded; secrets stay out of
//! logs and errors; referrers that point back at each other do not loop.

use std::path::Path;

use base64::Engine as _;
use ferry_test_support::fixtures::write_oci_layout;
use ferry_test_support::{
    ArtifactBuilder, Blob, Content, Fault, FaultPlan, FaultProxy, ImageBuilder, Registry,
    TokenAuth, TokenIssuer, http, skopeo,
};

use crate::support::*;

fn layout_of(dir: &Path, tag: &str, content: &dyn Content) -> String {
    write_oci_layout(dir, &[(Some(tag), content)]).unwrap();
    format!("oci:{}:{tag}", dir.display())
}

#[test]
fn invalid_names_and_garbage_references_are_refused_before_anything_is_sent_or_written() {
    let reg = Registry::start().unwrap();
    let r = reg.addr();
    let work = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new().layers(&[1000]).seed(5).build();
    let src = layout_of(&work.path().join("src"), "v1", &image);
    let dst_dir = work.path().join("dst");
    let d = dst_dir.display().to_string();
    let bad_destinations = [
        format!("{r}/UPPER/app:v1"),
        format!("{r}/a//b:v1"),
        format!("{r}/../etc:v1"),
        format!("{r}/-lead/app:v1"),
        format!("{r}/app:bad tag"),
        format!("{r}/app:{}", "t".repeat(200)),
        format!("{r}/app@sha256:not-hex"),
        format!("http://{r}/app:v1"),
        format!("{r}/app:v1?x=1"),
        "127.0.0.1:99999/app:v1".into(),
        // Tags and digests that try to escape, and a `:` that is neither a tag nor inside a
        // file name (see `ambiguous_layout_references_are_refused_before_anything_is_written`):
        format!("oci:{d}:.."),
        format!("oci:{d}:."),
        format!("oci:{d}:%2e%2e"),
        format!("oci:{d}:/etc/passwd"),
        format!("oci:{d}/l:../../escape"),
        format!("oci:{d}@sha256:{}", "a".repeat(64)),
        format!("oci:{d}@sha256:../../../../etc/passwd"),
        "oci:".into(),
        "".into(),
    ];
    let mark = reg.mark();
    for bad in &bad_destinations {
        let run = ferry(&["cp", "--plain-http", &src, bad]);
        assert_eq!(
            run.code, 2,
            "`{bad}` must be refused as bad input: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("invalid") || run.stderr.contains("error:"),
            "`{bad}`: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        assert!(!dst_dir.exists(), "`{bad}` wrote `{d}`");
    }
    // The same names as sources.
    for bad in bad_destinations.iter().filter(|b| !b.starts_with("oci:")) {
        let run = ferry(&["cp", "--plain-http", bad, &format!("oci:{d}:v1")]);
        assert_eq!(run.code, 2, "source `{bad}`: {}", run.stderr);
        assert!(!dst_dir.exists(), "source `{bad}` wrote `{d}`");
    }
    assert!(
        reg.requests_since(mark).is_empty(),
        "no request reached the registry: {:#?}",
        reg.requests_since(mark)
    );
}

#[test]
fn secrets_stay_out_of_debug_logs_and_errors() {
    const PASSWORD: &str = "s3cr3t-Pw-91zq";
    let issuer = TokenIssuer::builder()
        .user("bob", PASSWORD)
        .allow("bob", "team/app", &["pull", "push"])
        .start()
        .unwrap();
    let token_reg = Registry::builder().token_auth(&issuer).start().unwrap();
    let basic_reg = Registry::builder().user("bob", PASSWORD).start().unwrap();
    let work = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new().layers(&[2000]).seed(6).build();
    let src = layout_of(&work.path().join("src"), "v1", &image);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("bob:{PASSWORD}"));
    for reg in [&token_reg, &basic_reg] {
        let dst = format!("{}/team/app:v1", reg.addr());
        for password in [PASSWORD, "wrong-Pw-77xy"] {
            let run = ferry(&[
                "-vv",
                "cp",
                "--plain-http",
                "--to-username",
                "bob",
                "--to-password",
                password,
                &src,
                &dst,
            ]);
            if password == PASSWORD {
                assert_eq!(run.code, 0, "{}", run.stderr);
            } else {
                assert_eq!(run.code, 4, "{}", run.stderr);
            }
            assert!(
                run.stderr.contains("http"),
                "-vv logs requests: {}",
                run.stderr
            );
            for out in [&run.stdout, &run.stderr] {
                assert!(!out.contains(password), "the password leaked:\n{out}");
                assert!(!out.contains(&basic), "the basic credential leaked:\n{out}");
                // Registry tokens are JWTs: base64url of `{"` starts them.
                assert!(!out.contains("eyJ"), "a token leaked:\n{out}");
            }
        }
    }
}

/// The secret of [`credentials_in_urls_are_shown_nowhere`], and the userinfo carrying it.
const URL_SECRET: &str = "Hunter2-url-Secret";
const USERINFO: &str = "bob:Hunter2-url-Secret@";

/// Neither stdout nor stderr of `run` holds the secret or the userinfo.
fn shows_no_credentials(what: &str, run: &Run) {
    for out in [&run.stdout, &run.stderr] {
        assert!(
            !out.contains(URL_SECRET) && !out.contains("bob:"),
            "{what}: the credentials leaked (exit {}):\n{out}",
            run.code
        );
    }
}

/// Every input that takes a URL, given with `user:password@` or a secret query value, at
/// `-vv`: the IPFS gateway (flag and config file), registry references written as URLs, the
/// storage URL and the S3 endpoint of the config file, a token realm and the presigned blob
/// URLs a registry redirects to. Nothing ferry prints shows the password or the userinfo.
#[test]
fn credentials_in_urls_are_shown_nowhere() {
    let work = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new().layers(&[1500]).seed(9).build();
    let src = layout_of(&work.path().join("src"), "v1", &image);
    let dst = format!("oci:{}:v1", work.path().join("out").display());
    let dead = ferry_test_support::free_port();
    let config = |text: String| {
        let path = work.path().join("ferry.toml");
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };

    // The IPFS gateway, as a flag and from the config file: refused, named without them.
    for gateway in [
        format!("http://{USERINFO}127.0.0.1:{dead}"),
        format!("http://127.0.0.1:{dead}/?token={URL_SECRET}"),
        format!("http://{USERINFO}[127.0.0.1"),
    ] {
        let run = ferry(&["-vv", "cp", "--ipfs-gateway", &gateway, &src, &dst]);
        assert_eq!(run.code, 2, "{gateway}: {}", run.stderr);
        assert!(run.stderr.contains("IPFS gateway URL"), "{}", run.stderr);
        shows_no_credentials(&gateway, &run);
        let cfg = config(format!("[defaults]\nipfs_gateway = \"{gateway}\"\n"));
        let run = ferry(&["-vv", "cp", "--config", &cfg, &src, &dst]);
        assert_eq!(run.code, 2, "{gateway} in the config: {}", run.stderr);
        shows_no_credentials(&gateway, &run);
    }

    // Registry references written as URLs or with credentials, either side.
    let reg = Registry::start().unwrap();
    let r = reg.addr();
    for reference in [
        format!("http://{USERINFO}{r}/app:v1"),
        format!("{USERINFO}{r}/app:v1"),
        format!("https://{r}/app:v1?token={URL_SECRET}"),
    ] {
        for (from, to) in [
            (src.as_str(), reference.as_str()),
            (reference.as_str(), dst.as_str()),
        ] {
            let run = ferry(&["-vv", "cp", "--plain-http", from, to]);
            assert_eq!(run.code, 2, "{reference}: {}", run.stderr);
            shows_no_credentials(&reference, &run);
        }
    }

    // The config file: a storage URL with credentials, and a TOML error on a secret's line.
    let cfg = config(format!(
        "[registries.\"{r}\"]\nstorage = \"s3://{USERINFO}bucket/b\"\n"
    ));
    let run = ferry(&["-vv", "cp", "--config", &cfg, &src, &format!("{r}/app:v1")]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("s3://bucket/b"), "{}", run.stderr);
    shows_no_credentials("storage URL", &run);
    let cfg = config(format!(
        "[registries.\"{r}\"]\nstorage = \"s3://bucket/b\"\nsecret_access_key = \"{URL_SECRET}\n"
    ));
    let run = ferry(&["-vv", "cp", "--config", &cfg, &src, &format!("{r}/app:v1")]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("line 3"), "{}", run.stderr);
    shows_no_credentials("a TOML error", &run);

    // An S3 endpoint with credentials that cannot be reached: the distribution-storage
    // strategy declines with reasons (in the logs and the JSON report) that name the endpoint
    // without them, and the copy streams.
    let a_root = work.path().join("a");
    let a = Registry::builder().root(&a_root).start().unwrap();
    let run = ferry(&["cp", "--plain-http", &src, &format!("{}/x:v1", a.addr())]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let cfg = config(format!(
        "[defaults]\nplain_http = true\n\
         [registries.\"{}\"]\nstorage = \"file://{}\"\n\
         [registries.\"{r}\"]\nstorage = \"s3://nowhere/b\"\n\
         endpoint = \"http://{USERINFO}127.0.0.1:{dead}\"\nregion = \"us-east-1\"\n\
         access_key_id = \"k\"\nsecret_access_key = \"s\"\nallow_http = true\n\
         max_retries = 0\nconnect_timeout = \"1s\"\n",
        a.addr(),
        a_root.display()
    ));
    for format in ["text", "json"] {
        let run = ferry(&[
            "-vv",
            "cp",
            "--config",
            &cfg,
            "--format",
            format,
            &format!("{}/x:v1", a.addr()),
            &format!("{r}/y-{format}:v1"),
        ]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(
            run.stderr.contains("distribution-storage"),
            "-vv logs the mount attempts: {}",
            run.stderr
        );
        shows_no_credentials("S3 endpoint", &run);
    }

    // A token realm the registry names with credentials and a secret parameter.
    let issuer = TokenIssuer::builder()
        .user("carol", "carol-pw")
        .allow("carol", "team/app", &["pull", "push"])
        .start()
        .unwrap();
    let mut auth = issuer.registry_auth();
    auth.realm = auth.realm.replacen("://", &format!("://{USERINFO}"), 1)
        + &format!("?client_secret={URL_SECRET}");
    let token_reg = Registry::builder().token(auth).start().unwrap();
    let run = ferry(&[
        "-vv",
        "cp",
        "--plain-http",
        "--to-username",
        "carol",
        "--to-password",
        "carol-pw",
        &src,
        &format!("{}/team/app:v1", token_reg.addr()),
    ]);
    assert!(run.stderr.contains("token"), "{}", run.stderr);
    shows_no_credentials("token realm", &run);

    // Blob downloads a registry redirects to presigned S3 URLs (signature, credential).
    let seaweed = ferry_test_support::SeaweedFs::start().unwrap();
    let s3_reg = Registry::builder()
        .s3(seaweed.storage("presigned", "/r").unwrap())
        .redirect(true)
        .start()
        .unwrap();
    let run = ferry(&[
        "cp",
        "--plain-http",
        &src,
        &format!("{}/app:v1", s3_reg.addr()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = ferry(&[
        "-vv",
        "cp",
        "--plain-http",
        "--mount",
        "none",
        &format!("{}/app:v1", s3_reg.addr()),
        &format!("oci:{}:v1", work.path().join("pulled").display()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("X-Amz-Signature=REDACTED"),
        "the presigned URL is logged, redacted: {}",
        run.stderr
    );
    for out in [&run.stdout, &run.stderr] {
        assert!(
            !out.contains("X-Amz-Signature=0")
                && !out
                    .split("X-Amz-Signature=")
                    .skip(1)
                    .any(|rest| !rest.starts_with("REDACTED")),
            "a signature leaked: {out}"
        );
    }
}

#[test]
fn tokens_ask_for_the_fewest_scopes() {
    let issuer = TokenIssuer::builder()
        .user("admin", "adminpw")
        .allow("admin", "*", &["pull", "push"])
        .start()
        .unwrap();
    let reg = Registry::builder().token_auth(&issuer).start().unwrap();
    let r = reg.addr();
    let work = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new().layers(&[1500, 2500]).seed(7).build();
    let src = layout_of(&work.path().join("src"), "v1", &image);
    let login = [
        "--from-username",
        "admin",
        "--from-password",
        "adminpw",
        "--to-username",
        "admin",
        "--to-password",
        "adminpw",
    ];
    let mut args = vec!["cp", "--plain-http", "--to-username", "admin"];
    args.extend(["--to-password", "adminpw", &src]);
    let first = format!("{r}/team/src:v1");
    args.push(&first);
    assert_eq!(ferry(&args).code, 0);
    let allowed = |scopes: &[&str], seen: &[String]| {
        for s in seen {
            assert!(
                scopes.contains(&s.as_str()),
                "scope `{s}` is more than the copy needs (allowed: {scopes:?})"
            );
        }
    };
    let seen: Vec<String> = issuer
        .requests()
        .into_iter()
        .flat_map(|t| t.scopes)
        .collect();
    allowed(
        &[
            "repository:team/src:pull",
            "repository:team/src:pull,push",
            "repository:team/src:push,pull",
        ],
        &seen,
    );

    issuer.reset_counts();
    let mut args = vec!["cp", "--plain-http"];
    args.extend(login);
    let to = format!("{r}/team/dst:v1");
    args.extend([first.as_str(), to.as_str()]);
    let run = ferry(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let seen: Vec<String> = issuer
        .requests()
        .into_iter()
        .flat_map(|t| t.scopes)
        .collect();
    assert!(!seen.is_empty());
    allowed(
        &[
            "repository:team/src:pull",
            "repository:team/dst:pull",
            "repository:team/dst:pull,push",
            "repository:team/dst:push,pull",
        ],
        &seen,
    );
}

#[test]
fn huge_error_and_token_bodies_are_cut_off() {
    let work = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new().layers(&[1000]).seed(8).build();
    let src = layout_of(&work.path().join("src"), "v1", &image);

    // An error body of 32 MiB: the message quotes a bounded part of it.
    let reg = Registry::start().unwrap();
    let plan = FaultPlan::none().always(
        "GET",
        "/manifests/",
        Fault::HugeBody {
            status: 400,
            bytes: 32 << 20,
        },
    );
    let proxy = FaultProxy::start(reg.addr(), plan).unwrap();
    let run = ferry(&[
        "cp",
        "--plain-http",
        &format!("{}/any/app:v1", proxy.addr()),
        &format!("oci:{}:v1", work.path().join("out").display()),
    ]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("400"), "{}", run.stderr);
    assert!(!run.stderr.contains("xxxxxxxx"), "{}", run.stderr);
    assert!(
        run.stderr.len() < 4096,
        "{} bytes of error",
        run.stderr.len()
    );

    // A token answer of 8 MiB: refused as too large, not parsed.
    let issuer = TokenIssuer::builder()
        .user("bob", "bobpw")
        .allow("bob", "team/app", &["pull", "push"])
        .start()
        .unwrap();
    let plan = FaultPlan::none().always(
        "*",
        "/token",
        Fault::HugeBody {
            status: 200,
            bytes: 8 << 20,
        },
    );
    let token_proxy = FaultProxy::start(&issuer.addr(), plan).unwrap();
    let auth = TokenAuth {
        realm: format!("{}/token", token_proxy.url()),
        ..issuer.registry_auth()
    };
    let reg = Registry::builder().token(auth).start().unwrap();
    let run = ferry(&[
        "cp",
        "--plain-http",
        "--to-username",
        "bob",
        "--to-password",
        "bobpw",
        &src,
        &format!("{}/team/app:v1", reg.addr()),
    ]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(run.stderr.contains("over the limit"), "{}", run.stderr);
    assert!(
        run.stderr.len() < 4096,
        "{} bytes of error",
        run.stderr.len()
    );
    assert!(!token_proxy.injected().is_empty());
}

#[test]
fn referrers_that_point_back_at_each_other_do_not_loop() {
    let (a, b) = (Registry::start().unwrap(), Registry::start().unwrap());
    let work = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new().layers(&[1000]).seed(9).build();
    let sig = ArtifactBuilder::signature(image.descriptor(), b"sig").build();
    let layout = work.path().join("in");
    write_oci_layout(&layout, &[(Some("v1"), &image), (None, &sig)]).unwrap();
    let run = ferry(&[
        "cp",
        "-r",
        "--plain-http",
        &format!("oci:{}:v1", layout.display()),
        &format!("{}/app:v1", a.addr()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // A lying tag-schema index: the image is listed as a referrer of its own signature.
    let mut entry = ferry_test_support::fixtures::descriptor_json(image.descriptor());
    entry["artifactType"] = serde_json::json!("application/vnd.example.loop");
    let lie = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": ferry_core::model::OCI_INDEX,
        "manifests": [entry],
    });
    let lie = Blob::new(
        ferry_core::model::OCI_INDEX,
        serde_json::to_vec(&lie).unwrap(),
    );
    let tag = format!("sha256-{}", sig.manifest.digest().digest());
    let put = rt()
        .block_on(http(
            "PUT",
            &format!("{}/v2/app/manifests/{tag}", a.url()),
            &[("content-type", ferry_core::model::OCI_INDEX)],
            lie.bytes.clone(),
        ))
        .unwrap();
    assert_eq!(put.status, 201);

    let run = ferry(&[
        "cp",
        "-r",
        "--plain-http",
        &format!("{}/app:v1", a.addr()),
        &format!("{}/app:v1", b.addr()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for digest in [image.manifest.digest(), sig.manifest.digest()] {
        skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/app@{digest}", b.addr()),
        ])
        .unwrap();
    }
}
