//! What a `KafkaCluster` owns, rendered as plain data: a pure function from the resource (and
//! its secrets) to Kubernetes objects, so it can be checked field by field and against the
//! official schemas without a cluster.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::{
        apps::v1::{
            StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
            StatefulSetUpdateStrategy,
        },
        core::v1::{
            Affinity, Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort,
            EnvVar, EnvVarSource, NodeAffinity, NodeSelector, NodeSelectorRequirement,
            NodeSelectorTerm, ObjectFieldSelector, PersistentVolumeClaim,
            PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity, PodSecurityContext,
            PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, Secret,
            SecretKeySelector, SecretVolumeSource, SecurityContext, Service, ServicePort,
            ServiceSpec, TCPSocketAction, TopologySpreadConstraint, Volume, VolumeMount,
            VolumeResourceRequirements, WeightedPodAffinityTerm,
        },
        networking::v1::{
            NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
            NetworkPolicySpec,
        },
        policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec},
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
        util::intstr::IntOrString,
    },
};
use serde_json::Value;

use crate::{CONTROLLERS, Error, ExternalListener, KafkaCluster, Result, ZoneMode};

/// Client listener (SASL/SCRAM-SHA-512).
pub const CLIENT_PORT: i32 = 9092;
/// KRaft controller listener.
pub const CONTROLLER_PORT: i32 = 9093;
/// Optional external listener.
pub const EXTERNAL_PORT: i32 = 9094;
/// A SASL_SSL listener's certificate as a broker loads it: the Secret mounted read-only at
/// `/etc/kafka/tls/<listener>`, made by the start script into a PEM key store (the PKCS#8 key
/// and the chain in one file, no store password) under `/tmp`, which Kafka reads at start.
struct TlsMount {
    /// `internal` or `external`.
    listener: &'static str,
    /// The Secret.
    secret: String,
}

impl TlsMount {
    fn dir(&self) -> String {
        format!("/etc/kafka/tls/{}", self.listener)
    }

    fn keystore(&self) -> String {
        format!("/tmp/{}-keystore.pem", self.listener)
    }

    fn volume(&self) -> String {
        format!("{}-tls", self.listener)
    }

    /// The start script's variables: `INTERNAL_TLS_DIR`, `INTERNAL_KEYSTORE`, ...
    fn env(&self) -> [EnvVar; 2] {
        let upper = self.listener.to_uppercase();
        [
            env(&format!("{upper}_TLS_DIR"), &self.dir()),
            env(&format!("{upper}_KEYSTORE"), &self.keystore()),
        ]
    }

    /// The listener's SSL settings; the internal listener, which brokers also connect to
    /// each other on, trusts the Secret's `ca.crt`.
    fn properties(&self) -> String {
        let prefix = format!("listener.name.{}.ssl", self.listener);
        let mut lines = format!(
            "{prefix}.keystore.type=PEM\n{prefix}.keystore.location={}\n",
            self.keystore()
        );
        if self.listener == "internal" {
            lines.push_str(&format!(
                "{prefix}.truststore.type=PEM\n{prefix}.truststore.location={}/ca.crt\n",
                self.dir()
            ));
        }
        lines
    }
}

/// The TLS listeners of `cluster`'s brokers.
fn tls_mounts(cluster: &KafkaCluster) -> Vec<TlsMount> {
    let listeners = &cluster.spec.listeners;
    [
        ("internal", listeners.internal_tls()),
        ("external", listeners.external_tls()),
    ]
    .into_iter()
    .filter_map(|(listener, tls)| {
        tls.map(|tls| TlsMount {
            listener,
            secret: tls.secret_name.clone(),
        })
    })
    .collect()
}
/// Where each broker's volume is mounted.
const DATA_DIR: &str = "/var/lib/kafka/data";
/// Kafka's log directory: a subdirectory of the mount, because the root of an ext4 volume holds
/// `lost+found`, which Kafka refuses to start with as a log dir (Strimzi issue #1307).
const LOG_DIR: &str = "/var/lib/kafka/data/kafka-log";
/// How long a client's SASL session lasts before it must authenticate again (KIP-368): a
/// deleted credential or a changed password ends its connections within this.
const REAUTHENTICATE_MS: i64 = 300_000;
/// The pod-template annotation that changes, and so rolls the brokers, when their
/// configuration changes.
pub const CONFIG_HASH_ANNOTATION: &str = "capstan.dev/config-hash";
/// The operator's admin user, the one super user of an authorizing cluster.
/// The SCRAM user of inter-broker traffic, the control plane and the operator's own checks.
pub const ADMIN_USERNAME: &str = "capstan-admin";
const ADMIN_PRINCIPAL: &str = "User:capstan-admin";
/// Node id of the first dedicated controller; the others follow. Far above any broker's id
/// (brokers are 0 to brokers − 1), so the two never meet however the brokers scale.
pub const CONTROLLER_NODE_ID_BASE: i32 = 1000;
/// The pod label saying what a pod of a cluster with dedicated controllers runs (`broker` or
/// `controller`); clusters without them carry none (their pods are both).
pub const ROLE_LABEL: &str = "capstan.dev/role";

/// The resource and the secrets its objects carry (generated once by the reconciler and kept in
/// the Secret it owns).
#[derive(Clone, Debug)]
pub struct RenderInput<'a> {
    /// The custom resource (its name, namespace and uid are required).
    pub cluster: &'a KafkaCluster,
    /// The KRaft cluster id (22 characters of URL-safe base64).
    pub kraft_cluster_id: String,
    /// Password of the `capstan-admin` SCRAM user (inter-broker and control-plane traffic).
    pub admin_password: String,
    /// The default client credential.
    pub client_username: String,
    /// Its password.
    pub client_password: String,
    /// A digest of the listeners' certificates as last read (never of their keys), so that a
    /// renewed certificate rolls the brokers; `None` when there are none (or not read).
    pub certificates_digest: Option<String>,
}

