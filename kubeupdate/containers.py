"""The images of a workload's containers: reading them, and changing one safely.

Requests arrive checked (:class:`~kubeupdate.targets.Target`: valid names, a
parsed image). A change is a GET, then one compare-and-swap JSON patch
(:func:`kubeupdate.patches.image_patch`). Never PUT.

A 422 to that patch is a conflict (one of its ``test`` operations failed) or a
refusal (validation, an admission policy), and kube-apiserver's answer does not
say which: it words a patch that does not apply generically, without causes.
So the object is read again, and only what it shows decides: if what the patch
pinned (the container at its index, its image, the resourceVersion when the
patch creates the annotations) or the spec (``metadata.generation``, which
grows with every spec change, so a change made and undone meanwhile shows too)
differs from the object the patch was made from, the patch may have met a
newer object: retry with jittered backoff, a bounded number of times, then
:class:`~kubeupdate.errors.Aborted`. Otherwise the patch's tests held, so the
422 was a refusal, reported as what it is
(:func:`~kubeupdate.kube.translation.translate_refusal`) and not retried. A
patch whose answer was lost is checked by reading back: setting an image is
idempotent, and the pinned previous image makes sending it again safe.

A waited change of a paused workload is refused before anything is written
(:class:`~kubeupdate.errors.PreconditionFailed`): its new template would not
roll out until someone resumes it.

This module does not know gRPC; it raises :mod:`kubeupdate.errors` classes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from kubeupdate import errors
from kubeupdate.kube import errors as kube_errors
from kubeupdate.kube.api import JsonObject
from kubeupdate.kube.translation import translate_error, translate_refusal
from kubeupdate.patches import CHANGE_CAUSE_ANNOTATION, ChangeRecord, RecordedChange, image_patch
from kubeupdate.targets import Target
from kubeupdate.workloads.access import WorkloadAccess
from kubeupdate.workloads.templates import (
    ContainerImage,
    ContainerSlot,
    container_at,
    container_images,
    find_container,
    template_digest,
    template_with_image,
)

log = logging.getLogger(__name__)

DEFAULT_ATTEMPTS = 5
DEFAULT_BACKOFF = 0.05


@dataclass(frozen=True)
class ImageChange:
    """The outcome of :meth:`ContainerImages.set_container_image`."""

    namespace: str
    deployment: str
    container: str
    image: str
    previous_image: str
    changed: bool
    generation: int


@dataclass(frozen=True)
class Restoration:
    """The outcome of :meth:`ContainerImages.restore_container_image`."""

    restored: bool
    #: The container's image now: the restored one, or the newer one that kept it from being.
    image: str
    #: The workload's ``metadata.generation`` after the rollback (0 when nothing was written).
    generation: int = 0


class ContainerImages:
    """Get, list and set container images of one kind of workload.

    ``deadline`` arguments are absolute ``time.monotonic()`` values.
    """

    def __init__(
        self,
        access: WorkloadAccess,
        *,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff: float = DEFAULT_BACKOFF,
    ) -> None:
        """``attempts`` bounds the patches tried when the object keeps changing."""
        self.access = access
        self._kind = access.kind
        self._attempts = max(1, attempts)
        self._backoff = backoff

    async def get_container_image(self, target: Target, *, deadline: float | None = None) -> str:
        return await self.image_now(
            target.namespace, target.name, target.container, deadline=deadline
        )

    async def list_container_images(
        self, target: Target, *, deadline: float | None = None
    ) -> list[ContainerImage]:
        obj = await self.access.read(target.namespace, target.name, deadline=deadline)
        return container_images(obj, self._kind.pod_spec)

    async def read_container(
        self, target: Target, *, deadline: float | None = None, refuse_paused: bool = False
    ) -> tuple[JsonObject, str]:
        """The workload as read, and the image of the target's container in it."""
        obj = await self.access.read(target.namespace, target.name, deadline=deadline)
        if refuse_paused and self._kind.progress(obj).paused:
            raise _paused(self._kind.name, target.namespace, target.name)
        return obj, self._slot(obj, target.namespace, target.name, target.container).image

    async def set_container_image(
        self,
        target: Target,
        *,
        deadline: float | None = None,
        dry_run: bool = False,
        record: ChangeRecord | None = None,
        refuse_paused: bool = False,
        same: Callable[[str], bool] | None = None,
    ) -> ImageChange:
        """Set the target's new image; with ``record``, the same patch records the change.

        ``refuse_paused``: a paused workload is refused before anything is
        written (a waited change could only wait for nothing). ``same`` tells
        whether an image the container already runs counts as the new one (the
        same digest, known from the registry): then nothing is written, and the
        answer names the image that runs.
        """
        # As the caller wrote it: the parser splits without rewriting.
        image = str(target.new_image())
        change = await self._swap(
            target.namespace,
            target.name,
            target.container,
            image,
            expected=None,
            record=record,
            dry_run=dry_run,
            deadline=deadline,
            refuse_paused=refuse_paused,
            same=same,
        )
        assert change is not None  # only a swap with an expected image can be skipped
        return change

    async def replace_container_image(
        self,
        target: Target,
        *,
        expected: str,
        deadline: float | None = None,
        record: ChangeRecord | None = None,
    ) -> ImageChange | None:
        """Set the target's new image only while the container runs ``expected``.

        None when it runs a third image (nothing written); an unchanged
        :class:`ImageChange` when it already runs the new one.
        """
        image = str(target.new_image())
        return await self._swap(
            target.namespace,
            target.name,
            target.container,
            image,
            expected=expected,
            record=record,
            dry_run=False,
            deadline=deadline,
            refuse_paused=True,
        )

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
    ) -> Restoration:
        """Set ``image`` again only while the container still runs ``expected``.

        A compare-and-swap (the patch tests the image value), so a newer
        change made by someone else is never undone.
        """
        change = await self.swap_container_image(
            namespace,
            deployment,
            container,
            expected=expected,
            image=image,
            record=record,
            deadline=deadline,
        )
        if change is None:
            now = await self.image_now(namespace, deployment, container, deadline=deadline)
            return Restoration(restored=False, image=now)
        return Restoration(restored=True, image=change.image, generation=change.generation)

    async def swap_container_image(
        self,
        namespace: str,
        deployment: str,
        container: str,
        *,
        expected: str,
        image: str,
        record: ChangeRecord | None = None,
        deadline: float | None = None,
    ) -> ImageChange | None:
        """Set ``image`` (an earlier one) only while the container runs ``expected``.

        The change, or None when the container runs another image (nothing
        written). The change-cause says the image was put back.
        """
        return await self._swap(
            namespace,
            deployment,
            container,
            image,
            expected=expected,
            record=record,
            dry_run=False,
            deadline=deadline,
            rollback=True,
        )

    async def image_now(
        self, namespace: str, name: str, container: str, *, deadline: float | None
    ) -> str:
        """The image the container runs now (read from the API server)."""
        obj = await self.access.read(namespace, name, deadline=deadline)
        return self._slot(obj, namespace, name, container).image

    async def _swap(
        self,
        namespace: str,
        deployment: str,
        container: str,
        image: str,
        *,
        expected: str | None,
        record: ChangeRecord | None,
        dry_run: bool,
        deadline: float | None,
        rollback: bool = False,
        refuse_paused: bool = False,
        same: Callable[[str], bool] | None = None,
    ) -> ImageChange | None:
        def outcome(previous: str, changed: bool, obj: JsonObject) -> ImageChange:
            return ImageChange(
                namespace, deployment, container, image, previous, changed, _generation(obj)
            )

        kind = self._kind.name
        doing = f'set the image of container "{container}" in {kind} {namespace}/{deployment}'
        obj = await self.access.read(namespace, deployment, deadline=deadline)
        broken: kube_errors.KubeError | None = None  # the last attempt's connection failure
        for attempt in range(1, self._attempts + 1):
            broken = None
            if refuse_paused and self._kind.progress(obj).paused:
                raise _paused(kind, namespace, deployment)
            slot = self._slot(obj, namespace, deployment, container)
            if slot.image == image or (same is not None and same(slot.image)):
                # Nothing to write; the answer names the image that runs.
                return replace(outcome(slot.image, False, obj), image=slot.image)
            if expected is not None and slot.image != expected:
                return None
            note = None
            if record is not None:
                produced = template_digest(template_with_image(obj, slot, image))
                note = RecordedChange.of(
                    container, slot.image, image, record, template=produced, rollback=rollback
                )
            try:
                patched = await self.access.patch(
                    namespace,
                    deployment,
                    image_patch(slot, container, image, note, target=obj),
                    dry_run=dry_run,
                    deadline=deadline,
                )
                return outcome(slot.image, True, patched)
            except kube_errors.Invalid as exc:
                pinned = _resource_version(obj) if note and not _has_annotations(obj) else None
                before, obj = obj, await self.access.read(namespace, deployment, deadline=deadline)
                if not _may_have_conflicted(before, obj, slot, container, pinned):
                    raise translate_refusal(exc, doing, namespace) from exc
                log.info(
                    "%s %s/%s changed during the update (attempt %d of %d)",
                    kind,
                    namespace,
                    deployment,
                    attempt,
                    self._attempts,
                )
            except kube_errors.Conflict:
                # Not expected without a resourceVersion, but if something in
                # front of the API server says so, the answer is the same: read again.
                obj = await self.access.read(namespace, deployment, deadline=deadline)
            except (kube_errors.ConnectionFailed, kube_errors.Timeout) as exc:
                if not exc.outcome_unknown:
                    raise translate_error(exc, "patch", namespace) from exc
                # The patch may have landed: setting an image is idempotent, so
                # finding it set means success; otherwise trying again is safe
                # because the patch pins the previous image.
                obj = await self.access.read(namespace, deployment, deadline=deadline, after=exc)
                current = self._slot(obj, namespace, deployment, container)
                if current.image == image:
                    return outcome(slot.image, True, obj)
                broken = exc
            except kube_errors.NotFound as exc:
                raise await self.access.not_found(namespace, deployment, deadline) from exc
            except kube_errors.KubeError as exc:
                raise translate_refusal(exc, doing, namespace) from exc
            if attempt < self._attempts:
                await self._pause(attempt, deadline)
        if broken is not None:
            # The connection broke, not the object: that is unavailability.
            raise errors.Unavailable(
                f"the connection to the Kubernetes API kept breaking while patching {kind} "
                f"{namespace}/{deployment} ({self._attempts} attempts); the image of container "
                f'"{container}" was read back after each and is unchanged'
            ) from broken
        raise errors.Aborted(
            f"{kind} {namespace}/{deployment} kept changing while setting the image of "
            f'container "{container}"; gave up after {self._attempts} attempts, '
            "nothing was changed by this request; retrying later is safe"
        )

    def _slot(
        self, obj: JsonObject, namespace: str, deployment: str, container: str
    ) -> ContainerSlot:
        slot = find_container(obj, container, self._kind.pod_spec)
        if slot is not None:
            return slot
        present = container_images(obj, self._kind.pod_spec)
        regular = [c.name for c in present if not c.init_container]
        init = [c.name for c in present if c.init_container]
        has = f"it has containers: {', '.join(regular) or 'none'}"
        if init:
            has += f"; init containers: {', '.join(init)}"
        raise errors.NotFound(
            f'container "{container}" not found in {self._kind.name} {namespace}/{deployment}; '
            f"{has}",
            reason=errors.ErrorReason.CONTAINER_NOT_FOUND,
            metadata={"namespace": namespace, self._kind.name: deployment, "container": container},
        )

    async def _pause(self, attempt: int, deadline: float | None) -> None:
        # Full jitter, so that concurrent writers retrying together spread out.
        delay = random.uniform(0, self._backoff * 2 ** (attempt - 1))
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - time.monotonic()))
        if delay > 0:
            await asyncio.sleep(delay)


