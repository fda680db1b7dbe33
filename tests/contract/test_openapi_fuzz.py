"""Schemathesis against the live stack (gateway → service → devcluster), from the committed spec.

Every operation of ``gateway/openapi.json`` is fuzzed with data that fits its
schemas (positive) and data that does not (negative). Every answer must be
one the document lists, with a body that matches its schema, and none may be
a 5xx other than those the document allows for a down or incomplete service
(and there must be none of those here: the service is up).

Bounds: at most ``MAX_EXAMPLES`` examples per operation and mode, no deadline
(the first request of a test starts connections), so the whole module runs in
well under a minute.

Every operation is fuzzed, the rollout ones included. Random names seldom
hit a Deployment that exists, so ``test_known_answers_match_the_document``
also checks real 200 answers (and a streamed watch) against the document.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode

from tests.stack import Stack

DOCUMENT = Path(__file__).resolve().parents[2] / "gateway" / "openapi.json"
MAX_EXAMPLES = 50

# A 5xx is a failure even where the document lists it: the service is up and
# implements every operation fuzzed, so 500/501/503/504 would be bugs.
NO_SERVER_ERROR = [str(status) for status in range(100, 500)]

# Data that fits the schema may still be refused by the service: names must be
# Kubernetes names and images image references, which the schema does not
# spell out, and a random name is rarely an existing Deployment.
POSITIVE_ANSWERS = ["2xx", "400", "404"]


def load_schema() -> Any:
    document = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    schema = schemathesis.openapi.from_dict(document)
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=MAX_EXAMPLES,
    )
    checks = schema.config.checks
    checks.not_a_server_error.expected_statuses = NO_SERVER_ERROR
    checks.positive_data_acceptance.expected_statuses = POSITIVE_ANSWERS
    return schema


schema = load_schema()

TestFunction = Callable[..., None]


def fuzzed(test: TestFunction) -> TestFunction:
    """``schema.parametrize()``, typed (schemathesis types its decorator loosely)."""
    parametrized: TestFunction = schema.parametrize()(test)
    return parametrized


def bounded(case: schemathesis.Case[Any]) -> None:
    """Keeps a waited update short: a fuzzer must not wait minutes for a rollout."""
    body = case.body
    if isinstance(body, dict) and body.get("Wait") is True:
        body["Timeout"] = "0.2s"


@fuzzed
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    # One stack serves every example of an operation; starting one per example
    # would take minutes.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_the_gateway_answers_as_its_openapi_document_says(
    case: schemathesis.Case[Any], stack: Stack
) -> None:
    if case.meta is None or case.meta.generation.mode == GenerationMode.POSITIVE:
        bounded(case)
    case.call_and_validate(base_url=f"http://127.0.0.1:{stack.http_port}", timeout=30)


P3 = "/deployment/{namespace}/{deployment}/{container}"
# method, path template, path values, JSON body, the status the stack answers.
KNOWN: list[tuple[str, str, str, dict[str, Any] | None, int]] = [
    ("GET", P3, "default/web/app", None, 200),
    ("GET", P3, "default/web/nope", None, 404),
    ("GET", "/deployment/{namespace}/{deployment}", "default/web", None, 200),
    ("POST", P3, "default/web/app", {}, 400),
    ("POST", P3, "default/web/app", {"Image": "nginx:1.27", "Reason": "fuzz baseline"}, 200),
    ("POST", P3, "default/web/app", {"Image": "nginx:1.28", "DryRun": True}, 200),
    ("GET", "/rollout/{namespace}/{deployment}", "default/web", None, 200),
    ("GET", "/history/{namespace}/{deployment}", "default/web", None, 200),
]


def test_known_answers_match_the_document(stack: Stack) -> None:
    base_url = f"http://127.0.0.1:{stack.http_port}"
    for method, path, values, body, status in KNOWN:
        names = [part.strip("{}") for part in path.split("/") if part.startswith("{")]
        parameters = dict(zip(names, values.split("/"), strict=True))
        kwargs: dict[str, Any] = {"path_parameters": parameters}
        if body is not None:
            kwargs["body"] = body
            kwargs["media_type"] = "application/json"
        case = schema[path][method].Case(**kwargs)
        response = case.call_and_validate(base_url=base_url, timeout=30)
        assert response.status_code == status, (method, values, response.text)


def test_a_watch_streams_lines_that_match_the_document(stack: Stack) -> None:
    document = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    watch = document["paths"]["/rollout/{namespace}/{deployment}/watch"]["get"]
    line_schema = watch["responses"]["200"]["content"]["application/x-ndjson"]["schema"]
    assert {"$ref": "#/components/schemas/kubeupdate.v1.WatchRolloutResponse"} in (
        line_schema["oneOf"]
    )
    reply = document["components"]["schemas"]["kubeupdate.v1.WatchRolloutResponse"]
    # The devcluster's clock stands still, so the rollout never ends: read the
    # first line, then hang up (which cancels the watch).
    connection = http.client.HTTPConnection("127.0.0.1", stack.http_port, timeout=30)
    try:
        connection.request("GET", "/rollout/default/web/watch")
        answer = connection.getresponse()
        assert answer.status == 200
        assert answer.getheader("Content-Type") == "application/x-ndjson"
        message = json.loads(answer.readline())
    finally:
        connection.close()
    assert set(reply["required"]) <= set(message) <= set(reply["properties"])
    assert message["Rollout"]["State"].startswith("STATE_")


def test_every_operation_is_fuzzed() -> None:
    document = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    described = sum(len(operations) for operations in document["paths"].values())
    assert len(list(schema.get_all_operations())) == described
