//! Who is calling the REST data API: HTTP Basic with a cluster credential.

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, header::AUTHORIZATION, request::Parts},
};
use base64::{Engine, engine::general_purpose::STANDARD};

use super::{GatewayError, GatewayState};
use crate::{
    Error,
    credentials::{self, Access},
};

/// The caller's credential, checked.
#[derive(Clone, Debug)]
pub struct Client(pub Access);

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
        Ok(Client(authenticate(state, &user, &pass).await?))
    }
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
