"""Guarded rollouts: a waited change whose intent is in the cluster before its patch.

The replica that makes the change (:meth:`GuardedRollouts.change`) and any
replica that takes it over (:meth:`GuardedRollouts.resume`) finish it the same
way: follow the rollout with the judgement a waited call uses, roll it back
compare-and-swap when the intent asks for it, close the record with the
verdict.

The phases are a write-ahead log (:class:`~kubeupdate.guarded.records.Phase`);
what happened at each crash point is decided from the phase written last and
the Deployment as it is now (:func:`situation`):

========================  =================================  ==============================
crash after               the record says / the image is     whoever takes over
========================  =================================  ==============================
intent written            intended / previous                closes it: never applied
patch sent, answer lost   intended / new or previous         follows it / closes it
patch applied             intended / new                     follows it (same rule)
applied written           applied / new                      follows it, may roll back
rollback announced        rolling-back / new                 rolls back (compare-and-swap)
rollback patched          rolling-back / previous            closes it: ROLLED_BACK
any                       any / a third image                closes it: a newer change
                                                             stands, nothing is undone
========================  =================================  ==============================

So no rollback undoes a change that never happened (the rollback tests the
new image), and no applied change is left without a record that someone
follows. The one residue: a patch still in flight when its holder's Lease
expired may land after a taker closed the record as never applied; the
holder sends its patch only within the Lease's renew deadline, which makes
that window the network's, not the Lease's.
"""

from __future__ import annotations

import enum
import logging
import time

from kubeupdate import errors
from kubeupdate.containers import ContainerImages, ImageChange
from kubeupdate.guarded import crashes, records
from kubeupdate.guarded.holds import Hold
from kubeupdate.guarded.leases import RecordLeases
from kubeupdate.guarded.records import GuardedRecord, Intent, Phase, RecordState, Verdict
from kubeupdate.guarded.terms import LeaseTerms
from kubeupdate.kube.api import JsonObject
from kubeupdate.kube.clock import ClusterClock
from kubeupdate.rollouts.judgement import RolloutReport, RolloutState
from kubeupdate.rollouts.waits import RolloutWaits

log = logging.getLogger(__name__)

_FAILED = (RolloutState.FAILED, RolloutState.TIMED_OUT)


class Situation(enum.Enum):
    """What became of a guarded change, as a taker finds it."""

    NEVER_APPLIED = "never applied"
    APPLIED = "applied"
    ROLLED_BACK = "rolled back"
    SUPERSEDED = "superseded by a newer change"


def situation(record: GuardedRecord, image_now: str) -> Situation:
    """What happened to the change, from the phase written last and the image now."""
    intent, phase = record.intent, record.state.phase
    if image_now == intent.image:
        return Situation.APPLIED
    if image_now == intent.previous_image:
        if phase is Phase.INTENDED:
            return Situation.NEVER_APPLIED
        if phase is Phase.ROLLING_BACK:
            return Situation.ROLLED_BACK
    return Situation.SUPERSEDED


