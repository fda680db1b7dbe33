"""The OpenAPI document: built from the descriptors, committed, served, kept fresh."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import falcon.testing
import grpc_tools  # type: ignore[import-untyped]
import pytest
from grpc_tools import protoc

from gateway.app import DEFAULT_SERVICES, create_app
from gateway.openapi import (
    DOCUMENT_PATH,
    build_openapi,
    comments_from_descriptor_set,
    openapi_document,
    render,
)
from gateway.routes import routes_for_services
from tests.gateway.test_gateway_app import FakeUpstream
from tests.gateway.test_gateway_routes import widget_service

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "proto"
P3 = "/deployment/{namespace}/{deployment}/{container}"


def fresh_comments(tmp_path: Path) -> dict[str, str]:
    """Comments from a descriptor set compiled now, as scripts/generate makes it."""
    out = tmp_path / "descriptors.binpb"
    sources = sorted(str(path.relative_to(PROTO)) for path in PROTO.glob("kubeupdate/**/*.proto"))
    code = protoc.main(
        [
            "protoc",
            f"--proto_path={PROTO}",
            # The well-known types (duration, timestamp) ship with grpc_tools.
            f"--proto_path={Path(grpc_tools.__file__).parent / '_proto'}",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            *sources,
        ]
    )
    assert code == 0
    return comments_from_descriptor_set(out.read_bytes())


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    comments = fresh_comments(tmp_path_factory.mktemp("openapi"))
    return build_openapi(DEFAULT_SERVICES, comments=comments)


def schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    return document["components"]["schemas"][name]  # type: ignore[no-any-return]


def test_the_committed_document_is_fresh(document: dict[str, Any]) -> None:
    # The same check as scripts/generate --check, so a stale file fails the tests too.
    assert DOCUMENT_PATH.read_bytes() == render(document), "run scripts/generate"


def test_every_route_and_the_gateway_paths_are_described(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    described = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    routes = {
        (route.http_method, route.template) for route in routes_for_services(DEFAULT_SERVICES)
    }
    gateway_own = {("GET", path) for path in ("/", "/healthz", "/readyz", "/openapi.json")}
    assert described == routes | gateway_own
    ids = [
        operation["operationId"]
        for operations in document["paths"].values()
        for operation in operations.values()
    ]
    assert len(ids) == len(set(ids))


def test_operations_carry_the_proto_comments_and_path_parameters(
    document: dict[str, Any],
) -> None:
    get = document["paths"][P3]["get"]
    assert get["operationId"] == "GetContainerImage"
    assert get["summary"] == "Returns the image of one container of a Deployment."
    assert "NOT_FOUND" in get["description"]
    assert [(p["name"], p["in"], p["required"]) for p in get["parameters"]] == [
        ("namespace", "path", True),
        ("deployment", "path", True),
        ("container", "path", True),
    ]
    assert (
        get["parameters"][0]["description"]
        == "The namespace of the Deployment, for example `default`."
    )
    assert "requestBody" not in get
    assert "DeploymentImageService reads" in document["info"]["description"]


def test_error_answers_follow_the_documented_codes(document: dict[str, Any]) -> None:
    get = document["paths"][P3]["get"]["responses"]
    # From the RPC's comment (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED), the
    # service's (UNAUTHENTICATED, UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL) and the
    # gateway's own (501 from a service without the call).
    assert sorted(get) == ["200", "400", "401", "403", "404", "500", "501", "503", "504"]
    for status in sorted(get):
        if status != "200":
            content = get[status]["content"]["application/json"]["schema"]
            assert content == {"$ref": "#/components/schemas/Error"}
    assert "Retry-After" in get["503"]["headers"]
    post = document["paths"][P3]["post"]["responses"]
    # ABORTED -> 409; a body can be too large or not JSON.
    assert {"409", "413", "415"} <= set(post)
    assert "ABORTED" in post["409"]["description"]
    assert schema(document, "Error")["required"] == ["Status", "Detail", "Code", "Reason"]


def test_request_body_is_the_message_without_path_fields(document: dict[str, Any]) -> None:
    body = document["paths"][P3]["post"]["requestBody"]
    # The proto marks Image REQUIRED (google.api.field_behavior), so the body is required.
    assert body["required"] is True
    schema_ = body["content"]["application/json"]["schema"]
    assert schema_["required"] == ["Image"]
    assert list(schema_["properties"]) == [
        "Image",
        "Wait",
        "Timeout",
        "RollbackOnFailure",
        "DryRun",
        "Reason",
    ]
    assert schema_["additionalProperties"] is False
    properties = schema_["properties"]
    # null is how json_format reads "not set".
    assert properties["Image"]["type"] == "string"  # required: null would not set it
    assert properties["Wait"]["type"] == ["boolean", "null"]
    assert properties["Timeout"]["type"] == ["string", "null"]
    assert properties["Timeout"]["format"] == "google-duration"
    assert "120s" in properties["Timeout"]["description"]


def test_reply_schemas_follow_the_proto3_json_mapping(document: dict[str, Any]) -> None:
    reply = schema(document, "kubeupdate.v1.SetContainerImageResponse")
    assert list(reply["properties"]) == [
        "Namespace",
        "Deployment",
        "Container",
        "Image",
        "PreviousImage",
        "Changed",
        "Generation",
        "DryRun",
        "Rollout",
        "Digest",
        "RegistryCheck",
    ]
    # Always written unless a message or optional (presence): the gateway prints defaults.
    assert "Rollout" not in reply["required"]
    assert "Digest" not in reply["required"]
    assert "RegistryCheck" not in reply["required"]
    assert "Changed" in reply["required"]
    assert reply["properties"]["Generation"]["type"] == "string"
    assert reply["properties"]["Generation"]["format"] == "int64"
    assert reply["properties"]["Rollout"]["$ref"] == "#/components/schemas/kubeupdate.v1.Rollout"
    rollout = schema(document, "kubeupdate.v1.Rollout")["properties"]
    assert rollout["State"]["type"] == "string"
    assert "STATE_COMPLETE" in rollout["State"]["enum"]
    assert "`STATE_ROLLED_BACK`: The rollout failed" in rollout["State"]["description"]
    assert rollout["Replicas"] == {
        "type": "integer",
        "format": "int32",
        "description": "The desired number of replicas.",
    }
    assert rollout["Duration"]["pattern"].endswith("s$")
    revision = schema(document, "kubeupdate.v1.Revision")["properties"]
    assert revision["CreateTime"]["format"] == "date-time"
    assert revision["Containers"]["type"] == "array"
    assert revision["Containers"]["items"] == {
        "$ref": "#/components/schemas/kubeupdate.v1.ContainerImage"
    }


def test_the_streaming_route_answers_ndjson(document: dict[str, Any]) -> None:
    watch = document["paths"]["/rollout/{namespace}/{deployment}/watch"]["get"]
    ok = watch["responses"]["200"]["content"]
    assert list(ok) == ["application/x-ndjson"]
    assert ok["application/x-ndjson"]["schema"]["oneOf"] == [
        {"$ref": "#/components/schemas/kubeupdate.v1.WatchRolloutResponse"},
        {"$ref": "#/components/schemas/Error"},
    ]
    assert "newline-delimited JSON" in watch["description"]
    assert watch["responses"]["404"]["content"]["application/json"]


def test_the_gateway_serves_the_committed_document() -> None:
    client = falcon.testing.TestClient(create_app(FakeUpstream()))
    result = client.simulate_get("/openapi.json")
    assert result.status_code == 200
    assert result.headers["content-type"] == "application/json"
    assert result.content == DOCUMENT_PATH.read_bytes()


def test_other_services_get_a_document_of_their_own_routes() -> None:
    document = openapi_document([widget_service()])
    assert "/v1/widgets/{name}" in document["paths"]
    assert "/deployment/{namespace}/{deployment}" not in document["paths"]
    listing = document["paths"]["/v1/widgets"]["get"]
    query = {p["name"]: p["schema"] for p in listing["parameters"] if p["in"] == "query"}
    assert query["PageSize"] == {"type": "integer", "format": "int32"}
    assert query["Tags"] == {"type": "array", "items": {"type": "string"}}
    assert query["Size"]["pattern"] == "^-?[0-9]+$"
    put = document["paths"]["/v1/widgets/{name}"]["put"]["requestBody"]["content"]
    assert put["application/json"]["schema"]["anyOf"][0] == {
        "$ref": "#/components/schemas/gatewaytest.v1.Widget.Input"
    }
    tags = document["paths"]["/v1/widgets/{name}/tags"]["get"]["responses"]["200"]
    assert tags["content"]["application/json"]["schema"] == {
        "type": "array",
        "items": {"type": "string"},
    }
    nested = document["paths"]["/v1/shelves/{shelf.shelf_id}/widgets/{name}"]["get"]
    assert nested["operationId"] == "GetWidget_1"
    assert nested["parameters"][0]["name"] == "shelf.shelf_id"


def test_a_stale_committed_document_is_not_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stale = json.loads(DOCUMENT_PATH.read_text())
    del stale["paths"]["/history/{namespace}/{deployment}"]
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(stale))
    with caplog.at_level(logging.WARNING):
        served = openapi_document(DEFAULT_SERVICES, committed=path)
    assert "/history/{namespace}/{deployment}" in served["paths"]
    assert "does not match" in caplog.text
    assert openapi_document(DEFAULT_SERVICES, committed=tmp_path / "absent.json") == (
        build_openapi(DEFAULT_SERVICES)
    )


def test_the_document_loads_as_an_openapi_schema() -> None:
    schemathesis = pytest.importorskip("schemathesis")
    loaded = schemathesis.openapi.from_path(str(DOCUMENT_PATH))
    operations = [result.ok() for result in loaded.get_all_operations()]
    assert len(operations) == len(routes_for_services(DEFAULT_SERVICES)) + 4
