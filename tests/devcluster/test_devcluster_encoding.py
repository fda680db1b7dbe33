"""How bodies travel: written as kube-apiserver's encoders write them."""

from __future__ import annotations

import json

import pytest
from devcluster.manifests import deployment

from devcluster import DevCluster
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
