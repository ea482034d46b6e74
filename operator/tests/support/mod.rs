//! What the operator's test files share: a `KafkaCluster` of a spec, and its render input.

#![allow(dead_code, clippy::unwrap_used)]

use capstan_operator::{KafkaCluster, RenderInput};
use serde_json::{Value, json};

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
    }
}

/// The rendered objects of one kind.
pub fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}
