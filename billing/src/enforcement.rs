//! The price cap and budget, enforced: notifications at 70% and 90% of the effective cap (once
//! per month each), and rate limiting — never a charge — once the month's cost reaches it. Free
//! clusters are limited the same way once their daily messages are used up.
//!
//! A limited cluster may still move `PriceList::limited_messages_per_second` messages a second,
//! produced and consumed together, over both gateways. The allowance is a bucket of messages
//! that may go into debt: a request is let through while the bucket is not in debt and its
//! messages are then taken, so one large request passes and the cluster waits until the debt is
//! repaid — the way Kafka's own quotas work (KIP-219), and a number of messages, not requests.

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

/// Sends one notification to the webhook at `url`, retrying twice with back-off. A
/// notification that cannot be delivered is logged; it stays recorded and shown either way.
async fn deliver(http: reqwest::Client, url: String, notification: serde_json::Value) {
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 * 2u64.pow(attempt))).await;
        }
        match http
            .post(&url)
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
    allowances: Mutex<HashMap<String, Allowance>>,
}

/// The messages a limited cluster may still move: refilled at the allowed rate up to one
/// second's worth, and below zero while the cluster is in debt.
#[derive(Clone, Copy, Debug)]
struct Allowance {
    messages: f64,
    at: Instant,
}

impl Allowance {
    fn full(rate: f64, now: Instant) -> Self {
        Allowance {
            messages: rate,
            at: now,
        }
    }

    fn refill(&mut self, rate: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.messages = (self.messages + rate * elapsed).min(rate);
        self.at = now;
    }

    /// How long until the debt is repaid.
    fn wait(&self, rate: f64) -> Duration {
        if self.messages >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.messages / rate)
        }
    }
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
            allowances: Mutex::default(),
        }
    }

    /// Also POSTs every new notification as JSON to `url` (a webhook of the platform's own).
    pub fn with_notify_url(mut self, url: Option<String>) -> Self {
        self.notify_url = url;
        self
    }

    /// Sends one notification to the webhook in the background, so evaluating the other
    /// clusters (and limiting them) never waits on the webhook's retries.
    fn deliver(&self, notification: serde_json::Value) {
        let Some(url) = self.notify_url.clone() else {
            return;
        };
        tokio::spawn(deliver(self.http.clone(), url, notification));
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
                        }));
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
        // A cluster no longer limited starts with a full allowance if it is limited again.
        if let Ok(mut allowances) = self.allowances.lock() {
            allowances.retain(|cluster_id, _| standing.contains_key(cluster_id));
        }
        if let Ok(mut current) = self.standing.lock() {
            *current = standing;
        }
        Ok(())
    }

    /// Why `cluster_id` is rate-limited at `now` and how long it must wait before its next
    /// request may go ahead (zero: now), or `None` when it is not limited. Checked against the
    /// cluster's current budget, so raising it lifts the limit at once. A cluster found limited
    /// gets an allowance (full), kept until an evaluation finds it no longer limited.
    pub async fn limit(&self, cluster_id: &str, now: i64) -> Option<(String, Duration)> {
        let reason = self.reason(cluster_id, now).await?;
        let rate = self.rate();
        let instant = Instant::now();
        let mut allowances = self.allowances.lock().ok()?;
        let allowance = allowances
            .entry(cluster_id.to_owned())
            .or_insert_with(|| Allowance::full(rate, instant));
        allowance.refill(rate, instant);
        Some((reason, allowance.wait(rate)))
    }

    /// Every cluster rate-limited at `now`, as [`Enforcer::limit`] would find it (for limits
    /// the brokers enforce themselves: client quotas of dedicated clusters).
    pub async fn limited_clusters(&self, now: i64) -> Vec<String> {
        let candidates: Vec<String> = match self.standing.lock() {
            Ok(standing) => standing.keys().cloned().collect(),
            Err(_) => return Vec::new(),
        };
        let mut limited = Vec::new();
        for cluster_id in candidates {
            if self.reason(&cluster_id, now).await.is_some() {
                limited.push(cluster_id);
            }
        }
        limited
    }

    async fn reason(&self, cluster_id: &str, now: i64) -> Option<String> {
        let standing = self.standing.lock().ok()?.get(cluster_id).cloned()?;
        match standing {
            Standing::FreeDayUsed { day } if day == now.div_euclid(86_400) => Some(format!(
                "the free plan's {} messages a day are used up; the limit lifts at 00:00 UTC",
                self.prices.free_daily_messages
            )),
            Standing::Capped { month, cost_cents } if month == Month::of(now) => {
                let cluster = self.customers.cluster(cluster_id).await.ok().flatten()?;
                let cap_cents = round_to_cents(self.prices.effective_cap_micros(cluster.tariff));
                (cost_cents >= cap_cents).then(|| {
                    format!(
                        "monthly price cap reached (${}.{:02}); raise the budget or wait for the next month. No data is deleted",
                        cap_cents / 100,
                        cap_cents % 100
                    )
                })
            }
            _ => None,
        }
    }

    /// Takes `messages` a cluster moved from its allowance, if it has one (it was found limited,
    /// see [`Enforcer::limit`]); returns how long it must now wait before its next request.
    /// Cheap and synchronous: the data paths call it for every answer.
    pub fn charge(&self, cluster_id: &str, messages: u64) -> Duration {
        let rate = self.rate();
        let now = Instant::now();
        let Ok(mut allowances) = self.allowances.lock() else {
            return Duration::ZERO;
        };
        allowances
            .get_mut(cluster_id)
            .map_or(Duration::ZERO, |allowance| {
                allowance.refill(rate, now);
                allowance.messages -= messages as f64;
                allowance.wait(rate)
            })
    }

    fn rate(&self) -> f64 {
        self.prices.limited_messages_per_second.max(1) as f64
    }

    /// Forgets the thresholds `cluster_id` reached in the month of `now`, after its budget
    /// changed: the 70%, 90% and 100% notifications are sent again when it reaches them of the
    /// new cap.
    pub async fn rearm(&self, cluster_id: &str, now: i64) -> Result<()> {
        sqlx::query("DELETE FROM billing_events WHERE cluster_id = $1 AND month = $2")
            .bind(cluster_id)
            .bind(Month::of(now).label())
            .execute(&self.pool)
            .await?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_large_request_passes_and_the_debt_is_then_waited_out() {
        let start = Instant::now();
        let mut allowance = Allowance::full(10.0, start);
        assert_eq!(allowance.wait(10.0), Duration::ZERO);
        allowance.messages -= 1_000.0;
        // 990 messages of debt at 10 a second.
        assert_eq!(allowance.wait(10.0), Duration::from_secs(99));
        allowance.refill(10.0, start + Duration::from_secs(90));
        assert_eq!(allowance.wait(10.0), Duration::from_secs(9));
        allowance.refill(10.0, start + Duration::from_secs(99));
        assert_eq!(allowance.wait(10.0), Duration::ZERO);
    }

    #[test]
    fn an_idle_cluster_saves_at_most_one_second_of_messages() {
        let start = Instant::now();
        let mut allowance = Allowance::full(10.0, start);
        allowance.refill(10.0, start + Duration::from_secs(3_600));
        assert_eq!(allowance.messages, 10.0);
        allowance.messages -= 11.0;
        assert_eq!(allowance.wait(10.0), Duration::from_millis(100));
    }
}
