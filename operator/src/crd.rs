//! The `KafkaCluster` custom resource.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Single-zone or multi-zone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ZoneMode {
    /// Brokers in one zone.
    #[default]
    Single,
    /// One StatefulSet per zone in exactly three zones; survives the loss of a zone.
    Multi,
}

/// Persistent storage of each broker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// Volume size, e.g. `10Gi`.
    pub size: String,
    /// Storage class; the cluster's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Delete the brokers' volumes when the KafkaCluster is deleted (Strimzi's `deleteClaim`);
    /// false keeps them, and their data, for an operator to reclaim or remove by hand.
    #[serde(default)]
    pub delete_claim: bool,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            size: "10Gi".into(),
            storage_class_name: None,
            delete_claim: false,
        }
    }
}

/// An external listener (the internal one always exists): a Service per broker, each broker
/// advertising its own address, so clients outside the cluster reach every partition leader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalListener {
    /// `LoadBalancer` or `NodePort`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The host broker `{nodeId}` is advertised at, e.g. `b{nodeId}.kafka.example.com` (its
    /// LoadBalancer Service carries it for external-dns). Required for `LoadBalancer`; for
    /// `NodePort` the broker's node address (`status.hostIP`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertised_host: Option<String>,
    /// `NodePort`: broker n listens on node port `nodePortBase + n` (default 31090).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30000, max = 32740))]
    pub node_port_base: Option<i32>,
    /// TLS on the external listener (SASL_SSL); SASL over plaintext without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
}

/// A listener's TLS certificate, from a Secret of type `kubernetes.io/tls` in the cluster's
/// namespace, as cert-manager's `Certificate` writes it: `tls.crt` (the chain, naming every
/// advertised host) and `tls.key` (PKCS#8, which Kafka's PEM key store requires: cert-manager's
/// `privateKey.encoding: PKCS8`). A renewed certificate rolls the brokers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerTls {
    /// The Secret's name.
    pub secret_name: String,
}

impl Listeners {
    /// The internal listener's TLS, if it has any.
    pub fn internal_tls(&self) -> Option<&ListenerTls> {
        self.internal.as_ref().and_then(|i| i.tls.as_ref())
    }

    /// The external listener's TLS, if it has any.
    pub fn external_tls(&self) -> Option<&ListenerTls> {
        self.external.as_ref().and_then(|e| e.tls.as_ref())
    }
}

impl ExternalListener {
    /// The first broker's node port (`NodePort`).
    pub fn node_port_base(&self) -> i32 {
        self.node_port_base.unwrap_or(DEFAULT_NODE_PORT_BASE)
    }
}

/// Broker n's node port is this plus n unless `nodePortBase` says otherwise.
pub const DEFAULT_NODE_PORT_BASE: i32 = 31090;

/// The internal listener (9092: clients inside the Kubernetes cluster, inter-broker traffic,
/// the control plane and the operator's own checks).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InternalListener {
    /// TLS on it (SASL_SSL); SASL over plaintext without it. The Secret needs `ca.crt` too:
    /// the brokers check each other's certificate against it, and so does the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
}

/// The listeners: the internal SASL/SCRAM one always, an external one if asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Listeners {
    /// The internal listener's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal: Option<InternalListener>,
    /// An external listener, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalListener>,
}

/// Who may do what on the brokers; Strimzi's `spec.kafka.authorization`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    /// `simple`: Kafka's StandardAuthorizer; every user but the super users needs ACLs.
    #[serde(rename = "type")]
    pub kind: String,
    /// Super users besides the operator's own `capstan-admin`, as principals (`User:alice`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub super_users: Vec<String>,
}

