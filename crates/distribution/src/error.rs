//! How registry answers become [`ferry_core::Error`]s.

use ferry_core::Error;
use http::StatusCode;
use oci_spec::distribution::ErrorCode;
use serde::Deserialize;

/// The most of a registry's error body quoted in a message.
pub(crate) const ERROR_BODY_LIMIT: usize = 64 * 1024;
const MESSAGE_LIMIT: usize = 512;

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// `CODE: message; CODE: message` from a distribution error body, shortened; empty when the
/// body is not one.
pub(crate) fn registry_errors(body: &[u8]) -> String {
    let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) else {
        return String::new();
    };
    let text = parsed
        .errors
        .iter()
        .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
            (false, false) => format!("{}: {}", e.code, e.message),
            (false, true) => e.code.clone(),
            _ => e.message.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ");
    truncate(text, MESSAGE_LIMIT)
}

/// The codes of a distribution error body, as the OCI distribution specification names them
/// (`DIGEST_INVALID`, `NAME_UNKNOWN`, …); codes it does not define are left out (see
/// [`has_registry_code`]).
pub(crate) fn error_codes(body: &[u8]) -> Vec<ErrorCode> {
    let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) else {
        return Vec::new();
    };
    parsed
        .errors
        .iter()
        .filter_map(|e| serde_json::from_value(serde_json::Value::String(e.code.clone())).ok())
        .collect()
}

/// Whether a distribution error body carries the specification's error code `code`.
pub(crate) fn has_error_code(body: &[u8], code: ErrorCode) -> bool {
    error_codes(body).contains(&code)
}

/// Whether a distribution error body carries `code`, one of a registry's own codes that the
/// specification does not define (distribution's `PAGINATION_NUMBER_INVALID`).
pub(crate) fn has_registry_code(body: &[u8], code: &str) -> bool {
    serde_json::from_slice::<ErrorBody>(body)
        .is_ok_and(|parsed| parsed.errors.iter().any(|e| e.code == code))
}

fn truncate(mut s: String, limit: usize) -> String {
    if s.len() > limit {
        let mut cut = limit;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// The error for an unexpected answer `status` to `what` (`GET manifest `v1``), keeping the
/// registry's own error codes and messages.
pub(crate) fn status_error(store: &str, what: &str, status: StatusCode, body: &[u8]) -> Error {
    let detail = registry_errors(body);
    let said = if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    };
    match status {
        StatusCode::UNAUTHORIZED => Error::Unauthenticated {
            store: store.to_string(),
            message: format!(
                "{what}: the registry answered 401{said}; log in (`docker login`, a docker \
                 config.json, or explicit credentials) or check the credentials given"
            ),
        },
        StatusCode::FORBIDDEN => Error::PermissionDenied {
            store: store.to_string(),
            message: format!(
                "{what}: the registry answered 403{said}; the identity used may not do this here"
            ),
        },
        StatusCode::NOT_FOUND => Error::NotFound {
            what: format!("{what} in `{store}`"),
            hint: (!detail.is_empty()).then_some(detail),
        },
        _ => Error::Store {
            store: store.to_string(),
            message: format!("{what}: unexpected HTTP {status}{said}"),
            temporary: status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS,
            source: None,
        },
    }
}

/// An error and its sources, joined by `: `.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_registry_errors() {
        let body = br#"{"errors":[{"code":"DENIED","message":"no","detail":{}}]}"#;
        assert_eq!(registry_errors(body), "DENIED: no");
        assert_eq!(registry_errors(b"<html>"), "");
        let e = status_error("h/r", "PUT x", StatusCode::FORBIDDEN, body);
        assert!(matches!(e, Error::PermissionDenied { .. }));
        assert!(e.to_string().contains("DENIED: no"));
        let e = status_error("h/r", "GET x", StatusCode::BAD_GATEWAY, b"");
        assert!(e.is_temporary());
        let long = format!(
            r#"{{"errors":[{{"code":"X","message":"{}"}}]}}"#,
            "a".repeat(5000)
        );
        assert!(registry_errors(long.as_bytes()).len() < 600);
    }
}
