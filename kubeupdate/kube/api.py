"""The Kubernetes calls the domain needs, as an interface.

:class:`kubeupdate.kube.client.KubeClient` implements it over HTTPS; the tests
have an in-memory double (``tests/kubeupdate/kube/memory.py``) for one-layer unit
tests. Objects are raw JSON (``dict``), never client models: decoding
into models costs more CPU than the rest of a request.

A ``deadline`` is an absolute ``time.monotonic()`` value (the caller's gRPC
deadline); ``None`` means only the per-call timeout applies.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from kubeupdate.kube.clock import ClusterClock

#: Seconds allowed for one Kubernetes call unless told otherwise.
DEFAULT_TIMEOUT = 10.0

JsonObject = dict[str, Any]
JsonPatch = list[dict[str, Any]]


@dataclass(frozen=True)
class Resource:
    """A resource type: where its collection lives in the API."""

    group_version: str  # "apps/v1", or "v1" for the core group
    plural: str
    #: False for cluster-scoped resources (Namespaces, Nodes): no namespace in the path.
    namespaced: bool = True

    def collection(self, namespace: str | None) -> str:
        """The collection in ``namespace``; in all namespaces when it is None."""
        prefix = "/api" if "/" not in self.group_version else "/apis"
        if namespace is None or not self.namespaced:
            return f"{prefix}/{self.group_version}/{self.plural}"
        return f"{prefix}/{self.group_version}/namespaces/{namespace}/{self.plural}"


DEPLOYMENTS = Resource("apps/v1", "deployments")
REPLICA_SETS = Resource("apps/v1", "replicasets")
PODS = Resource("v1", "pods")
LEASES = Resource("coordination.k8s.io/v1", "leases")


@dataclass(frozen=True)
class WatchEvent:
    """One line of a watch: ADDED, MODIFIED, DELETED or BOOKMARK, and the object."""

    type: str
    object: JsonObject


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


class LeaseApi(Protocol):
    """Create, read, update and delete coordination.k8s.io/v1 Leases.

    Every write that names a ``resourceVersion`` (in the body's metadata for an
    update, as a precondition for a delete) is a compare-and-swap: the API
    server answers 409 (``Conflict``) when the Lease changed since that
    version, and changes nothing. Creating a Lease whose name is taken is 409
    too (reason ``AlreadyExists``). Every method raises
    :mod:`kubeupdate.kube.errors` classes only.
    """

    async def create_lease(
        self, namespace: str, body: JsonObject, *, deadline: float | None = None
    ) -> JsonObject:
        """Create the Lease ``body`` describes; the Lease as stored."""
        ...

    async def get_lease(
        self, namespace: str, name: str, *, deadline: float | None = None
    ) -> JsonObject:
        """The Lease as the API server returns it."""
        ...

    async def update_lease(
        self, namespace: str, name: str, body: JsonObject, *, deadline: float | None = None
    ) -> JsonObject:
        """Replace the Lease (PUT) if it still has ``body``'s resourceVersion; the new Lease."""
        ...

    async def delete_lease(
        self,
        namespace: str,
        name: str,
        *,
        resource_version: str,
        deadline: float | None = None,
    ) -> None:
        """Delete the Lease if it still has ``resource_version``."""
        ...


def remaining(deadline: float | None) -> float | None:
    """Seconds left until ``deadline``, or None when there is none."""
    return None if deadline is None else deadline - time.monotonic()


class WatchApi(Protocol):
    """List and watch objects of any resource, in one namespace or in all (``None``).

    Every method raises :mod:`kubeupdate.kube.errors` classes only; a watch
    whose resourceVersion is too old raises ``Expired`` (410).
    """

    @property
    def clock(self) -> ClusterClock:
        """The API server's clock, learned from its answers (rollout judgements read it)."""
        ...

    async def read_clock(self, *, deadline: float | None = None) -> None:
        """Ask the API server for something small (``/version``) to learn its time now."""
        ...

    async def list_objects(
        self,
        resource: Resource,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        deadline: float | None = None,
    ) -> JsonObject:
        """The List object: ``items`` and ``metadata.resourceVersion``."""
        ...

    def watch(
        self,
        resource: Resource,
        namespace: str | None,
        *,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncGenerator[WatchEvent, None]:
        """Events after ``resource_version`` until the server ends the watch.

        Closing the iterator (or cancelling its consumer) closes the connection.
        """
        ...
