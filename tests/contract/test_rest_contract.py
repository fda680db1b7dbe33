"""The original kube-update-api's REST calls, through gateway → service → devcluster."""

from __future__ import annotations

import copy
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.stack import Stack

WEB_APP = "/deployment/default/web/app"
JSON = {"Content-Type": "application/json"}


def deployment(name: str, containers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": containers},
            },
        },
    }


def test_root_answers_exactly_like_the_original(stack: Stack) -> None:
    answer = stack.get("/")
    assert answer.status == 200
    assert answer.body == b'{"Status":"okay","Detail":"server is running"}\n'


def test_get_returns_the_original_four_fields(stack: Stack) -> None:
    answer = stack.get(WEB_APP)
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json == {
        "Namespace": "default",
        "Deployment": "web",
        "Container": "app",
        "Image": "nginx:1.25",
    }
    assert list(answer.json) == ["Namespace", "Deployment", "Container", "Image"]
    assert stack.cluster.journal.writes() == []


def test_get_finds_init_containers(stack: Stack) -> None:
    answer = stack.get("/deployment/staging/api/migrate")
    assert answer.status == 200
    assert answer.json["Image"] == "ghcr.io/acme/api-migrations:2.3.0"


def test_post_sets_only_that_container_with_one_json_patch(stack: Stack) -> None:
    before = stack.cluster.get("deployments", "default", "web")
    assert before is not None

    answer = stack.post_json(WEB_APP, {"Image": "nginx:1.27"})

    assert answer.status == 200
    assert answer.json == {
        "Namespace": "default",
        "Deployment": "web",
        "Container": "app",
        "Image": "nginx:1.27",
        "PreviousImage": "nginx:1.25",
        "Changed": True,
        "Generation": str(before["metadata"]["generation"] + 1),
        "DryRun": False,
    }
    after = stack.cluster.get("deployments", "default", "web")
    assert after is not None
    expected = copy.deepcopy(before["spec"])
    expected["template"]["spec"]["containers"][0]["image"] = "nginx:1.27"
    assert after["spec"] == expected
    writes = stack.cluster.journal.writes()
    assert [(w.method, w.content_type) for w in writes] == [
        ("PATCH", "application/json-patch+json")
    ]
    assert stack.get(WEB_APP).json["Image"] == "nginx:1.27"


def test_post_with_the_current_image_writes_nothing(stack: Stack) -> None:
    answer = stack.post_json(WEB_APP, {"Image": "nginx:1.25"})
    assert answer.status == 200
    assert answer.json["Changed"] is False
    assert answer.json["PreviousImage"] == "nginx:1.25"
    assert stack.cluster.journal.writes() == []


def test_post_accepts_the_original_full_body(stack: Stack) -> None:
    body = {"Namespace": "default", "Deployment": "web", "Container": "app", "Image": "nginx:2"}
    answer = stack.post_json(WEB_APP, body)
    assert answer.status == 200
    assert stack.image_of("default", "web", "app") == "nginx:2"


def test_list_returns_init_containers_then_containers(stack: Stack) -> None:
    answer = stack.get("/deployment/staging/api")
    assert answer.status == 200
    assert answer.json == {
        "Namespace": "staging",
        "Deployment": "api",
        "Containers": [
            {
                "Name": "migrate",
                "Image": "ghcr.io/acme/api-migrations:2.3.0",
                "InitContainer": True,
            },
            {"Name": "api", "Image": "ghcr.io/acme/api:2.3.0", "InitContainer": False},
        ],
    }