struct Names {
    name: String,
    namespace: String,
    headless: String,
    labels: BTreeMap<String, String>,
    owner: OwnerReference,
    /// Dedicated controllers: pods carry [`ROLE_LABEL`] and client Services select brokers.
    dedicated: bool,
}

fn names(cluster: &KafkaCluster) -> Result<Names> {
    let name = cluster
        .metadata
        .name
        .clone()
        .ok_or_else(|| Error::Invalid("metadata.name is required".into()))?;
    let namespace = cluster
        .metadata
        .namespace
        .clone()
        .ok_or_else(|| Error::Invalid("metadata.namespace is required".into()))?;
    let uid = cluster.metadata.uid.clone().ok_or_else(|| {
        Error::Invalid("metadata.uid is required (render a stored resource)".into())
    })?;
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "kafka".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), name.clone()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "capstan-operator".to_owned(),
        ),
        ("capstan.dev/cluster".to_owned(), name.clone()),
    ]);
    let owner = OwnerReference {
        api_version: "capstan.dev/v1alpha1".into(),
        kind: "KafkaCluster".into(),
        name: name.clone(),
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    Ok(Names {
        headless: format!("{name}-kafka-headless"),
        name,
        namespace,
        labels,
        owner,
        dedicated: cluster.spec.controllers.is_some(),
    })
}

impl Names {
    fn meta(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels.clone()),
            owner_references: Some(vec![self.owner.clone()]),
            ..Default::default()
        }
    }

    fn selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([("capstan.dev/cluster".to_owned(), self.name.clone())])
    }

    /// The cluster's pods that serve clients: all of them, or its brokers when the
    /// controllers are dedicated.
    fn broker_selector(&self) -> BTreeMap<String, String> {
        let mut selector = self.selector();
        if self.dedicated {
            selector.insert(ROLE_LABEL.into(), "broker".into());
        }
        selector
    }
}

/// What the pods of one StatefulSet run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Broker and KRaft controller in one process (clusters without dedicated controllers).
    Combined,
    /// A broker only; the quorum is the dedicated controllers'.
    Broker,
    /// A dedicated KRaft controller.
    Controller,
}

impl Role {
    fn serves_clients(self) -> bool {
        self != Role::Controller
    }

    fn is_voter(self) -> bool {
        self != Role::Broker
    }

    /// The value of [`ROLE_LABEL`], when pods carry one.
    fn label(self) -> Option<&'static str> {
        match self {
            Role::Combined => None,
            Role::Broker => Some("broker"),
            Role::Controller => Some("controller"),
        }
    }

    /// The file of the ConfigMap its pods start with.
    fn config_file(self) -> &'static str {
        if self == Role::Controller {
            "controller.properties"
        } else {
            "server.properties"
        }
    }
}

/// How the pods of one StatefulSet get their node ids: `base + ordinal × zones + zone`. Brokers
/// (base 0) are dense, 0 to brokers − 1, whatever the zones, keep their ids when brokers are
/// added, and the Kafka gateway can give broker *n* the port `first + n`; dedicated
/// controllers count from [`CONTROLLER_NODE_ID_BASE`]. `start.sh` computes the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NodeIds {
    base: i32,
    zone: i32,
    zones: i32,
}

impl NodeIds {
    /// The node id of pod `ordinal`.
    pub(crate) fn of(&self, ordinal: i32) -> i32 {
        self.base + ordinal * self.zones + self.zone
    }
}

/// One StatefulSet's place in the cluster.
struct Group {
    statefulset: String,
    zone: Option<String>,
    ids: NodeIds,
    role: Role,
    replicas: i32,
}

/// Where clients inside the Kubernetes cluster reach the cluster `name` of `namespace`: its
/// bootstrap Service.
pub(crate) fn bootstrap_address(namespace: &str, name: &str) -> String {
    format!("{name}-kafka-bootstrap.{namespace}.svc:{CLIENT_PORT}")
}

/// The name of the StatefulSet of each zone's brokers of `cluster`, in zone order.
pub(crate) fn zone_statefulsets(cluster: &KafkaCluster) -> Result<Vec<String>> {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let multi = cluster.spec.zone_mode == ZoneMode::Multi;
    Ok((0..cluster.spec.zones()?.len())
        .map(|i| {
            if multi {
                format!("{name}-kafka-z{i}")
            } else {
                format!("{name}-kafka")
            }
        })
        .collect())
}

/// The StatefulSet of the dedicated controllers of the cluster `name`.
pub(crate) fn controller_statefulset(name: &str) -> String {
    format!("{name}-kafka-controller")
}

/// Every StatefulSet of `cluster` with how its pods' node ids go, in rolling order: the
/// dedicated controllers first (as Strimzi rolls them), then the brokers zone by zone.
pub(crate) fn node_groups(cluster: &KafkaCluster) -> Result<Vec<(String, NodeIds)>> {
    Ok(groups(cluster)?
        .into_iter()
        .map(|g| (g.statefulset, g.ids))
        .collect())
}

