//! The gateway's Kafka clients, one set per cluster, made on first use: a producer shared by
//! every request, and a pool of group-less consumers for `/fetch` and offset look-ups.

use std::{collections::HashMap, sync::Arc, time::Duration};

use rdkafka::{ClientConfig, consumer::BaseConsumer, producer::FutureProducer};
use tokio::sync::Mutex;

use crate::{Error, Result, clusters, credentials::Access, state::AppState};

/// Idle pooled consumers kept per cluster.
const MAX_IDLE_FETCHERS: usize = 8;
/// Group-less consumers in use at once per cluster; further requests wait for one.
const MAX_BUSY_FETCHERS: usize = 32;
/// Messages sent in batches and not yet acknowledged past which new batches go to the bulk
/// producer: about 16 requests of 100 in flight at once. Below it a longer linger only adds
/// latency to clients that wait for each answer; above it the broker's cost per produce
/// request dominates, and fewer, larger requests carry more (docs/benchmarks.md measures both).
const BULK_OUTSTANDING: i32 = 1_600;

/// A cluster's clients.
pub struct ClusterClients {
    /// Connection settings (bootstrap, internal SCRAM user).
    pub config: ClientConfig,
    /// Producer for single messages: no lingering, the lowest latency. Every producer uses
    /// acks=all and Kafka's murmur2 partitioner, so REST and Java/kafkajs producers agree.
    producer: FutureProducer,
    /// Producer for batches: lingers 1 ms, so concurrent requests share broker requests.
    batch_producer: FutureProducer,
    /// Producer for batches under load: lingers 5 ms (as librdkafka's default does), so the
    /// messages of many concurrent requests reach the broker in a few large produce requests.
    bulk_producer: FutureProducer,
    idle: std::sync::Mutex<Vec<BaseConsumer>>,
    busy: Arc<tokio::sync::Semaphore>,
    /// Committed offsets of groups with no consumer instance here, made on first use.
    group_offsets: tokio::sync::OnceCell<capstan_kafka::GroupOffsets>,
}

/// A pooled consumer lent to one request; give it back with [`ClusterClients::give_back`].
#[allow(missing_debug_implementations)] // librdkafka handles have no useful Debug form
pub struct Fetcher {
    /// The consumer.
    pub consumer: BaseConsumer,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl std::fmt::Debug for ClusterClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterClients").finish_non_exhaustive()
    }
}

impl ClusterClients {
    fn new(config: ClientConfig) -> Result<Self> {
        let producer = |linger_ms: &str| -> Result<FutureProducer> {
            config
                .clone()
                .set("acks", "all")
                .set("partitioner", "murmur2_random")
                .set("linger.ms", linger_ms)
                .set("message.timeout.ms", "15000")
                .set("enable.idempotence", "false")
                .create()
                .map_err(|e| Error::Broker(format!("could not create a Kafka producer: {e}")))
        };
        Ok(ClusterClients {
            producer: producer("0")?,
            batch_producer: producer("1")?,
            bulk_producer: producer("5")?,
            config,
            idle: std::sync::Mutex::new(Vec::new()),
            busy: Arc::new(tokio::sync::Semaphore::new(MAX_BUSY_FETCHERS)),
            group_offsets: tokio::sync::OnceCell::new(),
        })
    }

    /// The reader of committed offsets on these brokers, as the gateway's own user (the
    /// Kafka gateway's backend), made on first use: kept connections to the coordinators, where
    /// a librdkafka client per request would start threads and fetch metadata each time.
    pub async fn group_offsets(
        &self,
        app: &AppState,
        access: &Access,
    ) -> Result<&capstan_kafka::GroupOffsets> {
        self.group_offsets
            .get_or_try_init(|| async {
                let row = clusters::find_live(&app.store, &access.cluster_id).await?;
                let backend = app.provisioner.gateway_backend(&row.spec()).await?;
                Ok::<_, Error>(capstan_kafka::GroupOffsets::new(
                    &capstan_kafka::Credentials {
                        bootstrap: backend.bootstrap,
                        username: backend.username,
                        password: backend.password,
                        tls: None,
                    },
                ))
            })
            .await
    }

