//! The reconciler against a mocked Kubernetes API server (tests/fake_api): each test asserts
//! exactly which writes a reconcile made. Rolling is in tests/rolling.rs, scaling in
//! tests/scaling.rs.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::sync::Arc;

use capstan_operator::{
    KafkaCluster, Storage,
    metrics::Metrics,
    provisioner::{self, ClusterTemplate, KubernetesClusters},
    reconciler::{Context, error_policy, reconcile},
};
use fake_api::{
    BASE, Shared, client, condition_of, edit_spec, reconcile_stored, resource, setup,
    take_statefulset_writes, take_writes,
};
use serde_json::{Value, json};

mod fake_api;
mod support;

const CHILDREN: [&str; 7] = [
    "apply /api/v1/namespaces/tenants/configmaps/orders-kafka-config",
    "apply /api/v1/namespaces/tenants/secrets/orders-kafka-credentials",
    "apply /api/v1/namespaces/tenants/services/orders-kafka-headless",
    "apply /api/v1/namespaces/tenants/services/orders-kafka-bootstrap",
    "apply /apis/apps/v1/namespaces/tenants/statefulsets/orders-kafka",
    "apply /apis/policy/v1/namespaces/tenants/poddisruptionbudgets/orders-kafka",
    "apply /apis/networking.k8s.io/v1/namespaces/tenants/networkpolicies/orders-kafka",
];

#[tokio::test]
async fn a_new_cluster_gets_its_finalizer_then_every_child_then_its_status_and_then_nothing() {
    let (api, ctx) = setup(resource(json!({}), json!({})));
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(take_writes(&api), vec![format!("add finalizer {BASE}")]);

    reconcile_stored(&api, &ctx).await.unwrap();
    let mut expected: Vec<String> = CHILDREN.iter().map(|s| s.to_string()).collect();
    expected.push("event Pending".to_owned());
    expected.push(format!("status {BASE}"));
    assert_eq!(take_writes(&api), expected);
    let status = api.lock().unwrap().objects[BASE]["status"].clone();
    assert_eq!(status["phase"], "Pending");
    assert_eq!(status["readyBrokers"], 0);
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(
        status["bootstrapServers"],
        "orders-kafka-bootstrap.tenants.svc:9092"
    );

    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        take_writes(&api),
        Vec::<String>::new(),
        "an unchanged cluster is reconciled without a single write"
    );
}

#[tokio::test]
async fn ready_brokers_make_the_cluster_ready_and_drifted_children_are_applied_again() {
    let (api, ctx) = setup(resource(
        json!({}),
        json!({ "finalizers": ["capstan.dev/cleanup"] }),
    ));
    reconcile_stored(&api, &ctx).await.unwrap();
    take_writes(&api);
    {
        let mut api = api.lock().unwrap();
        let sts = "/apis/apps/v1/namespaces/tenants/statefulsets/orders-kafka";
        api.statefulset_reports(
            sts,
            json!({ "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1 }),
        );
        // Someone edits the ConfigMap and deletes the PodDisruptionBudget.
        api.objects
            .get_mut("/api/v1/namespaces/tenants/configmaps/orders-kafka-config")
            .unwrap()["data"]["server.properties"] = json!("edited");
        api.objects
            .remove("/apis/policy/v1/namespaces/tenants/poddisruptionbudgets/orders-kafka");
    }
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        take_writes(&api),
        vec![
            CHILDREN[0].to_owned(),
            CHILDREN[5].to_owned(),
            "event Ready".to_owned(),
            format!("status {BASE}")
        ]
    );
    let status = api.lock().unwrap().objects[BASE]["status"].clone();
    assert_eq!(
        (status["phase"].as_str(), status["readyBrokers"].as_i64()),
        (Some("Ready"), Some(1))
    );
    assert_eq!(status["conditions"][0]["reason"], "AllBrokersReady");
}

#[tokio::test]
async fn the_secrets_are_made_once_and_kept() {
    let (api, ctx) = setup(resource(
        json!({}),
        json!({ "finalizers": ["capstan.dev/cleanup"] }),
    ));
    reconcile_stored(&api, &ctx).await.unwrap();
    let first =
        api.lock().unwrap().objects["/api/v1/namespaces/tenants/secrets/orders-kafka-credentials"]
            ["data"]
            .clone();
    api.lock()
        .unwrap()
        .objects
        .remove("/api/v1/namespaces/tenants/configmaps/orders-kafka-config");
    reconcile_stored(&api, &ctx).await.unwrap();
    let second =
        api.lock().unwrap().objects["/api/v1/namespaces/tenants/secrets/orders-kafka-credentials"]
            ["data"]
            .clone();
    assert_eq!(first, second);
}

#[tokio::test]
async fn a_deleted_cluster_is_cleaned_up_and_its_finalizer_removed() {
    let deleted = json!({ "finalizers": ["capstan.dev/cleanup"], "deletionTimestamp": "2026-11-26T12:00:00Z" });
    let (api, ctx) = setup(resource(json!({}), deleted));
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        take_writes(&api),
        vec![
            format!("status {BASE}"),
            "event Deleting".to_owned(),
            format!("remove finalizer {BASE}")
        ]
    );
}

