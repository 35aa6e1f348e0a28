//! A certificate authority for tests and benchmarks: servers present certificates it issued,
//! and clients are told to trust its certificate (`--ca-cert`, skopeo's `--cert-dir`), as a
//! company CA is trusted.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::error::{Error, Result};

/// A CA with its key, in memory.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// A certificate and its key, PEM-encoded.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// The private key.
    pub key_pem: String,
}

fn setup(what: &str, e: rcgen::Error) -> Error {
    Error::Setup(format!("{what}: {e}"))
}

impl TestCa {
    /// A new CA (`CN=ferry test CA`, ECDSA P-256).
    pub fn new() -> Result<Self> {
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| setup("CA parameters", e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "ferry test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().map_err(|e| setup("generate the CA key", e))?;
        let issuer = CertifiedIssuer::self_signed(params, key)
            .map_err(|e| setup("self-sign the CA certificate", e))?;
        Ok(Self { issuer })
    }

    /// The CA certificate in PEM: what clients are told to trust.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes the CA certificate to `path`.
    pub fn write_cert(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.cert_pem())
            .map_err(|e| Error::io(format!("write `{}`", path.display()), e))
    }

    /// A server certificate for `names` (host names or IP addresses), signed by this CA.
    pub fn issue(&self, names: &[&str]) -> Result<Issued> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params =
            CertificateParams::new(names.clone()).map_err(|e| setup("server parameters", e))?;
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        let key = KeyPair::generate().map_err(|e| setup("generate a server key", e))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| setup("sign a server certificate", e))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The kinds of private key [`OpensslCa::issue_client`] makes, in the PEM forms users have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA 2048 as PKCS#1 (`RSA PRIVATE KEY`).
    RsaPkcs1,
    /// RSA 2048 as PKCS#8 (`PRIVATE KEY`).
    RsaPkcs8,
    /// ECDSA P-256 as SEC1 (`EC PRIVATE KEY`).
    EcdsaSec1,
    /// ECDSA P-256 as PKCS#8.
    EcdsaPkcs8,
    /// Ed25519 as PKCS#8.
    Ed25519,
}

/// A CA made with the `openssl` command in a directory of its own, as an operator makes one:
/// it issues client certificates (for registries with `http.tls.clientcas`).
#[derive(Debug)]
pub struct OpensslCa {
    dir: std::path::PathBuf,
    name: String,
    serial: std::sync::atomic::AtomicU64,
}

impl OpensslCa {
    /// A new self-signed CA (`CN=NAME`, ECDSA P-256) whose files are kept in `dir`
    /// (`NAME.crt`, `NAME.key`).
    pub fn new(dir: &Path, name: &str) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("create `{}`", dir.display()), e))?;
        let ca = Self {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            serial: std::sync::atomic::AtomicU64::new(1),
        };
        let key = ca.path("key");
        let cert = ca.path("crt");
        crate::util::run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &cert,
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        )?;
        Ok(ca)
    }

    fn path(&self, ext: &str) -> String {
        self.dir
            .join(format!("{}.{ext}", self.name))
            .display()
            .to_string()
    }

    /// The CA certificate file (PEM).
    pub fn cert_path(&self) -> std::path::PathBuf {
        self.path("crt").into()
    }

    /// A client certificate for `CN=client` with a key of `kind`, signed by this CA, written as
    /// `DIR/client.cert` and `DIR/client.key` (`dir` is created); returns their paths.
    pub fn issue_client(
        &self,
        dir: &Path,
        kind: KeyKind,
    ) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("create `{}`", dir.display()), e))?;
        let key = dir.join("client.key");
        let cert = dir.join("client.cert");
        let csr = dir.join("client.csr");
        let ext = dir.join("client.ext");
        let (k, c, r, x) = (
            key.display().to_string(),
            cert.display().to_string(),
            csr.display().to_string(),
            ext.display().to_string(),
        );
        let run = crate::util::run;
        match kind {
            KeyKind::RsaPkcs1 => run("openssl", &["genrsa", "-traditional", "-out", &k, "2048"])?,
            KeyKind::RsaPkcs8 => run(
                "openssl",
                &[
                    "genpkey",
                    "-algorithm",
                    "rsa",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                    "-out",
                    &k,
                ],
            )?,
            KeyKind::EcdsaSec1 => run(
                "openssl",
                &[
                    "ecparam",
                    "-name",
                    "prime256v1",
                    "-genkey",
                    "-noout",
                    "-out",
                    &k,
                ],
            )?,
            KeyKind::EcdsaPkcs8 => run(
                "openssl",
                &[
                    "genpkey",
                    "-algorithm",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-out",
                    &k,
                ],
            )?,
            KeyKind::Ed25519 => run("openssl", &["genpkey", "-algorithm", "ed25519", "-out", &k])?,
        };
        run(
            "openssl",
            &["req", "-new", "-key", &k, "-subj", "/CN=client", "-out", &r],
        )?;
        std::fs::write(&ext, "extendedKeyUsage=clientAuth\n")
            .map_err(|e| Error::io(format!("write `{x}`"), e))?;
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        run(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                &r,
                "-CA",
                &self.path("crt"),
                "-CAkey",
                &self.path("key"),
                "-set_serial",
                &serial.to_string(),
                "-days",
                "2",
                "-extfile",
                &x,
                "-out",
                &c,
            ],
        )?;
        let _ = std::fs::remove_file(&csr);
        let _ = std::fs::remove_file(&ext);
        Ok((cert, key))
    }
}
