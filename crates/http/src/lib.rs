//! ferry-http: one HTTP client builder and one TLS policy for every crate of ferry that speaks
//! HTTP: the registry client, the IPFS gateway client, the S3 client of the storage strategy,
//! operators' admin endpoints.
//!
//! - [`TlsPolicy`]: which servers are trusted. The system's roots (`SSL_CERT_FILE` and
//!   `SSL_CERT_DIR` honoured), else the bundled Mozilla roots, plus the CA certificates given
//!   ([`TlsPolicy::with_ca_file`]); or any certificate ([`TlsPolicy::insecure`], for test
//!   setups). Per host, the CA certificates and client certificate of its `certs.d`
//!   directory ([`certs`]: containers/image's and docker's layout), or of one directory
//!   ([`TlsPolicy::with_cert_dir`]), or a client certificate given
//!   ([`TlsPolicy::with_client_cert`]), whose key is checked against it before anything
//!   connects. The TLS configuration names its crypto provider (`ring`) itself: nothing here
//!   installs a process-wide rustls provider; that is left to binaries.
//! - [`ProxyPolicy`]: which requests go through an HTTP or HTTPS proxy, from `HTTPS_PROXY`,
//!   `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` as Go reads them (the loopback is never
//!   proxied; see [`proxy`]), or given per client. `https://` requests go through a
//!   `CONNECT` tunnel, plain ones in absolute form; the proxy resolves the server's name.
//! - [`HttpClientBuilder`] builds an [`HttpClient`]: connection reuse, HTTP/1.1 and HTTP/2 by
//!   ALPN, TCP_NODELAY, a connect timeout, and the knobs of bulk transfers (HTTP/2
//!   flow-control windows, socket buffers under TLS). Requests carry a [`Body`]; the client's
//!   types are ferry's own, so the HTTP stack under them can change without breaking users.
//! - [`transport_error`]: a failed request as one [`Error::Transport`] sentence naming the host
//!   and the cause (`cannot connect to 127.0.0.1:5409: connection refused`), the chain kept as
//!   its source; a proxy's failure names the proxy and the variable it came from
//!   (`the proxy http://proxy:3128 (from HTTPS_PROXY) asks for credentials …`), a server's
//!   refusal of the client certificate names the host.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ferry_http::{Body, HttpClientBuilder, TlsPolicy};
//! let tls = TlsPolicy::new().with_ca_file("/etc/ferry/registry-ca.pem".as_ref())?;
//! let client = HttpClientBuilder::new().tls(tls).build()?;
//! let request = http::Request::get("https://registry.example/v2/").body(Body::empty())?;
//! let response = client
//!     .send(request)
//!     .await
//!     .map_err(|e| ferry_http::transport_error("registry.example", "checking the API", e))?;
//! println!("{}", response.status());
//! # Ok(()) }
//! ```
//!
//! [`Error::Transport`]: ferry_core::Error::Transport

mod body;
pub mod certs;
mod client;
mod connect;
mod error;
mod io;
pub mod proxy;
mod tls;

pub use body::{Body, ResponseBody};
pub use certs::{CERTS_D_ENV, CertLookup, ClientIdentity};
pub use client::{DEFAULT_IO_BUFFER, HttpClient, HttpClientBuilder, Response};
pub use error::{classify, is_loopback, transport_error};
pub use proxy::{NoProxy, Proxy, ProxyPolicy, ProxyScheme};
pub use tls::TlsPolicy;
