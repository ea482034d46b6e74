//! A new broker count on a cluster with dedicated controllers, against the mocked API server
//! and a mock Kafka cluster: brokers are added freely; a scale-down waits while the brokers it
//! removes hold partition replicas, then shrinks the StatefulSet and unregisters each removed
//! broker once its pod is gone. (Without dedicated controllers the count is refused: see
//! tests/reconciler.rs.)

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::sync::Arc;

use capstan_operator::reconciler::Context;
use fake_api::{
    BASE, Shared, base64_of, condition_of, edit_spec,
    kafka::{self, Kafka, Partition},
    reconcile_stored, set_admin_password, setup_with_kafka, take_writes,
};
use serde_json::json;

mod fake_api;
mod support;

const PODS: &str = "/api/v1/namespaces/tenants/pods";
const BROKERS: &str = "/apis/apps/v1/namespaces/tenants/statefulsets/orders-kafka";
const CONTROLLERS: &str = "/apis/apps/v1/namespaces/tenants/statefulsets/orders-kafka-controller";

fn partition(index: i32, replicas: Vec<i32>) -> Partition {
    Partition {
        topic: "events",
        index,
        isr: replicas.clone(),
        replicas,
    }
}

/// Every pod of `set` up to `count` running and ready, as the StatefulSet controller reports.
fn running(api: &Shared, set: &str, count: i32) {
    let name = set.rsplit('/').next().unwrap().to_owned();
    let mut api = api.lock().unwrap();
    for ordinal in 0..count {
        api.objects.insert(
            format!("{PODS}/{name}-{ordinal}"),
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": { "name": format!("{name}-{ordinal}"), "namespace": "tenants",
                    "labels": { "capstan.dev/cluster": "orders", "capstan.dev/statefulset": name,
                        "controller-revision-hash": "r1" } },
                "status": { "conditions": [{ "type": "Ready", "status": "True" }] }
            }),
        );
    }
    api.statefulset_reports(
        set,
        json!({ "replicas": count, "readyReplicas": count, "updatedReplicas": count,
            "currentRevision": "r1", "updateRevision": "r1" }),
    );
}

/// A running cluster of `brokers` brokers and three dedicated controllers, whose brokers
/// answer as `kafka` says.
async fn dedicated_cluster(brokers: i32, kafka: Kafka) -> (Shared, Arc<Context>) {
    let address = kafka::start(kafka).await;
    let (api, ctx) = setup_with_kafka(
        json!({ "brokersPerZone": brokers, "controllers": {} }),
        address,
    );
    reconcile_stored(&api, &ctx).await.unwrap();
    set_admin_password(&api, kafka::mock_broker::PASSWORD);
    running(&api, CONTROLLERS, 3);
    running(&api, BROKERS, brokers);
    reconcile_stored(&api, &ctx).await.unwrap();
    let status = api.lock().unwrap().objects[BASE]["status"].clone();
    assert_eq!(
        (
            status["phase"].clone(),
            status["readyBrokers"].clone(),
            status["readyControllers"].clone()
        ),
        (json!("Ready"), json!(brokers), json!(3)),
        "{status}"
    );
    take_writes(&api);
    (api, ctx)
}

