"""The benchmark's devcluster: its seed, and a raw async client for the baseline.

The baseline is what any Python program pays to talk to the Kubernetes API
directly: one aiohttp session, HTTPS with the bearer token, JSON decoded.
"""

from __future__ import annotations

import base64
import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import yaml

NAMESPACE = "bench"
#: The Deployment read by every GET run.
READ_TARGET = ("web", "app")
#: Paused Deployments written by the POST/Set runs: no rollout, so the
#: devcluster's controller adds no work per write.
WRITE_DEPLOYMENTS = 32
WRITE_CONTAINERS = 8


def write_slot(slot: int) -> tuple[str, str]:
    """The (deployment, container) of write slot ``slot`` (0..255)."""
    return f"w-{slot // WRITE_CONTAINERS}", f"c{slot % WRITE_CONTAINERS}"


def _deployment(name: str, containers: list[str], *, paused: bool, replicas: int) -> Any:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        # With an annotations map, kubeupdate's patch adds its change-cause to it without
        # pinning resourceVersion (as on any Deployment a controller has touched).
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {"bench": "yes"},
            "annotations": {"bench": "yes"},
        },
        "spec": {
            "replicas": replicas,
            "paused": paused,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {"name": c, "image": "registry.example/bench:start"} for c in containers
                    ]
                },
            },
        },
    }


def write_seed(path: Path) -> None:
    documents: list[Any] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        _deployment("web", ["app", "sidecar"], paused=False, replicas=2),
    ]
    documents += [
        _deployment(f"w-{i}", [f"c{c}" for c in range(WRITE_CONTAINERS)], paused=True, replicas=1)
        for i in range(WRITE_DEPLOYMENTS)
    ]
    path.write_text(yaml.safe_dump_all(documents))


@dataclass(frozen=True)
class Access:
    """Server, CA and token from a devcluster kubeconfig."""

    server: str
    token: str
    ca_pem: bytes

    @classmethod
    def from_kubeconfig(cls, path: Path) -> Access:
        config = yaml.safe_load(path.read_text())
        cluster = config["clusters"][0]["cluster"]
        return cls(
            server=cluster["server"],
            token=config["users"][0]["user"]["token"],
            ca_pem=base64.b64decode(cluster["certificate-authority-data"]),
        )

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca_pem.decode())


class RawClient:
    """GET and JSON-patch Deployments straight from the devcluster."""

    def __init__(self, access: Access, connections: int = 64) -> None:
        self._access = access
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, ssl=access.ssl_context()),
            headers={"Authorization": f"Bearer {access.token}", "Accept": "application/json"},
        )

    def path(self, deployment: str) -> str:
        return f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{deployment}"

    async def get(self, deployment: str) -> tuple[int, dict[str, Any]]:
        async with self._session.get(self._access.server + self.path(deployment)) as answer:
            return answer.status, await answer.json()

    async def patch(
        self, deployment: str, operations: list[dict[str, Any]]
    ) -> tuple[int, dict[str, Any]]:
        """A JSON patch, as kubeupdate sends one; the status and the object (or Status)."""
        async with self._session.patch(
            self._access.server + self.path(deployment),
            data=json.dumps(operations),
            headers={"Content-Type": "application/json-patch+json"},
        ) as answer:
            return answer.status, await answer.json()

    async def close(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