def _paused(kind: str, namespace: str, name: str) -> errors.PreconditionFailed:
    return errors.PreconditionFailed(
        f"{kind} {namespace}/{name} is paused: a new image would not roll out until it is "
        f"resumed (kubectl rollout resume {kind}/{name} -n {namespace}), so nothing was "
        "changed; resume it, or set the image without Wait",
        reason=errors.ErrorReason.DEPLOYMENT_PAUSED,
        metadata={"namespace": namespace, kind: name},
    )


def _may_have_conflicted(
    before: JsonObject,
    fresh: JsonObject,
    slot: ContainerSlot,
    container: str,
    resource_version: str | None = None,
) -> bool:
    """Whether a 422 may have come from one of the patch's ``test`` ops, judged by re-reading.

    ``before`` is the object the patch was made from, ``fresh`` the object read
    after the 422. Never the server's words: on a real cluster they say nothing.
    """
    now = container_at(fresh, slot)
    if now is None or now.get("name") != container or now.get("image") != slot.image:
        return True  # what the patch pinned has changed
    if _generation(fresh) != _generation(before):
        return True  # the spec changed meanwhile, perhaps back and forth
    if _change_cause(fresh) != _change_cause(before):
        return True  # the change-cause the patch removes changed or vanished
    return resource_version is not None and _resource_version(fresh) != resource_version


def _change_cause(obj: JsonObject) -> object:
    annotations = (obj.get("metadata") or {}).get("annotations")
    return annotations.get(CHANGE_CAUSE_ANNOTATION) if isinstance(annotations, dict) else None


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
