//! What a credential may do with its cluster: the REST gateway's rules, applied to every Kafka
//! request. PRODUCE, CONSUME or ALL on one topic name, a trailing-`*` prefix, or `*`; consumer
//! groups for credentials that may consume; transactions for those that may produce; topic,
//! group and record administration for the cluster's default credential only.

/// One credential's rights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// May produce (PRODUCE or ALL).
    pub produce: bool,
    /// May fetch, use consumer groups and read offsets (CONSUME or ALL).
    pub consume: bool,
    /// The topics it covers: a name, a prefix ending in `*`, or `*` for all.
    pub topics: String,
    /// May administer topics, groups and records: the cluster's default credential.
    pub administer: bool,
}

impl Scope {
    /// Everything: the cluster's default credential.
    pub fn full() -> Self {
        Scope {
            produce: true,
            consume: true,
            topics: "*".to_owned(),
            administer: true,
        }
    }

    /// A scoped credential's rights: producing and/or consuming on `topics` (a name, a prefix
    /// ending in `*`, or `*`), no administration.
    pub fn scoped(produce: bool, consume: bool, topics: &str) -> Self {
        Scope {
            produce,
            consume,
            topics: topics.to_owned(),
            administer: false,
        }
    }

    /// True when the credential's topics include `topic`.
    pub fn covers(&self, topic: &str) -> bool {
        covers(&self.topics, topic)
    }

    /// May produce to `topic`.
    pub fn may_produce(&self, topic: &str) -> bool {
        self.produce && self.covers(topic)
    }

    /// May fetch from `topic` and commit offsets of it.
    pub fn may_consume(&self, topic: &str) -> bool {
        self.consume && self.covers(topic)
    }

    /// May see `topic` at all (in listings, metadata, configs, offsets).
    pub fn may_describe(&self, topic: &str) -> bool {
        (self.produce || self.consume) && self.covers(topic)
    }

    /// May join, describe and commit for consumer groups.
    pub fn may_use_groups(&self) -> bool {
        self.consume
    }

    /// May use transactional ids and the idempotent producer.
    pub fn may_use_transactions(&self) -> bool {
        self.produce
    }
}

/// True when the topic pattern `pattern` (a name, a prefix ending in `*`, or `*`) includes
/// `topic`. The one definition of a scope, shared with the REST gateway.
pub fn covers(pattern: &str, topic: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => topic.starts_with(prefix),
        None => pattern == topic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(produce: bool, consume: bool, topics: &str) -> Scope {
        Scope::scoped(produce, consume, topics)
    }

    #[test]
    fn patterns_are_names_prefixes_or_everything() {
        assert!(covers("*", "anything"));
        assert!(covers("pay*", "payments") && covers("pay*", "pay"));
        assert!(!covers("pay*", "orders"));
        assert!(covers("orders", "orders") && !covers("orders", "orders2"));
    }

    #[test]
    fn permissions_split_produce_consume_groups_and_transactions() {
        let producer = scope(true, false, "pay*");
        assert!(producer.may_produce("payments") && !producer.may_consume("payments"));
        assert!(producer.may_describe("payments") && !producer.may_describe("orders"));
        assert!(!producer.may_use_groups() && producer.may_use_transactions());
        let consumer = scope(false, true, "pay*");
        assert!(!consumer.may_produce("payments") && consumer.may_consume("payments"));
        assert!(consumer.may_use_groups() && !consumer.may_use_transactions());
        assert!(Scope::full().administer && Scope::full().may_produce("x"));
    }
}
