//! `/offsets/{timestamp|earliest|latest}` and `/topics`.

use std::collections::BTreeMap;

use axum::{
    Json,
    extract::{Path, Query, State},
};
use rdkafka::{Offset, TopicPartitionList, consumer::Consumer};
use serde::Deserialize;

use super::{
    GatewayResult, GatewayState, RawBody, auth::Client, poll, types::TopicPartitionOffset,
};
use crate::{Error, topics};

#[derive(Debug, Deserialize)]
pub(super) struct TimeoutQuery {
    timeout: Option<i64>,
}

enum Point {
    Earliest,
    Latest,
    Time(i64),
}

/// `GET|POST /offsets/{timestamp}`: per partition, the log start (`earliest`), the log end
/// (`latest`, the next offset to be written), or the first offset whose timestamp is at or after
/// the given one (`-1` when there is none).
pub(super) async fn offsets(
    State(state): State<GatewayState>,
    Client(access, _slot): Client,
    Path(point): Path<String>,
    Query(query): Query<TimeoutQuery>,
    RawBody(body): RawBody,
) -> GatewayResult<Json<Vec<TopicPartitionOffset>>> {
    let point = match point.as_str() {
        "earliest" => Point::Earliest,
        "latest" => Point::Latest,
        other => Point::Time(other.parse().map_err(|_| {
            Error::Invalid(format!(
                "the offsets point must be earliest, latest or a timestamp (got {other:?})"
            ))
        })?),
    };
    let wanted = state.require_consumable_partitions(&access, &body).await?;
    let timeout = poll::timeout(query.timeout, 10_000);
    let clients = state.clients.of(&state.app, &access).await?;
    let fetcher = clients.take_fetcher().await?;
    let prefix = access.prefix.clone();
    let (fetcher, answer) = tokio::task::spawn_blocking(move || {
        let consumer = &fetcher.consumer;
        let answer = wanted
            .into_iter()
            .map(|tp| {
                let placed = format!("{prefix}{}", tp.topic);
                let offset = match point {
                    Point::Earliest | Point::Latest => {
                        let (low, high) = consumer
                            .fetch_watermarks(&placed, tp.partition, timeout)
                            .map_err(|e| Error::Broker(format!("could not read offsets: {e}")))?;
                        if matches!(point, Point::Earliest) {
                            low
                        } else {
                            high
                        }
                    }
                    Point::Time(timestamp) => {
                        let mut list = TopicPartitionList::new();
                        list.add_partition_offset(&placed, tp.partition, Offset::Offset(timestamp))
                            .map_err(|e| Error::Invalid(format!("bad partition: {e}")))?;
                        let found = consumer.offsets_for_times(list, timeout).map_err(|e| {
                            Error::Broker(format!("could not look offsets up by time: {e}"))
                        })?;
                        found
                            .find_partition(&placed, tp.partition)
                            .and_then(|e| e.offset().to_raw())
                            .filter(|o| *o >= 0)
                            .unwrap_or(-1)
                    }
                };
                Ok(TopicPartitionOffset {
                    topic: tp.topic,
                    partition: tp.partition,
                    offset,
                })
            })
            .collect::<Result<Vec<_>, Error>>();
        (fetcher, answer)
    })
    .await
    .map_err(|e| Error::internal("offsets task failed", e))?;
    clients.give_back(fetcher);
    Ok(Json(answer?))
}

/// `GET /topics`: every topic the credential can see, with its partition count.
pub(super) async fn list(
    State(state): State<GatewayState>,
    Client(access, _slot): Client,
) -> GatewayResult<Json<BTreeMap<String, i64>>> {
    let topics = topics::all_of_cluster(&state.app, &access.cluster_id).await?;
    Ok(Json(
        topics
            .into_iter()
            .filter(|t| access.covers(&t.name))
            .map(|t| (t.name, t.partitions))
            .collect(),
    ))
}
