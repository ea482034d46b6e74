//! The control plane with `--provisioner kubernetes` against a mocked Kubernetes API server (no
//! API server can run here) and a mock Kafka broker (no Apache Kafka either): creating a cluster
//! through the API writes its credentials Secret and its `KafkaCluster`, the cluster's state
//! follows the status the operator reports, the credentials become SCRAM users with their
//! scopes as ACLs on the brokers, a cluster at its cap gets client quotas, and deleting the
//! cluster deletes the resource.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

#[path = "../kafka/tests/mock_broker/mod.rs"]
mod mock_broker;
mod support;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use capstan::kubernetes::{DedicatedAccess, KubernetesProvisioner};
use capstan_api::state::PlatformConfig;
use capstan_kafka::gateway::Scope;
use capstan_operator::{
    Storage,
    provisioner::{self, ClusterTemplate, KubernetesClusters},
};
use http::{Method, Request, Response, StatusCode};
use kafka_protocol::{
    messages::{
        AlterClientQuotasRequest, AlterClientQuotasResponse, AlterUserScramCredentialsRequest,
        AlterUserScramCredentialsResponse, ApiKey, BrokerId, CreateAclsRequest, CreateAclsResponse,
        DeleteAclsRequest, DeleteAclsResponse, MetadataRequest, MetadataResponse, TopicName,
        metadata_response,
    },
    protocol::{Decodable, StrBytes},
};
use kube::{Client, client::Body};
use reqwest::Method as HttpMethod;
use serde_json::{Value, json};
use support::start_on;

#[derive(Default)]
struct FakeApi {
    objects: HashMap<String, Value>,
    writes: Vec<String>,
}

type Shared = Arc<Mutex<FakeApi>>;

fn respond(status: StatusCode, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

fn handle(api: &Shared, method: &Method, path: &str, body: &[u8]) -> Response<Body> {
    let mut api = api.lock().unwrap();
    let not_found = json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found" });
    match *method {
        Method::GET if path.ends_with("/kafkaclusters") || path.ends_with("/secrets") => {
            let items: Vec<Value> = api
                .objects
                .iter()
                .filter(|(p, _)| p.starts_with(&format!("{path}/")))
                .map(|(_, o)| o.clone())
                .collect();
            let (api_version, kind) = if path.ends_with("/secrets") {
                ("v1", "SecretList")
            } else {
                ("capstan.dev/v1alpha1", "KafkaClusterList")
            };
            respond(
                StatusCode::OK,
                json!({ "apiVersion": api_version, "kind": kind, "metadata": {}, "items": items }),
            )
        }
        Method::GET => match api.objects.get(path) {
            Some(object) => respond(StatusCode::OK, object.clone()),
            None => respond(StatusCode::NOT_FOUND, not_found),
        },
        Method::PATCH => {
            api.writes.push(format!("apply {path}"));
            let object: Value = serde_json::from_slice(body).unwrap();
            api.objects.insert(path.to_owned(), object.clone());
            respond(StatusCode::OK, object)
        }
        Method::DELETE => {
            api.writes.push(format!("delete {path}"));
            match api.objects.remove(path) {
                Some(object) => respond(StatusCode::OK, object),
                None => respond(StatusCode::NOT_FOUND, not_found),
            }
        }
        _ => panic!("unexpected {method} {path}"),
    }
}

fn client(api: Shared) -> Client {
    let (service, mut handle_) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((request, send)) = handle_.next_request().await {
            let method = request.method().clone();
            let path = request.uri().path().to_owned();
            let body = request.into_body().collect_bytes().await.unwrap();
            send.send_response(handle(&api, &method, &path, &body));
        }
    });
    Client::new(service, "capstan-clusters")
}

/// Where the control plane makes its resources: three zones, Kafka 3.9.1.
fn template() -> ClusterTemplate {
    ClusterTemplate {
        namespace: "capstan-clusters".into(),
        zones: vec!["a".into(), "b".into(), "c".into()],
        version: "3.9.1".into(),
        storage: Storage::default(),
    }
}

/// The control plane with the Kubernetes provisioner on the mocked API server `api` (three
/// zones, Kafka 3.9.1), shared clusters on `pools`, dedicated clusters reached as `access` says.
async fn start_on_kubernetes(
    api: Shared,
    pools: capstan::kubernetes::Pools,
    access: DedicatedAccess,
) -> support::Running {
    let clusters = KubernetesClusters::new(client(api), template()).unwrap();
    start_on(
        false,
        PlatformConfig::default(),
        Default::default(),
        None,
        None,
        Some(Arc::new(KubernetesProvisioner::new(
            clusters, pools, access,
        ))),
    )
    .await
}

