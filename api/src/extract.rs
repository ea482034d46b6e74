//! Request extractors that answer Capstan's JSON errors: the authenticated caller, the
//! client's address and a lenient JSON body.

use axum::{
    body::Bytes,
    extract::{ConnectInfo, FromRequest, FromRequestParts, Request},
    http::{header::AUTHORIZATION, request::Parts},
};
use std::net::SocketAddr;

use base64::{Engine, engine::general_purpose::STANDARD};
use serde::de::DeserializeOwned;

use crate::{Error, Result, accounts, api_keys, sessions, state::AppState};

/// The address a request came from (the peer of the TCP connection), for rate limits.
#[derive(Clone, Debug)]
pub struct ClientAddress(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _: &S,
    ) -> std::result::Result<Self, Self::Rejection> {
        Ok(ClientAddress(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip().to_string())
                .unwrap_or_else(|| "unknown".to_owned()),
        ))
    }
}

/// The account making the request, from HTTP Basic `EMAIL:API_KEY` or `Bearer <session token>`.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The caller's account id.
    pub account_id: String,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let missing = || {
            Error::Unauthenticated(
                "authentication required: HTTP Basic EMAIL:API_KEY or Bearer <token from /v2/auth/login>".into(),
            )
        };
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(missing)?;
        let header = header.to_str().map_err(|_| missing())?;
        let (scheme, value) = header.split_once(' ').ok_or_else(missing)?;
        let account_id = if scheme.eq_ignore_ascii_case("basic") {
            let decoded = STANDARD
                .decode(value.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| {
                    Error::Unauthenticated("the Basic credentials are not valid base64 text".into())
                })?;
            let (email, key) = decoded.split_once(':').ok_or_else(|| {
                Error::Unauthenticated("Basic credentials must be EMAIL:API_KEY".into())
            })?;
            api_keys::authenticate(&state.store, &state.key, email, key).await?
        } else if scheme.eq_ignore_ascii_case("bearer") {
            let account_id = sessions::verify(&state.key, value.trim())?;
            accounts::find(&state.store, &account_id)
                .await?
                .ok_or_else(|| {
                    Error::Unauthenticated("the account of this token no longer exists".into())
                })?
                .id
        } else {
            return Err(missing());
        };
        Ok(Caller { account_id })
    }
}

/// A JSON body parsed whatever the Content-Type says. An empty body or `null` reads as `{}`,
/// because real clients send both (terraform's DELETE sends `null`, some POSTs send nothing).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                Error::Invalid(format!(
                    "could not read the request body: {}",
                    rejection.body_text()
                ))
            })?;
        match parse_json(&bytes)? {
            Some(value) => Ok(JsonBody(value)),
            None => parse_json(b"{}")?
                .map(JsonBody)
                .ok_or_else(|| Error::Invalid("a JSON body is required".into())),
        }
    }
}

/// Parses a JSON body whatever the Content-Type said. An empty body or `null` is `None`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<Option<T>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Error::Invalid("the request body is not UTF-8".into()))?;
    if matches!(text.trim(), "" | "null") {
        return Ok(None);
    }
    let invalid = |e: serde_json::Error| Error::Invalid(format!("invalid request body: {e}"));
    let mut value: serde_json::Value = serde_json::from_str(text).map_err(invalid)?;
    integral_floats_to_integers(&mut value);
    serde_json::from_value(value).map(Some).map_err(invalid)
}

/// JSON has one number type: `3.0` is the integer 3 (as JSON Schema says), so whole floats are
/// turned into integers before typed parsing.
fn integral_floats_to_integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f >= i64::MIN as f64
                && f < i64::MAX as f64
            {
                *value = serde_json::Value::from(f as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        serde_json::Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}
