//! Whether one Kafka node can restart without making data or the KRaft quorum unavailable:
//! the checks Strimzi's KafkaRoller makes before it rolls a pod, over the Kafka protocol.
//!
//! - **In-sync replicas.** A partition whose in-sync replicas include the node and number no
//!   more than the topic's `min.insync.replicas` would refuse `acks=all` writes
//!   (NOT_ENOUGH_REPLICAS) while the node is down. Partitions whose replication factor is not above
//!   their min ISR cannot keep that promise through any restart and do not hold one up; partitions
//!   already below min ISR are not made worse by it either (the node is then not in their ISR, or
//!   the ISR is already short).
//! - **Controller quorum.** A voter may restart only if a majority of the voters stays caught up
//!   with the leader without it (`lastCaughtUpTimestamp` within `controller.quorum.fetch.timeout.ms`
//!   of the leader's), else the quorum could not commit while it is away.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::{
    messages::{
        DescribeConfigsRequest, DescribeQuorumRequest, MetadataRequest, TopicName,
        describe_configs_request::DescribeConfigsResource,
        describe_quorum_request::{PartitionData, TopicData},
    },
    protocol::StrBytes,
};

use crate::connection::{Connection, Credentials, error_text};
use crate::{Error, Result};

const METADATA_VERSION: i16 = 12;
const DESCRIBE_CONFIGS_VERSION: i16 = 4;
/// v1 is the first with `lastCaughtUpTimestamp` (KIP-836, Kafka 3.3).
const DESCRIBE_QUORUM_VERSION: i16 = 1;
/// DescribeConfigs' resource type of a topic.
const TOPIC: i8 = 2;
/// Kafka's default `controller.quorum.fetch.timeout.ms`: a follower further behind than this is
/// not caught up.
pub const QUORUM_FETCH_TIMEOUT_MS: i64 = 2000;
/// The KRaft metadata log DescribeQuorum is asked about.
const METADATA_TOPIC: &str = "__cluster_metadata";

/// What a restart of one node would do, as the cluster reports it now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RestartCheck {
    /// Partitions (`topic-partition`) that would drop below their min ISR, with the ISR size and
    /// min ISR, sorted.
    pub under_min_isr: Vec<String>,
    /// Why the controller quorum could not spare the node, if it could not.
    pub quorum: Option<String>,
    /// The quorum's leader, if the cluster is in KRaft mode and has one.
    pub quorum_leader: Option<i32>,
}

impl RestartCheck {
    /// True when the node can restart now.
    pub fn safe(&self) -> bool {
        self.under_min_isr.is_empty() && self.quorum.is_none()
    }

    /// One sentence saying what holds the restart, for a condition's message.
    pub fn explain(&self, node: i32) -> String {
        let mut reasons = Vec::new();
        if !self.under_min_isr.is_empty() {
            let shown: Vec<&str> = self
                .under_min_isr
                .iter()
                .take(5)
                .map(String::as_str)
                .collect();
            let more = self.under_min_isr.len().saturating_sub(shown.len());
            reasons.push(format!(
                "restarting node {node} would take {} partition(s) below min.insync.replicas ({}{})",
                self.under_min_isr.len(),
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ));
        }
        if let Some(quorum) = &self.quorum {
            reasons.push(quorum.clone());
        }
        reasons.join("; ")
    }
}

/// Checks whether node `node` can restart now (see the module's rules): one
/// [`Availability::read`] and its [`Availability::restart_check`].
pub async fn restart_check(credentials: &Credentials, node: i32) -> Result<RestartCheck> {
    Ok(Availability::read(credentials).await?.restart_check(node))
}

/// One partition as Metadata reports it.
#[derive(Debug)]
struct PartitionState {
    topic: String,
    partition: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

/// The KRaft quorum as DescribeQuorum reports it.
#[derive(Debug)]
enum Quorum {
    /// The leader, its `lastCaughtUpTimestamp`, and each voter's (id, `lastCaughtUpTimestamp`).
    Led {
        leader: i32,
        leader_time: i64,
        voters: Vec<(i32, i64)>,
    },
    /// The leader named is not among the voters.
    Leaderless(i32),
}

/// What the restart rules need of a cluster, read once (Metadata, DescribeConfigs of every
/// topic, DescribeQuorum — which brokers forward to the active controller) from the bootstrap
/// broker, so that several nodes can be judged on one reading.
#[derive(Debug)]
pub struct Availability {
    partitions: Vec<PartitionState>,
    min_isr: BTreeMap<String, usize>,
    quorum: Quorum,
}

impl Availability {
    /// Reads the cluster of `credentials`.
    pub async fn read(credentials: &Credentials) -> Result<Self> {
        let mut connection = credentials.connect().await?;
        let metadata = connection
            .call(
                MetadataRequest::default().with_topics(None),
                METADATA_VERSION,
            )
            .await?;
        let partitions: Vec<PartitionState> = metadata
            .topics
            .iter()
            .filter_map(|topic| Some((topic.name.as_ref()?.to_string(), &topic.partitions)))
            .flat_map(|(topic, partitions)| {
                partitions.iter().map(move |p| PartitionState {
                    topic: topic.clone(),
                    partition: p.partition_index,
                    replicas: p.replica_nodes.iter().map(|id| id.0).collect(),
                    isr: p.isr_nodes.iter().map(|id| id.0).collect(),
                })
            })
            .collect();
        let topics: BTreeSet<&str> = partitions.iter().map(|p| p.topic.as_str()).collect();
        let min_isr = if topics.is_empty() {
            BTreeMap::new()
        } else {
            min_isr_of(&mut connection, &topics).await?
        };
        let quorum = quorum(&mut connection).await?;
        Ok(Availability {
            partitions,
            min_isr,
            quorum,
        })
    }

