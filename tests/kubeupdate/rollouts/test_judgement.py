"""A rollout's report: the Deployment's rule, and Pods that cannot start."""

from __future__ import annotations

from typing import Any

import pytest

from kubeupdate.rollouts.judgement import RolloutState, assess
from kubeupdate.workloads.deployments import DEPLOYMENT
from kubeupdate.workloads.pods import StuckPod


def deployment(
    *,
    generation: int = 2,
    observed: int = 2,
    replicas: int = 3,
    updated: int = 3,
    available: int = 3,
    total: int | None = None,
    reason: str = "ReplicaSetUpdated",
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web",
            "generation": generation,
            "annotations": {"deployment.kubernetes.io/revision": "4"},
        },
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": updated if total is None else total,
            "updatedReplicas": updated,
            "readyReplicas": available,
            "availableReplicas": available,
            "conditions": [{"type": "Progressing", "status": "True", "reason": reason}],
        },
    }


def pod(name: str, reason: str, message: str = "", field: str = "containerStatuses") -> Any:
    waiting = {"reason": reason, "message": message}
    return {
        "metadata": {"name": name},
        "status": {field: [{"name": "app", "state": {"waiting": waiting}}]},
    }


STUCK = StuckPod("web-1", "app", "ImagePullBackOff", 'Back-off pulling image "x:1-bad"')


@pytest.mark.parametrize(
    ("obj", "pods", "stuck", "state", "reason", "message"),
    [
        (
            deployment(reason="NewReplicaSetAvailable"),
            [],
            None,
            RolloutState.COMPLETE,
            "NewReplicaSetAvailable",
            'deployment "web" successfully rolled out',
        ),
        (
            deployment(generation=3),
            [],
            None,
            RolloutState.PROGRESSING,
            "WaitingForObservation",
            "Waiting for deployment spec update to be observed...",
        ),
        (
            deployment(updated=1, available=1),
            [],
            None,
            RolloutState.PROGRESSING,
            "ReplicaSetUpdated",
            'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been '
            "updated...",
        ),
        (
            deployment(updated=1, available=1),
            [pod("web-1", "CrashLoopBackOff", "back-off 10s")],
            None,
            RolloutState.PROGRESSING,
            "ReplicaSetUpdated",
            'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been '
            "updated... (Warning: CrashLoopBackOff - back-off 10s)",
        ),
        (
            deployment(updated=1, available=1),
            [],
            STUCK,
            RolloutState.FAILED,
            "ImagePullBackOff",
            'pod web-1, container app: ImagePullBackOff: Back-off pulling image "x:1-bad"',
        ),
        (
            # A rollout that completed is complete, whatever an old Pod says.
            deployment(reason="NewReplicaSetAvailable"),
            [],
            STUCK,
            RolloutState.COMPLETE,
            "NewReplicaSetAvailable",
            'deployment "web" successfully rolled out',
        ),
        (
            deployment(updated=1, available=0, reason="ProgressDeadlineExceeded"),
            [],
            None,
            RolloutState.FAILED,
            "ProgressDeadlineExceeded",
            'deployment "web" exceeded its progress deadline',
        ),
        (
            deployment(total=4),
            [],
            None,
            RolloutState.PROGRESSING,
            "ReplicaSetUpdated",
            'Waiting for deployment "web" rollout to finish: 1 old replicas are pending '
            "termination...",
        ),
    ],
)
def test_assess(
    obj: dict[str, Any],
    pods: list[Any],
    stuck: StuckPod | None,
    state: RolloutState,
    reason: str,
    message: str,
) -> None:
    report = assess(DEPLOYMENT.progress(obj, pods), stuck)
    assert (report.state, report.reason, report.message) == (state, reason, message)
    assert (report.replicas, report.revision) == (3, 4)
