//! Credential scopes as Kafka ACLs, for dedicated clusters on Apache Kafka: the brokers run the
//! StandardAuthorizer with the control plane's admin user as the super user, and each SCRAM
//! user gets exactly the ACLs that match the rules the Kafka gateway applies to the same
//! credential ([`Scope`]), written with CreateAcls and removed with DeleteAcls.
//!
//! | scope | ACLs (principal `User:<name>`, any host) |
//! |---|---|
//! | produce | WRITE, DESCRIBE on its topics; WRITE, DESCRIBE on every transactional id; IDEMPOTENT_WRITE on the cluster |
//! | consume | READ, DESCRIBE on its topics; READ, DESCRIBE on every group |
//! | administer (default credential) | READ, WRITE, DESCRIBE, DESCRIBE_CONFIGS on every topic; ALL on every group and transactional id; DESCRIBE, DESCRIBE_CONFIGS, IDEMPOTENT_WRITE on the cluster |
//! | every credential | DENY ALL on topics starting with `__` (Kafka's internal topics) |
//!
//! Nothing grants ALTER or ALTER_CONFIGS on the cluster, so no credential can change SCRAM
//! users, ACLs, quotas or broker settings; nothing grants CREATE on the cluster or CREATE,
//! DELETE, ALTER or ALTER_CONFIGS on topics, so topics are made, changed and deleted only
//! through Capstan (the API, the console, or the gateway), where the plan's limits hold and
//! every topic is registered in the store.

use kafka_protocol::{
    messages::{
        CreateAclsRequest, DeleteAclsRequest, create_acls_request::AclCreation,
        delete_acls_request::DeleteAclsFilter,
    },
    protocol::StrBytes,
};

use crate::{
    Error, Result,
    connection::{Credentials, error_text},
    gateway::{INTERNAL_TOPIC_PREFIX, Scope},
};

/// Kafka's resource types (`org.apache.kafka.common.resource.ResourceType`).
mod resource {
    pub const ANY: i8 = 1;
    pub const TOPIC: i8 = 2;
    pub const GROUP: i8 = 3;
    pub const CLUSTER: i8 = 4;
    pub const TRANSACTIONAL_ID: i8 = 5;
}

/// Kafka's pattern types (`org.apache.kafka.common.resource.PatternType`).
mod pattern {
    pub const ANY: i8 = 1;
    pub const LITERAL: i8 = 3;
    pub const PREFIXED: i8 = 4;
}

/// Kafka's ACL operations (`org.apache.kafka.common.acl.AclOperation`).
mod operation {
    pub const ANY: i8 = 1;
    pub const ALL: i8 = 2;
    pub const READ: i8 = 3;
    pub const WRITE: i8 = 4;
    pub const DESCRIBE: i8 = 8;
    pub const DESCRIBE_CONFIGS: i8 = 10;
    pub const IDEMPOTENT_WRITE: i8 = 12;
}

/// Kafka's permission types (`org.apache.kafka.common.acl.AclPermissionType`).
mod permission {
    pub const ANY: i8 = 1;
    pub const DENY: i8 = 2;
    pub const ALLOW: i8 = 3;
}

/// The one cluster resource's name.
const CLUSTER_NAME: &str = "kafka-cluster";
/// The wildcard resource name: every resource of the type.
const WILDCARD: &str = "*";
/// Version of CreateAcls and DeleteAcls sent: v1 (KIP-290, pattern types), which every Kafka
/// since 2.0 and every KRaft version accepts.
const ACLS_VERSION: i16 = 1;

/// One ACL, as Kafka stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclRule {
    /// Resource type (Kafka's numbering).
    pub resource_type: i8,
    /// Resource name (`*` for all).
    pub resource_name: String,
    /// LITERAL (3) or PREFIXED (4).
    pub pattern_type: i8,
    /// The operation (Kafka's numbering).
    pub operation: i8,
    /// ALLOW (3) or DENY (2).
    pub permission: i8,
}

impl AclRule {
    fn allow(resource_type: i8, (pattern_type, name): (i8, &str), operation: i8) -> Self {
        AclRule {
            resource_type,
            resource_name: name.to_owned(),
            pattern_type,
            operation,
            permission: permission::ALLOW,
        }
    }

