//! What Apache Kafka checks when a broker starts, checked on every shape of `KafkaCluster` the
//! operator renders: no cluster can run here, so these tests must know the rules. Each rule
//! cites where Kafka (or the experience of running it) states it.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::collections::{BTreeMap, BTreeSet};

mod support;

use capstan_operator::{CONFIG_HASH_ANNOTATION, KafkaCluster, render};
use serde_json::{Value, json};
use support::{cluster, input, of_kind};

fn rendered(cluster: &KafkaCluster) -> Vec<Value> {
    render(&input(cluster)).unwrap()
}

/// Every shape of KafkaCluster the operator supports.
fn shapes() -> Vec<(&'static str, KafkaCluster)> {
    vec![
        ("defaults", cluster(json!({}))),
        ("three brokers", cluster(json!({ "brokersPerZone": 3 }))),
        (
            "multi-zone",
            cluster(json!({ "zoneMode": "multi", "zones": ["a", "b", "c"], "brokersPerZone": 2 })),
        ),
        (
            "external load balancers",
            cluster(
                json!({ "listeners": { "external": { "type": "LoadBalancer", "advertisedHost": "b{nodeId}.kafka.example.com" } } }),
            ),
        ),
        (
            "external node ports, multi-zone",
            cluster(
                json!({ "zoneMode": "multi", "zones": ["a", "b", "c"], "brokersPerZone": 2, "listeners": { "external": { "type": "NodePort" } } }),
            ),
        ),
        (
            "authorization",
            cluster(json!({ "authorization": { "type": "simple" } })),
        ),
        (
            "volumes deleted with the cluster",
            cluster(json!({ "storage": { "size": "5Gi", "deleteClaim": true } })),
        ),
    ]
}

