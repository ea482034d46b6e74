//! Rendering of what a KafkaCluster owns: checked field by field, and every object validated
//! against the official Kubernetes schemas with `kubernetes-validate` (PyPI).

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod support;

use capstan_operator::{crd_yaml, render, rendered_yaml};
use serde_json::{Value, json};
use support::{cluster, input, of_kind};

fn env(statefulset: &Value, name: &str) -> Value {
    statefulset["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .cloned()
        .unwrap()
}

fn properties(objects: &[Value]) -> String {
    of_kind(objects, "ConfigMap")[0]["data"]["server.properties"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_single_zone_cluster_spreads_its_brokers_over_hosts_with_rf_from_its_size() {
    let one = cluster(json!({}));
    let objects = render(&input(&one)).unwrap();
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "Secret",
            "Service",
            "Service",
            "StatefulSet",
            "PodDisruptionBudget",
            "NetworkPolicy"
        ]
    );
    for object in &objects {
        let owner = &object["metadata"]["ownerReferences"][0];
        assert_eq!(
            (
                owner["kind"].as_str(),
                owner["name"].as_str(),
                owner["controller"].as_bool()
            ),
            (Some("KafkaCluster"), Some("orders"), Some(true))
        );
        assert_eq!(object["metadata"]["namespace"], "tenants");
    }
    let sts = of_kind(&objects, "StatefulSet")[0];
    assert_eq!(sts["metadata"]["name"], "orders-kafka");
    assert_eq!(sts["spec"]["replicas"], 1);
    assert_eq!(sts["spec"]["serviceName"], "orders-kafka-headless");
    let pod = &sts["spec"]["template"]["spec"];
    assert!(pod["affinity"]["podAntiAffinity"].is_object());
    assert!(pod["affinity"]["nodeAffinity"].is_null());
    assert_eq!(pod["containers"][0]["image"], "apache/kafka:3.9.1");
    assert_eq!(
        pod["containers"][0]["readinessProbe"]["tcpSocket"]["port"],
        9092
    );
    assert_eq!(
        pod["containers"][0]["livenessProbe"]["tcpSocket"]["port"],
        9093
    );
    assert_eq!(env(sts, "ZONE")["value"], "");
    assert_eq!(
        env(sts, "ADMIN_PASSWORD")["valueFrom"]["secretKeyRef"]["name"],
        "orders-kafka-credentials"
    );
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "10Gi"
    );
    let props = properties(&objects);
    assert!(
        props.contains("default.replication.factor=1\n")
            && props.contains("min.insync.replicas=1\n"),
        "{props}"
    );
    assert!(
        props.contains(
            "controller.quorum.voters=0@orders-kafka-0.orders-kafka-headless.tenants.svc:9093\n"
        ),
        "{props}"
    );
    assert!(props.contains("sasl.enabled.mechanisms=SCRAM-SHA-512"));
    assert!(
        !props.contains("admin-secret"),
        "no password in the ConfigMap"
    );
    let headless = &of_kind(&objects, "Service")[0];
    assert_eq!(
        (
            headless["spec"]["clusterIP"].as_str(),
            headless["spec"]["publishNotReadyAddresses"].as_bool()
        ),
        (Some("None"), Some(true))
    );
    assert_eq!(
        of_kind(&objects, "PodDisruptionBudget")[0]["spec"]["maxUnavailable"],
        1
    );

    let three = cluster(json!({ "brokersPerZone": 3 }));
    let props = properties(&render(&input(&three)).unwrap());
    assert!(
        props.contains("default.replication.factor=3\n")
            && props.contains("min.insync.replicas=2\n"),
        "{props}"
    );
}

#[test]
fn a_multi_zone_cluster_pins_one_statefulset_per_zone_with_racks_and_rf_3() {
    let multi = cluster(
        json!({ "zoneMode": "multi", "zones": ["eu-west-1a", "eu-west-1b", "eu-west-1c"], "brokersPerZone": 2 }),
    );
    let objects = render(&input(&multi)).unwrap();
    let sets = of_kind(&objects, "StatefulSet");
    assert_eq!(sets.len(), 3);
    for (i, (sts, zone)) in sets
        .iter()
        .zip(["eu-west-1a", "eu-west-1b", "eu-west-1c"])
        .enumerate()
    {
        assert_eq!(sts["metadata"]["name"], format!("orders-kafka-z{i}"));
        assert_eq!(sts["spec"]["replicas"], 2);
        let term = &sts["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchExpressions"][0];
        assert_eq!(
            (term["key"].as_str(), term["values"][0].as_str()),
            (Some("topology.kubernetes.io/zone"), Some(zone))
        );
        assert_eq!(env(sts, "ZONE")["value"], zone, "broker.rack is the zone");
        assert_eq!(env(sts, "ZONE_INDEX")["value"], i.to_string());
        assert_eq!(env(sts, "ZONE_COUNT")["value"], "3");
    }
    let props = properties(&objects);
    for needle in [
        "default.replication.factor=3\n",
        "min.insync.replicas=2\n",
        "offsets.topic.replication.factor=3\n",
        "transaction.state.log.replication.factor=3\n",
        "transaction.state.log.min.isr=2\n",
    ] {
        assert!(props.contains(needle), "{needle} in {props}");
    }
    let voters = props
        .lines()
        .find_map(|l| l.strip_prefix("controller.quorum.voters="))
        .unwrap();
    let ids: Vec<&str> = voters
        .split(',')
        .map(|v| v.split('@').next().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["0", "3", "1", "4", "2", "5"],
        "node ids are unique across zones and dense: the gateway gives broker n port first + n"
    );
    let start = of_kind(&objects, "ConfigMap")[0]["data"]["start.sh"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        start.contains("broker.rack=${ZONE}")
            && start
                .contains("NODE_ID=$((${NODE_ID_BASE:-0} + ORDINAL * ZONE_COUNT + ZONE_INDEX))")
    );
}

