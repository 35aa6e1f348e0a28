//! Integration tests of ferry-http.

mod client_certs;
mod errors;
mod proxy;

/// Asserts that `e` is a transport error of `kind`.
pub fn assert_kind(e: &ferry_core::Error, kind: ferry_core::TransportErrorKind) {
    assert!(
        matches!(e, ferry_core::Error::Transport { kind: k, .. } if *k == kind),
        "{e:?}"
    );
}
