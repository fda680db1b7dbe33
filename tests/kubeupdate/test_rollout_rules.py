"""The pure rules of rollouts: options, the state of a rollout, stuck Pods, the change record."""

from __future__ import annotations

from typing import Any

import pytest

from kubeupdate import errors
from kubeupdate.deployments import ChangeRecord, ContainerSlot, change_cause, image_patch
from kubeupdate.rollout_status import StuckPod, stuck_pods
from kubeupdate.rollouts import RolloutSettings, RolloutState, assess, check_options

SETTINGS = RolloutSettings(default_timeout=300, max_timeout=1800)


def options(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "wait": False,
        "timeout": None,
        "rollback_on_failure": False,
        "dry_run": False,
        "reason": "",
    }
    return {**values, **overrides, "settings": SETTINGS}


@pytest.mark.parametrize(
    ("given", "timeout"),
    [
        ({}, None),
        ({"dry_run": True}, None),
        ({"wait": True}, 300),
        ({"wait": True, "timeout": 12.5}, 12.5),
        ({"wait": True, "timeout": 86_400}, 1800),  # cut to the server's cap
        ({"wait": True, "rollback_on_failure": True}, 300),
        ({"reason": "release 1.4 — ticket #42"}, None),
        ({"reason": "x" * 256}, None),
    ],
)
def test_accepted_options(given: dict[str, Any], timeout: float | None) -> None:
    assert check_options(**options(**given)) == timeout


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"wait": True, "dry_run": True}, "Wait cannot be combined with DryRun"),
        ({"wait": True, "dry_run": True, "rollback_on_failure": True}, "Wait cannot be combined"),
        ({"rollback_on_failure": True}, "RollbackOnFailure needs Wait"),
        ({"timeout": 5}, "Timeout needs Wait"),
        ({"wait": True, "timeout": 0}, "Timeout must be positive (got 0s)"),
        ({"wait": True, "timeout": -3}, "Timeout must be positive (got -3s)"),
        ({"reason": "x" * 257}, "Reason is 257 characters long"),
        ({"reason": "two\nlines"}, "Reason must be printable text"),
        ({"reason": "tab\there"}, "Reason must be printable text"),
        ({"reason": "\x1b[31mred"}, "Reason must be printable text"),
        ({"reason": "bidi \u202e override"}, "Reason must be printable text"),
    ],
)
def test_refused_options(given: dict[str, Any], message: str) -> None:
    with pytest.raises(errors.InvalidArgument) as refused:
        check_options(**options(**given))
    assert refused.value.message.startswith(message)


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
    report = assess(obj, pods, stuck)
    assert (report.state, report.reason, report.message) == (state, reason, message)
    assert (report.replicas, report.revision) == (3, 4)


def test_stuck_pods_finds_the_reasons_that_do_not_end_by_themselves() -> None:
    pods = [
        pod("a", "ImagePullBackOff", "m1"),
        pod("b", "ErrImagePull"),
        pod("c", "InvalidImageName", field="initContainerStatuses"),
        pod("d", "CrashLoopBackOff"),
        pod("e", "ContainerCreating"),
        pod("f", "CreateContainerConfigError"),
        {"metadata": {"name": "g"}, "status": {}},
    ]
    assert [(s.pod, s.reason) for s in stuck_pods(pods)] == [
        ("a", "ImagePullBackOff"),
        ("b", "ErrImagePull"),
        ("c", "InvalidImageName"),
        ("d", "CrashLoopBackOff"),
    ]
    assert stuck_pods(pods)[0].message == "m1"


def test_change_cause_sentence() -> None:
    me = ChangeRecord("token:release-bot", "ticket 7")
    assert change_cause("app", "nginx:1.25", "nginx:1.26", me) == (
        "kubeupdate: container app nginx:1.25 → nginx:1.26 by token:release-bot (ticket 7)"
    )
    assert change_cause("app", "a:1", "a:2", ChangeRecord("anonymous")) == (
        "kubeupdate: container app a:1 → a:2 by anonymous"
    )
    assert change_cause("app", "a:2", "a:1", me, rollback=True).startswith(
        "kubeupdate: rolled back container app a:2 → a:1 by "
    )


def test_image_patch_records_the_change_in_the_same_patch() -> None:
    slot = ContainerSlot(0, False, "a:1")
    with_map = {"metadata": {"annotations": {"other": "x"}, "resourceVersion": "7"}}
    assert image_patch(slot, "app", "a:2", "why", target=with_map)[3:] == [
        {"op": "add", "path": "/metadata/annotations/kubernetes.io~1change-cause", "value": "why"}
    ]
    without = {"metadata": {"resourceVersion": "7"}}
    assert image_patch(slot, "app", "a:2", "why", target=without)[3:] == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
        {
            "op": "add",
            "path": "/metadata/annotations",
            "value": {"kubernetes.io/change-cause": "why"},
        },
    ]
    assert len(image_patch(slot, "app", "a:2")) == 3
