//! `/v2/kafka/topic*`.

use axum::{
    Json,
    extract::{Path, State},
};

use crate::{
    Result,
    extract::{Caller, JsonBody},
    state::AppState,
    topics::{self, CreateTopic, TopicView, UpdateTopic},
};

pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateTopic>,
) -> Result<Json<TopicView>> {
    Ok(Json(
        topics::create(&state, &caller.account_id, body).await?,
    ))
}

pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(cluster_id): Path<String>,
) -> Result<Json<Vec<TopicView>>> {
    Ok(Json(
        topics::list(&state, &caller.account_id, &cluster_id).await?,
    ))
}

pub(super) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TopicView>> {
    Ok(Json(topics::get(&state, &caller.account_id, &id).await?))
}

pub(super) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UpdateTopic>,
) -> Result<Json<TopicView>> {
    Ok(Json(
        topics::update(&state, &caller.account_id, &id, body).await?,
    ))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<&'static str>> {
    topics::delete(&state, &caller.account_id, &id).await?;
    Ok(super::ok())
}