#[tokio::test]
async fn a_paused_cluster_is_left_alone() {
    let (api, ctx) = setup(resource(
        json!({ "paused": true }),
        json!({ "finalizers": ["capstan.dev/cleanup"] }),
    ));
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(take_writes(&api), Vec::<String>::new());
}

#[tokio::test]
async fn an_api_error_fails_the_reconcile_which_is_counted_and_requeued() {
    let (api, ctx) = setup(resource(
        json!({}),
        json!({ "finalizers": ["capstan.dev/cleanup"] }),
    ));
    api.lock().unwrap().fail_gets_of = Some("/secrets/".into());
    let stored: KafkaCluster =
        serde_json::from_value(api.lock().unwrap().objects[BASE].clone()).unwrap();
    let error = reconcile(Arc::new(stored.clone()), ctx.clone())
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "kubernetes_api");
    let action = error_policy(Arc::new(stored), &error, ctx.clone());
    assert_eq!(
        action,
        kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(15))
    );
    assert_eq!(
        ctx.metrics
            .errors
            .with_label_values(&["kubernetes_api"])
            .get(),
        1
    );
    assert_eq!(take_writes(&api), Vec::<String>::new());
}

#[tokio::test]
async fn a_multi_zone_change_rolls_one_zone_at_a_time() {
    let spec = json!({ "zoneMode": "multi", "zones": ["a", "b", "c"] });
    let (api, ctx) = setup(resource(
        spec.clone(),
        json!({ "finalizers": ["capstan.dev/cleanup"] }),
    ));
    reconcile_stored(&api, &ctx).await.unwrap();
    take_statefulset_writes(&api);
    let set =
        |zone: usize| format!("/apis/apps/v1/namespaces/tenants/statefulsets/orders-kafka-z{zone}");
    let settle = |api: &Shared, zone: usize| {
        api.lock().unwrap().statefulset_reports(
            &set(zone),
            json!({ "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1 }),
        );
    };
    for zone in 0..3 {
        settle(&api, zone);
    }
    // A new image for every zone.
    edit_spec(&api, |spec| spec["image"] = json!("apache/kafka:4.0.0"));
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        take_statefulset_writes(&api),
        vec![format!("apply {}", set(0))],
        "only the first zone rolls"
    );
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        take_statefulset_writes(&api),
        Vec::<String>::new(),
        "the other zones wait while zone 0 rolls"
    );
    settle(&api, 0);
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        take_statefulset_writes(&api),
        vec![format!("apply {}", set(1))]
    );
    settle(&api, 1);
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        take_statefulset_writes(&api),
        vec![format!("apply {}", set(2))]
    );
}

fn control_plane(api: &Shared) -> KubernetesClusters {
    KubernetesClusters::new(
        client(api.clone()),
        ClusterTemplate {
            namespace: "tenants".into(),
            zones: vec!["z-a".into(), "z-b".into(), "z-c".into()],
            version: "3.9.1".into(),
            storage: Storage::default(),
        },
    )
    .unwrap()
}

