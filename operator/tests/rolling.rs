//! Rolling a configuration change (operator/src/rolling.rs) against the mocked API server and
//! a mock Kafka cluster that reports in-sync replicas and the KRaft quorum: Strimzi's
//! KafkaRoller rules, one restart at a time.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::sync::Arc;

use capstan_operator::reconciler::Context;
use fake_api::{
    BASE, Shared, condition_of, edit_spec,
    kafka::{self, Kafka, Partition},
    reconcile_stored, set_admin_password, setup_with_kafka, take_statefulset_writes, take_writes,
};
use serde_json::json;

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

/// Pod `ordinal` of the StatefulSet `set` (its name), of revision `revision`, ready or not.
fn put_pod_of(api: &Shared, set: &str, ordinal: i32, revision: &str, ready: bool) {
    api.lock().unwrap().objects.insert(
        format!("{PODS}/{set}-{ordinal}"),
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": format!("{set}-{ordinal}"), "namespace": "tenants",
                "labels": { "capstan.dev/cluster": "orders", "capstan.dev/statefulset": set,
                    "controller-revision-hash": revision } },
            "status": { "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }] }
        }),
    );
}

/// Broker pod `ordinal` of `orders-kafka`.
fn put_pod(api: &Shared, ordinal: i32, revision: &str, ready: bool) {
    put_pod_of(api, "orders-kafka", ordinal, revision, ready);
}

/// The StatefulSet controller of the StatefulSet at `path` after a template change: revision
/// `revision` wanted, `updated` of its three pods on it.
fn set_revision_of(api: &Shared, path: &str, revision: &str, updated: i32, ready: i32) {
    api.lock().unwrap().statefulset_reports(
        path,
        json!({ "replicas": 3, "readyReplicas": ready, "updatedReplicas": updated,
            "currentRevision": "r1", "updateRevision": revision }),
    );
}

fn set_revision(api: &Shared, revision: &str, updated: i32, ready: i32) {
    set_revision_of(api, SET, revision, updated, ready);
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
    let (api, ctx) = setup_with_kafka(json!({ "brokersPerZone": 3 }), kafka);
    // The operator talks to Kafka as the admin user, with the Secret's password.
    reconcile_stored(&api, &ctx).await.unwrap();
    set_admin_password(&api, kafka::mock_broker::PASSWORD);
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
    set_admin_password(&api, "wrong");
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(pod_deletes(&api), Vec::<String>::new());
    assert_eq!(
        condition_of(&api, "RollingHeld")["reason"],
        "AvailabilityUnknown"
    );
}

#[tokio::test]
async fn dedicated_controllers_roll_first_one_at_a_time_with_their_leader_last() {
    const CONTROLLERS: &str =
        "/apis/apps/v1/namespaces/tenants/statefulsets/orders-kafka-controller";
    let kafka = kafka::start(kafka::kafka(
        vec![Partition {
            topic: "events",
            index: 0,
            replicas: vec![0, 1, 2],
            isr: vec![0, 1, 2],
        }],
        vec![1000, 1001, 1002],
        1000,
    ))
    .await;
    let (api, ctx) = setup_with_kafka(json!({ "brokersPerZone": 3, "controllers": {} }), kafka);
    reconcile_stored(&api, &ctx).await.unwrap();
    set_admin_password(&api, kafka::mock_broker::PASSWORD);
    for ordinal in 0..3 {
        put_pod_of(&api, "orders-kafka-controller", ordinal, "r1", true);
        put_pod(&api, ordinal, "r1", true);
    }
    set_revision_of(&api, CONTROLLERS, "r1", 3, 3);
    set_revision(&api, "r1", 3, 3);
    reconcile_stored(&api, &ctx).await.unwrap();
    take_writes(&api);

    // A change of both configurations: the controllers' StatefulSet first, the brokers' waits.
    edit_spec(&api, |spec| {
        spec["authorization"] = json!({ "type": "simple" })
    });
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        take_statefulset_writes(&api),
        vec![format!("apply {CONTROLLERS}")]
    );
    set_revision_of(&api, CONTROLLERS, "r2", 0, 3);
    let mut restarted = Vec::new();
    for _ in 0..3 {
        reconcile_stored(&api, &ctx).await.unwrap();
        let writes = take_writes(&api);
        assert!(
            !writes.contains(&format!("apply {SET}")),
            "the brokers wait for the controllers: {writes:?}"
        );
        let deleted: Vec<&String> = writes
            .iter()
            .filter(|w| w.starts_with("delete") && w.contains("/pods/"))
            .collect();
        assert_eq!(deleted.len(), 1, "one at a time: {writes:?}");
        let pod = deleted[0].rsplit('/').next().unwrap().to_owned();
        let ordinal: i32 = pod.rsplit('-').next().unwrap().parse().unwrap();
        put_pod_of(&api, "orders-kafka-controller", ordinal, "r2", true);
        restarted.push(pod);
    }
    assert_eq!(
        restarted,
        [
            "orders-kafka-controller-2",
            "orders-kafka-controller-1",
            "orders-kafka-controller-0"
        ],
        "the quorum leader (1000, pod 0) last"
    );
    // The controllers settled: now the brokers' StatefulSet gets its new template.
    set_revision_of(&api, CONTROLLERS, "r2", 3, 3);
    take_writes(&api);
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(take_statefulset_writes(&api), vec![format!("apply {SET}")]);
}
