//! The CRD's CEL rules (`x-kubernetes-validations`), evaluated as the API server evaluates them
//! (kube-cel: Kubernetes' CEL functions, schema defaults applied first): a spec the operator
//! could not render, or a change of the zones, controllers or (without dedicated controllers)
//! broker count that Kafka's static quorum cannot follow, is refused at `kubectl apply`.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use capstan_operator::KafkaCluster;
use kube::CustomResourceExt;
use serde_json::{Value, json};

fn schema() -> Value {
    let crd = KafkaCluster::crd();
    let version = &crd.spec.versions[0];
    serde_json::to_value(&version.schema.as_ref().unwrap().open_api_v3_schema).unwrap()
}

fn resource(spec: Value) -> Value {
    json!({
        "apiVersion": "capstan.dev/v1alpha1",
        "kind": "KafkaCluster",
        "metadata": { "name": "orders", "namespace": "tenants" },
        "spec": spec
    })
}

/// The messages of the rules `spec` breaks (as an update of `old` when given).
fn refusals(spec: Value, old: Option<Value>) -> Vec<String> {
    let old = old.map(resource);
    match kube_cel::validate(&schema(), &resource(spec), old.as_ref()) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.into_vec().into_iter().map(|e| e.message).collect(),
    }
}

#[test]
fn the_schema_carries_the_rules() {
    let rules = &schema()["properties"]["spec"]["x-kubernetes-validations"];
    assert_eq!(rules.as_array().map(Vec::len), Some(6), "{rules}");
    assert_eq!(
        schema()["properties"]["spec"]["properties"]["zones"]["maxItems"],
        json!(3)
    );
}

#[test]
fn zones_must_fit_the_zone_mode() {
    assert_eq!(
        refusals(json!({}), None),
        Vec::<String>::new(),
        "the defaults: single, no zone"
    );
    assert_eq!(
        refusals(
            json!({ "zoneMode": "multi", "zones": ["a", "b", "c"] }),
            None
        ),
        Vec::<String>::new()
    );
    for zones in [json!(["a", "b"]), json!(["a", "b", "a"]), json!([])] {
        assert_eq!(
            refusals(json!({ "zoneMode": "multi", "zones": zones }), None),
            vec!["a multi-zone cluster needs exactly three distinct zones"],
            "{zones}"
        );
    }
    assert_eq!(
        refusals(json!({ "zones": ["a", "b"] }), None),
        vec!["a single-zone cluster takes at most one zone"]
    );
    assert_eq!(
        refusals(json!({ "zones": ["a"] }), None),
        Vec::<String>::new()
    );
}

#[test]
fn the_quorum_cannot_be_changed_by_an_update() {
    let multi = json!({ "zoneMode": "multi", "zones": ["a", "b", "c"] });
    let zones_changed = refusals(
        json!({ "zoneMode": "multi", "zones": ["a", "b", "d"] }),
        Some(multi.clone()),
    );
    assert_eq!(zones_changed.len(), 1);
    assert!(zones_changed[0].starts_with("zoneMode and zones cannot change"));
    let mode_changed = refusals(json!({}), Some(multi.clone()));
    assert!(mode_changed[0].starts_with("zoneMode and zones cannot change"));
    let scaled = refusals(json!({ "brokersPerZone": 3 }), Some(json!({})));
    assert_eq!(scaled.len(), 1);
    assert!(
        scaled[0]
            .starts_with("brokersPerZone cannot change on a cluster without dedicated controllers")
    );
    // The defaults count: an explicit 1 is no change from an absent one.
    assert_eq!(
        refusals(json!({ "brokersPerZone": 1 }), Some(json!({}))),
        Vec::<String>::new()
    );
    // Everything else may change.
    assert_eq!(
        refusals(
            json!({ "zoneMode": "multi", "zones": ["a", "b", "c"], "version": "4.0.0", "paused": true }),
            Some(multi)
        ),
        Vec::<String>::new()
    );
}

#[test]
fn with_dedicated_controllers_the_brokers_scale_but_the_controllers_stay() {
    let dedicated = json!({ "brokersPerZone": 3, "controllers": {} });
    for brokers in [1, 5] {
        assert_eq!(
            refusals(
                json!({ "brokersPerZone": brokers, "controllers": {} }),
                Some(dedicated.clone())
            ),
            Vec::<String>::new(),
            "{brokers} brokers"
        );
    }
    let added = refusals(json!({ "controllers": {} }), Some(json!({})));
    assert_eq!(added.len(), 1, "{added:?}");
    assert!(added[0].starts_with("controllers cannot be added or removed"));
    let removed = refusals(json!({ "brokersPerZone": 3 }), Some(dedicated.clone()));
    assert!(
        removed
            .iter()
            .any(|m| m.starts_with("controllers cannot be added or removed")),
        "{removed:?}"
    );
    // The default size counts: an explicit 5Gi is no change, 10Gi is.
    assert_eq!(
        refusals(
            json!({ "brokersPerZone": 3, "controllers": { "storageSize": "5Gi" } }),
            Some(dedicated.clone())
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        refusals(
            json!({ "brokersPerZone": 3, "controllers": { "storageSize": "10Gi" } }),
            Some(dedicated)
        ),
        vec![
            "controllers.storageSize cannot change: the controllers' volumes keep the size they were made with"
        ]
    );
}

#[test]
fn tls_on_the_internal_listener_is_chosen_when_the_cluster_is_made() {
    let tls = json!({ "listeners": { "internal": { "tls": { "secretName": "a" } } } });
    let switched = |new: Value, old: Value| refusals(new, Some(old));
    for (new, old) in [
        (tls.clone(), json!({})),
        (json!({}), tls.clone()),
        (json!({ "listeners": { "internal": {} } }), tls.clone()),
    ] {
        let refused = switched(new, old);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0].starts_with("listeners.internal.tls cannot be switched"));
    }
    // Another Secret (a renewed or re-issued certificate) is fine.
    assert_eq!(
        switched(
            json!({ "listeners": { "internal": { "tls": { "secretName": "b" } } } }),
            tls
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        switched(json!({ "listeners": { "internal": {} } }), json!({})),
        Vec::<String>::new()
    );
}

#[test]
fn the_shipped_example_passes() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/kafkacluster-multi-zone.yaml"
    ))
    .unwrap();
    let example: Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(
        kube_cel::validate(&schema(), &example, None).map_err(|e| format!("{e:?}")),
        Ok(())
    );
}
