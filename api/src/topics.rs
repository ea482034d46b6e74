//! Topics: created with their limits checked against the plan, grown, reconfigured, deleted.

use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    clusters::{self, ClusterRow},
    credentials, failpoint,
    journal::{self, Intent},
    names,
    plans::Limits,
    provisioner::TopicSpec,
    state::AppState,
    store,
};

/// A topic as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct TopicRow {
    /// UUID.
    pub id: String,
    /// Its cluster.
    pub cluster_id: String,
    /// Kafka topic name.
    pub name: String,
    /// Partitions.
    pub partitions: i64,
    /// `retention.ms`.
    pub retention_time: i64,
    /// `retention.bytes`.
    pub retention_size: i64,
    /// `max.message.bytes`.
    pub max_message_size: i64,
    /// `delete` or `compact`.
    pub cleanup_policy: String,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// 1 when `retention_time` was asked as -1 (the plan's maximum, which it holds).
    pub retention_time_is_max: i64,
    /// 1 when `retention_size` was asked as -1.
    pub retention_size_is_max: i64,
    /// 1 when `max_message_size` was asked as -1.
    pub max_message_size_is_max: i64,
}

impl TopicRow {
    /// What the provisioner needs of it.
    pub fn spec(&self) -> TopicSpec {
        TopicSpec {
            name: self.name.clone(),
            partitions: self.partitions as i32,
            retention_ms: self.retention_time,
            retention_bytes: self.retention_size,
            max_message_bytes: self.max_message_size,
            cleanup_policy: self.cleanup_policy.clone(),
        }
    }
}

const COLUMNS: &str = "id, cluster_id, name, partitions, retention_time, retention_size, max_message_size, cleanup_policy, created_at, \
     retention_time_is_max, retention_size_is_max, max_message_size_is_max";

/// A limit as the API shows it: -1 when it was asked as the plan's maximum (as Upstash's API
/// read it back), the value otherwise.
fn as_asked(value: i64, is_max: i64) -> i64 {
    if is_max != 0 { -1 } else { value }
}

/// A topic in the shape of Upstash's Developer API.
#[derive(Clone, Debug, Serialize)]
pub struct TopicView {
    pub topic_id: String,
    pub topic_name: String,
    pub cluster_id: String,
    pub region: String,
    pub creation_time: i64,
    pub state: String,
    pub partitions: i64,
    pub multizone: bool,
    pub tcp_endpoint: String,
    pub rest_endpoint: String,
    pub username: String,
    pub password: String,
    pub cleanup_policy: String,
    pub retention_size: i64,
    pub retention_time: i64,
    pub max_message_size: i64,
}

/// Body of `POST /v2/kafka/topic`: every field is required; `-1` means the plan's maximum.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    pub name: String,
    pub partitions: i64,
    pub retention_time: i64,
    pub retention_size: i64,
    pub max_message_size: i64,
    pub cleanup_policy: String,
    pub cluster_id: String,
}

/// Body of `POST /v2/kafka/update-topic/{id}`: any of the fields.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTopic {
    pub partitions: Option<i64>,
    pub retention_time: Option<i64>,
    pub retention_size: Option<i64>,
    pub max_message_size: Option<i64>,
}

/// Kafka's longest topic name; a shared cluster's prefix takes part of it.
const MAX_KAFKA_NAME: usize = 249;

/// Resolves `-1` to the plan maximum and checks `1..=max` otherwise.
/// A limit checked against the plan: the value to apply, and 1 when it was asked as -1 (the
/// plan's maximum).
fn bounded(field: &str, value: i64, max: i64, unit: &str) -> Result<(i64, i64)> {
    match value {
        -1 => Ok((max, 1)),
        v if (1..=max).contains(&v) => Ok((v, 0)),
        v if v < 1 => Err(Error::Invalid(format!(
            "{field} must be positive, or -1 for the plan maximum (got {v})"
        ))),
        v => Err(Error::LimitExceeded(format!(
            "{field} must be between 1 and {max} {unit} on this cluster's plan, or -1 for the maximum (got {v})"
        ))),
    }
}

fn check_partitions(requested: i64, used_elsewhere: i64, limits: &Limits) -> Result<i64> {
    if requested < 1 {
        return Err(Error::Invalid(format!(
            "partitions must be at least 1 (got {requested})"
        )));
    }
    if used_elsewhere.saturating_add(requested) > limits.max_partitions {
        return Err(Error::LimitExceeded(format!(
            "the cluster may have at most {} partitions in all; {} are used by other topics, so at most {} are left",
            limits.max_partitions,
            used_elsewhere,
            (limits.max_partitions - used_elsewhere).max(0)
        )));
    }
    Ok(requested)
}

