//! The schema registry, Confluent Schema Registry's API on each cluster's REST endpoint under
//! `/schema-registry`, as Upstash served it: the cluster's REST credentials authenticate, every
//! cluster has a registry of its own, and its data lives in Capstan's store. Confluent's
//! serializers (`@kafkajs/confluent-schema-registry`, `confluent-kafka`'s `SchemaRegistryClient`)
//! use it unchanged. Schema requests are free: they are not metered as messages.

mod avro_resolved;
mod catalog;
mod error;
mod evolution;
mod formats;
mod json_schema;
pub mod openapi;
mod protobuf;
mod routes;
mod settings;

use axum::{
    extract::{FromRequest, FromRequestParts, Request},
    http::{HeaderValue, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};

pub use catalog::forget_cluster;
pub use error::{RegistryError, RegistryResult};
pub use routes::router;

use crate::{
    concurrency::Slot,
    credentials::{Access, Permissions},
    gateway::GatewayState,
};

/// The media type of every registry answer (clients also accept `application/json`).
pub const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// The largest request body the registry reads (a schema and its metadata).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The caller: a credential of the cluster whose registry this is, holding one of the
/// cluster's places among REST requests in progress.
#[derive(Debug)]
pub struct Caller {
    access: Access,
    _slot: Slot,
}

impl Caller {
    /// The cluster whose registry the caller uses.
    pub fn cluster(&self) -> &str {
        &self.access.cluster_id
    }

    /// Registering, deleting and changing settings need a credential with ALL permissions;
    /// PRODUCE and CONSUME credentials read (their serializers look schemas up).
    pub fn require_write(&self) -> RegistryResult<()> {
        if self.access.permissions != Permissions::All {
            return Err(RegistryError::read_only_credential());
        }
        Ok(())
    }
}

impl FromRequestParts<GatewayState> for Caller {
    type Rejection = RegistryError;

    async fn from_request_parts(parts: &mut Parts, state: &GatewayState) -> RegistryResult<Self> {
        // The REST data API's authentication, answered in the registry's error shape.
        let crate::gateway::Client(access, slot) =
            crate::gateway::Client::from_request_parts(parts, state)
                .await
                .map_err(|crate::gateway::GatewayError(e)| RegistryError::from(e))?;
        Ok(Caller {
            access,
            _slot: slot,
        })
    }
}

/// A JSON request body of at most [`MAX_BODY_BYTES`], whatever its Content-Type.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned> FromRequest<GatewayState> for Body<T> {
    type Rejection = RegistryError;

    async fn from_request(request: Request, state: &GatewayState) -> RegistryResult<Self> {
        let bytes = crate::extract::read_body(request, state, MAX_BODY_BYTES).await?;
        serde_json::from_slice(&bytes).map(Body).map_err(|e| {
            RegistryError::unprocessable(format!(
                "the request body is not what this route expects: {e}"
            ))
        })
    }
}

/// An answer in the registry's media type.
#[derive(Debug)]
pub struct Reply<T>(pub T);

impl<T: Serialize> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        let mut response = axum::Json(self.0).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
        response
    }
}
