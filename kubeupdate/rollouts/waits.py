"""Waiting for a rollout to end, and rolling back the change that started it.

A rollback is a compare-and-swap
(:meth:`~kubeupdate.containers.ContainerImages.restore_container_image`): it
never undoes a change someone else made meanwhile, and it only undoes what
this call changed. Setting the previous image again starts a rollout of its
own, which is followed to its end like the first, within a budget the caller
gives (``follow_until``): until then, "rolled back" only means the template
names the previous image again, not that Pods run it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import replace

from kubeupdate import errors, request_ids
from kubeupdate.containers import ContainerImages, ImageChange
from kubeupdate.patches import ChangeRecord
from kubeupdate.rollouts.judgement import RolloutReport, RolloutState
from kubeupdate.rollouts.tracking import RolloutTracking

log = logging.getLogger(__name__)


class RolloutWaits:
    """Waits for rollouts (through ``tracking``) and rolls back failed ones (through ``images``)."""

    def __init__(self, tracking: RolloutTracking, images: ContainerImages) -> None:
        self._tracking = tracking
        self._images = images

    async def wait(
        self,
        namespace: str,
        name: str,
        *,
        until: float,
        deadline: float | None = None,
        start: float | None = None,
        generation: int = 0,
    ) -> RolloutReport:
        """Follow the rollout until it ends or ``until`` (monotonic) passes: the last report.

        ``generation``: the workload's ``metadata.generation`` after the write
        that started the rollout (see :meth:`RolloutTracking.follow`).
        """
        last: RolloutReport | None = None
        async with contextlib.aclosing(
            self._tracking.follow(
                namespace, name, until=until, deadline=deadline, start=start, generation=generation
            )
        ) as reports:
            async for report in reports:
                last = report
        assert last is not None
        return last

    async def roll_back(
        self,
        change: ImageChange,
        report: RolloutReport,
        identity: str,
        deadline: float | None,
        *,
        follow_until: float | None = None,
    ) -> tuple[RolloutReport, str]:
        """Put the previous image back if the container still runs the one ``change`` set.

        Returns the report, and the image the container has now. With
        ``follow_until`` (monotonic), the rollback's own rollout is followed
        until it ends or then, and the caller's deadline never passes first:
        the report's :attr:`~RolloutReport.rollback` says how far it got.
        When following fails (Kubernetes gone), the error's metadata says that
        the rollback was made.
        """
        if not change.changed:
            message = (
                f"{report.message}; not rolled back: this call changed nothing "
                f"(the container already ran {change.image})"
            )
            return replace(report, message=message), change.image
        restoration = await self._images.restore_container_image(
            change.namespace,
            change.deployment,
            change.container,
            expected=change.image,
            image=change.previous_image,
            record=ChangeRecord(
                identity,
                f"rollout {report.state.value}: {report.reason}",
                request_ids.current.get(),
            ),
            deadline=deadline,
        )
        if not restoration.restored:
            log.info(
                "not rolling back %s/%s: container %s now runs %s, set by someone else",
                change.namespace,
                change.deployment,
                change.container,
                restoration.image,
            )
            message = (
                f"{report.message}; not rolled back: container {change.container} "
                f"now runs {restoration.image}, set by a newer change"
            )
            return replace(report, message=message), restoration.image
        rolled_back = replace(
            report,
            state=RolloutState.ROLLED_BACK,
            failed_image=change.image,
            restored_image=change.previous_image,
        )
        rolled_back_to = f"container {change.container} runs {change.previous_image} again"
        if follow_until is None:
            message = f"{report.message}; rolled back: {rolled_back_to} instead of {change.image}"
            return replace(rolled_back, message=message), change.previous_image
        try:
            rollback = await self._follow(change, restoration.generation, follow_until, deadline)
        except errors.KubeupdateError as exc:
            exc.metadata.update(
                rolledBack="true", image=change.previous_image, failedImage=change.image
            )
            raise
        if rollback.state is RolloutState.COMPLETE:
            done = f"rolled back: {rolled_back_to} instead of {change.image}, on every replica"
        else:
            done = (
                f"rolled back: the template names {change.previous_image} again instead of "
                f"{change.image}, but the rollback's rollout is {rollback.state.value}: "
                f"{rollback.message}"
            )
        message = f"{report.message}; {done}"
        return replace(rolled_back, message=message, rollback=rollback), change.previous_image

    async def _follow(
        self, change: ImageChange, generation: int, until: float, deadline: float | None
    ) -> RolloutReport:
        """The rollback's rollout, followed until it ends, ``until``, or ``deadline`` nears."""
        start = time.monotonic()
        answer_by = self._tracking.answer_by(deadline, start)
        report = await self.wait(
            change.namespace,
            change.deployment,
            until=until if answer_by is None else min(until, answer_by),
            deadline=deadline,
            start=start,
            generation=generation,
        )
        return replace(report, duration=time.monotonic() - start)
