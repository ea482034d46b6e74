//! One read of a cluster's counters: each partition's log start and end, and each consumer
//! group's committed offsets. Requests go to partition leaders and group coordinators, so the
//! same code serves a single local broker and a multi-broker Apache Kafka cluster.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::{
    messages::{
        BrokerId, GroupId, ListOffsetsRequest, OffsetFetchRequest, TopicName,
        list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
        offset_fetch_request::OffsetFetchRequestTopic,
    },
    protocol::StrBytes,
};

use crate::Result;
use crate::brokers::Brokers;
use crate::connection::Credentials;

/// A partition's offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// Topic name.
    pub topic: String,
    /// The engine's topic id ("" when the engine reports none).
    pub topic_id: String,
    /// Partition number.
    pub partition: i32,
    /// First offset still stored.
    pub log_start: i64,
    /// Next offset to be written (the high watermark).
    pub log_end: i64,
    /// Brokers holding a replica.
    pub replicas: usize,
}

/// A group's committed offset for one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    /// Consumer group id.
    pub group: String,
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
    /// Committed offset (the next record the group will read).
    pub offset: i64,
}

/// What one read found.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Every partition of every non-internal topic.
    pub partitions: Vec<PartitionOffsets>,
    /// Every committed offset of every group.
    pub committed: Vec<CommittedOffset>,
}

/// A topic's id and, per partition, its leader and number of replicas.
type TopicLayout = (String, BTreeMap<i32, (i32, usize)>);

const LIST_OFFSETS_VERSION: i16 = 3;
const OFFSET_FETCH_VERSION: i16 = 3;
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

/// Asks `leader` for the offsets at `timestamp` (LATEST or EARLIEST) of its `partitions` and
/// puts each one it answers without an error into `into`; a partition answered with an error
/// is left out (and logged), so one bad partition does not stop the others being metered.
async fn list_offsets(
    brokers: &mut Brokers,
    leader: i32,
    partitions: &[(String, i32)],
    timestamp: i64,
    into: &mut HashMap<(String, i32), i64>,
) -> Result<()> {
    let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
    for (topic, partition) in partitions {
        topics.entry(topic).or_default().push(
            ListOffsetsPartition::default()
                .with_partition_index(*partition)
                .with_timestamp(timestamp),
        );
    }
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    ListOffsetsTopic::default()
                        .with_name(topic_name(name))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let response = brokers
        .node(leader)
        .await?
        .call(request, LIST_OFFSETS_VERSION)
        .await?;
    for topic in response.topics {
        for partition in topic.partitions {
            if partition.error_code != 0 {
                tracing::warn!(topic = %topic.name.0, partition = partition.partition_index,
                    code = partition.error_code, "ListOffsets failed for a partition; it is metered at the next sweep");
                continue;
            }
            into.insert(
                (topic.name.to_string(), partition.partition_index),
                partition.offset,
            );
        }
    }
    Ok(())
}

/// Reads a cluster's offsets. On a shared broker pool, `prefix` is the cluster's: only topics
/// and groups named with it are read, and the names in the snapshot are without it. A cluster
/// with brokers of its own has the prefix "".
pub async fn read(credentials: &Credentials, prefix: &str) -> Result<Snapshot> {
    let mut brokers = Brokers::new(credentials);
    let metadata = brokers.metadata().await?;
    let mut layout: BTreeMap<String, TopicLayout> = BTreeMap::new();
    for topic in &metadata.topics {
        let Some(name) = topic.name.as_ref().map(|n| n.to_string()) else {
            continue;
        };
        if topic.is_internal || !name.starts_with(prefix) || topic.error_code != 0 {
            continue;
        }
        // Kafka's internal topics, on brokers of the cluster's own (a pool's are outside every
        // prefix). Capstan refuses user topics named so; a tenant's name on a pool is metered
        // whatever it is.
        if prefix.is_empty() && name.starts_with(crate::gateway::INTERNAL_TOPIC_PREFIX) {
            continue;
        }
        let id = if topic.topic_id.is_nil() {
            String::new()
        } else {
            topic.topic_id.to_string()
        };
        let partitions = topic
            .partitions
            .iter()
            .map(|p| {
                (
                    p.partition_index,
                    (p.leader_id.0, p.replica_nodes.len().max(1)),
                )
            })
            .collect();
        layout.insert(name, (id, partitions));
    }

    let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
    for (topic, (_, partitions)) in &layout {
        for (partition, (leader, _)) in partitions {
            if *leader < 0 {
                // No leader (being elected, or offline): nothing can be read until it has one.
                tracing::warn!(%topic, partition, "a partition has no leader; it is metered once it has");
                continue;
            }
            by_leader
                .entry(*leader)
                .or_default()
                .push((topic.clone(), *partition));
        }
    }
    let mut ends: HashMap<(String, i32), i64> = HashMap::new();
    let mut starts: HashMap<(String, i32), i64> = HashMap::new();
    for (leader, partitions) in &by_leader {
        for (timestamp, into) in [(LATEST, &mut ends), (EARLIEST, &mut starts)] {
            if let Err(error) =
                list_offsets(&mut brokers, *leader, partitions, timestamp, into).await
            {
                tracing::warn!(leader, %error, "could not read offsets from a partition leader; its partitions are metered at the next sweep");
                brokers.forget(*leader);
            }
        }
    }
    let mut snapshot = Snapshot::default();
    for (topic, (id, partitions)) in &layout {
        for (partition, (_, replicas)) in partitions {
            let key = (topic.clone(), *partition);
            // A partition without both offsets is left out: it keeps its cursors and is
            // counted in full at the next sweep that reads it, never from 0 again.
            let (Some(&log_start), Some(&log_end)) = (starts.get(&key), ends.get(&key)) else {
                continue;
            };
            snapshot.partitions.push(PartitionOffsets {
                topic: topic[prefix.len()..].to_owned(),
                topic_id: id.clone(),
                partition: *partition,
                log_start: log_start.max(0),
                log_end: log_end.max(0),
                replicas: *replicas,
            });
        }
    }

    // Every partition, named: some engines (tansu) answer "all topics" (null) with a null list.
    let every_partition: Vec<OffsetFetchRequestTopic> = layout
        .iter()
        .map(|(topic, (_, partitions))| {
            OffsetFetchRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partition_indexes(partitions.keys().copied().collect())
        })
        .collect();
    for group in brokers.groups(prefix).await? {
        let Some(coordinator) = brokers.coordinator(&group).await? else {
            continue;
        };
        let fetched = coordinator
            .call(
                OffsetFetchRequest::default()
                    .with_group_id(GroupId(StrBytes::from_string(group.clone())))
                    .with_topics(Some(every_partition.clone())),
                OFFSET_FETCH_VERSION,
            )
            .await?;
        if fetched.error_code != 0 {
            tracing::debug!(%group, code = fetched.error_code, "OffsetFetch failed for a group");
            continue;
        }
        for topic in fetched.topics {
            for partition in topic.partitions {
                let Some(name) = topic.name.strip_prefix(prefix) else {
                    continue;
                };
                if partition.error_code == 0 && partition.committed_offset >= 0 {
                    snapshot.committed.push(CommittedOffset {
                        group: group[prefix.len()..].to_owned(),
                        topic: name.to_owned(),
                        partition: partition.partition_index,
                        offset: partition.committed_offset,
                    });
                }
            }
        }
    }
    Ok(snapshot)
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}
