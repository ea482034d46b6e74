//! `/v2/auth/*` and `/v2/api-keys`.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::Deserialize;

use crate::{
    Result,
    accounts::{self, Account, Email, Password},
    api_keys::{self, ApiKey, NewApiKey},
    extract::{Caller, ClientAddress, JsonBody},
    sessions::{self, Session},
    state::AppState,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Credentials {
    email: String,
    password: String,
}

pub(super) async fn sign_up(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<(StatusCode, Json<Account>)> {
    let email = Email::parse(&body.email)?;
    let password = Password::parse(&body.password, &email)?;
    let account =
        accounts::sign_up_from(&state.store, &state.login_limit, &address, email, password).await?;
    Ok((StatusCode::CREATED, Json(account)))
}

pub(super) async fn log_in(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<Json<Session>> {
    let account = accounts::log_in_from(
        &state.store,
        &state.login_limit,
        &address,
        &body.email,
        &body.password,
    )
    .await?;
    Ok(Json(sessions::issue(
        &state.key,
        &account.id,
        state.config.session_ttl_seconds,
    )?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateApiKey {
    name: String,
}

pub(super) async fn create_api_key(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateApiKey>,
) -> Result<(StatusCode, Json<NewApiKey>)> {
    let name = api_keys::parse_name(&body.name)?;
    let key = api_keys::create(
        &state.store,
        &state.key,
        &caller.account_id,
        name,
        state.config.max_api_keys,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(key)))
}

pub(super) async fn list_api_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ApiKey>>> {
    Ok(Json(
        api_keys::list(&state.store, &caller.account_id).await?,
    ))
}

pub(super) async fn revoke_api_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<&'static str>> {
    api_keys::revoke(&state.store, &caller.account_id, &id).await?;
    Ok(super::ok())
}
