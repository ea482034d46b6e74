//! Console sessions: the control plane's session JWT in an HttpOnly, SameSite cookie.

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, request::Parts},
};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use capstan_api::sessions;

use crate::{ConsoleState, Error, Result};

const SESSION_COOKIE: &str = "capstan_session";

/// The logged-in visitor: their account, e-mail address (shown in the header) and the session
/// of this cookie (ended at log-out).
pub(crate) type Viewer = sessions::Verified;

/// The logged-in visitor of this cookie jar, if any (an expired or forged token is nobody).
pub(crate) async fn current(jar: &CookieJar, state: &ConsoleState) -> Result<Option<Viewer>> {
    let Some(token) = jar.get(SESSION_COOKIE) else {
        return Ok(None);
    };
    match sessions::verify(&state.app.store, &state.app.key, token.value()).await {
        Ok(verified) => Ok(Some(verified)),
        Err(capstan_api::Error::Unauthenticated(_)) => Ok(None),
        Err(trouble) => Err(trouble.into()),
    }
}

impl FromRequestParts<ConsoleState> for Viewer {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState) -> Result<Self> {
        let jar = CookieJar::from_headers(&parts.headers);
        current(&jar, state).await?.ok_or(Error::LoginRequired)
    }
}

/// Whether the browser reached us over HTTPS (through a TLS-terminating proxy that says so);
/// cookies are then marked `Secure`.
pub(crate) fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// Adds the session cookie for a freshly issued token.
pub(crate) fn start(jar: CookieJar, token: String, ttl_seconds: i64, secure: bool) -> CookieJar {
    jar.add(
        Cookie::build((SESSION_COOKIE, token))
            .path("/")
            .http_only(true)
            .secure(secure)
            .same_site(SameSite::Lax)
            .max_age(time::Duration::seconds(ttl_seconds))
            .build(),
    )
}

/// Removes the session cookie.
pub(crate) fn end(jar: CookieJar) -> CookieJar {
    jar.remove(Cookie::build(SESSION_COOKIE).path("/"))
}

/// `scheme://host` of the console as the browser reached it, for examples shown to the user.
pub(crate) fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if is_https(headers) { "https" } else { "http" };
    format!("{scheme}://{host}")
}
