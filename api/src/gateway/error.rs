//! The REST data API's error body: `{"result": null, "error": "…", "status": N}`, the shape
//! Upstash's SDK reads, with the HTTP status equal to `status`.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::Error;

/// An [`Error`] answered in the REST data API's shape.
#[derive(Debug)]
pub struct GatewayError(pub Error);

impl<E: Into<Error>> From<E> for GatewayError {
    fn from(error: E) -> Self {
        GatewayError(error.into())
    }
}

/// Result of a gateway handler.
pub type GatewayResult<T> = std::result::Result<T, GatewayError>;

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let retry_after = self.0.retry_after();
        let message = self.0.public_message();
        let mut response = (
            status,
            Json(json!({ "result": null, "error": message, "status": status.as_u16() })),
        )
            .into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, seconds);
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"kafka\""),
            );
        }
        response
    }
}
