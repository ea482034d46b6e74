//! HTTP routes: thin handlers that parse, authorize, call the domain and map its error.

mod accounts;
mod billing;
mod clusters;
mod credentials;
mod ops;
mod stats;
mod topics;

use axum::{
    Router,
    http::{StatusCode, Uri},
    middleware,
    routing::{delete, get, patch, post},
};

use crate::{Error, state::AppState};

/// The control plane's router (provisioning API and operations endpoints), with the web
/// console's routes (wired in by the binary) on the same listener when given. The console then
/// also answers unknown paths (a page for browsers, the JSON error for API clients); without it
/// they get the JSON error.
pub fn router(state: AppState, console: Option<Router>) -> Router {
    let api = Router::new()
        .route("/v2/auth/signup", post(accounts::sign_up))
        .route("/v2/auth/login", post(accounts::log_in))
        .route(
            "/v2/api-keys",
            get(accounts::list_api_keys).post(accounts::create_api_key),
        )
        .route("/v2/api-keys/{id}", delete(accounts::revoke_api_key))
        .route("/v2/kafka/cluster", post(clusters::create))
        .route("/v2/kafka/clusters", get(clusters::list))
        .route(
            "/v2/kafka/cluster/{id}",
            get(clusters::get).delete(clusters::delete),
        )
        .route("/v2/kafka/rename-cluster/{id}", post(clusters::rename))
        .route(
            "/v2/kafka/reset-password/{id}",
            post(clusters::reset_password),
        )
        .route("/v2/kafka/topic", post(topics::create))
        .route("/v2/kafka/topics/{cluster_id}", get(topics::list))
        .route(
            "/v2/kafka/topic/{id}",
            get(topics::get).delete(topics::delete),
        )
        .route("/v2/kafka/update-topic/{id}", post(topics::update))
        .route("/v2/kafka/credential", post(credentials::create))
        .route("/v2/kafka/credentials", get(credentials::list))
        .route("/v2/kafka/credential/{id}", delete(credentials::delete))
        .route(
            "/v2/kafka/update-budget/{id}",
            patch(billing::update_budget),
        )
        .route("/v2/kafka/cost/{id}", get(billing::cost))
        .route("/v2/invoices", get(billing::invoices))
        .route("/v2/invoices/{id}", get(billing::invoice))
        .route("/v2/invoices/{id}/csv", get(billing::invoice_csv))
        .route("/v2/invoices/{id}/html", get(billing::invoice_html))
        .route(
            "/v2/invoices/{id}/usage.csv",
            get(billing::invoice_usage_csv),
        )
        .route("/v2/cost", get(billing::account_cost))
        .route("/v2/stripe/webhook", post(billing::stripe_webhook))
        .route("/v2/kafka/stats/cluster/{id}", get(stats::cluster))
        .route("/v2/kafka/stats/topic/{id}", get(stats::topic))
        .route("/v2/kafka/usage/{id}", get(stats::usage))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .with_state(state.clone());
    match console {
        Some(console) => api.merge(console),
        None => api.fallback(not_found),
    }
    .method_not_allowed_fallback(method_not_allowed)
    .layer(middleware::from_fn_with_state(state, crate::metrics::track))
    .layer(tower_http::trace::TraceLayer::new_for_http())
}

async fn not_found(uri: Uri) -> Error {
    tracing::debug!(%uri, "no route");
    Error::NotFound("route")
}

async fn method_not_allowed() -> (StatusCode, axum::Json<serde_json::Value>) {
    let message = "method not allowed on this route";
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(serde_json::json!({ "error": message, "message": message, "status": 405 })),
    )
}

/// The Developer API answers `"OK"` (a JSON string) to deletes.
fn ok() -> axum::Json<&'static str> {
    axum::Json("OK")
}