/// `server.properties` as a map (the start script appends node-specific lines).
fn properties(objects: &[Value]) -> BTreeMap<String, String> {
    of_kind(objects, "ConfigMap")[0]["data"]["server.properties"]
        .as_str()
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (key, value) = l.split_once('=').unwrap();
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

fn start_script(objects: &[Value]) -> String {
    of_kind(objects, "ConfigMap")[0]["data"]["start.sh"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn env(statefulset: &Value, name: &str) -> String {
    statefulset["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn log_dirs_are_never_the_root_of_a_volume() {
    // Kafka refuses to start when a log dir holds a directory that is not a partition, such as
    // ext4's `lost+found` at the root of a fresh volume (LogManager's log-dir loading;
    // Strimzi issue #1307, fixed there by a subdirectory).
    for (shape, cluster) in shapes() {
        let objects = rendered(&cluster);
        let log_dirs = properties(&objects)["log.dirs"].clone();
        let sts = of_kind(&objects, "StatefulSet")[0];
        let mounts = sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap();
        let data = mounts.iter().find(|m| m["name"] == "data").unwrap()["mountPath"]
            .as_str()
            .unwrap();
        for dir in log_dirs.split(',') {
            assert!(
                dir.starts_with(&format!("{data}/")) && dir.len() > data.len() + 1,
                "{shape}: log dir {dir} must be inside, not at, the volume mounted at {data}"
            );
        }
    }
}

#[test]
fn every_listener_has_a_protocol_and_every_sasl_listener_a_login() {
    // Kafka's broker config validation: each listener name needs a security protocol in
    // `listener.security.protocol.map` (KafkaConfig), and each SASL listener a JAAS entry,
    // `listener.name.<listener>.<mechanism>.sasl.jaas.config`, or the broker fails at start
    // with "Could not find a 'KafkaServer' or '<listener>.KafkaServer' entry" (JaasContext).
    for (shape, cluster) in shapes() {
        let objects = rendered(&cluster);
        let properties = properties(&objects);
        let script = start_script(&objects);
        let protocols: BTreeMap<&str, &str> = properties["listener.security.protocol.map"]
            .split(',')
            .map(|pair| pair.split_once(':').unwrap())
            .collect();
        let mechanisms = &properties["sasl.enabled.mechanisms"];
        for listener in properties["listeners"].split(',') {
            let name = listener.split_once("://").unwrap().0;
            let protocol = protocols
                .get(name)
                .unwrap_or_else(|| panic!("{shape}: {name} has no security protocol"));
            if protocol.starts_with("SASL") {
                for mechanism in mechanisms.split(',') {
                    let key = format!(
                        "listener.name.{}.{}.sasl.jaas.config",
                        name.to_lowercase(),
                        mechanism.to_lowercase()
                    );
                    assert!(
                        properties.contains_key(&key) || script.contains(&format!("{key}=")),
                        "{shape}: SASL listener {name} has no {key}"
                    );
                }
            }
        }
        assert!(
            properties["connections.max.reauth.ms"]
                .parse::<i64>()
                .unwrap()
                > 0,
            "{shape}: sessions must re-authenticate (KIP-368) so that revoked credentials end"
        );
    }
}

#[test]
fn node_ids_are_unique_racks_follow_zones_and_voters_are_the_nodes() {
    // KRaft: `node.id` unique in the cluster and every voter of `controller.quorum.voters`
    // one of them (KafkaRaftServer); `broker.rack` per zone for rack-aware replica placement.
    for (shape, cluster) in shapes() {
        let objects = rendered(&cluster);
        let mut ids = BTreeSet::new();
        let mut zones = BTreeSet::new();
        for sts in of_kind(&objects, "StatefulSet") {
            let index: i32 = env(sts, "ZONE_INDEX").parse().unwrap();
            let count: i32 = env(sts, "ZONE_COUNT").parse().unwrap();
            let replicas = sts["spec"]["replicas"].as_i64().unwrap() as i32;
            for ordinal in 0..replicas {
                // The start script's formula.
                assert!(
                    ids.insert(ordinal * count + index),
                    "{shape}: node id taken twice"
                );
            }
            zones.insert(env(sts, "ZONE"));
        }
        assert!(start_script(&objects).contains("NODE_ID=$((ORDINAL * ZONE_COUNT + ZONE_INDEX))"));
        let properties = properties(&objects);
        let voters: BTreeSet<i32> = properties["controller.quorum.voters"]
            .split(',')
            .map(|v| v.split_once('@').unwrap().0.parse().unwrap())
            .collect();
        assert_eq!(voters, ids, "{shape}");
        if cluster.spec.zone_mode == capstan_operator::ZoneMode::Multi {
            assert_eq!(zones.len(), 3, "{shape}: one rack per zone");
            assert!(start_script(&objects).contains("broker.rack=${ZONE}"));
        }
        // min.insync.replicas above the replication factor makes every acks=all write fail
        // (NotEnoughReplicas).
        let rf: i32 = properties["default.replication.factor"].parse().unwrap();
        let min_isr: i32 = properties["min.insync.replicas"].parse().unwrap();
        assert!(
            min_isr <= rf && rf as usize <= ids.len(),
            "{shape}: rf {rf}, min isr {min_isr}"
        );
    }
}

#[test]
fn a_changed_configuration_rolls_the_brokers_and_volumes_outlive_the_cluster_unless_asked() {
    let hash = |cluster: &KafkaCluster| {
        let objects = rendered(cluster);
        of_kind(&objects, "StatefulSet")[0]["spec"]["template"]["metadata"]["annotations"]
            [CONFIG_HASH_ANNOTATION]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let plain = cluster(json!({}));
    assert_eq!(hash(&plain), hash(&plain), "the same spec, the same pods");
    assert_ne!(
        hash(&plain),
        hash(&cluster(json!({ "authorization": { "type": "simple" } }))),
        "a new server.properties changes the pod template, so the StatefulSet rolls"
    );
    let policy = |cluster: &KafkaCluster| {
        rendered(cluster)
            .iter()
            .find(|o| o["kind"] == "StatefulSet")
            .unwrap()["spec"]["persistentVolumeClaimRetentionPolicy"]
            .clone()
    };
    assert_eq!(
        policy(&plain),
        json!({ "whenDeleted": "Retain", "whenScaled": "Retain" })
    );
    assert_eq!(
        policy(&cluster(
            json!({ "storage": { "size": "5Gi", "deleteClaim": true } })
        )),
        json!({ "whenDeleted": "Delete", "whenScaled": "Retain" })
    );
}

/// What the Pod Security Standards' "restricted" level forbids in a pod template
/// (https://kubernetes.io/docs/concepts/security/pod-security-standards/), as the PodSecurity
/// admission controller checks it: a namespace labelled `enforce: restricted` admits the
/// brokers only when this is empty. (tests/chart checks the chart's pods with the same rules.)
fn restricted_violations(pod: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let pod_context = &pod["securityContext"];
    for flag in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod[flag] == true {
            problems.push(format!("{flag} is set"));
        }
    }
    let allowed_volumes = [
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    for volume in pod["volumes"].as_array().into_iter().flatten() {
        for kind in volume.as_object().unwrap().keys() {
            if kind != "name" && !allowed_volumes.contains(&kind.as_str()) {
                problems.push(format!("volume of type {kind}"));
            }
        }
    }
    if pod_context["runAsUser"] == 0 {
        problems.push("the pod runs as root".into());
    }
    let containers = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|field| pod[*field].as_array().cloned().unwrap_or_default());
    for container in containers {
        let name = container["name"].as_str().unwrap().to_owned();
        let context = &container["securityContext"];
        if context["privileged"] == true {
            problems.push(format!("{name} is privileged"));
        }
        if context["allowPrivilegeEscalation"] != false {
            problems.push(format!("{name} may escalate privileges"));
        }
        let dropped = context["capabilities"]["drop"].as_array().cloned();
        if !dropped.unwrap_or_default().contains(&json!("ALL")) {
            problems.push(format!("{name} does not drop ALL capabilities"));
        }
        let added = context["capabilities"]["add"].as_array().cloned();
        if added
            .unwrap_or_default()
            .iter()
            .any(|c| c != "NET_BIND_SERVICE")
        {
            problems.push(format!("{name} adds capabilities"));
        }
        let non_root = if context["runAsNonRoot"].is_null() {
            &pod_context["runAsNonRoot"]
        } else {
            &context["runAsNonRoot"]
        };
        if non_root != true || context["runAsUser"] == 0 {
            problems.push(format!("{name} may run as root"));
        }
        let seccomp = if context["seccompProfile"].is_null() {
            &pod_context["seccompProfile"]["type"]
        } else {
            &context["seccompProfile"]["type"]
        };
        if seccomp != "RuntimeDefault" && seccomp != "Localhost" {
            problems.push(format!("{name} has no RuntimeDefault seccomp profile"));
        }
        for port in container["ports"].as_array().into_iter().flatten() {
            if port["hostPort"].as_i64().unwrap_or(0) != 0 {
                problems.push(format!("{name} uses a host port"));
            }
        }
    }
    problems
}

#[test]
fn brokers_meet_the_restricted_pod_security_standard() {
    for (shape, cluster) in shapes() {
        for statefulset in of_kind(&rendered(&cluster), "StatefulSet") {
            let problems = restricted_violations(&statefulset["spec"]["template"]["spec"]);
            assert!(problems.is_empty(), "{shape}: {problems:?}");
        }
    }
    // The check itself finds what the standard forbids.
    assert_eq!(
        restricted_violations(
            &json!({ "containers": [{ "name": "c" }], "volumes": [{ "name": "h", "hostPath": {} }] })
        ),
        [
            "volume of type hostPath",
            "c may escalate privileges",
            "c does not drop ALL capabilities",
            "c may run as root",
            "c has no RuntimeDefault seccomp profile",
        ]
    );
}

/// Kafka's start script sizes the JVM heap from `KAFKA_HEAP_OPTS` (1 GiB by default whatever the
/// container may use): a broker gets half of its memory as heap, and requests and a memory
/// limit when the spec gives none, so the scheduler places it where that memory is.
#[test]
fn the_heap_follows_the_memory_a_broker_is_given() {
    let heap = |cluster: &KafkaCluster| {
        let objects = rendered(cluster);
        let statefulset = of_kind(&objects, "StatefulSet")[0].clone();
        (
            env(&statefulset, "KAFKA_HEAP_OPTS"),
            statefulset["spec"]["template"]["spec"]["containers"][0]["resources"].clone(),
        )
    };
    let (options, resources) = heap(&cluster(json!({})));
    assert_eq!(options, "-Xms1024m -Xmx1024m");
    assert_eq!(resources["requests"]["memory"], "2Gi");
    assert_eq!(resources["limits"]["memory"], "2Gi");
    assert!(resources["requests"]["cpu"].is_string());
    let (options, resources) = heap(&cluster(
        json!({ "resources": { "limits": { "memory": "8Gi", "cpu": "2" }, "requests": { "memory": "8Gi" } } }),
    ));
    assert_eq!(options, "-Xms4096m -Xmx4096m");
    assert_eq!(
        resources,
        json!({ "limits": { "memory": "8Gi", "cpu": "2" }, "requests": { "memory": "8Gi" } })
    );
}

/// `server.properties` as the start script leaves it for the broker `pod` of `statefulset`,
/// run by bash with Kafka's tools stubbed out and the pod's environment as rendered (the
/// downward API values given: the pod's name and its node's address).
fn started(objects: &[Value], statefulset: &Value, pod: &str) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.properties");
    let out = dir.path().join("out.properties");
    std::fs::write(
        &config,
        of_kind(objects, "ConfigMap")[0]["data"]["server.properties"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let script = start_script(objects)
        .replace("/config/server.properties", config.to_str().unwrap())
        .replace("/tmp/server.properties", out.to_str().unwrap())
        .replace("/opt/kafka/bin/kafka-storage.sh", "true")
        .replace("exec /opt/kafka/bin/kafka-server-start.sh", "true");
    let mut command = std::process::Command::new("bash");
    command.arg("-c").arg(script).env_clear();
    for var in statefulset["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
    {
        let value = match var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            Some("metadata.name") => pod.to_owned(),
            Some("status.hostIP") => "10.0.0.7".to_owned(),
            Some(other) => panic!("unexpected field {other}"),
            None => var["value"].as_str().unwrap_or("secret").to_owned(),
        };
        command.env(var["name"].as_str().unwrap(), value);
    }
    let status = command.status().unwrap();
    assert!(status.success(), "start.sh failed for {pod}");
    std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn every_listener_brokers_open_to_clients_is_advertised_with_the_brokers_own_address() {
    // Kafka requires every advertised listener to be a configured one (KafkaConfig validation,
    // "advertised.listeners listener names must be equal to or a subset of the ones defined
    // in listeners"); a client-facing listener left out is advertised as the host's name,
    // which clients outside cannot reach. Each broker must advertise an address that reaches
    // it alone: clients connect to each partition's leader directly.
    for (shape, cluster) in shapes() {
        let objects = rendered(&cluster);
        let listeners: BTreeSet<String> = properties(&objects)["listeners"]
            .split(',')
            .map(|l| l.split_once("://").unwrap().0.to_owned())
            .collect();
        let mut externals = BTreeSet::new();
        for statefulset in of_kind(&objects, "StatefulSet") {
            let name = statefulset["metadata"]["name"].as_str().unwrap();
            for ordinal in 0..statefulset["spec"]["replicas"].as_i64().unwrap() {
                let pod = format!("{name}-{ordinal}");
                let config = started(&objects, statefulset, &pod);
                let node_id: i64 = config["node.id"].parse().unwrap();
                let advertised: BTreeMap<String, String> = config["advertised.listeners"]
                    .split(',')
                    .map(|l| {
                        let (name, address) = l.split_once("://").unwrap();
                        (name.to_owned(), address.to_owned())
                    })
                    .collect();
                let client_facing: BTreeSet<String> = listeners
                    .iter()
                    .filter(|l| *l != "CONTROLLER")
                    .cloned()
                    .collect();
                assert_eq!(
                    advertised.keys().cloned().collect::<BTreeSet<_>>(),
                    client_facing,
                    "{shape}: {pod}"
                );
                assert!(
                    advertised["INTERNAL"].starts_with(&format!("{pod}.")),
                    "{shape}"
                );
                if let Some(external) = advertised.get("EXTERNAL") {
                    assert!(
                        externals.insert(external.clone()),
                        "{shape}: {external} twice"
                    );
                    let service = of_kind(&objects, "Service")
                        .into_iter()
                        .find(|s| {
                            s["metadata"]["name"] == format!("orders-kafka-external-{node_id}")
                        })
                        .unwrap_or_else(|| panic!("{shape}: no Service for broker {node_id}"));
                    assert_eq!(
                        service["spec"]["selector"]["statefulset.kubernetes.io/pod-name"],
                        json!(pod),
                        "{shape}"
                    );
                    let port = &service["spec"]["ports"][0];
                    if service["spec"]["type"] == "NodePort" {
                        assert_eq!(
                            *external,
                            format!("10.0.0.7:{}", port["nodePort"]),
                            "{shape}"
                        );
                    } else {
                        assert_eq!(
                            *external,
                            format!("b{node_id}.kafka.example.com:9094"),
                            "{shape}"
                        );
                        assert_eq!(
                            service["metadata"]["annotations"]["external-dns.alpha.kubernetes.io/hostname"],
                            json!(format!("b{node_id}.kafka.example.com")),
                            "{shape}"
                        );
                    }
                }
            }
        }
    }
}