/// The node ids of the brokers of `ordinals` in every zone, sorted: `wanted..live` are those
/// a scale-down removes, `0..count` those a count keeps.
pub(crate) fn broker_ids(
    cluster: &KafkaCluster,
    ordinals: std::ops::Range<i32>,
) -> Result<Vec<i32>> {
    let mut ids: Vec<i32> = groups(cluster)?
        .iter()
        .filter(|g| g.role.serves_clients())
        .flat_map(|g| ordinals.clone().map(|ordinal| g.ids.of(ordinal)))
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

fn groups(cluster: &KafkaCluster) -> Result<Vec<Group>> {
    let zones = cluster.spec.zones()?;
    let count = zones.len() as i32;
    let sets = zone_statefulsets(cluster)?;
    let dedicated = cluster.spec.controllers.is_some();
    let controllers = dedicated.then(|| Group {
        statefulset: controller_statefulset(&cluster.metadata.name.clone().unwrap_or_default()),
        zone: None,
        ids: NodeIds {
            base: CONTROLLER_NODE_ID_BASE,
            zone: 0,
            zones: 1,
        },
        role: Role::Controller,
        replicas: CONTROLLERS,
    });
    let brokers = zones
        .into_iter()
        .zip(sets)
        .enumerate()
        .map(|(i, (zone, statefulset))| Group {
            statefulset,
            zone,
            ids: NodeIds {
                base: 0,
                zone: i as i32,
                zones: count,
            },
            role: if dedicated {
                Role::Broker
            } else {
                Role::Combined
            },
            replicas: cluster.spec.brokers_per_zone,
        });
    Ok(controllers.into_iter().chain(brokers).collect())
}

/// Replication settings: multi-zone is RF 3 / min ISR 2; single-zone RF min(3, brokers), min ISR RF−1 (at least 1).
fn replication(input: &RenderInput<'_>, brokers: i32) -> (i32, i32) {
    match input.cluster.spec.zone_mode {
        ZoneMode::Multi => (3, 2),
        ZoneMode::Single => {
            let rf = brokers.min(3);
            (rf, (rf - 1).max(1))
        }
    }
}

/// `controller.quorum.voters`: every pod of the voting StatefulSets (the dedicated
/// controllers, else every broker), at its stable name under the headless Service.
fn voters(n: &Names, groups: &[Group]) -> String {
    groups
        .iter()
        .filter(|g| g.role.is_voter())
        .flat_map(|g| {
            (0..g.replicas).map(move |o| {
                format!(
                    "{}@{}-{o}.{}.{}.svc:{CONTROLLER_PORT}",
                    g.ids.of(o),
                    g.statefulset,
                    n.headless,
                    n.namespace
                )
            })
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn server_properties(input: &RenderInput<'_>, n: &Names, groups: &[Group]) -> String {
    let brokers = groups
        .iter()
        .filter(|g| g.role.serves_clients())
        .map(|g| g.replicas)
        .sum();
    let (rf, min_isr) = replication(input, brokers);
    let external = input.cluster.spec.listeners.external.is_some();
    let tls = tls_mounts(input.cluster);
    let protocol = |listener: &str| {
        if tls.iter().any(|t| t.listener == listener) {
            "SASL_SSL"
        } else {
            "SASL_PLAINTEXT"
        }
    };
    // A broker-only node does not listen on the controller listener, but still names it
    // (controller.listener.names) to reach the controllers.
    let mut listeners = vec![format!("INTERNAL://:{CLIENT_PORT}")];
    if !n.dedicated {
        listeners.push(format!("CONTROLLER://:{CONTROLLER_PORT}"));
    }
    if external {
        listeners.push(format!("EXTERNAL://:{EXTERNAL_PORT}"));
    }
    format!(
        "# Rendered by the Capstan operator; node-specific settings are appended by start.sh.\n\
         process.roles={roles}\n\
         controller.quorum.voters={voters}\n\
         listeners={listeners}\n\
         listener.security.protocol.map=INTERNAL:{internal_protocol},CONTROLLER:PLAINTEXT,EXTERNAL:{external_protocol}\n\
         inter.broker.listener.name=INTERNAL\n\
         controller.listener.names=CONTROLLER\n\
         sasl.enabled.mechanisms=SCRAM-SHA-512\n\
         sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512\n\
         log.dirs={LOG_DIR}\n\
         connections.max.reauth.ms={REAUTHENTICATE_MS}\n\
         auto.create.topics.enable=false\n\
         default.replication.factor={rf}\n\
         min.insync.replicas={min_isr}\n\
         offsets.topic.replication.factor={rf}\n\
         transaction.state.log.replication.factor={rf}\n\
         transaction.state.log.min.isr={min_isr}\n\
         {external_login}\
         {tls}\
         {authorization}",
        internal_protocol = protocol("internal"),
        external_protocol = protocol("external"),
        tls = tls.iter().map(TlsMount::properties).collect::<String>(),
        roles = if n.dedicated {
            "broker"
        } else {
            "broker,controller"
        },
        voters = voters(n, groups),
        listeners = listeners.join(","),
        external_login = if external {
            // Every SASL listener needs its own JAAS entry or the broker does not start; the
            // external one only checks clients, so it needs no login of its own.
            "listener.name.external.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;\n"
        } else {
            ""
        },
        authorization = authorization(input),
    )
}

/// The dedicated controllers' configuration: the controller listener only (a controller-only
/// node may list no other, KafkaConfig checks it) and the authorizer, which controllers need as
/// much as brokers: they answer the ACL, user and quota changes brokers forward to them.
fn controller_properties(input: &RenderInput<'_>, n: &Names, groups: &[Group]) -> String {
    format!(
        "# Rendered by the Capstan operator; node-specific settings are appended by start.sh.\n\
         process.roles=controller\n\
         controller.quorum.voters={voters}\n\
         listeners=CONTROLLER://:{CONTROLLER_PORT}\n\
         listener.security.protocol.map=CONTROLLER:PLAINTEXT\n\
         controller.listener.names=CONTROLLER\n\
         log.dirs={LOG_DIR}\n\
         {authorization}",
        voters = voters(n, groups),
        authorization = authorization(input),
    )
}

/// A digest of the files of `config` that a pod of `role` reads at start (and, for a broker,
/// of its external listener's certificate, `tls`), put on its pod template so that a changed
/// configuration rolls it (the ConfigMap alone changes no pod), and only it: a change of the
/// brokers' settings does not restart the controllers.
fn config_hash(config: &BTreeMap<String, String>, role: Role, tls: Option<&str>) -> String {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    // The certificates a broker loads at start: a renewed one must restart it too.
    if let Some(tls) = tls.filter(|_| role.serves_clients()) {
        digest.update(b"certificates\0");
        digest.update(tls.as_bytes());
    }
    for (name, text) in config
        .iter()
        .filter(|(name, _)| *name == "start.sh" || *name == role.config_file())
    {
        digest.update(name.as_bytes());
        digest.update([0]);
        digest.update(text.as_bytes());
        digest.update([0]);
    }
    short_hex(&digest.finalize())
}

/// The first 16 bytes of a digest as hex: what the operator writes where a digest is shown.
pub(crate) fn short_hex(digest: &[u8]) -> String {
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The authorizer settings of `spec.authorization`. The controller listener is PLAINTEXT (only
/// the cluster's own brokers reach it, see the NetworkPolicy), so brokers registering with the
/// controllers are `User:ANONYMOUS` and must be super users, as Kafka's KRaft documentation
/// says; every client listener is SASL, so no client is ever ANONYMOUS.
fn authorization(input: &RenderInput<'_>) -> String {
    let Some(authorization) = &input.cluster.spec.authorization else {
        return String::new();
    };
    let super_users: Vec<&str> = [ADMIN_PRINCIPAL, "User:ANONYMOUS"]
        .into_iter()
        .chain(authorization.super_users.iter().map(String::as_str))
        .collect();
    format!(
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n\
         super.users={}\n\
         allow.everyone.if.no.acl.found=false\n",
        super_users.join(";")
    )
}

/// The start script: node id from the pod ordinal, rack, advertised address, SCRAM users at
/// format time (first boot only; later changes go through AlterUserScramCredentials). A
/// dedicated controller (`KAFKA_ROLE=controller`) starts from `controller.properties` and has
/// no client listener to advertise; the SCRAM users go into its bootstrap metadata, which is
/// where a cluster with dedicated controllers takes them from.
const START_SH: &str = r#"#!/bin/bash
set -euo pipefail
ORDINAL="${POD_NAME##*-}"
NODE_ID=$((${NODE_ID_BASE:-0} + ORDINAL * ZONE_COUNT + ZONE_INDEX))
cp "/config/${CONFIG_FILE:-server.properties}" /tmp/server.properties
{
  echo "node.id=${NODE_ID}"
  if [ -n "${ZONE}" ]; then echo "broker.rack=${ZONE}"; fi
  if [ "${KAFKA_ROLE:-broker}" != controller ]; then
    ADVERTISED="INTERNAL://${POD_NAME}.${HEADLESS}.${NAMESPACE}.svc:9092"
    # The external listener: this broker's own address, so clients outside reach each leader.
    if [ -n "${EXTERNAL_PORT:-}" ]; then
      if [ -n "${EXTERNAL_HOST:-}" ]; then HOST="${EXTERNAL_HOST//\{nodeId\}/${NODE_ID}}"; else HOST="${HOST_IP}"; fi
      if [ -n "${EXTERNAL_NODE_PORT_BASE:-}" ]; then PORT=$((EXTERNAL_NODE_PORT_BASE + NODE_ID)); else PORT="${EXTERNAL_PORT}"; fi
      ADVERTISED="${ADVERTISED},EXTERNAL://${HOST}:${PORT}"
    fi
    # TLS listeners: Kafka's PEM key store wants the PKCS#8 key and the chain in one file.
    for LISTENER in INTERNAL EXTERNAL; do
      DIR_VAR="${LISTENER}_TLS_DIR"
      STORE_VAR="${LISTENER}_KEYSTORE"
      if [ -n "${!DIR_VAR:-}" ]; then
        if grep -q -e "BEGIN RSA PRIVATE KEY" -e "BEGIN EC PRIVATE KEY" "${!DIR_VAR}/tls.key"; then
          echo "the ${LISTENER,,} listener's key (${!DIR_VAR}/tls.key) is PKCS#1/SEC1; Kafka needs PKCS#8 (cert-manager: privateKey.encoding: PKCS8)" >&2
          exit 1
        fi
        # A newline between them: a key file without a final one would run into the chain.
        (umask 077 && { cat "${!DIR_VAR}/tls.key"; echo; cat "${!DIR_VAR}/tls.crt"; } > "${!STORE_VAR}")
      fi
    done
    echo "advertised.listeners=${ADVERTISED}"
    echo "listener.name.internal.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"${ADMIN_USERNAME}\" password=\"${ADMIN_PASSWORD}\";"
  fi
} >> /tmp/server.properties
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted -t "${KRAFT_CLUSTER_ID}" -c /tmp/server.properties \
  --add-scram "SCRAM-SHA-512=[name=${ADMIN_USERNAME},password=${ADMIN_PASSWORD}]" \
  --add-scram "SCRAM-SHA-512=[name=${CLIENT_USERNAME},password=${CLIENT_PASSWORD}]"
exec /opt/kafka/bin/kafka-server-start.sh /tmp/server.properties
"#;

/// Requests and limits of a broker container when the spec gives none: a broker's worth of
/// memory (half for the JVM heap, half for the page cache Kafka relies on), a limit equal to the
/// request so a broker is never killed for memory its node promised, and half a core.
const DEFAULT_BROKER_MEMORY: &str = "2Gi";
const DEFAULT_BROKER_CPU: &str = "500m";
/// A dedicated controller holds the metadata log and little else.
const DEFAULT_CONTROLLER_MEMORY: &str = "1Gi";
const DEFAULT_CONTROLLER_CPU: &str = "250m";

fn broker_resources(given: Option<&ResourceRequirements>) -> ResourceRequirements {
    default_resources(given, DEFAULT_BROKER_CPU, DEFAULT_BROKER_MEMORY)
}

/// `given` when it says anything, else `cpu` and `memory` requested and the memory as limit.
fn default_resources(
    given: Option<&ResourceRequirements>,
    cpu: &str,
    memory: &str,
) -> ResourceRequirements {
    match given {
        Some(given) if given.requests.is_some() || given.limits.is_some() => given.clone(),
        _ => ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), Quantity(cpu.into())),
                ("memory".to_owned(), Quantity(memory.into())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_owned(),
                Quantity(memory.into()),
            )])),
            claims: None,
        },
    }
}

