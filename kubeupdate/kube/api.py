"""The Kubernetes calls the domain needs, as an interface.

:class:`kubeupdate.kube.client.KubeClient` implements it over HTTPS;
:class:`kubeupdate.kube.memory.InMemoryDeploymentApi` implements it in memory
for tests. Objects are raw JSON (``dict``), never client models: decoding
into models costs more CPU than the rest of a request.

A ``deadline`` is an absolute ``time.monotonic()`` value (the caller's gRPC
deadline); ``None`` means only the per-call timeout applies.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

JsonObject = dict[str, Any]
JsonPatch = list[dict[str, Any]]


class DeploymentApi(Protocol):
    """Read and patch apps/v1 Deployments; read Namespaces.

    Every method raises :mod:`kubeupdate.kube.errors` classes only.
    """

    async def get_deployment(
        self, namespace: str, name: str, *, deadline: float | None = None
    ) -> JsonObject:
        """The Deployment as the API server returns it."""
        ...

    async def get_namespace(self, namespace: str, *, deadline: float | None = None) -> JsonObject:
        """The Namespace object; used to tell which level of a 404 is missing."""
        ...

    async def patch_deployment(
        self,
        namespace: str,
        name: str,
        operations: JsonPatch,
        *,
        dry_run: bool = False,
        deadline: float | None = None,
    ) -> JsonObject:
        """Apply a JSON patch (RFC 6902); the Deployment after the patch."""
        ...


def remaining(deadline: float | None) -> float | None:
    """Seconds left until ``deadline``, or None when there is none."""
    return None if deadline is None else deadline - time.monotonic()
