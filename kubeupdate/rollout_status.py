"""Whether a Deployment's rollout is done: kubectl's rule, as pure functions.

:func:`rollout_status` is a port of kubectl's ``DeploymentStatusViewer.Status``
(``pkg/polymorphichelpers/rollout_status.go``), the rule ``kubectl rollout
status`` applies; the devcluster's tests check its rollout controller with the
same function. :func:`stuck_pods` finds Pods that cannot start, which kubectl
only warns about and kubeupdate fails fast on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

Object = dict[str, Any]

POD_TEMPLATE_HASH_LABEL: Final = "pod-template-hash"
REVISION_ANNOTATION: Final = "deployment.kubernetes.io/revision"
CHANGE_CAUSE_ANNOTATION: Final = "kubernetes.io/change-cause"

PROGRESS_DEADLINE_EXCEEDED: Final = "ProgressDeadlineExceeded"

# Container waits that the message warns about (Pod-level problems a Deployment's
# status does not show).
_WARNING_REASONS: Final = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)

#: Container waits that do not end by themselves: a rollout with such Pods fails.
STUCK_REASONS: Final = frozenset(
    {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CrashLoopBackOff"}
)


class RolloutFailed(Exception):
    """``kubectl rollout status`` would exit with this error."""


def rollout_status(
    deployment: Object, revision: int = 0, pods: Iterable[Object] = ()
) -> tuple[str, bool]:
    """kubectl's ``DeploymentStatusViewer.Status``: (message, done).

    Raises :class:`RolloutFailed` where kubectl returns an error (progress
    deadline exceeded, or ``revision`` given and not the running one). ``pods``
    (the Deployment's, if the caller has them) add kubeupdate's warning about
    a Pod that cannot start; without them the message is kubectl's, word for word.
    """
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    name = meta.get("name", "")
    if revision > 0:
        running = int((meta.get("annotations") or {}).get(REVISION_ANNOTATION, "0") or 0)
        if revision != running:
            raise RolloutFailed(
                f"desired revision ({revision}) is different from the running revision ({running})"
            )
    if meta.get("generation", 0) > status.get("observedGeneration", 0):
        return _with_warning("Waiting for deployment spec update to be observed...\n", pods), False
    progressing = condition(status, "Progressing")
    if progressing is not None and progressing.get("reason") == PROGRESS_DEADLINE_EXCEEDED:
        raise RolloutFailed(f"deployment {_go_quote(name)} exceeded its progress deadline")
    replicas = spec.get("replicas")
    updated = status.get("updatedReplicas", 0)
    prefix = f"Waiting for deployment {_go_quote(name)} rollout to finish: "
    if replicas is not None and updated < replicas:
        message = f"{prefix}{updated} out of {replicas} new replicas have been updated...\n"
        return _with_warning(message, pods), False
    if status.get("replicas", 0) > updated:
        old = status.get("replicas", 0) - updated
        return _with_warning(
            f"{prefix}{old} old replicas are pending termination...\n", pods
        ), False
    available = status.get("availableReplicas", 0)
    if available < updated:
        message = f"{prefix}{available} of {updated} updated replicas are available...\n"
        return _with_warning(message, pods), False
    return f"deployment {_go_quote(name)} successfully rolled out\n", True


@dataclass(frozen=True)
class StuckPod:
    """A container of a Pod waiting for a reason that does not end by itself."""

    pod: str
    container: str
    reason: str
    message: str


def stuck_pods(pods: Iterable[Object]) -> list[StuckPod]:
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


def condition(status: Object, type_: str) -> Object | None:
    """The condition of ``type_`` in an object's status, if any."""
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), None)


def _with_warning(message: str, pods: Iterable[Object]) -> str:
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


def _go_quote(text: str) -> str:
    # Go's %q for the names Kubernetes allows (no quotes or control characters).
    return json.dumps(text, ensure_ascii=False)