    fn creation(&self, principal: &str) -> AclCreation {
        AclCreation::default()
            .with_resource_type(self.resource_type)
            .with_resource_name(StrBytes::from_string(self.resource_name.clone()))
            .with_resource_pattern_type(self.pattern_type)
            .with_principal(StrBytes::from_string(principal.to_owned()))
            .with_host(StrBytes::from_static_str(WILDCARD))
            .with_operation(self.operation)
            .with_permission_type(self.permission)
    }
}

/// A scope's topic pattern as a Kafka resource pattern: `*` is the wildcard literal, `pay*` the
/// prefix `pay`, anything else one topic.
fn topic_pattern(topics: &str) -> (i8, &str) {
    match topics.strip_suffix('*') {
        Some("") => (pattern::LITERAL, WILDCARD),
        Some(prefix) => (pattern::PREFIXED, prefix),
        None => (pattern::LITERAL, topics),
    }
}

/// The ACLs that give a credential its scope (see the module's table).
pub fn acl_rules(scope: &Scope) -> Vec<AclRule> {
    use operation::*;
    use resource::*;
    let every = (pattern::LITERAL, WILDCARD);
    let cluster = (pattern::LITERAL, CLUSTER_NAME);
    let mut rules = vec![AclRule {
        resource_type: TOPIC,
        resource_name: INTERNAL_TOPIC_PREFIX.to_owned(),
        pattern_type: pattern::PREFIXED,
        operation: ALL,
        permission: permission::DENY,
    }];
    if scope.administer {
        for operation in [READ, WRITE, DESCRIBE, DESCRIBE_CONFIGS] {
            rules.push(AclRule::allow(TOPIC, every, operation));
        }
        for resource in [GROUP, TRANSACTIONAL_ID] {
            rules.push(AclRule::allow(resource, every, ALL));
        }
        for operation in [DESCRIBE, DESCRIBE_CONFIGS, IDEMPOTENT_WRITE] {
            rules.push(AclRule::allow(CLUSTER, cluster, operation));
        }
        return rules;
    }
    let topics = topic_pattern(&scope.topics);
    if scope.produce {
        rules.push(AclRule::allow(TOPIC, topics, WRITE));
        rules.push(AclRule::allow(TRANSACTIONAL_ID, every, WRITE));
        rules.push(AclRule::allow(TRANSACTIONAL_ID, every, DESCRIBE));
        rules.push(AclRule::allow(CLUSTER, cluster, IDEMPOTENT_WRITE));
    }
    if scope.consume {
        rules.push(AclRule::allow(TOPIC, topics, READ));
        rules.push(AclRule::allow(GROUP, every, READ));
        rules.push(AclRule::allow(GROUP, every, DESCRIBE));
    }
    if scope.produce || scope.consume {
        rules.push(AclRule::allow(TOPIC, topics, DESCRIBE));
    }
    rules
}

/// The principal Kafka gives a SCRAM user.
fn principal(username: &str) -> String {
    format!("User:{username}")
}

/// Writes the ACLs of `scope` for `username`, authenticating as the admin user of
/// `credentials`. Creating an ACL that exists changes nothing, so this is safe to repeat (the
/// control plane does, to repair drift).
pub async fn grant_acls(credentials: &Credentials, username: &str, scope: &Scope) -> Result<()> {
    let principal = principal(username);
    let creations = acl_rules(scope)
        .iter()
        .map(|rule| rule.creation(&principal))
        .collect();
    let response = credentials
        .connect()
        .await?
        .call(
            CreateAclsRequest::default().with_creations(creations),
            ACLS_VERSION,
        )
        .await?;
    match response.results.into_iter().find(|r| r.error_code != 0) {
        Some(refused) => Err(Error::Protocol(format!(
            "the broker refused the ACLs of {username}: {}",
            error_text(refused.error_message, refused.error_code)
        ))),
        None => Ok(()),
    }
}

