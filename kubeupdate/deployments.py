"""Reading and changing container images of Deployments: the domain logic.

Names and images are checked before any Kubernetes call. An update is a GET,
then one JSON patch (RFC 6902) built by :func:`image_patch`::

    test    .../containers/<i>/name   == <container>      the container has not moved
    test    .../containers/<i>/image  == <previous image>  nobody changed it meanwhile
    replace .../containers/<i>/image  := <new image>

Pinning the position and name keeps concurrent updates of *other* containers
from conflicting or getting lost (kube-apiserver applies a patch without a
resourceVersion to the latest object), and turns a moved or removed container
into a 422 instead of a silently re-added one. Pinning the previous image as
well makes the patch a compare-and-swap: two concurrent updates of the *same*
container cannot both report the same previous image, and resending a patch
whose answer was lost cannot undo a later change. A failed test is answered
with 422; we read again and retry with jittered backoff, a bounded number of
times, then report :class:`~kubeupdate.errors.Aborted`.

This module does not know gRPC; it raises :mod:`kubeupdate.errors` classes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubeupdate import errors, images, names
from kubeupdate.kube import errors as kube_errors
from kubeupdate.kube.api import DeploymentApi, JsonObject, JsonPatch

log = logging.getLogger(__name__)

DEFAULT_ATTEMPTS = 5
DEFAULT_BACKOFF = 0.05


@dataclass(frozen=True)
class ContainerImage:
    """One container of a Pod template and its image."""

    name: str
    image: str
    init_container: bool


@dataclass(frozen=True)
class ImageChange:
    """The outcome of :meth:`DeploymentImages.set_container_image`."""

    namespace: str
    deployment: str
    container: str
    image: str
    previous_image: str
    changed: bool
    generation: int


@dataclass(frozen=True)
class ContainerSlot:
    """Where a container sits in a Deployment's Pod template."""

    index: int
    init_container: bool
    image: str

    @property
    def path(self) -> str:
        field = "initContainers" if self.init_container else "containers"
        return f"/spec/template/spec/{field}/{self.index}"


def image_patch(slot: ContainerSlot, container: str, image: str) -> JsonPatch:
    """The JSON patch that sets ``container``'s image if nothing moved or changed."""
    return [
        {"op": "test", "path": f"{slot.path}/name", "value": container},
        {"op": "test", "path": f"{slot.path}/image", "value": slot.image},
        {"op": "replace", "path": f"{slot.path}/image", "value": image},
    ]


def container_images(deployment: JsonObject) -> list[ContainerImage]:
    """Init containers, then containers, in Pod template order."""
    pod_spec = _pod_spec(deployment)
    return [
        ContainerImage(str(c.get("name", "")), str(c.get("image", "")), init)
        for init, field in ((True, "initContainers"), (False, "containers"))
        for c in _list(pod_spec.get(field))
    ]


def find_container(deployment: JsonObject, container: str) -> ContainerSlot | None:
    """The container's slot: containers first, then init containers."""
    pod_spec = _pod_spec(deployment)
    for init, field in ((False, "containers"), (True, "initContainers")):
        for index, entry in enumerate(_list(pod_spec.get(field))):
            if entry.get("name") == container:
                return ContainerSlot(index, init, str(entry.get("image", "")))
    return None