#[tokio::test]
async fn the_control_plane_creates_a_cluster_the_operator_completes_and_deletes_it() {
    let api: Shared = Arc::default();
    let clusters = control_plane(&api);
    let id = "0f8e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b";
    let name = provisioner::resource_name(id);
    let bootstrap = clusters
        .create(id, true, "default-user", "default-password")
        .await
        .unwrap();
    assert_eq!(
        bootstrap,
        format!("{name}-kafka-bootstrap.tenants.svc:9092")
    );
    let resource_path =
        format!("/apis/capstan.dev/v1alpha1/namespaces/tenants/kafkaclusters/{name}");
    let secret_path = format!("/api/v1/namespaces/tenants/secrets/{name}-kafka-credentials");
    assert_eq!(
        take_writes(&api),
        vec![
            format!("apply {secret_path}"),
            format!("apply {resource_path}")
        ],
        "the credential first, so the brokers are formatted with it"
    );
    let resource = api.lock().unwrap().objects[&resource_path].clone();
    assert_eq!(resource["spec"]["zoneMode"], "multi");
    assert_eq!(resource["spec"]["zones"], json!(["z-a", "z-b", "z-c"]));
    assert_eq!(
        resource["metadata"]["labels"][provisioner::CLUSTER_ID_LABEL],
        id
    );
    assert_eq!(
        clusters
            .credentials(id)
            .await
            .unwrap()
            .map(|c| c.client_username),
        None,
        "not usable until the operator has added the admin user"
    );
    assert_eq!(clusters.status(id).await.unwrap(), Some(Default::default()));
    assert_eq!(
        clusters.statuses().await.unwrap(),
        vec![(id.to_owned(), Default::default())]
    );

    // The operator reconciles the resource (its finalizer first, then its children): it keeps
    // the control plane's client credential and adds the rest.
    let ctx = Arc::new(Context::new(
        client(api.clone()),
        Arc::new(Metrics::new().unwrap()),
    ));
    for _ in 0..2 {
        let stored: KafkaCluster =
            serde_json::from_value(api.lock().unwrap().objects[&resource_path].clone()).unwrap();
        reconcile(Arc::new(stored), ctx.clone()).await.unwrap();
    }
    let credentials = clusters.credentials(id).await.unwrap().unwrap();
    assert_eq!(credentials.client_username, "default-user");
    assert_eq!(credentials.client_password, "default-password");
    assert_eq!(credentials.admin_username, "capstan-admin");
    assert!(credentials.admin_password.len() >= 32);
    let status = clusters.status(id).await.unwrap().unwrap();
    assert_eq!(
        status.bootstrap_servers.as_deref(),
        Some(bootstrap.as_str())
    );

    take_writes(&api);
    clusters.delete(id).await.unwrap();
    assert_eq!(take_writes(&api), vec![format!("delete {resource_path}")]);
    assert_eq!(clusters.status(id).await.unwrap(), None);
    clusters.delete(id).await.unwrap();
}

#[tokio::test]
async fn multi_zone_clusters_need_three_configured_zones() {
    let api: Shared = Arc::default();
    let error = KubernetesClusters::new(
        client(api),
        ClusterTemplate {
            namespace: "tenants".into(),
            zones: vec!["only-one".into()],
            version: "3.9.1".into(),
            storage: Storage::default(),
        },
    )
    .unwrap_err();
    assert!(error.to_string().contains("exactly 3 zones"), "{error}");
}

#[tokio::test]
async fn an_invalid_spec_is_a_failed_phase_with_its_reason_until_the_spec_is_fixed() {
    let (api, ctx) = setup(resource(
        json!({ "zoneMode": "multi", "zones": ["a", "b"] }),
        json!({ "finalizers": ["capstan.dev/cleanup"] }),
    ));
    let action = reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(action, kube::runtime::controller::Action::await_change());
    assert_eq!(
        take_writes(&api),
        vec!["event Failed".to_owned(), format!("status {BASE}")],
        "nothing is applied for a spec that cannot be rendered"
    );
    let status = api.lock().unwrap().objects[BASE]["status"].clone();
    assert_eq!(
        (
            status["phase"].clone(),
            status["observedGeneration"].clone()
        ),
        (json!("Failed"), json!(1))
    );
    let condition = &status["conditions"][0];
    assert_eq!(
        (
            condition["type"].clone(),
            condition["status"].clone(),
            condition["reason"].clone()
        ),
        (json!("Ready"), json!("False"), json!("InvalidSpec"))
    );
    assert_eq!(
        condition["message"],
        "a multi-zone cluster needs exactly 3 zones, not 2"
    );
    assert_eq!(ctx.metrics.errors.with_label_values(&["invalid"]).get(), 1);
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(take_writes(&api), Vec::<String>::new(), "told once");

    // Fixed: rendered and applied; the condition says why it is not ready yet.
    edit_spec(&api, |spec| spec["zones"] = json!(["a", "b", "c"]));
    reconcile_stored(&api, &ctx).await.unwrap();
    let status = api.lock().unwrap().objects[BASE]["status"].clone();
    assert_eq!(
        (
            status["phase"].clone(),
            status["observedGeneration"].clone()
        ),
        (json!("Pending"), json!(2))
    );
    assert_eq!(status["conditions"][0]["reason"], "BrokersStarting");
}

