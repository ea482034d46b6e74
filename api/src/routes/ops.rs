//! Operations endpoints: health, readiness, metrics, the OpenAPI document.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};
use prometheus::{Encoder, TextEncoder};
use serde_json::{Value, json};

use crate::{Error, Result, state::AppState};

pub(super) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub(super) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(e) => {
            tracing::warn!(error = %crate::error::cause_chain(&e), "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "error": "database unreachable" })),
            )
        }
    }
}

pub(super) async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse> {
    let counts: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, COUNT(*) FROM clusters GROUP BY state")
            .fetch_all(state.store.pool())
            .await?;
    state.metrics.clusters.reset();
    for (cluster_state, count) in counts {
        state
            .metrics
            .clusters
            .with_label_values(&[cluster_state.as_str()])
            .set(count);
    }
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&state.metrics.registry.gather(), &mut buffer)
        .map_err(|e| Error::internal("could not encode metrics", e))?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        buffer,
    ))
}

pub(super) async fn openapi(State(state): State<AppState>) -> Json<Value> {
    Json(crate::openapi::document(&state.config.regions))
}
