//! Tries of a step of a copy that failed in a way that may pass.

use std::time::Duration;

use crate::error::{Error, Result};

/// Tries of one step of a copy (resolving the source, one node's fetch and push, the tag)
/// when it fails in a way that may pass: a temporary error, or content that arrived short or
/// altered. The registry client retries single requests itself; this starts a whole transfer
/// over when its stream broke on the way or its answer was mislabelled.
pub(super) const STEP_TRIES: u32 = 4;

/// The pause before the second try of a step; it grows by as much before each further try.
const STEP_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Whether a failed step is worth another try: a temporary error, or bytes that did not
/// match their descriptor (a transfer cut or spoiled on the way; a source that really is
/// corrupt fails again, with the same error).
fn worth_retrying(error: &Error) -> bool {
    error.is_temporary()
        || matches!(
            error,
            Error::DigestMismatch { .. } | Error::SizeMismatch { .. }
        )
}

/// Runs `step` until it succeeds, fails in a way not [`worth_retrying`], or has been tried
/// [`STEP_TRIES`] times.
pub(super) async fn with_retries<T, F, Fut>(what: &str, mut step: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 1;
    loop {
        match step().await {
            Err(e) if attempt < STEP_TRIES && worth_retrying(&e) => {
                tracing::debug!(what, attempt, error = %e, "step failed, trying again");
                tokio::time::sleep(STEP_RETRY_PAUSE * attempt).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}