#[tokio::test]
async fn a_failing_cluster_is_retried_ever_later_until_it_succeeds() {
    let (api, ctx) = setup(resource(
        json!({}),
        json!({ "finalizers": ["capstan.dev/cleanup"] }),
    ));
    api.lock().unwrap().fail_gets_of = Some("/secrets/".into());
    let stored: KafkaCluster =
        serde_json::from_value(api.lock().unwrap().objects[BASE].clone()).unwrap();
    let mut waits = Vec::new();
    for _ in 0..7 {
        let error = reconcile(Arc::new(stored.clone()), ctx.clone())
            .await
            .unwrap_err();
        waits.push(error_policy(Arc::new(stored.clone()), &error, ctx.clone()));
    }
    let seconds =
        |s: u64| kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(s));
    assert_eq!(
        waits,
        vec![
            seconds(15),
            seconds(30),
            seconds(60),
            seconds(120),
            seconds(240),
            seconds(300),
            seconds(300)
        ]
    );
    // Another cluster's failures are its own.
    let mut other = stored.clone();
    other.metadata.name = Some("payments".into());
    let error = capstan_operator::Error::Kube("etcd is down".into());
    assert_eq!(
        error_policy(Arc::new(other), &error, ctx.clone()),
        seconds(15)
    );
    // A success starts it over.
    api.lock().unwrap().fail_gets_of = None;
    reconcile_stored(&api, &ctx).await.unwrap();
    api.lock().unwrap().fail_gets_of = Some("/secrets/".into());
    let error = reconcile_stored(&api, &ctx).await.unwrap_err();
    assert_eq!(
        error_policy(Arc::new(stored), &error, ctx.clone()),
        seconds(15)
    );
}

