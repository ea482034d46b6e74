//! Request extractors that answer Capstan's JSON errors: the authenticated caller, the
//! client's address and a lenient JSON body.

use axum::{
    body::Bytes,
    extract::{ConnectInfo, FromRequest, FromRequestParts, Request},
    http::{header::AUTHORIZATION, request::Parts},
};
use std::{net::SocketAddr, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use serde::de::DeserializeOwned;

use crate::{Error, Result, api_keys, sessions, state::AppState};

/// The address a request came from, for rate limits: the TCP peer, or the client a trusted
/// proxy forwarded for (see [`crate::client_address`]), as the API's router resolved it.
#[derive(Clone, Debug)]
pub struct ClientAddress(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _: &S,
    ) -> std::result::Result<Self, Self::Rejection> {
        if let Some(resolved) = parts.extensions.get::<ClientAddress>() {
            return Ok(resolved.clone());
        }
        Ok(ClientAddress(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip().to_string())
                .unwrap_or_else(|| "unknown".to_owned()),
        ))
    }
}

/// The client of a request with these `extensions` (its [`ConnectInfo`]) and `headers`, with
/// `trusted` proxies (see [`crate::client_address`]); `None` when the connection's peer is not
/// known.
pub fn client_of(
    extensions: &axum::http::Extensions,
    headers: &axum::http::HeaderMap,
    trusted: &[crate::client_address::Cidr],
) -> Option<std::net::IpAddr> {
    let ConnectInfo(peer) = extensions.get::<ConnectInfo<SocketAddr>>()?;
    let forwarded = headers
        .get("x-forwarded-for")
        .and_then(|value| value.to_str().ok());
    Some(crate::client_address::resolve(
        peer.ip(),
        forwarded,
        trusted,
    ))
}

/// Resolves the request's [`ClientAddress`] once, with the platform's trusted proxies.
pub async fn resolve_client_address(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(client) = client_of(
        request.extensions(),
        request.headers(),
        &state.config.trusted_proxies,
    ) {
        request
            .extensions_mut()
            .insert(ClientAddress(client.to_string()));
    }
    next.run(request).await
}

/// The account making the request, from HTTP Basic `EMAIL:API_KEY` or `Bearer <session token>`,
/// checked before any body is read, with its place among the account's requests in progress
/// (held until the handler returns).
#[derive(Debug)]
pub struct Caller {
    /// The caller's account id.
    pub account_id: String,
    /// The session of a `Bearer` caller (`None` for an API key).
    pub session_id: Option<String>,
    _slot: crate::concurrency::Slot,
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
        let mut session_id = None;
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
            let address = ClientAddress::from_request_parts(parts, state)
                .await
                .unwrap_or_else(|never| match never {});
            state
                .login_limit
                .check_credential(
                    &address.0,
                    api_keys::authenticate(&state.store, &state.key, email, key),
                )
                .await?
        } else if scheme.eq_ignore_ascii_case("bearer") {
            let verified = sessions::verify(&state.store, &state.key, value.trim()).await?;
            session_id = Some(verified.session_id);
            verified.account_id
        } else {
            return Err(missing());
        };
        let slot = state.per_account.enter(&account_id)?;
        Ok(Caller {
            account_id,
            session_id,
            _slot: slot,
        })
    }
}

/// Time a client has, once its headers arrived, to send the whole body; a slower upload is
/// answered 408 and its connection closed.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads a request's whole body, within [`BODY_TIMEOUT`] and `limit` bytes (the router's
/// `DefaultBodyLimit`). A body whose declared length is over the limit is refused before any
/// of it is read.
pub async fn read_body<S: Send + Sync>(request: Request, state: &S, limit: usize) -> Result<Bytes> {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok()?.parse::<u64>().ok());
    if let Some(declared) = declared
        && declared > limit as u64
    {
        return Err(Error::TooLarge(format!(
            "the request body is {declared} bytes; this endpoint accepts at most {limit}"
        )));
    }
    match tokio::time::timeout(BODY_TIMEOUT, Bytes::from_request(request, state)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(rejection)) if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            Err(Error::TooLarge(format!(
                "the request body is larger than this endpoint accepts (at most {limit} bytes)"
            )))
        }
        Ok(Err(rejection)) => Err(Error::Invalid(format!(
            "could not read the request body: {}",
            rejection.body_text()
        ))),
        Err(_) => Err(Error::TimedOut(format!(
            "the request body did not arrive within {} seconds; send it faster or in smaller parts",
            BODY_TIMEOUT.as_secs()
        ))),
    }
}

/// A JSON body parsed whatever the Content-Type says. An empty body or `null` reads as `{}`,
/// because real clients send both (terraform's DELETE sends `null`, some POSTs send nothing).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self> {
        let bytes = read_body(request, state, crate::routes::MAX_BODY_BYTES).await?;
        match parse_json(&bytes)? {
            Some(value) => Ok(JsonBody(value)),
            None => parse_json(b"{}")?
                .map(JsonBody)
                .ok_or_else(|| Error::Invalid("a JSON body is required".into())),
        }
    }
}

/// Bodies up to this size that do not parse into their type are tried once more with whole
/// floats read as integers; larger ones are parsed only straight into their type, so a large
/// body never becomes a much larger `serde_json::Value` in memory.
const LENIENT_NUMBERS_UP_TO: usize = 64 * 1024;

/// Parses a JSON body whatever the Content-Type said, straight into its type. An empty body or
/// `null` is `None`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<Option<T>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Error::Invalid("the request body is not UTF-8".into()))?;
    if matches!(text.trim(), "" | "null") {
        return Ok(None);
    }
    let invalid = |e: serde_json::Error| Error::Invalid(format!("invalid request body: {e}"));
    match serde_json::from_str(text) {
        Ok(parsed) => Ok(Some(parsed)),
        Err(error) if bytes.len() > LENIENT_NUMBERS_UP_TO || !error.is_data() => {
            Err(invalid(error))
        }
        Err(error) => {
            // `3.0` where an integer is expected is valid JSON Schema for an integer.
            let mut value: serde_json::Value = serde_json::from_str(text).map_err(invalid)?;
            if !integral_floats_to_integers(&mut value) {
                return Err(invalid(error));
            }
            serde_json::from_value(value).map(Some).map_err(invalid)
        }
    }
}

/// JSON has one number type: `3.0` is the integer 3 (as JSON Schema says), so whole floats are
/// turned into integers before typed parsing. True when any was.
fn integral_floats_to_integers(value: &mut serde_json::Value) -> bool {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f >= i64::MIN as f64
                && f < i64::MAX as f64
            {
                *value = serde_json::Value::from(f as i64);
                return true;
            }
            false
        }
        serde_json::Value::Array(items) => items
            .iter_mut()
            .fold(false, |any, item| integral_floats_to_integers(item) | any),
        serde_json::Value::Object(map) => map
            .values_mut()
            .fold(false, |any, item| integral_floats_to_integers(item) | any),
        _ => false,
    }
}
