"""The one judgement of a rollout: the Deployment's rule, a paused Deployment, Pods in trouble.

Pods are kubelet-shaped (``tests/kubeupdate/workloads/kubelet_statuses.py``);
times are seconds after T0, the Pods' creation, on the cluster's clock.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from kubeupdate.rollouts.judgement import Judgement, RolloutState, judge
from kubeupdate.workloads.deployments import DEPLOYMENT
from tests.kubeupdate.workloads.kubelet_statuses import (
    T0,
    crash_loop_back_off,
    err_image_pull,
    image_pull_back_off,
    pod,
    running,
    running_after_crash,
    terminated_error,
)

GRACE = 30.0
PROGRESSING, FAILED = RolloutState.PROGRESSING, RolloutState.FAILED
WAITING = (
    'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...'
)


def deployment(
    *,
    generation: int = 2,
    observed: int = 2,
    replicas: int = 3,
    updated: int = 3,
    available: int = 3,
    total: int | None = None,
    reason: str = "ReplicaSetUpdated",
    paused: bool = False,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"replicas": replicas}
    if paused:
        spec["paused"] = True
    return {
        "metadata": {
            "name": "web",
            "generation": generation,
            "annotations": {"deployment.kubernetes.io/revision": "4"},
        },
        "spec": spec,
        "status": {
            "observedGeneration": observed,
            "replicas": updated if total is None else total,
            "updatedReplicas": updated,
            "readyReplicas": available,
            "availableReplicas": available,
            "conditions": [{"type": "Progressing", "status": "True", "reason": reason}],
        },
    }


ROLLING = deployment(updated=1, available=1)


def at(seconds: float, *pods: dict[str, Any], obj: dict[str, Any] = ROLLING) -> Judgement:
    return judge(DEPLOYMENT, obj, list(pods), now=T0 + seconds, grace=GRACE)


@pytest.mark.parametrize(
    ("obj", "state", "reason", "message"),
    [
        (
            deployment(reason="NewReplicaSetAvailable"),
            RolloutState.COMPLETE,
            "NewReplicaSetAvailable",
            'deployment "web" successfully rolled out',
        ),
        (
            deployment(generation=3),
            PROGRESSING,
            "WaitingForObservation",
            "Waiting for deployment spec update to be observed...",
        ),
        (ROLLING, PROGRESSING, "ReplicaSetUpdated", WAITING),
        (
            deployment(updated=1, available=0, reason="ProgressDeadlineExceeded"),
            FAILED,
            "ProgressDeadlineExceeded",
            'deployment "web" exceeded its progress deadline',
        ),
        (
            deployment(total=4),
            PROGRESSING,
            "ReplicaSetUpdated",
            'Waiting for deployment "web" rollout to finish: 1 old replicas are pending '
            "termination...",
        ),
        (
            deployment(updated=1, available=1, paused=True, reason="DeploymentPaused"),
            RolloutState.PAUSED,
            "DeploymentPaused",
            'deployment "web" is paused: its new template is not rolled out until it is resumed '
            f"(kubectl rollout resume deployment/web); {WAITING}",
        ),
        (
            # Paused after it rolled out: nothing is pending, so it is complete.
            deployment(paused=True, reason="DeploymentPaused"),
            RolloutState.COMPLETE,
            "DeploymentPaused",
            'deployment "web" successfully rolled out',
        ),
    ],
)
def test_the_deployments_own_rule(
    obj: dict[str, Any], state: RolloutState, reason: str, message: str
) -> None:
    judgement = at(0, obj=obj)

    report = judgement.report
    assert (report.state, report.reason, report.message) == (state, reason, message)
    assert (report.replicas, report.revision) == (3, 4)
    assert judgement.recheck_at is None


# A crash-looping container as `kubectl get pods -w` shows it: it crashes at 8 s, 19 s,
# 40 s... (back-off 10 s, 20 s, 40 s), running in between; the Pod is not ready since 1 s.
CRASH_LOOP_CYCLE = [
    (9, crash_loop_back_off(restarts=1, crashed_at=8, back_off=10)),
    (18, running_after_crash(restarts=1, crashed_at=8, started_at=18)),
    (19, terminated_error(restarts=1, started_at=18, crashed_at=19)),
    (20, crash_loop_back_off(restarts=2, crashed_at=19, back_off=20)),
    # Grace over (1 + 30): whichever moment of the cycle is seen, the rollout has failed.
    (31, crash_loop_back_off(restarts=2, crashed_at=19, back_off=20)),
    (39, running_after_crash(restarts=2, crashed_at=19, started_at=39)),
    (40, terminated_error(restarts=2, started_at=39, crashed_at=40)),
]


@pytest.mark.parametrize(("seconds", "container"), CRASH_LOOP_CYCLE)
def test_a_crash_loop_fails_the_rollout_once_the_pod_is_unready_for_the_grace(
    seconds: float, container: dict[str, Any]
) -> None:
    judgement = at(seconds, pod(container))

    report = judgement.report
    if seconds < 1 + GRACE:
        assert (report.state, report.reason) == (PROGRESSING, "ReplicaSetUpdated")
        assert judgement.recheck_at == T0 + 1 + GRACE
    else:
        assert (report.state, report.reason) == (FAILED, "CrashLoopBackOff")
        assert report.message.startswith(
            "pod web-7d4b9c5f6-x2k8p, container app: CrashLoopBackOff: restarted 2 times, "
            "last exit code 1 (Error)"
        )
        assert judgement.recheck_at is None


@pytest.mark.parametrize(
    ("seconds", "container", "state"),
    [
        (3, err_image_pull(), PROGRESSING),
        (14, image_pull_back_off(), PROGRESSING),
        (30.9, err_image_pull(), PROGRESSING),
        (31, err_image_pull(), FAILED),
        (45, image_pull_back_off(), FAILED),
    ],
)
def test_a_failing_pull_fails_the_rollout_whichever_reason_it_shows(
    seconds: float, container: dict[str, Any], state: RolloutState
) -> None:
    report = at(seconds, pod(container)).report

    assert report.state == state
    if state is FAILED:
        assert report.reason == "ImagePullBackOff"  # ErrImagePull too: one stable reason


def test_the_pods_own_timestamps_prove_time_passed_when_the_clock_lags() -> None:
    # A clock that says 5 s, and a container that exited at 40 s: the cluster is past 31 s.
    crashed = pod(terminated_error(restarts=2, started_at=39, crashed_at=40))

    assert at(5, crashed).report.state is FAILED


def test_the_first_pod_in_trouble_is_named_whatever_order_the_pods_come_in() -> None:
    pods = [
        pod(image_pull_back_off(), name="web-c", ready_since=3),
        pod(image_pull_back_off(), name="web-b", ready_since=2),
        pod(image_pull_back_off(), name="web-a", ready_since=2),
        pod(running(), name="web-d"),
    ]
    verdicts = set()
    for _ in range(10):
        random.shuffle(pods)
        verdicts.add(at(60, *pods).report)

    [report] = verdicts
    assert report.message.startswith("pod web-a, container app: ImagePullBackOff")


@pytest.mark.parametrize(
    "obj",
    [
        deployment(reason="NewReplicaSetAvailable"),
        deployment(updated=1, available=1, paused=True),
        deployment(updated=1, available=0, reason="ProgressDeadlineExceeded"),
    ],
    ids=["complete", "paused", "past-the-progress-deadline"],
)
def test_the_deployments_rule_comes_before_its_pods(obj: dict[str, Any]) -> None:
    stuck = pod(image_pull_back_off())

    with_pods, without = at(600, stuck, obj=obj).report, at(600, obj=obj).report
    assert (with_pods.state, with_pods.reason) == (without.state, without.reason)


def test_a_pod_without_timestamps_never_fails_the_rollout_by_time() -> None:
    bare = pod(image_pull_back_off(), ready_since=None)
    del bare["status"]["conditions"], bare["status"]["startTime"]
    del bare["metadata"]["creationTimestamp"]

    judgement = at(3600, bare)

    assert (judgement.report.state, judgement.recheck_at) == (PROGRESSING, None)


def test_warnings_are_carried_into_the_report() -> None:
    judgement = judge(DEPLOYMENT, ROLLING, [], now=T0, grace=GRACE, warnings=["no Pods"])

    assert judgement.report.warnings == ("no Pods",)