class DeploymentImages:
    """Get, list and set container images through a :class:`DeploymentApi`.

    ``deadline`` arguments are absolute ``time.monotonic()`` values.
    """

    def __init__(
        self,
        api: DeploymentApi,
        *,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff: float = DEFAULT_BACKOFF,
    ) -> None:
        """``attempts`` bounds the patches tried when the Deployment keeps changing."""
        self._api = api
        self._attempts = max(1, attempts)
        self._backoff = backoff

    async def get_container_image(
        self, namespace: str, deployment: str, container: str, *, deadline: float | None = None
    ) -> str:
        names.check_namespace(namespace)
        names.check_deployment(deployment)
        names.check_container(container)
        obj = await self._read(namespace, deployment, deadline)
        return self._slot(obj, namespace, deployment, container).image

    async def list_container_images(
        self, namespace: str, deployment: str, *, deadline: float | None = None
    ) -> list[ContainerImage]:
        names.check_namespace(namespace)
        names.check_deployment(deployment)
        return container_images(await self._read(namespace, deployment, deadline))

    async def set_container_image(
        self,
        namespace: str,
        deployment: str,
        container: str,
        image: str,
        *,
        deadline: float | None = None,
        dry_run: bool = False,
    ) -> ImageChange:
        names.check_namespace(namespace)
        names.check_deployment(deployment)
        names.check_container(container)
        images.parse_image(image)

        def outcome(previous: str, changed: bool, obj: JsonObject) -> ImageChange:
            return ImageChange(
                namespace, deployment, container, image, previous, changed, _generation(obj)
            )

        obj = await self._read(namespace, deployment, deadline)
        for attempt in range(1, self._attempts + 1):
            slot = self._slot(obj, namespace, deployment, container)
            if slot.image == image:
                return outcome(image, False, obj)
            try:
                patched = await self._api.patch_deployment(
                    namespace,
                    deployment,
                    image_patch(slot, container, image),
                    dry_run=dry_run,
                    deadline=deadline,
                )
                return outcome(slot.image, True, patched)
            except kube_errors.Invalid as exc:
                obj = await self._read(namespace, deployment, deadline)
                if not _test_failed(exc, obj, slot, container):
                    raise errors.Rejected(
                        f'Kubernetes refused to set the image of container "{container}" '
                        f"in deployment {namespace}/{deployment}: {_api_message(exc)}"
                    ) from exc
                log.info(
                    "deployment %s/%s changed during the update (attempt %d of %d)",
                    namespace,
                    deployment,
                    attempt,
                    self._attempts,
                )
            except kube_errors.Conflict:
                # Not expected without a resourceVersion, but if something in
                # front of the API server says so, the answer is the same: read again.
                obj = await self._read(namespace, deployment, deadline)
            except (kube_errors.ConnectionFailed, kube_errors.Timeout) as exc:
                if not exc.outcome_unknown:
                    raise _translate(exc, "patch", namespace) from exc
                # The patch may have landed: setting an image is idempotent, so
                # finding it set means success; otherwise trying again is safe
                # because the patch pins the previous image.
                obj = await self._read(namespace, deployment, deadline, after=exc)
                current = self._slot(obj, namespace, deployment, container)
                if current.image == image:
                    return outcome(slot.image, True, obj)
            except kube_errors.NotFound as exc:
                raise await self._not_found(namespace, deployment, deadline) from exc
            except kube_errors.KubeError as exc:
                raise _translate(exc, "patch", namespace) from exc
            if attempt < self._attempts:
                await self._pause(attempt, deadline)
        raise errors.Aborted(
            f"deployment {namespace}/{deployment} kept changing while setting the image of "
            f'container "{container}"; gave up after {self._attempts} attempts, '
            "nothing was changed by this request; retrying later is safe"
        )

    async def _read(
        self,
        namespace: str,
        deployment: str,
        deadline: float | None,
        *,
        after: kube_errors.KubeError | None = None,
    ) -> JsonObject:
        try:
            return await self._api.get_deployment(namespace, deployment, deadline=deadline)
        except kube_errors.NotFound as exc:
            raise await self._not_found(namespace, deployment, deadline) from exc
        except kube_errors.KubeError as exc:
            error = _translate(exc, "get", namespace)
            if after is not None:
                # The earlier patch may or may not have been applied; say so.
                error.message += (
                    f"; the previous attempt to change deployment {namespace}/{deployment} "
                    "may or may not have been applied"
                )
                error.args = (error.message,)
            raise error from exc

    async def _not_found(
        self, namespace: str, deployment: str, deadline: float | None
    ) -> errors.KubeupdateError:
        # kube-apiserver answers 404 "deployments" for a missing namespace too,
        # so only looking at the namespace tells the two apart.
        try:
            await self._api.get_namespace(namespace, deadline=deadline)
        except kube_errors.NotFound:
            return errors.NotFound(f'namespace "{namespace}" not found')
        except kube_errors.Forbidden:
            pass  # we may not read namespaces: the Deployment is what we know is missing
        except kube_errors.KubeError as exc:
            return _translate(exc, "get", namespace)
        return errors.NotFound(f'deployment "{deployment}" not found in namespace "{namespace}"')

    @staticmethod
    def _slot(obj: JsonObject, namespace: str, deployment: str, container: str) -> ContainerSlot:
        slot = find_container(obj, container)
        if slot is not None:
            return slot
        present = container_images(obj)
        regular = [c.name for c in present if not c.init_container]
        init = [c.name for c in present if c.init_container]
        has = f"it has containers: {', '.join(regular) or 'none'}"
        if init:
            has += f"; init containers: {', '.join(init)}"
        raise errors.NotFound(
            f'container "{container}" not found in deployment {namespace}/{deployment}; {has}'
        )

    async def _pause(self, attempt: int, deadline: float | None) -> None:
        # Full jitter, so that concurrent writers retrying together spread out.
        delay = random.uniform(0, self._backoff * 2 ** (attempt - 1))
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - time.monotonic()))
        if delay > 0:
            await asyncio.sleep(delay)


