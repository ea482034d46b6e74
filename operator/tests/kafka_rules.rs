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
        (
            "dedicated controllers",
            cluster(json!({ "brokersPerZone": 4, "controllers": {} })),
        ),
        (
            "TLS on both listeners, dedicated controllers",
            cluster(
                json!({ "brokersPerZone": 3, "controllers": {}, "listeners": { "internal": { "tls": { "secretName": "orders-internal-tls" } },
                    "external": { "type": "NodePort", "tls": { "secretName": "orders-external-tls" } } } }),
            ),
        ),
        (
            "external listener with TLS",
            cluster(
                json!({ "brokersPerZone": 3, "listeners": { "external": { "type": "LoadBalancer", "advertisedHost": "b{nodeId}.kafka.example.com", "tls": { "secretName": "orders-kafka-tls" } } } }),
            ),
        ),
        (
            "dedicated controllers, multi-zone, external node ports, authorization",
            cluster(
                json!({ "zoneMode": "multi", "zones": ["a", "b", "c"], "brokersPerZone": 2, "controllers": { "storageSize": "2Gi" },
                    "listeners": { "external": { "type": "NodePort" } }, "authorization": { "type": "simple" } }),
            ),
        ),
    ]
}

/// One Kafka node as it would start: its pod, its StatefulSet, and its configuration as the
/// start script leaves it.
struct Node<'a> {
    pod: String,
    statefulset: &'a Value,
    config: BTreeMap<String, String>,
}

