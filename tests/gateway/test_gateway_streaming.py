"""Server streaming over real sockets: uvicorn gateway in front of a grpc.aio server.

The fake servicer's WatchRollout sends what the test puts in its queue, one
message at a time, and records when gRPC cancels it. That shows that lines
reach the client while the call is still open (not buffered until the end),
and that a client closing its connection cancels the upstream call at once:
the servicer is idle, waiting for the test, so nothing but the gateway's
cancellation can end it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import grpc
import pytest
from kubeupdate.v1 import deployment_image_service_pb2 as pb
from kubeupdate.v1 import deployment_image_service_pb2_grpc as pb_grpc
from kubeupdate.v1.error_reason_pb2 import ErrorReason

from gateway.server import GatewayServer
from gateway.settings import GatewaySettings
from kubeupdate.protocol.grpc.statuses import DETAILS_KEY, rich_status
from tests.gateway.test_gateway_end_to_end import FakeDeploymentImageService

WATCH_PATH = "/rollout/default/web/watch"
# Generous bounds for events that should happen at once; never a measured time.
SETTLE = 10.0

END = "end"


def update(updated: int, state: int = pb.Rollout.STATE_PROGRESSING) -> pb.WatchRolloutResponse:
    return pb.WatchRolloutResponse(
        namespace="default",
        deployment="web",
        rollout=pb.Rollout(state=state, replicas=3, updated_replicas=updated),  # type: ignore[arg-type]
    )


@dataclass
class WatchService(FakeDeploymentImageService):
    """WatchRollout sends what the test queues: a message, an error, or END."""

    script: asyncio.Queue[pb.WatchRolloutResponse | grpc.StatusCode | str] = field(
        default_factory=asyncio.Queue
    )
    started: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    calls: int = 0

    async def WatchRollout(
        self,
        request: pb.WatchRolloutRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> AsyncIterator[pb.WatchRolloutResponse]:
        self.calls += 1
        self.started.set()
        try:
            while True:
                self.waiting.set()
                item = await self.script.get()
                self.waiting.clear()
                if item == END:
                    return
                if isinstance(item, grpc.StatusCode):
                    message = f"deployment {request.deployment} was deleted"
                    details = rich_status(item, message, ErrorReason.DEPLOYMENT_NOT_FOUND)
                    await context.abort(item, message, trailing_metadata=((DETAILS_KEY, details),))
                assert isinstance(item, pb.WatchRolloutResponse)
                yield item
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        finally:
            self.finished.set()


@dataclass
class Stack:
    service: WatchService
    gateway: GatewayServer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.port}{WATCH_PATH}"


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    service = WatchService()
    server = grpc.aio.server()
    pb_grpc.add_DeploymentImageServiceServicer_to_server(service, server)
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    settings = GatewaySettings(upstream=f"127.0.0.1:{grpc_port}", port=0, access_log=False)
    gateway = GatewayServer(settings)
    await gateway.start()
    try:
        yield Stack(service, gateway)
    finally:
        await gateway.stop()
        await server.stop(None)


async def read_line(resp: aiohttp.ClientResponse) -> bytes:
    return await asyncio.wait_for(resp.content.readline(), SETTLE)


async def test_each_reply_reaches_the_client_while_the_call_is_open(stack: Stack) -> None:
    script = stack.service.script
    # The headers leave with the first reply, whose arrival decides the status.
    await script.put(update(1))
    async with aiohttp.ClientSession() as session, session.get(stack.url) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/x-ndjson"
        assert json.loads(await read_line(resp))["Rollout"]["UpdatedReplicas"] == 1
        # The servicer holds the call open, waiting for the test: nothing was
        # buffered behind the first line.
        assert stack.service.waiting.is_set()
        assert not stack.service.finished.is_set()
        await script.put(update(2))
        assert json.loads(await read_line(resp))["Rollout"]["UpdatedReplicas"] == 2
        await script.put(update(3, pb.Rollout.STATE_COMPLETE))
        await script.put(END)
        assert json.loads(await read_line(resp))["Rollout"]["State"] == "STATE_COMPLETE"
        assert await read_line(resp) == b""  # the stream ended with OK: no failure line
    assert not stack.service.cancelled.is_set()


async def test_a_client_that_disconnects_cancels_the_upstream_call(stack: Stack) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.gateway.port)
    writer.write(f"GET {WATCH_PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    await stack.service.script.put(update(1))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), SETTLE)
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding: chunked" in head.lower()
    await asyncio.wait_for(reader.readline(), SETTLE)  # the chunk's size
    assert b'"UpdatedReplicas":1' in await asyncio.wait_for(reader.readline(), SETTLE)
    await asyncio.wait_for(stack.service.waiting.wait(), SETTLE)
    assert not stack.service.cancelled.is_set()

    writer.close()
    await writer.wait_closed()

    # The servicer is idle, waiting for a message that never comes: only the
    # gateway cancelling the call can end it.
    await asyncio.wait_for(stack.service.cancelled.wait(), SETTLE)
    assert stack.service.script.empty()


async def test_a_client_that_disconnects_before_the_first_reply_cancels_too(
    stack: Stack,
) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", stack.gateway.port)
    writer.write(f"GET {WATCH_PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    await asyncio.wait_for(stack.service.waiting.wait(), SETTLE)
    writer.close()
    await writer.wait_closed()
    await asyncio.wait_for(stack.service.cancelled.wait(), SETTLE)


async def test_failure_after_the_first_reply_is_the_last_line(stack: Stack) -> None:
    await stack.service.script.put(update(1))
    await stack.service.script.put(grpc.StatusCode.NOT_FOUND)
    async with aiohttp.ClientSession() as session, session.get(stack.url) as resp:
        assert resp.status == 200
        lines = (await resp.read()).split(b"\n")
    assert json.loads(lines[0])["Rollout"]["UpdatedReplicas"] == 1
    assert json.loads(lines[1]) == {
        "Status": "failed",
        "Detail": "deployment web was deleted",
        "Code": "NOT_FOUND",
        "Reason": "DEPLOYMENT_NOT_FOUND",  # the service's ErrorInfo, passed on
    }
    assert lines[2:] == [b""]


async def test_failure_before_the_first_reply_keeps_its_status(stack: Stack) -> None:
    await stack.service.script.put(grpc.StatusCode.NOT_FOUND)
    async with aiohttp.ClientSession() as session, session.get(stack.url) as resp:
        assert resp.status == 404
        assert resp.headers["Content-Type"] == "application/json"
        assert await resp.json() == {
            "Status": "failed",
            "Detail": "deployment web was deleted",
            "Code": "NOT_FOUND",
            "Reason": "DEPLOYMENT_NOT_FOUND",
        }


async def test_unary_calls_go_on_while_a_stream_is_open(stack: Stack) -> None:
    base = f"http://127.0.0.1:{stack.gateway.port}"
    await stack.service.script.put(update(1))
    async with aiohttp.ClientSession(base) as session, session.get(WATCH_PATH) as watch:
        await read_line(watch)
        async with session.get("/deployment/default/web/app") as resp:
            assert resp.status == 200
            assert (await resp.json())["Image"] == "nginx:1.24"
        await stack.service.script.put(END)
        assert await watch.read() == b""


async def test_stopping_the_gateway_ends_open_streams_with_a_last_line(stack: Stack) -> None:
    await stack.service.script.put(update(1))
    async with aiohttp.ClientSession() as session, session.get(stack.url) as resp:
        await read_line(resp)
        await asyncio.wait_for(stack.service.waiting.wait(), SETTLE)
        # Would wait for the watch to end (up to an hour) without close_all().
        await asyncio.wait_for(stack.gateway.stop(), SETTLE)
        assert json.loads(await read_line(resp)) == {
            "Status": "failed",
            "Detail": "The gateway is shutting down; watch again.",
            "Code": "UNAVAILABLE",
            "Reason": "SERVICE_UNAVAILABLE",
        }
        assert await read_line(resp) == b""
    await asyncio.wait_for(stack.service.cancelled.wait(), SETTLE)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_dash_n_shows_each_reply_live(stack: Stack) -> None:
    curl = await asyncio.create_subprocess_exec(
        "curl", "-sSN", stack.url, stdout=asyncio.subprocess.PIPE
    )
    assert curl.stdout is not None
    try:
        await stack.service.script.put(update(1))
        first = await asyncio.wait_for(curl.stdout.readline(), SETTLE)
        assert json.loads(first)["Rollout"]["UpdatedReplicas"] == 1
        assert not stack.service.finished.is_set()
        await stack.service.script.put(update(2, pb.Rollout.STATE_COMPLETE))
        second = await asyncio.wait_for(curl.stdout.readline(), SETTLE)
        assert json.loads(second)["Rollout"]["State"] == "STATE_COMPLETE"
        await stack.service.script.put(END)
        assert await asyncio.wait_for(curl.wait(), SETTLE) == 0
    finally:
        if curl.returncode is None:
            curl.kill()
            await curl.wait()