/// Removes every ACL of `username` (whatever it was granted).
pub async fn revoke_acls(credentials: &Credentials, username: &str) -> Result<()> {
    let filter = DeleteAclsFilter::default()
        .with_resource_type_filter(resource::ANY)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(pattern::ANY)
        .with_principal_filter(Some(StrBytes::from_string(principal(username))))
        .with_host_filter(None)
        .with_operation(operation::ANY)
        .with_permission_type(permission::ANY);
    let response = credentials
        .connect()
        .await?
        .call(
            DeleteAclsRequest::default().with_filters(vec![filter]),
            ACLS_VERSION,
        )
        .await?;
    match response
        .filter_results
        .into_iter()
        .find(|r| r.error_code != 0)
    {
        Some(refused) => Err(Error::Protocol(format!(
            "the broker refused to delete the ACLs of {username}: {}",
            error_text(refused.error_message, refused.error_code)
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(produce: bool, consume: bool, topics: &str) -> Scope {
        Scope::scoped(produce, consume, topics)
    }

    fn has(rules: &[AclRule], resource_type: i8, name: &str, operation: i8) -> bool {
        rules.iter().any(|r| {
            r.resource_type == resource_type
                && r.resource_name == name
                && r.operation == operation
                && r.permission == permission::ALLOW
        })
    }

    #[test]
    fn topic_patterns_are_wildcards_prefixes_or_names() {
        assert_eq!(topic_pattern("*"), (pattern::LITERAL, "*"));
        assert_eq!(topic_pattern("pay*"), (pattern::PREFIXED, "pay"));
        assert_eq!(topic_pattern("orders"), (pattern::LITERAL, "orders"));
    }

    #[test]
    fn a_producer_writes_its_topics_and_reads_nothing() {
        let rules = acl_rules(&scope(true, false, "pay*"));
        assert!(has(&rules, resource::TOPIC, "pay", operation::WRITE));
        assert!(has(&rules, resource::TOPIC, "pay", operation::DESCRIBE));
        assert!(!has(&rules, resource::TOPIC, "pay", operation::READ));
        assert!(!rules.iter().any(|r| r.resource_type == resource::GROUP));
        assert!(has(
            &rules,
            resource::CLUSTER,
            CLUSTER_NAME,
            operation::IDEMPOTENT_WRITE
        ));
    }

    #[test]
    fn a_consumer_reads_its_topics_and_uses_groups() {
        let rules = acl_rules(&scope(false, true, "orders"));
        assert!(has(&rules, resource::TOPIC, "orders", operation::READ));
        assert!(has(&rules, resource::GROUP, "*", operation::READ));
        assert!(!has(&rules, resource::TOPIC, "orders", operation::WRITE));
        assert!(
            !rules
                .iter()
                .any(|r| r.resource_type == resource::TRANSACTIONAL_ID)
        );
    }

    #[test]
    fn nobody_reaches_internal_topics_or_alters_the_cluster() {
        for scope in [Scope::full(), scope(true, true, "*")] {
            let rules = acl_rules(&scope);
            assert!(rules.iter().any(|r| r.permission == permission::DENY
                && r.resource_type == resource::TOPIC
                && r.pattern_type == pattern::PREFIXED
                && r.resource_name == "__"
                && r.operation == operation::ALL));
            assert!(
                !rules.iter().any(|r| r.resource_type == resource::CLUSTER
                    && [operation::ALL, 7, 11].contains(&r.operation)),
                "ALTER and ALTER_CONFIGS on the cluster are never granted"
            );
        }
        let full = acl_rules(&Scope::full());
        for operation in [operation::READ, operation::WRITE, operation::DESCRIBE] {
            assert!(has(&full, resource::TOPIC, "*", operation));
        }
        assert!(has(&full, resource::GROUP, "*", operation::ALL));
    }

    #[test]
    fn topics_are_administered_only_through_capstan() {
        // ALL, CREATE, DELETE, ALTER, ALTER_CONFIGS: the plan's limits hold only where Capstan
        // sees the change, so no credential may make, change or delete a topic on the brokers.
        const ADMINISTRATION: [i8; 5] = [2, 5, 6, 7, 11];
        for scope in [Scope::full(), scope(true, true, "*")] {
            let rules = acl_rules(&scope);
            assert!(!rules.iter().any(|r| r.permission == permission::ALLOW
                && r.resource_type == resource::TOPIC
                && ADMINISTRATION.contains(&r.operation)));
            assert!(
                !rules
                    .iter()
                    .any(|r| r.resource_type == resource::CLUSTER && r.operation == 5),
                "CREATE on the cluster would allow CreateTopics"
            );
        }
    }
}
