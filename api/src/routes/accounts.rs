//! `/v2/auth/*` and `/v2/api-keys`.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use crate::{
    Error, Result,
    accounts::{self, Account, Email, Password},
    api_keys::{self, ApiKey, NewApiKey},
    extract::{Caller, ClientAddress, JsonBody},
    password_reset,
    sessions::{self, Session},
    sign_up::{self, SignedUp},
    state::AppState,
};

/// A new session for `account_id`, as log-in, a password change and a reset answer it.
async fn new_session(state: &AppState, account_id: &str) -> Result<Json<Session>> {
    Ok(Json(
        sessions::issue(
            &state.store,
            &state.key,
            account_id,
            state.config.session_ttl_seconds,
        )
        .await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Credentials {
    email: String,
    password: String,
}

/// `POST /v2/auth/signup`: 201 and the account, or, when sign-ups are confirmed by mail, 202
/// and the same answer whether or not the address has an account.
pub(super) async fn sign_up(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<Response> {
    let email = Email::parse(&body.email)?;
    let password = Password::parse(&body.password, &email)?;
    Ok(
        match sign_up::sign_up(&state, &address, email, password).await? {
            SignedUp::Created(account) => (StatusCode::CREATED, Json(account)).into_response(),
            SignedUp::Mailed => (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({ "result": sign_up::MAILED })),
            )
                .into_response(),
        },
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SignUpConfirmation {
    token: String,
}

/// `POST /v2/auth/signup/confirm`: creates the account of a mailed confirmation link.
pub(super) async fn confirm_sign_up(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    JsonBody(body): JsonBody<SignUpConfirmation>,
) -> Result<(StatusCode, Json<Account>)> {
    let account = sign_up::confirm(&state, &address, &body.token).await?;
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
    new_session(&state, &account.id).await
}

/// `POST /v2/auth/logout`: ends the caller's session at once.
pub(super) async fn log_out(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<&'static str>> {
    let session = caller.session_id.ok_or_else(|| {
        Error::Forbidden(
            "log-out ends a session (Bearer token); revoke an API key with DELETE /v2/api-keys/{id}"
                .into(),
        )
    })?;
    sessions::revoke(&state.store, &session).await?;
    Ok(super::ok())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// `POST /v2/auth/password`: changes the password, ends every session of the account and
/// answers a new session for the caller.
pub(super) async fn change_password(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    caller: Caller,
    JsonBody(body): JsonBody<PasswordChange>,
) -> Result<Json<Session>> {
    accounts::change_password(
        &state.store,
        &state.login_limit,
        &address,
        &caller.account_id,
        &body.current_password,
        &body.new_password,
    )
    .await?;
    new_session(&state, &caller.account_id).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResetRequest {
    email: String,
}

/// `POST /v2/auth/password-reset`: mails a one-time link to the address when it has an account;
/// the same answer either way.
pub(super) async fn request_password_reset(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    JsonBody(body): JsonBody<ResetRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>)> {
    password_reset::request(&state, &address, &body.email).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({
            "result": "if the address has an account, a link to reset its password was sent to it; it works once, for an hour"
        })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResetConfirmation {
    token: String,
    new_password: String,
}

/// `POST /v2/auth/password-reset/confirm`: sets the password with a link's token, ends every
/// session, and answers a new one.
pub(super) async fn confirm_password_reset(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    JsonBody(body): JsonBody<ResetConfirmation>,
) -> Result<Json<Session>> {
    let account_id =
        password_reset::confirm(&state, &address, &body.token, &body.new_password).await?;
    new_session(&state, &account_id).await
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
