//! JSON types of the REST data API (compat spec §1.3).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A record header. Order is kept and keys may repeat.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Header {
    pub key: String,
    pub value: String,
}

/// A message to produce. `topic` is required only when the URL has none.
#[derive(Debug, Deserialize)]
pub struct ProduceMessage {
    pub topic: Option<String>,
    /// A string; anything else is sent as its JSON text (the SDK stringifies before sending).
    pub value: Option<Value>,
    pub partition: Option<i32>,
    pub timestamp: Option<i64>,
    pub key: Option<String>,
    pub headers: Option<Vec<Header>>,
}

/// Where a produced message went.
#[derive(Debug, Serialize)]
pub struct Metadata {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
}

/// A consumed message. Every field is always present: a null key is `""`, no headers `[]`.
#[derive(Debug, Serialize)]
pub struct Message {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: String,
    pub value: String,
    pub headers: Vec<Header>,
}

/// A topic and partition.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

/// A topic, partition and offset.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TopicPartitionOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// One object or an array of them, as most data API bodies may be.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

impl<T> OneOrMany<T> {
    pub fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::Many(items) => items,
            OneOrMany::One(item) => vec![item],
        }
    }
}

/// Turns raw record bytes into the REST form: lossy UTF-8 (the contract has no binary form).
pub fn text(bytes: Option<&[u8]>) -> String {
    bytes
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}