/// `KAFKA_HEAP_OPTS` from the container's memory (its limit, else its request): half of it,
/// as Strimzi does, the rest left to the page cache; Kafka's own 1 GiB when neither is given
/// or the quantity cannot be read.
fn heap_options(resources: &ResourceRequirements) -> String {
    let memory = |side: &Option<BTreeMap<String, Quantity>>| {
        side.as_ref()
            .and_then(|q| q.get("memory"))
            .and_then(|q| quantity_bytes(&q.0))
    };
    let mebibytes = memory(&resources.limits)
        .or_else(|| memory(&resources.requests))
        .map(|bytes| (bytes / 2 / (1 << 20)).max(256))
        .unwrap_or(1024);
    format!("-Xms{mebibytes}m -Xmx{mebibytes}m")
}

/// Bytes of a Kubernetes memory quantity (`2Gi`, `1500M`, `2147483648`, `1e9`).
pub(crate) fn quantity_bytes(text: &str) -> Option<u128> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let multiplier: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        exponent if exponent.starts_with(['e', 'E']) => {
            10f64.powi(exponent[1..].parse::<i32>().ok()?)
        }
        _ => return None,
    };
    let value = number.parse::<f64>().ok()? * multiplier;
    (value.is_finite() && value >= 0.0).then_some(value as u128)
}

