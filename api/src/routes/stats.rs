//! `/v2/kafka/stats/*` and `/v2/kafka/usage/{cluster_id}`.

use axum::{
    Json,
    extract::{Path, Query, State},
};
use serde_json::Value;

use crate::{
    Error, Result,
    extract::Caller,
    state::AppState,
    stats::{self, UsageQuery, UsageReport},
};

pub(super) async fn cluster(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    Ok(Json(stats::cluster(&state, &caller.account_id, &id).await?))
}

pub(super) async fn topic(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    Ok(Json(stats::topic(&state, &caller.account_id, &id).await?))
}

pub(super) async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<UsageReport>> {
    let Query(query) = query.map_err(|e| Error::Invalid(e.body_text()))?;
    Ok(Json(
        stats::usage(&state, &caller.account_id, &id, query).await?,
    ))
}
