//! Invoices: the list, one invoice, and its printable page.

use askama::Template;
use axum::{
    extract::{Path, State},
    response::{Html, IntoResponse, Response},
};
use serde_json::Value;

use super::{Layout, ok};
use crate::{ConsoleState, Error, Result, csrf::CsrfToken, format, session::Viewer};

/// An invoice as listed and shown.
#[derive(Debug)]
struct InvoiceSummary {
    id: String,
    number: String,
    month: String,
    state: String,
    total: String,
    created: String,
    /// What is wrong with its payment (a failed charge, an amount that does not match).
    payment_problem: Option<String>,
}

impl InvoiceSummary {
    fn of(invoice: &Value) -> Self {
        let text = |key: &str| invoice[key].as_str().unwrap_or_default().to_owned();
        InvoiceSummary {
            id: text("id"),
            number: invoice["number"]
                .as_i64()
                .map_or_else(|| "draft".to_owned(), |n| format!("#{n}")),
            month: text("month"),
            state: text("state"),
            total: format::dollars(invoice["total_cents"].as_i64().unwrap_or(0)),
            created: format::date(invoice["created_at"].as_i64().unwrap_or(0)),
            payment_problem: invoice["payment_problem"].as_str().map(str::to_owned),
        }
    }
}

/// A line of an invoice.
#[derive(Debug)]
struct InvoiceLine {
    cluster: String,
    item: String,
    amount: String,
    adjustment: bool,
}

#[derive(Template)]
#[template(path = "invoices.html")]
struct InvoicesPage {
    layout: Layout,
    invoices: Vec<InvoiceSummary>,
}

#[derive(Template)]
#[template(path = "invoice.html")]
struct InvoicePage {
    layout: Layout,
    invoice: InvoiceSummary,
    lines: Vec<InvoiceLine>,
}

pub(crate) async fn list(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    csrf: CsrfToken,
) -> Result<Response> {
    let invoices = state.app.billing.invoices(&viewer.account_id).await?;
    ok(&InvoicesPage {
        layout: Layout::new("Invoices", Some(&viewer), &csrf, "invoices"),
        invoices: invoices
            .as_array()
            .into_iter()
            .flatten()
            .map(InvoiceSummary::of)
            .collect(),
    })
}

async fn owned(state: &ConsoleState, viewer: &Viewer, id: &str) -> Result<Value> {
    state
        .app
        .billing
        .invoice(&viewer.account_id, id)
        .await?
        .ok_or(Error::NotFound)
}

pub(crate) async fn show(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    csrf: CsrfToken,
    Path(id): Path<String>,
) -> Result<Response> {
    let invoice = owned(&state, &viewer, &id).await?;
    let lines = invoice["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|line| {
            let kind = line["kind"].as_str().unwrap_or_default();
            InvoiceLine {
                cluster: line["cluster_name"].as_str().unwrap_or_default().to_owned(),
                item: capstan_api::invoice_page::describe(
                    kind,
                    line["quantity"].as_i64().unwrap_or(0),
                ),
                amount: format::dollars(line["cents"].as_i64().unwrap_or(0)),
                adjustment: kind == "cap_adjustment",
            }
        })
        .collect();
    let invoice = InvoiceSummary::of(&invoice);
    ok(&InvoicePage {
        layout: Layout::new(
            format!("Invoice {} · {}", invoice.number, invoice.month),
            Some(&viewer),
            &csrf,
            "invoices",
        ),
        invoice,
        lines,
    })
}

/// The self-contained printable page (browsers print it to PDF).
pub(crate) async fn print(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response> {
    let invoice = owned(&state, &viewer, &id).await?;
    Ok(Html(capstan_api::invoice_page::render(&invoice)).into_response())
}
