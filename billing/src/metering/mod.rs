//! Metering: what is counted and how (see `docs/metering.md`).

mod collector;
mod cursors;
mod deliveries;
mod meter;
mod usage_tx;

pub use collector::{Collector, CollectorMetrics, SweepReport, unix_now};
pub use cursors::{Increment, plan};
pub use deliveries::DeliveryLedger;
pub use meter::{HourlyUsage, Meter, TopicTotals};
pub(crate) use usage_tx::close_through;
pub use usage_tx::spread_over_hours;

use std::collections::BTreeMap;

use async_trait::async_trait;

use capstan_kafka::Credentials;

use crate::Result;

/// A cluster to sweep.
#[derive(Clone, Debug)]
pub struct ClusterTarget {
    /// The cluster's id.
    pub cluster_id: String,
    /// How to reach its brokers with full read access.
    pub credentials: Credentials,
    /// The prefix of the cluster's topics and groups on a shared broker pool ("" for a cluster
    /// with brokers of its own): only names with it are read, and it is stripped.
    pub prefix: String,
    /// The shared pool it lives on ("" for brokers of its own; handed back to
    /// [`Fleet::stored_bytes`]).
    pub pool: String,
    /// Three zones instead of one (handed back to [`Fleet::stored_bytes`], which measures the
    /// engine's way and may need it).
    pub multizone: bool,
    /// Consumption is counted from the consumer groups' committed offsets. False for clusters
    /// whose every client goes through Capstan's gateways, which count the records they
    /// deliver (a [`DeliveryLedger`]); counting commits as well would bill them twice.
    pub consumption_from_offsets: bool,
}

/// The control plane as the collector sees it.
#[async_trait]
pub trait Fleet: Send + Sync + std::fmt::Debug {
    /// Every cluster that should be metered now.
    async fn clusters(&self) -> Result<Vec<ClusterTarget>>;
    /// One cluster that should be metered now; `None` when it is not live. (Override it where
    /// one cluster can be found without listing them all.)
    async fn cluster(&self, cluster_id: &str) -> Result<Option<ClusterTarget>> {
        Ok(self
            .clusters()
            .await?
            .into_iter()
            .find(|target| target.cluster_id == cluster_id))
    }
    /// Bytes stored per topic, summed over replicas, measured the engine's way (Apache Kafka:
    /// DescribeLogDirs; the local engine: the size of its stored records).
    async fn stored_bytes(&self, cluster: &ClusterTarget) -> Result<BTreeMap<String, i64>>;
}

/// The start of the UTC hour containing `unix_seconds`.
pub fn hour_of(unix_seconds: i64) -> i64 {
    unix_seconds - unix_seconds.rem_euclid(3600)
}