    /// The quorum's leader, if it has one among its voters.
    pub fn quorum_leader(&self) -> Option<i32> {
        match self.quorum {
            Quorum::Led { leader, .. } => Some(leader),
            Quorum::Leaderless(_) => None,
        }
    }

    /// What a restart of `node` would do, on this reading.
    pub fn restart_check(&self, node: i32) -> RestartCheck {
        RestartCheck {
            under_min_isr: self.under_min_isr(node),
            quorum: self.quorum_verdict(node),
            quorum_leader: self.quorum_leader(),
        }
    }

    /// Partitions (`topic-partition`) with a replica on any of `nodes`, sorted: what must move
    /// before those brokers can be removed.
    pub fn replicas_on(&self, nodes: &[i32]) -> Vec<String> {
        let mut held: Vec<String> = self
            .partitions
            .iter()
            .filter(|p| p.replicas.iter().any(|r| nodes.contains(r)))
            .map(|p| format!("{}-{}", p.topic, p.partition))
            .collect();
        held.sort();
        held
    }

    /// Partitions in sync on `node` whose ISR would fall below min ISR without it, sorted.
    fn under_min_isr(&self, node: i32) -> Vec<String> {
        let mut under: Vec<String> = self
            .partitions
            .iter()
            .filter(|p| {
                let min = self.min_isr.get(&p.topic).copied().unwrap_or(1);
                p.isr.contains(&node) && p.replicas.len() > min && p.isr.len() <= min
            })
            .map(|p| format!("{}-{}", p.topic, p.partition))
            .collect();
        under.sort();
        under
    }

    /// Why the quorum could not spare `node`, if it could not.
    fn quorum_verdict(&self, node: i32) -> Option<String> {
        let (leader, leader_time, voters) = match &self.quorum {
            Quorum::Leaderless(leader) => {
                return Some(format!(
                    "the controller quorum has no leader among its voters (leader {leader})"
                ));
            }
            Quorum::Led {
                leader,
                leader_time,
                voters,
            } => (*leader, *leader_time, voters),
        };
        if !voters.iter().any(|(id, _)| *id == node) {
            return None;
        }
        let majority = voters.len() / 2 + 1;
        let caught_up: Vec<String> = voters
            .iter()
            .filter(|(id, caught_up)| {
                *id != node
                    && (*id == leader
                        || (*caught_up >= 0 && leader_time - caught_up <= QUORUM_FETCH_TIMEOUT_MS))
            })
            .map(|(id, _)| id.to_string())
            .collect();
        (caught_up.len() < majority).then(|| {
            format!(
                "without controller {node} only {} of the {} voters would be caught up with the leader ({}); the quorum needs {majority}",
                caught_up.len(),
                voters.len(),
                caught_up.join(", ")
            )
        })
    }
}

/// `min.insync.replicas` of each topic (its own value, else the broker's default, as the broker
/// resolves it).
async fn min_isr_of(
    connection: &mut Connection,
    topics: &BTreeSet<&str>,
) -> Result<BTreeMap<String, usize>> {
    let resources = topics
        .iter()
        .map(|topic| {
            DescribeConfigsResource::default()
                .with_resource_type(TOPIC)
                .with_resource_name(StrBytes::from_string((*topic).to_owned()))
                .with_configuration_keys(Some(vec![StrBytes::from_static_str(
                    "min.insync.replicas",
                )]))
        })
        .collect();
    let response = connection
        .call(
            DescribeConfigsRequest::default().with_resources(resources),
            DESCRIBE_CONFIGS_VERSION,
        )
        .await?;
    let mut min_isr = BTreeMap::new();
    for result in response.results {
        if result.error_code != 0 {
            return Err(Error::Protocol(format!(
                "DescribeConfigs of topic {} failed: {}",
                result.resource_name,
                error_text(result.error_message, result.error_code)
            )));
        }
        let value = result
            .configs
            .iter()
            .find(|c| c.name.as_str() == "min.insync.replicas")
            .and_then(|c| c.value.as_ref())
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1);
        min_isr.insert(result.resource_name.to_string(), value);
    }
    Ok(min_isr)
}

/// The quorum of the metadata log.
async fn quorum(connection: &mut Connection) -> Result<Quorum> {
    let request = DescribeQuorumRequest::default().with_topics(vec![
        TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
    ]);
    let response = connection.call(request, DESCRIBE_QUORUM_VERSION).await?;
    if response.error_code != 0 {
        return Err(Error::Protocol(format!(
            "DescribeQuorum failed: {}",
            error_text(response.error_message, response.error_code)
        )));
    }
    let Some(partition) = response
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .find(|p| p.partition_index == 0)
    else {
        return Err(Error::Protocol(
            "DescribeQuorum answered no metadata partition".into(),
        ));
    };
    if partition.error_code != 0 {
        return Err(Error::Protocol(format!(
            "DescribeQuorum failed for the metadata log: {}",
            error_text(partition.error_message.clone(), partition.error_code)
        )));
    }
    let leader = partition.leader_id.0;
    let voters: Vec<(i32, i64)> = partition
        .current_voters
        .iter()
        .map(|v| (v.replica_id.0, v.last_caught_up_timestamp))
        .collect();
    Ok(
        match voters.iter().find(|(id, _)| *id == leader).map(|(_, t)| *t) {
            Some(leader_time) => Quorum::Led {
                leader,
                leader_time,
                voters,
            },
            None => Quorum::Leaderless(leader),
        },
    )
}
