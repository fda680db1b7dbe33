"""The gateway's /metrics, request counting by route template, and its access line."""

from __future__ import annotations

import logging

import falcon.testing
import grpc
import pytest
from google.protobuf.message import Message
from kubeupdate.v1 import deployment_image_service_pb2 as pb

from gateway.app import create_app
from gateway.errors import UpstreamError
from gateway.metrics import GatewayMetrics
from gateway.routes import Rpc
from gateway.settings import GatewaySettings
from gateway.streaming import OpenStreams
from gateway.upstream import Metadata, ReplyStream, StreamCall, UnaryCall
from tests.observed import sample

ROUTE = "/deployment/{namespace}/{deployment}/{container}"


class Upstream:
    """Answers GetContainerImage for container ``app``, NOT_FOUND for any other."""

    def unary_unary(self, rpc: Rpc) -> UnaryCall:
        async def call(request: Message, *, timeout: float, metadata: Metadata) -> Message:  # noqa: ASYNC109
            assert isinstance(request, pb.GetContainerImageRequest)
            if request.container != "app":
                raise UpstreamError(grpc.StatusCode.NOT_FOUND, "no such container")
            return pb.GetContainerImageResponse(image="nginx:1.25")

        return call

    def unary_stream(self, rpc: Rpc) -> StreamCall:
        def call(request: Message, *, timeout: float, metadata: Metadata) -> ReplyStream:
            raise AssertionError("not used")

        return call

    async def check_health(self, *, timeout: float) -> str:  # noqa: ASYNC109
        return "SERVING"


def client(settings: GatewaySettings | None = None, **kwargs: object) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(create_app(Upstream(), settings, **kwargs))  # type: ignore[arg-type]


def test_requests_are_counted_by_route_template_method_and_code() -> None:
    metrics = GatewayMetrics()
    app = client(metrics=metrics)
    assert app.simulate_get("/deployment/default/web/app").status_code == 200
    assert app.simulate_get("/deployment/other/api/app").status_code == 200
    assert app.simulate_get("/deployment/default/web/nope").status_code == 404
    assert app.simulate_request("BREW", "/deployment/default/web/app").status_code == 400
    assert app.simulate_get("/not/a/route").status_code == 404

    scraped = app.simulate_get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    text = scraped.text
    requests = "gateway_http_requests_total"
    assert sample(text, requests, route=ROUTE, method="GET", code="200") == 2
    assert sample(text, requests, route=ROUTE, method="GET", code="404") == 1
    # A made-up method is "other": clients cannot grow the label set.
    assert sample(text, requests, route=ROUTE, method="other", code="400") == 1
    assert sample(text, requests, route="unmatched", method="GET", code="404") == 1
    duration = "gateway_http_request_duration_seconds_count"
    assert sample(text, duration, route=ROUTE, method="GET") == 3
    assert "/deployment/default" not in text
    # Series made at start read zero before any request: dashboards see them.
    assert f'{requests}{{code="200",method="POST",route="{ROUTE}"}} 0.0' in text


def test_each_app_has_its_own_registry() -> None:
    first, second = client(), client()
    first.simulate_get("/deployment/default/web/app")
    requests = "gateway_http_requests_total"
    labels = {"route": ROUTE, "method": "GET", "code": "200"}
    assert sample(first.simulate_get("/metrics").text, requests, **labels) == 1
    assert sample(second.simulate_get("/metrics").text, requests, **labels) == 0


def test_open_streams_are_read_at_scrape_time() -> None:
    streams = OpenStreams()
    app = client(open_streams=streams)

    class Stream:
        async def next(self) -> Message | None:
            return None

        def cancel(self) -> None:
            pass

    stream = Stream()
    streams.add(stream)
    assert sample(app.simulate_get("/metrics").text, "gateway_http_open_streams") == 1
    streams.discard(stream)
    assert sample(app.simulate_get("/metrics").text, "gateway_http_open_streams") == 0


def test_metrics_can_be_switched_off() -> None:
    app = client(GatewaySettings(metrics=False))
    assert app.simulate_get("/metrics").status_code == 404
    assert app.simulate_get("/deployment/default/web/app").status_code == 200


def test_access_line_carries_the_request_id_and_no_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = client()
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        answer = app.simulate_get(
            "/deployment/default/web/app",
            query_string="token=abc",
            headers={"X-Request-Id": "rid-1", "Authorization": "Bearer hunter2"},
        )
    assert answer.headers["x-request-id"] == "rid-1"
    (record,) = [r for r in caplog.records if r.name == "gateway.access"]
    assert record.getMessage().startswith("GET /deployment/default/web/app 200 ")
    assert record.__dict__["route"] == ROUTE
    assert record.__dict__["status"] == 200
    assert "hunter2" not in caplog.text
    assert "token=abc" not in caplog.text


def test_no_access_line_when_switched_off(caplog: pytest.LogCaptureFixture) -> None:
    app = client(GatewaySettings(access_log=False))
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        app.simulate_get("/deployment/default/web/app")
    assert not [r for r in caplog.records if r.name == "gateway.access"]
