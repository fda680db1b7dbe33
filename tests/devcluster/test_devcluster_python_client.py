"""What the kubernetes Python client's own end-to-end suite does, against the devcluster.

The calls its e2e tests make for Deployments, Pods, Namespaces, watches, the
SharedInformer and ``kubernetes.utils.create_from_yaml`` (which reports
failures with the server's exact Status bodies), written for the kinds the
devcluster serves (Leases stand in for the ConfigMaps of its watch test: both
are objects no controller touches). Server-side apply
(``create_from_yaml(..., apply=True)``) is not served.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from devcluster.manifests import deployment
from kubernetes import client, utils, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.informer import ADDED, DELETED, SharedInformer

from devcluster import DevCluster

NGINX_APP = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-app
  labels: {app: nginx}
spec:
  replicas: 3
  selector:
    matchLabels: {app: nginx}
  template:
    metadata:
      labels: {app: nginx}
    spec:
      containers:
      - name: nginx
        image: nginx:1.15.4
        ports:
        - containerPort: 80
"""
MULTI = """\
apiVersion: v1
kind: Namespace
metadata: {name: mock-1, labels: {name: mock-1}}
---
apiVersion: v1
kind: PodList
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: mock-pod-0, labels: {app: mock-pod-0}}
  spec:
    containers: [{name: mock-pod-0, image: busybox}]
- apiVersion: v1
  kind: Pod
  metadata: {name: mock-pod-1, labels: {app: mock-pod-1}}
  spec:
    containers: [{name: mock-pod-1, image: busybox}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: mock}
spec:
  replicas: 3
  selector: {matchLabels: {app: mock}}
  template:
    metadata: {labels: {app: mock}}
    spec:
      containers: [{name: mock, image: nginx:1.25}]
"""
# A guard against a hang, never an assertion about speed.
PATIENCE = 30.0


def test_create_read_and_delete_a_deployment(apps: Any) -> None:
    apps.create_namespaced_deployment(body=yaml.safe_load(NGINX_APP), namespace="default")
    got = apps.read_namespaced_deployment("nginx-app", "default")
    assert (got.metadata.name, got.spec.replicas) == ("nginx-app", 3)
    assert got.spec.selector.match_labels["app"] == "nginx"
    assert got.spec.template.metadata.labels["app"] == "nginx"
    container = got.spec.template.spec.containers[0]
    assert (container.name, container.image) == ("nginx", "nginx:1.15.4")
    assert container.ports[0].container_port == 80
    status = apps.delete_namespaced_deployment(
        "nginx-app", "default", body=client.V1DeleteOptions()
    )
    assert status["status"] == "Success"
    with pytest.raises(ApiException) as gone:
        apps.read_namespaced_deployment("nginx-app", "default")
    assert gone.value.status == 404


def test_pod_apis(devcluster: DevCluster, core: Any) -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "busybox-test"},
        "spec": {
            "containers": [
                {"image": "busybox", "name": "sleep", "args": ["/bin/sh", "-c", "sleep 3600"]}
            ]
        },
    }
    created = core.create_namespaced_pod(body=manifest, namespace="default")
    assert created.metadata.name == "busybox-test"
    assert created.status.phase
    read = core.read_namespaced_pod(name="busybox-test", namespace="default")
    assert read.status.phase
    assert len(core.list_pod_for_all_namespaces().items) > 0
    core.delete_namespaced_pod(name="busybox-test", namespace="default", body={})
    assert devcluster.get("pods", "default", "busybox-test") is None  # never scheduled: at once


def test_namespace_apis(devcluster: DevCluster, core: Any) -> None:
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dev"}})
    assert core.read_namespace("dev").status.phase == "Active"
    assert "dev" in [n.metadata.name for n in core.list_namespace().items]
    core.delete_namespace(name="dev", body={})
    assert devcluster.get("namespaces", "", "dev") is None


def lease(name: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "labels": {"e2e-tests": "true"}},
        "spec": {"holderIdentity": value},
    }


def test_a_watch_from_a_lists_version_sees_every_later_change(api_client: client.ApiClient) -> None:
    coordination: Any = client.CoordinationV1Api(api_client)
    coordination.create_namespaced_lease("default", lease("lease-a", "a"))
    listed = coordination.list_namespaced_lease("default", label_selector="e2e-tests=true")
    coordination.create_namespaced_lease("default", lease("lease-b", "b"))
    coordination.patch_namespaced_lease("lease-b", "default", {"spec": {"holderIdentity": "c"}})
    coordination.delete_collection_namespaced_lease("default", label_selector="e2e-tests=true")
    stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
        coordination.list_namespaced_lease,
        namespace="default",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=1,
        label_selector="e2e-tests=true",
    )
    seen = [(event["type"], event["object"].metadata.name) for event in stream]
    assert seen[:2] == [("ADDED", "lease-b"), ("MODIFIED", "lease-b")]
    assert sorted(seen[2:]) == [("DELETED", "lease-a"), ("DELETED", "lease-b")]


def test_a_deployment_watch_through_the_watch_helper(devcluster: DevCluster, apps: Any) -> None:
    listed = apps.list_namespaced_deployment("default")
    devcluster.create(deployment("web"))
    devcluster.delete("deployments", "default", "web")
    stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
        apps.list_namespaced_deployment,
        namespace="default",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=1,
    )
    seen = [(event["type"], event["object"].metadata.name) for event in stream]
    assert seen[0] == ("ADDED", "web")
    assert seen[-1] == ("DELETED", "web")