    /// The producer for a request of `messages` messages: a single message is sent at once;
    /// a batch lingers 1 ms, or 5 ms while many batched messages are outstanding. A request's
    /// messages all go through one producer, so they keep their order.
    pub fn producer_for(&self, messages: usize) -> &FutureProducer {
        use rdkafka::producer::Producer;
        if messages <= 1 {
            return &self.producer;
        }
        let outstanding =
            self.batch_producer.in_flight_count() + self.bulk_producer.in_flight_count();
        if outstanding >= BULK_OUTSTANDING {
            &self.bulk_producer
        } else {
            &self.batch_producer
        }
    }

    /// A group-less consumer from the pool (or a new one), waiting while too many are in use.
    pub async fn take_fetcher(&self) -> Result<Fetcher> {
        let permit = self
            .busy
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Broker("the gateway is shutting down".into()))?;
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let consumer = match pooled {
            Some(consumer) => consumer,
            None => self
                .config
                .clone()
                // librdkafka's assign() needs a group id; the consumer never joins the group
                // (no subscribe) and never commits, so the id is only a label.
                .set("group.id", "capstan-rest-fetch")
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .set("enable.partition.eof", "false")
                .set("auto.offset.reset", "earliest")
                .set("fetch.wait.max.ms", "100")
                .create()
                .map_err(|e| Error::Broker(format!("could not create a Kafka consumer: {e}")))?,
        };
        Ok(Fetcher {
            consumer,
            _permit: permit,
        })
    }

    /// Returns a consumer to the pool, unassigned.
    pub fn give_back(&self, fetcher: Fetcher) {
        use rdkafka::consumer::Consumer;
        let Fetcher { consumer, _permit } = fetcher;
        if consumer.unassign().is_err() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE_FETCHERS
        {
            idle.push(consumer);
        }
    }
}

/// Every cluster's clients: a dedicated cluster's own, and one set per shared pool, used by
/// every cluster on it (their names differ by prefix).
#[derive(Debug, Default)]
pub struct Clients {
    by_brokers: Mutex<HashMap<String, Arc<ClusterClients>>>,
}

/// The key of a pool's clients (a dedicated cluster's are keyed by its id).
const POOL_KEY: &str = "pool:";

impl Clients {
    /// The clients of the brokers of a credential's cluster, made on first use.
    pub async fn of(&self, app: &AppState, access: &Access) -> Result<Arc<ClusterClients>> {
        let key = if access.pool.is_empty() {
            access.cluster_id.clone()
        } else {
            format!("{POOL_KEY}{}", access.pool)
        };
        if let Some(clients) = self.by_brokers.lock().await.get(&key) {
            return Ok(clients.clone());
        }
        // Made without the lock, which every REST request takes: a slow store (or an outage)
        // while one cluster's clients are made must not hold up every other cluster's requests.
        let row = clusters::find_live(&app.store, &access.cluster_id).await?;
        let config = app
            .provisioner
            .client_config(&row.spec(), &row.tcp_endpoint);
        let made = Arc::new(ClusterClients::new(config)?);
        // A parallel request may have made them meanwhile: the first one in the map is used.
        Ok(self
            .by_brokers
            .lock()
            .await
            .entry(key)
            .or_insert(made)
            .clone())
    }

    /// Drops the clients of clusters not in `live` (deleted clusters), on a blocking thread.
    /// A pool's clients stay.
    pub async fn retain(&self, live: &std::collections::HashSet<String>) {
        let gone: Vec<Arc<ClusterClients>> = {
            let mut by_cluster = self.by_brokers.lock().await;
            let ids: Vec<String> = by_cluster
                .keys()
                .filter(|id| !id.starts_with(POOL_KEY) && !live.contains(*id))
                .cloned()
                .collect();
            ids.iter().filter_map(|id| by_cluster.remove(id)).collect()
        };
        if !gone.is_empty() {
            tracing::info!(
                clusters = gone.len(),
                "dropping the Kafka clients of deleted clusters"
            );
            let _ = tokio::task::spawn_blocking(move || drop(gone)).await;
        }
    }

    /// Drops every client (at shutdown), flushing producers first.
    pub async fn close(&self) {
        let all: Vec<_> = self
            .by_brokers
            .lock()
            .await
            .drain()
            .map(|(_, c)| c)
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            use rdkafka::producer::Producer;
            for clients in all {
                for producer in [
                    &clients.producer,
                    &clients.batch_producer,
                    &clients.bulk_producer,
                ] {
                    let _ = producer.flush(Duration::from_secs(5));
                }
            }
        })
        .await;
    }
}
