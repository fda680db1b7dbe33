"""The gateway facing hostile clients: its log lines, header and body limits, slow clients.

The real gateway under uvicorn on 127.0.0.1 port 0; its upstream is a port
nobody listens on, since nothing here needs the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import replace

import pytest

from gateway.server import GatewayThread
from gateway.settings import GatewaySettings
from kubeupdate import logs

FORGED = "2026-01-01 00:00:00,000 INFO kubeupdate.auth.audit [-]: allowed"


@pytest.fixture
def text_log() -> Iterator[io.StringIO]:
    """The gateway's access lines, in the default text format."""
    output = io.StringIO()
    handler = logs.handler("text", output)
    access = logging.getLogger("gateway.access")
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    yield output
    access.removeHandler(handler)
    access.setLevel(level)


def test_a_newline_in_the_path_cannot_forge_a_log_line(text_log: io.StringIO) -> None:
    gateway = GatewayThread(GatewaySettings(upstream="127.0.0.1:1", port=0))
    gateway.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
        connection.request("GET", "/deployment/a%0A" + FORGED.replace(" ", "%20") + "/b")
        answer = connection.getresponse()
        answer.read()
        connection.close()
    finally:
        gateway.stop()
    assert answer.status == 503  # a route, but no service behind the gateway
    (line,) = text_log.getvalue().splitlines()
    assert "/deployment/a\\n2026-01-01 00:00:00,000 INFO" in line


# --- Slow, idle and oversized clients. A guard bounds every wait below: a test
# fails, it never hangs, and nothing asserts how long anything took.
GUARD = 30.0
LIMITS = GatewaySettings(
    upstream="127.0.0.1:1",
    port=0,
    access_log=False,
    header_timeout=1.0,
    body_timeout=1.0,
    keep_alive_timeout=1,
    max_header_bytes=8 * 1024,
)


@pytest.fixture
def guarded() -> Iterator[int]:
    """A gateway with short read deadlines; its port."""
    gateway = GatewayThread(LIMITS)
    gateway.start()
    try:
        yield gateway.port
    finally:
        gateway.stop()


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The status and body of one HTTP answer, read to the end of the connection."""
    data = await asyncio.wait_for(reader.read(), GUARD)
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, body


async def healthz(port: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, _ = await read_answer(reader)
    writer.close()
    return status


def test_healthz_answers_while_slow_and_idle_clients_are_cut_off(guarded: int) -> None:
    async def attack() -> None:
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
        attack_over = asyncio.Event()

        async def slow_client() -> bool:
            """Sends the headers a byte every 50 ms; True when the server hung up first."""
            reader, writer = await asyncio.open_connection("127.0.0.1", guarded)
            try:
                for byte in request:  # at most ~12 s: bounded by the request's length
                    if reader.at_eof():
                        return True
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.05)
            except ConnectionError:
                return True
            finally:
                writer.close()
            return False

        async def idle_client() -> bytes:
            """Sends nothing; what the server said before it hung up."""
            reader, writer = await asyncio.open_connection("127.0.0.1", guarded)
            try:
                return await asyncio.wait_for(reader.read(), GUARD)
            finally:
                writer.close()

        slow = [asyncio.create_task(slow_client()) for _ in range(40)]
        idle = [asyncio.create_task(idle_client()) for _ in range(10)]
        await asyncio.sleep(0.2)  # let the attack start
        healthy = await asyncio.wait_for(healthz(guarded), GUARD)
        answered_during_attack = not all(task.done() for task in slow)
        hung_up = await asyncio.gather(*slow)
        attack_over.set()
        said = await asyncio.gather(*idle)
        assert healthy == 200
        assert answered_during_attack
        # Every slow client was cut off before it could finish its headers...
        assert all(hung_up)
        # ...and idle ones were closed without a word.
        assert said == [b""] * 10

    asyncio.run(attack())


def test_slow_headers_get_408_with_a_sentence(guarded: int) -> None:
    async def run() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", guarded)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the end
        answer = await read_answer(reader)
        writer.close()
        return answer

    status, body = asyncio.run(run())
    assert status == 408
    assert json.loads(body) == {
        "Status": "failed",
        "Detail": "The request headers did not arrive within 1 seconds.",
        "Code": "DEADLINE_EXCEEDED",
        "Reason": "REQUEST_TIMEOUT",
    }


def test_a_slow_body_gets_408_with_a_sentence(guarded: int) -> None:
    async def run() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", guarded)
        writer.write(
            b"POST /deployment/default/web/app HTTP/1.1\r\nHost: x\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"Image"'
        )
        answer = await read_answer(reader)
        writer.close()
        return answer

    status, body = asyncio.run(run())
    assert status == 408
    assert json.loads(body)["Detail"] == "The request body did not arrive within 1 seconds."


@pytest.mark.parametrize("size", [9 * 1024, 200 * 1024])
def test_a_header_block_over_the_limit_gets_431(guarded: int, size: int) -> None:
    async def run() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", guarded)
        header = b"X-Big: " + b"b" * size + b"\r\n"
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n")
        with contextlib.suppress(ConnectionError):  # the server may stop reading early
            await writer.drain()
        answer = await read_answer(reader)
        writer.close()
        return answer

    status, body = asyncio.run(run())
    assert status == 431
    document = json.loads(body)
    assert document["Detail"] == "The request line and headers are larger than 8192 bytes."
    assert document["Reason"] == "REQUEST_HEADERS_TOO_LARGE"


def test_an_idle_keep_alive_connection_is_closed(guarded: int) -> None:
    async def run() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", guarded)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = await asyncio.wait_for(reader.readuntil(b'running"}\n'), GUARD)
        rest = await asyncio.wait_for(reader.read(), GUARD)  # then nothing: closed
        writer.close()
        return int(first.split(b" ", 2)[1]), rest

    status, rest = asyncio.run(run())
    assert (status, rest) == (200, b"")


def test_past_the_connection_limit_new_requests_get_503() -> None:
    gateway = GatewayThread(replace(LIMITS, max_connections=3, header_timeout=GUARD))
    gateway.start()

    async def run() -> int:
        held = [await asyncio.open_connection("127.0.0.1", gateway.port) for _ in range(3)]
        try:
            return await asyncio.wait_for(healthz(gateway.port), GUARD)
        finally:
            for _, writer in held:
                writer.close()

    try:
        assert asyncio.run(run()) == 503
    finally:
        gateway.stop()
