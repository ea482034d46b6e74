//! A tenant's names on a shared pool: every topic, consumer group and transactional id lives
//! under the cluster's immutable prefix, which the tenant never sees.

use kafka_protocol::{
    messages::{GroupId, TopicName, TransactionalId},
    protocol::StrBytes,
};

/// Maps a tenant's names to the pool's and back. The empty prefix (a cluster with brokers of
/// its own) maps every name to itself.
#[derive(Clone, Debug)]
pub struct Names {
    prefix: String,
}

impl Names {
    /// Names under `prefix`.
    pub fn new(prefix: &str) -> Self {
        Names {
            prefix: prefix.to_owned(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
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

    /// A pool topic as the tenant names it, or `None` when it is not the tenant's.
    pub fn virtual_topic(&self, name: &TopicName) -> Option<TopicName> {
        self.virtual_name(&name.0).map(TopicName)
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
    /// tenant's (callers filter such entries out first, so this never leaks a pool name).
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
    fn the_empty_prefix_maps_every_name_to_itself() {
        let names = Names::new("");
        assert_eq!(names.physical(&s("orders")).as_str(), "orders");
        assert_eq!(names.virtual_name(&s("orders")).unwrap().as_str(), "orders");
    }
}