# -- the SharedInformer: list, then watch from the list's resourceVersion -------------------


@pytest.fixture
def informer(apps: Any) -> Iterator[Any]:
    # resync_period bounds each watch (timeoutSeconds), so stop() returns promptly.
    shared: Any = SharedInformer(  # type: ignore[no-untyped-call]
        list_func=apps.list_namespaced_deployment,
        namespace="default",
        label_selector="inf-e2e=1",
        resync_period=1,
    )
    yield shared
    shared.stop()


def when(informer: Any, kind: str, name: str) -> threading.Event:
    happened = threading.Event()

    def handler(obj: Any) -> None:
        if obj.metadata.name == name:
            happened.set()

    informer.add_event_handler(kind, handler)
    return happened


def labelled(name: str) -> dict[str, Any]:
    return deployment(name, labels={"inf-e2e": "1"})


def test_the_informers_cache_holds_what_exists_before_it_starts(
    devcluster: DevCluster, informer: Any
) -> None:
    devcluster.create(labelled("before"))
    devcluster.create(deployment("unlabelled"))
    added = when(informer, ADDED, "before")
    informer.start()
    assert added.wait(PATIENCE)
    assert informer.cache.get_by_key("default/before") is not None
    assert informer.cache.get_by_key("default/unlabelled") is None


def test_the_informer_follows_additions_changes_and_deletions(
    devcluster: DevCluster, informer: Any
) -> None:
    added = when(informer, ADDED, "web")
    deleted = when(informer, DELETED, "web")
    informer.start()
    eventually(lambda: informer._resource_version is not None)  # the first list is done
    listed_at = int(informer._resource_version or 0)
    devcluster.create(labelled("web"))
    assert added.wait(PATIENCE)
    devcluster.patch(
        "deployments",
        "default",
        "web",
        json.dumps({"metadata": {"annotations": {"k": "updated"}}}).encode(),
        "application/merge-patch+json",
    )

    def updated() -> bool:
        cached = informer.cache.get_by_key("default/web")
        return cached is not None and (cached.metadata.annotations or {}).get("k") == "updated"

    eventually(updated)
    assert int(informer._resource_version or 0) > listed_at
    devcluster.delete("deployments", "default", "web")
    assert deleted.wait(PATIENCE)
    assert informer.cache.get_by_key("default/web") is None


def eventually(condition: Callable[[], bool]) -> None:
    """Waits for something the informer's thread makes true (bounded against a hang)."""
    done = threading.Event()
    for _ in range(int(PATIENCE / 0.05)):
        if condition():
            return
        done.wait(0.05)
    raise AssertionError("never happened")


# -- kubernetes.utils.create_from_yaml ------------------------------------------------------


def create_from_yaml(api: client.ApiClient, path: str, **options: Any) -> None:
    utils.create_from_yaml(api, path, **options)  # type: ignore[no-untyped-call]


def test_create_from_yaml_creates_a_deployment(
    api_client: client.ApiClient, apps: Any, tmp_path: Path
) -> None:
    path = tmp_path / "apps-deployment.yaml"
    path.write_text(NGINX_APP)
    create_from_yaml(api_client, str(path))
    got = apps.read_namespaced_deployment("nginx-app", "default")
    assert got.spec.template.spec.containers[0].ports[0].container_port == 80
    assert got.spec.replicas == 3


def test_create_from_yaml_creates_lists_and_many_kinds_in_a_namespace(
    api_client: client.ApiClient, devcluster: DevCluster, tmp_path: Path
) -> None:
    devcluster.create_namespace("e2e")
    path = tmp_path / "multi-resource-with-list.yaml"
    path.write_text(MULTI)
    create_from_yaml(api_client, str(path), namespace="e2e")
    assert devcluster.get("namespaces", "", "mock-1") is not None
    assert sorted(p["metadata"]["name"] for p in devcluster.list("pods", "e2e")) == [
        "mock-pod-0",
        "mock-pod-1",
    ]
    assert devcluster.get("deployments", "e2e", "mock") is not None


def test_create_from_yaml_reports_conflicts_with_the_servers_status_bodies(
    api_client: client.ApiClient, tmp_path: Path
) -> None:
    path = tmp_path / "triple-nginx.yaml"
    path.write_text("---\n".join([NGINX_APP] * 3))
    with pytest.raises(utils.FailToCreateError) as failed:
        create_from_yaml(api_client, str(path))
    one = (
        'Error from server (Conflict): {"kind":"Status","apiVersion":"v1","metadata":{},'
        '"status":"Failure","message":"deployments.apps \\"nginx-app\\" already exists",'
        '"reason":"AlreadyExists","details":{"name":"nginx-app","group":"apps",'
        '"kind":"deployments"},"code":409}\n'
    )
    assert str(failed.value) == one + one


def test_server_side_apply_is_not_served(api_client: client.ApiClient, tmp_path: Path) -> None:
    path = tmp_path / "apps-deployment.yaml"
    path.write_text(NGINX_APP)
    with pytest.raises(utils.FailToCreateError) as refused:
        create_from_yaml(api_client, str(path), apply=True)
    (failure,) = refused.value.api_exceptions
    assert failure.status == 415
    assert json.loads(failure.body)["message"].startswith(
        "server-side apply (application/apply-patch+yaml) is not served by the devcluster"
    )
