//! `/v2/kafka/cluster*`.

use axum::{
    Json,
    extract::{Path, State},
};

use crate::{
    Error, Result,
    clusters::{self, ClusterView, CreateCluster, RenameCluster},
    extract::{Caller, JsonBody},
    state::AppState,
};

/// The query of `POST /v2/kafka/cluster`.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct CreateOptions {
    /// Answer once the cluster is no longer `provisioning`.
    #[serde(default)]
    wait: bool,
    /// Seconds to wait at most (default and largest: [`clusters::MAX_CREATE_WAIT`]).
    timeout: Option<u64>,
}

pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    query: std::result::Result<
        axum::extract::Query<CreateOptions>,
        axum::extract::rejection::QueryRejection,
    >,
    JsonBody(body): JsonBody<CreateCluster>,
) -> Result<Json<ClusterView>> {
    let axum::extract::Query(options) = query.map_err(|e| Error::Invalid(e.body_text()))?;
    if options
        .timeout
        .is_some_and(|t| t > clusters::MAX_CREATE_WAIT.as_secs())
    {
        return Err(Error::Invalid(format!(
            "timeout is at most {} seconds",
            clusters::MAX_CREATE_WAIT.as_secs()
        )));
    }
    let created = clusters::create(&state, &caller.account_id, body).await?;
    if !options.wait {
        return Ok(Json(created));
    }
    let within = options
        .timeout
        .map_or(clusters::MAX_CREATE_WAIT, std::time::Duration::from_secs);
    Ok(Json(
        clusters::wait_until_ready(&state, &caller.account_id, &created.cluster_id, within).await?,
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
