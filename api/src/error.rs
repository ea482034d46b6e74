//! The crate's one error type and its mapping to the documented JSON error body.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the control plane.
///
/// Client errors carry a message written for the user; internal errors are logged once
/// (with their cause chain) and answered with a generic message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or a value is out of its allowed range (400).
    #[error("{0}")]
    Invalid(String),
    /// No credentials, or wrong ones (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// The resource does not exist or belongs to someone else (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Something named in the request does not exist; the message says what and what to do (404).
    #[error("{0}")]
    Missing(String),
    /// The resource already exists, or the request conflicts with its state (409).
    #[error("{0}")]
    Conflict(String),
    /// A plan or account quota would be exceeded (403, with the limit explained).
    #[error("{0}")]
    LimitExceeded(String),
    /// The cluster is rate-limited (price cap, budget or free plan); the message says why and
    /// `Retry-After` when the next request may go ahead (429).
    #[error("{reason}; the next request may go ahead in {}s", retry_after_secs(*.retry_after))]
    RateLimited {
        /// Why the cluster is limited.
        reason: String,
        /// How long until the next request may go ahead.
        retry_after: std::time::Duration,
    },
    /// The client did not send its request in time (408).
    #[error("{0}")]
    TimedOut(String),
    /// The request body is larger than the endpoint accepts (413).
    #[error("{0}")]
    TooLarge(String),
    /// Too much work of one kind at once (password hashing); retry in a moment (503).
    #[error("{0}")]
    Overloaded(String),
    /// The cluster's brokers could not be reached or refused the change (503).
    #[error("{0}")]
    Broker(String),
    /// A database error.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// A migration could not be applied.
    #[error("could not apply database migrations")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Anything else that is not the caller's fault.
    #[error("{context}")]
    Internal {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// Wraps an unexpected failure with a sentence saying what was being done.
    pub fn internal(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Internal {
            context: context.into(),
            source: source.into(),
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) | Error::LimitExceeded(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) | Error::Missing(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Broker(_) | Error::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Database(e) if database_unavailable(e) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Database(_) | Error::Migrate(_) | Error::Internal { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

impl Error {
    /// The `Retry-After` header a rate-limited request is answered with.
    pub(crate) fn retry_after(&self) -> Option<HeaderValue> {
        match self {
            Error::RateLimited { retry_after, .. } => {
                Some(HeaderValue::from(retry_after_secs(*retry_after)))
            }
            Error::Overloaded(_) => Some(HeaderValue::from(1)),
            Error::Database(e) if database_unavailable(e) => Some(HeaderValue::from(1)),
            _ => None,
        }
    }

    /// The message a client is answered with: the error itself for the client's faults and
    /// for temporary trouble it should retry; a generic one (with the cause logged once) for
    /// the platform's own faults.
    pub(crate) fn public_message(&self) -> String {
        match self {
            Error::Broker(_) => {
                tracing::warn!(error = %self, "broker unavailable");
                self.to_string()
            }
            Error::Overloaded(_) => self.to_string(),
            Error::Database(e) if database_unavailable(e) => {
                tracing::warn!(error = %cause_chain(self), "database unavailable");
                "the database is not answering; retry in a moment".to_owned()
            }
            _ if self.status().is_server_error() => {
                tracing::error!(error = %cause_chain(self), "request failed");
                "internal server error; the cause has been logged".to_owned()
            }
            _ => self.to_string(),
        }
    }
}

/// True for database trouble a retry may get past: the database is down, restarting, out of
/// connections, or busy (SQLite's lock), as opposed to a wrong query or a broken invariant.
fn database_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            // PostgreSQL: connection exceptions (08…), operator intervention such as a
            // shutdown (57P…), too many connections; SQLite: busy and locked.
            code.starts_with("08")
                || code.starts_with("57P")
                || code == "53300"
                || code == "5"
                || code == "6"
        }),
        _ => false,
    }
}

/// Whole seconds for `Retry-After`, rounded up (at least 1: the header cannot say less).
fn retry_after_secs(wait: std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Formats an error and its sources as one line: `a: b: c`.
pub fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = self.retry_after();
        let message = self.public_message();
        // Both `error` and `message` because Upstash's clients read one or the other;
        // `status` repeats the HTTP code as the REST data API's error shape does.
        let body = json!({ "error": message, "message": message, "status": status.as_u16() });
        let mut response = (status, Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, seconds);
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"capstan\""),
            );
        }
        response
    }
}
