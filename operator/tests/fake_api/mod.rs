//! An in-memory Kubernetes API server for the reconciler's tests (kube's tower-test pattern),
//! answering like a real one where the operator depends on it, and recording every write so
//! that each test asserts exactly which writes a reconcile made; and a mock Kafka cluster for
//! the checks the operator makes over the Kafka protocol.

#![allow(dead_code, clippy::unwrap_used)] // each test file uses part of it; tests fail loudly

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use capstan_operator::{
    KafkaCluster,
    metrics::Metrics,
    provisioner,
    reconciler::{Context, FIELD_MANAGER, reconcile},
};
use http::{Method, Response, StatusCode};
use kube::{Client, client::Body};
use serde_json::{Value, json};

use crate::support::{mock_client, respond};

pub mod kafka;

/// Whether a LIST's `labelSelector` (in `query`) selects an object with `labels`: equality
/// (`k=v`), inequality (`k!=v`, which an object without `k` satisfies) and existence (`k`),
/// comma-separated, all of which must hold — what the operator's selectors use.
fn selects(query: &str, labels: &Value) -> bool {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
    let Some((_, selector)) = pairs.iter().find(|(key, _)| key == "labelSelector") else {
        return true;
    };
    selector.split(',').filter(|t| !t.is_empty()).all(|term| {
        if let Some((key, value)) = term.split_once("!=") {
            labels[key].as_str() != Some(value)
        } else if let Some((key, value)) = term.split_once('=') {
            labels[key].as_str() == Some(value)
        } else {
            !labels[term].is_null()
        }
    })
}

/// The stored KafkaCluster `orders` of `tenants`.
pub const BASE: &str = "/apis/capstan.dev/v1alpha1/namespaces/tenants/kafkaclusters/orders";

/// The API server's objects by path, and the writes made to it.
#[derive(Default)]
pub struct FakeApi {
    /// Objects by their path.
    pub objects: HashMap<String, Value>,
    /// Every write, in order (`apply <path>`, `status <path>`, `delete <path>`, `event <reason>`, ...).
    pub writes: Vec<String>,
    /// GETs of paths containing this fail with 500.
    pub fail_gets_of: Option<String>,
}

/// The API server, shared with the client that talks to it.
pub type Shared = Arc<Mutex<FakeApi>>;

impl FakeApi {
    /// What the StatefulSet controller reports for the StatefulSet at `path`: `status`, as of
    /// the StatefulSet's current generation.
    pub fn statefulset_reports(&mut self, path: &str, mut status: Value) {
        let object = self.objects.get_mut(path).unwrap();
        status["observedGeneration"] = object["metadata"]["generation"].clone();
        object["status"] = status;
    }
}

fn not_found() -> Response<Body> {
    respond(
        StatusCode::NOT_FOUND,
        json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found" }),
    )
}

fn handle(api: &Shared, method: &Method, path: &str, query: &str, body: &[u8]) -> Response<Body> {
    let mut api = api.lock().unwrap();
    if method == Method::GET {
        if api
            .fail_gets_of
            .as_deref()
            .is_some_and(|p| path.contains(p))
        {
            return respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 500, "message": "etcd is down" }),
            );
        }
        if let Some(object) = api.objects.get(path) {
            return respond(StatusCode::OK, object.clone());
        }
        // A LIST: every stored object right under this collection path.
        let prefix = format!("{path}/");
        let items: Vec<Value> = api
            .objects
            .iter()
            .filter(|(p, _)| p.starts_with(&prefix) && !p[prefix.len()..].contains('/'))
            .filter(|(_, o)| selects(query, &o["metadata"]["labels"]))
            .map(|(_, o)| o.clone())
            .collect();
        // The collections the reconciler lists, as (collection, apiVersion, list kind).
        const LISTS: [(&str, &str, &str); 5] = [
            ("/kafkaclusters", "capstan.dev/v1alpha1", "KafkaClusterList"),
            ("/statefulsets", "apps/v1", "StatefulSetList"),
            ("/services", "v1", "ServiceList"),
            ("/persistentvolumeclaims", "v1", "PersistentVolumeClaimList"),
            ("/pods", "v1", "PodList"),
        ];
        if let Some((_, version, kind)) = LISTS.iter().find(|(end, ..)| path.ends_with(end)) {
            return respond(
                StatusCode::OK,
                json!({ "apiVersion": version, "kind": kind, "metadata": {}, "items": items }),
            );
        }
        return not_found();
    }
    if path.contains("/events") {
        // Kubernetes Events (created, or merge-patched when they repeat).
        let event: Value = serde_json::from_slice(body).unwrap();
        let reason = event["reason"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| "repeat".into());
        api.writes.push(format!("event {reason}"));
        return respond(StatusCode::CREATED, event);
    }
    if method == Method::DELETE {
        api.writes.push(format!("delete {path}"));
        return match api.objects.remove(path) {
            Some(object) => respond(StatusCode::OK, object),
            None => not_found(),
        };
    }
    assert_eq!(method, Method::PATCH, "{method} {path}");
    let patch: Value = serde_json::from_slice(body).unwrap();
    if let Some(object_path) = path.strip_suffix("/status") {
        assert!(
            query.contains(&format!("fieldManager={FIELD_MANAGER}")),
            "{query}"
        );
        api.writes.push(format!("status {object_path}"));
        let object = api.objects.get_mut(object_path).unwrap();
        object["status"] = patch["status"].clone();
        return respond(StatusCode::OK, object.clone());
    }
    if patch.is_array() {
        // A JSON patch: kube's finalizer helper adding or removing the finalizer.
        let adding = patch.as_array().unwrap().iter().any(|op| op["op"] == "add");
        api.writes.push(format!(
            "{} finalizer {path}",
            if adding { "add" } else { "remove" }
        ));
        let object = api.objects.get_mut(path).unwrap();
        object["metadata"]["finalizers"] = if adding {
            json!(["capstan.dev/cleanup"])
        } else {
            json!([])
        };
        return respond(StatusCode::OK, object.clone());
    }
    assert!(
        (query.contains(&format!("fieldManager={FIELD_MANAGER}"))
            || query.contains(&format!("fieldManager={}", provisioner::FIELD_MANAGER)))
            && query.contains("force=true"),
        "{query}"
    );
    // As a real API server: a StatefulSet's volume claim templates cannot change (422), the
    // generation moves only when the spec does, and an apply leaves the status alone.
    let existing = api.objects.get(path).cloned();
    if let Some(existing) = &existing
        && path.contains("/statefulsets/")
        && existing["spec"]["volumeClaimTemplates"] != patch["spec"]["volumeClaimTemplates"]
    {
        return respond(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Invalid", "code": 422,
                "message": "StatefulSet.apps is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden" }),
        );
    }
    api.writes.push(format!("apply {path}"));
    let mut object = patch.clone();
    object["metadata"]["uid"] = json!("child-uid");
    object["metadata"]["resourceVersion"] = json!("1");
    let generation = match &existing {
        Some(existing) if existing["spec"] == patch["spec"] => {
            existing["metadata"]["generation"].clone()
        }
        Some(existing) => json!(existing["metadata"]["generation"].as_i64().unwrap_or(1) + 1),
        None => json!(1),
    };
    object["metadata"]["generation"] = generation;
    if let Some(status) = existing
        .as_ref()
        .map(|e| e["status"].clone())
        .filter(|s| !s.is_null())
    {
        object["status"] = status;
    }
    api.objects.insert(path.to_owned(), object.clone());
    respond(StatusCode::OK, object)
}

