//! What the gateway delivers and accepts, counted: Prometheus counters, and a hook through which
//! the metering pipeline receives group-less fetch counts (offset-based meters cannot see those).

use std::{collections::BTreeMap, sync::Arc};

use prometheus::IntCounterVec;

use super::types::{Message, Metadata};

/// Receives, for every group-less `/fetch`, the messages returned per topic — before the answer
/// is sent, so a count is never lost to a crash after the client got its messages.
#[async_trait::async_trait]
pub trait FetchObserver: Send + Sync + std::fmt::Debug {
    /// `messages` were returned from `topic` of `cluster_id` by one `/fetch`.
    async fn fetched(&self, cluster_id: &str, topic: &str, messages: u64);
}

/// The gateway's counters.
#[derive(Clone, Debug)]
pub struct Usage {
    messages: IntCounterVec,
    observer: Option<Arc<dyn FetchObserver>>,
}

impl Usage {
    /// Counts into `messages` (labels: cluster, kind) and tells `observer` about fetches.
    pub fn new(messages: IntCounterVec, observer: Option<Arc<dyn FetchObserver>>) -> Self {
        Usage { messages, observer }
    }

    pub(super) fn produced(&self, cluster_id: &str, sent: &[Metadata]) {
        self.messages
            .with_label_values(&[cluster_id, "produced"])
            .inc_by(sent.len() as u64);
    }

    pub(super) fn consumed(&self, cluster_id: &str, messages: &[Message]) {
        self.messages
            .with_label_values(&[cluster_id, "consumed"])
            .inc_by(messages.len() as u64);
    }

    pub(super) async fn fetched(&self, cluster_id: &str, messages: &[Message]) {
        self.messages
            .with_label_values(&[cluster_id, "fetched"])
            .inc_by(messages.len() as u64);
        if let Some(observer) = &self.observer {
            let mut per_topic: BTreeMap<&str, u64> = BTreeMap::new();
            for message in messages {
                *per_topic.entry(message.topic.as_str()).or_default() += 1;
            }
            for (topic, count) in per_topic {
                observer.fetched(cluster_id, topic, count).await;
            }
        }
    }
}
