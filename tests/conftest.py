"""Fixtures shared by every test folder.

``devcluster`` (a fresh Kubernetes API emulator per test) comes from the
devcluster's pytest plugin; ``stack`` adds the gRPC service and the REST
gateway in front of it, seeded with the demo's sample Deployments.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from gateway.settings import GatewaySettings
from kubeupdate.auth.config import AuthConfig
from kubeupdate.demo import SAMPLES, load_manifests
from kubeupdate.devcluster import DevCluster
from kubeupdate.server import ServerConfig
from tests.stack import Stack, StackThread

pytest_plugins = ["kubeupdate.devcluster.pytest_plugin"]


@pytest.fixture
def stack(devcluster: DevCluster) -> Iterator[Stack]:
    for obj in load_manifests(SAMPLES):
        if obj["kind"] == "Namespace" and devcluster.get("namespaces", "", obj["metadata"]["name"]):
            continue
        devcluster.create(obj)
    devcluster.journal.clear()
    runner = StackThread(
        ServerConfig(
            port=0,
            kubeconfig=devcluster.kubeconfig_path,
            auth=AuthConfig(enabled=False, rate_limit=0),
        ),
        GatewaySettings(upstream="", port=0, access_log=False),
    )
    listening = runner.start()
    assert listening.grpc_port is not None
    assert listening.http_port is not None
    try:
        yield Stack(devcluster, listening.grpc_port, listening.http_port)
    finally:
        runner.stop()


@pytest.fixture
def channel(stack: Stack) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(stack.grpc_target) as channel:
        yield channel
