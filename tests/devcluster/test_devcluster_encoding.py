"""How bodies travel: written as kube-apiserver's encoders write them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from devcluster.manifests import deployment

from devcluster import DevCluster, protobuf
from tests.devcluster.raw import call

WEB = "/apis/apps/v1/namespaces/default/deployments/web"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


@pytest.mark.parametrize(
    ("path", "accept", "status"),
    [
        (WEB, "application/json", 200),  # an object
        ("/apis/apps/v1/namespaces/default/deployments", "application/json", 200),  # a list
        ("/apis/apps/v1/namespaces/default/deployments/nope", "application/json", 404),  # Status
        ("/apis/apps/v1/namespaces/default/deployments", TABLE, 200),  # a Table
        ("/api/v1", "application/json", 200),  # discovery
        ("/apis", "application/json", 200),
    ],
)
def test_api_bodies_end_with_the_newline_of_gos_json_encoder(
    devcluster: DevCluster, path: str, accept: str, status: int
) -> None:
    devcluster.create(deployment("web"))
    answer = call(devcluster, "GET", path, accept=accept)
    assert answer.status == status
    assert answer.body.endswith(b"}\n")
    assert answer.body.count(b"\n") == 1
    json.loads(answer.body)


def test_a_write_answer_ends_with_a_newline(devcluster: DevCluster) -> None:
    body = json.dumps(deployment("web")).encode()
    answer = call(
        devcluster,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        body,
        "application/json",
    )
    assert answer.status == 201
    assert answer.body.endswith(b"}\n")


def test_version_is_indented_without_a_newline_as_write_raw_json_writes_it(
    devcluster: DevCluster,
) -> None:
    answer = call(devcluster, "GET", "/version")
    assert answer.body == json.dumps(json.loads(answer.body), indent=2).encode()


# -- Kubernetes protobuf bodies (kubectl 1.37's typed clients send them) ------------------------

Message = Any


def new(name: str) -> Message:
    return protobuf.message_class(name)()


def envelope(api_version: str, kind: str, obj: Message) -> bytes:
    unknown = new("k8s.io.apimachinery.pkg.runtime.Unknown")
    unknown.typeMeta.apiVersion = api_version
    unknown.typeMeta.kind = kind
    unknown.raw = obj.SerializeToString()
    unknown.contentEncoding = ""
    unknown.contentType = ""
    body: bytes = protobuf.MAGIC + unknown.SerializeToString()
    return body


def go_deployment() -> Message:
    """A Deployment as Go's generated Marshal writes it: every non-pointer field, zeros too."""
    d = new("k8s.io.api.apps.v1.Deployment")
    meta = d.metadata
    meta.name, meta.generateName, meta.namespace, meta.uid = "web", "", "", ""
    meta.resourceVersion, meta.generation = "", 0
    meta.creationTimestamp.SetInParent()  # the zero time: an empty message
    meta.labels["app"] = "web"
    spec = d.spec
    spec.replicas = 0  # a pointer: zero on purpose
    spec.minReadySeconds, spec.paused = 0, False
    spec.selector.matchLabels["app"] = "web"
    spec.template.metadata.labels["app"] = "web"
    spec.template.metadata.creationTimestamp.SetInParent()
    container = spec.template.spec.containers.add()
    container.name, container.image, container.workingDir = "app", "nginx:1.25", ""
    container.resources.SetInParent()
    container.ports.add(containerPort=80, protocol="", name="")
    container.securityContext.runAsUser = 0  # a pointer: root, on purpose
    spec.template.spec.restartPolicy = ""
    rolling = spec.strategy.rollingUpdate
    rolling.maxSurge.type, rolling.maxSurge.strVal = 1, "25%"
    rolling.maxUnavailable.type, rolling.maxUnavailable.intVal = 0, 0
    d.status.SetInParent()
    return d


