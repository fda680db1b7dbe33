"""Pods go gracefully over HTTP too: DELETE marks them Terminating, the kubelet removes them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from devcluster.manifests import deployment
from devcluster.resources import PODS
from devcluster.tables import table
from kubernetes import watch

from devcluster import DevCluster

from .raw import call

NOW = 1_700_000_100.0


def running_pod(cluster: DevCluster, **template: Any) -> dict[str, Any]:
    """The one Pod of a settled one-replica Deployment ``web`` (``template`` joins its Pod spec)."""
    manifest = deployment("web")
    manifest["spec"]["template"]["spec"].update(template)
    cluster.create(manifest)
    cluster.advance(5)
    (pod,) = cluster.list("pods", "default")
    return pod


def test_deleting_a_pod_marks_it_terminating_then_the_kubelet_removes_it(
    devcluster: DevCluster, core: Any
) -> None:
    name = running_pod(devcluster)["metadata"]["name"]
    answer = core.delete_namespaced_pod(name, "default")
    assert answer.metadata.deletion_grace_period_seconds == 30
    assert answer.metadata.deletion_timestamp is not None
    kept = devcluster.get("pods", "default", name)
    assert kept is not None
    assert kept["metadata"]["deletionGracePeriodSeconds"] == 30
    # The ReplicaSet replaces it at once: a Terminating Pod no longer counts.
    assert (
        len([p for p in devcluster.list("pods", "default") if p["metadata"]["name"] != name]) == 1
    )
    devcluster.advance(1)
    assert devcluster.get("pods", "default", name) is None


def test_a_watch_sees_terminating_then_deleted(devcluster: DevCluster, core: Any) -> None:
    name = running_pod(devcluster)["metadata"]["name"]
    version = core.list_namespaced_pod("default").metadata.resource_version
    core.delete_namespaced_pod(name, "default")
    devcluster.advance(2)
    events = watch.Watch().stream(  # type: ignore[no-untyped-call]
        core.list_namespaced_pod,
        "default",
        field_selector=f"metadata.name={name}",
        resource_version=version,
        timeout_seconds=1,
    )
    seen = [
        (e["type"], e["object"].metadata.deletion_timestamp is not None, e["object"].status.phase)
        for e in events
    ]
    assert seen == [
        ("MODIFIED", True, "Running"),  # marked: Terminating
        ("MODIFIED", True, "Succeeded"),  # its container stopped: the final status
        ("DELETED", True, "Succeeded"),
    ]


def test_grace_period_zero_deletes_at_once(devcluster: DevCluster, core: Any) -> None:
    name = running_pod(devcluster)["metadata"]["name"]
    core.delete_namespaced_pod(name, "default", grace_period_seconds=0)
    assert devcluster.get("pods", "default", name) is None


def test_a_second_delete_may_shorten_the_grace_period_not_lengthen_it(
    devcluster: DevCluster, core: Any
) -> None:
    # A preStop hook keeps it up for 100 s, longer than any grace period here.
    hook = {"preStop": {"exec": {"command": ["sh", "-c", "sleep 100"]}}}
    pod = running_pod(
        devcluster, containers=[{"name": "app", "image": "nginx:1.25", "lifecycle": hook}]
    )
    name = pod["metadata"]["name"]
    core.delete_namespaced_pod(name, "default", grace_period_seconds=20)
    longer = core.delete_namespaced_pod(name, "default", grace_period_seconds=60)
    assert longer.metadata.deletion_grace_period_seconds == 20
    shorter = core.delete_namespaced_pod(name, "default", grace_period_seconds=5)
    assert shorter.metadata.deletion_grace_period_seconds == 5
    devcluster.advance(4)
    assert devcluster.get("pods", "default", name) is not None
    devcluster.advance(2)
    assert devcluster.get("pods", "default", name) is None


def test_a_pod_never_scheduled_is_deleted_at_once(devcluster: DevCluster, core: Any) -> None:
    devcluster.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "lonely", "namespace": "default"},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
        }
    )
    core.delete_namespaced_pod("lonely", "default")
    assert devcluster.get("pods", "default", "lonely") is None


def test_an_invalid_grace_period_is_refused_and_changes_nothing(devcluster: DevCluster) -> None:
    name = running_pod(devcluster)["metadata"]["name"]
    path = f"/api/v1/namespaces/default/pods/{name}?gracePeriodSeconds=soon"
    answer = call(devcluster, "DELETE", path)
    body = json.loads(answer.body)
    assert (answer.status, body["reason"], body["message"]) == (
        400,
        "BadRequest",
        "invalid gracePeriodSeconds: soon",
    )
    kept = devcluster.get("pods", "default", name)
    assert kept is not None
    assert "deletionTimestamp" not in kept["metadata"]


# --- what kubectl get pods prints -----------------------------------------------------


def pod(status: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web-1", "creationTimestamp": "2023-11-14T22:13:20Z", **meta},
        "spec": {"containers": [{"name": "app"}]},
        "status": status,
    }


def container(state: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "app", "state": state, "restartCount": 0, "ready": False, **fields}


def columns(obj: dict[str, Any]) -> tuple[str, str, str]:
    """READY, STATUS and RESTARTS of one Pod, as the server prints them for kubectl."""
    (row,) = table(PODS, [obj], "1", NOW)["rows"]
    return row["cells"][1], row["cells"][2], row["cells"][3]


@pytest.mark.parametrize(
    ("obj", "printed"),
    [
        (
            pod({"phase": "Running", "containerStatuses": [
                container({"running": {}}, ready=True)]}),
            ("1/1", "Running", "0"),
        ),
        (
            pod({"phase": "Running", "containerStatuses": [container(
                {"waiting": {"reason": "CrashLoopBackOff"}}, restartCount=3,
                lastState={"terminated": {"finishedAt": "2023-11-14T22:14:30Z"}})]}),
            ("0/1", "CrashLoopBackOff", "3 (30s ago)"),
        ),
        (
            pod({"phase": "Running", "containerStatuses": [
                container({"terminated": {"reason": "Error", "exitCode": 1}})]}),
            ("0/1", "Error", "0"),
        ),
        (
            pod({"phase": "Running", "containerStatuses": [container({"running": {}}, ready=True)]},
                deletionTimestamp="2023-11-14T22:15:00Z"),
            ("1/1", "Terminating", "0"),
        ),
        (
            pod({"phase": "Succeeded", "containerStatuses": [
                container({"terminated": {"reason": "Completed", "exitCode": 0}})]},
                deletionTimestamp="2023-11-14T22:15:00Z"),
            ("0/1", "Completed", "0"),
        ),
        (
            pod({"phase": "Pending",
                 "initContainerStatuses": [container({"waiting": {"reason": "ErrImagePull"}})],
                 "containerStatuses": [container({"waiting": {"reason": "PodInitializing"}})]}),
            ("0/1", "Init:ErrImagePull", "0"),
        ),
        (
            pod({"phase": "Pending",
                 "initContainerStatuses": [container({"running": {}})],
                 "containerStatuses": [container({"waiting": {"reason": "PodInitializing"}})]}),
            ("0/1", "Init:0/0", "0"),
        ),
    ],
)  # fmt: skip
def test_pods_print_as_kubectl_shows_them(obj: dict[str, Any], printed: tuple[str, ...]) -> None:
    assert columns(obj) == printed
