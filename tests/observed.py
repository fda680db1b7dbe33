"""A stack (tests/stack.py) that also serves metrics, and a reader for their text format."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator

from devcluster.manifests import load_manifests

from devcluster import DevCluster
from gateway.settings import GatewaySettings
from kubeupdate.auth.config import AuthConfig
from kubeupdate.demo import SAMPLES
from kubeupdate.service import ServerConfig
from tests.stack import Stack, StackThread


class Observed(Stack):
    """A stack whose service also listens for metrics."""

    metrics_port: int = 0

    def service_metrics(self) -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=30
        ) as answer:
            assert answer.status == 200
            assert answer.headers["Content-Type"].startswith("text/plain")
            return str(answer.read().decode())

    def gateway_metrics(self) -> str:
        answer = self.get("/metrics")
        assert answer.status == 200
        assert answer.headers["content-type"].startswith("text/plain")
        return answer.body.decode()


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the one series ``name`` with (at least) these labels; 0 when absent."""
    found = []
    for line in text.splitlines():
        if not line.startswith((name + "{", name + " ")):
            continue
        series, value = line.rsplit(" ", 1)
        given = dict(re.findall(r'(\w+)="([^"]*)"', series.removeprefix(name)))
        if all(given.get(k) == v for k, v in labels.items()):
            found.append(float(value))
    assert len(found) <= 1, f"{name} {labels}: several series"
    return found[0] if found else 0.0


def seed(cluster: DevCluster) -> None:
    for obj in load_manifests(SAMPLES):
        if obj["kind"] == "Namespace" and cluster.get("namespaces", "", obj["metadata"]["name"]):
            continue
        cluster.create(obj)


def observed_stack(cluster: DevCluster, auth: AuthConfig) -> Iterator[Observed]:
    seed(cluster)
    runner = StackThread(
        ServerConfig(port=0, kubeconfig=cluster.kubeconfig_path, auth=auth, metrics_port=0),
        GatewaySettings(upstream="", port=0),
    )
    listening = runner.start()
    assert listening.grpc_port is not None
    assert listening.http_port is not None
    assert listening.metrics_port is not None
    stack = Observed(cluster, listening.grpc_port, listening.http_port)
    stack.metrics_port = listening.metrics_port
    try:
        yield stack
    finally:
        runner.stop()