async fn cluster_state(run: &support::Running, id: &str) -> String {
    let cluster = run
        .api(HttpMethod::GET, &format!("/v2/kafka/cluster/{id}"), None)
        .await;
    cluster["state"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn clusters_become_kafka_cluster_resources_whose_status_drives_their_state() {
    let api: Shared = Arc::default();
    let run = start_on_kubernetes(
        api.clone(),
        capstan::kubernetes::Pools::default(),
        DedicatedAccess::Direct,
    )
    .await;

    let cluster = run
        .api(
            HttpMethod::POST,
            "/v2/kafka/cluster",
            Some(json!({ "name": "orders", "region": "eu-west-1", "multizone": true, "placement": "dedicated" })),
        )
        .await;
    let id = cluster["cluster_id"].as_str().unwrap();
    let name = provisioner::resource_name(id);
    assert_eq!(cluster["state"], "provisioning");
    assert_eq!(
        cluster["tcp_endpoint"],
        format!("{name}-kafka-bootstrap.capstan-clusters.svc:9092")
    );
    let namespace = "/namespaces/capstan-clusters";
    let secret_path = format!("/api/v1{namespace}/secrets/{name}-kafka-credentials");
    let resource_path = format!("/apis/capstan.dev/v1alpha1{namespace}/kafkaclusters/{name}");
    {
        let api = api.lock().unwrap();
        assert_eq!(
            api.writes,
            vec![
                format!("apply {secret_path}"),
                format!("apply {resource_path}")
            ]
        );
        let secret = &api.objects[&secret_path];
        let username = cluster["username"].as_str().unwrap();
        assert_eq!(
            secret["data"]["client-username"],
            base64_of(username),
            "the brokers are formatted with the credential the control plane shows"
        );
        assert_eq!(api.objects[&resource_path]["spec"]["zoneMode"], "multi");
    }

    // The operator reports the brokers ready: the cluster becomes active.
    api.lock().unwrap().objects.get_mut(&resource_path).unwrap()["status"] =
        json!({ "phase": "Ready", "readyBrokers": 3 });
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster_state(&run, id).await != "active" {
        assert!(
            Instant::now() < deadline,
            "the state did not follow the status"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The operator completes the Secret and reports where the brokers are (here a mock broker
    // speaking the Kafka protocol): the control plane then writes every credential to the
    // brokers, the default one with full access (no cluster ALTER) as ACLs.
    let seen = Seen::default();
    let broker = admin_broker(seen.clone()).await;
    {
        let mut api = api.lock().unwrap();
        let secret = api.objects.get_mut(&secret_path).unwrap();
        secret["data"]["admin-username"] = json!(base64_of(mock_broker::USER));
        secret["data"]["admin-password"] = json!(base64_of(mock_broker::PASSWORD));
        api.objects.get_mut(&resource_path).unwrap()["status"]["bootstrapServers"] = json!(broker);
    }
    let default_user = cluster["username"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the credentials were not written"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(take_scram(&seen).upsertions[0].name.as_str(), default_user);
    assert_eq!(
        take_acls(&seen, default_user),
        capstan_kafka::acl_rules(&Scope::full())
    );

    // Password resets and scoped credentials become SCRAM users with the scope's ACLs.
    let reset = run
        .api(
            HttpMethod::POST,
            &format!("/v2/kafka/reset-password/{id}"),
            None,
        )
        .await;
    let upsert = take_scram(&seen).upsertions.remove(0);
    assert_eq!(upsert.name.as_str(), reset["username"].as_str().unwrap());
    assert_eq!(
        upsert.salted_password.as_ref(),
        capstan_kafka::salted_password(
            reset["password"].as_str().unwrap(),
            &upsert.salt,
            upsert.iterations as u32
        ),
        "the brokers get the new password the API shows"
    );
    assert_eq!(
        take_acls(&seen, default_user),
        capstan_kafka::acl_rules(&Scope::full())
    );
    let scoped = run
        .api(
            HttpMethod::POST,
            "/v2/kafka/credential",
            Some(json!({ "credential_name": "reader", "cluster_id": id, "topic": "pay*", "permissions": "CONSUME" })),
        )
        .await;
    let reader = scoped["username"].as_str().unwrap();
    assert_eq!(take_scram(&seen).upsertions[0].name.as_str(), reader);
    let consumer = Scope::scoped(false, true, "pay*");
    assert_eq!(
        take_acls(&seen, reader),
        capstan_kafka::acl_rules(&consumer)
    );

    // At the cap, every user of the dedicated cluster gets a client quota (the brokers throttle
    // them; no gateway is in the way); raising the budget lifts it at the next evaluation.
    let mut users = vec![default_user.to_owned(), reader.to_owned()];
    users.sort();
    run.set_budget(&cluster, 1).await;
    record_usage(&run, id, 1_000_000).await;
    run.enforcement
        .run(capstan_billing::metering::unix_now())
        .await
        .unwrap();
    assert_eq!(take_quotas(&seen), (users.clone(), Some(10.0 * 1024.0)));
    run.enforcement
        .run(capstan_billing::metering::unix_now())
        .await
        .unwrap();
    assert!(
        seen.lock().unwrap().is_empty(),
        "set once, not every evaluation"
    );
    run.set_budget(&cluster, 1_000).await;
    run.enforcement
        .run(capstan_billing::metering::unix_now())
        .await
        .unwrap();
    assert_eq!(take_quotas(&seen), (users, None));

    run.api(
        HttpMethod::DELETE,
        &format!(
            "/v2/kafka/credential/{}",
            scoped["credential_id"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert_eq!(take_scram(&seen).deletions[0].name.as_str(), reader);
    let Call::DeleteAcls(deleted) = seen.lock().unwrap().remove(0) else {
        panic!("the credential's ACLs were not deleted")
    };
    assert_eq!(
        deleted.filters[0]
            .principal_filter
            .as_ref()
            .map(|p| p.to_string()),
        Some(format!("User:{reader}"))
    );

    api.lock().unwrap().writes.clear();
    run.api(HttpMethod::DELETE, &format!("/v2/kafka/cluster/{id}"), None)
        .await;
    // No operator ran here to adopt the credentials Secret (ownerReferences), so the control
    // plane deletes it itself rather than leave it behind.
    assert_eq!(
        api.lock().unwrap().writes,
        vec![
            format!("delete {resource_path}"),
            format!("delete {secret_path}")
        ]
    );
}

#[tokio::test]
async fn dedicated_clusters_are_reached_through_the_kafka_gateway_by_default() {
    let api: Shared = Arc::default();
    let run = start_on_kubernetes(
        api.clone(),
        capstan::kubernetes::Pools::default(),
        DedicatedAccess::Gateway,
    )
    .await;
    let cluster = run
        .api(
            HttpMethod::POST,
            "/v2/kafka/cluster",
            Some(json!({ "name": "isolated", "region": "eu-west-1", "multizone": false, "placement": "dedicated" })),
        )
        .await;
    let id = cluster["cluster_id"].as_str().unwrap();
    assert_eq!(cluster["placement"], "dedicated");
    assert_eq!(
        cluster["tcp_endpoint"],
        run.kafka.as_str(),
        "clients of a dedicated cluster connect to the gateway too"
    );

    // The brokers: a mock that answers Metadata and records which requests reach it (its
    // SCRAM exchange accepts only the admin user the operator wrote into the Secret).
    let received: Arc<Mutex<Vec<ApiKey>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let brokers = listener.local_addr().unwrap();
    let log = received.clone();
    tokio::spawn(mock_broker::serve(
        listener,
        Arc::new(move |key, version, correlation, _body| {
            log.lock().unwrap().push(key);
            assert_eq!(key, ApiKey::Metadata, "only Metadata is asked here");
            let partition = metadata_response::MetadataResponsePartition::default()
                .with_partition_index(0)
                .with_leader_id(BrokerId(0))
                .with_replica_nodes(vec![BrokerId(0)])
                .with_isr_nodes(vec![BrokerId(0)]);
            let topic = |name: &'static str| {
                metadata_response::MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str(name))))
                    .with_partitions(vec![partition.clone()])
            };
            mock_broker::encode(
                correlation,
                version,
                MetadataResponse::default()
                    .with_brokers(vec![
                        metadata_response::MetadataResponseBroker::default()
                            .with_node_id(BrokerId(0))
                            .with_host(StrBytes::from_string(brokers.ip().to_string()))
                            .with_port(i32::from(brokers.port())),
                    ])
                    .with_controller_id(BrokerId(0))
                    .with_topics(vec![topic("orders"), topic("__consumer_offsets")]),
            )
        }),
    ));
    operator_completes(
        &api,
        &provisioner::resource_name(id),
        1,
        &brokers.to_string(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster_state(&run, id).await != "active" {
        assert!(
            Instant::now() < deadline,
            "the state did not follow the status"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A scoped credential is the gateway's to check: nothing is written to the brokers (the
    // mock would record it), and the cap asks for no client quota.
    run.api(
        HttpMethod::POST,
        "/v2/kafka/credential",
        Some(json!({ "credential_name": "reader", "cluster_id": id, "topic": "orders", "permissions": "CONSUME" })),
    )
    .await;
    run.set_budget(&cluster, 1).await;
    record_usage(&run, id, 1_000_000).await;
    run.enforcement
        .run(capstan_billing::metering::unix_now())
        .await
        .unwrap();
    assert!(
        received.lock().unwrap().is_empty(),
        "{:?}",
        received.lock().unwrap()
    );

    // A client through the gateway, signed in with the cluster's own credential, sees the
    // dedicated brokers' topics (not Kafka's internal ones) at the gateway's address.
    let mut client = capstan_kafka::Connection::open(
        &run.kafka,
        cluster["username"].as_str().unwrap(),
        cluster["password"].as_str().unwrap(),
    )
    .await
    .unwrap();
    let metadata = client
        .call(MetadataRequest::default().with_topics(None), 12)
        .await
        .unwrap();
    assert_eq!(received.lock().unwrap().as_slice(), [ApiKey::Metadata]);
    let topics: Vec<String> = metadata
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect();
    assert_eq!(topics, ["orders"]);
    let advertised: Vec<String> = metadata
        .brokers
        .iter()
        .map(|b| format!("{}:{}", b.host, b.port))
        .collect();
    assert_eq!(
        advertised,
        std::slice::from_ref(&run.kafka),
        "the brokers stay behind the gateway"
    );
}

/// An admin request the mock broker received.
#[derive(Debug)]
enum Call {
    Scram(AlterUserScramCredentialsRequest),
    CreateAcls(CreateAclsRequest),
    DeleteAcls(DeleteAclsRequest),
    Quotas(AlterClientQuotasRequest),
}

type Seen = Arc<Mutex<Vec<Call>>>;

/// A mock Kafka broker that records the admin requests the control plane sends a dedicated
/// cluster (SCRAM users, ACLs, client quotas) and accepts them.
async fn admin_broker(seen: Seen) -> String {
    mock_broker::start(Arc::new(move |api, version, id, mut body: bytes::Bytes| {
        let (call, response) = match api {
            ApiKey::AlterUserScramCredentials => (
                Call::Scram(AlterUserScramCredentialsRequest::decode(&mut body, version).unwrap()),
                mock_broker::encode(id, version, AlterUserScramCredentialsResponse::default()),
            ),
            ApiKey::CreateAcls => (
                Call::CreateAcls(CreateAclsRequest::decode(&mut body, version).unwrap()),
                mock_broker::encode(id, version, CreateAclsResponse::default()),
            ),
            ApiKey::DeleteAcls => (
                Call::DeleteAcls(DeleteAclsRequest::decode(&mut body, version).unwrap()),
                mock_broker::encode(id, version, DeleteAclsResponse::default()),
            ),
            ApiKey::AlterClientQuotas => (
                Call::Quotas(AlterClientQuotasRequest::decode(&mut body, version).unwrap()),
                mock_broker::encode(id, version, AlterClientQuotasResponse::default()),
            ),
            other => panic!("unexpected {other:?}"),
        };
        seen.lock().unwrap().push(call);
        response
    }))
    .await
}

fn take_scram(seen: &Seen) -> AlterUserScramCredentialsRequest {
    match seen.lock().unwrap().remove(0) {
        Call::Scram(request) => request,
        other => panic!("expected a SCRAM change, got {other:?}"),
    }
}

/// The ACLs of the next CreateAcls request, all for `username`.
fn take_acls(seen: &Seen, username: &str) -> Vec<capstan_kafka::AclRule> {
    let Call::CreateAcls(request) = seen.lock().unwrap().remove(0) else {
        panic!("expected ACLs")
    };
    request
        .creations
        .into_iter()
        .map(|c| {
            assert_eq!(c.principal.to_string(), format!("User:{username}"));
            capstan_kafka::AclRule {
                resource_type: c.resource_type,
                resource_name: c.resource_name.to_string(),
                pattern_type: c.resource_pattern_type,
                operation: c.operation,
                permission: c.permission_type,
            }
        })
        .collect()
}

/// The users of the next AlterClientQuotas request, sorted, and the produce rate set (none:
/// removed); both keys must agree.
fn take_quotas(seen: &Seen) -> (Vec<String>, Option<f64>) {
    let Call::Quotas(request) = seen.lock().unwrap().remove(0) else {
        panic!("expected client quotas")
    };
    let mut users = Vec::new();
    let mut rates = Vec::new();
    for entry in request.entries {
        users.push(entry.entity[0].entity_name.as_ref().unwrap().to_string());
        for op in entry.ops {
            rates.push((!op.remove).then_some(op.value));
        }
    }
    rates.dedup();
    assert_eq!(rates.len(), 1, "one rate for every user and key");
    users.sort();
    (users, rates[0])
}

/// Usage the metering would have recorded for `cluster_id` this hour (no broker here to move
/// the messages).
async fn record_usage(run: &support::Running, cluster_id: &str, produced: i64) {
    let now = capstan_billing::metering::unix_now();
    sqlx::query(
        "INSERT INTO usage_hourly (cluster_id, topic, hour, produced, consumed, storage_sum, storage_samples) \
         VALUES ($1, 'payments', $2, $3, 0, 0, 0)",
    )
    .bind(cluster_id)
    .bind(now - now % 3600)
    .bind(produced)
    .execute(run.platform_state.store.pool())
    .await
    .unwrap();
}

/// What the operator does for the KafkaCluster `name` once its brokers run (here the mock
/// broker at `brokers`): completes its Secret with the admin user and reports it Ready.
fn operator_completes(api: &Shared, name: &str, ready: i64, brokers: &str) {
    let namespace = "/namespaces/capstan-clusters";
    let mut api = api.lock().unwrap();
    let secret = api
        .objects
        .get_mut(&format!(
            "/api/v1{namespace}/secrets/{name}-kafka-credentials"
        ))
        .unwrap();
    secret["data"]["admin-username"] = json!(base64_of(mock_broker::USER));
    secret["data"]["admin-password"] = json!(base64_of(mock_broker::PASSWORD));
    api.objects
        .get_mut(&format!(
            "/apis/capstan.dev/v1alpha1{namespace}/kafkaclusters/{name}"
        ))
        .unwrap()["status"] =
        json!({ "phase": "Ready", "readyBrokers": ready, "bootstrapServers": brokers });
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test]
async fn shared_clusters_live_on_a_pool_made_once_that_they_follow() {
    let api: Shared = Arc::default();
    let run = start_on_kubernetes(
        api.clone(),
        capstan::kubernetes::Pools {
            single_zone: "shared-single-zone".into(),
            multi_zone: "shared-multi-zone".into(),
            brokers_per_zone: 2,
        },
        DedicatedAccess::Gateway,
    )
    .await;
    let create = |name: &str, multizone: bool| {
        run.api(
            HttpMethod::POST,
            "/v2/kafka/cluster",
            Some(json!({ "name": name, "region": "eu-west-1", "multizone": multizone })),
        )
    };
    let namespace = "/namespaces/capstan-clusters";
    let pool_path =
        format!("/apis/capstan.dev/v1alpha1{namespace}/kafkaclusters/pool-shared-single-zone");
    let pool_secret =
        format!("/api/v1{namespace}/secrets/pool-shared-single-zone-kafka-credentials");

    // The first shared cluster makes its zone mode's pool; it is a KafkaCluster like any other.
    let first = create("first", false).await;
    assert_eq!(first["placement"], "shared");
    assert_eq!(first["state"], "provisioning", "as ready as its pool");
    assert_eq!(
        first["tcp_endpoint"],
        run.kafka.as_str(),
        "clients connect to the gateway"
    );
    {
        let api = api.lock().unwrap();
        assert_eq!(
            api.writes,
            vec![format!("apply {pool_secret}"), format!("apply {pool_path}")]
        );
        let pool = &api.objects[&pool_path];
        assert_eq!(pool["spec"]["zoneMode"], "single");
        assert_eq!(pool["spec"]["brokersPerZone"], 2);
        assert_eq!(
            pool["metadata"]["labels"]["capstan.dev/cluster-id"],
            "pool-shared-single-zone"
        );
    }
    // Later clusters of that zone mode make nothing on Kubernetes; a multi-zone one makes the
    // other pool.
    api.lock().unwrap().writes.clear();
    let second = create("second", false).await;
    assert!(
        api.lock().unwrap().writes.is_empty(),
        "a shared cluster costs no resource"
    );
    create("multi", true).await;
    let multi_pool =
        format!("/apis/capstan.dev/v1alpha1{namespace}/kafkaclusters/pool-shared-multi-zone");
    assert!(
        api.lock()
            .unwrap()
            .writes
            .contains(&format!("apply {multi_pool}"))
    );

    // The pool is ready: its clusters become active; new clusters on it are active at once.
    api.lock().unwrap().objects.get_mut(&pool_path).unwrap()["status"] =
        json!({ "phase": "Ready", "readyBrokers": 2 });
    let deadline = Instant::now() + Duration::from_secs(20);
    for cluster in [&first, &second] {
        let id = cluster["cluster_id"].as_str().unwrap();
        while cluster_state(&run, id).await != "active" {
            assert!(
                Instant::now() < deadline,
                "the state did not follow the pool's"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let third = create("third", false).await;
    assert_eq!(third["state"], "active");
    let multi = run
        .api(HttpMethod::GET, "/v2/kafka/clusters", None)
        .await
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "multi")
        .cloned()
        .unwrap();
    assert_eq!(multi["state"], "provisioning", "its own pool is not ready");
}

#[tokio::test]
async fn a_creation_that_asks_to_wait_answers_once_the_cluster_is_ready() {
    let api: Shared = Arc::default();
    let run = start_on_kubernetes(
        api.clone(),
        capstan::kubernetes::Pools::default(),
        DedicatedAccess::Gateway,
    )
    .await;
    let dedicated = json!({ "name": "waited", "region": "eu-west-1", "multizone": false, "placement": "dedicated" });

    // Nobody reports the brokers ready: the wait ends at its bound, with the state as it is.
    let started = Instant::now();
    let pending = run
        .api(
            HttpMethod::POST,
            "/v2/kafka/cluster?wait=true&timeout=1",
            Some(dedicated.clone()),
        )
        .await;
    assert_eq!(pending["state"], "provisioning", "{pending}");
    assert!(started.elapsed() >= Duration::from_secs(1));

    // The operator reports every KafkaCluster ready as soon as it sees it.
    let operator = api.clone();
    let reporting = tokio::spawn(async move {
        loop {
            for (path, object) in operator.lock().unwrap().objects.iter_mut() {
                if path.contains("/kafkaclusters/") && object.get("status").is_none() {
                    object["status"] = json!({ "phase": "Ready", "readyBrokers": 1 });
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut second = dedicated.clone();
    second["name"] = json!("waited-2");
    let ready = run
        .api(
            HttpMethod::POST,
            "/v2/kafka/cluster?wait=true",
            Some(second),
        )
        .await;
    assert_eq!(ready["state"], "active", "{ready}");
    reporting.abort();

    // Without asking, the answer is at once, whatever the state.
    let mut third = dedicated;
    third["name"] = json!("not-waited");
    let at_once = run
        .api(HttpMethod::POST, "/v2/kafka/cluster", Some(third))
        .await;
    assert_eq!(at_once["state"], "provisioning");
    let refused = run
        .http
        .post(format!(
            "{}/v2/kafka/cluster?wait=true&timeout=601",
            run.api
        ))
        .basic_auth(&run.auth.0, Some(&run.auth.1))
        .json(&json!({ "name": "too-long", "region": "eu-west-1", "multizone": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
}

#[test]
fn every_example_renders_with_the_dry_run_command() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut rendered = 0;
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_capstan"))
            .args(["operator", "render", "-f"])
            .arg(&path)
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        for kind in ["ConfigMap", "Secret", "StatefulSet", "NetworkPolicy"] {
            assert!(
                printed.contains(&format!("kind: {kind}")),
                "{}: no {kind}",
                path.display()
            );
        }
        assert!(printed.contains("capstan.dev/config-hash"));
        rendered += 1;
    }
    assert!(rendered > 0, "the examples are rendered");
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["operator", "render", "-f", "/nonexistent.yaml"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cannot read /nonexistent.yaml"));
}

/// The sweep on Kubernetes: the KafkaCluster of a cluster the store knows as deleted is deleted
/// (the operator's finalizer tears down the rest); one of a cluster the store has never known
/// is reported and left alone.
#[tokio::test]
async fn kafka_clusters_of_deleted_clusters_are_swept_and_unknown_ones_only_reported() {
    use capstan_api::orphans::{Swept, sweep};
    let api: Shared = Arc::default();
    let run = start_on_kubernetes(
        api.clone(),
        capstan::kubernetes::Pools::default(),
        DedicatedAccess::Direct,
    )
    .await;
    let cluster = run
        .api(
            HttpMethod::POST,
            "/v2/kafka/cluster",
            Some(json!({ "name": "lost", "region": "eu-west-1", "placement": "dedicated" })),
        )
        .await;
    let id = cluster["cluster_id"].as_str().unwrap();
    let kafka_clusters = "/apis/capstan.dev/v1alpha1/namespaces/capstan-clusters/kafkaclusters";
    let resource_path = format!("{kafka_clusters}/{}", provisioner::resource_name(id));
    let secrets = "/api/v1/namespaces/capstan-clusters/secrets";
    let secret_path = format!(
        "{secrets}/{}-kafka-credentials",
        provisioner::resource_name(id)
    );
    // A KafkaCluster with the control plane's label that this store never made (another
    // control plane's on the same namespace, say), and a credentials Secret without its
    // KafkaCluster (a creation stopped between the two).
    let stranger = uuid::Uuid::new_v4().to_string();
    let stranger_path = format!("{kafka_clusters}/{}", provisioner::resource_name(&stranger));
    let lone = uuid::Uuid::new_v4().to_string();
    let lone_path = format!(
        "{secrets}/{}-kafka-credentials",
        provisioner::resource_name(&lone)
    );
    {
        let mut api = api.lock().unwrap();
        let mut copy = api.objects[&resource_path].clone();
        copy["metadata"]["name"] = json!(provisioner::resource_name(&stranger));
        copy["metadata"]["labels"][provisioner::CLUSTER_ID_LABEL] = json!(stranger);
        api.objects.insert(stranger_path.clone(), copy);
        let mut secret = api.objects[&secret_path].clone();
        secret["metadata"]["name"] = json!(format!(
            "{}-kafka-credentials",
            provisioner::resource_name(&lone)
        ));
        secret["metadata"]["labels"][provisioner::CLUSTER_ID_LABEL] = json!(lone);
        api.objects.insert(lone_path.clone(), secret);
    }

    assert_eq!(
        sweep(&run.platform_state).await.unwrap(),
        Swept {
            removed: 0,
            unknown: 2
        },
        "a live cluster's KafkaCluster and Secret are its own"
    );
    sqlx::query("UPDATE clusters SET state = 'deleted' WHERE id = $1")
        .bind(id)
        .execute(run.platform_state.store.pool())
        .await
        .unwrap();
    assert_eq!(
        sweep(&run.platform_state).await.unwrap(),
        Swept {
            removed: 1,
            unknown: 2
        }
    );
    {
        let api = api.lock().unwrap();
        assert!(
            api.writes.contains(&format!("delete {resource_path}")),
            "{:?}",
            api.writes
        );
        assert!(
            api.writes.contains(&format!("delete {secret_path}")),
            "a Secret the operator never adopted goes with its KafkaCluster: {:?}",
            api.writes
        );
        assert!(api.objects.contains_key(&stranger_path));
        assert!(api.objects.contains_key(&lone_path));
        assert!(
            !api.writes
                .iter()
                .any(|w| w.contains(&stranger) || w.contains(&provisioner::resource_name(&lone)))
        );
    }

    // Where the sweep may remove it (`--sweep-unknown-resources`), a lone Secret is deleted as
    // its cluster's brokers would be.
    KubernetesClusters::new(client(api.clone()), template())
        .unwrap()
        .delete(&lone)
        .await
        .unwrap();
    assert!(!api.lock().unwrap().objects.contains_key(&lone_path));
}

/// The sweep on a shared pool on Kubernetes: the topics and groups under the prefix of a
/// cluster the store knows as deleted are deleted on the pool's brokers (over the Kafka
/// protocol, as the pool's admin); those of a live cluster and of a prefix the store has never
/// known are not (the latter is counted); Kafka's internal topics are nobody's.
#[tokio::test]
async fn names_on_a_pool_of_deleted_clusters_are_swept_and_unknown_ones_only_reported() {
    use capstan_api::orphans::{Swept, sweep};
    use kafka_protocol::messages::{
        DeleteGroupsRequest, DeleteGroupsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
        FindCoordinatorResponse, ListGroupsResponse, list_groups_response::ListedGroup,
    };
    let api: Shared = Arc::default();
    let run = start_on_kubernetes(
        api.clone(),
        capstan::kubernetes::Pools::default(),
        DedicatedAccess::Gateway,
    )
    .await;
    let create = |name: &'static str| {
        run.api(
            HttpMethod::POST,
            "/v2/kafka/cluster",
            Some(json!({ "name": name, "region": "eu-west-1" })),
        )
    };
    let live = create("live").await;
    let gone = create("gone").await;
    let prefix_of = async |cluster: &Value| -> String {
        sqlx::query_scalar("SELECT prefix FROM clusters WHERE id = $1")
            .bind(cluster["cluster_id"].as_str().unwrap())
            .fetch_one(run.platform_state.store.pool())
            .await
            .unwrap()
    };
    let (live_prefix, gone_prefix) = (prefix_of(&live).await, prefix_of(&gone).await);
    let unknown_prefix = "0123456789ab.".to_owned();
    let on_pool = |name: &str| -> Vec<String> {
        [&live_prefix, &gone_prefix, &unknown_prefix]
            .iter()
            .map(|prefix| format!("{prefix}{name}"))
            .collect()
    };
    let (topics, groups) = (on_pool("orders"), on_pool("g"));

    // The pool's brokers: a mock that lists those names (and Kafka's own topic) and records
    // what it is asked to delete.
    let deleted: Arc<Mutex<Vec<String>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let brokers = listener.local_addr().unwrap();
    let (log, listed_topics, listed_groups) = (deleted.clone(), topics.clone(), groups.clone());
    tokio::spawn(mock_broker::serve(
        listener,
        Arc::new(move |key, version, correlation, mut body| match key {
            ApiKey::Metadata => {
                let partition = metadata_response::MetadataResponsePartition::default()
                    .with_leader_id(BrokerId(0))
                    .with_replica_nodes(vec![BrokerId(0)]);
                let topic = |name: &str, internal: bool| {
                    metadata_response::MetadataResponseTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(name.to_owned()))))
                        .with_is_internal(internal)
                        .with_partitions(vec![partition.clone()])
                };
                let mut all: Vec<_> = listed_topics.iter().map(|t| topic(t, false)).collect();
                all.push(topic("__consumer_offsets", true));
                mock_broker::encode(
                    correlation,
                    version,
                    MetadataResponse::default()
                        .with_brokers(vec![
                            metadata_response::MetadataResponseBroker::default()
                                .with_node_id(BrokerId(0))
                                .with_host(StrBytes::from_string(brokers.ip().to_string()))
                                .with_port(i32::from(brokers.port())),
                        ])
                        .with_topics(all),
                )
            }
            ApiKey::ListGroups => mock_broker::encode(
                correlation,
                version,
                ListGroupsResponse::default().with_groups(
                    listed_groups
                        .iter()
                        .map(|g| {
                            ListedGroup::default().with_group_id(kafka_protocol::messages::GroupId(
                                StrBytes::from_string(g.clone()),
                            ))
                        })
                        .collect(),
                ),
            ),
            ApiKey::FindCoordinator => mock_broker::encode(
                correlation,
                version,
                FindCoordinatorResponse::default()
                    .with_host(StrBytes::from_string(brokers.ip().to_string()))
                    .with_port(i32::from(brokers.port())),
            ),
            ApiKey::DeleteTopics => {
                let request = DeleteTopicsRequest::decode(&mut body, version).unwrap();
                log.lock().unwrap().extend(
                    request
                        .topic_names
                        .iter()
                        .map(|t| format!("topic {}", t.as_str())),
                );
                mock_broker::encode(correlation, version, DeleteTopicsResponse::default())
            }
            ApiKey::DeleteGroups => {
                let request = DeleteGroupsRequest::decode(&mut body, version).unwrap();
                log.lock().unwrap().extend(
                    request
                        .groups_names
                        .iter()
                        .map(|g| format!("group {}", g.as_str())),
                );
                mock_broker::encode(correlation, version, DeleteGroupsResponse::default())
            }
            other => panic!("the sweep does not ask for {other:?}"),
        }),
    ));
    operator_completes(&api, "pool-shared-single-zone", 3, &brokers.to_string());

    assert_eq!(
        sweep(&run.platform_state).await.unwrap(),
        Swept {
            removed: 0,
            unknown: 1
        },
        "the live clusters' names are theirs; the unknown prefix is counted"
    );
    assert!(deleted.lock().unwrap().is_empty());
    sqlx::query("UPDATE clusters SET state = 'deleted' WHERE id = $1")
        .bind(gone["cluster_id"].as_str().unwrap())
        .execute(run.platform_state.store.pool())
        .await
        .unwrap();
    assert_eq!(
        sweep(&run.platform_state).await.unwrap(),
        Swept {
            removed: 1,
            unknown: 1
        }
    );
    assert_eq!(
        *deleted.lock().unwrap(),
        [
            format!("topic {gone_prefix}orders"),
            format!("group {gone_prefix}g")
        ],
        "exactly the deleted cluster's names"
    );
}
