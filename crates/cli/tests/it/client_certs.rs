//! Registries that require a client certificate (distribution with `http.tls.clientcas`),
//! with certificates made by `openssl`: none given, one from a `certs.d` root (containers/image's
//! layout, found by host and port), from `--cert-dir`, from ferry.toml, one of another CA, and a
//! key that is not the certificate's. And IPv6 literals in references, config keys and
//! `certs.d` directory names, on `::1`.

use std::path::{Path, PathBuf};

use ferry_test_support::fixtures::write_oci_layout;
use ferry_test_support::{ImageBuilder, KeyKind, OpensslCa, Registry, TestCa};

use crate::support::*;

struct Setup {
    registry: Registry,
    clients: OpensslCa,
    /// The server's CA, as `ca.crt` in every certificate directory and as a file.
    server_ca: PathBuf,
    src: String,
    digest: String,
    work: tempfile::TempDir,
}

fn setup(ipv6: bool) -> Setup {
    let work = tempfile::tempdir().unwrap();
    let clients = OpensslCa::new(&work.path().join("ca"), "clients").unwrap();
    let server = TestCa::new().unwrap();
    let server_ca = work.path().join("server-ca.pem");
    server.write_cert(&server_ca).unwrap();
    let registry = Registry::builder()
        .tls_issued_for(&server, &["127.0.0.1", "::1", "localhost"])
        .unwrap()
        .client_ca(clients.cert_path())
        .ipv6(ipv6)
        .start()
        .unwrap();
    let image = ImageBuilder::new().layers(&[2000, 40_000]).seed(77).build();
    let layout = work.path().join("src");
    write_oci_layout(&layout, &[(Some("v1"), &image)]).unwrap();
    Setup {
        registry,
        clients,
        server_ca,
        src: format!("oci:{}:v1", layout.display()),
        digest: image.manifest.digest().to_string(),
        work,
    }
}

impl Setup {
    /// A certificate directory for the registry under `root`, named as its host and port, with
    /// the server's CA as `ca.crt` and a client certificate of `kind`.
    fn certs_d(&self, root: &Path, kind: KeyKind) -> PathBuf {
        let dir = root.join(self.registry.addr());
        self.clients.issue_client(&dir, kind).unwrap();
        std::fs::copy(&self.server_ca, dir.join("ca.crt")).unwrap();
        dir
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        ferry_with(args, env, None)
    }
}

