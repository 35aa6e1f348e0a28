//! Exit codes, and errors as the one sentence `ferry` prints, with the flag that helps.

use ferry_core::{Error, TransportErrorKind};

/// The copy failed (I/O, registry or network error), or a sync left images undone.
pub const FAILED: u8 = 1;
/// Bad usage or invalid input.
pub const USAGE: u8 = 2;
/// Something named does not exist.
pub const NOT_FOUND: u8 = 3;
/// Authentication or permission refused (by the registry, its proxy, or its check of the
/// client certificate).
pub const AUTH: u8 = 4;
/// Content failed verification; nothing corrupt was committed.
pub const INTEGRITY: u8 = 5;

/// The exit code of `err`: that of the first ferry error in its chain.
pub fn code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Error>() {
            return match e {
                Error::NotFound { .. } => NOT_FOUND,
                Error::InvalidInput { .. }
                | Error::MissingSetting { .. }
                | Error::UnsupportedDigest { .. }
                | Error::NotSupported { .. }
                | Error::TooLarge { .. } => USAGE,
                Error::Unauthenticated { .. } | Error::PermissionDenied { .. } => AUTH,
                // The proxy's credentials and the client certificate authenticate too.
                Error::Transport {
                    kind:
                        TransportErrorKind::ProxyAuth
                        | TransportErrorKind::ClientCertRequired
                        | TransportErrorKind::ClientCertRejected,
                    ..
                } => AUTH,
                Error::DigestMismatch { .. }
                | Error::SizeMismatch { .. }
                | Error::Damaged { .. } => INTEGRITY,
                _ => FAILED,
            };
        }
    }
    FAILED
}

/// The message of `err`: one sentence. The chain of contexts down to the first ferry error,
/// whose message is whole (a transport error names the host and the cause), then what to do
/// about it on the command line; with `verbose` the causes below it follow, once each.
pub fn message(err: &anyhow::Error, verbose: bool) -> String {
    let mut out = String::new();
    let mut causes = Vec::new();
    let mut advice = None;
    let mut whole = false;
    for cause in err.chain() {
        let text = cause.to_string();
        if whole {
            if verbose && !out.contains(&text) && !causes.contains(&text) {
                causes.push(text);
            }
            continue;
        }
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        if let Some(e) = cause.downcast_ref::<Error>() {
            whole = true;
            advice = advise(e);
        }
    }
    if let Some(advice) = advice {
        out.push_str("; ");
        out.push_str(&advice);
    }
    for c in causes {
        out.push_str("\n  caused by: ");
        out.push_str(&c);
    }
    out
}

/// What to do on the command line about a condition the libraries describe.
pub fn advise(e: &Error) -> Option<String> {
    match e {
        Error::Transport { kind, host, .. } => match kind {
            TransportErrorKind::Certificate => Some(
                "trust its CA with `--ca-cert FILE` (or `ca_cert` in its registry table), or \
                 pass `--insecure` if it is a test registry"
                    .into(),
            ),
            TransportErrorKind::PlainHttp => Some(
                "pass `--plain-http` (or `--to-plain-http`/`--from-plain-http`) if that is \
                 intended"
                    .into(),
            ),
            TransportErrorKind::ProxyAuth => Some(
                "give the proxy's user and password in its URL, `USER:PASSWORD@` before its \
                 host, in that variable or in `proxy` of the registry's table in ferry.toml"
                    .into(),
            ),
            TransportErrorKind::ProxyUnreachable => Some(
                "check the proxy's address, or reach the registry directly by naming it in \
                 NO_PROXY (or `no_proxy` of its table in ferry.toml)"
                    .into(),
            ),
            TransportErrorKind::ProxyRefused => Some(
                "the proxy's policy does not let ferry through to that host; ask its operator, \
                 or reach the registry directly by naming it in NO_PROXY"
                    .into(),
            ),
            TransportErrorKind::ClientCertRequired => Some(format!(
                "give one with `--cert-dir DIR` (`client.cert` and `client.key`), in \
                 /etc/containers/certs.d/{host}/, or with `client_cert` and `client_key` in its \
                 table in ferry.toml"
            )),
            TransportErrorKind::ClientCertRejected => Some(
                "give a certificate issued by a CA the registry trusts, not expired, with its own \
                 key"
                .into(),
            ),
            _ => None,
        },
        Error::QuotaExhausted { .. } => Some(
            "run again once the quota is back, or let ferry wait longer with `--max-wait`".into(),
        ),
        Error::NotSupported { operation, .. }
            if operation.starts_with("deleting tag `") && operation.contains("by digest") =>
        {
            Some(
                "to delete the manifest with every tag naming it, use `ferry rm --manifest`".into(),
            )
        }
        Error::MissingSetting { strategy, key, .. } => {
            let flag = match (strategy.as_str(), key.as_str()) {
                (ferry_ipfs_mount::NAME, "gateway") => "`--ipfs-gateway URL`, ".to_string(),
                _ => String::new(),
            };
            Some(format!(
                "give it with {flag}`--mount-opt {strategy}.{key}=VALUE` or `{key} = …` under \
                 `[mount.{strategy}]` in the configuration file"
            ))
        }
        _ => None,
    }
}