async fn partitions_in_use(
    state: &AppState,
    cluster_id: &str,
    except_topic: Option<&str>,
) -> Result<i64> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT id, partitions FROM topics WHERE cluster_id = $1")
            .bind(cluster_id)
            .fetch_all(state.store.pool())
            .await?;
    Ok(rows
        .iter()
        .filter(|(id, _)| Some(id.as_str()) != except_topic)
        .map(|(_, p)| p)
        .sum())
}

/// Creates a topic on a cluster of the account.
pub async fn create(state: &AppState, account_id: &str, request: CreateTopic) -> Result<TopicView> {
    names::topic_name(&request.name)?;
    let cluster = clusters::find_owned(&state.store, account_id, &request.cluster_id).await?;
    let row = create_in(state, &cluster, request, false).await?;
    view(state, &cluster, &row).await
}

/// A new topic's name on `cluster`: Kafka's rules, room for the cluster's prefix, and not
/// shaped like a name on a shared pool (reserved on shared clusters).
pub fn check_name(cluster: &ClusterRow, raw: &str) -> Result<String> {
    let name = names::topic_name(raw)?;
    if capstan_kafka::gateway::is_reserved(&cluster.prefix, &name) {
        return Err(Error::Invalid(
            "topic names that start with 12 hexadecimal digits and a dot are reserved on shared clusters".into(),
        ));
    }
    let room = MAX_KAFKA_NAME - cluster.prefix.len();
    if name.len() > room {
        return Err(Error::Invalid(format!(
            "the topic name must have at most {room} characters on this cluster"
        )));
    }
    Ok(name)
}

/// Creates a topic on `cluster` with the plan's limits checked (only checks when `dry_run`),
/// whoever asks: the API for an account's cluster, the Kafka gateway for a client's.
pub async fn create_in(
    state: &AppState,
    cluster: &ClusterRow,
    request: CreateTopic,
    dry_run: bool,
) -> Result<TopicRow> {
    let name = check_name(cluster, &request.name)?;
    let limits = cluster.limits(state);
    if !matches!(request.cleanup_policy.as_str(), "delete" | "compact") {
        return Err(Error::Invalid(format!(
            "cleanup_policy must be delete or compact (got {:?})",
            request.cleanup_policy
        )));
    }
    let (retention_time, retention_time_is_max) = bounded(
        "retention_time",
        request.retention_time,
        limits.max_retention_time,
        "ms",
    )?;
    let (retention_size, retention_size_is_max) = bounded(
        "retention_size",
        request.retention_size,
        limits.max_retention_size,
        "bytes",
    )?;
    let (max_message_size, max_message_size_is_max) = bounded(
        "max_message_size",
        request.max_message_size,
        limits.max_message_size,
        "bytes",
    )?;
    let row = TopicRow {
        id: uuid::Uuid::new_v4().to_string(),
        cluster_id: cluster.id.clone(),
        name,
        partitions: check_partitions(
            request.partitions,
            partitions_in_use(state, &cluster.id, None).await?,
            &limits,
        )?,
        retention_time,
        retention_size,
        max_message_size,
        cleanup_policy: request.cleanup_policy,
        created_at: store::now(),
        retention_time_is_max,
        retention_size_is_max,
        max_message_size_is_max,
    };
    let taken: Option<(String,)> =
        sqlx::query_as("SELECT id FROM topics WHERE cluster_id = $1 AND name = $2")
            .bind(&cluster.id)
            .bind(&row.name)
            .fetch_optional(state.store.pool())
            .await?;
    if taken.is_some() {
        return Err(Error::Conflict(format!(
            "the cluster already has a topic named {}",
            row.name
        )));
    }
    if dry_run {
        return Ok(row);
    }
    let entry = journal::begin(state, Intent::CreateTopic, &cluster.spec(), &row.name).await?;
    if let Err(e) = state
        .provisioner
        .create_topic(&cluster.spec(), &row.spec())
        .await
    {
        // Nothing of ours was made (it may have been refused because the name is taken).
        entry.undone(state).await?;
        return Err(e);
    }
    failpoint::hit("topic.create.after_brokers").await;
    let inserted = insert(state, &row, &entry).await;
    if let Err(e) = inserted {
        entry
            .roll_back(
                state,
                state.provisioner.delete_topic(&cluster.spec(), &row.name),
            )
            .await;
        return Err(e);
    }
    Ok(row)
}

