//! Cost and invoices as the control plane shows them. They come from the billing crate,
//! wired in by the binary through [`BillingSource`].

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use crate::{Error, Result};

/// A cluster's month so far.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CostView {
    /// `YYYY-MM` (UTC).
    pub month: String,
    /// Month-to-date cost in cents: the sum of the rounded lines, as the invoice will say.
    pub month_to_date_cents: i64,
    /// Linear forecast for the month, in cents, never above the cap.
    pub forecast_cents: i64,
    /// The effective cap (the lower of the ceiling and the budget), in cents.
    pub cap_cents: i64,
    /// The budget in whole dollars (0 = none).
    pub budget_dollars: i64,
    /// Thresholds (70, 90, 100 percent of the cap) reached this month.
    pub notifications: Vec<i64>,
    /// The bill's lines so far.
    pub lines: Value,
}

/// Where cost and invoices come from.
#[async_trait]
pub trait BillingSource: Send + Sync + std::fmt::Debug {
    /// A cluster's cost this month.
    async fn cost(&self, cluster_id: &str) -> Result<CostView>;
    /// An account's invoices, newest first (JSON, see `docs/billing.md`).
    async fn invoices(&self, account_id: &str) -> Result<Value>;
    /// One invoice of the account; `None` when it is not theirs or does not exist.
    async fn invoice(&self, account_id: &str, invoice_id: &str) -> Result<Option<Value>>;
    /// One invoice's lines as CSV.
    async fn invoice_csv(&self, account_id: &str, invoice_id: &str) -> Result<Option<String>>;
    /// The account's month so far: totals and each live cluster's cost.
    async fn account_cost(&self, account_id: &str) -> Result<Value>;
    /// The hourly usage behind an invoice, as CSV.
    async fn invoice_usage_csv(&self, account_id: &str, invoice_id: &str)
    -> Result<Option<String>>;
    /// What a cluster's month has cost so far, in cents (0 without billing).
    async fn month_so_far_cents(&self, _cluster_id: &str) -> Result<i64> {
        Ok(0)
    }
    /// A cluster's budget changed: its cap notifications are re-armed. Nothing to do without
    /// billing.
    async fn budget_changed(&self, _cluster_id: &str) -> Result<()> {
        Ok(())
    }
    /// Applies a Stripe webhook after checking its signature; `NotFound` when Stripe is not
    /// configured, `Invalid` for a bad signature or payload.
    async fn stripe_webhook(&self, payload: &[u8], signature: &str) -> Result<()>;
}

/// Used when no billing is wired (library users, some tests).
#[derive(Debug, Default)]
pub struct NoBilling;

#[async_trait]
impl BillingSource for NoBilling {
    async fn cost(&self, _: &str) -> Result<CostView> {
        Err(Error::internal(
            "billing is not configured in this process",
            "no BillingSource",
        ))
    }
    async fn invoices(&self, _: &str) -> Result<Value> {
        Ok(Value::Array(Vec::new()))
    }
    async fn invoice(&self, _: &str, _: &str) -> Result<Option<Value>> {
        Ok(None)
    }
    async fn invoice_csv(&self, _: &str, _: &str) -> Result<Option<String>> {
        Ok(None)
    }
    async fn account_cost(&self, _: &str) -> Result<Value> {
        Err(Error::internal(
            "billing is not configured in this process",
            "no BillingSource",
        ))
    }
    async fn invoice_usage_csv(&self, _: &str, _: &str) -> Result<Option<String>> {
        Ok(None)
    }
    async fn stripe_webhook(&self, _: &[u8], _: &str) -> Result<()> {
        Err(Error::NotFound("Stripe webhook endpoint"))
    }
}

/// Why a cluster is rate-limited, and how long until its next request may go ahead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limit {
    /// Why, for the client.
    pub reason: String,
    /// Zero when the next request may go ahead now.
    pub wait: std::time::Duration,
}

/// Rate-limits clusters at their price cap, budget or free plan's day (see
/// `capstan_billing::enforcement`): a limited cluster may still move a few messages a second.
#[async_trait]
pub trait RequestLimiter: Send + Sync + std::fmt::Debug {
    /// `cluster_id`'s limit now, or `None` when it is not limited (asked once per request).
    async fn limit(&self, cluster_id: &str) -> Option<Limit>;
    /// Takes `messages` a limited cluster moved from its allowance (nothing for a cluster that
    /// is not); returns how long it must now wait.
    fn charge(&self, cluster_id: &str, messages: u64) -> std::time::Duration;
}
