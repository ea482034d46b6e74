//! The cap, the budgets and the free plan, enforced after each metering sweep: the enforcer
//! decides which clusters are limited (the gateways ask it on every request), and the brokers
//! of limited dedicated clusters, which TCP clients reach without a gateway, get client quotas.

use std::{collections::BTreeSet, sync::Arc};

use capstan_api::{
    client_quotas::{BrokerQuotas, MESSAGE_BYTES},
    state::AppState,
};
use capstan_billing::{enforcement::Enforcer, pricing::PriceList};

use crate::platform::fleet_error;

/// One evaluation of every cluster's limits, where each is enforced.
#[derive(Debug)]
pub struct Enforcement {
    enforcer: Arc<Enforcer>,
    state: AppState,
    quotas: tokio::sync::Mutex<BrokerQuotas>,
    quota_bytes: u64,
    /// The clusters the metrics say are limited.
    shown_limited: std::sync::Mutex<BTreeSet<String>>,
}

impl Enforcement {
    /// Enforcement of `enforcer`'s decisions for the control plane of `state`, at `prices`'
    /// limited allowance.
    pub fn new(enforcer: Arc<Enforcer>, state: AppState, prices: &PriceList) -> Self {
        Enforcement {
            enforcer,
            state,
            quotas: tokio::sync::Mutex::default(),
            quota_bytes: prices.limited_messages_per_second.max(1) as u64 * MESSAGE_BYTES,
            shown_limited: std::sync::Mutex::default(),
        }
    }

    /// Re-evaluates every cluster at `now`, then sets or lifts the client quotas of dedicated
    /// clusters whose limit changed.
    pub async fn run(&self, now: i64) -> capstan_billing::Result<()> {
        self.enforcer.evaluate(now).await?;
        let limited: BTreeSet<String> = self
            .enforcer
            .limited_clusters(now)
            .await
            .into_iter()
            .collect();
        self.show(&limited);
        self.quotas
            .lock()
            .await
            .apply(
                &self.state,
                &limited.into_iter().collect(),
                self.quota_bytes,
            )
            .await
            .map_err(fleet_error)
    }

    /// Publishes `limited` as the rate-limit metrics: a series per limited cluster, removed
    /// when its limit lifts.
    fn show(&self, limited: &BTreeSet<String>) {
        let metrics = &self.state.metrics;
        let mut shown = self.shown_limited.lock().unwrap_or_else(|e| e.into_inner());
        for lifted in shown.difference(limited) {
            let _ = metrics.cluster_rate_limited.remove_label_values(&[lifted]);
        }
        for cluster in limited {
            metrics
                .cluster_rate_limited
                .with_label_values(&[cluster])
                .set(1);
        }
        metrics
            .rate_limited_clusters
            .set(i64::try_from(limited.len()).unwrap_or(i64::MAX));
        *shown = limited.clone();
    }
}
