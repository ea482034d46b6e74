//! Whole-request refusals by the credential's scope, checked before a request is put into
//! the pool's names. Kafka's order: cluster, then transactional id, then group, then topics.
//!
//! Produce, Fetch, Metadata and DescribeConfigs are refused topic by topic where they are
//! routed (the rest of the request still goes to the brokers). Every other request that names
//! a topic outside the scope is refused as a whole with `TOPIC_AUTHORIZATION_FAILED`: a broker
//! would refuse only those partitions, but no client mixes topics it may and may not use in
//! one commit or offset lookup, and refusing more never lets anything through.

use kafka_protocol::{
    messages::{GroupId, RequestKind, TopicName, TransactionalId},
    protocol::StrBytes,
};

use super::{errors::code, names::Names};

/// A refusal: Kafka's error code and the message for the client.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Kafka error code.
    pub code: i16,
    /// Why, for the client's log.
    pub message: &'static str,
}

const GROUPS: Refusal = Refusal {
    code: code::GROUP_AUTHORIZATION_FAILED,
    message: "this credential may not use consumer groups (it needs CONSUME or ALL)",
};
const TRANSACTIONS: Refusal = Refusal {
    code: code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    message: "this credential may not use transactions (it needs PRODUCE or ALL)",
};
const IDEMPOTENCE: Refusal = Refusal {
    code: code::CLUSTER_AUTHORIZATION_FAILED,
    message: "this credential may not produce (it needs PRODUCE or ALL)",
};
const ADMIN_GROUPS: Refusal = Refusal {
    code: code::GROUP_AUTHORIZATION_FAILED,
    message: "only the cluster's default credential may delete groups or their offsets",
};
const ADMIN_RECORDS: Refusal = Refusal {
    code: code::TOPIC_AUTHORIZATION_FAILED,
    message: "only the cluster's default credential may delete records",
};
const ADMIN_CLUSTER: Refusal = Refusal {
    code: code::CLUSTER_AUTHORIZATION_FAILED,
    message: "only the cluster's default credential may describe the cluster's log directories",
};
const TOPICS: Refusal = Refusal {
    code: code::TOPIC_AUTHORIZATION_FAILED,
    message: "this credential may not use one of these topics",
};

/// Find-coordinator key type of transactional ids (group ids are 0).
const TRANSACTION_KEY: i8 = 1;

