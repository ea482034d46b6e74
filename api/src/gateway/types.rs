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

/// The most items one list in a request body may hold (messages to produce, say); lists of
/// partitions, each of which costs a lookup, have a smaller bound
/// ([`MAX_PARTITIONS_PER_REQUEST`]).
pub const MAX_LIST_ITEMS: usize = 10_000;

/// The most topic partitions one `/offsets`, `/committed` or `/commit` request may
/// name.
pub const MAX_PARTITIONS_PER_REQUEST: usize = 1_000;

/// One object or an array of them, as most data API bodies may be. Parsed item by item (no
/// intermediate copy of the body), with at most [`MAX_LIST_ITEMS`].
#[derive(Debug)]
pub enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Items<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Items<T> {
            type Value = OneOrMany<T>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object or an array of objects")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(item) = seq.next_element()? {
                    if items.len() == MAX_LIST_ITEMS {
                        return Err(serde::de::Error::custom(format!(
                            "at most {MAX_LIST_ITEMS} items are accepted in one request"
                        )));
                    }
                    items.push(item);
                }
                Ok(OneOrMany::Many(items))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(OneOrMany::One)
            }
        }

        deserializer.deserialize_any(Items(std::marker::PhantomData))
    }
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
