//! End to end on a real Kubernetes cluster: the CRD, the operator (run in this process), a
//! multi-zone `KafkaCluster` made by the control plane's provisioner (dedicated controllers),
//! messages produced and consumed through it by a client pod with the credential of its Secret,
//! and a rolling restart of every pod under an `acks=all` producer with min ISR 2 that must not
//! lose a single send.
//!
//! Runs only when `CAPSTAN_E2E_KUBECONFIG` names a kubeconfig file (kind or k3d with three
//! worker nodes in three zones; docs/operator.md says how); otherwise it says so and passes.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::time::{Duration, Instant};

use capstan_operator::{
    KafkaCluster, Storage,
    provisioner::{ClusterTemplate, KubernetesClusters, resource_name},
};
use k8s_openapi::{
    api::core::v1::{Namespace, Node, Pod},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, CustomResourceExt,
    api::{DeleteParams, LogParams, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::json;

const MANAGER: &str = "capstan-e2e";

/// Calls `check` every two seconds until it returns `Some`, printing progress, or fails after
/// `limit`.
async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            eprintln!("e2e: {what} after {}s", start.elapsed().as_secs());
            return value;
        }
        assert!(start.elapsed() < limit, "e2e: timed out waiting for {what}");
        if start.elapsed().as_secs() % 30 < 2 {
            eprintln!("e2e: waiting for {what} ({}s)", start.elapsed().as_secs());
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn client_from(path: &str) -> Client {
    let kubeconfig =
        Kubeconfig::read_from(path).expect("CAPSTAN_E2E_KUBECONFIG must be a kubeconfig file");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// The zones of the cluster's nodes (`topology.kubernetes.io/zone`); at least three are needed.
async fn zones(client: &Client) -> Vec<String> {
    let mut zones: Vec<String> = Api::<Node>::all(client.clone())
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|node| {
            node.metadata
                .labels?
                .get("topology.kubernetes.io/zone")
                .cloned()
        })
        .collect();
    zones.sort();
    zones.dedup();
    assert!(
        zones.len() >= 3,
        "a multi-zone cluster needs nodes in three zones (label topology.kubernetes.io/zone); found {zones:?}"
    );
    zones.truncate(3);
    zones
}

async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = KafkaCluster::crd();
    let name = crd.metadata.name.clone().unwrap();
    crds.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
    wait_for(
        "the CRD to be established",
        Duration::from_secs(60),
        || async {
            let crd = crds.get(&name).await.ok()?;
            crd.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        },
    )
    .await;
}

/// What every client pod's script starts with: the two credentials as client configurations.
const CONFIGS: &str = r#"set -euo pipefail
config() { printf 'security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="%s" password="%s";\n' "$1" "$2"; }
config "$ADMIN_USERNAME" "$ADMIN_PASSWORD" > /tmp/admin.properties
config "$CLIENT_USERNAME" "$CLIENT_PASSWORD" > /tmp/client.properties
K=/opt/kafka/bin
"#;

/// The client pod: creates the topics with the admin user (the cluster authorizes: the client
/// user gets its ACLs as the control plane would write them), produces 100 messages and
/// consumes them back with the default client credential, and exits 0 only if all 100 came back.
fn client_pod(namespace: &str, cluster: &str, bootstrap: &str, version: &str) -> Pod {
    let script = r#"$K/kafka-acls.sh --bootstrap-server "$BOOTSTRAP" --command-config /tmp/admin.properties --add --allow-principal "User:$CLIENT_USERNAME" --operation All --topic '*' --group '*'
$K/kafka-topics.sh --bootstrap-server "$BOOTSTRAP" --command-config /tmp/admin.properties --create --topic e2e --partitions 3 --replication-factor 3
$K/kafka-topics.sh --bootstrap-server "$BOOTSTRAP" --command-config /tmp/admin.properties --create --topic e2e-roll --partitions 6 --replication-factor 3 --config min.insync.replicas=2
seq 1 100 | $K/kafka-console-producer.sh --bootstrap-server "$BOOTSTRAP" --producer.config /tmp/client.properties --topic e2e --producer-property acks=all
count=$($K/kafka-console-consumer.sh --bootstrap-server "$BOOTSTRAP" --consumer.config /tmp/client.properties --topic e2e --from-beginning --max-messages 100 --timeout-ms 120000 | wc -l)
echo "consumed $count"
test "$count" -eq 100
"#;
    kafka_pod("e2e-client", namespace, cluster, bootstrap, version, script)
}

/// Messages the rolling producer sends: at 200 a second, ten minutes of sends, longer than a
/// roll of three controllers and three brokers.
const ROLLING_MESSAGES: u32 = 120_000;

/// The producer pod of the rolling restart: `acks=all` sends to `e2e-roll` (RF 3, min ISR 2)
/// with the client credential; it says `producing` once the first is acknowledged and exits 0
/// only if every send was acknowledged and none failed.
fn rolling_producer_pod(namespace: &str, cluster: &str, bootstrap: &str, version: &str) -> Pod {
    let script = format!(
        r#"$K/kafka-verifiable-producer.sh --bootstrap-server "$BOOTSTRAP" --producer.config /tmp/client.properties --topic e2e-roll --max-messages {ROLLING_MESSAGES} --throughput 200 --acks -1 > /tmp/produced &
producer=$!
until grep -q producer_send_success /tmp/produced; do sleep 1; done
echo producing
wait "$producer"
errors=$(grep -c producer_send_error /tmp/produced || true)
acked=$(grep -c producer_send_success /tmp/produced || true)
echo "errors $errors acked $acked"
grep producer_send_error /tmp/produced | head -5 || true
test "$errors" -eq 0
test "$acked" -eq {ROLLING_MESSAGES}
"#
    );
    kafka_pod(
        "e2e-producer",
        namespace,
        cluster,
        bootstrap,
        version,
        &script,
    )
}

/// A pod of the Kafka image running `script` after [`CONFIGS`], with the cluster's
/// credentials from its Secret.
fn kafka_pod(
    name: &str,
    namespace: &str,
    cluster: &str,
    bootstrap: &str,
    version: &str,
    script: &str,
) -> Pod {
    let script = format!("{CONFIGS}{script}");
    let secret = format!("{cluster}-kafka-credentials");
    let from_secret = |name: &str, key: &str| json!({ "name": name, "valueFrom": { "secretKeyRef": { "name": secret, "key": key } } });
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "namespace": namespace },
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "client",
                "image": format!("apache/kafka:{version}"),
                "command": ["/bin/bash", "-c", script],
                "env": [
                    { "name": "BOOTSTRAP", "value": bootstrap },
                    from_secret("ADMIN_USERNAME", "admin-username"),
                    from_secret("ADMIN_PASSWORD", "admin-password"),
                    from_secret("CLIENT_USERNAME", "client-username"),
                    from_secret("CLIENT_PASSWORD", "client-password"),
                ],
            }],
        },
    }))
    .unwrap()
}

