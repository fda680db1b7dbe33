"""Server-side printing: the Table objects ``kubectl get`` asks for.

kubectl requests ``application/json;as=Table;g=meta.k8s.io;v=v1`` and prints
whatever columns the server defines, so the devcluster defines the same
columns kube-apiserver does for the resources it serves.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from typing import Any

from devcluster.resources import (
    DEPLOYMENTS,
    EVENTS,
    LEASES,
    NAMESPACES,
    PODS,
    REPLICASETS,
    ResourceType,
)
from devcluster.timestamps import parse_micro_time, parse_time

Object = dict[str, Any]
Column = tuple[str, str, int]  # name, type, priority (1: only with -o wide)


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def human_duration(seconds: float) -> str:
    """kube's ``duration.HumanDuration``: 5s, 3m20s, 45m, 2h10m, 3d4h, 2y30d."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    days = hours // 24
    if hours < 24 * 365 * 8:
        return f"{days // 365}y" if days % 365 == 0 else f"{days // 365}y{days % 365}d"
    return f"{days // 365}y"


def _age(obj: Object, now: float) -> str:
    created = obj.get("metadata", {}).get("creationTimestamp")
    if not created:
        return "<unknown>"
    then = calendar.timegm(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ"))
    return human_duration(now - then)


def _containers(obj: Object) -> list[Object]:
    spec = obj.get("spec", {})
    pod_spec = spec.get("template", {}).get("spec", {}) if "template" in spec else spec
    containers: list[Object] = pod_spec.get("containers") or []
    return containers


def _selector(obj: Object) -> str:
    match = (obj.get("spec", {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(match.items()))


def _deployment(obj: Object, now: float) -> list[Any]:
    status = obj.get("status", {})
    containers = _containers(obj)
    return [
        obj["metadata"]["name"],
        f"{status.get('readyReplicas', 0)}/{obj.get('spec', {}).get('replicas', 0)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        _age(obj, now),
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
        _selector(obj),
    ]


def _replicaset(obj: Object, now: float) -> list[Any]:
    status = obj.get("status", {})
    containers = _containers(obj)
    return [
        obj["metadata"]["name"],
        obj.get("spec", {}).get("replicas", 0),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        _age(obj, now),
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
        _selector(obj),
    ]


def _pod(obj: Object, now: float) -> list[Any]:
    """kube-apiserver's printPod: READY, STATUS and RESTARTS as ``kubectl get pods`` shows them."""
    status = obj.get("status", {})
    reason = status.get("reason") or status.get("phase", "Pending")
    restarts, last_restart = 0, 0.0
    initializing = False
    init_specs = obj.get("spec", {}).get("initContainers") or []
    for index, container in enumerate(status.get("initContainerStatuses") or []):
        restarts += int(container.get("restartCount", 0))
        last_restart = max(last_restart, _last_termination(container))
        state = container.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting") or {}
        if terminated and terminated.get("exitCode") == 0:
            continue
        if terminated:
            reason = "Init:" + (
                terminated.get("reason") or f"ExitCode:{terminated.get('exitCode')}"
            )
        elif waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break
    ready = 0
    statuses = status.get("containerStatuses") or []
    if not initializing:
        restarts, last_restart = 0, 0.0
        running = False
        for container in reversed(statuses):
            restarts += int(container.get("restartCount", 0))
            last_restart = max(last_restart, _last_termination(container))
            state = container.get("state") or {}
            waiting, terminated = state.get("waiting") or {}, state.get("terminated")
            if waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated:
                reason = terminated.get("reason") or f"ExitCode:{terminated.get('exitCode')}"
            elif container.get("ready") and "running" in state:
                running = True
                ready += 1
        if reason == "Completed" and running:
            ready_condition = any(c.get("type") == "Ready" for c in status.get("conditions") or [])
            reason = "Running" if ready_condition else "NotReady"
    if obj["metadata"].get("deletionTimestamp") and status.get("phase") not in (
        "Succeeded",
        "Failed",
    ):
        reason = "Terminating"
    restarts_text = str(restarts)
    if restarts and last_restart:
        restarts_text = f"{restarts} ({human_duration(now - last_restart)} ago)"
    return [
        obj["metadata"]["name"],
        f"{ready}/{len(_containers(obj))}",
        reason,
        restarts_text,
        _age(obj, now),
        status.get("podIP", "<none>"),
        obj.get("spec", {}).get("nodeName", "<none>"),
        "<none>",
        "<none>",
    ]


def _last_termination(container: Object) -> float:
    """When a container last exited before its current run (0: never)."""
    finished = ((container.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
    return (
        float(calendar.timegm(time.strptime(finished, "%Y-%m-%dT%H:%M:%SZ"))) if finished else 0.0
    )


def _namespace(obj: Object, now: float) -> list[Any]:
    return [obj["metadata"]["name"], obj.get("status", {}).get("phase", "Active"), _age(obj, now)]


def _lease(obj: Object, now: float) -> list[Any]:
    holder = (obj.get("spec") or {}).get("holderIdentity") or ""
    return [obj["metadata"]["name"], holder, _age(obj, now)]


def _since(text: str | None, now: float, parse: Callable[[str], float]) -> str | None:
    """translateTimestampSince: None for a zero time (the caller picks a fallback)."""
    return human_duration(now - parse(text)) if text else None


def _event(obj: Object, now: float) -> list[Any]:
    """printEvent, wide: kube-apiserver always builds the wide row; kubectl hides columns."""
    first = _since(obj.get("firstTimestamp"), now, parse_time) or _since(
        obj.get("eventTime"), now, parse_micro_time
    )
    first = first or "<unknown>"
    last = _since(obj.get("lastTimestamp"), now, parse_time) or first
    count = obj.get("count") or 1  # singleton events of the new API set none
    series = obj.get("series")
    if series:
        last = _since(series.get("lastObservedTime"), now, parse_micro_time) or "<unknown>"
        count = series.get("count") or 0
    involved = obj.get("involvedObject") or {}
    kind = str(involved.get("kind", "")).lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = obj.get("source") or {}
    component = source.get("component") or obj.get("reportingComponent") or ""
    instance = source.get("host") or obj.get("reportingInstance") or ""
    return [
        last,
        obj.get("type", ""),
        obj.get("reason", ""),
        target,
        involved.get("fieldPath", ""),
        f"{component}, {instance}" if instance else component,
        str(obj.get("message", "")).strip(),
        first,
        count,
        obj["metadata"]["name"],
    ]


_WORKLOAD_TAIL: list[Column] = [
    ("Containers", "string", 1),
    ("Images", "string", 1),
    ("Selector", "string", 1),
]
_PRINTERS: dict[str, tuple[list[Column], Callable[[Object, float], list[Any]]]] = {
    DEPLOYMENTS.name: (
        [
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
            *_WORKLOAD_TAIL,
        ],
        _deployment,
    ),
    REPLICASETS.name: (
        [
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
            *_WORKLOAD_TAIL,
        ],
        _replicaset,
    ),
    PODS.name: (
        [
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        _pod,
    ),
    NAMESPACES.name: (
        [("Name", "string", 0), ("Status", "string", 0), ("Age", "string", 0)],
        _namespace,
    ),
    LEASES.name: (
        [("Name", "string", 0), ("Holder", "string", 0), ("Age", "string", 0)],
        _lease,
    ),
    EVENTS.name: (
        [
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Subobject", "string", 1),
            ("Source", "string", 1),
            ("Message", "string", 0),
            ("First Seen", "string", 1),
            ("Count", "string", 1),
            ("Name", "string", 1),
        ],
        _event,
    ),
}


def table(
    resource: ResourceType, objects: list[Object], resource_version: str, now: float
) -> dict[str, Any]:
    columns, row = _PRINTERS[resource.name]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            {
                "name": name,
                "type": type_,
                "format": "name" if name == "Name" else "",
                "description": "",
                "priority": priority,
            }
            for name, type_, priority in columns
        ],
        "rows": [
            {
                "cells": row(obj, now),
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj["metadata"],
                },
            }
            for obj in objects
        ],
    }
