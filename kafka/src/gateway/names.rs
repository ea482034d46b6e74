//! A tenant's names on a shared pool: every topic, consumer group and transactional id lives
//! under the cluster's immutable prefix, which the tenant never sees. The view is also the
//! credential's: topics outside its scope are not the tenant's to see.

use kafka_protocol::{
    messages::{GroupId, TopicName, TransactionalId},
    protocol::StrBytes,
};

use super::scope::Scope;

/// How Kafka's internal topics (`__consumer_offsets`, `__transaction_state`) begin. They are
/// the brokers', never a tenant's: no tenant may name a topic so.
pub const INTERNAL_TOPIC_PREFIX: &str = "__";

/// Hexadecimal digits in a shared cluster's prefix (followed by a dot).
const PREFIX_DIGITS: usize = 12;

/// True when `name` may not be used by a cluster under `prefix`: on a shared cluster (a
/// non-empty prefix), names shaped like a pool's name are reserved. Nobody may create one, and a
/// request naming one is refused as unauthorized whether or not such a pool name exists, so
/// guessing another cluster's names tells nothing.
pub fn is_reserved(prefix: &str, name: &str) -> bool {
    !prefix.is_empty() && looks_pooled(name)
}

/// True when `name` has the shape of a name on a shared pool (12 lowercase hexadecimal digits
/// and a dot, then anything).
fn looks_pooled(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() > PREFIX_DIGITS
        && bytes[PREFIX_DIGITS] == b'.'
        && bytes[..PREFIX_DIGITS]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// Maps a tenant's names to the pool's and back. The empty prefix (a cluster with brokers of
/// its own) maps every name to itself.
#[derive(Clone, Debug)]
pub struct Names {
    prefix: String,
    scope: Scope,
}

impl Names {
    /// Names under `prefix`, seen with every right.
    pub fn new(prefix: &str) -> Self {
        Self::scoped(prefix, Scope::full())
    }

    /// Names under `prefix`, seen by a credential with `scope`.
    pub fn scoped(prefix: &str, scope: Scope) -> Self {
        Names {
            prefix: prefix.to_owned(),
            scope,
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// What the credential may do.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// True for a name the tenant may not use: shaped like a pool name, on a shared cluster.
    pub fn reserved(&self, name: &str) -> bool {
        is_reserved(&self.prefix, name)
    }

    /// True for a topic the tenant may not use: a reserved name, or one of Kafka's internal
    /// topics (`__consumer_offsets`, `__transaction_state`), which a cluster with brokers of its
    /// own has under its own names. No tenant topic is named so: the API, the console and the
    /// gateway refuse names starting with `__`.
    fn unusable_topic(&self, topic: &str) -> bool {
        self.reserved(topic) || topic.starts_with(INTERNAL_TOPIC_PREFIX)
    }

    /// May produce to `topic` (the tenant's name).
    pub fn may_produce(&self, topic: &str) -> bool {
        !self.unusable_topic(topic) && self.scope.may_produce(topic)
    }

    /// May fetch `topic` and commit its offsets.
    pub fn may_consume(&self, topic: &str) -> bool {
        !self.unusable_topic(topic) && self.scope.may_consume(topic)
    }

    /// May see `topic`.
    pub fn may_describe(&self, topic: &str) -> bool {
        !self.unusable_topic(topic) && self.scope.may_describe(topic)
    }

    /// May use consumer group `group`.
    pub fn may_use_group(&self, group: &str) -> bool {
        !self.reserved(group) && self.scope.may_use_groups()
    }

    /// May use transactional id `id`.
    pub fn may_use_transactional_id(&self, id: &str) -> bool {
        !self.reserved(id) && self.scope.may_use_transactions()
    }

    /// The pool's name for a tenant's name.
    pub fn physical(&self, name: &StrBytes) -> StrBytes {
        if self.prefix.is_empty() {
            return name.clone();
        }
        StrBytes::from_string(format!("{}{}", self.prefix, name.as_str()))
    }

    /// The tenant's name for a pool name, or `None` when the pool name is not the tenant's.
    pub fn virtual_name(&self, physical: &StrBytes) -> Option<StrBytes> {
        if self.prefix.is_empty() {
            return Some(physical.clone());
        }
        physical
            .as_str()
            .strip_prefix(self.prefix.as_str())
            .map(|name| StrBytes::from_string(name.to_owned()))
    }

    /// True when a pool name belongs to the tenant.
    pub fn owns(&self, physical: &str) -> bool {
        physical.starts_with(self.prefix.as_str())
    }

    /// A topic on the pool.
    pub fn topic(&self, name: &TopicName) -> TopicName {
        TopicName(self.physical(&name.0))
    }

    /// A consumer group on the pool.
    pub fn group(&self, id: &GroupId) -> GroupId {
        GroupId(self.physical(&id.0))
    }

    /// A transactional id on the pool.
    pub fn transactional_id(&self, id: &TransactionalId) -> TransactionalId {
        TransactionalId(self.physical(&id.0))
    }

    /// A pool topic as the tenant names it, or `None` when it is not the tenant's or not in
    /// the credential's scope.
    pub fn virtual_topic(&self, name: &TopicName) -> Option<TopicName> {
        self.virtual_name(&name.0)
            .filter(|name| self.may_describe(name))
            .map(TopicName)
    }

    /// A pool group as the tenant names it, or `None` when it is not the tenant's.
    pub fn virtual_group(&self, id: &GroupId) -> Option<GroupId> {
        self.virtual_name(&id.0).map(GroupId)
    }

    /// A pool transactional id as the tenant names it, or `None` when it is not the tenant's.
    pub fn virtual_transactional_id(&self, id: &TransactionalId) -> Option<TransactionalId> {
        self.virtual_name(&id.0).map(TransactionalId)
    }

    /// Rewrites a topic name in place to the tenant's; the empty name when it is not the
    /// tenant's to see (callers filter such entries out first, so this never leaks a pool
    /// name).
    pub fn strip_topic(&self, name: &mut TopicName) {
        *name = self.virtual_topic(name).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &'static str) -> StrBytes {
        StrBytes::from_static_str(text)
    }

    #[test]
    fn names_go_under_the_prefix_and_come_back() {
        let names = Names::new("a1b2.");
        assert_eq!(names.physical(&s("orders")).as_str(), "a1b2.orders");
        assert_eq!(
            names.virtual_name(&s("a1b2.orders")).unwrap().as_str(),
            "orders"
        );
        assert_eq!(names.virtual_name(&s("c3d4.orders")), None);
        assert!(names.owns("a1b2.x") && !names.owns("a1b2"));
    }

    #[test]
    fn topics_outside_the_scope_are_not_seen() {
        let scope = Scope {
            produce: false,
            consume: true,
            topics: "pay*".into(),
            administer: false,
        };
        let names = Names::scoped("a1b2.", scope);
        let topic = |n: &'static str| TopicName(s(n));
        assert_eq!(
            names
                .virtual_topic(&topic("a1b2.payments"))
                .unwrap()
                .0
                .as_str(),
            "payments"
        );
        assert_eq!(names.virtual_topic(&topic("a1b2.orders")), None);
    }

    #[test]
    fn pool_shaped_names_are_reserved_on_shared_clusters_only() {
        assert!(looks_pooled("3f9a0c1b2d4e.orders"));
        assert!(!looks_pooled("3f9a0c1b2d4e") && !looks_pooled("3F9A0C1B2D4E.x"));
        assert!(!looks_pooled("orders.3f9a0c1b2d4e") && !looks_pooled("3f9a0c1b2d4g.x"));
        assert!(Names::new("a1b2c3d4e5f6.").reserved("3f9a0c1b2d4e.orders"));
        assert!(!Names::new("").reserved("3f9a0c1b2d4e.orders"));
        assert!(!Names::new("a1b2c3d4e5f6.").may_produce("3f9a0c1b2d4e.orders"));
    }

    #[test]
    fn kafka_internal_topics_are_nobody_s_even_with_every_right() {
        // On a cluster with brokers of its own they exist under these very names.
        let names = Names::new("");
        for internal in ["__consumer_offsets", "__transaction_state"] {
            assert!(!names.may_describe(internal) && !names.may_produce(internal));
            assert!(!names.may_consume(internal));
            assert_eq!(names.virtual_topic(&TopicName(s(internal))), None);
        }
        assert!(names.may_describe("orders") && names.may_produce("orders"));
    }

    #[test]
    fn the_empty_prefix_maps_every_name_to_itself() {
        let names = Names::new("");
        assert_eq!(names.physical(&s("orders")).as_str(), "orders");
        assert_eq!(names.virtual_name(&s("orders")).unwrap().as_str(), "orders");
    }
}
