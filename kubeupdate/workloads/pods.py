"""Pods that cannot start, whatever workload they belong to.

:func:`stuck_pods` finds containers waiting for a reason that does not end by
itself; a waited rollout with such Pods fails after a grace instead of after
the workload's progress deadline. :func:`with_pod_warning` adds the first Pod
problem to a rollout message: that warning is kubeupdate's addition to
kubectl's words (kubectl's status rules read the workload only).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from kubeupdate.kube.api import JsonObject

#: Container waits that do not end by themselves: a rollout with such Pods fails.
STUCK_REASONS: Final = frozenset(
    {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CrashLoopBackOff"}
)

# Container waits the rollout message warns about (problems a workload's status does not show).
_WARNING_REASONS: Final = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)


@dataclass(frozen=True)
class StuckPod:
    """A container of a Pod waiting for a reason that does not end by itself."""

    pod: str
    container: str
    reason: str
    message: str


def stuck_pods(pods: Iterable[JsonObject]) -> list[StuckPod]:
    """Containers (init containers too) waiting in one of :data:`STUCK_REASONS`."""
    found = []
    for pod in pods:
        name = str((pod.get("metadata") or {}).get("name", ""))
        status = pod.get("status") or {}
        for field in ("initContainerStatuses", "containerStatuses"):
            for container in status.get(field) or []:
                waiting = (container.get("state") or {}).get("waiting") or {}
                if waiting.get("reason") in STUCK_REASONS:
                    found.append(
                        StuckPod(
                            name,
                            str(container.get("name", "")),
                            str(waiting["reason"]),
                            str(waiting.get("message", "")),
                        )
                    )
    return found


def with_pod_warning(message: str, pods: Iterable[JsonObject]) -> str:
    """``message`` with ``(Warning: ...)`` about the first Pod that cannot be scheduled or start."""
    for pod in pods:
        status = pod.get("status") or {}
        for cond in status.get("conditions") or []:
            if (cond.get("type"), cond.get("status"), cond.get("reason")) == (
                "PodScheduled",
                "False",
                "Unschedulable",
            ):
                return f"{message.strip()} (Warning: {cond.get('message', '')})\n"
        for container in status.get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting")
            if waiting and waiting.get("reason") in _WARNING_REASONS:
                detail = f"{waiting['reason']} - {waiting.get('message', '')}"
                return f"{message.strip()} (Warning: {detail})\n"
    return message