/// What the start script needs to advertise the external listener: its port, the host
/// template, and the node port base (`NodePort`); the node's address when there is no host.
fn external_env(external: Option<&ExternalListener>) -> Vec<EnvVar> {
    let Some(external) = external else {
        return Vec::new();
    };
    let mut vars = vec![
        env("EXTERNAL_PORT", &EXTERNAL_PORT.to_string()),
        env(
            "EXTERNAL_HOST",
            external.advertised_host.as_deref().unwrap_or(""),
        ),
        env_from_field("HOST_IP", "status.hostIP"),
    ];
    if external.kind == "NodePort" {
        vars.push(env(
            "EXTERNAL_NODE_PORT_BASE",
            &external.node_port_base().to_string(),
        ));
    }
    vars
}

/// A variable the downward API fills from the pod's `path` (`metadata.name`, `status.hostIP`).
fn env_from_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                api_version: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn env_from_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn tcp_probe(port: i32, initial_delay: i32, failures: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(port),
            host: None,
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(10),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

/// Where the pods of `group` may run: a multi-zone broker StatefulSet is pinned to its zone;
/// the dedicated controllers of a multi-zone cluster are spread one per zone (below); anything
/// else prefers distinct hosts.
fn affinity(n: &Names, group: &Group, zones: &[String], multi: bool) -> Affinity {
    let pinned_to = match (&group.zone, group.role) {
        (Some(zone), Role::Broker | Role::Combined) if multi => Some(vec![zone.clone()]),
        (_, Role::Controller) if multi => Some(zones.to_vec()),
        _ => None,
    };
    match pinned_to {
        Some(values) => Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: ZONE_LABEL.into(),
                            operator: "In".into(),
                            values: Some(values),
                        }]),
                        match_fields: None,
                    }],
                }),
                preferred_during_scheduling_ignored_during_execution: None,
            }),
            ..Default::default()
        },
        None => Affinity {
            pod_anti_affinity: Some(PodAntiAffinity {
                preferred_during_scheduling_ignored_during_execution: Some(vec![
                    WeightedPodAffinityTerm {
                        weight: 100,
                        pod_affinity_term: PodAffinityTerm {
                            label_selector: Some(LabelSelector {
                                match_labels: Some(n.selector()),
                                match_expressions: None,
                            }),
                            topology_key: "kubernetes.io/hostname".into(),
                            ..Default::default()
                        },
                    },
                ]),
                required_during_scheduling_ignored_during_execution: None,
            }),
            ..Default::default()
        },
    }
}

/// The node label of a node's zone.
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        ..Default::default()
    }
}

