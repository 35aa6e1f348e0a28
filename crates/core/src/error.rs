//! The error type of ferry's libraries.

use oci_spec::image::Digest;

/// A boxed error from a store or strategy backend, kept as the source of [`Error::Store`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result with ferry's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms a caller can act on.
///
/// Backends keep their own detailed errors and convert them into one of these variants,
/// keeping paths, URLs and statuses in the message or the source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The named content, tag or location does not exist.
    #[error("{what} not found{}", hint.as_deref().map(|h| format!(": {h}")).unwrap_or_default())]
    NotFound {
        /// What was looked for, quoted the way the user wrote it.
        what: String,
        /// What to do next, if anything is known.
        hint: Option<String>,
    },
    /// The bytes received do not hash to the expected digest.
    #[error(
        "content of `{expected}` does not match its digest ({}); the source is corrupt or changed, nothing was committed",
        match actual {
            Some(actual) => format!("got `{actual}`"),
            None => "the destination hashed it and refused it".to_string(),
        }
    )]
    DigestMismatch {
        /// The digest the descriptor promised.
        expected: Digest,
        /// The digest of the bytes actually received; `None` when the destination found the
        /// mismatch (a registry answering `DIGEST_INVALID`) without saying what it computed.
        actual: Option<Digest>,
    },
    /// The bytes received are more or fewer than the descriptor's size.
    #[error(
        "content of `{digest}` has {actual} bytes{} but its descriptor says {expected}; nothing was committed",
        if *truncated { " so far" } else { "" }
    )]
    SizeMismatch {
        /// The digest of the content.
        digest: Digest,
        /// The size the descriptor promised.
        expected: u64,
        /// The number of bytes received.
        actual: u64,
        /// Whether more bytes were still coming when the check failed (the content is too long).
        truncated: bool,
    },
    /// Content is larger than a configured limit.
    #[error(
        "{what} is {size} bytes, over the limit of {limit} bytes; raise the limit if you trust the source"
    )]
    TooLarge {
        /// What was too large.
        what: String,
        /// Its size.
        size: u64,
        /// The limit in force.
        limit: u64,
    },
    /// A manifest or index that cannot be understood.
    #[error("invalid manifest `{digest}`: {reason}")]
    InvalidManifest {
        /// The manifest's digest.
        digest: Digest,
        /// Why it is invalid.
        reason: String,
    },
    /// The content graph refers to itself.
    #[error("content graph has a cycle: `{digest}` refers back to itself through {path}")]
    Cycle {
        /// The digest met twice.
        digest: Digest,
        /// The chain of digests that led back to it.
        path: String,
    },
    /// A reference, tag, digest or other input that cannot be used.
    #[error("invalid {kind} `{value}`: {reason}")]
    InvalidInput {
        /// What kind of input (`reference`, `tag`, `digest`, `platform`, ...).
        kind: &'static str,
        /// The value as given.
        value: String,
        /// Why it is refused and what to do.
        reason: String,
    },
    /// A mount strategy lacks a setting it cannot be built without.
    #[error("mount strategy `{strategy}` needs its `{key}` setting ({help})")]
    MissingSetting {
        /// The strategy's name.
        strategy: String,
        /// The setting's key.
        key: String,
        /// What the setting is.
        help: String,
    },
    /// A digest algorithm that ferry cannot verify.
    #[error(
        "unsupported digest algorithm `{algorithm}` in `{digest}`; ferry verifies sha256 and sha512"
    )]
    UnsupportedDigest {
        /// The algorithm.
        algorithm: String,
        /// The digest.
        digest: Digest,
    },
    /// The store needs credentials, or refused the ones given.
    #[error("{store}: authentication required or refused: {message}")]
    Unauthenticated {
        /// The store.
        store: String,
        /// What the store answered.
        message: String,
    },
    /// The store refused the operation for the authenticated identity.
    #[error("{store}: permission denied: {message}")]
    PermissionDenied {
        /// The store.
        store: String,
        /// What the store answered.
        message: String,
    },
    /// The store cannot do this at all.
    #[error("{store} does not support {operation}")]
    NotSupported {
        /// The store.
        store: String,
        /// The operation.
        operation: String,
    },
    /// Local I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Any other failure of a store or strategy backend.
    #[error("{store}: {message}")]
    Store {
        /// The store or strategy.
        store: String,
        /// What failed.
        message: String,
        /// Whether retrying the same operation may succeed.
        temporary: bool,
        /// The backend's error.
        #[source]
        source: Option<BoxError>,
    },
    /// A request got no answer: the connection could not be made, TLS failed, or the
    /// connection broke on the way. The message is one sentence naming the host and the cause
    /// (`cannot connect to 127.0.0.1:5409: connection refused`); the chain of underlying errors
    /// is the source.
    #[error("{message}")]
    Transport {
        /// The host (and port) the request went to.
        host: String,
        /// What failed.
        kind: TransportErrorKind,
        /// The sentence shown to the user.
        message: String,
        /// The underlying errors.
        #[source]
        source: Option<BoxError>,
    },
    /// A registry's quota of requests (`ratelimit-remaining`) is used up, and comes back
    /// later than the caller allows itself to wait.
    #[error(
        "{host}: 0 of {limit} pulls left, and the quota comes back in {}, beyond the longest wait allowed ({})",
        crate::error::human(*wait),
        crate::error::human(*max_wait)
    )]
    QuotaExhausted {
        /// The registry host.
        host: String,
        /// The quota announced (`ratelimit-limit`).
        limit: u64,
        /// How long until the quota comes back.
        wait: std::time::Duration,
        /// The longest wait allowed.
        max_wait: std::time::Duration,
    },
    /// The operation was cancelled.
    #[error("cancelled: {0}")]
    Cancelled(String),
    /// A container of content (an archive) is truncated or inconsistent: it ends early, or
    /// lacks what its own index names. Nothing from it was tagged.
    #[error("{what} is damaged: {reason}; nothing from it was tagged")]
    Damaged {
        /// What is damaged, as the user named it (`oci-archive:bundle.tar`).
        what: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A duration as messages say it: `5 h 12 min`, `10 min`, `45 s`, `1.5 s`, `300 ms`.
pub fn human(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    if secs >= 3600 {
        let (h, m) = (secs / 3600, (secs % 3600) / 60);
        if m == 0 {
            format!("{h} h")
        } else {
            format!("{h} h {m} min")
        }
    } else if secs >= 60 {
        let (m, s) = (secs / 60, secs % 60);
        if s == 0 {
            format!("{m} min")
        } else {
            format!("{m} min {s} s")
        }
    } else if d.as_millis() >= 1000 {
        if d.subsec_millis() == 0 {
            format!("{secs} s")
        } else {
            format!("{:.1} s", d.as_secs_f64())
        }
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// What failed in an [`Error::Transport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// Nothing listens on the port (the connection was refused).
    Refused,
    /// The host name does not resolve.
    Dns,
    /// The server's TLS certificate was not accepted (unknown issuer, expired, wrong name).
    Certificate,
    /// The server answered the TLS handshake in plain HTTP.
    PlainHttp,
    /// The TLS handshake failed otherwise.
    Tls,
    /// No connection or no answer within the time allowed.
    Timeout,
    /// The connection was reset or closed before the exchange was complete.
    Reset,
    /// The HTTP proxy chosen for the host could not be reached (refused, unknown name, no
    /// answer in time).
    ProxyUnreachable,
    /// The HTTP proxy asked for credentials (`407 Proxy Authentication Required`), or refused
    /// the ones given.
    ProxyAuth,
    /// The HTTP proxy refused to connect to the host (`CONNECT` answered `403`, `502`, …).
    ProxyRefused,
    /// The server asked for a TLS client certificate and none was given for it.
    ClientCertRequired,
    /// The server refused the TLS client certificate given for it.
    ClientCertRejected,
    /// Any other failure of the connection.
    Other,
}

impl TransportErrorKind {
    /// Whether trying again may succeed: a reset, a timeout or an unclassified failure may
    /// pass; a refused connection, an unknown host or a TLS failure will not by itself.
    pub fn is_temporary(self) -> bool {
        matches!(self, Self::Timeout | Self::Reset | Self::Other)
    }
}

impl Error {
    /// A [`Error::NotFound`] without hint.
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound {
            what: what.into(),
            hint: None,
        }
    }

    /// An [`Error::Io`] with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// An [`Error::InvalidInput`]. The value is quoted as [`redact::url`](crate::redact::url)
    /// shows it, so a URL given with credentials (`https://user:password@…`, `?token=…`) is
    /// never repeated with them.
    pub fn invalid(
        kind: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidInput {
            kind,
            value: crate::redact::url(&value.into()),
            reason: reason.into(),
        }
    }

    /// An [`Error::Store`] with a message and no source.
    pub fn store(store: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Store {
            store: store.into(),
            message: message.into(),
            temporary: false,
            source: None,
        }
    }

    /// Whether this error means "not there".
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// Whether retrying the same operation may succeed.
    pub fn is_temporary(&self) -> bool {
        match self {
            Error::Store { temporary, .. } => *temporary,
            Error::Transport { kind, .. } => kind.is_temporary(),
            Error::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }
}
