"""The real gateway under uvicorn in front of a real grpc.aio server, over sockets.

The gRPC side is a fake DeploymentImageService servicer plus the standard
health service, on 127.0.0.1 port 0; the gateway listens on port 0 too.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc

from gateway.server import GatewayServer, GatewayThread, add_arguments, settings_from_args
from gateway.settings import GatewaySettings
from kubeupdate.errors import ErrorReason
from kubeupdate.protocol.grpc.statuses import DETAILS_KEY, rich_status

PATH = "/deployment/default/web/app"
HANDED_OVER = (
    "The image was changed to handed:1; this replica is shutting down and another one "
    "follows the rollout. Follow it: GET /rollout/default/web/guarded/kubeupdate-1?wait=true"
)
FOLLOW = {
    "rollout_id": "kubeupdate-1",
    "follow": "/rollout/default/web/guarded/kubeupdate-1?wait=true",
}


@dataclass
class FakeDeploymentImageService(pb_grpc.DeploymentImageServiceServicer):
    """One Deployment ``default/web`` with one container ``app``."""

    image: str = "nginx:1.24"
    metadata: list[dict[str, str]] = field(default_factory=list)
    guarded: list[pb.GetGuardedRolloutRequest] = field(default_factory=list)

    def _record(self, context: grpc.aio.ServicerContext[object, object]) -> None:
        self.metadata.append(
            {key: str(value) for key, value in context.invocation_metadata() or ()}
        )

    async def GetContainerImage(
        self,
        request: pb.GetContainerImageRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.GetContainerImageResponse:
        self._record(context)
        if request.container != "app":
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"container {request.container} not found in web"
            )
        return pb.GetContainerImageResponse(
            namespace=request.namespace,
            deployment=request.deployment,
            container=request.container,
            image=self.image,
        )

    async def SetContainerImage(
        self,
        request: pb.SetContainerImageRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.SetContainerImageResponse:
        self._record(context)
        if request.image == "busy:1":
            context.set_trailing_metadata((("retry-after", "3"),))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "Kubernetes is throttling.")
        if request.image == "handed:1":
            details = rich_status(
                grpc.StatusCode.UNAVAILABLE, HANDED_OVER, ErrorReason.ROLLOUT_HANDED_OVER, FOLLOW
            )
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                HANDED_OVER,
                trailing_metadata=(("retry-after", "1"), (DETAILS_KEY, details)),
            )
        previous, self.image = self.image, request.image
        return pb.SetContainerImageResponse(
            namespace=request.namespace,
            deployment=request.deployment,
            container=request.container,
            image=request.image,
            previous_image=previous,
            changed=previous != request.image,
            generation=2,
        )

    async def ListContainerImages(
        self,
        request: pb.ListContainerImagesRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.ListContainerImagesResponse:
        self._record(context)
        return pb.ListContainerImagesResponse(
            namespace=request.namespace,
            deployment=request.deployment,
            containers=[
                pb.ContainerImage(name="init", image="busybox:1", init_container=True),
                pb.ContainerImage(name="app", image=self.image),
            ],
        )

    # The rollout calls are not faked here (see test_gateway_streaming.py).
    async def GetRolloutStatus(
        self,
        request: pb.GetRolloutStatusRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.GetRolloutStatusResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not faked")

    async def ListRevisions(
        self,
        request: pb.ListRevisionsRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.ListRevisionsResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not faked")

    async def GetGuardedRollout(
        self,
        request: pb.GetGuardedRolloutRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.GetGuardedRolloutResponse:
        self.guarded.append(request)
        return pb.GetGuardedRolloutResponse(id=request.id, closed=True)

    async def UndoContainerImage(
        self,
        request: pb.UndoContainerImageRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> pb.UndoContainerImageResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not faked")

    async def WatchRollout(
        self,
        request: pb.WatchRolloutRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> AsyncIterator[pb.WatchRolloutResponse]:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not faked")
        yield pb.WatchRolloutResponse()  # unreachable; makes this an async generator


@dataclass
class Stack:
    service: FakeDeploymentImageService
    health: health_aio.HealthServicer
    gateway: GatewayServer

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.gateway.port}"


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    service = FakeDeploymentImageService()
    health = health_aio.HealthServicer()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    server = grpc.aio.server()
    pb_grpc.add_DeploymentImageServiceServicer_to_server(service, server)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    settings = GatewaySettings(upstream=f"127.0.0.1:{grpc_port}", port=0, access_log=False)
    gateway = GatewayServer(settings)
    await gateway.start()
    try:
        yield Stack(service, health, gateway)
    finally:
        await gateway.stop()
        await server.stop(None)


@pytest.fixture
async def session(stack: Stack) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(stack.base) as client:
        yield client


async def test_root_answers_the_original_bytes(session: aiohttp.ClientSession) -> None:
    async with session.get("/") as resp:
        assert resp.status == 200
        assert await resp.read() == b'{"Status":"okay","Detail":"server is running"}\n'


async def test_get_is_translated_with_metadata(
    session: aiohttp.ClientSession, stack: Stack
) -> None:
    headers = {"Authorization": "Bearer t0k3n", "X-Request-Id": "ci-1"}
    async with session.get(PATH, headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["X-Request-Id"] == "ci-1"
        assert resp.headers["Content-Type"] == "application/json"
        assert await resp.read() == (
            b'{"Namespace":"default","Deployment":"web","Container":"app","Image":"nginx:1.24"}\n'
        )
    metadata = stack.service.metadata[-1]
    assert metadata["authorization"] == "Bearer t0k3n"
    assert metadata["x-request-id"] == "ci-1"
    assert metadata["x-forwarded-for"] == "127.0.0.1"


async def test_post_like_curl_dash_d(session: aiohttp.ClientSession, stack: Stack) -> None:
    # curl -d '{"Image":"..."}' labels the JSON body as a form.
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with session.post(PATH, data=b'{"Image":"nginx:1.25"}', headers=form) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body == {
        "Namespace": "default",
        "Deployment": "web",
        "Container": "app",
        "Image": "nginx:1.25",
        "PreviousImage": "nginx:1.24",
        "Changed": True,
        "Generation": "2",
        "DryRun": False,
    }
    async with session.post(PATH, json={"Image": "nginx:1.25"}) as resp:
        assert (await resp.json())["Changed"] is False
    assert stack.service.image == "nginx:1.25"


async def test_list_keeps_nested_order_and_defaults(session: aiohttp.ClientSession) -> None:
    async with session.get("/deployment/default/web") as resp:
        assert resp.status == 200
        assert await resp.read() == (
            b'{"Namespace":"default","Deployment":"web","Containers":['
            b'{"Name":"init","Image":"busybox:1","InitContainer":true},'
            b'{"Name":"app","Image":"nginx:1.24","InitContainer":false}]}\n'
        )


async def test_grpc_not_found_is_404(session: aiohttp.ClientSession) -> None:
    async with session.get("/deployment/default/web/sidecar") as resp:
        assert resp.status == 404
        assert await resp.json() == {
            "Status": "failed",
            "Detail": "container sidecar not found in web",
            "Code": "NOT_FOUND",
            "Reason": "REASON_UNKNOWN",  # this test's service sends no ErrorInfo
        }


async def test_a_hand_over_reaches_rest_callers_intact(session: aiohttp.ClientSession) -> None:
    async with session.post(PATH, json={"Image": "handed:1", "Wait": True}) as resp:
        assert resp.status == 503
        assert "Retry-After" not in resp.headers  # following, not retrying, is the answer
        assert await resp.json() == {
            "Status": "failed",
            "Detail": HANDED_OVER,
            "Code": "UNAVAILABLE",
            "Reason": "ROLLOUT_HANDED_OVER",
            "Metadata": FOLLOW,
        }


async def test_a_guarded_rollout_is_followed_with_its_wait_and_timeout(
    session: aiohttp.ClientSession, stack: Stack
) -> None:
    path = "/rollout/default/web/guarded/kubeupdate-0123456789abcdef?wait=true&timeout=90s"
    async with session.get(path) as resp:
        assert resp.status == 200
        assert (await resp.json())["Closed"] is True
    [request] = stack.service.guarded
    assert request.id == "kubeupdate-0123456789abcdef"
    assert request.wait
    assert request.timeout.seconds == 90


async def test_a_query_duration_is_written_as_in_a_body(
    session: aiohttp.ClientSession, stack: Stack
) -> None:
    path = "/rollout/default/web/guarded/kubeupdate-0123456789abcdef?wait=true&timeout=1h30m"
    async with session.get(path) as resp:
        assert resp.status == 200
    assert stack.service.guarded[-1].timeout.seconds == 5400
    async with session.get(path.replace("1h30m", "soon")) as resp:
        assert resp.status == 400
        detail = (await resp.json())["Detail"]
    assert detail.startswith("A query parameter is not valid: timeout:"), detail
    assert len(stack.service.guarded) == 1  # the bad one never reached the service


async def test_throttling_passes_retry_after(session: aiohttp.ClientSession) -> None:
    async with session.post(PATH, json={"Image": "busy:1"}) as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "3"
        assert (await resp.json())["Code"] == "RESOURCE_EXHAUSTED"


async def test_bad_body_never_reaches_the_service(
    session: aiohttp.ClientSession, stack: Stack
) -> None:
    async with session.post(
        PATH, data=b'{"Image":', headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 400
    async with session.post(
        PATH, data=b'{"Image":"x"}', headers={"Content-Type": "text/plain"}
    ) as resp:
        assert resp.status == 415
    assert stack.service.metadata == []


async def test_chunked_body_is_counted_while_read(session: aiohttp.ClientSession) -> None:
    async def small() -> AsyncIterator[bytes]:
        yield b'{"Image":'
        yield b'"nginx:1.26"}'

    async def huge() -> AsyncIterator[bytes]:
        yield b'{"Image":"'
        for _ in range(20):
            yield b"a" * 4096

    json_type = {"Content-Type": "application/json"}
    async with session.post(PATH, data=small(), headers=json_type) as resp:
        assert resp.status == 200
    async with session.post(PATH, data=huge(), headers=json_type) as resp:
        assert resp.status == 413


async def test_declared_length_over_the_limit_is_413(stack: Stack) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.gateway.port)
    writer.write(
        f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000000\r\n\r\n{}".encode()
    )
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    assert status_line.startswith(b"HTTP/1.1 413")


async def test_readyz_follows_the_health_service(
    session: aiohttp.ClientSession, stack: Stack
) -> None:
    async with session.get("/readyz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"Status": "okay", "Detail": "service is serving"}
    await stack.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    async with session.get("/readyz") as resp:
        assert resp.status == 503
        body = await resp.json()
        assert body["Status"] == "failed"
        assert "NOT_SERVING" in body["Detail"]
    async with session.get("/healthz") as resp:
        assert resp.status == 200


# --- the gateway in a thread, with the service down ----------------------------


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A port bound but not listening: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_unreachable_service_in_a_background_thread(dead_port: int) -> None:
    settings = GatewaySettings(upstream=f"127.0.0.1:{dead_port}", port=0, access_log=False)
    gateway = GatewayThread(settings)
    gateway.start()
    try:
        status, _, body = get(gateway.port, "/")
        assert status == 200
        status, _, body = get(gateway.port, "/readyz")
        assert status == 503
        assert json.loads(body)["Detail"] == "The service cannot be reached."
        status, _, body = get(gateway.port, PATH)
        assert status == 503
        # gRPC's own text names the address it tried; callers must not see it.
        assert json.loads(body) == {
            "Status": "failed",
            "Detail": "The service is unavailable; retry later.",
            "Code": "UNAVAILABLE",
            "Reason": "SERVICE_UNAVAILABLE",
        }
    finally:
        gateway.stop()


def test_a_taken_port_fails_start(dead_port: int) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        gateway = GatewayThread(GatewaySettings(port=port, access_log=False))
        with pytest.raises(OSError, match="in use"):
            gateway.start()


async def test_server_reports_its_port_only_while_started(dead_port: int) -> None:
    server = GatewayServer(
        GatewaySettings(upstream=f"127.0.0.1:{dead_port}", port=0, access_log=False)
    )
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port
    async with server:
        assert server.port > 0
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        response = await reader.read()
        writer.close()
        await writer.wait_closed()
        assert response.startswith(b"HTTP/1.1 200")
        assert response.endswith(b'{"Status":"okay","Detail":"gateway is running"}\n')
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", server.port)


def test_command_line_options_become_settings() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings = settings_from_args(
        parser.parse_args(
            ["--upstream", "svc:50051", "--port", "0", "--call-timeout", "5", "--no-access-log"]
        )
    )
    assert settings == GatewaySettings(
        upstream="svc:50051", port=0, call_timeout=5.0, access_log=False
    )
