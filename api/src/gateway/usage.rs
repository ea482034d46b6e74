//! What the gateway delivers and accepts, counted: Prometheus counters, and a hook through which
//! the metering pipeline receives what is delivered (group-less fetches always; consumer
//! instances' messages where consumption is metered at delivery).

use std::{collections::BTreeMap, sync::Arc};

use prometheus::IntCounterVec;

use super::types::{Message, Metadata};
use crate::billing::RequestLimiter;

/// Receives the messages the REST gateway delivers, per topic — before the answer is sent, so
/// a count is never lost to a crash after the client got its messages.
#[async_trait::async_trait]
pub trait FetchObserver: Send + Sync + std::fmt::Debug {
    /// `messages` were delivered from `topic` of `cluster_id` by one `/fetch` or `/consume`.
    async fn fetched(&self, cluster_id: &str, topic: &str, messages: u64);
}

/// The gateway's counters.
#[derive(Clone, Debug)]
pub struct Usage {
    messages: IntCounterVec,
    observer: Option<Arc<dyn FetchObserver>>,
    limiter: Option<Arc<dyn RequestLimiter>>,
}

impl Usage {
    /// Counts into `messages` (labels: cluster, kind), tells `observer` about fetches, and takes
    /// what a rate-limited cluster moves from its allowance in `limiter`.
    pub fn new(
        messages: IntCounterVec,
        observer: Option<Arc<dyn FetchObserver>>,
        limiter: Option<Arc<dyn RequestLimiter>>,
    ) -> Self {
        Usage {
            messages,
            observer,
            limiter,
        }
    }

    /// Takes what rate-limited clusters move from their allowance in `limiter` from now on.
    pub(crate) fn limit_with(&mut self, limiter: Arc<dyn RequestLimiter>) {
        self.limiter = Some(limiter);
    }

    pub(super) fn produced(&self, cluster_id: &str, sent: &[Metadata]) {
        self.messages
            .with_label_values(&[cluster_id, "produced"])
            .inc_by(sent.len() as u64);
        self.charge(cluster_id, sent.len());
    }

    /// A limited cluster's messages count against its allowance (its limit was asked for
    /// before the request, in `require_topic`).
    fn charge(&self, cluster_id: &str, messages: usize) {
        if let Some(limiter) = &self.limiter
            && messages > 0
        {
            limiter.charge(cluster_id, messages as u64);
        }
    }

    /// Messages a consumer instance received from `/consume`. `metered_here`: the cluster's
    /// consumption is counted where records are delivered (every client goes through the
    /// gateways), not from its groups' commits, so they are reported to the metering pipeline.
    pub(super) async fn consumed(
        &self,
        cluster_id: &str,
        messages: &[Message],
        metered_here: bool,
    ) {
        self.messages
            .with_label_values(&[cluster_id, "consumed"])
            .inc_by(messages.len() as u64);
        self.charge(cluster_id, messages.len());
        if metered_here {
            self.report(cluster_id, messages).await;
        }
    }

    /// Messages returned by a group-less `/fetch`: always reported (no commit records them).
    pub(super) async fn fetched(&self, cluster_id: &str, messages: &[Message]) {
        self.messages
            .with_label_values(&[cluster_id, "fetched"])
            .inc_by(messages.len() as u64);
        self.charge(cluster_id, messages.len());
        self.report(cluster_id, messages).await;
    }

    async fn report(&self, cluster_id: &str, messages: &[Message]) {
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
