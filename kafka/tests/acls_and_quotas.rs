//! Credential scopes as ACLs (CreateAcls/DeleteAcls) and client quotas (AlterClientQuotas)
//! against a mock broker that decodes what a real one would receive.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod mock_broker;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use capstan_kafka::{
    Credentials, acl_rules, gateway::Scope, grant_acls, revoke_acls, set_user_quotas,
};
use kafka_protocol::{
    messages::{
        AlterClientQuotasRequest, AlterClientQuotasResponse, ApiKey, CreateAclsRequest,
        CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
        alter_client_quotas_response::EntryData, create_acls_response::AclCreationResult,
        delete_acls_response::DeleteAclsFilterResult,
    },
    protocol::Decodable,
};
use mock_broker::{PASSWORD, USER, encode, start};

/// What the broker received.
#[derive(Debug)]
enum Seen {
    Create(i16, CreateAclsRequest),
    Delete(i16, DeleteAclsRequest),
    Quotas(AlterClientQuotasRequest),
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A broker that records ACL and quota requests and answers each entry with `error_code`.
async fn broker(log: Log, error_code: i16) -> Credentials {
    let bootstrap = start(Arc::new(
        move |api, version, id, mut body: Bytes| match api {
            ApiKey::CreateAcls => {
                let request = CreateAclsRequest::decode(&mut body, version).unwrap();
                let results = request
                    .creations
                    .iter()
                    .map(|_| AclCreationResult::default().with_error_code(error_code))
                    .collect();
                log.lock().unwrap().push(Seen::Create(version, request));
                encode(
                    id,
                    version,
                    CreateAclsResponse::default().with_results(results),
                )
            }
            ApiKey::DeleteAcls => {
                let request = DeleteAclsRequest::decode(&mut body, version).unwrap();
                let results = request
                    .filters
                    .iter()
                    .map(|_| DeleteAclsFilterResult::default().with_error_code(error_code))
                    .collect();
                log.lock().unwrap().push(Seen::Delete(version, request));
                encode(
                    id,
                    version,
                    DeleteAclsResponse::default().with_filter_results(results),
                )
            }
            ApiKey::AlterClientQuotas => {
                let request = AlterClientQuotasRequest::decode(&mut body, version).unwrap();
                let entries = request
                    .entries
                    .iter()
                    .map(|_| EntryData::default().with_error_code(error_code))
                    .collect();
                log.lock().unwrap().push(Seen::Quotas(request));
                encode(
                    id,
                    version,
                    AlterClientQuotasResponse::default().with_entries(entries),
                )
            }
            other => panic!("unexpected {other:?}"),
        },
    ))
    .await;
    Credentials {
        bootstrap,
        username: USER.into(),
        password: PASSWORD.into(),
        tls: None,
    }
}

fn consumer_of(topics: &str) -> Scope {
    Scope::scoped(false, true, topics)
}

#[tokio::test]
async fn a_scope_becomes_exactly_its_acls_for_the_user_on_any_host() {
    let log = Log::default();
    let credentials = broker(log.clone(), 0).await;
    let scope = consumer_of("pay*");
    grant_acls(&credentials, "reader", &scope).await.unwrap();
    let log = log.lock().unwrap();
    let Seen::Create(version, request) = &log[0] else {
        panic!("{log:?}")
    };
    assert_eq!(
        *version, 1,
        "v1: pattern types, accepted by every KRaft broker"
    );
    let sent: Vec<(i8, String, i8, i8, i8)> = request
        .creations
        .iter()
        .map(|c| {
            assert_eq!(c.principal.as_str(), "User:reader");
            assert_eq!(c.host.as_str(), "*");
            (
                c.resource_type,
                c.resource_name.to_string(),
                c.resource_pattern_type,
                c.operation,
                c.permission_type,
            )
        })
        .collect();
    let wanted: Vec<(i8, String, i8, i8, i8)> = acl_rules(&scope)
        .into_iter()
        .map(|r| {
            (
                r.resource_type,
                r.resource_name,
                r.pattern_type,
                r.operation,
                r.permission,
            )
        })
        .collect();
    assert_eq!(sent, wanted);
    // TOPIC (2) `pay` PREFIXED (4): READ (3) allowed (3); internal topics denied (2).
    assert!(sent.contains(&(2, "pay".into(), 4, 3, 3)));
    assert!(sent.contains(&(2, "__".into(), 4, 2, 2)));
    // GROUP (3) `*` LITERAL (3): READ allowed.
    assert!(sent.contains(&(3, "*".into(), 3, 3, 3)));
}

#[tokio::test]
async fn revoking_deletes_every_acl_of_the_principal_and_only_its() {
    let log = Log::default();
    let credentials = broker(log.clone(), 0).await;
    revoke_acls(&credentials, "reader").await.unwrap();
    let log = log.lock().unwrap();
    let Seen::Delete(1, request) = &log[0] else {
        panic!("{log:?}")
    };
    let filter = &request.filters[0];
    assert_eq!(
        filter.principal_filter.as_ref().map(|p| p.as_str()),
        Some("User:reader")
    );
    // ANY (1) of resource, pattern, operation and permission; any name and host.
    assert_eq!(
        (
            filter.resource_type_filter,
            filter.pattern_type_filter,
            filter.operation,
            filter.permission_type
        ),
        (1, 1, 1, 1)
    );
    assert!(filter.resource_name_filter.is_none() && filter.host_filter.is_none());
}

#[tokio::test]
async fn quotas_are_set_per_user_and_lifted_by_removal() {
    let log = Log::default();
    let credentials = broker(log.clone(), 0).await;
    let users = vec!["a".to_owned(), "b".to_owned()];
    set_user_quotas(&credentials, &users, Some(10_240))
        .await
        .unwrap();
    set_user_quotas(&credentials, &users, None).await.unwrap();
    set_user_quotas(&credentials, &[], None).await.unwrap();
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 2, "no users, no request");
    let (Seen::Quotas(set), Seen::Quotas(lift)) = (&log[0], &log[1]) else {
        panic!("{log:?}")
    };
    for (request, removed) in [(set, false), (lift, true)] {
        let named: Vec<&str> = request
            .entries
            .iter()
            .map(|e| {
                assert_eq!(e.entity[0].entity_type.as_str(), "user");
                e.entity[0].entity_name.as_ref().unwrap().as_str()
            })
            .collect();
        assert_eq!(named, ["a", "b"]);
        for entry in &request.entries {
            let ops: Vec<(&str, f64, bool)> = entry
                .ops
                .iter()
                .map(|o| (o.key.as_str(), o.value, o.remove))
                .collect();
            let value = if removed { 0.0 } else { 10_240.0 };
            assert_eq!(
                ops,
                [
                    ("producer_byte_rate", value, removed),
                    ("consumer_byte_rate", value, removed)
                ]
            );
        }
    }
}

#[tokio::test]
async fn refusals_of_the_broker_are_errors() {
    // 31: CLUSTER_AUTHORIZATION_FAILED.
    let credentials = broker(Log::default(), 31).await;
    let granted = grant_acls(&credentials, "reader", &Scope::full()).await;
    assert!(
        granted
            .unwrap_err()
            .to_string()
            .contains("refused the ACLs of reader")
    );
    assert!(revoke_acls(&credentials, "reader").await.is_err());
    assert!(
        set_user_quotas(&credentials, &["a".to_owned()], Some(1))
            .await
            .is_err()
    );
}