fn statefulset(
    input: &RenderInput<'_>,
    n: &Names,
    group: &Group,
    config_hash: &str,
) -> StatefulSet {
    let spec = &input.cluster.spec;
    let secret = format!("{}-kafka-credentials", n.name);
    let mut labels = n.labels.clone();
    labels.insert("capstan.dev/statefulset".into(), group.statefulset.clone());
    if let Some(role) = group.role.label() {
        labels.insert(ROLE_LABEL.into(), role.into());
    }
    let external = spec
        .listeners
        .external
        .as_ref()
        .filter(|_| group.role.serves_clients());
    let tls = if group.role.serves_clients() {
        tls_mounts(input.cluster)
    } else {
        Vec::new()
    };
    let mut ports = Vec::new();
    if group.role.serves_clients() {
        ports.push(container_port("client", CLIENT_PORT));
    }
    if group.role.is_voter() {
        ports.push(container_port("controller", CONTROLLER_PORT));
    }
    if external.is_some() {
        ports.push(container_port("external", EXTERNAL_PORT));
    }
    let multi = spec.zone_mode == ZoneMode::Multi;
    let affinity = affinity(n, group, &spec.zones, multi);
    // Exactly one controller per zone: with three zones and three controllers, a skew of one
    // that the scheduler may not exceed leaves no other placement.
    let spread = (multi && group.role == Role::Controller).then(|| {
        vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: ZONE_LABEL.into(),
            when_unsatisfiable: "DoNotSchedule".into(),
            label_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "capstan.dev/statefulset".to_owned(),
                    group.statefulset.clone(),
                )])),
                match_expressions: None,
            }),
            ..Default::default()
        }]
    });
    let (resources, storage_size) = match (group.role, &spec.controllers) {
        (Role::Controller, Some(controllers)) => (
            default_resources(
                controllers.resources.as_ref(),
                DEFAULT_CONTROLLER_CPU,
                DEFAULT_CONTROLLER_MEMORY,
            ),
            controllers.storage_size.clone(),
        ),
        _ => (
            broker_resources(spec.resources.as_ref()),
            spec.storage.size.clone(),
        ),
    };
    let mut env_vars = vec![
        env_from_field("POD_NAME", "metadata.name"),
        env("NAMESPACE", &n.namespace),
        env("HEADLESS", &n.headless),
        env("ZONE", group.zone.as_deref().unwrap_or("")),
        env("ZONE_INDEX", &group.ids.zone.to_string()),
        env("ZONE_COUNT", &group.ids.zones.to_string()),
    ];
    // Clusters made before dedicated controllers existed keep exactly their environment (a new
    // one would restart their brokers); start.sh defaults these for them.
    if let Some(role) = group.role.label() {
        env_vars.push(env("KAFKA_ROLE", role));
        env_vars.push(env("CONFIG_FILE", group.role.config_file()));
        env_vars.push(env("NODE_ID_BASE", &group.ids.base.to_string()));
    }
    env_vars.extend([
        env_from_secret("KRAFT_CLUSTER_ID", &secret, "kraft-cluster-id"),
        env_from_secret("ADMIN_USERNAME", &secret, "admin-username"),
        env_from_secret("ADMIN_PASSWORD", &secret, "admin-password"),
        env_from_secret("CLIENT_USERNAME", &secret, "client-username"),
        env_from_secret("CLIENT_PASSWORD", &secret, "client-password"),
        env("KAFKA_HEAP_OPTS", &heap_options(&resources)),
    ]);
    env_vars.extend(external_env(external));
    env_vars.extend(tls.iter().flat_map(TlsMount::env));
    // Ready when it takes clients (a controller: when it takes the quorum's traffic); alive
    // while the controller listener answers, or the client one on a broker-only node.
    let (ready_port, alive_port) = match group.role {
        Role::Combined => (CLIENT_PORT, CONTROLLER_PORT),
        Role::Broker => (CLIENT_PORT, CLIENT_PORT),
        Role::Controller => (CONTROLLER_PORT, CONTROLLER_PORT),
    };
    let container = Container {
        name: "kafka".into(),
        image: Some(spec.image()),
        command: Some(vec!["/bin/bash".into(), "/config/start.sh".into()]),
        env: Some(env_vars),
        ports: Some(ports),
        readiness_probe: Some(tcp_probe(ready_port, 10, 3)),
        liveness_probe: Some(tcp_probe(alive_port, 60, 6)),
        resources: Some(resources.clone()),
        // Pod Security Standards "restricted": brokers need no privilege at all.
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            run_as_non_root: Some(true),
            ..Default::default()
        }),
        volume_mounts: Some(
            [
                VolumeMount {
                    name: "data".into(),
                    mount_path: DATA_DIR.into(),
                    ..Default::default()
                },
                VolumeMount {
                    name: "config".into(),
                    mount_path: "/config".into(),
                    read_only: Some(true),
                    ..Default::default()
                },
            ]
            .into_iter()
            .chain(tls.iter().map(|t| VolumeMount {
                name: t.volume(),
                mount_path: t.dir(),
                read_only: Some(true),
                ..Default::default()
            }))
            .collect(),
        ),
        ..Default::default()
    };
    let mut volumes = vec![Volume {
        name: "config".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: format!("{}-kafka-config", n.name),
            ..Default::default()
        }),
        ..Default::default()
    }];
    for t in &tls {
        volumes.push(Volume {
            name: t.volume(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(t.secret.clone()),
                // Readable by the broker (its fsGroup) only.
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let mut claim_labels = n.labels.clone();
    if let Some(role) = group.role.label() {
        claim_labels.insert(ROLE_LABEL.into(), role.into());
    }
    StatefulSet {
        metadata: n.meta(group.statefulset.clone()),
        spec: Some(StatefulSetSpec {
            service_name: Some(n.headless.clone()),
            replicas: Some(group.replicas),
            // KRaft voters must all come up to form the quorum.
            pod_management_policy: Some("Parallel".into()),
            // The operator restarts the pods itself, one at a time and only when Kafka can
            // spare the broker (see `rolling`): the StatefulSet's own rolling update waits for
            // a TCP probe only, not for in-sync replicas.
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                rolling_update: None,
            }),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([
                    ("capstan.dev/cluster".to_owned(), n.name.clone()),
                    (
                        "capstan.dev/statefulset".to_owned(),
                        group.statefulset.clone(),
                    ),
                ])),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(BTreeMap::from([(
                        CONFIG_HASH_ANNOTATION.to_owned(),
                        config_hash.to_owned(),
                    )])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    affinity: Some(affinity),
                    topology_spread_constraints: spread,
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(1000),
                        fs_group: Some(1000),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            localhost_profile: None,
                        }),
                        ..Default::default()
                    }),
                    termination_grace_period_seconds: Some(120),
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("data".into()),
                    labels: Some(claim_labels),
                    ..Default::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    storage_class_name: spec.storage.storage_class_name.clone(),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".to_owned(),
                            Quantity(storage_size),
                        )])),
                        limits: None,
                    }),
                    ..Default::default()
                }),
                status: None,
            }]),
            // Removed with the StatefulSet (which the KafkaCluster owns) only when asked;
            // never when scaling down, which must not lose a broker's data by accident.
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(
                        if spec.storage.delete_claim {
                            "Delete"
                        } else {
                            "Retain"
                        }
                        .into(),
                    ),
                    when_scaled: Some("Retain".into()),
                },
            ),
            ..Default::default()
        }),
        status: None,
    }
}

