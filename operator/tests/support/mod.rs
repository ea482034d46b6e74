//! What the operator's test files share: a `KafkaCluster` of a spec, its render input, and
//! a mocked Kubernetes API server (kube's tower-test pattern).

#![allow(dead_code, clippy::unwrap_used)]

use capstan_operator::{KafkaCluster, RenderInput};
use http::{Method, Request, Response, StatusCode};
use kube::{Client, client::Body};
use serde_json::{Value, json};

/// An API server answer of `status` with `body`.
pub fn respond(status: StatusCode, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

/// A client of `namespace` whose every request is answered by `answer(method, path, query,
/// body)`, one at a time.
pub fn mock_client(
    namespace: &str,
    mut answer: impl FnMut(&Method, &str, &str, &[u8]) -> Response<Body> + Send + 'static,
) -> Client {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().clone();
            let path = request.uri().path().to_owned();
            let query = request.uri().query().unwrap_or_default().to_owned();
            let body = request.into_body().collect_bytes().await.unwrap();
            send.send_response(answer(&method, &path, &query, &body));
        }
    });
    Client::new(service, namespace)
}

/// The resource `orders` in `tenants` (as stored: with a uid) with `spec`.
pub fn cluster(spec: Value) -> KafkaCluster {
    serde_json::from_value(json!({
        "apiVersion": "capstan.dev/v1alpha1",
        "kind": "KafkaCluster",
        "metadata": { "name": "orders", "namespace": "tenants", "uid": "6b0e0c8e-2f6f-4e0a-9d59-6cf0e8a5f3a1" },
        "spec": spec
    }))
    .unwrap()
}

/// Its render input, with fixed secrets.
pub fn input(cluster: &KafkaCluster) -> RenderInput<'_> {
    RenderInput {
        cluster,
        kraft_cluster_id: "MkU3OEVBNTcwNTJENDM2Qk".into(),
        admin_password: "admin-secret".into(),
        client_username: "b3JkZXJzJGFiYw".into(),
        client_password: "client-secret".into(),
        certificates_digest: None,
    }
}

/// The rendered objects of one kind.
pub fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}
