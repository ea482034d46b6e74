//! HTTP routes: thin handlers that parse, authorize, call the domain and map its error.

mod accounts;
mod billing;
mod clusters;
mod credentials;
mod ops;
mod stats;
mod topics;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request, State},
    http::{StatusCode, Uri},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{delete, get, patch, post},
};
use tokio::sync::Semaphore;

use crate::{Error, state::AppState};

/// Largest request body of the API and console (their bodies are small JSON documents and
/// forms; Stripe's events are the largest).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Requests the API and console handle at once, including those still finishing after their
/// client left or their deadline passed; more wait up to [`REQUEST_TIMEOUT`] for a place.
pub const MAX_CONCURRENT_REQUESTS: usize = 512;
/// Requests one account may have in progress at once on the API (more are answered 429), so
/// one tenant cannot hold every place of [`MAX_CONCURRENT_REQUESTS`].
pub const MAX_REQUESTS_PER_ACCOUNT: usize = 64;
/// How long a client waits for an answer. A request that takes longer is answered 503 but
/// is not abandoned: a change already under way (a cluster being made, say) completes.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The control plane's router (provisioning API and operations endpoints), with the web
/// console's routes (wired in by the binary) on the same listener when given. The console then
/// also answers unknown paths (a page for browsers, the JSON error for API clients); without it
/// they get the JSON error.
pub fn router(state: AppState, console: Option<Router>) -> Router {
    let api = Router::new()
        .route("/v2/auth/signup", post(accounts::sign_up))
        .route("/v2/auth/signup/confirm", post(accounts::confirm_sign_up))
        .route("/v2/auth/login", post(accounts::log_in))
        .route("/v2/auth/logout", post(accounts::log_out))
        .route("/v2/auth/password", post(accounts::change_password))
        .route(
            "/v2/auth/password-reset",
            post(accounts::request_password_reset),
        )
        .route(
            "/v2/auth/password-reset/confirm",
            post(accounts::confirm_password_reset),
        )
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
    .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
    .layer(middleware::from_fn_with_state(
        Arc::new(Semaphore::new(MAX_CONCURRENT_REQUESTS)),
        run_to_completion,
    ))
    .layer(middleware::from_fn_with_state(
        state.clone(),
        crate::extract::resolve_client_address,
    ))
    .layer(middleware::from_fn_with_state(state, crate::metrics::track))
    .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Runs each request in a task of its own, holding one of `places`, and answers within
/// [`REQUEST_TIMEOUT`]. The task runs to its end even when the client leaves or the deadline
/// passes, so a handler is never stopped between two steps of a change (brokers made but not
/// recorded, say); a panic in it is answered 500 instead of closing the connection.
async fn run_to_completion(
    State(places): State<Arc<Semaphore>>,
    request: Request,
    next: Next,
) -> Response {
    let place = match tokio::time::timeout(REQUEST_TIMEOUT, places.acquire_owned()).await {
        Ok(Ok(place)) => place,
        _ => {
            return Error::Overloaded(
                "the API is handling as many requests as it can; retry in a moment".into(),
            )
            .into_response();
        }
    };
    let deadline = deadline_of(&request);
    let work = tokio::spawn(async move {
        let _place = place;
        next.run(request).await
    });
    match tokio::time::timeout(deadline, work).await {
        Ok(Ok(response)) => response,
        Ok(Err(failure)) => Error::internal("a request handler failed", failure).into_response(),
        Err(_) => Error::Overloaded(format!(
            "the request took longer than {} seconds; it goes on in the background: look at the resource again in a moment",
            deadline.as_secs()
        ))
        .into_response(),
    }
}

/// How long `request` may take: [`REQUEST_TIMEOUT`], or, for a cluster creation that asked to
/// wait for its cluster (`?wait=true`, which answers by itself within its own bound), that
/// bound more.
fn deadline_of(request: &Request) -> Duration {
    let waits_for_cluster = request.method() == axum::http::Method::POST
        && request.uri().path() == "/v2/kafka/cluster"
        && request
            .uri()
            .query()
            .is_some_and(|query| query.split('&').any(|pair| pair == "wait=true"));
    if waits_for_cluster {
        crate::clusters::MAX_CREATE_WAIT + REQUEST_TIMEOUT
    } else {
        REQUEST_TIMEOUT
    }
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