/// Waits for the pod `name` to end; its phase, `Succeeded` or `Failed`.
async fn finished(pods: &Api<Pod>, name: &str, what: &str, limit: Duration) -> String {
    wait_for(what, limit, || async {
        let phase = pods.get(name).await.ok()?.status?.phase?;
        matches!(phase.as_str(), "Succeeded" | "Failed").then_some(phase)
    })
    .await
}

#[tokio::test]
async fn a_multi_zone_cluster_is_provisioned_and_carries_messages() {
    let Ok(path) = std::env::var("CAPSTAN_E2E_KUBECONFIG") else {
        eprintln!("e2e: skipped, CAPSTAN_E2E_KUBECONFIG is not set (see docs/operator.md)");
        return;
    };
    let client = client_from(&path).await;
    install_crd(&client).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(capstan_operator::run_with_client(
        client.clone(),
        "127.0.0.1:0".parse().unwrap(),
        capstan_operator::leader::LeaseConfig {
            namespace: "default".into(),
            name: format!("capstan-e2e-{}", uuid::Uuid::new_v4().simple()),
            identity: "e2e".into(),
            duration: capstan_operator::LEASE_DURATION,
        },
        Vec::new(),
        async move {
            let _ = stopped.await;
        },
    ));

    let namespace = format!(
        "capstan-e2e-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": namespace } })).unwrap(),
        )
        .await
        .unwrap();
    let version = "3.9.1";
    let clusters = KubernetesClusters::new(
        client.clone(),
        ClusterTemplate {
            namespace: namespace.clone(),
            zones: zones(&client).await,
            version: version.into(),
            storage: Storage {
                size: "1Gi".into(),
                storage_class_name: None,
                delete_claim: true,
            },
        },
    )
    .unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    let bootstrap = clusters
        .create(&id, true, "e2e-client", "an e2e password of enough length")
        .await
        .unwrap();
    let status = wait_for(
        "the cluster to be Ready",
        Duration::from_secs(900),
        || async {
            let status = clusters.status(&id).await.ok()??;
            (status.phase.as_deref() == Some("Ready")).then_some(status)
        },
    )
    .await;
    assert_eq!(status.ready_brokers, Some(3));
    assert_eq!(status.ready_controllers, Some(3), "dedicated controllers");
    assert_eq!(
        status.bootstrap_servers.as_deref(),
        Some(bootstrap.as_str())
    );
    let credentials = clusters.credentials(&id).await.unwrap().unwrap();
    assert_eq!(credentials.client_username, "e2e-client");

    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    pods.create(
        &PostParams::default(),
        &client_pod(&namespace, &resource_name(&id), &bootstrap, version),
    )
    .await
    .unwrap();
    let phase = finished(
        &pods,
        "e2e-client",
        "the client pod to finish",
        Duration::from_secs(600),
    )
    .await;
    let logs = pods
        .logs("e2e-client", &LogParams::default())
        .await
        .unwrap_or_default();
    eprintln!("e2e: client pod log:\n{logs}");
    assert_eq!(phase, "Succeeded");
    assert!(logs.contains("consumed 100"));

    // A rolling restart of every pod (a change of the authorizer's super users changes both
    // the brokers' and the controllers' configuration) while an acks=all producer sends.
    let name = resource_name(&id);
    pods.create(
        &PostParams::default(),
        &rolling_producer_pod(&namespace, &name, &bootstrap, version),
    )
    .await
    .unwrap();
    wait_for(
        "the rolling producer to be producing",
        Duration::from_secs(300),
        || async {
            let logs = pods
                .logs("e2e-producer", &LogParams::default())
                .await
                .ok()?;
            logs.contains("producing").then_some(())
        },
    )
    .await;
    let cluster_pods = || async {
        let listed = pods
            .list(&kube::api::ListParams::default().labels(&format!("capstan.dev/cluster={name}")))
            .await
            .unwrap();
        listed
            .items
            .into_iter()
            .filter_map(|p| p.metadata.uid)
            .collect::<std::collections::BTreeSet<_>>()
    };
    let before = cluster_pods().await;
    let resources: Api<KafkaCluster> = Api::namespaced(client.clone(), &namespace);
    let changed = resources
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "authorization": { "type": "simple", "superUsers": ["User:e2e-ops"] } } })),
        )
        .await
        .unwrap();
    let generation = changed.metadata.generation.unwrap();
    wait_for(
        "every pod to be restarted with the new configuration",
        Duration::from_secs(1800),
        || async {
            let status = resources.get(&name).await.ok()?.status?;
            (status.observed_generation >= Some(generation)
                && status.phase.as_deref() == Some("Ready"))
            .then_some(())
        },
    )
    .await;
    let after = cluster_pods().await;
    assert_eq!(after.len(), before.len());
    assert!(
        after.is_disjoint(&before),
        "every controller and broker pod was restarted"
    );
    let phase = finished(
        &pods,
        "e2e-producer",
        "the rolling producer to finish",
        Duration::from_secs(1200),
    )
    .await;
    let logs = pods
        .logs("e2e-producer", &LogParams::default())
        .await
        .unwrap_or_default();
    eprintln!("e2e: rolling producer log:\n{logs}");
    assert_eq!(phase, "Succeeded", "a send failed during the roll");
    assert!(logs.contains(&format!("errors 0 acked {ROLLING_MESSAGES}")));

    clusters.delete(&id).await.unwrap();
    wait_for(
        "the KafkaCluster to be gone",
        Duration::from_secs(300),
        || async { clusters.status(&id).await.ok()?.is_none().then_some(()) },
    )
    .await;
    namespaces
        .delete(&namespace, &DeleteParams::default())
        .await
        .unwrap();
    let _ = stop.send(());
    operator.await.unwrap().unwrap();
}
