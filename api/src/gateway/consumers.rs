//! Consumer instances: each (cluster, group, instance) is one stateful Kafka consumer in the
//! group, created by its first `/consume`, kept while it is used, and closed — leaving the group,
//! so its partitions go to the others — when it idles past its session timeout, when it is
//! deleted, and at shutdown. No ghost consumers.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Json,
    extract::{Path, Query, State},
    http::HeaderMap,
};
use rdkafka::{
    ClientConfig, Offset, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer},
    error::{KafkaError, RDKafkaErrorCode},
    message::Message as _,
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::{
    Action, GatewayResult, GatewayState, RawBody,
    auth::Client,
    poll,
    types::{Message, OneOrMany, TopicPartition, TopicPartitionOffset},
};
use crate::{Error, Result, credentials::Access, extract::parse_json, topics};

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    cluster: String,
    group: String,
    instance: String,
}

/// Settings read from the `Kafka-*` request headers when an instance is created.
#[derive(Clone, Debug)]
struct InstanceSettings {
    auto_commit: bool,
    auto_commit_interval_ms: u64,
    auto_offset_reset: &'static str,
    session_timeout: Duration,
}

impl InstanceSettings {
    fn from_headers(headers: &HeaderMap) -> Result<Self> {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let number = |name: &str, default: u64| -> Result<u64> {
            match get(name) {
                None => Ok(default),
                Some(text) => text.parse().map_err(|_| {
                    Error::Invalid(format!(
                        "{name} must be a number of milliseconds (got {text:?})"
                    ))
                }),
            }
        };
        let auto_commit = match get("kafka-enable-auto-commit")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "Kafka-Enable-Auto-Commit must be true or false (got {other:?})"
                )));
            }
        };
        let auto_offset_reset = match get("kafka-auto-offset-reset")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("latest") => "latest",
            Some("earliest") => "earliest",
            Some("none") => "error",
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "Kafka-Auto-Offset-Reset must be earliest, latest or none (got {other:?})"
                )));
            }
        };
        Ok(InstanceSettings {
            auto_commit,
            auto_commit_interval_ms: number("kafka-auto-commit-interval", 5000)?.max(100),
            auto_offset_reset,
            session_timeout: Duration::from_millis(
                number("kafka-session-timeout-ms", 120_000)?.clamp(1000, 3_600_000),
            ),
        })
    }

    fn consumer_config(&self, base: &ClientConfig, group: &str, instance: &str) -> ClientConfig {
        let idle_ms = self.session_timeout.as_millis() as u64;
        let mut config = base.clone();
        config
            .set("group.id", group)
            .set("client.id", format!("capstan-rest-{instance}"))
            .set("enable.auto.commit", self.auto_commit.to_string())
            .set(
                "auto.commit.interval.ms",
                self.auto_commit_interval_ms.to_string(),
            )
            // Only records handed to the client are stored for (auto-)commit: records polled
            // and dropped (of a topic the instance just stopped consuming) are never committed.
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", self.auto_offset_reset)
            // The group session only detects a gateway that died; idle instances are closed by
            // the gateway itself after the instance's session timeout.
            .set(
                "session.timeout.ms",
                idle_ms.clamp(6000, 45_000).to_string(),
            )
            .set(
                "max.poll.interval.ms",
                (idle_ms + 60_000).clamp(300_000, 86_400_000).to_string(),
            )
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "100");
        config
    }
}

struct Instance {
    /// The credential that made it: only it may use, commit or delete the instance.
    owner: String,
    consumer: std::sync::Mutex<Option<BaseConsumer>>,
    topics: std::sync::Mutex<Vec<String>>,
    last_used: std::sync::Mutex<Instant>,
    idle_timeout: Duration,
}

impl Instance {
    fn touch(&self) {
        if let Ok(mut last) = self.last_used.lock() {
            *last = Instant::now();
        }
    }

    fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .map(|last| last.elapsed())
            .unwrap_or_default()
    }

    /// Runs `f` with the consumer on a blocking thread.
    async fn with_consumer<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&BaseConsumer, &mut Vec<String>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.touch();
        let instance = self.clone();
        let result = tokio::task::spawn_blocking(move || {
            let guard = instance
                .consumer
                .lock()
                .map_err(|_| Error::internal("consumer lock poisoned", "panic"))?;
            let consumer = guard.as_ref().ok_or_else(|| {
                Error::Missing(
                    "this consumer instance was just closed; consume again to create it".into(),
                )
            })?;
            let mut topics = instance
                .topics
                .lock()
                .map_err(|_| Error::internal("topics lock poisoned", "panic"))?;
            f(consumer, &mut topics)
        })
        .await
        .map_err(|e| Error::internal("consumer task failed", e))?;
        self.touch();
        result
    }

    /// Leaves the group and closes the consumer (blocking: call on a blocking thread), for at
    /// most [`CLOSE_TIMEOUT`]: a consumer whose brokers do not answer is abandoned (the group
    /// drops it after its session timeout), because dropping it would wait for them forever.
    fn close(&self) {
        let Some(consumer) = self.consumer.lock().ok().and_then(|mut c| c.take()) else {
            return;
        };
        consumer.unsubscribe();
        if consumer.close_queue().is_ok() {
            let deadline = Instant::now() + CLOSE_TIMEOUT;
            while !consumer.closed() && Instant::now() < deadline {
                consumer.poll(Duration::from_millis(100));
            }
        }
        if consumer.closed() {
            drop(consumer);
        } else {
            tracing::warn!(
                timeout_secs = CLOSE_TIMEOUT.as_secs(),
                "a consumer instance did not leave its group in time; abandoned"
            );
            std::mem::forget(consumer);
        }
    }
}

/// The longest a consumer instance is given to leave its group when it is closed.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Every live consumer instance of the gateway.
#[derive(Default)]
pub struct Instances {
    live: Mutex<HashMap<Key, Arc<Instance>>>,
}

impl std::fmt::Debug for Instances {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instances").finish_non_exhaustive()
    }
}

/// `instance` (the one at `key`), if `access`'s credential made it; 403 otherwise.
fn owned(instance: &Arc<Instance>, key: &Key, access: &Access) -> Result<Arc<Instance>> {
    if instance.owner == access.username {
        Ok(instance.clone())
    } else {
        Err(Error::Forbidden(format!(
            "consumer instance {}/{} belongs to another credential of this cluster; use another instance name",
            key.group, key.instance
        )))
    }
}

/// How many instances of `cluster` are in `live`.
fn in_cluster(live: &HashMap<Key, Arc<Instance>>, cluster: &str) -> i64 {
    live.keys().filter(|k| k.cluster == cluster).count() as i64
}

impl Instances {
    /// The instance `key`, if `access`'s credential made it.
    async fn find(&self, key: &Key, access: &Access) -> Result<Arc<Instance>> {
        match self.live.lock().await.get(key) {
            Some(instance) => owned(instance, key, access),
            None => Err(Error::Missing(format!(
                "consumer instance {}/{} does not exist (it is created by its first /consume and closed after being idle)",
                key.group, key.instance
            ))),
        }
    }

    async fn find_or_create(
        &self,
        state: &GatewayState,
        access: &Access,
        key: Key,
        headers: &HeaderMap,
    ) -> Result<Arc<Instance>> {
        // The lock guards the map only: the store and the brokers are asked without it, so one
        // tenant's slow consumer creation never holds up every other tenant's consumers.
        if let Some(instance) = self.live.lock().await.get(&key) {
            return owned(instance, &key, access);
        }
        let settings = InstanceSettings::from_headers(headers)?;
        let partitions: i64 = topics::all_of_cluster(&state.app, &key.cluster)
            .await?
            .iter()
            .map(|t| t.partitions)
            .sum();
        let limit = partitions.max(1);
        let over_limit = || {
            Error::LimitExceeded(format!(
                "a cluster may have at most as many consumer instances as partitions ({limit}); delete idle instances with /delete-consumer"
            ))
        };
        if in_cluster(&*self.live.lock().await, &key.cluster) >= limit {
            return Err(over_limit());
        }
        let clients = state.clients.of(&state.app, access).await?;
        let consumer: BaseConsumer = settings
            .consumer_config(&clients.config, &access.physical(&key.group), &key.instance)
            .create()
            .map_err(|e| Error::Broker(format!("could not create a Kafka consumer: {e}")))?;
        let made = Arc::new(Instance {
            owner: access.username.clone(),
            consumer: std::sync::Mutex::new(Some(consumer)),
            topics: std::sync::Mutex::new(Vec::new()),
            last_used: std::sync::Mutex::new(Instant::now()),
            idle_timeout: settings.session_timeout,
        });
        let mut live = self.live.lock().await;
        // A parallel request may have made the same instance, or the cluster's last one,
        // meanwhile: the map decides, and the consumer made here is closed unused.
        let kept = match live.get(&key) {
            Some(existing) => owned(existing, &key, access),
            None if in_cluster(&live, &key.cluster) >= limit => Err(over_limit()),
            None => {
                live.insert(key, made.clone());
                return Ok(made);
            }
        };
        drop(live);
        tokio::task::spawn_blocking(move || made.close());
        kept
    }

