//! Plans and their limits (the published Upstash Kafka limits are the defaults).

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A cluster's plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    /// No payment method: small limits, no charge.
    Free,
    /// Pay as you go: per-message and per-GB prices.
    Payg,
}

impl Plan {
    /// Parses `free` or `payg`.
    pub fn parse(raw: &str) -> Result<Self> {
        match raw {
            "free" => Ok(Plan::Free),
            "payg" => Ok(Plan::Payg),
            other => Err(Error::Invalid(format!(
                "unknown plan {other:?}: use free or payg"
            ))),
        }
    }

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Payg => "payg",
        }
    }

    /// The Upstash `type` field: `free` or `paid`.
    pub fn upstash_type(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Payg => "paid",
        }
    }

    /// The limits of the plan.
    pub fn limits(self) -> Limits {
        match self {
            Plan::Free => Limits {
                max_partitions: 10,
                max_retention_size: 256 * 1024 * 1024,
                max_retention_time: 7 * 24 * 3600 * 1000,
                max_message_size: 1024 * 1024,
                max_messages_per_second: 1000,
            },
            Plan::Payg => Limits {
                max_partitions: 100,
                max_retention_size: 1_073_741_824_000,
                max_retention_time: 30 * 24 * 3600 * 1000,
                max_message_size: 1024 * 1024,
                max_messages_per_second: 1000,
            },
        }
    }
}

/// What a cluster of a plan may hold. Sizes in bytes, times in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Partitions summed over every topic of the cluster.
    pub max_partitions: i64,
    /// Largest `retention_size` of a topic.
    pub max_retention_size: i64,
    /// Longest `retention_time` of a topic.
    pub max_retention_time: i64,
    /// Largest message.
    pub max_message_size: i64,
    /// Soft throughput quota.
    pub max_messages_per_second: i64,
}