class GuardedRollouts:
    """Starts, follows and finishes guarded rollouts as replica ``identity``."""

    def __init__(
        self,
        leases: RecordLeases,
        images: ContainerImages,
        waits: RolloutWaits,
        clock: ClusterClock,
        *,
        identity: str,
        terms: LeaseTerms,
    ) -> None:
        self.leases = leases
        self.identity = identity
        self.terms = terms
        self._images = images
        self._waits = waits
        self._clock = clock

    def now(self) -> float:
        """The cluster's time (what records say)."""
        return self._clock.now()

    async def start(self, workload: JsonObject, intent: Intent, *, deadline: float | None) -> Hold:
        """Write the record of ``intent`` (phase intended), held by this replica."""
        lease = records.new_record(
            records.new_name(),
            workload,
            intent,
            holder=self.identity,
            duration=self.terms.duration,
            now=self._clock.now(),
        )
        record = await self.leases.create(lease, deadline=deadline)
        crashes.point("intent-recorded")
        return Hold(self.leases, record, self.terms, self._clock.now)

    async def applied(self, hold: Hold, change: ImageChange) -> None:
        crashes.point("image-patched")
        await hold.write(RecordState(Phase.APPLIED, change.generation))
        crashes.point("applied-recorded")

    async def conclude(
        self,
        hold: Hold,
        change: ImageChange,
        report: RolloutReport,
        *,
        identity: str,
        deadline: float | None,
        follow_until: float | None,
    ) -> tuple[RolloutReport, str]:
        """Roll back when the intent asks and the rollout failed, then close.

        The verdict's report, and the image the container has now.
        """
        intent = hold.record.intent
        image = change.image
        if intent.rollback_on_failure and report.state in _FAILED:
            await hold.write(RecordState(Phase.ROLLING_BACK, change.generation))
            crashes.point("rollback-recorded")
            report, image = await self._waits.roll_back(
                change, report, identity, deadline, follow_until=follow_until
            )
            crashes.point("rolled-back")
        await hold.close(
            Verdict(applied=True, rollout=report, message=report.message, closed_by=self.identity)
        )
        return report, image

    async def resume(self, record: GuardedRecord) -> GuardedRecord:
        """Finish a record this replica has just taken over; the record as closed."""
        intent = record.intent
        async with Hold(self.leases, record, self.terms, self._clock.now) as hold:
            now_image = await self._images.image_now(
                record.namespace, intent.deployment, intent.container, deadline=None
            )
            found = situation(record, now_image)
            log.info(
                "guarded rollout %s/%s taken over (phase %s): the change %s",
                record.namespace,
                record.name,
                record.state.phase.value,
                found.value,
            )
            change = ImageChange(
                record.namespace,
                intent.deployment,
                intent.container,
                intent.image,
                intent.previous_image,
                True,
                record.state.generation,
            )
            if found is Situation.NEVER_APPLIED:
                await hold.close(
                    Verdict(
                        applied=False,
                        rollout=None,
                        message=f"the change to {intent.image} was never applied: the replica "
                        f"that started it stopped before its patch; the container runs "
                        f"{now_image}",
                        closed_by=self.identity,
                    )
                )
                return hold.record
            if found is Situation.SUPERSEDED:
                report = RolloutReport(
                    RolloutState.COMPLETE,
                    "Superseded",
                    f"container {intent.container} now runs {now_image}, set by a newer "
                    "change; not rolled back",
                )
                await hold.close(Verdict(True, report, report.message, closed_by=self.identity))
                return hold.record
            if found is Situation.ROLLED_BACK:
                report = RolloutReport(
                    RolloutState.ROLLED_BACK,
                    "RolledBack",
                    f"rolled back: container {intent.container} runs {intent.previous_image} "
                    f"again instead of {intent.image}",
                    failed_image=intent.image,
                    restored_image=intent.previous_image,
                )
                await hold.close(Verdict(True, report, report.message, closed_by=self.identity))
                return hold.record
            if record.state.phase is Phase.ROLLING_BACK:
                report = RolloutReport(
                    RolloutState.FAILED, "RollbackInterrupted", "the rollback was interrupted"
                )
            else:
                if record.state.phase is Phase.INTENDED:
                    await hold.write(RecordState(Phase.APPLIED, record.state.generation))
                start = time.monotonic()
                until = max(start, self._clock.local(intent.deadline))
                report = await self._waits.wait(
                    record.namespace,
                    intent.deployment,
                    until=until,
                    start=start,
                    generation=record.state.generation,
                )
            await self.conclude(
                hold,
                change,
                report,
                identity=intent.on_behalf,
                deadline=None,
                follow_until=time.monotonic() + self.terms.follow_rollback,
            )
            return hold.record

    def handed_over(self, hold: Hold, change: ImageChange) -> errors.Unavailable:
        """The answer of a waited call whose replica stops: another one follows the rollout."""
        follow = (
            f"/rollout/{change.namespace}/{change.deployment}/guarded/{hold.rollout_id}?wait=true"
        )
        return errors.Unavailable(
            f"The image was changed to {change.image}; this replica is shutting down and "
            "another one follows the rollout (and rolls it back if it fails and you asked "
            f"for that). Follow it: GET {follow}",
            reason=errors.ErrorReason.ROLLOUT_HANDED_OVER,
            metadata={
                "rollout_id": hold.rollout_id,
                "namespace": change.namespace,
                "deployment": change.deployment,
                "container": change.container,
                "image": change.image,
                "previous_image": change.previous_image,
                "follow": follow,
            },
        )
