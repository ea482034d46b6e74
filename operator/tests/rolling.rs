//! Rolling a configuration change (operator/src/rolling.rs) against the mocked API server and
//! a mock Kafka cluster that reports in-sync replicas and the KRaft quorum: Strimzi's
//! KafkaRoller rules, one restart at a time.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::sync::Arc;

use capstan_operator::{metrics::Metrics, reconciler::Context};
use fake_api::{
    BASE, Shared, base64_of, client, condition_of, edit_spec,
    kafka::{self, Kafka, Partition},
    reconcile_stored, resource, take_statefulset_writes, take_writes,
};
use serde_json::{Value, json};

mod fake_api;
mod support;

/// `events-0` on brokers 0, 1 and 2 (min ISR 2) with `isr` in sync; the quorum of the three
/// brokers, led by broker 1.
fn events_on_three_brokers(isr: Vec<i32>) -> Kafka {
    kafka::kafka(
        vec![Partition {
            topic: "events",
            index: 0,
            replicas: vec![0, 1, 2],
            isr,
        }],
        vec![0, 1, 2],
        1,
    )
}

const PODS: &str = "/api/v1/namespaces/tenants/pods";
const SET: &str = "/apis/apps/v1/namespaces/tenants/statefulsets/orders-kafka";

/// Broker pod `ordinal` of revision `revision`, ready or not.
pub fn pod(ordinal: i32, revision: &str, ready: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": format!("orders-kafka-{ordinal}"), "namespace": "tenants",
            "labels": { "capstan.dev/cluster": "orders", "capstan.dev/statefulset": "orders-kafka",
                "controller-revision-hash": revision } },
        "status": { "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }] }
    })
}

fn put_pod(api: &Shared, ordinal: i32, revision: &str, ready: bool) {
    api.lock().unwrap().objects.insert(
        format!("{PODS}/orders-kafka-{ordinal}"),
        pod(ordinal, revision, ready),
    );
}

/// The StatefulSet controller after a template change: revision `revision` wanted, `updated`
/// pods on it.
fn set_revision(api: &Shared, revision: &str, updated: i32, ready: i32) {
    api.lock().unwrap().statefulset_reports(
        SET,
        json!({ "replicas": 3, "readyReplicas": ready, "updatedReplicas": updated,
            "currentRevision": "r1", "updateRevision": revision }),
    );
}

fn pod_deletes(api: &Shared) -> Vec<String> {
    take_writes(api)
        .into_iter()
        .filter(|w| w.starts_with("delete") && w.contains("/pods/"))
        .collect()
}

/// Three brokers running revision r1, and a configuration change that makes r2.
async fn three_brokers_with_a_new_configuration(kafka: Kafka) -> (Shared, Arc<Context>) {
    let kafka = kafka::start(kafka).await;
    let api: Shared = Arc::default();
    api.lock().unwrap().objects.insert(
        BASE.to_owned(),
        resource(
            json!({ "brokersPerZone": 3 }),
            json!({ "finalizers": ["capstan.dev/cleanup"] }),
        ),
    );
    let ctx = Arc::new(
        Context::new(client(api.clone()), Arc::new(Metrics::new().unwrap()))
            .with_kafka_bootstrap(kafka),
    );
    // The operator talks to Kafka as the admin user, with the Secret's password.
    reconcile_stored(&api, &ctx).await.unwrap();
    api.lock()
        .unwrap()
        .objects
        .get_mut("/api/v1/namespaces/tenants/secrets/orders-kafka-credentials")
        .unwrap()["data"]["admin-password"] = json!(base64_of(kafka::mock_broker::PASSWORD));
    set_revision(&api, "r1", 3, 3);
    for ordinal in 0..3 {
        put_pod(&api, ordinal, "r1", true);
    }
    reconcile_stored(&api, &ctx).await.unwrap();
    take_writes(&api);
    edit_spec(&api, |spec| {
        spec["authorization"] = json!({ "type": "simple" })
    });
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        take_statefulset_writes(&api),
        vec![format!("apply {SET}")],
        "the new template is applied; with OnDelete it restarts nothing by itself"
    );
    assert_eq!(
        api.lock().unwrap().objects[SET]["spec"]["updateStrategy"]["type"],
        "OnDelete"
    );
    set_revision(&api, "r2", 0, 3);
    (api, ctx)
}