#[tokio::test]
async fn the_observed_generation_waits_for_a_rolling_change_and_the_ready_time_stays() {
    let (api, ctx) = setup(resource(
        json!({}),
        json!({ "finalizers": ["capstan.dev/cleanup"] }),
    ));
    let sts = "/apis/apps/v1/namespaces/tenants/statefulsets/orders-kafka";
    let settle = |api: &Shared| {
        api.lock().unwrap().statefulset_reports(
            sts,
            json!({ "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1 }),
        );
    };
    reconcile_stored(&api, &ctx).await.unwrap();
    settle(&api);
    reconcile_stored(&api, &ctx).await.unwrap();
    let ready = api.lock().unwrap().objects[BASE]["status"].clone();
    assert_eq!(
        (ready["phase"].clone(), ready["observedGeneration"].clone()),
        (json!("Ready"), json!(1))
    );

    // A new image: applied, and rolling (the broker still runs the old revision).
    edit_spec(&api, |spec| spec["image"] = json!("apache/kafka:4.0.0"));
    api.lock().unwrap().statefulset_reports(
        sts,
        json!({ "replicas": 1, "readyReplicas": 1, "updatedReplicas": 0 }),
    );
    reconcile_stored(&api, &ctx).await.unwrap();
    let rolling = api.lock().unwrap().objects[BASE]["status"].clone();
    assert_eq!(
        (
            rolling["phase"].clone(),
            rolling["observedGeneration"].clone(),
            rolling["readyBrokers"].clone()
        ),
        (json!("Pending"), json!(1), json!(0)),
        "a broker of the old revision is not counted, and generation 2 is not applied yet"
    );

    settle(&api);
    reconcile_stored(&api, &ctx).await.unwrap();
    let done = api.lock().unwrap().objects[BASE]["status"].clone();
    assert_eq!(
        (done["phase"].clone(), done["observedGeneration"].clone()),
        (json!("Ready"), json!(2))
    );

    // A later status write (another ready count) keeps the time the condition last changed.
    {
        let mut api = api.lock().unwrap();
        let status = &mut api.objects.get_mut(BASE).unwrap()["status"];
        status["readyBrokers"] = json!(7);
        status["conditions"][0]["lastTransitionTime"] = json!("2026-01-01T00:00:00Z");
    }
    reconcile_stored(&api, &ctx).await.unwrap();
    let again = api.lock().unwrap().objects[BASE]["status"].clone();
    assert_eq!(again["readyBrokers"], json!(1));
    assert_eq!(
        again["conditions"][0]["lastTransitionTime"],
        json!("2026-01-01T00:00:00Z")
    );
    // A change of the condition's status gets a new time.
    api.lock().unwrap().objects.get_mut(sts).unwrap()["status"]["readyReplicas"] = json!(0);
    reconcile_stored(&api, &ctx).await.unwrap();
    let down = api.lock().unwrap().objects[BASE]["status"].clone();
    assert_eq!(down["conditions"][0]["status"], json!("False"));
    assert_ne!(
        down["conditions"][0]["lastTransitionTime"],
        json!("2026-01-01T00:00:00Z")
    );
}

#[tokio::test]
async fn a_new_broker_count_is_refused_while_every_broker_is_a_voter() {
    let (api, ctx) = setup(resource(
        json!({}),
        json!({ "finalizers": ["capstan.dev/cleanup"] }),
    ));
    let sts = "/apis/apps/v1/namespaces/tenants/statefulsets/orders-kafka";
    reconcile_stored(&api, &ctx).await.unwrap();
    api.lock().unwrap().statefulset_reports(
        sts,
        json!({ "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1 }),
    );
    reconcile_stored(&api, &ctx).await.unwrap();
    take_writes(&api);

    edit_spec(&api, |spec| spec["brokersPerZone"] = json!(3));
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        take_writes(&api),
        vec!["event ScalingRefused".to_owned(), format!("status {BASE}")],
        "nothing is applied: the StatefulSet keeps its replicas and the voters their quorum"
    );
    assert_eq!(
        api.lock().unwrap().objects[sts]["spec"]["replicas"],
        json!(1)
    );
    let status = api.lock().unwrap().objects[BASE]["status"].clone();
    assert_eq!(
        (
            status["phase"].clone(),
            status["observedGeneration"].clone(),
            status["readyBrokers"].clone()
        ),
        (json!("Ready"), json!(1), json!(1)),
        "still ready on its one broker; generation 2 is not applied"
    );
    let refused = &status["conditions"][1];
    assert_eq!(
        (
            refused["type"].clone(),
            refused["status"].clone(),
            refused["reason"].clone()
        ),
        (
            json!("ScalingRefused"),
            json!("True"),
            json!("VotersAreFixed")
        )
    );
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("set it back to 1"),
        "{refused}"
    );
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(take_writes(&api), Vec::<String>::new(), "told once");

    // Other changes still apply with the running count.
    edit_spec(&api, |spec| spec["image"] = json!("apache/kafka:4.0.0"));
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(take_statefulset_writes(&api), vec![format!("apply {sts}")]);
    let applied = api.lock().unwrap().objects[sts].clone();
    assert_eq!(
        (
            applied["spec"]["replicas"].clone(),
            applied["spec"]["template"]["spec"]["containers"][0]["image"].clone()
        ),
        (json!(1), json!("apache/kafka:4.0.0"))
    );

    // Set back: the condition goes, and the generation is applied once the roll settles.
    {
        let mut api = api.lock().unwrap();
        let cluster = api.objects.get_mut(BASE).unwrap();
        cluster["spec"]["brokersPerZone"] = json!(1);
        cluster["metadata"]["generation"] = json!(4);
        api.statefulset_reports(
            sts,
            json!({ "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1 }),
        );
    }
    reconcile_stored(&api, &ctx).await.unwrap();
    let status = api.lock().unwrap().objects[BASE]["status"].clone();
    assert_eq!(
        status["conditions"].as_array().unwrap().len(),
        1,
        "{status}"
    );
    assert_eq!(status["observedGeneration"], json!(4));
}

const CLAIM: &str = "/api/v1/namespaces/tenants/persistentvolumeclaims/data-orders-kafka-0";

fn claim(size: &str) -> Value {
    json!({ "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": { "name": "data-orders-kafka-0", "namespace": "tenants", "labels": { "capstan.dev/cluster": "orders" } },
        "spec": { "storageClassName": "gp3", "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": size } } } })
}

fn storage_class(expandable: bool) -> Value {
    json!({ "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": { "name": "gp3" },
        "provisioner": "ebs.csi.aws.com", "allowVolumeExpansion": expandable })
}

fn ask_for_size(api: &Shared, size: &str) {
    edit_spec(api, |spec| spec["storage"] = json!({ "size": size }));
}

#[tokio::test]
async fn a_bigger_volume_grows_in_place_where_its_class_allows_and_is_refused_otherwise() {
    let (api, ctx) = setup(resource(
        json!({}),
        json!({ "finalizers": ["capstan.dev/cleanup"] }),
    ));
    let sts = "/apis/apps/v1/namespaces/tenants/statefulsets/orders-kafka";
    reconcile_stored(&api, &ctx).await.unwrap();
    {
        let mut api = api.lock().unwrap();
        api.statefulset_reports(
            sts,
            json!({ "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1 }),
        );
        api.objects.insert(CLAIM.to_owned(), claim("10Gi"));
        api.objects.insert(
            "/apis/storage.k8s.io/v1/storageclasses/gp3".to_owned(),
            storage_class(true),
        );
    }
    reconcile_stored(&api, &ctx).await.unwrap();
    take_writes(&api);

    // The same size written otherwise is no change at all.
    ask_for_size(&api, "10240Mi");
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        take_writes(&api),
        vec![format!("status {BASE}")],
        "only the observed generation moves"
    );
    assert_eq!(condition_of(&api, "VolumesResized"), Value::Null);

    // Bigger, on a class that expands: the claim asks for it; the template is left alone.
    ask_for_size(&api, "20Gi");
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        take_writes(&api),
        vec![
            format!("apply {CLAIM}"),
            "event VolumesResized".to_owned(),
            format!("status {BASE}")
        ]
    );
    assert_eq!(
        api.lock().unwrap().objects[CLAIM]["spec"]["resources"]["requests"]["storage"],
        json!("20Gi")
    );
    let template = &api.lock().unwrap().objects[sts]["spec"]["volumeClaimTemplates"][0].clone();
    assert_eq!(
        template["spec"]["resources"]["requests"]["storage"],
        json!("10Gi")
    );
    assert_eq!(
        condition_of(&api, "VolumesResized")["reason"],
        json!("ExpandedInPlace")
    );
    let status = api.lock().unwrap().objects[BASE]["status"].clone();
    assert_eq!(status["observedGeneration"], json!(3));

    // Once grown, nothing more is written.
    api.lock()
        .unwrap()
        .objects
        .insert(CLAIM.to_owned(), claim("20Gi"));
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(take_writes(&api), Vec::<String>::new());

    // Smaller: volumes cannot shrink.
    ask_for_size(&api, "5Gi");
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        take_writes(&api),
        vec![
            "event StorageResizeRefused".to_owned(),
            format!("status {BASE}")
        ]
    );
    let refused = condition_of(&api, "StorageResizeRefused");
    assert_eq!(refused["reason"], json!("ShrinkNotPossible"));
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("set it back to 10Gi"),
        "{refused}"
    );
    let status = api.lock().unwrap().objects[BASE]["status"].clone();
    assert_eq!(
        status["observedGeneration"],
        json!(3),
        "generation 4 is not applied"
    );

    // Bigger on a class that does not expand: refused, and the claim is left as it was.
    api.lock().unwrap().objects.insert(
        "/apis/storage.k8s.io/v1/storageclasses/gp3".to_owned(),
        storage_class(false),
    );
    ask_for_size(&api, "30Gi");
    reconcile_stored(&api, &ctx).await.unwrap();
    let writes = take_writes(&api);
    assert!(
        !writes.iter().any(|w| w.contains("persistentvolumeclaims")),
        "{writes:?}"
    );
    let refused = condition_of(&api, "StorageResizeRefused");
    assert_eq!(refused["reason"], json!("ExpansionNotAllowed"));
    assert!(
        refused["message"].as_str().unwrap().contains("gp3"),
        "{refused}"
    );
    assert_eq!(
        api.lock().unwrap().objects[CLAIM]["spec"]["resources"]["requests"]["storage"],
        json!("20Gi")
    );
}

