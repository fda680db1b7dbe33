"""The Falcon app with a fake upstream: translation, errors, headers, metadata."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import falcon
import falcon.testing
import grpc
import pytest
from google.protobuf.message import Message
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1.error_reason_pb2 import ErrorReason

from gateway.app import create_app
from gateway.errors import GENERIC_DETAIL, UpstreamError
from gateway.routes import Rpc
from gateway.settings import GatewaySettings
from gateway.upstream import Metadata, ReplyStream, StreamCall, UnaryCall

SERVICE = "/kubeupdate.v1.DeploymentImageService"
GET = f"{SERVICE}/GetContainerImage"
SET = f"{SERVICE}/SetContainerImage"
LIST = f"{SERVICE}/ListContainerImages"
PATH = "/deployment/default/web/app"
JSON = {"Content-Type": "application/json"}

Reply = Message | BaseException | Callable[[Message], Message]


class ScriptedStream:
    """A ReplyStream giving scripted replies; an exception item is raised in turn."""

    def __init__(self, items: list[Message | BaseException]) -> None:
        self._items = list(items)
        self.cancelled = False

    async def next(self) -> Message | None:
        if self.cancelled:
            raise UpstreamError(grpc.StatusCode.CANCELLED, "cancelled")
        if not self._items:
            return None
        item = self._items.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class Call:
    path: str
    request: Message
    timeout: float
    metadata: Metadata


@dataclass
class FakeUpstream:
    """Answers each RPC with a scripted reply or error and records every call."""

    replies: dict[str, Reply] = field(default_factory=dict)
    streams: dict[str, list[Message | BaseException]] = field(default_factory=dict)
    opened: list[ScriptedStream] = field(default_factory=list)
    health: str | BaseException = "SERVING"
    calls: list[Call] = field(default_factory=list)

    def unary_unary(self, rpc: Rpc) -> UnaryCall:
        async def call(request: Message, *, timeout: float, metadata: Metadata) -> Message:  # noqa: ASYNC109
            self.calls.append(Call(rpc.path, request, timeout, metadata))
            reply = self.replies[rpc.path]
            if isinstance(reply, BaseException):
                raise reply
            if callable(reply):
                return reply(request)
            return reply

        return call

    def unary_stream(self, rpc: Rpc) -> StreamCall:
        def call(request: Message, *, timeout: float, metadata: Metadata) -> ReplyStream:
            self.calls.append(Call(rpc.path, request, timeout, metadata))
            stream = ScriptedStream(self.streams[rpc.path])
            self.opened.append(stream)
            return stream

        return call

    async def check_health(self, *, timeout: float) -> str:  # noqa: ASYNC109
        if isinstance(self.health, BaseException):
            raise self.health
        return self.health

    @property
    def last(self) -> Call:
        return self.calls[-1]


def echo_get(request: Message) -> Message:
    assert isinstance(request, pb.GetContainerImageRequest)
    return pb.GetContainerImageResponse(
        namespace=request.namespace,
        deployment=request.deployment,
        container=request.container,
        image="nginx:1.25",
    )


def echo_set(request: Message) -> Message:
    assert isinstance(request, pb.SetContainerImageRequest)
    return pb.SetContainerImageResponse(
        namespace=request.namespace,
        deployment=request.deployment,
        container=request.container,
        image=request.image,
        previous_image="nginx:1.24",
        changed=True,
        generation=7,
    )


@pytest.fixture
def upstream() -> FakeUpstream:
    return FakeUpstream(replies={GET: echo_get, SET: echo_set})


@pytest.fixture
def client(upstream: FakeUpstream) -> falcon.testing.TestClient:
    settings = GatewaySettings(call_timeout=12.5, max_body_bytes=64 * 1024)
    return falcon.testing.TestClient(create_app(upstream, settings))


def error_body(result: falcon.testing.Result) -> dict[str, str]:
    assert result.headers["content-type"] == "application/json"
    body = json.loads(result.text)
    assert body["Status"] == "failed"
    assert set(body) == {"Status", "Detail", "Code", "Reason"}
    assert isinstance(body["Detail"], str)
    assert body["Detail"]
    assert body["Reason"] in set(ErrorReason.keys())
    return body  # type: ignore[no-any-return]


# --- the original's contract -------------------------------------------------


def test_root_answers_the_original_bytes(client: falcon.testing.TestClient) -> None:
    result = client.simulate_get("/")
    assert result.status_code == 200
    assert result.content == b'{"Status":"okay","Detail":"server is running"}\n'
    assert result.headers["content-type"] == "application/json"


def test_get_answers_pascal_case_fields_in_proto_order(
    client: falcon.testing.TestClient, upstream: FakeUpstream
) -> None:
    result = client.simulate_get(PATH)
    assert result.status_code == 200
    assert result.content == (
        b'{"Namespace":"default","Deployment":"web","Container":"app","Image":"nginx:1.25"}\n'
    )
    assert upstream.last.path == GET
    assert upstream.last.request == pb.GetContainerImageRequest(
        namespace="default", deployment="web", container="app"
    )


def test_post_sends_the_body_and_path_and_prints_defaults(
    client: falcon.testing.TestClient, upstream: FakeUpstream
) -> None:
    upstream.replies[SET] = pb.SetContainerImageResponse(
        namespace="default", deployment="web", container="app", image="nginx:1.25", generation=3
    )
    result = client.simulate_post(PATH, body='{"Image":"nginx:1.25"}', headers=JSON)
    assert result.status_code == 200
    # Defaults are present, int64 is a string, keys follow the proto's order.
    assert list(result.json) == [
        "Namespace",
        "Deployment",
        "Container",
        "Image",
        "PreviousImage",
        "Changed",
        "Generation",
        "DryRun",
    ]
    # Rollout is a message: it has presence and is left out when unset.
    assert result.json["Changed"] is False
    assert result.json["DryRun"] is False
    assert result.json["PreviousImage"] == ""
    assert result.json["Generation"] == "3"
    assert upstream.last.request == pb.SetContainerImageRequest(
        namespace="default", deployment="web", container="app", image="nginx:1.25"
    )


def test_list_answers_nested_messages_with_defaults(
    client: falcon.testing.TestClient, upstream: FakeUpstream
) -> None:
    upstream.replies[LIST] = pb.ListContainerImagesResponse(
        namespace="default",
        deployment="web",
        containers=[pb.ContainerImage(name="app", image="nginx:1.25")],
    )
    result = client.simulate_get("/deployment/default/web")
    assert result.status_code == 200
    assert result.json == {
        "Namespace": "default",
        "Deployment": "web",
        "Containers": [{"Name": "app", "Image": "nginx:1.25", "InitContainer": False}],
    }
    assert upstream.last.request == pb.ListContainerImagesRequest(
        namespace="default", deployment="web"
    )


def test_path_values_are_url_decoded(
    client: falcon.testing.TestClient, upstream: FakeUpstream
) -> None:
    result = client.simulate_get("/deployment/my%2Dns/web%2Eapi/app")
    assert result.status_code == 200
    assert upstream.last.request == pb.GetContainerImageRequest(
        namespace="my-ns", deployment="web.api", container="app"
    )


def test_empty_path_segment_is_refused(
    client: falcon.testing.TestClient, upstream: FakeUpstream
) -> None:
    result = client.simulate_get("/deployment//web/app")
    assert result.status_code == 400
    assert "Namespace" in error_body(result)["Detail"]
    assert upstream.calls == []


def test_empty_body_is_the_empty_message(
    client: falcon.testing.TestClient, upstream: FakeUpstream
) -> None:
    result = client.simulate_post(PATH)
    assert result.status_code == 200
    assert upstream.last.request == pb.SetContainerImageRequest(
        namespace="default", deployment="web", container="app"
    )


# --- body and path -------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        '{"Namespace":"default","Image":"x"}',
        '{"namespace":"default","Deployment":"web","Container":"app","Image":"x"}',
    ],
)
def test_body_may_repeat_a_path_variable_with_the_same_value(
    client: falcon.testing.TestClient, upstream: FakeUpstream, body: str
) -> None:
    result = client.simulate_post(PATH, body=body, headers=JSON)
    assert result.status_code == 200
    assert upstream.last.request == pb.SetContainerImageRequest(
        namespace="default", deployment="web", container="app", image="x"
    )


@pytest.mark.parametrize(
    ("body", "field_name"),
    [
        ('{"Namespace":"prod","Image":"x"}', "Namespace"),
        ('{"namespace":"prod","Image":"x"}', "Namespace"),
        ('{"Container":"sidecar","Image":"x"}', "Container"),
    ],
)
def test_body_contradicting_the_path_is_refused(
    client: falcon.testing.TestClient, upstream: FakeUpstream, body: str, field_name: str
) -> None:
    result = client.simulate_post(PATH, body=body, headers=JSON)
    assert result.status_code == 400
    detail = error_body(result)["Detail"]
    assert field_name in detail
    assert "path" in detail
    assert upstream.calls == []


# --- bad bodies and content types ----------------------------------------------

BAD_BODIES: list[tuple[str, bytes]] = [
    ("truncated", b'{"Image":"x"'),
    ("not json", b"nginx:1.25"),
    ("trailing comma", b'{"Image":"x",}'),
    ("single quotes", b"{'Image':'x'}"),
    ("array", b'["x"]'),
    ("string", b'"x"'),
    ("number", b"42"),
    ("null", b"null"),
    ("unknown field", b'{"Image":"x","Replicas":3}'),
    ("response-only field", b'{"Image":"x","Changed":true}'),
    ("misspelt field", b'{"Imagee":"x"}'),
    ("number for string", b'{"Image":5}'),
    ("list for string", b'{"Image":["x"]}'),
    ("object for string", b'{"Image":{"Name":"x"}}'),
    ("bool for string", b'{"Image":true}'),
    ("NaN", b'{"Image":NaN}'),
    ("not utf-8", b'{"Image":"\xff\xfe"}'),
    ("deep nesting", b"[" * 20000 + b"]" * 20000),
    ("deep object", b'{"Image":' + b'{"a":' * 5000 + b"1" + b"}" * 5001),
]


@pytest.mark.parametrize(("name", "body"), BAD_BODIES, ids=[name for name, _ in BAD_BODIES])
def test_bad_body_is_400(
    client: falcon.testing.TestClient, upstream: FakeUpstream, name: str, body: bytes
) -> None:
    result = client.simulate_post(PATH, body=body, headers=JSON)
    assert result.status_code == 400, name
    assert error_body(result)["Code"] == "INVALID_ARGUMENT"
    assert "Traceback" not in result.text
    assert upstream.calls == []


def test_unknown_field_is_named(client: falcon.testing.TestClient) -> None:
    result = client.simulate_post(PATH, body='{"Imagee":"x"}', headers=JSON)
    assert "Imagee" in error_body(result)["Detail"]


ACCEPTED_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "Application/JSON;charset=UTF-8",
    "application/merge-patch+json",
    "application/x-www-form-urlencoded",  # curl -d's label for a JSON body
    None,
]


@pytest.mark.parametrize("content_type", ACCEPTED_TYPES)
def test_json_body_is_accepted_with(
    client: falcon.testing.TestClient, upstream: FakeUpstream, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    result = client.simulate_post(PATH, body='{"Image":"nginx:1.25"}', headers=headers)
    assert result.status_code == 200
    assert upstream.last.request.image == "nginx:1.25"  # type: ignore[attr-defined]


REFUSED_TYPES = [
    ("text/plain", b'{"Image":"x"}'),
    ("text/plain; charset=utf-8", b'{"Image":"x"}'),
    ("application/xml", b"<Image>x</Image>"),
    ("multipart/form-data; boundary=x", b'{"Image":"x"}'),
    ("application/octet-stream", b'{"Image":"x"}'),
    ("text/json", b'{"Image":"x"}'),
    ("garbage", b'{"Image":"x"}'),
    ("application/x-www-form-urlencoded", b"Image=nginx%3A1.25"),  # a real form
]


@pytest.mark.parametrize(("content_type", "body"), REFUSED_TYPES)
def test_non_json_body_is_415(
    client: falcon.testing.TestClient, upstream: FakeUpstream, content_type: str, body: bytes
) -> None:
    result = client.simulate_post(PATH, body=body, headers={"Content-Type": content_type})
    assert result.status_code == 415
    assert "application/json" in error_body(result)["Detail"]
    assert upstream.calls == []


def test_garbage_without_content_type_is_400(client: falcon.testing.TestClient) -> None:
    result = client.simulate_post(PATH, body=b"Image=x")
    assert result.status_code == 400


def test_get_ignores_body_and_content_type(
    client: falcon.testing.TestClient, upstream: FakeUpstream
) -> None:
    result = client.simulate_get(PATH, body=b"junk", headers={"Content-Type": "text/plain"})
    assert result.status_code == 200


def test_body_at_the_limit_is_read(
    client: falcon.testing.TestClient, upstream: FakeUpstream
) -> None:
    body = b'{"Image":"x"}'
    body += b" " * (64 * 1024 - len(body))
    result = client.simulate_post(PATH, body=body, headers=JSON)
    assert result.status_code == 200


def test_body_over_the_limit_is_413(
    client: falcon.testing.TestClient, upstream: FakeUpstream
) -> None:
    body = b'{"Image":"x"}'
    body += b" " * (64 * 1024 + 1 - len(body))
    result = client.simulate_post(PATH, body=body, headers=JSON)
    assert result.status_code == 413
    assert error_body(result)["Code"] == "INVALID_ARGUMENT"
    assert upstream.calls == []


# --- errors --------------------------------------------------------------------

STATUS_TABLE = [
    (grpc.StatusCode.INVALID_ARGUMENT, 400),
    (grpc.StatusCode.FAILED_PRECONDITION, 400),
    (grpc.StatusCode.OUT_OF_RANGE, 400),
    (grpc.StatusCode.UNAUTHENTICATED, 401),
    (grpc.StatusCode.PERMISSION_DENIED, 403),
    (grpc.StatusCode.NOT_FOUND, 404),
    (grpc.StatusCode.ABORTED, 409),
    (grpc.StatusCode.ALREADY_EXISTS, 409),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
    (grpc.StatusCode.CANCELLED, 499),
    (grpc.StatusCode.UNIMPLEMENTED, 501),
    (grpc.StatusCode.UNAVAILABLE, 503),
    (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
    (grpc.StatusCode.INTERNAL, 500),
    (grpc.StatusCode.UNKNOWN, 500),
    (grpc.StatusCode.DATA_LOSS, 500),
]


@pytest.mark.parametrize(("code", "http_status"), STATUS_TABLE, ids=lambda v: str(v))
def test_grpc_status_becomes_http_status(
    client: falcon.testing.TestClient,
    upstream: FakeUpstream,
    code: grpc.StatusCode,
    http_status: int,
) -> None:
    secret = "deployment web in namespace default does not exist (10.0.0.7:6443)"
    upstream.replies[GET] = UpstreamError(code, secret)
    result = client.simulate_get(PATH)
    assert result.status_code == http_status
    body = error_body(result)
    assert body["Code"] == code.name
    if code in GENERIC_DETAIL:
        # Internal-looking failures get a fixed sentence; the original stays in the log.
        assert body["Detail"] == GENERIC_DETAIL[code]
        assert "10.0.0.7" not in result.text
    else:
        assert body["Detail"] == secret


def test_every_grpc_status_is_in_the_table() -> None:
    covered = {code for code, _ in STATUS_TABLE} | {grpc.StatusCode.OK}
    assert covered == set(grpc.StatusCode)


def test_empty_upstream_detail_still_gives_a_sentence(
    client: falcon.testing.TestClient, upstream: FakeUpstream
) -> None:
    upstream.replies[GET] = UpstreamError(grpc.StatusCode.NOT_FOUND, "")
    assert "NOT_FOUND" in error_body(client.simulate_get(PATH))["Detail"]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "7"),
        (grpc.StatusCode.UNAVAILABLE, "7"),
        (grpc.StatusCode.NOT_FOUND, None),
        (grpc.StatusCode.ABORTED, None),
    ],
)
def test_retry_after_passes_on_429_and_503_only(
    client: falcon.testing.TestClient,
    upstream: FakeUpstream,
    code: grpc.StatusCode,
    expected: str | None,
) -> None:
    upstream.replies[GET] = UpstreamError(code, "busy", retry_after="7")
    result = client.simulate_get(PATH)
    assert result.headers.get("retry-after") == expected


def test_unexpected_exception_is_a_generic_500(
    client: falcon.testing.TestClient, upstream: FakeUpstream
) -> None:
    upstream.replies[GET] = RuntimeError("secret token abc123 leaked in a bug")
    result = client.simulate_get(PATH)
    assert result.status_code == 500
    body = error_body(result)
    assert body["Code"] == "INTERNAL"
    assert "abc123" not in result.text
    assert "Traceback" not in result.text


def test_unknown_route_is_json_404(client: falcon.testing.TestClient) -> None:
    for path in ("/nope", "/deployment", "/deployment/a/b/c/d", PATH + "/"):
        result = client.simulate_get(path)
        assert result.status_code == 404, path
        assert error_body(result)["Code"] == "NOT_FOUND"


def test_wrong_method_is_json_405_with_allow(client: falcon.testing.TestClient) -> None:
    result = client.simulate_delete(PATH)
    assert result.status_code == 405
    assert "GET" in result.headers["allow"]
    assert "POST" in result.headers["allow"]
    body = error_body(result)
    assert "DELETE" in body["Detail"]
    result = client.simulate_post("/deployment/default/web", body="{}", headers=JSON)
    assert result.status_code == 405
    assert "POST" not in result.headers["allow"]


# --- health --------------------------------------------------------------------


def test_healthz_does_not_ask_the_service(
    client: falcon.testing.TestClient, upstream: FakeUpstream
) -> None:
    upstream.health = UpstreamError(grpc.StatusCode.UNAVAILABLE, "down")
    result = client.simulate_get("/healthz")
    assert result.status_code == 200
    assert result.json == {"Status": "okay", "Detail": "gateway is running"}


@pytest.mark.parametrize(
    ("health", "status"),
    [
        ("SERVING", 200),
        ("NOT_SERVING", 503),
        ("SERVICE_UNKNOWN", 503),
        (UpstreamError(grpc.StatusCode.UNAVAILABLE, "connection refused"), 503),
    ],
    ids=["serving", "not-serving", "unknown", "unreachable"],
)
def test_readyz_follows_the_health_check(
    client: falcon.testing.TestClient,
    upstream: FakeUpstream,
    health: str | BaseException,
    status: int,
) -> None:
    upstream.health = health
    result = client.simulate_get("/readyz")
    assert result.status_code == status
    body = result.json
    assert body["Status"] == ("okay" if status == 200 else "failed")
    assert body["Detail"]
    assert "connection refused" not in result.text


# --- metadata --------------------------------------------------------------------


def metadata_of(call: Call) -> dict[str, str]:
    return dict(call.metadata)


def test_sane_request_id_is_forwarded_and_echoed(
    client: falcon.testing.TestClient, upstream: FakeUpstream
) -> None:
    result = client.simulate_get(PATH, headers={"X-Request-Id": "ci-run-42.step/3"})
    assert result.headers["x-request-id"] == "ci-run-42.step/3"
    assert metadata_of(upstream.last)["x-request-id"] == "ci-run-42.step/3"


@pytest.mark.parametrize("given", [None, "", "has space", "x" * 129, "caf\u00e9", "a\tb"])
def test_missing_or_insane_request_id_is_replaced(
    client: falcon.testing.TestClient, upstream: FakeUpstream, given: str | None
) -> None:
    headers = {} if given is None else {"X-Request-Id": given}
    result = client.simulate_get(PATH, headers=headers)
    request_id = result.headers["x-request-id"]
    assert request_id != given
    assert len(request_id) == 32
    int(request_id, 16)
    assert metadata_of(upstream.last)["x-request-id"] == request_id


def test_request_ids_differ_between_requests(client: falcon.testing.TestClient) -> None:
    ids = {client.simulate_get("/").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


def test_request_id_is_echoed_on_errors(
    client: falcon.testing.TestClient, upstream: FakeUpstream
) -> None:
    upstream.replies[GET] = UpstreamError(grpc.StatusCode.NOT_FOUND, "gone")
    for result in (
        client.simulate_get(PATH, headers={"X-Request-Id": "r1"}),
        client.simulate_get("/nope", headers={"X-Request-Id": "r1"}),
        client.simulate_post(PATH, body="{", headers={**JSON, "X-Request-Id": "r1"}),
    ):
        assert result.headers["x-request-id"] == "r1"


def test_authorization_and_client_address_are_forwarded(
    client: falcon.testing.TestClient, upstream: FakeUpstream
) -> None:
    client.simulate_get(
        PATH, headers={"Authorization": "Bearer abc.def"}, remote_addr="203.0.113.9"
    )
    metadata = metadata_of(upstream.last)
    assert metadata["authorization"] == "Bearer abc.def"
    assert metadata["x-forwarded-for"] == "203.0.113.9"


def test_no_authorization_header_sends_none(
    client: falcon.testing.TestClient, upstream: FakeUpstream
) -> None:
    client.simulate_get(PATH)
    assert "authorization" not in metadata_of(upstream.last)


def test_unforwardable_authorization_is_400(
    client: falcon.testing.TestClient, upstream: FakeUpstream
) -> None:
    result = client.simulate_get(PATH, headers={"Authorization": "Basic caf\u00e9"})
    assert result.status_code == 400
    assert upstream.calls == []


def test_calls_carry_the_configured_deadline(
    client: falcon.testing.TestClient, upstream: FakeUpstream
) -> None:
    client.simulate_get(PATH)
    assert upstream.last.timeout == 12.5


def test_a_call_that_may_wait_gets_the_wait_deadline(upstream: FakeUpstream) -> None:
    # SetContainerImageRequest has a Duration `timeout`: a waited rollout may take
    # minutes, and the service ends the wait itself.
    settings = GatewaySettings(call_timeout=12.5, wait_call_timeout=1830.0)
    client = falcon.testing.TestClient(create_app(upstream, settings))
    client.simulate_post(PATH, json={"Image": "nginx:1.25", "Wait": True})
    assert upstream.last.timeout == 1830.0
    client.simulate_get(PATH)
    assert upstream.last.timeout == 12.5


@pytest.mark.parametrize(
    ("written", "seconds"), [("5m", 300), ("1h30m", 5400), ("90s", 90), ("1.5s", 1.5)]
)
def test_timeout_takes_the_durations_people_write(
    client: falcon.testing.TestClient, upstream: FakeUpstream, written: str, seconds: float
) -> None:
    result = client.simulate_post(
        PATH, json={"Image": "nginx:1.25", "Wait": True, "Timeout": written}
    )
    assert result.status_code == 200, result.text
    request = upstream.last.request
    assert isinstance(request, pb.SetContainerImageRequest)
    assert request.timeout.ToTimedelta().total_seconds() == seconds


def test_a_timeout_that_is_no_duration_is_answered_with_the_accepted_form(
    client: falcon.testing.TestClient, upstream: FakeUpstream
) -> None:
    result = client.simulate_post(
        PATH, json={"Image": "nginx:1.25", "Wait": True, "Timeout": "soon"}
    )
    assert result.status_code == 400
    assert error_body(result)["Detail"] == (
        "The body does not fit SetContainerImageRequest: Timeout: 'soon' is not a duration; "
        'write it like "90s", "5m" or "1h30m".'
    )
    assert upstream.calls == []


# --- server streaming ----------------------------------------------------------

WATCH = f"{SERVICE}/WatchRollout"
WATCH_PATH = "/rollout/default/web/watch"


def rollout_update(state: int, updated: int) -> pb.WatchRolloutResponse:
    return pb.WatchRolloutResponse(
        namespace="default",
        deployment="web",
        rollout=pb.Rollout(state=state, replicas=2, updated_replicas=updated, revision=4),  # type: ignore[arg-type]
    )


def test_stream_answers_one_json_line_per_reply(
    client: falcon.testing.TestClient, upstream: FakeUpstream
) -> None:
    upstream.streams[WATCH] = [
        rollout_update(pb.Rollout.STATE_PROGRESSING, 1),
        rollout_update(pb.Rollout.STATE_COMPLETE, 2),
    ]
    result = client.simulate_get(WATCH_PATH)
    assert result.status_code == 200
    assert result.headers["content-type"] == "application/x-ndjson"
    assert result.headers["cache-control"] == "no-store"
    lines = result.content.split(b"\n")
    assert lines[-1] == b""  # every line ends with a newline
    assert [json.loads(line) for line in lines[:-1]] == [
        {
            "Namespace": "default",
            "Deployment": "web",
            "Rollout": {
                "State": state,
                "Reason": "",
                "Message": "",
                "Replicas": 2,
                "UpdatedReplicas": updated,
                "ReadyReplicas": 0,
                "AvailableReplicas": 0,
                "Revision": "4",
                "Warnings": [],
            },
        }
        for state, updated in (("STATE_PROGRESSING", 1), ("STATE_COMPLETE", 2))
    ]
    # The line is the same bytes a unary answer of that message would be.
    assert lines[0] == (
        b'{"Namespace":"default","Deployment":"web","Rollout":{"State":"STATE_PROGRESSING",'
        b'"Reason":"","Message":"","Replicas":2,"UpdatedReplicas":1,"ReadyReplicas":0,'
        b'"AvailableReplicas":0,"Revision":"4","Warnings":[]}}'
    )
    assert upstream.last.request == pb.WatchRolloutRequest(namespace="default", deployment="web")
    assert upstream.opened[-1].cancelled  # the call is released once the stream ends


def test_stream_that_ends_at_once_is_an_empty_200(
    client: falcon.testing.TestClient, upstream: FakeUpstream
) -> None:
    upstream.streams[WATCH] = []
    result = client.simulate_get(WATCH_PATH)
    assert result.status_code == 200
    assert result.content == b""


@pytest.mark.parametrize(("code", "http_status"), STATUS_TABLE[:8], ids=lambda v: str(v))
def test_stream_failing_before_its_first_reply_is_an_ordinary_error(
    client: falcon.testing.TestClient,
    upstream: FakeUpstream,
    code: grpc.StatusCode,
    http_status: int,
) -> None:
    upstream.streams[WATCH] = [UpstreamError(code, "deployment web not found")]
    result = client.simulate_get(WATCH_PATH)
    assert result.status_code == http_status
    assert error_body(result)["Code"] == code.name
    assert upstream.opened[-1].cancelled


@pytest.mark.parametrize(
    ("error", "code", "detail", "reason"),
    [
        (
            UpstreamError(
                grpc.StatusCode.NOT_FOUND, "web was deleted", reason="DEPLOYMENT_NOT_FOUND"
            ),
            "NOT_FOUND",
            "web was deleted",
            "DEPLOYMENT_NOT_FOUND",
        ),
        (
            UpstreamError(grpc.StatusCode.UNAVAILABLE, "10.0.0.7:6443 refused"),
            "UNAVAILABLE",
            GENERIC_DETAIL[grpc.StatusCode.UNAVAILABLE],
            "SERVICE_UNAVAILABLE",  # no reason from the service: gRPC's own failure
        ),
        (
            UpstreamError(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline"),
            "DEADLINE_EXCEEDED",
            GENERIC_DETAIL[grpc.StatusCode.DEADLINE_EXCEEDED],
            "CALL_DEADLINE_EXCEEDED",
        ),
        (
            RuntimeError("secret abc123"),
            "INTERNAL",
            "The gateway failed with an internal error.",
            "INTERNAL",
        ),
    ],
    ids=["not-found", "unavailable", "deadline", "bug"],
)
def test_stream_failing_after_its_first_reply_ends_with_a_failure_line(
    client: falcon.testing.TestClient,
    upstream: FakeUpstream,
    error: BaseException,
    code: str,
    detail: str,
    reason: str,
) -> None:
    upstream.streams[WATCH] = [rollout_update(pb.Rollout.STATE_PROGRESSING, 1), error]
    result = client.simulate_get(WATCH_PATH)
    assert result.status_code == 200
    first, last, end = result.content.split(b"\n")
    assert json.loads(first)["Rollout"]["State"] == "STATE_PROGRESSING"
    assert json.loads(last) == {
        "Status": "failed",
        "Detail": detail,
        "Code": code,
        "Reason": reason,
    }
    assert end == b""
    assert "10.0.0.7" not in result.text
    assert "abc123" not in result.text
    assert upstream.opened[-1].cancelled


def test_stream_calls_carry_the_stream_deadline_and_metadata(upstream: FakeUpstream) -> None:
    settings = GatewaySettings(call_timeout=12.5, stream_timeout=900.0)
    client = falcon.testing.TestClient(create_app(upstream, settings))
    upstream.streams[WATCH] = []
    client.simulate_get(WATCH_PATH, headers={"Authorization": "Bearer t", "X-Request-Id": "w1"})
    assert upstream.last.timeout == 900.0
    assert metadata_of(upstream.last)["authorization"] == "Bearer t"
    assert metadata_of(upstream.last)["x-request-id"] == "w1"
    # The unary routes keep their own deadline.
    client.simulate_get(PATH)
    assert upstream.last.timeout == 12.5


def test_stream_path_is_validated_before_the_call(
    client: falcon.testing.TestClient, upstream: FakeUpstream
) -> None:
    result = client.simulate_get("/rollout//web/watch")
    assert result.status_code == 400
    assert upstream.calls == []
    assert client.simulate_post(WATCH_PATH).status_code == 405
