//! Which TLS servers a client trusts.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use ferry_core::{Error, Result};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::certs::{CertLookup, ClientIdentity, provider};

/// Which TLS servers a client trusts, and which client certificate it presents to each.
///
/// Per host, the material of its `certs.d` directory ([`crate::certs`]) is added: its `*.crt`
/// CAs to the roots, its `client.cert` and `client.key` as the client certificate (unless one
/// was given with [`TlsPolicy::with_client_identity`], which wins).
#[derive(Clone)]
pub struct TlsPolicy {
    insecure: bool,
    no_system_roots: bool,
    extra: Vec<CertificateDer<'static>>,
    /// Where the extra certificates came from, for `Debug`.
    sources: Vec<String>,
    lookup: CertLookup,
    identity: Option<ClientIdentity>,
}

impl Default for TlsPolicy {
    fn default() -> Self {
        Self {
            insecure: false,
            no_system_roots: false,
            extra: Vec::new(),
            sources: Vec::new(),
            lookup: CertLookup::Default,
            identity: None,
        }
    }
}

impl std::fmt::Debug for TlsPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPolicy")
            .field("insecure", &self.insecure)
            .field("system_roots", &!self.no_system_roots)
            .field("extra", &self.sources)
            .field("lookup", &self.lookup)
            .field("identity", &self.identity)
            .finish()
    }
}

/// The TLS configuration of one host, and what its client certificate met.
#[derive(Debug, Clone)]
pub(crate) struct HostConfig {
    /// Without ALPN; the connector sets it.
    pub(crate) config: rustls::ClientConfig,
    pub(crate) client: Arc<ClientCert>,
}

/// The client certificate presented to one host (if any), whether the host asked for one,
/// and the last TLS alert it sent about it.
#[derive(Debug, Default)]
pub(crate) struct ClientCert {
    identity: Option<ClientIdentity>,
    asked: AtomicBool,
    alert: std::sync::Mutex<Option<rustls::AlertDescription>>,
}

impl ClientCert {
    /// Keeps the alert `e` carries, if it is one a server sends about a client certificate
    /// (TLS 1.3 servers send it after the client thinks the handshake is over, so it comes
    /// with the first read).
    pub(crate) fn note_error(&self, e: &std::io::Error) {
        if let Some(alert) = client_cert_alert(e) {
            *self.alert.lock().expect("alert lock") = Some(alert);
        }
    }

    /// The alert kept, if any.
    pub(crate) fn alert(&self) -> Option<rustls::AlertDescription> {
        *self.alert.lock().expect("alert lock")
    }

    /// Forgets the alert: the host answered.
    pub(crate) fn clear(&self) {
        if self.alert().is_some() {
            *self.alert.lock().expect("alert lock") = None;
        }
    }

    /// Whether the host asked for a client certificate in a handshake.
    pub(crate) fn asked(&self) -> bool {
        self.asked.load(Ordering::Relaxed)
    }

    /// The certificate file presented, if any.
    pub(crate) fn presented(&self) -> Option<&str> {
        self.identity.as_ref().map(|i| i.source.as_str())
    }
}