pub fn client(api: Shared) -> Client {
    mock_client("tenants", move |method, path, query, body| {
        handle(&api, method, path, query, body)
    })
}

pub fn resource(spec: Value, extra_metadata: Value) -> Value {
    let mut metadata = json!({ "name": "orders", "namespace": "tenants", "uid": "6b0e0c8e-2f6f-4e0a-9d59-6cf0e8a5f3a1", "generation": 1 });
    for (k, v) in extra_metadata.as_object().unwrap() {
        metadata[k] = v.clone();
    }
    json!({ "apiVersion": "capstan.dev/v1alpha1", "kind": "KafkaCluster", "metadata": metadata, "spec": spec })
}

/// Changes the stored KafkaCluster's spec, its generation moving on as a real API server's.
pub fn edit_spec(api: &Shared, change: impl FnOnce(&mut Value)) {
    let mut api = api.lock().unwrap();
    let cluster = api.objects.get_mut(BASE).unwrap();
    change(&mut cluster["spec"]);
    let generation = cluster["metadata"]["generation"].as_i64().unwrap_or(1);
    cluster["metadata"]["generation"] = json!(generation + 1);
}

pub fn setup(object: Value) -> (Shared, Arc<Context>) {
    let api: Shared = Arc::default();
    api.lock().unwrap().objects.insert(BASE.to_owned(), object);
    let ctx = Arc::new(Context::new(
        client(api.clone()),
        Arc::new(Metrics::new().unwrap()),
    ));
    (api, ctx)
}

pub async fn reconcile_stored(
    api: &Shared,
    ctx: &Arc<Context>,
) -> Result<kube::runtime::controller::Action, capstan_operator::Error> {
    let stored: KafkaCluster =
        serde_json::from_value(api.lock().unwrap().objects[BASE].clone()).unwrap();
    reconcile(Arc::new(stored), ctx.clone()).await
}

pub fn take_writes(api: &Shared) -> Vec<String> {
    std::mem::take(&mut api.lock().unwrap().writes)
}

pub fn take_statefulset_writes(api: &Shared) -> Vec<String> {
    take_writes(api)
        .into_iter()
        .filter(|w| w.contains("/statefulsets/"))
        .collect()
}

/// The condition `kind` of the stored KafkaCluster's status, or null.
pub fn condition_of(api: &Shared, kind: &str) -> Value {
    let status = api.lock().unwrap().objects[BASE]["status"].clone();
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == kind)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Base64, as a Secret's data holds it.
pub fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The stored KafkaCluster `orders` with `spec` (its finalizer already added), and a context
/// that reaches its brokers at `kafka` (a mock on loopback).
pub fn setup_with_kafka(spec: Value, kafka: String) -> (Shared, Arc<Context>) {
    let api: Shared = Arc::default();
    api.lock().unwrap().objects.insert(
        BASE.to_owned(),
        resource(spec, json!({ "finalizers": ["capstan.dev/cleanup"] })),
    );
    let ctx = Arc::new(
        Context::new(client(api.clone()), Arc::new(Metrics::new().unwrap()))
            .with_kafka_bootstrap(kafka),
    );
    (api, ctx)
}

/// Sets the admin password in the cluster's Secret (made by a first reconcile): the mock
/// broker's, so the operator's checks authenticate, or any other to make them fail.
pub fn set_admin_password(api: &Shared, password: &str) {
    api.lock()
        .unwrap()
        .objects
        .get_mut("/api/v1/namespaces/tenants/secrets/orders-kafka-credentials")
        .unwrap()["data"]["admin-password"] = json!(base64_of(password));
}
