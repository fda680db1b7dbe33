"""Waiting for a rollout to end, and rolling back the change that started it.

A rollback is a compare-and-swap
(:meth:`~kubeupdate.containers.ContainerImages.restore_container_image`): it
never undoes a change someone else made meanwhile, and it only undoes what
this call changed.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace

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
        self, change: ImageChange, report: RolloutReport, identity: str, deadline: float | None
    ) -> RolloutReport:
        """Put the previous image back if the container still runs the one ``change`` set."""
        if not change.changed:
            return replace(
                report,
                message=f"{report.message}; not rolled back: this call changed nothing "
                f"(the container already ran {change.image})",
            )
        restored, now = await self._images.restore_container_image(
            change.namespace,
            change.deployment,
            change.container,
            expected=change.image,
            image=change.previous_image,
            record=ChangeRecord(identity, f"rollout {report.state.value}: {report.reason}"),
            deadline=deadline,
        )
        if not restored:
            log.info(
                "not rolling back %s/%s: container %s now runs %s, set by someone else",
                change.namespace,
                change.deployment,
                change.container,
                now,
            )
            return replace(
                report,
                message=f"{report.message}; not rolled back: container {change.container} "
                f"now runs {now}, set by a newer change",
            )
        return replace(
            report,
            state=RolloutState.ROLLED_BACK,
            message=f"{report.message}; rolled back: container {change.container} runs "
            f"{change.previous_image} again instead of {change.image}",
            failed_image=change.image,
            restored_image=change.previous_image,
        )