def _test_failed(
    exc: kube_errors.Invalid, fresh: JsonObject, slot: ContainerSlot, container: str
) -> bool:
    """Whether a 422 came from one of our ``test`` ops rather than validation."""
    now = _slot_at(fresh, slot)
    if now is None or now.get("name") != container or now.get("image") != slot.image:
        return True  # what we pinned has changed: a conflict
    # Changed and changed back since: the server's words are the only clue left.
    text = " ".join([exc.message, *exc.causes]).lower()
    return "test" in text and "fail" in text


def _slot_at(obj: JsonObject, slot: ContainerSlot) -> dict[str, Any] | None:
    field = "initContainers" if slot.init_container else "containers"
    entries = _list(_pod_spec(obj).get(field))
    return entries[slot.index] if slot.index < len(entries) else None


def _translate(exc: kube_errors.KubeError, verb: str, namespace: str) -> errors.KubeupdateError:
    """The domain error for a Kubernetes error other than 404."""
    if isinstance(exc, kube_errors.Forbidden):
        resource = exc.kind or "deployments"
        group = exc.group if exc.kind else "apps"
        if group:
            resource = f"{resource}.{group}"
        return errors.PermissionMissing(
            f"kubeupdate's service account may not {verb} {resource} in namespace "
            f'"{namespace}" (Kubernetes said: {exc.message})'
        )
    if isinstance(exc, kube_errors.TooManyRequests):
        hint = f"; retry after {exc.retry_after:g}s" if exc.retry_after is not None else ""
        return errors.Unavailable(
            f"the Kubernetes API is overloaded (429){hint}", retry_after=exc.retry_after
        )
    if isinstance(exc, kube_errors.ServerError):
        return errors.Unavailable(f"the Kubernetes API failed (HTTP {exc.code}: {exc.message})")
    if isinstance(exc, kube_errors.Unauthorized):
        return errors.Unavailable(
            "the Kubernetes API refused kubeupdate's credentials (401), even after reloading them"
        )
    if isinstance(exc, kube_errors.CredentialsError | kube_errors.ConnectionFailed):
        return errors.Unavailable(str(exc))
    if isinstance(exc, kube_errors.Timeout):
        return errors.DeadlineExceeded(str(exc))
    if isinstance(exc, kube_errors.Invalid):
        return errors.Rejected(f"Kubernetes refused the change: {_api_message(exc)}")
    # 400, 415 and the like mean kubeupdate sent something wrong: a bug, not
    # the caller's problem. Let it surface as INTERNAL with the details logged.
    raise exc


def _api_message(exc: kube_errors.ApiError) -> str:
    causes = [c for c in exc.causes if c and c not in exc.message]
    return "; ".join([exc.message, *causes])


def _pod_spec(deployment: JsonObject) -> dict[str, Any]:
    spec = deployment.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    pod_spec = template.get("spec") if isinstance(template, dict) else None
    return pod_spec if isinstance(pod_spec, dict) else {}


def _list(value: Any) -> Sequence[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _generation(obj: JsonObject) -> int:
    metadata = obj.get("metadata")
    generation = metadata.get("generation", 0) if isinstance(metadata, dict) else 0
    return generation if isinstance(generation, int) else 0
