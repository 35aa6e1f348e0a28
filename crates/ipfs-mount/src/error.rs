//! The crate's own errors, converted into [`ferry_core::Error`] at the public boundary.

use ferry_core::{BoxError, Error};

/// What went wrong talking to IPFS. Crate-private: callers see [`ferry_core::Error`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum IpfsError {
    #[error(
        "gateway `{gateway}` does not have `{cid}` (HTTP 404); add it to an IPFS node the gateway reaches, or use another gateway"
    )]
    NotOnGateway { gateway: String, cid: String },

    #[error("gateway `{gateway}` answered HTTP {status} for `{cid}`: {body}")]
    Status {
        gateway: String,
        cid: String,
        status: u16,
        body: String,
    },

    #[error(
        "gateway `{gateway}`: request for `{cid}` failed: {source}; check that the gateway runs at that address"
    )]
    Http {
        gateway: String,
        cid: String,
        #[source]
        source: BoxError,
    },

    #[error(
        "gateway `{gateway}` did not answer for `{cid}` within {seconds}s; it may be overloaded or searching the network for content it lacks"
    )]
    Timeout {
        gateway: String,
        cid: String,
        seconds: f64,
    },

    #[error(
        "block `{cid}` from gateway `{gateway}` does not match its CID; the gateway sent wrong bytes, nothing was committed"
    )]
    BlockMismatch { gateway: String, cid: String },

    #[error(
        "block `{cid}` uses multihash code {code:#x}, which ferry cannot verify (it verifies sha2-256, sha2-512 and identity)"
    )]
    UnsupportedHash { cid: String, code: u64 },

    #[error(
        "`{cid}` has codec {codec:#x}; ferry reads raw blocks (0x55) and UnixFS files in dag-pb (0x70)"
    )]
    UnsupportedCodec { cid: String, codec: u64 },

    #[error("CAR from gateway `{gateway}` for `{cid}`: {reason}")]
    Car {
        gateway: String,
        cid: String,
        reason: String,
    },

    #[error("`{cid}` is not a UnixFS file that ferry can read: {reason}")]
    UnixFs { cid: String, reason: String },
}

impl IpfsError {
    fn is_temporary(&self) -> bool {
        matches!(
            self,
            IpfsError::Http { .. } | IpfsError::Timeout { .. } | IpfsError::Status { .. }
        )
    }
}

impl From<IpfsError> for Error {
    fn from(e: IpfsError) -> Self {
        match e {
            IpfsError::NotOnGateway { gateway, cid } => Error::NotFound {
                what: format!("`{cid}` on gateway `{gateway}` (HTTP 404)"),
                hint: Some(
                    "add it to an IPFS node the gateway reaches, or use another gateway".into(),
                ),
            },
            other => {
                let message = other.to_string();
                let temporary = other.is_temporary();
                let source = match other {
                    IpfsError::Http { source, .. } => Some(source),
                    _ => None,
                };
                Error::Store {
                    store: "ipfs".into(),
                    message,
                    temporary,
                    source,
                }
            }
        }
    }
}
