//! The price cap and budget, enforced: notifications at 70% and 90% of the effective cap (once
//! per month each), and rate limiting — never a charge — once the month's cost reaches it. Free
//! clusters are limited the same way once their daily messages are used up.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sqlx::AnyPool;

use crate::{
    Result,
    customers::Customers,
    ledger::{Month, cluster_cost},
    pricing::{PriceList, round_to_cents},
};

/// Requests a limited cluster may still make: one a second.
const ALLOWANCE: Duration = Duration::from_secs(1);
/// Thresholds notified, in percent of the effective cap.
const THRESHOLDS: [i64; 3] = [70, 90, 100];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Standing {
    /// The month's cost reached the cap at this cost (checked again against the current cap,
    /// so raising the budget lifts the limit at once).
    Capped { month: Month, cost_cents: i64 },
    /// A free cluster used up this UTC day's messages.
    FreeDayUsed { day: i64 },
}

/// Decides which clusters are rate-limited.
#[derive(Debug)]
pub struct Enforcer {
    pool: AnyPool,
    prices: PriceList,
    customers: Arc<dyn Customers>,
    notify_url: Option<String>,
    http: reqwest::Client,
    standing: Mutex<HashMap<String, Standing>>,
    last_allowed: Mutex<HashMap<String, Instant>>,
}

impl Enforcer {
    /// An enforcer over the store's usage.
    pub fn new(pool: AnyPool, prices: PriceList, customers: Arc<dyn Customers>) -> Self {
        Enforcer {
            pool,
            prices,
            customers,
            notify_url: None,
            http: reqwest::Client::new(),
            standing: Mutex::default(),
            last_allowed: Mutex::default(),
        }
    }

    /// Also POSTs every new notification as JSON to `url` (a webhook of the platform's own).
    pub fn with_notify_url(mut self, url: Option<String>) -> Self {
        self.notify_url = url;
        self
    }

    /// Sends one notification to the webhook, retrying twice with back-off. A notification that
    /// cannot be delivered is logged; it stays recorded and shown either way.
    async fn deliver(&self, notification: serde_json::Value) {
        let Some(url) = &self.notify_url else { return };
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 * 2u64.pow(attempt))).await;
            }
            match self
                .http
                .post(url)
                .json(&notification)
                .timeout(Duration::from_secs(10))
                .send()
                .await
            {
                Ok(response) if response.status().is_success() => return,
                Ok(response) => {
                    tracing::warn!(status = %response.status(), "the notification webhook refused a notification")
                }
                Err(error) => tracing::warn!(%error, "the notification webhook is unreachable"),
            }
        }
        tracing::error!(%notification, "a notification could not be delivered to the webhook");
    }

    /// Re-evaluates every live cluster at `now`: stores notifications and limits. Run after
    /// each metering sweep.
    pub async fn evaluate(&self, now: i64) -> Result<()> {
        let month = Month::of(now);
        let today = now.div_euclid(86_400);
        let mut standing = HashMap::new();
        for cluster in self.customers.clusters().await? {
            if cluster.deleted_at.is_some() {
                continue;
            }
            if cluster.tariff.free {
                let (messages,): (i64,) = sqlx::query_as(
                    "SELECT CAST(COALESCE(SUM(produced + consumed), 0) AS BIGINT) FROM usage_hourly \
                     WHERE cluster_id = $1 AND hour >= $2",
                )
                .bind(&cluster.cluster_id)
                .bind(today * 86_400)
                .fetch_one(&self.pool)
                .await?;
                if messages >= self.prices.free_daily_messages {
                    standing.insert(
                        cluster.cluster_id.clone(),
                        Standing::FreeDayUsed { day: today },
                    );
                }
                continue;
            }
            let cost = cluster_cost(&self.pool, &self.prices, &cluster, now).await?;
            // Usage lines only: the cap adjustment would hide how far past the cap usage went.
            let usage_cents: i64 = cost
                .lines
                .iter()
                .filter(|l| l.kind != "cap_adjustment")
                .map(|l| l.cents)
                .sum();
            for threshold in THRESHOLDS {
                if cost.cap_cents > 0 && usage_cents * 100 >= cost.cap_cents * threshold {
                    let inserted = sqlx::query(
                        "INSERT INTO billing_events (cluster_id, month, threshold, cost_cents, cap_cents, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (cluster_id, month, threshold) DO NOTHING",
                    )
                    .bind(&cluster.cluster_id)
                    .bind(month.label())
                    .bind(threshold)
                    .bind(usage_cents)
                    .bind(cost.cap_cents)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                    if inserted.rows_affected() > 0 {
                        tracing::warn!(cluster = %cluster.cluster_id, threshold, usage_cents, cap_cents = cost.cap_cents,
                            "a cluster reached {threshold}% of its monthly cap");
                        self.deliver(serde_json::json!({
                            "type": "price_cap_threshold", "cluster_id": cluster.cluster_id, "account_id": cluster.account_id,
                            "month": month.label(), "threshold_percent": threshold, "cost_cents": usage_cents, "cap_cents": cost.cap_cents,
                        }))
                        .await;
                    }
                }
            }
            if usage_cents >= cost.cap_cents {
                standing.insert(
                    cluster.cluster_id.clone(),
                    Standing::Capped {
                        month,
                        cost_cents: usage_cents,
                    },
                );
            }
        }
        if let Ok(mut current) = self.standing.lock() {
            *current = standing;
        }
        Ok(())
    }

    /// Whether a request of `cluster_id` is refused now, and why. A limited cluster still gets
    /// one request a second.
    pub async fn refusal(&self, cluster_id: &str, now: i64) -> Option<String> {
        let standing = self.standing.lock().ok()?.get(cluster_id).cloned()?;
        let reason = match standing {
            Standing::FreeDayUsed { day } if day == now.div_euclid(86_400) => format!(
                "the free plan's {} messages a day are used up; the limit lifts at 00:00 UTC",
                self.prices.free_daily_messages
            ),
            Standing::Capped { month, cost_cents } if month == Month::of(now) => {
                // Check against the cluster's current budget: raising it lifts the limit now.
                let cluster = self.customers.cluster(cluster_id).await.ok().flatten()?;
                let cap_cents = round_to_cents(self.prices.effective_cap_micros(cluster.tariff));
                if cost_cents < cap_cents {
                    return None;
                }
                format!(
                    "monthly price cap reached (${}.{:02}); raise the budget or wait for the next month. No data is deleted",
                    cap_cents / 100,
                    cap_cents % 100
                )
            }
            _ => return None,
        };
        let mut last = self.last_allowed.lock().ok()?;
        let allowed = last
            .get(cluster_id)
            .is_none_or(|at| at.elapsed() >= ALLOWANCE);
        if allowed {
            last.insert(cluster_id.to_owned(), Instant::now());
            None
        } else {
            Some(reason)
        }
    }

    /// The thresholds a cluster reached this month, in order.
    pub async fn notifications(&self, cluster_id: &str, now: i64) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = sqlx::query_as("SELECT threshold FROM billing_events WHERE cluster_id = $1 AND month = $2 ORDER BY threshold")
            .bind(cluster_id)
            .bind(Month::of(now).label())
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}