impl Node<'_> {
    fn roles(&self) -> BTreeSet<&str> {
        self.config["process.roles"].split(',').collect()
    }

    fn id(&self) -> i32 {
        self.config["node.id"].parse().unwrap()
    }

    /// Listener names of a comma-separated list of `NAME://host:port`.
    fn listener_names(&self, key: &str) -> BTreeSet<String> {
        self.config
            .get(key)
            .map(|list| {
                list.split(',')
                    .map(|l| l.split_once("://").unwrap().0.to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Every node of the rendered cluster: each pod of each StatefulSet started (see [`started`]).
fn nodes(objects: &[Value]) -> Vec<Node<'_>> {
    of_kind(objects, "StatefulSet")
        .into_iter()
        .flat_map(|statefulset| {
            let name = statefulset["metadata"]["name"].as_str().unwrap();
            (0..statefulset["spec"]["replicas"].as_i64().unwrap()).map(move |ordinal| {
                let pod = format!("{name}-{ordinal}");
                let config = started(objects, statefulset, &pod);
                Node {
                    pod,
                    statefulset,
                    config,
                }
            })
        })
        .collect()
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
        for node in nodes(&objects) {
            let mounts =
                node.statefulset["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
                    .as_array()
                    .unwrap();
            let data = mounts.iter().find(|m| m["name"] == "data").unwrap()["mountPath"]
                .as_str()
                .unwrap();
            for dir in node.config["log.dirs"].split(',') {
                assert!(
                    dir.starts_with(&format!("{data}/")) && dir.len() > data.len() + 1,
                    "{shape}: {}: log dir {dir} must be inside, not at, the volume mounted at {data}",
                    node.pod
                );
            }
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
        for node in nodes(&objects) {
            let config = &node.config;
            let protocols: BTreeMap<&str, &str> = config["listener.security.protocol.map"]
                .split(',')
                .map(|pair| pair.split_once(':').unwrap())
                .collect();
            let mechanisms = config
                .get("sasl.enabled.mechanisms")
                .map(String::as_str)
                .unwrap_or("GSSAPI");
            for name in node.listener_names("listeners") {
                let protocol = protocols.get(name.as_str()).unwrap_or_else(|| {
                    panic!("{shape}: {}: {name} has no security protocol", node.pod)
                });
                if protocol.starts_with("SASL") {
                    for mechanism in mechanisms.split(',') {
                        let key = format!(
                            "listener.name.{}.{}.sasl.jaas.config",
                            name.to_lowercase(),
                            mechanism.to_lowercase()
                        );
                        assert!(
                            config.contains_key(&key),
                            "{shape}: {}: SASL listener {name} has no {key}",
                            node.pod
                        );
                    }
                }
            }
            // A broker reaches the controllers by the protocol of controller.listener.names.
            for name in config["controller.listener.names"].split(',') {
                assert!(protocols.contains_key(name), "{shape}: {name}");
            }
            if node.roles().contains("broker") {
                assert!(
                    config["connections.max.reauth.ms"].parse::<i64>().unwrap() > 0,
                    "{shape}: sessions must re-authenticate (KIP-368) so that revoked credentials end"
                );
            }
        }
    }
}

#[test]
fn each_node_listens_as_its_roles_require() {
    // KafkaConfig's KRaft checks (`validateValues`): a controller-only node's listeners are
    // all in `controller.listener.names` and it advertises no broker listener; a broker-only
    // node must not listen on a controller listener; a node that is both listens on one; a
    // broker's `inter.broker.listener.name` is one of its listeners and advertised.
    for (shape, cluster) in shapes() {
        let objects = rendered(&cluster);
        for node in nodes(&objects) {
            let listeners = node.listener_names("listeners");
            let controller: BTreeSet<String> = node.config["controller.listener.names"]
                .split(',')
                .map(str::to_owned)
                .collect();
            let advertised = node.listener_names("advertised.listeners");
            let roles = node.roles();
            let pod = &node.pod;
            assert!(
                !roles.is_empty() && roles.iter().all(|r| ["broker", "controller"].contains(r)),
                "{shape}: {pod}: {roles:?}"
            );
            if roles.contains("controller") {
                assert!(
                    !listeners.is_disjoint(&controller),
                    "{shape}: {pod}: a controller listens on a controller listener"
                );
            } else {
                assert!(
                    listeners.is_disjoint(&controller),
                    "{shape}: {pod}: a broker-only node may not listen on {controller:?}"
                );
            }
            if roles.contains("broker") {
                let inter = &node.config["inter.broker.listener.name"];
                assert!(
                    listeners.contains(inter) && advertised.contains(inter),
                    "{shape}: {pod}"
                );
                assert!(advertised.is_subset(&listeners), "{shape}: {pod}");
                assert!(advertised.is_disjoint(&controller), "{shape}: {pod}");
            } else {
                assert!(
                    listeners.is_subset(&controller),
                    "{shape}: {pod}: a controller-only node listens on controller listeners only"
                );
                assert!(advertised.is_subset(&controller), "{shape}: {pod}");
            }
            // An authorizing cluster authorizes on its controllers too: they take the ACL and
            // user changes brokers forward.
            if cluster.spec.authorization.is_some() {
                assert!(
                    node.config.contains_key("authorizer.class.name")
                        && node.config["super.users"].contains("User:ANONYMOUS"),
                    "{shape}: {pod}"
                );
            }
        }
    }
}

#[test]
fn node_ids_are_unique_racks_follow_zones_and_voters_are_the_controllers() {
    // KRaft: `node.id` unique in the cluster and every voter of `controller.quorum.voters`
    // one of its controllers at that controller's own address (KafkaRaftServer, RaftConfig);
    // an odd number of voters (a majority of 2k+1 survives k failures; one more adds no
    // tolerance, Kafka's KRaft operations docs); `broker.rack` per zone for rack-aware replica
    // placement.
    for (shape, cluster) in shapes() {
        let objects = rendered(&cluster);
        let nodes = nodes(&objects);
        let mut ids = BTreeSet::new();
        for node in &nodes {
            assert!(
                ids.insert(node.id()),
                "{shape}: node id {} twice",
                node.id()
            );
        }
        let voters: BTreeMap<i32, String> = nodes[0].config["controller.quorum.voters"]
            .split(',')
            .map(|v| {
                let (id, address) = v.split_once('@').unwrap();
                (id.parse().unwrap(), address.to_owned())
            })
            .collect();
        let controllers: BTreeMap<i32, &Node<'_>> = nodes
            .iter()
            .filter(|n| n.roles().contains("controller"))
            .map(|n| (n.id(), n))
            .collect();
        assert_eq!(
            voters.keys().collect::<Vec<_>>(),
            controllers.keys().collect::<Vec<_>>(),
            "{shape}"
        );
        // Where the operator picks the quorum's size (dedicated controllers) it is odd; without
        // them the voters are the brokers, as many as the spec asks for.
        if cluster.spec.controllers.is_some() {
            assert_eq!(voters.len() % 2, 1, "{shape}: {} voters", voters.len());
        }
        for (id, address) in &voters {
            assert!(
                address.starts_with(&format!("{}.orders-kafka-headless.", controllers[id].pod))
                    && address.ends_with(":9093"),
                "{shape}: voter {id} at {address}"
            );
        }
        for node in &nodes {
            assert_eq!(
                node.config["controller.quorum.voters"],
                nodes[0].config["controller.quorum.voters"],
                "{shape}: every node knows the same quorum"
            );
        }
        let brokers: Vec<&Node<'_>> = nodes
            .iter()
            .filter(|n| n.roles().contains("broker"))
            .collect();
        if cluster.spec.zone_mode == capstan_operator::ZoneMode::Multi {
            let racks: BTreeSet<&str> = brokers
                .iter()
                .map(|n| n.config["broker.rack"].as_str())
                .collect();
            assert_eq!(
                racks,
                BTreeSet::from(["a", "b", "c"]),
                "{shape}: one rack per zone"
            );
        }
        // Brokers' ids are dense (the Kafka gateway maps broker n to port first + n).
        let mut broker_ids: Vec<i32> = brokers.iter().map(|n| n.id()).collect();
        broker_ids.sort_unstable();
        assert_eq!(
            broker_ids,
            (0..brokers.len() as i32).collect::<Vec<_>>(),
            "{shape}"
        );
        // min.insync.replicas above the replication factor makes every acks=all write fail
        // (NotEnoughReplicas).
        let rf: usize = brokers[0].config["default.replication.factor"]
            .parse()
            .unwrap();
        let min_isr: usize = brokers[0].config["min.insync.replicas"].parse().unwrap();
        assert!(
            min_isr <= rf && rf <= brokers.len(),
            "{shape}: rf {rf}, min isr {min_isr}"
        );
    }
}

#[test]
fn dedicated_controllers_do_not_change_with_the_brokers() {
    // Kafka cannot change a static quorum (`controller.quorum.voters`): with dedicated
    // controllers the voters, and the controllers' pods, are the same whatever the broker count.
    let voters_and_controllers = |brokers: i32| {
        let objects = rendered(&cluster(
            json!({ "zoneMode": "multi", "zones": ["a", "b", "c"], "brokersPerZone": brokers, "controllers": {} }),
        ));
        let controllers = of_kind(&objects, "StatefulSet")
            .into_iter()
            .find(|s| s["metadata"]["name"] == "orders-kafka-controller")
            .unwrap()
            .clone();
        (
            properties(&objects)["controller.quorum.voters"].clone(),
            controllers,
        )
    };
    let (voters, controllers) = voters_and_controllers(1);
    for brokers in [2, 5] {
        assert_eq!(
            voters_and_controllers(brokers),
            (voters.clone(), controllers.clone())
        );
    }
    assert_eq!(voters.split(',').count(), 3);
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
    // With dedicated controllers each rolls for its own configuration only.
    let hashes = |spec: Value| {
        let objects = rendered(&cluster(spec));
        let of = |name: &str| {
            of_kind(&objects, "StatefulSet")
                .into_iter()
                .find(|s| s["metadata"]["name"] == name)
                .unwrap()["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
                .clone()
        };
        (of("orders-kafka-controller"), of("orders-kafka"))
    };
    let (controllers, brokers) = hashes(json!({ "controllers": {} }));
    let (same_controllers, new_brokers) =
        hashes(json!({ "controllers": {}, "listeners": { "external": { "type": "NodePort" } } }));
    assert_eq!(
        controllers, same_controllers,
        "a broker listener does not restart the controllers"
    );
    assert_ne!(brokers, new_brokers);
    let (new_controllers, _) =
        hashes(json!({ "controllers": {}, "authorization": { "type": "simple" } }));
    assert_ne!(
        controllers, new_controllers,
        "the controllers authorize too"
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
    // A dedicated controller holds the metadata log only: 1Gi, half of it heap, unless told.
    let controller = |spec: Value| {
        let objects = rendered(&cluster(spec));
        let set = of_kind(&objects, "StatefulSet")
            .into_iter()
            .find(|s| s["metadata"]["name"] == "orders-kafka-controller")
            .unwrap()
            .clone();
        (
            env(&set, "KAFKA_HEAP_OPTS"),
            set["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
                .clone(),
        )
    };
    assert_eq!(
        controller(json!({ "controllers": {} })),
        ("-Xms512m -Xmx512m".to_owned(), json!("1Gi"))
    );
    assert_eq!(
        controller(json!({ "controllers": { "resources": { "limits": { "memory": "3Gi" } } } })),
        ("-Xms1536m -Xmx1536m".to_owned(), json!("3Gi"))
    );
}

/// `server.properties` as the start script leaves it for the broker `pod` of `statefulset`,
/// run by bash with Kafka's tools stubbed out and the pod's environment as rendered (the
/// downward API values given: the pod's name and its node's address).
fn started(objects: &[Value], statefulset: &Value, pod: &str) -> BTreeMap<String, String> {
    let start = run_start(objects, statefulset, pod, TLS_KEY);
    assert!(
        start.output.status.success(),
        "start.sh failed for {pod}: {}",
        String::from_utf8_lossy(&start.output.stderr)
    );
    start.config
}

/// A PKCS#8 private key and a certificate as cert-manager writes them (only their PEM framing
/// matters to the start script; Kafka parses them).
const TLS_KEY: &str =
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";
const TLS_CRT: &str =
    "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIE\n-----END CERTIFICATE-----\n";

/// What one run of the start script left.
struct Start {
    output: std::process::Output,
    /// `server.properties` as it ends.
    config: BTreeMap<String, String>,
    /// The key stores it made, by the path the pod has them at: contents and file mode.
    keystores: BTreeMap<String, (String, u32)>,
}

/// Runs the start script of `pod` with each TLS Secret it mounts holding `tls_key`,
/// [`TLS_CRT`] and a `ca.crt`.
fn run_start(objects: &[Value], statefulset: &Value, pod: &str, tls_key: &str) -> Start {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // The ConfigMap's files, as its volume mounts them at /config.
    for (file, text) in of_kind(objects, "ConfigMap")[0]["data"]
        .as_object()
        .unwrap()
    {
        std::fs::write(dir.path().join(file), text.as_str().unwrap()).unwrap();
    }
    let out = dir.path().join("out.properties");
    let script = start_script(objects)
        .replace("\"/config/", &format!("\"{}/", dir.path().display()))
        .replace("/tmp/server.properties", out.to_str().unwrap())
        .replace("/opt/kafka/bin/kafka-storage.sh", "true")
        .replace("exec /opt/kafka/bin/kafka-server-start.sh", "true");
    let mut command = std::process::Command::new("bash");
    command.arg("-c").arg(script).env_clear();
    let mut keystores = BTreeMap::new();
    let mounts = &statefulset["spec"]["template"]["spec"]["containers"][0]["volumeMounts"];
    for var in statefulset["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
    {
        let name = var["name"].as_str().unwrap();
        let value = match var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            Some("metadata.name") => pod.to_owned(),
            Some("status.hostIP") => "10.0.0.7".to_owned(),
            Some(other) => panic!("unexpected field {other}"),
            None => var["value"].as_str().unwrap_or("secret").to_owned(),
        };
        let value = if name.ends_with("_TLS_DIR") {
            // Where the pod mounts a TLS Secret (it must): here, a directory holding one.
            assert!(
                mounts
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["mountPath"] == json!(value) && m["readOnly"] == true),
                "{name}: the TLS Secret is mounted where the script reads it"
            );
            let tls = dir.path().join(name);
            std::fs::create_dir(&tls).unwrap();
            std::fs::write(tls.join("tls.key"), tls_key).unwrap();
            std::fs::write(tls.join("tls.crt"), TLS_CRT).unwrap();
            std::fs::write(tls.join("ca.crt"), TLS_CRT).unwrap();
            tls.display().to_string()
        } else if name.ends_with("_KEYSTORE") {
            let here = dir.path().join(format!("{name}.pem"));
            keystores.insert(value, here.clone());
            here.display().to_string()
        } else {
            value
        };
        command.env(name, value);
    }
    let output = command.output().unwrap();
    let config = std::fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect::<BTreeMap<_, _>>();
    let keystores = keystores
        .into_iter()
        .filter_map(|(pod_path, here)| {
            let text = std::fs::read_to_string(&here).ok()?;
            let mode = std::fs::metadata(&here).unwrap().permissions().mode() & 0o777;
            Some((pod_path, (text, mode)))
        })
        .collect();
    Start {
        output,
        config,
        keystores,
    }
}

#[test]
fn every_tls_listener_has_a_pem_key_store_the_start_script_makes() {
    // Kafka's SSL channels need a key store on the listener (DefaultSslEngineFactory); a PEM
    // key store file holds the PKCS#8 key and the chain, needs no store password, and refuses
    // a PKCS#1 key ("Private key could not be loaded"), so the script refuses one first.
    for (shape, cluster) in shapes() {
        let objects = rendered(&cluster);
        for node in nodes(&objects) {
            let protocols: BTreeMap<&str, &str> = node.config["listener.security.protocol.map"]
                .split(',')
                .map(|pair| pair.split_once(':').unwrap())
                .collect();
            for name in node.listener_names("listeners") {
                if !protocols[name.as_str()].ends_with("SSL") {
                    continue;
                }
                let prefix = format!("listener.name.{}.ssl.", name.to_lowercase());
                assert_eq!(
                    node.config
                        .get(&format!("{prefix}keystore.type"))
                        .map(String::as_str),
                    Some("PEM"),
                    "{shape}: {}",
                    node.pod
                );
                let location = &node.config[&format!("{prefix}keystore.location")];
                let start = run_start(&objects, node.statefulset, &node.pod, TLS_KEY);
                let (keystore, mode) = start
                    .keystores
                    .get(location)
                    .unwrap_or_else(|| panic!("{shape}: {location} is not made at start"));
                assert_eq!(*keystore, format!("{TLS_KEY}\n{TLS_CRT}"), "{shape}");
                assert_eq!(
                    *mode, 0o600,
                    "{shape}: the key is readable by the broker only"
                );
                // The inter-broker listener is also a client's: it must trust the peers.
                if name == node.config["inter.broker.listener.name"] {
                    let trust = &node.config[&format!("{prefix}truststore.location")];
                    assert_eq!(node.config[&format!("{prefix}truststore.type")], "PEM");
                    let mounted = node.statefulset["spec"]["template"]["spec"]["containers"][0]
                        ["volumeMounts"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|m| trust.starts_with(&format!("{}/", m["mountPath"].as_str().unwrap())));
                    assert!(mounted, "{shape}: {trust} is in a mounted Secret");
                }
            }
        }
    }
    let tls = rendered(&cluster(
        json!({ "listeners": { "external": { "type": "NodePort", "tls": { "secretName": "orders-tls" } } } }),
    ));
    let broker = of_kind(&tls, "StatefulSet")[0];
    let pkcs1 = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n";
    let start = run_start(&tls, broker, "orders-kafka-0", pkcs1);
    assert!(!start.output.status.success());
    assert!(
        String::from_utf8_lossy(&start.output.stderr).contains("privateKey.encoding: PKCS8"),
        "{}",
        String::from_utf8_lossy(&start.output.stderr)
    );
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
        let mut externals = BTreeSet::new();
        for node in nodes(&objects) {
            if !node.roles().contains("broker") {
                continue;
            }
            let listeners = node.listener_names("listeners");
            {
                let pod = node.pod.clone();
                let config = &node.config;
                let node_id = node.id();
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
