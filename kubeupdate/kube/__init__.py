"""Access to the Kubernetes API: credentials, an asyncio client, its errors."""

from kubeupdate.kube.api import DeploymentApi, JsonObject, JsonPatch
from kubeupdate.kube.client import KubeClient
from kubeupdate.kube.credentials import Credentials

__all__ = ["Credentials", "DeploymentApi", "JsonObject", "JsonPatch", "KubeClient"]
