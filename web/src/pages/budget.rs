//! A cluster's monthly budget and its progress toward the effective cap.

use askama::Template;
use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use capstan_api::clusters::{self, UpdateBudget};
use capstan_billing::pricing::CENT;
use serde::Deserialize;

use super::{ClusterHeader, Layout, rate_limit_sentence, render, see_other};
use crate::{
    ConsoleState, Result,
    csrf::{CsrfForm, CsrfToken},
    format,
    forms::FieldErrors,
    session::Viewer,
};

#[derive(Template)]
#[template(path = "budget.html")]
struct BudgetPage {
    layout: Layout,
    header: ClusterHeader,
    ceiling: String,
    budget: String,
    rate_limit: String,
    errors: FieldErrors,
}

async fn render_page(
    state: &ConsoleState,
    viewer: &Viewer,
    csrf: &CsrfToken,
    id: &str,
    status: StatusCode,
    budget: Option<String>,
    errors: FieldErrors,
) -> Result<Response> {
    let header = ClusterHeader::load(state, viewer, id, "budget").await?;
    let prices = &state.prices;
    let ceiling = if header.cluster.multizone {
        prices.multi_zone_ceiling_micros
    } else {
        prices.single_zone_ceiling_micros
    };
    render(
        status,
        &BudgetPage {
            layout: Layout::new(
                format!("Budget · {}", header.cluster.name),
                Some(viewer),
                csrf,
                "clusters",
            ),
            ceiling: format::dollars(ceiling / CENT),
            budget: budget.unwrap_or_else(|| header.cost.budget_dollars.to_string()),
            rate_limit: rate_limit_sentence(prices),
            errors,
            header,
        },
    )
}

pub(crate) async fn show(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    csrf: CsrfToken,
    Path(id): Path<String>,
) -> Result<Response> {
    render_page(
        &state,
        &viewer,
        &csrf,
        &id,
        StatusCode::OK,
        None,
        FieldErrors::default(),
    )
    .await
}

/// The budget form: whole dollars, 0 for none.
#[derive(Debug, Deserialize)]
pub(crate) struct BudgetForm {
    #[serde(default)]
    budget: String,
}

pub(crate) async fn update(
    State(state): State<ConsoleState>,
    viewer: Viewer,
    csrf: CsrfToken,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<BudgetForm>,
) -> Result<Response> {
    let refuse = |status, message: String| {
        render_page(
            &state,
            &viewer,
            &csrf,
            &id,
            status,
            Some(form.budget.clone()),
            FieldErrors::one("budget", message),
        )
    };
    let Ok(budget) = form.budget.trim().parse::<i64>() else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "The budget must be whole dollars, for example 50 (0 for no budget).".into(),
        )
        .await;
    };
    match clusters::update_budget(&state.app, &viewer.account_id, &id, UpdateBudget { budget })
        .await
    {
        Ok(_) => Ok(see_other(&format!("/clusters/{id}/budget"))),
        Err(e) => {
            let (status, errors) = FieldErrors::from_domain(e, &[("", "budget")])?;
            let message = errors.get("budget").unwrap_or_default().to_owned();
            refuse(status, message).await
        }
    }
}
