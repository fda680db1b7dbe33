"""The gateway facing hostile clients: its log lines, header and body limits, slow clients.

The real gateway under uvicorn on 127.0.0.1 port 0; its upstream is a port
nobody listens on, since nothing here needs the service.
"""

from __future__ import annotations

import http.client
import io
import logging
from collections.abc import Iterator

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
