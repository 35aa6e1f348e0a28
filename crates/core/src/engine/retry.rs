//! Tries of a step of a copy that failed in a way that may pass, by the copy's
//! [`RetryPolicy`](crate::retry::RetryPolicy).

use std::sync::Mutex;

use oci_spec::image::Digest;

use crate::error::{Error, Result};
use crate::retry::{RetryPolicy, Retryable, retry};

/// A failed step as the engine judges it: a temporary error, or bytes that did not match
/// their descriptor (a transfer cut or spoiled on the way) the first time; a source whose
/// bytes hash to the same wrong digest twice is corrupt, and trying again cannot help.
struct StepFailure {
    error: Error,
    transient: bool,
}

impl Retryable for StepFailure {
    fn is_transient(&self) -> bool {
        self.transient
    }
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

/// What a mismatch was: the expected digest and what arrived instead.
fn mismatch(error: &Error) -> Option<(Digest, Option<Digest>, Option<u64>)> {
    match error {
        Error::DigestMismatch { expected, actual } => {
            Some((expected.clone(), actual.clone(), None))
        }
        Error::SizeMismatch {
            digest,
            actual,
            truncated: false,
            ..
        } => Some((digest.clone(), None, Some(*actual))),
        _ => None,
    }
}

/// Runs `step` by `policy`, calling `on_retry(retry, error)` before each retry. A mismatch is
/// tried again once; the same mismatch a second time (the source's bytes are wrong, not the
/// transfer) ends the step.
pub(super) async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut step: F,
    mut on_retry: impl FnMut(u32, &Error),
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let seen = Mutex::new(Vec::new());
    let judged = |error: Error| {
        let transient = match mismatch(&error) {
            Some(m) => {
                let mut seen = seen.lock().expect("mismatches lock");
                let again = seen.contains(&m);
                seen.push(m);
                !again
            }
            None => error.is_temporary(),
        };
        StepFailure { error, transient }
    };
    retry(
        policy,
        what,
        |_| {
            let fut = step();
            async { fut.await.map_err(&judged) }
        },
        |event| on_retry(event.retry, &event.error.error),
    )
    .await
    .map_err(|failure| failure.error)
}
