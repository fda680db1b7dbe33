"""Reading and changing container images of Deployments: the domain logic.

Names and images are checked before any Kubernetes call. An update is a GET,
then one JSON patch (RFC 6902) built by :func:`image_patch`::

    test    .../containers/<i>/name   == <container>      the container has not moved
    test    .../containers/<i>/image  == <previous image>  nobody changed it meanwhile
    replace .../containers/<i>/image  := <new image>

The same patch records who changed what in the Deployment's
``kubernetes.io/change-cause`` annotation (see :func:`change_cause`), which the
controller copies to the new ReplicaSet and ``kubectl rollout history`` shows.
When the Deployment has no annotations at all, the patch must create the map;
it then also pins ``metadata.resourceVersion``, so that a map someone added
meanwhile is never replaced wholesale.

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
from kubeupdate.rollout_status import CHANGE_CAUSE_ANNOTATION

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
class ChangeRecord:
    """Who asks for a change, and why: written into the change-cause."""

    identity: str
    reason: str = ""


def change_cause(
    container: str, previous: str, image: str, record: ChangeRecord, *, rollback: bool = False
) -> str:
    """The sentence ``kubectl rollout history`` shows for this change."""
    verb = "rolled back container" if rollback else "container"
    sentence = f"kubeupdate: {verb} {container} {previous} → {image} by {record.identity}"
    return f"{sentence} ({record.reason})" if record.reason else sentence


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


def image_patch(
    slot: ContainerSlot,
    container: str,
    image: str,
    cause: str | None = None,
    *,
    target: JsonObject | None = None,
) -> JsonPatch:
    """The JSON patch that sets ``container``'s image if nothing moved or changed.

    With ``cause``, it also sets the change-cause annotation of ``target`` (the
    Deployment as read, needed to know whether it has annotations).
    """
    operations: JsonPatch = [
        {"op": "test", "path": f"{slot.path}/name", "value": container},
        {"op": "test", "path": f"{slot.path}/image", "value": slot.image},
        {"op": "replace", "path": f"{slot.path}/image", "value": image},
    ]
    if cause is None:
        return operations
    metadata = (target or {}).get("metadata") or {}
    if isinstance(metadata.get("annotations"), dict):
        # "add" of an existing member replaces it (RFC 6902), so this covers both.
        key = CHANGE_CAUSE_ANNOTATION.replace("~", "~0").replace("/", "~1")
        operations.append({"op": "add", "path": f"/metadata/annotations/{key}", "value": cause})
    else:
        operations.append(
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": str(metadata.get("resourceVersion", "")),
            }
        )
        operations.append(
            {
                "op": "add",
                "path": "/metadata/annotations",
                "value": {CHANGE_CAUSE_ANNOTATION: cause},
            }
        )
    return operations


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

    async def get_deployment(
        self, namespace: str, deployment: str, *, deadline: float | None = None
    ) -> JsonObject:
        """The Deployment as Kubernetes returns it, after checking the names."""
        names.check_namespace(namespace)
        names.check_deployment(deployment)
        return await self._read(namespace, deployment, deadline)

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
        record: ChangeRecord | None = None,
    ) -> ImageChange:
        """Set the image; with ``record``, the same patch writes the change-cause."""
        names.check_namespace(namespace)
        names.check_deployment(deployment)
        names.check_container(container)
        images.parse_image(image)
        change = await self._swap(
            namespace, deployment, container, image, None, record, dry_run, deadline
        )
        assert change is not None  # only a swap with an expected image can be skipped
        return change

    async def restore_container_image(
        self,
        namespace: str,
        deployment: str,
        container: str,
        *,
        expected: str,
        image: str,
        record: ChangeRecord | None = None,
        deadline: float | None = None,
    ) -> tuple[bool, str]:
        """Set ``image`` again only while the container still runs ``expected``.

        A compare-and-swap (the patch tests the image value), so a newer
        change made by someone else is never undone. Returns (restored, the
        container's image now).
        """
        change = await self._swap(
            namespace,
            deployment,
            container,
            image,
            expected,
            record,
            False,
            deadline,
            rollback=True,
        )
        if change is None:
            current = await self.get_container_image(
                namespace, deployment, container, deadline=deadline
            )
            return False, current
        return True, change.image

    async def _swap(
        self,
        namespace: str,
        deployment: str,
        container: str,
        image: str,
        expected: str | None,
        record: ChangeRecord | None,
        dry_run: bool,
        deadline: float | None,
        *,
        rollback: bool = False,
    ) -> ImageChange | None:
        def outcome(previous: str, changed: bool, obj: JsonObject) -> ImageChange:
            return ImageChange(
                namespace, deployment, container, image, previous, changed, _generation(obj)
            )

        obj = await self._read(namespace, deployment, deadline)
        broken: kube_errors.KubeError | None = None  # the last attempt's connection failure
        for attempt in range(1, self._attempts + 1):
            broken = None
            slot = self._slot(obj, namespace, deployment, container)
            if slot.image == image:
                return outcome(image, False, obj)
            if expected is not None and slot.image != expected:
                return None
            cause = None
            if record is not None:
                cause = change_cause(container, slot.image, image, record, rollback=rollback)
            try:
                patched = await self._api.patch_deployment(
                    namespace,
                    deployment,
                    image_patch(slot, container, image, cause, target=obj),
                    dry_run=dry_run,
                    deadline=deadline,
                )
                return outcome(slot.image, True, patched)
            except kube_errors.Invalid as exc:
                pinned = _resource_version(obj) if cause and not _has_annotations(obj) else None
                obj = await self._read(namespace, deployment, deadline)
                if not _test_failed(exc, obj, slot, container, pinned):
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
                    raise translate_error(exc, "patch", namespace) from exc
                # The patch may have landed: setting an image is idempotent, so
                # finding it set means success; otherwise trying again is safe
                # because the patch pins the previous image.
                obj = await self._read(namespace, deployment, deadline, after=exc)
                current = self._slot(obj, namespace, deployment, container)
                if current.image == image:
                    return outcome(slot.image, True, obj)
                broken = exc
            except kube_errors.NotFound as exc:
                raise await self._not_found(namespace, deployment, deadline) from exc
            except kube_errors.KubeError as exc:
                raise translate_error(exc, "patch", namespace) from exc
            if attempt < self._attempts:
                await self._pause(attempt, deadline)
        if broken is not None:
            # The connection broke, not the Deployment: that is unavailability.
            raise errors.Unavailable(
                f"the connection to the Kubernetes API kept breaking while patching deployment "
                f"{namespace}/{deployment} ({self._attempts} attempts); the image of container "
                f'"{container}" was read back after each and is unchanged'
            ) from broken
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
            error = translate_error(exc, "get", namespace)
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
            return translate_error(exc, "get", namespace)
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
    exc: kube_errors.Invalid,
    fresh: JsonObject,
    slot: ContainerSlot,
    container: str,
    resource_version: str | None = None,
) -> bool:
    """Whether a 422 came from one of our ``test`` ops rather than validation."""
    now = _slot_at(fresh, slot)
    if now is None or now.get("name") != container or now.get("image") != slot.image:
        return True  # what we pinned has changed: a conflict
    if resource_version is not None and _resource_version(fresh) != resource_version:
        return True
    # Changed and changed back since: the server's words are the only clue left.
    text = " ".join([exc.message, *exc.causes]).lower()
    return "test" in text and "fail" in text


def _slot_at(obj: JsonObject, slot: ContainerSlot) -> dict[str, Any] | None:
    field = "initContainers" if slot.init_container else "containers"
    entries = _list(_pod_spec(obj).get(field))
    return entries[slot.index] if slot.index < len(entries) else None


def translate_error(
    exc: kube_errors.KubeError, verb: str, namespace: str
) -> errors.KubeupdateError:
    """The domain error for a Kubernetes error other than 404 (``verb`` for a 403)."""
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


def _resource_version(obj: JsonObject) -> str:
    metadata = obj.get("metadata")
    return str(metadata.get("resourceVersion", "")) if isinstance(metadata, dict) else ""


def _has_annotations(obj: JsonObject) -> bool:
    metadata = obj.get("metadata")
    return isinstance(metadata, dict) and isinstance(metadata.get("annotations"), dict)


def _generation(obj: JsonObject) -> int:
    metadata = obj.get("metadata")
    generation = metadata.get("generation", 0) if isinstance(metadata, dict) else 0
    return generation if isinstance(generation, int) else 0
