//! Failed requests as one sentence each.

use std::io;

use ferry_core::{BoxError, Error, TransportErrorKind};

use crate::proxy::Proxy;

/// Whether `host` (a name or an address, without port) is this machine's loopback:
/// `localhost`, `127.0.0.0/8` or `::1`.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A failure ferry's connector or client understood itself (a proxy's answer, a server's
/// refusal of the client certificate): its message is the whole sentence.
#[derive(Debug)]
pub(crate) struct ConnectFailure {
    kind: TransportErrorKind,
    message: String,
    source: Option<BoxError>,
}

impl std::fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnectFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// `http://proxy:3128 (from HTTPS_PROXY)`.
fn named(proxy: &Proxy) -> String {
    format!("{} (from {})", proxy.shown(), proxy.source())
}

impl ConnectFailure {
    /// The proxy could not be reached to get to `target`.
    pub(crate) fn proxy_unreachable(proxy: &Proxy, target: &str, cause: BoxError) -> Self {
        let why = match classify(cause.as_ref()) {
            TransportErrorKind::Refused => "connection refused".to_string(),
            TransportErrorKind::Dns => "its name does not resolve".to_string(),
            TransportErrorKind::Timeout => "no answer in time".to_string(),
            _ => root_cause(cause.as_ref()),
        };
        Self {
            kind: TransportErrorKind::ProxyUnreachable,
            message: format!(
                "cannot reach the proxy {} to connect to {target}: {why}",
                named(proxy)
            ),
            source: Some(cause),
        }
    }

    /// The proxy answered `407` for `target`.
    pub(crate) fn proxy_auth(proxy: &Proxy, target: &str) -> Self {
        let message = if proxy.has_credentials() {
            format!(
                "the proxy {} refused the credentials of its URL for {target} (407 Proxy Authentication Required)",
                named(proxy)
            )
        } else {
            format!(
                "the proxy {} asks for credentials to connect to {target} (407 Proxy Authentication Required)",
                named(proxy)
            )
        };
        Self {
            kind: TransportErrorKind::ProxyAuth,
            message,
            source: None,
        }
    }

    /// The proxy refused to connect to `target`, answering `status`.
    pub(crate) fn proxy_refused(proxy: &Proxy, target: &str, status: &str) -> Self {
        Self {
            kind: TransportErrorKind::ProxyRefused,
            message: format!(
                "the proxy {} refused to connect to {target} ({status})",
                named(proxy)
            ),
            source: None,
        }
    }

    /// The proxy broke the protocol while connecting to `target`.
    pub(crate) fn proxy_broken(
        proxy: &Proxy,
        target: &str,
        what: String,
        source: Option<BoxError>,
    ) -> Self {
        Self {
            kind: TransportErrorKind::ProxyRefused,
            message: format!(
                "the proxy {} failed to connect to {target}: {what}",
                named(proxy)
            ),
            source,
        }
    }

    /// `host` sent `alert` about the client certificate (`presented`, if one was).
    pub(crate) fn client_cert(
        host: &str,
        alert: rustls::AlertDescription,
        presented: Option<&str>,
        source: Option<BoxError>,
    ) -> Self {
        let alert_name = format!("{alert:?}");
        let (kind, message) = match presented {
            Some(cert) if alert != rustls::AlertDescription::CertificateRequired => (
                TransportErrorKind::ClientCertRejected,
                format!("{host} refused the client certificate `{cert}` (TLS alert {alert_name})"),
            ),
            _ => (
                TransportErrorKind::ClientCertRequired,
                format!("{host} asks for a client certificate and none was given for it"),
            ),
        };
        Self {
            kind,
            message,
            source,
        }
    }
}

/// What failed, read from an error chain of hyper, hyper-util, rustls and the OS.
pub fn classify(error: &(dyn std::error::Error + 'static)) -> TransportErrorKind {
    let mut kind = TransportErrorKind::Other;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cur {
        if let Some(failure) = e.downcast_ref::<ConnectFailure>() {
            return failure.kind;
        }
        // An `io::Error` made with `io::Error::new` holds its error rather than naming it as
        // its source (TLS errors come so, sometimes in two layers).
        let mut held: &(dyn std::error::Error + 'static) = e;
        while let Some(inner) = held.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            held = inner;
        }
        let tls = held.downcast_ref::<rustls::Error>();
        if let Some(tls) = tls {
            return match tls {
                rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::UnsupportedNameType => TransportErrorKind::Certificate,
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
                    TransportErrorKind::PlainHttp
                }
                _ => TransportErrorKind::Tls,
            };
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            let text = io.to_string();
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return TransportErrorKind::Refused,
                io::ErrorKind::TimedOut => return TransportErrorKind::Timeout,
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof => kind = TransportErrorKind::Reset,
                _ if text.contains("failed to lookup address") => {
                    return TransportErrorKind::Dns;
                }
                _ if text.contains("tls handshake eof") => kind = TransportErrorKind::Tls,
                _ => {}
            }
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_timeout() {
                return TransportErrorKind::Timeout;
            }
            if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
                kind = TransportErrorKind::Reset;
            }
        }
        let text = e.to_string();
        if text.starts_with("dns error") {
            return TransportErrorKind::Dns;
        }
        if kind == TransportErrorKind::Other
            && (text.contains("stream error") || text.contains("connection error"))
        {
            kind = TransportErrorKind::Reset;
        }
        cur = e.source();
    }
    kind
}

/// The [`ConnectFailure`] in a chain, if any.
fn find_failure<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a ConnectFailure> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cur {
        if let Some(f) = e.downcast_ref::<ConnectFailure>() {
            return Some(f);
        }
        cur = e.source();
    }
    None
}

/// The innermost message of a chain, lower-cased and without the OS error number
/// (`connection refused`), for the end of a sentence.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = error;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let mut text = cur.to_string();
    if let Some(i) = text.find(" (os error") {
        text.truncate(i);
    }
    if let Some(rest) = text.strip_prefix("failed to lookup address information: ") {
        text = rest.to_string();
    }
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// A failed request to `host` as one sentence: `doing` says what was under way (`reading
/// blob `sha256:…``), used when the connection broke after it was made. The chain stays the
/// source.
pub fn transport_error(host: &str, doing: &str, error: impl Into<BoxError>) -> Error {
    let error: BoxError = error.into();
    if let Some(failure) = find_failure(error.as_ref()) {
        return Error::Transport {
            host: host.to_string(),
            kind: failure.kind,
            message: failure.message.clone(),
            source: Some(error),
        };
    }
    let kind = classify(error.as_ref());
    let cause = root_cause(error.as_ref());
    let message = match kind {
        TransportErrorKind::Refused => format!("cannot connect to {host}: connection refused"),
        TransportErrorKind::Dns => {
            format!("cannot connect to {host}: the name does not resolve ({cause})")
        }
        TransportErrorKind::Certificate => {
            format!("cannot connect to {host}: its TLS certificate is not trusted ({cause})")
        }
        TransportErrorKind::PlainHttp => {
            format!("`{host}` answered in plain HTTP")
        }
        TransportErrorKind::Tls => {
            format!("cannot connect to {host}: the TLS handshake failed ({cause})")
        }
        TransportErrorKind::Timeout => {
            format!("no answer from {host} in time while {doing} ({cause})")
        }
        TransportErrorKind::Reset => {
            format!("the connection to {host} broke while {doing} ({cause})")
        }
        _ => format!("the request to {host} failed while {doing} ({cause})"),
    };
    Error::Transport {
        host: host.to_string(),
        kind,
        message,
        source: Some(error),
    }
}
