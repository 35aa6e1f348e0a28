//! Which TLS servers a client trusts.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use ferry_core::{Error, Result};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The crypto provider of every TLS configuration made here.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Which TLS servers a client trusts.
#[derive(Clone, Default)]
pub struct TlsPolicy {
    insecure: bool,
    no_system_roots: bool,
    extra: Vec<CertificateDer<'static>>,
    /// Where the extra certificates came from, for `Debug`.
    sources: Vec<String>,
}

impl std::fmt::Debug for TlsPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPolicy")
            .field("insecure", &self.insecure)
            .field("system_roots", &!self.no_system_roots)
            .field("extra", &self.sources)
            .finish()
    }
}

impl TlsPolicy {
    /// The system's roots (`SSL_CERT_FILE` and `SSL_CERT_DIR` honoured), or the bundled Mozilla
    /// roots where the system has none.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accept any certificate (self-signed test servers). The handshake's signatures are still
    /// checked, so the connection is at least to the key presented. Never in production.
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// Whether any certificate is accepted.
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// Also trust the CA certificates in the PEM file `path` (one or more certificates).
    pub fn with_ca_file(self, path: &Path) -> Result<Self> {
        let pem = std::fs::read(path).map_err(|e| {
            Error::io(
                format!("cannot read the CA certificate file `{}`", path.display()),
                e,
            )
        })?;
        self.with_ca_pem(&pem, &path.display().to_string())
    }

    /// Also trust the CA certificates in `pem`; `source` names them in errors.
    pub fn with_ca_pem(mut self, pem: &[u8], source: &str) -> Result<Self> {
        let invalid = |reason: String| Error::invalid("CA certificate file", source, reason);
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| invalid(format!("it is not PEM ({e})")))?;
            // The same check the root store makes when the client is built, here, so a bad
            // file is refused where it is named.
            RootCertStore::empty()
                .add(cert.clone())
                .map_err(|e| invalid(format!("a certificate in it cannot be used ({e})")))?;
            self.extra.push(cert);
            found += 1;
        }
        if found == 0 {
            return Err(invalid(
                "it holds no `-----BEGIN CERTIFICATE-----` block; give the CA certificate in PEM"
                    .into(),
            ));
        }
        self.sources.push(source.to_string());
        Ok(self)
    }

    /// Trust only the certificates given with [`TlsPolicy::with_ca_file`], not the system's.
    pub fn without_system_roots(mut self) -> Self {
        self.no_system_roots = true;
        self
    }

    /// The root store: the system's roots (else the bundled ones) and the extra CAs.
    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        if !self.no_system_roots {
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                tracing::debug!(error = %e, "skipping a system root certificate source");
            }
            let (added, _) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                tracing::debug!("no system root certificates, using the bundled roots");
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
        }
        for cert in &self.extra {
            // Checked in `with_ca_pem`.
            let _ = roots.add(cert.clone());
        }
        roots
    }

    /// The rustls configuration of this policy, with the `ring` provider and no ALPN (the
    /// builder sets it). Root certificates are loaded on the first handshake that needs them
    /// (the system's take tens of milliseconds), so a client that never speaks TLS never
    /// pays for them.
    pub fn client_config(&self) -> Result<rustls::ClientConfig> {
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::store("tls", format!("TLS setup failed: {e}")))?
            .dangerous();
        let verifier: Arc<dyn ServerCertVerifier> = Arc::new(LazyRootsVerifier {
            policy: self.clone(),
            provider,
            verifier: OnceLock::new(),
        });
        let mut config = builder
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.alpn_protocols.clear();
        Ok(config)
    }
}

/// The verifier of a [`TlsPolicy`]: webpki's, over roots loaded on first use; with
/// [`TlsPolicy::insecure`], any server certificate (the handshake's signatures are still
/// checked).
#[derive(Debug)]
struct LazyRootsVerifier {
    policy: TlsPolicy,
    provider: Arc<CryptoProvider>,
    verifier: OnceLock<std::result::Result<Arc<WebPkiServerVerifier>, String>>,
}

impl LazyRootsVerifier {
    fn verifier(&self) -> std::result::Result<&Arc<WebPkiServerVerifier>, rustls::Error> {
        self.verifier
            .get_or_init(|| {
                WebPkiServerVerifier::builder_with_provider(
                    Arc::new(self.policy.roots()),
                    self.provider.clone(),
                )
                .build()
                .map_err(|e| format!("no usable root certificates ({e})"))
            })
            .as_ref()
            .map_err(|e| rustls::Error::General(e.clone()))
    }
}

impl ServerCertVerifier for LazyRootsVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if self.policy.insecure {
            return Ok(ServerCertVerified::assertion());
        }
        let verified = self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match verified {
            Err(e)
                if self
                    .policy
                    .extra
                    .iter()
                    .any(|c| c.as_ref() == end_entity.as_ref()) =>
            {
                // The server presents a certificate the user gave as a CA (`--ca-cert`): a
                // self-signed registry certificate. webpki refuses it as an end entity when it
                // is marked as a CA, as `openssl req -x509` makes it; like docker and skopeo,
                // take it as it is, for the names it lists.
                let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                tracing::debug!(
                    server = ?server_name,
                    refused_as = %e,
                    "the server presents a certificate trusted by file itself; taken as it is"
                );
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