#[tokio::test]
async fn switching_the_external_listener_off_deletes_its_services() {
    let (api, ctx) = setup(resource(
        json!({ "listeners": { "external": { "type": "NodePort" } } }),
        json!({ "finalizers": ["capstan.dev/cleanup"] }),
    ));
    reconcile_stored(&api, &ctx).await.unwrap();
    let services = "/api/v1/namespaces/tenants/services";
    assert!(
        api.lock()
            .unwrap()
            .objects
            .contains_key(&format!("{services}/orders-kafka-external-0"))
    );
    // Someone else's Service with the cluster's labels but not owned by it stays.
    api.lock().unwrap().objects.insert(
        format!("{services}/orders-kafka-debug"),
        json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": "orders-kafka-debug", "namespace": "tenants",
            "labels": { "capstan.dev/cluster": "orders", "app.kubernetes.io/managed-by": "capstan-operator" } } }),
    );
    take_writes(&api);

    edit_spec(&api, |spec| spec["listeners"] = json!({}));
    reconcile_stored(&api, &ctx).await.unwrap();
    let mut deleted: Vec<String> = take_writes(&api)
        .into_iter()
        .filter(|w| w.starts_with("delete "))
        .collect();
    deleted.sort();
    assert_eq!(
        deleted,
        vec![
            format!("delete {services}/orders-kafka-external"),
            format!("delete {services}/orders-kafka-external-0"),
        ]
    );
    let api = api.lock().unwrap();
    assert!(
        api.objects
            .contains_key(&format!("{services}/orders-kafka-bootstrap"))
    );
    assert!(
        api.objects
            .contains_key(&format!("{services}/orders-kafka-debug"))
    );
}

