"""Where a rollout stands: the kind's rule, and Pods that cannot start, make one report.

The kind's rule (for a Deployment, kubectl's) decides COMPLETE, FAILED (past the
progress deadline) or PROGRESSING; a Pod stuck for longer than the grace fails
a rollout that is not complete, instead of waiting for the deadline (10
minutes by default). TIMED_OUT and ROLLED_BACK are decided by the wait
(:mod:`kubeupdate.rollouts.waits`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from kubeupdate.workloads.kinds import Progress
from kubeupdate.workloads.pods import StuckPod


class RolloutState(enum.Enum):
    """Where a rollout stands (the contract's ``Rollout.State``)."""

    PROGRESSING = "progressing"
    COMPLETE = "complete"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    ROLLED_BACK = "rolled_back"

    @property
    def terminal(self) -> bool:
        return self is not RolloutState.PROGRESSING


@dataclass(frozen=True)
class RolloutReport:
    """The state of a rollout at one moment."""

    state: RolloutState
    reason: str
    message: str
    replicas: int = 0
    updated_replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    revision: int = 0
    #: Seconds the wait lasted (waited answers only).
    duration: float | None = None
    failed_image: str = ""
    restored_image: str = ""


def assess(progress: Progress, stuck: StuckPod | None = None) -> RolloutReport:
    """The report for what the kind's rule read, and a Pod stuck past the grace (if any)."""

    def report(state: RolloutState, reason: str, message: str) -> RolloutReport:
        return RolloutReport(
            state=state,
            reason=reason,
            message=message.strip(),
            replicas=progress.replicas,
            updated_replicas=progress.updated_replicas,
            ready_replicas=progress.ready_replicas,
            available_replicas=progress.available_replicas,
            revision=progress.revision,
        )

    if progress.failed:
        return report(RolloutState.FAILED, progress.reason, progress.message)
    if progress.done:
        return report(RolloutState.COMPLETE, progress.reason, progress.message)
    if stuck is not None:
        detail = f": {stuck.message}" if stuck.message else ""
        return report(
            RolloutState.FAILED,
            stuck.reason,
            f"pod {stuck.pod}, container {stuck.container}: {stuck.reason}{detail}",
        )
    # The controller has not seen the change yet: its reason is about the one before.
    reason = progress.reason if progress.observed else "WaitingForObservation"
    return report(RolloutState.PROGRESSING, reason, progress.message)