/// cp to the registry and sync within it, with `args` and `env`; checks what arrived.
fn cp_and_sync(s: &Setup, args: &[&str], env: &[(&str, &str)]) {
    let r = s.registry.addr();
    let mut cp = vec!["cp", &s.src];
    let dst = format!("{r}/app:v1");
    cp.push(&dst);
    cp.extend_from_slice(args);
    let run = s.run(&cp, env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (from, to) = (format!("{r}/app"), format!("{r}/mirror/app"));
    let mut sync = vec!["sync", &from, &to];
    sync.extend_from_slice(args);
    let run = s.run(&sync, env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = s.work.path().join("out");
    let back = format!("oci:{}:v1", out.display());
    let from_mirror = format!("{to}:v1");
    let mut pull = vec!["cp", &from_mirror, &back];
    pull.extend_from_slice(args);
    let run = s.run(&pull, env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        index_json(&out)["manifests"][0]["digest"],
        s.digest.as_str()
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn without_a_certificate_the_registry_is_said_to_ask_for_one() {
    let s = setup(false);
    let r = s.registry.addr();
    let ca = s.server_ca.display().to_string();
    let run = s.run(
        &["cp", "--ca-cert", &ca, &s.src, &format!("{r}/app:v1")],
        &[],
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert_eq!(
        error_line(&run),
        format!(
            "error: {r} asks for a client certificate and none was given for it; give one with \
             `--cert-dir DIR` (`client.cert` and `client.key`), in /etc/containers/certs.d/{r}/, \
             or with `client_cert` and `client_key` in its table in ferry.toml"
        )
    );
}

#[test]
fn a_certificate_from_a_certs_d_root_serves_cp_and_sync() {
    let s = setup(false);
    let root = s.work.path().join("certs.d");
    s.certs_d(&root, KeyKind::RsaPkcs1);
    // The first root holding the host's directory wins; the roots are FERRY_CERTS_D's.
    let roots = format!(
        "{}:{}",
        s.work.path().join("none").display(),
        root.display()
    );
    cp_and_sync(&s, &[], &[("FERRY_CERTS_D", &roots)]);
    // XDG_CONFIG_HOME's containers/certs.d is the first of the default roots.
    let config = s.work.path().join("config");
    std::fs::create_dir_all(config.join("containers")).unwrap();
    std::fs::rename(&root, config.join("containers/certs.d")).unwrap();
    cp_and_sync(
        &s,
        &[],
        &[
            ("XDG_CONFIG_HOME", &config.display().to_string()),
            ("FERRY_CERTS_D", ""),
        ],
    );
}

#[test]
fn cert_dir_and_the_registry_table_give_the_certificate_too() {
    let s = setup(false);
    let dir = s.certs_d(&s.work.path().join("flat"), KeyKind::Ed25519);
    let dir_arg = dir.display().to_string();
    cp_and_sync(&s, &["--cert-dir", &dir_arg], &[]);

    let (cert, key) = s
        .clients
        .issue_client(&s.work.path().join("table"), KeyKind::EcdsaPkcs8)
        .unwrap();
    let config = s.work.path().join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            "[registries.\"{}\"]\nca_cert = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\n",
            s.registry.addr(),
            s.server_ca.display(),
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let config_arg = config.display().to_string();
    cp_and_sync(&s, &["--config", &config_arg], &[]);
}

#[test]
fn a_certificate_of_another_ca_and_a_key_of_another_certificate_are_refused_clearly() {
    let s = setup(false);
    let r = s.registry.addr();
    let other = OpensslCa::new(&s.work.path().join("other-ca"), "other").unwrap();
    let dir = s.work.path().join("other");
    other.issue_client(&dir, KeyKind::EcdsaSec1).unwrap();
    std::fs::copy(&s.server_ca, dir.join("ca.crt")).unwrap();
    let run = s.run(
        &[
            "cp",
            "--cert-dir",
            &dir.display().to_string(),
            &s.src,
            &format!("{r}/app:v1"),
        ],
        &[],
    );
    assert_eq!(run.code, 4, "{}", run.stderr);
    let line = error_line(&run);
    assert!(
        line.starts_with(&format!(
            "error: {r} refused the client certificate `{}`",
            dir.join("client.cert").display()
        )) && line.contains("issued by a CA the registry trusts"),
        "{line}"
    );

    // A key that is not the certificate's: refused before anything is sent.
    let a = s.work.path().join("a");
    s.clients.issue_client(&a, KeyKind::EcdsaSec1).unwrap();
    let b = s.work.path().join("b");
    s.clients.issue_client(&b, KeyKind::EcdsaSec1).unwrap();
    std::fs::copy(b.join("client.key"), a.join("client.key")).unwrap();
    let before = s.registry.requests().len();
    let root = s.work.path().join("certs.d");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::rename(&a, root.join(r)).unwrap();
    let run = s.run(
        &["cp", &s.src, &format!("{r}/app:v1")],
        &[("FERRY_CERTS_D", &root.display().to_string())],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        error_line(&run).contains(&format!(
            "is not the key of the certificate `{}`",
            root.join(r).join("client.cert").display()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(s.registry.requests().len(), before, "nothing was sent");
}

/// IPv6 literals: `[::1]:PORT/repo:tag` in cp and sync, a `[registries."[::1]:PORT"]` table
/// and a `certs.d/[::1]:PORT/` directory.
#[test]
fn ipv6_literals_in_references_config_keys_and_certs_d_names() {
    if !Registry::ipv6_available() {
        eprintln!("note: this machine has no IPv6 loopback (::1); IPv6 test skipped");
        return;
    }
    let s = setup(true);
    let r = s.registry.addr().to_string();
    assert!(r.starts_with("[::1]:"), "{r}");
    let root = s.work.path().join("certs.d");
    let dir = s.certs_d(&root, KeyKind::EcdsaSec1);
    assert_eq!(dir.file_name().unwrap().to_string_lossy(), r);
    cp_and_sync(&s, &[], &[("FERRY_CERTS_D", &root.display().to_string())]);

    // A plain registry on ::1, its transport set by its table.
    let plain = Registry::builder().ipv6(true).start().unwrap();
    let config = s.work.path().join("ferry.toml");
    std::fs::write(
        &config,
        format!("[registries.\"{}\"]\nplain_http = true\n", plain.addr()),
    )
    .unwrap();
    let c = config.display().to_string();
    let dst = format!("{}/team/app:v1", plain.addr());
    let run = ferry(&["cp", "--config", &c, &s.src, &dst]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = ferry(&[
        "sync",
        "--config",
        &c,
        &format!("{}/team/", plain.addr()),
        &format!("{}/copy/", plain.addr()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = s.work.path().join("v6out");
    let run = ferry(&[
        "cp",
        "--config",
        &c,
        &format!("{}/copy/app:v1", plain.addr()),
        &format!("oci:{}:v1", out.display()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        index_json(&out)["manifests"][0]["digest"],
        s.digest.as_str()
    );
}
