"""Pods in trouble, read from kubelet-shaped statuses at every moment of the kubelet's cycles."""

from __future__ import annotations

from typing import Any

import pytest

from kubeupdate.workloads.pods import newest_time, pod_troubles, with_pod_warning
from tests.kubeupdate.workloads.kubelet_statuses import (
    IMAGE,
    T0,
    config_error,
    crash_loop_back_off,
    creating,
    err_image_pull,
    image_pull_back_off,
    init_completed,
    invalid_image_name,
    pod,
    running,
    running_after_crash,
    terminated_error,
)

CRASH_LOOP = "CrashLoopBackOff"


@pytest.mark.parametrize(
    ("moment", "reason", "message"),
    [
        (
            pod(err_image_pull()),
            "ImagePullBackOff",
            f'rpc error: code = NotFound desc = failed to pull and unpack image "{IMAGE}": '
            f'failed to resolve reference "{IMAGE}": {IMAGE}: not found',
        ),
        (pod(image_pull_back_off()), "ImagePullBackOff", f'Back-off pulling image "{IMAGE}"'),
        (
            pod(invalid_image_name()),
            "InvalidImageName",
            'Failed to apply default image tag "Web:1": couldn\'t parse image name "Web:1"',
        ),
        (
            pod(crash_loop_back_off(restarts=2, crashed_at=33)),
            CRASH_LOOP,
            "restarted 2 times, last exit code 1 (Error); back-off 20s restarting failed "
            "container=app pod=web-7d4b9c5f6-x2k8p_default(5f0c2b8e-6a51-4f7d-9a0e-3c1b2d4e5f60)",
        ),
        (
            pod(running_after_crash(restarts=3, crashed_at=33, started_at=53)),
            CRASH_LOOP,
            "restarted 3 times, last exit code 1 (Error); running again, not ready",
        ),
        (
            pod(terminated_error(restarts=3, started_at=53, crashed_at=54)),
            CRASH_LOOP,
            "restarted 3 times, last exit code 1 (Error)",
        ),
        (
            pod(crash_loop_back_off(restarts=1, crashed_at=8, back_off=10, exit_code=137)),
            CRASH_LOOP,
            "restarted 1 time, last exit code 137 (OOMKilled); back-off 10s restarting failed "
            "container=app pod=web-7d4b9c5f6-x2k8p_default(5f0c2b8e-6a51-4f7d-9a0e-3c1b2d4e5f60)",
        ),
    ],
    ids=[
        "err-image-pull",
        "image-pull-back-off",
        "invalid-image-name",
        "crash-loop-waiting",
        "crash-loop-running-again",
        "crash-loop-just-exited",
        "oom-killed",
    ],
)
def test_a_container_in_trouble_is_named_the_same_at_every_moment_of_its_cycle(
    moment: dict[str, Any], reason: str, message: str
) -> None:
    [trouble] = pod_troubles([moment])

    assert (trouble.pod, trouble.container, trouble.reason) == (
        "web-7d4b9c5f6-x2k8p",
        "app",
        reason,
    )
    assert trouble.message == message
    assert trouble.since == T0 + 1  # the Pod's Ready condition turned false then


@pytest.mark.parametrize(
    "moment",
    [
        pod(creating()),
        pod(running()),
        # Restarted once, long ago, and ready since: healthy.
        pod(running(restarts=1)),
        # Running but not (yet) ready, never restarted: slow start or a readiness probe;
        # the workload's progress deadline judges that, not the Pods.
        pod(running(ready=False)),
        pod(running(), init_containers=(init_completed(),)),
        pod(config_error()),
        # On its way out: whatever it shows, it does not hold the rollout up.
        pod(crash_loop_back_off(restarts=4, crashed_at=70), deleting=True),
    ],
    ids=[
        "creating",
        "running",
        "ready-after-a-restart",
        "not-ready-yet",
        "init-container-completed",
        "config-error",
        "terminating",
    ],
)
def test_a_container_that_may_still_start_is_not_in_trouble(moment: dict[str, Any]) -> None:
    assert pod_troubles([moment]) == []


def test_init_containers_are_read_too() -> None:
    failing_init = crash_loop_back_off(restarts=2, crashed_at=33, name="migrate")
    [trouble] = pod_troubles([pod(creating(), init_containers=(failing_init,))])

    assert (trouble.container, trouble.reason, trouble.restarts) == ("migrate", CRASH_LOOP, 2)


def test_trouble_counts_from_the_ready_condition_then_the_start_then_the_creation() -> None:
    ready_later = pod(err_image_pull(), ready_since=40)
    no_condition = pod(err_image_pull(), ready_since=None)
    del no_condition["status"]["conditions"]
    nothing_but_creation = pod(err_image_pull(), ready_since=None)
    del nothing_but_creation["status"]["conditions"]
    del nothing_but_creation["status"]["startTime"]
    nothing_at_all = pod(err_image_pull(), ready_since=None)
    del nothing_at_all["status"]["conditions"]
    del nothing_at_all["status"]["startTime"]
    del nothing_at_all["metadata"]["creationTimestamp"]

    found = pod_troubles([ready_later, no_condition, nothing_but_creation, nothing_at_all])

    assert [t.since for t in found] == [T0 + 40, T0 + 1, T0, None]


def test_the_newest_timestamp_of_the_pods_bounds_the_clusters_time_from_below() -> None:
    pods = [
        pod(image_pull_back_off()),
        pod(running_after_crash(restarts=3, crashed_at=33, started_at=53), name="b"),
    ]

    assert newest_time(pods) == T0 + 53
    assert newest_time([]) is None


def test_the_warning_names_the_first_waiting_problem() -> None:
    message = with_pod_warning("Waiting...\n", [pod(running()), pod(config_error())])

    assert (
        message == 'Waiting... (Warning: CreateContainerConfigError - secret "web-env" not found)\n'
    )