#[tokio::test]
async fn a_configuration_change_restarts_one_broker_at_a_time_and_waits_for_in_sync_replicas() {
    // events-0 has min ISR 2 and only brokers 1 and 2 in sync: restarting 2 would stop acks=all.
    let kafka = events_on_three_brokers(vec![1, 2]);
    let (api, ctx) = three_brokers_with_a_new_configuration(kafka.clone()).await;

    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        pod_deletes(&api),
        Vec::<String>::new(),
        "held: broker 2 is needed in sync"
    );
    let held = condition_of(&api, "RollingHeld");
    assert_eq!(held["reason"], "UnderMinIsr");
    assert!(
        held["message"].as_str().unwrap().contains("events-0"),
        "{held}"
    );
    assert_ne!(
        api.lock().unwrap().objects[BASE]["status"]["observedGeneration"],
        2,
        "a generation still rolling is not applied"
    );

    // Broker 0 catches up: the highest ordinal goes first.
    kafka.lock().unwrap().partitions[0].isr = vec![0, 1, 2];
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        pod_deletes(&api),
        vec![format!("delete {PODS}/orders-kafka-2")]
    );
    assert_eq!(condition_of(&api, "Rolling")["reason"], "RestartingBrokers");

    // Back with the new revision but not ready yet: nothing else restarts.
    put_pod(&api, 2, "r2", false);
    set_revision(&api, "r2", 1, 2);
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(pod_deletes(&api), Vec::<String>::new());

    // Ready: broker 1 leads the quorum, so broker 0 goes before it.
    put_pod(&api, 2, "r2", true);
    set_revision(&api, "r2", 1, 3);
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        pod_deletes(&api),
        vec![format!("delete {PODS}/orders-kafka-0")]
    );
    put_pod(&api, 0, "r2", true);
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        pod_deletes(&api),
        vec![format!("delete {PODS}/orders-kafka-1")]
    );
    put_pod(&api, 1, "r2", true);
    set_revision(&api, "r2", 3, 3);
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(pod_deletes(&api), Vec::<String>::new());
    let status = api.lock().unwrap().objects[BASE]["status"].clone();
    assert_eq!(status["observedGeneration"], 2, "rolled whole: applied");
    assert_eq!(status["phase"], "Ready");
}

#[tokio::test]
async fn a_crash_looping_cluster_is_restarted_whole_with_the_new_spec() {
    let (api, ctx) = three_brokers_with_a_new_configuration(events_on_three_brokers(vec![])).await;
    for ordinal in 0..3 {
        put_pod(&api, ordinal, "r1", false);
    }
    set_revision(&api, "r2", 0, 0);
    reconcile_stored(&api, &ctx).await.unwrap();
    let mut deleted = pod_deletes(&api);
    deleted.sort();
    assert_eq!(
        deleted,
        (0..3)
            .map(|o| format!("delete {PODS}/orders-kafka-{o}"))
            .collect::<Vec<_>>(),
        "pods that serve nothing are not held back one by one"
    );
}

#[tokio::test]
async fn brokers_that_cannot_be_asked_are_not_restarted() {
    let (api, ctx) =
        three_brokers_with_a_new_configuration(events_on_three_brokers(vec![0, 1, 2])).await;
    // A wrong admin password: the brokers refuse the operator.
    api.lock()
        .unwrap()
        .objects
        .get_mut("/api/v1/namespaces/tenants/secrets/orders-kafka-credentials")
        .unwrap()["data"]["admin-password"] = json!(base64_of("wrong"));
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(pod_deletes(&api), Vec::<String>::new());
    assert_eq!(
        condition_of(&api, "RollingHeld")["reason"],
        "AvailabilityUnknown"
    );
}
