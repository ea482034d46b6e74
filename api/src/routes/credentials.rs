//! `/v2/kafka/credential*`.

use axum::{
    Json,
    extract::{Path, State},
};

use crate::{
    Result,
    credentials::{self, CreateCredential, CredentialView},
    extract::{Caller, JsonBody},
    state::AppState,
};

pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateCredential>,
) -> Result<Json<CredentialView>> {
    Ok(Json(
        credentials::create(&state, &caller.account_id, body).await?,
    ))
}

pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<CredentialView>>> {
    Ok(Json(credentials::list(&state, &caller.account_id).await?))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<&'static str>> {
    credentials::delete(&state, &caller.account_id, &id).await?;
    Ok(super::ok())
}
