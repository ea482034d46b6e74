//! The sweep: every interval, read every cluster (bounded concurrency), count, and store the
//! counts with their cursors in one transaction per cluster.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use sqlx::AnyPool;
use tokio::{sync::Semaphore, task::JoinSet};

use super::{
    ClusterTarget, Fleet,
    cursors::{Cursor, CursorKey, Increment, plan},
    hour_of,
    usage_tx::{UsageTx, is_sqlite, spread_over_hours},
};
use capstan_kafka::failpoint;

use crate::{Error, Result};

/// Prometheus metrics of the collector.
#[derive(Clone, Debug)]
pub struct CollectorMetrics {
    sweep_seconds: Histogram,
    clusters_swept: IntCounter,
    errors: IntCounterVec,
    lag_seconds: IntGauge,
}

impl CollectorMetrics {
    /// Creates and registers the metrics in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let sweep_seconds = Histogram::with_opts(HistogramOpts::new(
            "metering_sweep_duration_seconds",
            "Duration of a metering sweep",
        ))?;
        let clusters_swept = IntCounter::new(
            "metering_clusters_swept_total",
            "Clusters swept successfully",
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "metering_errors_total",
                "Failed cluster sweeps by cluster and reason",
            ),
            &["cluster", "reason"],
        )?;
        let lag_seconds = IntGauge::new(
            "metering_lag_seconds",
            "How far the last sweep ended past its interval",
        )?;
        registry.register(Box::new(sweep_seconds.clone()))?;
        registry.register(Box::new(clusters_swept.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(lag_seconds.clone()))?;
        Ok(CollectorMetrics {
            sweep_seconds,
            clusters_swept,
            errors,
            lag_seconds,
        })
    }
}

/// What one sweep did.
#[derive(Clone, Debug, Default)]
pub struct SweepReport {
    /// Clusters counted.
    pub swept: usize,
    /// Clusters that failed, with why.
    pub failed: Vec<(String, String)>,
    /// Clusters left for later because they are backing off after failures.
    pub backing_off: usize,
    /// How long the sweep took.
    pub duration: Duration,
}