#[tokio::test]
async fn the_external_listener_waits_for_its_certificate_and_rolls_when_it_is_renewed() {
    let (api, ctx) = setup(resource(
        json!({ "listeners": { "external": { "type": "NodePort", "tls": { "secretName": "orders-tls" } } } }),
        json!({ "finalizers": ["capstan.dev/cleanup"] }),
    ));
    let sts = "/apis/apps/v1/namespaces/tenants/statefulsets/orders-kafka";
    let tls = "/api/v1/namespaces/tenants/secrets/orders-tls";
    let hash = |api: &Shared| {
        api.lock().unwrap().objects[sts]["spec"]["template"]["metadata"]["annotations"]
            [capstan_operator::CONFIG_HASH_ANNOTATION]
            .clone()
    };
    reconcile_stored(&api, &ctx).await.unwrap();
    let waiting = condition_of(&api, "ExternalTlsNotReady");
    assert_eq!(waiting["reason"], "SecretNotFound");
    assert!(
        waiting["message"].as_str().unwrap().contains("orders-tls"),
        "{waiting}"
    );
    let volumes = api.lock().unwrap().objects[sts]["spec"]["template"]["spec"]["volumes"].clone();
    assert_eq!(
        volumes[1]["secret"]["secretName"], "orders-tls",
        "the brokers mount it, and start once it exists"
    );
    let without = hash(&api);

    // cert-manager writes the Secret, first without its key.
    let secret = |crt: &str, key: Option<&str>| {
        let mut data = json!({ "tls.crt": fake_api::base64_of(crt) });
        if let Some(key) = key {
            data["tls.key"] = json!(fake_api::base64_of(key));
        }
        json!({ "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": { "name": "orders-tls", "namespace": "tenants" }, "data": data })
    };
    api.lock()
        .unwrap()
        .objects
        .insert(tls.into(), secret("chain-1", None));
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        condition_of(&api, "ExternalTlsNotReady")["reason"],
        "SecretIncomplete"
    );
    api.lock()
        .unwrap()
        .objects
        .insert(tls.into(), secret("chain-1", Some("key-1")));
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(condition_of(&api, "ExternalTlsNotReady"), Value::Null);
    let first = hash(&api);
    assert_ne!(first, without);
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(hash(&api), first, "the same certificate, no restart");

    // Renewed: the brokers load certificates at start, so they roll.
    api.lock()
        .unwrap()
        .objects
        .insert(tls.into(), secret("chain-2", Some("key-2")));
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_ne!(hash(&api), first);
    let annotations = serde_json::to_string(&api.lock().unwrap().objects[sts]).unwrap();
    assert!(
        !annotations.contains(&fake_api::base64_of("key-2")) && !annotations.contains("key-2"),
        "no key material on the StatefulSet"
    );
}

const SECRET: &str = "/api/v1/namespaces/tenants/secrets/orders-kafka-credentials";

#[tokio::test]
async fn the_cluster_id_is_kept_in_status_and_a_deleted_secret_is_never_made_anew() {
    let (api, ctx) = setup(resource(
        json!({}),
        json!({ "finalizers": ["capstan.dev/cleanup"] }),
    ));
    reconcile_stored(&api, &ctx).await.unwrap();
    let secret = api.lock().unwrap().objects[SECRET].clone();
    let id = String::from_utf8(
        base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            secret["data"]["kraft-cluster-id"].as_str().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        api.lock().unwrap().objects[BASE]["status"]["clusterId"],
        json!(id)
    );

    // Someone deletes the Secret: new passwords and a new cluster id would lock the brokers
    // out of each other, so nothing is written but the status.
    api.lock().unwrap().objects.remove(SECRET);
    take_writes(&api);
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        take_writes(&api),
        vec!["event CredentialsLost".to_owned(), format!("status {BASE}")]
    );
    let status = api.lock().unwrap().objects[BASE]["status"].clone();
    assert_eq!(status["phase"], "Failed");
    let lost = condition_of(&api, "CredentialsLost");
    assert_eq!(lost["reason"], "SecretDeleted");
    assert!(lost["message"].as_str().unwrap().contains(&id), "{lost}");
    assert_eq!(status["clusterId"], json!(id), "still known");

    // Restored from a backup: back to work, with the same id.
    api.lock().unwrap().objects.insert(SECRET.into(), secret);
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(condition_of(&api, "CredentialsLost"), Value::Null);
    let status = api.lock().unwrap().objects[BASE]["status"].clone();
    assert_ne!(status["phase"], "Failed");
    assert_eq!(status["clusterId"], json!(id));
}

