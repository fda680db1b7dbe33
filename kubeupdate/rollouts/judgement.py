"""Where a rollout stands: one judgement, a pure function of the objects and the cluster's time.

:func:`judge` is the only rule: a snapshot (GetRolloutStatus), a stream
(WatchRollout), a waited change and anyone who takes a rollout over from
another process apply it to the same objects and get the same verdict. It
reads nothing but its arguments:

1. the kind's rule (for a Deployment, kubectl's ``rollout status``) decides
   FAILED (past the progress deadline) and COMPLETE;
2. a paused workload with a rollout pending is PAUSED: nothing moves until a
   person resumes it;
3. a Pod of the current revision in trouble (:func:`~kubeupdate.workloads.pods.pod_troubles`:
   image pull failures, a container that keeps exiting) for at least
   ``grace`` seconds makes it FAILED, long before the progress deadline (10
   minutes by default) would; "for at least" is counted from the Pod's own
   timestamps, so the verdict does not depend on when anyone started looking;
4. anything else is PROGRESSING.

The clock: Pod timestamps are the cluster's, so ``now`` must be the cluster's
time too (:class:`~kubeupdate.kube.clock.ClusterClock`, learned from the API
server's ``Date``). Where the Pods prove the cluster's clock is further on (a
container that exited after ``now``), their newest timestamp is used instead.
A judgement also says when, in cluster time, it could change although no
object does (:attr:`Judgement.recheck_at`), so a follower knows when to look
again. TIMED_OUT and ROLLED_BACK are not judged from objects: they are what a
wait did (:mod:`kubeupdate.rollouts.waits`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from kubeupdate.kube.api import JsonObject
from kubeupdate.workloads.kinds import Progress, WorkloadKind
from kubeupdate.workloads.pods import PodTrouble, newest_time, pod_troubles


class RolloutState(enum.Enum):
    """Where a rollout stands (the contract's ``Rollout.State``)."""

    PROGRESSING = "progressing"
    COMPLETE = "complete"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    ROLLED_BACK = "rolled_back"
    PAUSED = "paused"

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
    #: With ROLLED_BACK: the image whose rollout failed, and the one set again.
    failed_image: str = ""
    restored_image: str = ""
    #: With ROLLED_BACK: the rollout of the restored image, followed until it ended or
    #: the rollback's budget ran out (COMPLETE, FAILED, TIMED_OUT or PAUSED).
    rollback: RolloutReport | None = None
    #: What the judgement could not look at, in sentences (e.g. Pods it may not watch).
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Judgement:
    """A report, and when (cluster time) it could change without any object changing."""

    report: RolloutReport
    #: Seconds since the epoch on the cluster's clock; None: only a change of the objects can.
    recheck_at: float | None = None


PAUSED_REASON = "DeploymentPaused"


def judge(
    kind: WorkloadKind,
    workload: JsonObject,
    pods: Sequence[JsonObject],
    *,
    now: float,
    grace: float,
    warnings: Sequence[str] = (),
) -> Judgement:
    """The verdict on ``workload``'s rollout, given the Pods of its current revision.

    ``now`` is the cluster's time (seconds since the epoch); ``grace`` how long
    a Pod may be in trouble before the rollout fails; ``warnings`` go into
    the report as they are.
    """
    progress = kind.progress(workload, pods)

    def report(state: RolloutState, reason: str, message: str) -> RolloutReport:
        return _report(progress, state, reason, message, tuple(warnings))

    if progress.failed:
        return Judgement(report(RolloutState.FAILED, progress.reason, progress.message))
    if progress.done:
        return Judgement(report(RolloutState.COMPLETE, progress.reason, progress.message))
    if progress.paused:
        name = str((workload.get("metadata") or {}).get("name", ""))
        message = (
            f'{kind.name} "{name}" is paused: its new template is not rolled out until it is '
            f"resumed (kubectl rollout resume {kind.name}/{name}); {progress.message.strip()}"
        )
        return Judgement(report(RolloutState.PAUSED, PAUSED_REASON, message))
    now = max(now, newest_time(pods) or now)
    troubles = sorted(
        (t for t in pod_troubles(pods) if t.since is not None),
        key=lambda t: (t.since, t.pod, t.container),
    )
    overdue = next((t for t in troubles if now - (t.since or now) >= grace), None)
    if overdue is not None:
        return Judgement(report(RolloutState.FAILED, overdue.reason, _trouble_message(overdue)))
    # The controller has not seen the change yet: its reason is about the one before.
    reason = progress.reason if progress.observed else "WaitingForObservation"
    recheck = min(((t.since or now) + grace for t in troubles), default=None)
    return Judgement(report(RolloutState.PROGRESSING, reason, progress.message), recheck)


def pods_unavailable(kind: str, namespace: str, name: str, cause: str) -> str:
    """The warning of a judgement made without the Pods, because of ``cause``."""
    return (
        f"the Pods of {kind} {namespace}/{name} could not be read ({cause}); the rollout is "
        f"judged by the {kind}'s own status alone, as kubectl rollout status does, so Pods "
        "that cannot start only fail it at its progress deadline"
    )


def _trouble_message(trouble: PodTrouble) -> str:
    detail = f": {trouble.message}" if trouble.message else ""
    return f"pod {trouble.pod}, container {trouble.container}: {trouble.reason}{detail}"


def _report(
    progress: Progress,
    state: RolloutState,
    reason: str,
    message: str,
    warnings: tuple[str, ...],
) -> RolloutReport:
    return RolloutReport(
        state=state,
        reason=reason,
        message=message.strip(),
        replicas=progress.replicas,
        updated_replicas=progress.updated_replicas,
        ready_replicas=progress.ready_replicas,
        available_replicas=progress.available_replicas,
        revision=progress.revision,
        warnings=warnings,
    )