#[test]
fn an_external_listener_gets_its_service_port_and_policy() {
    let external = cluster(
        json!({ "listeners": { "external": { "type": "LoadBalancer", "advertisedHost": "b{nodeId}.kafka.example.com" } } }),
    );
    let objects = render(&input(&external)).unwrap();
    let service = of_kind(&objects, "Service")
        .into_iter()
        .find(|s| s["metadata"]["name"] == "orders-kafka-external")
        .unwrap();
    assert_eq!(
        (
            service["spec"]["type"].as_str(),
            service["spec"]["ports"][0]["port"].as_i64()
        ),
        (Some("LoadBalancer"), Some(9094))
    );
    assert!(properties(&objects).contains("EXTERNAL://:9094"));
    let rules = of_kind(&objects, "NetworkPolicy")[0]["spec"]["ingress"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(rules, 3);
    let bad = cluster(json!({ "listeners": { "external": { "type": "Ingress" } } }));
    assert!(render(&input(&bad)).is_err());
    let nameless = cluster(json!({ "listeners": { "external": { "type": "LoadBalancer" } } }));
    let refused = render(&input(&nameless)).unwrap_err().to_string();
    assert!(
        refused.contains("advertisedHost is required for LoadBalancer"),
        "{refused}"
    );
}

#[test]
fn simple_authorization_runs_the_standard_authorizer_with_the_admin_as_super_user() {
    let open = cluster(json!({}));
    assert!(!properties(&render(&input(&open)).unwrap()).contains("authorizer"));
    let acls =
        cluster(json!({ "authorization": { "type": "simple", "superUsers": ["User:ops"] } }));
    let properties = properties(&render(&input(&acls)).unwrap());
    for line in [
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n",
        // ANONYMOUS: brokers registering over the PLAINTEXT controller listener.
        "super.users=User:capstan-admin;User:ANONYMOUS;User:ops\n",
        "allow.everyone.if.no.acl.found=false\n",
    ] {
        assert!(
            properties.contains(line),
            "{line} missing from\n{properties}"
        );
    }
    let bad = cluster(json!({ "authorization": { "type": "opa" } }));
    assert!(render(&input(&bad)).is_err());
}

#[test]
fn dedicated_controllers_are_a_statefulset_of_their_own_which_clients_never_reach() {
    let dedicated = cluster(
        json!({ "zoneMode": "multi", "zones": ["a", "b", "c"], "brokersPerZone": 2, "controllers": {}, "storage": { "size": "50Gi" } }),
    );
    let objects = render(&input(&dedicated)).unwrap();
    let sets: Vec<&str> = of_kind(&objects, "StatefulSet")
        .iter()
        .map(|s| s["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        sets,
        [
            "orders-kafka-controller",
            "orders-kafka-z0",
            "orders-kafka-z1",
            "orders-kafka-z2"
        ],
        "the controllers first: they are applied and rolled before the brokers"
    );
    let controllers = of_kind(&objects, "StatefulSet")[0];
    let pod = &controllers["spec"]["template"];
    assert_eq!(controllers["spec"]["replicas"], 3);
    assert_eq!(pod["metadata"]["labels"]["capstan.dev/role"], "controller");
    assert_eq!(env(controllers, "NODE_ID_BASE")["value"], "1000");
    assert_eq!(
        env(controllers, "CONFIG_FILE")["value"],
        "controller.properties"
    );
    // One per zone: allowed in the three zones only, and a skew the scheduler may not exceed.
    assert_eq!(
        pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchExpressions"][0]["values"],
        json!(["a", "b", "c"])
    );
    assert_eq!(
        pod["spec"]["topologySpreadConstraints"][0],
        json!({ "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": { "matchLabels": { "capstan.dev/statefulset": "orders-kafka-controller" } } })
    );
    let ports: Vec<i64> = pod["spec"]["containers"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, [9093], "a controller serves the quorum only");
    let claim = &controllers["spec"]["volumeClaimTemplates"][0];
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "5Gi");
    assert_eq!(
        claim["metadata"]["labels"]["capstan.dev/role"],
        "controller"
    );
    let broker = of_kind(&objects, "StatefulSet")[1];
    assert_eq!(
        broker["spec"]["template"]["metadata"]["labels"]["capstan.dev/role"],
        "broker"
    );
    assert_eq!(
        broker["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "50Gi"
    );
    // Clients reach brokers only; the headless Service names every pod (the quorum's addresses).
    let selector = |name: &str| {
        of_kind(&objects, "Service")
            .into_iter()
            .find(|s| s["metadata"]["name"] == name)
            .unwrap()["spec"]["selector"]
            .clone()
    };
    assert_eq!(
        selector("orders-kafka-bootstrap"),
        json!({ "capstan.dev/cluster": "orders", "capstan.dev/role": "broker" })
    );
    assert_eq!(
        selector("orders-kafka-headless"),
        json!({ "capstan.dev/cluster": "orders" })
    );
    let config = &of_kind(&objects, "ConfigMap")[0]["data"];
    assert!(
        config["server.properties"]
            .as_str()
            .unwrap()
            .contains("process.roles=broker\n")
    );
    assert!(
        config["controller.properties"]
            .as_str()
            .unwrap()
            .contains("controller.quorum.voters=1000@orders-kafka-controller-0.orders-kafka-headless.tenants.svc:9093,1001@")
    );
}

#[test]
fn clusters_without_dedicated_controllers_render_as_before() {
    // An operator upgrade must not change the pods of running clusters beyond their start
    // script: no role label, no new variables, the same selectors.
    let objects = render(&input(&cluster(json!({ "brokersPerZone": 3 })))).unwrap();
    let set = of_kind(&objects, "StatefulSet")[0];
    assert!(
        set["spec"]["template"]["metadata"]["labels"]
            .get("capstan.dev/role")
            .is_none()
    );
    let names: Vec<&str> = set["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(
        !names.contains(&"NODE_ID_BASE") && !names.contains(&"KAFKA_ROLE"),
        "{names:?}"
    );
    assert!(
        of_kind(&objects, "ConfigMap")[0]["data"]
            .get("controller.properties")
            .is_none()
    );
}

#[test]
fn invalid_zone_layouts_are_refused() {
    let two_zones = cluster(json!({ "zoneMode": "multi", "zones": ["a", "b"] }));
    assert!(render(&input(&two_zones)).is_err());
}

#[test]
fn every_rendered_object_and_the_crd_pass_the_official_kubernetes_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let shapes = [
        json!({}),
        json!({ "brokersPerZone": 3, "storage": { "size": "50Gi", "storageClassName": "gp3" },
                "resources": { "requests": { "cpu": "500m", "memory": "2Gi" } } }),
        json!({ "zoneMode": "multi", "zones": ["eu-west-1a", "eu-west-1b", "eu-west-1c"] }),
        json!({ "zoneMode": "multi", "zones": ["a", "b", "c"], "brokersPerZone": 2, "listeners": { "external": { "type": "NodePort" } } }),
        json!({ "zoneMode": "multi", "zones": ["a", "b", "c"], "controllers": { "resources": { "limits": { "memory": "2Gi" } } } }),
        json!({ "brokersPerZone": 2, "controllers": {}, "listeners": { "external": { "type": "LoadBalancer", "advertisedHost": "b{nodeId}.example.com" } } }),
        json!({ "zoneMode": "multi", "zones": ["a", "b", "c"], "controllers": {}, "listeners": { "internal": { "tls": { "secretName": "in" } },
            "external": { "type": "NodePort", "tls": { "secretName": "out" } } } }),
    ];
    let mut files = Vec::new();
    for (i, spec) in shapes.into_iter().enumerate() {
        let resource = cluster(spec);
        let path = dir.path().join(format!("shape-{i}.yaml"));
        std::fs::write(&path, rendered_yaml(&input(&resource)).unwrap()).unwrap();
        files.push(path);
    }
    let crd = dir.path().join("crd.yaml");
    std::fs::write(&crd, crd_yaml().unwrap()).unwrap();
    files.push(crd);
    let output = std::process::Command::new("kubernetes-validate")
        .args(["--kubernetes-version", "1.35.0", "--strict", "--quiet"])
        .args(&files)
        .output()
        .expect("kubernetes-validate must be installed (pip install kubernetes-validate; scripts/test does it)");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_chart_ships_exactly_the_crd_of_the_rust_types() {
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/capstan/crds/kafkaclusters.capstan.dev.yaml"))
        .expect("charts/capstan/crds/kafkaclusters.capstan.dev.yaml (regenerate: cargo run -- crd > that file)");
    assert_eq!(
        shipped,
        crd_yaml().unwrap(),
        "the chart's CRD drifted: run `cargo run -- crd > charts/capstan/crds/kafkaclusters.capstan.dev.yaml`"
    );
}
