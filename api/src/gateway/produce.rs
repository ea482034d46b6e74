//! `/produce…` and `/webhook`.

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Path, Query, State},
    http::HeaderMap,
};
use rdkafka::{
    message::{Header as KafkaHeader, OwnedHeaders},
    producer::FutureRecord,
};
use serde::Deserialize;

use super::{
    Action, GatewayResult, GatewayState, RawBody,
    auth::{Client, WebhookClient},
    types::{Header, Metadata, OneOrMany, ProduceMessage},
};
use crate::{Error, Result, credentials::Access, extract::parse_json};

/// Most messages one request may produce.
pub const MAX_MESSAGES_PER_REQUEST: usize = 1000;

/// A message ready to send.
#[derive(Debug)]
struct Outgoing {
    topic: String,
    value: String,
    key: Option<String>,
    partition: Option<i32>,
    timestamp: Option<i64>,
    headers: Vec<Header>,
}

impl Outgoing {
    fn from_request(message: ProduceMessage, topic_in_url: Option<&str>) -> Result<Self> {
        let topic = match (topic_in_url, message.topic) {
            (Some(url), _) => url.to_owned(),
            (None, Some(topic)) => topic,
            (None, None) => {
                return Err(Error::Invalid(
                    "each message needs a \"topic\" (or put the topic in the URL)".into(),
                ));
            }
        };
        let value = match message.value {
            Some(serde_json::Value::String(text)) => text,
            Some(other) => other.to_string(),
            None => return Err(Error::Invalid("each message needs a \"value\"".into())),
        };
        Ok(Outgoing {
            topic,
            value,
            key: message.key,
            partition: message.partition,
            timestamp: message.timestamp,
            headers: message.headers.unwrap_or_default(),
        })
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct KeyQuery {
    key: Option<String>,
}

/// `GET /produce/{topic}/{message}?key=…`: one message from the URL; answers one Metadata.
pub(super) async fn from_path(
    State(state): State<GatewayState>,
    Client(access, _slot): Client,
    Path((topic, value)): Path<(String, String)>,
    Query(query): Query<KeyQuery>,
) -> GatewayResult<Json<Metadata>> {
    let message = Outgoing {
        topic,
        value,
        key: query.key,
        partition: None,
        timestamp: None,
        headers: Vec::new(),
    };
    let mut sent = send(&state, &access, vec![message]).await?;
    Ok(Json(sent.remove(0)))
}

/// `GET|POST /produce/{topic}`: one message or an array; answers an array of Metadata.
pub(super) async fn to_topic(
    State(state): State<GatewayState>,
    Client(access, _slot): Client,
    Path(topic): Path<String>,
    RawBody(body): RawBody,
) -> GatewayResult<Json<Vec<Metadata>>> {
    let messages = parse_messages(&body, Some(&topic))?;
    Ok(Json(send(&state, &access, messages).await?))
}

/// `GET|POST /produce`: one message or an array, each naming its topic; answers an array.
pub(super) async fn with_topics(
    State(state): State<GatewayState>,
    Client(access, _slot): Client,
    RawBody(body): RawBody,
) -> GatewayResult<Json<Vec<Metadata>>> {
    let messages = parse_messages(&body, None)?;
    Ok(Json(send(&state, &access, messages).await?))
}

fn parse_messages(body: &[u8], topic_in_url: Option<&str>) -> Result<Vec<Outgoing>> {
    let messages = parse_json::<OneOrMany<ProduceMessage>>(body)?
        .ok_or_else(|| {
            Error::Invalid("the body must be a message {\"value\": …} or an array of them".into())
        })?
        .into_vec();
    if messages.is_empty() {
        return Err(Error::Invalid("the body has no messages".into()));
    }
    if messages.len() > MAX_MESSAGES_PER_REQUEST {
        return Err(Error::Invalid(format!(
            "at most {MAX_MESSAGES_PER_REQUEST} messages per request (got {})",
            messages.len()
        )));
    }
    messages
        .into_iter()
        .map(|m| Outgoing::from_request(m, topic_in_url))
        .collect()
}

#[derive(Debug, Deserialize)]
pub(super) struct WebhookQuery {
    topic: Option<String>,
}

/// Request headers that describe the HTTP exchange, not the event, and so are not copied into
/// Kafka headers.
const STANDARD_HEADERS: &[&str] = &[
    "host",
    "user-agent",
    "accept",
    "accept-encoding",
    "accept-language",
    "accept-charset",
    "authorization",
    "proxy-authorization",
    "connection",
    "keep-alive",
    "content-length",
    "content-type",
    "content-encoding",
    "content-language",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "cookie",
    "expect",
    "origin",
    "referer",
    "cache-control",
    "pragma",
    "via",
    "forwarded",
    "x-real-ip",
    "x-request-id",
    "dnt",
    "upgrade-insecure-requests",
    "priority",
];

fn is_standard(name: &str) -> bool {
    STANDARD_HEADERS.contains(&name)
        || name.starts_with("x-forwarded-")
        || name.starts_with("sec-")
        || name.starts_with("if-")
        || name.starts_with("access-control-")
}

/// `GET|POST /webhook?topic=…[&user=…&pass=…]`: the raw body becomes the value and the
/// non-standard request headers become Kafka headers, in order.
pub(super) async fn webhook(
    State(state): State<GatewayState>,
    WebhookClient(Client(access, _slot)): WebhookClient,
    Query(query): Query<WebhookQuery>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> GatewayResult<Json<Metadata>> {
    let topic = query
        .topic
        .ok_or_else(|| Error::Invalid("the topic query parameter is required".into()))?;
    let kafka_headers = headers
        .iter()
        .filter(|(name, _)| !is_standard(name.as_str()))
        .map(|(name, value)| Header {
            key: name.as_str().to_owned(),
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
        })
        .collect();
    let message = Outgoing {
        topic,
        value: String::from_utf8_lossy(&body).into_owned(),
        key: None,
        partition: None,
        timestamp: None,
        headers: kafka_headers,
    };
    let mut sent = send(&state, &access, vec![message]).await?;
    Ok(Json(sent.remove(0)))
}

/// Checks every message, sends them all, and waits for every acknowledgement (acks=all).
async fn send(
    state: &GatewayState,
    access: &Access,
    messages: Vec<Outgoing>,
) -> Result<Vec<Metadata>> {
    let mut topics = HashMap::new();
    for message in &messages {
        if !topics.contains_key(&message.topic) {
            let topic = state
                .require_topic(access, &message.topic, Action::Produce)
                .await?;
            topics.insert(message.topic.clone(), topic);
        }
        let topic = &topics[&message.topic];
        if let Some(partition) = message.partition {
            state.require_partition(topic, partition)?;
        }
        let size = message.value.len()
            + message.key.as_ref().map_or(0, String::len)
            + message
                .headers
                .iter()
                .map(|h| h.key.len() + h.value.len())
                .sum::<usize>();
        if size as i64 > topic.max_message_size {
            return Err(Error::Invalid(format!(
                "the message is {size} bytes, more than topic {}'s max_message_size of {} bytes",
                topic.name, topic.max_message_size
            )));
        }
    }
    let clients = state.clients.of(&state.app, access).await?;
    let producer = clients.producer_for(messages.len());
    let mut deliveries = Vec::with_capacity(messages.len());
    let placed: Vec<String> = messages.iter().map(|m| access.physical(&m.topic)).collect();
    for (message, topic) in messages.iter().zip(&placed) {
        let mut headers = OwnedHeaders::new_with_capacity(message.headers.len());
        for header in &message.headers {
            headers = headers.insert(KafkaHeader {
                key: &header.key,
                value: Some(header.value.as_bytes()),
            });
        }
        let mut record = FutureRecord::<str, str>::to(topic)
            .payload(&message.value)
            .headers(headers);
        if let Some(key) = &message.key {
            record = record.key(key);
        }
        if let Some(partition) = message.partition {
            record = record.partition(partition);
        }
        if let Some(timestamp) = message.timestamp {
            record = record.timestamp(timestamp);
        }
        let delivery = producer.send_result(record).map_err(|(e, _)| {
            Error::Broker(format!("could not queue a message for the brokers: {e}"))
        })?;
        deliveries.push(delivery);
    }
    let mut results = Vec::with_capacity(messages.len());
    for (message, delivery) in messages.iter().zip(deliveries) {
        let delivered = delivery
            .await
            .map_err(|_| Error::Broker("the producer stopped before the brokers answered".into()))?
            .map_err(|(e, _)| {
                Error::Broker(format!("the brokers did not take the message: {e}"))
            })?;
        results.push(Metadata {
            topic: message.topic.clone(),
            partition: delivered.partition,
            offset: delivered.offset,
            timestamp: delivered
                .timestamp
                .to_millis()
                .or(message.timestamp)
                .unwrap_or_else(now_millis),
        });
    }
    state.usage.produced(&access.cluster_id, &results);
    Ok(results)
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