    /// Takes the instance `key` out, if `access`'s credential made it.
    async fn remove_owned(&self, key: &Key, access: &Access) -> Result<Arc<Instance>> {
        let mut live = self.live.lock().await;
        let instance = match live.get(key) {
            Some(instance) => owned(instance, key, access)?,
            None => {
                return Err(Error::Missing(format!(
                    "consumer instance {}/{} does not exist",
                    key.group, key.instance
                )));
            }
        };
        live.remove(key);
        Ok(instance)
    }

    /// Closes instances idle longer than their session timeout.
    pub async fn expire_idle(&self) {
        let expired: Vec<(Key, Arc<Instance>)> = {
            let mut live = self.live.lock().await;
            let keys: Vec<Key> = live
                .iter()
                .filter(|(_, i)| i.idle_for() > i.idle_timeout)
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter()
                .filter_map(|k| live.remove(&k).map(|i| (k, i)))
                .collect()
        };
        for (key, instance) in expired {
            tracing::info!(cluster = %key.cluster, group = %key.group, instance = %key.instance, "closing an idle consumer instance");
            let _ = tokio::task::spawn_blocking(move || instance.close()).await;
        }
    }

    /// Closes the instances of clusters not in `live` (deleted clusters).
    pub async fn retain(&self, live: &std::collections::HashSet<String>) {
        let gone: Vec<Arc<Instance>> = {
            let mut instances = self.live.lock().await;
            let keys: Vec<Key> = instances
                .keys()
                .filter(|k| !live.contains(&k.cluster))
                .cloned()
                .collect();
            keys.iter().filter_map(|k| instances.remove(k)).collect()
        };
        if !gone.is_empty() {
            let _ = tokio::task::spawn_blocking(move || gone.iter().for_each(|i| i.close())).await;
        }
    }

    /// Closes every instance (shutdown).
    pub async fn close_all(&self) {
        let all: Vec<Arc<Instance>> = self.live.lock().await.drain().map(|(_, i)| i).collect();
        let _ = tokio::task::spawn_blocking(move || all.iter().for_each(|i| i.close())).await;
    }

    /// Number of live instances.
    pub async fn count(&self) -> usize {
        self.live.lock().await.len()
    }
}