/// Why the tenant seen through `names` may not make `request` at all (in the tenant's names),
/// or `None`.
pub fn refusal(request: &RequestKind, names: &Names) -> Option<Refusal> {
    let scope = names.scope();
    let describe =
        |topics: &mut dyn Iterator<Item = &TopicName>| all(topics, |t| names.may_describe(t));
    let consume =
        |topics: &mut dyn Iterator<Item = &TopicName>| all(topics, |t| names.may_consume(t));
    let group = |id: &GroupId| require(names.may_use_group(id), GROUPS);
    let transaction =
        |id: &TransactionalId| require(names.may_use_transactional_id(id), TRANSACTIONS);
    match request {
        RequestKind::Produce(r) => r.transactional_id.as_ref().and_then(transaction),
        RequestKind::ListOffsets(r) => {
            require(describe(&mut r.topics.iter().map(|t| &t.name)), TOPICS)
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            require(describe(&mut r.topics.iter().map(|t| &t.topic)), TOPICS)
        }
        RequestKind::OffsetCommit(r) => group(&r.group_id)
            .or_else(|| require(consume(&mut r.topics.iter().map(|t| &t.name)), TOPICS)),
        RequestKind::OffsetFetch(r) => {
            // Up to v7 one group (the field is empty from v8, where the list is used).
            let groups = std::iter::once(&r.group_id)
                .filter(|_| r.groups.is_empty())
                .chain(r.groups.iter().map(|g| &g.group_id));
            let mut named = r.topics.iter().flatten().map(|t| &t.name).chain(
                r.groups
                    .iter()
                    .flat_map(|g| g.topics.iter().flatten().map(|t| &t.name)),
            );
            groups
                .map(group)
                .find(Option::is_some)
                .flatten()
                .or_else(|| require(describe(&mut named), TOPICS))
        }
        RequestKind::FindCoordinator(r) => {
            let keys = std::iter::once(&r.key)
                .filter(|_| r.coordinator_keys.is_empty())
                .chain(r.coordinator_keys.iter());
            let allowed = |key: &StrBytes| {
                if r.key_type == TRANSACTION_KEY {
                    transaction(&TransactionalId(key.clone()))
                } else {
                    group(&GroupId(key.clone()))
                }
            };
            keys.map(allowed).find(Option::is_some).flatten()
        }
        RequestKind::JoinGroup(r) => group(&r.group_id),
        RequestKind::Heartbeat(r) => group(&r.group_id),
        RequestKind::LeaveGroup(r) => group(&r.group_id),
        RequestKind::SyncGroup(r) => group(&r.group_id),
        RequestKind::DescribeGroups(r) => {
            r.groups.iter().map(group).find(Option::is_some).flatten()
        }
        RequestKind::DeleteGroups(_) | RequestKind::OffsetDelete(_) => {
            require(scope.administer, ADMIN_GROUPS)
        }
        RequestKind::DeleteRecords(_) => require(scope.administer, ADMIN_RECORDS),
        RequestKind::DescribeLogDirs(_) => require(scope.administer, ADMIN_CLUSTER),
        RequestKind::InitProducerId(r) => match &r.transactional_id {
            Some(id) => transaction(id),
            None => require(scope.may_use_transactions(), IDEMPOTENCE),
        },
        RequestKind::AddPartitionsToTxn(r) => transaction(&r.v3_and_below_transactional_id)
            .or_else(|| {
                let mut topics = r.v3_and_below_topics.iter().map(|t| &t.name);
                require(all(&mut topics, |t| names.may_produce(t)), TOPICS)
            }),
        RequestKind::AddOffsetsToTxn(r) => {
            transaction(&r.transactional_id).or_else(|| group(&r.group_id))
        }
        RequestKind::EndTxn(r) => transaction(&r.transactional_id),
        RequestKind::TxnOffsetCommit(r) => transaction(&r.transactional_id)
            .or_else(|| group(&r.group_id))
            .or_else(|| require(consume(&mut r.topics.iter().map(|t| &t.name)), TOPICS)),
        _ => None,
    }
}

fn require(allowed: bool, refusal: Refusal) -> Option<Refusal> {
    (!allowed).then_some(refusal)
}

fn all(topics: &mut dyn Iterator<Item = &TopicName>, allowed: impl Fn(&str) -> bool) -> bool {
    for topic in topics {
        if !allowed(topic.as_str()) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use kafka_protocol::{messages::*, protocol::StrBytes};

    use super::*;
    use crate::gateway::Scope;

    fn scope(produce: bool, consume: bool, topics: &str) -> Names {
        Names::scoped(
            "a1b2c3d4e5f6.",
            Scope {
                produce,
                consume,
                topics: topics.to_owned(),
                administer: false,
            },
        )
    }

    fn commit(topic: &'static str) -> RequestKind {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str(topic))),
            ])
            .into()
    }

    #[test]
    fn groups_need_consume_and_their_topics_the_scope() {
        let producer = scope(true, false, "pay*");
        assert_eq!(refusal(&commit("payments"), &producer), Some(GROUPS));
        let consumer = scope(false, true, "pay*");
        assert_eq!(refusal(&commit("payments"), &consumer), None);
        assert_eq!(refusal(&commit("orders"), &consumer), Some(TOPICS));
        // Another cluster's pool name, guessed, is refused even with every right.
        let everything = Names::new("a1b2c3d4e5f6.");
        assert_eq!(
            refusal(&commit("0123456789ab.payments"), &everything),
            Some(TOPICS)
        );
    }

    #[test]
    fn transactions_need_produce_and_administration_the_default_credential() {
        let consumer = scope(false, true, "*");
        let init = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("t"))));
        assert_eq!(refusal(&init.into(), &consumer), Some(TRANSACTIONS));
        let idempotent = InitProducerIdRequest::default().with_transactional_id(None);
        assert_eq!(refusal(&idempotent.into(), &consumer), Some(IDEMPOTENCE));
        let delete = DeleteGroupsRequest::default();
        assert_eq!(
            refusal(&delete.clone().into(), &consumer),
            Some(ADMIN_GROUPS)
        );
        assert_eq!(refusal(&delete.into(), &Names::new("a1b2c3d4e5f6.")), None);
    }
}