/// Dedicated KRaft controllers (Strimzi's node pools with the `controller` role): a quorum of
/// [`CONTROLLERS`] controller-only pods, separate from the brokers, so the broker count can
/// change. Chosen when the cluster is made and fixed for its life: a static KRaft quorum cannot
/// move from the brokers to controllers of its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.storageSize == oldSelf.storageSize",
        "message": "controllers.storageSize cannot change: the controllers' volumes keep the size they were made with"
    }
]))]
pub struct Controllers {
    /// Volume size of each controller's metadata log (default `5Gi`); in the storage class of
    /// `storage.storageClassName`, deleted with the cluster when `storage.deleteClaim` says so.
    #[serde(default = "default_controller_storage")]
    pub storage_size: String,
    /// Resources of each controller container; without them a controller requests 250m CPU
    /// and 1Gi memory, limited to 1Gi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for Controllers {
    fn default() -> Self {
        Controllers {
            storage_size: default_controller_storage(),
            resources: None,
        }
    }
}

fn default_controller_storage() -> String {
    "5Gi".into()
}

/// The size of a dedicated controller quorum: three voters survive the loss of one (Kafka's
/// and Strimzi's production recommendation), spread over the zones of a multi-zone cluster.
pub const CONTROLLERS: i32 = 3;

/// A Kafka (KRaft) cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema, CustomResource)]
#[kube(
    group = "capstan.dev",
    version = "v1alpha1",
    kind = "KafkaCluster",
    namespaced,
    status = "KafkaClusterStatus",
    shortname = "kc",
    printcolumn = r#"{"name":"Zones","type":"string","jsonPath":".spec.zoneMode"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyBrokers"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
// Checked by the API server (CEL), so a bad spec or a change Kafka cannot follow is refused at
// `kubectl apply` rather than found by the reconciler. The transition rules (oldSelf) hold
// because the KRaft quorum is static: the zones hold the voters, and so do the brokers of a
// cluster without dedicated controllers.
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.zoneMode != 'multi' || (size(self.zones) == 3 && self.zones[0] != self.zones[1] && self.zones[0] != self.zones[2] && self.zones[1] != self.zones[2])",
        "message": "a multi-zone cluster needs exactly three distinct zones"
    },
    {
        "rule": "self.zoneMode != 'single' || size(self.zones) <= 1",
        "message": "a single-zone cluster takes at most one zone"
    },
    {
        "rule": "self.zoneMode == oldSelf.zoneMode && self.zones == oldSelf.zones",
        "message": "zoneMode and zones cannot change: the KRaft voters are spread over the zones, so moving them would break the quorum; create a new cluster and move the topics"
    },
    {
        "rule": "has(self.controllers) == has(oldSelf.controllers)",
        "message": "controllers cannot be added or removed: a static KRaft quorum cannot move between the brokers and dedicated controllers; create a new cluster and move the topics"
    },
    {
        "rule": "(has(self.listeners.internal) && has(self.listeners.internal.tls)) == (has(oldSelf.listeners.internal) && has(oldSelf.listeners.internal.tls))",
        "message": "listeners.internal.tls cannot be switched on or off: brokers replicate over the internal listener, and restarted one at a time half would not understand the other half; create a new cluster and move the topics"
    },
    {
        "rule": "has(self.controllers) || self.brokersPerZone == oldSelf.brokersPerZone",
        "message": "brokersPerZone cannot change on a cluster without dedicated controllers: every broker is a KRaft voter and Kafka cannot change a static quorum; create a cluster with spec.controllers and move the topics"
    }
]))]
pub struct KafkaClusterSpec {
    /// `single` (default) or `multi`.
    #[serde(default)]
    pub zone_mode: ZoneMode,
    /// Zones: exactly three for `multi`; at most one for `single`.
    #[serde(default)]
    #[schemars(length(max = 3))]
    pub zones: Vec<String>,
    /// Brokers in each zone (default 1).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 9))]
    pub brokers_per_zone: i32,
    /// Apache Kafka version, e.g. `3.9.1` (used when `image` is absent).
    #[serde(default = "default_version")]
    pub version: String,
    /// A container image to pin instead of `apache/kafka:<version>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Persistent storage of each broker.
    #[serde(default)]
    pub storage: Storage,
    /// Resources of each broker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The internal listener's TLS, and an external listener.
    #[serde(default)]
    pub listeners: Listeners,
    /// ACL authorization (`type: simple`); without it any authenticated user may do anything.
    /// The control plane sets it on every cluster it creates and writes each credential's ACLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    /// Dedicated KRaft controllers; without them every broker is also a controller (a voter),
    /// and the broker count cannot change. Set it when making a cluster: it cannot be added or
    /// removed later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controllers: Option<Controllers>,
    /// Stop reconciling this resource.
    #[serde(default)]
    pub paused: bool,
}