fn replicas(api: &Shared, set: &str) -> i64 {
    api.lock().unwrap().objects[set]["spec"]["replicas"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn brokers_are_added_without_touching_the_controllers() {
    let kafka = kafka::kafka(
        vec![partition(0, vec![0, 1, 2])],
        vec![1000, 1001, 1002],
        1000,
    );
    let (api, ctx) = dedicated_cluster(3, kafka).await;
    edit_spec(&api, |spec| spec["brokersPerZone"] = json!(5));
    reconcile_stored(&api, &ctx).await.unwrap();
    let writes: Vec<String> = take_writes(&api)
        .into_iter()
        .filter(|w| w.contains("/statefulsets/"))
        .collect();
    assert_eq!(writes, vec![format!("apply {BROKERS}")]);
    assert_eq!(replicas(&api, BROKERS), 5);
    assert_eq!(replicas(&api, CONTROLLERS), 3);
    assert_eq!(
        condition_of(&api, "ScalingRefused"),
        serde_json::Value::Null
    );
    running(&api, BROKERS, 5);
    reconcile_stored(&api, &ctx).await.unwrap();
    let status = api.lock().unwrap().objects[BASE]["status"].clone();
    assert_eq!(
        (
            status["observedGeneration"].clone(),
            status["readyBrokers"].clone()
        ),
        (json!(2), json!(5))
    );
}

#[tokio::test]
async fn a_scale_down_waits_for_the_removed_brokers_to_empty_then_unregisters_them() {
    // events-1 has a replica on broker 3, one of the two brokers a scale-down to 3 removes.
    let kafka = kafka::kafka(
        vec![partition(0, vec![0, 1, 2]), partition(1, vec![1, 2, 3])],
        vec![1000, 1001, 1002],
        1000,
    );
    let (api, ctx) = dedicated_cluster(5, kafka.clone()).await;
    edit_spec(&api, |spec| spec["brokersPerZone"] = json!(3));
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        replicas(&api, BROKERS),
        5,
        "refused: broker 3 holds a replica"
    );
    let refused = condition_of(&api, "ScalingRefused");
    assert_eq!(refused["reason"], "BrokersHoldReplicas");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("brokers 3, 4") && message.contains("events-1"),
        "{message}"
    );
    assert_eq!(
        api.lock().unwrap().objects[BASE]["status"]["observedGeneration"],
        1
    );

    // The replica is moved away: the StatefulSet shrinks, after the status records which
    // brokers to unregister (so an operator stopped in between still does it).
    kafka.lock().unwrap().partitions[1] = partition(1, vec![0, 1, 2]);
    take_writes(&api);
    reconcile_stored(&api, &ctx).await.unwrap();
    let writes = take_writes(&api);
    let recorded = writes
        .iter()
        .position(|w| *w == format!("status {BASE}"))
        .unwrap();
    let shrunk = writes
        .iter()
        .position(|w| *w == format!("apply {BROKERS}"))
        .unwrap();
    assert!(recorded < shrunk, "{writes:?}");
    assert_eq!(replicas(&api, BROKERS), 3);
    assert_eq!(
        condition_of(&api, "ScalingRefused"),
        serde_json::Value::Null
    );
    let status = api.lock().unwrap().objects[BASE]["status"].clone();
    assert_eq!(status["retiredBrokers"], json!([3, 4]));
    assert_eq!(
        condition_of(&api, "BrokersUnregistering")["reason"],
        "RemovedBrokersPending"
    );
    assert_eq!(
        kafka.lock().unwrap().unregistered,
        Vec::<i32>::new(),
        "not while their pods still run"
    );

    // Pod 4 is gone, pod 3 still stopping: only broker 4 is unregistered.
    api.lock()
        .unwrap()
        .objects
        .remove(&format!("{PODS}/orders-kafka-4"));
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(kafka.lock().unwrap().unregistered, vec![4]);
    assert_eq!(
        api.lock().unwrap().objects[BASE]["status"]["retiredBrokers"],
        json!([3])
    );

    api.lock()
        .unwrap()
        .objects
        .remove(&format!("{PODS}/orders-kafka-3"));
    running(&api, BROKERS, 3);
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(kafka.lock().unwrap().unregistered, vec![4, 3]);
    let status = api.lock().unwrap().objects[BASE]["status"].clone();
    assert_eq!(status.get("retiredBrokers"), None, "{status}");
    assert_eq!(
        condition_of(&api, "BrokersUnregistering"),
        serde_json::Value::Null
    );
    assert_eq!(status["observedGeneration"], 2, "applied whole");
    assert_eq!(status["phase"], "Ready");
}

#[tokio::test]
async fn a_scale_down_is_held_while_kafka_cannot_be_asked() {
    let kafka = kafka::kafka(
        vec![partition(0, vec![0, 1, 2])],
        vec![1000, 1001, 1002],
        1000,
    );
    let (api, ctx) = dedicated_cluster(4, kafka).await;
    set_admin_password(&api, "wrong");
    edit_spec(&api, |spec| spec["brokersPerZone"] = json!(3));
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(replicas(&api, BROKERS), 4);
    assert_eq!(
        condition_of(&api, "ScalingRefused")["reason"],
        "AvailabilityUnknown"
    );
}

/// The internal listener's TLS Secret of `certificate` (cert-manager's shape).
fn internal_tls_secret(api: &Shared, certificate: &kafka::mock_broker::BrokerCertificate) {
    api.lock().unwrap().objects.insert(
        "/api/v1/namespaces/tenants/secrets/orders-internal-tls".into(),
        json!({ "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": { "name": "orders-internal-tls", "namespace": "tenants" },
            "data": { "ca.crt": base64_of(&certificate.ca), "tls.crt": base64_of(&certificate.chain),
                "tls.key": base64_of(&certificate.key) } }),
    );
}

