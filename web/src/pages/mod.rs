//! One module per page (or group of pages) of the console.

pub(crate) mod account;
pub(crate) mod api_keys;
pub(crate) mod auth;
pub(crate) mod budget;
pub(crate) mod clusters;
pub(crate) mod invoices;
pub(crate) mod overview;
pub(crate) mod topics;
pub(crate) mod usage;

use askama::Template;
use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
};
use capstan_api::{
    billing::CostView,
    clusters::{ClusterRow, ClusterView},
};
use capstan_billing::pricing::PriceList;

use crate::{ConsoleState, Result, csrf::CsrfToken, format, session::Viewer};

/// What the frame around every page needs.
#[derive(Debug)]
pub(crate) struct Layout {
    /// The page's title.
    pub title: String,
    /// The logged-in visitor's e-mail address; empty when logged out.
    pub email: String,
    /// The CSRF token for this page's forms.
    pub csrf: String,
    /// The navigation entry to highlight.
    pub section: &'static str,
}

impl Layout {
    pub fn new(
        title: impl Into<String>,
        viewer: Option<&Viewer>,
        csrf: &CsrfToken,
        section: &'static str,
    ) -> Self {
        Layout {
            title: title.into(),
            email: viewer.map(|v| v.email.clone()).unwrap_or_default(),
            csrf: csrf.0.clone(),
            section,
        }
    }
}

/// A rendered page with the headers every console page carries: pages show secrets, so they
/// are never cached, never framed, and run only the console's own script.
pub(crate) fn render(status: StatusCode, page: &impl Template) -> Result<Response> {
    let mut response = (status, Html(page.render()?)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    Ok(response)
}

/// A page answered 200.
pub(crate) fn ok(page: &impl Template) -> Result<Response> {
    render(StatusCode::OK, page)
}

/// After a form succeeded: back to a page with GET (303).
pub(crate) fn see_other(path: &str) -> Response {
    Redirect::to(path).into_response()
}

/// A notice at the top of a cluster's pages.
#[derive(Debug)]
pub(crate) struct Banner {
    /// `notice`, `warning` or `danger`.
    pub level: &'static str,
    /// What happened and what to do.
    pub text: String,
}

/// A cluster's month so far, formatted.
#[derive(Debug)]
pub(crate) struct CostSummary {
    pub month: String,
    pub month_to_date: String,
    pub forecast: String,
    pub cap: String,
    /// Month-to-date as a percentage of the cap, 0 to 100.
    pub percent: i64,
    pub budget_dollars: i64,
    /// The bill's lines so far (JSON of the billing source).
    pub lines: serde_json::Value,
}

/// Rate-limiting at the cap, in one sentence (shown on the budget page and in the banner).
pub(crate) fn rate_limit_sentence(prices: &PriceList) -> String {
    format!(
        "At the cap Capstan stops billing and slows the cluster instead: it may move {} messages a second, over HTTP (429 beyond) and Kafka (clients are throttled), until the month ends or you raise the budget.",
        prices.limited_messages_per_second
    )
}

impl CostSummary {
    fn of(cost: &CostView) -> Self {
        let percent = if cost.cap_cents > 0 {
            (cost.month_to_date_cents.saturating_mul(100) / cost.cap_cents).clamp(0, 100)
        } else {
            0
        };
        CostSummary {
            month: cost.month.clone(),
            month_to_date: format::dollars(cost.month_to_date_cents),
            forecast: format::dollars(cost.forecast_cents),
            cap: format::dollars(cost.cap_cents),
            percent,
            budget_dollars: cost.budget_dollars,
            lines: cost.lines.clone(),
        }
    }

    /// The banner for the highest threshold billing has recorded this month.
    fn banner(cost: &CostView, prices: &PriceList) -> Option<Banner> {
        let cap = format::dollars(cost.cap_cents);
        let reached = cost.notifications.iter().copied().max()?;
        Some(match reached {
            r if r >= 100 => Banner {
                level: "danger",
                text: format!(
                    "This cluster reached its cap of {cap} for {}. {}",
                    cost.month,
                    rate_limit_sentence(prices)
                ),
            },
            r if r >= 90 => Banner {
                level: "warning",
                text: format!(
                    "90% of this month's cap ({cap}) is used. Raise the budget to avoid rate-limiting."
                ),
            },
            _ => Banner {
                level: "notice",
                text: format!("70% of this month's cap ({cap}) is used."),
            },
        })
    }
}

/// The top of every cluster page: name, tabs, cost against the cap and the cap banner.
#[derive(Debug)]
pub(crate) struct ClusterHeader {
    /// The cluster as stored (its spec, plan and bootstrap address).
    pub row: ClusterRow,
    /// The cluster as the API shows it (with its default credential).
    pub cluster: ClusterView,
    pub cost: CostSummary,
    pub banner: Option<Banner>,
    /// The tab shown: `overview`, `topics`, `usage`, `budget`.
    pub tab: &'static str,
}

impl ClusterHeader {
    /// The viewer's cluster `id` (404 for anybody else's) with its cost.
    pub async fn load(
        state: &ConsoleState,
        viewer: &Viewer,
        id: &str,
        tab: &'static str,
    ) -> Result<Self> {
        let row =
            capstan_api::clusters::find_owned(&state.app.store, &viewer.account_id, id).await?;
        Self::with_cost(state, row, tab).await
    }

    /// The header of a cluster already loaded for its owner, with the cost read now.
    pub async fn with_cost(
        state: &ConsoleState,
        row: ClusterRow,
        tab: &'static str,
    ) -> Result<Self> {
        let cluster = capstan_api::clusters::view(&state.app, &row).await?;
        let cost = state.app.billing.cost(&cluster.cluster_id).await?;
        Ok(ClusterHeader {
            cost: CostSummary::of(&cost),
            banner: CostSummary::banner(&cost, &state.prices),
            row,
            cluster,
            tab,
        })
    }

    /// `Single zone` or `Multi-zone`.
    pub fn zone_mode(&self) -> &'static str {
        zone_mode(self.cluster.multizone)
    }
}

/// How a cluster's zone mode is written.
pub(crate) fn zone_mode(multizone: bool) -> &'static str {
    if multizone {
        "Multi-zone"
    } else {
        "Single zone"
    }
}