impl rustls::client::ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        self.identity.as_ref().map(|i| i.key.clone())
    }

    fn has_certs(&self) -> bool {
        self.identity.is_some()
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

    /// Reads each host's CA certificates and client certificate as `lookup` says
    /// ([`CertLookup::Default`]: the `certs.d` roots of containers/image and docker).
    pub fn with_cert_lookup(mut self, lookup: CertLookup) -> Self {
        self.lookup = lookup;
        self
    }

    /// Reads every host's CA certificates (`*.crt`) and client certificate (`NAME.cert` with
    /// `NAME.key`) from `dir` itself, instead of from a `certs.d` tree (skopeo's
    /// `--cert-dir`).
    pub fn with_cert_dir(self, dir: impl Into<PathBuf>) -> Self {
        self.with_cert_lookup(CertLookup::Dir(dir.into()))
    }

    /// Presents `identity` to every host that asks for a client certificate, instead of the
    /// one of its `certs.d` directory.
    pub fn with_client_identity(mut self, identity: ClientIdentity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// The client certificate of PEM file `cert` with the key of PEM file `key`
    /// ([`ClientIdentity::from_files`]: a key that is not the certificate's is refused here).
    pub fn with_client_cert(self, cert: &Path, key: &Path) -> Result<Self> {
        Ok(self.with_client_identity(ClientIdentity::from_files(cert, key)?))
    }

    /// Where each host's material is looked for.
    pub fn cert_lookup(&self) -> &CertLookup {
        &self.lookup
    }

    /// The root store: the system's roots (else the bundled ones), loaded once per process,
    /// and `extra`.
    fn roots(&self, extra: &[CertificateDer<'static>]) -> RootCertStore {
        let mut roots = if self.no_system_roots {
            RootCertStore::empty()
        } else {
            system_roots().clone()
        };
        for cert in extra {
            // Checked in `with_ca_pem`; a `certs.d` CA that does not parse is skipped, as
            // containers/image skips it.
            let _ = roots.add(cert.clone());
        }
        roots
    }

    /// The rustls configuration of this policy, with the `ring` provider and no ALPN (the
    /// builder sets it), presenting the client certificate given with
    /// [`TlsPolicy::with_client_identity`], if any (no host's `certs.d` material: see
    /// [`TlsPolicy::client_config_for`]). Root certificates are loaded on the first handshake
    /// that needs them (the system's take tens of milliseconds), so a client that never
    /// speaks TLS never pays for them.
    pub fn client_config(&self) -> Result<rustls::ClientConfig> {
        Ok(self
            .config_with(self.extra.clone(), self.identity.clone())?
            .config)
    }

    /// The rustls configuration for `host` (a name or an address; an IPv6 address in
    /// brackets) on `port` (`None`: 443), with that host's `certs.d` material.
    pub fn client_config_for(&self, host: &str, port: Option<u16>) -> Result<rustls::ClientConfig> {
        Ok(self
            .host_config(host, port.unwrap_or(443), port.is_none_or(|p| p == 443))?
            .config)
    }

    /// Reads `host`'s `certs.d` material now, so that a bad certificate or key there is
    /// refused before anything connects.
    pub fn check_host(&self, host: &str, port: u16, default_port: bool) -> Result<()> {
        self.host_config(host, port, default_port).map(|_| ())
    }

    /// The configuration of `host` on `port` (`default_port`: the scheme's).
    pub(crate) fn host_config(
        &self,
        host: &str,
        port: u16,
        default_port: bool,
    ) -> Result<HostConfig> {
        let mut extra = self.extra.clone();
        let mut identity = self.identity.clone();
        if let Some(dir) = self.lookup.dir_for(host, port, default_port) {
            let material = crate::certs::read_dir(&dir)?;
            tracing::debug!(
                host,
                dir = %dir.display(),
                cas = material.cas.len(),
                client_cert = material.identity.is_some(),
                "TLS material of the host"
            );
            extra.extend(material.cas);
            if identity.is_none() {
                identity = material.identity;
            }
        }
        self.config_with(extra, identity)
    }

    fn config_with(
        &self,
        extra: Vec<CertificateDer<'static>>,
        identity: Option<ClientIdentity>,
    ) -> Result<HostConfig> {
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::store("tls", format!("TLS setup failed: {e}")))?
            .dangerous();
        let verifier: Arc<dyn ServerCertVerifier> = Arc::new(LazyRootsVerifier {
            policy: self.clone(),
            extra,
            provider,
            verifier: OnceLock::new(),
        });
        let client = Arc::new(ClientCert {
            identity,
            ..ClientCert::default()
        });
        let mut config = builder
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(client.clone());
        config.alpn_protocols.clear();
        Ok(HostConfig { config, client })
    }
}

/// The alert in `e` (an error of a TLS stream) that a server sends when it wants a client
/// certificate or refuses the one it got.
pub(crate) fn client_cert_alert(e: &std::io::Error) -> Option<rustls::AlertDescription> {
    use rustls::AlertDescription as A;
    match e.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(
            alert @ (A::CertificateRequired
            | A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::AccessDenied),
        ) => Some(*alert),
        _ => None,
    }
}

/// The system's roots (`SSL_CERT_FILE` and `SSL_CERT_DIR` honoured), else the bundled
/// Mozilla roots: read once per process.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!(error = %e, "skipping a system root certificate source");
        }
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            tracing::debug!("no system root certificates, using the bundled roots");
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        roots
    })
}

/// The verifier of a [`TlsPolicy`]: webpki's, over roots loaded on first use; with
/// [`TlsPolicy::insecure`], any server certificate (the handshake's signatures are still
/// checked).
#[derive(Debug)]
struct LazyRootsVerifier {
    policy: TlsPolicy,
    /// The CAs trusted besides the system's: the policy's and the host's.
    extra: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
    verifier: OnceLock<std::result::Result<Arc<WebPkiServerVerifier>, String>>,
}

impl LazyRootsVerifier {
    fn verifier(&self) -> std::result::Result<&Arc<WebPkiServerVerifier>, rustls::Error> {
        self.verifier
            .get_or_init(|| {
                WebPkiServerVerifier::builder_with_provider(
                    Arc::new(self.policy.roots(&self.extra)),
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
            Err(e) if self.extra.iter().any(|c| c.as_ref() == end_entity.as_ref()) => {
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
