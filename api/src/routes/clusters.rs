//! `/v2/kafka/cluster*`.

use axum::{
    Json,
    extract::{Path, State},
};

use crate::{
    Result,
    clusters::{self, ClusterView, CreateCluster, RenameCluster},
    extract::{Caller, JsonBody},
    state::AppState,
};

pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateCluster>,
) -> Result<Json<ClusterView>> {
    Ok(Json(
        clusters::create(&state, &caller.account_id, body).await?,
    ))
}

pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ClusterView>>> {
    Ok(Json(clusters::list(&state, &caller.account_id).await?))
}

pub(super) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ClusterView>> {
    Ok(Json(clusters::get(&state, &caller.account_id, &id).await?))
}

pub(super) async fn rename(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RenameCluster>,
) -> Result<Json<ClusterView>> {
    Ok(Json(
        clusters::rename(&state, &caller.account_id, &id, body).await?,
    ))
}

pub(super) async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ClusterView>> {
    Ok(Json(
        clusters::reset_password(&state, &caller.account_id, &id).await?,
    ))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<&'static str>> {
    clusters::delete(&state, &caller.account_id, &id).await?;
    Ok(super::ok())
}
