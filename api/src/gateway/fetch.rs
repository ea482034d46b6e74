//! `/fetch`: messages from given offsets, without a consumer group.

use std::collections::HashMap;

use axum::{Json, extract::State};
use rdkafka::{Offset, TopicPartitionList, consumer::Consumer, message::Message as _};
use serde::Deserialize;

use super::{
    Action, GatewayResult, GatewayState, RawBody,
    auth::Client,
    poll,
    types::{Message, TopicPartitionOffset},
};
use crate::{Error, extract::parse_json};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FetchRequest {
    topic: Option<String>,
    partition: Option<i32>,
    offset: Option<i64>,
    topic_partition_offsets: Option<Vec<TopicPartitionOffset>>,
    timeout: Option<i64>,
}

/// How long a fetch waits for messages known to exist, whatever its own timeout.
const WAIT_FOR_EXISTING_DATA: std::time::Duration = std::time::Duration::from_secs(5);
/// Bound on the high-watermark look-up before a fetch.
const WATERMARK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Most (topic, partition, offset) triples one fetch may name.
const MAX_TRIPLES: usize = 100;

/// `GET|POST /fetch`: for each requested partition, messages from `offset` (inclusive) on,
/// waiting at most `timeout` ms (default 1000) for the first one.
pub(super) async fn fetch(
    State(state): State<GatewayState>,
    Client(access, _slot): Client,
    RawBody(body): RawBody,
) -> GatewayResult<Json<Vec<Message>>> {
    let request: FetchRequest = parse_json(&body)?.ok_or_else(|| {
        Error::Invalid(
            "the body must name a topic, partition and offset, or topicPartitionOffsets".into(),
        )
    })?;
    let mut triples = request.topic_partition_offsets.unwrap_or_default();
    if let Some(topic) = request.topic {
        triples.push(TopicPartitionOffset {
            topic,
            partition: request.partition.unwrap_or(0),
            offset: request.offset.unwrap_or(0),
        });
    }
    if triples.is_empty() {
        return Err(Error::Invalid(
            "name a topic (with partition and offset) or topicPartitionOffsets".into(),
        )
        .into());
    }
    if triples.len() > MAX_TRIPLES {
        return Err(Error::Invalid(format!("at most {MAX_TRIPLES} partitions per fetch")).into());
    }
    for triple in &triples {
        let topic = state
            .require_topic(&access, &triple.topic, Action::Consume)
            .await?;
        state.require_partition(&topic, triple.partition)?;
        if triple.offset < 0 {
            return Err(Error::Invalid(format!(
                "offset must be 0 or more (got {})",
                triple.offset
            ))
            .into());
        }
    }
    let timeout = poll::timeout(request.timeout, 1000);
    let clients = state.clients.of(&state.app, &access).await?;
    let fetcher = clients.take_fetcher().await?;
    // The brokers' names (a shared cluster's topics live under its prefix).
    let from: HashMap<(String, i32), i64> = triples
        .iter()
        .map(|t| ((access.physical(&t.topic), t.partition), t.offset))
        .collect();
    let mut assignment = TopicPartitionList::new();
    for triple in &triples {
        assignment
            .add_partition_offset(
                &access.physical(&triple.topic),
                triple.partition,
                Offset::Offset(triple.offset),
            )
            .map_err(|e| Error::Invalid(format!("bad partition or offset: {e}")))?;
    }
    let prefix = access.prefix.clone();
    let (fetcher, messages) = tokio::task::spawn_blocking(move || {
        let consumer = &fetcher.consumer;
        // When a requested offset is already written, the answer must carry it even if the
        // client's timeout is shorter than the first fetch round trip.
        let data_waiting = from.iter().any(|((topic, partition), offset)| {
            consumer
                .fetch_watermarks(topic, *partition, WATERMARK_TIMEOUT)
                .is_ok_and(|(_, high)| *offset < high)
        });
        let wait = if data_waiting {
            timeout.max(WAIT_FOR_EXISTING_DATA)
        } else {
            timeout
        };
        if let Err(e) = consumer.assign(&assignment) {
            return (
                fetcher,
                Err(Error::Broker(format!(
                    "could not read from the brokers: {e}"
                ))),
            );
        }
        let (messages, _) = poll::poll_batch(consumer, wait, &prefix, |record| {
            from.get(&(record.topic().to_owned(), record.partition()))
                .is_some_and(|start| record.offset() >= *start)
        });
        (fetcher, Ok(messages))
    })
    .await
    .map_err(|e| Error::internal("fetch task failed", e))?;
    clients.give_back(fetcher);
    let messages = messages?;
    state.usage.fetched(&access.cluster_id, &messages).await;
    Ok(Json(messages))
}
