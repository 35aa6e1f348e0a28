//! What `ferry cp` says when the network fails: one sentence naming the host and the cause,
//! the chain of causes once at `-v`; and how it meets registries that speak plain HTTP or
//! present a certificate of a private CA.

use std::net::{IpAddr, SocketAddr};

use ferry_test_support::fixtures::write_oci_layout;
use ferry_test_support::{
    Fault, FaultPlan, FaultProxy, ImageBuilder, Registry, TestCa, free_port, skopeo,
};

use crate::support::*;

fn layout_of(dir: &std::path::Path, tag: &str, layers: &[usize], seed: u64) -> (String, String) {
    let image = ImageBuilder::new().layers(layers).seed(seed).build();
    write_oci_layout(dir, &[(Some(tag), &image)]).unwrap();
    (
        format!("oci:{}:{tag}", dir.display()),
        image.manifest.digest().to_string(),
    )
}

/// Fast retries: the failures below are permanent, so the runs give up in about a second.
const FAST_RETRIES: &[(&str, &str)] = &[
    ("FERRY_RETRY_BASE_DELAY_MS", "10"),
    ("FERRY_RETRY_MAX_DELAY_MS", "300"),
];

#[test]
fn a_refused_connection_reads_as_one_sentence_with_the_chain_once_at_v() {
    let work = tempfile::tempdir().unwrap();
    let (src, _) = layout_of(&work.path().join("src"), "v1", &[1000], 1);
    let port = free_port();
    let dst = format!("127.0.0.1:{port}/team/app:v1");

    let run = ferry(&["cp", &src, &dst]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        error_line(&run),
        format!("error: cannot connect to 127.0.0.1:{port}: connection refused"),
        "{}",
        run.stderr
    );
    // The cause is said once, not once per layer of the chain.
    assert_eq!(
        run.stderr.matches("onnection refused").count(),
        1,
        "{}",
        run.stderr
    );

    let run = ferry(&["cp", "-v", &src, &dst]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let causes: Vec<&str> = run
        .stderr
        .lines()
        .filter_map(|l| l.trim().strip_prefix("caused by: "))
        .collect();
    assert!(
        causes.iter().any(|c| c.contains("os error 111")),
        "the chain is shown at -v: {}",
        run.stderr
    );
    let mut unique = causes.clone();
    unique.dedup();
    assert_eq!(unique, causes, "each cause once: {}", run.stderr);
}

#[test]
fn a_host_that_does_not_resolve_reads_as_one_sentence() {
    let work = tempfile::tempdir().unwrap();
    let (src, _) = layout_of(&work.path().join("src"), "v1", &[1000], 2);
    let run = ferry(&["cp", &src, "registry.invalid/team/app:v1"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let line = error_line(&run);
    assert!(
        line.starts_with("error: cannot connect to registry.invalid: the name does not resolve"),
        "{}",
        run.stderr
    );
    assert!(!line.contains("client error"), "{line}");
}

#[test]
fn an_untrusted_certificate_names_the_fix_and_the_ca_flag_or_ssl_cert_file_trusts_it() {
    let ca = TestCa::new().unwrap();
    let reg = Registry::builder()
        .tls_issued_by(&ca)
        .unwrap()
        .start()
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let ca_file = work.path().join("ca.pem");
    ca.write_cert(&ca_file).unwrap();
    let ca_path = ca_file.display().to_string();
    let (src, digest) = layout_of(&work.path().join("src"), "v1", &[3000, 5000], 3);
    let r = reg.addr();

    let run = ferry(&["cp", &src, &format!("{r}/app:v1")]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let line = error_line(&run);
    assert!(
        line.starts_with(&format!(
            "error: cannot connect to {r}: its TLS certificate is not trusted"
        )) && line.contains("--ca-cert"),
        "{}",
        run.stderr
    );

    // The CA given by flag: verified, not skipped.
    let run = ferry(&["cp", "--ca-cert", &ca_path, &src, &format!("{r}/app:v1")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The CA given as the trusted roots, as OpenSSL tools take it.
    let run = ferry_with(
        &["cp", &format!("{r}/app:v1"), &format!("{r}/copy:v1")],
        &[("SSL_CERT_FILE", &ca_path)],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Another CA's certificate does not make it trusted.
    let other = work.path().join("other.pem");
    TestCa::new().unwrap().write_cert(&other).unwrap();
    let run = ferry(&[
        "cp",
        "--to-ca-cert",
        &other.display().to_string(),
        &src,
        &format!("{r}/again:v1"),
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);

    // skopeo trusts the `*.crt` files of a directory.
    let cert_dir = work.path().join("certs");
    std::fs::create_dir(&cert_dir).unwrap();
    ca.write_cert(&cert_dir.join("ca.crt")).unwrap();
    let out = skopeo(&[
        "inspect",
        "--raw",
        "--cert-dir",
        &cert_dir.display().to_string(),
        &format!("docker://{r}/copy:v1"),
    ])
    .map(|o| ferry_core::sha256(&o.stdout).to_string());
    assert_eq!(out.unwrap(), digest);

    // A CA file that is not one is refused by name before anything is sent.
    let bad = work.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let run = ferry(&[
        "cp",
        "--ca-cert",
        &bad.display().to_string(),
        &src,
        &format!("{r}/x:v1"),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(error_line(&run).contains("bad.pem"), "{}", run.stderr);
}

/// A certificate made the way most guides make one for a registry of one's own, `openssl req
/// -x509` (self-signed, and marked as a CA), with `subject`'s names; `(cert.pem, key.pem)`.
fn openssl_self_signed(dir: &std::path::Path, alt_names: &str) -> (std::path::PathBuf, String) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=registry"])
        .arg("-addext")
        .arg(format!("subjectAltName={alt_names}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, std::fs::read_to_string(key).unwrap())
}

/// A registry serving a self-signed certificate that `openssl req -x509` made (marked as a
/// CA, which webpki alone refuses as a server's certificate) is trusted when that certificate
/// is given with `--ca-cert`, as docker and skopeo trust it, and only for the names it lists.
#[test]
fn a_self_signed_openssl_certificate_given_with_ca_cert_is_trusted_for_its_names() {
    let work = tempfile::tempdir().unwrap();
    let (src, digest) = layout_of(&work.path().join("src"), "v1", &[3000], 7);

    let mine = work.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    let (cert, key) = openssl_self_signed(&mine, "IP:127.0.0.1,DNS:localhost");
    let cert_pem = std::fs::read_to_string(&cert).unwrap();
    let reg = Registry::builder()
        .tls_certificate(ferry_test_support::tls::Issued {
            cert_pem,
            key_pem: key,
        })
        .start()
        .unwrap();
    let r = reg.addr();
    let ca = cert.display().to_string();

    // Not trusted without it.
    let run = ferry(&["cp", &src, &format!("{r}/app:v1")]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(error_line(&run).contains("not trusted"), "{}", run.stderr);
    // Trusted with it, both ways.
    let run = ferry(&["cp", "--ca-cert", &ca, &src, &format!("{r}/app:v1")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let back = work.path().join("back");
    let run = ferry(&[
        "cp",
        "--ca-cert",
        &ca,
        &format!("{r}/app:v1"),
        &format!("oci:{}:v1", back.display()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let cert_dir = work.path().join("certs");
    std::fs::create_dir(&cert_dir).unwrap();
    std::fs::copy(&cert, cert_dir.join("ca.crt")).unwrap();
    let out = skopeo(&[
        "inspect",
        "--raw",
        "--cert-dir",
        &cert_dir.display().to_string(),
        &format!("docker://{r}/app:v1"),
    ])
    .map(|o| ferry_core::sha256(&o.stdout).to_string());
    assert_eq!(out.unwrap(), digest);

    // The same kind of certificate for other names is not taken for this registry.
    let other = work.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let (cert, key) = openssl_self_signed(&other, "DNS:registry.example");
    let reg = Registry::builder()
        .tls_certificate(ferry_test_support::tls::Issued {
            cert_pem: std::fs::read_to_string(&cert).unwrap(),
            key_pem: key,
        })
        .start()
        .unwrap();
    let run = ferry(&[
        "cp",
        "--ca-cert",
        &cert.display().to_string(),
        &src,
        &format!("{}/app:v1", reg.addr()),
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(error_line(&run).contains("not trusted"), "{}", run.stderr);
}

#[test]
fn a_plain_http_registry_on_loopback_is_spoken_to_in_plain_http_and_says_so_at_v() {
    let reg = Registry::start().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (src, digest) = layout_of(&work.path().join("src"), "v1", &[3000], 4);
    let port = reg.addr().rsplit(':').next().unwrap().to_string();
    for (host, repo) in [("127.0.0.1", "one"), ("localhost", "two")] {
        let run = ferry(&["cp", "-v", &src, &format!("{host}:{port}/{repo}/app:v1")]);
        assert_eq!(run.code, 0, "{host}: {}", run.stderr);
        assert_eq!(
            run.stderr
                .matches("answered the TLS handshake in plain HTTP")
                .count(),
            1,
            "{host}: {}",
            run.stderr
        );
        let out = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/{repo}/app:v1", reg.addr()),
        ])
        .unwrap();
        assert_eq!(ferry_core::sha256(&out.stdout).to_string(), digest);
    }
    // Without -v, nothing is said.
    let run = ferry(&["cp", &src, &format!("127.0.0.1:{port}/three/app:v1")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("plain HTTP"), "{}", run.stderr);
}

/// An address of this machine that is not loopback: the one it would reach the network from.
fn non_loopback_ip() -> IpAddr {
    // Connecting a UDP socket sends nothing; it only picks the outgoing interface.
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    for target in ["192.0.2.1:9", "10.255.255.255:9", "8.8.8.8:53"] {
        if socket.connect(target).is_ok()
            && let Ok(addr) = socket.local_addr()
            && !addr.ip().is_loopback()
            && !addr.ip().is_unspecified()
        {
            return addr.ip();
        }
    }
    panic!("this test needs a network interface besides loopback");
}

/// Forwards every connection to `addr` on `upstream`, byte for byte, on a thread of its own.
fn forward(listener: std::net::TcpListener, upstream: String) {
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                continue;
            };
            let (mut c1, mut s1) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut c2, mut s2) = (client, server);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c1, &mut s1);
                let _ = s1.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
}

#[test]
fn a_plain_http_registry_elsewhere_is_refused_with_the_flag_to_pass() {
    let reg = Registry::start().unwrap();
    let ip = non_loopback_ip();
    let listener = std::net::TcpListener::bind(SocketAddr::new(ip, 0)).unwrap();
    let host = listener.local_addr().unwrap().to_string();
    forward(listener, reg.addr().to_string());
    let work = tempfile::tempdir().unwrap();
    let (src, _) = layout_of(&work.path().join("src"), "v1", &[1000], 5);

    let run = ferry(&["cp", &src, &format!("{host}/team/app:v1")]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        error_line(&run),
        format!(
            "error: `{host}` answered in plain HTTP; pass `--plain-http` (or \
             `--to-plain-http`/`--from-plain-http`) if that is intended"
        ),
        "{}",
        run.stderr
    );
    // And with the flag it is spoken to.
    let run = ferry(&[
        "cp",
        "--to-plain-http",
        &src,
        &format!("{host}/team/app:v1"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn a_connection_reset_mid_body_names_the_host_and_the_blob() {
    let reg = Registry::start().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (src, _) = layout_of(&work.path().join("src"), "v1", &[400_000], 6);
    let run = ferry(&[
        "cp",
        "--plain-http",
        &src,
        &format!("{}/src/app:v1", reg.addr()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let proxy = FaultProxy::start(
        reg.addr(),
        FaultPlan::none().always("GET", "/blobs/sha256:", Fault::ResetMidBody),
    )
    .unwrap();
    let p = proxy.addr();
    let out = work.path().join("out");
    // Two tries: each resumed body breaks again (halfway through what is left), and the
    // second break is the error.
    let run = ferry_with(
        &[
            "cp",
            "--plain-http",
            "--retries",
            "1",
            &format!("{p}/src/app:v1"),
            &format!("oci:{}:v1", out.display()),
        ],
        FAST_RETRIES,
        None,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let line = error_line(&run);
    assert!(
        line.starts_with(&format!(
            "error: the connection to {p} broke while reading blob `sha256:"
        )),
        "{}",
        run.stderr
    );
    assert!(!line.contains("client error"), "{line}");
}

#[test]
fn a_stalled_body_times_out_naming_the_host_and_the_blob() {
    let reg = Registry::start().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (src, _) = layout_of(&work.path().join("src"), "v1", &[200_000], 7);
    let run = ferry(&[
        "cp",
        "--plain-http",
        &src,
        &format!("{}/src/app:v1", reg.addr()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let proxy = FaultProxy::start(
        reg.addr(),
        FaultPlan::none().always(
            "GET",
            "/blobs/sha256:",
            Fault::SlowBody {
                chunk: 1024,
                pause: std::time::Duration::from_secs(5),
            },
        ),
    )
    .unwrap();
    let p = proxy.addr();
    let out = work.path().join("out");
    let mut env = FAST_RETRIES.to_vec();
    env.push(("FERRY_IDLE_TIMEOUT_MS", "300"));
    let run = ferry_with(
        &[
            "cp",
            "--plain-http",
            &format!("{p}/src/app:v1"),
            &format!("oci:{}:v1", out.display()),
        ],
        &env,
        None,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let line = error_line(&run);
    assert!(
        line.starts_with(&format!(
            "error: {p} sent no data for 300 ms while reading blob `sha256:"
        )),
        "{}",
        run.stderr
    );
}
