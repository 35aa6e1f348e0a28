//! The error type of the test support crate.

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while setting up or talking to a test server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path or program.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A server process exited or did not answer before its deadline.
    #[error("`{program}` did not start serving: {reason}; its log ends with:\n{log}")]
    Startup {
        /// The program that was started.
        program: String,
        /// Why it is considered failed.
        reason: String,
        /// The tail of its log, to see why.
        log: String,
    },
    /// An external command exited unsuccessfully.
    #[error("`{command}` failed with {status}; stderr:\n{stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// An HTTP request could not be sent or its answer not read.
    #[error("HTTP request `{method} {url}` failed: {reason}")]
    Http {
        /// The request method.
        method: String,
        /// The request URL.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// Setting up keys, certificates or fixtures failed.
    #[error("{0}")]
    Setup(String),
}

impl Error {
    /// An [`Error::Io`] with `context`.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
