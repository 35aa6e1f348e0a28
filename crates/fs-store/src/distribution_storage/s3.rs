//! The HTTP client of S3 roots: reqwest with the TLS configuration of ferry's one TLS policy
//! ([`ferry_http::TlsPolicy`]: rustls on `ring`, handed to it explicitly, the system's
//! roots or `SSL_CERT_FILE`, and the endpoint's `certs.d` CAs and client certificate), and
//! ferry's one proxy policy ([`ferry_http::ProxyPolicy`]: `HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY` and `NO_PROXY` as every client of ferry reads them, the loopback never proxied)
//! through reqwest's own proxy API. A library must not install a process-wide rustls provider
//! (the application decides that), and the S3 client needs none.

use std::time::Duration;

use ferry_http::{ProxyPolicy, TlsPolicy};
use object_store::client::{ClientConfigKey, ClientOptions, HttpClient, HttpConnector};

/// Builds the reqwest client of an S3 root from its [`ClientOptions`]: timeouts, HTTP
/// versions, plain HTTP, an explicit proxy and certificate checks as object_store's own
/// connector reads them, with TLS by ferry's TLS policy (rustls on `ring`, the system's roots,
/// the endpoint's `certs.d` material) and, without an explicit proxy, ferry's proxy policy.
#[derive(Debug, Default, Clone)]
pub(super) struct RustlsConnector {
    /// The endpoint's host (an IPv6 address in brackets) and port, when known.
    pub(super) endpoint: Option<(String, Option<u16>)>,
}

impl RustlsConnector {
    /// The connector of an S3 root at `endpoint` (a URL), if given.
    pub(super) fn for_endpoint(endpoint: Option<&str>) -> Self {
        let endpoint = endpoint
            .and_then(|e| url::Url::parse(e.trim()).ok())
            .and_then(|u| Some((u.host_str()?.to_ascii_lowercase(), u.port())));
        Self { endpoint }
    }
}

impl HttpConnector for RustlsConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let client = client(options, self.endpoint.as_ref()).map_err(|message| {
            object_store::Error::Generic {
                store: "S3",
                source: message.into(),
            }
        })?;
        Ok(HttpClient::new(client))
    }
}

fn client(
    options: &ClientOptions,
    endpoint: Option<&(String, Option<u16>)>,
) -> Result<reqwest::Client, String> {
    let get = |key: ClientConfigKey| options.get_config_value(&key);
    let flag = |key: ClientConfigKey| -> Result<bool, String> {
        match get(key).as_deref().map(str::trim) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(format!("`{other}` is not `true` or `false` ({key:?})")),
        }
    };
    let duration = |key: ClientConfigKey| -> Result<Option<Duration>, String> {
        get(key)
            .map(|v| {
                humantime::parse_duration(v.trim())
                    .map_err(|e| format!("`{v}` is not a duration ({key:?}): {e}"))
            })
            .transpose()
    };
    if flag(ClientConfigKey::NoSystemCertificates)? {
        return Err("`no_system_certificates` is not supported by ferry's S3 client".into());
    }
    if get(ClientConfigKey::ProxyCaCertificate).is_some() {
        return Err(
            "`proxy_ca_certificate` is not supported by ferry's S3 client; add the \
                    certificate to the system's roots"
                .into(),
        );
    }

    let policy = TlsPolicy::new().insecure(flag(ClientConfigKey::AllowInvalidCertificates)?);
    let mut tls = match endpoint {
        Some((host, port)) => policy.client_config_for(host, *port),
        None => policy.client_config(),
    }
    .map_err(|e| e.to_string())?;
    let (http1_only, http2_only) = (
        flag(ClientConfigKey::Http1Only)?,
        flag(ClientConfigKey::Http2Only)?,
    );
    tls.alpn_protocols = match (http1_only, http2_only) {
        (true, _) => vec![b"http/1.1".to_vec()],
        (false, true) => vec![b"h2".to_vec()],
        (false, false) => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    };

    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(
            get(ClientConfigKey::UserAgent)
                .unwrap_or_else(|| concat!("ferry/", env!("CARGO_PKG_VERSION")).to_string()),
        )
        .https_only(!flag(ClientConfigKey::AllowHttp)?);
    if let Some(d) = duration(ClientConfigKey::Timeout)? {
        builder = builder.timeout(d);
    }
    if let Some(d) = duration(ClientConfigKey::ConnectTimeout)? {
        builder = builder.connect_timeout(d);
    }
    if let Some(d) = duration(ClientConfigKey::ReadTimeout)? {
        builder = builder.read_timeout(d);
    }
    if let Some(d) = duration(ClientConfigKey::PoolIdleTimeout)? {
        builder = builder.pool_idle_timeout(d);
    }
    if let Some(n) = get(ClientConfigKey::PoolMaxIdlePerHost) {
        builder = builder.pool_max_idle_per_host(
            n.trim()
                .parse()
                .map_err(|_| format!("`{n}` is not a number (PoolMaxIdlePerHost)"))?,
        );
    }
    if http1_only {
        builder = builder.http1_only();
    } else if http2_only {
        builder = builder.http2_prior_knowledge();
    }
    if let Some(url) = get(ClientConfigKey::ProxyUrl) {
        let mut proxy =
            reqwest::Proxy::all(&url).map_err(|e| format!("proxy URL is not usable: {e}"))?;
        if let Some(excludes) = get(ClientConfigKey::ProxyExcludes) {
            proxy = proxy.no_proxy(reqwest::NoProxy::from_string(&excludes));
        }
        builder = builder.proxy(proxy);
    } else {
        // ferry's rules, not reqwest's own reading of the same variables (which proxies the
        // loopback and ignores `host:port` entries of NO_PROXY).
        let policy = ProxyPolicy::from_env().map_err(|e| e.to_string())?;
        builder = if policy.is_direct() {
            builder.no_proxy()
        } else {
            builder.proxy(reqwest::Proxy::custom(move |url| {
                let port = url.port_or_known_default()?;
                policy.proxy_url_for(url.scheme(), url.host_str()?, port)
            }))
        };
    }
    builder.build().map_err(|e| e.to_string())
}
