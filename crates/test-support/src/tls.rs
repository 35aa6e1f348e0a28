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
