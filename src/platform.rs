//! The whole platform wired together: the control plane (`capstan-api`) and metering
//! (`capstan-billing`), which know nothing of each other; the adapters here connect them.

use std::{collections::BTreeMap, future::Future, sync::Arc, time::Duration};

use async_trait::async_trait;
use capstan_api::{
    app::{Application, Settings},
    clusters,
    gateway::FetchObserver,
    state::AppState,
    usage::{TopicUsage, UsagePoint, UsageSource},
};
use capstan_billing::{
    ClusterTarget, Collector, Fleet, Meter, kafka::Credentials, metering::CollectorMetrics,
};

/// How metering runs.
#[derive(Clone, Debug)]
pub struct MeteringSettings {
    /// Time between sweeps.
    pub interval: Duration,
    /// Clusters swept at once.
    pub concurrency: usize,
}

/// The control plane's clusters, as the collector sees them.
#[derive(Debug)]
pub struct ControlPlaneFleet {
    state: AppState,
}

fn fleet_error(error: capstan_api::Error) -> capstan_billing::Error {
    capstan_billing::Error::Fleet(capstan_api::cause_chain(&error))
}

impl ControlPlaneFleet {
    /// The clusters of this control plane.
    pub fn new(state: AppState) -> Self {
        ControlPlaneFleet { state }
    }
}

#[async_trait]
impl Fleet for ControlPlaneFleet {
    async fn clusters(&self) -> capstan_billing::Result<Vec<ClusterTarget>> {
        let rows = clusters::all_live(&self.state.store)
            .await
            .map_err(fleet_error)?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let config = self
                    .state
                    .provisioner
                    .client_config(&row.spec(), &row.tcp_endpoint);
                let setting = |key: &str| config.get(key).unwrap_or_default().to_owned();
                ClusterTarget {
                    credentials: Credentials {
                        bootstrap: row.tcp_endpoint.clone(),
                        username: setting("sasl.username"),
                        password: setting("sasl.password"),
                    },
                    cluster_id: row.id,
                }
            })
            .collect())
    }

    async fn stored_bytes(
        &self,
        cluster: &ClusterTarget,
    ) -> capstan_billing::Result<BTreeMap<String, i64>> {
        let row = clusters::find_live(&self.state.store, &cluster.cluster_id)
            .await
            .map_err(fleet_error)?;
        self.state
            .provisioner
            .stored_bytes(&row.spec())
            .await
            .map_err(fleet_error)
    }
}

/// Usage for the control plane, read from the meter.
#[derive(Debug)]
pub struct MeteredUsage(pub Meter);

fn usage_error(error: capstan_billing::Error) -> capstan_api::Error {
    capstan_api::Error::internal("could not read usage", error)
}

#[async_trait]
impl UsageSource for MeteredUsage {
    async fn hourly(
        &self,
        cluster_id: &str,
        topic: Option<&str>,
        from: i64,
        to: i64,
    ) -> capstan_api::Result<Vec<UsagePoint>> {
        let hours = self
            .0
            .hourly(cluster_id, topic, from, to)
            .await
            .map_err(usage_error)?;
        Ok(hours
            .into_iter()
            .map(|h| UsagePoint {
                time: h.hour,
                produced: h.produced,
                consumed: h.consumed,
                storage_bytes: h.storage_bytes,
            })
            .collect())
    }

    async fn topic_totals(
        &self,
        cluster_id: &str,
        from: i64,
        to: i64,
    ) -> capstan_api::Result<Vec<TopicUsage>> {
        let totals = self
            .0
            .topic_totals(cluster_id, from, to)
            .await
            .map_err(usage_error)?;
        Ok(totals
            .into_iter()
            .map(|t| TopicUsage {
                topic: t.topic,
                produced: t.produced,
                consumed: t.consumed,
            })
            .collect())
    }
}

/// Counts the gateway's group-less fetches into the meter.
#[derive(Debug)]
pub struct FetchCounter(pub Meter);

#[async_trait]
impl FetchObserver for FetchCounter {
    async fn fetched(&self, cluster_id: &str, topic: &str, messages: u64) {
        let now = capstan_billing::metering::unix_now();
        if let Err(error) = self
            .0
            .record_fetch(cluster_id, topic, messages as i64, now)
            .await
        {
            tracing::error!(%cluster_id, %topic, messages, %error, "could not count a REST fetch");
        }
    }
}

/// The built platform: the application and its collector.
#[derive(Debug)]
pub struct Platform {
    application: Application,
    collector: Arc<Collector>,
    metering: MeteringSettings,
}

impl Platform {
    /// Builds the control plane and wires metering into it.
    pub async fn build(
        settings: Settings,
        metering: MeteringSettings,
    ) -> capstan_api::Result<Self> {
        let application = Application::build(settings).await?;
        let state = application.state().clone();
        let meter = Meter::new(state.store.pool().clone());
        let metrics = CollectorMetrics::register(&state.metrics.registry)
            .map_err(|e| capstan_api::Error::internal("could not register metering metrics", e))?;
        let collector = Collector::new(
            state.store.pool().clone(),
            Arc::new(ControlPlaneFleet { state }),
            metering.concurrency,
        )
        .with_metrics(metrics);
        let application = application.with_metering(
            Arc::new(MeteredUsage(meter.clone())),
            Arc::new(FetchCounter(meter)),
        );
        Ok(Platform {
            application,
            collector: Arc::new(collector),
            metering,
        })
    }

    /// The control plane.
    pub fn application(&self) -> &Application {
        &self.application
    }

    /// The metering collector (to sweep on demand).
    pub fn collector(&self) -> Arc<Collector> {
        self.collector.clone()
    }

    /// Serves and meters until `shutdown`; metering stops first, then the control plane.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> capstan_api::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let metering = tokio::spawn(self.collector.clone().run(self.metering.interval, stop_rx));
        let served = self
            .application
            .run_until(async move {
                shutdown.await;
                let _ = stop_tx.send(true);
            })
            .await;
        let _ = metering.await;
        served
    }
}
