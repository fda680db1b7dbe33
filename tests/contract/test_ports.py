"""A port another process holds stops kubeupdate at start, naming the address and the flag.

gRPC's default on Linux (``SO_REUSEPORT``) would let a second service start on
a port the first one holds, and the kernel would split the callers between
them: an instance started with ``--no-auth`` would then answer some of the
calls meant for the secured one.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.settings import GatewaySettings
from kubeupdate.auth.config import AuthConfig
from kubeupdate.operations import operations
from kubeupdate.protocol.grpc.server import ServiceServer
from kubeupdate.service import ServerConfig
from kubeupdate.serving import serve_all
from tests.kubeupdate.kube.memory import InMemoryDeploymentApi


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    # Never called: the servers fail before any Kubernetes call.
    path = tmp_path / "kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port a plain listening socket holds (as another program would)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield int(held.getsockname()[1])


async def test_a_second_service_cannot_share_the_grpc_port() -> None:
    first = ServiceServer(operations(InMemoryDeploymentApi()), port=0)
    port = await first.start()
    try:
        second = ServiceServer(operations(InMemoryDeploymentApi()), port=port)
        with pytest.raises(OSError, match="cannot listen") as refused:
            await second.start()
        assert f"cannot listen for gRPC on 127.0.0.1:{port}: the address is in use" in str(
            refused.value
        )
    finally:
        await first.stop(None)


async def test_serve_names_the_grpc_address_and_the_flag(kubeconfig: Path) -> None:
    first = ServiceServer(operations(InMemoryDeploymentApi()), port=0)
    port = await first.start()
    try:
        config = ServerConfig(
            port=port, kubeconfig=kubeconfig, auth=AuthConfig(enabled=False, audit_log="/dev/null")
        )
        with pytest.raises(OSError, match="cannot listen") as refused:
            await asyncio.wait_for(serve_all(config, None), timeout=30)
        message = str(refused.value)
        assert f"127.0.0.1:{port}" in message
        assert "--grpc-port=0 picks a free port" in message
    finally:
        await first.stop(None)


async def test_serve_names_the_http_address_and_the_flag(kubeconfig: Path, held_port: int) -> None:
    config = ServerConfig(
        port=0, kubeconfig=kubeconfig, auth=AuthConfig(enabled=False, audit_log="/dev/null")
    )
    settings = GatewaySettings(upstream="", port=held_port, access_log=False)
    with pytest.raises(OSError, match="cannot listen") as refused:
        await asyncio.wait_for(serve_all(config, settings), timeout=30)
    message = str(refused.value)
    assert f"cannot listen for HTTP on 127.0.0.1:{held_port}: Address already in use" in message
    assert "--http-port=0 picks a free port" in message