#[tokio::test]
async fn a_cluster_made_again_over_the_volumes_of_an_earlier_one_waits_until_they_are_gone() {
    let (api, ctx) = setup(resource(
        json!({}),
        json!({ "finalizers": ["capstan.dev/cleanup"] }),
    ));
    // Left by a KafkaCluster of the same name deleted with deleteClaim false.
    let claim = "/api/v1/namespaces/tenants/persistentvolumeclaims/data-orders-kafka-0";
    api.lock().unwrap().objects.insert(
        claim.into(),
        json!({ "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": { "name": "data-orders-kafka-0", "namespace": "tenants", "labels": { "capstan.dev/cluster": "orders" } } }),
    );
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(
        take_writes(&api),
        vec!["event CredentialsLost".to_owned(), format!("status {BASE}")],
        "nothing applied: the brokers would crash on the old volumes' cluster id"
    );
    let refused = condition_of(&api, "CredentialsLost");
    assert_eq!(refused["reason"], "VolumesOfAnEarlierCluster");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("data-orders-kafka-0"),
        "{refused}"
    );
    api.lock().unwrap().objects.remove(claim);
    reconcile_stored(&api, &ctx).await.unwrap();
    assert!(take_writes(&api).contains(&format!("apply {SECRET}")));
    assert_eq!(condition_of(&api, "CredentialsLost"), Value::Null);
}

#[tokio::test]
async fn where_the_voters_live_cannot_change_even_where_the_api_server_does_not_check() {
    let (api, ctx) = setup(resource(
        json!({}),
        json!({ "finalizers": ["capstan.dev/cleanup"] }),
    ));
    reconcile_stored(&api, &ctx).await.unwrap();
    take_writes(&api);
    for (change, reason, needle) in [
        (
            json!({ "zoneMode": "multi", "zones": ["a", "b", "c"] }),
            "ZonesChanged",
            "zoneMode and zones cannot change",
        ),
        (
            json!({ "controllers": {} }),
            "ControllersChanged",
            "spec.controllers cannot be added",
        ),
    ] {
        edit_spec(&api, |spec| *spec = change.clone());
        reconcile_stored(&api, &ctx).await.unwrap();
        let writes = take_writes(&api);
        assert!(
            writes.iter().all(|w| !w.starts_with("apply")),
            "nothing applied: {writes:?}"
        );
        let refused = condition_of(&api, "QuorumLayoutFixed");
        assert_eq!(refused["reason"], reason);
        assert!(
            refused["message"].as_str().unwrap().contains(needle),
            "{refused}"
        );
    }
    edit_spec(&api, |spec| *spec = json!({}));
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(condition_of(&api, "QuorumLayoutFixed"), Value::Null);
}

#[tokio::test]
async fn tls_on_the_internal_listener_is_not_switched_on_a_running_cluster() {
    let (api, ctx) = setup(resource(
        json!({}),
        json!({ "finalizers": ["capstan.dev/cleanup"] }),
    ));
    reconcile_stored(&api, &ctx).await.unwrap();
    take_writes(&api);
    edit_spec(&api, |spec| {
        spec["listeners"] = json!({ "internal": { "tls": { "secretName": "orders-tls" } } })
    });
    reconcile_stored(&api, &ctx).await.unwrap();
    assert!(
        take_writes(&api).iter().all(|w| !w.starts_with("apply")),
        "nothing applied"
    );
    assert_eq!(
        condition_of(&api, "ListenerChangeRefused")["reason"],
        "InternalTlsChanged"
    );
}

#[tokio::test]
async fn a_running_cluster_waits_with_its_brokers_for_a_missing_tls_secret() {
    let (api, ctx) = setup(resource(
        json!({}),
        json!({ "finalizers": ["capstan.dev/cleanup"] }),
    ));
    let sts = "/apis/apps/v1/namespaces/tenants/statefulsets/orders-kafka";
    reconcile_stored(&api, &ctx).await.unwrap();
    api.lock().unwrap().statefulset_reports(
        sts,
        json!({ "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1 }),
    );
    reconcile_stored(&api, &ctx).await.unwrap();
    take_writes(&api);
    // An external listener with TLS whose Secret cert-manager has not written yet: restarting
    // the broker onto it would leave it waiting for the volume.
    edit_spec(
        &api,
        |spec| {
            spec["listeners"] =
                json!({ "external": { "type": "NodePort", "tls": { "secretName": "orders-tls" } } })
        },
    );
    reconcile_stored(&api, &ctx).await.unwrap();
    assert_eq!(take_statefulset_writes(&api), Vec::<String>::new());
    assert_eq!(
        condition_of(&api, "ExternalTlsNotReady")["reason"],
        "SecretNotFound"
    );
    assert_eq!(
        api.lock().unwrap().objects[BASE]["status"]["observedGeneration"],
        1,
        "generation 2 is not applied"
    );
}