#[tokio::test]
async fn with_tls_on_the_internal_listener_the_operator_checks_the_brokers_over_tls() {
    let kafka = kafka::kafka(
        vec![partition(0, vec![0, 1, 2])],
        vec![1000, 1001, 1002],
        1000,
    );
    let certificate = kafka::mock_broker::broker_certificate();
    let address = kafka::start_tls(kafka, &certificate).await;
    let (api, ctx) = setup_with_kafka(
        json!({ "brokersPerZone": 4, "controllers": {},
                "listeners": { "internal": { "tls": { "secretName": "orders-internal-tls" } } } }),
        address,
    );
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        condition_of(&api, "InternalTlsNotReady")["reason"],
        "SecretNotFound"
    );
    set_admin_password(&api, kafka::mock_broker::PASSWORD);
    running(&api, CONTROLLERS, 3);
    running(&api, BROKERS, 4);

    // A CA that did not sign the brokers' certificate: nothing can be checked, nothing shrinks.
    internal_tls_secret(
        &api,
        &kafka::mock_broker::BrokerCertificate {
            ca: kafka::mock_broker::broker_certificate().ca,
            ..kafka::mock_broker::broker_certificate()
        },
    );
    edit_spec(&api, |spec| spec["brokersPerZone"] = json!(3));
    reconcile_stored(&api, &ctx).await.unwrap();
    let refused = condition_of(&api, "ScalingRefused");
    assert_eq!(refused["reason"], "AvailabilityUnknown");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("TLS handshake failed"),
        "{refused}"
    );
    assert_eq!(replicas(&api, BROKERS), 4);

    // The CA that did: the operator asks the brokers over TLS, and broker 3 is empty.
    internal_tls_secret(&api, &certificate);
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        condition_of(&api, "ScalingRefused"),
        serde_json::Value::Null
    );
    assert_eq!(
        condition_of(&api, "InternalTlsNotReady"),
        serde_json::Value::Null
    );
    assert_eq!(replicas(&api, BROKERS), 3);
    let template = api.lock().unwrap().objects[BROKERS]["spec"]["template"].clone();
    assert_eq!(
        template["spec"]["volumes"][1]["secret"]["secretName"],
        "orders-internal-tls"
    );
}

#[tokio::test]
async fn a_multi_zone_scale_down_once_begun_is_not_undone_when_kafka_stops_answering() {
    let zone =
        |i: usize| format!("/apis/apps/v1/namespaces/tenants/statefulsets/orders-kafka-z{i}");
    let kafka = kafka::kafka(
        vec![partition(0, vec![0, 1, 2])],
        vec![1000, 1001, 1002],
        1000,
    );
    let address = kafka::start(kafka).await;
    let (api, ctx) = setup_with_kafka(
        json!({ "zoneMode": "multi", "zones": ["a", "b", "c"], "brokersPerZone": 2, "controllers": {} }),
        address,
    );
    reconcile_stored(&api, &ctx).await.unwrap();
    set_admin_password(&api, kafka::mock_broker::PASSWORD);
    running(&api, CONTROLLERS, 3);
    for i in 0..3 {
        running(&api, &zone(i), 2);
    }
    reconcile_stored(&api, &ctx).await.unwrap();

    // Brokers 3, 4 and 5 (ordinal 1 of each zone) are empty: the scale-down begins, zone 0 first.
    edit_spec(&api, |spec| spec["brokersPerZone"] = json!(1));
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        api.lock().unwrap().objects[BASE]["status"]["retiredBrokers"],
        json!([3, 4, 5])
    );
    assert_eq!((replicas(&api, &zone(0)), replicas(&api, &zone(1))), (1, 2));
    // Kafka stops answering the operator; zone 0 settles. The scale-down goes on: asking
    // again could only undo zone 0.
    set_admin_password(&api, "wrong");
    api.lock()
        .unwrap()
        .objects
        .remove(&format!("{PODS}/orders-kafka-z0-1"));
    running(&api, &zone(0), 1);
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        condition_of(&api, "ScalingRefused"),
        serde_json::Value::Null
    );
    assert_eq!(
        (replicas(&api, &zone(0)), replicas(&api, &zone(1))),
        (1, 1),
        "zone 0 stays shrunk and zone 1 follows"
    );
}
