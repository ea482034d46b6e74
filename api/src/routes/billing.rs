//! `/v2/kafka/update-budget/{id}`, `/v2/kafka/cost/{id}` and `/v2/invoices…`.

use axum::{
    Json,
    extract::{Path, State},
    http::header,
    response::IntoResponse,
};
use serde_json::Value;

use crate::{
    Error, Result,
    billing::CostView,
    clusters::{self, UpdateBudget},
    extract::{Caller, JsonBody},
    state::AppState,
};

pub(super) async fn update_budget(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UpdateBudget>,
) -> Result<Json<&'static str>> {
    clusters::update_budget(&state, &caller.account_id, &id, body).await?;
    Ok(super::ok())
}

pub(super) async fn cost(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<CostView>> {
    clusters::find_owned(&state.store, &caller.account_id, &id).await?;
    Ok(Json(state.billing.cost(&id).await?))
}

pub(super) async fn invoices(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>> {
    Ok(Json(state.billing.invoices(&caller.account_id).await?))
}

pub(super) async fn invoice(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    state
        .billing
        .invoice(&caller.account_id, &id)
        .await?
        .map(Json)
        .ok_or(Error::NotFound("invoice"))
}

pub(super) async fn invoice_csv(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    csv_response(state.billing.invoice_csv(&caller.account_id, &id).await?)
}

pub(super) async fn invoice_html(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    let invoice = state
        .billing
        .invoice(&caller.account_id, &id)
        .await?
        .ok_or(Error::NotFound("invoice"))?;
    Ok(axum::response::Html(crate::invoice_page::render(&invoice)))
}

/// `POST /v2/stripe/webhook`: authenticated by Stripe's signature, not by an account.
pub(super) async fn stripe_webhook(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> Result<Json<Value>> {
    let signature = request
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = crate::extract::read_body(request, &state, super::MAX_BODY_BYTES).await?;
    state.billing.stripe_webhook(&body, &signature).await?;
    Ok(Json(serde_json::json!({ "received": true })))
}

pub(super) async fn account_cost(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>> {
    Ok(Json(state.billing.account_cost(&caller.account_id).await?))
}

pub(super) async fn invoice_usage_csv(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    csv_response(
        state
            .billing
            .invoice_usage_csv(&caller.account_id, &id)
            .await?,
    )
}

/// An invoice CSV as a download, or the invoice's 404.
fn csv_response(csv: Option<String>) -> Result<impl IntoResponse> {
    let csv = csv.ok_or(Error::NotFound("invoice"))?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv))
}
