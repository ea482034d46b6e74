//! Polling a consumer for a bounded batch of messages, on a blocking thread.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use rdkafka::{
    consumer::BaseConsumer,
    error::KafkaError,
    message::{BorrowedMessage, Headers, Message as _},
};

use super::types::{Header, Message, text};

/// Most messages one fetch or consume answers (Kafka's default `max.poll.records`).
pub const MAX_RECORDS: usize = 500;
/// Most bytes of keys and values one answer carries.
pub const MAX_BYTES: usize = 8 * 1024 * 1024;
/// Longest a request may wait for messages.
pub const MAX_TIMEOUT_MS: i64 = 60_000;

/// The request's wait, bounded.
pub fn timeout(requested: Option<i64>, default_ms: i64) -> Duration {
    Duration::from_millis(requested.unwrap_or(default_ms).clamp(0, MAX_TIMEOUT_MS) as u64)
}

/// Converts a record to its REST form, its topic named without the cluster's `prefix`.
pub fn to_message(record: &BorrowedMessage<'_>, prefix: &str) -> Message {
    let headers = record
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| Header {
                    key: h.key.to_owned(),
                    value: text(h.value),
                })
                .collect()
        })
        .unwrap_or_default();
    Message {
        topic: record
            .topic()
            .strip_prefix(prefix)
            .unwrap_or(record.topic())
            .to_owned(),
        partition: record.partition(),
        offset: record.offset(),
        timestamp: record.timestamp().to_millis().unwrap_or(-1),
        key: text(record.key()),
        value: text(record.payload()),
        headers,
    }
}

/// Polls until `timeout` passes or messages arrive; once the first message is there, takes what
/// is already buffered without waiting more. Only records `wanted` accepts, of topics under the
/// cluster's `prefix`, are kept. Returns the messages and the first error seen, if any.
pub fn poll_batch(
    consumer: &BaseConsumer,
    timeout: Duration,
    prefix: &str,
    wanted: impl Fn(&BorrowedMessage<'_>) -> bool,
) -> (Vec<Message>, Option<KafkaError>) {
    let deadline = Instant::now() + timeout;
    let mut messages = Vec::new();
    let mut bytes = 0usize;
    let mut first_error = None;
    let mut last_offset: HashMap<(String, i32), i64> = HashMap::new();
    loop {
        let now = Instant::now();
        let wait = if !messages.is_empty() {
            Duration::from_millis(5)
        } else if now >= deadline {
            Duration::ZERO
        } else {
            (deadline - now).min(Duration::from_millis(100))
        };
        match consumer.poll(wait) {
            Some(Ok(record)) => {
                // Never the same offset twice in one answer (the local engine may resend the
                // last batch of a partition at its high watermark).
                let partition = (record.topic().to_owned(), record.partition());
                let fresh = last_offset
                    .get(&partition)
                    .is_none_or(|last| record.offset() > *last);
                if fresh && record.topic().starts_with(prefix) && wanted(&record) {
                    last_offset.insert(partition, record.offset());
                    bytes += record.payload_len() + record.key().map_or(0, <[u8]>::len);
                    messages.push(to_message(&record, prefix));
                    if messages.len() >= MAX_RECORDS || bytes >= MAX_BYTES {
                        break;
                    }
                }
            }
            Some(Err(error)) => {
                tracing::debug!(%error, "consumer error while polling");
                if first_error.is_none() {
                    first_error = Some(error);
                }
            }
            None => {
                if !messages.is_empty() || Instant::now() >= deadline {
                    break;
                }
            }
        }
    }
    (messages, first_error)
}
