//! Client certificates against a real registry that requires them (distribution with
//! `http.tls.clientcas`), made by `openssl`: no certificate, one from a `certs.d` tree or a
//! directory, one of another CA, every key kind, and a key that is not the certificate's.

use std::path::Path;

use crate::assert_kind;
use ferry_core::{Error, TransportErrorKind};
use ferry_http::{Body, CertLookup, HttpClientBuilder, ProxyPolicy, TlsPolicy, transport_error};
use ferry_test_support::{KeyKind, OpensslCa, Registry, TestCa};

struct Setup {
    registry: Registry,
    clients: OpensslCa,
    server_ca: String,
    work: tempfile::TempDir,
}

fn setup() -> Setup {
    let work = tempfile::tempdir().unwrap();
    let clients = OpensslCa::new(&work.path().join("ca"), "clients").unwrap();
    let server = TestCa::new().unwrap();
    let registry = Registry::builder()
        .tls_issued_by(&server)
        .unwrap()
        .client_ca(clients.cert_path())
        .start()
        .unwrap();
    Setup {
        registry,
        clients,
        server_ca: server.cert_pem(),
        work,
    }
}

impl Setup {
    fn tls(&self) -> TlsPolicy {
        TlsPolicy::new()
            .with_ca_pem(self.server_ca.as_bytes(), "server CA")
            .unwrap()
            .with_cert_lookup(CertLookup::Off)
    }

    async fn get(&self, tls: TlsPolicy) -> Result<u16, Error> {
        let client = HttpClientBuilder::new()
            .tls(tls)
            .proxy(ProxyPolicy::none())
            .build()?;
        let url = format!("https://{}/v2/", self.registry.addr());
        let request = http::Request::get(&url).body(Body::empty()).unwrap();
        client
            .send(request)
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| transport_error(self.registry.addr(), "GET /v2/", e))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_certificate_the_registry_is_said_to_ask_for_one() {
    let s = setup();
    let e = s.get(s.tls()).await.unwrap_err();
    assert_kind(&e, TransportErrorKind::ClientCertRequired);
    assert_eq!(
        e.to_string(),
        format!(
            "{} asks for a client certificate and none was given for it",
            s.registry.addr()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certs_d_tree_gives_each_host_its_certificate_of_any_key_kind() {
    let s = setup();
    let root = s.work.path().join("certs.d");
    for kind in [
        KeyKind::RsaPkcs1,
        KeyKind::RsaPkcs8,
        KeyKind::EcdsaSec1,
        KeyKind::EcdsaPkcs8,
        KeyKind::Ed25519,
    ] {
        let host_dir = root.join(s.registry.addr());
        let _ = std::fs::remove_dir_all(&host_dir);
        s.clients.issue_client(&host_dir, kind).unwrap();
        // The first root that has the host's directory wins; an empty root before it is passed.
        let lookup = CertLookup::Roots(vec![s.work.path().join("empty"), root.clone()]);
        let status = s.get(s.tls().with_cert_lookup(lookup)).await;
        assert_eq!(status.unwrap(), 200, "{kind:?}");
    }
    // Another host's directory is not used.
    let elsewhere = s.work.path().join("elsewhere");
    s.clients
        .issue_client(&elsewhere.join("127.0.0.1:1"), KeyKind::EcdsaSec1)
        .unwrap();
    let e = s
        .get(s.tls().with_cert_lookup(CertLookup::Roots(vec![elsewhere])))
        .await
        .unwrap_err();
    assert_kind(&e, TransportErrorKind::ClientCertRequired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_or_files_give_the_certificate_too() {
    let s = setup();
    let dir = s.work.path().join("flat");
    let (cert, key) = s.clients.issue_client(&dir, KeyKind::EcdsaPkcs8).unwrap();
    assert_eq!(s.get(s.tls().with_cert_dir(&dir)).await.unwrap(), 200);
    assert_eq!(
        s.get(s.tls().with_client_cert(&cert, &key).unwrap())
            .await
            .unwrap(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_of_another_ca_is_refused_clearly() {
    let s = setup();
    let other = OpensslCa::new(&s.work.path().join("other-ca"), "other").unwrap();
    let (cert, key) = other
        .issue_client(&s.work.path().join("other"), KeyKind::EcdsaSec1)
        .unwrap();
    let e = s
        .get(s.tls().with_client_cert(&cert, &key).unwrap())
        .await
        .unwrap_err();
    assert_kind(&e, TransportErrorKind::ClientCertRejected);
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "{} refused the client certificate `{}`",
            s.registry.addr(),
            cert.display()
        )),
        "{text}"
    );
}

fn mismatched(work: &Path, ca: &OpensslCa) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, _) = ca
        .issue_client(&work.join("a"), KeyKind::EcdsaSec1)
        .unwrap();
    let (_, key) = ca
        .issue_client(&work.join("b"), KeyKind::EcdsaSec1)
        .unwrap();
    (cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_is_not_the_certificates_is_refused_before_connecting() {
    let s = setup();
    let (cert, key) = mismatched(s.work.path(), &s.clients);
    let e = TlsPolicy::new().with_client_cert(&cert, &key).unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}");
    assert!(
        e.to_string().contains(&format!(
            "is not the key of the certificate `{}`",
            cert.display()
        )),
        "{e}"
    );

    // In a certs.d directory: refused when the host's material is read, before connecting.
    let root = s.work.path().join("certs.d");
    let host_dir = root.join(s.registry.addr());
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::copy(&cert, host_dir.join("client.cert")).unwrap();
    std::fs::copy(&key, host_dir.join("client.key")).unwrap();
    let before = s.registry.requests().len();
    let tls = s.tls().with_cert_lookup(CertLookup::Roots(vec![root]));
    let (host, port) = s.registry.addr().split_once(':').unwrap();
    let e = tls
        .check_host(host, port.parse().unwrap(), false)
        .unwrap_err();
    assert!(
        e.to_string().contains("is not the key of the certificate"),
        "{e}"
    );
    let e = s.get(tls).await.unwrap_err();
    assert!(
        e.to_string().contains("is not the key of the certificate"),
        "{e}"
    );
    assert_eq!(s.registry.requests().len(), before);

    // A certificate without its key, as containers/image refuses it.
    std::fs::remove_file(host_dir.join("client.key")).unwrap();
    let e = s
        .get(
            s.tls()
                .with_cert_lookup(CertLookup::Roots(vec![s.work.path().join("certs.d")])),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("its key `client.key` is missing"),
        "{e}"
    );
}
