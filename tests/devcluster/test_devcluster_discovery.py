"""Discovery and OpenAPI documents, as the kubernetes client and kubectl read them."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

import pytest
from kubernetes import client

from devcluster import DevCluster


def fetch(cluster: DevCluster, path: str, accept: str = "application/json") -> tuple[str, Any]:
    request = urllib.request.Request(  # noqa: S310
        f"{cluster.url}{path}",
        headers={"Authorization": f"Bearer {cluster.token}", "Accept": accept},
    )
    context = ssl.create_default_context(cafile=str(cluster.ca_path))
    with urllib.request.urlopen(request, context=context) as response:  # noqa: S310
        return response.headers["Content-Type"], json.loads(response.read())


def test_version(api_client: client.ApiClient) -> None:
    version: Any = client.VersionApi(api_client).get_code()
    assert (version.major, version.minor) == ("1", "37")
    assert version.git_version.startswith("v1.37.")


def test_core_and_group_lists(api_client: client.ApiClient) -> None:
    core: Any = client.CoreApi(api_client).get_api_versions()
    assert core.versions == ["v1"]
    groups: Any = client.ApisApi(api_client).get_api_versions()
    assert [g.name for g in groups.groups] == ["apps", "coordination.k8s.io"]
    assert groups.groups[0].preferred_version.group_version == "apps/v1"
    assert groups.groups[1].preferred_version.group_version == "coordination.k8s.io/v1"


def test_resource_lists(api_client: client.ApiClient) -> None:
    apps: Any = client.AppsV1Api(api_client).get_api_resources()
    by_name = {r.name: r for r in apps.resources}
    assert {"deployments", "deployments/status", "replicasets"} <= set(by_name)
    assert by_name["deployments"].kind == "Deployment"
    assert by_name["deployments"].short_names == ["deploy"]
    assert "patch" in by_name["deployments"].verbs
    core: Any = client.CoreV1Api(api_client).get_api_resources()
    assert {"pods", "namespaces", "events"} <= {r.name for r in core.resources}
    assert {r.name: r.namespaced for r in core.resources}["namespaces"] is False
    events = {r.name: r for r in core.resources}["events"]
    assert (events.kind, events.short_names, events.categories) == ("Event", ["ev"], None)
    coordination: Any = client.CoordinationV1Api(api_client).get_api_resources()
    assert [(r.name, r.kind, r.namespaced) for r in coordination.resources] == [
        ("leases", "Lease", True)
    ]


def test_aggregated_discovery_requests_get_the_legacy_form(devcluster: DevCluster) -> None:
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    content_type, body = fetch(devcluster, "/apis", accept)
    assert content_type == "application/json"
    assert body["kind"] == "APIGroupList"


def test_openapi_v3_declares_field_validation_on_patch(devcluster: DevCluster) -> None:
    _, root = fetch(devcluster, "/openapi/v3")
    url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
    _, document = fetch(devcluster, url)
    patch = document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": "apps",
        "version": "v1",
        "kind": "Deployment",
    }
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}


def test_unknown_paths_are_404_status(devcluster: DevCluster) -> None:
    request = urllib.request.Request(  # noqa: S310
        f"{devcluster.url}/apis/batch/v1/jobs",
        headers={"Authorization": f"Bearer {devcluster.token}"},
    )
    context = ssl.create_default_context(cafile=str(devcluster.ca_path))
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(request, context=context)  # noqa: S310
    assert exc.value.code == 404
    assert json.loads(exc.value.read())["reason"] == "NotFound"
