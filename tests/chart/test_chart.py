"""The Helm chart, rendered offline with Helm's own library (helm-python-sdk), linted, and every
rendered object validated against the official Kubernetes schemas (kubernetes-validate)."""

import json
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "capstan"
KUBERNETES = "1.35.0"


def render(values=None):
    chart = helm.Chart.load(str(CHART))
    manifests = chart.render(values or {}, name="capstan", namespace="platform", is_install=True)
    return [doc for text in manifests.values() for doc in yaml.safe_load_all(text) if doc]


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def validate(objects):
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def test_the_default_values_render_valid_objects():
    objects = render()
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                            "Deployment", "Deployment", "PersistentVolumeClaim", "Service"])
    validate(objects)
    operator = next(d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "capstan-operator")
    container = operator["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["operator", "--listen", "0.0.0.0:8090", "--lease", "capstan-operator"]
    assert container["image"] == "ghcr.io/capstan/capstan:0.1.0"
    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    control = next(d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "capstan")
    env = {e["name"]: e for e in control["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CAPSTAN_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "capstan", "key": "database-url"}
    assert env["CAPSTAN_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "capstan", "key": "secret-key"}
    assert "CAPSTAN_STRIPE_SECRET_KEY" not in env
    assert env["CAPSTAN_DEFAULT_PLACEMENT"]["value"] == "shared"
    assert env["CAPSTAN_KAFKA_ADVERTISE"]["value"] == "capstan.platform.svc:9092"
    assert "CAPSTAN_KAFKA_NODE_PORTS" not in env
    assert not {"CAPSTAN_SMTP_URL", "CAPSTAN_SIGN_UP_CONFIRMATION", "CAPSTAN_PUBLIC_URL"} & set(env)
    ports = {p["name"]: p["containerPort"] for p in control["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert ports == {"api": 8080, "gateway": 8081, "kafka": 9092}
    service = by_kind(objects, "Service")[0]
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"api": 8080, "gateway": 8081, "kafka": 9092}


def test_non_default_values_reach_the_objects():
    objects = render({
        "image": {"repository": "registry.local/capstan", "tag": "1.2.3"},
        "operator": {"enabled": False},
        "controlPlane": {
            "stripe": {"enabled": True, "secretName": "stripe-keys"},
            "restEndpoint": "kafka-rest.example.com",
            "trustedProxies": ["10.0.0.0/8", "fd00::/8"],
            "metricsTokenSecret": "scrape-token",
            "mail": {"smtpSecretName": "smtp", "from": "Kafka <kafka@example.com>", "signUpConfirmation": "email"},
            "ingress": {"enabled": True, "className": "nginx", "tlsSecretName": "capstan-tls"},
            "persistence": {"size": "50Gi", "storageClassName": "gp3"},
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
        },
    })
    validate(objects)
    assert not [d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "capstan-operator"]
    assert not by_kind(objects, "ClusterRole")
    control = by_kind(objects, "Deployment")[0]
    container = control["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.local/capstan:1.2.3"
    assert container["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    env = {e["name"]: e for e in container["env"]}
    assert env["CAPSTAN_STRIPE_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "stripe-keys", "key": "webhook-secret"}
    assert env["CAPSTAN_REST_ENDPOINT"]["value"] == "kafka-rest.example.com"
    assert env["CAPSTAN_TRUSTED_PROXIES"]["value"] == "10.0.0.0/8,fd00::/8"
    assert env["CAPSTAN_METRICS_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "scrape-token", "key": "metrics-token"}
    assert env["CAPSTAN_SMTP_URL"]["valueFrom"]["secretKeyRef"] == {"name": "smtp", "key": "smtp-url"}
    assert env["CAPSTAN_MAIL_FROM"]["value"] == "Kafka <kafka@example.com>"
    assert env["CAPSTAN_SIGN_UP_CONFIRMATION"]["value"] == "email"
    # Links in mail point at the console as users reach it: the ingress, over its TLS.
    assert env["CAPSTAN_PUBLIC_URL"]["value"] == "https://capstan.example.com"
    ingress = by_kind(objects, "Ingress")[0]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert [r["host"] for r in ingress["spec"]["rules"]] == ["capstan.example.com", "kafka-rest.capstan.example.com"]
    pvc = by_kind(objects, "PersistentVolumeClaim")[0]
    assert (pvc["spec"]["storageClassName"], pvc["spec"]["resources"]["requests"]["storage"]) == ("gp3", "50Gi")


def test_the_operator_role_is_least_privilege():
    role = by_kind(render(), "ClusterRole")[0]
    granted = {}
    for rule in role["rules"]:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted[(group, resource)] = set(rule["verbs"])
    assert granted[("capstan.dev", "kafkaclusters/finalizers")] == {"update"}
    deleters = {resource for resource, verbs in granted.items() if "delete" in verbs}
    assert deleters == {("", "services"), ("", "pods")}, "owned objects go by garbage collection; only Services no longer rendered are pruned, and pods are restarted one at a time by the roller"
    assert granted[("", "pods")] == {"get", "list", "delete"}, "pods are only restarted, never made or changed"
    assert set(granted) == {
        ("capstan.dev", "kafkaclusters"), ("capstan.dev", "kafkaclusters/status"), ("capstan.dev", "kafkaclusters/finalizers"),
        ("", "configmaps"), ("", "secrets"), ("", "services"), ("apps", "statefulsets"),
        ("policy", "poddisruptionbudgets"), ("networking.k8s.io", "networkpolicies"), ("events.k8s.io", "events"),
        ("", "persistentvolumeclaims"), ("storage.k8s.io", "storageclasses"), ("", "pods"),
    }
    assert granted[("", "persistentvolumeclaims")] == {"get", "list", "patch"}, "volumes are grown, never made or removed"
    assert granted[("storage.k8s.io", "storageclasses")] == {"get"}
    assert granted[("events.k8s.io", "events")] == {"create", "patch"}
    # Leader election: Leases in the release's namespace only, never deleted.
    leader = next(r for r in by_kind(render(), "Role") if r["metadata"]["name"] == "capstan-operator-leader")
    assert leader["metadata"]["namespace"] == "platform"
    assert leader["rules"] == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}]
    binding = next(b for b in by_kind(render(), "RoleBinding") if b["metadata"]["name"] == "capstan-operator-leader")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "capstan-operator", "namespace": "platform"}]


def test_the_chart_lints_cleanly_and_ships_the_crd():
    report = helm.lint(str(CHART), strict=True, kube_version="v" + KUBERNETES)
    problems = [m for m in report.get("messages") or [] if m.get("severity", 0) >= 2]
    assert not problems and not report.get("errors"), report
    crds = helm.Chart.load(str(CHART)).crds
    assert [c["name"] for c in crds] == ["crds/kafkaclusters.capstan.dev.yaml"]
    crd = yaml.safe_load(crds[0]["data"])
    assert crd["metadata"]["name"] == "kafkaclusters.capstan.dev"
    kubernetes_validate.validate(crd, KUBERNETES, strict=True)


def test_the_kubernetes_provisioner_gets_its_settings_and_a_least_privilege_role():
    objects = render({
        "controlPlane": {
            "provisioner": "kubernetes",
            "kubernetes": {"namespace": "tenants", "zones": ["eu-west-1a", "eu-west-1b", "eu-west-1c"], "storageClassName": "gp3",
                           "pools": {"singleZone": "pool-a", "multiZone": "pool-b", "brokersPerZone": 2}},
            "kafkaGateway": {"advertise": "kafka.example.com:9092", "nodePorts": {"first": 9093, "count": 6},
                             "tlsSecretName": "kafka-tls"},
        },
    })
    validate(objects)
    control = next(d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "capstan")
    pod = control["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "capstan-control-plane"
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["CAPSTAN_PROVISIONER"] == "kubernetes"
    assert env["CAPSTAN_KUBERNETES_NAMESPACE"] == "tenants"
    assert env["CAPSTAN_KUBERNETES_ZONES"] == "eu-west-1a,eu-west-1b,eu-west-1c"
    assert env["CAPSTAN_KAFKA_STORAGE_CLASS"] == "gp3"
    assert (env["CAPSTAN_KUBERNETES_POOL_SINGLE_ZONE"], env["CAPSTAN_KUBERNETES_POOL_MULTI_ZONE"]) == ("pool-a", "pool-b")
    assert env["CAPSTAN_KUBERNETES_POOL_BROKERS_PER_ZONE"] == "2"
    # The Kafka gateway: the advertised name, and one port per broker of the pools.
    assert env["CAPSTAN_KAFKA_ADVERTISE"] == "kafka.example.com:9092"
    assert env["CAPSTAN_KAFKA_NODE_PORTS"] == "9093:6"
    assert (env["CAPSTAN_KAFKA_TLS_CERT"], env["CAPSTAN_KAFKA_TLS_KEY"]) == ("/etc/capstan/kafka-tls/tls.crt", "/etc/capstan/kafka-tls/tls.key")
    assert {"name": "kafka-tls", "secret": {"secretName": "kafka-tls"}} in pod["volumes"]
    service = next(s for s in by_kind(objects, "Service") if s["metadata"]["name"] == "capstan")
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    assert ports == {"api": 8080, "gateway": 8081, "kafka": 9092, **{f"kafka-{n}": 9093 + n for n in range(6)}}
    role = next(r for r in by_kind(objects, "Role") if r["metadata"]["namespace"] == "tenants")
    granted = {(g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert granted == {
        ("capstan.dev", "kafkaclusters"): {"get", "list", "create", "patch", "delete"},
        ("", "secrets"): {"get", "list", "create", "patch", "delete"},
    }
    binding = next(b for b in by_kind(objects, "RoleBinding") if b["metadata"]["namespace"] == "tenants")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "capstan-control-plane", "namespace": "platform"}]
    # With local brokers there is no such identity.
    assert [r["metadata"]["name"] for r in by_kind(render(), "Role")] == ["capstan-operator-leader"]


# Pod Security Standards, "restricted" profile (https://kubernetes.io/docs/concepts/security/pod-security-standards/),
# every control of the baseline and restricted levels, as the PodSecurity admission controller
# checks a pod template.
RESTRICTED_VOLUME_TYPES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes"}


def test_kubernetes_gets_a_gateway_port_per_pool_broker_and_dedicated_access_by_default():
    objects = render({
        "controlPlane": {
            "provisioner": "kubernetes",
            "kubernetes": {"zones": ["a", "b", "c"], "pools": {"brokersPerZone": 2}},
        },
    })
    validate(objects)
    control = next(d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "capstan")
    container = control["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    # Clients of a dedicated cluster connect through the gateway unless told otherwise.
    assert env["CAPSTAN_KUBERNETES_DEDICATED_ACCESS"] == "gateway"
    # No count given: one port for each broker of the largest pool (3 zones × 2).
    assert env["CAPSTAN_KAFKA_NODE_PORTS"] == "9093:6"
    assert {p["name"] for p in container["ports"]} >= {f"kafka-{n}" for n in range(6)}
    service = next(s for s in by_kind(objects, "Service") if s["metadata"]["name"] == "capstan")
    assert {p["name"]: p["port"] for p in service["spec"]["ports"] if p["name"].startswith("kafka-")} == {
        f"kafka-{n}": 9093 + n for n in range(6)}
    direct = render({"controlPlane": {"provisioner": "kubernetes", "kubernetes": {"zones": ["a", "b", "c"], "dedicatedAccess": "direct"}}})
    control = next(d for d in by_kind(direct, "Deployment") if d["metadata"]["name"] == "capstan")
    env = {e["name"]: e.get("value") for e in control["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CAPSTAN_KUBERNETES_DEDICATED_ACCESS"] == "direct"
    # The local provisioner's one broker needs no per-broker port.
    local = render()
    control = next(d for d in by_kind(local, "Deployment") if d["metadata"]["name"] == "capstan")
    assert "CAPSTAN_KAFKA_NODE_PORTS" not in {e["name"] for e in control["spec"]["template"]["spec"]["containers"][0]["env"]}


def restricted_violations(pod):
    problems = []
    pod_context = pod.get("securityContext") or {}
    containers = pod.get("containers", []) + pod.get("initContainers", []) + pod.get("ephemeralContainers", [])
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            problems.append(f"{flag} is set")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']} is of a type restricted pods may not use: {kinds}")
    for sysctl in pod_context.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            problems.append(f"unsafe sysctl {sysctl['name']}")
    if (pod_context.get("seLinuxOptions") or {}).get("type") not in (None, "", "container_t", "container_init_t", "container_kvm_t"):
        problems.append("a custom SELinux type")
    if pod_context.get("runAsUser") == 0:
        problems.append("the pod runs as root")
    pod_seccomp = (pod_context.get("seccompProfile") or {}).get("type")
    for container in containers:
        name = container["name"]
        context = container.get("securityContext") or {}
        if context.get("privileged"):
            problems.append(f"{name} is privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name} does not set allowPrivilegeEscalation: false")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{name} does not drop ALL capabilities")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name} adds capabilities")
        non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        if non_root is not True:
            problems.append(f"{name} may run as root (runAsNonRoot)")
        if context.get("runAsUser") == 0:
            problems.append(f"{name} runs as root")
        seccomp = (context.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name} has no RuntimeDefault or Localhost seccomp profile")
        if context.get("procMount") not in (None, "Default"):
            problems.append(f"{name} mounts /proc unmasked")
        if (context.get("appArmorProfile") or {}).get("type") == "Unconfined":
            problems.append(f"{name} is unconfined by AppArmor")
        for port in container.get("ports", []):
            if port.get("hostPort"):
                problems.append(f"{name} uses a host port")
    return problems


@pytest.mark.parametrize("values", [
    {},
    {"controlPlane": {"provisioner": "kubernetes", "kafkaGateway": {"tlsSecretName": "kafka-tls", "nodePorts": {"first": 9093, "count": 3}}}},
], ids=["defaults", "kubernetes provisioner with TLS"])
def test_every_pod_meets_the_restricted_pod_security_standard(values):
    deployments = by_kind(render(values), "Deployment")
    assert len(deployments) == 2
    for deployment in deployments:
        problems = restricted_violations(deployment["spec"]["template"]["spec"])
        assert not problems, (deployment["metadata"]["name"], problems)


def test_the_restricted_check_finds_what_the_standard_forbids():
    assert restricted_violations({"containers": [{"name": "c"}]}) == [
        "c does not set allowPrivilegeEscalation: false",
        "c does not drop ALL capabilities",
        "c may run as root (runAsNonRoot)",
        "c has no RuntimeDefault or Localhost seccomp profile",
    ]
    assert "volume h is of a type restricted pods may not use: {'hostPath'}" in restricted_violations(
        {"containers": [], "volumes": [{"name": "h", "hostPath": {"path": "/"}}]})


def test_monitoring_ships_service_and_pod_monitors_and_the_dashboard():
    objects = render({
        "controlPlane": {"metricsTokenSecret": "scrape-token"},
        "monitoring": {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
                       "dashboard": {"enabled": True}},
    })
    # Prometheus Operator's kinds are CRDs kubernetes-validate does not know: checked here.
    validate([o for o in objects if o["kind"] not in ("ServiceMonitor", "PodMonitor")])
    monitor = by_kind(objects, "ServiceMonitor")[0]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    endpoint = monitor["spec"]["endpoints"][0]
    assert (endpoint["port"], endpoint["path"]) == ("api", "/metrics")
    assert endpoint["authorization"] == {"type": "Bearer", "credentials": {"name": "scrape-token", "key": "metrics-token"}}
    service = by_kind(objects, "Service")[0]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert "api" in [p["name"] for p in service["spec"]["ports"]]
    pods = by_kind(objects, "PodMonitor")[0]
    operator = next(d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "capstan-operator")
    assert pods["spec"]["selector"]["matchLabels"].items() <= operator["spec"]["template"]["metadata"]["labels"].items()
    assert pods["spec"]["podMetricsEndpoints"][0]["port"] in [p["name"] for p in operator["spec"]["template"]["spec"]["containers"][0]["ports"]]
    dashboard = next(c for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"] == "capstan-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    panels = json.loads(dashboard["data"]["capstan.json"])["panels"]
    assert len(panels) >= 15 and all(p["targets"][0]["expr"] for p in panels)


def test_a_service_monitor_without_the_metrics_token_is_refused():
    with pytest.raises(Exception, match="metricsTokenSecret"):
        render({"monitoring": {"serviceMonitor": {"enabled": True}}})


def test_an_operator_limited_to_namespaces_gets_roles_there_and_no_cluster_wide_secrets():
    objects = render({"operator": {"watchNamespaces": ["tenants", "pools"]}})
    validate(objects)
    operator = next(d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "capstan-operator")
    assert operator["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "operator", "--listen", "0.0.0.0:8090", "--lease", "capstan-operator", "--namespace", "tenants,pools"]
    cluster_role = next(r for r in by_kind(objects, "ClusterRole") if r["metadata"]["name"] == "capstan-operator")
    assert cluster_role["rules"] == [{"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get"]}]
    roles = {r["metadata"]["namespace"]: r for r in by_kind(objects, "Role") if r["metadata"]["name"] == "capstan-operator"}
    assert set(roles) == {"tenants", "pools"}
    everywhere = by_kind(render(), "ClusterRole")[0]["rules"]
    for role in roles.values():
        # The same namespaced rules the cluster-wide role has, StorageClasses aside.
        assert role["rules"] == [r for r in everywhere if r["resources"] != ["storageclasses"]]
        assert any("secrets" in r["resources"] for r in role["rules"])
    bindings = {b["metadata"]["namespace"]: b for b in by_kind(objects, "RoleBinding") if b["metadata"]["name"] == "capstan-operator"}
    assert set(bindings) == {"tenants", "pools"}
    for binding in bindings.values():
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "capstan-operator"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "capstan-operator", "namespace": "platform"}]
