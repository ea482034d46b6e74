//! CSRF protection: a random per-browser seed in an HttpOnly cookie, and in every form a
//! keyed hash of it. A form is accepted only when its token matches this browser's seed, which
//! another site can neither read nor compute.

use axum::{
    extract::{FromRequest, FromRequestParts, Request},
    http::{HeaderValue, header, request::Parts},
    middleware::Next,
    response::Response,
};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use capstan_api::crypto::{constant_time_eq, random_token};
use serde::{Deserialize, de::DeserializeOwned};

use crate::{ConsoleState, Error, session};

const SEED_COOKIE: &str = "capstan_csrf";
const PURPOSE: &str = "console-csrf";

/// This browser's CSRF seed, put in the request by [`ensure_seed`].
#[derive(Clone, Debug)]
struct Seed(String);

/// Gives every browser a seed cookie on its first visit.
pub(crate) async fn ensure_seed(jar: CookieJar, mut request: Request, next: Next) -> Response {
    let existing = jar.get(SEED_COOKIE).map(|c| c.value().to_owned());
    let fresh = existing.is_none();
    let seed = existing.unwrap_or_else(|| random_token(32));
    let secure = session::is_https(request.headers());
    request.extensions_mut().insert(Seed(seed.clone()));
    let mut response = next.run(request).await;
    if fresh {
        let cookie = Cookie::build((SEED_COOKIE, seed))
            .path("/")
            .http_only(true)
            .secure(secure)
            .same_site(SameSite::Lax)
            .build();
        if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// The token forms of this browser must carry, as the hidden field `csrf`.
#[derive(Clone, Debug)]
pub(crate) struct CsrfToken(pub String);

fn expected(parts_seed: Option<&Seed>, state: &ConsoleState) -> Option<String> {
    parts_seed.map(|seed| state.app.key.keyed_hash(PURPOSE, seed.0.as_bytes()))
}

impl FromRequestParts<ConsoleState> for CsrfToken {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState) -> Result<Self, Error> {
        expected(parts.extensions.get::<Seed>(), state)
            .map(CsrfToken)
            .ok_or(Error::Csrf)
    }
}

#[derive(Deserialize)]
struct TokenField {
    csrf: Option<String>,
}

/// A URL-encoded form whose CSRF token has been checked; refused with 403 otherwise.
#[derive(Debug)]
pub(crate) struct CsrfForm<T>(pub T);

/// Largest form body the console accepts (its forms send a few hundred bytes); a larger one is
/// 413, a body that has not arrived within the API's body timeout 408.
pub(crate) const MAX_FORM_BYTES: usize = 64 * 1024;

impl<T: DeserializeOwned> FromRequest<ConsoleState> for CsrfForm<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &ConsoleState) -> Result<Self, Error> {
        let expected = expected(request.extensions().get::<Seed>(), state).ok_or(Error::Csrf)?;
        let body = capstan_api::extract::read_body(request, state, MAX_FORM_BYTES).await?;
        let token = serde_urlencoded::from_bytes::<TokenField>(&body)
            .ok()
            .and_then(|field| field.csrf)
            .ok_or(Error::Csrf)?;
        if !constant_time_eq(&token, &expected) {
            return Err(Error::Csrf);
        }
        serde_urlencoded::from_bytes(&body)
            .map(CsrfForm)
            .map_err(|e| Error::BadForm(e.to_string()))
    }
}