fn to_value<T: serde::Serialize>(object: &T) -> Result<Value> {
    serde_json::to_value(object).map_err(|e| Error::Serialize(e.to_string()))
}

fn service(
    n: &Names,
    name: String,
    headless: bool,
    kind: Option<&str>,
    ports: Vec<ServicePort>,
) -> Service {
    Service {
        metadata: n.meta(name),
        spec: Some(ServiceSpec {
            // The headless Service names every pod (the quorum's addresses); the others reach
            // the brokers.
            selector: Some(if headless {
                n.selector()
            } else {
                n.broker_selector()
            }),
            cluster_ip: headless.then(|| "None".to_owned()),
            publish_not_ready_addresses: headless.then_some(true),
            type_: kind.map(str::to_owned),
            ports: Some(ports),
            ..Default::default()
        }),
        status: None,
    }
}

/// The external Service of one broker: its pod only; a node port of its own (`NodePort`), or
/// the advertised host as external-dns's hostname (`LoadBalancer`).
fn broker_service(n: &Names, external: &ExternalListener, group: &Group, ordinal: i32) -> Service {
    let node_id = group.ids.of(ordinal);
    let pod = format!("{}-{ordinal}", group.statefulset);
    let mut meta = n.meta(format!("{}-kafka-external-{node_id}", n.name));
    if let (Some(host), "LoadBalancer") = (&external.advertised_host, external.kind.as_str()) {
        meta.annotations = Some(BTreeMap::from([(
            "external-dns.alpha.kubernetes.io/hostname".to_owned(),
            host.replace("{nodeId}", &node_id.to_string()),
        )]));
    }
    let mut selector = n.selector();
    selector.insert("statefulset.kubernetes.io/pod-name".into(), pod);
    let mut broker_port = port("external", EXTERNAL_PORT);
    if external.kind == "NodePort" {
        broker_port.node_port = Some(external.node_port_base() + node_id);
    }
    Service {
        metadata: meta,
        spec: Some(ServiceSpec {
            selector: Some(selector),
            type_: Some(external.kind.clone()),
            ports: Some(vec![broker_port]),
            ..Default::default()
        }),
        status: None,
    }
}

fn port(name: &str, number: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port: number,
        target_port: Some(IntOrString::Int(number)),
        ..Default::default()
    }
}

