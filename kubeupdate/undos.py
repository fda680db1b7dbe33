"""UndoContainerImage as a use case: one container back to an earlier revision's image.

``kubectl rollout undo`` puts a whole Pod template back; this puts back the
image of one container: the one it had in the revision before the current
one, or in a revision the caller names. In order:

1. the options are checked (:func:`kubeupdate.updates.check_options`);
2. the revision is chosen from the history
   (:class:`~kubeupdate.rollouts.history.RolloutHistory`) and the container's
   image now is read;
3. ``approve`` is asked whether the caller may set that image: the policy's
   image rules, which could not run before the image was known
   (:mod:`kubeupdate.approvals`);
4. one compare-and-swap writes it only while the container still runs the
   image read in 2 (:meth:`~kubeupdate.containers.ContainerImages.swap_container_image`),
   so a change made meanwhile is never undone;
5. with ``wait``, the rollout is followed and maybe rolled back as a set's is
   (:class:`~kubeupdate.rollouts.waits.RolloutWaits`).

This module does not know gRPC.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from kubeupdate import errors
from kubeupdate.approvals import ImageApproval, approve_any
from kubeupdate.containers import ContainerImages, ImageChange
from kubeupdate.images import parse_image
from kubeupdate.patches import ChangeRecord
from kubeupdate.rollouts.history import RolloutHistory
from kubeupdate.rollouts.judgement import RolloutReport, RolloutState
from kubeupdate.rollouts.settings import RolloutSettings
from kubeupdate.rollouts.waits import RolloutWaits
from kubeupdate.targets import Target
from kubeupdate.updates import check_options
from kubeupdate.workloads.kinds import Revision


@dataclass(frozen=True)
class UndoOutcome:
    """What :meth:`ImageUndos.undo_container_image` did."""

    change: ImageChange
    #: The revision whose image was set again.
    revision: int
    rollout: RolloutReport | None
    #: The image the container has now: ``change.image`` unless a rollback was attempted.
    image: str


def choose_revision(revisions: list[Revision], to_revision: int, target: Target) -> Revision:
    """The revision to go back to: ``to_revision``, or (0) the one before the newest."""
    kind_name = f"{target.namespace}/{target.name}"
    kept = ", ".join(str(r.revision) for r in sorted(revisions, key=lambda r: r.revision))
    if to_revision:
        for revision in revisions:
            if revision.revision == to_revision:
                return revision
        raise errors.NotFound(
            f"revision {to_revision} of {kind_name} does not exist; the revisions kept are: "
            f"{kept or 'none'}",
            reason=errors.ErrorReason.REVISION_NOT_FOUND,
        )
    newest_first = sorted(revisions, key=lambda r: r.revision, reverse=True)
    if len(newest_first) < 2:
        raise errors.Rejected(
            f"{kind_name} has no revision before the current one to go back to "
            f"(revisions kept: {kept or 'none'})",
            reason=errors.ErrorReason.NO_EARLIER_REVISION,
        )
    return newest_first[1]


def image_in(revision: Revision, target: Target) -> str:
    """The image ``target.container`` has in ``revision``."""
    for container in revision.containers:
        if container.name == target.container:
            return container.image
    names = ", ".join(c.name for c in revision.containers) or "none"
    raise errors.Rejected(
        f"revision {revision.revision} of {target.namespace}/{target.name} has no container "
        f'"{target.container}" (it has: {names}); nothing to go back to',
        reason=errors.ErrorReason.REVISION_NOT_RESTORABLE,
    )


class ImageUndos:
    """Sets a container's image back to an earlier revision's; with a wait, follows it."""

    def __init__(
        self,
        images: ContainerImages,
        history: RolloutHistory,
        waits: RolloutWaits,
        settings: RolloutSettings,
    ) -> None:
        self._images = images
        self._history = history
        self._waits = waits
        self.settings = settings

    async def undo_container_image(
        self,
        target: Target,
        *,
        identity: str,
        to_revision: int = 0,
        wait: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - the contract's Timeout option
        rollback_on_failure: bool = False,
        reason: str = "",
        approve: ImageApproval = approve_any,
        deadline: float | None = None,
    ) -> UndoOutcome:
        """Set the image of the chosen revision again (see the module's docstring)."""
        start = time.monotonic()
        if to_revision < 0:
            raise errors.InvalidArgument(
                f"ToRevision must be a revision number, or 0 for the previous revision; "
                f"got {to_revision}"
            )
        wait_for = check_options(
            wait=wait,
            timeout=timeout,
            rollback_on_failure=rollback_on_failure,
            dry_run=False,
            reason=reason,
            settings=self.settings,
        )
        revision = choose_revision(
            await self._history.revisions(target, deadline=deadline), to_revision, target
        )
        image = image_in(revision, target)
        # A waited undo of a paused Deployment would wait for nothing: refused, as a waited set.
        _, current = await self._images.read_container(
            target, deadline=deadline, refuse_paused=wait_for is not None
        )
        try:
            reference = parse_image(image)
        except errors.InvalidArgument as exc:
            raise errors.Rejected(
                f"the image of revision {revision.revision}, {image!r}, is not a valid image "
                f"reference: {exc.message}",
                reason=errors.ErrorReason.REVISION_NOT_RESTORABLE,
            ) from exc
        approve(reference)
        cause = f"undo to revision {revision.revision}" + (f": {reason}" if reason else "")
        change = await self._images.swap_container_image(
            target.namespace,
            target.name,
            target.container,
            expected=current,
            image=image,
            record=ChangeRecord(identity, cause),
            deadline=deadline,
        )
        if change is None:
            raise errors.Aborted(
                f'container "{target.container}" of {target.namespace}/{target.name} changed '
                f"while the undo was prepared (it ran {current}); nothing was written by this "
                "request; retrying is safe",
                reason=errors.ErrorReason.CONTAINER_CHANGED,
            )
        if wait_for is None:
            return UndoOutcome(change, revision.revision, None, change.image)
        report = await self._waits.wait(
            target.namespace,
            target.name,
            until=start + wait_for,
            deadline=deadline,
            start=start,
            generation=change.generation,
        )
        image = change.image
        if rollback_on_failure and report.state in (RolloutState.FAILED, RolloutState.TIMED_OUT):
            report, image = await self._waits.roll_back(
                change, report, identity, deadline, follow_until=time.monotonic() + wait_for
            )
        duration = time.monotonic() - start
        return UndoOutcome(change, revision.revision, replace(report, duration=duration), image)