/// Records a topic made on the brokers, and crosses its journal entry out, in one transaction.
async fn insert(state: &AppState, row: &TopicRow, entry: &journal::Entry) -> Result<()> {
    let mut tx = state.store.pool().begin().await?;
    let inserted = sqlx::query(&format!(
        "INSERT INTO topics ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(&row.id)
    .bind(&row.cluster_id)
    .bind(&row.name)
    .bind(row.partitions)
    .bind(row.retention_time)
    .bind(row.retention_size)
    .bind(row.max_message_size)
    .bind(&row.cleanup_policy)
    .bind(row.created_at)
    .bind(row.retention_time_is_max)
    .bind(row.retention_size_is_max)
    .bind(row.max_message_size_is_max)
    .execute(&mut *tx)
    .await;
    if let Err(e) = inserted {
        return Err(if store::is_unique_violation(&e) {
            Error::Conflict(format!(
                "the cluster already has a topic named {}",
                row.name
            ))
        } else {
            e.into()
        });
    }
    entry.done(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

async fn view(state: &AppState, cluster: &ClusterRow, row: &TopicRow) -> Result<TopicView> {
    let default = credentials::default_of(&state.store, &state.key, &cluster.id).await?;
    Ok(view_with(state, cluster, row, &default))
}

/// The view, given the cluster's default credential (read once for a whole list).
fn view_with(
    state: &AppState,
    cluster: &ClusterRow,
    row: &TopicRow,
    default: &credentials::Secret,
) -> TopicView {
    TopicView {
        topic_id: row.id.clone(),
        topic_name: row.name.clone(),
        cluster_id: cluster.id.clone(),
        region: cluster.region.clone(),
        creation_time: row.created_at,
        state: "active".into(),
        partitions: row.partitions,
        multizone: cluster.multizone != 0,
        tcp_endpoint: cluster.endpoint(state).to_owned(),
        rest_endpoint: state.config.rest_endpoint.clone(),
        username: default.username.clone(),
        password: default.password.clone(),
        cleanup_policy: row.cleanup_policy.clone(),
        retention_size: as_asked(row.retention_size, row.retention_size_is_max),
        retention_time: as_asked(row.retention_time, row.retention_time_is_max),
        max_message_size: as_asked(row.max_message_size, row.max_message_size_is_max),
    }
}

/// A topic of the account with its cluster; anything else is 404.
async fn find_owned(
    state: &AppState,
    account_id: &str,
    id: &str,
) -> Result<(ClusterRow, TopicRow)> {
    let row: TopicRow = sqlx::query_as(&format!("SELECT {COLUMNS} FROM topics WHERE id = $1"))
        .bind(id)
        .fetch_optional(state.store.pool())
        .await?
        .ok_or(Error::NotFound("topic"))?;
    let cluster = clusters::find_owned(&state.store, account_id, &row.cluster_id)
        .await
        .map_err(|e| {
            if matches!(e, Error::NotFound(_)) {
                Error::NotFound("topic")
            } else {
                e
            }
        })?;
    Ok((cluster, row))
}

/// The topics of a cluster of the account.
pub async fn list(state: &AppState, account_id: &str, cluster_id: &str) -> Result<Vec<TopicView>> {
    let cluster = clusters::find_owned(&state.store, account_id, cluster_id).await?;
    let rows: Vec<TopicRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM topics WHERE cluster_id = $1 ORDER BY created_at, name"
    ))
    .bind(cluster_id)
    .fetch_all(state.store.pool())
    .await?;
    let default = credentials::default_of(&state.store, &state.key, &cluster.id).await?;
    Ok(rows
        .iter()
        .map(|row| view_with(state, &cluster, row, &default))
        .collect())
}

/// One topic of the account.
pub async fn get(state: &AppState, account_id: &str, id: &str) -> Result<TopicView> {
    let (cluster, row) = find_owned(state, account_id, id).await?;
    view(state, &cluster, &row).await
}

/// Changes partitions (only up) and retention or message-size limits.
pub async fn update(
    state: &AppState,
    account_id: &str,
    id: &str,
    request: UpdateTopic,
) -> Result<TopicView> {
    let (cluster, current) = find_owned(state, account_id, id).await?;
    let next = update_in(state, &cluster, &current, request, false).await?;
    view(state, &cluster, &next).await
}

/// Changes a topic of `cluster` within the plan's limits (only checks when `dry_run`).
pub async fn update_in(
    state: &AppState,
    cluster: &ClusterRow,
    current: &TopicRow,
    request: UpdateTopic,
    dry_run: bool,
) -> Result<TopicRow> {
    let limits = cluster.limits(state);
    let mut next = current.clone();
    if let Some(partitions) = request.partitions {
        if partitions < current.partitions {
            return Err(Error::Invalid(format!(
                "partitions can only grow: the topic has {} and {partitions} was asked",
                current.partitions
            )));
        }
        next.partitions = check_partitions(
            partitions,
            partitions_in_use(state, &cluster.id, Some(&current.id)).await?,
            &limits,
        )?;
    }
    if let Some(v) = request.retention_time {
        (next.retention_time, next.retention_time_is_max) =
            bounded("retention_time", v, limits.max_retention_time, "ms")?;
    }
    if let Some(v) = request.retention_size {
        (next.retention_size, next.retention_size_is_max) =
            bounded("retention_size", v, limits.max_retention_size, "bytes")?;
    }
    if let Some(v) = request.max_message_size {
        (next.max_message_size, next.max_message_size_is_max) =
            bounded("max_message_size", v, limits.max_message_size, "bytes")?;
    }
    let brokers_unchanged = next.partitions == current.partitions
        && next.retention_time == current.retention_time
        && next.retention_size == current.retention_size
        && next.max_message_size == current.max_message_size;
    let unchanged = brokers_unchanged
        && next.retention_time_is_max == current.retention_time_is_max
        && next.retention_size_is_max == current.retention_size_is_max
        && next.max_message_size_is_max == current.max_message_size_is_max;
    if dry_run || unchanged {
        return Ok(next);
    }
    if !brokers_unchanged {
        state
            .provisioner
            .update_topic(&cluster.spec(), &next.spec(), current.partitions as i32)
            .await?;
    }
    sqlx::query(
        "UPDATE topics SET partitions = $1, retention_time = $2, retention_size = $3, max_message_size = $4, \
         retention_time_is_max = $5, retention_size_is_max = $6, max_message_size_is_max = $7 WHERE id = $8",
    )
    .bind(next.partitions)
    .bind(next.retention_time)
    .bind(next.retention_size)
    .bind(next.max_message_size)
    .bind(next.retention_time_is_max)
    .bind(next.retention_size_is_max)
    .bind(next.max_message_size_is_max)
    .bind(&current.id)
    .execute(state.store.pool())
    .await?;
    Ok(next)
}

/// Deletes one topic and its data (and nothing else).
pub async fn delete(state: &AppState, account_id: &str, id: &str) -> Result<()> {
    let (cluster, row) = find_owned(state, account_id, id).await?;
    delete_in(state, &cluster, &row).await
}

/// Deletes a topic of `cluster` on its brokers, then from the store. Once the brokers are
/// asked, the delete is finished even across a crash (the journal).
pub async fn delete_in(state: &AppState, cluster: &ClusterRow, row: &TopicRow) -> Result<()> {
    meter_before_delete(state, &cluster.id).await;
    let entry = journal::begin(state, Intent::DeleteTopic, &cluster.spec(), &row.name).await?;
    state
        .provisioner
        .delete_topic(&cluster.spec(), &row.name)
        .await?;
    failpoint::hit("topic.delete.after_brokers").await;
    let mut tx = state.store.pool().begin().await?;
    sqlx::query("DELETE FROM topics WHERE id = $1")
        .bind(&row.id)
        .execute(&mut *tx)
        .await?;
    entry.done(&mut tx).await?;
    tx.commit().await?;
    if let Err(error) = state.final_meter.forget_topic(&cluster.id, &row.name).await {
        tracing::warn!(cluster = %cluster.id, topic = %row.name, error = %crate::error::cause_chain(&error),
            "could not reset the metering of a deleted topic; a topic created again with its name may be under-counted until it passes the old one's size");
    }
    Ok(())
}

/// Counts what a cluster's topics moved since the last sweep, before one of them (or the
/// cluster) is deleted. When the brokers cannot be read, the delete still goes ahead: what
/// moved since the last sweep is then not billed (never billed twice).
pub(crate) async fn meter_before_delete(state: &AppState, cluster_id: &str) {
    if let Err(error) = state.final_meter.meter_now(cluster_id).await {
        tracing::warn!(cluster = %cluster_id, error = %crate::error::cause_chain(&error),
            "could not meter a cluster before a delete; what moved since the last sweep is not billed");
    }
}

/// A topic of a cluster by name, for the data plane.
pub async fn find_by_name(
    state: &AppState,
    cluster_id: &str,
    name: &str,
) -> Result<Option<TopicRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM topics WHERE cluster_id = $1 AND name = $2"
    ))
    .bind(cluster_id)
    .bind(name)
    .fetch_optional(state.store.pool())
    .await?)
}

/// Every topic of a cluster, by name.
pub async fn all_of_cluster(state: &AppState, cluster_id: &str) -> Result<Vec<TopicRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM topics WHERE cluster_id = $1 ORDER BY name"
    ))
    .bind(cluster_id)
    .fetch_all(state.store.pool())
    .await?)
}