fn key(access: &Access, group: String, instance: String) -> Key {
    Key {
        cluster: access.cluster_id.clone(),
        group,
        instance,
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct TimeoutQuery {
    timeout: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ConsumeRequest {
    topic: Option<String>,
    topics: Option<Vec<String>>,
    timeout: Option<i64>,
}

/// `GET /consume/{group}/{instance}/{topic}?timeout=…`.
pub(super) async fn consume_topic(
    State(state): State<GatewayState>,
    Client(access, _slot): Client,
    Path((group, instance, topic)): Path<(String, String, String)>,
    Query(query): Query<TimeoutQuery>,
    headers: HeaderMap,
) -> GatewayResult<Json<Vec<Message>>> {
    Ok(Json(
        consume(
            &state,
            &access,
            key(&access, group, instance),
            vec![topic],
            query.timeout,
            &headers,
        )
        .await?,
    ))
}

/// `GET|POST /consume/{group}/{instance}` with `{topic | topics, timeout?}`.
pub(super) async fn consume_body(
    State(state): State<GatewayState>,
    Client(access, _slot): Client,
    Path((group, instance)): Path<(String, String)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> GatewayResult<Json<Vec<Message>>> {
    let request: ConsumeRequest = parse_json(&body)?
        .ok_or_else(|| Error::Invalid("the body must name a topic or topics".into()))?;
    let mut topics = request.topics.unwrap_or_default();
    topics.extend(request.topic);
    Ok(Json(
        consume(
            &state,
            &access,
            key(&access, group, instance),
            topics,
            request.timeout,
            &headers,
        )
        .await?,
    ))
}

async fn consume(
    state: &GatewayState,
    access: &Access,
    key: Key,
    mut topics: Vec<String>,
    timeout: Option<i64>,
    headers: &HeaderMap,
) -> Result<Vec<Message>> {
    topics.sort();
    topics.dedup();
    if topics.is_empty() {
        return Err(Error::Invalid("name a topic or topics to consume".into()));
    }
    if topics.len() > super::types::MAX_PARTITIONS_PER_REQUEST {
        return Err(Error::Invalid(format!(
            "a consumer may subscribe to at most {} topics in one request",
            super::types::MAX_PARTITIONS_PER_REQUEST
        )));
    }
    for topic in &topics {
        state.require_topic(access, topic, Action::Consume).await?;
    }
    let instance = state
        .instances
        .find_or_create(state, access, key, headers)
        .await?;
    let timeout = poll::timeout(timeout, 1000);
    // The brokers' names (a shared cluster's topics live under its prefix).
    let topics: Vec<String> = topics.iter().map(|t| access.physical(t)).collect();
    let prefix = access.prefix.clone();
    let messages = instance
        .with_consumer(move |consumer, subscribed| {
            if *subscribed != topics {
                let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                consumer
                    .subscribe(&names)
                    .map_err(|e| Error::Broker(format!("could not subscribe: {e}")))?;
                *subscribed = topics.clone();
            }
            let (messages, error) = poll::poll_batch(consumer, timeout, &prefix, |record| {
                topics.iter().any(|t| t == record.topic())
            });
            store_delivered(consumer, &prefix, &messages);
            match error {
                Some(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))
                    if messages.is_empty() =>
                {
                    Err(Error::Invalid(
                        "the group has no committed offset and Kafka-Auto-Offset-Reset is none"
                            .into(),
                    ))
                }
                _ => Ok(messages),
            }
        })
        .await?;
    let metered_here =
        crate::clusters::through_gateway(!access.prefix.is_empty(), state.app.provisioner.as_ref());
    state
        .usage
        .consumed(&access.cluster_id, &messages, metered_here)
        .await;
    Ok(messages)
}

/// Stores, for the next (auto-)commit, the position after the last record of each partition
/// handed to the client. A partition no longer assigned (a rebalance since) refuses the store:
/// its records are then consumed again by its new owner, never skipped.
fn store_delivered(consumer: &BaseConsumer, prefix: &str, messages: &[Message]) {
    let mut last: HashMap<(String, i32), i64> = HashMap::new();
    for message in messages {
        let position = last
            .entry((format!("{prefix}{}", message.topic), message.partition))
            .or_insert(message.offset);
        *position = (*position).max(message.offset);
    }
    for ((topic, partition), offset) in last {
        if let Err(error) = consumer.store_offset(&topic, partition, offset) {
            tracing::debug!(%error, %topic, partition, "delivered offset not stored");
        }
    }
}

/// `GET|POST /commit/{group}/{instance}`: no body or `[]` commits the instance's positions;
/// offsets in the body are committed exactly as given.
pub(super) async fn commit(
    State(state): State<GatewayState>,
    Client(access, _slot): Client,
    Path((group, instance)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> GatewayResult<Json<Value>> {
    let offsets = parse_json::<OneOrMany<TopicPartitionOffset>>(&body)?
        .map(OneOrMany::into_vec)
        .unwrap_or_default();
    state
        .require_consumable(
            &access,
            offsets.iter().map(|o| (o.topic.as_str(), o.partition)),
        )
        .await?;
    let instance = state
        .instances
        .find(&key(&access, group, instance), &access)
        .await?;
    instance
        .with_consumer(move |consumer, _| {
            let result = if offsets.is_empty() {
                consumer.commit_consumer_state(CommitMode::Sync)
            } else {
                let mut list = TopicPartitionList::new();
                for o in &offsets {
                    list.add_partition_offset(
                        &access.physical(&o.topic),
                        o.partition,
                        Offset::Offset(o.offset),
                    )
                    .map_err(|e| Error::Invalid(format!("bad offset: {e}")))?;
                }
                consumer.commit(&list, CommitMode::Sync)
            };
            match result {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
                Err(e) => Err(Error::Broker(format!("the commit failed: {e}"))),
            }
        })
        .await?;
    Ok(Json(json!({ "result": "Success", "status": 200 })))
}

/// `GET|POST /committed/{group}/{instance}`: the group's committed offset per partition, in
/// request order; `-1` where nothing is committed. Read through the instance when it lives in
/// this process, else straight from the group's coordinator: a group's commits outlive its
/// instances (and may come from Kafka clients), so a restarted or scaled-out gateway answers too.
pub(super) async fn committed(
    State(state): State<GatewayState>,
    Client(access, _slot): Client,
    Path((group, instance)): Path<(String, String)>,
    Query(query): Query<TimeoutQuery>,
    RawBody(body): RawBody,
) -> GatewayResult<Json<Vec<TopicPartitionOffset>>> {
    let wanted = state.require_consumable_partitions(&access, &body).await?;
    let key = key(&access, group, instance);
    let timeout = poll::timeout(query.timeout, 10_000);
    let offsets = match state.instances.find(&key, &access).await {
        Ok(instance) => {
            instance
                .with_consumer(move |consumer, _| {
                    read_committed(consumer, &access, wanted, timeout)
                })
                .await?
        }
        Err(Error::Missing(_)) => {
            let clients = state.clients.of(&state.app, &access).await?;
            let partitions: Vec<(String, i32)> = wanted
                .iter()
                .map(|tp| (access.physical(&tp.topic), tp.partition))
                .collect();
            let offsets = clients
                .group_offsets(&state.app, &access)
                .await?
                .committed(&access.physical(&key.group), &partitions)
                .await
                .map_err(|e| Error::Broker(format!("could not read committed offsets: {e}")))?;
            wanted
                .into_iter()
                .zip(offsets)
                .map(|(tp, offset)| TopicPartitionOffset {
                    topic: tp.topic,
                    partition: tp.partition,
                    offset,
                })
                .collect()
        }
        Err(other) => return Err(other.into()),
    };
    Ok(Json(offsets))
}

/// The committed offsets of `wanted` in the consumer's group (blocking).
fn read_committed(
    consumer: &BaseConsumer,
    access: &Access,
    wanted: Vec<TopicPartition>,
    timeout: Duration,
) -> Result<Vec<TopicPartitionOffset>> {
    let mut list = TopicPartitionList::new();
    for tp in &wanted {
        list.add_partition(&access.physical(&tp.topic), tp.partition);
    }
    let committed = consumer
        .committed_offsets(list, timeout)
        .map_err(|e| Error::Broker(format!("could not read committed offsets: {e}")))?;
    Ok(wanted
        .into_iter()
        .map(|tp| {
            let offset = committed
                .find_partition(&access.physical(&tp.topic), tp.partition)
                .and_then(|e| e.offset().to_raw())
                .filter(|o| *o >= 0)
                .unwrap_or(-1);
            TopicPartitionOffset {
                topic: tp.topic,
                partition: tp.partition,
                offset,
            }
        })
        .collect())
}

/// `GET /consumers`: every live instance of the cluster with its assigned partitions.
pub(super) async fn list(
    State(state): State<GatewayState>,
    Client(access, _slot): Client,
) -> GatewayResult<Json<Value>> {
    let instances: Vec<(Key, Arc<Instance>)> = state
        .instances
        .live
        .lock()
        .await
        .iter()
        .filter(|(k, _)| k.cluster == access.cluster_id)
        .map(|(k, i)| (k.clone(), i.clone()))
        .collect();
    let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (key, instance) in instances {
        let access = access.clone();
        let topics = tokio::task::spawn_blocking(move || {
            let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            let guard = instance.consumer.lock().ok();
            let assignment = guard
                .as_ref()
                .and_then(|c| c.as_ref())
                .and_then(|c| c.assignment().ok());
            for element in assignment.iter().flat_map(|a| a.elements()) {
                let Some(topic) = access.virtual_name(element.topic()) else {
                    continue;
                };
                if access.covers(topic) {
                    by_topic
                        .entry(topic.to_owned())
                        .or_default()
                        .push(element.partition());
                }
            }
            by_topic
        })
        .await
        .map_err(|e| Error::internal("consumer task failed", e))?;
        let topics: Vec<Value> = topics
            .into_iter()
            .map(|(topic, partitions)| json!({ "topic": topic, "partitions": partitions }))
            .collect();
        groups
            .entry(key.group)
            .or_default()
            .push(json!({ "name": key.instance, "topics": topics }));
    }
    let body = groups
        .into_iter()
        .map(|(name, instances)| json!({ "name": name, "instances": instances }))
        .collect();
    Ok(Json(Value::Array(body)))
}

/// `POST|DELETE /delete-consumer/{group}/{instance}`: closes the instance (it leaves the group).
pub(super) async fn delete(
    State(state): State<GatewayState>,
    Client(access, _slot): Client,
    Path((group, instance)): Path<(String, String)>,
) -> GatewayResult<Json<Value>> {
    let key = key(&access, group, instance);
    let instance = state.instances.remove_owned(&key, &access).await?;
    tokio::task::spawn_blocking(move || instance.close())
        .await
        .map_err(|e| Error::internal("consumer task failed", e))?;
    Ok(Json(json!({ "result": "Success", "status": 200 })))
}
