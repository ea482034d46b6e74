//! Records delivered to Kafka clients, counted where the gateway hands them out: added in
//! memory on the data path and written to the usage ledger every few seconds, in one
//! transaction per write. A crash loses at most what was counted since the last write (the
//! platform under-bills; it never counts a record twice), and a failed write keeps its counts
//! for the next one.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use sqlx::AnyPool;

use super::{hour_of, usage_tx::UsageTx};
use crate::Result;

/// How often counted deliveries are written: the most a crash can lose.
pub const WRITE_EVERY: Duration = Duration::from_secs(2);

/// (cluster id, topic, hour) → records delivered.
type Pending = HashMap<(String, String, i64), u64>;

/// Counts deliveries and writes them to the usage ledger.
#[derive(Debug)]
pub struct DeliveryLedger {
    pool: AnyPool,
    pending: Mutex<Pending>,
}

impl DeliveryLedger {
    /// A ledger writing into the store behind `pool`.
    pub fn new(pool: AnyPool) -> Self {
        DeliveryLedger {
            pool,
            pending: Mutex::default(),
        }
    }

    /// Counts `messages` records of `topic` delivered to a client of `cluster_id` at `now`
    /// (unix seconds), in the hour they were delivered.
    pub fn add(&self, cluster_id: &str, topic: &str, messages: u64, now: i64) {
        if messages == 0 {
            return;
        }
        if let Ok(mut pending) = self.pending.lock() {
            *pending
                .entry((cluster_id.to_owned(), topic.to_owned(), hour_of(now)))
                .or_default() += messages;
        }
    }

    /// Writes what was counted; the number of records written. On failure the counts are
    /// kept for the next write.
    pub async fn flush(&self) -> Result<u64> {
        let taken = match self.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(_) => return Ok(0),
        };
        if taken.is_empty() {
            return Ok(0);
        }
        match self.write(&taken).await {
            Ok(()) => Ok(taken.values().sum()),
            Err(error) => {
                if let Ok(mut pending) = self.pending.lock() {
                    for (key, messages) in taken {
                        *pending.entry(key).or_default() += messages;
                    }
                }
                Err(error)
            }
        }
    }

    async fn write(&self, counts: &Pending) -> Result<()> {
        let mut usage = UsageTx::begin(&self.pool).await?;
        for ((cluster_id, topic, hour), messages) in counts {
            let consumed = i64::try_from(*messages).unwrap_or(i64::MAX);
            usage
                .add(cluster_id, topic, *hour, 0, consumed, 0, 0)
                .await?;
        }
        usage.commit().await
    }

    /// Writes every [`WRITE_EVERY`] until `stop` turns true, then once more.
    pub async fn run(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(WRITE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            if let Err(error) = self.flush().await {
                tracing::warn!(%error, "could not write delivered records to the usage ledger; retrying");
            }
        }
        if let Err(error) = self.flush().await {
            tracing::error!(%error, "delivered records since the last write could not be stored at shutdown");
        }
    }
}