fn one() -> i32 {
    1
}

fn default_version() -> String {
    "3.9.1".into()
}

/// What the operator observed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaClusterStatus {
    /// Pending, Ready, Degraded, Failed or Deleting (older versions wrote Provisioning for Pending).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where clients connect, e.g. `orders-kafka-bootstrap.tenants.svc:9092`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_servers: Option<String>,
    /// The KRaft cluster id the brokers were formatted with (also in the Secret); kept for the
    /// life of the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Brokers that are ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_brokers: Option<i32>,
    /// Dedicated controllers that are ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_controllers: Option<i32>,
    /// Node ids of brokers removed by a scale-down whose registration the controllers still
    /// hold; each is unregistered once its pod is gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_brokers: Vec<i32>,
    /// Conditions, with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<BTreeMap<String, String>>,
}

impl KafkaClusterSpec {
    /// Checks the rules the schema cannot express, and gives the zones to use.
    pub fn zones(&self) -> Result<Vec<Option<String>>> {
        match self.zone_mode {
            ZoneMode::Multi if self.zones.len() == 3 => {
                let mut unique = self.zones.clone();
                unique.sort();
                unique.dedup();
                if unique.len() != 3 {
                    return Err(Error::Invalid(
                        "the three zones of a multi-zone cluster must differ".into(),
                    ));
                }
                Ok(self.zones.iter().cloned().map(Some).collect())
            }
            ZoneMode::Multi => Err(Error::Invalid(format!(
                "a multi-zone cluster needs exactly 3 zones, not {}",
                self.zones.len()
            ))),
            ZoneMode::Single if self.zones.len() <= 1 => Ok(vec![self.zones.first().cloned()]),
            ZoneMode::Single => Err(Error::Invalid(
                "a single-zone cluster takes at most one zone".into(),
            )),
        }
    }

    /// The container image.
    pub fn image(&self) -> String {
        self.image
            .clone()
            .unwrap_or_else(|| format!("apache/kafka:{}", self.version))
    }
}

/// The CRD as YAML (what `capstan crd` prints and the Helm chart ships).
pub fn crd_yaml() -> Result<String> {
    let crd = KafkaCluster::crd();
    serde_yaml::to_string(&crd).map_err(|e| Error::Serialize(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(mode: ZoneMode, zones: &[&str]) -> KafkaClusterSpec {
        serde_json::from_value(serde_json::json!({ "zoneMode": mode, "zones": zones })).unwrap()
    }

    #[test]
    fn multi_zone_needs_exactly_three_distinct_zones() {
        assert!(spec(ZoneMode::Multi, &["a", "b", "c"]).zones().is_ok());
        assert!(spec(ZoneMode::Multi, &["a", "b"]).zones().is_err());
        assert!(spec(ZoneMode::Multi, &["a", "a", "b"]).zones().is_err());
        assert_eq!(spec(ZoneMode::Single, &[]).zones().unwrap(), vec![None]);
        assert!(spec(ZoneMode::Single, &["a", "b"]).zones().is_err());
    }

    #[test]
    fn defaults_fill_a_minimal_spec() {
        let s: KafkaClusterSpec = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(
            (s.zone_mode, s.brokers_per_zone, s.image()),
            (ZoneMode::Single, 1, "apache/kafka:3.9.1".to_owned())
        );
        assert_eq!(s.storage.size, "10Gi");
    }

    #[test]
    fn the_crd_has_printer_columns_and_the_short_name() {
        let yaml = crd_yaml().unwrap();
        for needle in [
            "name: kafkaclusters.capstan.dev",
            "kind: KafkaCluster",
            "- kc",
            "jsonPath: .status.readyBrokers",
            "scope: Namespaced",
        ] {
            assert!(yaml.contains(needle), "{needle} missing from\n{yaml}");
        }
    }
}
