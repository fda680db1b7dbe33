"""Pods that cannot start, whatever workload they belong to, read from the Pods alone.

:func:`pod_troubles` reads what a person watching ``kubectl get pods -w``
reads, but from one snapshot of the objects, so that anyone (a wait, a
stream, a status call, another replica taking over) reaches the same
conclusion from the same objects. A container is in trouble when

- it waits in ``ErrImagePull`` or ``ImagePullBackOff`` (the kubelet
  alternates the two while it retries: both are reported as
  ``ImagePullBackOff``), or in ``InvalidImageName``;
- it keeps exiting, reported as ``CrashLoopBackOff`` whatever the moment of
  the cycle shows: waiting in ``CrashLoopBackOff``, terminated with a non-zero
  exit code, or running again but not ready after an earlier termination
  (``restartCount`` > 0). A real kubelet passes through all three between
  back-offs, so a rule that looks at the waiting reason alone would keep
  resetting.

How long a Pod has been in trouble is read from the Pod too: since its
``Ready`` condition last became false (for a new Pod: when it started;
otherwise ``status.startTime``, then ``creationTimestamp``). Those are the
cluster's timestamps; the caller supplies the cluster's time now
(:class:`~kubeupdate.kube.clock.ClusterClock`). :func:`newest_time` gives
the newest timestamp the Pods carry, which the cluster's clock has certainly
passed.

A Pod being deleted (``deletionTimestamp``) is on its way out and never in
trouble. :func:`with_pod_warning` adds the first Pod problem to a rollout
message: that warning is kubeupdate's addition to kubectl's words (kubectl's
status rules read the workload only).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from kubeupdate.kube.api import JsonObject
from kubeupdate.kube.clock import parse_time

IMAGE_PULL_BACK_OFF: Final = "ImagePullBackOff"
CRASH_LOOP_BACK_OFF: Final = "CrashLoopBackOff"
INVALID_IMAGE_NAME: Final = "InvalidImageName"

# The kubelet's waiting reasons, and the trouble each one is reported as.
_WAITING_TROUBLES: Final = {
    "ErrImagePull": IMAGE_PULL_BACK_OFF,
    IMAGE_PULL_BACK_OFF: IMAGE_PULL_BACK_OFF,
    INVALID_IMAGE_NAME: INVALID_IMAGE_NAME,
    CRASH_LOOP_BACK_OFF: CRASH_LOOP_BACK_OFF,
}

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
class PodTrouble:
    """A container of a Pod that cannot start or keeps exiting."""

    pod: str
    container: str
    #: ``ImagePullBackOff``, ``InvalidImageName`` or ``CrashLoopBackOff``.
    reason: str
    #: What the kubelet says, in its words where it has some.
    message: str
    #: When the Pod last became not ready (cluster time, seconds since the epoch); None
    #: when the Pod carries no timestamp to tell.
    since: float | None
    restarts: int = 0


def pod_troubles(pods: Iterable[JsonObject]) -> list[PodTrouble]:
    """The containers (init containers too) in trouble, Pod by Pod; see the module's docstring."""
    found = []
    for pod in pods:
        metadata = pod.get("metadata") or {}
        if metadata.get("deletionTimestamp"):
            continue
        name = str(metadata.get("name", ""))
        since = _not_ready_since(pod)
        for container in _container_statuses(pod):
            trouble = _trouble(container)
            if trouble is not None:
                reason, message = trouble
                found.append(
                    PodTrouble(
                        name,
                        str(container.get("name", "")),
                        reason,
                        message,
                        since,
                        _int(container.get("restartCount")),
                    )
                )
    return found


def newest_time(pods: Iterable[JsonObject]) -> float | None:
    """The newest timestamp in the Pods' status: the cluster's clock has passed it."""
    times = [t for pod in pods for t in _times(pod) if t is not None]
    return max(times, default=None)


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


def _trouble(container: dict[str, Any]) -> tuple[str, str] | None:
    """(reason, message) when this container status shows trouble."""
    state = container.get("state") or {}
    waiting = state.get("waiting") or {}
    reason = _WAITING_TROUBLES.get(str(waiting.get("reason", "")))
    if reason == CRASH_LOOP_BACK_OFF:
        return reason, _crash_message(container, str(waiting.get("message", "")))
    if reason is not None:
        return reason, str(waiting.get("message", ""))
    terminated = state.get("terminated") or {}
    if terminated and _int(terminated.get("exitCode")) != 0:
        return CRASH_LOOP_BACK_OFF, _crash_message(container, "")
    last = (container.get("lastState") or {}).get("terminated") or {}
    restarted = _int(container.get("restartCount")) > 0 and bool(last)
    if state.get("running") is not None and restarted and not container.get("ready"):
        return CRASH_LOOP_BACK_OFF, _crash_message(container, "running again, not ready")
    return None


def _crash_message(container: dict[str, Any], now: str) -> str:
    """``restarted 3 times, last exit code 1 (Error)[; now]``."""
    state = container.get("state") or {}
    ended = state.get("terminated") or (container.get("lastState") or {}).get("terminated") or {}
    restarts = _int(container.get("restartCount"))
    parts = [f"restarted {restarts} time{'' if restarts == 1 else 's'}"]
    if ended:
        exit_code = _int(ended.get("exitCode"))
        reason = ended.get("reason")
        parts[0] += f", last exit code {exit_code}" + (f" ({reason})" if reason else "")
    return "; ".join([*parts, now] if now else parts)


def _not_ready_since(pod: JsonObject) -> float | None:
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") != "True":
            since = parse_time(cond.get("lastTransitionTime"))
            if since is not None:
                return since
    started = parse_time(status.get("startTime"))
    if started is not None:
        return started
    return parse_time((pod.get("metadata") or {}).get("creationTimestamp"))


def _container_statuses(pod: JsonObject) -> Iterator[dict[str, Any]]:
    status = pod.get("status") or {}
    for field in ("initContainerStatuses", "containerStatuses"):
        for container in status.get(field) or []:
            if isinstance(container, dict):
                yield container


def _times(pod: JsonObject) -> Iterator[float | None]:
    status = pod.get("status") or {}
    yield parse_time((pod.get("metadata") or {}).get("creationTimestamp"))
    yield parse_time(status.get("startTime"))
    for cond in status.get("conditions") or []:
        yield parse_time(cond.get("lastTransitionTime"))
    for container in _container_statuses(pod):
        for state in (container.get("state") or {}, container.get("lastState") or {}):
            yield parse_time((state.get("running") or {}).get("startedAt"))
            yield parse_time((state.get("terminated") or {}).get("startedAt"))
            yield parse_time((state.get("terminated") or {}).get("finishedAt"))


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0