/// Every object the cluster owns, in apply order: ConfigMap, Secret, Services, StatefulSet(s),
/// PodDisruptionBudget, NetworkPolicy.
pub fn render(input: &RenderInput<'_>) -> Result<Vec<Value>> {
    let n = names(input.cluster)?;
    let groups = groups(input.cluster)?;
    let mut config_data = BTreeMap::from([
        (
            "server.properties".to_owned(),
            server_properties(input, &n, &groups),
        ),
        ("start.sh".to_owned(), START_SH.to_owned()),
    ]);
    if n.dedicated {
        config_data.insert(
            "controller.properties".to_owned(),
            controller_properties(input, &n, &groups),
        );
    }
    let config = ConfigMap {
        metadata: n.meta(format!("{}-kafka-config", n.name)),
        data: Some(config_data.clone()),
        ..Default::default()
    };
    let secret = Secret {
        metadata: n.meta(format!("{}-kafka-credentials", n.name)),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            (
                "kraft-cluster-id".to_owned(),
                ByteString(input.kraft_cluster_id.clone().into_bytes()),
            ),
            (
                "admin-username".to_owned(),
                ByteString(ADMIN_USERNAME.as_bytes().to_vec()),
            ),
            (
                "admin-password".to_owned(),
                ByteString(input.admin_password.clone().into_bytes()),
            ),
            (
                "client-username".to_owned(),
                ByteString(input.client_username.clone().into_bytes()),
            ),
            (
                "client-password".to_owned(),
                ByteString(input.client_password.clone().into_bytes()),
            ),
        ])),
        ..Default::default()
    };
    let mut objects = vec![
        to_value(&config)?,
        to_value(&secret)?,
        to_value(&service(
            &n,
            n.headless.clone(),
            true,
            None,
            vec![
                port("client", CLIENT_PORT),
                port("controller", CONTROLLER_PORT),
            ],
        ))?,
        to_value(&service(
            &n,
            format!("{}-kafka-bootstrap", n.name),
            false,
            Some("ClusterIP"),
            vec![port("client", CLIENT_PORT)],
        ))?,
    ];
    if let Some(authorization) = &input.cluster.spec.authorization
        && authorization.kind != "simple"
    {
        return Err(Error::Invalid(format!(
            "authorization.type must be simple, not {:?}",
            authorization.kind
        )));
    }
    if let Some(external) = &input.cluster.spec.listeners.external {
        if !matches!(external.kind.as_str(), "LoadBalancer" | "NodePort") {
            return Err(Error::Invalid(format!(
                "listeners.external.type must be LoadBalancer or NodePort, not {:?}",
                external.kind
            )));
        }
        if external.kind == "LoadBalancer" && external.advertised_host.is_none() {
            return Err(Error::Invalid(
                "listeners.external.advertisedHost is required for LoadBalancer (e.g. b{nodeId}.kafka.example.com, published by external-dns): a broker cannot know its load balancer's address when it starts".into(),
            ));
        }
        // The bootstrap address, then one Service per broker, which it advertises.
        objects.push(to_value(&service(
            &n,
            format!("{}-kafka-external", n.name),
            false,
            Some(&external.kind),
            vec![port("external", EXTERNAL_PORT)],
        ))?);
        for group in &groups {
            if group.role.serves_clients() {
                for ordinal in 0..group.replicas {
                    objects.push(to_value(&broker_service(&n, external, group, ordinal))?);
                }
            }
        }
    }
    for group in &groups {
        let hash = config_hash(
            &config_data,
            group.role,
            input.certificates_digest.as_deref(),
        );
        objects.push(to_value(&statefulset(input, &n, group, &hash))?);
    }
    let pdb = PodDisruptionBudget {
        metadata: n.meta(format!("{}-kafka", n.name)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(n.selector()),
                match_expressions: None,
            }),
            ..Default::default()
        }),
        status: None,
    };
    objects.push(to_value(&pdb)?);
    let own_pods = NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(n.selector()),
            match_expressions: None,
        }),
        ..Default::default()
    };
    let mut rules = vec![
        // Clients anywhere in the namespace (and the control plane) reach the client listener.
        NetworkPolicyIngressRule {
            ports: Some(vec![NetworkPolicyPort {
                port: Some(IntOrString::Int(CLIENT_PORT)),
                protocol: Some("TCP".into()),
                end_port: None,
            }]),
            from: None,
        },
        // Only the cluster's own brokers reach the controller listener.
        NetworkPolicyIngressRule {
            ports: Some(vec![NetworkPolicyPort {
                port: Some(IntOrString::Int(CONTROLLER_PORT)),
                protocol: Some("TCP".into()),
                end_port: None,
            }]),
            from: Some(vec![own_pods]),
        },
    ];
    if input.cluster.spec.listeners.external.is_some() {
        rules.push(NetworkPolicyIngressRule {
            ports: Some(vec![NetworkPolicyPort {
                port: Some(IntOrString::Int(EXTERNAL_PORT)),
                protocol: Some("TCP".into()),
                end_port: None,
            }]),
            from: None,
        });
    }
    let policy = NetworkPolicy {
        metadata: n.meta(format!("{}-kafka", n.name)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(n.selector()),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(rules),
            egress: None,
        }),
    };
    objects.push(to_value(&policy)?);
    Ok(objects)
}

/// The rendered objects as one multi-document YAML stream.
pub fn rendered_yaml(input: &RenderInput<'_>) -> Result<String> {
    let mut out = String::new();
    for object in render(input)? {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&object).map_err(|e| Error::Serialize(e.to_string()))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_quantities_are_read_in_both_unit_systems() {
        assert_eq!(quantity_bytes("2Gi"), Some(2 << 30));
        assert_eq!(quantity_bytes("1536Mi"), Some(1536 << 20));
        assert_eq!(quantity_bytes("1500M"), Some(1_500_000_000));
        assert_eq!(quantity_bytes("2147483648"), Some(2 << 30));
        assert_eq!(quantity_bytes("1e9"), Some(1_000_000_000));
        assert_eq!(quantity_bytes("0.5Gi"), Some(1 << 29));
        for bad in ["", "Gi", "2GB", "-1Gi", "two"] {
            assert_eq!(quantity_bytes(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_heap_is_half_the_memory_and_kafkas_default_without_one() {
        let with = |side: &str, memory: &str| {
            let map = Some(BTreeMap::from([(
                "memory".to_owned(),
                Quantity(memory.into()),
            )]));
            let mut resources = ResourceRequirements::default();
            if side == "limits" {
                resources.limits = map;
            } else {
                resources.requests = map;
            }
            heap_options(&resources)
        };
        assert_eq!(with("limits", "4Gi"), "-Xms2048m -Xmx2048m");
        assert_eq!(with("requests", "3Gi"), "-Xms1536m -Xmx1536m");
        assert_eq!(
            with("limits", "256Mi"),
            "-Xms256m -Xmx256m",
            "never below 256m"
        );
        assert_eq!(
            heap_options(&ResourceRequirements::default()),
            "-Xms1024m -Xmx1024m"
        );
        assert_eq!(
            heap_options(&broker_resources(None)),
            "-Xms1024m -Xmx1024m",
            "the default 2Gi"
        );
    }
}
