//! Capstan's web console: server-rendered pages (askama) over the control plane's domain.
//!
//! Every page works without JavaScript; the little script shipped with the binary only adds
//! copy buttons. Sessions are the control plane's JWTs in an HttpOnly, SameSite cookie, every
//! form carries a CSRF token, and log-in attempts are rate-limited.

mod assets;
mod chart;
mod csrf;
mod error;
mod format;
mod forms;
mod pages;
mod session;

use std::sync::Arc;

use axum::{
    Router,
    http::{HeaderMap, header::ACCEPT},
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use capstan_api::state::AppState;
use capstan_billing::pricing::PriceList;

pub use error::{Error, Result};

/// What every console handler shares.
#[derive(Clone, Debug)]
pub struct ConsoleState {
    /// The control plane.
    pub app: AppState,
    /// Prices shown beside each choice and used to explain the cap.
    pub prices: Arc<PriceList>,
}

/// The console's routes, to be merged with the provisioning API's on one listener.
pub fn router(app: AppState, prices: PriceList) -> Router {
    let state = ConsoleState {
        app,
        prices: Arc::new(prices),
    };
    use pages::{account, api_keys, auth, budget, clusters, invoices, overview, topics, usage};
    Router::new()
        .route("/", get(auth::home))
        .route("/signup", get(auth::sign_up_page).post(auth::sign_up))
        .route(
            "/confirm-sign-up",
            get(auth::confirm_sign_up_page).post(auth::confirm_sign_up),
        )
        .route("/login", get(auth::log_in_page).post(auth::log_in))
        .route("/logout", post(auth::log_out))
        .route(
            "/forgot-password",
            get(auth::forgot_password_page).post(auth::forgot_password),
        )
        .route(
            "/reset-password",
            get(auth::reset_password_page).post(auth::reset_password),
        )
        .route("/clusters", get(clusters::list).post(clusters::create))
        .route("/clusters/{id}", get(overview::show))
        .route("/clusters/{id}/rename", post(clusters::rename))
        .route(
            "/clusters/{id}/delete",
            get(clusters::confirm_delete).post(clusters::delete),
        )
        .route(
            "/clusters/{id}/reset-password",
            post(overview::reset_password),
        )
        .route(
            "/clusters/{id}/credentials",
            post(overview::create_credential),
        )
        .route(
            "/clusters/{id}/credentials/{credential}/delete",
            post(overview::delete_credential),
        )
        .route(
            "/clusters/{id}/topics",
            get(topics::list).post(topics::create),
        )
        .route("/clusters/{id}/topics/{topic}", post(topics::update))
        .route("/clusters/{id}/topics/{topic}/delete", post(topics::delete))
        .route("/clusters/{id}/usage", get(usage::show))
        .route(
            "/clusters/{id}/budget",
            get(budget::show).post(budget::update),
        )
        .route("/invoices", get(invoices::list))
        .route("/invoices/{id}", get(invoices::show))
        .route("/invoices/{id}/print", get(invoices::print))
        .route("/api-keys", get(api_keys::list).post(api_keys::create))
        .route("/account", get(account::show))
        .route("/account/password", post(account::change_password))
        .route("/api-keys/{id}/revoke", post(api_keys::revoke))
        .route("/assets/{file}", get(assets::serve))
        .fallback(not_found)
        .layer(middleware::from_fn(csrf::ensure_seed))
        .layer(axum::extract::DefaultBodyLimit::max(csrf::MAX_FORM_BYTES))
        .with_state(state)
}

/// Unknown paths: the console's 404 page for browsers, the API's JSON error for API clients.
async fn not_found(headers: HeaderMap) -> Response {
    let browser = headers
        .get(ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if browser {
        Error::NotFound.into_response()
    } else {
        capstan_api::Error::NotFound("route").into_response()
    }
}
