"""Metrics and logs through the whole stack: REST → gateway → gRPC service → devcluster.

The stack here serves the service's metrics on a port-0 listener and the
gateway's at ``/metrics``; the counts are read back from the text format
after real calls.
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

from devcluster import DevCluster, faults
from kubeupdate import logs
from kubeupdate.auth.config import AuthConfig
from kubeupdate.demo import write_demo_security
from tests.observed import Observed, observed_stack, sample

WEB_APP = "/deployment/default/web/app"
JSON = {"Content-Type": "application/json"}
SERVICE = "kubeupdate.v1.DeploymentImageService"
DEPLOYMENT_PATH = "/apis/apps/v1/namespaces/*/deployments/*"


@pytest.fixture
def observed(devcluster: DevCluster) -> Iterator[Observed]:
    yield from observed_stack(devcluster, AuthConfig(enabled=False, rate_limit=0))


@pytest.fixture
def guarded(devcluster: DevCluster, tmp_path: Path) -> Iterator[tuple[Observed, str]]:
    """A stack with authentication on (the demo token and policy); yields the secret."""
    secret, config = write_demo_security(tmp_path)
    config = AuthConfig(
        tokens_file=config.tokens_file,
        policy_file=config.policy_file,
        audit_log=str(tmp_path / "audit.log"),
    )
    for stack in observed_stack(devcluster, config):
        yield stack, secret


def test_rest_calls_are_counted_on_both_sides(observed: Observed) -> None:
    assert observed.get(WEB_APP).status == 200
    assert observed.get(WEB_APP).status == 200
    assert observed.get("/deployment/default/web/nope").status == 404
    assert observed.post_json(WEB_APP, {"Image": "nginx:1.27"}).status == 200
    assert observed.post_json(WEB_APP, {"Image": "nginx:1.27"}).status == 200  # unchanged
    assert observed.post_json(WEB_APP, {"Image": "nginx:1.28", "DryRun": True}).status == 200
    assert observed.post_json(WEB_APP, {"Image": "Not An Image"}).status == 400
    assert observed.post_json(f"{WEB_APP}-gone", {"Image": "nginx:1.27"}).status == 404
    assert observed.get("/no/such/route").status == 404

    gateway = observed.gateway_metrics()
    route = "/deployment/{namespace}/{deployment}/{container}"
    requests = "gateway_http_requests_total"
    assert sample(gateway, requests, route=route, method="GET", code="200") == 2
    assert sample(gateway, requests, route=route, method="GET", code="404") == 1
    assert sample(gateway, requests, route=route, method="POST", code="200") == 3
    assert sample(gateway, requests, route=route, method="POST", code="400") == 1
    assert sample(gateway, requests, route=route, method="POST", code="404") == 1
    assert sample(gateway, requests, route="unmatched", method="GET", code="404") == 1
    # The raw path is never a label: one series per template, whatever the names.
    assert "/deployment/default/web" not in gateway
    duration = "gateway_http_request_duration_seconds_count"
    assert sample(gateway, duration, route=route, method="GET") == 3
    assert sample(gateway, "gateway_http_open_streams") == 0

    service = observed.service_metrics()
    handled = "grpc_server_handled_total"
    get = {"grpc_service": SERVICE, "grpc_method": "GetContainerImage", "grpc_type": "unary"}
    put = {**get, "grpc_method": "SetContainerImage"}
    assert sample(service, handled, **get, grpc_code="OK") == 2
    assert sample(service, handled, **get, grpc_code="NOT_FOUND") == 1
    assert sample(service, handled, **put, grpc_code="OK") == 3
    assert sample(service, handled, **put, grpc_code="INVALID_ARGUMENT") == 1
    assert sample(service, handled, **put, grpc_code="NOT_FOUND") == 1
    assert sample(service, "grpc_server_handling_seconds_count", **get) == 3
    updates = "kubeupdate_updates_total"
    assert sample(service, updates, outcome="changed") == 1
    assert sample(service, updates, outcome="unchanged") == 1
    assert sample(service, updates, outcome="dry_run") == 1
    # The missing container; the invalid image never reached the change (checked first).
    assert sample(service, updates, outcome="failed") == 1
    assert sample(service, updates, outcome="rolled_back") == 0
    # The Kubernetes side: reads of the Deployment, one real PATCH and one dry run.
    kube = "kubeupdate_kubernetes_requests_total"
    assert sample(service, kube, verb="get", resource="deployments", code="200") >= 5
    assert sample(service, kube, verb="patch", resource="deployments", code="200") == 2
    assert (
        sample(
            service,
            "kubeupdate_kubernetes_request_duration_seconds_count",
            verb="patch",
            resource="deployments",
        )
        == 2
    )
    assert "process_resident_memory_bytes" in service
    assert "process_resident_memory_bytes" in gateway


def test_grpc_calls_and_kubernetes_errors_are_counted(observed: Observed) -> None:
    with grpc.insecure_channel(observed.grpc_target) as channel:
        stub = pb_grpc.DeploymentImageServiceStub(channel)
        request = pb.GetContainerImageRequest(
            namespace="default", deployment="web", container="app"
        )
        assert stub.GetContainerImage(request, timeout=30).image
        # Our service account "lacks" a permission: Kubernetes answers 403.
        observed.cluster.faults.add("GET", DEPLOYMENT_PATH, faults.forbidden(), count=1)
        with pytest.raises(grpc.RpcError) as denied:
            stub.GetContainerImage(request, timeout=30)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # A PATCH that fails with 500 is not retried (it may have been applied).
        observed.cluster.faults.add("PATCH", DEPLOYMENT_PATH, faults.internal_error(), count=1)
        with pytest.raises(grpc.RpcError):
            stub.SetContainerImage(
                pb.SetContainerImageRequest(
                    namespace="default", deployment="web", container="app", image="nginx:9"
                ),
                timeout=30,
            )

    service = observed.service_metrics()
    get = {"grpc_method": "GetContainerImage", "grpc_type": "unary"}
    assert sample(service, "grpc_server_handled_total", **get, grpc_code="OK") == 1
    assert sample(service, "grpc_server_handled_total", **get, grpc_code="PERMISSION_DENIED") == 1
    kube = "kubeupdate_kubernetes_requests_total"
    assert sample(service, kube, verb="get", resource="deployments", code="403") == 1
    assert sample(service, kube, verb="patch", resource="deployments", code="500") == 1
    assert sample(service, "kubeupdate_updates_total", outcome="failed") == 1
    assert sample(service, "kubeupdate_updates_total", outcome="changed") == 0


def test_waited_rollouts_are_timed_by_outcome(observed: Observed) -> None:
    def deploy(image: str) -> int:
        body = {"Image": image, "Wait": True, "RollbackOnFailure": True, "Timeout": "600s"}
        return observed.post_json(WEB_APP, body).status

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        for image in ("nginx:1.26", "nginx:1.26-bad"):
            answer = pool.submit(deploy, image)
            # Simulated time: move it until the wait ends (bounded).
            for _ in range(2000):
                if answer.done():
                    break
                observed.cluster.advance(1.0)
                concurrent.futures.wait([answer], timeout=0.01)
            assert answer.result(timeout=30) == 200

    service = observed.service_metrics()
    assert sample(service, "kubeupdate_rollout_wait_seconds_count", state="complete") == 1
    assert sample(service, "kubeupdate_rollout_wait_seconds_count", state="rolled_back") == 1
    assert sample(service, "kubeupdate_updates_total", outcome="changed") == 1
    assert sample(service, "kubeupdate_updates_total", outcome="rolled_back") == 1
    assert sample(service, "kubeupdate_rollout_wait_seconds_sum", state="complete") > 0


def test_metrics_need_no_credentials_and_hold_none(guarded: tuple[Observed, str]) -> None:
    stack, secret = guarded
    bearer = {"Authorization": f"Bearer {secret}"}
    assert stack.request("GET", WEB_APP, headers=bearer).status == 200
    assert stack.request("GET", WEB_APP, headers={"Authorization": "Bearer wrong"}).status == 401
    assert stack.request("GET", WEB_APP).status == 401

    gateway = stack.gateway_metrics()  # no Authorization header sent
    service = stack.service_metrics()
    for text in (gateway, service):
        assert secret not in text
        assert "Bearer" not in text
        assert "authorization" not in text.lower()
    route = "/deployment/{namespace}/{deployment}/{container}"
    requests = "gateway_http_requests_total"
    assert sample(gateway, requests, route=route, method="GET", code="200") == 1
    assert sample(gateway, requests, route=route, method="GET", code="401") == 2
    get = {"grpc_method": "GetContainerImage", "grpc_type": "unary"}
    assert sample(service, "grpc_server_handled_total", **get, grpc_code="UNAUTHENTICATED") == 2
    assert sample(service, "grpc_server_handled_total", **get, grpc_code="OK") == 1


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Everything logged at INFO and above, as JSON lines, while the test runs."""
    output = io.StringIO()
    handler = logs.handler("json", output)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield output
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_one_request_id_from_gateway_to_service_in_json_logs(
    observed: Observed, json_lines: io.StringIO
) -> None:
    secret = "s3cret-never-logged"
    answer = observed.request(
        "GET", "/deployment/default/web/nope", headers={"Authorization": f"Bearer {secret}"}
    )
    assert answer.status == 404
    rid = answer.headers["x-request-id"]
    chosen = observed.request("GET", WEB_APP, headers={"X-Request-Id": "build-42.step-7"})
    assert chosen.headers["x-request-id"] == "build-42.step-7"

    text = json_lines.getvalue()
    records = [json.loads(line) for line in text.splitlines()]
    assert records, "nothing was logged"
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])
    mine = [r for r in records if r.get("request_id") == rid]
    access = [r for r in mine if r["logger"] == "gateway.access"]
    assert len(access) == 1
    assert access[0]["status"] == 404
    assert access[0]["path"] == "/deployment/default/web/nope"
    assert access[0]["route"] == "/deployment/{namespace}/{deployment}/{container}"
    # The service's line about the same call, with the id it got as x-request-id.
    service = [r for r in mine if r["logger"].startswith("kubeupdate.")]
    assert any("NOT_FOUND" in r["message"] for r in service), mine
    assert any(
        r.get("request_id") == "build-42.step-7" and r["logger"] == "gateway.access"
        for r in records
    )
    assert secret not in text
    assert "Bearer" not in text
