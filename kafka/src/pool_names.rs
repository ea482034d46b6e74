//! The names a shared broker pool holds for its tenants (topics and consumer groups under each
//! cluster's prefix), listed and removed over the Kafka protocol: how a cluster delete and the
//! sweep of names no cluster owns reach a pool of Apache Kafka brokers.

use kafka_protocol::{
    messages::{DeleteGroupsRequest, DeleteTopicsRequest, GroupId, TopicName},
    protocol::StrBytes,
};

use crate::brokers::Brokers;
use crate::connection::{Credentials, error_text};
use crate::{Error, Result};

const DELETE_TOPICS_VERSION: i16 = 4;
const DELETE_GROUPS_VERSION: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const GROUP_ID_NOT_FOUND: i16 = 69;

/// What a pool holds, by the names its brokers know.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolNames {
    /// Every topic but the brokers' internal ones (`__consumer_offsets`, ...).
    pub topics: Vec<String>,
    /// Every consumer group.
    pub groups: Vec<String>,
}

/// Lists every topic and consumer group on the brokers of `credentials`.
pub async fn pool_names(credentials: &Credentials) -> Result<PoolNames> {
    let mut brokers = Brokers::new(credentials);
    let metadata = brokers.metadata().await?;
    let mut topics: Vec<String> = metadata
        .topics
        .iter()
        .filter(|topic| !topic.is_internal && topic.error_code == 0)
        .filter_map(|topic| topic.name.as_ref().map(|name| name.to_string()))
        .filter(|name| !name.starts_with(crate::gateway::INTERNAL_TOPIC_PREFIX))
        .collect();
    topics.sort();
    let groups = brokers.groups("").await?;
    Ok(PoolNames { topics, groups })
}

/// Deletes every topic and consumer group whose name starts with `prefix` (a shared cluster's,
/// on its pool), and nothing else; names already gone are not an error.
pub async fn delete_prefixed(credentials: &Credentials, prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Err(Error::Protocol(
            "refusing to delete every name of a pool (empty prefix)".into(),
        ));
    }
    let mut brokers = Brokers::new(credentials);
    let metadata = brokers.metadata().await?;
    let topics: Vec<TopicName> = metadata
        .topics
        .iter()
        .filter_map(|topic| topic.name.clone())
        .filter(|name| name.starts_with(prefix))
        .collect();
    if !topics.is_empty() {
        // Any broker forwards DeleteTopics to the KRaft controller (KIP-590).
        let response = brokers
            .bootstrap()
            .await?
            .call(
                DeleteTopicsRequest::default()
                    .with_topic_names(topics)
                    .with_timeout_ms(15_000),
                DELETE_TOPICS_VERSION,
            )
            .await?;
        for result in response.responses {
            if result.error_code != 0 && result.error_code != UNKNOWN_TOPIC_OR_PARTITION {
                return Err(Error::Protocol(format!(
                    "the brokers refused to delete topic {}: {}",
                    result.name.map(|n| n.to_string()).unwrap_or_default(),
                    error_text(result.error_message, result.error_code)
                )));
            }
        }
    }
    // A group can be deleted only by its coordinator.
    for group in brokers.groups(prefix).await? {
        let Some(coordinator) = brokers.coordinator(&group).await? else {
            continue;
        };
        let response = coordinator
            .call(
                DeleteGroupsRequest::default()
                    .with_groups_names(vec![GroupId(StrBytes::from_string(group.clone()))]),
                DELETE_GROUPS_VERSION,
            )
            .await?;
        for result in response.results {
            if result.error_code != 0 && result.error_code != GROUP_ID_NOT_FOUND {
                return Err(Error::Protocol(format!(
                    "the brokers refused to delete group {group}: error code {}",
                    result.error_code
                )));
            }
        }
    }
    Ok(())
}
