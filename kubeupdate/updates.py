"""SetContainerImage as a use case: check the options, change the image, maybe wait.

Without ``wait`` this is the plain write (:meth:`ContainerImages.set_container_image`);
with it, the rollout is followed to its end (:class:`~kubeupdate.rollouts.waits.RolloutWaits`)
and, with ``rollback_on_failure``, a failed or timed-out rollout is rolled back,
and the rollback's own rollout followed for at most the wait's timeout again
(so such a call lasts at most twice its timeout, and never past the caller's
deadline). The options are checked before anything is written, then, where the
policy or the server asks, the image in its registry
(:class:`~kubeupdate.image_checks.ImageChecks`), still before any Kubernetes
call; under ``digest: pin`` the pinned reference is what gets written. Who asks
and why goes into the change's record (:class:`~kubeupdate.patches.ChangeRecord`).

:attr:`SetImageOutcome.image` is the image the container has when the call
answers: the requested one, or after a rollback the restored one (or a newer
one someone else set meanwhile). When the wait fails after the change was made
(the caller's deadline, Kubernetes gone), the error's metadata says so:
``changed``, ``image`` (what the container has) and ``previousImage``, and
``rolledBack`` once the change was rolled back.

With guarded rollouts (:mod:`kubeupdate.guarded`), a waited change records its
intent in the cluster before its patch, so that another replica finishes it
if this one stops; on :meth:`ImageUpdates.hand_over` (SIGTERM) the waits end
with ROLLOUT_HANDED_OVER and their records are released to the other replicas.

This module does not know gRPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

from kubeupdate import errors, request_ids
from kubeupdate.containers import ContainerImages, ImageChange
from kubeupdate.guarded.holds import Hold
from kubeupdate.guarded.leases import HoldLost
from kubeupdate.guarded.records import Intent
from kubeupdate.guarded.rollouts import GuardedRollouts
from kubeupdate.patches import ChangeRecord
from kubeupdate.rollouts.judgement import RolloutReport, RolloutState
from kubeupdate.rollouts.settings import RolloutSettings
from kubeupdate.rollouts.waits import RolloutWaits
from kubeupdate.targets import Target

if TYPE_CHECKING:
    # aiohttp's client: a process that only reads the flags must not load it.
    from kubeupdate.image_checks import CheckedImage, ImageCheck, ImageChecks

MAX_REASON_LENGTH: Final = 256


@dataclass(frozen=True)
class SetImageOutcome:
    """What :meth:`ImageUpdates.set_container_image` did."""

    change: ImageChange
    dry_run: bool
    rollout: RolloutReport | None
    #: The image the container has now: ``change.image`` unless a rollback was attempted.
    image: str
    #: What the registry check found, when one ran (or why it was skipped).
    checked: CheckedImage | None = None


def check_options(
    *,
    wait: bool,
    timeout: float | None,
    rollback_on_failure: bool,
    dry_run: bool,
    reason: str,
    settings: RolloutSettings,
) -> float | None:
    """Check the options of a change; the wait's timeout in seconds (None: no wait)."""
    if wait and dry_run:
        raise errors.InvalidArgument(
            "Wait cannot be combined with DryRun: a dry run stores nothing, so no rollout starts"
        )
    if rollback_on_failure and not wait:
        raise errors.InvalidArgument(
            "RollbackOnFailure needs Wait: kubeupdate can only roll back a rollout it waited for"
        )
    if len(reason) > MAX_REASON_LENGTH:
        raise errors.InvalidArgument(
            f"Reason is {len(reason)} characters long; at most {MAX_REASON_LENGTH} are allowed"
        )
    if not reason.isprintable():
        raise errors.InvalidArgument(
            "Reason must be printable text on one line: no control or formatting characters"
        )
    return check_wait(wait=wait, timeout=timeout, settings=settings)