/// Longest wait before retrying a failing cluster.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// Reads the fleet and stores exactly-once usage.
#[derive(Debug)]
pub struct Collector {
    pool: AnyPool,
    fleet: Arc<dyn Fleet>,
    concurrency: usize,
    metrics: Option<CollectorMetrics>,
    backoff: Mutex<HashMap<String, (u32, Instant)>>,
    /// SQLite allows one writer: a transaction that reads and then writes fails (SQLITE_BUSY)
    /// when another commits in between, so on SQLite clusters are stored one at a time (brokers
    /// are still read concurrently).
    single_writer: Option<tokio::sync::Mutex<()>>,
    /// One read-and-store at a time per cluster: a snapshot read before another sweep of the
    /// same cluster stored a later one must not be stored after it (on an engine without topic
    /// ids, an older position looks like a re-created topic and would be counted again).
    sweeping: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Collector {
    /// A collector storing into `pool`, sweeping at most `concurrency` clusters at once.
    pub fn new(pool: AnyPool, fleet: Arc<dyn Fleet>, concurrency: usize) -> Self {
        let sqlite = is_sqlite(&pool);
        Collector {
            pool,
            fleet,
            concurrency: concurrency.max(1),
            metrics: None,
            backoff: Mutex::new(HashMap::new()),
            single_writer: sqlite.then(|| tokio::sync::Mutex::new(())),
            sweeping: Mutex::new(HashMap::new()),
        }
    }

    /// Records Prometheus metrics.
    pub fn with_metrics(mut self, metrics: CollectorMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Sweeps every cluster once, at time `now` (unix seconds; it picks the hour counted into).
    pub async fn sweep(self: &Arc<Self>, now: i64) -> Result<SweepReport> {
        let started = Instant::now();
        let targets = self.fleet.clusters().await?;
        if let Ok(mut locks) = self.sweeping.lock() {
            // Locks of clusters gone (deleted), unless one is held right now.
            locks.retain(|id, lock| {
                Arc::strong_count(lock) > 1 || targets.iter().any(|t| &t.cluster_id == id)
            });
        }
        let mut report = SweepReport::default();
        let limit = Arc::new(Semaphore::new(self.concurrency));
        let mut running = JoinSet::new();
        let mut swept_by_task = HashMap::new();
        for target in targets {
            if self.backing_off(&target.cluster_id) {
                report.backing_off += 1;
                continue;
            }
            let (this, limit) = (self.clone(), limit.clone());
            let cluster = target.cluster_id.clone();
            let task = running.spawn(async move {
                let _permit = limit.acquire_owned().await;
                this.sweep_cluster(&target, now).await
            });
            swept_by_task.insert(task.id(), cluster);
        }
        while let Some(joined) = running.join_next_with_id().await {
            let (task, result) = match joined {
                Ok((task, result)) => (task, result),
                // A cluster's sweep that stopped half-way stored nothing (its transaction was
                // never committed): a failure like any other, caught up later.
                Err(stopped) => (
                    stopped.id(),
                    Err(Error::Fleet(format!("the sweep stopped: {stopped}"))),
                ),
            };
            let Some(cluster) = swept_by_task.remove(&task) else {
                continue;
            };
            match result {
                Ok(()) => {
                    report.swept += 1;
                    self.succeeded(&cluster);
                }
                Err(error) => {
                    let wait = self.failed(&cluster);
                    tracing::warn!(%cluster, %error, retry_in = ?wait, "could not meter a cluster; it will be caught up later");
                    if let Some(metrics) = &self.metrics {
                        metrics
                            .errors
                            .with_label_values(&[cluster.as_str(), reason(&error)])
                            .inc();
                    }
                    report.failed.push((cluster, error.to_string()));
                }
            }
        }
        report.duration = started.elapsed();
        if let Some(metrics) = &self.metrics {
            metrics.sweep_seconds.observe(report.duration.as_secs_f64());
            metrics.clusters_swept.inc_by(report.swept as u64);
        }
        Ok(report)
    }

    /// The lock held while one cluster is read and stored.
    fn cluster_lock(&self, cluster_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.sweeping.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(cluster_id.to_owned()).or_default().clone()
    }

    /// Meters one cluster now, whatever the interval (before one of its topics or the cluster
    /// is deleted: nothing can be read from the brokers afterwards). A cluster that is not
    /// live any more has nothing left to meter.
    pub async fn meter_now(&self, cluster_id: &str, now: i64) -> Result<()> {
        match self.fleet.cluster(cluster_id).await? {
            Some(target) => self.sweep_cluster(&target, now).await,
            None => Ok(()),
        }
    }

    /// Forgets where counting stopped for a deleted topic, so a topic created again with the
    /// same name is counted from its own start.
    pub async fn forget_topic(&self, cluster_id: &str, topic: &str) -> Result<()> {
        let lock = self.cluster_lock(cluster_id);
        let _sweeping = lock.lock().await;
        sqlx::query("DELETE FROM meter_cursors WHERE cluster_id = $1 AND topic = $2")
            .bind(cluster_id)
            .bind(topic)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Reads one cluster and stores what it adds.
    pub async fn sweep_cluster(&self, target: &ClusterTarget, now: i64) -> Result<()> {
        let lock = self.cluster_lock(&target.cluster_id);
        let _sweeping = lock.lock().await;
        let mut snapshot = capstan_kafka::read_offsets(&target.credentials, &target.prefix).await?;
        if !target.consumption_from_offsets {
            // Its gateways count what they deliver; commits are not consumption here.
            snapshot.committed.clear();
        }
        let stored = self.fleet.stored_bytes(target).await?;
        self.store(&target.cluster_id, &snapshot, &stored, now)
            .await
    }

    /// Stores a snapshot's counts and the new cursors in one transaction: a crash at any point
    /// leaves either everything or nothing, so the next sweep neither loses nor repeats a count.
    /// The counts cover the time since the cluster was last metered and are spread over the
    /// hours of that span; a snapshot taken before the last stored one (another replica's,
    /// stored meanwhile) is dropped, since the next sweep counts from the cursors anyway.
    pub async fn store(
        &self,
        cluster_id: &str,
        snapshot: &capstan_kafka::Snapshot,
        stored: &BTreeMap<String, i64>,
        now: i64,
    ) -> Result<()> {
        let _writer = match &self.single_writer {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let mut usage = UsageTx::begin(&self.pool).await?;
        if self.single_writer.is_none() {
            // PostgreSQL, where several control-plane replicas may meter the same cluster: one
            // transaction per cluster at a time, so each reads the cursors the last one wrote
            // (a stale snapshot then counts nothing, see `plan`), never the same ones twice.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(cluster_id)
                .execute(usage.connection())
                .await?;
        }
        let metered_through: Option<(i64,)> =
            sqlx::query_as("SELECT metered_through FROM meter_progress WHERE cluster_id = $1")
                .bind(cluster_id)
                .fetch_optional(usage.connection())
                .await?;
        let from = metered_through.map(|(at,)| at);
        if from.is_some_and(|from| now < from) {
            return Ok(());
        }
        let rows: Vec<(String, i64, String, String, i64)> = sqlx::query_as(
            "SELECT topic, partition_id, group_id, topic_id, position FROM meter_cursors WHERE cluster_id = $1",
        )
        .bind(cluster_id)
        .fetch_all(usage.connection())
        .await?;
        let cursors: HashMap<CursorKey, Cursor> = rows
            .into_iter()
            .map(|(topic, partition, group, topic_id, position)| {
                (
                    (topic, partition as i32, group),
                    Cursor { topic_id, position },
                )
            })
            .collect();
        let Increment {
            produced,
            consumed,
            cursors: moved,
        } = plan(snapshot, &cursors);
        failpoint::hit("sweep.store.cursors").await;
        for ((topic, partition, group), cursor) in &moved {
            sqlx::query(
                "INSERT INTO meter_cursors (cluster_id, topic, partition_id, group_id, topic_id, position, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (cluster_id, topic, partition_id, group_id) \
                 DO UPDATE SET topic_id = excluded.topic_id, position = excluded.position, updated_at = excluded.updated_at",
            )
            .bind(cluster_id)
            .bind(topic)
            .bind(i64::from(*partition))
            .bind(group)
            .bind(&cursor.topic_id)
            .bind(cursor.position)
            .bind(now)
            .execute(usage.connection())
            .await?;
        }
        let mut topics: Vec<&String> = produced
            .keys()
            .chain(consumed.keys())
            .chain(stored.keys())
            .collect();
        topics.sort();
        topics.dedup();
        for topic in topics {
            // Messages over the hours since the last sweep, one storage sample in this hour.
            let spread = |counts: &BTreeMap<String, i64>| {
                spread_over_hours(counts.get(topic).copied().unwrap_or(0), from, now)
            };
            let mut hours: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
            for (hour, share) in spread(&produced) {
                hours.entry(hour).or_default().0 += share;
            }
            for (hour, share) in spread(&consumed) {
                hours.entry(hour).or_default().1 += share;
            }
            hours.entry(hour_of(now)).or_default();
            let bytes = stored.get(topic).copied();
            for (hour, (produced, consumed)) in hours {
                let sample = (hour == hour_of(now)).then_some(bytes).flatten();
                usage
                    .add(
                        cluster_id,
                        topic,
                        hour,
                        produced,
                        consumed,
                        sample.unwrap_or(0),
                        i64::from(sample.is_some()),
                    )
                    .await?;
            }
        }
        failpoint::hit("sweep.store.usage").await;
        sqlx::query(
            "INSERT INTO meter_progress (cluster_id, metered_through) VALUES ($1, $2) \
             ON CONFLICT (cluster_id) DO UPDATE SET metered_through = excluded.metered_through",
        )
        .bind(cluster_id)
        .bind(now)
        .execute(usage.connection())
        .await?;
        usage.commit().await
    }

    /// Sweeps every `interval` until `stop` turns true; a sweep that overruns is logged.
    pub async fn run(
        self: Arc<Self>,
        interval: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            let now = unix_now();
            match self.sweep(now).await {
                Ok(report) => {
                    let late = report.duration.saturating_sub(interval);
                    if let Some(metrics) = &self.metrics {
                        metrics.lag_seconds.set(late.as_secs() as i64);
                    }
                    if late > Duration::ZERO {
                        tracing::warn!(took = ?report.duration, ?interval, clusters = report.swept, "a metering sweep took longer than its interval");
                    } else {
                        tracing::debug!(took = ?report.duration, clusters = report.swept, failed = report.failed.len(), "metering sweep");
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "metering sweep failed; retrying at the next interval")
                }
            }
        }
    }

    fn backing_off(&self, cluster: &str) -> bool {
        self.backoff
            .lock()
            .ok()
            .and_then(|b| b.get(cluster).map(|(_, until)| Instant::now() < *until))
            .unwrap_or(false)
    }

    fn succeeded(&self, cluster: &str) {
        if let Ok(mut backoff) = self.backoff.lock() {
            backoff.remove(cluster);
        }
    }

    fn failed(&self, cluster: &str) -> Duration {
        let Ok(mut backoff) = self.backoff.lock() else {
            return Duration::ZERO;
        };
        let entry = backoff
            .entry(cluster.to_owned())
            .or_insert((0, Instant::now()));
        entry.0 += 1;
        let wait = Duration::from_secs(1u64 << entry.0.min(10)).min(MAX_BACKOFF);
        entry.1 = Instant::now() + wait;
        wait
    }
}

fn reason(error: &Error) -> &'static str {
    match error {
        Error::Kafka(capstan_kafka::Error::Unreachable(_) | capstan_kafka::Error::Io { .. }) => {
            "unreachable"
        }
        Error::Kafka(capstan_kafka::Error::Authentication(_)) => "authentication",
        Error::Kafka(capstan_kafka::Error::Protocol(_)) => "protocol",
        Error::Database(_) => "database",
        Error::Fleet(_) => "fleet",
        Error::Invalid(_) | Error::NotFound(_) => "invalid",
        Error::Stripe(_) => "stripe",
    }
}

/// Now, in unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