@pytest.mark.parametrize(
    ("path", "missing", "reason"),
    [
        ("/deployment/nowhere/web/app", 'namespace "nowhere"', "NAMESPACE_NOT_FOUND"),
        ("/deployment/default/nothing/app", 'deployment "nothing"', "DEPLOYMENT_NOT_FOUND"),
        ("/deployment/default/web/nope", 'container "nope"', "CONTAINER_NOT_FOUND"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_each_missing_level_is_a_404_naming_it(
    stack: Stack, path: str, missing: str, reason: str, method: str
) -> None:
    body = None if method == "GET" else json.dumps({"Image": "nginx:1.27"})
    answer = stack.request(method, path, body, JSON)
    assert answer.status == 404
    assert answer.json["Status"] == "failed"
    assert missing in answer.json["Detail"]
    assert answer.json["Code"] == "NOT_FOUND"
    assert answer.json["Reason"] == reason
    assert stack.cluster.journal.writes() == []


def test_missing_container_404_lists_the_containers_there(stack: Stack) -> None:
    detail = stack.get("/deployment/default/web/nope").json["Detail"]
    assert "app" in detail
    assert "sidecar" in detail


def _post(body: bytes | str, content_type: str | None = "application/json") -> dict[str, Any]:
    headers = {"Content-Type": content_type} if content_type else {}
    return {"method": "POST", "path": WEB_APP, "body": body, "headers": headers}


def _image(image: str) -> dict[str, Any]:
    return _post(json.dumps({"Image": image}))


BAD_REQUESTS: list[tuple[str, dict[str, Any], int, str]] = [
    (
        "uppercase namespace",
        {"method": "GET", "path": "/deployment/Default/web/app"},
        400,
        "NAME_INVALID",
    ),
    (
        "namespace of 64 characters",
        {"method": "GET", "path": f"/deployment/{'n' * 64}/web/app"},
        400,
        "NAME_INVALID",
    ),
    (
        "underscore in deployment",
        {"method": "GET", "path": "/deployment/default/we_b/app"},
        400,
        "NAME_INVALID",
    ),
    (
        "dot in container",
        {"method": "GET", "path": "/deployment/default/web/a.pp"},
        400,
        "NAME_INVALID",
    ),
    (
        "container ending in -",
        {"method": "GET", "path": "/deployment/default/web/app-"},
        400,
        "NAME_INVALID",
    ),
    (
        "deployment of 254 characters",
        {"method": "GET", "path": f"/deployment/default/{'d' * 254}/app"},
        400,
        "NAME_INVALID",
    ),
    (
        "invalid name on POST",
        {**_image("nginx:1.27"), "path": "/deployment/default/Web/app"},
        400,
        "NAME_INVALID",
    ),
    ("invalid JSON", _post("{not json"), 400, "REQUEST_MALFORMED"),
    ("JSON array", _post("[]"), 400, "REQUEST_MALFORMED"),
    ("unknown field", _post('{"Img": "nginx:1.27"}'), 400, "REQUEST_MALFORMED"),
    ("Image is a number", _post('{"Image": 127}'), 400, "REQUEST_MALFORMED"),
    ("Image is null-only body", _post("null"), 400, "REQUEST_MALFORMED"),
    ("missing Image", _post("{}"), 400, "IMAGE_INVALID"),
    ("empty Image", _image(""), 400, "IMAGE_INVALID"),
    ("uppercase repository", _image("Nginx:1.27"), 400, "IMAGE_INVALID"),
    ("space in image", _image("nginx :1.27"), 400, "IMAGE_INVALID"),
    ("trailing newline", _image("nginx:1.27\n"), 400, "IMAGE_INVALID"),
    ("tab in image", _image("nginx\t:1.27"), 400, "IMAGE_INVALID"),
    ("control character", _image("nginx:1.27\x00"), 400, "IMAGE_INVALID"),
    ("non-ASCII image", _image("nginx:1.27é"), 400, "IMAGE_INVALID"),
    ("tag of 129 characters", _image("nginx:" + "a" * 129), 400, "IMAGE_INVALID"),
    ("sha256 digest of 63 hex", _image("nginx@sha256:" + "a" * 63), 400, "IMAGE_INVALID"),
    ("leading dash", _image("-x"), 400, "IMAGE_INVALID"),
    ("empty path component", _image("a//b:1"), 400, "IMAGE_INVALID"),
    (
        "Namespace in body differs from path",
        _post('{"Namespace": "other", "Image": "nginx:2"}'),
        400,
        "REQUEST_MALFORMED",
    ),
    (
        "text/plain body",
        _post('{"Image": "nginx:1.27"}', "text/plain"),
        415,
        "MEDIA_TYPE_UNSUPPORTED",
    ),
    ("XML body", _post("<Image>nginx</Image>", "application/xml"), 415, "MEDIA_TYPE_UNSUPPORTED"),
    ("body over 64 KiB", _post(json.dumps({"Image": "x" * 70_000})), 413, "BODY_TOO_LARGE"),
    ("PUT is not a route", {**_image("nginx:2"), "method": "PUT"}, 405, "HTTP_METHOD_NOT_ALLOWED"),
    (
        "DELETE is not a route",
        {"method": "DELETE", "path": WEB_APP},
        405,
        "HTTP_METHOD_NOT_ALLOWED",
    ),
    (
        "unknown path",
        {"method": "POST", "path": "/deployments/default/web/app", "body": "{}"},
        404,
        "ROUTE_NOT_FOUND",
    ),
]


@pytest.mark.parametrize(
    ("request_", "status", "reason"),
    [pytest.param(r, s, why, id=name) for name, r, s, why in BAD_REQUESTS],
)
def test_bad_requests_get_a_clear_4xx_and_write_nothing(
    stack: Stack, request_: dict[str, Any], status: int, reason: str
) -> None:
    answer = stack.request(
        request_["method"], request_["path"], request_.get("body"), request_.get("headers")
    )
    assert answer.status == status, answer.body
    assert answer.json["Status"] == "failed"
    assert answer.json["Reason"] == reason  # for programs: never parse the sentence
    detail = answer.json["Detail"]
    assert isinstance(detail, str)
    assert len(detail) > 10
    assert "Traceback" not in detail
    assert stack.cluster.journal.writes() == []
    assert stack.image_of("default", "web", "app") == "nginx:1.25"


def test_there_are_at_least_25_bad_request_cases() -> None:
    assert len(BAD_REQUESTS) >= 25


def test_fifty_concurrent_posts_to_fifty_containers_all_land(stack: Stack) -> None:
    names = [f"c{i}" for i in range(50)]
    stack.cluster.create(deployment("many", [{"name": n, "image": "busybox:1.0"} for n in names]))

    def set_image(name: str) -> int:
        return stack.post_json(
            f"/deployment/default/many/{name}", {"Image": f"busybox:{name}"}
        ).status

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(set_image, names))

    assert statuses == [200] * 50
    for name in names:
        assert stack.image_of("default", "many", name) == f"busybox:{name}"


def test_twenty_concurrent_posts_to_one_container_leave_one_of_them(stack: Stack) -> None:
    before = stack.cluster.get("deployments", "default", "web")
    assert before is not None
    images = [f"nginx:1.{i}" for i in range(100, 120)]

    def set_image(image: str) -> int:
        return stack.post_json(WEB_APP, {"Image": image}).status

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(set_image, images))

    assert set(statuses) <= {200, 409}, statuses
    assert 200 in statuses
    final = stack.image_of("default", "web", "app")
    assert final in images
    after = stack.cluster.get("deployments", "default", "web")
    assert after is not None
    expected = copy.deepcopy(before["spec"])
    expected["template"]["spec"]["containers"][0]["image"] = final
    assert after["spec"] == expected
