//! Reading usage back: hourly series, per-topic totals, and the gateway's group-less fetches.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::AnyPool;

use super::{hour_of, usage_tx::UsageTx};
use crate::Result;

/// Usage of one hour (all topics, or one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HourlyUsage {
    /// Start of the UTC hour, unix seconds.
    pub hour: i64,
    /// Messages produced.
    pub produced: i64,
    /// Messages consumed (group commits and group-less REST fetches).
    pub consumed: i64,
    /// Average bytes stored during the hour, summed over replicas.
    pub storage_bytes: i64,
}

/// A topic's totals over a period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TopicTotals {
    /// Topic name.
    pub topic: String,
    /// Messages produced.
    pub produced: i64,
    /// Messages consumed.
    pub consumed: i64,
}

/// Reads and adds usage.
#[derive(Clone, Debug)]
pub struct Meter {
    pool: AnyPool,
}

type Row = (String, i64, i64, i64, i64, i64);

impl Meter {
    /// A meter over the store's pool.
    pub fn new(pool: AnyPool) -> Self {
        Meter { pool }
    }

    /// Counts messages returned by one group-less REST fetch (offsets cannot reveal those).
    pub async fn record_fetch(
        &self,
        cluster_id: &str,
        topic: &str,
        messages: i64,
        now: i64,
    ) -> Result<()> {
        let mut usage = UsageTx::begin(&self.pool).await?;
        usage
            .add(cluster_id, topic, hour_of(now), 0, messages, 0, 0)
            .await?;
        usage.commit().await
    }

    async fn rows(
        &self,
        cluster_id: &str,
        topic: Option<&str>,
        from: i64,
        to: i64,
    ) -> Result<Vec<Row>> {
        let sql = "SELECT topic, hour, produced, consumed, storage_sum, storage_samples FROM usage_hourly \
                   WHERE cluster_id = $1 AND hour >= $2 AND hour < $3 AND ($4 = '' OR topic = $4) ORDER BY hour, topic";
        Ok(sqlx::query_as(sql)
            .bind(cluster_id)
            .bind(hour_of(from))
            .bind(to)
            .bind(topic.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?)
    }

    /// Hourly usage in `[from, to)`, one entry per hour that has any, summed over topics (or of
    /// one topic). Storage is each topic's hourly average, summed.
    pub async fn hourly(
        &self,
        cluster_id: &str,
        topic: Option<&str>,
        from: i64,
        to: i64,
    ) -> Result<Vec<HourlyUsage>> {
        let mut hours: BTreeMap<i64, HourlyUsage> = BTreeMap::new();
        for (_, hour, produced, consumed, storage_sum, samples) in
            self.rows(cluster_id, topic, from, to).await?
        {
            let entry = hours.entry(hour).or_insert_with(|| HourlyUsage {
                hour,
                ..Default::default()
            });
            entry.produced += produced;
            entry.consumed += consumed;
            if samples > 0 {
                entry.storage_bytes += storage_sum / samples;
            }
        }
        Ok(hours.into_values().collect())
    }

    /// Per-topic totals in `[from, to)`.
    pub async fn topic_totals(
        &self,
        cluster_id: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<TopicTotals>> {
        let mut topics: BTreeMap<String, TopicTotals> = BTreeMap::new();
        for (topic, _, produced, consumed, _, _) in self.rows(cluster_id, None, from, to).await? {
            let entry = topics.entry(topic.clone()).or_insert_with(|| TopicTotals {
                topic,
                ..Default::default()
            });
            entry.produced += produced;
            entry.consumed += consumed;
        }
        Ok(topics.into_values().collect())
    }
}
