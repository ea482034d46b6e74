//! The crate's one error type.

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong talking to brokers or serving the gateway.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A broker could not be reached or did not answer in time.
    #[error("broker unreachable: {0}")]
    Unreachable(String),
    /// The brokers refused the credentials.
    #[error("broker authentication failed: {0}")]
    Authentication(String),
    /// A malformed or unexpected protocol exchange.
    #[error("Kafka protocol error: {0}")]
    Protocol(String),
    /// A listener could not be bound or failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
