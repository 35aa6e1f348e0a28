//! Failed requests as one sentence each.

use std::io;

use ferry_core::{BoxError, Error, TransportErrorKind};

/// Whether `host` (a name or an address, without port) is this machine's loopback:
/// `localhost`, `127.0.0.0/8` or `::1`.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What failed, read from an error chain of hyper, hyper-util, rustls and the OS.
pub fn classify(error: &(dyn std::error::Error + 'static)) -> TransportErrorKind {
    let mut kind = TransportErrorKind::Other;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cur {
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