def test_a_protobuf_deployment_reads_as_the_json_go_would_write() -> None:
    got = protobuf.decode(envelope("apps/v1", "Deployment", go_deployment()))
    assert got == {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "nginx:1.25",
                            "ports": [{"containerPort": 80}],
                            "resources": {},
                            "securityContext": {"runAsUser": 0},
                        }
                    ]
                },
            },
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        },
        "status": {},
    }


def test_times_read_as_kubernetes_writes_them() -> None:
    lease = new("k8s.io.api.coordination.v1.Lease")
    lease.metadata.name = "rollout-web"
    lease.metadata.creationTimestamp.seconds = 1796296858
    lease.metadata.creationTimestamp.nanos = 900_000_000  # Time keeps whole seconds
    lease.spec.holderIdentity = ""  # a pointer: an empty holder, on purpose
    lease.spec.renewTime.seconds = 1796296858
    lease.spec.renewTime.nanos = 123_456_789
    got = protobuf.decode(envelope("coordination.k8s.io/v1", "Lease", lease))
    assert got["metadata"]["creationTimestamp"] == "2026-12-03T11:20:58Z"
    assert got["spec"] == {"holderIdentity": "", "renewTime": "2026-12-03T11:20:58.123456Z"}


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [
        (0, "0s"),
        (1_500_000, "1.5ms"),
        (90_000_000_000, "1m30s"),
        (3_723_500_000_000, "1h2m3.5s"),
        (-2_000_000_000, "-2s"),
    ],
)
def test_durations_read_as_gos_duration_string(nanoseconds: int, text: str) -> None:
    assert protobuf.go_duration(nanoseconds) == text


def test_a_protobuf_body_creates_the_same_object_as_its_json(devcluster: DevCluster) -> None:
    path = "/apis/apps/v1/namespaces/default/deployments"
    created = call(
        devcluster,
        "POST",
        path,
        envelope("apps/v1", "Deployment", go_deployment()),
        protobuf.CONTENT_TYPE,
        accept=f"{protobuf.CONTENT_TYPE},application/json",
    )
    assert created.status == 201
    assert created.content_type == "application/json"  # kubectl accepts JSON answers too
    from_protobuf = json.loads(created.body)
    sent = protobuf.decode(envelope("apps/v1", "Deployment", go_deployment()))
    sent["metadata"]["name"] = "web-json"
    as_json = call(devcluster, "POST", path, json.dumps(sent).encode(), "application/json")
    from_json = json.loads(as_json.body)
    for obj in (from_protobuf, from_json):
        for key in ("name", "uid", "resourceVersion", "creationTimestamp"):
            del obj["metadata"][key]
    assert from_protobuf == from_json


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"kind":"Deployment"}',
            "the object provided is unrecognized (must be of type Deployment): provided data"
            " does not appear to be a protobuf message, expected prefix [107 56 115 0]"
            ' ({"kind":"Deployment"})',
        ),
        (
            protobuf.MAGIC + b"\x0a\x0f",
            "the object provided is unrecognized (must be of type Deployment): the protobuf"
            " body could not be decoded (6b3873000a0f)",
        ),
    ],
)
def test_a_body_that_is_not_kubernetes_protobuf_is_400(
    devcluster: DevCluster, body: bytes, message: str
) -> None:
    answer = call(
        devcluster,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        body,
        protobuf.CONTENT_TYPE,
    )
    assert answer.status == 400
    assert json.loads(answer.body)["message"] == message
    assert devcluster.list("deployments", "default") == []


def test_other_body_types_are_415_naming_the_types_served(devcluster: DevCluster) -> None:
    answer = call(devcluster, "POST", "/api/v1/namespaces", b"\xa0", "application/cbor")
    assert answer.status == 415
    assert json.loads(answer.body)["message"] == (
        "the body of the request was in an unknown format - accepted media types include:"
        " application/json, application/yaml, application/vnd.kubernetes.protobuf"
    )
