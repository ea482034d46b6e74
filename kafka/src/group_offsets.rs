//! Consumer groups' committed offsets for a caller that asks often (the REST gateway's
//! `/committed` for a group with no consumer instance in its process): the connections to the
//! group coordinators stay open between reads, so a read is one or two round trips, not a new
//! client.

use std::collections::HashMap;

use kafka_protocol::{
    messages::{
        GroupId, OffsetFetchRequest, TopicName, offset_fetch_request::OffsetFetchRequestTopic,
    },
    protocol::StrBytes,
};
use tokio::sync::Mutex;

use crate::brokers::Brokers;
use crate::connection::Credentials;
use crate::{Error, Result};

const OFFSET_FETCH_VERSION: i16 = 3;

/// Reads committed offsets of any group on one cluster's brokers (or pool), as their admin.
pub struct GroupOffsets {
    brokers: Mutex<Brokers>,
}

impl std::fmt::Debug for GroupOffsets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupOffsets").finish_non_exhaustive()
    }
}

impl GroupOffsets {
    /// A reader that connects with `credentials` when first asked.
    pub fn new(credentials: &Credentials) -> Self {
        GroupOffsets {
            brokers: Mutex::new(Brokers::new(credentials)),
        }
    }

    /// The committed offset in `group` of each of `partitions` (topic, partition; names as
    /// the brokers know them), in their order: `-1` where nothing is committed. A connection
    /// the brokers closed meanwhile (Kafka drops idle ones after ten minutes) is opened again
    /// once before the error is the caller's.
    pub async fn committed(&self, group: &str, partitions: &[(String, i32)]) -> Result<Vec<i64>> {
        let mut brokers = self.brokers.lock().await;
        match fetch(&mut brokers, group, partitions).await {
            Ok(offsets) => Ok(offsets),
            Err(first) => {
                tracing::debug!(%first, "reading committed offsets again on new connections");
                brokers.reset();
                let again = fetch(&mut brokers, group, partitions).await;
                if again.is_err() {
                    brokers.reset();
                }
                again
            }
        }
    }
}

async fn fetch(
    brokers: &mut Brokers,
    group: &str,
    partitions: &[(String, i32)],
) -> Result<Vec<i64>> {
    let mut topics: Vec<OffsetFetchRequestTopic> = Vec::new();
    for (topic, partition) in partitions {
        match topics.iter_mut().find(|t| t.name.as_str() == topic) {
            Some(known) => known.partition_indexes.push(*partition),
            None => topics.push(
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partition_indexes(vec![*partition]),
            ),
        }
    }
    let coordinator = brokers.coordinator(group).await?.ok_or_else(|| {
        Error::Unreachable(format!("group {group} has no coordinator yet; try again"))
    })?;
    let fetched = coordinator
        .call(
            OffsetFetchRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
                .with_topics(Some(topics)),
            OFFSET_FETCH_VERSION,
        )
        .await?;
    if fetched.error_code != 0 {
        return Err(Error::Protocol(format!(
            "OffsetFetch failed for group {group} with error {}",
            fetched.error_code
        )));
    }
    let mut committed: HashMap<(&str, i32), i64> = HashMap::new();
    for topic in &fetched.topics {
        for partition in &topic.partitions {
            if partition.error_code == 0 && partition.committed_offset >= 0 {
                committed.insert(
                    (topic.name.as_str(), partition.partition_index),
                    partition.committed_offset,
                );
            }
        }
    }
    Ok(partitions
        .iter()
        .map(|(topic, partition)| {
            committed
                .get(&(topic.as_str(), *partition))
                .copied()
                .unwrap_or(-1)
        })
        .collect())
}
