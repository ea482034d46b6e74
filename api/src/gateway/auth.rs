//! Who is calling the REST data API: HTTP Basic with a cluster credential (or, for
//! `/webhook`, `?user=…&pass=…`). Checked from the headers, before any body is read, and
//! holding one of the cluster's places among requests in progress for the whole request.

use axum::{
    extract::{FromRequestParts, Query},
    http::{HeaderMap, header::AUTHORIZATION, request::Parts},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde::Deserialize;

use super::{GatewayError, GatewayState};
use crate::{
    Error,
    concurrency::Slot,
    credentials::{self, Access},
    extract::client_of,
};

/// The caller's credential, checked, and its place among its cluster's requests in progress
/// (held until the handler returns).
#[derive(Debug)]
pub struct Client(pub Access, pub Slot);

impl FromRequestParts<GatewayState> for Client {
    type Rejection = GatewayError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &GatewayState,
    ) -> Result<Self, GatewayError> {
        let (user, pass) = basic_credentials(&parts.headers)?.ok_or_else(|| {
            Error::Unauthenticated(
                "authentication required: HTTP Basic with the cluster's REST username and password"
                    .into(),
            )
        })?;
        Ok(enter(state, parts, &user, &pass).await?)
    }
}

/// A `/webhook` caller: HTTP Basic, or the `user` and `pass` query parameters (webhook senders
/// often cannot set headers).
#[derive(Debug)]
pub struct WebhookClient(pub Client);

#[derive(Debug, Deserialize)]
struct WebhookCredentials {
    user: Option<String>,
    pass: Option<String>,
}

impl FromRequestParts<GatewayState> for WebhookClient {
    type Rejection = GatewayError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &GatewayState,
    ) -> Result<Self, GatewayError> {
        let (user, pass) = match basic_credentials(&parts.headers)? {
            Some(basic) => basic,
            None => {
                let Query(query) =
                    Query::<WebhookCredentials>::try_from_uri(&parts.uri).map_err(|e| {
                        Error::Invalid(format!("invalid query string: {}", e.body_text()))
                    })?;
                match (query.user, query.pass) {
                    (Some(user), Some(pass)) => (user, pass),
                    _ => {
                        return Err(Error::Unauthenticated(
                            "authentication required: HTTP Basic, or ?user=…&pass=…".into(),
                        )
                        .into());
                    }
                }
            }
        };
        Ok(WebhookClient(enter(state, parts, &user, &pass).await?))
    }
}

/// Authenticates `user` (within the failed authentications allowed per client address) and
/// takes a place among its cluster's requests in progress.
async fn enter(
    state: &GatewayState,
    parts: &Parts,
    user: &str,
    pass: &str,
) -> Result<Client, Error> {
    let address = client_of(
        &parts.extensions,
        &parts.headers,
        &state.app.config.trusted_proxies,
    )
    .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let access = state
        .app
        .login_limit
        .check_credential(&address, authenticate(state, user, pass))
        .await?;
    let slot = state.per_cluster.enter(&access.cluster_id)?;
    Ok(Client(access, slot))
}

/// Parses `Authorization: Basic …`; `None` when the header is absent.
pub fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, Error> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let invalid = || {
        Error::Unauthenticated(
            "the Authorization header must be HTTP Basic username:password".into(),
        )
    };
    let value = value.to_str().map_err(|_| invalid())?;
    let (scheme, encoded) = value.split_once(' ').ok_or_else(invalid)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(invalid());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| invalid())?;
    let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
    let (user, pass) = decoded.split_once(':').ok_or_else(invalid)?;
    Ok(Some((user.to_owned(), pass.to_owned())))
}

/// Checks a username and password against the cluster credentials.
pub async fn authenticate(state: &GatewayState, user: &str, pass: &str) -> Result<Access, Error> {
    credentials::authenticate(&state.app.store, &state.app.key, user, pass).await
}
