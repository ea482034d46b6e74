//! The registry's error body, Confluent Schema Registry's: `{"error_code": N, "message": "…"}`
//! with Confluent's codes, which its clients read to tell "subject not found" from "version not
//! found" and an incompatible schema from an invalid one.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::MEDIA_TYPE;

/// An error answered in the registry's shape.
#[derive(Debug)]
pub struct RegistryError {
    status: StatusCode,
    code: u32,
    message: String,
    retry_after: Option<HeaderValue>,
}

/// Result of a registry handler.
pub type RegistryResult<T> = Result<T, RegistryError>;

impl RegistryError {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        RegistryError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 40401: no such subject (or only soft-deleted versions, unless they were asked for).
    pub fn subject_not_found(subject: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40401,
            format!("Subject '{subject}' not found."),
        )
    }

    /// 40402: the subject has no such version.
    pub fn version_not_found(version: i64) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40402,
            format!("Version {version} not found."),
        )
    }

    /// 40403: no schema with this id, or the schema is not registered under the subject.
    pub fn schema_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, 40403, "Schema not found")
    }

    /// 40404: the subject was soft-deleted already.
    pub fn subject_soft_deleted(subject: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40404,
            format!(
                "Subject '{subject}' was soft deleted. Set permanent=true to delete permanently"
            ),
        )
    }

    /// 40405: a permanent delete of a subject that was not soft-deleted first.
    pub fn subject_not_soft_deleted(subject: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40405,
            format!("Subject '{subject}' was not deleted first before being permanently deleted"),
        )
    }

    /// 40406: the version was soft-deleted already.
    pub fn version_soft_deleted(subject: &str, version: i64) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40406,
            format!(
                "Subject '{subject}' Version {version} was soft deleted. Set permanent=true to delete permanently"
            ),
        )
    }

    /// 40407: a permanent delete of a version that was not soft-deleted first.
    pub fn version_not_soft_deleted(subject: &str, version: i64) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40407,
            format!(
                "Subject '{subject}' Version {version} was not deleted first before being permanently deleted"
            ),
        )
    }

    /// 40408: the subject has no compatibility level of its own.
    pub fn subject_compatibility_not_configured(subject: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40408,
            format!(
                "Subject '{subject}' does not have subject-level compatibility configured; add ?defaultToGlobal=true for the registry's"
            ),
        )
    }

    /// 40409: the subject has no mode of its own.
    pub fn subject_mode_not_configured(subject: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            40409,
            format!(
                "Subject '{subject}' does not have subject-level mode configured; add ?defaultToGlobal=true for the registry's"
            ),
        )
    }

    /// 409: the schema breaks the subject's compatibility rule.
    pub fn incompatible(subject: &str, level: &str, details: &[String]) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            409,
            format!(
                "Schema being registered is incompatible with an earlier schema for subject \"{subject}\" (compatibility {level}), details: [{}]",
                details.join(", ")
            ),
        )
    }

    /// 42201: the schema does not parse, or names a reference that does not exist.
    pub fn invalid_schema(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
            format!("Invalid schema: {detail}"),
        )
    }

    /// 42202: a version that is neither a positive number, -1 nor `latest`.
    pub fn invalid_version(raw: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42202,
            format!(
                "The specified version '{raw}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
            ),
        )
    }

    /// 42203: an unknown compatibility level.
    pub fn invalid_compatibility(raw: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42203,
            format!(
                "Invalid compatibility level {raw:?}. Valid values are NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL and FULL_TRANSITIVE"
            ),
        )
    }

    /// 42204: an unknown mode.
    pub fn invalid_mode(raw: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42204,
            format!("Invalid mode {raw:?}. Valid values are READWRITE, READONLY and IMPORT"),
        )
    }

    /// 42205: the registry's or subject's mode does not allow this.
    pub fn not_permitted(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, 42205, message)
    }

    /// 42206: the version is referenced by another schema and cannot be deleted.
    pub fn reference_exists(subject: &str, version: i64, by: &[i64]) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            42206,
            format!(
                "One or more references exist to the schema {{subject={subject}, version={version}}}: schema ids {by:?}; delete those first"
            ),
        )
    }

    /// 40301: the credential may read the registry but not change it.
    pub fn read_only_credential() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            40301,
            "this credential may only read the schema registry: registering, deleting and changing settings need a credential with ALL permissions",
        )
    }

    /// 422 (Confluent's code for a body that is not what the route expects).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, 422, message)
    }

    /// 40400: no such registry route.
    pub fn no_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, 404, "HTTP 404 Not Found")
    }

    /// 405: the route exists but not with this method.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            405,
            "HTTP 405 Method Not Allowed",
        )
    }
}

/// The control plane's errors (authentication, rate limits, body limits, the store) keep their
/// HTTP status; the code is the status followed by 01, as Confluent does for its own (40101,
/// 50001, …), with 42201-style codes kept for the registry's own errors above.
impl From<crate::Error> for RegistryError {
    fn from(error: crate::Error) -> Self {
        let status = error.status();
        RegistryError {
            status,
            code: u32::from(status.as_u16()) * 100 + 1,
            retry_after: error.retry_after(),
            message: error.public_message(),
        }
    }
}

impl From<sqlx::Error> for RegistryError {
    fn from(error: sqlx::Error) -> Self {
        crate::Error::from(error).into()
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let body = json!({ "error_code": self.code, "message": self.message });
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, seconds);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"schema-registry\""),
            );
        }
        response
    }
}
