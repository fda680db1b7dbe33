"""Pods that cannot start."""

from __future__ import annotations

from typing import Any

from kubeupdate.workloads.pods import stuck_pods


def pod(name: str, reason: str, message: str = "", field: str = "containerStatuses") -> Any:
    waiting = {"reason": reason, "message": message}
    return {
        "metadata": {"name": name},
        "status": {field: [{"name": "app", "state": {"waiting": waiting}}]},
    }


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
