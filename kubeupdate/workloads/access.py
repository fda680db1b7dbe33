"""Reading workloads and listing what belongs to them, with Kubernetes errors translated.

:class:`WorkloadAccess` is what the use cases hold instead of the Kubernetes
API itself: one kind of workload over one API. A read that finds nothing says
which level is missing (kube-apiserver answers 404 ``deployments`` for a
missing namespace too, so only a look at the namespace tells the two apart);
every other Kubernetes error becomes a domain error
(:func:`~kubeupdate.kube.translation.translate_error`).
"""

from __future__ import annotations

from kubeupdate import errors
from kubeupdate.kube import errors as kube_errors
from kubeupdate.kube.api import DeploymentApi, JsonObject, JsonPatch, Resource, WatchApi
from kubeupdate.kube.translation import translate_error
from kubeupdate.workloads.kinds import WorkloadKind


class WorkloadAccess:
    """One kind of workload through one Kubernetes API.

    ``watch_api`` None (an API that cannot list or watch, such as a test
    double) leaves reads and patches working and makes rollouts UNAVAILABLE.
    ``deadline`` arguments are absolute ``time.monotonic()`` values.
    """

    def __init__(
        self, api: DeploymentApi, kind: WorkloadKind, watch_api: WatchApi | None = None
    ) -> None:
        self.api = api
        self.kind = kind
        self._watch_api = watch_api

    def watch_api(self) -> WatchApi:
        if self._watch_api is None:
            raise errors.Unavailable(
                "rollouts cannot be followed: this server cannot watch",
                reason=errors.ErrorReason.WATCH_UNAVAILABLE,
            )
        return self._watch_api

    async def read(
        self,
        namespace: str,
        name: str,
        *,
        deadline: float | None,
        after: kube_errors.KubeError | None = None,
    ) -> JsonObject:
        """The object; ``after`` a failed patch, an error says the patch may have landed."""
        try:
            return await self.kind.get(self.api, namespace, name, deadline=deadline)
        except kube_errors.NotFound as exc:
            raise await self.not_found(namespace, name, deadline) from exc
        except kube_errors.KubeError as exc:
            error = translate_error(exc, "get", namespace)
            if after is not None:
                # The earlier patch may or may not have been applied; say so.
                error.message += (
                    f"; the previous attempt to change {self.kind.name} {namespace}/{name} "
                    "may or may not have been applied"
                )
                error.args = (error.message,)
            raise error from exc

    async def patch(
        self,
        namespace: str,
        name: str,
        operations: JsonPatch,
        *,
        dry_run: bool,
        deadline: float | None,
    ) -> JsonObject:
        """Apply a JSON patch. Kubernetes errors come back raw: the caller decides on retries."""
        return await self.kind.patch(
            self.api, namespace, name, operations, dry_run=dry_run, deadline=deadline
        )

    async def list(
        self,
        resource: Resource,
        namespace: str,
        *,
        label_selector: str | None = None,
        deadline: float | None,
    ) -> list[JsonObject]:
        """The items of a list (ReplicaSets, Pods...)."""
        try:
            listed = await self.watch_api().list_objects(
                resource, namespace, label_selector=label_selector, deadline=deadline
            )
        except kube_errors.KubeError as exc:
            raise translate_error(exc, "list", namespace) from exc
        items = listed.get("items") or []
        return [item for item in items if isinstance(item, dict)]

    async def not_found(
        self, namespace: str, name: str, deadline: float | None
    ) -> errors.KubeupdateError:
        """The error for a 404 on the object: its namespace or itself is missing."""
        try:
            await self.api.get_namespace(namespace, deadline=deadline)
        except kube_errors.NotFound:
            return errors.NotFound(
                f'namespace "{namespace}" not found',
                reason=errors.ErrorReason.NAMESPACE_NOT_FOUND,
                metadata={"namespace": namespace},
            )
        except kube_errors.Forbidden:
            pass  # we may not read namespaces: the object is what we know is missing
        except kube_errors.KubeError as exc:
            return translate_error(exc, "get", namespace)
        return errors.NotFound(
            f'{self.kind.name} "{name}" not found in namespace "{namespace}"',
            reason=self.kind.not_found,
            metadata={"namespace": namespace, self.kind.name: name},
        )
