"""Access to the Kubernetes API: credentials, an asyncio client, its errors.

The client and the credentials are imported on first use: ``kubeupdate.kube.errors``
is needed by the domain (and the gateway's process) without aiohttp and the
``kubernetes`` package behind them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubeupdate.kube.api import DeploymentApi, JsonObject, JsonPatch

if TYPE_CHECKING:
    from kubeupdate.kube.client import KubeClient
    from kubeupdate.kube.credentials import Credentials

__all__ = ["Credentials", "DeploymentApi", "JsonObject", "JsonPatch", "KubeClient"]


def __getattr__(name: str) -> Any:
    if name == "KubeClient":
        from kubeupdate.kube.client import KubeClient

        return KubeClient
    if name == "Credentials":
        from kubeupdate.kube.credentials import Credentials

        return Credentials
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