def check_wait(*, wait: bool, timeout: float | None, settings: RolloutSettings) -> float | None:
    """Check a wait's Timeout; the wait in seconds (None: no wait)."""
    if timeout is not None and not wait:
        raise errors.InvalidArgument("Timeout needs Wait: it bounds how long the call waits")
    if timeout is not None and timeout <= 0:
        raise errors.InvalidArgument(
            f"Timeout must be positive (got {timeout:g}s); leave it unset for the default "
            f"of {settings.default_timeout:g}s"
        )
    if not wait:
        return None
    if timeout is None:
        return min(settings.default_timeout, settings.max_timeout)
    return min(timeout, settings.max_timeout)


class ImageUpdates:
    """Changes a container's image; with a wait, follows the rollout and may roll it back."""

    def __init__(
        self,
        images: ContainerImages,
        waits: RolloutWaits,
        settings: RolloutSettings,
        checks: ImageChecks | None = None,
        guard: GuardedRollouts | None = None,
    ) -> None:
        """``checks`` None: no registry access, so a write whose rule asks for a check fails.

        ``guard``: record waited changes as guarded rollouts (None: waits are not guarded).
        """
        self._images = images
        self._waits = waits
        self.settings = settings
        self._checks = checks
        self._guard = guard
        self._handing_over = asyncio.Event()

    def hand_over(self) -> None:
        """This replica stops: guarded waits end now with ROLLOUT_HANDED_OVER."""
        self._handing_over.set()

    async def set_container_image(
        self,
        target: Target,
        *,
        identity: str,
        wait: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - the contract's Timeout option
        rollback_on_failure: bool = False,
        dry_run: bool = False,
        reason: str = "",
        deadline: float | None = None,
        check: ImageCheck | None = None,
    ) -> SetImageOutcome:
        """Set the image, recording who and why; with ``wait``, follow the rollout.

        ``check`` is what the policy's image rule asks of the image in its registry.
        """
        start = time.monotonic()
        wait_for = check_options(
            wait=wait,
            timeout=timeout,
            rollback_on_failure=rollback_on_failure,
            dry_run=dry_run,
            reason=reason,
            settings=self.settings,
        )
        checked = await self._check(target, check, deadline)
        if checked is not None:
            target = replace(target, image=checked.image)
        if wait_for is not None and self._guard is not None:
            guarded = await self._guarded(
                target,
                self._guard,
                identity=identity,
                wait_for=wait_for,
                rollback_on_failure=rollback_on_failure,
                reason=reason,
                deadline=deadline,
                start=start,
            )
            if guarded is not None:
                return replace(guarded, checked=checked)
        change = await self._images.set_container_image(
            target,
            deadline=deadline,
            dry_run=dry_run,
            record=ChangeRecord(identity, reason, request_ids.current.get()),
            # Waiting on a paused Deployment would wait for nothing: refuse first.
            refuse_paused=wait_for is not None,
            same=checked.runs_in if checked is not None else None,
        )
        if wait_for is None:
            return SetImageOutcome(change, dry_run, None, change.image, checked)
        try:
            report = await self._waits.wait(
                target.namespace,
                target.name,
                until=start + wait_for,
                deadline=deadline,
                start=start,
                generation=change.generation,
            )
            image = change.image
            if rollback_on_failure and report.state in (
                RolloutState.FAILED,
                RolloutState.TIMED_OUT,
            ):
                report, image = await self._waits.roll_back(
                    change,
                    report,
                    identity,
                    deadline,
                    follow_until=time.monotonic() + wait_for,
                )
        except errors.KubeupdateError as exc:
            # The change is made: a failure of the wait must say so, for programs too.
            exc.metadata.setdefault("image", change.image)  # unless a rollback said otherwise
            exc.metadata.update(
                changed=str(change.changed).lower(), previousImage=change.previous_image
            )
            raise
        duration = time.monotonic() - start
        return SetImageOutcome(change, dry_run, replace(report, duration=duration), image, checked)

    async def _check(
        self, target: Target, check: ImageCheck | None, deadline: float | None
    ) -> CheckedImage | None:
        if self._checks is None:
            if check is not None:
                raise errors.Unavailable(
                    "the policy asks for a registry check of this image, and this server "
                    "has no registry access",
                    reason=errors.ErrorReason.REGISTRY_UNAVAILABLE,
                )
            return None
        wanted = self._checks.wanted(check)
        if wanted is None:
            return None
        return await self._checks.check(target.new_image(), wanted, deadline=deadline)

    async def _guarded(
        self,
        target: Target,
        guard: GuardedRollouts,
        *,
        identity: str,
        wait_for: float,
        rollback_on_failure: bool,
        reason: str,
        deadline: float | None,
        start: float,
    ) -> SetImageOutcome | None:
        """The waited change as a guarded rollout; None when the image is set already."""
        workload, before = await self._images.read_container(
            target, deadline=deadline, refuse_paused=True
        )
        image = str(target.new_image())
        if before == image:
            return None  # nothing to change, nothing to guard: a plain wait
        intent = Intent(
            deployment=target.name,
            container=target.container or "",
            image=image,
            previous_image=before,
            rollback_on_failure=rollback_on_failure,
            deadline=guard.now() + max(0.0, start + wait_for - time.monotonic()),
            request_id=request_ids.current.get(),
            caller=identity,
            reason=reason,
        )
        hold = await guard.start(workload, intent, deadline=deadline)
        async with hold:
            change = await self._replace(target, hold, before, identity, reason, deadline)
            try:
                await guard.applied(hold, change)
                report = await self._follow(target, hold, change, start + wait_for, deadline, start)
                report, image = await guard.conclude(
                    hold,
                    change,
                    report,
                    identity=identity,
                    deadline=deadline,
                    follow_until=time.monotonic() + wait_for,
                )
            except HoldLost:
                raise guard.handed_over(hold, change) from None
            except errors.KubeupdateError as exc:
                if exc.reason != errors.ErrorReason.ROLLOUT_HANDED_OVER:
                    # As an unguarded wait says it, and which record follows the change.
                    exc.metadata.setdefault("image", change.image)  # unless a rollback said
                    exc.metadata.update(
                        changed=str(change.changed).lower(),
                        previousImage=change.previous_image,
                        rolloutId=hold.rollout_id,
                    )
                raise
        duration = time.monotonic() - start
        return SetImageOutcome(change, False, replace(report, duration=duration), image)

    async def _replace(
        self,
        target: Target,
        hold: Hold,
        before: str,
        identity: str,
        reason: str,
        deadline: float | None,
    ) -> ImageChange:
        """Patch the image the record says it replaces; follow the record if it changed first."""
        while True:
            change = await self._images.replace_container_image(
                target, expected=before, deadline=deadline, record=ChangeRecord(identity, reason)
            )
            if change is not None:
                return change
            # Someone changed the container between our read and our patch:
            # the record must name what this change replaces before it is made.
            before = await self._images.image_now(
                target.namespace, target.name, target.container or "", deadline=deadline
            )
            await hold.retarget(before)

    async def _follow(
        self,
        target: Target,
        hold: Hold,
        change: ImageChange,
        until: float,
        deadline: float | None,
        start: float,
    ) -> RolloutReport:
        """The rollout's last report; ROLLOUT_HANDED_OVER when this replica stops first."""
        guard = self._guard
        assert guard is not None
        waiting = asyncio.ensure_future(
            self._waits.wait(
                target.namespace,
                target.name,
                until=until,
                deadline=deadline,
                start=start,
                generation=change.generation,
            )
        )
        stopping = asyncio.ensure_future(self._handing_over.wait())
        lost = asyncio.ensure_future(hold.lost.wait())
        try:
            await asyncio.wait((waiting, stopping, lost), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiting, stopping, lost):
                if not task.done():
                    task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(waiting, stopping, lost, return_exceptions=True)
        if waiting.done() and not waiting.cancelled():
            return waiting.result()
        raise guard.handed_over(hold, change)
